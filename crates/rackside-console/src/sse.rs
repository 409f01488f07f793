//! The Server-Sent Events intake: one long-lived authenticated GET per BMC on its
//! `ServerSentEventUri`, read frame by frame (`id:` and `data:` lines, a blank line ends a
//! frame). When the stream ends or fails, the console opens it again after a back-off that
//! doubles up to a maximum, sending the id of the last frame read as `Last-Event-ID` so the
//! BMC replays what was raised in between. That id is stored, so a console restart resumes
//! too. A stream that sends nothing, not even a keep-alive comment, for
//! [`PollSettings::sse_idle`](crate::PollSettings::sse_idle) is dropped and opened again the
//! same way. While a stream is not connected, the scheduled poll reads the BMC's logs (see
//! [`crate::poll`]).
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

        // 4. Frames until the stream ends or stays silent longer than the idle limit.
        let idle = self.settings.sse_idle;
        let mut frames = FrameReader::default();
        let mut count = 0;
        loop {
            let chunk = tokio::time::timeout(idle, response.chunk())
                .await
                .map_err(|_| idle_reason(idle))?
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

/// Builds the reason shown when a stream is dropped for silence.
fn idle_reason(idle: Duration) -> String {
    let limit = if idle.as_secs() > 0 {
        format!("{} s", idle.as_secs())
    } else {
        format!("{} ms", idle.as_millis())
    };
    format!("no data on the SSE stream for {limit} (idle limit)")
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
///
/// Each byte is searched for a line feed once: the reader remembers how far it searched, so
/// a frame that arrives one byte at a time costs work in proportion to its length, not to
/// its length squared.
#[derive(Debug, Default)]
pub struct FrameReader {
    buffer: Vec<u8>,
    /// Bytes at the start of `buffer` already searched for a frame end.
    searched: usize,
    skipping: bool,
    /// Bytes searched since the reader was made.
    examined: usize,
}

impl FrameReader {
    /// Appends `bytes` and returns the frames they complete.
    pub fn push(&mut self, bytes: &[u8], bmc: &str) -> Vec<Frame> {
        self.buffer.extend_from_slice(bytes);
        let mut frames = Vec::new();
        let mut start = 0;
        while let Some((end, next)) = self.next_frame_end(start) {
            let raw = self.buffer.get(start..end).unwrap_or_default();
            if std::mem::take(&mut self.skipping) {
                tracing::debug!(%bmc, "end of a skipped SSE frame");
            } else if raw.len() > MAX_FRAME_BYTES {
                warn_oversized(bmc);
            } else if let Some(frame) = parse_frame(raw) {
                frames.push(frame);
            }
            start = next;
        }
        self.buffer.drain(..start);
        self.searched = self.searched.saturating_sub(start);
        if self.buffer.len() > MAX_FRAME_BYTES {
            if !self.skipping {
                warn_oversized(bmc);
            }
            // The last bytes may begin the blank line that ends the skipped frame.
            let keep = self.buffer.len().saturating_sub(SEPARATOR_CONTEXT);
            self.buffer.drain(..keep);
            self.searched = self.buffer.len();
            self.skipping = true;
        }
        frames
    }

    /// Returns how many bytes the reader has searched for frame ends since it was made;
    /// every byte pushed is searched once.
    pub fn bytes_searched(&self) -> usize {
        self.examined
    }

    /// Finds the first blank line after `start`, searching only bytes not searched before.
    /// Returns where the frame ends (without its line break) and where the next one starts.
    fn next_frame_end(&mut self, start: usize) -> Option<(usize, usize)> {
        let from = self.searched.max(start);
        let unsearched = self.buffer.get(from..).unwrap_or_default();
        for (offset, byte) in unsearched.iter().enumerate() {
            if *byte != b'\n' {
                continue;
            }
            let line_feed = from + offset;
            let frame = self.buffer.get(start..line_feed).unwrap_or_default();
            // A blank line: this line feed follows another one, directly or after a CR.
            let before_blank = match frame {
                [.., b'\n'] => Some(frame.len() - 1),
                [.., b'\n', b'\r'] => Some(frame.len() - 2),
                _ => None,
            };
            if let Some(length) = before_blank {
                self.examined += offset + 1;
                self.searched = line_feed + 1;
                let content = frame.get(..length).unwrap_or_default();
                let length = content.strip_suffix(b"\r").unwrap_or(content).len();
                return Some((start + length, line_feed + 1));
            }
        }
        self.examined += unsearched.len();
        self.searched = self.buffer.len();
        None
    }
}

/// Bytes kept when an oversized frame is dropped: the longest blank line, `\r\n\r\n`, less
/// its last byte.
const SEPARATOR_CONTEXT: usize = 3;

fn warn_oversized(bmc: &str) {
    tracing::warn!(
        %bmc,
        max_bytes = MAX_FRAME_BYTES,
        "SSE frame longer than the limit skipped"
    );
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
    fn byte_fed_frame_searched_once() {
        // A 200 KB frame, as a BMC that sends one byte per chunk delivers it.
        let mut stream = b"id: 1\ndata: ".to_vec();
        stream.extend(std::iter::repeat_n(b'x', 200 * 1024));
        stream.extend_from_slice(b"\n\n");
        let mut reader = FrameReader::default();
        let mut frames = Vec::new();
        for byte in &stream {
            frames.extend(reader.push(std::slice::from_ref(byte), "b"));
        }
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].data.len(), 200 * 1024);
        // Searching from the start of the buffer at every chunk would examine about
        // 20 billion bytes here.
        assert_eq!(reader.bytes_searched(), stream.len());
    }

    #[test]
    fn byte_fed_endless_frame_skipped_linearly() {
        let mut reader = FrameReader::default();
        let mut pushed = 0;
        assert!(reader.push(b"data: ", "b").is_empty());
        pushed += 6;
        for _ in 0..3 * MAX_FRAME_BYTES {
            assert!(reader.push(b"x", "b").is_empty());
            pushed += 1;
        }
        let tail = b"\n\nid: 5\ndata: after\n\n";
        let frames = reader.push(tail, "b");
        pushed += tail.len();
        assert_eq!(frames.len(), 1, "{frames:?}");
        assert_eq!(frames[0].data, "after");
        assert!(
            reader.bytes_searched() <= pushed,
            "{} bytes searched for {pushed} pushed",
            reader.bytes_searched()
        );
    }

    #[test]
    fn blank_line_split_across_chunks_ends_the_frame() {
        let mut reader = FrameReader::default();
        assert!(reader.push(b"data: a\r\n", "b").is_empty());
        assert!(reader.push(b"\r", "b").is_empty());
        let frames = reader.push(b"\ndata: b\n", "b");
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].data, "a");
        let frames = reader.push(b"\n", "b");
        assert_eq!(frames[0].data, "b");
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
