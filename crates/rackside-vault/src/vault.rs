//! The vault: an SQLCipher database keyed with a random data key, and the
//! header that holds that key wrapped.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::fsutil;
use crate::generation::{self, GenerationRecord};
use crate::header::{self, DataKey, HeaderBody};
use crate::kdf::{self, KdfChoice, KdfParams};
use crate::keystore::{self, DeviceKeyStore};
use crate::records;
use crate::secret::Secret;

/// The header file's name inside the vault folder.
pub const HEADER_FILE: &str = "vault.header";
/// The database file's name inside the vault folder.
pub const DATABASE_FILE: &str = "vault.db";

/// The database's name while `Vault::create` builds it.
const NEW_DATABASE_FILE: &str = "vault.db.new";

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// How to create a vault.
#[derive(Debug, Default)]
pub struct CreateOptions {
    /// The app password, checked against the policy; `None` for a vault
    /// unlocked by the device secret alone.
    pub password: Option<Secret>,
    /// How to choose Argon2id parameters.
    pub kdf: KdfChoice,
}

/// How to unlock a vault.
#[derive(Debug, Default)]
pub struct Unlock {
    /// The app password, when the vault has one.
    pub password: Option<Secret>,
    /// Use the quick-unlock wrap held by the key store instead.
    pub quick: bool,
}

impl Unlock {
    /// Unlock with `password`.
    pub fn with_password(password: Secret) -> Self {
        Unlock {
            password: Some(password),
            quick: false,
        }
    }

    /// Unlock a vault that has no password.
    pub fn without_password() -> Self {
        Unlock::default()
    }

    /// Unlock through the quick-unlock wrap.
    pub fn quick() -> Self {
        Unlock {
            password: None,
            quick: true,
        }
    }
}

/// What `rackside vault status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultStatus {
    /// The vault folder.
    pub path: PathBuf,
    /// Whether an app password is set.
    pub password_set: bool,
    /// Whether quick unlock is enabled.
    pub quick_unlock: bool,
    /// The stored Argon2id parameters.
    pub kdf: KdfParams,
    /// The header generation, which grows on every header rewrite (0 for a
    /// format 1 header that the next unlock rewrites).
    #[serde(default)]
    pub header_generation: u64,
    /// Where the device secret lives.
    pub keystore: String,
    /// How many servers the vault holds.
    pub servers: u64,
    /// The database file's size in bytes.
    pub database_bytes: u64,
}

/// An unlocked vault. Dropping it (or [`Vault::close`]) closes the database
/// and wipes the keys.
pub struct Vault {
    dir: PathBuf,
    pub(crate) conn: Connection,
    data_key: DataKey,
    device_secret: Secret,
    header: HeaderBody,
    keystore: String,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("dir", &self.dir)
            .field("keys", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// Creates a vault in `dir` (made with mode 0700), with a new data key.
    ///
    /// # Errors
    /// `AlreadyExists` when the folder holds a vault file; `WeakPassword`;
    /// `InvalidParameters`; key store, file and database errors.
    pub fn create(
        dir: &Path,
        options: CreateOptions,
        keystore: &dyn DeviceKeyStore,
    ) -> Result<Vault> {
        let header_path = dir.join(HEADER_FILE);
        let db_path = dir.join(DATABASE_FILE);
        let new_db_path = dir.join(NEW_DATABASE_FILE);
        if header_path.exists() || db_path.exists() {
            return Err(Error::AlreadyExists {
                path: dir.to_path_buf(),
            });
        }
        if let Some(password) = &options.password {
            kdf::check_password(password)?;
        }

        // 1. Keys and parameters.
        let params = options.kdf.resolve()?;
        let device_secret = keystore::device_secret(keystore, true)?;
        let mut data_key = Zeroizing::new([0u8; 32]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, data_key.as_mut());
        let mut id = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        let mut salt = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut salt);
        let mut body = HeaderBody {
            version: header::VERSION,
            generation: Some(1),
            vault_id: hex::encode(id),
            kdf: params,
            salt: hex::encode(salt),
            password_set: options.password.is_some(),
            wrap: header::WrapBlob {
                nonce: String::new(),
                ciphertext: String::new(),
            },
            quick: None,
        };
        let kek = body.main_wrap_key(
            device_secret.expose(),
            options.password.as_ref().map(Secret::expose),
        )?;
        body.wrap = header::wrap(&kek, &data_key, &body.main_aad());

        // 2. The database under a temporary name, encrypted from its first
        // page. A leftover from a create that crashed before its header was
        // written holds nothing and its key is lost: it goes.
        fsutil::ensure_private_dir(dir)?;
        remove_if_present(&new_db_path)?;
        let conn = open_database(&new_db_path, &data_key, true)?;
        records::create_schema(&conn).map_err(|e| db_error(&new_db_path, "creating tables", e))?;
        conn.close()
            .map_err(|(_, e)| db_error(&new_db_path, "closing", e))?;

        // 3. The key store entry with generation 1, the header, then the
        // database under its real name. A crash before the header leaves an
        // unused entry, and a crash after it is finished by the next `open`.
        generation::save(keystore, &body.vault_id, GenerationRecord::at(1))?;
        fsutil::write_atomic(&header_path, &header::encode(&body, &data_key))?;
        finish_create(dir)?;
        let conn = open_database(&db_path, &data_key, false)?;
        tracing::debug!(dir = %dir.display(), password = body.password_set, "created vault");
        Ok(Vault {
            dir: dir.to_path_buf(),
            conn,
            data_key,
            device_secret,
            header: body,
            keystore: keystore.describe(),
        })
    }

