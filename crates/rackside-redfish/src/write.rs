//! Writes: PATCH with entity tags, actions, and following the tasks that actions start.
//!
//! Real BMCs differ in how they want `If-Match`: some send a weak `ETag` header and compare
//! the text as sent, some want the strong spelling, some put a different tag (or a JSON
//! number) in the body's `@odata.etag`, some reject a PATCH without `If-Match` with 428, and
//! some reject an action that carries `If-Match` with 412. [`Client::patch`] tries the
//! spellings in a fixed, bounded order and reports which one worked. [`Client::action`] never
//! sends `If-Match`.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, ETAG, IF_MATCH, LOCATION};
use http::{Method, StatusCode};
use serde_json::Value;
use tokio::time::Instant;

use crate::client::{
    is_transient, parse_json, request_path, retry_after, retry_delay, status_error,
};
use crate::transport::{Response, Transport};
use crate::{decode, Client, Error};

/// Maximum number of entity-tag spellings tried on one PATCH before the PATCH without
/// `If-Match`.
pub const MAX_TAG_ATTEMPTS: usize = 4;

/// The entity tags of a resource as the service sent them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntityTags {
    /// The `ETag` response header.
    pub header: Option<String>,
    /// The body's `@odata.etag`; a JSON number is kept as its decimal text.
    pub body: Option<String>,
}

impl EntityTags {
    /// Lists the `If-Match` values to try, in order: for the header tag and then the body
    /// tag, the strong spelling, the spelling as sent and the weak spelling, without
    /// duplicates and at most [`MAX_TAG_ATTEMPTS`].
    ///
    /// The strong spelling goes first because RFC 9110 compares `If-Match` strongly, so a
    /// conforming service never matches a weak tag. Services that compare the text as sent
    /// accept the weak spelling on the retry.
    pub fn if_match_candidates(&self) -> Vec<String> {
        let mut candidates: Vec<String> = Vec::new();
        for tag in [&self.header, &self.body].into_iter().flatten() {
            for spelling in spellings(tag) {
                let usable = HeaderValue::from_str(&spelling).is_ok();
                if usable && !candidates.contains(&spelling) {
                    candidates.push(spelling);
                }
            }
        }
        candidates.truncate(MAX_TAG_ATTEMPTS);
        candidates
    }
}

/// Returns the strong, as-sent and weak spellings of an entity tag.
fn spellings(tag: &str) -> Vec<String> {
    let tag = tag.trim();
    let opaque = tag.strip_prefix("W/").unwrap_or(tag).trim();
    let strong = if opaque.len() >= 2 && opaque.starts_with('"') && opaque.ends_with('"') {
        opaque.to_owned()
    } else {
        // A bare value, such as a numeric `@odata.etag`, gets the quotes a tag needs.
        format!("\"{}\"", opaque.trim_matches('"'))
    };
    let weak = format!("W/{strong}");
    vec![strong, tag.to_owned(), weak]
}

/// One PATCH request and the status it got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteAttempt {
    /// The `If-Match` value sent, or `None` when the request had no `If-Match`.
    pub if_match: Option<String>,
    /// The response status.
    pub status: StatusCode,
}

impl fmt::Display for WriteAttempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.if_match {
            Some(tag) => write!(f, "If-Match {tag} got {}", self.status.as_u16()),
            None => write!(f, "no If-Match got {}", self.status.as_u16()),
        }
    }
}

/// The result of a successful PATCH.
#[derive(Clone, Debug, PartialEq)]
pub struct WriteOutcome {
    /// The patched resource.
    pub path: String,
    /// Every PATCH sent, in order; the last one succeeded.
    pub attempts: Vec<WriteAttempt>,
    /// The response body when the service returned the changed resource.
    pub body: Option<Value>,
    /// The task monitor when the service returned 202 and applies the change later.
    pub task_monitor: Option<String>,
    /// Plain-language remarks on how the write went, such as a rejected tag spelling.
    pub notes: Vec<String>,
}

