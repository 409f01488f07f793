//! Exit codes and the one place where errors become them.
//!
//! Commands return `anyhow::Error`. Errors the user can act on carry a [`Failure`] with its
//! [`ExitKind`]; library errors are mapped here, so every command reports the same way.

use std::fmt;
use std::process::ExitCode;

use rackside_redfish::Error as RedfishError;
use rackside_trust::TrustError;
use rackside_vault::Error as VaultError;

/// Documented exit codes (README, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// 1: a failure with no more specific code, or some servers of a fleet run failed.
    Failure = 1,
    /// 2: invalid command-line input or configuration (bad URL, unknown server, no password).
    Usage = 2,
    /// 3: the server's certificate is not trusted yet and was not accepted.
    NotTrusted = 3,
    /// 4: the certificate cannot be accepted: red, or its key changed since it was pinned.
    CertificateBlocked = 4,
    /// 5: the BMC rejected the credentials or the account's role.
    AuthRejected = 5,
    /// 6: the BMC could not be reached: refused, timed out, or TLS failed.
    Unreachable = 6,
    /// 7: the answer was not usable Redfish: not Redfish, invalid JSON, or too large.
    BadResponse = 7,
    /// 8: the BMC reported an error (an HTTP error status, the session limit, retries used up).
    BmcError = 8,
    /// 10: `health --fail-on` found a server at or above the given level.
    HealthThreshold = 10,
    /// 11: the vault is locked and no password was available (no agent, no terminal).
    VaultLocked = 11,
    /// 12: the vault did not open: wrong vault password, a vault from another device, or an
    /// older vault header put back.
    VaultRejected = 12,
}

impl ExitKind {
    /// The process exit code.
    pub fn code(self) -> ExitCode {
        ExitCode::from(self as u8)
    }
}

/// An error with a chosen exit code and a one-line message for the user.
#[derive(Debug)]
pub struct Failure {
    /// Which exit code the process ends with.
    pub kind: ExitKind,
    /// What failed, on which value, and what to do next.
    pub message: String,
}

impl Failure {
    /// Builds a failure of `kind` with `message`.
    pub fn new(kind: ExitKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// A usage failure (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ExitKind::Usage, message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Picks the exit code and the message for an error that ended a command.
pub fn describe(error: &anyhow::Error) -> (ExitKind, String) {
    if let Some(failure) = error.downcast_ref::<Failure>() {
        return (failure.kind, failure.message.clone());
    }
    if let Some(redfish) = error.downcast_ref::<RedfishError>() {
        return (redfish_kind(redfish), one_line(error));
    }
    if let Some(trust) = error.downcast_ref::<TrustError>() {
        return (trust_kind(trust), one_line(error));
    }
    if let Some(vault) = error.downcast_ref::<VaultError>() {
        return (vault_kind(vault), one_line(error));
    }
    if let Some(link) = error.downcast_ref::<rackside_link::Error>() {
        return (crate::via::link_kind(link), one_line(error));
    }
    if let Some(relay) = error.downcast_ref::<rackside_relay::RelayError>() {
        return (relay_kind(relay), one_line(error));
    }
    if let Some(rackside_console::ConsoleError::Invalid { .. }) =
        error.downcast_ref::<rackside_console::ConsoleError>()
    {
        return (ExitKind::Usage, one_line(error));
    }
    (ExitKind::Failure, one_line(error))
}

/// Maps a relay error to its exit code: a bad name, key, file or setting the user gave is
/// invalid input (2), anything else a failure (1).
fn relay_kind(error: &rackside_relay::RelayError) -> ExitKind {
    use rackside_relay::RelayError;
    match error {
        RelayError::InvalidStateFile { .. }
        | RelayError::InvalidConsoleName(_)
        | RelayError::KeyExists(_)
        | RelayError::KeyNotFound(_)
        | RelayError::InvalidKey { .. }
        | RelayError::Config(_) => ExitKind::Usage,
        _ => ExitKind::Failure,
    }
}

/// Maps a Redfish client error to its exit code.
pub fn redfish_kind(error: &RedfishError) -> ExitKind {
    match error {
        // A value the BMC does not offer is rejected before anything is sent.
        RedfishError::InvalidUrl { .. } | RedfishError::NotOffered { .. } => ExitKind::Usage,
        RedfishError::Connect { .. } | RedfishError::Tls { .. } | RedfishError::Timeout { .. } => {
            ExitKind::Unreachable
        }
        RedfishError::NotRedfish { .. }
        | RedfishError::InvalidJson { .. }
        | RedfishError::TooLarge { .. } => ExitKind::BadResponse,
        RedfishError::Unauthorized { .. } | RedfishError::Forbidden { .. } => {
            ExitKind::AuthRejected
        }
        RedfishError::RetriesExhausted { last, .. } => match redfish_kind(last) {
            ExitKind::Unreachable => ExitKind::Unreachable,
            _ => ExitKind::BmcError,
        },
        _ => ExitKind::BmcError,
    }
}

/// Maps a vault error to its exit code. Damage, a busy database, a full disk or an unavailable
/// key store keep the general code 1: their messages say what to do.
fn vault_kind(error: &VaultError) -> ExitKind {
    match error {
        VaultError::Locked | VaultError::PasswordRequired => ExitKind::VaultLocked,
        VaultError::WrongPasswordOrDevice { .. }
        | VaultError::HeaderOrDeviceMismatch { .. }
        | VaultError::HeaderRolledBack { .. }
        | VaultError::DeviceSecretMissing { .. }
        | VaultError::QuickUnlockUnavailable => ExitKind::VaultRejected,
        VaultError::WeakPassword { .. }
        | VaultError::NoPasswordSet
        | VaultError::AlreadyExists { .. }
        | VaultError::NotFound { .. }
        | VaultError::ExportFormat { .. }
        | VaultError::ExportDecrypt { .. }
        | VaultError::ExportDamaged { .. } => ExitKind::Usage,
        _ => ExitKind::Failure,
    }
}

fn trust_kind(error: &TrustError) -> ExitKind {
    match error {
        TrustError::InvalidPem { .. }
        | TrustError::NotACa { .. }
        | TrustError::RedCa { .. }
        | TrustError::InvalidCertificate { .. }
        | TrustError::Io { .. } => ExitKind::Usage,
        _ => ExitKind::Unreachable,
    }
}

/// Joins an error chain into one line, "outer: inner: innermost", without repeats.
fn one_line(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ").replace('\n', " ")
}