    /// Opens the vault in `dir`.
    ///
    /// # Errors
    /// `NotFound`, `HeaderMissing`, `HeaderCorrupted`, `PlaintextDatabase`,
    /// `DeviceSecretMissing`, `HeaderRolledBack` (the header is older than
    /// the key store entry allows), `InvalidGenerationEntry`,
    /// `PasswordRequired`, `NoPasswordSet`,
    /// `QuickUnlockUnavailable`, `WrongPasswordOrDevice` (a password was part of the wrap),
    /// `HeaderOrDeviceMismatch` (no password was),
    /// `DatabaseCorrupted`, `DatabaseBusy`, and key store or file errors.
    ///
    /// A successful open also brings the key store entry up to this header,
    /// and rewrites a format 1 header as format 2 at the next generation
    /// (1, unless an earlier rewrite stopped after reserving it).
    pub fn open(dir: &Path, unlock: Unlock, keystore: &dyn DeviceKeyStore) -> Result<Vault> {
        let header_path = dir.join(HEADER_FILE);
        let db_path = dir.join(DATABASE_FILE);

        // 1. Refuse a plain SQLite file before anything else touches it, and remove the
        // half-written header files of a killed `passwd`.
        reject_plaintext(&db_path)?;
        fsutil::remove_stale_temporaries(&header_path);

        // 2. Read and parse the header.
        let bytes = match fs::read(&header_path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(if db_path.exists() {
                    Error::HeaderMissing { path: header_path }
                } else {
                    Error::NotFound {
                        path: dir.to_path_buf(),
                    }
                });
            }
            Err(err) => return Err(Error::io("read", &header_path, err)),
        };
        let parsed = header::decode(&bytes).ok_or_else(|| Error::HeaderCorrupted {
            path: header_path.clone(),
        })?;
        let version = parsed.body.version;
        if version != header::VERSION && version != header::LEGACY_VERSION {
            return Err(Error::UnsupportedVersion {
                path: header_path,
                version,
                supported: header::VERSION,
            });
        }
        if !parsed.body.is_well_formed() {
            return Err(Error::HeaderCorrupted { path: header_path });
        }
        let body = &parsed.body;

        // 3. Reject a header older than the one this device last wrote. The
        // check runs before the unwrap, so an old header gets this error with
        // the old and the new password alike. The generation is not
        // authenticated yet: a raised one fails the tag check in step 5, and a
        // lowered one only makes a valid header fail here.
        let device_secret = keystore::device_secret(keystore, false)?;
        let record = generation::load(keystore, &body.vault_id)?;
        generation::check(record, body.generation_or_zero(), &header_path)?;

