//! Typed records (servers, credentials, settings, cache) and encrypted
//! export and import.

use std::fs;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::fsutil;
use crate::kdf::{self, KdfParams};
use crate::secret::Secret;
use crate::vault::{db_error, CacheEntry, ServerRecord, Vault};

/// The schema version kept in `PRAGMA user_version`. Version 2 added the
/// servers' `groups` column (a JSON array of names).
pub(crate) const SCHEMA_VERSION: i64 = 2;

const EXPORT_MAGIC: &[u8; 8] = b"RSVEXP01";
/// Maximum export file size, in bytes. The size is checked before the file is read.
pub const MAX_EXPORT_SIZE: u64 = 256 * 1024 * 1024;

pub(crate) fn create_schema(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "BEGIN;
         CREATE TABLE servers (
             name TEXT PRIMARY KEY NOT NULL,
             url TEXT NOT NULL,
             user TEXT,
             pin TEXT,
             groups TEXT NOT NULL DEFAULT '[]'
         );
         CREATE TABLE credentials (
             server TEXT PRIMARY KEY NOT NULL,
             sealed BLOB NOT NULL
         );
         CREATE TABLE settings (
             key TEXT PRIMARY KEY NOT NULL,
             value TEXT NOT NULL
         );
         CREATE TABLE cache (
             kind TEXT NOT NULL,
             server TEXT NOT NULL,
             body TEXT NOT NULL,
             fetched_at TEXT NOT NULL,
             PRIMARY KEY (kind, server)
         );
         PRAGMA user_version = 2;
         COMMIT;",
    )
}

/// Brings a database of schema `version` up to [`SCHEMA_VERSION`] in place,
/// in one transaction; returns whether the version is one this build reads.
pub(crate) fn migrate_schema(conn: &Connection, version: i64) -> rusqlite::Result<bool> {
    match version {
        SCHEMA_VERSION => Ok(true),
        1 => {
            conn.execute_batch(
                "BEGIN IMMEDIATE;
                 ALTER TABLE servers ADD COLUMN groups TEXT NOT NULL DEFAULT '[]';
                 PRAGMA user_version = 2;
                 COMMIT;",
            )?;
            tracing::debug!("migrated the vault schema from version 1 to 2");
            Ok(true)
        }
        _ => Ok(false),
    }
}

impl Vault {
    /// Every server, by name.
    ///
    /// # Errors
    /// Database errors; `InvalidRecord` for a pin that is not JSON.
    pub fn servers(&self) -> Result<Vec<ServerRecord>> {
        let path = self.db_path();
        let mut stmt = self
            .conn
            .prepare("SELECT name, url, user, pin, groups FROM servers ORDER BY name")
            .map_err(|e| db_error(&path, "listing servers", e))?;
        let rows = stmt
            .query_map([], row_to_server)
            .map_err(|e| db_error(&path, "listing servers", e))?;
        let mut out = Vec::new();
        for row in rows {
            let row = row.map_err(|e| db_error(&path, "listing servers", e))?;
            out.push(server_from_row(row)?);
        }
        Ok(out)
    }

    /// The server called `name`.
    ///
    /// # Errors
    /// As for [`Vault::servers`].
    pub fn server(&self, name: &str) -> Result<Option<ServerRecord>> {
        let path = self.db_path();
        let row = self
            .conn
            .query_row(
                "SELECT name, url, user, pin, groups FROM servers WHERE name = ?1",
                params![name],
                row_to_server,
            )
            .optional()
            .map_err(|e| db_error(&path, "reading a server", e))?;
        row.map(server_from_row).transpose()
    }

    /// Adds or replaces a server.
    ///
    /// # Errors
    /// Database errors.
    pub fn put_server(&self, server: &ServerRecord) -> Result<()> {
        let pin = server.pin.as_ref().map(|p| p.to_string());
        let groups = groups_text(&server.groups);
        self.conn
            .execute(
                "INSERT INTO servers (name, url, user, pin, groups) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(name) DO UPDATE SET url = ?2, user = ?3, pin = ?4, groups = ?5",
                params![server.name, server.url, server.user, pin, groups],
            )
            .map_err(|e| db_error(&self.db_path(), "writing a server", e))?;
        tracing::debug!(server = %server.name, "stored server");
        Ok(())
    }

