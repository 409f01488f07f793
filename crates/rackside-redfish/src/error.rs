//! The crate's one error type.

use http::StatusCode;

/// Everything that can go wrong while talking to a Redfish service.
///
/// Each message is a one-line lowercase fragment: what failed, on which value, and what
/// to do next. Messages never contain a password or a session token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The BMC address or a path from the service cannot be used as a URL.
    #[error("invalid URL {url:?}: {detail}; give an address like https://bmc.example.com")]
    InvalidUrl {
        /// The rejected URL or path.
        url: String,
        /// The reason for the rejection.
        detail: String,
    },

    /// The TCP connection could not be opened.
    #[error("cannot connect to {url}: {detail}; check the address, port and network path")]
    Connect {
        /// The URL that was requested.
        url: String,
        /// The underlying error.
        detail: String,
    },

    /// The TLS handshake failed, including a rejection by the certificate policy.
    #[error("TLS handshake failed: {detail}; check the server certificate and its pin")]
    Tls {
        /// The underlying TLS error.
        detail: String,
    },

    /// A connect or read time-out expired.
    #[error("timed out {what}; the BMC may be busy or unreachable, try again later")]
    Timeout {
        /// The operation that timed out, such as "reading GET /redfish/v1/Systems".
        what: String,
    },

    /// A response body was larger than the configured maximum.
    #[error("response body exceeds the maximum of {limit} bytes; the BMC sent more than expected")]
    TooLarge {
        /// The maximum body size in bytes.
        limit: usize,
    },

    /// The service root does not look like a Redfish service.
    #[error("{url} is not a Redfish service: it returned {detail}; check the address and port")]
    NotRedfish {
        /// The URL of the service root.
        url: String,
        /// A description of the server's actual response.
        detail: String,
    },

    /// A response body was not valid JSON.
    #[error("invalid JSON from {path}: {detail}; the BMC returned a malformed resource")]
    InvalidJson {
        /// The requested path.
        path: String,
        /// The parser's error.
        detail: String,
    },

    /// HTTP 401. Redfish services also return it when the account's role lacks a privilege,
    /// so it does not prove that the password is wrong.
    #[error(
        "the BMC rejected the credentials or the account's role{}; check the user name and password and that the account may log in over Redfish",
        suffix(message)
    )]
    Unauthorized {
        /// The service's own message, if it sent one.
        message: String,
    },

    /// HTTP 403 on a resource.
    #[error(
        "access to {path} denied{}; the account's role lacks the privilege for it",
        suffix(message)
    )]
    Forbidden {
        /// The requested path.
        path: String,
        /// The service's own message, if it sent one.
        message: String,
    },

    /// The BMC has no free session slot (iDRAC RAC0218 and similar).
    #[error(
        "the BMC reached its maximum number of user sessions{}; wait for stale sessions to expire or delete them on the BMC, then try again",
        suffix(message)
    )]
    SessionLimit {
        /// The service's own message, if it sent one.
        message: String,
    },

    /// Any other unsuccessful HTTP status.
    #[error(
        "{path} returned HTTP {status}{}{}; {}",
        id_suffix(message_id),
        suffix(message),
        status_hint(*status)
    )]
    Status {
        /// The HTTP status.
        status: StatusCode,
        /// The requested path.
        path: String,
        /// The first MessageId from the error body, if any.
        message_id: Option<String>,
        /// The first message from the error body, if any.
        message: String,
    },

    /// A transient failure persisted through every retry.
    #[error("{path} still failed after {attempts} attempts: {last}")]
    RetriesExhausted {
        /// The requested path.
        path: String,
        /// How many requests were sent.
        attempts: u32,
        /// The error of the last attempt.
        last: Box<Error>,
    },

    /// The service's login response lacks the data a session needs.
    #[error(
        "session login at {path} failed: {detail}; try Basic authentication if the BMC allows it"
    )]
    Session {
        /// The sessions collection that was used.
        path: String,
        /// The missing item.
        detail: String,
    },

    /// The session could not be deleted at logout.
    #[error(
        "the BMC session was not deleted: {detail}; it stays open until the BMC's idle time-out"
    )]
    SessionNotDeleted {
        /// The reason.
        detail: String,
    },

    /// A PATCH was rejected with 412 or 428 for every `If-Match` form the client tried.
    #[error(
        "PATCH {path} was rejected by every precondition: {tried}; read the resource again and retry, or check the BMC's ETag handling"
    )]
    PreconditionFailed {
        /// The patched resource.
        path: String,
        /// Each attempt with the `If-Match` value sent and the status returned.
        tried: String,
    },

    /// The service does not offer a value, so the request was not sent.
    #[error("{name} {:?} is not offered by {path}; choose one of: {allowed}", clip(.value))]
    NotOffered {
        /// The resource that lists the values.
        path: String,
        /// The parameter or property, such as "ResetType".
        name: String,
        /// The rejected value.
        value: String,
        /// The values the resource offers, comma-separated.
        allowed: String,
    },

    /// A name given by the user is not one of the known values.
    #[error("unknown {kind} {:?}: expected one of {expected}", clip(.name))]
    UnknownName {
        /// The kind of value, such as "reset type".
        kind: &'static str,
        /// The name as given.
        name: String,
        /// The known values, comma-separated.
        expected: String,
    },

    /// A value given by the user is malformed or out of range, so nothing was sent.
    #[error("invalid {name} {:?}: {detail}", clip(.value))]
    InvalidValue {
        /// Purpose of the value, such as "VLAN id".
        name: String,
        /// The rejected value; `[hidden]` for a password.
        value: String,
        /// Reason the value is invalid, and the allowed values.
        detail: String,
    },

    /// The resource lacks the property or action the operation needs.
    #[error("{path} does not support {detail}")]
    Unsupported {
        /// The resource.
        path: String,
        /// What is missing, such as "a blinking identify LED".
        detail: String,
    },

    /// A task or job ended in a state other than `Completed`.
    #[error(
        "task {path} ended as {state}{}; check the BMC's job queue and logs",
        suffix(message)
    )]
    TaskFailed {
        /// The task or job resource that reported the state.
        path: String,
        /// The final `TaskState` or `JobState`.
        state: String,
        /// The first message of the task, if any.
        message: String,
    },

    /// A wait for a task or a power state passed its deadline.
    #[error("{what} did not finish within {seconds} s ({detail}); check the BMC and wait longer")]
    WaitExpired {
        /// What was awaited, such as "power state On of /redfish/v1/Systems/1".
        what: String,
        /// The deadline in seconds.
        seconds: u64,
        /// The last state seen.
        detail: String,
    },

    /// The BMC lost track of a task and no job resource shows its result.
    #[error("task {path} {detail}; check the BMC's job queue for the result")]
    TaskLost {
        /// The task monitor URI.
        path: String,
        /// What happened to it.
        detail: String,
    },

    /// Any other transport failure.
    #[error("request {what} failed: {detail}")]
    Transport {
        /// The request, such as "GET /redfish/v1".
        what: String,
        /// The underlying error.
        detail: String,
    },
}