        // 4. Unwrap the data key.
        let password_used = !unlock.quick && body.password_set;
        let data_key = if unlock.quick {
            let blob = body.quick.as_ref().ok_or(Error::QuickUnlockUnavailable)?;
            let quick_key = keystore
                .get(&body.quick_entry())?
                .ok_or(Error::QuickUnlockUnavailable)?;
            let kek = header::quick_wrap_key(device_secret.expose(), quick_key.expose());
            header::unwrap(&kek, blob, &body.quick_aad())
        } else {
            let password = match (&unlock.password, body.password_set) {
                (None, true) => return Err(Error::PasswordRequired),
                (Some(_), false) => return Err(Error::NoPasswordSet),
                (password, _) => password.as_ref().map(Secret::expose),
            };
            let kek = body.main_wrap_key(device_secret.expose(), password)?;
            header::unwrap(&kek, &body.wrap, &body.main_aad())
        };
        // Without a password in the wrap, a failure cannot mean a wrong password.
        let data_key = data_key.ok_or_else(|| {
            tracing::debug!(password_used, "data key unwrap failed");
            if password_used {
                Error::WrongPasswordOrDevice {
                    store: keystore.describe(),
                }
            } else {
                Error::HeaderOrDeviceMismatch {
                    path: header_path.clone(),
                    store: keystore.describe(),
                }
            }
        })?;

        // 5. The whole header must carry a tag made with this data key.
        if !parsed.verify(&data_key) {
            return Err(Error::HeaderCorrupted { path: header_path });
        }

        // 6. Open the database and check every page's authentication.
        finish_create(dir)?;
        if !db_path.exists() {
            return Err(Error::DatabaseMissing { path: db_path });
        }
        let conn = open_database(&db_path, &data_key, false)?;
        verify_database(&conn, &db_path)?;
        let mut vault = Vault {
            dir: dir.to_path_buf(),
            conn,
            data_key,
            device_secret,
            header: parsed.body,
            keystore: keystore.describe(),
        };

