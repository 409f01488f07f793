//! End-to-end tests of the BMC simulator over HTTPS on loopback.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rackside_bmc::{
    BmcConfig, BmcError, DataSource, Fault, Role, RunningBmc, Secret, TlsSource, UserAccount,
};
use reqwest::{Method, StatusCode};
use rustls_pki_types::CertificateDer;
use serde_json::{json, Value};

const USER: &str = "root";
const PASSWORD: &str = "correct-horse-battery";
const VIEWER: &str = "viewer";
const VIEWER_PASSWORD: &str = "viewer-password-1";
const SYSTEM: &str = "/redfish/v1/Systems/1";
const LCLOG: &str = "/redfish/v1/Managers/1/LogServices/Lclog/Entries";
const SESSIONS: &str = "/redfish/v1/SessionService/Sessions";

// ---------------------------------------------------------------------------------------------
// Harness

/// Finds the shared test data folder, from `RACKSIDE_TEST_DATA` or `../shared` next to the workspace.
fn shared_data() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("RACKSIDE_TEST_DATA") {
        return Some(PathBuf::from(dir));
    }
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    default.is_dir().then_some(default)
}

/// Skips a test whose external input is missing, or fails it under
/// `RACKSIDE_REQUIRE_EXTERNAL=1` (as in CI).
fn skip_or_fail(reason: &str) {
    if std::env::var("RACKSIDE_REQUIRE_EXTERNAL").is_ok_and(|value| value == "1") {
        panic!("required test input missing: {reason}");
    }
    eprintln!("skipped: {reason}");
}

/// Finds the Python venv with DMTF's validators, from `RACKSIDE_VENV` or `.venv` of the
/// workspace.
fn venv() -> Option<PathBuf> {
    let path = match std::env::var_os("RACKSIDE_VENV") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv"),
    };
    if path.join("bin/rf_protocol_validator").exists() {
        return Some(path);
    }
    skip_or_fail("RACKSIDE_VENV not set and .venv not found; run ./scripts/test");
    None
}

fn mockup(name: &str) -> Option<PathBuf> {
    let dir = shared_data()?.join("redfish/mockups").join(name);
    dir.is_dir().then_some(dir)
}

macro_rules! require_mockup {
    ($name:expr) => {
        match mockup($name) {
            Some(dir) => dir,
            None => {
                skip_or_fail("RACKSIDE_TEST_DATA not set and ../shared not found");
                return;
            }
        }
    };
}

struct Bmc {
    running: RunningBmc,
    http: reqwest::Client,
    base: String,
    _state: tempfile::TempDir,
}

fn config(state: &Path, data: DataSource) -> BmcConfig {
    let mut config = BmcConfig::new(state.to_path_buf());
    config.listen.set_port(0);
    config.data = data;
    config.first_user = Some((USER.into(), Secret::new(PASSWORD)));
    config.extra_users = vec![UserAccount {
        name: VIEWER.into(),
        password: Secret::new(VIEWER_PASSWORD),
        role: Role::ReadOnly,
    }];
    config.power_delay = Duration::from_millis(300);
    config
}

async fn start_with(data: DataSource, adjust: impl FnOnce(&mut BmcConfig)) -> Bmc {
    let state = tempfile::tempdir().unwrap();
    let mut config = config(state.path(), data);
    adjust(&mut config);
    let running = rackside_bmc::start(config).await.unwrap();
    let http = client_trusting(&running.certificate_der());
    let base = format!("https://{}", running.local_addr());
    Bmc {
        running,
        http,
        base,
        _state: state,
    }
}

async fn start(adjust: impl FnOnce(&mut BmcConfig)) -> Bmc {
    start_with(DataSource::Embedded, adjust).await
}

fn tls_config(roots: rustls::RootCertStore) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

fn client_trusting(cert: &CertificateDer<'static>) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls_config(roots))
        .build()
        .unwrap()
}

/// A response read in full.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    bytes: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|e| {
            panic!(
                "invalid JSON ({e}): {}",
                String::from_utf8_lossy(&self.bytes)
            )
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn message_ids(&self) -> Vec<String> {
        self.json()["error"]["@Message.ExtendedInfo"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|m| m["MessageId"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn has_message(&self, suffix: &str) -> bool {
        self.message_ids().iter().any(|id| id.ends_with(suffix))
    }
}

enum Auth<'a> {
    None,
    Token(&'a str),
    Basic(&'a str, &'a str),
}

impl Bmc {
    async fn send(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        request = match auth {
            Auth::None => request,
            Auth::Token(token) => request.header("X-Auth-Token", token),
            Auth::Basic(user, password) => request.basic_auth(user, Some(password)),
        };
        if let Some(body) = body {
            request = request.json(&body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap().to_vec();
        Reply {
            status,
            headers,
            bytes,
        }
    }

    async fn get(&self, token: &str, path: &str) -> Reply {
        self.send(Method::GET, path, Auth::Token(token), None, &[])
            .await
    }

    async fn patch(&self, token: &str, path: &str, body: Value, headers: &[(&str, &str)]) -> Reply {
        self.send(Method::PATCH, path, Auth::Token(token), Some(body), headers)
            .await
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Auth::Token(token), Some(body), &[])
            .await
    }

    async fn try_login_at(&self, sessions: &str, user: &str, password: &str) -> Reply {
        let body = json!({"UserName": user, "Password": password});
        self.send(Method::POST, sessions, Auth::None, Some(body), &[])
            .await
    }

    async fn login_at(&self, sessions: &str, user: &str, password: &str) -> String {
        let reply = self.try_login_at(sessions, user, password).await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{:?}",
            String::from_utf8_lossy(&reply.bytes)
        );
        reply.header("X-Auth-Token").unwrap().to_owned()
    }

    async fn login(&self) -> String {
        self.login_at(SESSIONS, USER, PASSWORD).await
    }

    async fn newest_log_entry(&self, token: &str) -> Value {
        self.get(token, LCLOG).await.json()["Members"][0].clone()
    }

    async fn enable(&self, fault: Fault) {
        self.running.faults().enable(fault);
    }
}

// ---------------------------------------------------------------------------------------------
// Start-up and TLS

#[tokio::test]
async fn start_without_user_is_rejected() {
    let state = tempfile::tempdir().unwrap();
    let mut config = config(state.path(), DataSource::Embedded);
    config.first_user = None;
    let error = rackside_bmc::start(config).await.err().unwrap();
    assert!(matches!(error, BmcError::NoUser));
    assert!(error.to_string().contains("no default password"), "{error}");
}

#[tokio::test]
async fn generated_certificate_is_reused_on_restart() {
    let state = tempfile::tempdir().unwrap();
    let first = rackside_bmc::start(config(state.path(), DataSource::Embedded))
        .await
        .unwrap();
    let cert = first.certificate_der();
    first.shutdown().await;
    let second = rackside_bmc::start(config(state.path(), DataSource::Embedded))
        .await
        .unwrap();
    assert_eq!(second.certificate_der(), cert);
    assert!(state.path().join(rackside_bmc::KEY_FILE).is_file());
    second.shutdown().await;
}

#[tokio::test]
async fn user_certificate_files_are_presented() {
    let state = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let cert_path = state.path().join("user-cert.pem");
    let key_path = state.path().join("user-key.pem");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();

    let mut config = config(state.path(), DataSource::Embedded);
    config.tls = TlsSource::Files {
        cert: cert_path,
        key: key_path,
    };
    let running = rackside_bmc::start(config).await.unwrap();
    assert_eq!(running.certificate_der().as_ref(), cert.der().as_ref());
    running.shutdown().await;
}

#[tokio::test]
async fn bad_key_file_gives_error_naming_file() {
    let state = tempfile::tempdir().unwrap();
    let cert_path = state.path().join("c.pem");
    let key_path = state.path().join("broken-key.pem");
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(&cert_path, params.self_signed(&key).unwrap().pem()).unwrap();
    std::fs::write(&key_path, "-----BEGIN PRIVATE KEY-----\nAAAA\n").unwrap();
    let mut config = config(state.path(), DataSource::Embedded);
    config.tls = TlsSource::Files {
        cert: cert_path,
        key: key_path,
    };
    let error = rackside_bmc::start(config).await.err().unwrap();
    assert!(error.to_string().contains("broken-key.pem"), "{error}");
}

#[tokio::test]
async fn rejecting_client_sends_zero_application_bytes() {
    let bmc = start(|_| {}).await;
    let connector =
        tokio_rustls::TlsConnector::from(Arc::new(tls_config(rustls::RootCertStore::empty())));
    let tcp = tokio::net::TcpStream::connect(bmc.running.local_addr())
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    assert!(connector.connect(name, tcp).await.is_err());
    tokio::time::sleep(Duration::from_millis(100)).await;

    let stats = bmc.running.stats();
    assert_eq!(stats.connections, 1);
    assert_eq!(stats.tls_handshakes_completed, 0);
    assert_eq!(stats.application_bytes_received, 0);

    let reply = bmc
        .send(Method::GET, "/redfish/v1", Auth::None, None, &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let stats = bmc.running.stats();
    assert_eq!(stats.tls_handshakes_completed, 1);
    assert!(stats.application_bytes_received > 0);
}

// ---------------------------------------------------------------------------------------------
// Authentication and sessions

#[tokio::test]
async fn service_root_is_public_with_odata_headers() {
    let bmc = start(|_| {}).await;
    let reply = bmc
        .send(Method::GET, "/redfish/v1/", Auth::None, None, &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("OData-Version"), Some("4.0"));
    assert_eq!(
        reply.header("Content-Type"),
        Some("application/json; charset=utf-8")
    );
    assert!(reply.header("ETag").unwrap().starts_with('"'));
    assert_eq!(reply.header("Allow"), Some("GET, HEAD"));
    assert_eq!(reply.json()["Links"]["Sessions"]["@odata.id"], SESSIONS);

    let version = bmc
        .send(Method::GET, "/redfish", Auth::None, None, &[])
        .await;
    assert_eq!(version.json(), json!({"v1": "/redfish/v1/"}));
}

#[tokio::test]
async fn protected_resource_requires_authentication() {
    let bmc = start(|_| {}).await;
    let reply = bmc.send(Method::GET, SYSTEM, Auth::None, None, &[]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.has_message("NoValidSession"));
    let reply = bmc
        .send(Method::GET, SYSTEM, Auth::Token("not-a-token"), None, &[])
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_returns_token_and_logs_client_address() {
    let bmc = start(|_| {}).await;
    let reply = bmc.try_login_at(SESSIONS, USER, PASSWORD).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let location = reply.header("Location").unwrap().to_owned();
    assert!(location.starts_with(&format!("{SESSIONS}/")), "{location}");
    let token = reply.header("X-Auth-Token").unwrap().to_owned();
    assert!(!reply
        .bytes
        .windows(PASSWORD.len())
        .any(|w| w == PASSWORD.as_bytes()));

    let session = bmc.get(&token, &location).await;
    assert_eq!(session.json()["UserName"], USER);
    let entry = bmc.newest_log_entry(&token).await;
    assert!(entry["MessageId"].as_str().unwrap().ends_with("USR0030"));
    assert_eq!(
        entry["Message"],
        "User root logged in from 127.0.0.1 using Redfish."
    );
}

#[tokio::test]
async fn failed_login_is_rejected_and_logged() {
    let bmc = start(|_| {}).await;
    let reply = bmc.try_login_at(SESSIONS, USER, "wrong-password").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.header("X-Auth-Token").is_none());
    let token = bmc.login().await;
    let page = bmc.get(&token, LCLOG).await.json();
    let second = &page["Members"][1];
    assert!(
        second["MessageId"].as_str().unwrap().ends_with("USR0031"),
        "{second}"
    );
    assert!(second["Message"].as_str().unwrap().contains("127.0.0.1"));
}

#[tokio::test]
async fn overlong_login_name_is_rejected_without_echo_or_log() {
    let bmc = start(|_| {}).await;
    let long = "N".repeat(900_000);
    let reply = bmc.try_login_at(SESSIONS, &long, "x").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.has_message("PropertyValueFormatError"));
    assert!(!String::from_utf8_lossy(&reply.bytes).contains("NNNN"));
    let reply = bmc.try_login_at(SESSIONS, USER, &"p".repeat(257)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    let token = bmc.login().await;
    let page = bmc.get(&token, LCLOG).await.json();
    assert!(!page["Members"][1]["MessageId"]
        .as_str()
        .unwrap()
        .ends_with("USR0031"));
}

#[tokio::test]
async fn failed_login_name_is_clipped_in_log() {
    let bmc = start(|_| {}).await;
    let name = "N".repeat(250);
    let reply = bmc.try_login_at(SESSIONS, &name, "x").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let token = bmc.login().await;
    let page = bmc.get(&token, LCLOG).await.json();
    let entry = &page["Members"][1];
    let message = entry["Message"].as_str().unwrap();
    assert!(message.contains("N…"), "{message}");
    assert!(message.len() < 200, "{message}");
    assert!(entry["MessageArgs"][0].as_str().unwrap().len() < 100);
}

#[tokio::test]
async fn logout_deletes_session_and_logs_it() {
    let bmc = start(|_| {}).await;
    let reply = bmc.try_login_at(SESSIONS, USER, PASSWORD).await;
    let token = reply.header("X-Auth-Token").unwrap().to_owned();
    let location = reply.header("Location").unwrap().to_owned();
    let deleted = bmc
        .send(Method::DELETE, &location, Auth::Token(&token), None, &[])
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        bmc.get(&token, SYSTEM).await.status,
        StatusCode::UNAUTHORIZED
    );

    let other = bmc.login().await;
    let page = bmc.get(&other, LCLOG).await.json();
    assert!(page["Members"][1]["MessageId"]
        .as_str()
        .unwrap()
        .ends_with("USR0032"));
}

#[tokio::test]
async fn session_limit_answers_503_rac0218() {
    let bmc = start(|c| c.max_sessions_per_user = 2).await;
    bmc.login().await;
    bmc.login().await;
    let reply = bmc.try_login_at(SESSIONS, USER, PASSWORD).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.has_message("RAC0218"));
    assert_eq!(
        reply.json()["error"]["@Message.ExtendedInfo"][0]["Message"],
        "The maximum number of user sessions is reached."
    );
    // Another user is not affected.
    bmc.login_at(SESSIONS, VIEWER, VIEWER_PASSWORD).await;
}

#[tokio::test]
async fn idle_session_expires() {
    let bmc = start(|c| c.session_idle_timeout = Duration::from_millis(200)).await;
    let token = bmc.login().await;
    assert_eq!(bmc.get(&token, SYSTEM).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        bmc.get(&token, SYSTEM).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn basic_auth_works_unless_switched_off() {
    let bmc = start(|_| {}).await;
    let reply = bmc
        .send(Method::GET, SYSTEM, Auth::Basic(USER, PASSWORD), None, &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let wrong = bmc
        .send(Method::GET, SYSTEM, Auth::Basic(USER, "nope"), None, &[])
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);

    let off = start(|c| c.basic_auth = false).await;
    let reply = off
        .send(Method::GET, SYSTEM, Auth::Basic(USER, PASSWORD), None, &[])
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.has_message("AccessDenied"));
    off.login().await;
}

#[tokio::test]
async fn read_only_user_cannot_change_anything() {
    let bmc = start(|_| {}).await;
    let token = bmc.login_at(SESSIONS, VIEWER, VIEWER_PASSWORD).await;
    assert_eq!(bmc.get(&token, SYSTEM).await.status, StatusCode::OK);
    let reply = bmc
        .patch(&token, SYSTEM, json!({"AssetTag": "x"}), &[])
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.has_message("InsufficientPrivilege"));
}

#[tokio::test]
async fn accounts_collection_lists_configured_users() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let accounts = bmc
        .get(&token, "/redfish/v1/AccountService/Accounts")
        .await
        .json();
    assert_eq!(accounts["Members@odata.count"], 2);
    let first = bmc
        .get(
            &token,
            accounts["Members"][0]["@odata.id"].as_str().unwrap(),
        )
        .await
        .json();
    assert_eq!(first["UserName"], USER);
    assert_eq!(first["RoleId"], "Administrator");
    assert!(first["Password"].is_null());
}