impl Error {
    /// Returns whether the failure happened in the TLS layer, for example because the
    /// certificate policy rejected the server.
    pub fn is_tls(&self) -> bool {
        match self {
            Error::Tls { .. } => true,
            Error::RetriesExhausted { last, .. } => last.is_tls(),
            _ => false,
        }
    }

    /// Returns whether the error ends a whole walk (authentication, connectivity, TLS)
    /// rather than a single resource that can be reported as unreadable.
    pub(crate) fn is_fatal(&self) -> bool {
        match self {
            Error::Connect { .. }
            | Error::Tls { .. }
            | Error::Unauthorized { .. }
            | Error::SessionLimit { .. }
            | Error::InvalidUrl { .. } => true,
            Error::RetriesExhausted { last, .. } => last.is_fatal(),
            _ => false,
        }
    }
}

fn suffix(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(" ({})", message.trim_end_matches('.'))
    }
}

fn status_hint(status: StatusCode) -> &'static str {
    match status.as_u16() {
        404 => "the BMC does not provide this resource",
        405 | 501 => "the BMC does not support this operation",
        400 | 409 | 412 | 428 => "the BMC rejected the request as sent",
        500..=599 => "the BMC reported an internal error, try again later",
        _ => "check the BMC's state and try again",
    }
}

fn id_suffix(message_id: &Option<String>) -> String {
    match message_id {
        Some(id) => format!(" {id}"),
        None => String::new(),
    }
}

/// Maximum length, in characters, of a user value repeated in an error message.
const MAX_ECHOED_CHARS: usize = 80;

/// Shortens a user value for an error message to [`MAX_ECHOED_CHARS`] characters, noting how
/// long it was, so a huge argument does not flood the terminal.
fn clip(value: &str) -> String {
    let length = value.chars().count();
    if length <= MAX_ECHOED_CHARS {
        return value.to_owned();
    }
    let start: String = value.chars().take(MAX_ECHOED_CHARS).collect();
    format!("{start}... ({length} characters)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_user_value_is_clipped_in_message() {
        let error = Error::InvalidValue {
            name: "boot target".into(),
            value: "x".repeat(100_000),
            detail: "use Pxe or Hdd".into(),
        };
        let message = error.to_string();
        assert!(message.len() < 200, "{} bytes", message.len());
        assert!(message.contains("(100000 characters)"), "{message}");
    }

    #[test]
    fn short_user_value_is_kept_whole() {
        assert_eq!(clip("Pxe"), "Pxe");
    }
}
