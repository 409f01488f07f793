#![doc = include_str!("../README.md")]

mod error;
mod fsutil;
mod generation;
mod header;
mod kdf;
mod keystore;
mod records;
mod secret;
mod vault;

pub mod agent;

pub use error::{Error, Result};
pub use generation::generation_entry;
pub use kdf::{
    calibrate, check_password, KdfChoice, KdfParams, MAX_MEMORY_KIB, MIN_PASSWORD_CHARS,
    MIN_PASSWORD_SCORE,
};
pub use keystore::{
    default_keystore, device_secret, DeviceKeyStore, FileKeyStore, KeyringKeyStore, MemoryKeyStore,
    DEVICE_SECRET_ENTRY, KEYRING_SERVICE,
};
pub use records::check_export;
pub use secret::Secret;
pub use vault::{
    CacheEntry, CreateOptions, ServerRecord, Unlock, Vault, VaultStatus, DATABASE_FILE, HEADER_FILE,
};
