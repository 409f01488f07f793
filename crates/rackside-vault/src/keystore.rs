//! Where the device secret lives: the OS key store, or a user-only file.
//!
//! The device secret is 32 random bytes made once per device and user. It is
//! Argon2id's secret input (and the only input when the vault has no
//! password), so a copy of the vault folder is useless without it.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::fsutil;
use crate::secret::Secret;

/// The key store entry that contains the device secret.
pub const DEVICE_SECRET_ENTRY: &str = "device-secret";

/// The service name under which OS key store entries are kept.
pub const KEYRING_SERVICE: &str = "rackside-vault";

/// A place that keeps small secrets for this user on this device.
pub trait DeviceKeyStore: Send + Sync {
    /// The secret stored under `name`, or `None` when there is none.
    ///
    /// # Errors
    /// `KeyStore` when the store cannot be reached; `Io` for the file store.
    fn get(&self, name: &str) -> Result<Option<Secret>>;

    /// Stores `value` under `name`, replacing any previous value.
    ///
    /// # Errors
    /// As for [`DeviceKeyStore::get`].
    fn set(&self, name: &str, value: &Secret) -> Result<()>;

    /// Removes `name`; removing a missing entry is not an error.
    ///
    /// # Errors
    /// As for [`DeviceKeyStore::get`].
    fn delete(&self, name: &str) -> Result<()>;

    /// Stores `value` under `name` unless an entry exists, and returns the
    /// entry stored afterwards. The default reads, then writes, so two
    /// callers at once may both write; stores that can do better override it.
    ///
    /// # Errors
    /// As for [`DeviceKeyStore::get`].
    fn get_or_set(&self, name: &str, value: &Secret) -> Result<Secret> {
        if let Some(existing) = self.get(name)? {
            return Ok(existing);
        }
        self.set(name, value)?;
        Ok(value.clone())
    }

    /// A short human description, for `rackside vault status`.
    fn describe(&self) -> String;
}

/// The device secret from `store`, made and stored first when `create` is set.
///
/// # Errors
/// `DeviceSecretMissing` when there is none and `create` is false; the
/// store's own errors otherwise.
pub fn device_secret(store: &dyn DeviceKeyStore, create: bool) -> Result<Secret> {
    if let Some(secret) = store.get(DEVICE_SECRET_ENTRY)? {
        if secret.len() == 32 {
            return Ok(secret);
        }
        return Err(Error::KeyStore {
            store: store.describe(),
            message: "the device secret entry has the wrong length".into(),
        });
    }
    if !create {
        return Err(Error::DeviceSecretMissing {
            store: store.describe(),
        });
    }
    // Two processes creating their first vault at once must end up with the
    // same secret, or one of the vaults could never be opened again.
    let secret = store.get_or_set(DEVICE_SECRET_ENTRY, &Secret::random(32))?;
    tracing::debug!(store = %store.describe(), "made a new device secret");
    Ok(secret)
}

/// The key store this platform should use, chosen by `RACKSIDE_KEYSTORE`
/// (`os`, `keyutils`, `file`) or, when unset: the OS key store on macOS and
/// Windows, the Secret Service on Linux when built with the `secret-service`
/// feature and a session bus answers, the user-only file otherwise.
///
/// # Errors
/// `KeyStore` when `RACKSIDE_KEYSTORE` names an unknown store.
pub fn default_keystore() -> Result<Box<dyn DeviceKeyStore>> {
    let choice = std::env::var("RACKSIDE_KEYSTORE").unwrap_or_default();
    match choice.as_str() {
        "file" => Ok(Box::new(FileKeyStore::new(FileKeyStore::default_dir()?))),
        "os" | "keyutils" => Ok(Box::new(KeyringKeyStore::new(KEYRING_SERVICE))),
        "" => {
            let os = KeyringKeyStore::new(KEYRING_SERVICE);
            if os_store_is_persistent() && os.get("probe").is_ok() {
                Ok(Box::new(os))
            } else {
                Ok(Box::new(FileKeyStore::new(FileKeyStore::default_dir()?)))
            }
        }
        other => Err(Error::KeyStore {
            store: format!("RACKSIDE_KEYSTORE={other}"),
            message: "unknown key store".into(),
        }),
    }
}

