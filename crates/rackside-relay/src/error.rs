//! The crate's error type.

use std::path::PathBuf;

/// Errors from the relay's state, keys, cryptography and start-up.
///
/// Request handlers never send these to a peer as they are: `server` maps each to an HTTP
/// status with a short message, and decrypt and authentication failures carry no detail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// Reading or writing a state file failed.
    #[error("failed to {action} {path}: {source}")]
    Io {
        /// The operation, such as "read" or "write".
        action: &'static str,
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A state file exists but does not parse.
    #[error("invalid state file {path}: {reason}; fix or remove it")]
    InvalidStateFile {
        /// The file.
        path: PathBuf,
        /// The problem found.
        reason: String,
    },
    /// A console name is empty, too long or contains characters outside `[A-Za-z0-9._-]`.
    #[error(
        "invalid console name {0:?}: use 1 to 64 characters from A-Z, a-z, 0-9, '.', '_', '-'"
    )]
    InvalidConsoleName(String),
    /// `key add` was called for a console that already has a key.
    #[error("console {0:?} already has an API key; revoke it first")]
    KeyExists(String),
    /// `key revoke` was called for a console without a key.
    #[error("console {0:?} has no API key")]
    KeyNotFound(String),
    /// A public key, secret or key file has the wrong form.
    #[error("invalid key material for {what}: {reason}")]
    InvalidKey {
        /// The key, such as "p256dh" or "APNs signing key".
        what: &'static str,
        /// The problem found.
        reason: String,
    },
    /// A push message body has the wrong form or fails to decrypt.
    ///
    /// The message has no detail on purpose, so that it cannot serve as a decryption oracle.
    #[error("message could not be decrypted")]
    Decrypt,
    /// A plaintext is larger than one aes128gcm record can carry.
    #[error("alert payload of {size} bytes is too large; the maximum is {max} bytes")]
    PayloadTooLarge {
        /// The size given.
        size: usize,
        /// The maximum size.
        max: usize,
    },
    /// A cryptographic primitive failed (random source, signing).
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
    /// The registration table reached one of its limits.
    #[error("registration limit of {0} reached; remove unused registrations and retry")]
    RegistryFull(usize),
    /// The relay's configuration is unusable.
    #[error("invalid relay configuration: {0}")]
    Config(String),
    /// A TLS certificate could not be generated or used.
    #[error("TLS setup failed: {0}")]
    Tls(String),
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

pub(crate) fn io_error(
    action: &'static str,
    path: &std::path::Path,
    source: std::io::Error,
) -> RelayError {
    RelayError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}
