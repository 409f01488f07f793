//! The crate's error type.

use std::path::PathBuf;
use std::time::Duration;

/// Every failure this crate reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// The TCP connection could not be opened.
    #[error("failed to connect to {host}:{port}: {source}; check the address and that the BMC is reachable")]
    Connect {
        /// Host name or address as given.
        host: String,
        /// TCP port.
        port: u16,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// Connecting or the TLS handshake took longer than the allowed time.
    #[error("timed out after {after:?} while {stage} {host}:{port}; check the address and that the BMC is reachable from this host")]
    Timeout {
        /// Host name or address as given.
        host: String,
        /// TCP port.
        port: u16,
        /// The step under way: "connecting to" or "waiting for the TLS handshake with".
        stage: &'static str,
        /// The time limit that ran out.
        after: Duration,
    },

    /// The peer did not complete a TLS handshake far enough to present a certificate.
    #[error("TLS handshake with {host}:{port} failed before a certificate was received: {detail}; check that the port serves HTTPS")]
    Handshake {
        /// Host name or address as given.
        host: String,
        /// TCP port.
        port: u16,
        /// The failure reported by rustls or the socket.
        detail: String,
    },

    /// The server presented an empty certificate chain.
    #[error("the server presented no certificate")]
    NoCertificate,

    /// Bytes that should be a DER certificate are not one.
    #[error("invalid certificate: {detail}")]
    InvalidCertificate {
        /// The parser's error message.
        detail: String,
    },

    /// PEM input could not be decoded or contained no certificate.
    #[error("invalid PEM certificate input: {detail}")]
    InvalidPem {
        /// The problem found in the input.
        detail: String,
    },

    /// A certificate offered as a user CA is not a certificate authority.
    #[error("certificate {subject:?} is not a CA (basicConstraints CA:TRUE is missing); give the certificate of the CA that signed the BMC certificates")]
    NotACa {
        /// Subject of the rejected certificate.
        subject: String,
    },

    /// A certificate offered as a user CA is red.
    #[error("CA certificate {subject:?} cannot be trusted: {reason}")]
    RedCa {
        /// Subject of the rejected certificate.
        subject: String,
        /// The red reason and its explanation.
        reason: String,
    },

    /// A file could not be read.
    #[error("failed to read {path}: {source}", path = path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}
