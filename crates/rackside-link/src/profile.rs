//! The two channel profiles and their rustls configurations.
//!
//! Each profile is a crypto provider trimmed to exactly its suites and groups, so nothing
//! else can be negotiated and a peer that offers only something else fails the handshake.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::ring as ring_provider;
use rustls::crypto::{
    ActiveKeyExchange, CryptoProvider, KeyExchangeAlgorithm, SharedSecret, SupportedKxGroup,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::NoServerSessionStorage;
use rustls::{
    CipherSuite, CipherSuiteCommon, DigitallySignedStruct, NamedGroup, SignatureAlgorithm,
    SignatureScheme, SupportedCipherSuite, Tls12CipherSuite,
};

use crate::ffdhe;
use crate::Error;

/// A channel profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// TLS 1.3, X25519, AES-128-GCM. ring offers no hybrid post-quantum group, so none is
    /// offered.
    #[default]
    Default,
    /// The white paper's profile: TLS 1.2, DHE over ffdhe2048 or ffdhe3072, AES-128-GCM.
    Paper,
}

impl Profile {
    /// Returns the profile's name as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::Paper => "paper",
        }
    }

    /// Builds the crypto provider that offers only this profile's suites and groups.
    pub fn provider(self) -> CryptoProvider {
        let ring = ring_provider::default_provider();
        match self {
            Profile::Default => CryptoProvider {
                cipher_suites: vec![ring_provider::cipher_suite::TLS13_AES_128_GCM_SHA256],
                kx_groups: vec![REFLECTION_CHECKED_X25519],
                ..ring
            },
            Profile::Paper => CryptoProvider {
                cipher_suites: vec![SupportedCipherSuite::Tls12(
                    &TLS_DHE_RSA_WITH_AES_128_GCM_SHA256,
                )],
                kx_groups: vec![ffdhe::FFDHE2048, ffdhe::FFDHE3072],
                ..ring
            },
        }
    }

    fn versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
        static TLS12_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
        match self {
            Profile::Default => TLS13_ONLY,
            Profile::Paper => TLS12_ONLY,
        }
    }

    /// Builds the BMC's TLS configuration for this profile around its certificate.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the key does not match the certificate, or when the paper
    /// profile gets a key that is not RSA (its only suite, TLS_DHE_RSA_WITH_AES_128_GCM_SHA256,
    /// signs with RSA).
    pub fn server_config(
        self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Arc<rustls::ServerConfig>, Error> {
        let config_error = |error: rustls::Error| Error::Config {
            profile: self.name(),
            detail: error.to_string(),
        };
        let provider = Arc::new(self.provider());
        if self == Profile::Paper {
            let algorithm = provider
                .key_provider
                .load_private_key(key.clone_key())
                .map_err(config_error)?
                .algorithm();
            if algorithm != SignatureAlgorithm::RSA {
                return Err(Error::Config {
                    profile: self.name(),
                    detail: format!(
                        "the certificate key is {algorithm:?}, but the paper profile signs with \
                         RSA; serve an RSA certificate"
                    ),
                });
            }
        }
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(self.versions())
            .map_err(config_error)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(config_error)?;
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(Arc::new(config))
    }

    /// Builds the client's TLS configuration for this profile.
    ///
    /// The handshake checks that the BMC has the private key of the certificate it presents, but
    /// accepts any certificate: the caller judges the chain with `rackside-trust` after the
    /// handshake and before any credential is sent.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when rustls rejects the combination.
    pub fn client_config(self) -> Result<Arc<rustls::ClientConfig>, Error> {
        let provider = Arc::new(self.provider());
        let verifier = Arc::new(DeferredVerifier {
            algorithms: provider.signature_verification_algorithms,
        });
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(self.versions())
            .map_err(|error| Error::Config {
                profile: self.name(),
                detail: error.to_string(),
            })?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.resumption = Resumption::disabled();
        config.enable_sni = false;
        Ok(Arc::new(config))
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Profile {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        match text {
            "default" => Ok(Profile::Default),
            "paper" => Ok(Profile::Paper),
            other => Err(Error::State {
                detail: format!("unknown link profile {other:?}; use default or paper"),
            }),
        }
    }
}

/// Size in bits of the RSA keys [`generate_rsa_key`] makes.
pub const RSA_KEY_BITS: usize = 2048;

/// Generates an RSA private key of [`RSA_KEY_BITS`] in PKCS#8 form, for the certificate of a
/// BMC whose link speaks the paper profile.
///
/// # Errors
///
/// [`Error::Config`] when the system's random source fails.
pub fn generate_rsa_key() -> Result<PrivatePkcs8KeyDer<'static>, Error> {
    use rsa::pkcs8::EncodePrivateKey;

    let config_error = |detail: String| Error::Config {
        profile: Profile::Paper.name(),
        detail,
    };
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, RSA_KEY_BITS)
        .map_err(|error| config_error(format!("RSA key generation failed: {error}")))?;
    let document = key
        .to_pkcs8_der()
        .map_err(|error| config_error(format!("RSA key encoding failed: {error}")))?;
    Ok(PrivatePkcs8KeyDer::from(document.as_bytes().to_vec()))
}

