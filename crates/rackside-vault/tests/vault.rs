//! Integration tests for the vault, its key hierarchy, and the agent.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rackside_vault::agent::{self, Agent, AgentConfig, ManualClock, Request, Response};
use rackside_vault::{
    device_secret, CacheEntry, CreateOptions, DeviceKeyStore, Error, KdfChoice, KdfParams,
    MemoryKeyStore, Secret, ServerRecord, Unlock, Vault, DATABASE_FILE, HEADER_FILE,
};

const PASSWORD: &str = "copper kettle orbit 91 lantern";
const CREDENTIAL: &str = "bmc-credential-Zq81-unique";

fn options(password: Option<&str>) -> CreateOptions {
    CreateOptions {
        password: password.map(Secret::new),
        kdf: KdfChoice::Fixed(KdfParams::TEST),
    }
}

fn server(n: u32) -> ServerRecord {
    ServerRecord {
        name: format!("srv-{n}"),
        url: format!("https://bmc-{n}.example"),
        user: Some("root".into()),
        pin: Some(serde_json::json!({ "sha256": format!("pin-{n}") })),
        groups: if n.is_multiple_of(2) {
            vec![format!("rack-{n}")]
        } else {
            Vec::new()
        },
    }
}

/// Creates a closed vault with a password, three servers and a credential.
fn filled_vault(dir: &Path, store: &dyn DeviceKeyStore) {
    let vault = Vault::create(dir, options(Some(PASSWORD)), store).unwrap();
    for n in 0..3 {
        vault.put_server(&server(n)).unwrap();
    }
    vault
        .put_credential("srv-1", &Secret::new(CREDENTIAL))
        .unwrap();
    vault.put_setting("theme", "dark").unwrap();
    vault.close().unwrap();
}

fn open_with_password(dir: &Path, store: &dyn DeviceKeyStore) -> rackside_vault::Result<Vault> {
    Vault::open(dir, Unlock::with_password(Secret::new(PASSWORD)), store)
}

#[test]
fn records_survive_close_and_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let store = MemoryKeyStore::new();
    filled_vault(&dir, &store);
    let mut vault = open_with_password(&dir, &store).unwrap();
    assert_eq!(
        vault.servers().unwrap(),
        vec![server(0), server(1), server(2)]
    );
    assert_eq!(
        vault.credential("srv-1").unwrap(),
        Some(Secret::new(CREDENTIAL))
    );
    assert_eq!(vault.credential("srv-0").unwrap(), None);
    assert_eq!(vault.setting("theme").unwrap().as_deref(), Some("dark"));
    let entry = CacheEntry {
        kind: "health".into(),
        server: "srv-0".into(),
        body: serde_json::json!({"Status": "OK"}),
        fetched_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
    };
    vault.put_cache(&entry).unwrap();
    assert_eq!(vault.cache("health", "srv-0").unwrap(), Some(entry));
    assert!(vault.remove_server("srv-1").unwrap());
    assert_eq!(vault.credential("srv-1").unwrap(), None);
    assert_eq!(vault.status().unwrap().servers, 2);
}

#[test]
fn wrong_password_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let store = MemoryKeyStore::new();
    filled_vault(&dir, &store);
    let err = Vault::open(
        &dir,
        Unlock::with_password(Secret::new("copper kettle orbit 92 lantern")),
        &store,
    )
    .unwrap_err();
    assert!(matches!(err, Error::WrongPasswordOrDevice { .. }), "{err}");
    assert!(err.to_string().contains("wrong password"), "{err}");
    let err = Vault::open(&dir, Unlock::without_password(), &store).unwrap_err();
    assert!(matches!(err, Error::PasswordRequired), "{err}");
    open_with_password(&dir, &store).unwrap();
}

#[test]
fn copy_on_other_device_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let store = MemoryKeyStore::new();
    filled_vault(&dir, &store);
    let other = MemoryKeyStore::new();
    let err = open_with_password(&dir, &other).unwrap_err();
    assert!(matches!(err, Error::DeviceSecretMissing { .. }), "{err}");
    device_secret(&other, true).unwrap();
    let err = open_with_password(&dir, &other).unwrap_err();
    assert!(matches!(err, Error::WrongPasswordOrDevice { .. }), "{err}");
}