const ROOT_ACCOUNT: &str = "/redfish/v1/AccountService/Accounts/1";
const VIEWER_ACCOUNT: &str = "/redfish/v1/AccountService/Accounts/2";

#[tokio::test]
async fn account_rejects_unsupported_methods_with_405() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    for method in [Method::POST, Method::PUT] {
        let reply = bmc
            .send(
                method.clone(),
                ROOT_ACCOUNT,
                Auth::Token(&token),
                Some(json!({})),
                &[],
            )
            .await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(
            reply.header("Allow"),
            Some("GET, HEAD, PATCH, DELETE"),
            "{method}"
        );
        assert!(reply.has_message("OperationNotAllowed"), "{method}");
    }
    let reply = bmc.get(&token, ROOT_ACCOUNT).await;
    assert_eq!(reply.header("Allow"), Some("GET, HEAD, PATCH, DELETE"));
}

#[tokio::test]
async fn account_password_patch_applies_and_logs_without_password() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let new_password = "new-horse-battery";
    let reply = bmc
        .patch(&token, ROOT_ACCOUNT, json!({"Password": new_password}), &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json());
    assert!(reply.json()["Password"].is_null());

    let old = bmc.try_login_at(SESSIONS, USER, PASSWORD).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    let token = bmc.login_at(SESSIONS, USER, new_password).await;
    let page = bmc.get(&token, LCLOG).await.json();
    let change = page["Members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["Message"].as_str().unwrap().contains("password changed"))
        .expect("password change entry")
        .clone();
    assert!(change["Message"].as_str().unwrap().contains(ROOT_ACCOUNT));
    assert!(!page.to_string().contains(new_password));
}

#[tokio::test]
async fn account_password_patch_needs_owner_or_administrator() {
    let bmc = start(|_| {}).await;
    let viewer = bmc.login_at(SESSIONS, VIEWER, VIEWER_PASSWORD).await;
    let reply = bmc
        .patch(
            &viewer,
            ROOT_ACCOUNT,
            json!({"Password": "taken-over-1"}),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    bmc.login().await;

    let reply = bmc
        .patch(
            &viewer,
            VIEWER_ACCOUNT,
            json!({"Password": "viewer-new-1"}),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    bmc.login_at(SESSIONS, VIEWER, "viewer-new-1").await;
}

#[tokio::test]
async fn account_patch_rejects_other_properties_and_bad_passwords() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let cases = [
        (json!({"UserName": "viewer"}), "PropertyValueConflict"),
        (json!({"Colour": "red"}), "PropertyUnknown"),
        (json!({"Id": "7"}), "PropertyNotWritable"),
        (json!({}), "EmptyJSON"),
        (json!({"Password": "short-1"}), "PropertyValueFormatError"),
        (json!({"Password": 5}), "PropertyValueFormatError"),
        (json!({"Password": ""}), "PropertyValueFormatError"),
        (
            json!({"Password": "p".repeat(300)}),
            "PropertyValueFormatError",
        ),
    ];
    for (body, expected) in cases {
        let reply = bmc.patch(&token, ROOT_ACCOUNT, body.clone(), &[]).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(reply.has_message(expected), "{body}: {:?}", reply.json());
    }
    bmc.login().await;
}

// ---------------------------------------------------------------------------------------------
// Protocol

#[tokio::test]
async fn patch_changes_asset_tag_and_logs_it() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let before = bmc.get(&token, SYSTEM).await;
    let reply = bmc
        .patch(&token, SYSTEM, json!({"AssetTag": "RACK-7"}), &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let after = bmc.get(&token, SYSTEM).await;
    assert_eq!(after.json()["AssetTag"], "RACK-7");
    assert_ne!(after.header("ETag"), before.header("ETag"));
    let entry = bmc.newest_log_entry(&token).await;
    assert!(
        entry["Message"].as_str().unwrap().contains("AssetTag"),
        "{entry}"
    );
}

#[tokio::test]
async fn patch_keeps_identify_led_properties_in_step() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let reply = bmc
        .patch(
            &token,
            SYSTEM,
            json!({"LocationIndicatorActive": true}),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let system = bmc.get(&token, SYSTEM).await.json();
    assert_eq!(system["LocationIndicatorActive"], true);
    assert_eq!(system["IndicatorLED"], "Lit");
}

#[tokio::test]
async fn patch_if_match_must_name_current_etag() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let etag = bmc
        .get(&token, SYSTEM)
        .await
        .header("ETag")
        .unwrap()
        .to_owned();
    let stale = bmc
        .patch(
            &token,
            SYSTEM,
            json!({"AssetTag": "a"}),
            &[("If-Match", "\"stale\"")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert!(stale.has_message("PreconditionFailed"));
    let fresh = bmc
        .patch(
            &token,
            SYSTEM,
            json!({"AssetTag": "a"}),
            &[("If-Match", &etag)],
        )
        .await;
    assert_eq!(fresh.status, StatusCode::OK);
}

#[tokio::test]
async fn patch_rejects_read_only_unknown_and_bad_values() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let read_only = bmc
        .patch(&token, SYSTEM, json!({"PowerState": "Off"}), &[])
        .await;
    assert_eq!(read_only.status, StatusCode::BAD_REQUEST);
    assert!(read_only.has_message("PropertyNotWritable"));
    let unknown = bmc
        .patch(&token, SYSTEM, json!({"NoSuchThing": 1}), &[])
        .await;
    assert!(unknown.has_message("PropertyUnknown"));
    let bad = bmc
        .patch(&token, SYSTEM, json!({"IndicatorLED": "Purple"}), &[])
        .await;
    assert!(bad.has_message("PropertyValueNotInList"));
    let mixed = bmc
        .patch(
            &token,
            SYSTEM,
            json!({"AssetTag": "x", "PowerState": "Off"}),
            &[],
        )
        .await;
    assert_eq!(mixed.status, StatusCode::BAD_REQUEST);
    assert_ne!(bmc.get(&token, SYSTEM).await.json()["AssetTag"], "x");
}

#[tokio::test]
async fn malformed_json_is_rejected() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let response = bmc
        .http
        .patch(format!("{}{SYSTEM}", bmc.base))
        .header("X-Auth-Token", &token)
        .header("Content-Type", "application/json")
        .body("{\"AssetTag\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["@Message.ExtendedInfo"][0]["MessageId"]
        .as_str()
        .unwrap()
        .ends_with("MalformedJSON"));
}

#[tokio::test]
async fn unknown_resource_gives_404_resource_not_found() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let reply = bmc.get(&token, "/redfish/v1/NoSuchThing").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(reply.has_message("ResourceNotFound"));
}

#[tokio::test]
async fn unsupported_method_gives_405_with_allow() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let reply = bmc
        .send(Method::DELETE, SYSTEM, Auth::Token(&token), None, &[])
        .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.header("Allow"), Some("GET, HEAD, PATCH"));
    assert!(reply.has_message("OperationNotAllowed"));
}

#[tokio::test]
async fn head_returns_headers_without_body() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let reply = bmc
        .send(Method::HEAD, SYSTEM, Auth::Token(&token), None, &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.header("ETag").is_some());
    assert!(reply.bytes.is_empty());
}

