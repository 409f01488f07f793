//! Access to the store's records in the encrypted vault, through the unlock agent when one
//! serves this vault, else by opening the vault in this process.
//!
//! Also the one-time move of the plain `servers.json` of earlier versions into the vault.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rackside_vault::agent::{self, BlockingClient};
use rackside_vault::{
    CacheEntry, CreateOptions, DeviceKeyStore, KdfChoice, KdfParams, Secret, ServerRecord, Unlock,
    Vault,
};

use crate::failure::{ExitKind, Failure};
use crate::store::ServerEntry;

/// The plain server list of earlier versions, moved into the vault on first use.
pub(super) const LEGACY_SERVERS_FILE: &str = "servers.json";
/// The lock file that guarded the plain server list; removed with it.
pub(super) const LEGACY_LOCK_FILE: &str = "servers.lock";
/// The environment variable that gives the vault password to scripts and tests.
pub const VAULT_PASSWORD_ENV: &str = "RACKSIDE_VAULT_PASSWORD";

/// The config folder and the vault folder of one invocation.
#[derive(Debug, Clone)]
pub struct Location {
    /// Installed CAs and, before migration, `servers.json`.
    pub config_dir: PathBuf,
    /// The vault's header and database.
    pub vault_dir: PathBuf,
}

impl Location {
    /// With `config_dir` given (`--config-dir`, `RACKSIDE_CONFIG_DIR`) the vault is its `vault`
    /// subfolder, so one folder isolates everything; otherwise the platform's config folder and
    /// `$XDG_DATA_HOME/rackside/vault`.
    ///
    /// # Errors
    /// A usage failure when there is no home folder to derive the defaults from.
    pub fn resolve(config_dir: Option<&Path>) -> anyhow::Result<Self> {
        if let Some(dir) = config_dir {
            return Ok(Self {
                config_dir: dir.to_path_buf(),
                vault_dir: dir.join("vault"),
            });
        }
        let dirs = directories::ProjectDirs::from("", "", "rackside").ok_or_else(|| {
            Failure::usage("no home folder found; set RACKSIDE_CONFIG_DIR or --config-dir")
        })?;
        Ok(Self {
            config_dir: dirs.config_dir().to_path_buf(),
            vault_dir: dirs.data_dir().join("vault"),
        })
    }
}

/// How to get the vault password when one is needed.
#[derive(Debug, Clone, Copy)]
pub struct PasswordSource {
    /// Whether a terminal prompt is allowed.
    pub interactive: bool,
}

impl PasswordSource {
    /// Reads the vault password from `RACKSIDE_VAULT_PASSWORD`, else from a prompt in a terminal.
    ///
    /// # Errors
    /// `VaultLocked` (exit 11) when neither is available.
    pub fn password(&self, vault_dir: &Path) -> anyhow::Result<Secret> {
        if let Some(value) = std::env::var_os(VAULT_PASSWORD_ENV) {
            let text = value
                .into_string()
                .map_err(|_| Failure::usage(format!("{VAULT_PASSWORD_ENV} is not valid UTF-8")))?;
            return Ok(Secret::new(text));
        }
        if self.interactive {
            let typed = rpassword::prompt_password("Vault password: ")?;
            return Ok(Secret::new(typed));
        }
        Err(Failure::new(
            ExitKind::VaultLocked,
            format!(
                "the vault in {} is locked and has a password: run `rackside unlock` first, or \
                 run in a terminal to be prompted",
                vault_dir.display()
            ),
        )
        .into())
    }
}

/// The opened vault, in this process or behind the agent.
pub(super) enum Backend {
    /// Opened here; closed (keys wiped) when the store is dropped.
    Direct(Box<Vault>),
    /// An agent that holds this vault unlocked.
    Agent(BlockingClient),
}

impl Backend {
    /// Uses the agent when it runs and holds this vault unlocked, else opens the vault here,
    /// creating a vault without a password when there is none yet.
    pub(super) fn open(
        location: &Location,
        keystore: &dyn DeviceKeyStore,
        source: PasswordSource,
    ) -> anyhow::Result<Self> {
        if let Some(client) = agent_for(&location.vault_dir)? {
            tracing::debug!("using the unlocked vault of the agent");
            return Ok(Backend::Agent(client));
        }
        let vault = open_direct(&location.vault_dir, keystore, source, true)?;
        Ok(Backend::Direct(Box::new(vault)))
    }

