//! The push relay (the OpenManage Mobile Cloud Services role).
//!
//! Consoles send alerts over HTTPS with an API key; the relay pushes each one to the device
//! through Web Push, FCM HTTP v1 or APNs. Alerts arrive already encrypted to the device
//! ([`ece`], RFC 8291), so the relay handles only ciphertext and a count of new alerts. They
//! live in a bounded in-memory queue ([`queue`]) and are dropped once delivered, expired or
//! failed: nothing about an alert is written to disk or logged beyond ids and sizes.
//!
//! State on disk, all under the state directory: the API key hashes ([`apikeys`]), the
//! registrations keyed by token hash ([`registry`]), the VAPID key and the TLS identity.

#![deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
#![cfg_attr(
    test,
    allow(clippy::expect_used, clippy::indexing_slicing, clippy::panic)
)]

pub mod apikeys;
pub mod ece;
mod error;
pub mod jwt;
pub mod providers;
pub mod pushservice;
pub mod queue;
pub mod registry;
pub mod server;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use zeroize::Zeroizing;

pub use error::RelayError;
pub use tls::{CERT_FILE, KEY_FILE};

use crate::error::io_error;

/// File name of the VAPID signing key (PKCS#8 DER) inside the state directory.
pub const VAPID_KEY_FILE: &str = "vapid-key.der";

/// Everything the relay needs to start.
#[derive(Debug)]
pub struct RelayConfig {
    /// Address to listen on; loopback by default.
    pub listen: SocketAddr,
    /// Directory for keys, registrations and the TLS identity.
    pub state_dir: PathBuf,
    /// Most alerts waiting for delivery at once; pushes beyond it get 503.
    pub queue_capacity: usize,
    /// Most provider requests in flight at once.
    pub concurrency: usize,
    /// Connection caps and time limits of the HTTPS listener.
    pub connections: tls::ConnectionLimits,
    /// Maximum registration requests per minute from one client address; further ones get
    /// 429 with `Retry-After`.
    pub registrations_per_minute: u32,
    /// Back-off for temporary provider failures.
    pub retry: queue::RetryPolicy,
    /// Time to live of a push that names none.
    pub default_ttl: Duration,
    /// Maximum time to live a push may request.
    pub max_ttl: Duration,
    /// Provider endpoints and credentials.
    pub providers: providers::ProviderConfig,
    /// Caps on registrations, per console and in total.
    pub registry_limits: registry::RegistryLimits,
}

impl RelayConfig {
    /// Creates a configuration with the defaults: loopback port 8443, 10 000 queued alerts, 64
    /// requests in flight, the connection limits of [`tls::ConnectionLimits::default`], 30
    /// registration requests per minute per client address, one hour default and one day
    /// maximum time to live, and the registration limits of
    /// [`registry::RegistryLimits::default`].
    pub fn new(state_dir: PathBuf) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            state_dir,
            queue_capacity: 10_000,
            concurrency: 64,
            connections: tls::ConnectionLimits::default(),
            registrations_per_minute: 30,
            retry: queue::RetryPolicy::default(),
            default_ttl: Duration::from_secs(3600),
            max_ttl: Duration::from_secs(24 * 3600),
            providers: providers::ProviderConfig::default(),
            registry_limits: registry::RegistryLimits::default(),
        }
    }
}

/// A relay serving on its socket until [`RunningRelay::shutdown`].
#[derive(Debug)]
pub struct RunningRelay {
    /// The bound address.
    pub addr: SocketAddr,
    /// The relay's certificate in PEM, for clients to trust or pin.
    pub cert_pem: String,
    /// The shared handler state, for counters and tests.
    pub state: server::AppState,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningRelay {
    /// Stops accepting, lets open connections finish for a few seconds and returns. The
    /// in-memory queue is dropped with the relay.
    pub async fn shutdown(self) {
        self.state.queue.stop();
        let _ = self.shutdown.send(true);
        if let Err(error) = self.task.await {
            tracing::debug!(%error, "relay task ended abnormally");
        }
    }
}

/// Opens the state, binds the socket and starts serving.
///
/// # Errors
/// State, key, TLS and bind errors, each naming the file or address involved.
pub async fn start(config: RelayConfig) -> Result<RunningRelay, RelayError> {
    // 1. State: keys, registrations, VAPID key, TLS identity.
    std::fs::create_dir_all(&config.state_dir)
        .map_err(|e| io_error("create", &config.state_dir, e))?;
    let keys = Arc::new(apikeys::ApiKeyStore::open(&config.state_dir));
    let registry =
        Arc::new(registry::Registry::open(&config.state_dir)?.with_limits(config.registry_limits));
    let vapid_der = load_or_generate_vapid(&config.state_dir)?;
    let providers = Arc::new(providers::Providers::new(config.providers, &vapid_der)?);
    let (tls, cert_pem) = tls::load_or_generate(&config.state_dir)?;

    // 2. The queue and the router.
    let queue = queue::Queue::start(
        config.queue_capacity,
        config.concurrency,
        config.retry,
        providers.clone(),
        registry.clone(),
    );
    let state = server::AppState {
        keys,
        registry,
        queue,
        providers,
        default_ttl: config.default_ttl,
        max_ttl: config.max_ttl,
        registration_limiter: Arc::new(server::RegistrationLimiter::new(
            config.registrations_per_minute,
        )),
    };
    let router = server::router(state.clone());

    // 3. The socket.
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| RelayError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| RelayError::Bind {
        addr: config.listen,
        source,
    })?;
    let (shutdown, receiver) = watch::channel(false);
    let task = tokio::spawn(tls::accept_loop_with(
        listener,
        tls,
        router,
        config.connections,
        receiver,
    ));
    tracing::info!(%addr, "relay listening");
    Ok(RunningRelay {
        addr,
        cert_pem,
        state,
        shutdown,
        task,
    })
}

fn load_or_generate_vapid(state_dir: &std::path::Path) -> Result<Zeroizing<Vec<u8>>, RelayError> {
    let path = state_dir.join(VAPID_KEY_FILE);
    match std::fs::read(&path) {
        Ok(der) => Ok(Zeroizing::new(der)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (_, der) = jwt::Signer::generate_es256()?;
            apikeys::write_private_atomic(&path, &der)?;
            tracing::debug!(path = %path.display(), "generated a VAPID key");
            Ok(der)
        }
        Err(e) => Err(io_error("read", &path, e)),
    }
}