        // 7. Bring the key store entry up to this authenticated header.
        vault.settle_generation(record, keystore)?;
        tracing::debug!(dir = %dir.display(), quick = unlock.quick, "opened vault");
        Ok(vault)
    }

    /// Reads what the header says without unlocking, for `rackside vault
    /// status` while locked. The header's tag is not checked (that needs the
    /// data key), so `servers` is 0 and the other values are only as
    /// trustworthy as the file.
    ///
    /// # Errors
    /// `NotFound`, `HeaderMissing`, `HeaderCorrupted`, `PlaintextDatabase`.
    pub fn inspect(dir: &Path, keystore: &dyn DeviceKeyStore) -> Result<VaultStatus> {
        let header_path = dir.join(HEADER_FILE);
        let db_path = dir.join(DATABASE_FILE);
        reject_plaintext(&db_path)?;
        let bytes = match fs::read(&header_path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(if db_path.exists() {
                    Error::HeaderMissing { path: header_path }
                } else {
                    Error::NotFound {
                        path: dir.to_path_buf(),
                    }
                });
            }
            Err(err) => return Err(Error::io("read", &header_path, err)),
        };
        let parsed = header::decode(&bytes)
            .filter(|p| p.body.is_well_formed())
            .ok_or(Error::HeaderCorrupted { path: header_path })?;
        Ok(VaultStatus {
            path: dir.to_path_buf(),
            password_set: parsed.body.password_set,
            quick_unlock: parsed.body.quick.is_some(),
            kdf: parsed.body.kdf,
            header_generation: parsed.body.generation_or_zero(),
            keystore: keystore.describe(),
            servers: 0,
            database_bytes: fs::metadata(&db_path).map(|m| m.len()).unwrap_or(0),
        })
    }

    /// The vault folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sets, changes or (with `new` as `None`) removes the app password. The
    /// data key is rewrapped and the header replaced with a higher
    /// generation, so the replaced header no longer opens. The database file
    /// is not touched. Quick unlock is dropped.
    ///
    /// # Errors
    /// `PasswordRequired` or `WrongPasswordOrDevice` when `current` does not
    /// match; `NoPasswordSet` when `current` is given for a vault without
    /// one; `WeakPassword` for `new`; key store and file errors. An error
    /// from the last key store write comes after the new header is in
    /// place: the new password opens the vault, and that open finishes the
    /// key store update.
    pub fn change_password(
        &mut self,
        current: Option<&Secret>,
        new: Option<&Secret>,
        keystore: &dyn DeviceKeyStore,
    ) -> Result<()> {
        self.check_current_password(current)?;
        if let Some(new) = new {
            kdf::check_password(new)?;
        }
        self.disable_quick_unlock(keystore)?;
        let mut body = self.header.clone();
        body.password_set = new.is_some();
        self.rewrap(body, new, keystore)?;
        tracing::debug!(password = new.is_some(), "changed vault password");
        Ok(())
    }

    /// Removes the app password: the vault then unlocks with the device
    /// secret alone.
    ///
    /// # Errors
    /// As for [`Vault::change_password`].
    pub fn remove_password(
        &mut self,
        current: &Secret,
        keystore: &dyn DeviceKeyStore,
    ) -> Result<()> {
        self.change_password(Some(current), None, keystore)
    }

    /// Raises the Argon2id parameters by rewrapping the data key; no cost may
    /// go down.
    ///
    /// # Errors
    /// `InvalidParameters` when a cost would drop or is out of range; as for
    /// [`Vault::change_password`] for `password` and the writes.
    pub fn raise_parameters(
        &mut self,
        password: Option<&Secret>,
        params: KdfParams,
        keystore: &dyn DeviceKeyStore,
    ) -> Result<()> {
        params.validate()?;
        if !params.at_least(&self.header.kdf) {
            return Err(Error::InvalidParameters {
                detail: format!("{params:?} is lower than the stored {:?}", self.header.kdf),
            });
        }
        self.check_current_password(password)?;
        let mut body = self.header.clone();
        body.kdf = params;
        self.rewrap(body, password, keystore)
    }

    /// Enables quick unlock: a second wrap of the data key under a random
    /// key that the device key store holds.
    ///
    /// # Errors
    /// Key store and file errors.
    pub fn enable_quick_unlock(&mut self, keystore: &dyn DeviceKeyStore) -> Result<()> {
        let quick_key = Secret::random(32);
        let mut body = self.header.clone();
        let kek = header::quick_wrap_key(self.device_secret.expose(), quick_key.expose());
        body.quick = Some(header::wrap(&kek, &self.data_key, &body.quick_aad()));
        keystore.set(&body.quick_entry(), &quick_key)?;
        self.write_header(body, keystore)
    }

    /// Disables quick unlock: drops the second wrap and its key.
    ///
    /// # Errors
    /// Key store and file errors.
    pub fn disable_quick_unlock(&mut self, keystore: &dyn DeviceKeyStore) -> Result<()> {
        if self.header.quick.is_none() {
            return Ok(());
        }
        let mut body = self.header.clone();
        body.quick = None;
        self.write_header(body, keystore)?;
        keystore.delete(&self.header.quick_entry())
    }

    /// The vault's state for `rackside vault status`.
    ///
    /// # Errors
    /// Database errors.
    pub fn status(&self) -> Result<VaultStatus> {
        let db_path = self.dir.join(DATABASE_FILE);
        let servers: i64 = self
            .conn
            .query_row("SELECT count(*) FROM servers", [], |r| r.get(0))
            .map_err(|e| db_error(&db_path, "counting servers", e))?;
        Ok(VaultStatus {
            path: self.dir.clone(),
            password_set: self.header.password_set,
            quick_unlock: self.header.quick.is_some(),
            kdf: self.header.kdf,
            header_generation: self.header.generation_or_zero(),
            keystore: self.keystore.clone(),
            servers: u64::try_from(servers).unwrap_or(0),
            database_bytes: fs::metadata(&db_path).map(|m| m.len()).unwrap_or(0),
        })
    }

    /// Closes the database and wipes the keys.
    ///
    /// # Errors
    /// `Database` when SQLite cannot close cleanly (the keys are wiped all
    /// the same).
    pub fn close(self) -> Result<()> {
        let Vault { conn, dir, .. } = self;
        conn.close()
            .map_err(|(_, e)| db_error(&dir.join(DATABASE_FILE), "closing", e))
    }

    pub(crate) fn db_path(&self) -> PathBuf {
        self.dir.join(DATABASE_FILE)
    }

    /// The key that seals credentials inside the database.
    pub(crate) fn credential_key(&self) -> Zeroizing<[u8; 32]> {
        kdf::hkdf(
            self.data_key.as_ref(),
            b"",
            b"rackside-vault/credentials/v1",
        )
    }

    pub(crate) fn kdf_params(&self) -> KdfParams {
        self.header.kdf
    }

    pub(crate) fn password_set(&self) -> bool {
        self.header.password_set
    }

    fn check_current_password(&self, current: Option<&Secret>) -> Result<()> {
        let password = match (current, self.header.password_set) {
            (None, true) => return Err(Error::PasswordRequired),
            (Some(_), false) => return Err(Error::NoPasswordSet),
            (None, false) => return Ok(()),
            (Some(password), true) => password,
        };
        let kek = self
            .header
            .main_wrap_key(self.device_secret.expose(), Some(password.expose()))?;
        match header::unwrap(&kek, &self.header.wrap, &self.header.main_aad()) {
            Some(key) if *key == *self.data_key => Ok(()),
            _ => Err(Error::WrongPasswordOrDevice {
                store: self.keystore.clone(),
            }),
        }
    }

    fn rewrap(
        &mut self,
        mut body: HeaderBody,
        password: Option<&Secret>,
        keystore: &dyn DeviceKeyStore,
    ) -> Result<()> {
        let mut salt = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut salt);
        body.salt = hex::encode(salt);
        let kek = body.main_wrap_key(self.device_secret.expose(), password.map(Secret::expose))?;
        body.wrap = header::wrap(&kek, &self.data_key, &body.main_aad());
        self.write_header(body, keystore)
    }

    /// Replaces the header with `body` at the next generation, in the write
    /// order that `generation.rs` explains: reserve the generation in the key
    /// store, replace the header file, then commit the generation.
    ///
    /// NOTE: two processes that rewrite the header of one vault at the same
    /// time are not serialized. The last rename wins, and both may take the
    /// same generation.
    fn write_header(&mut self, mut body: HeaderBody, keystore: &dyn DeviceKeyStore) -> Result<()> {
        let vault_id = self.header.vault_id.clone();
        let current = self.header.generation_or_zero();
        let record = generation::load(keystore, &vault_id)?;
        let (reserved, next) = generation::reserve_next(current, record);

        // 1. Reserve the generation.
        generation::save(keystore, &vault_id, reserved)?;

        // 2. Replace the header.
        body.version = header::VERSION;
        body.generation = Some(next);
        let bytes = header::encode(&body, &self.data_key);
        fsutil::write_atomic(&self.dir.join(HEADER_FILE), &bytes)?;
        self.header = body;

        // 3. Commit it, which rejects the replaced header from now on. The
        // reserved number only goes up, even if another process reserved more.
        let reserved =
            generation::load(keystore, &vault_id)?.map_or(next, |record| record.reserved);
        let committed = GenerationRecord {
            committed: next,
            reserved: reserved.max(next),
        };
        generation::save(keystore, &vault_id, committed)?;
        tracing::debug!(generation = next, "replaced the vault header");
        Ok(())
    }

    /// Brings the key store entry up to the header this vault opened with,
    /// whose tag has been checked. It creates a missing entry and raises
    /// `committed` after a crash between a header rewrite and its commit. A
    /// format 1 header is rewritten at the next generation.
    fn settle_generation(
        &mut self,
        record: Option<GenerationRecord>,
        keystore: &dyn DeviceKeyStore,
    ) -> Result<()> {
        let Some(current) = self.header.generation else {
            tracing::debug!("rewriting a format 1 vault header with a generation");
            return self.write_header(self.header.clone(), keystore);
        };
        let settled = match record {
            Some(record) if record.committed >= current => return Ok(()),
            Some(record) => GenerationRecord {
                committed: current,
                reserved: record.reserved.max(current),
            },
            None => GenerationRecord::at(current),
        };
        generation::save(keystore, &self.header.vault_id, settled)
    }
}