    /// Removes a server with its credential and cached results; returns
    /// whether it existed.
    ///
    /// # Errors
    /// Database errors.
    pub fn remove_server(&mut self, name: &str) -> Result<bool> {
        let path = self.db_path();
        let tx = self
            .conn
            .transaction()
            .map_err(|e| db_error(&path, "removing a server", e))?;
        let removed = tx
            .execute("DELETE FROM servers WHERE name = ?1", params![name])
            .and_then(|n| {
                tx.execute("DELETE FROM credentials WHERE server = ?1", params![name])?;
                tx.execute("DELETE FROM cache WHERE server = ?1", params![name])?;
                Ok(n)
            })
            .map_err(|e| db_error(&path, "removing a server", e))?;
        tx.commit()
            .map_err(|e| db_error(&path, "removing a server", e))?;
        Ok(removed > 0)
    }

    /// The stored password for `server`.
    ///
    /// # Errors
    /// Database errors; `DatabaseCorrupted` when the sealed value does not
    /// open.
    pub fn credential(&self, server: &str) -> Result<Option<Secret>> {
        let path = self.db_path();
        let sealed: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT sealed FROM credentials WHERE server = ?1",
                params![server],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| db_error(&path, "reading a credential", e))?;
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let plain = open_sealed(&self.credential_key(), &sealed, &credential_aad(server))
            .ok_or(Error::DatabaseCorrupted { path })?;
        Ok(Some(Secret::from_bytes(plain.to_vec())))
    }

    /// Stores the password for `server`, sealed with a key from the data key
    /// and bound to the server name.
    ///
    /// # Errors
    /// Database errors.
    pub fn put_credential(&self, server: &str, password: &Secret) -> Result<()> {
        let sealed = seal(
            &self.credential_key(),
            password.expose(),
            &credential_aad(server),
        );
        self.conn
            .execute(
                "INSERT INTO credentials (server, sealed) VALUES (?1, ?2)
                 ON CONFLICT(server) DO UPDATE SET sealed = ?2",
                params![server, sealed],
            )
            .map_err(|e| db_error(&self.db_path(), "writing a credential", e))?;
        tracing::debug!(server, "stored credential");
        Ok(())
    }

    /// Removes the password for `server`; returns whether there was one.
    ///
    /// # Errors
    /// Database errors.
    pub fn remove_credential(&self, server: &str) -> Result<bool> {
        self.conn
            .execute("DELETE FROM credentials WHERE server = ?1", params![server])
            .map(|n| n > 0)
            .map_err(|e| db_error(&self.db_path(), "removing a credential", e))
    }

    /// The setting `key`.
    ///
    /// # Errors
    /// Database errors.
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT value FROM settings WHERE key = ?1",
                params![key],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| db_error(&self.db_path(), "reading a setting", e))
    }

    /// Sets `key` to `value`.
    ///
    /// # Errors
    /// Database errors.
    pub fn put_setting(&self, key: &str, value: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = ?2",
                params![key, value],
            )
            .map(|_| ())
            .map_err(|e| db_error(&self.db_path(), "writing a setting", e))
    }

    /// Removes `key`; returns whether it was set.
    ///
    /// # Errors
    /// Database errors.
    pub fn remove_setting(&self, key: &str) -> Result<bool> {
        self.conn
            .execute("DELETE FROM settings WHERE key = ?1", params![key])
            .map(|n| n > 0)
            .map_err(|e| db_error(&self.db_path(), "removing a setting", e))
    }

    /// The cached `kind` result for `server`.
    ///
    /// # Errors
    /// Database errors; `InvalidRecord` for a body or time that does not
    /// parse.
    pub fn cache(&self, kind: &str, server: &str) -> Result<Option<CacheEntry>> {
        let path = self.db_path();
        let row: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT body, fetched_at FROM cache WHERE kind = ?1 AND server = ?2",
                params![kind, server],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| db_error(&path, "reading the cache", e))?;
        let Some((body, fetched_at)) = row else {
            return Ok(None);
        };
        let invalid = |detail: String| Error::InvalidRecord {
            what: format!("cache {kind}/{server}"),
            detail,
        };
        Ok(Some(CacheEntry {
            kind: kind.to_owned(),
            server: server.to_owned(),
            body: serde_json::from_str(&body).map_err(|e| invalid(e.to_string()))?,
            fetched_at: fetched_at
                .parse()
                .map_err(|e: chrono::ParseError| invalid(e.to_string()))?,
        }))
    }

    /// Stores a cached result, replacing the previous one of its kind.
    ///
    /// # Errors
    /// Database errors.
    pub fn put_cache(&self, entry: &CacheEntry) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO cache (kind, server, body, fetched_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(kind, server) DO UPDATE SET body = ?3, fetched_at = ?4",
                params![
                    entry.kind,
                    entry.server,
                    entry.body.to_string(),
                    entry.fetched_at.to_rfc3339()
                ],
            )
            .map(|_| ())
            .map_err(|e| db_error(&self.db_path(), "writing the cache", e))
    }

    /// Writes every record, encrypted under `passphrase` alone (Argon2id at
    /// this vault's parameters, or freshly calibrated ones for a vault
    /// without a password; XChaCha20-Poly1305), to `path` with mode 0600. This is the only way to move data to another device.
    ///
    /// # Errors
    /// `WeakPassword` for the passphrase; database and file errors.
    pub fn export(&self, path: &Path, passphrase: &Secret) -> Result<()> {
        kdf::check_password(passphrase)?;
        let mut contents = ExportContents {
            servers: self.servers()?,
            credentials: Vec::new(),
            settings: Vec::new(),
            cache: Vec::new(),
        };
        for server in &contents.servers {
            if let Some(password) = self.credential(&server.name)? {
                contents.credentials.push(ExportCredential {
                    server: server.name.clone(),
                    password,
                });
            }
        }
        contents.settings = self.all_settings()?;
        contents.cache = self.all_cache()?;
        let plain =
            Zeroizing::new(
                serde_json::to_vec(&contents).map_err(|e| Error::InvalidRecord {
                    what: "export".into(),
                    detail: e.to_string(),
                })?,
            );

        let mut salt = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut salt);
        // A vault without a password may store the smallest parameters (they
        // are unused until a password is set), so its export calibrates anew.
        let kdf = if self.password_set() {
            self.kdf_params()
        } else {
            kdf::KdfChoice::default().resolve()?
        };
        let meta = ExportMeta {
            version: 1,
            kdf,
            salt: hex::encode(salt),
        };
        let meta_json = serde_json::to_vec(&meta).unwrap_or_default();
        let mut out = EXPORT_MAGIC.to_vec();
        out.extend_from_slice(&(meta_json.len() as u32).to_be_bytes());
        out.extend_from_slice(&meta_json);
        let key = kdf::derive_passphrase_key(passphrase.expose(), &salt, &meta.kdf)?;
        let sealed = seal(&key, &plain, &out);
        out.extend_from_slice(&sealed);
        fsutil::write_atomic(path, &out)?;
        tracing::debug!(path = %path.display(), "exported vault");
        Ok(())
    }

    /// Reads an export made by [`Vault::export`] and adds its records,
    /// replacing records of the same name, in one transaction.
    ///
    /// # Errors
    /// `ExportFormat`, `ExportDamaged`, `ExportDecrypt`, `InvalidParameters`,
    /// database and file errors.
    pub fn import(&mut self, path: &Path, passphrase: &Secret) -> Result<()> {
        let bytes = read_export(path)?;
        let format = || Error::ExportDamaged {
            path: path.to_path_buf(),
            detail: "the salt or the sealed records do not parse".to_owned(),
        };
        let (meta, meta_end) = parse_export_header(&bytes, path)?;
        // NOTE: the export's own parameters are trusted up to Argon2's
        // limits (4 GiB); a hostile file can make the import slow.
        let salt = hex::decode(&meta.salt).map_err(|_| format())?;
        let key = kdf::derive_passphrase_key(passphrase.expose(), &salt, &meta.kdf)?;
        let header = bytes.get(..meta_end).ok_or_else(format)?;
        let sealed = bytes.get(meta_end..).ok_or_else(format)?;
        let plain = open_sealed(&key, sealed, header).ok_or_else(|| Error::ExportDecrypt {
            path: path.to_path_buf(),
        })?;
        let contents: ExportContents =
            serde_json::from_slice(&plain).map_err(|e| Error::InvalidRecord {
                what: "export".into(),
                detail: e.to_string(),
            })?;

        let db_path = self.db_path();
        let cred_key = self.credential_key();
        let tx = self
            .conn
            .transaction()
            .map_err(|e| db_error(&db_path, "importing", e))?;
        let write = |tx: &rusqlite::Transaction<'_>| -> rusqlite::Result<()> {
            for s in &contents.servers {
                tx.execute(
                    "INSERT OR REPLACE INTO servers (name, url, user, pin, groups)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        s.name,
                        s.url,
                        s.user,
                        s.pin.as_ref().map(|p| p.to_string()),
                        groups_text(&s.groups)
                    ],
                )?;
            }
            for c in &contents.credentials {
                let sealed = seal(&cred_key, c.password.expose(), &credential_aad(&c.server));
                tx.execute(
                    "INSERT OR REPLACE INTO credentials (server, sealed) VALUES (?1, ?2)",
                    params![c.server, sealed],
                )?;
            }
            for (k, v) in &contents.settings {
                tx.execute(
                    "INSERT OR REPLACE INTO settings (key, value) VALUES (?1, ?2)",
                    params![k, v],
                )?;
            }
            for e in &contents.cache {
                tx.execute(
                    "INSERT OR REPLACE INTO cache (kind, server, body, fetched_at)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![
                        e.kind,
                        e.server,
                        e.body.to_string(),
                        e.fetched_at.to_rfc3339()
                    ],
                )?;
            }
            Ok(())
        };
        write(&tx).map_err(|e| db_error(&db_path, "importing", e))?;
        tx.commit()
            .map_err(|e| db_error(&db_path, "importing", e))?;
        tracing::debug!(path = %path.display(), servers = contents.servers.len(), "imported export");
        Ok(())
    }

    fn all_settings(&self) -> Result<Vec<(String, String)>> {
        let path = self.db_path();
        let mut stmt = self
            .conn
            .prepare("SELECT key, value FROM settings ORDER BY key")
            .map_err(|e| db_error(&path, "listing settings", e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| db_error(&path, "listing settings", e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| db_error(&path, "listing settings", e))
    }

    fn all_cache(&self) -> Result<Vec<CacheEntry>> {
        let path = self.db_path();
        let keys: Vec<(String, String)> = {
            let mut stmt = self
                .conn
                .prepare("SELECT kind, server FROM cache ORDER BY kind, server")
                .map_err(|e| db_error(&path, "listing the cache", e))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(|e| db_error(&path, "listing the cache", e))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(|e| db_error(&path, "listing the cache", e))?
        };
        let mut out = Vec::new();
        for (kind, server) in keys {
            if let Some(entry) = self.cache(&kind, &server)? {
                out.push(entry);
            }
        }
        Ok(out)
    }
}

type ServerRow = (String, String, Option<String>, Option<String>, String);

fn row_to_server(row: &rusqlite::Row<'_>) -> rusqlite::Result<ServerRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

fn groups_text(groups: &[String]) -> String {
    serde_json::to_string(groups).unwrap_or_else(|_| "[]".to_owned())
}

fn server_from_row((name, url, user, pin, groups): ServerRow) -> Result<ServerRecord> {
    let groups: Vec<String> = serde_json::from_str(&groups).map_err(|e| Error::InvalidRecord {
        what: format!("server {name} groups"),
        detail: e.to_string(),
    })?;
    let pin = match pin {
        Some(text) => Some(
            serde_json::from_str(&text).map_err(|e| Error::InvalidRecord {
                what: format!("server {name} pin"),
                detail: e.to_string(),
            })?,
        ),
        None => None,
    };
    Ok(ServerRecord {
        name,
        url,
        user,
        pin,
        groups,
    })
}

fn credential_aad(server: &str) -> Vec<u8> {
    let mut aad = b"rackside-vault/credential/v1\0".to_vec();
    aad.extend_from_slice(server.as_bytes());
    aad
}

/// `nonce || ciphertext` of `plain` under `key`.
fn seal(key: &[u8; 32], plain: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; 24];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    let cipher = XChaCha20Poly1305::new(key.into());
    let ciphertext = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad })
        .unwrap_or_default();
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ciphertext);
    out
}