#[tokio::test]
async fn collection_pages_with_top_and_skip() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let path = "/redfish/v1/Systems/1/Memory";
    let full = bmc.get(&token, path).await.json();
    let total = full["Members"].as_array().unwrap().len();
    assert!(total > 3);
    let page = bmc
        .get(&token, &format!("{path}?$top=2&$skip=1"))
        .await
        .json();
    assert_eq!(
        page["Members"],
        json!(full["Members"].as_array().unwrap()[1..3])
    );
    assert_eq!(page["Members@odata.count"], total);
    assert_eq!(
        page["Members@odata.nextLink"],
        format!("{path}?$skip=3&$top=2")
    );
    let bad = bmc.get(&token, &format!("{path}?$top=many")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn lifecycle_log_pages_newest_first_by_fifty() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let mut next = Some(LCLOG.to_owned());
    let mut seen = Vec::new();
    let mut count = None;
    while let Some(path) = next {
        let page = bmc.get(&token, &path).await.json();
        let members = page["Members"].as_array().unwrap();
        assert!(members.len() <= 50);
        count = page["Members@odata.count"].as_u64();
        seen.extend(members.iter().map(|m| m["Id"].as_str().unwrap().to_owned()));
        next = page["Members@odata.nextLink"].as_str().map(str::to_owned);
        if next.is_some() {
            assert_eq!(members.len(), 50);
        }
    }
    assert!(seen.len() > 100, "only {} entries", seen.len());
    assert_eq!(Some(seen.len() as u64), count);
    let unique: BTreeSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len());
    let ids: Vec<u64> = seen.iter().map(|id| id.parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "not newest first");
}

#[tokio::test]
async fn metadata_and_service_document_are_public() {
    let bmc = start(|_| {}).await;
    let metadata = bmc
        .send(Method::GET, "/redfish/v1/$metadata", Auth::None, None, &[])
        .await;
    assert_eq!(metadata.status, StatusCode::OK);
    assert_eq!(metadata.header("Content-Type"), Some("application/xml"));
    let xml = String::from_utf8(metadata.bytes).unwrap();
    assert!(xml.contains("ComputerSystem_v1.xml"));
    let odata = bmc
        .send(Method::GET, "/redfish/v1/odata", Auth::None, None, &[])
        .await
        .json();
    assert_eq!(odata["@odata.context"], "/redfish/v1/$metadata");
    assert!(odata["value"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == "Systems"));
}

#[tokio::test]
async fn odata_version_other_than_4_0_is_rejected() {
    let bmc = start(|_| {}).await;
    let reply = bmc
        .send(
            Method::GET,
            "/redfish/v1",
            Auth::None,
            None,
            &[("OData-Version", "4.1")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::PRECONDITION_FAILED);
}

#[tokio::test]
async fn event_subscription_is_created_and_deleted() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let path = "/redfish/v1/EventService/Subscriptions";
    let body = json!({"Destination": "https://192.0.2.1/events", "Protocol": "Redfish"});
    let created = bmc.post(&token, path, body).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let location = created.header("Location").unwrap().to_owned();
    assert_eq!(bmc.get(&token, &location).await.status, StatusCode::OK);
    let bad = bmc
        .post(
            &token,
            path,
            json!({"Destination": "https://x/", "Protocol": "FTP"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let deleted = bmc
        .send(Method::DELETE, &location, Auth::Token(&token), None, &[])
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        bmc.get(&token, &location).await.status,
        StatusCode::NOT_FOUND
    );
}

// ---------------------------------------------------------------------------------------------
// Power

const RESET: &str = "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset";

async fn power_state(bmc: &Bmc, token: &str, system: &str) -> String {
    bmc.get(token, system).await.json()["PowerState"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn reset_moves_power_state_through_transition() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    assert_eq!(power_state(&bmc, &token, SYSTEM).await, "On");
    let reply = bmc
        .post(&token, RESET, json!({"ResetType": "ForceOff"}))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(power_state(&bmc, &token, SYSTEM).await, "PoweringOff");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(power_state(&bmc, &token, SYSTEM).await, "Off");

    bmc.post(&token, RESET, json!({"ResetType": "On"})).await;
    assert_eq!(power_state(&bmc, &token, SYSTEM).await, "PoweringOn");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(power_state(&bmc, &token, SYSTEM).await, "On");
}

#[tokio::test]
async fn reset_with_unlisted_type_is_rejected() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let reply = bmc
        .post(&token, RESET, json!({"ResetType": "Suspend"}))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.has_message("PropertyValueNotInList"));
    let missing = bmc.post(&token, RESET, json!({})).await;
    assert!(missing.has_message("ActionParameterMissing"));
    let extra = bmc
        .post(&token, RESET, json!({"ResetType": "On", "Force": true}))
        .await;
    assert!(extra.has_message("ActionParameterNotSupported"));
}

// ---------------------------------------------------------------------------------------------
// Mockups

/// Maps every resource URI of a mockup folder to its file.
fn mockup_files(dir: &Path) -> BTreeMap<String, PathBuf> {
    let root = if dir.join("redfish/v1/index.json").is_file() {
        dir.join("redfish/v1")
    } else {
        dir.to_path_buf()
    };
    let mut files = BTreeMap::new();
    let mut folders = vec![(root, "/redfish/v1".to_owned())];
    while let Some((folder, uri)) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            if path.is_dir() {
                folders.push((path, format!("{uri}/{name}")));
            } else if name == "index.json" {
                files.insert(uri.clone(), path);
            }
        }
    }
    files
}

fn links(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                match (key.as_str(), item.as_str()) {
                    ("@odata.id" | "Members@odata.nextLink", Some(uri)) => out.push(uri.to_owned()),
                    _ => links(item, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| links(item, out)),
        _ => {}
    }
}

fn is_login_entry(member: &Value) -> bool {
    member["MessageId"]
        .as_str()
        .is_some_and(|id| id.ends_with("USR0030"))
}

#[tokio::test]
async fn every_mockup_serves_linked_files_unchanged() {
    let Some(shared) = shared_data() else {
        skip_or_fail("RACKSIDE_TEST_DATA not set and ../shared not found");
        return;
    };
    let names = [
        "dmtf/public-rackmount1",
        "dmtf/public-tower",
        "dmtf/public-bladed",
        "dmtf/public-localstorage",
        "vendor-captures/dell",
        "vendor-captures/hpe",
        "vendor-captures/lenovo",
    ];
    for name in names {
        let dir = shared.join("redfish/mockups").join(name);
        let files = mockup_files(&dir);
        let bmc = start_with(DataSource::Mockup(dir.clone()), |_| {}).await;
        let root = bmc
            .send(Method::GET, "/redfish/v1", Auth::None, None, &[])
            .await
            .json();
        let sessions = root["Links"]["Sessions"]["@odata.id"]
            .as_str()
            .unwrap()
            .trim_end_matches('/')
            .to_owned();
        let token = bmc.login_at(&sessions, USER, PASSWORD).await;

        let mut queue = VecDeque::from(["/redfish/v1".to_owned()]);
        let mut seen = BTreeSet::new();
        let mut compared = 0;
        while let Some(uri) = queue.pop_front() {
            if !seen.insert(uri.clone()) {
                continue;
            }
            let reply = bmc.get(&token, &uri).await;
            let key = uri.clone();
            let is_session = key == sessions || key.starts_with(&format!("{sessions}/"));
            let is_event_service = key.starts_with("/redfish/v1/EventService");
            if is_session || is_event_service {
                // Sessions and the event service are the simulator's own: the mockup's captured
                // sessions and subscriptions are not served, and its EventService is enabled.
                assert!(
                    matches!(reply.status, StatusCode::OK | StatusCode::NOT_FOUND),
                    "{name}: {uri}"
                );
                continue;
            }
            match files.get(&key) {
                None if reply.status == StatusCode::OK => {
                    // Only resources the simulator makes itself may lack a file.
                    let body = reply.json();
                    assert!(is_login_entry(&body), "{name}: {uri} served without a file");
                }
                None => assert_eq!(reply.status, StatusCode::NOT_FOUND, "{name}: {uri}"),
                Some(file) => {
                    assert_eq!(reply.status, StatusCode::OK, "{name}: {uri}");
                    let raw = std::fs::read(file).unwrap();
                    match serde_json::from_slice::<Value>(&raw) {
                        Err(_) => assert_eq!(reply.bytes, raw, "{name}: {uri} bytes changed"),
                        Ok(expected) => {
                            let served = reply.json();
                            if served != expected {
                                // A dynamic log: the file's entries follow the new login entries.
                                let members = served["Members"]
                                    .as_array()
                                    .unwrap_or_else(|| panic!("{name}: {uri} differs"));
                                let old = expected["Members"].as_array().unwrap();
                                let new = members.iter().take_while(|m| !old.contains(m)).count();
                                assert!(new > 0, "{name}: {uri} differs from its file");
                                assert_eq!(members[new..], old[..], "{name}: {uri}");
                                for member in &members[..new] {
                                    let entry = match member["MessageId"].is_string() {
                                        true => member.clone(),
                                        false => bmc
                                            .get(&token, member["@odata.id"].as_str().unwrap())
                                            .await
                                            .json(),
                                    };
                                    assert!(is_login_entry(&entry), "{name}: {uri} gained {entry}");
                                }
                            }
                            compared += 1;
                        }
                    }
                    if let Ok(body) = serde_json::from_slice::<Value>(&reply.bytes) {
                        let mut found = Vec::new();
                        links(&body, &mut found);
                        for link in found {
                            let link = link
                                .split('#')
                                .next()
                                .unwrap()
                                .trim_end_matches('/')
                                .to_owned();
                            if link.starts_with("/redfish/v1") && !seen.contains(&link) {
                                queue.push_back(link);
                            }
                        }
                    }
                }
            }
        }
        assert!(compared > 50, "{name}: only {compared} resources compared");
        bmc.running.shutdown().await;
    }
}

#[tokio::test]
async fn dell_captured_page_is_served_for_its_query() {
    let dir = require_mockup!("vendor-captures/dell");
    let bmc = start_with(DataSource::Mockup(dir.clone()), |_| {}).await;
    let token = bmc.login().await;
    let path = "/redfish/v1/Systems/System.Embedded.1/Oem/Dell/DellSlots?$skip=50";
    let reply = bmc.get(&token, path).await;
    assert_eq!(reply.status, StatusCode::OK);
    let file =
        dir.join("redfish/v1/Systems/System.Embedded.1/Oem/Dell/DellSlots?$skip=50/index.json");
    assert_eq!(reply.bytes, std::fs::read(file).unwrap());
}

#[tokio::test]
async fn mockup_system_resets_and_logs_login() {
    let dir = require_mockup!("vendor-captures/dell");
    let bmc = start_with(DataSource::Mockup(dir), |_| {}).await;
    let token = bmc.login().await;
    let system = "/redfish/v1/Systems/System.Embedded.1";
    let reset = format!("{system}/Actions/ComputerSystem.Reset");
    let reply = bmc
        .post(&token, &reset, json!({"ResetType": "GracefulShutdown"}))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(power_state(&bmc, &token, system).await, "PoweringOff");
    let log = bmc
        .get(
            &token,
            "/redfish/v1/Managers/iDRAC.Embedded.1/LogServices/Lclog/Entries",
        )
        .await
        .json();
    assert!(log["Members"]
        .as_array()
        .unwrap()
        .iter()
        .any(is_login_entry));
}

#[tokio::test]
async fn mockup_metadata_is_served_unchanged() {
    let dir = require_mockup!("dmtf/public-rackmount1");
    let bmc = start_with(DataSource::Mockup(dir.clone()), |_| {}).await;
    let reply = bmc
        .send(Method::GET, "/redfish/v1/$metadata", Auth::None, None, &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.bytes,
        std::fs::read(dir.join("$metadata/index.xml")).unwrap()
    );
}