#[test]
fn passwordless_copy_on_other_device_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let store = MemoryKeyStore::new();
    Vault::create(&dir, options(None), &store)
        .unwrap()
        .close()
        .unwrap();
    Vault::open(&dir, Unlock::without_password(), &store).unwrap();
    let other = MemoryKeyStore::new();
    device_secret(&other, true).unwrap();
    let err = Vault::open(&dir, Unlock::without_password(), &other).unwrap_err();
    assert!(matches!(err, Error::HeaderOrDeviceMismatch { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("damaged or made on another device"),
        "{err}"
    );
    assert!(!err.to_string().contains("password"), "{err}");
}

/// Changes one hex digit inside the main wrap's ciphertext, so the header still parses and
/// only the unwrap fails.
fn flip_wrapped_key(dir: &Path) {
    let path = dir.join(HEADER_FILE);
    let mut bytes = fs::read(&path).unwrap();
    let marker = b"\"ciphertext\":\"";
    let at = bytes
        .windows(marker.len())
        .position(|window| window == marker)
        .expect("the header contains the wrapped key")
        + marker.len()
        + 4;
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    fs::write(&path, bytes).unwrap();
}

#[test]
fn wrapped_key_flip_without_password_blames_header() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let store = MemoryKeyStore::new();
    Vault::create(&dir, options(None), &store)
        .unwrap()
        .close()
        .unwrap();
    flip_wrapped_key(&dir);

    let err = Vault::open(&dir, Unlock::without_password(), &store).unwrap_err();

    assert!(matches!(err, Error::HeaderOrDeviceMismatch { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("vault header") && message.contains("damaged or made on another device"),
        "{message}"
    );
    assert!(!message.contains("wrong password"), "{message}");
}

#[test]
fn wrapped_key_flip_with_password_blames_password() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let store = MemoryKeyStore::new();
    filled_vault(&dir, &store);
    flip_wrapped_key(&dir);

    let err = open_with_password(&dir, &store).unwrap_err();

    assert!(matches!(err, Error::WrongPasswordOrDevice { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("wrong password, or the vault was made on another device"),
        "{err}"
    );
}

fn assert_each_flip_rejected(dir: &Path, store: &dyn DeviceKeyStore, file: &str, stride: usize) {
    let path = dir.join(file);
    let original = fs::read(&path).unwrap();
    let mut checked = 0;
    for pos in (0..original.len()).step_by(stride) {
        for mask in [0x01u8, 0x80] {
            let mut bytes = original.clone();
            bytes[pos] ^= mask;
            fs::write(&path, &bytes).unwrap();
            match open_with_password(dir, store) {
                Err(
                    Error::HeaderCorrupted { .. }
                    | Error::DatabaseCorrupted { .. }
                    | Error::WrongPasswordOrDevice { .. }
                    | Error::UnsupportedVersion { .. }
                    | Error::HeaderRolledBack { .. },
                ) => {}
                Err(other) => panic!("{file} byte {pos} mask {mask:#x}: unexpected error {other}"),
                Ok(_) => panic!("{file} byte {pos} mask {mask:#x}: modified vault opened"),
            }
            checked += 1;
        }
    }
    fs::write(&path, &original).unwrap();
    open_with_password(dir, store).unwrap();
    assert!(checked > 0);
}

#[test]
fn flipped_header_byte_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let store = MemoryKeyStore::new();
    filled_vault(&dir, &store);
    assert_each_flip_rejected(&dir, &store, HEADER_FILE, 1);
}

#[test]
fn flipped_database_byte_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let store = MemoryKeyStore::new();
    filled_vault(&dir, &store);
    // Every byte of the first page's salt and start, then a stride across
    // all pages (page data, IVs and HMACs alike).
    let len = fs::metadata(dir.join(DATABASE_FILE)).unwrap().len() as usize;
    assert_each_flip_rejected(&dir, &store, DATABASE_FILE, 1.max(len / 100));
    let path = dir.join(DATABASE_FILE);
    let original = fs::read(&path).unwrap();
    for pos in (0..64).chain(original.len() - 64..original.len()) {
        let mut bytes = original.clone();
        bytes[pos] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        assert!(open_with_password(&dir, &store).is_err(), "byte {pos}");
    }
    fs::write(&path, &original).unwrap();
}

#[test]
fn missing_header_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let store = MemoryKeyStore::new();
    filled_vault(&dir, &store);
    fs::remove_file(dir.join(HEADER_FILE)).unwrap();
    let err = open_with_password(&dir, &store).unwrap_err();
    assert!(matches!(err, Error::HeaderMissing { .. }), "{err}");
    let err = open_with_password(&tmp.path().join("none"), &store).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

fn write_plain_sqlite(path: &Path) {
    // SQLCipher without a key is plain SQLite.
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE servers (name TEXT, url TEXT);
         INSERT INTO servers VALUES ('plain-srv', 'https://plaintext-record.example');",
    )
    .unwrap();
    conn.close().unwrap();
}

#[test]
fn plaintext_database_is_rejected_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let store = MemoryKeyStore::new();

    // A real vault whose database was swapped for a plain one.
    let dir = tmp.path().join("vault");
    filled_vault(&dir, &store);
    let db = dir.join(DATABASE_FILE);
    fs::remove_file(&db).unwrap();
    write_plain_sqlite(&db);
    let before = fs::read(&db).unwrap();
    assert!(before.starts_with(b"SQLite format 3\0"));
    let err = open_with_password(&dir, &store).unwrap_err();
    assert!(matches!(err, Error::PlaintextDatabase { .. }), "{err}");
    assert_eq!(fs::read(&db).unwrap(), before);

    // A folder holding only a plain database: not opened, not recreated.
    let lone = tmp.path().join("lone");
    fs::create_dir(&lone).unwrap();
    write_plain_sqlite(&lone.join(DATABASE_FILE));
    let before = fs::read(lone.join(DATABASE_FILE)).unwrap();
    let err = Vault::open(&lone, Unlock::without_password(), &store).unwrap_err();
    assert!(matches!(err, Error::PlaintextDatabase { .. }), "{err}");
    let err = Vault::create(&lone, options(None), &store).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert_eq!(fs::read(lone.join(DATABASE_FILE)).unwrap(), before);
    assert!(!lone.join(HEADER_FILE).exists());
}

#[test]
fn password_change_keeps_database_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let store = MemoryKeyStore::new();
    filled_vault(&dir, &store);
    let db_before = fs::read(dir.join(DATABASE_FILE)).unwrap();
    let header_before = fs::read(dir.join(HEADER_FILE)).unwrap();

    let new = Secret::new("violet harbor sextant 58 quill");
    let mut vault = open_with_password(&dir, &store).unwrap();
    let err = vault
        .change_password(
            Some(&Secret::new("not the password at all")),
            Some(&new),
            &store,
        )
        .unwrap_err();
    assert!(matches!(err, Error::WrongPasswordOrDevice { .. }), "{err}");
    vault
        .change_password(Some(&Secret::new(PASSWORD)), Some(&new), &store)
        .unwrap();
    vault.close().unwrap();

    assert_eq!(fs::read(dir.join(DATABASE_FILE)).unwrap(), db_before);
    assert_ne!(fs::read(dir.join(HEADER_FILE)).unwrap(), header_before);
    assert!(open_with_password(&dir, &store).is_err());
    let mut vault = Vault::open(&dir, Unlock::with_password(new.clone()), &store).unwrap();
    assert_eq!(vault.servers().unwrap().len(), 3);
    assert_eq!(
        vault.credential("srv-1").unwrap(),
        Some(Secret::new(CREDENTIAL))
    );

    // Removing the password and raising the parameters rewrap only, too.
    vault.remove_password(&new, &store).unwrap();
    let raised = KdfParams {
        m_cost_kib: 2048,
        t_cost: 2,
        p_cost: 1,
    };
    assert!(matches!(
        vault.raise_parameters(
            None,
            KdfParams {
                m_cost_kib: 512,
                t_cost: 1,
                p_cost: 1
            },
            &store
        ),
        Err(Error::InvalidParameters { .. })
    ));
    vault.raise_parameters(None, raised, &store).unwrap();
    vault.close().unwrap();
    assert_eq!(fs::read(dir.join(DATABASE_FILE)).unwrap(), db_before);
    let vault = Vault::open(&dir, Unlock::without_password(), &store).unwrap();
    assert_eq!(vault.status().unwrap().kdf, raised);
    assert_eq!(
        vault.credential("srv-1").unwrap(),
        Some(Secret::new(CREDENTIAL))
    );
}