fn open_sealed(key: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < 24 {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(24);
    let cipher = XChaCha20Poly1305::new(key.into());
    cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
        .map(Zeroizing::new)
}

/// Checks that `path` is a readable rackside vault export with a valid header, without
/// the passphrase, so that a wrong file is reported before anyone types one.
///
/// # Errors
/// `Io` when the file cannot be read, `ExportFormat` when it is not an export, and
/// `ExportDamaged` when it is cut short, too large or has values out of range.
pub fn check_export(path: &Path) -> Result<()> {
    let bytes = read_export(path)?;
    parse_export_header(&bytes, path).map(|_| ())
}

/// Reads an export after checking its magic and its size, so that a large file of another
/// kind is never read whole.
fn read_export(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read as _;

    let mut file = fs::File::open(path).map_err(|e| Error::io("read", path, e))?;
    let mut magic = [0u8; 8];
    if file.read_exact(&mut magic).is_err() || &magic != EXPORT_MAGIC {
        return Err(Error::ExportFormat {
            path: path.to_path_buf(),
        });
    }
    let size = file
        .metadata()
        .map_err(|e| Error::io("read", path, e))?
        .len();
    if size > MAX_EXPORT_SIZE {
        return Err(Error::ExportDamaged {
            path: path.to_path_buf(),
            detail: format!("{size} bytes is more than the maximum of {MAX_EXPORT_SIZE}"),
        });
    }
    let mut bytes = magic.to_vec();
    // The cap also holds if the file grows after the size check.
    file.take(MAX_EXPORT_SIZE)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("read", path, e))?;
    Ok(bytes)
}

