//! End-to-end tests of rackside-trust: classification of rcgen-made and checked-in
//! certificates, user CAs, and the verifiers against a TLS server on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use rackside_trust::{
    classify, client_config, compare_pin, fetch_chain, CertificateSummary, Classification, Color,
    Pin, PinMatch, RedReason, ServerPolicy, TrustAnchors, TrustError, TrustEvent,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::{ClientConfig, HandshakeKind, RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

// ---------------------------------------------------------------------------
// Certificates

/// A test CA with its key.
struct Ca {
    key: KeyPair,
    certificate: rcgen::Certificate,
    params: CertificateParams,
}

impl Ca {
    fn new(common_name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let certificate = params.clone().self_signed(&key).unwrap();
        Self {
            key,
            certificate,
            params,
        }
    }

    fn der(&self) -> CertificateDer<'static> {
        self.certificate.der().clone()
    }

    fn pem(&self) -> String {
        self.certificate.pem()
    }

    /// Signs a leaf for `names` with `key`, after `adjust` edits the parameters.
    fn issue(
        &self,
        names: &[&str],
        key: &KeyPair,
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> CertificateDer<'static> {
        let mut params = leaf_params(names);
        adjust(&mut params);
        let issuer = self.params.clone().self_signed(&self.key).unwrap();
        params
            .signed_by(key, &issuer, &self.key)
            .unwrap()
            .der()
            .clone()
    }
}

fn leaf_params(names: &[&str]) -> CertificateParams {
    let owned: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    let mut params = CertificateParams::new(owned).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
    params
}

/// Makes a self-signed certificate for `names` with `key`, after `adjust` edits it.
fn self_signed(
    names: &[&str],
    key: &KeyPair,
    adjust: impl FnOnce(&mut CertificateParams),
) -> CertificateDer<'static> {
    let mut params = leaf_params(names);
    adjust(&mut params);
    params.self_signed(key).unwrap().der().clone()
}

fn no_change(_: &mut CertificateParams) {}

fn ip_name() -> ServerName<'static> {
    ServerName::try_from("127.0.0.1").unwrap()
}