#[test]
fn weak_password_is_rejected_with_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let store = MemoryKeyStore::new();
    let err = Vault::create(
        &tmp.path().join("v"),
        options(Some("password12345")),
        &store,
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::WeakPassword { .. }), "{text}");
    assert!(text.contains("score"), "{text}");
    assert!(!text.contains("password12345"), "{text}");
    assert!(!tmp.path().join("v").exists());
}

#[test]
fn quick_unlock_ends_on_password_change() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let store = MemoryKeyStore::new();
    filled_vault(&dir, &store);
    let err = Vault::open(&dir, Unlock::quick(), &store).unwrap_err();
    assert!(matches!(err, Error::QuickUnlockUnavailable), "{err}");

    assert!(!Vault::inspect(&dir, &store).unwrap().quick_unlock);
    let mut vault = open_with_password(&dir, &store).unwrap();
    vault.enable_quick_unlock(&store).unwrap();
    assert!(Vault::inspect(&dir, &store).unwrap().quick_unlock);
    assert!(vault.status().unwrap().quick_unlock);
    vault.close().unwrap();
    let vault = Vault::open(&dir, Unlock::quick(), &store).unwrap();
    assert_eq!(vault.servers().unwrap().len(), 3);
    drop(vault);

    let mut vault = open_with_password(&dir, &store).unwrap();
    let new = Secret::new("violet harbor sextant 58 quill");
    vault
        .change_password(Some(&Secret::new(PASSWORD)), Some(&new), &store)
        .unwrap();
    assert!(!vault.status().unwrap().quick_unlock);
    drop(vault);
    assert!(matches!(
        Vault::open(&dir, Unlock::quick(), &store),
        Err(Error::QuickUnlockUnavailable)
    ));
}

#[test]
fn export_moves_records_between_devices() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let store = MemoryKeyStore::new();
    filled_vault(&dir, &store);
    let export = tmp.path().join("backup.rsv");
    let passphrase = Secret::new("granite meadow pulley 73 ember");
    open_with_password(&dir, &store)
        .unwrap()
        .export(&export, &passphrase)
        .unwrap();
    let bytes = fs::read(&export).unwrap();
    assert!(!contains(&bytes, CREDENTIAL.as_bytes()));
    assert!(!contains(&bytes, b"bmc-1.example"));

    let other = MemoryKeyStore::new();
    let mut moved = Vault::create(&tmp.path().join("moved"), options(None), &other).unwrap();
    let err = moved
        .import(&export, &Secret::new("granite meadow pulley 74 ember"))
        .unwrap_err();
    assert!(matches!(err, Error::ExportDecrypt { .. }), "{err}");
    moved.import(&export, &passphrase).unwrap();
    assert_eq!(moved.servers().unwrap().len(), 3);
    assert_eq!(
        moved.credential("srv-1").unwrap(),
        Some(Secret::new(CREDENTIAL))
    );
    assert_eq!(moved.setting("theme").unwrap().as_deref(), Some("dark"));
}

const NEW_PASSWORD: &str = "violet harbor sextant 58 quill";
const THIRD_PASSWORD: &str = "amber quarry lattice 27 falcon";

fn unlock_with(password: &str) -> Unlock {
    Unlock::with_password(Secret::new(password))
}

/// Reads the generation in the header file without unlocking.
fn header_generation(dir: &Path, store: &dyn DeviceKeyStore) -> u64 {
    Vault::inspect(dir, store).unwrap().header_generation
}

/// Reads the `vault_id` field of the header file.
fn vault_id(dir: &Path) -> String {
    let bytes = fs::read(dir.join(HEADER_FILE)).unwrap();
    let len = u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
    let body: serde_json::Value = serde_json::from_slice(&bytes[12..12 + len]).unwrap();
    body["vault_id"].as_str().unwrap().to_owned()
}

fn assert_rolled_back(result: rackside_vault::Result<Vault>) {
    let err = result.unwrap_err();
    assert!(matches!(err, Error::HeaderRolledBack { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("older than the one this device last wrote"),
        "{err}"
    );
    assert!(!err.to_string().contains('\n'), "{err}");
}

#[test]
fn header_before_password_change_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let store = MemoryKeyStore::new();
    filled_vault(&dir, &store);
    let old_header = fs::read(dir.join(HEADER_FILE)).unwrap();
    let mut vault = open_with_password(&dir, &store).unwrap();
    vault
        .change_password(
            Some(&Secret::new(PASSWORD)),
            Some(&Secret::new(NEW_PASSWORD)),
            &store,
        )
        .unwrap();
    vault.close().unwrap();
    let new_header = fs::read(dir.join(HEADER_FILE)).unwrap();
    assert_eq!(header_generation(&dir, &store), 2);

    fs::write(dir.join(HEADER_FILE), &old_header).unwrap();

    assert_rolled_back(open_with_password(&dir, &store));
    assert_rolled_back(Vault::open(&dir, unlock_with(NEW_PASSWORD), &store));
    assert_rolled_back(Vault::open(&dir, Unlock::without_password(), &store));
    fs::write(dir.join(HEADER_FILE), &new_header).unwrap();
    let vault = Vault::open(&dir, unlock_with(NEW_PASSWORD), &store).unwrap();
    assert_eq!(vault.servers().unwrap().len(), 3);
}

#[test]
fn password_header_after_removal_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let store = MemoryKeyStore::new();
    filled_vault(&dir, &store);
    let password_header = fs::read(dir.join(HEADER_FILE)).unwrap();
    let mut vault = open_with_password(&dir, &store).unwrap();
    vault
        .remove_password(&Secret::new(PASSWORD), &store)
        .unwrap();
    vault.close().unwrap();

    fs::write(dir.join(HEADER_FILE), &password_header).unwrap();

    assert_rolled_back(open_with_password(&dir, &store));
    assert_rolled_back(Vault::open(&dir, Unlock::without_password(), &store));
}

