//! The push providers: Web Push, FCM HTTP v1 and APNs. Each turns one encrypted alert into
//! one provider request and classifies the response as delivered, gone, retry or failed.

pub mod apns;
pub mod fcm;
pub mod webpush;

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rustls_pki_types::CertificateDer;
use zeroize::Zeroizing;

use crate::error::RelayError;
use crate::registry::Target;

/// Largest body that FCM data and APNs payloads accept, in bytes (both services document
/// 4096).
pub const MAX_PROVIDER_PAYLOAD: usize = 4096;
/// Longest `Retry-After` the relay honours; longer waits are cut to this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// One alert on its way out: ciphertext plus the count of new alerts, nothing else.
#[derive(Clone)]
pub struct Push {
    /// The `aes128gcm` body encrypted to the device; the relay cannot read it.
    pub payload: Arc<Zeroizing<Vec<u8>>>,
    /// Number of new alerts on the console, the only clear-text figure a push carries.
    pub count: u32,
    /// Identifier that lets the provider replace an older undelivered push.
    pub collapse_id: Option<String>,
    /// How long the provider may hold the push for an offline device.
    pub ttl: Duration,
}

impl std::fmt::Debug for Push {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Push")
            .field("payload_len", &self.payload.len())
            .field("count", &self.count)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Push {
    /// Returns the payload as base64url, the form FCM data and APNs JSON carry.
    fn payload_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.payload.as_slice())
    }
}

/// Result of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The provider accepted the push.
    Delivered,
    /// The provider reports the registration dead (FCM `UNREGISTERED`, APNs 410, Web Push
    /// 404 or 410): remove it and tell the console.
    Gone,
    /// A temporary failure (429, 5xx, network): try again, after `after` when the provider
    /// sent `Retry-After`.
    Retry {
        /// The wait the provider asked for, capped at one minute.
        after: Option<Duration>,
        /// Status or error, for the log.
        reason: String,
    },
    /// A permanent failure for this push: drop it and log the reason.
    Failed(String),
}

/// Provider endpoints and credentials.
#[derive(Debug, Default)]
pub struct ProviderConfig {
    /// Web Push: the VAPID `sub` contact, a `mailto:` or `https:` URI. `None` disables Web Push.
    pub webpush_subject: Option<String>,
    /// FCM: the service-account JSON file and the API base URL.
    pub fcm: Option<fcm::FcmConfig>,
    /// APNs: signing key, ids, topic and base URL.
    pub apns: Option<apns::ApnsConfig>,
    /// Extra trust anchors for provider connections, on top of the system roots.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Time limit for one provider request, connection included.
    pub request_timeout: Duration,
}

/// The configured providers with their HTTP clients.
#[derive(Debug)]
pub struct Providers {
    webpush: Option<webpush::WebPush>,
    fcm: Option<fcm::Fcm>,
    apns: Option<apns::Apns>,
}

impl Providers {
    /// Builds the providers. `vapid_key_der` is the relay's VAPID signing key (PKCS#8).
    ///
    /// # Errors
    /// Key, file and TLS errors from each provider's set-up.
    pub fn new(config: ProviderConfig, vapid_key_der: &[u8]) -> Result<Self, RelayError> {
        let timeout = if config.request_timeout.is_zero() {
            Duration::from_secs(15)
        } else {
            config.request_timeout
        };
        let http = http_client(&config.extra_roots, timeout, false)?;
        let webpush = match config.webpush_subject {
            Some(subject) => Some(webpush::WebPush::new(subject, vapid_key_der, http.clone())?),
            None => None,
        };
        let fcm = match config.fcm {
            Some(fcm) => Some(fcm::Fcm::new(fcm, http)?),
            None => None,
        };
        let apns = match config.apns {
            Some(apns) => Some(apns::Apns::new(
                apns,
                http_client(&config.extra_roots, timeout, true)?,
            )?),
            None => None,
        };
        Ok(Self { webpush, fcm, apns })
    }