impl WriteOutcome {
    /// Returns whether more than one PATCH was needed.
    pub fn retried(&self) -> bool {
        self.attempts.len() > 1
    }
}

/// The response to an action POST.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionOutcome {
    /// The action target.
    pub target: String,
    /// The response status: 200 or 204 when done, 202 when a task runs.
    pub status: StatusCode,
    /// The task monitor from `Location` when the status is 202; follow it with
    /// [`Client::follow_task`].
    pub task_monitor: Option<String>,
    /// The response body, when it was JSON.
    pub body: Option<Value>,
}

/// The final state of a task that completed.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskOutcome {
    /// The task monitor that was followed.
    pub task_monitor: String,
    /// The resource that reported the final state: the task, or the vendor job when the
    /// task monitor vanished.
    pub reported_by: String,
    /// The final `TaskState` or `JobState`, such as `Completed`.
    pub state: String,
    /// The final `TaskStatus` or `JobStatus`, if any.
    pub status: Option<String>,
    /// The messages of the task or job.
    pub messages: Vec<String>,
    /// Time from the first poll to the final state.
    pub elapsed: Duration,
    /// Plain-language remarks, such as a fallback to the job URI.
    pub notes: Vec<String>,
}

/// What one poll of a task or job showed.
enum Poll {
    Running { id: Option<String>, state: String },
    Finished { body: Value, state: String },
    Gone,
}

