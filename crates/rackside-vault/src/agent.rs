//! The unlock agent: holds one unlocked vault for this user's later
//! commands, behind a per-user Unix socket, and locks it after a spell
//! without use.
//!
//! Like ssh-agent, the key never leaves the agent: clients send record
//! requests and get records back. The socket is 0600 in a 0700 folder and
//! every connection's peer uid must be this process's uid. Idle time is
//! measured on `CLOCK_BOOTTIME`, which keeps counting while the machine
//! sleeps, so a laptop that was suspended for an hour wakes up locked.
//!
//! The protocol is one JSON [`Request`] per frame and one [`Response`]
//! back, each frame a 4-byte big-endian length then the JSON.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{watch, Mutex};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::fsutil;

mod blocking;

use crate::keystore::DeviceKeyStore;
use crate::secret::Secret;
use crate::vault::{CacheEntry, ServerRecord, Unlock, Vault, VaultStatus};
pub use blocking::BlockingClient;

/// The idle time after which the agent locks, unless configured otherwise.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The environment variable that overrides [`default_socket_path`], so that
/// tests and separate vaults each get their own agent.
pub const SOCKET_ENV: &str = "RACKSIDE_AGENT_SOCKET";

/// The largest frame either side accepts.
pub const MAX_FRAME: usize = 1024 * 1024;

/// A clock for idle time. The agent only ever subtracts two readings.
pub trait Clock: Send + Sync {
    /// Time since an arbitrary fixed point.
    fn now(&self) -> Duration;
}

/// `CLOCK_BOOTTIME`: monotonic and counting time spent in suspend.
#[derive(Debug, Default, Clone, Copy)]
pub struct BootClock;

impl Clock for BootClock {
    fn now(&self) -> Duration {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let id = rustix::time::ClockId::Boottime;
        // NOTE: on macOS CLOCK_MONOTONIC counts sleep as well; on other
        // Unixes it may not, and suspend time then does not count as idle.
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let id = rustix::time::ClockId::Monotonic;
        let ts = rustix::time::clock_gettime(id);
        Duration::new(
            u64::try_from(ts.tv_sec).unwrap_or(0),
            u32::try_from(ts.tv_nsec).unwrap_or(0),
        )
    }
}

/// A clock moved by hand, for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: std::sync::Mutex<Duration>,
}

impl ManualClock {
    /// A clock at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A request to the agent.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Request {
    /// Whether the vault is unlocked, and its status when it is.
    Status,
    /// Opens the vault.
    Unlock {
        /// The app password, when the vault has one.
        password: Option<Secret>,
        /// Use quick unlock instead.
        #[serde(default)]
        quick: bool,
    },
    /// Locks at once: closes the database and wipes the keys.
    Lock,
    /// Locks and stops the agent.
    Shutdown,
    /// Every server.
    Servers,
    /// One server.
    Server {
        /// Its name.
        name: String,
    },
    /// Adds or replaces a server.
    PutServer {
        /// The record.
        server: ServerRecord,
    },
    /// Removes a server with its credential and cache.
    RemoveServer {
        /// Its name.
        name: String,
    },
    /// A server's password.
    Credential {
        /// The server name.
        server: String,
    },
    /// Stores a server's password.
    PutCredential {
        /// The server name.
        server: String,
        /// The password.
        password: Secret,
    },
    /// A setting.
    Setting {
        /// Its key.
        key: String,
    },
    /// Sets a setting.
    PutSetting {
        /// Its key.
        key: String,
        /// Its value.
        value: String,
    },
    /// A cached result.
    Cache {
        /// What kind of result.
        kind: String,
        /// The server.
        server: String,
    },
    /// Stores a cached result.
    PutCache {
        /// The entry.
        entry: CacheEntry,
    },
}

/// The agent's response.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Response {
    /// The request was carried out.
    Done,
    /// The response to `Status`.
    Status {
        /// The vault status, `None` when locked.
        vault: Option<VaultStatus>,
        /// Idle time left before the auto-lock, in seconds.
        idle_left_secs: u64,
    },
    /// The response to `Servers`.
    Servers {
        /// The servers.
        servers: Vec<ServerRecord>,
    },
    /// The answer to `Server`.
    Server {
        /// The server, when known.
        server: Option<ServerRecord>,
    },
    /// The answer to `Credential`.
    Credential {
        /// The password, when stored.
        password: Option<Secret>,
    },
    /// The answer to `Setting`.
    Setting {
        /// The value, when set.
        value: Option<String>,
    },
    /// The answer to `Cache`.
    Cache {
        /// The entry, when cached.
        entry: Option<CacheEntry>,
    },
    /// The vault is locked; unlock first.
    Locked,
    /// The request failed.
    Error {
        /// The one-line reason.
        message: String,
    },
}

