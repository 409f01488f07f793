//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the vault, its key store or its agent.
///
/// Messages are one line: what failed, on which value, what to do next. No
/// message carries a password, a key or a credential.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `Vault::create` found a vault (or part of one) in the folder.
    #[error("a vault already exists in {path}: open it, or move the folder away before `rackside vault init`")]
    AlreadyExists {
        /// The vault folder.
        path: PathBuf,
    },
    /// The folder contains neither header nor database.
    #[error("no vault in {path}: run `rackside vault init` first")]
    NotFound {
        /// The vault folder.
        path: PathBuf,
    },
    /// The header exists but the database it unlocks does not.
    #[error("vault database {path} is missing while the header exists: restore it from a backup or import an export into a new vault")]
    DatabaseMissing {
        /// The database path.
        path: PathBuf,
    },
    /// The database exists but the header that contains its wrapped key does not.
    #[error("vault header {path} is missing while the database exists: restore the header from a backup or import an export into a new vault")]
    HeaderMissing {
        /// The header path.
        path: PathBuf,
    },
    /// The header does not parse, or its authentication tag does not match.
    #[error("vault header {path} is corrupted or was modified: restore it from a backup or import an export into a new vault")]
    HeaderCorrupted {
        /// The header path.
        path: PathBuf,
    },
    /// The header's generation is lower than the one the device key store
    /// recorded: an older header file was put back in place.
    #[error("vault header {path} is older than the one this device last wrote (generation {found}, expected {expected} or later): restore the newest vault.header from a backup, or `rackside vault import` an export into a new vault")]
    HeaderRolledBack {
        /// The header path.
        path: PathBuf,
        /// The generation in the header (0 for a format 1 header).
        found: u64,
        /// The lowest generation the key store entry accepts.
        expected: u64,
    },
    /// The key store entry with the header generation does not parse.
    #[error("header generation entry {entry} in {store} is invalid: delete that entry, so that the vault accepts its current header and records its generation again")]
    InvalidGenerationEntry {
        /// The entry name.
        entry: String,
        /// The key store that contains it.
        store: String,
    },
    /// The header was written by another format version.
    #[error("vault header {path} has format version {version}, this build reads formats up to {supported}: use a matching rackside")]
    UnsupportedVersion {
        /// The header path.
        path: PathBuf,
        /// The version found.
        version: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// A failed data key unwrap with a password: a wrong password, or another device's secret.
    #[error("cannot unlock the vault: wrong password, or the vault was made on another device (device secret from {store})")]
    WrongPasswordOrDevice {
        /// Which key store gave the device secret.
        store: String,
    },
    /// A failed data key unwrap without a password (no password set, or quick unlock): a damaged
    /// header, or another device's secret.
    #[error("cannot unlock the vault: vault header {path} damaged or made on another device (device secret from {store}): restore the header from a backup or import an export into a new vault")]
    HeaderOrDeviceMismatch {
        /// The header path.
        path: PathBuf,
        /// The key store that gave the device secret.
        store: String,
    },
    /// The key store contains no device secret, so no vault made here can exist.
    #[error("no device secret in {store}: this vault was made on another device or the key store was reset; import an export instead")]
    DeviceSecretMissing {
        /// Which key store was asked.
        store: String,
    },
    /// The vault has a password and none was given.
    #[error("this vault has a password: unlock with it")]
    PasswordRequired,
    /// A password was given but the vault has none.
    #[error(
        "this vault has no password: unlock without one, or set one with `rackside vault passwd`"
    )]
    NoPasswordSet,
    /// Quick unlock was asked for but is not enabled, or its key is gone.
    #[error("quick unlock is not enabled for this vault: unlock with the password")]
    QuickUnlockUnavailable,
    /// A plain (unencrypted) SQLite file sits where the vault database belongs.
    #[error("vault database {path} is a plain SQLite file, not an encrypted vault: refusing to open it; move it away and run `rackside vault init`")]
    PlaintextDatabase {
        /// The database path.
        path: PathBuf,
    },
    /// The database failed authentication or its integrity check.
    #[error("vault database {path} is corrupted or was modified: restore it from a backup or import an export into a new vault")]
    DatabaseCorrupted {
        /// The database path.
        path: PathBuf,
    },
    /// Another process holds the database lock.
    #[error(
        "vault database {path} is locked by another process: close the other rackside and retry"
    )]
    DatabaseBusy {
        /// The database path.
        path: PathBuf,
    },
    /// The disk is full; the failed write was rolled back.
    #[error("disk full while writing {path}: free space and retry; nothing committed was lost")]
    DiskFull {
        /// The file being written.
        path: PathBuf,
    },
    /// Any other database failure.
    #[error("vault database failed while {context}: {message}")]
    Database {
        /// What the vault was doing.
        context: &'static str,
        /// SQLite's message (never carries bound values).
        message: String,
    },
    /// A file system operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// The operation, as a verb phrase.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file or folder has permissions that let other users in.
    #[error("{path} is open to other users (mode {mode:o}) or owned by another user: remove it and retry")]
    UnsafePermissions {
        /// The file or folder.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// The OS key store refused or failed.
    #[error("device key store {store} failed: {message}; set RACKSIDE_KEYSTORE=file to keep the device secret in a user-only file")]
    KeyStore {
        /// Which key store.
        store: String,
        /// The store's message.
        message: String,
    },
    /// The file key store could not read or write its folder (a missing or unwritable folder,
    /// or a file where the folder belongs).
    #[error("device secret file {path} unavailable ({source}): make its folder writable by you, or point XDG_DATA_HOME at a folder that is")]
    KeyFileUnavailable {
        /// The file or folder that failed.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The password policy refused a password.
    #[error("password refused: {reason}")]
    WeakPassword {
        /// Why, from the length rule or zxcvbn's feedback.
        reason: String,
    },
    /// Argon2id parameters out of range, or lower than the stored ones.
    #[error("key derivation parameters refused: {detail}")]
    InvalidParameters {
        /// What is wrong.
        detail: String,
    },
    /// An export file failed authentication: wrong passphrase or modified file.
    #[error("cannot decrypt export {path}: wrong passphrase, or the file was modified")]
    ExportDecrypt {
        /// The export path.
        path: PathBuf,
    },
    /// A file is not a rackside export.
    #[error("{path} is not a rackside vault export: check the file name")]
    ExportFormat {
        /// The file path.
        path: PathBuf,
    },
    /// A file starts like a rackside export but is cut short, too large or contains values out of range.
    #[error("export {path} is damaged: {detail}")]
    ExportDamaged {
        /// The file path.
        path: PathBuf,
        /// Reason the export is damaged.
        detail: String,
    },
    /// A record read from the database or an import does not parse.
    #[error("record {what} is invalid: {detail}")]
    InvalidRecord {
        /// Which record.
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// The agent holds no unlocked vault.
    #[error("the vault is locked: run `rackside unlock`")]
    Locked,
    /// The agent could not be reached or broke the protocol.
    #[error("vault agent at {path}: {message}")]
    Agent {
        /// The socket path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The agent returned an error for a request.
    #[error("vault agent refused the request: {message}")]
    AgentRefused {
        /// The agent's one-line message.
        message: String,
    },
}

impl Error {
    /// An `Io` error for `action` on `path`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        if source.raw_os_error() == Some(28) {
            return Error::DiskFull { path: path.into() };
        }
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