    /// Sends `push` to `target` through its provider once.
    pub async fn deliver(&self, target: &Target, push: &Push) -> Outcome {
        match target {
            Target::Webpush { endpoint } => match &self.webpush {
                Some(provider) => provider.send(endpoint, push).await,
                None => Outcome::Failed("Web Push is not configured on this relay".to_owned()),
            },
            Target::Fcm { token } => match &self.fcm {
                Some(provider) => provider.send(token, push).await,
                None => Outcome::Failed("FCM is not configured on this relay".to_owned()),
            },
            Target::Apns { device_token } => match &self.apns {
                Some(provider) => provider.send(device_token, push).await,
                None => Outcome::Failed("APNs is not configured on this relay".to_owned()),
            },
        }
    }

    /// Returns whether the relay can deliver to this kind of target.
    pub fn supports(&self, target: &Target) -> bool {
        match target {
            Target::Webpush { .. } => self.webpush.is_some(),
            Target::Fcm { .. } => self.fcm.is_some(),
            Target::Apns { .. } => self.apns.is_some(),
        }
    }

    /// Returns the VAPID public key (uncompressed P-256 point, base64url) that browsers and
    /// push services expect as `applicationServerKey`, when Web Push is on.
    pub fn vapid_public_key(&self) -> Option<String> {
        self.webpush.as_ref().map(webpush::WebPush::public_key)
    }
}

/// Builds an HTTPS client over rustls with the system roots plus `extra_roots`. With
/// `http2_only` it speaks HTTP/2 only, as APNs requires.
fn http_client(
    extra_roots: &[CertificateDer<'static>],
    timeout: Duration,
    http2_only: bool,
) -> Result<reqwest::Client, RelayError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A system root that rustls cannot parse is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    for cert in extra_roots {
        roots
            .add(cert.clone())
            .map_err(|e| RelayError::Tls(format!("provider trust anchor rejected: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| RelayError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = if http2_only {
        vec![b"h2".to_vec()]
    } else {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    };
    let mut builder = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(60));
    if http2_only {
        builder = builder.http2_prior_knowledge();
    }
    builder
        .build()
        .map_err(|e| RelayError::Tls(format!("HTTP client set-up failed: {e}")))
}

/// Classifies the statuses every provider shares: 429 and 5xx retry; `None` for the rest.
fn retry_on(response: &reqwest::Response) -> Option<Outcome> {
    let status = response.status();
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        let after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|secs| Duration::from_secs(secs).min(MAX_RETRY_AFTER));
        return Some(Outcome::Retry {
            after,
            reason: format!("provider returned {status}"),
        });
    }
    None
}

/// Turns a transport error into a retry: timeouts and refused connections are temporary.
fn network_retry(error: reqwest::Error) -> Outcome {
    // The URL can hold a device token, so it stays out of the message.
    let error = error.without_url();
    let chain = error_chain(&error);
    let hint = if chain.contains("certificate") {
        "; if the push service uses a private or self-signed certificate, start the relay with \
         --provider-ca FILE naming it"
    } else {
        ""
    };
    Outcome::Retry {
        after: None,
        reason: format!("request failed: {chain}{hint}"),
    }
}

/// Formats an error with its sources, so "error sending request" shows its real cause.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves TLS with a fresh self-signed certificate on loopback and returns its port.
    async fn untrusted_tls_server() -> u16 {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = acceptor.accept(stream).await;
            }
        });
        port
    }

    #[tokio::test]
    async fn untrusted_certificate_names_provider_ca() {
        let port = untrusted_tls_server().await;
        let client = http_client(&[], Duration::from_secs(10), false).unwrap();
        let error = client
            .post(format!("https://localhost:{port}/push/device"))
            .send()
            .await
            .unwrap_err();
        let Outcome::Retry { reason, .. } = network_retry(error) else {
            panic!("a transport error is retried");
        };
        assert!(reason.contains("--provider-ca"), "{reason}");
        assert!(!reason.contains("/push/device"), "{reason}");
    }
}