#[tokio::test]
async fn clear_log_empties_mockup_sel() {
    let dir = require_mockup!("vendor-captures/dell");
    let bmc = start_with(DataSource::Mockup(dir), |_| {}).await;
    let token = bmc.login().await;
    let sel = "/redfish/v1/Managers/iDRAC.Embedded.1/LogServices/Sel";
    let before = bmc.get(&token, &format!("{sel}/Entries")).await.json();
    assert!(before["Members@odata.count"].as_u64().unwrap() > 0);
    let action = format!("{sel}/Actions/LogService.ClearLog");
    let reply = bmc.post(&token, &action, json!({})).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let after = bmc.get(&token, &format!("{sel}/Entries")).await.json();
    assert_eq!(after["Members@odata.count"], 0);
    let old_entry = before["Members"][0]["@odata.id"].as_str().unwrap();
    assert_eq!(
        bmc.get(&token, old_entry).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn missing_mockup_folder_is_rejected() {
    let state = tempfile::tempdir().unwrap();
    let config = config(state.path(), DataSource::Mockup(state.path().join("nope")));
    let error = rackside_bmc::start(config).await.err().unwrap();
    assert!(matches!(error, BmcError::InvalidMockup { .. }), "{error}");
}

// ---------------------------------------------------------------------------------------------
// Fault control

#[tokio::test]
async fn fault_endpoint_switches_faults_for_admins_only() {
    let bmc = start(|_| {}).await;
    let admin = bmc.login().await;
    let viewer = bmc.login_at(SESSIONS, VIEWER, VIEWER_PASSWORD).await;
    let body = json!({"enable": ["numeric-etag"]});
    let denied = bmc.post(&viewer, "/rackside/faults", body.clone()).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let reply = bmc.post(&admin, "/rackside/faults", body).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(bmc.running.faults().is_enabled(Fault::NumericEtag));
    let listed = bmc.get(&admin, "/rackside/faults").await.json();
    assert_eq!(listed["enabled"], json!(["numeric-etag"]));
    let unknown = bmc
        .post(&admin, "/rackside/faults", json!({"enable": ["bogus"]}))
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    bmc.post(
        &admin,
        "/rackside/faults",
        json!({"disable": ["numeric-etag"]}),
    )
    .await;
    assert!(!bmc.running.faults().is_enabled(Fault::NumericEtag));
}

#[tokio::test]
async fn fault_if_match_on_action_gives_412() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let post = |headers: &'static [(&'static str, &'static str)]| {
        bmc.send(
            Method::POST,
            RESET,
            Auth::Token(&token),
            Some(json!({"ResetType": "Nmi"})),
            headers,
        )
    };
    assert_eq!(
        post(&[("If-Match", "\"abc\"")]).await.status,
        StatusCode::NO_CONTENT
    );
    bmc.enable(Fault::IfMatchOnAction412).await;
    let reply = post(&[("If-Match", "\"abc\"")]).await;
    assert_eq!(reply.status, StatusCode::PRECONDITION_FAILED);
    assert!(reply.has_message("PreconditionFailed"));
    assert_eq!(post(&[]).await.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn fault_weak_etag_needs_weak_if_match() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let normal = bmc.get(&token, SYSTEM).await;
    assert!(normal.header("ETag").unwrap().starts_with('"'));
    assert!(normal.json().get("@odata.etag").is_none());

    bmc.enable(Fault::WeakEtag).await;
    let reply = bmc.get(&token, SYSTEM).await;
    let header = reply.header("ETag").unwrap().to_owned();
    assert!(header.starts_with("W/\""), "{header}");
    let body_tag = reply.json()["@odata.etag"].as_str().unwrap().to_owned();
    assert_ne!(body_tag, header);

    let without = bmc
        .patch(&token, SYSTEM, json!({"AssetTag": "w"}), &[])
        .await;
    assert_eq!(without.status, StatusCode::PRECONDITION_REQUIRED);
    let strong = header.trim_start_matches("W/").to_owned();
    let wrong_form = bmc
        .patch(
            &token,
            SYSTEM,
            json!({"AssetTag": "w"}),
            &[("If-Match", &strong)],
        )
        .await;
    assert_eq!(wrong_form.status, StatusCode::PRECONDITION_FAILED);
    let right = bmc
        .patch(
            &token,
            SYSTEM,
            json!({"AssetTag": "w"}),
            &[("If-Match", &header)],
        )
        .await;
    assert_eq!(right.status, StatusCode::OK);
}

#[tokio::test]
async fn fault_numeric_etag_on_account_service() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let path = "/redfish/v1/AccountService";
    assert!(bmc
        .get(&token, path)
        .await
        .json()
        .get("@odata.etag")
        .is_none());
    bmc.enable(Fault::NumericEtag).await;
    assert!(bmc.get(&token, path).await.json()["@odata.etag"].is_u64());
}

#[tokio::test]
async fn fault_log_shifts_while_paging() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let count = |page: &Value| page["Members@odata.count"].as_u64().unwrap();
    let first = bmc.get(&token, LCLOG).await.json();
    let again = bmc.get(&token, LCLOG).await.json();
    assert_eq!(count(&first), count(&again));

    bmc.enable(Fault::LogShiftsWhilePaging).await;
    let first = bmc.get(&token, LCLOG).await.json();
    let second = bmc.get(&token, &format!("{LCLOG}?$skip=50")).await.json();
    assert_eq!(count(&second), count(&first) + 1);
    assert!(is_login_entry(&first["Members"][0]));
    // The last entry of the first page reappears as the first entry of the second page.
    assert_eq!(second["Members"][0]["Id"], first["Members"][49]["Id"]);
}

#[tokio::test]
async fn fault_session_exhaustion_gives_503_rac0218() {
    let bmc = start(|_| {}).await;
    bmc.login().await;
    bmc.enable(Fault::SessionExhaustion).await;
    let reply = bmc.try_login_at(SESSIONS, USER, PASSWORD).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.has_message("RAC0218"));
    bmc.running.faults().disable(Fault::SessionExhaustion);
    bmc.login().await;
}

#[tokio::test]
async fn fault_basic_auth_disabled_keeps_sessions_working() {
    let bmc = start(|_| {}).await;
    let basic = || bmc.send(Method::GET, SYSTEM, Auth::Basic(USER, PASSWORD), None, &[]);
    assert_eq!(basic().await.status, StatusCode::OK);
    bmc.enable(Fault::BasicAuthDisabled).await;
    let reply = basic().await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.has_message("AccessDenied"));
    let token = bmc.login().await;
    assert_eq!(bmc.get(&token, SYSTEM).await.status, StatusCode::OK);
}

#[tokio::test]
async fn fault_role_problem_gives_401_not_403() {
    let bmc = start(|_| {}).await;
    let token = bmc.login_at(SESSIONS, VIEWER, VIEWER_PASSWORD).await;
    let change = || bmc.patch(&token, SYSTEM, json!({"AssetTag": "r"}), &[]);
    assert_eq!(change().await.status, StatusCode::FORBIDDEN);
    bmc.enable(Fault::RoleProblem401).await;
    let reply = change().await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.has_message("InsufficientPrivilege"));
    // The same credentials still read.
    assert_eq!(bmc.get(&token, SYSTEM).await.status, StatusCode::OK);
}

#[tokio::test]
async fn fault_vanishing_task_monitor_keeps_job() {
    let dir = require_mockup!("vendor-captures/dell");
    let bmc = start_with(DataSource::Mockup(dir), |c| {
        c.power_delay = Duration::from_millis(200)
    })
    .await;
    let token = bmc.login().await;
    let update = "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate";
    let body = json!({"ImageURI": "https://192.0.2.9/firmware.exe"});

    let reply = bmc.post(&token, update, body.clone()).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let normal_task = reply.header("Location").unwrap().to_owned();
    let tasks = bmc.get(&token, "/redfish/v1/TaskService/Tasks").await;
    if tasks.status == StatusCode::OK {
        assert!(tasks.json()["Members"]
            .as_array()
            .unwrap()
            .contains(&json!({"@odata.id": normal_task})));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let done = bmc.get(&token, &normal_task).await;
    assert_eq!(done.status, StatusCode::OK);
    assert_eq!(done.json()["TaskState"], "Completed");

    bmc.enable(Fault::VanishingTaskMonitor).await;
    let reply = bmc.post(&token, update, body).await;
    let task = reply.header("Location").unwrap().to_owned();
    assert!(
        task.starts_with("/redfish/v1/TaskService/Tasks/JID_"),
        "{task}"
    );
    assert_eq!(bmc.get(&token, &task).await.json()["TaskState"], "Running");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(bmc.get(&token, &task).await.status, StatusCode::NOT_FOUND);
    let job = task.replace(
        "/redfish/v1/TaskService/Tasks/",
        "/redfish/v1/Managers/iDRAC.Embedded.1/Jobs/",
    );
    let job = bmc.get(&token, &job).await;
    assert_eq!(job.status, StatusCode::OK);
    assert_eq!(job.json()["JobState"], "Completed");
}

#[tokio::test]
async fn fault_strict_reset_types_drops_graceful_restart() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let allowed = |system: &Value| {
        system["Actions"]["#ComputerSystem.Reset"]["ResetType@Redfish.AllowableValues"].clone()
    };
    assert!(allowed(&bmc.get(&token, SYSTEM).await.json())
        .as_array()
        .unwrap()
        .contains(&json!("GracefulRestart")));
    let restart = json!({"ResetType": "GracefulRestart"});
    assert_eq!(
        bmc.post(&token, RESET, restart.clone()).await.status,
        StatusCode::NO_CONTENT
    );

    bmc.enable(Fault::StrictResetTypes).await;
    assert!(!allowed(&bmc.get(&token, SYSTEM).await.json())
        .as_array()
        .unwrap()
        .contains(&json!("GracefulRestart")));
    let reply = bmc.post(&token, RESET, restart).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let message = reply.json()["error"]["@Message.ExtendedInfo"][0]["Message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("is not in the list of acceptable values"),
        "{message}"
    );
}

#[tokio::test]
async fn fault_malformed_dates_rewrites_dates() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let good = bmc.get(&token, SYSTEM).await.json()["LastResetTime"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(good.starts_with("20"), "{good}");
    bmc.enable(Fault::MalformedDates).await;
    assert_eq!(
        bmc.get(&token, SYSTEM).await.json()["LastResetTime"],
        "0000-00-00T00:00:00+00:00"
    );
    let created = bmc.newest_log_entry(&token).await["Created"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!created.ends_with("+00:00"), "{created}");
    assert!(created.ends_with("+0000"), "{created}");
}

#[tokio::test]
async fn fault_wrong_container_types_changes_types() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let cpu = "/redfish/v1/Systems/1/Processors/CPU1";
    assert!(bmc.get(&token, cpu).await.json()["MaxSpeedMHz"].is_number());
    bmc.enable(Fault::WrongContainerTypes).await;
    assert_eq!(bmc.get(&token, cpu).await.json()["MaxSpeedMHz"], "");

    let dir = require_mockup!("vendor-captures/dell");
    let dell = start_with(DataSource::Mockup(dir), |c| {
        c.faults = [Fault::WrongContainerTypes].into_iter().collect()
    })
    .await;
    let token = dell.login().await;
    let function = "/redfish/v1/Chassis/System.Embedded.1/PCIeDevices/0-28/PCIeFunctions/0-28-0";
    let body = dell.get(&token, function).await.json();
    assert!(
        body.to_string().contains("\"StorageControllers\":{}"),
        "{body}"
    );

    let dir = require_mockup!("dmtf/public-rackmount1");
    let rack = start_with(DataSource::Mockup(dir), |c| {
        c.faults = [Fault::WrongContainerTypes].into_iter().collect()
    })
    .await;
    let token = rack.login().await;
    let thermal = rack
        .get(&token, "/redfish/v1/Chassis/1U/Thermal")
        .await
        .json();
    assert!(
        thermal["Temperatures"][0]["MemberId"].is_number(),
        "{thermal}"
    );
}