#[test]
fn passwordless_header_after_password_set_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let store = MemoryKeyStore::new();
    let mut vault = Vault::create(&dir, options(None), &store).unwrap();
    vault.put_server(&server(0)).unwrap();
    let open_header = fs::read(dir.join(HEADER_FILE)).unwrap();
    vault
        .change_password(None, Some(&Secret::new(PASSWORD)), &store)
        .unwrap();
    vault.close().unwrap();

    fs::write(dir.join(HEADER_FILE), &open_header).unwrap();

    assert_rolled_back(Vault::open(&dir, Unlock::without_password(), &store));
    assert_rolled_back(open_with_password(&dir, &store));
}

/// Where a [`FaultyKeyStore`] stops a header generation write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The write fails and stores nothing, as if the process died just before it.
    Before,
    /// The write stores its value, then fails, as if the process died just after it.
    After,
}

/// A memory key store that fails its `nth` write of a header generation entry (counted from
/// 1) at `fault`, so a caller stops there as a crash would stop it.
struct FaultyKeyStore {
    inner: MemoryKeyStore,
    armed: Mutex<Option<(usize, Fault)>>,
    generation_writes: Mutex<usize>,
}

impl FaultyKeyStore {
    fn new() -> Self {
        FaultyKeyStore {
            inner: MemoryKeyStore::new(),
            armed: Mutex::new(None),
            generation_writes: Mutex::new(0),
        }
    }

    fn arm(&self, nth: usize, fault: Fault) {
        *self.generation_writes.lock().unwrap() = 0;
        *self.armed.lock().unwrap() = Some((nth, fault));
    }

    fn disarm(&self) {
        *self.armed.lock().unwrap() = None;
    }
}

impl DeviceKeyStore for FaultyKeyStore {
    fn get(&self, name: &str) -> rackside_vault::Result<Option<Secret>> {
        self.inner.get(name)
    }

    fn set(&self, name: &str, value: &Secret) -> rackside_vault::Result<()> {
        let fault = if name.starts_with("header-generation-") {
            let mut writes = self.generation_writes.lock().unwrap();
            *writes += 1;
            match *self.armed.lock().unwrap() {
                Some((nth, fault)) if nth == *writes => Some(fault),
                _ => None,
            }
        } else {
            None
        };
        let crash = || Error::KeyStore {
            store: self.describe(),
            message: "simulated crash".into(),
        };
        match fault {
            Some(Fault::Before) => Err(crash()),
            Some(Fault::After) => {
                self.inner.set(name, value)?;
                Err(crash())
            }
            None => self.inner.set(name, value),
        }
    }

    fn delete(&self, name: &str) -> rackside_vault::Result<()> {
        self.inner.delete(name)
    }

    fn describe(&self) -> String {
        "faulty test store".into()
    }
}

#[test]
fn crash_during_password_change_never_locks_out() {
    // A password change writes the key store entry (reserve), the header, then the entry
    // again (commit). Each case stops at one write: which password opens afterwards, and
    // which generation the next change takes.
    let cases = [
        (1, Fault::Before, PASSWORD, 2),
        (1, Fault::After, PASSWORD, 3),
        (2, Fault::Before, NEW_PASSWORD, 3),
        (2, Fault::After, NEW_PASSWORD, 3),
    ];
    for (nth, fault, survivor, next_generation) in cases {
        let case = format!("write {nth}, {fault:?}");
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vault");
        let store = FaultyKeyStore::new();
        filled_vault(&dir, &store);
        let old_header = fs::read(dir.join(HEADER_FILE)).unwrap();

        let mut vault = open_with_password(&dir, &store).unwrap();
        store.arm(nth, fault);
        let crashed = vault.change_password(
            Some(&Secret::new(PASSWORD)),
            Some(&Secret::new(NEW_PASSWORD)),
            &store,
        );
        drop(vault);
        store.disarm();
        assert!(crashed.is_err(), "{case}: the change did not stop");
        let crashed_header = fs::read(dir.join(HEADER_FILE)).unwrap();

        // Exactly one of the two passwords opens, and the other is a wrong password.
        let (loser, winner) = if survivor == PASSWORD {
            (NEW_PASSWORD, PASSWORD)
        } else {
            (PASSWORD, NEW_PASSWORD)
        };
        let err = Vault::open(&dir, unlock_with(loser), &store).unwrap_err();
        assert!(
            matches!(err, Error::WrongPasswordOrDevice { .. }),
            "{case}: {err}"
        );
        let mut vault = Vault::open(&dir, unlock_with(winner), &store)
            .unwrap_or_else(|err| panic!("{case}: locked out: {err}"));
        assert_eq!(vault.servers().unwrap().len(), 3, "{case}");

        // A later change finishes; every header before it is rejected.
        vault
            .change_password(
                Some(&Secret::new(winner)),
                Some(&Secret::new(THIRD_PASSWORD)),
                &store,
            )
            .unwrap();
        vault.close().unwrap();
        assert_eq!(header_generation(&dir, &store), next_generation, "{case}");
        let current_header = fs::read(dir.join(HEADER_FILE)).unwrap();
        for (label, stale) in [("old", &old_header), ("crashed", &crashed_header)] {
            fs::write(dir.join(HEADER_FILE), stale).unwrap();
            for password in [PASSWORD, NEW_PASSWORD, THIRD_PASSWORD] {
                let err = Vault::open(&dir, unlock_with(password), &store).unwrap_err();
                assert!(
                    matches!(err, Error::HeaderRolledBack { .. }),
                    "{case}: {label} header with {password:?}: {err}"
                );
            }
        }
        fs::write(dir.join(HEADER_FILE), &current_header).unwrap();
        Vault::open(&dir, unlock_with(THIRD_PASSWORD), &store).unwrap();
    }
}

#[test]
fn open_after_header_written_commits_generation() {
    // A change that stopped after the header rename, before its commit: the first open with
    // the new password commits the generation, so the old header is rejected from then on.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let store = FaultyKeyStore::new();
    filled_vault(&dir, &store);
    let old_header = fs::read(dir.join(HEADER_FILE)).unwrap();
    let mut vault = open_with_password(&dir, &store).unwrap();
    store.arm(2, Fault::Before);
    vault
        .change_password(
            Some(&Secret::new(PASSWORD)),
            Some(&Secret::new(NEW_PASSWORD)),
            &store,
        )
        .unwrap_err();
    drop(vault);
    store.disarm();
    let new_header = fs::read(dir.join(HEADER_FILE)).unwrap();

    Vault::open(&dir, unlock_with(NEW_PASSWORD), &store).unwrap();
    fs::write(dir.join(HEADER_FILE), &old_header).unwrap();

    assert_rolled_back(open_with_password(&dir, &store));
    fs::write(dir.join(HEADER_FILE), &new_header).unwrap();
    Vault::open(&dir, unlock_with(NEW_PASSWORD), &store).unwrap();
}