    pub(super) fn servers(&mut self) -> anyhow::Result<Vec<ServerRecord>> {
        Ok(match self {
            Backend::Direct(vault) => vault.servers()?,
            Backend::Agent(client) => client.servers()?,
        })
    }

    pub(super) fn server(&mut self, name: &str) -> anyhow::Result<Option<ServerRecord>> {
        Ok(match self {
            Backend::Direct(vault) => vault.server(name)?,
            Backend::Agent(client) => client.server(name)?,
        })
    }

    pub(super) fn put_server(&mut self, record: ServerRecord) -> anyhow::Result<()> {
        match self {
            Backend::Direct(vault) => vault.put_server(&record)?,
            Backend::Agent(client) => client.put_server(record)?,
        }
        Ok(())
    }

    pub(super) fn remove_server(&mut self, name: &str) -> anyhow::Result<()> {
        match self {
            Backend::Direct(vault) => {
                vault.remove_server(name)?;
            }
            Backend::Agent(client) => client.remove_server(name)?,
        }
        Ok(())
    }

    pub(super) fn credential(&mut self, server: &str) -> anyhow::Result<Option<Secret>> {
        Ok(match self {
            Backend::Direct(vault) => vault.credential(server)?,
            Backend::Agent(client) => client.credential(server)?,
        })
    }

    pub(super) fn put_credential(&mut self, server: &str, password: Secret) -> anyhow::Result<()> {
        match self {
            Backend::Direct(vault) => vault.put_credential(server, &password)?,
            Backend::Agent(client) => client.put_credential(server, password)?,
        }
        Ok(())
    }

    pub(super) fn setting(&mut self, key: &str) -> anyhow::Result<Option<String>> {
        Ok(match self {
            Backend::Direct(vault) => vault.setting(key)?,
            Backend::Agent(client) => {
                match client.request(&agent::Request::Setting { key: key.into() })? {
                    agent::Response::Setting { value } => value,
                    _ => {
                        anyhow::bail!("the vault agent sent an unexpected reply to a setting read")
                    }
                }
            }
        })
    }

    pub(super) fn put_setting(&mut self, key: &str, value: &str) -> anyhow::Result<()> {
        match self {
            Backend::Direct(vault) => vault.put_setting(key, value)?,
            Backend::Agent(client) => match client.request(&agent::Request::PutSetting {
                key: key.into(),
                value: value.into(),
            })? {
                agent::Response::Done => {}
                _ => anyhow::bail!("the vault agent sent an unexpected reply to a setting write"),
            },
        }
        Ok(())
    }

    pub(super) fn cache(&mut self, kind: &str, server: &str) -> anyhow::Result<Option<CacheEntry>> {
        Ok(match self {
            Backend::Direct(vault) => vault.cache(kind, server)?,
            Backend::Agent(client) => client.cache(kind, server)?,
        })
    }

    pub(super) fn put_cache(&mut self, entry: CacheEntry) -> anyhow::Result<()> {
        match self {
            Backend::Direct(vault) => vault.put_cache(&entry)?,
            Backend::Agent(client) => client.put_cache(entry)?,
        }
        Ok(())
    }
}

/// Opens the device key store that `RACKSIDE_KEYSTORE` names, or the platform's choice.
///
/// # Errors
/// The vault crate's `KeyStore` error for an unknown `RACKSIDE_KEYSTORE`.
pub fn keystore() -> anyhow::Result<Box<dyn DeviceKeyStore>> {
    Ok(rackside_vault::default_keystore()?)
}