#[tokio::test]
async fn fault_transient_errors_on_thermal_and_power() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let thermal = "/redfish/v1/Chassis/1/ThermalSubsystem";
    assert_eq!(bmc.get(&token, thermal).await.status, StatusCode::OK);
    bmc.enable(Fault::TransientErrors).await;
    let first = bmc.get(&token, thermal).await;
    assert_eq!(first.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(first.header("Retry-After"), Some("1"));
    let second = bmc
        .get(&token, "/redfish/v1/Chassis/1/PowerSubsystem")
        .await;
    assert_eq!(second.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(second.has_message("SYS518"));
    assert_eq!(bmc.get(&token, thermal).await.status, StatusCode::OK);
}

#[tokio::test]
async fn fault_transient_errors_fail_first_writes() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    bmc.enable(Fault::TransientErrors).await;
    let led = json!({"IndicatorLED": "Lit"});
    let first = bmc.patch(&token, SYSTEM, led.clone(), &[]).await;
    assert_eq!(first.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(first.header("Retry-After").is_some());
    let second = bmc
        .post(&token, RESET, json!({"ResetType": "ForceOff"}))
        .await;
    assert_eq!(second.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(second.has_message("SYS518"));
    assert_eq!(power_state(&bmc, &token, SYSTEM).await, "On");
    assert_eq!(bmc.get(&token, SYSTEM).await.json()["IndicatorLED"], "Off");

    let third = bmc.patch(&token, SYSTEM, led, &[]).await;
    assert_eq!(third.status, StatusCode::OK);
    assert_eq!(bmc.get(&token, SYSTEM).await.json()["IndicatorLED"], "Lit");
}

#[tokio::test]
async fn fault_transient_errors_empties_job_collection() {
    let dir = require_mockup!("vendor-captures/dell");
    let bmc = start_with(DataSource::Mockup(dir), |_| {}).await;
    let token = bmc.login().await;
    let jobs = "/redfish/v1/JobService/Jobs";
    let normal = bmc.get(&token, jobs).await.json();
    assert_eq!(normal["Members"].as_array().unwrap().len(), 1);
    bmc.enable(Fault::TransientErrors).await;
    let empty = bmc.get(&token, jobs).await.json();
    assert_eq!(empty["Members"], json!([]));
    assert_eq!(empty["Members@odata.count"], 0);
}

#[tokio::test]
async fn fault_old_session_uri_moves_sessions() {
    let bmc = start(|_| {}).await;
    bmc.enable(Fault::OldSessionUri).await;
    let root = bmc
        .send(Method::GET, "/redfish/v1", Auth::None, None, &[])
        .await
        .json();
    assert_eq!(
        root["Links"]["Sessions"]["@odata.id"],
        "/redfish/v1/Sessions"
    );
    let new_path = bmc.try_login_at(SESSIONS, USER, PASSWORD).await;
    assert_ne!(new_path.status, StatusCode::CREATED);
    let token = bmc.login_at("/redfish/v1/Sessions", USER, PASSWORD).await;
    let list = bmc.get(&token, "/redfish/v1/Sessions").await.json();
    assert_eq!(list["Members@odata.count"], 1);

    bmc.running.faults().disable(Fault::OldSessionUri);
    let root = bmc
        .send(Method::GET, "/redfish/v1", Auth::None, None, &[])
        .await
        .json();
    assert_eq!(root["Links"]["Sessions"]["@odata.id"], SESSIONS);
}

#[tokio::test]
async fn fault_reject_unusual_headers_gives_internal_error() {
    let bmc = start(|_| {}).await;
    const ODD: &[(&str, &str)] = &[("X-Client-Trace", "1")];
    let get = |headers: &'static [(&'static str, &'static str)]| {
        bmc.send(Method::GET, "/redfish/v1", Auth::None, None, headers)
    };
    assert_eq!(get(ODD).await.status, StatusCode::OK);
    bmc.enable(Fault::RejectUnusualHeaders).await;
    let reply = get(ODD).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply
        .message_ids()
        .contains(&"Base.1.0.InternalError".to_owned()));
    assert_eq!(get(&[]).await.status, StatusCode::OK);
}

#[tokio::test]
async fn fault_legacy_indicator_led_hides_boolean() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    assert!(bmc
        .get(&token, SYSTEM)
        .await
        .json()
        .get("LocationIndicatorActive")
        .is_some());
    bmc.enable(Fault::LegacyIndicatorLed).await;
    let system = bmc.get(&token, SYSTEM).await.json();
    assert!(system.get("LocationIndicatorActive").is_none());
    assert_eq!(system["IndicatorLED"], "Off");
    let modern = bmc
        .patch(
            &token,
            SYSTEM,
            json!({"LocationIndicatorActive": true}),
            &[],
        )
        .await;
    assert!(modern.has_message("PropertyUnknown"));
    let legacy = bmc
        .patch(&token, SYSTEM, json!({"IndicatorLED": "Lit"}), &[])
        .await;
    assert_eq!(legacy.status, StatusCode::OK);
    assert_eq!(bmc.get(&token, SYSTEM).await.json()["IndicatorLED"], "Lit");
}

async fn boot_once_then_restart(bmc: &Bmc, token: &str) -> Value {
    let body =
        json!({"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}});
    assert_eq!(
        bmc.patch(token, SYSTEM, body, &[]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        bmc.post(token, RESET, json!({"ResetType": "ForceRestart"}))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    bmc.get(token, SYSTEM).await.json()["Boot"].clone()
}

#[tokio::test]
async fn one_time_boot_reverts_after_restart() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let boot = boot_once_then_restart(&bmc, &token).await;
    assert_eq!(boot["BootSourceOverrideEnabled"], "Disabled");
    assert_eq!(boot["BootSourceOverrideTarget"], "None");
    let entry = bmc.newest_log_entry(&token).await;
    let message = entry["Message"].as_str().unwrap();
    assert!(message.contains("booted from Pxe once"), "{message}");

    // A continuous override stays after a restart.
    let body = json!({"Boot": {"BootSourceOverrideTarget": "Hdd",
        "BootSourceOverrideEnabled": "Continuous"}});
    bmc.patch(&token, SYSTEM, body, &[]).await;
    bmc.post(&token, RESET, json!({"ResetType": "ForceRestart"}))
        .await;
    tokio::time::sleep(Duration::from_millis(450)).await;
    let boot = bmc.get(&token, SYSTEM).await.json()["Boot"].clone();
    assert_eq!(boot["BootSourceOverrideEnabled"], "Continuous");
    assert_eq!(boot["BootSourceOverrideTarget"], "Hdd");
}

#[tokio::test]
async fn boot_override_rejects_unadvertised_values() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    for (body, property) in [
        (
            json!({"Boot": {"BootSourceOverrideTarget": "Floppy"}}),
            "Boot/BootSourceOverrideTarget",
        ),
        (
            json!({"Boot": {"BootSourceOverrideEnabled": "Twice"}}),
            "Boot/BootSourceOverrideEnabled",
        ),
        (
            json!({"Boot": {"BootSourceOverrideMode": "Bios"}}),
            "Boot/BootSourceOverrideMode",
        ),
    ] {
        let reply = bmc.patch(&token, SYSTEM, body.clone(), &[]).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(reply.has_message("PropertyValueNotInList"), "{body}");
        assert!(reply.json().to_string().contains(property), "{body}");
    }
    let boot = bmc.get(&token, SYSTEM).await.json()["Boot"].clone();
    assert_eq!(boot["BootSourceOverrideEnabled"], "Disabled");
}

#[tokio::test]
async fn fault_boot_override_once_defers_mode() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    bmc.enable(Fault::BootOverrideOnce).await;
    let boot = boot_once_then_restart(&bmc, &token).await;
    assert_eq!(boot["BootSourceOverrideEnabled"], "Disabled");

    // A boot mode change waits for the next power-on.
    let mode = json!({"Boot": {"BootSourceOverrideMode": "Legacy"}});
    assert_eq!(
        bmc.patch(&token, SYSTEM, mode, &[]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        bmc.get(&token, SYSTEM).await.json()["Boot"]["BootSourceOverrideMode"],
        "UEFI"
    );
    bmc.post(&token, RESET, json!({"ResetType": "ForceRestart"}))
        .await;
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        bmc.get(&token, SYSTEM).await.json()["Boot"]["BootSourceOverrideMode"],
        "Legacy"
    );
}

#[tokio::test]
async fn fault_delayed_power_state_keeps_old_state_first() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let reset = |kind: &'static str| bmc.post(&token, RESET, json!({ "ResetType": kind }));
    assert_eq!(reset("ForceOff").await.status, StatusCode::NO_CONTENT);
    assert_eq!(power_state(&bmc, &token, SYSTEM).await, "PoweringOff");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(reset("On").await.status, StatusCode::NO_CONTENT);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(power_state(&bmc, &token, SYSTEM).await, "On");

    bmc.enable(Fault::DelayedPowerState).await;
    let started = Instant::now();
    assert_eq!(
        bmc.post(&token, RESET, json!({"ResetType": "ForceOff"}))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(power_state(&bmc, &token, SYSTEM).await, "On");
    tokio::time::sleep(Duration::from_millis(350).saturating_sub(started.elapsed())).await;
    assert_eq!(power_state(&bmc, &token, SYSTEM).await, "PoweringOff");
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(power_state(&bmc, &token, SYSTEM).await, "Off");
}

// ---------------------------------------------------------------------------------------------
// Later additions: accounts in mockups, query options, connection handling

#[tokio::test]
async fn patched_mockup_account_can_log_in() {
    let dir = require_mockup!("vendor-captures/dell");
    let bmc = start_with(DataSource::Mockup(dir), |_| {}).await;
    let token = bmc.login().await;
    let slot = "/redfish/v1/AccountService/Accounts/5";
    let body = json!({"UserName": "operator1", "Password": "operator-pass-1", "RoleId": "Operator", "Enabled": true});
    let reply = bmc.patch(&token, slot, body, &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    let account = reply.json();
    assert_eq!(account["UserName"], "operator1");
    assert!(!reply.bytes.windows(15).any(|w| w == b"operator-pass-1"));
    bmc.login_at(SESSIONS, "operator1", "operator-pass-1").await;

    let disable = bmc
        .patch(&token, slot, json!({"Enabled": false}), &[])
        .await;
    assert_eq!(disable.status, StatusCode::OK);
    let reply = bmc
        .try_login_at(SESSIONS, "operator1", "operator-pass-1")
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn only_query_returns_single_member() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let reply = bmc.get(&token, "/redfish/v1/Systems?only").await;
    assert_eq!(reply.json()["@odata.id"], SYSTEM);
    let bad = bmc.get(&token, "/redfish/v1/Systems?only=yes").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn matching_if_none_match_gives_304() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let etag = bmc
        .get(&token, SYSTEM)
        .await
        .header("ETag")
        .unwrap()
        .to_owned();
    let headers = [("If-None-Match", etag.as_str())];
    let reply = bmc
        .send(Method::GET, SYSTEM, Auth::Token(&token), None, &headers)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_MODIFIED);
    let stale = [("If-None-Match", "\"old\"")];
    let reply = bmc
        .send(Method::GET, SYSTEM, Auth::Token(&token), None, &stale)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn silent_client_is_dropped_after_timeout() {
    use tokio::io::AsyncReadExt;
    let bmc = start(|c| c.header_read_timeout = Duration::from_millis(200)).await;
    let mut tcp = tokio::net::TcpStream::connect(bmc.running.local_addr())
        .await
        .unwrap();
    let mut buffer = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut buffer)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "connection still open: {read:?}"
    );
}

#[tokio::test]
async fn connection_over_limit_is_closed() {
    let bmc = start(|c| c.max_connections = 1).await;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_config({
        let mut roots = rustls::RootCertStore::empty();
        roots.add(bmc.running.certificate_der()).unwrap();
        roots
    })));
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let first = tokio::net::TcpStream::connect(bmc.running.local_addr())
        .await
        .unwrap();
    let _open = connector.connect(name.clone(), first).await.unwrap();
    let second = tokio::net::TcpStream::connect(bmc.running.local_addr())
        .await
        .unwrap();
    assert!(connector.connect(name, second).await.is_err());
}

fn connector_for(bmc: &Bmc) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(bmc.running.certificate_der()).unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(tls_config(roots)))
}

#[tokio::test]
async fn slow_request_body_gets_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let bmc = start(|c| c.body_read_timeout = Duration::from_millis(500)).await;
    let tcp = tokio::net::TcpStream::connect(bmc.running.local_addr())
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector_for(&bmc).connect(name, tcp).await.unwrap();
    let head = format!(
        "POST {SESSIONS} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: 100000\r\n\r\n{{"
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.flush().await.unwrap();

    // The client sends nothing more; the service must answer before the body is complete.
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut reply)).await;
    assert!(read.is_ok(), "no answer while the body is incomplete");
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
}