#[test]
fn lost_generation_entry_is_recreated() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let store = MemoryKeyStore::new();
    filled_vault(&dir, &store);
    let old_header = fs::read(dir.join(HEADER_FILE)).unwrap();
    let mut vault = open_with_password(&dir, &store).unwrap();
    vault
        .change_password(
            Some(&Secret::new(PASSWORD)),
            Some(&Secret::new(NEW_PASSWORD)),
            &store,
        )
        .unwrap();
    vault.close().unwrap();
    let entry = rackside_vault::generation_entry(&vault_id(&dir));
    assert!(store.get(&entry).unwrap().is_some());

    // An entry that does not parse is named, with the fix.
    store.set(&entry, &Secret::new("not a generation")).unwrap();
    let err = Vault::open(&dir, unlock_with(NEW_PASSWORD), &store).unwrap_err();
    assert!(matches!(err, Error::InvalidGenerationEntry { .. }), "{err}");
    assert!(err.to_string().contains(&entry), "{err}");
    assert!(err.to_string().contains("delete that entry"), "{err}");

    // Without the entry, the header in place is trusted and its generation stored again.
    store.delete(&entry).unwrap();
    Vault::open(&dir, unlock_with(NEW_PASSWORD), &store).unwrap();
    assert!(store.get(&entry).unwrap().is_some());
    fs::write(dir.join(HEADER_FILE), &old_header).unwrap();
    assert_rolled_back(open_with_password(&dir, &store));

    // A cleared key store loses the device secret too, and the error reports that first.
    let cleared = MemoryKeyStore::new();
    let err = open_with_password(&dir, &cleared).unwrap_err();
    assert!(matches!(err, Error::DeviceSecretMissing { .. }), "{err}");
    assert!(err.to_string().contains("import an export"), "{err}");
}

#[test]
fn import_on_new_device_starts_own_generation() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let store = MemoryKeyStore::new();
    filled_vault(&dir, &store);
    let mut vault = open_with_password(&dir, &store).unwrap();
    vault
        .change_password(
            Some(&Secret::new(PASSWORD)),
            Some(&Secret::new(NEW_PASSWORD)),
            &store,
        )
        .unwrap();
    let export = tmp.path().join("backup.rsv");
    let passphrase = Secret::new("granite meadow pulley 73 ember");
    vault.export(&export, &passphrase).unwrap();
    vault.close().unwrap();

    let other = MemoryKeyStore::new();
    let moved_dir = tmp.path().join("moved");
    let mut moved = Vault::create(&moved_dir, options(Some(PASSWORD)), &other).unwrap();
    moved.import(&export, &passphrase).unwrap();
    let moved_header = fs::read(moved_dir.join(HEADER_FILE)).unwrap();
    moved
        .change_password(
            Some(&Secret::new(PASSWORD)),
            Some(&Secret::new(THIRD_PASSWORD)),
            &other,
        )
        .unwrap();
    moved.close().unwrap();

    assert_eq!(header_generation(&moved_dir, &other), 2);
    let entry = rackside_vault::generation_entry(&vault_id(&moved_dir));
    assert!(other.get(&entry).unwrap().is_some());
    assert!(store.get(&entry).unwrap().is_none());
    fs::write(moved_dir.join(HEADER_FILE), &moved_header).unwrap();
    assert_rolled_back(open_with_password(&moved_dir, &other));
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if path.is_file() {
            out.push(path);
        }
    }
    out
}

/// Returns the path of example `name`, which `cargo test` builds beside the test binaries.
fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let debug = exe.parent().and_then(Path::parent).unwrap();
    let path = debug.join("examples").join(name);
    assert!(
        path.exists(),
        "{} missing: run through `cargo test`, which builds examples",
        path.display()
    );
    path
}

#[test]
fn sigkill_loses_no_committed_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let keys = tmp.path().join("keys");
    let child_tmp = tmp.path().join("tmp");
    fs::create_dir(&child_tmp).unwrap();
    let binary = example_binary("write_loop");
    let store = rackside_vault::FileKeyStore::new(&keys);
    let mut committed: Vec<u64> = Vec::new();
    let mut next = 0u64;
    let mut rounds_with_commits = 0;
    for round in 0..40 {
        let mut child = Command::new(&binary)
            .arg(&dir)
            .arg(&keys)
            .arg(next.to_string())
            .env("TMPDIR", &child_tmp)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let seen = seen.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(n) = line.strip_prefix("committed ") {
                        seen.lock().unwrap().push(n.parse::<u64>().unwrap());
                    }
                }
            })
        };
        let wait = rand::random::<u64>() % 400 + 20;
        std::thread::sleep(Duration::from_millis(wait));
        child.kill().unwrap(); // SIGKILL on Unix
        let status = child.wait().unwrap();
        reader.join().unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(
            status.code().is_none(),
            "round {round}: write loop exited by itself: {stderr}"
        );

        let seen = seen.lock().unwrap().clone();
        committed.extend(&seen);
        if !seen.is_empty() {
            rounds_with_commits += 1;
        }
        next = committed.last().map_or(next, |n| n + 1) + 1000;

        // The store always opens and holds every reported commit.
        if dir.join(HEADER_FILE).exists() {
            let vault = Vault::open(&dir, Unlock::without_password(), &store)
                .unwrap_or_else(|e| panic!("round {round}: vault does not open: {e}"));
            for n in &committed {
                let name = format!("srv-{n}");
                assert!(
                    vault.server(&name).unwrap().is_some(),
                    "round {round}: {name} lost"
                );
                assert_eq!(
                    vault.credential(&name).unwrap(),
                    Some(Secret::new(format!("credmarker-{n}"))),
                    "round {round}: credential of {name} lost"
                );
            }
            vault.close().unwrap();
        }
        for file in files_under(tmp.path()) {
            let bytes = fs::read(&file).unwrap();
            for marker in [&b"plainmarker-"[..], b"credmarker-", b"pinmarker-"] {
                assert!(
                    !contains(&bytes, marker),
                    "round {round}: plaintext in {}",
                    file.display()
                );
            }
        }
    }
    assert!(
        rounds_with_commits >= 10,
        "only {rounds_with_commits} rounds committed anything before the kill"
    );
}

