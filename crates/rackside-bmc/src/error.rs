//! The crate's error type.

use std::path::PathBuf;

/// Errors that stop the BMC simulator from starting.
///
/// Request handling never returns these: a bad request becomes a Redfish error response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BmcError {
    /// No first user was configured, and the simulator has no built-in default password.
    #[error("no user configured: pass a first user name and password (the simulator has no default password)")]
    NoUser,
    /// A configured user name or password is unusable.
    #[error("invalid account {user:?}: {reason}")]
    InvalidAccount {
        /// The user name as given.
        user: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("failed to {action} {path}: {source}")]
    Io {
        /// What was being done, such as "read" or "write".
        action: &'static str,
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A certificate or key file could not be used.
    #[error("invalid TLS file {path}: {reason}")]
    InvalidTlsFile {
        /// The PEM file.
        path: PathBuf,
        /// Why it was rejected and what to do.
        reason: String,
    },
    /// Generating the self-signed certificate failed.
    #[error("failed to generate the self-signed certificate: {0}")]
    CertificateGeneration(String),
    /// The TLS configuration could not be built from the certificate and key.
    #[error("invalid TLS configuration: {0}")]
    Tls(String),
    /// The mockup folder is not a DMTF mockup.
    #[error("invalid mockup folder {path}: {reason}")]
    InvalidMockup {
        /// The folder given.
        path: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },
    /// Binding the listening socket failed.
    #[error("failed to listen on {addr}: {source}")]
    Bind {
        /// The requested address.
        addr: std::net::SocketAddr,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The event service's HTTPS client for subscription destinations could not be built.
    #[error("failed to start the event service: {0}")]
    EventService(String),
}
