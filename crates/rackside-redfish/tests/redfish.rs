//! Integration tests: the client against real Redfish data and real servers.
//!
//! - every mockup and vendor capture under `$RACKSIDE_TEST_DATA/redfish/mockups`, served
//!   from disk through an in-memory transport;
//! - `HttpsTransport` against a small TLS server on loopback (body cap, redirects,
//!   headers, TLS failure);
//! - `sushy-emulator --fake` from the workspace's Python virtual environment, over HTTPS
//!   with Basic authentication.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use rackside_redfish::{
    health, inventory, logs, AuthMode, Client, Credentials, Error, HttpsTransport, Limits,
    LogQuery, Request, Response, RetryPolicy, Secret, Severity, Transport,
};

const STANDARD_HEADERS: [&str; 6] = [
    "accept",
    "content-type",
    "odata-version",
    "if-match",
    "x-auth-token",
    "authorization",
];

/// Returns the shared test data folder, or `None` after printing why the test is skipped.
fn test_data() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("RACKSIDE_TEST_DATA") {
        return Some(PathBuf::from(dir));
    }
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    if default.is_dir() {
        return Some(default);
    }
    println!("skipped: RACKSIDE_TEST_DATA not set and ../shared not found");
    None
}

// ---------------------------------------------------------------------------------------
// Mockups served from disk
// ---------------------------------------------------------------------------------------

/// Serves a DMTF-format mockup folder (short form, or long form with `redfish/v1/`) the way
/// a mockup server does: `GET /redfish/v1/X` returns `X/index.json`. Queries are ignored.
struct MockupTransport {
    /// The folder that corresponds to `/redfish/v1`.
    service_dir: PathBuf,
    requests: Mutex<Vec<String>>,
    violations: Mutex<Vec<String>>,
}

impl MockupTransport {
    fn new(mockup: &Path) -> Self {
        let long_form = mockup.join("redfish/v1");
        let service_dir = if long_form.join("index.json").is_file() {
            long_form
        } else {
            mockup.to_path_buf()
        };
        MockupTransport {
            service_dir,
            requests: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
        }
    }

    fn file_for(&self, path: &str) -> Option<PathBuf> {
        let path = path.split('?').next()?;
        let rest = path.strip_prefix("/redfish/v1")?.trim_matches('/');
        let rest = rest.replace("%20", " ");
        if rest.split('/').any(|segment| segment == "..") {
            return None;
        }
        let file = self.service_dir.join(rest).join("index.json");
        file.is_file().then_some(file)
    }
}