/// Builds the password numbered `n`, as the `passwd_loop` example does.
fn numbered_password(n: u64) -> Secret {
    Secret::new(format!("copper kettle orbit {n} lantern"))
}

#[test]
fn sigkill_during_password_changes_never_locks_out() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let keys = tmp.path().join("keys");
    let store = rackside_vault::FileKeyStore::new(&keys);
    let options = CreateOptions {
        password: Some(numbered_password(0)),
        kdf: KdfChoice::Fixed(KdfParams::TEST),
    };
    Vault::create(&dir, options, &store)
        .unwrap()
        .close()
        .unwrap();
    let binary = example_binary("passwd_loop");
    let mut current = 0u64;
    let mut snapshots: Vec<Vec<u8>> = Vec::new();
    for round in 0..25 {
        let mut child = Command::new(&binary)
            .arg(&dir)
            .arg(&keys)
            .arg(current.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (changes, reports) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let lines = BufReader::new(stdout).lines().map_while(Result::ok);
            for line in lines {
                if let Some(n) = line.strip_prefix("changed ") {
                    let _ = changes.send(n.parse::<u64>().unwrap());
                }
            }
        });

        // Kill at a random point after the first finished change, whatever the machine's
        // load, and keep every header seen on disk: each one is older than the final one.
        let first = reports.recv_timeout(Duration::from_secs(60));
        let wait = rand::random::<u64>() % 300;
        let deadline = std::time::Instant::now() + Duration::from_millis(wait);
        while first.is_ok() && std::time::Instant::now() < deadline {
            snapshots.push(fs::read(dir.join(HEADER_FILE)).unwrap());
            std::thread::sleep(Duration::from_millis(3));
        }
        child.kill().unwrap(); // SIGKILL on Unix
        let status = child.wait().unwrap();
        reader.join().unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(
            status.code().is_none(),
            "round {round}: password loop exited by itself: {stderr}"
        );
        let first = first.unwrap_or_else(|_| panic!("round {round}: no change within 60 s"));
        let reported = reports.try_iter().last().unwrap_or(first);
        assert!(reported > current, "round {round}: went back to {reported}");
        current = reported;

        // The last reported password opens, or the one of a change that was under way.
        let reported_password = Vault::open(
            &dir,
            Unlock::with_password(numbered_password(current)),
            &store,
        );
        let next_password = Vault::open(
            &dir,
            Unlock::with_password(numbered_password(current + 1)),
            &store,
        );
        match (reported_password, next_password) {
            (Ok(vault), Err(Error::WrongPasswordOrDevice { .. })) => vault.close().unwrap(),
            (Err(Error::WrongPasswordOrDevice { .. }), Ok(vault)) => {
                vault.close().unwrap();
                current += 1;
            }
            (reported, next) => panic!(
                "round {round}: password {current}: {:?}, password {}: {:?}",
                reported.map(|_| ()),
                current + 1,
                next.map(|_| ())
            ),
        }
    }
    // After one more finished change, every header seen before is rejected.
    let mut vault = Vault::open(
        &dir,
        Unlock::with_password(numbered_password(current)),
        &store,
    )
    .unwrap();
    vault
        .change_password(
            Some(&numbered_password(current)),
            Some(&numbered_password(current + 1)),
            &store,
        )
        .unwrap();
    vault.close().unwrap();
    let final_header = fs::read(dir.join(HEADER_FILE)).unwrap();
    snapshots.sort();
    snapshots.dedup();
    assert!(
        snapshots.len() >= 10,
        "only {} headers seen",
        snapshots.len()
    );
    for (index, snapshot) in snapshots.iter().enumerate() {
        fs::write(dir.join(HEADER_FILE), snapshot).unwrap();
        let err =
            Vault::open(&dir, Unlock::with_password(numbered_password(0)), &store).unwrap_err();
        assert!(
            matches!(err, Error::HeaderRolledBack { .. }),
            "header {index} of {}: {err}",
            snapshots.len()
        );
    }
    fs::write(dir.join(HEADER_FILE), &final_header).unwrap();
    Vault::open(
        &dir,
        Unlock::with_password(numbered_password(current + 1)),
        &store,
    )
    .unwrap();
}

fn agent_config(
    dir: &Path,
    socket: &Path,
    clock: Arc<ManualClock>,
    store: Arc<MemoryKeyStore>,
) -> AgentConfig {
    AgentConfig {
        vault_dir: dir.to_path_buf(),
        socket_path: socket.to_path_buf(),
        idle_timeout: Duration::from_secs(15 * 60),
        clock,
        keystore: store,
        check_interval: Duration::from_millis(20),
        exit_when_locked: false,
    }
}

#[test]
fn agent_locks_after_idle_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let store = Arc::new(MemoryKeyStore::new());
    filled_vault(&dir, store.as_ref());
    let clock = Arc::new(ManualClock::new());
    let mut agent = Agent::new(agent_config(
        &dir,
        &tmp.path().join("s"),
        clock.clone(),
        store,
    ));

    let unlock = Request::Unlock {
        password: Some(Secret::new(PASSWORD)),
        quick: false,
    };
    assert!(matches!(agent.handle(unlock), Response::Done));
    clock.advance(Duration::from_secs(14 * 60));
    assert!(matches!(
        agent.handle(Request::Servers),
        Response::Servers { .. }
    ));
    clock.advance(Duration::from_secs(14 * 60));
    assert!(!agent.check_idle());
    assert!(agent.is_unlocked());
    // Status does not count as use.
    assert!(matches!(
        agent.handle(Request::Status),
        Response::Status { vault: Some(_), .. }
    ));
    clock.advance(Duration::from_secs(60));
    assert!(agent.check_idle());
    assert!(!agent.is_unlocked());
    assert!(matches!(agent.handle(Request::Servers), Response::Locked));
}

