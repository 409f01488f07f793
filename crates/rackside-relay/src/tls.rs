//! A service's own TLS identity (generated on first start and kept in the state directory)
//! and the accept loop that serves the router over it with HTTP/1.1 and HTTP/2.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::IntoResponse as _;
use axum::Router;
use http_body_util::BodyExt as _;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::apikeys::write_private_atomic;
use crate::error::{io_error, RelayError};

/// File name of the generated certificate inside the state directory.
pub const CERT_FILE: &str = "tls-cert.pem";
/// File name of the generated private key inside the state directory.
pub const KEY_FILE: &str = "tls-key.pem";
/// Time open connections get to finish after shutdown starts, and a connection closed for
/// idling or for a timed-out request gets to finish its last response.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Maximum number of concurrent HTTP/2 streams on one connection.
const MAX_CONCURRENT_STREAMS: u32 = 64;

/// Loads the certificate and key from `state_dir`, generating a self-signed pair for
/// `localhost` and 127.0.0.1 on first start. Returns the rustls configuration and the
/// certificate PEM that clients pin.
pub fn load_or_generate(
    state_dir: &Path,
) -> Result<(Arc<rustls::ServerConfig>, String), RelayError> {
    let cert_path = state_dir.join(CERT_FILE);
    let key_path = state_dir.join(KEY_FILE);
    if !cert_path.exists() || !key_path.exists() {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()])
            .map_err(|e| RelayError::Tls(e.to_string()))?;
        params
            .subject_alt_names
            .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "rackside service");
        params.distinguished_name = name;
        let key = KeyPair::generate().map_err(|e| RelayError::Tls(e.to_string()))?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| RelayError::Tls(e.to_string()))?;
        write_private_atomic(
            &key_path,
            zeroize::Zeroizing::new(key.serialize_pem()).as_bytes(),
        )?;
        std::fs::write(&cert_path, cert.pem()).map_err(|e| io_error("write", &cert_path, e))?;
        tracing::debug!(path = %cert_path.display(), "generated a self-signed certificate");
    }

    let cert_pem =
        std::fs::read_to_string(&cert_path).map_err(|e| io_error("read", &cert_path, e))?;
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            RelayError::Tls(format!(
                "{}: not a PEM certificate ({e})",
                cert_path.display()
            ))
        })?;
    let key_pem = zeroize::Zeroizing::new(
        std::fs::read(&key_path).map_err(|e| io_error("read", &key_path, e))?,
    );
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        RelayError::Tls(format!("{}: no PEM private key ({e})", key_path.display()))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| RelayError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| RelayError::Tls(format!("certificate and key do not match: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(config), cert_pem))
}

/// Limits that keep slow, stalled or idle clients from holding every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Maximum number of open connections; further ones are closed at accept.
    pub max_connections: usize,
    /// Maximum number of open connections from one client address (one IPv6 /64 counts as one
    /// address); further ones are closed at accept.
    pub max_per_address: usize,
    /// Time allowed for the TLS handshake, on HTTP/1 for each request's headers, and on
    /// HTTP/2 for the reply to a keep-alive ping.
    pub handshake_timeout: Duration,
    /// Time allowed for reading a request body and running its handler. A request that
    /// exceeds it gets 408 and its connection is closed.
    pub request_timeout: Duration,
    /// Time a connection may stay open with no request in progress, on HTTP/1 and HTTP/2.
    /// HTTP/2 connections also get a keep-alive ping at this interval.
    pub idle_timeout: Duration,
}

impl ConnectionLimits {
    /// Creates limits with at most `max_connections` open connections and the defaults of
    /// [`ConnectionLimits::default`] for everything else.
    pub fn new(max_connections: usize) -> Self {
        Self {
            max_connections,
            ..Self::default()
        }
    }
}

impl Default for ConnectionLimits {
    /// Returns 1024 connections, 16 per client address, 10 s for the handshake and headers,
    /// 30 s per request and 60 s idle.
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_per_address: 16,
            handshake_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Serves `router` on `listener` over TLS until `shutdown` turns true, with at most
/// `max_connections` connections open and the other limits of [`ConnectionLimits::default`].
pub async fn accept_loop(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    max_connections: usize,
    shutdown: watch::Receiver<bool>,
) {
    accept_loop_with(
        listener,
        tls,
        router,
        ConnectionLimits::new(max_connections),
        shutdown,
    )
    .await;
}

/// Serves `router` on `listener` over TLS until `shutdown` turns true, within `limits`.
pub async fn accept_loop_with(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    limits: ConnectionLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_address = AddressCounts::new(limits.max_per_address);
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::debug!(%error, "accept failed");
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, limit = limits.max_connections, "connection limit reached; closing");
            continue;
        };
        let Some(slot) = per_address.try_acquire(peer.ip()) else {
            tracing::debug!(
                address = %peer.ip(),
                limit = limits.max_per_address,
                "per-address connection limit reached; closing"
            );
            continue;
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            serve_connection(stream, peer, acceptor, router, limits, shutdown).await;
            drop(slot);
            drop(permit);
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        connections.abort_all();
    }
}

/// Open connections per client address, capped at a maximum.
#[derive(Debug, Clone)]
struct AddressCounts {
    max: usize,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl AddressCounts {
    fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            counts: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Takes one slot for `address`, or returns `None` when it already has the maximum open.
    fn try_acquire(&self, address: IpAddr) -> Option<AddressSlot> {
        let key = client_key(address);
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(key).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            key,
            counts: self.counts.clone(),
        })
    }
}