#[tokio::test]
async fn connections_per_client_are_capped() {
    let bmc = start(|c| c.max_connections_per_client = 2).await;
    let connector = connector_for(&bmc);
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut open = Vec::new();
    for _ in 0..2 {
        let tcp = tokio::net::TcpStream::connect(bmc.running.local_addr())
            .await
            .unwrap();
        open.push(connector.connect(name.clone(), tcp).await.unwrap());
    }
    let third = tokio::net::TcpStream::connect(bmc.running.local_addr())
        .await
        .unwrap();
    assert!(connector.connect(name.clone(), third).await.is_err());

    drop(open);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = tokio::net::TcpStream::connect(bmc.running.local_addr())
        .await
        .unwrap();
    assert!(connector.connect(name, again).await.is_ok());
}

// ---------------------------------------------------------------------------------------------
// Provisioning writes: power, LED, accounts, network, location; audit; query options; fleets

const ACCOUNTS: &str = "/redfish/v1/AccountService/Accounts";
const CHASSIS: &str = "/redfish/v1/Chassis/1";
const BMC_NIC: &str = "/redfish/v1/Managers/1/EthernetInterfaces/NIC.1";

/// Returns the messages of the newest `count` lifecycle log entries, newest first.
async fn recent_messages(bmc: &Bmc, token: &str, count: usize) -> Vec<String> {
    bmc.get(token, LCLOG).await.json()["Members"]
        .as_array()
        .unwrap()
        .iter()
        .take(count)
        .map(|e| e["Message"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn record_event_names_user_and_source() {
    let bmc = start(|_| {}).await;
    bmc.running.record_event(
        "USR0030",
        "Link login accepted",
        Some("root"),
        Some("link:AA:BB"),
    );
    let token = bmc.login().await;
    let entries = bmc.get(&token, LCLOG).await.json();
    let entry = entries["Members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["Message"]
                .as_str()
                .unwrap()
                .starts_with("Link login accepted")
        })
        .expect("recorded entry")
        .clone();
    assert_eq!(
        entry["Message"],
        "Link login accepted by root from link:AA:BB."
    );
    assert!(entry["MessageId"].as_str().unwrap().ends_with(".USR0030"));
    assert_eq!(entry["MessageArgs"][1], "root");
    assert_eq!(entry["MessageArgs"][2], "link:AA:BB");
}

#[tokio::test]
async fn every_reset_type_changes_state_and_logs() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let system = bmc.get(&token, SYSTEM).await.json();
    let advertised: Vec<String> = system["Actions"]["#ComputerSystem.Reset"]
        ["ResetType@Redfish.AllowableValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    // Each step: reset type, power state before it, power state after it.
    let steps = [
        ("GracefulShutdown", "On", "Off"),
        ("On", "Off", "On"),
        ("ForceOff", "On", "Off"),
        ("PowerCycle", "Off", "On"),
        ("GracefulRestart", "On", "On"),
        ("ForceRestart", "On", "On"),
        ("Nmi", "On", "On"),
    ];
    let covered: BTreeSet<&str> = steps.iter().map(|(t, ..)| *t).collect();
    for kind in &advertised {
        assert!(covered.contains(kind.as_str()), "{kind} is not exercised");
    }
    for (kind, before, after) in steps {
        assert_eq!(power_state(&bmc, &token, SYSTEM).await, before, "{kind}");
        let reply = bmc.post(&token, RESET, json!({ "ResetType": kind })).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{kind}");
        let moving = power_state(&bmc, &token, SYSTEM).await;
        if kind == "Nmi" {
            assert_eq!(moving, "On");
        } else {
            assert!(moving.starts_with("Powering"), "{kind}: {moving}");
        }
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert_eq!(power_state(&bmc, &token, SYSTEM).await, after, "{kind}");
        let messages = recent_messages(&bmc, &token, 3).await;
        let expected = if kind == "Nmi" {
            "Diagnostic interrupt (NMI)".to_owned()
        } else {
            format!("Reset {kind} started")
        };
        assert!(
            messages
                .iter()
                .any(|m| m.contains(&expected) && m.contains("by root from 127.0.0.1")),
            "{kind}: {messages:?}"
        );
    }
}

#[tokio::test]
async fn identify_led_properties_stay_consistent() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    for path in [SYSTEM, CHASSIS] {
        let reply = bmc
            .patch(&token, path, json!({"IndicatorLED": "Blinking"}), &[])
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        let body = bmc.get(&token, path).await.json();
        assert_eq!(body["IndicatorLED"], "Blinking");
        assert_eq!(body["LocationIndicatorActive"], true);
        // The system and its chassis show the same LED.
        let other = if path == SYSTEM { CHASSIS } else { SYSTEM };
        assert_eq!(
            bmc.get(&token, other).await.json()["IndicatorLED"],
            "Blinking"
        );

        bmc.patch(&token, path, json!({"LocationIndicatorActive": false}), &[])
            .await;
        let body = bmc.get(&token, path).await.json();
        assert_eq!(body["IndicatorLED"], "Off");
        assert_eq!(body["LocationIndicatorActive"], false);

        let conflict = json!({"IndicatorLED": "Lit", "LocationIndicatorActive": false});
        let reply = bmc.patch(&token, path, conflict, &[]).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(reply.has_message("PropertyValueConflict"));
        assert_eq!(bmc.get(&token, path).await.json()["IndicatorLED"], "Off");
    }
    let messages = recent_messages(&bmc, &token, 10).await;
    assert!(messages.iter().any(|m| m
        .contains("IndicatorLED of /redfish/v1/Chassis/1 set to Blinking")
        && m.ends_with("by root from 127.0.0.1.")));
}

#[tokio::test]
async fn new_account_logs_in_until_disabled() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let body = json!({"UserName": "ops1", "Password": "ops-password-12", "RoleId": "Operator"});
    let created = bmc.post(&token, ACCOUNTS, body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.json());
    let location = created.header("Location").unwrap().to_owned();
    assert_eq!(created.json()["UserName"], "ops1");
    assert_eq!(created.json()["Enabled"], true);
    let listed = bmc.get(&token, ACCOUNTS).await.json();
    assert_eq!(listed["Members@odata.count"], 3);

    let ops = bmc.login_at(SESSIONS, "ops1", "ops-password-12").await;
    // An operator changes the host but not the accounts.
    let led = bmc
        .patch(&ops, SYSTEM, json!({"IndicatorLED": "Lit"}), &[])
        .await;
    assert_eq!(led.status, StatusCode::OK);
    let other = json!({"UserName": "ops2", "Password": "ops-password-12", "RoleId": "Operator"});
    assert_eq!(
        bmc.post(&ops, ACCOUNTS, other).await.status,
        StatusCode::FORBIDDEN
    );

    let disabled = bmc
        .patch(&token, &location, json!({"Enabled": false}), &[])
        .await;
    assert_eq!(disabled.status, StatusCode::OK);
    assert_eq!(disabled.json()["Enabled"], false);
    // Disabling ends the account's sessions and rejects new logins.
    assert_eq!(bmc.get(&ops, SYSTEM).await.status, StatusCode::UNAUTHORIZED);
    let refused = bmc.try_login_at(SESSIONS, "ops1", "ops-password-12").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);

    bmc.patch(
        &token,
        &location,
        json!({"Enabled": true, "RoleId": "ReadOnly"}),
        &[],
    )
    .await;
    let viewer = bmc.login_at(SESSIONS, "ops1", "ops-password-12").await;
    let patch = bmc
        .patch(&viewer, SYSTEM, json!({"IndicatorLED": "Off"}), &[])
        .await;
    assert_eq!(patch.status, StatusCode::FORBIDDEN);
    let reset = bmc.post(&viewer, RESET, json!({"ResetType": "On"})).await;
    assert_eq!(reset.status, StatusCode::FORBIDDEN);

    let deleted = bmc
        .send(Method::DELETE, &location, Auth::Token(&token), None, &[])
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        bmc.get(&token, &location).await.status,
        StatusCode::NOT_FOUND
    );
    let gone = bmc.try_login_at(SESSIONS, "ops1", "ops-password-12").await;
    assert_eq!(gone.status, StatusCode::UNAUTHORIZED);

    let messages = recent_messages(&bmc, &token, 20).await;
    for expected in [
        "Account ops1 created",
        "disabled",
        "role set to ReadOnly",
        "deleted",
    ] {
        assert!(
            messages
                .iter()
                .any(|m| m.contains(expected) && m.contains("by root from 127.0.0.1")),
            "{expected}: {messages:?}"
        );
    }
    assert!(!messages.iter().any(|m| m.contains("ops-password-12")));
}

#[tokio::test]
async fn account_creation_enforces_password_policy() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let service = bmc.get(&token, "/redfish/v1/AccountService").await.json();
    let min = service["MinPasswordLength"].as_u64().unwrap() as usize;
    let max = service["MaxPasswordLength"].as_u64().unwrap() as usize;
    let cases = [
        (
            json!({"UserName": "a1", "Password": "p".repeat(min - 1), "RoleId": "Operator"}),
            StatusCode::BAD_REQUEST,
            "PropertyValueFormatError",
        ),
        (
            json!({"UserName": "a1", "Password": "p".repeat(max + 1), "RoleId": "Operator"}),
            StatusCode::BAD_REQUEST,
            "PropertyValueFormatError",
        ),
        (
            json!({"UserName": "a1", "Password": "p".repeat(min), "RoleId": "Root"}),
            StatusCode::BAD_REQUEST,
            "PropertyValueNotInList",
        ),
        (
            json!({"UserName": "a b", "Password": "p".repeat(min), "RoleId": "Operator"}),
            StatusCode::BAD_REQUEST,
            "PropertyValueFormatError",
        ),
        (
            json!({"Password": "p".repeat(min), "RoleId": "Operator"}),
            StatusCode::BAD_REQUEST,
            "PropertyMissing",
        ),
        (
            json!({"UserName": VIEWER, "Password": "p".repeat(min), "RoleId": "Operator"}),
            StatusCode::CONFLICT,
            "ResourceAlreadyExists",
        ),
    ];
    for (body, status, message) in cases {
        let reply = bmc.post(&token, ACCOUNTS, body.clone()).await;
        assert_eq!(reply.status, status, "{body}");
        assert!(reply.has_message(message), "{body}: {:?}", reply.json());
        assert!(!String::from_utf8_lossy(&reply.bytes).contains(&"p".repeat(min - 1)));
    }
    assert_eq!(
        bmc.get(&token, ACCOUNTS).await.json()["Members@odata.count"],
        2
    );
    let viewer = bmc.login_at(SESSIONS, VIEWER, VIEWER_PASSWORD).await;
    let body = json!({"UserName": "a1", "Password": "p".repeat(min), "RoleId": "Operator"});
    assert_eq!(
        bmc.post(&viewer, ACCOUNTS, body).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn last_administrator_cannot_be_removed() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let deleted = bmc
        .send(Method::DELETE, ROOT_ACCOUNT, Auth::Token(&token), None, &[])
        .await;
    assert_eq!(deleted.status, StatusCode::BAD_REQUEST);
    assert!(deleted.has_message("ResourceCannotBeDeleted"));
    let demoted = bmc
        .patch(&token, ROOT_ACCOUNT, json!({"RoleId": "ReadOnly"}), &[])
        .await;
    assert_eq!(demoted.status, StatusCode::BAD_REQUEST);
    assert!(demoted.has_message("PropertyValueResourceConflict"));
    assert_eq!(
        bmc.get(&token, ROOT_ACCOUNT).await.json()["RoleId"],
        "Administrator"
    );
    let disabled = bmc
        .patch(&token, ROOT_ACCOUNT, json!({"Enabled": false}), &[])
        .await;
    assert_eq!(disabled.status, StatusCode::BAD_REQUEST);
    assert!(disabled.has_message("PropertyValueResourceConflict"));
    let text = disabled.json().to_string();
    assert!(text.contains("'Enabled'"), "{text}");
    assert!(!text.contains("RoleId"), "{text}");
    assert!(text.contains("last enabled administrator"), "{text}");
    assert_eq!(bmc.get(&token, ROOT_ACCOUNT).await.json()["Enabled"], true);
}

