//! The client's state: servers with their pins and groups, stored passwords and cached
//! reports in the encrypted vault, and installed CAs as PEM files under the config folder.
//!
//! Commands work on an in-memory copy of the server list and record their changes. `save`
//! writes each change as its own vault transaction, so two commands saving at once both keep
//! their changes. A plain `servers.json` from an earlier version is moved into the vault the
//! first time the store opens.

mod backend;
mod device;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use anyhow::Context;
use chrono::{DateTime, Utc};
use rackside_trust::Pin;
use rackside_vault::{CacheEntry, Secret, ServerRecord};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::failure::{ExitKind, Failure};

use backend::Backend;
pub use backend::{
    agent_for, create_vault, keystore, open_direct, same_folder, Location, PasswordSource,
    VAULT_PASSWORD_ENV,
};
pub use device::{ConsoleSubscription, DeviceIdentity};

const CA_FOLDER: &str = "ca";

/// One managed BMC.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerEntry {
    /// HTTPS base URL of the BMC (scheme, host, optional port).
    pub url: Url,
    /// Account used to log in.
    pub user: String,
    /// The accepted certificate; `None` until the user trusts one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<Pin>,
    /// Group names for fleet runs (`--group G`); checked like server names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// The open vault, the config folder and an in-memory copy of the server list.
pub struct Store {
    location: Location,
    backend: Mutex<Backend>,
    servers: BTreeMap<String, ServerEntry>,
    changes: Vec<Change>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.location)
            .field("servers", &self.servers.len())
            .finish_non_exhaustive()
    }
}

/// One change to the server list, written at save time.
#[derive(Debug, Clone)]
enum Change {
    Insert(String, ServerEntry),
    Remove(String),
    SetPin(String, Option<Pin>),
}

/// Describes how old a cached report is, for messages: "cached 3 min ago, fetched 2026-12-04T19:20Z".
pub fn describe_age(fetched_at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - fetched_at).num_seconds().max(0);
    let age = match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min", secs / 60),
        3600..=172_799 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86_400),
    };
    format!(
        "cached {age} ago, fetched {}",
        fetched_at.format("%Y-%m-%dT%H:%MZ")
    )
}

/// A cached report with the time it was fetched.
#[derive(Debug, Clone)]
pub struct Cached {
    /// The report as its command prints it with `--json`.
    pub body: serde_json::Value,
    /// When it was fetched from the BMC.
    pub fetched_at: DateTime<Utc>,
}

impl Store {
    /// Opens the store: through the agent when it holds this vault unlocked, else the vault
    /// itself. A missing vault is created without a password, and `source` supplies the
    /// password of a vault that has one. A plain `servers.json` is then moved into the vault.
    ///
    /// # Errors
    /// A locked vault without a password source (exit 11), a wrong password (exit 12), a
    /// damaged vault or `servers.json`, an unavailable key store.
    pub fn open_with(dir: Option<&Path>, source: PasswordSource) -> anyhow::Result<Self> {
        let location = Location::resolve(dir)?;
        let keystore = keystore()?;
        Self::open_at(location, keystore.as_ref(), source)
    }

    /// Opens the store at `location` with the device secret from `keystore`.
    fn open_at(
        location: Location,
        keystore: &dyn rackside_vault::DeviceKeyStore,
        source: PasswordSource,
    ) -> anyhow::Result<Self> {
        let mut backend = Backend::open(&location, keystore, source)?;
        let moved = backend::migrate_legacy(&location.config_dir, &mut backend)?;
        if moved > 0 {
            eprintln!(
                "note: moved {moved} server(s) from {} into the encrypted vault and deleted the \
                 plain file",
                location
                    .config_dir
                    .join(backend::LEGACY_SERVERS_FILE)
                    .display()
            );
        }
        let servers = load_servers(&mut backend)?;
        Ok(Self {
            location,
            backend: Mutex::new(backend),
            servers,
            changes: Vec::new(),
        })
    }