/// Connects to an agent that holds the vault in `vault_dir` unlocked. Returns `None` when no
/// agent runs, when it is locked, or when it serves another vault.
///
/// # Errors
/// Only a socket path that cannot be derived; a dead or foreign socket is `None`.
pub fn agent_for(vault_dir: &Path) -> anyhow::Result<Option<BlockingClient>> {
    let socket = agent::default_socket_path()?;
    if !socket.exists() {
        return Ok(None);
    }
    let mut client = match BlockingClient::connect(&socket) {
        Ok(client) => client,
        Err(error) => {
            tracing::debug!(%error, "vault agent not usable");
            return Ok(None);
        }
    };
    match client.status() {
        Ok((Some(status), _)) if same_folder(&status.path, vault_dir) => Ok(Some(client)),
        Ok((Some(status), _)) => {
            tracing::debug!(agent_vault = %status.path.display(), "agent serves another vault");
            Ok(None)
        }
        Ok((None, _)) => Ok(None),
        Err(error) => {
            tracing::debug!(%error, "vault agent did not return its status");
            Ok(None)
        }
    }
}

/// Checks whether two paths name the same folder, comparing canonical forms when both exist.
pub fn same_folder(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Opens the vault in `dir` in this process. A missing vault is created without a password
/// when `create` is set (saying so on standard error). A vault with a password gets it from
/// `source`.
///
/// # Errors
/// The vault's own errors (locked, wrong password, corrupted, busy, disk full), mapped to exit
/// codes in `failure::describe`.
pub fn open_direct(
    dir: &Path,
    keystore: &dyn DeviceKeyStore,
    source: PasswordSource,
    create: bool,
) -> anyhow::Result<Vault> {
    let status = match Vault::inspect(dir, keystore) {
        Ok(status) => status,
        Err(rackside_vault::Error::NotFound { .. }) if create => {
            let vault = create_vault(dir, None, keystore)?;
            eprintln!(
                "note: created a vault without a password in {}, with the device secret in {}; \
                 set a password with `rackside vault passwd`",
                dir.display(),
                keystore.describe()
            );
            return Ok(vault);
        }
        Err(error) => return Err(error.into()),
    };
    let unlock = if status.password_set {
        Unlock::with_password(source.password(dir)?)
    } else {
        Unlock::without_password()
    };
    Ok(Vault::open(dir, unlock, keystore)?)
}

/// Creates a vault in `dir`. Without a password the Argon2id parameters are unused, so the
/// smallest ones are stored, and `vault passwd` calibrates them when it sets a password. With a
/// password they are calibrated now, which takes about half a second.
///
/// # Errors
/// The vault's own errors; `WeakPassword` names the policy's reason.
pub fn create_vault(
    dir: &Path,
    password: Option<Secret>,
    keystore: &dyn DeviceKeyStore,
) -> anyhow::Result<Vault> {
    let kdf = if password.is_some() {
        KdfChoice::default()
    } else {
        KdfChoice::Fixed(KdfParams::TEST)
    };
    Ok(Vault::create(
        dir,
        CreateOptions { password, kdf },
        keystore,
    )?)
}

/// Moves the entries of a plain `servers.json` in `config_dir` into the vault, then deletes
/// the file and its lock file. Returns how many entries moved.
///
/// Every entry is written (replacing a vault record of the same name) before anything is
/// deleted, so a crash in between leaves the file in place and the next run moves the same
/// entries again without duplicating them.
pub(super) fn migrate_legacy(config_dir: &Path, backend: &mut Backend) -> anyhow::Result<usize> {
    let path = config_dir.join(LEGACY_SERVERS_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => {
            return Err(error).with_context(|| format!("failed to read {}", path.display()))
        }
    };
    let entries: BTreeMap<String, ServerEntry> =
        serde_json::from_slice(&bytes).map_err(|error| {
            Failure::usage(format!(
                "invalid server list {}: {error}; fix the file or move it away, then rerun",
                path.display()
            ))
        })?;
    for (name, entry) in &entries {
        backend.put_server(super::to_record(name, entry)?)?;
    }
    match fs::remove_file(&path) {
        Ok(()) => {}
        // Another command migrated the same file at the same time.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(error).with_context(|| {
                format!(
                    "moved the servers into the vault but failed to delete {}; delete it by hand",
                    path.display()
                )
            })
        }
    }
    let _ = fs::remove_file(config_dir.join(LEGACY_LOCK_FILE));
    tracing::debug!(servers = entries.len(), "moved servers.json into the vault");
    Ok(entries.len())
}