#[tokio::test]
async fn mockup_accounts_take_post_unless_slotted() {
    let dir = require_mockup!("dmtf/public-rackmount1");
    let bmc = start_with(DataSource::Mockup(dir), |_| {}).await;
    let token = bmc.login().await;
    let body = json!({"UserName": "ops1", "Password": "ops-password-12", "RoleId": "Operator"});
    let created = bmc.post(&token, ACCOUNTS, body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.json());
    let location = created.header("Location").unwrap().to_owned();
    assert_eq!(bmc.get(&token, &location).await.json()["UserName"], "ops1");
    bmc.login_at(SESSIONS, "ops1", "ops-password-12").await;
    let listed = bmc.get(&token, ACCOUNTS).await.json();
    assert!(listed["Members"].to_string().contains(&location));

    let deleted = bmc
        .send(Method::DELETE, &location, Auth::Token(&token), None, &[])
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let refused = bmc.try_login_at(SESSIONS, "ops1", "ops-password-12").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(!bmc.get(&token, ACCOUNTS).await.json()["Members"]
        .to_string()
        .contains(&location));

    // The iDRAC capture has 16 fixed slots: a POST gets 405, and clients fill an empty slot by
    // PATCH.
    let dell = require_mockup!("vendor-captures/dell");
    let bmc = start_with(DataSource::Mockup(dell), |_| {}).await;
    let token = bmc.login().await;
    let body = json!({"UserName": "ops1", "Password": "ops-password-12", "RoleId": "Operator"});
    let reply = bmc.post(&token, ACCOUNTS, body).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn manager_nic_settings_are_reported() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let change = json!({
        "HostName": "r14-07-bmc",
        "IPv4StaticAddresses": [{"Address": "198.51.100.20", "SubnetMask": "255.255.255.0",
            "Gateway": "198.51.100.1"}],
        "StaticNameServers": ["198.51.100.2"],
        "VLAN": {"VLANEnable": true, "VLANId": 120},
    });
    let reply = bmc.patch(&token, BMC_NIC, change, &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json());
    let nic = bmc.get(&token, BMC_NIC).await.json();
    assert_eq!(nic["HostName"], "r14-07-bmc");
    assert_eq!(nic["FQDN"], "r14-07-bmc.example.net");
    assert_eq!(nic["IPv4Addresses"][0]["Address"], "198.51.100.20");
    assert_eq!(nic["IPv4Addresses"][0]["AddressOrigin"], "Static");
    assert_eq!(nic["NameServers"], json!(["198.51.100.2"]));
    assert_eq!(nic["VLAN"]["VLANId"], 120);
    assert_eq!(nic["VLAN"]["VLANEnable"], true);
    let protocol = bmc
        .get(&token, "/redfish/v1/Managers/1/NetworkProtocol")
        .await
        .json();
    assert_eq!(protocol["HostName"], "r14-07-bmc");
    assert_eq!(protocol["FQDN"], "r14-07-bmc.example.net");

    let dhcp = bmc
        .patch(
            &token,
            BMC_NIC,
            json!({"DHCPv4": {"DHCPEnabled": true}}),
            &[],
        )
        .await;
    assert_eq!(dhcp.status, StatusCode::OK);
    let nic = bmc.get(&token, BMC_NIC).await.json();
    assert_eq!(nic["IPv4Addresses"][0]["AddressOrigin"], "DHCP");
    let messages = recent_messages(&bmc, &token, 8).await;
    assert!(messages
        .iter()
        .any(|m| m.contains("DHCPv4/DHCPEnabled of") && m.contains("from 127.0.0.1")));
}

#[tokio::test]
async fn bad_nic_settings_change_nothing() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let before = bmc.get(&token, BMC_NIC).await.json();
    let cases = [
        (
            json!({"IPv4StaticAddresses": [{"Address": "198.51.100.300",
            "SubnetMask": "255.255.255.0"}]}),
            "PropertyValueFormatError",
        ),
        (
            json!({"IPv4StaticAddresses": [{"Address": "198.51.100.20",
            "SubnetMask": "255.0.255.0"}]}),
            "PropertyValueFormatError",
        ),
        (
            json!({"IPv4StaticAddresses": [{"Address": "198.51.100.20",
            "SubnetMask": "255.255.255.0", "Gateway": "203.0.113.1"}]}),
            "PropertyValueConflict",
        ),
        (
            json!({"StaticNameServers": ["dns.example"]}),
            "PropertyValueFormatError",
        ),
        (json!({"VLAN": {"VLANId": 5000}}), "PropertyValueOutOfRange"),
        (json!({"HostName": "bad_name!"}), "PropertyValueFormatError"),
        (
            json!({"HostName": "ok-name", "VLAN": {"VLANId": 0}}),
            "PropertyValueOutOfRange",
        ),
    ];
    for (body, message) in cases {
        let reply = bmc.patch(&token, BMC_NIC, body.clone(), &[]).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(reply.has_message(message), "{body}: {:?}", reply.json());
    }
    assert_eq!(bmc.get(&token, BMC_NIC).await.json(), before);
}

#[tokio::test]
async fn chassis_location_round_trips() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let location = json!({"Location": {
        "Placement": {"Row": "B", "Rack": "B-12", "RackOffsetUnits": "EIA_310", "RackOffset": 31},
        "PostalAddress": {"Building": "DC-North", "Room": "Hall 2", "City": "Springfield"},
    }});
    let reply = bmc.patch(&token, CHASSIS, location, &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json());
    let chassis = bmc.get(&token, CHASSIS).await.json();
    assert_eq!(chassis["Location"]["Placement"]["Rack"], "B-12");
    assert_eq!(chassis["Location"]["Placement"]["RackOffset"], 31);
    assert_eq!(chassis["Location"]["PostalAddress"]["Room"], "Hall 2");

    let bad = json!({"Location": {"Placement": {"RackOffset": 500, "Row": "C"}}});
    let reply = bmc.patch(&token, CHASSIS, bad, &[]).await;
    assert!(reply.has_message("PropertyValueOutOfRange"));
    let unknown = json!({"Location": {"Placement": {"Shelf": "3"}}});
    assert!(bmc
        .patch(&token, CHASSIS, unknown, &[])
        .await
        .has_message("PropertyUnknown"));
    let chassis = bmc.get(&token, CHASSIS).await.json();
    assert_eq!(chassis["Location"]["Placement"]["Row"], "B");
}

#[tokio::test]
async fn dell_topology_attributes_are_writable() {
    let dir = require_mockup!("vendor-captures/dell");
    let bmc = start_with(DataSource::Mockup(dir), |_| {}).await;
    let token = bmc.login().await;
    let path = "/redfish/v1/Managers/iDRAC.Embedded.1/Oem/Dell/DellAttributes/System.Embedded.1";
    let change = json!({"Attributes": {
        "ServerTopology.1.DataCenterName": "DC-North",
        "ServerTopology.1.RoomName": "Hall 2",
        "ServerTopology.1.AisleName": "B",
        "ServerTopology.1.RackName": "B-12",
        "ServerTopology.1.RackSlot": 31,
    }});
    let reply = bmc.patch(&token, path, change, &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json());
    let attributes = bmc.get(&token, path).await.json()["Attributes"].clone();
    assert_eq!(attributes["ServerTopology.1.RackName"], "B-12");
    assert_eq!(attributes["ServerTopology.1.RackSlot"], 31);
    let other = json!({"Attributes": {"SystemInfo.1.SysLocation": "x"}});
    assert!(bmc
        .patch(&token, path, other, &[])
        .await
        .has_message("PropertyNotWritable"));
}

#[tokio::test]
async fn deeply_nested_filter_is_rejected_after_login() {
    let bmc = start(|_| {}).await;
    let systems = "/redfish/v1/Systems";
    let nested = format!(
        "{systems}?$filter={}Id%20eq%201{}",
        "%28".repeat(1000),
        "%29".repeat(1000)
    );
    let anonymous = bmc.send(Method::GET, &nested, Auth::None, None, &[]).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    let token = bmc.login().await;
    let reply = bmc.get(&token, &nested).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.has_message("QueryParameterValueFormatError"));
    let nots = format!("{systems}?$filter={}Id%20eq%201", "not%20".repeat(2000));
    let reply = bmc.get(&token, &nots).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    let after = bmc.get(&token, systems).await;
    assert_eq!(after.status, StatusCode::OK);
}

#[tokio::test]
async fn query_options_reshape_responses() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let roles = "/redfish/v1/AccountService/Roles";
    let one = bmc
        .get(&token, &format!("{roles}?$filter=Id%20eq%20'Operator'"))
        .await
        .json();
    assert_eq!(
        one["Members"],
        json!([{"@odata.id": format!("{roles}/Operator")}])
    );
    let rest = bmc
        .get(
            &token,
            &format!("{roles}?$filter=not%20(Id%20eq%20'Operator')"),
        )
        .await
        .json();
    assert_eq!(rest["Members"].as_array().unwrap().len(), 2);
    let on_member = bmc
        .get(&token, &format!("{roles}/Operator?$filter=Id%20eq%20'x'"))
        .await;
    assert_eq!(on_member.status, StatusCode::BAD_REQUEST);

    let selected = bmc
        .get(
            &token,
            &format!("{roles}/Operator?$select=Name,AssignedPrivileges"),
        )
        .await
        .json();
    let keys: BTreeSet<&str> = selected
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["@odata.id", "@odata.type", "Name", "AssignedPrivileges"])
    );

    let expanded = bmc.get(&token, "/redfish/v1?$expand=.").await.json();
    assert!(expanded["Systems"]["Members"].is_array());
    assert_eq!(expanded["Links"]["Sessions"].as_object().unwrap().len(), 1);
    let links = bmc
        .get(&token, "/redfish/v1?$expand=~($levels=1)")
        .await
        .json();
    assert!(links["Links"]["Sessions"]["Members"].is_array());
    assert_eq!(links["Systems"].as_object().unwrap().len(), 1);

    let only = bmc.get(&token, "/redfish/v1/Systems?only").await.json();
    assert_eq!(only["@odata.id"], SYSTEM);
    let single = bmc.get(&token, "/redfish/v1/AccountService?only").await;
    assert_eq!(single.status, StatusCode::BAD_REQUEST);
    let bad = bmc.get(&token, "/redfish/v1?$expand=Systems").await;
    assert!(bad.has_message("QueryParameterValueFormatError"));
}

#[tokio::test]
async fn fleet_members_are_independent() {
    let state = tempfile::tempdir().unwrap();
    let config = config(state.path(), DataSource::Embedded);
    let fleet = rackside_bmc::start_fleet(config, 3).await.unwrap();
    let tags: Vec<String> = fleet.iter().map(RunningBmc::service_tag).collect();
    assert_eq!(tags, ["RKS1U01", "RKS1U02", "RKS1U03"]);
    let certificates: BTreeSet<Vec<u8>> =
        fleet.iter().map(|b| b.certificate_der().to_vec()).collect();
    assert_eq!(certificates.len(), 3);
    for index in 1..=3 {
        assert!(state
            .path()
            .join(format!("bmc-{index:03}/bmc-cert.pem"))
            .is_file());
    }

    // Each member has its own faults and state.
    fleet[1].faults().enable(Fault::SessionExhaustion);
    let mut macs = BTreeSet::new();
    for (index, running) in fleet.iter().enumerate() {
        let http = client_trusting(&running.certificate_der());
        let base = format!("https://{}", running.local_addr());
        let login = http
            .post(format!("{base}{SESSIONS}"))
            .json(&json!({"UserName": USER, "Password": PASSWORD}))
            .send()
            .await
            .unwrap();
        if index == 1 {
            assert_eq!(login.status(), StatusCode::SERVICE_UNAVAILABLE);
            continue;
        }
        let token = login.headers()["X-Auth-Token"].to_str().unwrap().to_owned();
        let nic: Value = http
            .get(format!("{base}{BMC_NIC}"))
            .header("X-Auth-Token", &token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        macs.insert(nic["MACAddress"].as_str().unwrap().to_owned());
    }
    assert_eq!(macs.len(), 2);
    for running in fleet {
        running.shutdown().await;
    }
}

#[tokio::test]
async fn fixed_port_fleet_uses_consecutive_ports() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let state = tempfile::tempdir().unwrap();
    let mut config = config(state.path(), DataSource::Embedded);
    config.listen.set_port(port);
    let Ok(fleet) = rackside_bmc::start_fleet(config, 2).await else {
        skip_or_fail("two consecutive loopback ports were not free");
        return;
    };
    let ports: Vec<u16> = fleet.iter().map(|b| b.local_addr().port()).collect();
    assert_eq!(ports, [port, port + 1]);
    for running in fleet {
        running.shutdown().await;
    }
}

