//! The server list, pins and installed CAs, kept as plain files under the config folder.
//!
//! NOTE: this file holds no secret (no password is ever written); encrypted storage of all
//! client state is a later step. Writes go to a temporary file in the same folder, are synced,
//! then renamed over the old file, so a crash leaves either the old or the new list.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rackside_trust::Pin;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::failure::Failure;

const SERVERS_FILE: &str = "servers.json";
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

/// The config folder and what it contains.
///
/// Changes are recorded and replayed on the file's current content when saved, under an
/// exclusive lock, so two commands saving at once both keep their changes.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    servers: BTreeMap<String, ServerEntry>,
    changes: Vec<Change>,
}

/// One change to the server list, replayed at save time.
#[derive(Debug, Clone)]
enum Change {
    Insert(String, ServerEntry),
    Remove(String),
    SetPin(String, Option<Pin>),
}

const LOCK_FILE: &str = "servers.lock";

impl Store {
    /// Opens the store in `dir`, or in the platform's config folder when `dir` is `None`.
    /// A missing folder or file is an empty store; a damaged file is an error, never replaced.
    pub fn open(dir: Option<&Path>) -> anyhow::Result<Self> {
        let dir = match dir {
            Some(dir) => dir.to_path_buf(),
            None => default_config_dir()?,
        };
        let servers = read_servers(&dir)?;
        Ok(Self {
            dir,
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

    /// Every group name in use, sorted and without duplicates.
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

    /// Writes the recorded changes: under the lock, the file is read again, the changes are
    /// applied to what it holds now, and the result replaces it atomically.
    pub fn save(&mut self) -> anyhow::Result<()> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("failed to create {}", self.dir.display()))?;
        let lock_path = self.dir.join(LOCK_FILE);
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("failed to open {}", lock_path.display()))?;
        lock.lock()
            .with_context(|| format!("failed to lock {}", lock_path.display()))?;

        let mut servers = read_servers(&self.dir)?;
        for change in self.changes.drain(..) {
            apply(&mut servers, change);
        }
        let bytes = serde_json::to_vec_pretty(&servers)?;
        write_atomic(&self.dir, SERVERS_FILE, &bytes)?;
        self.servers = servers;
        // The lock is released when `lock` is dropped here.
        drop(lock);
        Ok(())
    }

    /// The folder of installed CA certificates (one PEM file each).
    pub fn ca_dir(&self) -> PathBuf {
        self.dir.join(CA_FOLDER)
    }

    /// Paths of the installed CA files, sorted.
    pub fn ca_files(&self) -> anyhow::Result<Vec<PathBuf>> {
        let dir = self.ca_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => {
                return Err(error).with_context(|| format!("failed to read {}", dir.display()))
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

    /// Installs a CA certificate under `file_name`.
    pub fn install_ca(&self, file_name: &str, pem: &[u8]) -> anyhow::Result<()> {
        write_atomic(&self.ca_dir(), file_name, pem)
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

/// Reads the server list in `dir`; a missing file is an empty list, a damaged one an error.
fn read_servers(dir: &Path) -> anyhow::Result<BTreeMap<String, ServerEntry>> {
    let path = dir.join(SERVERS_FILE);
    match fs::read(&path) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).map_err(|error| {
            Failure::usage(format!(
                "invalid server list {}: {error}; fix or move the file away",
                path.display()
            ))
        })?),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(error) => Err(error).with_context(|| format!("failed to read {}", path.display())),
    }
}

fn default_config_dir() -> anyhow::Result<PathBuf> {
    directories::ProjectDirs::from("", "", "rackside")
        .map(|dirs| dirs.config_dir().to_path_buf())
        .ok_or_else(|| {
            Failure::usage("no home folder found; set RACKSIDE_CONFIG_DIR or --config-dir").into()
        })
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

#[cfg(test)]
mod tests {
    use super::*;

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
        fs::write(dir.path().join(SERVERS_FILE), b"{not json").unwrap();
        assert!(Store::open(Some(dir.path())).is_err());
        assert_eq!(
            fs::read(dir.path().join(SERVERS_FILE)).unwrap(),
            b"{not json"
        );
    }

    #[test]
    fn concurrent_saves_keep_both_changes() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = Store::open(Some(dir.path())).unwrap();
        let mut second = Store::open(Some(dir.path())).unwrap();
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
        let merged = Store::open(Some(dir.path())).unwrap();
        assert!(merged.servers().contains_key("a"));
        assert!(merged.servers().contains_key("b"));
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
        let mut store = Store::open(Some(dir.path())).unwrap();
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
        let store = Store::open(Some(dir.path())).unwrap();
        assert!(store.select(&target(None, true, None)).is_err());
    }

    #[test]
    fn groups_survive_save_and_are_omitted_when_empty() {
        let (dir, mut store) = store_with_groups();
        store.save().unwrap();
        let text = fs::read_to_string(dir.path().join(SERVERS_FILE)).unwrap();
        assert_eq!(text.matches("\"groups\"").count(), 2, "{text}");
        let again = Store::open(Some(dir.path())).unwrap();
        assert_eq!(again.server("b").unwrap().groups, ["rack1", "db"]);
    }

    #[test]
    fn saved_list_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(Some(dir.path())).unwrap();
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
        let again = Store::open(Some(dir.path())).unwrap();
        assert_eq!(again.servers().len(), 1);
        assert_eq!(again.server("r1").unwrap().user, "root");
    }
}
