//! The Server-Sent Events intake: one long-lived authenticated GET per BMC on its
//! `ServerSentEventUri`, read frame by frame (`id:` and `data:` lines, a blank line ends a
//! frame). When the stream ends or fails, the console opens it again after a back-off that
//! doubles up to a maximum, sending the id of the last frame read as `Last-Event-ID` so the
//! BMC replays what was raised in between. That id is stored, so a console restart resumes
//! too.
//!
//! NOTE: a BMC that restarts may number its events from 1 again. The simulator then skips
//! live events up to the stored id, and the console does not detect this.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rackside_redfish::decode;

use crate::accounts::StoredAccount;
use crate::bmc_link::{one_line, pinned_tls};
use crate::events::parse_event_payload;
use crate::poll::{unix_now, Fleet};

/// Largest frame read; a longer one is skipped up to its end with a log line.
pub const MAX_FRAME_BYTES: usize = 256 * 1024;
/// Path of the EventService resource, which names the stream's URI.
const EVENT_SERVICE: &str = "/redfish/v1/EventService";

/// A running stream task and its state as shown in `GET /api/devices`.
#[derive(Debug)]
pub(crate) struct StreamHandle {
    task: tokio::task::AbortHandle,
    state: Arc<Mutex<String>>,
}

impl Fleet {
    /// Starts (or restarts) reading the SSE stream of `bmc`.
    pub fn start_stream(self: &Arc<Self>, bmc: &str) {
        let state = Arc::new(Mutex::new("connecting".to_owned()));
        let fleet = self.clone();
        let name = bmc.to_owned();
        let task_state = state.clone();
        let task = tokio::spawn(async move { fleet.run_stream(&name, &task_state).await });
        let handle = StreamHandle {
            task: task.abort_handle(),
            state,
        };
        let previous = self
            .streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(bmc.to_owned(), handle);
        if let Some(previous) = previous {
            previous.task.abort();
        }
    }

    /// Stops reading the SSE stream of `bmc`, if one runs.
    pub fn stop_stream(&self, bmc: &str) {
        let removed = self
            .streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(bmc);
        if let Some(handle) = removed {
            handle.task.abort();
        }
    }

    /// Returns the state of the SSE stream of `bmc`: `connecting`, `connected`, or
    /// `reconnecting` or `stopped` with the reason; `None` when no stream was started.
    pub fn stream_state(&self, bmc: &str) -> Option<String> {
        let streams = self
            .streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let handle = streams.get(bmc)?;
        let state = handle
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        Some(state)
    }

    /// Reads the stream of `bmc` until shutdown, opening it again after each end or failure.
    async fn run_stream(&self, bmc: &str, state: &Mutex<String>) {
        let mut stop = self.shutdown.clone();
        let mut delay = self.settings.sse_retry_min;
        loop {
            let account = match self.accounts.get(bmc) {
                Ok(Some(account)) => account,
                Ok(None) => {
                    tracing::info!(%bmc, "SSE stream stopped: the BMC has no account");
                    set_state(state, "stopped: no BMC account".to_owned());
                    return;
                }
                Err(error) => {
                    tracing::error!(%bmc, %error, "failed to read the BMC account");
                    set_state(state, format!("stopped: {}", one_line(&error)));
                    return;
                }
            };
            let ended = tokio::select! {
                _ = stop.changed() => return,
                ended = self.read_stream(bmc, &account, state) => ended,
            };
            let reason = match ended {
                Ok(frames) => {
                    if frames > 0 {
                        delay = self.settings.sse_retry_min;
                    }
                    format!("stream ended after {frames} frames")
                }
                Err(reason) => reason,
            };
            tracing::warn!(%bmc, %reason, retry_ms = delay.as_millis(), "SSE stream lost; reconnecting");
            set_state(state, format!("reconnecting: {reason}"));
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(self.settings.sse_retry_max);
        }
    }