impl<T: Transport> Client<T> {
    /// Reads the `ETag` header and the body's `@odata.etag` of a resource.
    ///
    /// # Errors
    ///
    /// The errors of [`Client::get`].
    pub async fn entity_tags(&self, path: &str) -> Result<EntityTags, Error> {
        let path = request_path(path)?;
        let response = self.execute(Method::GET, &path, None, true).await?;
        if !response.status.is_success() {
            return Err(status_error(&path, &response));
        }
        let body = parse_json(&path, &response.body)?;
        let header = response
            .headers
            .get(ETAG)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|tag| !tag.is_empty())
            .map(str::to_owned);
        Ok(EntityTags {
            header,
            body: decode::text(&body, "@odata.etag"),
        })
    }

    /// Changes properties of a resource with PATCH, guarded by the resource's entity tag.
    ///
    /// Reads the resource's tags first, then sends the PATCH with each `If-Match` spelling
    /// of [`EntityTags::if_match_candidates`] while the service answers 412. When every
    /// spelling got 412, or the resource has no tag, it sends one PATCH without `If-Match`.
    /// When that gets 428, it sends one with `If-Match: *`. A PATCH that carries `If-Match`
    /// is retried on 500 and 503 as the [`crate::RetryPolicy`] allows, because it cannot
    /// apply twice. Requests without `If-Match` are not retried.
    ///
    /// Falling back to no `If-Match` or `*` gives up the protection against a concurrent
    /// change; the outcome's notes say when that happened.
    ///
    /// # Errors
    ///
    /// [`Error::PreconditionFailed`] listing each attempt when no form was accepted; the
    /// mapped status error for any other rejection (such as 400 `PropertyNotWritable`);
    /// [`Error::RetriesExhausted`] when 500 or 503 outlasts the retry policy.
    pub async fn patch(&self, path: &str, body: &Value) -> Result<WriteOutcome, Error> {
        let path = request_path(path)?;
        let tags = self.entity_tags(&path).await?;
        let candidates = tags.if_match_candidates();
        let payload = Bytes::from(body.to_string());

        // The plan: each tag spelling, then no If-Match; `*` only after a 428.
        let mut plan: Vec<Option<String>> = candidates.iter().cloned().map(Some).collect();
        plan.push(None);
        let mut attempts: Vec<WriteAttempt> = Vec::new();
        let mut index = 0;
        while let Some(if_match) = plan.get(index).cloned() {
            index += 1;
            let response = self
                .patch_once(&path, payload.clone(), if_match.as_deref())
                .await?;
            attempts.push(WriteAttempt {
                if_match: if_match.clone(),
                status: response.status,
            });
            tracing::debug!(%path, if_match = if_match.as_deref().unwrap_or("none"), status = %response.status, "PATCH sent");

            match response.status {
                status if status.is_success() => {
                    return Ok(write_outcome(path, attempts, &candidates, &response));
                }
                StatusCode::PRECONDITION_FAILED if if_match.is_some() => continue,
                StatusCode::PRECONDITION_REQUIRED if if_match.is_none() => {
                    if !plan.iter().any(|planned| planned.as_deref() == Some("*")) {
                        plan.push(Some("*".to_owned()));
                    }
                }
                _ => return Err(status_error(&path, &response)),
            }
        }
        Err(Error::PreconditionFailed {
            path,
            tried: describe_attempts(&attempts),
        })
    }

    /// Sends one PATCH. With `If-Match`, retries 500 and 503 within the retry policy.
    async fn patch_once(
        &self,
        path: &str,
        payload: Bytes,
        if_match: Option<&str>,
    ) -> Result<Response, Error> {
        let max_attempts = if if_match.is_some() {
            self.retry.max_attempts.max(1)
        } else {
            1
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self.request(Method::PATCH, path, Some(payload.clone()), true);
            if let Some(tag) = if_match {
                let value = HeaderValue::from_str(tag).map_err(|_| Error::InvalidUrl {
                    url: tag.to_owned(),
                    detail: "the entity tag cannot be sent as a header".into(),
                })?;
                request.headers.insert(IF_MATCH, value);
            }
            let response = self.send_once(request).await?;
            if !is_transient(response.status) {
                return Ok(response);
            }
            let error = status_error(path, &response);
            if matches!(error, Error::SessionLimit { .. }) {
                return Err(error);
            }
            if attempt >= max_attempts {
                if attempt == 1 {
                    return Err(error);
                }
                return Err(Error::RetriesExhausted {
                    path: path.to_owned(),
                    attempts: attempt,
                    last: Box::new(error),
                });
            }
            let delay = retry_delay(&self.retry, attempt, retry_after(&response.headers));
            tracing::debug!(%path, attempt, ?delay, %error, "transient PATCH failure, retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// Runs an action: POSTs `body` to the action `target` without `If-Match`, because
    /// some BMCs answer an action carrying it with 412.
    ///
    /// Actions are not retried, not even on 500 or 503, because the BMC may have started
    /// the action before it failed to answer. A 202 response names its task monitor in the
    /// outcome; [`Client::follow_task`] waits for it.
    ///
    /// # Errors
    ///
    /// The mapped status error for any status other than 200, 201, 202 and 204, including
    /// 500 and 503.
    pub async fn action(&self, target: &str, body: &Value) -> Result<ActionOutcome, Error> {
        let target = request_path(target)?;
        let payload = Bytes::from(body.to_string());
        let response = self
            .execute(Method::POST, &target, Some(payload), true)
            .await?;
        if !response.status.is_success() {
            return Err(status_error(&target, &response));
        }
        let task_monitor = if response.status == StatusCode::ACCEPTED {
            response
                .headers
                .get(LOCATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|location| request_path(location).ok())
        } else {
            None
        };
        let body = serde_json::from_slice::<Value>(&response.body).ok();
        // A 202 without `Location` sometimes names the task in the body.
        let task_monitor = task_monitor.or_else(|| {
            (response.status == StatusCode::ACCEPTED)
                .then(|| body.as_ref().and_then(decode::odata_id))
                .flatten()
        });
        tracing::debug!(%target, status = %response.status, task = task_monitor.as_deref().unwrap_or("none"), "action sent");
        Ok(ActionOutcome {
            target,
            status: response.status,
            task_monitor,
            body,
        })
    }

    /// Polls a task monitor until the task finishes or `deadline` passes.
    ///
    /// A task monitor that answers 404 is taken to have vanished after completion, as
    /// iDRAC's do seconds after a task ends. The client then reads the vendor job with the
    /// task's id under each manager (`<manager>/Jobs/<id>`, then
    /// `<manager>/Oem/Dell/Jobs/<id>`) and reports that job's final state.
    ///
    /// # Errors
    ///
    /// [`Error::TaskFailed`] when the task or job ends in any state but `Completed`;
    /// [`Error::TaskLost`] when the monitor vanished and no job shows the result;
    /// [`Error::WaitExpired`] at the deadline; read errors as they occur.
    pub async fn follow_task(
        &self,
        task_monitor: &str,
        deadline: Duration,
    ) -> Result<TaskOutcome, Error> {
        let monitor = request_path(task_monitor)?;
        let started = Instant::now();
        let mut notes = Vec::new();
        let mut reported_by = monitor.clone();
        let mut task_id: Option<String> = None;
        let mut seen_running = false;
        let mut last_state: String;

        loop {
            match self.poll_task(&reported_by).await? {
                Poll::Finished { body, state } => {
                    return finished(&monitor, &reported_by, body, state, started, notes);
                }
                Poll::Running { id, state } => {
                    seen_running = true;
                    task_id = task_id.or(id);
                    last_state = state;
                }
                Poll::Gone if reported_by != monitor => {
                    return Err(Error::TaskLost {
                        path: monitor,
                        detail: format!(
                            "was followed through job {reported_by}, which returned 404 as well"
                        ),
                    });
                }
                Poll::Gone => {
                    let id = task_id
                        .clone()
                        .unwrap_or_else(|| task_id_from_uri(&monitor));
                    let Some(job) = self.find_job(&id).await? else {
                        let when = if seen_running {
                            "returned 404 after it was seen running"
                        } else {
                            "returned 404 before it was seen running"
                        };
                        return Err(Error::TaskLost {
                            path: monitor,
                            detail: format!("{when} and no manager has a job {id:?}"),
                        });
                    };
                    notes.push(format!(
                        "the task monitor {monitor} returned 404, so the result was read from job {job}"
                    ));
                    tracing::debug!(%monitor, %job, "task monitor vanished, following the job");
                    reported_by = job;
                    continue;
                }
            }
            if started.elapsed() >= deadline {
                return Err(Error::WaitExpired {
                    what: format!("task {monitor}"),
                    seconds: deadline.as_secs(),
                    detail: format!("last state {last_state}"),
                });
            }
            tokio::time::sleep(self.poll_interval()).await;
        }
    }

    /// Reads a task monitor, task or job once.
    async fn poll_task(&self, path: &str) -> Result<Poll, Error> {
        let response = self.execute(Method::GET, path, None, true).await?;
        if matches!(response.status, StatusCode::NOT_FOUND | StatusCode::GONE) {
            return Ok(Poll::Gone);
        }
        if !response.status.is_success() {
            return Err(status_error(path, &response));
        }
        let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        let state = decode::text(&body, "TaskState").or_else(|| decode::text(&body, "JobState"));
        let id = decode::text(&body, "Id");
        match state {
            Some(state) if is_running(&state) => Ok(Poll::Running { id, state }),
            Some(state) => Ok(Poll::Finished { body, state }),
            // A task monitor answers 202 while the task runs and the action's own response
            // once it is done.
            None if response.status == StatusCode::ACCEPTED => Ok(Poll::Running {
                id,
                state: "Running".into(),
            }),
            None => Ok(Poll::Finished {
                body,
                state: "Completed".into(),
            }),
        }
    }

    /// Finds the vendor job with the task's id under one of the managers.
    async fn find_job(&self, id: &str) -> Result<Option<String>, Error> {
        if id.is_empty() || id.contains(['/', '?', '#']) {
            return Ok(None);
        }
        let root_managers = self
            .root()
            .and_then(|root| decode::link(root, "Managers"))
            .unwrap_or_else(|| format!("{}/Managers", crate::SERVICE_ROOT));
        let managers = self.collection_entries(&root_managers).await?;
        for manager in managers.iter().filter_map(decode::odata_id) {
            let manager = manager.trim_end_matches('/');
            for candidate in [
                format!("{manager}/Jobs/{id}"),
                format!("{manager}/Oem/Dell/Jobs/{id}"),
            ] {
                let Ok(path) = request_path(&candidate) else {
                    continue;
                };
                let response = self.execute(Method::GET, &path, None, true).await?;
                if response.status.is_success() {
                    return Ok(Some(path));
                }
            }
        }
        Ok(None)
    }
}

/// Returns whether a `TaskState` or `JobState` means the work is not finished.
fn is_running(state: &str) -> bool {
    matches!(
        state,
        "New"
            | "Starting"
            | "Running"
            | "Suspended"
            | "Interrupted"
            | "Pending"
            | "Stopping"
            | "Cancelling"
            | "Service"
            | "Scheduled"
            | "Scheduling"
            | "Waiting"
            | "Downloading"
            | "Downloaded"
            | "ReadyForExecution"
            | "Continue"
    )
}

/// Takes the task id from a task URI such as `/redfish/v1/TaskService/Tasks/JID_123` or its
/// `/Monitor` sub-resource.
fn task_id_from_uri(uri: &str) -> String {
    let trimmed = uri
        .split('?')
        .next()
        .unwrap_or_default()
        .trim_end_matches('/');
    let trimmed = trimmed.strip_suffix("/Monitor").unwrap_or(trimmed);
    trimmed.rsplit('/').next().unwrap_or_default().to_owned()
}

fn finished(
    monitor: &str,
    reported_by: &str,
    body: Value,
    state: String,
    started: Instant,
    notes: Vec<String>,
) -> Result<TaskOutcome, Error> {
    let messages: Vec<String> = decode::array(&body, "Messages")
        .iter()
        .filter_map(|message| decode::text(message, "Message"))
        .chain(decode::text(&body, "Message"))
        .map(|text| crate::client::clean_peer_text(&text))
        .collect();
    if state != "Completed" {
        return Err(Error::TaskFailed {
            path: reported_by.to_owned(),
            state,
            message: messages.first().cloned().unwrap_or_default(),
        });
    }
    Ok(TaskOutcome {
        task_monitor: monitor.to_owned(),
        reported_by: reported_by.to_owned(),
        state,
        status: decode::text(&body, "TaskStatus").or_else(|| decode::text(&body, "JobStatus")),
        messages,
        elapsed: started.elapsed(),
        notes,
    })
}

fn write_outcome(
    path: String,
    attempts: Vec<WriteAttempt>,
    candidates: &[String],
    response: &Response,
) -> WriteOutcome {
    let mut notes = Vec::new();
    let last = attempts.last().map(|attempt| attempt.if_match.clone());
    if attempts.len() > 1 {
        notes.push(format!(
            "succeeded on attempt {} after {}",
            attempts.len(),
            describe_attempts(attempts.get(..attempts.len() - 1).unwrap_or_default())
        ));
    }
    match last.flatten().as_deref() {
        None if candidates.is_empty() => {
            notes.push("the resource has no entity tag, so the PATCH was sent without If-Match".into());
        }
        None => notes.push(
            "the PATCH went through only without If-Match, so it was not protected against a concurrent change".into(),
        ),
        Some("*") => notes.push(
            "the PATCH went through only with If-Match *, so it was not protected against a concurrent change".into(),
        ),
        Some(_) => {}
    }
    let body = serde_json::from_slice::<Value>(&response.body).ok();
    let task_monitor = (response.status == StatusCode::ACCEPTED)
        .then(|| {
            response
                .headers
                .get(LOCATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|location| request_path(location).ok())
        })
        .flatten();
    WriteOutcome {
        path,
        attempts,
        body,
        task_monitor,
        notes,
    }
}

fn describe_attempts(attempts: &[WriteAttempt]) -> String {
    attempts
        .iter()
        .map(WriteAttempt::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