/// Whether the keyring crate's default store here survives a reboot.
fn os_store_is_persistent() -> bool {
    // NOTE: kernel keyutils (the keyring default on Linux without the
    // Secret Service) lives in the session keyring and is gone at logout or
    // reboot, which would lose every vault; it is used only when asked for.
    cfg!(any(
        target_os = "macos",
        target_os = "windows",
        all(target_os = "linux", feature = "secret-service")
    ))
}

/// The OS key store through the `keyring` crate: Keychain, Credential
/// Manager, Secret Service or kernel keyutils, depending on the platform.
#[derive(Debug)]
pub struct KeyringKeyStore {
    service: String,
}

impl KeyringKeyStore {
    /// A store whose entries sit under `service`.
    pub fn new(service: &str) -> Self {
        KeyringKeyStore {
            service: service.to_owned(),
        }
    }

    fn entry(&self, name: &str) -> Result<keyring::Entry> {
        keyring::Entry::new(&self.service, name).map_err(|e| self.fail(e))
    }

    fn fail(&self, err: keyring::Error) -> Error {
        Error::KeyStore {
            store: self.describe(),
            message: err.to_string(),
        }
    }
}

impl DeviceKeyStore for KeyringKeyStore {
    fn get(&self, name: &str) -> Result<Option<Secret>> {
        match self.entry(name)?.get_secret() {
            Ok(bytes) => Ok(Some(Secret::from_bytes(bytes))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(err) => Err(self.fail(err)),
        }
    }

    fn set(&self, name: &str, value: &Secret) -> Result<()> {
        self.entry(name)?
            .set_secret(value.expose())
            .map_err(|e| self.fail(e))
    }

    fn delete(&self, name: &str) -> Result<()> {
        match self.entry(name)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(err) => Err(self.fail(err)),
        }
    }

    fn describe(&self) -> String {
        let backend = if cfg!(target_os = "macos") {
            "macOS Keychain"
        } else if cfg!(target_os = "windows") {
            "Windows Credential Manager"
        } else if cfg!(feature = "secret-service") {
            "Secret Service"
        } else {
            "Linux kernel keyutils (session keyring, lost at logout)"
        };
        format!("OS key store: {backend}, service {}", self.service)
    }
}

/// Secrets in files readable only by this user (0600 in a 0700 folder),
/// outside the vault folder, for machines without an OS key store.
#[derive(Debug)]
pub struct FileKeyStore {
    dir: PathBuf,
}

impl FileKeyStore {
    /// A store in `dir`, made with mode 0700 on first write.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileKeyStore { dir: dir.into() }
    }

    /// `$XDG_DATA_HOME/rackside/keys`, or `~/.local/share/rackside/keys`.
    ///
    /// # Errors
    /// `KeyStore` when neither `XDG_DATA_HOME` nor `HOME` is set.
    pub fn default_dir() -> Result<PathBuf> {
        let base = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
                Some(home) => PathBuf::from(home).join(".local/share"),
                None => {
                    return Err(Error::KeyStore {
                        store: "file".into(),
                        message: "neither XDG_DATA_HOME nor HOME is set".into(),
                    })
                }
            },
        };
        Ok(base.join("rackside").join("keys"))
    }

    fn path(&self, name: &str) -> Result<PathBuf> {
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(Error::KeyStore {
                store: self.describe(),
                message: format!(
                    "entry name {name:?} has characters other than letters, digits, - and _"
                ),
            });
        }
        Ok(self.dir.join(name))
    }
}

impl DeviceKeyStore for FileKeyStore {
    fn get(&self, name: &str) -> Result<Option<Secret>> {
        self.read(name).map_err(unavailable)
    }

    fn set(&self, name: &str, value: &Secret) -> Result<()> {
        let path = self.path(name)?;
        fsutil::ensure_private_dir(&self.dir).map_err(unavailable)?;
        fsutil::write_atomic(&path, value.expose()).map_err(unavailable)
    }

    fn delete(&self, name: &str) -> Result<()> {
        let path = self.path(name)?;
        match fs::remove_file(&path) {
            Ok(()) => fsutil::sync_dir(&self.dir).map_err(unavailable),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(unavailable(Error::io("remove", &path, err))),
        }
    }

    fn get_or_set(&self, name: &str, value: &Secret) -> Result<Secret> {
        let path = self.path(name)?;
        fsutil::ensure_private_dir(&self.dir).map_err(unavailable)?;
        if fsutil::write_new(&path, value.expose()).map_err(unavailable)? {
            return Ok(value.clone());
        }
        self.get(name)?.ok_or_else(|| Error::KeyStore {
            store: self.describe(),
            message: format!("entry {name} vanished while it was being created"),
        })
    }