/// The standard DHE suite for RSA certificates (RFC 5288), built from ring's ECDHE suite of
/// the same AEAD and hash.
static TLS_DHE_RSA_WITH_AES_128_GCM_SHA256: Tls12CipherSuite =
    match &ring_provider::cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 {
        SupportedCipherSuite::Tls12(base) => Tls12CipherSuite {
            common: CipherSuiteCommon {
                suite: CipherSuite::TLS_DHE_RSA_WITH_AES_128_GCM_SHA256,
                ..base.common
            },
            kx: KeyExchangeAlgorithm::DHE,
            ..**base
        },
        SupportedCipherSuite::Tls13(_) => unreachable!(),
    };

/// ring's X25519 with a check that the peer did not send our own share back.
static REFLECTION_CHECKED_X25519: &dyn SupportedKxGroup = &ReflectionChecked {
    inner: ring_provider::kx_group::X25519,
};

#[derive(Debug)]
struct ReflectionChecked {
    inner: &'static dyn SupportedKxGroup,
}

impl SupportedKxGroup for ReflectionChecked {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        Ok(Box::new(ReflectionCheckedExchange {
            inner: self.inner.start()?,
        }))
    }

    fn name(&self) -> NamedGroup {
        self.inner.name()
    }
}

struct ReflectionCheckedExchange {
    inner: Box<dyn ActiveKeyExchange>,
}

impl ActiveKeyExchange for ReflectionCheckedExchange {
    fn complete(self: Box<Self>, peer_public: &[u8]) -> Result<SharedSecret, rustls::Error> {
        if peer_public == self.inner.pub_key() {
            tracing::debug!("peer reflected our X25519 key share");
            return Err(rustls::Error::PeerMisbehaved(
                rustls::PeerMisbehaved::InvalidKeyShare,
            ));
        }
        self.inner.complete(peer_public)
    }

    fn pub_key(&self) -> &[u8] {
        self.inner.pub_key()
    }

    fn group(&self) -> NamedGroup {
        self.inner.group()
    }
}

/// Accepts any certificate in the handshake but checks the handshake signatures, so the
/// peer proves it has the presented certificate's private key.
#[derive(Debug)]
struct DeferredVerifier {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for DeferredVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The chain is judged by the caller with rackside-trust before login.
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::*;