    /// Opens a fresh store that lives wholly inside `dir`: its vault has no password and its device
    /// secret sits in a file key store under `dir`, so neither the user's OS key store, their
    /// vault nor their agent is touched. For the demo, which deletes `dir` when it ends.
    ///
    /// # Errors
    /// The vault's own errors when it cannot be created in `dir`.
    pub fn open_throwaway(dir: &Path) -> anyhow::Result<Self> {
        let location = Location::resolve(Some(dir))?;
        let keystore = rackside_vault::FileKeyStore::new(dir.join("keys"));
        let vault = create_vault(&location.vault_dir, None, &keystore)?;
        let mut backend = Backend::Direct(Box::new(vault));
        let servers = load_servers(&mut backend)?;
        Ok(Self {
            location,
            backend: Mutex::new(backend),
            servers,
            changes: Vec::new(),
        })
    }

    /// All servers by name.
    pub fn servers(&self) -> &BTreeMap<String, ServerEntry> {
        &self.servers
    }

    /// The server called `name`, or a usage failure that lists how to find names.
    pub fn server(&self, name: &str) -> Result<&ServerEntry, Failure> {
        self.servers.get(name).ok_or_else(|| {
            Failure::usage(format!(
                "unknown server {name:?}; run `rackside server list` or `rackside server add`"
            ))
        })
    }

    /// Returns the server names `target` chooses, sorted.
    ///
    /// # Errors
    /// A usage failure when NAME is unknown, when the list is empty for `--all`, or when no
    /// server is in the `--group` (the message lists the known groups).
    pub fn select(&self, target: &crate::cli::Target) -> Result<Vec<String>, Failure> {
        if let Some(name) = &target.name {
            self.server(name)?;
            return Ok(vec![name.clone()]);
        }
        if let Some(group) = &target.group {
            let members: Vec<String> = self
                .servers
                .iter()
                .filter(|(_, entry)| entry.groups.iter().any(|g| g == group))
                .map(|(name, _)| name.clone())
                .collect();
            if members.is_empty() {
                let known = self.groups();
                let known = if known.is_empty() {
                    "none yet; add one with `rackside server add NAME URL --group G`".to_owned()
                } else {
                    known.join(", ")
                };
                return Err(Failure::usage(format!(
                    "no server in group {group:?}; known groups: {known}"
                )));
            }
            return Ok(members);
        }
        if self.servers.is_empty() {
            return Err(Failure::usage(
                "no servers yet; add one with `rackside server add`",
            ));
        }
        Ok(self.servers.keys().cloned().collect())
    }

    /// Lists every group name in use, sorted and without duplicates.
    pub fn groups(&self) -> Vec<String> {
        let groups: std::collections::BTreeSet<&String> = self
            .servers
            .values()
            .flat_map(|entry| entry.groups.iter())
            .collect();
        groups.into_iter().cloned().collect()
    }

    /// Adds or replaces `name`.
    pub fn insert(&mut self, name: &str, entry: ServerEntry) {
        self.record(Change::Insert(name.to_owned(), entry));
    }

    /// Removes `name`, returning its entry.
    pub fn remove(&mut self, name: &str) -> Option<ServerEntry> {
        let entry = self.servers.get(name).cloned();
        self.record(Change::Remove(name.to_owned()));
        entry
    }

    /// Replaces the pin of `name`.
    pub fn set_pin(&mut self, name: &str, pin: Option<Pin>) {
        self.record(Change::SetPin(name.to_owned(), pin));
    }

    fn record(&mut self, change: Change) {
        apply(&mut self.servers, change.clone());
        self.changes.push(change);
    }

    /// Writes the recorded changes to the vault, one transaction each, then reads the list
    /// again so that changes saved meanwhile by other commands show.
    ///
    /// # Errors
    /// Vault errors (locked, busy, disk full); changes written before the error stay written.
    pub fn save(&mut self) -> anyhow::Result<()> {
        let changes = std::mem::take(&mut self.changes);
        let mut backend = self.backend()?;
        for change in changes {
            match change {
                Change::Insert(name, entry) => backend.put_server(to_record(&name, &entry)?)?,
                Change::Remove(name) => backend.remove_server(&name)?,
                Change::SetPin(name, pin) => {
                    // Re-read so that a concurrent change to the other fields is kept.
                    if let Some(mut record) = backend.server(&name)? {
                        record.pin = pin.map(serde_json::to_value).transpose()?;
                        backend.put_server(record)?;
                    }
                }
            }
        }
        let servers = load_servers(&mut backend)?;
        drop(backend);
        self.servers = servers;
        Ok(())
    }

