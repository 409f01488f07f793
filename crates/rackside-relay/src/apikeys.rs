//! Console API keys: one per console, shown once at creation, stored only as SHA-256 hashes
//! in `api-keys.json` under the relay's state directory, revocable by removing the entry.
//!
//! A running relay rereads the file when its modification time or size changes, so
//! `rackside relay key add|revoke` takes effect without a restart.

use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{io_error, RelayError};
use crate::registry::{hex_decode_32, hex_encode};

/// File name of the key table inside the state directory.
pub const KEYS_FILE: &str = "api-keys.json";
const KEY_PREFIX: &str = "rsk_";

/// A console name: 1 to 64 characters from `[A-Za-z0-9._-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConsoleName(String);

impl ConsoleName {
    /// Parses a console name.
    ///
    /// # Errors
    /// [`RelayError::InvalidConsoleName`] for an empty, overlong or oddly spelt name.
    pub fn parse(name: &str) -> Result<Self, RelayError> {
        let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if name.is_empty() || name.len() > 64 || !name.chars().all(valid_char) {
            return Err(RelayError::InvalidConsoleName(
                name.chars().take(80).collect(),
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// Returns the name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ConsoleName {
    type Error = RelayError;
    fn try_from(value: String) -> Result<Self, RelayError> {
        Self::parse(&value)
    }
}

impl From<ConsoleName> for String {
    fn from(value: ConsoleName) -> Self {
        value.0
    }
}

impl fmt::Display for ConsoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A console's API key in clear text. `Debug` prints `[REDACTED]`; the bytes zeroize on drop.
#[derive(Clone)]
pub struct ApiKey(Zeroizing<String>);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([REDACTED])")
    }
}

impl ApiKey {
    /// Wraps a key given by the operator or read from the console's configuration.
    pub fn new(key: String) -> Self {
        Self(Zeroizing::new(key))
    }

    /// Returns the key text, for the `Authorization` header or for showing it once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

/// One row of `rackside relay key list`: never the key itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// The console the key belongs to.
    pub console: ConsoleName,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// First 8 hex digits of the key's SHA-256, to tell keys apart in logs and lists.
    pub fingerprint: String,
}

#[derive(Clone, Serialize, Deserialize)]
struct StoredKey {
    console: ConsoleName,
    created: u64,
    key_sha256: String,
}

#[derive(Default, Serialize, Deserialize)]
struct KeyTable {
    keys: Vec<StoredKey>,
}

/// The key table on disk plus a cache that follows the file's changes.
#[derive(Debug)]
pub struct ApiKeyStore {
    path: PathBuf,
    cache: Mutex<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    stamp: Option<(SystemTime, u64)>,
    hashes: Vec<(ConsoleName, [u8; 32])>,
}

impl ApiKeyStore {
    /// Opens the key table in `state_dir`; a missing file is an empty table.
    pub fn open(state_dir: &Path) -> Self {
        Self {
            path: state_dir.join(KEYS_FILE),
            cache: Mutex::new(Cache::default()),
        }
    }

    /// Creates a key for `console` and returns it; only its hash is written.
    ///
    /// # Errors
    /// [`RelayError::KeyExists`] when the console already has one; I/O and parse errors of the
    /// key table.
    pub fn add(&self, console: &ConsoleName) -> Result<ApiKey, RelayError> {
        let mut table = self.read_table()?;
        if table.keys.iter().any(|k| &k.console == console) {
            return Err(RelayError::KeyExists(console.to_string()));
        }
        let mut raw = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(raw.as_mut());
        let key = ApiKey::new(format!(
            "{KEY_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(raw.as_ref())
        ));
        table.keys.push(StoredKey {
            console: console.clone(),
            created: crate::jwt::unix_now(),
            key_sha256: hex_encode(&key.hash()),
        });
        self.write_table(&table)?;
        tracing::debug!(%console, "API key added");
        Ok(key)
    }

    /// Lists the consoles that hold a key.
    ///
    /// # Errors
    /// I/O and parse errors of the key table.
    pub fn list(&self) -> Result<Vec<KeyInfo>, RelayError> {
        Ok(self
            .read_table()?
            .keys
            .into_iter()
            .map(|k| KeyInfo {
                fingerprint: k.key_sha256.chars().take(8).collect(),
                console: k.console,
                created: k.created,
            })
            .collect())
    }

    /// Removes the console's key; pushes with it fail from the next request on.
    ///
    /// # Errors
    /// [`RelayError::KeyNotFound`] when the console has no key; I/O and parse errors.
    pub fn revoke(&self, console: &ConsoleName) -> Result<(), RelayError> {
        let mut table = self.read_table()?;
        let before = table.keys.len();
        table.keys.retain(|k| &k.console != console);
        if table.keys.len() == before {
            return Err(RelayError::KeyNotFound(console.to_string()));
        }
        self.write_table(&table)?;
        tracing::debug!(%console, "API key revoked");
        Ok(())
    }

    /// Returns the console that owns `presented`, or `None` for an unknown or revoked key.
    ///
    /// Every stored hash is compared in constant time, and the loop does not stop at a match.
    ///
    /// # Errors
    /// I/O and parse errors of the key table.
    pub fn verify(&self, presented: &ApiKey) -> Result<Option<ConsoleName>, RelayError> {
        let digest = presented.hash();
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.refresh(&mut cache)?;
        let mut owner = None;
        for (console, hash) in &cache.hashes {
            if bool::from(hash.ct_eq(&digest)) {
                owner = Some(console.clone());
            }
        }
        Ok(owner)
    }

    fn refresh(&self, cache: &mut Cache) -> Result<(), RelayError> {
        let stamp = match fs::metadata(&self.path) {
            Ok(meta) => Some((
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                meta.len(),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_error("read", &self.path, e)),
        };
        if stamp.is_some() && stamp == cache.stamp {
            return Ok(());
        }
        let table = self.read_table()?;
        cache.hashes = table
            .keys
            .into_iter()
            .filter_map(|k| Some((k.console, hex_decode_32(&k.key_sha256)?)))
            .collect();
        cache.stamp = stamp;
        Ok(())
    }

    fn read_table(&self) -> Result<KeyTable, RelayError> {
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| RelayError::InvalidStateFile {
                path: self.path.clone(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KeyTable::default()),
            Err(e) => Err(io_error("read", &self.path, e)),
        }
    }

    fn write_table(&self, table: &KeyTable) -> Result<(), RelayError> {
        let json = serde_json::to_vec_pretty(table).map_err(|e| RelayError::InvalidStateFile {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        write_private_atomic(&self.path, &json)
    }
}

/// Writes `bytes` to a temporary file beside `path` readable only by the owner, then renames
/// it over `path`, so readers see the old or the new table and never half of one.
pub(crate) fn write_private_atomic(path: &Path, bytes: &[u8]) -> Result<(), RelayError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
    let temp = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&temp)
        .map_err(|e| io_error("create", &temp, e))?;
    file.write_all(bytes)
        .map_err(|e| io_error("write", &temp, e))?;
    file.sync_all().map_err(|e| io_error("sync", &temp, e))?;
    fs::rename(&temp, path).map_err(|e| io_error("rename", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> ConsoleName {
        ConsoleName::parse(text).unwrap()
    }

    #[test]
    fn added_key_verifies_and_revoked_key_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = ApiKeyStore::open(dir.path());
        let key = store.add(&name("ome-1")).unwrap();
        assert_eq!(store.verify(&key).unwrap(), Some(name("ome-1")));
        store.revoke(&name("ome-1")).unwrap();
        assert_eq!(store.verify(&key).unwrap(), None);
    }

    #[test]
    fn key_file_holds_only_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let store = ApiKeyStore::open(dir.path());
        let key = store.add(&name("ome-1")).unwrap();
        let text = fs::read_to_string(dir.path().join(KEYS_FILE)).unwrap();
        assert!(!text.contains(key.expose()));
        assert!(text.contains(&hex_encode(&key.hash())));
    }

    #[test]
    fn second_key_for_console_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let store = ApiKeyStore::open(dir.path());
        store.add(&name("ome-1")).unwrap();
        assert!(matches!(
            store.add(&name("ome-1")),
            Err(RelayError::KeyExists(_))
        ));
    }

    #[test]
    fn revoking_unknown_console_fails() {
        let dir = tempfile::tempdir().unwrap();
        let store = ApiKeyStore::open(dir.path());
        assert!(matches!(
            store.revoke(&name("nobody")),
            Err(RelayError::KeyNotFound(_))
        ));
    }

    #[test]
    fn other_store_sees_revocation() {
        let dir = tempfile::tempdir().unwrap();
        let server_view = ApiKeyStore::open(dir.path());
        let admin_view = ApiKeyStore::open(dir.path());
        let key = admin_view.add(&name("ome-1")).unwrap();
        assert!(server_view.verify(&key).unwrap().is_some());
        admin_view.revoke(&name("ome-1")).unwrap();
        assert!(server_view.verify(&key).unwrap().is_none());
    }

    #[test]
    fn console_names_are_checked() {
        for bad in ["", "a b", "x/../y", &"a".repeat(65)] {
            assert!(ConsoleName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ConsoleName::parse("ome_2.lab-east").is_ok());
        assert_eq!(
            format!("{:?}", ApiKey::new("rsk_secret".into())),
            "ApiKey([REDACTED])"
        );
    }
}
