//! The HTTPS accept loop: TLS handshake, per-connection byte counting, a connection cap in
//! total and per client address, a header read timeout and graceful shutdown.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::fault::FaultControl;
use crate::service::ClientAddr;
use crate::state::BmcState;

/// How long shutdown waits for open connections to finish their requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Counters of one running BMC, taken at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// TCP connections accepted.
    pub connections: u64,
    /// TLS handshakes that completed.
    pub tls_handshakes_completed: u64,
    /// Plaintext application bytes read from clients after their handshakes, summed.
    pub application_bytes_received: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    connections: AtomicU64,
    handshakes: AtomicU64,
    application_bytes: Arc<AtomicU64>,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> ConnectionStats {
        ConnectionStats {
            connections: self.connections.load(Ordering::SeqCst),
            tls_handshakes_completed: self.handshakes.load(Ordering::SeqCst),
            application_bytes_received: self.application_bytes.load(Ordering::SeqCst),
        }
    }
}

/// A BMC serving HTTPS on a background task.
#[derive(Debug)]
pub struct RunningBmc {
    pub(crate) local_addr: SocketAddr,
    pub(crate) certificate: CertificateDer<'static>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) faults: FaultControl,
    pub(crate) state: Arc<BmcState>,
    pub(crate) shutdown: watch::Sender<bool>,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

impl RunningBmc {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The server certificate (leaf) presented in every handshake.
    pub fn certificate_der(&self) -> CertificateDer<'static> {
        self.certificate.clone()
    }

    /// Connection, handshake and application byte counters.
    pub fn stats(&self) -> ConnectionStats {
        self.counters.snapshot()
    }

    /// The run-time fault switch.
    pub fn faults(&self) -> FaultControl {
        self.faults.clone()
    }

    /// Returns the service tag of the served system, as in its `SKU` or `SerialNumber`.
    pub fn service_tag(&self) -> String {
        self.state.service_tag().to_owned()
    }

    /// Returns the state behind the service, which the requests it serves share.
    pub fn state(&self) -> Arc<BmcState> {
        self.state.clone()
    }

    /// Appends an entry to the lifecycle log; see [`BmcState::record_event`].
    pub fn record_event(&self, key: &str, message: &str, user: Option<&str>, source: Option<&str>) {
        self.state.record_event(key, message, user, source);
    }

    /// Stops accepting, lets open requests finish (at most 5 s) and closes every connection.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        if let Err(error) = self.task.await {
            tracing::debug!(%error, "accept loop ended abnormally");
        }
    }
}

/// Settings of the accept loop.
pub(crate) struct LoopSettings {
    pub(crate) max_connections: usize,
    pub(crate) max_connections_per_client: usize,
    pub(crate) header_read_timeout: Duration,
}

/// Open connections by client IP address.
#[derive(Debug, Default)]
struct ClientSlots {
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl ClientSlots {
    /// Takes a slot for `ip`, unless it already has `limit` open connections.
    fn take(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<ClientSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            slots: self.clone(),
            ip,
        })
    }
}

/// One connection's slot in [`ClientSlots`], given back on drop.
struct ClientSlot {
    slots: Arc<ClientSlots>,
    ip: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self
            .slots
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Accepts connections until `shutdown` turns true.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    counters: Arc<Counters>,
    settings: LoopSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(settings.max_connections));
    let client_slots = Arc::new(ClientSlots::default());
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                tracing::debug!(%error, "accept failed");
                continue;
            }
        };
        counters.connections.fetch_add(1, Ordering::SeqCst);
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%peer, limit = settings.max_connections, "connection limit reached; closing");
            drop(stream);
            continue;
        };
        let limit = settings.max_connections_per_client;
        let Some(slot) = client_slots.take(peer.ip(), limit) else {
            tracing::debug!(%peer, limit, "connection limit per client reached; closing");
            drop(stream);
            continue;
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let counters = counters.clone();
        let shutdown = shutdown.clone();
        let timeout = settings.header_read_timeout;
        connections.spawn(async move {
            serve_connection(stream, peer, acceptor, router, counters, timeout, shutdown).await;
            drop(slot);
            drop(permit);
        });
        // Reap finished connection tasks so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        tracing::debug!("connections still open after the shutdown grace period; aborting them");
        connections.abort_all();
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    router: Router,
    counters: Arc<Counters>,
    timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let tls = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
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
    counters.handshakes.fetch_add(1, Ordering::SeqCst);
    let counted = CountingStream {
        inner: tls,
        counter: counters.application_bytes.clone(),
    };

    let service = router.map_request(
        move |mut request: axum::extract::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ClientAddr(peer));
            request.map(axum::body::Body::new)
        },
    );
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(timeout);
    let connection =
        builder.serve_connection(TokioIo::new(counted), TowerToHyperService::new(service));
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        }
        _ = shutdown.changed() => {
            connection.as_mut().graceful_shutdown();
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error during shutdown");
            }
        }
    }
}

/// A stream that adds the number of bytes read to a shared counter.
struct CountingStream<S> {
    inner: S,
    counter: Arc<AtomicU64>,
}

impl<S: AsyncRead + Unpin> AsyncRead for CountingStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len().saturating_sub(before);
        self.counter.fetch_add(read as u64, Ordering::SeqCst);
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CountingStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
