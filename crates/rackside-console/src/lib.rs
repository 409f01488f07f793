//! The fleet console (the one-to-many role).
//!
//! BMCs deliver Redfish events to the console's listener, each source proving itself with
//! its own secret header. The console stores alerts in SQLite, de-duplicated, and serves them
//! to logged-in clients over a REST API described at `/openapi.json`. Each new alert is
//! encrypted to every subscribed device (RFC 8291) and pushed through the relay with the
//! console's API key. A subscription whose device the relay reports gone is disabled.
//!
//! BMCs are added under the client's trust rules (see [`trust`]).
//!
//! When `POST /api/devices` carries a BMC account, the console keeps it encrypted (see
//! [`accounts`]) and chooses the BMC's event [`intake`] from its EventService: it creates a
//! push subscription itself (see [`bmc_link`]), reads the SSE stream (see [`sse`]), or polls
//! the logs. It also polls health and a short inventory on a schedule (see [`poll`]).
//! Without an account, the caller points the BMC at the destination and header in the
//! response, and the BMC is not polled.
//!
//! Events below [`ConsoleConfig::min_severity`] (Warning by default), such as logins, go to
//! the event log only: they are neither alerts nor forwarded.

#![deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
#![cfg_attr(
    test,
    allow(clippy::expect_used, clippy::indexing_slicing, clippy::panic)
)]

pub mod accounts;
pub mod api;
pub mod bmc_link;
mod error;
pub mod events;
pub mod forward;
pub mod inbox;
pub mod intake;
pub mod login;
pub mod poll;
pub mod sse;
pub mod store;
pub mod trust;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use tokio::net::TcpListener;
use tokio::sync::watch;
use zeroize::Zeroizing;

pub use error::ConsoleError;
pub use poll::{PollOutcome, PollSettings};
pub use store::Severity;

use crate::error::invalid;

/// Time allowed for one API request, body and handler included.
pub const REQUEST_LIMIT: Duration = Duration::from_secs(120);

/// Interval at which the console requests the relay's list of removed registrations.
pub const GONE_SYNC_INTERVAL: Duration = Duration::from_secs(30);

/// The relay the console forwards to.
#[derive(Clone)]
pub struct RelayConfig {
    /// Base URL, `https://host:port/`.
    pub url: url::Url,
    /// The console's name at the relay.
    pub console_name: String,
    /// The console's API key at the relay.
    pub api_key: Zeroizing<String>,
    /// The relay certificate (PEM) to trust, for relays with self-signed certificates.
    pub ca_pem: Option<String>,
}

impl std::fmt::Debug for RelayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayConfig")
            .field("url", &self.url.as_str())
            .field("console_name", &self.console_name)
            .finish_non_exhaustive()
    }
}

/// Everything the console needs to start.
#[derive(Debug)]
pub struct ConsoleConfig {
    /// Address to listen on; loopback by default.
    pub listen: SocketAddr,
    /// Folder for the database and the TLS identity.
    pub state_dir: PathBuf,
    /// Users: name and password. The passwords are hashed with Argon2id at start.
    pub users: Vec<(String, Zeroizing<String>)>,
    /// Relay that alerts are forwarded to; `None` keeps them on the console only.
    pub relay: Option<RelayConfig>,
    /// The host name BMCs use to reach the listener; `localhost` by default.
    pub public_host: String,
    /// Polling and event intake settings.
    pub poll: PollSettings,
    /// Events of this severity and above become alerts; Warning by default.
    pub min_severity: Severity,
}

impl ConsoleConfig {
    /// Creates a configuration with the defaults: loopback port 8445, no users, no relay,
    /// the [`PollSettings`] defaults, alerts from Warning up.
    pub fn new(state_dir: PathBuf) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8445)),
            state_dir,
            users: Vec::new(),
            relay: None,
            public_host: "localhost".to_owned(),
            poll: PollSettings::default(),
            min_severity: Severity::Warning,
        }
    }
}