fn dns_name(name: &'static str) -> ServerName<'static> {
    ServerName::try_from(name).unwrap()
}

fn anchors_with(ca: &Ca) -> TrustAnchors {
    let mut anchors = TrustAnchors::empty();
    assert_eq!(anchors.add_user_ca_pem(ca.pem().as_bytes()).unwrap(), 1);
    anchors
}

fn classify_now(
    chain: &[CertificateDer<'static>],
    name: &ServerName<'static>,
    anchors: &TrustAnchors,
) -> Classification {
    classify(chain, name, anchors, UnixTime::now())
}

fn fixture(name: &str) -> CertificateDer<'static> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    CertificateDer::from_pem_file(&path).unwrap()
}

fn summary(certificate: &CertificateDer<'_>) -> CertificateSummary {
    CertificateSummary::from_der(certificate).unwrap()
}

// ---------------------------------------------------------------------------
// Classification

#[test]
fn user_ca_leaf_is_green() {
    let ca = Ca::new("Rack Test CA");
    let leaf = ca.issue(
        &["bmc.test", "127.0.0.1"],
        &KeyPair::generate().unwrap(),
        no_change,
    );
    let anchors = anchors_with(&ca);

    for name in [ip_name(), dns_name("bmc.test")] {
        let verdict = classify_now(std::slice::from_ref(&leaf), &name, &anchors);
        assert_eq!(verdict.color, Color::Green, "{name:?}: {}", verdict.why);
        assert_eq!(verdict.red_reason, None);
    }

    let with_ca_in_chain = classify_now(&[leaf.clone(), ca.der()], &ip_name(), &anchors);
    assert_eq!(
        with_ca_in_chain.color,
        Color::Green,
        "{}",
        with_ca_in_chain.why
    );
}

#[test]
fn leaf_from_unknown_ca_is_yellow() {
    let ca = Ca::new("Rack Test CA");
    let leaf = ca.issue(&["bmc.test"], &KeyPair::generate().unwrap(), no_change);

    let verdict = classify_now(&[leaf], &dns_name("bmc.test"), &TrustAnchors::empty());

    assert_eq!(verdict.color, Color::Yellow);
    assert!(verdict.why.contains("not trusted"), "{}", verdict.why);
}

#[test]
fn self_signed_leaf_is_yellow_with_summary() {
    let key = KeyPair::generate().unwrap();
    let leaf = self_signed(&["bmc.test", "127.0.0.1"], &key, no_change);

    let verdict = classify_now(
        std::slice::from_ref(&leaf),
        &ip_name(),
        &TrustAnchors::empty(),
    );

    assert_eq!(verdict.color, Color::Yellow, "{}", verdict.why);
    assert!(verdict.why.contains("self-signed"), "{}", verdict.why);
    assert_eq!(verdict.leaf.subject, "CN=bmc.test");
    assert_eq!(verdict.leaf.issuer, "CN=bmc.test");
    assert!(verdict.leaf.self_signed);
    assert!(verdict.leaf.not_before.is_some());
    assert!(verdict.leaf.not_after.is_some());
    assert_eq!(verdict.leaf.key_description, "ECDSA P-256");
    assert_eq!(verdict.leaf.certificate_sha256.to_string().len(), 95);
    assert_eq!(
        verdict.leaf.public_key_sha256,
        rackside_trust::Fingerprint::of(&key.public_key_der())
    );
}

#[test]
fn self_signed_ca_true_leaf_is_yellow() {
    let leaf = self_signed(&["bmc.test"], &KeyPair::generate().unwrap(), |params| {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    });
    // An unrelated anchor makes webpki run. webpki rejects the leaf as a CA used as
    // an end entity, and the self-signed check must still make it yellow.
    let anchors = anchors_with(&Ca::new("Unrelated CA"));
    let verdict = classify_now(&[leaf], &dns_name("bmc.test"), &anchors);

    assert_eq!(verdict.color, Color::Yellow, "{}", verdict.why);
    assert!(verdict.why.contains("self-signed"), "{}", verdict.why);
    assert!(verdict.leaf.is_ca);
    assert!(verdict.leaf.self_signed);
}

#[test]
fn system_anchors_load_without_failing() {
    let anchors = TrustAnchors::system();
    let leaf = self_signed(&["bmc.test"], &KeyPair::generate().unwrap(), no_change);

    let verdict = classify_now(&[leaf], &dns_name("bmc.test"), &anchors);

    assert_eq!(verdict.color, Color::Yellow, "{}", verdict.why);
    assert!(anchors.user_cas().is_empty());
}

#[test]
fn self_signed_other_name_is_yellow() {
    let leaf = self_signed(&["other.test"], &KeyPair::generate().unwrap(), no_change);

    let verdict = classify_now(&[leaf], &dns_name("bmc.test"), &TrustAnchors::empty());

    assert_eq!(verdict.color, Color::Yellow);
    assert!(
        verdict.why.contains("does not name bmc.test"),
        "{}",
        verdict.why
    );
}

#[test]
fn expired_certificates_are_red() {
    let expire = |params: &mut CertificateParams| {
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    };
    let ca = Ca::new("Rack Test CA");
    let anchors = anchors_with(&ca);
    let self_signed_leaf = self_signed(&["bmc.test"], &KeyPair::generate().unwrap(), expire);
    let ca_leaf = ca.issue(&["bmc.test"], &KeyPair::generate().unwrap(), expire);

    for leaf in [self_signed_leaf, ca_leaf] {
        let verdict = classify_now(&[leaf], &dns_name("bmc.test"), &anchors);
        assert_eq!(verdict.color, Color::Red, "{}", verdict.why);
        assert_eq!(verdict.red_reason, Some(RedReason::Expired));
    }
}

#[test]
fn expired_presented_issuer_is_red_without_anchors() {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, "Old CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.not_before = rcgen::date_time_ymd(2019, 1, 1);
    params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    let old_ca = params.self_signed(&key).unwrap();
    let leaf = leaf_params(&["bmc.test"])
        .signed_by(&KeyPair::generate().unwrap(), &old_ca, &key)
        .unwrap();

    let chain = [leaf.der().clone(), old_ca.der().clone()];
    let verdict = classify_now(&chain, &dns_name("bmc.test"), &TrustAnchors::empty());

    assert_eq!(
        verdict.red_reason,
        Some(RedReason::Expired),
        "{}",
        verdict.why
    );
    assert!(verdict.why.contains("Old CA"), "{}", verdict.why);
}

#[test]
fn not_yet_valid_certificate_is_red() {
    let leaf = self_signed(&["bmc.test"], &KeyPair::generate().unwrap(), |params| {
        params.not_before = rcgen::date_time_ymd(2090, 1, 1);
        params.not_after = rcgen::date_time_ymd(2091, 1, 1);
    });

    let verdict = classify_now(&[leaf], &dns_name("bmc.test"), &TrustAnchors::empty());

    assert_eq!(verdict.color, Color::Red);
    assert_eq!(verdict.red_reason, Some(RedReason::NotYetValid));
}

#[test]
fn classify_uses_given_time() {
    let leaf = self_signed(&["bmc.test"], &KeyPair::generate().unwrap(), |params| {
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    });
    // 2019-06-01T00:00:00Z
    let inside = UnixTime::since_unix_epoch(Duration::from_secs(1_559_347_200));

    let verdict = classify(
        &[leaf],
        &dns_name("bmc.test"),
        &TrustAnchors::empty(),
        inside,
    );

    assert_eq!(verdict.color, Color::Yellow, "{}", verdict.why);
}

#[test]
fn ca_issued_leaf_for_other_name_is_red() {
    let ca = Ca::new("Rack Test CA");
    let leaf = ca.issue(
        &["other.test", "10.0.0.9"],
        &KeyPair::generate().unwrap(),
        no_change,
    );
    let anchors = anchors_with(&ca);

    for name in [dns_name("bmc.test"), ip_name()] {
        let verdict = classify_now(std::slice::from_ref(&leaf), &name, &anchors);
        assert_eq!(verdict.color, Color::Red, "{name:?}: {}", verdict.why);
        assert_eq!(verdict.red_reason, Some(RedReason::NameMismatch));
    }
}

#[test]
fn weak_key_fixture_is_red() {
    let leaf = fixture("rsa1024-sha256.pem");

    let verdict = classify_now(
        &[leaf],
        &dns_name("rsa1024-sha256.test"),
        &TrustAnchors::empty(),
    );

    assert_eq!(
        verdict.red_reason,
        Some(RedReason::WeakKey),
        "{}",
        verdict.why
    );
    assert_eq!(verdict.leaf.key_description, "RSA 1024 bits");
}

#[test]
fn sha1_and_md5_fixtures_are_red() {
    for (file, name) in [
        ("rsa2048-sha1.pem", "rsa2048-sha1.test"),
        ("rsa2048-md5.pem", "rsa2048-md5.test"),
    ] {
        let verdict = classify_now(&[fixture(file)], &dns_name(name), &TrustAnchors::empty());
        assert_eq!(verdict.color, Color::Red, "{file}: {}", verdict.why);
        assert_eq!(
            verdict.red_reason,
            Some(RedReason::WeakSignatureAlgorithm),
            "{file}"
        );
    }
}

#[test]
fn rsa2048_sha256_fixture_is_yellow() {
    let leaf = fixture("rsa2048-sha256.pem");

    let verdict = classify_now(
        &[leaf],
        &dns_name("rsa2048-sha256.test"),
        &TrustAnchors::empty(),
    );

    assert_eq!(verdict.color, Color::Yellow, "{}", verdict.why);
    assert_eq!(verdict.leaf.key_description, "RSA 2048 bits");
}

#[test]
fn self_signed_leaf_with_broken_signature_is_red() {
    let leaf = self_signed(&["bmc.test"], &KeyPair::generate().unwrap(), no_change);
    let mut bytes = leaf.to_vec();
    // The DER ends with the signature, so this changes a signature byte only.
    *bytes.last_mut().unwrap() ^= 0x01;
    let tampered = CertificateDer::from(bytes);
    assert!(CertificateSummary::from_der(&tampered).is_ok());

    let verdict = classify_now(&[tampered], &dns_name("bmc.test"), &TrustAnchors::empty());

    assert_eq!(
        verdict.red_reason,
        Some(RedReason::BadSignature),
        "{}",
        verdict.why
    );
}

#[test]
fn forged_ca_signature_is_red() {
    let real_ca = Ca::new("Rack Test CA");
    let impostor_ca = Ca::new("Rack Test CA");
    let leaf = impostor_ca.issue(&["bmc.test"], &KeyPair::generate().unwrap(), no_change);

    let trusted = anchors_with(&real_ca);
    let verdict = classify_now(std::slice::from_ref(&leaf), &dns_name("bmc.test"), &trusted);
    assert_eq!(
        verdict.red_reason,
        Some(RedReason::BadSignature),
        "{}",
        verdict.why
    );

    let presented = classify_now(
        &[leaf, real_ca.der()],
        &dns_name("bmc.test"),
        &TrustAnchors::empty(),
    );
    assert_eq!(
        presented.red_reason,
        Some(RedReason::BadSignature),
        "{}",
        presented.why
    );
}

#[test]
fn malformed_and_empty_chains_are_red() {
    let garbage = CertificateDer::from(b"not a certificate".to_vec());
    let verdict = classify_now(&[garbage], &ip_name(), &TrustAnchors::empty());
    assert_eq!(verdict.red_reason, Some(RedReason::Malformed));

    let empty = classify_now(&[], &ip_name(), &TrustAnchors::empty());
    assert_eq!(empty.red_reason, Some(RedReason::Malformed));
}

// ---------------------------------------------------------------------------
// User CAs

#[test]
fn add_user_ca_rejects_leaf_certificates() {
    let explicit = self_signed(&["bmc.test"], &KeyPair::generate().unwrap(), |params| {
        params.is_ca = IsCa::ExplicitNoCa;
    });
    let absent = self_signed(&["bmc.test"], &KeyPair::generate().unwrap(), no_change);

    for certificate in [explicit, absent] {
        let pem = pem_of(&certificate);
        let mut anchors = TrustAnchors::empty();
        let result = anchors.add_user_ca_pem(pem.as_bytes());
        assert!(
            matches!(result, Err(TrustError::NotACa { .. })),
            "{result:?}"
        );
        assert!(anchors.user_cas().is_empty());
    }
}

#[test]
fn add_user_ca_rejects_expired_ca() {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.not_before = rcgen::date_time_ymd(2019, 1, 1);
    params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    let ca = params.self_signed(&key).unwrap();

    let result = TrustAnchors::empty().add_user_ca_pem(ca.pem().as_bytes());

    let Err(TrustError::RedCa { reason, .. }) = result else {
        panic!("expected RedCa, got {result:?}");
    };
    assert!(reason.contains("expired"), "{reason}");
}

#[test]
fn add_user_ca_is_all_or_nothing() {
    let good = Ca::new("Good CA");
    let leaf = self_signed(&["bmc.test"], &KeyPair::generate().unwrap(), no_change);
    let pem = format!("{}{}", good.pem(), pem_of(&leaf));
    let mut anchors = TrustAnchors::empty();

    assert!(anchors.add_user_ca_pem(pem.as_bytes()).is_err());
    assert!(anchors.user_cas().is_empty());
}

#[test]
fn add_user_ca_rejects_text_without_certificate() {
    let mut anchors = TrustAnchors::empty();
    let result = anchors.add_user_ca_pem(b"hello");
    assert!(
        matches!(result, Err(TrustError::InvalidPem { .. })),
        "{result:?}"
    );
}

#[test]
fn add_user_ca_counts_only_new_certificates() {
    let ca = Ca::new("Rack Test CA");
    let mut anchors = TrustAnchors::empty();
    assert_eq!(anchors.add_user_ca_pem(ca.pem().as_bytes()).unwrap(), 1);
    assert_eq!(anchors.add_user_ca_pem(ca.pem().as_bytes()).unwrap(), 0);
    assert_eq!(anchors.user_cas().len(), 1);
}

#[test]
fn add_user_ca_file_reads_pem() {
    let ca = Ca::new("Rack Test CA");
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("ca.pem");
    std::fs::write(&path, ca.pem()).unwrap();
    let mut anchors = TrustAnchors::empty();

    assert_eq!(anchors.add_user_ca_file(&path).unwrap(), 1);
    assert_eq!(anchors.user_cas(), &[ca.der()]);
}

#[test]
fn add_user_ca_file_reports_missing_file() {
    let directory = tempfile::tempdir().unwrap();
    let mut anchors = TrustAnchors::empty();

    let missing = anchors.add_user_ca_file(&directory.path().join("missing.pem"));

    let Err(error @ TrustError::Io { .. }) = missing else {
        panic!("expected an I/O error, got {missing:?}");
    };
    assert!(error.to_string().contains("missing.pem"), "{error}");
}

fn pem_of(certificate: &CertificateDer<'_>) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(certificate);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

// ---------------------------------------------------------------------------
// Pins

#[test]
fn compare_pin_follows_certificate_and_key() {
    let key = KeyPair::generate().unwrap();
    let original = self_signed(&["bmc.test"], &key, no_change);
    let renewed = self_signed(&["bmc.test"], &key, |params| {
        params.serial_number = Some(SerialNumber::from(2u64));
    });
    let replaced = self_signed(&["bmc.test"], &KeyPair::generate().unwrap(), no_change);
    let pin = Pin::from_summary(&summary(&original), Utc::now());

    assert_eq!(compare_pin(&pin, &summary(&original)), PinMatch::Exact);
    assert_eq!(
        compare_pin(&pin, &summary(&renewed)),
        PinMatch::SameKeyNewCertificate
    );
    assert_eq!(compare_pin(&pin, &summary(&replaced)), PinMatch::KeyChanged);
}

// ---------------------------------------------------------------------------
// A TLS server on 127.0.0.1 that counts what it receives

#[derive(Default)]
struct ServerStats {
    /// Handshakes that completed on the server side.
    handshakes: AtomicUsize,
    /// Plaintext bytes read after completed handshakes.
    application_bytes: AtomicUsize,
    /// Connections whose handling has finished, successful or not.
    closed: AtomicUsize,
    /// Kind of each completed handshake, in order.
    kinds: Mutex<Vec<HandshakeKind>>,
}

struct TestServer {
    address: SocketAddr,
    stats: Arc<ServerStats>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    async fn start(chain: Vec<CertificateDer<'static>>, key: &KeyPair) -> Self {
        Self::start_with_versions(
            chain,
            key,
            &[&rustls::version::TLS13, &rustls::version::TLS12],
        )
        .await
    }

    async fn start_with_versions(
        chain: Vec<CertificateDer<'static>>,
        key: &KeyPair,
        versions: &[&'static SupportedProtocolVersion],
    ) -> Self {
        let private_key = PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(versions)
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, private_key)
                .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let stats = Arc::new(ServerStats::default());

        let task_stats = Arc::clone(&stats);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let stats = Arc::clone(&task_stats);
                tokio::spawn(async move {
                    serve_connection(acceptor, tcp, &stats).await;
                    stats.closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Self {
            address,
            stats,
            task,
        }
    }

    /// Waits until `count` connections have been handled completely.
    async fn wait_closed(&self, count: usize) {
        for _ in 0..500 {
            if self.stats.closed.load(Ordering::SeqCst) >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("server did not finish {count} connections within 5 s");
    }

    fn application_bytes(&self) -> usize {
        self.stats.application_bytes.load(Ordering::SeqCst)
    }

    fn handshakes(&self) -> usize {
        self.stats.handshakes.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Completes the handshake, then replies `pong\n` to each read until EOF.
async fn serve_connection(acceptor: TlsAcceptor, tcp: TcpStream, stats: &ServerStats) {
    let Ok(mut tls) = acceptor.accept(tcp).await else {
        return;
    };
    stats.handshakes.fetch_add(1, Ordering::SeqCst);
    if let Some(kind) = tls.get_ref().1.handshake_kind() {
        stats.kinds.lock().unwrap().push(kind);
    }
    let mut buffer = [0u8; 1024];
    loop {
        match tls.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => {
                stats.application_bytes.fetch_add(read, Ordering::SeqCst);
                if tls.write_all(b"pong\n").await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Connects with `config`, sends `ping\n`, reads the reply and closes; returns the
/// client's handshake kind.
async fn ping(
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    address: SocketAddr,
) -> std::io::Result<HandshakeKind> {
    let tcp = TcpStream::connect(address).await?;
    let mut tls = TlsConnector::from(config).connect(name, tcp).await?;
    let kind = tls.get_ref().1.handshake_kind();
    tls.write_all(b"ping\n").await?;
    let mut reply = [0u8; 5];
    tls.read_exact(&mut reply).await?;
    assert_eq!(&reply, b"pong\n");
    tls.shutdown().await?;
    Ok(kind.expect("handshake kind is known after the handshake"))
}

fn policy(anchors: TrustAnchors, pin: Option<Pin>) -> ServerPolicy {
    ServerPolicy {
        server_name: ip_name(),
        anchors: Arc::new(anchors),
        pin,
    }
}

// ---------------------------------------------------------------------------
// fetch_chain

#[tokio::test]
async fn fetch_chain_sends_no_application_data() {
    let versions: [&[&'static SupportedProtocolVersion]; 2] =
        [&[&rustls::version::TLS13], &[&rustls::version::TLS12]];
    for version in versions {
        let key = KeyPair::generate().unwrap();
        let leaf = self_signed(&["127.0.0.1"], &key, no_change);
        let server = TestServer::start_with_versions(vec![leaf.clone()], &key, version).await;

        let chain = fetch_chain(
            "127.0.0.1",
            server.address.port(),
            ip_name(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        server.wait_closed(1).await;

        assert_eq!(chain, vec![leaf], "{version:?}");
        assert_eq!(server.handshakes(), 0, "{version:?}");
        assert_eq!(server.application_bytes(), 0, "{version:?}");
    }
}

/// Relays one connection from a new loopback port to `target` and returns the
/// port and a handle that yields every byte the client sent.
async fn recording_relay(target: SocketAddr) -> (u16, tokio::task::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let relay = tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let server = TcpStream::connect(target).await.unwrap();
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        let to_client = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        });
        let mut sent = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => {
                    sent.extend_from_slice(&buffer[..read]);
                    if server_write.write_all(&buffer[..read]).await.is_err() {
                        break;
                    }
                }
            }
        }
        to_client.abort();
        sent
    });
    (port, relay)
}

/// Splits raw TLS bytes into (content type, payload length) records.
fn tls_records(mut bytes: &[u8]) -> Vec<(u8, usize)> {
    let mut records = Vec::new();
    while bytes.len() >= 5 {
        let length = usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
        records.push((bytes[0], length));
        bytes = &bytes[(5 + length).min(bytes.len())..];
    }
    assert!(bytes.is_empty(), "trailing partial TLS record");
    records
}

#[tokio::test]
async fn fetch_chain_sends_only_hello_and_alert_records() {
    const HANDSHAKE: u8 = 22;
    const ALERT: u8 = 21;
    const CHANGE_CIPHER_SPEC: u8 = 20;
    const APPLICATION_DATA: u8 = 23;
    // An encrypted TLS 1.3 alert: 2 alert bytes, 1 inner content type, 16 tag bytes.
    const ENCRYPTED_ALERT_LENGTH: usize = 19;

    let versions: [&[&'static SupportedProtocolVersion]; 2] =
        [&[&rustls::version::TLS12], &[&rustls::version::TLS13]];
    for version in versions {
        let key = KeyPair::generate().unwrap();
        let leaf = self_signed(&["127.0.0.1"], &key, no_change);
        let server = TestServer::start_with_versions(vec![leaf], &key, version).await;
        let (port, relay) = recording_relay(server.address).await;

        fetch_chain("127.0.0.1", port, ip_name(), Duration::from_secs(5))
            .await
            .unwrap();
        let records = tls_records(&relay.await.unwrap());

        assert_eq!(
            records.first().map(|record| record.0),
            Some(HANDSHAKE),
            "{version:?}"
        );
        let handshakes = records
            .iter()
            .filter(|record| record.0 == HANDSHAKE)
            .count();
        assert_eq!(handshakes, 1, "{version:?}: {records:?}");
        for (content_type, length) in &records[1..] {
            match *content_type {
                ALERT | CHANGE_CIPHER_SPEC => {}
                APPLICATION_DATA => assert_eq!(*length, ENCRYPTED_ALERT_LENGTH, "{version:?}"),
                other => panic!("{version:?}: unexpected record type {other} in {records:?}"),
            }
        }
        if version == [&rustls::version::TLS12] {
            assert!(
                records.iter().all(|record| record.0 != APPLICATION_DATA),
                "{records:?}"
            );
        }
    }
}

#[tokio::test]
async fn fetch_chain_returns_intermediates_in_order() {
    let ca = Ca::new("Rack Test CA");
    let key = KeyPair::generate().unwrap();
    let leaf = ca.issue(&["127.0.0.1"], &key, no_change);
    let server = TestServer::start(vec![leaf.clone(), ca.der()], &key).await;

    let chain = fetch_chain(
        "127.0.0.1",
        server.address.port(),
        ip_name(),
        Duration::from_secs(5),
    )
    .await
    .unwrap();

    assert_eq!(chain, vec![leaf, ca.der()]);
}

#[tokio::test]
async fn fetch_chain_reports_refused_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);

    let result = fetch_chain("127.0.0.1", port, ip_name(), Duration::from_secs(5)).await;

    assert!(
        matches!(result, Err(TrustError::Connect { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn fetch_chain_times_out_on_silent_peer() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(tcp);
    });

    let result = fetch_chain("127.0.0.1", port, ip_name(), Duration::from_millis(300)).await;
    holder.abort();

    assert!(
        matches!(result, Err(TrustError::Timeout { stage, .. }) if stage.contains("handshake")),
        "{result:?}"
    );
}

#[tokio::test]
async fn fetch_chain_reports_peer_without_tls() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut hello = [0u8; 16];
        let _ = tcp.read(&mut hello).await;
        let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    });

    let result = fetch_chain("127.0.0.1", port, ip_name(), Duration::from_secs(5)).await;
    server.abort();

    let Err(error @ TrustError::Handshake { .. }) = result else {
        panic!("expected a handshake error, got {result:?}");
    };
    assert!(error.to_string().contains("HTTPS"), "{error}");
}

// ---------------------------------------------------------------------------
// client_config against a live server

#[tokio::test]
async fn green_server_without_pin_is_accepted() {
    let ca = Ca::new("Rack Test CA");
    let key = KeyPair::generate().unwrap();
    let leaf = ca.issue(&["bmc.test", "127.0.0.1"], &key, no_change);
    let server = TestServer::start(vec![leaf], &key).await;

    let (config, log) = client_config(policy(anchors_with(&ca), None));
    ping(config, ip_name(), server.address).await.unwrap();

    assert!(log.events().is_empty(), "{:?}", log.events());
    assert_eq!(server.handshakes(), 1);
}

#[tokio::test]
async fn unpinned_yellow_sends_no_data() {
    let key = KeyPair::generate().unwrap();
    let leaf = self_signed(&["127.0.0.1"], &key, no_change);
    let server = TestServer::start(vec![leaf], &key).await;

    let (config, log) = client_config(policy(TrustAnchors::empty(), None));
    let result = ping(config, ip_name(), server.address).await;
    server.wait_closed(1).await;

    assert!(result.is_err());
    let events = log.events();
    assert!(
        matches!(events.as_slice(), [TrustEvent::NotTrusted(c)] if c.color == Color::Yellow),
        "{events:?}"
    );
    assert_eq!(server.handshakes(), 0);
    assert_eq!(server.application_bytes(), 0);
}

#[tokio::test]
async fn unpinned_red_logs_red_event() {
    let key = KeyPair::generate().unwrap();
    let leaf = self_signed(&["127.0.0.1"], &key, |params| {
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    });
    let server = TestServer::start(vec![leaf], &key).await;

    let (config, log) = client_config(policy(TrustAnchors::empty(), None));
    let result = ping(config, ip_name(), server.address).await;
    server.wait_closed(1).await;

    assert!(result.is_err());
    let events = log.events();
    assert!(
        matches!(events.as_slice(), [TrustEvent::Red(c)] if c.red_reason == Some(RedReason::Expired)),
        "{events:?}"
    );
    assert_eq!(server.application_bytes(), 0);
}

#[tokio::test]
async fn pinned_certificate_is_accepted_and_data_flows() {
    let key = KeyPair::generate().unwrap();
    let leaf = self_signed(&["127.0.0.1"], &key, no_change);
    let pin = Pin::from_summary(&summary(&leaf), Utc::now());
    let server = TestServer::start(vec![leaf], &key).await;

    let (config, log) = client_config(policy(TrustAnchors::empty(), Some(pin)));
    ping(config, ip_name(), server.address).await.unwrap();
    server.wait_closed(1).await;

    assert!(log.events().is_empty(), "{:?}", log.events());
    assert_eq!(server.handshakes(), 1);
    // The counter works: the five bytes of "ping\n" arrived.
    assert_eq!(server.application_bytes(), 5);
}

#[tokio::test]
async fn same_key_new_certificate_is_accepted_with_notice() {
    let key = KeyPair::generate().unwrap();
    let original = self_signed(&["127.0.0.1"], &key, no_change);
    let renewed = self_signed(&["127.0.0.1"], &key, |params| {
        params.serial_number = Some(SerialNumber::from(7u64));
    });
    let pin = Pin::from_summary(&summary(&original), Utc::now());
    let server = TestServer::start(vec![renewed.clone()], &key).await;

    let (config, log) = client_config(policy(TrustAnchors::empty(), Some(pin.clone())));
    ping(config, ip_name(), server.address).await.unwrap();

    let events = log.events();
    let [TrustEvent::SameKeyNewCertificate { old, new }] = events.as_slice() else {
        panic!("expected one SameKeyNewCertificate event, got {events:?}");
    };
    assert_eq!(*old, pin.certificate_sha256);
    assert_eq!(new.certificate_sha256, summary(&renewed).certificate_sha256);
    assert_eq!(server.handshakes(), 1);
}

#[tokio::test]
async fn same_key_red_certificate_is_rejected() {
    let key = KeyPair::generate().unwrap();
    let original = self_signed(&["127.0.0.1"], &key, no_change);
    let expired = self_signed(&["127.0.0.1"], &key, |params| {
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    });
    let pin = Pin::from_summary(&summary(&original), Utc::now());
    let server = TestServer::start(vec![expired], &key).await;

    let (config, log) = client_config(policy(TrustAnchors::empty(), Some(pin)));
    let result = ping(config, ip_name(), server.address).await;
    server.wait_closed(1).await;

    assert!(result.is_err());
    assert!(
        matches!(log.events().as_slice(), [TrustEvent::Red(_)]),
        "{:?}",
        log.events()
    );
    assert_eq!(server.application_bytes(), 0);
}

#[tokio::test]
async fn changed_key_is_rejected_with_alarm() {
    let pinned_key = KeyPair::generate().unwrap();
    let pinned = self_signed(&["127.0.0.1"], &pinned_key, no_change);
    let pin = Pin::from_summary(&summary(&pinned), Utc::now());
    let new_key = KeyPair::generate().unwrap();
    let replacement = self_signed(&["127.0.0.1"], &new_key, no_change);
    let server = TestServer::start(vec![replacement.clone()], &new_key).await;

    let (config, log) = client_config(policy(TrustAnchors::empty(), Some(pin.clone())));
    let result = ping(config, ip_name(), server.address).await;
    server.wait_closed(1).await;

    let error = result.unwrap_err();
    assert!(error.to_string().contains("key changed"), "{error}");
    assert_eq!(
        log.events(),
        vec![TrustEvent::KeyChanged {
            pinned: pin.public_key_sha256,
            presented: summary(&replacement).public_key_sha256,
        }]
    );
    assert_eq!(server.handshakes(), 0);
    assert_eq!(server.application_bytes(), 0);
}

#[tokio::test]
async fn changed_key_is_rejected_even_when_green() {
    let pinned_key = KeyPair::generate().unwrap();
    let pinned = self_signed(&["127.0.0.1"], &pinned_key, no_change);
    let pin = Pin::from_summary(&summary(&pinned), Utc::now());
    let ca = Ca::new("Rack Test CA");
    let new_key = KeyPair::generate().unwrap();
    let green_leaf = ca.issue(&["127.0.0.1"], &new_key, no_change);
    let server = TestServer::start(vec![green_leaf], &new_key).await;

    let (config, log) = client_config(policy(anchors_with(&ca), Some(pin)));
    let result = ping(config, ip_name(), server.address).await;
    server.wait_closed(1).await;

    assert!(result.is_err());
    assert!(
        matches!(log.events().as_slice(), [TrustEvent::KeyChanged { .. }]),
        "{:?}",
        log.events()
    );
    assert_eq!(server.application_bytes(), 0);
}

#[tokio::test]
async fn removed_pin_makes_yellow_server_untrusted_again() {
    let key = KeyPair::generate().unwrap();
    let leaf = self_signed(&["127.0.0.1"], &key, no_change);
    let pin = Pin::from_summary(&summary(&leaf), Utc::now());
    let server = TestServer::start(vec![leaf], &key).await;

    let (pinned_config, _) = client_config(policy(TrustAnchors::empty(), Some(pin)));
    ping(pinned_config, ip_name(), server.address)
        .await
        .unwrap();

    let (config, log) = client_config(policy(TrustAnchors::empty(), None));
    let result = ping(config, ip_name(), server.address).await;
    server.wait_closed(2).await;

    assert!(result.is_err());
    assert!(
        matches!(log.events().as_slice(), [TrustEvent::NotTrusted(_)]),
        "{:?}",
        log.events()
    );
    assert_eq!(server.handshakes(), 1);
    assert_eq!(server.application_bytes(), 5);
}

#[tokio::test]
async fn handshake_name_must_match_policy_name() {
    let ca = Ca::new("Rack Test CA");
    let key = KeyPair::generate().unwrap();
    let leaf = ca.issue(&["bmc.test", "127.0.0.1"], &key, no_change);
    let server = TestServer::start(vec![leaf], &key).await;

    let (config, _) = client_config(policy(anchors_with(&ca), None));
    let result = ping(config, dns_name("bmc.test"), server.address).await;
    server.wait_closed(1).await;

    let error = result.unwrap_err();
    assert!(error.to_string().contains("differs"), "{error}");
    assert_eq!(server.application_bytes(), 0);
}

#[tokio::test]
async fn client_config_never_resumes_sessions() {
    let ca = Ca::new("Rack Test CA");
    let key = KeyPair::generate().unwrap();
    let leaf = ca.issue(&["127.0.0.1"], &key, no_change);
    let server = TestServer::start(vec![leaf], &key).await;

    // Control: a stock rustls configuration does resume with this server.
    let mut roots = RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    let stock = Arc::new(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    ping(stock.clone(), ip_name(), server.address)
        .await
        .unwrap();
    let resumed = ping(stock, ip_name(), server.address).await.unwrap();
    assert_eq!(resumed, HandshakeKind::Resumed);

    // The same configuration used twice still runs two full handshakes.
    let (config, _) = client_config(policy(anchors_with(&ca), None));
    let first = ping(config.clone(), ip_name(), server.address)
        .await
        .unwrap();
    let second = ping(config, ip_name(), server.address).await.unwrap();
    server.wait_closed(4).await;

    assert_eq!(first, HandshakeKind::Full);
    assert_eq!(second, HandshakeKind::Full);
    let kinds = server.stats.kinds.lock().unwrap().clone();
    assert_eq!(
        kinds,
        vec![
            HandshakeKind::Full,
            HandshakeKind::Resumed,
            HandshakeKind::Full,
            HandshakeKind::Full
        ]
    );
}

#[tokio::test]
async fn client_config_offers_http11_alpn_and_tls12() {
    let key = KeyPair::generate().unwrap();
    let leaf = self_signed(&["127.0.0.1"], &key, no_change);
    let pin = Pin::from_summary(&summary(&leaf), Utc::now());
    let server =
        TestServer::start_with_versions(vec![leaf], &key, &[&rustls::version::TLS12]).await;

    let (config, _) = client_config(policy(TrustAnchors::empty(), Some(pin)));
    assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    ping(config, ip_name(), server.address).await.unwrap();

    assert_eq!(server.handshakes(), 1);
}
