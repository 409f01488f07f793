//! rustls client configurations that only finish handshakes the trust policy allows.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{ring, CryptoProvider};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, OtherError, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde::Serialize;

use crate::anchors::TrustAnchors;
use crate::classify::{classify, display_server_name, Classification, Color};
use crate::fingerprint::Fingerprint;
use crate::pin::{compare_pin, Pin, PinMatch};
use crate::summary::CertificateSummary;

/// The trust rules for connections to one server.
#[derive(Debug, Clone)]
pub struct ServerPolicy {
    /// The name the certificate must match; the handshake must use the same name.
    pub server_name: ServerName<'static>,
    /// CAs that make a certificate green.
    pub anchors: Arc<TrustAnchors>,
    /// The identity the user accepted, if any; when present it decides instead of the colour.
    pub pin: Option<Pin>,
}

/// A trust decision the verifier made that the caller should report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustEvent {
    /// The server's public key differs from the pinned one; the handshake was
    /// rejected. Report it as a possible impersonation, never as bad credentials.
    KeyChanged {
        /// SHA-256 of the pinned SubjectPublicKeyInfo.
        pinned: Fingerprint,
        /// SHA-256 of the presented SubjectPublicKeyInfo.
        presented: Fingerprint,
    },
    /// The server presented a new certificate for the pinned key; the handshake
    /// went ahead. The caller may update the pin's certificate fingerprint.
    SameKeyNewCertificate {
        /// SHA-256 of the pinned certificate.
        old: Fingerprint,
        /// The presented certificate.
        new: CertificateSummary,
    },
    /// No pin and the certificate is yellow; the handshake was rejected so the
    /// caller can ask the user.
    NotTrusted(Classification),
    /// The certificate is red; the handshake was rejected.
    Red(Classification),
}

/// The events of the handshakes made with one configuration, shared with its verifier.
#[derive(Default)]
pub struct VerifierLog {
    events: Mutex<Vec<TrustEvent>>,
}

impl VerifierLog {
    /// Returns a copy of the events recorded so far, oldest first.
    pub fn events(&self) -> Vec<TrustEvent> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn record(&self, event: TrustEvent) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event);
    }
}

impl fmt::Debug for VerifierLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierLog")
            .field("events", &self.events())
            .finish()
    }
}

/// Builds a client configuration that completes a handshake only with a server
/// `policy` trusts, and the log its verifier writes to.
///
/// With a pin, the pinned certificate is accepted whatever its colour, even after
/// it expires, because the user accepted exactly that certificate. A new
/// certificate for the same key is accepted with a
/// [`TrustEvent::SameKeyNewCertificate`], unless it is red, which gives
/// [`TrustEvent::Red`]. A changed key is rejected with [`TrustEvent::KeyChanged`]
/// whatever its colour. A leaf that cannot be parsed has no key to compare and
/// gives [`TrustEvent::Red`].
///
/// Without a pin, green is accepted, yellow is rejected with
/// [`TrustEvent::NotTrusted`] and red with [`TrustEvent::Red`].
///
/// A handshake whose server name differs from `policy.server_name` is rejected
/// without an event.
///
/// The server must still prove possession of the key: handshake signatures are
/// checked with the ring provider's algorithms. The configuration allows TLS 1.2
/// and 1.3, offers ALPN `http/1.1` and disables session resumption, so every
/// connection runs the full handshake and faces the verifier. Build a new
/// configuration whenever the policy changes.
pub fn client_config(policy: ServerPolicy) -> (Arc<ClientConfig>, Arc<VerifierLog>) {
    let log = Arc::new(VerifierLog::default());
    let verifier = Arc::new(PolicyVerifier {
        policy,
        log: Arc::clone(&log),
        provider: provider(),
    });
    (build_config(verifier), log)
}

/// Creates the ring crypto provider every configuration in this crate uses.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// Builds a TLS 1.2 and 1.3 client configuration around `verifier`, without
/// resumption and with ALPN `http/1.1`.
pub(crate) fn build_config(verifier: Arc<dyn ServerCertVerifier>) -> Arc<ClientConfig> {
    #[allow(clippy::expect_used)]
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        // The ring provider implements cipher suites and key exchanges for both versions.
        .expect("the ring provider supports TLS 1.2 and 1.3");
    let mut config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = Resumption::disabled();
    Arc::new(config)
}

/// The policy verifier's reason for a rejection, carried inside the rustls error.
#[derive(thiserror::Error)]
enum Rejection {
    #[error("server key changed since it was pinned (possible impersonation)")]
    KeyChanged,
    #[error("server certificate is not trusted yet: {0}")]
    NotTrusted(String),
    #[error("server certificate is red: {0}")]
    Red(String),
    #[error("handshake server name {handshake} differs from the policy's {policy}")]
    WrongServerName { handshake: String, policy: String },
}

// rustls formats `CertificateError::Other` with `Debug`, and that text reaches the
// user through reqwest, so `Debug` prints the message.
impl fmt::Debug for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<Rejection> for rustls::Error {
    fn from(rejection: Rejection) -> Self {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(rejection))))
    }
}