/// Renames a created database to its real name when a create stopped
/// between writing the header and that rename.
fn finish_create(dir: &Path) -> Result<()> {
    let new_db_path = dir.join(NEW_DATABASE_FILE);
    let db_path = dir.join(DATABASE_FILE);
    if db_path.exists() || !new_db_path.exists() {
        return Ok(());
    }
    reject_plaintext(&new_db_path)?;
    fs::rename(&new_db_path, &db_path).map_err(|e| Error::io("rename", &new_db_path, e))?;
    fsutil::sync_dir(dir)
}

fn remove_if_present(path: &Path) -> Result<()> {
    for victim in [path.to_path_buf(), journal_path(path)] {
        match fs::remove_file(&victim) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(Error::io("remove", &victim, err)),
        }
    }
    Ok(())
}

fn journal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_os_string();
    name.push("-journal");
    PathBuf::from(name)
}

/// Refuses a database file that starts like a plain SQLite file.
fn reject_plaintext(db_path: &Path) -> Result<()> {
    let mut start = [0u8; 16];
    match fs::File::open(db_path) {
        Ok(mut file) => {
            if file.read_exact(&mut start).is_ok() && &start == SQLITE_MAGIC {
                return Err(Error::PlaintextDatabase {
                    path: db_path.to_path_buf(),
                });
            }
            Ok(())
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(Error::io("open", db_path, err)),
    }
}

/// Opens the SQLCipher database keyed with the raw data key. Without
/// `create`, a missing file is an error rather than a new empty database.
fn open_database(path: &Path, data_key: &[u8; 32], create: bool) -> Result<Connection> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        // SQLite would create the file with mode 0644. Its journal takes the file's mode.
        fsutil::create_private_file(path)?;
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    } else {
        match fs::File::open(path) {
            // A vault made before files were created 0600 is closed to others here.
            Ok(file) => {
                if let Err(error) = fsutil::restrict_to_owner(&file, path) {
                    tracing::debug!(%error, "failed to close the database to other users");
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::DatabaseMissing {
                    path: path.to_path_buf(),
                })
            }
            Err(err) => return Err(Error::io("open", path, err)),
        }
    }
    let conn =
        Connection::open_with_flags(path, flags).map_err(|e| db_error(path, "opening", e))?;
    // SQLCipher would print page authentication failures to stderr; the
    // vault reports them as one error instead.
    conn.execute_batch("PRAGMA cipher_log_level = NONE;")
        .map_err(|e| db_error(path, "setting up", e))?;
    // NOTE: SQLite copies this statement text internally and frees it
    // without wiping; cipher_memory_security is left off for speed.
    let pragma = Zeroizing::new(format!(
        "PRAGMA key = \"x'{}'\";",
        Zeroizing::new(hex::encode(data_key)).as_str()
    ));
    // The statement text contains the key, so SQLite's message (which may
    // quote it) is dropped.
    conn.execute_batch(&pragma).map_err(|_| Error::Database {
        context: "keying",
        message: "SQLCipher did not accept the key statement".into(),
    })?;
    conn.execute_batch(
        "PRAGMA cipher_memory_security = OFF;
         PRAGMA temp_store = MEMORY;
         PRAGMA journal_mode = DELETE;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;",
    )
    .map_err(|e| db_error(path, "setting up", e))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| db_error(path, "setting up", e))?;
    Ok(conn)
}