    /// Reads the stored password for `name`, if any.
    ///
    /// # Errors
    /// Vault errors; a stored value that is not UTF-8.
    pub fn credential(&self, name: &str) -> anyhow::Result<Option<rackside_redfish::Secret>> {
        let Some(secret) = self.backend()?.credential(name)? else {
            return Ok(None);
        };
        let text = secret.expose_str().ok_or_else(|| {
            Failure::usage(format!(
                "the stored password for {name} is not valid UTF-8; replace it with `rackside \
                 server passwd {name}`"
            ))
        })?;
        Ok(Some(rackside_redfish::Secret::new(text.to_owned())))
    }

    /// Stores the password for `name`, encrypted, replacing any earlier one.
    ///
    /// # Errors
    /// Vault errors.
    pub fn put_credential(
        &self,
        name: &str,
        password: &rackside_redfish::Secret,
    ) -> anyhow::Result<()> {
        let secret = Secret::new(password.expose().to_owned());
        self.backend()?.put_credential(name, secret)
    }

    /// Reads the cached `kind` report (`health`, `inventory`) of `name`, if any.
    ///
    /// # Errors
    /// Vault errors.
    pub fn cached(&self, kind: &str, name: &str) -> anyhow::Result<Option<Cached>> {
        Ok(self.backend()?.cache(kind, name)?.map(|entry| Cached {
            body: entry.body,
            fetched_at: entry.fetched_at,
        }))
    }

    /// Stores `body` as the latest `kind` report of `name`, fetched now.
    ///
    /// # Errors
    /// Vault errors.
    pub fn put_cached(
        &self,
        kind: &str,
        name: &str,
        body: serde_json::Value,
    ) -> anyhow::Result<()> {
        self.backend()?.put_cache(CacheEntry {
            kind: kind.to_owned(),
            server: name.to_owned(),
            body,
            fetched_at: Utc::now(),
        })
    }

    fn backend(&self) -> Result<MutexGuard<'_, Backend>, Failure> {
        self.backend
            .lock()
            .map_err(|_| Failure::new(ExitKind::Failure, "internal error: vault handle poisoned"))
    }

    /// Paths of the installed CA files, sorted.
    pub fn ca_files(&self) -> anyhow::Result<Vec<PathBuf>> {
        self.cas().files()
    }

    fn cas(&self) -> CaFolder {
        CaFolder {
            dir: self.location.config_dir.join(CA_FOLDER),
        }
    }
}

/// The installed CA certificates: PEM files in the config folder, outside the vault because
/// they are public. `rackside ca` uses it without opening the vault.
#[derive(Debug, Clone)]
pub struct CaFolder {
    dir: PathBuf,
}

impl CaFolder {
    /// Finds the CA folder of `config_dir` (`--config-dir`, `RACKSIDE_CONFIG_DIR`), or of the
    /// platform's config folder.
    ///
    /// # Errors
    /// A usage failure when there is no home folder to derive the default from.
    pub fn resolve(config_dir: Option<&Path>) -> anyhow::Result<Self> {
        let location = Location::resolve(config_dir)?;
        Ok(Self {
            dir: location.config_dir.join(CA_FOLDER),
        })
    }

    /// Returns the folder itself, which may not exist yet.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Paths of the installed CA files, sorted.
    ///
    /// # Errors
    /// A folder that exists but cannot be read.
    pub fn files(&self) -> anyhow::Result<Vec<PathBuf>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => {
                return Err(error).with_context(|| format!("failed to read {}", self.dir.display()))
            }
        };
        let mut files = Vec::new();
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|ext| ext == "pem") {
                files.push(path);
            }
        }
        files.sort();
        Ok(files)
    }

    /// Installs a CA certificate under `file_name`, atomically.
    ///
    /// # Errors
    /// The folder or file cannot be written.
    pub fn install(&self, file_name: &str, pem: &[u8]) -> anyhow::Result<()> {
        write_atomic(&self.dir, file_name, pem)
    }
}

/// Validates a server name: it is used as a key and in messages.
pub fn check_name(name: &str) -> Result<(), Failure> {
    check_label("server name", name)
}

/// Validates a group name with the same rules as server names.
pub fn check_group(name: &str) -> Result<(), Failure> {
    check_label("group name", name)
}

fn check_label(what: &str, name: &str) -> Result<(), Failure> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(Failure::usage(format!(
            "invalid {what} {name:?}; use 1 to 64 letters, digits, '-', '_' or '.'"
        )))
    }
}