    fn describe(&self) -> String {
        format!("a user-only file in {}", self.dir.display())
    }
}

/// Turns a file system error of the file key store into `KeyFileUnavailable`, whose message
/// names the fix. A full disk and unsafe permissions keep their own errors.
fn unavailable(error: Error) -> Error {
    match error {
        Error::Io { path, source, .. } => Error::KeyFileUnavailable { path, source },
        other => other,
    }
}

impl FileKeyStore {
    /// Reads entry `name`; `None` when it does not exist. Temporary copies of it that killed
    /// writers left are removed first.
    fn read(&self, name: &str) -> Result<Option<Secret>> {
        let path = self.path(name)?;
        fsutil::remove_stale_temporaries(&path);
        let meta = match fs::metadata(&path) {
            Ok(meta) => meta,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(Error::io("inspect", &path, err)),
        };
        fsutil::check_private(&path, &meta)?;
        let bytes = fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
        Ok(Some(Secret::from_bytes(bytes)))
    }
}

/// Secrets in process memory only: for tests and for throwaway vaults.
#[derive(Debug, Default)]
pub struct MemoryKeyStore {
    entries: Mutex<HashMap<String, Secret>>,
}

impl MemoryKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Secret>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl DeviceKeyStore for MemoryKeyStore {
    fn get(&self, name: &str) -> Result<Option<Secret>> {
        Ok(self.entries().get(name).cloned())
    }

    fn set(&self, name: &str, value: &Secret) -> Result<()> {
        self.entries().insert(name.to_owned(), value.clone());
        Ok(())
    }

    fn delete(&self, name: &str) -> Result<()> {
        self.entries().remove(name);
        Ok(())
    }

    fn describe(&self) -> String {
        "in-memory store (lost at exit)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn file_store_keeps_secrets_user_only() {
        let tmp = tempfile::tempdir().unwrap();
        let store = FileKeyStore::new(tmp.path().join("keys"));
        assert!(store.get("device-secret").unwrap().is_none());
        let secret = device_secret(&store, true).unwrap();
        assert_eq!(device_secret(&store, false).unwrap(), secret);
        let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&tmp.path().join("keys")), 0o700);
        assert_eq!(mode(&tmp.path().join("keys/device-secret")), 0o600);
        store.delete("device-secret").unwrap();
        assert!(matches!(
            device_secret(&store, false),
            Err(Error::DeviceSecretMissing { .. })
        ));
    }

    #[test]
    fn file_store_below_a_file_names_the_fix() {
        let tmp = tempfile::tempdir().unwrap();
        let blocker = tmp.path().join("not-a-folder");
        fs::write(&blocker, b"").unwrap();
        let store = FileKeyStore::new(blocker.join("keys"));

        let read = device_secret(&store, false).unwrap_err();
        let create = device_secret(&store, true).unwrap_err();

        for error in [read, create] {
            assert!(matches!(error, Error::KeyFileUnavailable { .. }), "{error}");
            assert!(error.to_string().contains("XDG_DATA_HOME"), "{error}");
        }
    }

    #[test]
    fn concurrent_device_secret_creation_agrees_on_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let secrets: Vec<Secret> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let path = path.clone();
                    scope.spawn(move || device_secret(&FileKeyStore::new(path), true).unwrap())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let stored = FileKeyStore::new(&path)
            .get(DEVICE_SECRET_ENTRY)
            .unwrap()
            .unwrap();
        for secret in &secrets {
            assert_eq!(secret, &stored);
        }
        let leftovers = std::fs::read_dir(&path).unwrap().count();
        assert_eq!(leftovers, 1, "temporary files were left behind");
    }

    #[test]
    fn file_store_refuses_a_secret_others_can_read() {
        let tmp = tempfile::tempdir().unwrap();
        let store = FileKeyStore::new(tmp.path().join("keys"));
        store.set("x", &Secret::new("v")).unwrap();
        let path = tmp.path().join("keys/x");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            store.get("x"),
            Err(Error::UnsafePermissions { .. })
        ));
    }

    #[test]
    fn file_store_refuses_entry_names_with_path_separators() {
        let store = FileKeyStore::new("/nonexistent");
        assert!(matches!(store.get("../x"), Err(Error::KeyStore { .. })));
    }
}