/// Reads every page through SQLCipher's per-page HMAC check.
fn verify_database(conn: &Connection, path: &Path) -> Result<()> {
    let mut stmt = conn
        .prepare("PRAGMA cipher_integrity_check")
        .map_err(|e| db_error(path, "checking integrity", e))?;
    let failures = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(|e| db_error(path, "checking integrity", e))?
        .count();
    if failures > 0 {
        tracing::debug!(failures, "cipher integrity check failed");
        return Err(Error::DatabaseCorrupted {
            path: path.to_path_buf(),
        });
    }
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| db_error(path, "reading the schema", e))?;
    let known = records::migrate_schema(conn, version)
        .map_err(|e| db_error(path, "migrating the schema", e))?;
    if !known {
        return Err(Error::DatabaseCorrupted {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Maps a SQLite error to the crate's error for `path`.
pub(crate) fn db_error(path: &Path, context: &'static str, err: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode;
    if let rusqlite::Error::SqliteFailure(code, _) = &err {
        match code.code {
            ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => {
                return Error::DatabaseCorrupted {
                    path: path.to_path_buf(),
                }
            }
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                return Error::DatabaseBusy {
                    path: path.to_path_buf(),
                }
            }
            ErrorCode::DiskFull => {
                return Error::DiskFull {
                    path: path.to_path_buf(),
                }
            }
            _ => {}
        }
    }
    Error::Database {
        context,
        message: err.to_string(),
    }
}

/// A server the client manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerRecord {
    /// The name the user gave it.
    pub name: String,
    /// The BMC's base URL.
    pub url: String,
    /// The BMC user name.
    pub user: Option<String>,
    /// The certificate pin, as `rackside-trust` serializes it.
    pub pin: Option<serde_json::Value>,
    /// Group names for fleet runs; empty in records from schema version 1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// A cached result (health, inventory) with the time it was fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheEntry {
    /// What was cached, such as `health` or `inventory`.
    pub kind: String,
    /// The server it belongs to.
    pub server: String,
    /// The result.
    pub body: serde_json::Value,
    /// When it was fetched.
    pub fetched_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keystore::MemoryKeyStore;

    const PASSWORD: &str = "copper kettle orbit 91 lantern";

    fn create_with_password(dir: &Path, store: &dyn DeviceKeyStore) -> Vault {
        let options = CreateOptions {
            password: Some(Secret::new(PASSWORD)),
            kdf: KdfChoice::Fixed(KdfParams::TEST),
        };
        Vault::create(dir, options, store).unwrap()
    }

    /// Rewrites the header of `vault` in format 1, as builds before the header generation
    /// wrote it, and deletes the key store entry that those builds never made. Returns the
    /// header bytes.
    fn downgrade_to_format_1(vault: &Vault, store: &dyn DeviceKeyStore) -> Vec<u8> {
        let mut body = vault.header.clone();
        body.version = header::LEGACY_VERSION;
        body.generation = None;
        let bytes = header::encode(&body, &vault.data_key);
        fs::write(vault.dir.join(HEADER_FILE), &bytes).unwrap();
        store
            .delete(&generation::generation_entry(&body.vault_id))
            .unwrap();
        bytes
    }

    #[test]
    fn format_1_header_migrates_once() {
        for quick in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("vault");
            let header_path = dir.join(HEADER_FILE);
            let store = MemoryKeyStore::new();
            let mut vault = create_with_password(&dir, &store);
            if quick {
                vault.enable_quick_unlock(&store).unwrap();
            }
            let vault_id = vault.header.vault_id.clone();
            let legacy = downgrade_to_format_1(&vault, &store);
            vault.close().unwrap();
            assert_eq!(Vault::inspect(&dir, &store).unwrap().header_generation, 0);
            let unlock = || {
                if quick {
                    Unlock::quick()
                } else {
                    Unlock::with_password(Secret::new(PASSWORD))
                }
            };

            let vault = Vault::open(&dir, unlock(), &store).unwrap();
            assert_eq!(vault.header.version, header::VERSION, "quick {quick}");
            assert_eq!(vault.header.generation, Some(1), "quick {quick}");
            vault.close().unwrap();
            assert_eq!(
                generation::load(&store, &vault_id).unwrap(),
                Some(GenerationRecord::at(1)),
                "quick {quick}"
            );
            let migrated = fs::read(&header_path).unwrap();
            Vault::open(&dir, unlock(), &store).unwrap();
            assert_eq!(fs::read(&header_path).unwrap(), migrated, "quick {quick}");

            fs::write(&header_path, &legacy).unwrap();
            let err = Vault::open(&dir, unlock(), &store).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::HeaderRolledBack {
                        found: 0,
                        expected: 1,
                        ..
                    }
                ),
                "quick {quick}: {err}"
            );
        }
    }

    #[test]
    fn interrupted_migration_opens_and_finishes() {
        // The migration stopped after reserving generation 1: the format 1 header still
        // opens, and the next open finishes the rewrite at generation 2.
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vault");
        let store = MemoryKeyStore::new();
        let vault = create_with_password(&dir, &store);
        let vault_id = vault.header.vault_id.clone();
        downgrade_to_format_1(&vault, &store);
        vault.close().unwrap();
        let stalled = GenerationRecord {
            committed: 0,
            reserved: 1,
        };
        generation::save(&store, &vault_id, stalled).unwrap();

        let vault = Vault::open(&dir, Unlock::with_password(Secret::new(PASSWORD)), &store);

        assert_eq!(vault.unwrap().header.generation, Some(2));
        assert_eq!(
            generation::load(&store, &vault_id).unwrap(),
            Some(GenerationRecord::at(2))
        );
    }
}