/// How to run the agent.
#[derive(Clone)]
pub struct AgentConfig {
    /// The vault folder.
    pub vault_dir: PathBuf,
    /// The socket path; its folder is made 0700.
    pub socket_path: PathBuf,
    /// The idle time after which the vault locks.
    pub idle_timeout: Duration,
    /// The clock idle time is measured on.
    pub clock: Arc<dyn Clock>,
    /// Where the device secret lives.
    pub keystore: Arc<dyn DeviceKeyStore>,
    /// How often the idle timer is checked.
    pub check_interval: Duration,
    /// Stop the agent once the vault locks (by request or idle time).
    pub exit_when_locked: bool,
}

impl AgentConfig {
    /// A config with the default socket path, 15 minutes' idle timeout on
    /// `CLOCK_BOOTTIME`, a check every 5 seconds, and exit once locked.
    ///
    /// # Errors
    /// As for [`default_socket_path`].
    pub fn new(vault_dir: PathBuf, keystore: Arc<dyn DeviceKeyStore>) -> Result<Self> {
        Ok(AgentConfig {
            vault_dir,
            socket_path: default_socket_path()?,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            clock: Arc::new(BootClock),
            keystore,
            check_interval: Duration::from_secs(5),
            exit_when_locked: true,
        })
    }
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("vault_dir", &self.vault_dir)
            .field("socket_path", &self.socket_path)
            .field("idle_timeout", &self.idle_timeout)
            .field("keystore", &self.keystore.describe())
            .finish_non_exhaustive()
    }
}

/// `RACKSIDE_AGENT_SOCKET` when set, else `$XDG_RUNTIME_DIR/rackside/agent.sock`,
/// or `/tmp/rackside-UID/agent.sock` when there is no runtime folder.
///
/// # Errors
/// None today; kept fallible for platforms without either folder.
pub fn default_socket_path() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(SOCKET_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(runtime) => PathBuf::from(runtime).join("rackside"),
        None => {
            std::env::temp_dir().join(format!("rackside-{}", rustix::process::getuid().as_raw()))
        }
    };
    Ok(dir.join("agent.sock"))
}

/// The agent's state: the unlocked vault, if any, and the last use.
pub struct Agent {
    config: AgentConfig,
    vault: Option<Vault>,
    last_use: Duration,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("unlocked", &self.vault.is_some())
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// A locked agent; its idle time starts now.
    pub fn new(config: AgentConfig) -> Self {
        let last_use = config.clock.now();
        Agent {
            config,
            vault: None,
            last_use,
        }
    }

    /// Whether a vault is unlocked.
    pub fn is_unlocked(&self) -> bool {
        self.vault.is_some()
    }

    /// Locks when the idle time has run out; returns whether it had.
    pub fn check_idle(&mut self) -> bool {
        let idle = self.config.clock.now().saturating_sub(self.last_use);
        if idle < self.config.idle_timeout {
            return false;
        }
        if self.vault.is_some() {
            tracing::debug!(idle_secs = idle.as_secs(), "idle timeout, locking");
        }
        self.lock();
        true
    }

    /// Closes the vault and wipes its keys.
    pub fn lock(&mut self) {
        if let Some(vault) = self.vault.take() {
            if let Err(err) = vault.close() {
                tracing::debug!(%err, "closing the vault on lock");
            }
        }
    }