impl Transport for MockupTransport {
    async fn send(&self, request: Request) -> Result<Response, Error> {
        for name in request.headers.keys() {
            if !STANDARD_HEADERS.contains(&name.as_str()) {
                self.violations
                    .lock()
                    .unwrap()
                    .push(format!("non-standard header {name}"));
            }
        }
        if request.method == Method::GET && request.headers.contains_key("if-match") {
            self.violations
                .lock()
                .unwrap()
                .push(format!("If-Match on GET {}", request.path));
        }
        self.requests.lock().unwrap().push(request.path.clone());

        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let (status, body) = match (request.method == Method::GET, self.file_for(&request.path)) {
            (true, Some(file)) => (StatusCode::OK, Bytes::from(std::fs::read(file).unwrap())),
            (true, None) => (
                StatusCode::NOT_FOUND,
                Bytes::from_static(br#"{"error":{"code":"Base.1.0.ResourceMissingAtURI","message":"not in mockup"}}"#),
            ),
            (false, _) => (
                StatusCode::METHOD_NOT_ALLOWED,
                Bytes::from_static(br#"{"error":{"code":"Base.1.0.OperationNotAllowed","message":"read-only mockup"}}"#),
            ),
        };
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

fn mockup_dirs(data: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for group in ["mockups/dmtf", "mockups/vendor-captures"] {
        let group = data.join("redfish").join(group);
        let Ok(entries) = std::fs::read_dir(&group) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.path().is_dir() {
                dirs.push(entry.path());
            }
        }
    }
    dirs.sort();
    dirs
}

fn mockup_client(mockup: &Path) -> Client<MockupTransport> {
    let retry = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    Client::new(MockupTransport::new(mockup), retry)
}

#[tokio::test]
async fn every_mockup_gives_health_inventory_and_logs() {
    let Some(data) = test_data() else { return };
    let mockups = mockup_dirs(&data);
    assert!(
        mockups.len() >= 7,
        "expected the DMTF mockups and vendor captures, found {mockups:?}"
    );

    for mockup in mockups {
        let name = mockup.file_name().unwrap().to_string_lossy().into_owned();
        let mut client = mockup_client(&mockup);
        client
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{name}: connect: {e}"));

        let report = health(&client)
            .await
            .unwrap_or_else(|e| panic!("{name}: health: {e}"));
        assert!(
            !report.systems.is_empty(),
            "{name}: no systems in health report"
        );
        for system in &report.systems {
            assert!(!system.id.is_empty(), "{name}: system without id");
        }

        let inventory = inventory(&client)
            .await
            .unwrap_or_else(|e| panic!("{name}: inventory: {e}"));
        assert_eq!(inventory.systems.len(), report.systems.len(), "{name}");
        let processors: usize = inventory.systems.iter().map(|s| s.processors.len()).sum();
        assert!(processors > 0, "{name}: no processors found");

        let records = logs(
            &client,
            &LogQuery {
                limit: 20,
                ..LogQuery::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: logs: {e}"));
        let ids: HashSet<(&str, &str)> = records
            .iter()
            .map(|r| (r.log.as_str(), r.path.as_str()))
            .collect();
        assert_eq!(ids.len(), records.len(), "{name}: duplicate log entries");
        assert!(records.len() <= 20, "{name}: limit ignored");

        check_known_values(&name, &report, &inventory, &records);

        let violations = client.transport().violations.lock().unwrap().clone();
        assert!(violations.is_empty(), "{name}: {violations:?}");
        println!(
            "{name}: {} systems, {} problems, {} processors, {} firmware, {} log entries, {} requests",
            report.systems.len(),
            report.systems.iter().map(|s| s.problems.len()).sum::<usize>(),
            processors,
            inventory.systems.iter().map(|s| s.firmware.len()).sum::<usize>(),
            records.len(),
            client.transport().requests.lock().unwrap().len(),
        );
    }
}

/// Checks values known from the mockups' files.
fn check_known_values(
    name: &str,
    report: &rackside_redfish::HealthReport,
    inventory: &rackside_redfish::Inventory,
    records: &[rackside_redfish::LogRecord],
) {
    match name {
        "dell" => {
            let system = &inventory.systems[0];
            assert_eq!(system.system.service_tag.as_deref(), Some("TSTAG01"));
            assert_eq!(report.systems[0].service_tag.as_deref(), Some("TSTAG01"));
            assert_eq!(system.system.model.as_deref(), Some("PowerEdge R750"));
            assert_eq!(system.system.bios_version.as_deref(), Some("1.8.2"));
            assert_eq!(system.power_supplies.len(), 2);
            // Case 10: iDRAC sends "00:00:00Z" as a firmware release date.
            let bare_time = system
                .firmware
                .iter()
                .find(|f| f.release_date_raw.as_deref() == Some("00:00:00Z"))
                .expect("firmware with a bare-time release date");
            assert_eq!(bare_time.release_date, None);
            let lifecycle: Vec<_> = records
                .iter()
                .filter(|r| r.log == "Lifecycle Log")
                .collect();
            let sel: Vec<_> = records.iter().filter(|r| r.log == "SEL").collect();
            assert_eq!(lifecycle.len(), 5, "{records:#?}");
            assert_eq!(sel.len(), 5, "{records:#?}");
            assert_eq!(lifecycle[0].id, "83434");
            assert!(lifecycle[0]
                .message
                .starts_with("Successfully logged in using root"));
            assert_eq!(
                lifecycle[0].message_id.as_deref(),
                Some("IDRAC.2.7.USR0030")
            );
            assert!(lifecycle.iter().any(|r| r.severity == Severity::Critical));
        }
        "public-rackmount1" => {
            let problem = report.systems[0]
                .problems
                .iter()
                .find(|p| p.path.ends_with("PowerSupplies/Bay1"))
                .expect("power supply bay 1 problem");
            assert!(
                problem.reason.contains("predicted failure"),
                "{}",
                problem.reason
            );
            assert_eq!(report.systems[0].health_rollup.as_deref(), Some("Warning"));
        }
        "public-bladed" => {
            assert_eq!(report.systems.len(), 4);
            let reasons: Vec<&str> = report
                .systems
                .iter()
                .flat_map(|s| s.problems.iter().map(|p| p.reason.as_str()))
                .collect();
            assert!(
                reasons.contains(&"reading 77 °C above upper caution 75 °C"),
                "{reasons:?}"
            );
        }
        "hpe" => {
            assert!(
                records.iter().any(|r| r.log == "Integrated Management Log"),
                "{records:#?}"
            );
            // iLO writes "0000-00-00T00:00:00Z" for some security log entries.
            assert!(records
                .iter()
                .any(|r| r.created.is_none() && r.created_raw.is_some()));
        }
        "lenovo" => {
            assert!(inventory.systems[0].firmware.len() > 10);
            assert!(
                records.iter().any(|r| r.log == "PlatformLog"),
                "{records:#?}"
            );
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// HttpsTransport against a TLS server on loopback
// ---------------------------------------------------------------------------------------

/// A self-signed certificate for 127.0.0.1 and a client configuration that trusts it.
struct TestCertificate {
    cert_pem: String,
    key_pem: String,
    cert_der: rustls_pki_types::CertificateDer<'static>,
    key_der: Vec<u8>,
}

fn test_certificate() -> TestCertificate {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    TestCertificate {
        cert_pem: certified.cert.pem(),
        key_pem: certified.key_pair.serialize_pem(),
        cert_der: certified.cert.der().clone(),
        key_der: certified.key_pair.serialize_der(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_tls(trusted: Option<&TestCertificate>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(certificate) = trusted {
        roots.add(certificate.cert_der.clone()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Serves one raw HTTP response to each connection on a loopback TLS listener and
/// records each request's head.
struct RawTlsServer {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

async fn raw_tls_server(certificate: &TestCertificate, response: Vec<u8>) -> RawTlsServer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(certificate.key_der.clone().into());
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certificate.cert_der.clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let recorded = requests.clone();
    let response = Arc::new(response);

    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let recorded = recorded.clone();
            let response = response.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buffer = [0_u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                recorded
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).into_owned());
                let _ = tls.write_all(&response).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    RawTlsServer { port, requests }
}

fn https_client(
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    max_body_bytes: usize,
) -> Client<HttpsTransport> {
    let base = url::Url::parse(&format!("https://127.0.0.1:{port}")).unwrap();
    let limits = Limits {
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(30),
        max_body_bytes,
    };
    let retry = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    Client::new(HttpsTransport::new(&base, tls, limits).unwrap(), retry)
}

fn chunked_response(total: usize) -> Vec<u8> {
    let mut response =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    let chunk = vec![b' '; 16 * 1024];
    let mut sent = 0;
    while sent < total {
        response.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        response.extend_from_slice(&chunk);
        response.extend_from_slice(b"\r\n");
        sent += chunk.len();
    }
    response.extend_from_slice(b"0\r\n\r\n");
    response
}

fn json_response(status_line: &str, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status_line}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra_headers}Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[tokio::test]
async fn https_streamed_body_over_cap_is_too_large() {
    let certificate = test_certificate();
    let server = raw_tls_server(&certificate, chunked_response(1024 * 1024)).await;
    let client = https_client(server.port, client_tls(Some(&certificate)), 64 * 1024);
    let error = client
        .get("/redfish/v1/Systems")
        .await
        .expect_err("too large");
    assert!(
        matches!(error, Error::TooLarge { limit: 65536 }),
        "{error:?}"
    );
    assert!(error.to_string().contains("65536 bytes"), "{error}");
}

#[tokio::test]
async fn https_declared_length_over_cap_is_too_large() {
    let certificate = test_certificate();
    let response =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n{"
            .to_vec();
    let server = raw_tls_server(&certificate, response).await;
    let client = https_client(server.port, client_tls(Some(&certificate)), 1024);
    let error = client.get("/redfish/v1").await.expect_err("too large");
    assert!(
        matches!(error, Error::TooLarge { limit: 1024 }),
        "{error:?}"
    );
}

#[tokio::test]
async fn https_redirect_is_not_followed() {
    let certificate = test_certificate();
    let response = json_response(
        "302 Found",
        "Location: https://127.0.0.1:9/elsewhere\r\n",
        "{}",
    );
    let server = raw_tls_server(&certificate, response).await;
    let client = https_client(server.port, client_tls(Some(&certificate)), 1024 * 1024);
    let error = client
        .get("/redfish/v1/Systems")
        .await
        .expect_err("redirect");
    assert!(
        matches!(&error, Error::Status { status, .. } if *status == StatusCode::FOUND),
        "{error:?}"
    );
    assert_eq!(server.requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn https_sends_only_standard_headers() {
    let certificate = test_certificate();
    let root = r#"{"@odata.id": "/redfish/v1", "RedfishVersion": "1.6.0"}"#;
    let server = raw_tls_server(&certificate, json_response("200 OK", "", root)).await;
    let mut client = https_client(server.port, client_tls(Some(&certificate)), 1024 * 1024);
    client.connect().await.expect("connect");

    let requests = server.requests.lock().unwrap().clone();
    let head = &requests[0];
    assert!(head.starts_with("GET /redfish/v1 HTTP/1.1\r\n"), "{head}");
    for line in head.lines().skip(1).filter(|line| !line.is_empty()) {
        let name = line.split(':').next().unwrap().to_ascii_lowercase();
        assert!(
            name == "host" || STANDARD_HEADERS.contains(&name.as_str()),
            "non-standard header {name} in {head}"
        );
    }
}

#[tokio::test]
async fn https_html_page_is_not_redfish() {
    let certificate = test_certificate();
    let page = "<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head></html>";
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{page}",
        page.len()
    );
    let server = raw_tls_server(&certificate, response.into_bytes()).await;
    let mut client = https_client(server.port, client_tls(Some(&certificate)), 1024 * 1024);
    let error = client.connect().await.expect_err("html");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "https://127.0.0.1:{}/redfish/v1 is not a Redfish service",
            server.port
        )),
        "{message}"
    );
    assert!(message.contains("Welcome to nginx!"), "{message}");
}

#[tokio::test]
async fn https_untrusted_certificate_is_tls_error() {
    let certificate = test_certificate();
    let server = raw_tls_server(&certificate, json_response("200 OK", "", "{}")).await;
    let mut client = https_client(server.port, client_tls(None), 1024 * 1024);
    let error = client.connect().await.expect_err("untrusted");
    assert!(error.is_tls(), "{error:?}");
    assert!(
        server.requests.lock().unwrap().is_empty(),
        "no request may follow a failed handshake"
    );
}

#[tokio::test]
async fn https_closed_port_is_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut client = https_client(port, client_tls(None), 1024);
    let error = client.connect().await.expect_err("closed");
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
}

// ---------------------------------------------------------------------------------------
// sushy-emulator --fake over HTTPS with Basic authentication
// ---------------------------------------------------------------------------------------

/// A running `sushy-emulator`, killed on drop.
struct Sushy {
    child: tokio::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Sushy {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

const SUSHY_USER: &str = "rackside";
const SUSHY_PASSWORD: &str = "correct-horse-battery";

fn venv_bin() -> Option<PathBuf> {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin");
    if bin.join("sushy-emulator").is_file() && bin.join("python3").is_file() {
        Some(bin)
    } else {
        println!("skipped: no sushy-emulator in {}", bin.display());
        None
    }
}

/// Starts sushy-emulator with the fake driver on a free loopback port, over HTTPS with
/// `certificate`, requiring Basic authentication from an htpasswd file (bcrypt).
async fn start_sushy(bin: &Path, certificate: &TestCertificate) -> Sushy {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, &certificate.cert_pem).unwrap();
    std::fs::write(&key, &certificate.key_pem).unwrap();

    // sushy-emulator reads only bcrypt hashes; the test password is not a real secret.
    let hash = std::process::Command::new(bin.join("python3"))
        .args(["-c", "import bcrypt, sys; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt(4)).decode())", SUSHY_PASSWORD])
        .output()
        .unwrap();
    assert!(
        hash.status.success(),
        "bcrypt failed: {}",
        String::from_utf8_lossy(&hash.stderr)
    );
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(
        &htpasswd,
        format!(
            "{SUSHY_USER}:{}",
            String::from_utf8_lossy(&hash.stdout).trim()
        ),
    )
    .unwrap();
    // The command line has no option for the auth file; the config file sets it.
    let config = dir.path().join("sushy.conf");
    std::fs::write(
        &config,
        format!(
            "SUSHY_EMULATOR_AUTH_FILE = {:?}\n",
            htpasswd.display().to_string()
        ),
    )
    .unwrap();

    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let child = tokio::process::Command::new(bin.join("sushy-emulator"))
        .arg("--fake")
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .arg("--ssl-certificate")
        .arg(&cert)
        .arg("--ssl-key")
        .arg(&key)
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let sushy = Sushy {
        child,
        port,
        _dir: dir,
    };

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut probe = https_client(port, client_tls(Some(certificate)), 1024 * 1024);
        match probe.connect().await {
            Ok(_) => return sushy,
            Err(error) if tokio::time::Instant::now() > deadline => {
                panic!("sushy-emulator did not start: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test]
async fn sushy_emulator_serves_health_and_inventory() {
    let Some(bin) = venv_bin() else { return };
    let certificate = test_certificate();
    let sushy = start_sushy(&bin, &certificate).await;

    let mut client = https_client(sushy.port, client_tls(Some(&certificate)), 8 * 1024 * 1024);
    let root = client.connect().await.expect("connect");
    assert!(root.get("RedfishVersion").is_some());

    let wrong = Credentials {
        username: SUSHY_USER.into(),
        password: Secret::new("not-the-password"),
    };
    let error = client
        .login(&wrong, AuthMode::Basic)
        .await
        .expect_err("wrong password");
    assert!(matches!(error, Error::Unauthorized { .. }), "{error:?}");

    let creds = Credentials {
        username: SUSHY_USER.into(),
        password: Secret::new(SUSHY_PASSWORD),
    };
    client.login(&creds, AuthMode::Basic).await.expect("login");

    let report = health(&client).await.expect("health");
    assert!(!report.systems.is_empty());
    for system in &report.systems {
        assert!(system.power_state.is_some(), "{system:?}");
    }
    let inventory = inventory(&client).await.expect("inventory");
    assert_eq!(inventory.systems.len(), report.systems.len());
    let system = &inventory.systems[0];
    assert_eq!(
        system.system.manufacturer.as_deref(),
        Some("Sushy Emulator")
    );
    assert!(!system.fans.is_empty(), "{system:?}");
    assert!(
        system
            .temperatures
            .iter()
            .all(|t| t.reading_celsius.is_some()),
        "{system:?}"
    );
    println!(
        "sushy: {} systems, first {:?} power {:?}",
        report.systems.len(),
        report.systems[0].name,
        report.systems[0].power_state
    );
    client.logout().await.expect("logout");
}
