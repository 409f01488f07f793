//! BMC accounts at rest: the account name, the URL and the accepted pin of each BMC that the
//! console polls, with the password sealed in a `rackside-vault` vault (SQLCipher). The
//! vault has no app password. Its key is wrapped by a device secret kept in a user-only file
//! in the console's state folder, so a copy of the vault folder alone opens nowhere.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rackside_trust::Pin;
use rackside_vault::{
    CreateOptions, FileKeyStore, KdfChoice, KdfParams, Secret, ServerRecord, Unlock, Vault,
};
use zeroize::Zeroizing;

use crate::bmc_link::BmcLogin;
use crate::error::{invalid, ConsoleError};

/// Folder of the vault inside the state folder.
pub const VAULT_DIR: &str = "accounts";
/// Folder of the device secret inside the state folder, apart from the vault.
pub const KEYS_DIR: &str = "keys";

/// A BMC account with what the console needs to reach the BMC.
#[derive(Debug)]
pub struct StoredAccount {
    /// The BMC's base URL.
    pub url: url::Url,
    /// The identity accepted when the BMC was added.
    pub pin: Pin,
    /// The account name and password.
    pub login: BmcLogin,
}

/// The encrypted account store. Calls hold a lock for one short vault operation.
pub struct AccountStore {
    dir: PathBuf,
    vault: Mutex<Vault>,
}

impl std::fmt::Debug for AccountStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl AccountStore {
    /// Opens the vault under `state_dir`, creating it and its device secret on first use.
    ///
    /// # Errors
    /// [`ConsoleError::Accounts`] when the vault cannot be created or opened, for example
    /// because the device secret file was lost or its mode is wider than 0600.
    pub fn open(state_dir: &Path) -> Result<Self, ConsoleError> {
        let dir = state_dir.join(VAULT_DIR);
        let keys = FileKeyStore::new(state_dir.join(KEYS_DIR));
        let fail = |source: rackside_vault::Error| ConsoleError::Accounts {
            path: dir.clone(),
            reason: source.to_string(),
        };
        let vault = if dir.join(rackside_vault::HEADER_FILE).exists() {
            Vault::open(&dir, Unlock::without_password(), &keys).map_err(fail)?
        } else {
            // Without an app password Argon2id never runs (the wrap key comes from the
            // device secret through HKDF), so fixed parameters skip the calibration.
            let options = CreateOptions {
                password: None,
                kdf: KdfChoice::Fixed(KdfParams::TEST),
            };
            Vault::create(&dir, options, &keys).map_err(fail)?
        };
        Ok(Self {
            dir,
            vault: Mutex::new(vault),
        })
    }

    /// Stores or replaces the account of `bmc`.
    ///
    /// # Errors
    /// [`ConsoleError::Accounts`] when the vault write fails.
    pub fn put(
        &self,
        bmc: &str,
        url: &url::Url,
        pin: &Pin,
        login: &BmcLogin,
    ) -> Result<(), ConsoleError> {
        let pin = serde_json::to_value(pin).map_err(|e| invalid("pin", e.to_string()))?;
        let record = ServerRecord {
            name: bmc.to_owned(),
            url: url.to_string(),
            user: Some(login.user.clone()),
            pin: Some(pin),
            groups: Vec::new(),
        };
        let vault = self.lock();
        vault
            .put_server(&record)
            .and_then(|()| vault.put_credential(bmc, &Secret::new(login.password.as_str())))
            .map_err(|e| self.failed(e))
    }

    /// Returns the account of `bmc`, or `None` when the console has none.
    ///
    /// # Errors
    /// [`ConsoleError::Accounts`] when the vault read fails or a record is damaged.
    pub fn get(&self, bmc: &str) -> Result<Option<StoredAccount>, ConsoleError> {
        let vault = self.lock();
        let Some(record) = vault.server(bmc).map_err(|e| self.failed(e))? else {
            return Ok(None);
        };
        let Some(password) = vault.credential(bmc).map_err(|e| self.failed(e))? else {
            return Ok(None);
        };
        drop(vault);
        let damaged = |what: &str| ConsoleError::Accounts {
            path: self.dir.clone(),
            reason: format!("the record of BMC {bmc} has {what}; remove and add the BMC again"),
        };
        let url = url::Url::parse(&record.url).map_err(|_| damaged("an invalid URL"))?;
        let pin = record
            .pin
            .and_then(|value| serde_json::from_value::<Pin>(value).ok())
            .ok_or_else(|| damaged("no valid pin"))?;
        let password = password
            .expose_str()
            .map(|text| Zeroizing::new(text.to_owned()))
            .ok_or_else(|| damaged("a password that is not UTF-8"))?;
        Ok(Some(StoredAccount {
            url,
            pin,
            login: BmcLogin {
                user: record.user.unwrap_or_default(),
                password,
            },
        }))
    }

    /// Removes the account of `bmc`; returns whether there was one.
    ///
    /// # Errors
    /// [`ConsoleError::Accounts`] when the vault write fails.
    pub fn remove(&self, bmc: &str) -> Result<bool, ConsoleError> {
        self.lock().remove_server(bmc).map_err(|e| self.failed(e))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vault> {
        self.vault
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn failed(&self, source: rackside_vault::Error) -> ConsoleError {
        ConsoleError::Accounts {
            path: self.dir.clone(),
            reason: source.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin() -> Pin {
        Pin {
            certificate_sha256: rackside_trust::Fingerprint::of(b"certificate"),
            public_key_sha256: rackside_trust::Fingerprint::of(b"public key"),
            accepted_at: chrono::DateTime::from_timestamp(1_796_000_000, 0).unwrap(),
        }
    }

    #[test]
    fn account_survives_reopen_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let url = url::Url::parse("https://127.0.0.1:8443/").unwrap();
        let login = BmcLogin {
            user: "root".into(),
            password: Zeroizing::new("calvin-calvin".into()),
        };
        AccountStore::open(dir.path())
            .unwrap()
            .put("bmc-1", &url, &pin(), &login)
            .unwrap();

        let store = AccountStore::open(dir.path()).unwrap();
        let account = store.get("bmc-1").unwrap().unwrap();
        assert_eq!(account.login.user, "root");
        assert_eq!(account.login.password.as_str(), "calvin-calvin");
        assert_eq!(account.url, url);
        assert_eq!(account.pin, pin());
        assert!(store.remove("bmc-1").unwrap());
        assert!(store.get("bmc-1").unwrap().is_none());
    }

    #[test]
    fn vault_without_key_file_fails() {
        let dir = tempfile::tempdir().unwrap();
        AccountStore::open(dir.path()).unwrap();
        std::fs::remove_dir_all(dir.path().join(KEYS_DIR)).unwrap();
        assert!(matches!(
            AccountStore::open(dir.path()),
            Err(ConsoleError::Accounts { .. })
        ));
    }
}