// ---------------------------------------------------------------------------------------------
// DMTF validators

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_validator_finds_no_failure() {
    let (Some(venv), Some(shared)) = (venv(), shared_data()) else {
        return;
    };
    let bmc = start(|_| {}).await;
    let logs = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(venv.join("bin/rf_service_validator"))
        .arg("-r")
        .arg(&bmc.base)
        .args(["-u", USER, "-p", PASSWORD, "--schema_directory"])
        .arg(shared.join("redfish/csdl"))
        .arg("--logdir")
        .arg(logs.path())
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let summary: Vec<&str> = text.lines().filter(|l| l.contains('|')).collect();
    assert!(
        output.status.success(),
        "validator failed:\n{}",
        summary.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn use_case_checkers_find_no_failure() {
    let Some(venv) = venv() else {
        return;
    };
    let checkers = venv.join("bin/rf_use_case_checkers");
    if !checkers.exists() {
        skip_or_fail("rf_use_case_checkers not installed; run ./scripts/test");
        return;
    }

    let bmc = start(|_| {}).await;
    let reports = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(checkers)
        .arg("-r")
        .arg(&bmc.base)
        .args(["-u", USER, "-p", PASSWORD, "--report-dir"])
        .arg(reports.path())
        .args([
            "--test-list",
            "AccountManagement",
            "PowerControl",
            "BootOverride",
        ])
        .args(["ManagerEthernetInterfaces", "QueryParameters"])
        .output()
        .await
        .unwrap();

    let text = String::from_utf8_lossy(&output.stdout);
    // The summary table: a header row naming PASS, WARN, FAIL, NOT TESTED, then the counts.
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with('|')).collect();
    let counts: Vec<u64> = rows
        .get(1)
        .map(|row| {
            row.split('|')
                .filter_map(|cell| cell.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    eprintln!("rf_use_case_checkers: {}", rows.join(" "));

    assert_eq!(counts.len(), 4, "no summary:\n{text}");
    assert!(counts[0] > 50, "too few checks passed: {counts:?}");
    assert_eq!(counts[2], 0, "failures:\n{text}");
    // No warning either: every check that runs passes or is not applicable.
    assert_eq!(counts[1], 0, "warnings:\n{text}");
    assert!(output.status.success(), "{text}");
}

/// The example binary `serve`, which `cargo test` builds next to the test binaries.
fn serve_binary() -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    deps.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/serve")
}

#[tokio::test]
async fn protocol_validator_finds_no_failure() {
    let Some(venv) = venv() else {
        return;
    };
    if !serve_binary().is_file() {
        skip_or_fail("example `serve` not built; run `cargo test -p rackside-bmc` without --test");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    // The validator sends SSDP multicast, so it and the simulator run in a network namespace
    // that has only loopback.
    let script = r#"
        ip link set lo up || exit 97
        "$BMC" --port 8443 --state-dir "$WORK/state" --power-delay-ms 500 > "$WORK/bmc.out" 2>&1 &
        bmc=$!
        for _ in 1 2 3 4 5 6 7 8 9 10; do [ -s "$WORK/bmc.out" ] && break; sleep 0.5; done
        REQUESTS_CA_BUNDLE="$WORK/state/bmc-cert.pem" "$VALIDATOR" -r https://127.0.0.1:8443 \
            -u root -p "$RACKSIDE_BMC_PASSWORD" --ca-bundle "$WORK/state/bmc-cert.pem" \
            --avoid-http-redirect --report-dir "$WORK/reports" --report-type tsv
        result=$?
        kill $bmc
        exit $result
    "#;
    let root = std::process::Command::new("id").arg("-u").output().unwrap();
    let namespace = if String::from_utf8_lossy(&root.stdout).trim() == "0" {
        "-n"
    } else {
        "-rn"
    };
    let output = tokio::process::Command::new("unshare")
        .args([namespace, "sh", "-c", script])
        .env("BMC", serve_binary())
        .env("WORK", work.path())
        .env("VALIDATOR", venv.join("bin/rf_protocol_validator"))
        .env("RACKSIDE_BMC_PASSWORD", PASSWORD)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    if output.status.code() == Some(97) || (text.is_empty() && !output.status.success()) {
        skip_or_fail("no loopback-only network namespace (unshare -n) available");
        return;
    }
    let summary = text
        .lines()
        .find(|l| l.starts_with("Summary"))
        .unwrap_or_default()
        .to_owned();
    eprintln!("rf_protocol_validator: {summary}");
    assert!(
        summary.contains("FAIL: 0"),
        "{summary}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{summary}");
}

// ---------------------------------------------------------------------------------------------
// Events

const SUBSCRIPTIONS: &str = "/redfish/v1/EventService/Subscriptions";
const SSE: &str = "/redfish/v1/EventService/SSE";
const SUBMIT_TEST_EVENT: &str = "/redfish/v1/EventService/Actions/EventService.SubmitTestEvent";

/// A delivery the HTTPS event receiver got: the request headers and the JSON body.
type Delivery = (http::HeaderMap, Value);

/// Starts an HTTPS event receiver on loopback that records every delivery; returns its port
/// and certificate.
async fn event_receiver() -> (
    u16,
    CertificateDer<'static>,
    Arc<std::sync::Mutex<Vec<Delivery>>>,
) {
    use http_body_util::BodyExt as _;
    use hyper_util::rt::TokioIo;

    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let der = cert.der().clone();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![der.clone()],
        rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, sink) = (acceptor.clone(), sink.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let sink = sink.clone();
                        async move {
                            let headers = request.headers().clone();
                            let body = request.into_body().collect().await?.to_bytes();
                            let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
                            sink.lock().unwrap().push((headers, json));
                            Ok::<_, hyper::Error>(hyper::Response::new(http_body_util::Empty::<
                                bytes::Bytes,
                            >::new(
                            )))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, der, seen)
}

/// Waits up to 5 s for a delivery whose first event has a `MessageId` ending in `suffix`.
async fn wait_for_delivery(
    seen: &std::sync::Mutex<Vec<Delivery>>,
    suffix: &str,
) -> Option<Delivery> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let found = seen
            .lock()
            .unwrap()
            .iter()
            .find(|(_, body)| {
                body["Events"][0]["MessageId"]
                    .as_str()
                    .is_some_and(|id| id.ends_with(suffix))
            })
            .cloned();
        if let Some(found) = found {
            return Some(found);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Reads SSE frames from `SSE?{query}` until `count` arrived or 5 s passed; returns each
/// frame's id and `Event` payload.
async fn sse_frames(
    bmc: &Bmc,
    token: &str,
    query: &str,
    last_event_id: Option<u64>,
    count: usize,
) -> Vec<(u64, Value)> {
    let mut request = bmc
        .http
        .get(format!("{}{SSE}{query}", bmc.base))
        .header("X-Auth-Token", token);
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id.to_string());
    }
    let mut response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream",
        "SSE content type"
    );
    let mut text = String::new();
    let mut frames = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while frames.len() < count && Instant::now() < deadline {
        let chunk = tokio::time::timeout(Duration::from_millis(500), response.chunk()).await;
        let Ok(Ok(Some(chunk))) = chunk else {
            continue;
        };
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some((frame, rest)) = text.split_once("\n\n") {
            let id = frame
                .lines()
                .find_map(|l| l.strip_prefix("id: "))
                .unwrap()
                .parse()
                .unwrap();
            let data = frame
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap();
            frames.push((id, serde_json::from_str(data).unwrap()));
            text = rest.to_owned();
        }
    }
    frames
}

fn message_id(payload: &Value) -> &str {
    payload["Events"][0]["MessageId"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test]
async fn subscription_receives_power_event_with_context_and_headers() {
    let (port, cert, seen) = event_receiver().await;
    let bmc = start(|config| config.events.extra_roots = vec![cert]).await;
    let token = bmc.login().await;
    let subscription = json!({
        "Destination": format!("https://localhost:{port}/events/bmc-1"),
        "Context": "console-bmc-1",
        "HttpHeaders": {"X-Rackside-Event-Secret": "per-subscription-secret"},
        "DeliveryRetryPolicy": "SuspendRetries",
    });
    let created = bmc.post(&token, SUBSCRIPTIONS, subscription).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.json()["HttpHeaders"], Value::Null);

    let reply = bmc
        .post(&token, RESET, json!({"ResetType": "ForceOff"}))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(power_state(&bmc, &token, SYSTEM).await, "Off");

    let (headers, payload) = wait_for_delivery(&seen, "PowerStateChanged")
        .await
        .expect("no power-off event delivered");
    assert_eq!(
        headers["x-rackside-event-secret"],
        "per-subscription-secret"
    );
    assert_eq!(payload["Context"], "console-bmc-1");
    assert_eq!(
        payload["Events"][0]["OriginOfCondition"]["@odata.id"],
        SYSTEM
    );
}

#[tokio::test]
async fn plain_http_event_destination_is_rejected() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let reply = bmc
        .post(
            &token,
            SUBSCRIPTIONS,
            json!({"Destination": "http://localhost:9/events"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.has_message("PropertyValueFormatError"));
    let listed = bmc.get(&token, SUBSCRIPTIONS).await.json();
    assert_eq!(listed["Members@odata.count"], 0);
}

#[tokio::test]
async fn sse_filters_and_resumes_after_last_event_id() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    for id in ["Test.1.0.Wanted", "Test.1.0.Other", "Test.1.0.Wanted"] {
        let reply = bmc
            .post(&token, SUBMIT_TEST_EVENT, json!({"MessageId": id}))
            .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
    }
    let filter = "?$filter=MessageId%20eq%20'Test.1.0.Wanted'";

    let all = sse_frames(&bmc, &token, filter, Some(0), 2).await;
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|(_, p)| message_id(p) == "Test.1.0.Wanted"));

    let first_id = all[0].0;
    let resumed = sse_frames(&bmc, &token, filter, Some(first_id), 1).await;
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].0, all[1].0);

    let bad = bmc
        .get(&token, &format!("{SSE}?$filter=Severity%20gt%201"))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn fan_failure_and_hot_sensor_raise_events() {
    let bmc = start(|_| {}).await;
    let token = bmc.login().await;
    let reply = bmc
        .post(
            &token,
            "/rackside/faults",
            json!({"enable": ["fan-failure"], "temperature": 120.0}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);

    let frames = sse_frames(&bmc, &token, "", Some(0), 3).await;
    let fan = frames
        .iter()
        .find(|(_, p)| message_id(p).ends_with("FAN0002"))
        .expect("no fan event");
    assert_eq!(fan.1["Events"][0]["Severity"], "Critical");
    let fan_path = fan.1["Events"][0]["OriginOfCondition"]["@odata.id"]
        .as_str()
        .unwrap();
    assert_eq!(
        bmc.get(&token, fan_path).await.json()["Status"]["Health"],
        "Critical"
    );
    let hot = frames
        .iter()
        .find(|(_, p)| message_id(p).ends_with("TMP0121"))
        .expect("no temperature event");
    assert_eq!(hot.1["Events"][0]["Severity"], "Critical");
}

#[tokio::test]
async fn failed_login_raises_event() {
    let bmc = start(|_| {}).await;
    let failed = bmc.try_login_at(SESSIONS, USER, "wrong-password").await;
    assert_eq!(failed.status, StatusCode::UNAUTHORIZED);
    let token = bmc.login().await;
    let frames = sse_frames(&bmc, &token, "", Some(0), 2).await;
    assert!(frames
        .iter()
        .any(|(_, p)| message_id(p).ends_with("USR0031")));
    assert!(frames
        .iter()
        .any(|(_, p)| message_id(p).ends_with("USR0030")));
}