/// Parses a BMC address. A bare host gets `https://`; `http://` is rejected.
pub fn parse_url(text: &str) -> Result<Url, Failure> {
    // Messages below never echo the text after a user-info part, which may hold a password.
    let shown = match (text.find("://"), text.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***@{}", &text[..scheme_end], &text[at + 1..])
        }
        _ => text.to_owned(),
    };
    let text = shown.as_str();
    let with_scheme = if text.contains("://") {
        text.to_owned()
    } else {
        format!("https://{text}")
    };
    let url = Url::parse(&with_scheme).map_err(|error| {
        Failure::usage(format!(
            "invalid BMC URL {text:?}: {error}; use the form https://HOST[:PORT]"
        ))
    })?;
    if url.scheme() != "https" {
        return Err(Failure::usage(format!(
            "unsupported scheme in {text:?}: rackside talks to BMCs over HTTPS only; use https://"
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Failure::usage(format!(
            "invalid BMC URL {text:?}: no host name"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Failure::usage(format!(
            "invalid BMC URL {text:?}: credentials do not belong in the URL; use --user and \
             RACKSIDE_PASSWORD or --password-stdin"
        )));
    }
    Ok(url)
}

/// Applies one change to a server list.
fn apply(servers: &mut BTreeMap<String, ServerEntry>, change: Change) {
    match change {
        Change::Insert(name, entry) => {
            servers.insert(name, entry);
        }
        Change::Remove(name) => {
            servers.remove(&name);
        }
        Change::SetPin(name, pin) => {
            if let Some(entry) = servers.get_mut(&name) {
                entry.pin = pin;
            }
        }
    }
}

/// Reads every server from the vault into the in-memory list.
fn load_servers(backend: &mut Backend) -> anyhow::Result<BTreeMap<String, ServerEntry>> {
    let mut servers = BTreeMap::new();
    for record in backend.servers()? {
        let (name, entry) = from_record(record)?;
        servers.insert(name, entry);
    }
    Ok(servers)
}

/// Converts `entry` into its vault record.
fn to_record(name: &str, entry: &ServerEntry) -> anyhow::Result<ServerRecord> {
    Ok(ServerRecord {
        name: name.to_owned(),
        url: entry.url.to_string(),
        user: Some(entry.user.clone()),
        pin: entry.pin.as_ref().map(serde_json::to_value).transpose()?,
        groups: entry.groups.clone(),
    })
}

/// Converts a vault record back into a server entry. A record that does not parse is named
/// in the error.
fn from_record(record: ServerRecord) -> anyhow::Result<(String, ServerEntry)> {
    let invalid = |what: &str, error: String| {
        Failure::new(
            ExitKind::Failure,
            format!(
                "invalid {what} of server {:?} in the vault: {error}; run `rackside server \
                 remove {}` and add it again",
                record.name, record.name
            ),
        )
    };
    let url = Url::parse(&record.url).map_err(|error| invalid("URL", error.to_string()))?;
    let pin = match &record.pin {
        Some(value) => Some(
            serde_json::from_value::<Pin>(value.clone())
                .map_err(|error| invalid("pin", error.to_string()))?,
        ),
        None => None,
    };
    let entry = ServerEntry {
        url,
        user: record.user.clone().unwrap_or_else(|| "root".to_owned()),
        pin,
        groups: record.groups.clone(),
    };
    Ok((record.name, entry))
}

/// Writes `bytes` to `dir/name` through a synced temporary file and a rename.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let target = dir.join(name);
    // A name of its own per process and call, so concurrent writers never share a file.
    let unique: u64 = rand::random();
    let temp = dir.join(format!(".{name}.{}.{unique:016x}.tmp", std::process::id()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&temp)
        .with_context(|| format!("failed to write {}", temp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temp, &target)
        .with_context(|| format!("failed to replace {}", target.display()))?;
    if let Ok(folder) = fs::File::open(dir) {
        // Syncing the folder makes the rename itself durable; not every platform allows it.
        let _ = folder.sync_all();
    }
    Ok(())
}

// Consoles: the alert consoles this client reads, kept as JSON settings in the vault.

/// Vault setting key prefix of a console entry: `console/<name>`.
const CONSOLE_KEY_PREFIX: &str = "console/";
/// Vault setting key naming the console that `--console` defaults to.
const DEFAULT_CONSOLE_KEY: &str = "console-default";
/// Vault setting key of the JSON list of console names, because settings cannot be listed.
const CONSOLE_NAMES_KEY: &str = "console-names";

fn read_console_names(backend: &mut Backend) -> anyhow::Result<Vec<String>> {
    match backend.setting(CONSOLE_NAMES_KEY)? {
        Some(text) => serde_json::from_str(&text).with_context(|| {
            format!("invalid setting {CONSOLE_NAMES_KEY:?} in the vault; add the consoles again")
        }),
        None => Ok(Vec::new()),
    }
}

/// A console that this client reads alerts from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsoleEntry {
    /// HTTPS base URL of the console.
    pub url: Url,
    /// User that logs in to the console's API.
    pub user: String,
    /// The certificate the user accepted.
    pub pin: Pin,
    /// Whether this device accepts the console's pushes. `rackside unsubscribe` clears it
    /// before any cleanup, and `rackside alerts watch` reads it for every push.
    #[serde(default)]
    pub subscribed: bool,
    /// The relay registration and console subscription behind `subscribed`. It outlives
    /// `subscribed` while their removal is pending, so `unsubscribe` can retry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<ConsoleSubscription>,
}

impl Store {
    /// Reads the console entry `name`, if one was added.
    ///
    /// # Errors
    /// Vault errors; a stored entry that is not valid JSON.
    pub fn console(&self, name: &str) -> anyhow::Result<Option<ConsoleEntry>> {
        let key = format!("{CONSOLE_KEY_PREFIX}{name}");
        let Some(text) = self.backend()?.setting(&key)? else {
            return Ok(None);
        };
        let entry = serde_json::from_str(&text).with_context(|| {
            format!("invalid console entry {name:?} in the vault; add it again with `rackside console add`")
        })?;
        Ok(Some(entry))
    }

    /// Stores the console entry `name`, replacing any earlier one. The first console stored
    /// becomes the default for `--console`.
    ///
    /// # Errors
    /// Vault errors.
    pub fn put_console(&self, name: &str, entry: &ConsoleEntry) -> anyhow::Result<()> {
        let key = format!("{CONSOLE_KEY_PREFIX}{name}");
        let text = serde_json::to_string(entry)?;
        let mut backend = self.backend()?;
        backend.put_setting(&key, &text)?;
        if backend.setting(DEFAULT_CONSOLE_KEY)?.is_none() {
            backend.put_setting(DEFAULT_CONSOLE_KEY, name)?;
        }
        let mut names = read_console_names(&mut backend)?;
        if !names.iter().any(|known| known == name) {
            names.push(name.to_owned());
            backend.put_setting(CONSOLE_NAMES_KEY, &serde_json::to_string(&names)?)?;
        }
        Ok(())
    }

    /// Lists the consoles stored since this client began keeping the list, in the order they
    /// were added. `subscribe` stores its console again, so every subscribed console is listed.
    ///
    /// # Errors
    /// Vault errors; a stored list that is not valid JSON.
    pub fn console_names(&self) -> anyhow::Result<Vec<String>> {
        let mut backend = self.backend()?;
        read_console_names(&mut backend)
    }

    /// Returns the console that commands use without `--console`.
    ///
    /// # Errors
    /// Vault errors; [`ExitKind::Usage`] when no console was added.
    pub fn default_console(&self) -> anyhow::Result<String> {
        self.backend()?
            .setting(DEFAULT_CONSOLE_KEY)?
            .ok_or_else(|| {
                Failure::usage("no console added; run `rackside console add NAME URL` first").into()
            })
    }

    /// Returns the vault credential key of console `name`'s password, apart from server names.
    pub fn console_credential_key(name: &str) -> String {
        format!("{CONSOLE_KEY_PREFIX}{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens a store in `dir` with its own file key store, so no test touches the user's keys.
    fn open_test(dir: &Path) -> anyhow::Result<Store> {
        let keystore = rackside_vault::FileKeyStore::new(dir.join("keys"));
        let location = Location::resolve(Some(dir)).unwrap();
        Store::open_at(location, &keystore, PasswordSource { interactive: false })
    }

    fn entry(groups: &[&str]) -> ServerEntry {
        ServerEntry {
            url: parse_url("https://192.0.2.10").unwrap(),
            user: "root".into(),
            pin: None,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    #[test]
    fn console_names_list_each_console_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_test(dir.path()).unwrap();
        let fingerprint: rackside_trust::Fingerprint = "ab".repeat(32).parse().unwrap();
        let entry = ConsoleEntry {
            url: parse_url("https://192.0.2.20:8445").unwrap(),
            user: "ops".into(),
            pin: Pin {
                certificate_sha256: fingerprint,
                public_key_sha256: fingerprint,
                accepted_at: Utc::now(),
            },
            subscribed: false,
            subscription: None,
        };
        store.put_console("b", &entry).unwrap();
        store.put_console("a", &entry).unwrap();
        store.put_console("b", &entry).unwrap();
        assert_eq!(store.console_names().unwrap(), ["b", "a"]);
        assert_eq!(store.default_console().unwrap(), "b");
    }

    #[test]
    fn url_without_scheme_gets_https() {
        let url = parse_url("192.0.2.10:8443").unwrap();
        assert_eq!(url.as_str(), "https://192.0.2.10:8443/");
    }

    #[test]
    fn plain_http_url_is_rejected() {
        let error = parse_url("http://192.0.2.10").unwrap_err();
        assert!(error.message.contains("HTTPS only"), "{}", error.message);
    }

    #[test]
    fn url_with_credentials_is_rejected() {
        assert!(parse_url("https://root:calvin@192.0.2.10").is_err());
    }

    #[test]
    fn malformed_url_is_rejected() {
        assert!(parse_url("https://[::1").is_err());
    }

    #[test]
    fn server_name_with_space_is_rejected() {
        assert!(check_name("rack 1").is_err());
        assert!(check_name("r750-01.lab").is_ok());
    }

    #[test]
    fn damaged_server_list_is_an_error_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = dir.path().join(backend::LEGACY_SERVERS_FILE);
        fs::write(&legacy, b"{not json").unwrap();
        assert!(open_test(dir.path()).is_err());
        assert_eq!(fs::read(&legacy).unwrap(), b"{not json");
    }

    #[test]
    fn legacy_list_moves_into_vault_once() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = dir.path().join(backend::LEGACY_SERVERS_FILE);
        let mut plain = BTreeMap::new();
        plain.insert("a".to_owned(), entry(&["rack1"]));
        plain.insert("b".to_owned(), entry(&[]));
        let bytes = serde_json::to_vec(&plain).unwrap();
        fs::write(&legacy, &bytes).unwrap();
        fs::write(dir.path().join(backend::LEGACY_LOCK_FILE), b"").unwrap();

        let store = open_test(dir.path()).unwrap();
        assert_eq!(store.servers().len(), 2);
        assert_eq!(store.server("a").unwrap().groups, ["rack1"]);
        assert!(!legacy.exists());
        assert!(!dir.path().join(backend::LEGACY_LOCK_FILE).exists());
        drop(store);

        // A crash after the vault commit but before the delete leaves the file: moving it
        // again must not duplicate anything.
        fs::write(&legacy, &bytes).unwrap();
        let again = open_test(dir.path()).unwrap();
        assert_eq!(again.servers().len(), 2);
        assert!(!legacy.exists());
    }

    #[test]
    fn credential_and_cache_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open_test(dir.path()).unwrap();
        store.insert("a", entry(&[]));
        store.save().unwrap();
        assert!(store.credential("a").unwrap().is_none());
        let password = rackside_redfish::Secret::new("s3cret-for-a".to_owned());
        store.put_credential("a", &password).unwrap();
        store
            .put_cached("health", "a", serde_json::json!({"systems": []}))
            .unwrap();
        drop(store);

        let again = open_test(dir.path()).unwrap();
        let stored = again.credential("a").unwrap().unwrap();
        assert_eq!(stored.expose(), "s3cret-for-a");
        let cached = again.cached("health", "a").unwrap().unwrap();
        assert_eq!(cached.body, serde_json::json!({"systems": []}));
        assert!(again.cached("inventory", "a").unwrap().is_none());
    }

    #[test]
    fn concurrent_saves_keep_both_changes() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = open_test(dir.path()).unwrap();
        let mut second = open_test(dir.path()).unwrap();
        let url = parse_url("https://192.0.2.10").unwrap();
        first.insert(
            "a",
            ServerEntry {
                url: url.clone(),
                user: "root".into(),
                pin: None,
                groups: Vec::new(),
            },
        );
        second.insert(
            "b",
            ServerEntry {
                url,
                user: "root".into(),
                pin: None,
                groups: Vec::new(),
            },
        );
        first.save().unwrap();
        second.save().unwrap();
        let merged = open_test(dir.path()).unwrap();
        assert!(merged.servers().contains_key("a"));
        assert!(merged.servers().contains_key("b"));
    }

    #[test]
    fn age_reads_in_the_largest_whole_unit() {
        let fetched: DateTime<Utc> = "2026-12-04T19:20:00Z".parse().unwrap();
        let at = |secs| fetched + chrono::Duration::seconds(secs);
        assert_eq!(
            describe_age(fetched, at(185)),
            "cached 3 min ago, fetched 2026-12-04T19:20Z"
        );
        assert!(describe_age(fetched, at(5)).starts_with("cached 5 s ago"));
        assert!(describe_age(fetched, at(7200)).starts_with("cached 2 h ago"));
        assert!(describe_age(fetched, at(3 * 86_400)).starts_with("cached 3 d ago"));
        assert!(describe_age(fetched, at(-30)).starts_with("cached 0 s ago"));
    }

    #[test]
    fn password_in_url_is_not_echoed() {
        let error = parse_url("https://root:hunter2secret@192.0.2.10").unwrap_err();
        assert!(
            !error.message.contains("hunter2secret"),
            "{}",
            error.message
        );
    }

    fn target(name: Option<&str>, all: bool, group: Option<&str>) -> crate::cli::Target {
        crate::cli::Target {
            name: name.map(str::to_owned),
            all,
            group: group.map(str::to_owned),
            concurrency: 8,
        }
    }

    fn store_with_groups() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open_test(dir.path()).unwrap();
        let url = parse_url("https://192.0.2.10").unwrap();
        for (name, groups) in [
            ("a", vec!["rack1"]),
            ("b", vec!["rack1", "db"]),
            ("c", vec![]),
        ] {
            store.insert(
                name,
                ServerEntry {
                    url: url.clone(),
                    user: "root".into(),
                    pin: None,
                    groups: groups.into_iter().map(str::to_owned).collect(),
                },
            );
        }
        (dir, store)
    }

    #[test]
    fn select_group_returns_its_members() {
        let (_dir, store) = store_with_groups();
        let chosen = store.select(&target(None, false, Some("rack1"))).unwrap();
        assert_eq!(chosen, ["a", "b"]);
    }

    #[test]
    fn select_all_returns_every_server() {
        let (_dir, store) = store_with_groups();
        let chosen = store.select(&target(None, true, None)).unwrap();
        assert_eq!(chosen, ["a", "b", "c"]);
    }

    #[test]
    fn select_unknown_group_lists_known_groups() {
        let (_dir, store) = store_with_groups();
        let error = store
            .select(&target(None, false, Some("rack9")))
            .unwrap_err();
        assert!(error.message.contains("\"rack9\""), "{}", error.message);
        assert!(error.message.contains("db, rack1"), "{}", error.message);
    }

    #[test]
    fn select_unknown_name_is_rejected() {
        let (_dir, store) = store_with_groups();
        assert!(store.select(&target(Some("zz"), false, None)).is_err());
        assert_eq!(
            store.select(&target(Some("c"), false, None)).unwrap(),
            ["c"]
        );
    }

    #[test]
    fn select_all_on_empty_list_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_test(dir.path()).unwrap();
        assert!(store.select(&target(None, true, None)).is_err());
    }

    #[test]
    fn groups_survive_save_and_are_omitted_when_empty() {
        let (dir, mut store) = store_with_groups();
        store.save().unwrap();
        let again = open_test(dir.path()).unwrap();
        assert_eq!(again.server("b").unwrap().groups, ["rack1", "db"]);
        assert!(again.server("c").unwrap().groups.is_empty());
        let listed = serde_json::to_value(again.servers()).unwrap();
        assert!(listed["c"].get("groups").is_none(), "{listed}");
    }

    #[test]
    fn saved_list_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open_test(dir.path()).unwrap();
        let url = parse_url("https://192.0.2.10").unwrap();
        store.insert(
            "r1",
            ServerEntry {
                url,
                user: "root".into(),
                pin: None,
                groups: Vec::new(),
            },
        );
        store.save().unwrap();
        let again = open_test(dir.path()).unwrap();
        assert_eq!(again.servers().len(), 1);
        assert_eq!(again.server("r1").unwrap().user, "root");
    }
}
