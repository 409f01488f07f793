//! The crate's error type.

use std::path::PathBuf;

/// Errors from the console's store, configuration, relay forwarding and start-up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsoleError {
    /// The SQLite store failed.
    #[error("alert store {path} failed: {source}")]
    Store {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// Reading or writing a file failed.
    #[error("failed to {action} {path}: {source}")]
    Io {
        /// The operation, such as "read" or "create".
        action: &'static str,
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A value from a BMC, a client or the configuration is unusable.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// Which value.
        what: &'static str,
        /// The problem and the fix.
        reason: String,
    },
    /// The relay could not be reached or refused a push.
    #[error("relay {relay} failed: {reason}")]
    Relay {
        /// The relay's base URL.
        relay: String,
        /// Status or transport error.
        reason: String,
    },
    /// The encrypted store of BMC accounts failed.
    #[error("BMC account vault {path} failed: {reason}")]
    Accounts {
        /// The vault folder.
        path: PathBuf,
        /// The vault's error, which names the fix.
        reason: String,
    },
    /// TLS or relay library set-up failed.
    #[error(transparent)]
    RelayLib(#[from] rackside_relay::RelayError),
    /// The listening socket could not be opened.
    #[error("failed to listen on {addr}: {source}")]
    Bind {
        /// The address requested.
        addr: std::net::SocketAddr,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
}

pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> ConsoleError {
    ConsoleError::Invalid {
        what,
        reason: reason.into(),
    }
}
