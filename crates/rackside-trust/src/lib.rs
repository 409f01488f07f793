//! Server identity for rackside's HTTPS connections to BMCs.
//!
//! Every certificate a BMC presents is classified green, yellow or red. Green
//! chains to a system or user-installed CA and matches the name. Yellow is not
//! faulty but not vouched for, typically self-signed. Red is expired, not yet
//! valid, badly signed, weak, CA-issued for another name, or malformed. A user accepts a yellow certificate
//! by pinning the SHA-256 of the certificate and of its public key; afterwards a new
//! certificate for the same key is a notice and a changed key blocks the connection.
//!
//! [`fetch_chain`] reads a chain for the user to judge without sending application
//! data, and [`client_config`] builds the rustls configuration that enforces the
//! decision on every later connection.

#![deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

mod anchors;
mod classify;
mod error;
mod fetch;
mod fingerprint;
mod pin;
mod summary;
mod tls;

pub use anchors::TrustAnchors;
pub use classify::{classify, Classification, Color, RedReason};
pub use error::TrustError;
pub use fetch::fetch_chain;
pub use fingerprint::{Fingerprint, ParseFingerprintError};
pub use pin::{compare_pin, Pin, PinMatch};
pub use summary::CertificateSummary;
pub use tls::{client_config, ServerPolicy, TrustEvent, VerifierLog};

/// Types from rustls-pki-types that appear in this crate's API.
pub use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