/// One open connection counted against its address; dropping it frees the slot.
#[derive(Debug)]
struct AddressSlot {
    key: IpAddr,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// Returns the address that limits count a client under: IPv4 addresses as they are
/// (IPv4-mapped IPv6 included), and IPv6 addresses cut to their /64 prefix, because one
/// client usually has a whole /64.
pub(crate) fn client_key(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
    }
}

/// Requests in progress on one connection, shared by its requests and its watchdog.
#[derive(Debug, Default)]
struct Activity {
    in_flight: AtomicUsize,
    timed_out: AtomicBool,
    changed: Notify,
}

/// One request in progress, from its start until its response body is dropped.
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::SeqCst);
        activity.changed.notify_waiters();
        Self(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

/// Reason the server closes a connection before its client does.
#[derive(Debug, Clone, Copy)]
enum CloseReason {
    Idle,
    RequestTimedOut,
    Shutdown,
}

/// Waits until a request on the connection has timed out, or until no request has been in
/// progress for `idle_timeout`.
async fn wait_for_close(activity: &Activity, idle_timeout: Duration) -> CloseReason {
    loop {
        let changed = activity.changed.notified();
        tokio::pin!(changed);
        // Registers the waiter before the checks, so a change between them is not missed.
        changed.as_mut().enable();
        if activity.timed_out.load(Ordering::SeqCst) {
            return CloseReason::RequestTimedOut;
        }
        if activity.in_flight.load(Ordering::SeqCst) == 0 {
            tokio::select! {
                () = &mut changed => {}
                () = tokio::time::sleep(idle_timeout) => return CloseReason::Idle,
            }
        } else {
            changed.await;
        }
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    router: Router,
    limits: ConnectionLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let tls = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let activity = Arc::new(Activity::default());
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            handle(
                request,
                peer,
                router.clone(),
                activity.clone(),
                limits.request_timeout,
            )
        })
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.handshake_timeout);
    // NOTE: hyper 1 has no header timeout for HTTP/2. A stream whose headers never finish
    // counts as no request, so the idle limit closes its connection.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .keep_alive_interval(Some(limits.idle_timeout))
        .keep_alive_timeout(limits.handshake_timeout);
    let connection = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(connection);
    let reason = tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            return;
        }
        _ = shutdown.changed() => CloseReason::Shutdown,
        reason = wait_for_close(&activity, limits.idle_timeout) => reason,
    };
    tracing::debug!(%peer, ?reason, "closing connection");
    connection.as_mut().graceful_shutdown();
    if tokio::time::timeout(SHUTDOWN_GRACE, connection)
        .await
        .is_err()
    {
        tracing::debug!(%peer, "connection did not finish in time; dropped");
    }
}

/// Runs one request through `router` within `request_timeout`. Handlers that rate-limit by
/// client address read it as `ConnectInfo`.
async fn handle(
    request: hyper::Request<hyper::body::Incoming>,
    peer: SocketAddr,
    router: Router,
    activity: Arc<Activity>,
    request_timeout: Duration,
) -> Result<axum::response::Response, Infallible> {
    let in_flight = InFlight::start(&activity);
    let mut request = request.map(Body::new);
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    match tokio::time::timeout(request_timeout, router.oneshot(request)).await {
        Ok(Ok(response)) => {
            // The request stays in progress until hyper drops the response body.
            Ok(response.map(move |body| {
                Body::new(body.map_frame(move |frame| {
                    let _ = &in_flight;
                    frame
                }))
            }))
        }
        Ok(Err(never)) => match never {},
        Err(_) => {
            tracing::debug!(%peer, limit = ?request_timeout, "request timed out; closing its connection");
            activity.timed_out.store(true, Ordering::SeqCst);
            drop(in_flight);
            Ok((
                StatusCode::REQUEST_TIMEOUT,
                axum::Json(serde_json::json!({
                    "error": "request not completed in time; send the whole body without pauses"
                })),
            )
                .into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_cap_holds_until_slot_dropped() {
        let counts = AddressCounts::new(2);
        let client: IpAddr = "127.0.0.1".parse().unwrap();
        let first = counts.try_acquire(client).unwrap();
        let _second = counts.try_acquire(client).unwrap();
        assert!(counts.try_acquire(client).is_none());
        assert!(counts.try_acquire("127.0.0.2".parse().unwrap()).is_some());
        drop(first);
        assert!(counts.try_acquire(client).is_some());
    }

    #[test]
    fn released_addresses_leave_no_entry() {
        let counts = AddressCounts::new(2);
        drop(counts.try_acquire("192.0.2.1".parse().unwrap()));
        assert!(counts.counts.lock().unwrap().is_empty());
    }

    #[test]
    fn ipv6_addresses_in_one_64_share_a_count() {
        let counts = AddressCounts::new(1);
        let _open = counts
            .try_acquire("2001:db8:1:2::1".parse().unwrap())
            .unwrap();
        assert!(counts
            .try_acquire("2001:db8:1:2:ffff::9".parse().unwrap())
            .is_none());
        assert!(counts
            .try_acquire("2001:db8:1:3::1".parse().unwrap())
            .is_some());
    }

    #[test]
    fn ipv4_mapped_address_counts_as_ipv4() {
        assert_eq!(
            client_key("::ffff:192.0.2.7".parse().unwrap()),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
    }

    #[tokio::test]
    async fn connection_with_request_in_progress_is_not_idle() {
        let activity = Arc::new(Activity::default());
        let request = InFlight::start(&activity);
        let idle = Duration::from_millis(100);
        let waited = tokio::time::timeout(idle * 5, wait_for_close(&activity, idle)).await;
        assert!(waited.is_err(), "closed while a request was in progress");
        drop(request);
        let reason = tokio::time::timeout(idle * 100, wait_for_close(&activity, idle)).await;
        assert!(matches!(reason, Ok(CloseReason::Idle)));
    }
}