    /// Carries out one request (blocking: an unlock runs Argon2id).
    pub fn handle(&mut self, request: Request) -> Response {
        // 1. A request after the idle timeout finds the vault locked, even
        // when the periodic check has not run yet.
        self.check_idle();

        // 2. Status and lock do not count as use.
        match request {
            Request::Status => return self.status(),
            Request::Lock | Request::Shutdown => {
                self.lock();
                return Response::Done;
            }
            _ => {}
        }
        self.last_use = self.config.clock.now();

        // 3. Unlock, or a record operation on the unlocked vault.
        if let Request::Unlock { password, quick } = request {
            self.lock();
            let unlock = Unlock { password, quick };
            return match Vault::open(
                &self.config.vault_dir,
                unlock,
                self.config.keystore.as_ref(),
            ) {
                Ok(vault) => {
                    self.vault = Some(vault);
                    Response::Done
                }
                Err(err) => Response::Error {
                    message: err.to_string(),
                },
            };
        }
        let Some(vault) = self.vault.as_mut() else {
            return Response::Locked;
        };
        let result = match request {
            Request::Servers => vault.servers().map(|servers| Response::Servers { servers }),
            Request::Server { name } => vault
                .server(&name)
                .map(|server| Response::Server { server }),
            Request::PutServer { server } => vault.put_server(&server).map(|()| Response::Done),
            Request::RemoveServer { name } => vault.remove_server(&name).map(|_| Response::Done),
            Request::Credential { server } => vault
                .credential(&server)
                .map(|password| Response::Credential { password }),
            Request::PutCredential { server, password } => vault
                .put_credential(&server, &password)
                .map(|()| Response::Done),
            Request::Setting { key } => {
                vault.setting(&key).map(|value| Response::Setting { value })
            }
            Request::PutSetting { key, value } => {
                vault.put_setting(&key, &value).map(|()| Response::Done)
            }
            Request::Cache { kind, server } => vault
                .cache(&kind, &server)
                .map(|entry| Response::Cache { entry }),
            Request::PutCache { entry } => vault.put_cache(&entry).map(|()| Response::Done),
            Request::Status | Request::Lock | Request::Shutdown | Request::Unlock { .. } => {
                Ok(Response::Done)
            }
        };
        result.unwrap_or_else(|err| Response::Error {
            message: err.to_string(),
        })
    }

    fn status(&self) -> Response {
        let idle = self.config.clock.now().saturating_sub(self.last_use);
        let vault = match &self.vault {
            Some(vault) => match vault.status() {
                Ok(status) => Some(status),
                Err(err) => {
                    return Response::Error {
                        message: err.to_string(),
                    }
                }
            },
            None => None,
        };
        Response::Status {
            vault,
            idle_left_secs: self.config.idle_timeout.saturating_sub(idle).as_secs(),
        }
    }
}

/// A running agent.
#[derive(Debug)]
pub struct AgentHandle {
    socket_path: PathBuf,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl AgentHandle {
    /// The socket the agent listens on.
    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// Locks, stops the agent and removes its socket.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Waits until the agent stops by itself (shutdown request, or locked
    /// with `exit_when_locked`).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Binds the socket and runs the agent in the background of the current
/// tokio runtime.
///
/// # Errors
/// `UnsafePermissions` when the socket folder is open to others; `Agent`
/// when another agent already answers there; `Io` for the socket.
pub async fn serve(config: AgentConfig) -> Result<AgentHandle> {
    let path = config.socket_path.clone();
    let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    fsutil::ensure_private_dir(&dir)?;
    if path.exists() {
        if UnixStream::connect(&path).await.is_ok() {
            return Err(Error::Agent {
                path,
                message: "another agent already runs here: use it, or run `rackside lock` first"
                    .into(),
            });
        }
        std::fs::remove_file(&path).map_err(|e| Error::io("remove stale socket", &path, e))?;
    }
    let listener = UnixListener::bind(&path).map_err(|e| Error::io("listen on", &path, e))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io("restrict", &path, e))?;
    }

    let (stop, stop_rx) = watch::channel(false);
    let agent = Arc::new(Mutex::new(Agent::new(config.clone())));
    let task = tokio::spawn(run(listener, agent, config, stop.clone(), stop_rx));
    tracing::debug!(socket = %path.display(), "vault agent listening");
    Ok(AgentHandle {
        socket_path: path,
        stop,
        task,
    })
}

async fn run(
    listener: UnixListener,
    agent: Arc<Mutex<Agent>>,
    config: AgentConfig,
    stop: watch::Sender<bool>,
    mut stop_rx: watch::Receiver<bool>,
) {
    let uid = rustix::process::getuid().as_raw();
    let mut ticker = tokio::time::interval(config.check_interval);
    loop {
        tokio::select! {
            _ = stop_rx.changed() => break,
            _ = ticker.tick() => {
                let mut agent = agent.lock().await;
                if agent.check_idle() && config.exit_when_locked {
                    break;
                }
            }
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                match stream.peer_cred() {
                    Ok(cred) if cred.uid() == uid => {}
                    Ok(cred) => {
                        tracing::debug!(peer_uid = cred.uid(), "refused a connection from another user");
                        continue;
                    }
                    Err(err) => {
                        tracing::debug!(%err, "refused a connection without peer credentials");
                        continue;
                    }
                }
                tokio::spawn(connection(stream, agent.clone(), stop.clone(), config.exit_when_locked));
            }
        }
    }
    agent.lock().await.lock();
    let _ = std::fs::remove_file(&config.socket_path);
    tracing::debug!("vault agent stopped");
}