/// Parses the magic and JSON metadata at the start of an export. Returns the metadata and
/// the offset where the sealed records start.
fn parse_export_header(bytes: &[u8], path: &Path) -> Result<(ExportMeta, usize)> {
    if bytes.get(..8) != Some(EXPORT_MAGIC.as_slice()) {
        return Err(Error::ExportFormat {
            path: path.to_path_buf(),
        });
    }
    let damaged = |detail: &str| Error::ExportDamaged {
        path: path.to_path_buf(),
        detail: detail.to_owned(),
    };
    let len = bytes
        .get(8..12)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| damaged("the metadata length is cut short"))? as usize;
    let meta_end = 12usize
        .checked_add(len)
        .ok_or_else(|| damaged("the metadata length is out of range"))?;
    let meta_json = bytes
        .get(12..meta_end)
        .ok_or_else(|| damaged("the metadata is cut short"))?;
    let meta: ExportMeta =
        serde_json::from_slice(meta_json).map_err(|_| damaged("the metadata does not parse"))?;
    if meta.version != 1 {
        return Err(damaged("the format version is not 1"));
    }
    if !meta.kdf.at_least(&KdfParams::TEST) || meta.kdf.validate().is_err() {
        return Err(damaged("the key derivation parameters are out of range"));
    }
    Ok((meta, meta_end))
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportMeta {
    version: u32,
    kdf: KdfParams,
    salt: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportContents {
    servers: Vec<ServerRecord>,
    credentials: Vec<ExportCredential>,
    settings: Vec<(String, String)>,
    cache: Vec<CacheEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportCredential {
    server: String,
    password: Secret,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_v1_gains_empty_groups_on_migration() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE servers (name TEXT PRIMARY KEY NOT NULL, url TEXT NOT NULL,
                                   user TEXT, pin TEXT);
             INSERT INTO servers VALUES ('r1', 'https://192.0.2.1/', 'root', NULL);
             PRAGMA user_version = 1;",
        )
        .unwrap();

        assert!(migrate_schema(&conn, 1).unwrap());

        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let row = conn
            .query_row(
                "SELECT name, url, user, pin, groups FROM servers",
                [],
                row_to_server,
            )
            .unwrap();
        let server = server_from_row(row).unwrap();
        assert_eq!(server.name, "r1");
        assert!(server.groups.is_empty());
    }

    #[test]
    fn unknown_schema_version_is_not_migrated() {
        let conn = Connection::open_in_memory().unwrap();
        assert!(!migrate_schema(&conn, 7).unwrap());
    }

    fn export_with(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.join(name);
        fs::write(&path, bytes).unwrap();
        path
    }

    fn header_with(meta: &str) -> Vec<u8> {
        let mut bytes = EXPORT_MAGIC.to_vec();
        bytes.extend_from_slice(&u32::try_from(meta.len()).unwrap().to_be_bytes());
        bytes.extend_from_slice(meta.as_bytes());
        bytes
    }

    #[test]
    fn damaged_export_is_named_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let damaged = |path: &Path| matches!(check_export(path), Err(Error::ExportDamaged { .. }));

        let other = export_with(dir.path(), "other", b"SQLite format 3\0");
        assert!(matches!(
            check_export(&other),
            Err(Error::ExportFormat { .. })
        ));

        let cut = export_with(dir.path(), "cut", &EXPORT_MAGIC[..]);
        assert!(damaged(&cut));

        let mut short = header_with(r#"{"version":1}"#);
        short.truncate(short.len() - 3);
        let short = export_with(dir.path(), "short", &short);
        assert!(damaged(&short));

        let huge_kdf = header_with(
            r#"{"version":1,"kdf":{"m_cost_kib":4000000000,"t_cost":1,"p_cost":1},"salt":"00"}"#,
        );
        let huge_kdf = export_with(dir.path(), "kdf", &huge_kdf);
        assert!(damaged(&huge_kdf));
    }

    #[test]
    fn oversized_export_is_rejected_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = export_with(dir.path(), "big", &EXPORT_MAGIC[..]);
        let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
        // A sparse file, so the test itself needs no disk space.
        file.set_len(MAX_EXPORT_SIZE + 1).unwrap();
        let error = check_export(&path).unwrap_err();
        assert!(matches!(error, Error::ExportDamaged { .. }), "{error}");
        assert!(
            error.to_string().contains("more than the maximum"),
            "{error}"
        );
    }
}