#[test]
fn late_request_finds_vault_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let store = Arc::new(MemoryKeyStore::new());
    filled_vault(&dir, store.as_ref());
    let clock = Arc::new(ManualClock::new());
    let mut agent = Agent::new(agent_config(
        &dir,
        &tmp.path().join("s"),
        clock.clone(),
        store,
    ));
    agent.handle(Request::Unlock {
        password: Some(Secret::new(PASSWORD)),
        quick: false,
    });
    clock.advance(Duration::from_secs(15 * 60));
    assert!(matches!(
        agent.handle(Request::Credential {
            server: "srv-1".into()
        }),
        Response::Locked
    ));
}

#[test]
fn missing_database_is_named_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let store = MemoryKeyStore::new();
    filled_vault(&dir, &store);
    fs::remove_file(dir.join("vault.db")).unwrap();
    let error = open_with_password(&dir, &store).unwrap_err();
    assert!(matches!(error, Error::DatabaseMissing { .. }), "{error}");
    assert!(error.to_string().contains("is missing"), "{error}");
}

#[tokio::test]
async fn oversized_agent_answer_names_the_size() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let store = Arc::new(MemoryKeyStore::new());
    filled_vault(&dir, store.as_ref());
    let vault = open_with_password(&dir, store.as_ref()).unwrap();
    for n in 0..12 {
        let mut record = server(100 + n);
        record.url = format!("https://bmc-{n}.example/{}", "a".repeat(100_000));
        vault.put_server(&record).unwrap();
    }
    vault.close().unwrap();

    let clock = Arc::new(ManualClock::new());
    let socket = tmp.path().join("run").join("agent.sock");
    let _handle = agent::serve(agent_config(&dir, &socket, clock, store))
        .await
        .unwrap();
    let mut client = agent::Client::connect(&socket).await.unwrap();
    client
        .unlock(Unlock::with_password(Secret::new(PASSWORD)))
        .await
        .unwrap();
    let error = client.servers().await.unwrap_err().to_string();
    assert!(error.contains("answer too large for the agent"), "{error}");
    assert!(error.contains("rackside lock"), "{error}");

    // The connection stays usable.
    assert!(client.status().await.unwrap().0.is_some());
}

#[tokio::test]
async fn agent_socket_serves_and_locks() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let store = Arc::new(MemoryKeyStore::new());
    filled_vault(&dir, store.as_ref());
    let clock = Arc::new(ManualClock::new());
    let socket = tmp.path().join("run").join("agent.sock");
    let handle = agent::serve(agent_config(&dir, &socket, clock.clone(), store))
        .await
        .unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&socket), 0o600);
    assert_eq!(mode(socket.parent().unwrap()), 0o700);

    let mut client = agent::Client::connect(&socket).await.unwrap();
    assert!(matches!(client.servers().await, Err(Error::Locked)));
    let err = client
        .unlock(Unlock::with_password(Secret::new(
            "wrong wrong wrong wrong",
        )))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("wrong password"), "{err}");
    client
        .unlock(Unlock::with_password(Secret::new(PASSWORD)))
        .await
        .unwrap();
    assert_eq!(client.servers().await.unwrap().len(), 3);
    client
        .put_credential("srv-2", Secret::new("other-credential-1"))
        .await
        .unwrap();
    assert_eq!(
        client.credential("srv-2").await.unwrap(),
        Some(Secret::new("other-credential-1"))
    );

    // A second agent on the same socket is refused.
    let second = agent::serve(agent_config(
        &dir,
        &socket,
        clock.clone(),
        Arc::new(MemoryKeyStore::new()),
    ))
    .await;
    assert!(matches!(second, Err(Error::Agent { .. })));

    clock.advance(Duration::from_secs(15 * 60));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _) = client.status().await.unwrap();
    assert!(
        status.is_none(),
        "vault still unlocked after the idle timeout"
    );
    client
        .unlock(Unlock::with_password(Secret::new(PASSWORD)))
        .await
        .unwrap();
    client.lock().await.unwrap();
    assert!(matches!(
        client.credential("srv-2").await,
        Err(Error::Locked)
    ));
    handle.shutdown().await;
    assert!(!socket.exists());
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Set in the child process that runs the log capture of
/// `secrets_absent_from_logs_and_files` with no other test beside it.
const LOG_CAPTURE_CHILD: &str = "RACKSIDE_VAULT_LOG_CAPTURE_CHILD";

#[test]
fn secrets_absent_from_logs_and_files() {
    // tracing caches each callsite's interest for the whole process. While one scoped
    // subscriber is the only registered dispatcher, tracing-core computes the interest of a
    // callsite first reached on another thread from that thread's default (no subscriber), so
    // a concurrent test can cache "never" for an event this capture waits for. The capture
    // therefore runs in a child process of this binary that runs this test alone.
    if std::env::var_os(LOG_CAPTURE_CHILD).is_none() {
        let name = "secrets_absent_from_logs_and_files";
        let output = Command::new(std::env::current_exe().unwrap())
            .args([name, "--exact", "--test-threads=1", "--nocapture"])
            .env(LOG_CAPTURE_CHILD, "1")
            .output()
            .unwrap();
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "log capture failed:\n{report}");
        assert!(
            report.contains("1 passed"),
            "log capture did not run:\n{report}"
        );
        return;
    }
    capture_and_search_secrets();
}

/// The body of `secrets_absent_from_logs_and_files`, run in the child process.
fn capture_and_search_secrets() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let store = MemoryKeyStore::new();
    let mut rendered = String::new();
    tracing::subscriber::with_default(subscriber, || {
        filled_vault(&dir, &store);
        let mut vault = open_with_password(&dir, &store).unwrap();
        rendered.push_str(&format!(
            "{vault:?} {:?}",
            vault.credential("srv-1").unwrap()
        ));
        rendered.push_str(&format!("{:?}", vault.status().unwrap()));
        let new = Secret::new("violet harbor sextant 58 quill");
        let errors = [
            vault
                .change_password(
                    Some(&Secret::new("guessed wrong password")),
                    Some(&new),
                    &store,
                )
                .unwrap_err(),
            vault
                .change_password(
                    Some(&Secret::new(PASSWORD)),
                    Some(&Secret::new("short")),
                    &store,
                )
                .unwrap_err(),
            Vault::open(
                &dir,
                Unlock::with_password(Secret::new("guessed wrong password")),
                &store,
            )
            .unwrap_err(),
        ];
        for err in &errors {
            rendered.push_str(&format!("{err} {err:?}\n"));
        }
        vault
            .export(
                &tmp.path().join("export.rsv"),
                &Secret::new("granite meadow pulley 73 ember"),
            )
            .unwrap();
        vault.enable_quick_unlock(&store).unwrap();
    });
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("opened vault"),
        "log capture did not work: {logs}"
    );
    let device = hex::encode(device_secret(&store, false).unwrap().expose());
    for needle in [
        PASSWORD,
        CREDENTIAL,
        "guessed wrong password",
        "granite meadow",
        "short",
        &device,
    ] {
        assert!(!logs.contains(needle), "{needle:?} in logs");
        assert!(
            !rendered.contains(needle),
            "{needle:?} in Debug or error output: {rendered}"
        );
    }
    for file in files_under(tmp.path()) {
        let bytes = fs::read(&file).unwrap();
        for needle in [
            PASSWORD.as_bytes(),
            CREDENTIAL.as_bytes(),
            b"granite meadow",
        ] {
            assert!(!contains(&bytes, needle), "secret in {}", file.display());
        }
    }
}