/// A console serving until [`RunningConsole::shutdown`].
#[derive(Debug)]
pub struct RunningConsole {
    /// The bound address.
    pub addr: SocketAddr,
    /// The console's certificate in PEM.
    pub cert_pem: String,
    /// Handler state, for tests.
    pub state: api::AppState,
    /// Accounts, polling and SSE streams.
    pub fleet: Arc<poll::Fleet>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningConsole {
    /// Stops accepting and background work, and waits for open connections briefly.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }

    /// Polls every BMC with an account now, after any round in progress, and returns the
    /// outcomes in the order the polls finished.
    ///
    /// # Errors
    /// [`ConsoleError::Store`] when the list of BMCs cannot be read.
    pub async fn poll_now(&self) -> Result<Vec<PollOutcome>, ConsoleError> {
        self.fleet.poll_round().await
    }

    /// Requests the relay's removed registrations once and disables their subscriptions.
    ///
    /// # Errors
    /// [`ConsoleError::Relay`] when the relay cannot be asked.
    pub async fn sync_gone(&self) -> Result<usize, ConsoleError> {
        match &self.state.relay {
            Some(relay) => relay.sync_gone(&self.state.store).await,
            None => Ok(0),
        }
    }
}

/// Opens the store and the account vault, binds the socket and starts serving, polling and
/// the SSE streams.
///
/// # Errors
/// [`ConsoleError::Invalid`] for a registry prefix other than letters and digits; store,
/// account vault, TLS, relay client and bind errors.
pub async fn start(config: ConsoleConfig) -> Result<RunningConsole, ConsoleError> {
    // 1. Settings, then state: database, accounts, TLS identity, users.
    if let Some(prefix) = config
        .poll
        .registry_prefixes
        .iter()
        .find(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric()))
    {
        return Err(invalid(
            "registry prefix",
            format!("{prefix:?} is not a Redfish registry prefix: use letters and digits only"),
        ));
    }
    std::fs::create_dir_all(&config.state_dir).map_err(|source| ConsoleError::Io {
        action: "create",
        path: config.state_dir.clone(),
        source,
    })?;
    let store = Arc::new(store::Store::open(&config.state_dir)?);
    let accounts = Arc::new(accounts::AccountStore::open(&config.state_dir)?);
    let (tls, cert_pem) = rackside_relay::tls::load_or_generate(&config.state_dir)?;
    let users = config
        .users
        .iter()
        .map(|(name, password)| hash_user(name, password))
        .collect::<Result<Vec<_>, _>>()?;
    let relay = config
        .relay
        .map(build_relay_link)
        .transpose()?
        .map(Arc::new);

    // 2. Socket and router.
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ConsoleError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ConsoleError::Bind {
        addr: config.listen,
        source,
    })?;
    let state = api::AppState {
        store,
        relay,
        users: Arc::new(users),
        sessions: Arc::new(Mutex::new(HashMap::new())),
        listener_base: format!("https://{}:{}/events/", config.public_host, addr.port()),
        login: Arc::new(login::LoginGuard::new()?),
    };
    let (shutdown, receiver) = watch::channel(false);
    let sink = intake::Sink {
        store: state.store.clone(),
        relay: state.relay.clone(),
        min_severity: config.min_severity,
    };
    let fleet = Arc::new(poll::Fleet::new(
        sink,
        accounts,
        config.poll,
        receiver.clone(),
    ));
    // Adding a device waits for several requests to the BMC, each up to its own time-out,
    // so requests get more time than the relay's default allows.
    let limits = rackside_relay::tls::ConnectionLimits {
        request_timeout: REQUEST_LIMIT,
        ..rackside_relay::tls::ConnectionLimits::default()
    };
    let mut tasks = vec![tokio::spawn(rackside_relay::tls::accept_loop_with(
        listener,
        tls,
        api::service(state.clone(), fleet.clone()),
        limits,
        receiver.clone(),
    ))];

    // 3. Polling, first right away, and the SSE streams of the BMCs that use them.
    tasks.push(tokio::spawn(fleet.clone().run_schedule()));
    fleet.wake();
    for source in state.store.source_list()? {
        if source.intake == intake::Intake::Sse.as_str() {
            fleet.start_stream(&source.bmc);
        }
    }

    // 4. The periodic check for devices the relay reports gone.
    if let Some(relay) = state.relay.clone() {
        let store = state.store.clone();
        let mut stop = receiver;
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    () = tokio::time::sleep(GONE_SYNC_INTERVAL) => {}
                }
                match relay.sync_gone(&store).await {
                    Ok(0) => {}
                    Ok(changed) => tracing::info!(changed, "subscriptions disabled: devices gone"),
                    Err(error) => tracing::warn!(%error, "failed to collect removed registrations"),
                }
            }
        }));
    }
    tracing::info!(%addr, "console listening");
    Ok(RunningConsole {
        addr,
        cert_pem,
        state,
        fleet,
        shutdown,
        tasks,
    })
}

fn hash_user(name: &str, password: &str) -> Result<api::User, ConsoleError> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    if password.chars().count() < 12 {
        return Err(invalid(
            "password",
            format!("password of user {name} is shorter than 12 characters"),
        ));
    }
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let hash = argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| invalid("password", e.to_string()))?;
    Ok(api::User {
        name: name.to_owned(),
        password_hash: hash.to_string(),
    })
}

fn build_relay_link(config: RelayConfig) -> Result<forward::RelayLink, ConsoleError> {
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = &config.ca_pem {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| invalid("relay certificate", e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| invalid("relay certificate", e.to_string()))?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("TLS settings", e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        builder = builder.use_preconfigured_tls(tls);
    }
    let http = builder
        .build()
        .map_err(|e| invalid("relay client", e.to_string()))?;
    Ok(forward::RelayLink {
        url: config.url,
        api_key: config.api_key,
        console_name: config.console_name,
        http,
    })
}