    /// Returns one RSA key shared by every test here, because generating one takes a while.
    fn rsa_key() -> PrivatePkcs8KeyDer<'static> {
        static KEY: OnceLock<PrivatePkcs8KeyDer<'static>> = OnceLock::new();
        KEY.get_or_init(|| generate_rsa_key().unwrap()).clone_key()
    }

    /// Makes a self-signed certificate around `key`.
    fn certificate(
        key: &PrivatePkcs8KeyDer<'static>,
        algorithm: &'static rcgen::SignatureAlgorithm,
    ) -> CertificateDer<'static> {
        let pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(key, algorithm).unwrap();
        rcgen::CertificateParams::new(vec!["bmc.example".into()])
            .unwrap()
            .self_signed(&pair)
            .unwrap()
            .der()
            .clone()
    }

    fn paper_server() -> rustls::ServerConnection {
        let key = rsa_key();
        let chain = vec![certificate(&key, &rcgen::PKCS_RSA_SHA256)];
        let config = Profile::Paper
            .server_config(chain, PrivateKeyDer::Pkcs8(key))
            .unwrap();
        rustls::ServerConnection::new(config).unwrap()
    }

    /// Builds a TLS 1.2 client that offers exactly `suites` and `groups`.
    fn client_offering(
        suites: Vec<SupportedCipherSuite>,
        groups: Vec<&'static dyn SupportedKxGroup>,
    ) -> rustls::ClientConnection {
        let provider = CryptoProvider {
            cipher_suites: suites,
            kx_groups: groups,
            ..ring_provider::default_provider()
        };
        let verifier = Arc::new(DeferredVerifier {
            algorithms: provider.signature_verification_algorithms,
        });
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        let name = ServerName::try_from("bmc.example").unwrap();
        rustls::ClientConnection::new(Arc::new(config), name).unwrap()
    }

    /// Moves records both ways until the handshake ends; returns the first error.
    fn handshake(
        client: &mut rustls::ClientConnection,
        server: &mut rustls::ServerConnection,
    ) -> Result<(), rustls::Error> {
        for _ in 0..20 {
            let mut bytes = Vec::new();
            client.write_tls(&mut bytes).unwrap();
            server.read_tls(&mut bytes.as_slice()).unwrap();
            server.process_new_packets()?;
            let mut bytes = Vec::new();
            server.write_tls(&mut bytes).unwrap();
            client.read_tls(&mut bytes.as_slice()).unwrap();
            client.process_new_packets()?;
            if !client.is_handshaking() && !server.is_handshaking() {
                return Ok(());
            }
        }
        Err(rustls::Error::General("handshake did not finish".into()))
    }

    #[test]
    fn paper_negotiates_dhe_rsa_over_ffdhe() {
        for group in [ffdhe::FFDHE2048, ffdhe::FFDHE3072] {
            let mut client = client_offering(Profile::Paper.provider().cipher_suites, vec![group]);
            let mut server = paper_server();

            handshake(&mut client, &mut server).unwrap();

            let suite = client.negotiated_cipher_suite().unwrap().suite();
            assert_eq!(suite, CipherSuite::TLS_DHE_RSA_WITH_AES_128_GCM_SHA256);
            let negotiated = client.negotiated_key_exchange_group().unwrap().name();
            assert_eq!(negotiated, group.name());
            assert_eq!(
                client.protocol_version(),
                Some(rustls::ProtocolVersion::TLSv1_2)
            );
        }
    }

    #[test]
    fn paper_client_config_completes() {
        let config = Profile::Paper.client_config().unwrap();
        let name = ServerName::try_from("bmc.example").unwrap();
        let mut client = rustls::ClientConnection::new(config, name).unwrap();
        let mut server = paper_server();

        handshake(&mut client, &mut server).unwrap();

        let suite = server.negotiated_cipher_suite().unwrap().suite();
        assert_eq!(suite, CipherSuite::TLS_DHE_RSA_WITH_AES_128_GCM_SHA256);
    }

    /// The private-use DHE-ECDSA suite (code 0xFFA0) an earlier paper profile offered.
    static PRIVATE_DHE_ECDSA: Tls12CipherSuite =
        match &ring_provider::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 {
            SupportedCipherSuite::Tls12(base) => Tls12CipherSuite {
                common: CipherSuiteCommon {
                    suite: CipherSuite::Unknown(0xffa0),
                    ..base.common
                },
                kx: KeyExchangeAlgorithm::DHE,
                ..**base
            },
            SupportedCipherSuite::Tls13(_) => unreachable!(),
        };

    #[test]
    fn paper_rejects_private_and_ecdhe_clients() {
        let ffdhe_groups = vec![ffdhe::FFDHE2048, ffdhe::FFDHE3072];
        let cases = [
            (
                "private 0xFFA0",
                client_offering(
                    vec![SupportedCipherSuite::Tls12(&PRIVATE_DHE_ECDSA)],
                    ffdhe_groups,
                ),
            ),
            (
                "ECDHE only",
                client_offering(
                    vec![ring_provider::cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256],
                    ring_provider::default_provider().kx_groups,
                ),
            ),
        ];
        for (case, mut client) in cases {
            let mut server = paper_server();

            let result = handshake(&mut client, &mut server);

            assert!(result.is_err(), "{case}: handshake completed");
        }
    }

    #[test]
    fn paper_rejects_ecdsa_certificate() {
        let pair = rcgen::KeyPair::generate().unwrap();
        let key = PrivatePkcs8KeyDer::from(pair.serialize_der());
        let chain = vec![certificate(&key, &rcgen::PKCS_ECDSA_P256_SHA256)];

        let error = Profile::Paper
            .server_config(chain, PrivateKeyDer::Pkcs8(key))
            .unwrap_err();

        assert!(error.to_string().contains("RSA"), "{error}");
    }

    #[test]
    fn generated_rsa_key_has_2048_bits() {
        use rsa::pkcs8::DecodePrivateKey;
        use rsa::traits::PublicKeyParts;

        let key = rsa::RsaPrivateKey::from_pkcs8_der(rsa_key().secret_pkcs8_der()).unwrap();

        assert_eq!(key.size() * 8, RSA_KEY_BITS);
    }

    #[test]
    fn reflected_x25519_share_is_refused() {
        let exchange = REFLECTION_CHECKED_X25519.start().unwrap();
        let own = exchange.pub_key().to_vec();
        assert!(exchange.complete(&own).is_err());
    }

    #[test]
    fn profiles_offer_only_aes_128_gcm() {
        let default: Vec<_> = Profile::Default
            .provider()
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect();
        assert_eq!(default, vec![CipherSuite::TLS13_AES_128_GCM_SHA256]);
        let paper: Vec<_> = Profile::Paper
            .provider()
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect();
        assert_eq!(
            paper,
            vec![CipherSuite::TLS_DHE_RSA_WITH_AES_128_GCM_SHA256]
        );
        let groups: Vec<_> = Profile::Paper
            .provider()
            .kx_groups
            .iter()
            .map(|g| g.name())
            .collect();
        assert_eq!(groups, vec![NamedGroup::FFDHE2048, NamedGroup::FFDHE3072]);
    }
}
