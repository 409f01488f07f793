//! Reading a server's certificate chain without sending any application data.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::error::TrustError;
use crate::tls::{build_config, provider};

/// Connects to `host:port`, reads the certificate chain the server presents for
/// `server_name` (leaf first) and aborts the handshake.
///
/// The verifier records the chain and then fails, so rustls sends an alert and
/// closes before its Finished message. The server receives a ClientHello and an
/// alert, never a byte of application data. `timeout` applies to the TCP connect and again
/// to the handshake.
///
/// # Errors
///
/// [`TrustError::Connect`] when the connection fails, [`TrustError::Timeout`] when
/// either step runs out of time, [`TrustError::Handshake`] when the peer does not
/// speak TLS or ends the handshake before presenting a certificate, and
/// [`TrustError::NoCertificate`] for an empty chain.
pub async fn fetch_chain(
    host: &str,
    port: u16,
    server_name: ServerName<'static>,
    timeout: Duration,
) -> Result<Vec<CertificateDer<'static>>, TrustError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(source)) => {
            return Err(TrustError::Connect {
                host: host.to_owned(),
                port,
                source,
            })
        }
        Err(_) => {
            return Err(TrustError::Timeout {
                host: host.to_owned(),
                port,
                stage: "connecting to",
                after: timeout,
            })
        }
    };

    let recorder = Arc::new(ChainRecorder {
        chain: Mutex::new(None),
        provider: provider(),
    });
    let connector = TlsConnector::from(build_config(recorder.clone()));
    let handshake = tokio::time::timeout(timeout, connector.connect(server_name, stream)).await;

    let recorded = recorder
        .chain
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    match (recorded, handshake) {
        (Some(chain), _) if chain.is_empty() => Err(TrustError::NoCertificate),
        (Some(chain), _) => {
            tracing::debug!(
                host,
                port,
                certificates = chain.len(),
                "recorded server chain"
            );
            Ok(chain)
        }
        (None, Err(_)) => Err(TrustError::Timeout {
            host: host.to_owned(),
            port,
            stage: "waiting for the TLS handshake with",
            after: timeout,
        }),
        (None, Ok(Err(error))) => Err(TrustError::Handshake {
            host: host.to_owned(),
            port,
            detail: error.to_string(),
        }),
        (None, Ok(Ok(_))) => Err(TrustError::Handshake {
            host: host.to_owned(),
            port,
            detail: "handshake finished without a certificate check".to_owned(),
        }),
    }
}

/// A verifier that stores the presented chain and rejects it, ending the handshake.
struct ChainRecorder {
    chain: Mutex<Option<Vec<CertificateDer<'static>>>>,
    provider: Arc<CryptoProvider>,
}

/// The error the recorder returns after storing the chain.
#[derive(Debug, thiserror::Error)]
#[error("certificate chain recorded; handshake stopped before any application data")]
struct ChainRecorded;

impl ServerCertVerifier for ChainRecorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|certificate| certificate.clone().into_owned())
            .collect();
        *self.chain.lock().unwrap_or_else(PoisonError::into_inner) = Some(chain);
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(ChainRecorded)),
        )))
    }

    // The two signature checks below never run because `verify_server_cert` always
    // fails first. They still verify properly in case rustls ever calls them.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl fmt::Debug for ChainRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainRecorder").finish_non_exhaustive()
    }
}