async fn connection(
    mut stream: UnixStream,
    agent: Arc<Mutex<Agent>>,
    stop: watch::Sender<bool>,
    exit_when_locked: bool,
) {
    loop {
        let frame = match read_frame(&mut stream).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(err) => {
                tracing::debug!(%err, "dropping agent connection");
                return;
            }
        };
        let (response, stopping) = match serde_json::from_slice::<Request>(&frame) {
            Ok(request) => {
                let stopping = matches!(request, Request::Shutdown)
                    || (exit_when_locked && matches!(request, Request::Lock));
                let agent = agent.clone();
                let response =
                    tokio::task::spawn_blocking(move || agent.blocking_lock().handle(request))
                        .await
                        .unwrap_or_else(|_| Response::Error {
                            message: "the agent failed while handling the request".into(),
                        });
                (response, stopping)
            }
            Err(err) => (
                Response::Error {
                    message: format!(
                        "malformed request at line {} column {}",
                        err.line(),
                        err.column()
                    ),
                },
                false,
            ),
        };
        let sent = match write_json(&mut stream, &response).await {
            // The response did not fit in one frame, so the client gets a reason instead.
            Err(error) if error.kind() == std::io::ErrorKind::FileTooLarge => {
                let message = format!(
                    "answer too large for the agent ({error}); run `rackside lock` and retry"
                );
                write_json(&mut stream, &Response::Error { message }).await
            }
            other => other,
        };
        if stopping {
            let _ = stop.send(true);
        }
        if sent.is_err() {
            return;
        }
    }
}

/// A connection to a running agent.
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    stream: UnixStream,
}

impl Client {
    /// Connects to the agent at `path`.
    ///
    /// # Errors
    /// `Agent` when no agent listens there.
    pub async fn connect(path: &Path) -> Result<Client> {
        let stream = UnixStream::connect(path).await.map_err(|e| Error::Agent {
            path: path.to_path_buf(),
            message: format!("no agent is running ({e}): run `rackside unlock`"),
        })?;
        Ok(Client {
            path: path.to_path_buf(),
            stream,
        })
    }