/// A key store that is always unreachable, like a Secret Service without a
/// session bus.
struct UnreachableKeyStore;

impl DeviceKeyStore for UnreachableKeyStore {
    fn get(&self, _name: &str) -> rackside_vault::Result<Option<Secret>> {
        Err(Error::KeyStore {
            store: self.describe(),
            message: "no session bus".into(),
        })
    }
    fn set(&self, name: &str, _value: &Secret) -> rackside_vault::Result<()> {
        self.get(name).map(|_| ())
    }
    fn delete(&self, name: &str) -> rackside_vault::Result<()> {
        self.get(name).map(|_| ())
    }
    fn describe(&self) -> String {
        "test store".into()
    }
}

#[test]
fn unreachable_key_store_gives_one_line_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    filled_vault(&dir, &MemoryKeyStore::new());
    let err = open_with_password(&dir, &UnreachableKeyStore).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::KeyStore { .. }), "{text}");
    assert!(text.contains("RACKSIDE_KEYSTORE=file"), "{text}");
    assert!(!text.contains('\n'), "{text}");
}

#[tokio::test]
async fn agent_exits_after_lock_when_configured() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let store = Arc::new(MemoryKeyStore::new());
    filled_vault(&dir, store.as_ref());
    let socket = tmp.path().join("run").join("agent.sock");
    let mut config = agent_config(&dir, &socket, Arc::new(ManualClock::new()), store);
    config.exit_when_locked = true;
    let handle = agent::serve(config).await.unwrap();
    let mut client = agent::Client::connect(&socket).await.unwrap();
    client
        .unlock(Unlock::with_password(Secret::new(PASSWORD)))
        .await
        .unwrap();
    client.lock().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), handle.wait())
        .await
        .expect("agent still running after lock");
    assert!(!socket.exists());
    assert!(agent::Client::connect(&socket).await.is_err());
}

#[tokio::test]
async fn agent_drops_connections_from_other_users() {
    use std::os::unix::fs::PermissionsExt;
    if !nix_is_root() {
        println!("skipped: needs root to connect as another user");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let store = Arc::new(MemoryKeyStore::new());
    filled_vault(&dir, store.as_ref());
    let socket = tmp.path().join("run").join("agent.sock");
    let config = agent_config(&dir, &socket, Arc::new(ManualClock::new()), store);
    let handle = agent::serve(config).await.unwrap();
    let mut client = agent::Client::connect(&socket).await.unwrap();
    client
        .unlock(Unlock::with_password(Secret::new(PASSWORD)))
        .await
        .unwrap();

    // Open the folders so that only the peer check stands in the way.
    for path in [tmp.path(), socket.parent().unwrap()] {
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o666)).unwrap();
    let script = r#"
import os, socket, struct, sys
os.setgid(65534); os.setuid(65534)
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
body = b'{"op":"servers"}'
try:
    s.sendall(struct.pack(">I", len(body)) + body)
    s.settimeout(5)
    print("answered" if s.recv(4) else "dropped")
except (BrokenPipeError, ConnectionResetError):
    print("dropped")
"#;
    let output = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&socket)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stdout.trim(), "dropped", "stderr {stderr}");
    assert_eq!(client.servers().await.unwrap().len(), 3);
    handle.shutdown().await;
}

fn nix_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[test]
fn database_file_mode_is_0600() {
    use std::os::unix::fs::PermissionsExt;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let store = MemoryKeyStore::new();
    filled_vault(&dir, &store);
    let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(DATABASE_FILE)), 0o600);
    assert_eq!(mode(&dir.join(HEADER_FILE)), 0o600);

    // A database left readable by an older version is closed to others when opened.
    fs::set_permissions(dir.join(DATABASE_FILE), fs::Permissions::from_mode(0o644)).unwrap();
    let vault = open_with_password(&dir, &store).unwrap();
    assert_eq!(mode(&dir.join(DATABASE_FILE)), 0o600);
    assert_eq!(vault.setting("theme").unwrap().as_deref(), Some("dark"));
}

#[test]
fn killed_passwd_temporaries_removed_on_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let store = rackside_vault::FileKeyStore::new(tmp.path().join("keys"));
    filled_vault(&dir, &store);

    // What `vault passwd` killed with SIGKILL leaves: a half-written header and generation
    // entry, named after a process that no longer runs.
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let entries: Vec<PathBuf> = fs::read_dir(tmp.path().join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("header-generation-")
        })
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let mut leftovers = vec![dir.join(format!("{HEADER_FILE}.tmp-{dead}"))];
    for entry in &entries {
        let mut name = entry.as_os_str().to_os_string();
        name.push(format!(".tmp-{dead}"));
        leftovers.push(PathBuf::from(name));
    }
    // A temporary file of a writer that still runs (process 1 always does) stays.
    let running = dir.join(format!("{HEADER_FILE}.tmp-1"));
    for path in leftovers.iter().chain([&running]) {
        fs::write(path, b"partial").unwrap();
    }

    let vault = open_with_password(&dir, &store).unwrap();
    for path in &leftovers {
        assert!(!path.exists(), "{} is still there", path.display());
    }
    assert!(running.exists());
    assert_eq!(vault.setting("theme").unwrap().as_deref(), Some("dark"));
}
