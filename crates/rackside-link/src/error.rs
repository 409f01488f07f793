//! The crate's error type.

/// Everything that can go wrong on the link.
///
/// Errors caused by the peer end the session; the caller reports them and starts over.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A segment could not be decoded.
    #[error("invalid segment: {detail}; the link ends, connect again")]
    InvalidSegment {
        /// The defect, such as "empty segment".
        detail: String,
    },

    /// A data segment arrived with another sequence number than the next one expected, so it
    /// was replayed, reordered or one before it was lost.
    #[error("segment {got} arrived where {expected} was expected (replayed, reordered or lost); the link ends, connect again")]
    OutOfOrder {
        /// The sequence number that was expected.
        expected: u8,
        /// The sequence number that arrived.
        got: u8,
    },

    /// An acknowledgement named a segment that was not sent or was already acknowledged.
    #[error("acknowledgement {ack} names no segment in flight; the link ends, connect again")]
    InvalidAck {
        /// The acknowledged sequence number.
        ack: u8,
    },

    /// A reassembled message was larger than the limit, or its parts did not add up.
    #[error("invalid message of {size} bytes: {detail}; the link ends, connect again")]
    InvalidMessage {
        /// The declared or reached size in bytes.
        size: usize,
        /// The defect, such as "longer than its declared 40 bytes".
        detail: String,
    },

    /// The segment size is outside 20..=244 bytes.
    #[error("segment size {size} is outside 20..=244 bytes; choose a size in that range")]
    SegmentSize {
        /// The rejected size.
        size: usize,
    },

    /// The TLS layer failed: a handshake that broke the profile, or a record that failed
    /// authentication.
    #[error("secure channel failed: {0}; check that the profile matches the BMC's (a scan shows it) and connect again")]
    Tls(#[from] rustls::Error),

    /// The TLS configuration for a profile could not be built.
    #[error("cannot build the {profile} profile: {detail}")]
    Config {
        /// The profile name.
        profile: &'static str,
        /// The underlying error.
        detail: String,
    },

    /// The BMC rejected the login. The reply does not say whether the user name, the password
    /// or the MAC address was wrong.
    #[error("login rejected; {remaining} attempt(s) left before the link locks, check the user name and password")]
    LoginRejected {
        /// Attempts left before the lockout.
        remaining: u8,
    },

    /// The BMC is locked after too many failed logins.
    #[error("the BMC's link is locked after too many failed logins; press the activation button on the server again")]
    LockedOut,

    /// Another device has the link open.
    #[error("the BMC's link is busy with another device; wait until it disconnects and try again")]
    Busy,

    /// The BMC rejected a connection request with a reason code this version does not know.
    #[error("the BMC refused the connection (reason code {code}); press the activation button and try again")]
    Refused {
        /// The refusal code from the BMC.
        code: u8,
    },

    /// The peer sent a message that is not valid at this point of the protocol.
    #[error("unexpected {what} from the peer; the link ends, connect again")]
    Unexpected {
        /// What arrived.
        what: String,
    },

    /// The link is closed, by the peer, a previous error or a time-out.
    #[error("the link is closed; press the activation button if needed and connect again")]
    Closed,

    /// No reply arrived in time, typically because the device is out of range or the link is
    /// off.
    #[error("timed out {what}; move closer to the server (about 1 m before login) and check that the link is activated")]
    Timeout {
        /// The step that timed out, such as "waiting for the handshake".
        what: String,
    },

    /// A local I/O operation failed, such as the Unix socket or the lockout state file.
    #[error("{what} failed: {source}")]
    Io {
        /// The operation, such as "writing /var/lib/bmc/link-lockout.json".
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// An HTTP message carried over the link could not be parsed.
    #[error("invalid HTTP message over the link: {detail}")]
    Http {
        /// The defect, such as "incomplete head".
        detail: String,
    },

    /// The caller used the API out of order, such as sending a request before login.
    #[error("link used out of order: {detail}")]
    State {
        /// The call made out of order.
        detail: String,
    },
}

impl Error {
    pub(crate) fn segment(detail: impl Into<String>) -> Self {
        Error::InvalidSegment {
            detail: detail.into(),
        }
    }

    pub(crate) fn unexpected(what: impl Into<String>) -> Self {
        Error::Unexpected { what: what.into() }
    }
}