    /// Sends one request and reads the answer.
    ///
    /// # Errors
    /// `Agent` when the connection fails or the answer does not parse.
    pub async fn request(&mut self, request: &Request) -> Result<Response> {
        let agent_err = |message: String| Error::Agent {
            path: self.path.clone(),
            message,
        };
        write_json(&mut self.stream, request)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::FileTooLarge => {
                    agent_err(format!("request too large for the agent ({e})"))
                }
                _ => agent_err(format!("cannot send: {e}")),
            })?;
        let frame = read_frame(&mut self.stream)
            .await
            .map_err(|e| agent_err(format!("cannot read the answer: {e}")))?
            .ok_or_else(|| agent_err("the agent closed the connection".into()))?;
        serde_json::from_slice(&frame).map_err(|e| agent_err(format!("malformed answer: {e}")))
    }

    /// Unlocks the vault in the agent.
    ///
    /// # Errors
    /// `AgentRefused` with the vault's reason (wrong password and so on).
    pub async fn unlock(&mut self, unlock: Unlock) -> Result<()> {
        let request = Request::Unlock {
            password: unlock.password,
            quick: unlock.quick,
        };
        self.expect_done(&request).await
    }

    /// Locks the vault at once.
    ///
    /// # Errors
    /// `Agent` when the connection fails.
    pub async fn lock(&mut self) -> Result<()> {
        self.expect_done(&Request::Lock).await
    }

    /// The vault status (`None` when locked) and seconds left before the
    /// auto-lock.
    ///
    /// # Errors
    /// `Agent` when the connection fails.
    pub async fn status(&mut self) -> Result<(Option<VaultStatus>, u64)> {
        match self.request(&Request::Status).await? {
            Response::Status {
                vault,
                idle_left_secs,
            } => Ok((vault, idle_left_secs)),
            other => Err(unexpected(other)),
        }
    }

    /// Every server.
    ///
    /// # Errors
    /// `Locked`, `AgentRefused`, `Agent`.
    pub async fn servers(&mut self) -> Result<Vec<ServerRecord>> {
        match self.request(&Request::Servers).await? {
            Response::Servers { servers } => Ok(servers),
            other => Err(unexpected(other)),
        }
    }

    /// One server.
    ///
    /// # Errors
    /// `Locked`, `AgentRefused`, `Agent`.
    pub async fn server(&mut self, name: &str) -> Result<Option<ServerRecord>> {
        match self.request(&Request::Server { name: name.into() }).await? {
            Response::Server { server } => Ok(server),
            other => Err(unexpected(other)),
        }
    }

    /// Adds or replaces a server.
    ///
    /// # Errors
    /// `Locked`, `AgentRefused`, `Agent`.
    pub async fn put_server(&mut self, server: ServerRecord) -> Result<()> {
        self.expect_done(&Request::PutServer { server }).await
    }

    /// Removes a server with its credential and cache.
    ///
    /// # Errors
    /// `Locked`, `AgentRefused`, `Agent`.
    pub async fn remove_server(&mut self, name: &str) -> Result<()> {
        self.expect_done(&Request::RemoveServer { name: name.into() })
            .await
    }

    /// A server's password.
    ///
    /// # Errors
    /// `Locked`, `AgentRefused`, `Agent`.
    pub async fn credential(&mut self, server: &str) -> Result<Option<Secret>> {
        match self
            .request(&Request::Credential {
                server: server.into(),
            })
            .await?
        {
            Response::Credential { password } => Ok(password),
            other => Err(unexpected(other)),
        }
    }

    /// Stores a server's password.
    ///
    /// # Errors
    /// `Locked`, `AgentRefused`, `Agent`.
    pub async fn put_credential(&mut self, server: &str, password: Secret) -> Result<()> {
        self.expect_done(&Request::PutCredential {
            server: server.into(),
            password,
        })
        .await
    }

    /// A setting.
    ///
    /// # Errors
    /// `Locked`, `AgentRefused`, `Agent`.
    pub async fn setting(&mut self, key: &str) -> Result<Option<String>> {
        match self.request(&Request::Setting { key: key.into() }).await? {
            Response::Setting { value } => Ok(value),
            other => Err(unexpected(other)),
        }
    }

    /// Sets a setting.
    ///
    /// # Errors
    /// `Locked`, `AgentRefused`, `Agent`.
    pub async fn put_setting(&mut self, key: &str, value: &str) -> Result<()> {
        self.expect_done(&Request::PutSetting {
            key: key.into(),
            value: value.into(),
        })
        .await
    }

    /// A cached result.
    ///
    /// # Errors
    /// `Locked`, `AgentRefused`, `Agent`.
    pub async fn cache(&mut self, kind: &str, server: &str) -> Result<Option<CacheEntry>> {
        match self
            .request(&Request::Cache {
                kind: kind.into(),
                server: server.into(),
            })
            .await?
        {
            Response::Cache { entry } => Ok(entry),
            other => Err(unexpected(other)),
        }
    }

    /// Stores a cached result.
    ///
    /// # Errors
    /// `Locked`, `AgentRefused`, `Agent`.
    pub async fn put_cache(&mut self, entry: CacheEntry) -> Result<()> {
        self.expect_done(&Request::PutCache { entry }).await
    }

    /// Locks and stops the agent.
    ///
    /// # Errors
    /// `Agent` when the connection fails.
    pub async fn shutdown(&mut self) -> Result<()> {
        self.expect_done(&Request::Shutdown).await
    }

    async fn expect_done(&mut self, request: &Request) -> Result<()> {
        match self.request(request).await? {
            Response::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}

pub(crate) fn unexpected(response: Response) -> Error {
    match response {
        Response::Locked => Error::Locked,
        Response::Error { message } => Error::AgentRefused { message },
        other => Error::AgentRefused {
            message: format!("unexpected answer {:?}", std::mem::discriminant(&other)),
        },
    }
}

async fn read_frame(stream: &mut UnixStream) -> std::io::Result<Option<Zeroizing<Vec<u8>>>> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes is above the limit of {MAX_FRAME}"),
        ));
    }
    let mut frame = Zeroizing::new(vec![0u8; len]);
    stream.read_exact(&mut frame).await?;
    Ok(Some(frame))
}

async fn write_json<T: Serialize>(stream: &mut UnixStream, value: &T) -> std::io::Result<()> {
    let body = Zeroizing::new(
        serde_json::to_vec(value)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?,
    );
    if body.len() > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("{} bytes", body.len()),
        ));
    }
    let mut frame = Zeroizing::new(Vec::with_capacity(body.len() + 4));
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    stream.write_all(&frame).await
}