/// The verifier behind [`client_config`].
struct PolicyVerifier {
    policy: ServerPolicy,
    log: Arc<VerifierLog>,
    provider: Arc<CryptoProvider>,
}

impl PolicyVerifier {
    fn decide(&self, classification: Classification) -> Result<(), Rejection> {
        let Some(pin) = &self.policy.pin else {
            return match classification.color {
                Color::Green => Ok(()),
                Color::Yellow => {
                    let why = classification.why.clone();
                    self.log.record(TrustEvent::NotTrusted(classification));
                    Err(Rejection::NotTrusted(why))
                }
                Color::Red => {
                    let why = classification.why.clone();
                    self.log.record(TrustEvent::Red(classification));
                    Err(Rejection::Red(why))
                }
            };
        };

        // A leaf that cannot be parsed has no key to compare, so it is red rather than
        // a key change.
        if classification.leaf.public_key_sha256 == Fingerprint::from_bytes([0; 32]) {
            let why = classification.why.clone();
            self.log.record(TrustEvent::Red(classification));
            return Err(Rejection::Red(why));
        }

        match compare_pin(pin, &classification.leaf) {
            PinMatch::Exact => Ok(()),
            PinMatch::SameKeyNewCertificate if classification.color == Color::Red => {
                let why = classification.why.clone();
                self.log.record(TrustEvent::Red(classification));
                Err(Rejection::Red(why))
            }
            PinMatch::SameKeyNewCertificate => {
                self.log.record(TrustEvent::SameKeyNewCertificate {
                    old: pin.certificate_sha256,
                    new: classification.leaf,
                });
                Ok(())
            }
            PinMatch::KeyChanged => {
                self.log.record(TrustEvent::KeyChanged {
                    pinned: pin.public_key_sha256,
                    presented: classification.leaf.public_key_sha256,
                });
                Err(Rejection::KeyChanged)
            }
        }
    }
}

impl ServerCertVerifier for PolicyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if *server_name != self.policy.server_name {
            return Err(Rejection::WrongServerName {
                handshake: display_server_name(server_name),
                policy: display_server_name(&self.policy.server_name),
            }
            .into());
        }

        let chain: Vec<CertificateDer<'static>> = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|certificate| certificate.clone().into_owned())
            .collect();
        let classification = classify(&chain, &self.policy.server_name, &self.policy.anchors, now);
        tracing::debug!(
            color = %classification.color,
            why = %classification.why,
            pinned = self.policy.pin.is_some(),
            "classified server certificate"
        );

        self.decide(classification)?;
        Ok(ServerCertVerified::assertion())
    }

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

impl fmt::Debug for PolicyVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyVerifier")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::RedReason;

    fn verifier(pin: Option<Pin>) -> PolicyVerifier {
        PolicyVerifier {
            policy: ServerPolicy {
                server_name: ServerName::try_from("bmc.test").unwrap(),
                anchors: Arc::new(TrustAnchors::empty()),
                pin,
            },
            log: Arc::new(VerifierLog::default()),
            provider: provider(),
        }
    }

    fn classification(color: Color, certificate: &[u8], key: &[u8]) -> Classification {
        let mut leaf = CertificateSummary::unparsable(certificate);
        leaf.public_key_sha256 = Fingerprint::of(key);
        Classification {
            color,
            red_reason: (color == Color::Red).then_some(RedReason::Expired),
            why: "test".to_owned(),
            leaf,
        }
    }

    fn pin_for(certificate: &[u8], key: &[u8]) -> Pin {
        Pin::from_summary(
            &classification(Color::Yellow, certificate, key).leaf,
            chrono::Utc::now(),
        )
    }

    #[test]
    fn unparsable_pinned_leaf_is_red() {
        let verifier = verifier(Some(pin_for(b"certificate", b"key")));
        let garbage = Classification {
            color: Color::Red,
            red_reason: Some(RedReason::Malformed),
            why: "malformed".to_owned(),
            leaf: CertificateSummary::unparsable(b"garbage"),
        };

        assert!(matches!(verifier.decide(garbage), Err(Rejection::Red(_))));
        assert!(matches!(
            verifier.log.events().as_slice(),
            [TrustEvent::Red(_)]
        ));
    }

    #[test]
    fn exact_pin_accepts_red_certificate() {
        let verifier = verifier(Some(pin_for(b"certificate", b"key")));

        let result = verifier.decide(classification(Color::Red, b"certificate", b"key"));

        assert!(result.is_ok());
        assert!(verifier.log.events().is_empty());
    }

    #[test]
    fn unpinned_green_is_accepted_silently() {
        let verifier = verifier(None);

        let result = verifier.decide(classification(Color::Green, b"certificate", b"key"));

        assert!(result.is_ok());
        assert!(verifier.log.events().is_empty());
    }

    #[test]
    fn rejection_debug_prints_message() {
        let error = rustls::Error::from(Rejection::KeyChanged);
        assert!(error.to_string().contains("server key changed"), "{error}");
    }
}
