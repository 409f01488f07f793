//! A service's own TLS identity (generated on first start and kept in the state directory)
//! and the accept loop that serves the router over it with HTTP/1.1 and HTTP/2.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::apikeys::write_private_atomic;
use crate::error::{io_error, RelayError};

/// File name of the generated certificate inside the state directory.
pub const CERT_FILE: &str = "tls-cert.pem";
/// File name of the generated private key inside the state directory.
pub const KEY_FILE: &str = "tls-key.pem";
/// Time allowed for a TLS handshake and for request headers.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time open connections get to finish after shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

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

/// Serves `router` on `listener` over TLS until `shutdown` turns true, with at most
/// `max_connections` connections open.
pub async fn accept_loop(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    max_connections: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let permits = Arc::new(Semaphore::new(max_connections.max(1)));
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
            tracing::warn!(%peer, limit = max_connections, "connection limit reached; closing");
            continue;
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            serve_connection(stream, peer, acceptor, router, shutdown).await;
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

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
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
    // Handlers that rate-limit by client address read it as `ConnectInfo`.
    let service = TowerToHyperService::new(router.map_request(
        move |request: axum::extract::Request<hyper::body::Incoming>| {
            let mut request = request.map(axum::body::Body::new);
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            request
        },
    ));
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT);
    let connection = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        }
        _ = shutdown.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}