    /// Opens the stream once and reads it to its end; returns the number of frames read.
    async fn read_stream(
        &self,
        bmc: &str,
        account: &StoredAccount,
        state: &Mutex<String>,
    ) -> Result<u64, String> {
        // 1. A client with the pinned identity and no overall time limit, because the stream
        //    stays open; TCP keep-alive notices a peer that vanished.
        let tls = pinned_tls(&account.url, &account.pin)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .connect_timeout(self.settings.request_timeout)
            .tcp_keepalive(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| format!("failed to build the HTTPS client: {e}"))?;
        let login = &account.login;

        // 2. The stream's URI from the EventService, with the registry filter.
        let service_url = account
            .url
            .join(EVENT_SERVICE)
            .map_err(|e| format!("invalid BMC URL {}: {e}", account.url))?;
        let service: serde_json::Value =
            tokio::time::timeout(self.settings.request_timeout, async {
                http.get(service_url)
                    .basic_auth(&login.user, Some(login.password.as_str()))
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await
            })
            .await
            .map_err(|_| format!("reading {EVENT_SERVICE} of {} timed out", account.url))?
            .map_err(|e| format!("failed to read {EVENT_SERVICE}: {}", e.without_url()))?;
        let uri = decode::text(&service, "ServerSentEventUri")
            .ok_or_else(|| format!("{} names no ServerSentEventUri", account.url))?;
        let mut stream_url = account
            .url
            .join(&uri)
            .map_err(|e| format!("invalid ServerSentEventUri {uri}: {e}"))?;
        if stream_url.origin() != account.url.origin() {
            return Err(format!(
                "ServerSentEventUri {uri} points away from {}",
                account.url
            ));
        }
        let prefixes = &self.settings.registry_prefixes;
        if !prefixes.is_empty() {
            let filter = prefixes
                .iter()
                .map(|p| format!("RegistryPrefix eq '{p}'"))
                .collect::<Vec<_>>()
                .join(" or ");
            stream_url.query_pairs_mut().append_pair("$filter", &filter);
        }

        // 3. The GET, resuming after the last frame read.
        let last_id = self
            .sink
            .store
            .source(bmc)
            .map_err(|e| one_line(&e))?
            .and_then(|s| s.sse_last_event_id);
        let mut request = http
            .get(stream_url)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .basic_auth(&login.user, Some(login.password.as_str()));
        if let Some(id) = &last_id {
            request = request.header("Last-Event-ID", id.as_str());
        }
        let mut response = tokio::time::timeout(self.settings.request_timeout, request.send())
            .await
            .map_err(|_| format!("opening the SSE stream of {} timed out", account.url))?
            .map_err(|e| format!("failed to open the SSE stream: {}", e.without_url()))?;
        if !response.status().is_success() {
            return Err(format!("the SSE stream returned {}", response.status()));
        }
        set_state(state, "connected".to_owned());
        tracing::info!(%bmc, resume_after = ?last_id, "SSE stream open");

        // 4. Frames until the stream ends.
        let mut frames = FrameReader::default();
        let mut count = 0;
        loop {
            let chunk = response
                .chunk()
                .await
                .map_err(|e| format!("SSE stream read failed: {}", e.without_url()))?;
            let Some(chunk) = chunk else {
                return Ok(count);
            };
            for frame in frames.push(&chunk, bmc) {
                count += 1;
                self.accept_frame(bmc, &frame)?;
            }
        }
    }

    /// Stores the events of one frame, then its id.
    fn accept_frame(&self, bmc: &str, frame: &Frame) -> Result<(), String> {
        if !frame.data.is_empty() {
            match parse_event_payload(bmc, frame.data.as_bytes()) {
                Ok(events) => {
                    self.sink
                        .accept(events, unix_now())
                        .map_err(|e| one_line(&e))?;
                }
                Err(error) => tracing::warn!(%bmc, %error, "malformed SSE frame skipped"),
            }
        }
        if let Some(id) = &frame.id {
            self.sink
                .store
                .set_sse_last_event_id(bmc, id)
                .map_err(|e| one_line(&e))?;
        }
        Ok(())
    }
}

fn set_state(state: &Mutex<String>, text: String) {
    *state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = text;
}

/// One Server-Sent Events frame.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    /// The `id:` field, if the frame has one.
    pub id: Option<String>,
    /// The `data:` lines joined with line feeds.
    pub data: String,
}

/// Splits a byte stream into frames, skipping any frame longer than [`MAX_FRAME_BYTES`].
#[derive(Debug, Default)]
pub struct FrameReader {
    buffer: Vec<u8>,
    skipping: bool,
}

impl FrameReader {
    /// Appends `bytes` and returns the frames they complete.
    pub fn push(&mut self, bytes: &[u8], bmc: &str) -> Vec<Frame> {
        self.buffer.extend_from_slice(bytes);
        let mut frames = Vec::new();
        while let Some((end, separator)) = frame_end(&self.buffer) {
            let raw: Vec<u8> = self.buffer.drain(..end + separator).collect();
            if std::mem::take(&mut self.skipping) {
                continue;
            }
            if let Some(frame) = parse_frame(raw.get(..end).unwrap_or_default()) {
                frames.push(frame);
            }
        }
        if self.buffer.len() > MAX_FRAME_BYTES {
            tracing::warn!(
                %bmc,
                max_bytes = MAX_FRAME_BYTES,
                "SSE frame longer than the limit skipped"
            );
            self.buffer.clear();
            self.skipping = true;
        }
        frames
    }
}

/// Finds the first blank line: returns where the frame ends and the separator's length.
fn frame_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// Parses the lines of one frame; comments and unknown fields are ignored. A frame without
/// `id` and `data` gives `None`.
fn parse_frame(raw: &[u8]) -> Option<Frame> {
    let text = String::from_utf8_lossy(raw);
    let mut frame = Frame::default();
    let mut data_lines = Vec::new();
    for line in text.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            // The id goes back in a header, so only visible ASCII is kept.
            "id" => {
                frame.id = Some(
                    value
                        .chars()
                        .filter(char::is_ascii_graphic)
                        .take(128)
                        .collect(),
                )
            }
            "data" => data_lines.push(value),
            _ => {}
        }
    }
    frame.data = data_lines.join("\n");
    (frame.id.is_some() || !frame.data.is_empty()).then_some(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_across_chunks_are_joined() {
        let mut reader = FrameReader::default();
        assert!(reader.push(b"id: 7\ndata: {\"a\":", "b").is_empty());
        let frames = reader.push(b" 1}\n\n: comment\n\nid: 8\r\ndata: x\r\n\r\n", "b");
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].id.as_deref(), Some("7"));
        assert_eq!(frames[0].data, "{\"a\": 1}");
        assert_eq!(frames[1].id.as_deref(), Some("8"));
        assert_eq!(frames[1].data, "x");
    }

    #[test]
    fn oversized_frame_is_skipped() {
        let mut reader = FrameReader::default();
        let huge = vec![b'x'; MAX_FRAME_BYTES + 10];
        assert!(reader.push(b"data: ", "b").is_empty());
        assert!(reader.push(&huge, "b").is_empty());
        let frames = reader.push(b"tail\n\nid: 9\ndata: ok\n\n", "b");
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].id.as_deref(), Some("9"));
        assert_eq!(frames[0].data, "ok");
    }

    #[test]
    fn frame_id_keeps_visible_ascii() {
        let frame = parse_frame("id: 4\u{7}2 é\ndata: x".as_bytes()).unwrap();
        assert_eq!(frame.id.as_deref(), Some("42"));
    }

    #[test]
    fn data_lines_join_with_line_feeds() {
        let frame = parse_frame(b"data: one\ndata: two\nevent: x").unwrap();
        assert_eq!(frame.data, "one\ntwo");
        assert_eq!(frame.id, None);
    }
}
