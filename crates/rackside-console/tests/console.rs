//! Integration tests: a console, a relay and a Web Push test service on loopback, with
//! events delivered as a BMC delivers them.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rackside_console::{ConsoleConfig, PollSettings, RelayConfig, RunningConsole};
use rackside_relay::apikeys::{ApiKeyStore, ConsoleName};
use rackside_relay::ece::DeviceKeys;
use rackside_relay::providers::ProviderConfig;
use rackside_relay::{RelayConfig as RelayServiceConfig, RunningRelay};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{json, Value};
use tower::ServiceExt as _;

/// Maximum wait for one step. It guards against hangs on a loaded machine and is not a
/// speed claim.
const WAIT: Duration = Duration::from_secs(60);
const PASSWORD: &str = "correct horse battery";

/// A Web Push service that decrypts each push with the device's key and returns 410 for
/// devices marked gone.
#[derive(Default)]
struct PushService {
    devices: Mutex<HashMap<String, (Arc<DeviceKeys>, bool)>>,
    received: Mutex<Vec<(String, Value)>>,
}

async fn push_receive(
    State(service): State<Arc<PushService>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    assert_eq!(headers["content-encoding"], "aes128gcm");
    assert!(headers["authorization"]
        .to_str()
        .unwrap()
        .starts_with("vapid t="));
    let Some((keys, gone)) = service.devices.lock().unwrap().get(&id).cloned() else {
        return StatusCode::NOT_FOUND;
    };
    if gone {
        return StatusCode::GONE;
    }
    let plain = keys
        .decrypt(&body)
        .expect("push decrypts with the device key");
    let alert: Value = serde_json::from_slice(&plain).unwrap();
    service.received.lock().unwrap().push((id, alert));
    StatusCode::CREATED
}

async fn start_push_service(service: Arc<PushService>) -> (u16, CertificateDer<'static>) {
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
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = Router::new()
        .route("/push/{id}", post(push_receive))
        .with_state(service);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = TowerToHyperService::new(router.map_request(
                    |r: axum::extract::Request<hyper::body::Incoming>| r.map(axum::body::Body::new),
                ));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, der)
}

fn client_trusting(pems: &[&str]) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for pem in pems {
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .unwrap()
}

struct Chain {
    dir: tempfile::TempDir,
    bmc: rackside_bmc::RunningBmc,
    push: Arc<PushService>,
    push_port: u16,
    push_cert: CertificateDer<'static>,
    relay: Option<RunningRelay>,
    console: Option<RunningConsole>,
    console_config: ConsoleSettings,
    client: reqwest::Client,
    session: String,
}

/// What a console of the chain is started with, kept for restarts.
#[derive(Clone)]
struct ConsoleSettings {
    state_dir: std::path::PathBuf,
    relay: RelayConfig,
    poll: PollSettings,
}

impl ConsoleSettings {
    fn config(&self) -> ConsoleConfig {
        let mut config = ConsoleConfig::new(self.state_dir.clone());
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.users = vec![("admin".into(), zeroize::Zeroizing::new(PASSWORD.into()))];
        config.relay = Some(self.relay.clone());
        config.poll = self.poll.clone();
        config
    }
}

/// Poll settings for tests: no scheduled round within a test, so each test polls with
/// `poll_now`, and short timeouts and SSE back-off.
fn test_poll_settings() -> PollSettings {
    PollSettings {
        interval: Duration::from_secs(3600),
        request_timeout: Duration::from_secs(10),
        device_timeout: Duration::from_secs(20),
        sse_retry_min: Duration::from_millis(50),
        sse_retry_max: Duration::from_millis(400),
        ..PollSettings::default()
    }
}

impl Chain {
    async fn start() -> Self {
        Self::start_with(test_poll_settings()).await
    }

    async fn start_with(poll: PollSettings) -> Self {
        capture_logs();
        let dir = tempfile::tempdir().unwrap();
        let push = Arc::new(PushService::default());
        let (push_port, push_cert) = start_push_service(push.clone()).await;
        let relay_dir = dir.path().join("relay");
        std::fs::create_dir_all(&relay_dir).unwrap();
        let api_key = ApiKeyStore::open(&relay_dir)
            .add(&ConsoleName::parse("ome-1").unwrap())
            .unwrap();
        let relay = start_relay(&relay_dir, &push_cert, 0).await;

        let console_config = ConsoleSettings {
            state_dir: dir.path().join("console"),
            relay: RelayConfig {
                url: url::Url::parse(&format!("https://localhost:{}/", relay.addr.port())).unwrap(),
                console_name: "ome-1".into(),
                api_key: zeroize::Zeroizing::new(api_key.expose().to_owned()),
                ca_pem: Some(relay.cert_pem.clone()),
            },
            poll,
        };
        let console = rackside_console::start(console_config.config())
            .await
            .unwrap();
        let client = client_trusting(&[&console.cert_pem, &relay.cert_pem]);
        let mut bmc_config = rackside_bmc::BmcConfig::new(dir.path().join("bmc"));
        bmc_config.listen = "127.0.0.1:0".parse().unwrap();
        bmc_config.first_user = Some(("root".to_owned(), "calvin-calvin".to_owned().into()));
        let bmc = rackside_bmc::start(bmc_config).await.unwrap();
        let mut chain = Self {
            dir,
            bmc,
            push,
            push_port,
            push_cert,
            relay: Some(relay),
            console: Some(console),
            console_config,
            client,
            session: String::new(),
        };
        chain.log_in().await;
        chain
    }

    async fn log_in(&mut self) {
        let login: Value = self
            .client
            .post(self.console_url("/api/login"))
            .json(&json!({"user": "admin", "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        self.session = login["token"].as_str().unwrap().to_owned();
    }

    fn console(&self) -> &RunningConsole {
        self.console.as_ref().unwrap()
    }

    /// Stops the console and starts it again on the same state folder.
    async fn restart_console(&mut self) {
        self.console.take().unwrap().shutdown().await;
        let console = rackside_console::start(self.console_config.config())
            .await
            .unwrap();
        self.console = Some(console);
        self.log_in().await;
    }

    fn console_url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.console().addr.port())
    }

    fn relay_url(&self, path: &str) -> String {
        format!(
            "https://localhost:{}{path}",
            self.relay.as_ref().unwrap().addr.port()
        )
    }

    async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, self.console_url(path))
            .bearer_auth(&self.session);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Adds the chain's BMC as an event source under `name`, confirming its self-signed
    /// certificate as a user would, and returns the destination path and secret.
    async fn add_source(&self, name: &str) -> (String, String) {
        let url = format!("https://127.0.0.1:{}/", self.bmc.local_addr().port());
        let (status, body) = self
            .api(
                reqwest::Method::POST,
                "/api/devices",
                Some(json!({"name": name, "url": url})),
            )
            .await;
        assert_eq!(
            status, 409,
            "a self-signed BMC certificate needs confirmation: {body}"
        );
        let fingerprint = body["certificate"]["certificate_sha256"].clone();
        let (status, body) = self
            .api(
                reqwest::Method::POST,
                "/api/devices",
                Some(json!({"name": name, "url": url, "accept_certificate_sha256": fingerprint})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let destination = url::Url::parse(body["destination"].as_str().unwrap()).unwrap();
        (
            destination.path().to_owned(),
            body["http_headers"]["X-Rackside-Event-Secret"]
                .as_str()
                .unwrap()
                .to_owned(),
        )
    }

    /// Registers a device at the relay and subscribes it at the console; returns its keys
    /// and subscription id.
    async fn subscribe(&self, device: &str) -> (Arc<DeviceKeys>, i64) {
        let keys = Arc::new(DeviceKeys::generate());
        self.push
            .devices
            .lock()
            .unwrap()
            .insert(device.to_owned(), (keys.clone(), false));
        let registration: Value = self
            .client
            .post(self.relay_url("/v1/registrations"))
            .json(
                &json!({"console": "ome-1", "device": device, "target": {"provider": "webpush",
                "endpoint": format!("https://localhost:{}/push/{device}", self.push_port)}}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let recipient = keys.recipient();
        let (status, body) = self
            .api(
                reqwest::Method::POST,
                "/api/subscriptions",
                Some(json!({"device": device, "relay_url": self.relay_url("/"), "token": registration["token"],
                    "p256dh": recipient.p256dh(), "auth": recipient.auth()})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        (keys, body["id"].as_i64().unwrap())
    }

    async fn deliver(&self, path: &str, secret: &str, event: Value) -> u16 {
        self.client
            .post(self.console_url(path))
            .header("X-Rackside-Event-Secret", secret)
            .json(&json!({"@odata.type": "#Event.v1_7_0.Event", "Id": "1", "Name": "Event", "Events": [event]}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Waits until a push carrying `message` arrives; false when none came in time.
    async fn wait_push_of(&self, message: &str) -> bool {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let seen = self
                .push
                .received
                .lock()
                .unwrap()
                .iter()
                .any(|(_, alert)| alert["message"] == message);
            if seen || tokio::time::Instant::now() >= deadline {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_pushes(&self, count: usize) -> Vec<(String, Value)> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let seen = self.push.received.lock().unwrap().clone();
            if seen.len() >= count || tokio::time::Instant::now() >= deadline {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn start_relay(
    dir: &std::path::Path,
    push_cert: &CertificateDer<'static>,
    port: u16,
) -> RunningRelay {
    rackside_relay::start(relay_config(dir, push_cert, port))
        .await
        .unwrap()
}

fn relay_config(
    dir: &std::path::Path,
    push_cert: &CertificateDer<'static>,
    port: u16,
) -> RelayServiceConfig {
    let mut config = RelayServiceConfig::new(dir.to_path_buf());
    config.listen = format!("127.0.0.1:{port}").parse().unwrap();
    config.providers = ProviderConfig {
        webpush_subject: Some("mailto:ops@rackside.test".into()),
        extra_roots: vec![push_cert.clone()],
        request_timeout: Duration::from_secs(5),
        ..ProviderConfig::default()
    };
    config
}

/// Starts the relay again on its old port, which the console's URL names. Another test may
/// hold that port briefly, so binding is retried until [`WAIT`] runs out.
async fn restart_relay_on(
    dir: &std::path::Path,
    push_cert: &CertificateDer<'static>,
    port: u16,
) -> RunningRelay {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match rackside_relay::start(relay_config(dir, push_cert, port)).await {
            Ok(relay) => return relay,
            Err(error @ rackside_relay::RelayError::Bind { .. })
                if tokio::time::Instant::now() < deadline =>
            {
                eprintln!("relay port {port} in use, retrying: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("relay restart on port {port} failed: {error}"),
        }
    }
}

fn fan_fault(id: &str) -> Value {
    json!({"EventType": "Alert", "EventId": id, "EventTimestamp": "2026-12-04T19:00:00Z",
        "MessageId": "Fan.1.0.FanFailed", "MessageSeverity": "Critical", "Message": format!("Fan 2 failed ({id})"),
        "OriginOfCondition": {"@odata.id": "/redfish/v1/Chassis/1/Thermal"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bmc_event_reaches_device_decrypted() {
    let chain = Chain::start().await;
    let (path, secret) = chain.add_source("bmc-1").await;
    chain.subscribe("phone").await;
    assert_eq!(chain.deliver(&path, &secret, fan_fault("1")).await, 204);

    let pushes = chain.wait_pushes(1).await;
    assert_eq!(pushes.len(), 1);
    let (device, alert) = &pushes[0];
    assert_eq!(device, "phone");
    assert_eq!(alert["message"], "Fan 2 failed (1)");
    assert_eq!(alert["console"], "ome-1");
    assert_eq!(alert["severity"], "Critical");

    let (status, listed) = chain.api(reqwest::Method::GET, "/api/alerts", None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["alerts"][0]["id"], alert["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_event_is_stored_and_pushed_once() {
    let chain = Chain::start().await;
    let (path, secret) = chain.add_source("bmc-1").await;
    chain.subscribe("phone").await;
    assert_eq!(chain.deliver(&path, &secret, fan_fault("7")).await, 204);
    assert_eq!(chain.deliver(&path, &secret, fan_fault("7")).await, 204);
    chain.wait_pushes(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(chain.push.received.lock().unwrap().len(), 1);
    let (_, listed) = chain.api(reqwest::Method::GET, "/api/alerts", None).await;
    assert_eq!(listed["alerts"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_event_secret_is_rejected() {
    let chain = Chain::start().await;
    let (path, _) = chain.add_source("bmc-1").await;
    assert_eq!(chain.deliver(&path, "guess", fan_fault("1")).await, 401);
    assert_eq!(
        chain
            .deliver("/events/unknown-bmc", "guess", fan_fault("1"))
            .await,
        401
    );
    let (_, listed) = chain.api(reqwest::Method::GET, "/api/alerts", None).await;
    assert!(listed["alerts"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_event_secret_message_names_header() {
    let chain = Chain::start().await;
    let (path, secret) = chain.add_source("bmc-1").await;
    for presented in [Some("guess"), None] {
        let mut request = chain
            .client
            .post(chain.console_url(&path))
            .json(&json!({"Events": [fan_fault("1")]}));
        if let Some(presented) = presented {
            request = request.header("X-Rackside-Event-Secret", presented);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        let message = body["error"].as_str().unwrap();
        assert!(
            message.starts_with(
                "invalid or missing event secret header X-Rackside-Event-Secret for BMC bmc-1: "
            ),
            "{message}"
        );
        assert!(message.contains("when the BMC was added"), "{message}");
        assert!(!message.contains("log in"), "{message}");
        assert!(!message.contains(&secret), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_flood_stores_rate_limit_and_summary() {
    use rackside_console::store::{MAX_NEW_ALERTS_PER_MINUTE, SUPPRESSED_MESSAGE_ID};

    let chain = Chain::start().await;
    let (path, secret) = chain.add_source("flooding").await;
    let limit = usize::try_from(MAX_NEW_ALERTS_PER_MINUTE).unwrap();

    // 1. The limit counts per clock minute, so the burst starts early in one.
    let minute = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 60
    };
    while std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60
        > 40
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let started = minute();

    // 2. Three deliveries of 64 distinct events, 72 more than the limit.
    let mut sent = 0;
    for delivery in 0..3 {
        let events: Vec<Value> = (0..64)
            .map(|index| fan_fault(&format!("{delivery}-{index}")))
            .collect();
        sent += events.len();
        let status = chain
            .client
            .post(chain.console_url(&path))
            .header("X-Rackside-Event-Secret", &secret)
            .json(&json!({"Events": events}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 204);
    }
    assert_eq!(minute(), started, "the burst crossed a minute boundary");

    // 3. The limit plus one summary that counts the rest.
    let alerts = chain.alerts_of("flooding").await;
    assert_eq!(alerts.len(), limit + 1, "{} alerts stored", alerts.len());
    let summaries: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["message_id"] == SUPPRESSED_MESSAGE_ID)
        .collect();
    assert_eq!(summaries.len(), 1);
    let expected = format!("{} events from BMC flooding suppressed", sent - limit);
    let message = summaries[0]["message"].as_str().unwrap();
    assert!(message.starts_with(&expected), "{message}");
    assert!(captured_logs().contains("alert rate limit of the BMC reached"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_event_is_ignored_without_crash() {
    let chain = Chain::start().await;
    let (path, secret) = chain.add_source("bmc-1").await;
    let status = chain
        .client
        .post(chain.console_url(&path))
        .header("X-Rackside-Event-Secret", &secret)
        .body("{\"Events\": 12")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);
    assert_eq!(
        chain
            .deliver(&path, &secret, json!({"Message": "no id"}))
            .await,
        204
    );
    let (_, listed) = chain.api(reqwest::Method::GET, "/api/alerts", None).await;
    assert!(listed["alerts"].as_array().unwrap().is_empty());
    assert_eq!(
        chain.deliver(&path, &secret, fan_fault("2")).await,
        204,
        "the console still works"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_requires_login_and_acknowledge_updates_count() {
    let chain = Chain::start().await;
    let anonymous = chain
        .client
        .get(chain.console_url("/api/alerts"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let bad_login = chain
        .client
        .post(chain.console_url("/api/login"))
        .json(&json!({"user": "admin", "password": "wrong password!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_login.status(), 401);

    let (path, secret) = chain.add_source("bmc-1").await;
    chain.deliver(&path, &secret, fan_fault("1")).await;
    chain
        .deliver(&path, &secret, json!({"EventId": "2", "MessageId": "Power.1.0.On", "MessageSeverity": "OK", "Message": "Power on"}))
        .await;
    let (_, count) = chain
        .api(reqwest::Method::GET, "/api/alerts/count", None)
        .await;
    assert_eq!(count["unread"], 1, "the OK event is no alert");
    let (_, events) = chain.api(reqwest::Method::GET, "/api/events", None).await;
    assert_eq!(events["events"][0]["message_id"], "Power.1.0.On");
    let (_, critical) = chain
        .api(
            reqwest::Method::GET,
            "/api/alerts?min_severity=Critical",
            None,
        )
        .await;
    let critical = critical["alerts"].as_array().unwrap().clone();
    assert_eq!(critical.len(), 1);
    let id = critical[0]["id"].as_i64().unwrap();
    let (status, _) = chain
        .api(
            reqwest::Method::POST,
            &format!("/api/alerts/{id}/ack"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (_, count) = chain
        .api(reqwest::Method::GET, "/api/alerts/count", None)
        .await;
    assert_eq!(count["unread"], 0);
    let (_, health) = chain.api(reqwest::Method::GET, "/api/health", None).await;
    assert_eq!(health["devices"][0]["health"], "OK");
    let (status, _) = chain
        .api(reqwest::Method::POST, "/api/alerts/9999/ack", None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_subscription_gets_no_push() {
    let chain = Chain::start().await;
    let (path, secret) = chain.add_source("bmc-1").await;
    let (_, id) = chain.subscribe("phone").await;
    let (status, _) = chain
        .api(
            reqwest::Method::DELETE,
            &format!("/api/subscriptions/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    chain.deliver(&path, &secret, fan_fault("1")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(chain.push.received.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_device_disables_subscription() {
    let chain = Chain::start().await;
    let (path, secret) = chain.add_source("bmc-1").await;
    let (keys, _) = chain.subscribe("old-phone").await;
    chain
        .push
        .devices
        .lock()
        .unwrap()
        .insert("old-phone".into(), (keys, true));
    chain.deliver(&path, &secret, fan_fault("1")).await;

    // The relay removes the registration; the console learns it from the gone list.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut disabled = 0;
    while disabled == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        disabled = chain.console().sync_gone().await.unwrap();
    }
    assert_eq!(disabled, 1);
    let (_, subscriptions) = chain
        .api(reqwest::Method::GET, "/api/subscriptions", None)
        .await;
    assert_eq!(subscriptions["subscriptions"][0]["enabled"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_restart_keeps_alerts_on_console() {
    let mut chain = Chain::start().await;
    let (path, secret) = chain.add_source("bmc-1").await;
    chain.subscribe("phone").await;
    chain.deliver(&path, &secret, fan_fault("1")).await;
    chain.wait_pushes(1).await;

    // The console's retries may push the alert raised while the relay is down, so the test
    // waits for the alert raised after the restart instead of counting pushes.
    let relay = chain.relay.take().unwrap();
    let port = relay.addr.port();
    relay.shutdown().await;
    chain.deliver(&path, &secret, fan_fault("2")).await;
    let relay = restart_relay_on(&chain.dir.path().join("relay"), &chain.push_cert, port).await;
    chain.relay = Some(relay);
    chain.deliver(&path, &secret, fan_fault("3")).await;
    let pushed_after_restart = chain.wait_push_of("Fan 2 failed (3)").await;
    assert!(
        pushed_after_restart,
        "the registration survives the relay restart"
    );

    let (_, listed) = chain.api(reqwest::Method::GET, "/api/alerts", None).await;
    let messages: Vec<&str> = listed["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        ["Fan 2 failed (3)", "Fan 2 failed (2)", "Fan 2 failed (1)"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_lists_every_route() {
    let chain = Chain::start().await;
    let doc: Value = chain
        .client
        .get(chain.console_url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/api/login",
        "/api/alerts",
        "/api/alerts/{id}/ack",
        "/api/subscriptions",
        "/events/{bmc}",
        "/api/health",
        "/api/devices",
        "/api/devices/{name}",
        "/api/events",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_bmc_fault_reaches_device() {
    use rackside_bmc::events::{EventConfig, EventService, NewEvent};

    // 1. The console hands out a destination and secret; the BMC's event service subscribes
    //    with them, trusting the console's certificate.
    let chain = Chain::start().await;
    let (_, secret) = chain.add_source("bmc-7").await;
    chain.subscribe("phone").await;
    let console_cert = CertificateDer::pem_slice_iter(chain.console().cert_pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    let bmc = EventService::new(EventConfig {
        extra_roots: vec![console_cert],
        retry_interval: Duration::from_millis(100),
        ..EventConfig::default()
    })
    .unwrap();
    let subscription = json!({
        "Destination": chain.console_url("/events/bmc-7"),
        "Context": "rackside-console",
        "Protocol": "Redfish",
        "HttpHeaders": {"X-Rackside-Event-Secret": secret},
        "DeliveryRetryPolicy": "SuspendRetries",
    });
    bmc.subscribe(subscription.to_string().as_bytes()).unwrap();

    // 2. A PSU fault on the BMC becomes a stored alert and a decrypted push.
    bmc.raise(NewEvent {
        message_id: "PSU.1.0.PowerSupplyFailed".into(),
        severity: "Critical".into(),
        message: "Power supply 2 failed".into(),
        message_args: vec!["2".into()],
        origin: Some("/redfish/v1/Chassis/1/Power".into()),
    });
    let pushes = chain.wait_pushes(1).await;
    assert_eq!(pushes.len(), 1);
    assert_eq!(pushes[0].1["message"], "Power supply 2 failed");
    assert_eq!(pushes[0].1["bmc"], "bmc-7");
    let (_, listed) = chain
        .api(reqwest::Method::GET, "/api/alerts?bmc=bmc-7", None)
        .await;
    assert_eq!(listed["alerts"][0]["origin"], "/redfish/v1/Chassis/1/Power");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_shows_alert_once_and_counts_only() {
    use base64::Engine as _;
    use rackside_bmc::events::{EventConfig, EventService, NewEvent};
    use rackside_console::inbox::{notification_line, unread_count, Dropped, Inbox};
    use rackside_relay::pushservice::PushService;

    // 1. A push service on loopback, a relay that trusts it, and a console.
    let chain = Chain::start().await;
    let push_service = PushService::default();
    let push_dir = chain.dir.path().join("push");
    std::fs::create_dir_all(&push_dir).unwrap();
    let (push_tls, push_pem) = rackside_relay::tls::load_or_generate(&push_dir).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let push_port = listener.local_addr().unwrap().port();
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(rackside_relay::tls::accept_loop(
        listener,
        push_tls,
        push_service.router(),
        64,
        stop_rx,
    ));
    let push_cert = CertificateDer::pem_slice_iter(push_pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    let relay_dir = chain.dir.path().join("relay-2");
    std::fs::create_dir_all(&relay_dir).unwrap();
    let key = ApiKeyStore::open(&relay_dir)
        .add(&ConsoleName::parse("ome-1").unwrap())
        .unwrap();
    let relay = start_relay(&relay_dir, &push_cert, 0).await;
    let mut config = ConsoleConfig::new(chain.dir.path().join("console-2"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.users = vec![("admin".into(), zeroize::Zeroizing::new(PASSWORD.into()))];
    let relay_url = url::Url::parse(&format!("https://localhost:{}/", relay.addr.port())).unwrap();
    config.relay = Some(RelayConfig {
        url: relay_url.clone(),
        console_name: "ome-1".into(),
        api_key: zeroize::Zeroizing::new(key.expose().to_owned()),
        ca_pem: Some(relay.cert_pem.clone()),
    });
    let console = rackside_console::start(config).await.unwrap();
    let console_url =
        url::Url::parse(&format!("https://localhost:{}/", console.addr.port())).unwrap();
    let client = client_trusting(&[&console.cert_pem, &relay.cert_pem]);
    let login: Value = client
        .post(console_url.join("api/login").unwrap())
        .json(&json!({"user": "admin", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session = login["token"].as_str().unwrap().to_owned();

    // 2. The device subscribes at the push service (restricted to the relay's VAPID key),
    //    registers at the relay and subscribes at the console.
    let vapid: Value = client
        .get(relay_url.join("v1/vapid").unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let vapid_key = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(vapid["public_key"].as_str().unwrap())
        .unwrap();
    let (push_id, mut pushes) = push_service.subscribe(vapid_key);
    let keys = DeviceKeys::generate();
    let recipient = keys.recipient();
    let registration: Value = client
        .post(relay_url.join("v1/registrations").unwrap())
        .json(
            &json!({"console": "ome-1", "device": "laptop", "target": {"provider": "webpush",
            "endpoint": format!("https://localhost:{push_port}/push/{push_id}")}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let subscribed = client
        .post(console_url.join("api/subscriptions").unwrap())
        .bearer_auth(&session)
        .json(&json!({"device": "laptop", "relay_url": relay_url.as_str(), "token": registration["token"],
            "p256dh": recipient.p256dh(), "auth": recipient.auth()}))
        .send()
        .await
        .unwrap();
    assert_eq!(subscribed.status(), 201);
    let mut inbox = Inbox::new(keys);
    inbox.subscribe("ome-1");

    // 3. A BMC subscribed to the console raises a fan fault.
    let bmc_url = format!("https://127.0.0.1:{}/", chain.bmc.local_addr().port());
    let add = |confirm: Value| {
        client
            .post(console_url.join("api/devices").unwrap())
            .bearer_auth(&session)
            .json(&json!({"name": "bmc-1", "url": bmc_url, "accept_certificate_sha256": confirm}))
            .send()
    };
    let unconfirmed: Value = add(Value::Null).await.unwrap().json().await.unwrap();
    let fingerprint = unconfirmed["certificate"]["certificate_sha256"].clone();
    let source: Value = add(fingerprint).await.unwrap().json().await.unwrap();
    let console_cert = CertificateDer::pem_slice_iter(console.cert_pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    let bmc = EventService::new(EventConfig {
        extra_roots: vec![console_cert],
        ..EventConfig::default()
    })
    .unwrap();
    let subscription =
        json!({"Destination": source["destination"], "HttpHeaders": source["http_headers"]});
    bmc.subscribe(subscription.to_string().as_bytes()).unwrap();
    let fault = |text: &str| NewEvent {
        message_id: "Fan.1.0.FanFailed".into(),
        severity: "Critical".into(),
        message: text.into(),
        message_args: vec![],
        origin: None,
    };
    bmc.raise(fault("ALERT-TEXT fan 3 stopped"));

    // 4. The receiver shows it once, and the notification line holds only the count.
    let delivered = tokio::time::timeout(WAIT, pushes.recv())
        .await
        .unwrap()
        .unwrap();
    let alert = inbox.accept(&delivered.body).unwrap();
    assert_eq!(alert.message, "ALERT-TEXT fan 3 stopped");
    assert_eq!(alert.bmc, "bmc-1");
    assert_eq!(inbox.accept(&delivered.body), Err(Dropped::Duplicate));
    let line = notification_line(unread_count(&client, &console_url, &session).await.unwrap());
    assert_eq!(line, "rackside: 1 new alert");
    assert!(!line.contains("ALERT-TEXT"));

    // 5. After unsubscribing, the receiver drops that console's alerts.
    inbox.unsubscribe("ome-1");
    bmc.raise(fault("ALERT-TEXT fan 4 stopped"));
    let delivered = tokio::time::timeout(WAIT, pushes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        inbox.accept(&delivered.body),
        Err(Dropped::Unsubscribed("ome-1".into()))
    );
    let line = notification_line(unread_count(&client, &console_url, &session).await.unwrap());
    assert_eq!(
        line, "rackside: 2 new alerts",
        "the count comes from the console, not from pushes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bmc_identity_follows_trust_rules() {
    let chain = Chain::start().await;
    let url = format!("https://127.0.0.1:{}/", chain.bmc.local_addr().port());

    // A yellow certificate is shown, not accepted; a wrong confirmation changes nothing.
    let (status, body) = chain
        .api(
            reqwest::Method::POST,
            "/api/devices",
            Some(json!({"name": "b", "url": url})),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["certificate"]["color"], "yellow");
    assert!(body["certificate"]["public_key_sha256"]
        .as_str()
        .unwrap()
        .contains(':'));
    let wrong = "00".repeat(32);
    let (status, _) = chain
        .api(
            reqwest::Method::POST,
            "/api/devices",
            Some(json!({"name": "b", "url": url, "accept_certificate_sha256": wrong})),
        )
        .await;
    assert_eq!(status, 409);
    let (_, devices) = chain.api(reqwest::Method::GET, "/api/devices", None).await;
    assert!(devices["devices"].as_array().unwrap().is_empty());

    // An address where nothing listens is rejected with the address in the message.
    let (status, body) = chain
        .api(
            reqwest::Method::POST,
            "/api/devices",
            Some(json!({"name": "c", "url": "https://127.0.0.1:9/"})),
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        body["error"].as_str().unwrap().contains("127.0.0.1:9"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_bmc_fan_fault_becomes_alert() {
    // 1. A simulated BMC that trusts the console's certificate for event deliveries.
    let chain = Chain::start().await;
    let console_cert = CertificateDer::pem_slice_iter(chain.console().cert_pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    let mut bmc_config = rackside_bmc::BmcConfig::new(chain.dir.path().join("bmc-events"));
    bmc_config.listen = "127.0.0.1:0".parse().unwrap();
    bmc_config.first_user = Some(("root".to_owned(), "calvin-calvin".to_owned().into()));
    bmc_config.events.extra_roots = vec![console_cert];
    let bmc = rackside_bmc::start(bmc_config).await.unwrap();
    let url = format!("https://127.0.0.1:{}/", bmc.local_addr().port());

    // 2. Adding it with an account makes the console subscribe itself.
    let (status, body) = chain
        .api(
            reqwest::Method::POST,
            "/api/devices",
            Some(json!({"name": "rack-3", "url": url})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let fingerprint = body["certificate"]["certificate_sha256"].clone();
    let request = json!({
        "name": "rack-3",
        "url": url,
        "accept_certificate_sha256": fingerprint,
        "user": "root",
        "password": "calvin-calvin",
    });
    let (status, body) = chain
        .api(reqwest::Method::POST, "/api/devices", Some(request))
        .await;
    assert_eq!(status, 201, "{body}");
    let subscription = body["subscription"].as_str().unwrap();
    assert!(subscription.starts_with("/redfish/v1/EventService/Subscriptions/"));

    // 3. A fan fault switched on at the BMC becomes an alert on the console.
    let bmc_http = reqwest::Client::builder()
        .use_preconfigured_tls(bmc_tls(&bmc.certificate_der()))
        .build()
        .unwrap();
    let reply = bmc_http
        .post(format!("{url}rackside/faults"))
        .basic_auth("root", Some("calvin-calvin"))
        .json(&json!({"enable": ["fan-failure"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut fan_alert = None;
    while fan_alert.is_none() && tokio::time::Instant::now() < deadline {
        let (_, listed) = chain
            .api(reqwest::Method::GET, "/api/alerts?bmc=rack-3", None)
            .await;
        fan_alert = listed["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["message_id"].as_str().unwrap_or("").ends_with("FAN0002"))
            .cloned();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fan_alert = fan_alert.expect("no fan alert reached the console");
    assert_eq!(fan_alert["severity"], "Critical");
}

fn bmc_tls(cert: &CertificateDer<'static>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

// ---- Polling, intake, accounts at rest ----

const BMC_USER: &str = "root";
const BMC_PASSWORD: &str = "calvin-calvin";

/// Log lines of every test in this binary, so a test can check what the console logged.
static LOGS: std::sync::OnceLock<Arc<Mutex<Vec<u8>>>> = std::sync::OnceLock::new();

#[derive(Clone)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends the trace output of the console-side crates to [`LOGS`], once per test binary.
fn capture_logs() {
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = LogBuffer(buffer.clone());
        let filter = tracing_subscriber::EnvFilter::new(
            "rackside_console=trace,rackside_redfish=trace,rackside_vault=trace,rackside_trust=trace",
        );
        let installed = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init();
        if let Err(error) = installed {
            eprintln!("log capture not installed: {error}");
        }
        buffer
    });
}

fn captured_logs() -> String {
    String::from_utf8_lossy(&LOGS.get().unwrap().lock().unwrap()).into_owned()
}

/// Starts a simulated BMC; with `console_pem` it trusts that console for event deliveries.
async fn start_bmc(dir: &std::path::Path, console_pem: Option<&str>) -> rackside_bmc::RunningBmc {
    let mut config = rackside_bmc::BmcConfig::new(dir.to_path_buf());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.first_user = Some((BMC_USER.to_owned(), BMC_PASSWORD.to_owned().into()));
    if let Some(pem) = console_pem {
        config.events.extra_roots = vec![CertificateDer::pem_slice_iter(pem.as_bytes())
            .next()
            .unwrap()
            .unwrap()];
    }
    rackside_bmc::start(config).await.unwrap()
}

fn bmc_url(port: u16) -> String {
    format!("https://127.0.0.1:{port}/")
}

/// Switches a fault of the BMC on, as its administrator would.
async fn enable_fault(bmc: &rackside_bmc::RunningBmc, fault: &str) {
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(bmc_tls(&bmc.certificate_der()))
        .build()
        .unwrap();
    let reply = http
        .post(format!(
            "{}rackside/faults",
            bmc_url(bmc.local_addr().port())
        ))
        .basic_auth(BMC_USER, Some(BMC_PASSWORD))
        .json(&json!({"enable": [fault]}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200, "fault {fault} not enabled");
}

impl Chain {
    /// Adds the BMC at `url` as a device, confirming its certificate, with the fields of
    /// `extra` (account, intake); returns the response body.
    async fn add_device(&self, name: &str, url: &str, extra: Value) -> Value {
        let mut request = json!({"name": name, "url": url});
        for (key, value) in extra.as_object().unwrap() {
            request[key] = value.clone();
        }
        let (status, body) = self
            .api(reqwest::Method::POST, "/api/devices", Some(request.clone()))
            .await;
        assert_eq!(status, 409, "{body}");
        request["accept_certificate_sha256"] = body["certificate"]["certificate_sha256"].clone();
        let (status, body) = self
            .api(reqwest::Method::POST, "/api/devices", Some(request))
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    async fn device(&self, name: &str) -> Value {
        let (_, devices) = self.api(reqwest::Method::GET, "/api/devices", None).await;
        devices["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    }

    async fn alerts_of(&self, bmc: &str) -> Vec<Value> {
        let (_, listed) = self
            .api(
                reqwest::Method::GET,
                &format!("/api/alerts?bmc={bmc}"),
                None,
            )
            .await;
        listed["alerts"].as_array().unwrap().clone()
    }

    /// Waits until `check` holds for the device, returning it; panics after [`WAIT`].
    async fn wait_device(&self, name: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let device = self.device(name).await;
            if check(&device) {
                return device;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "device {name} never {what}: {device}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the device has an alert whose message id ends with `text` or whose
    /// message is `text`.
    async fn wait_alert(&self, bmc: &str, text: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let found = self
                .alerts_of(bmc)
                .await
                .into_iter()
                .find(|a| alert_matches(a, text));
            if let Some(alert) = found {
                return alert;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no alert with {text} for {bmc}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Returns whether the alert's message id ends with `text` or its message is `text`.
fn alert_matches(alert: &Value, text: &str) -> bool {
    alert["message_id"].as_str().unwrap_or("").ends_with(text) || alert["message"] == text
}

fn count_alerts(alerts: &[Value], text: &str) -> usize {
    alerts.iter().filter(|a| alert_matches(a, text)).count()
}

/// What a [`Proxy`] does with connections.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ProxyMode {
    /// Forwards bytes both ways to the target.
    Forward,
    /// Closes each new connection at once.
    Refuse,
    /// Accepts connections and never responds.
    Blackhole,
}

/// A TCP proxy on loopback in front of a BMC; TLS passes through it unchanged, so the
/// console still receives the BMC's pinned certificate.
struct Proxy {
    port: u16,
    mode: Arc<Mutex<ProxyMode>>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn start(target: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(Mutex::new(ProxyMode::Forward));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (shared_mode, shared_connections) = (mode.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let mode = *shared_mode.lock().unwrap();
                let task = match mode {
                    ProxyMode::Refuse => continue,
                    ProxyMode::Blackhole => tokio::spawn(async move {
                        let _held = inbound;
                        std::future::pending::<()>().await;
                    }),
                    ProxyMode::Forward => tokio::spawn(async move {
                        let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                            return;
                        };
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }),
                };
                shared_connections.lock().unwrap().push(task.abort_handle());
            }
        });
        Self {
            port,
            mode,
            connections,
        }
    }

    fn set_mode(&self, mode: ProxyMode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Closes every open connection.
    fn cut(&self) {
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_alerts_once_per_transition() {
    // 1. Two devices with accounts: one direct, one behind a proxy that will stop responding.
    //    The request time-out is long, so the hanging poll ends only when the test cuts
    //    its connection, however slow the machine is.
    let chain = Chain::start_with(PollSettings {
        request_timeout: Duration::from_secs(120),
        device_timeout: Duration::from_secs(240),
        ..test_poll_settings()
    })
    .await;
    let port = chain.bmc.local_addr().port();
    let account = json!({"user": BMC_USER, "password": BMC_PASSWORD});
    let added = chain
        .add_device("good", &bmc_url(port), account.clone())
        .await;
    assert_eq!(
        added["intake"], "push",
        "the simulator offers push: {added}"
    );
    let proxy = Proxy::start(chain.bmc.local_addr()).await;
    chain
        .add_device("down", &bmc_url(proxy.port), account)
        .await;
    chain.console().poll_now().await.unwrap();

    // 2. Health and inventory arrive without any event. The simulated server starts with
    //    a failed fan and a drive predicted to fail, so the first poll finds it Critical
    //    and raises one alert for that.
    let good = chain.device("good").await;
    assert_eq!(good["health"], "Critical", "{good}");
    assert_eq!(good["poll_error"], Value::Null, "{good}");
    assert!(good["last_polled"].as_i64().unwrap() > 0, "{good}");
    let identity = [
        good["inventory"]["service_tag"].as_str(),
        good["inventory"]["serial_number"].as_str(),
    ];
    assert!(
        identity.contains(&Some(chain.bmc.service_tag().as_str())),
        "{good}"
    );
    assert!(good["inventory"]["model"].is_string(), "{good}");
    assert!(good["inventory"]["power_state"].is_string(), "{good}");
    assert!(good["inventory"]["bmc_firmware"].is_string(), "{good}");
    let inventory_read_at = good["inventory"]["read_at"].as_i64().unwrap();
    let problems = good["problems"].as_array().unwrap().len();
    assert!(problems > 0, "{good}");
    let alerts = chain.alerts_of("good").await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["message_id"], "Rackside.1.0.HealthChanged");
    assert_eq!(alerts[0]["severity"], "Critical");

    // 3. Another fan fails and the proxied BMC stops responding. The next round stores the
    //    new problem of the good device while the other poll still hangs, and that one
    //    ends with a one-line error.
    enable_fault(&chain.bmc, "fan-failure").await;
    proxy.set_mode(ProxyMode::Blackhole);
    proxy.cut();
    let fleet = chain.console().fleet.clone();
    let round = tokio::spawn(async move { fleet.poll_round().await.unwrap() });
    chain
        .wait_device("good", "reported the new fault", |d| {
            d["problems"].as_array().map_or(0, Vec::len) > problems
        })
        .await;
    assert!(
        !round.is_finished(),
        "the good device's result is stored before the hanging poll ends"
    );
    proxy.set_mode(ProxyMode::Refuse);
    proxy.cut();
    let outcomes = round.await.unwrap();
    assert_eq!(outcomes.len(), 2);
    let outcome_of = |bmc: &str| outcomes.iter().find(|o| o.bmc == bmc).unwrap();
    assert_eq!(outcome_of("good").error, None);
    let error = outcome_of("down").error.clone().unwrap();
    assert!(!error.contains('\n'), "{error}");
    let down = chain.device("down").await;
    assert_eq!(down["poll_error"].as_str(), Some(error.as_str()));

    // 4. Removing a device deletes its subscription on the BMC.
    proxy.set_mode(ProxyMode::Forward);
    let subscriptions = chain.bmc.state().events().subscription_ids().len();
    let (status, _) = chain
        .api(reqwest::Method::DELETE, "/api/devices/down", None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        chain.bmc.state().events().subscription_ids().len(),
        subscriptions - 1
    );
    assert_eq!(chain.device("down").await, Value::Null);
    assert!(chain
        .console()
        .fleet
        .accounts
        .get("down")
        .unwrap()
        .is_none());

    // 5. The new fan failure left the health Critical, and the BMC cannot push its fan
    //    event to this console, so the poll raised one alert for the new problem. One more
    //    poll raises no third.
    let alerts = chain.alerts_of("good").await;
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    let new_problem = alerts
        .iter()
        .find(|a| a["message"].as_str().unwrap_or("").contains("new problem"))
        .unwrap_or_else(|| panic!("no alert for the new problem: {alerts:?}"));
    assert_eq!(new_problem["severity"], "Critical");
    chain.console().poll_now().await.unwrap();
    let good = chain.device("good").await;
    assert_eq!(good["health"], "Critical", "{good}");
    assert_eq!(
        good["inventory"]["read_at"], inventory_read_at,
        "inventory is read again only after its interval"
    );
    let alerts = chain.alerts_of("good").await;
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    let (_, health) = chain.api(reqwest::Method::GET, "/api/health", None).await;
    assert_eq!(health["health"], "Critical", "{health}");
    assert_eq!(
        health["devices"][0]["polled_health"], "Critical",
        "{health}"
    );
}

fn critical_event(message: &str) -> rackside_bmc::events::NewEvent {
    rackside_bmc::events::NewEvent {
        message_id: "Rackside.1.0.TestFault".into(),
        severity: "Critical".into(),
        message: message.into(),
        message_args: vec![],
        origin: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_resumes_with_last_event_id() {
    // 1. A device forced to SSE, reached through a proxy the test can cut.
    let chain = Chain::start().await;
    let proxy = Proxy::start(chain.bmc.local_addr()).await;
    let account = json!({"user": BMC_USER, "password": BMC_PASSWORD, "intake": "sse"});
    let added = chain
        .add_device("streamed", &bmc_url(proxy.port), account)
        .await;
    assert_eq!(added["intake"], "sse");
    assert_eq!(added["subscription"], Value::Null);
    chain
        .wait_device("streamed", "connected", |d| d["stream"] == "connected")
        .await;

    // 2. A fan fault arrives over the stream as an alert.
    enable_fault(&chain.bmc, "fan-failure").await;
    chain.wait_alert("streamed", "FAN0002").await;

    // 3. The stream drops; an event raised meanwhile arrives after the reconnect, which
    //    only a replay after Last-Event-ID provides.
    proxy.set_mode(ProxyMode::Refuse);
    proxy.cut();
    chain
        .wait_device("streamed", "lost its stream", |d| {
            d["stream"]
                .as_str()
                .unwrap_or("")
                .starts_with("reconnecting")
        })
        .await;
    chain
        .bmc
        .state()
        .events()
        .raise(critical_event("Raised while the stream was down"));
    proxy.set_mode(ProxyMode::Forward);
    chain
        .wait_alert("streamed", "Raised while the stream was down")
        .await;

    // 4. Nothing arrived twice.
    let alerts = chain.alerts_of("streamed").await;
    assert_eq!(count_alerts(&alerts, "FAN0002"), 1, "{alerts:?}");
    assert_eq!(
        count_alerts(&alerts, "Raised while the stream was down"),
        1,
        "{alerts:?}"
    );
}

/// The SSE streams a silent BMC opened: the `Last-Event-ID` each request sent.
#[derive(Default)]
struct SilentStreams {
    opened: Mutex<Vec<Option<String>>>,
}

/// Serves over HTTPS on loopback an EventService whose stream sends one frame with an id
/// and one keep-alive comment, then nothing while the connection stays open.
async fn start_silent_sse_bmc(streams: Arc<SilentStreams>) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
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
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, streams) = (acceptor.clone(), streams.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                loop {
                    // One request head at a time; the console sends no bodies here.
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match tls.read(&mut byte).await {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                    if path.starts_with("/redfish/v1/EventService/SSE") {
                        let last_id = head.lines().find_map(|line| {
                            let (name, value) = line.split_once(':')?;
                            name.eq_ignore_ascii_case("last-event-id")
                                .then(|| value.trim().to_owned())
                        });
                        streams.opened.lock().unwrap().push(last_id);
                        let data = "id: 7\n\n: keep-alive\n\n";
                        let reply = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                             Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{data}\r\n",
                            data.len()
                        );
                        if tls.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                        let _ = tls.flush().await;
                        // Silent until the console hangs up.
                        let mut rest = [0u8; 64];
                        while matches!(tls.read(&mut rest).await, Ok(n) if n > 0) {}
                        return;
                    }
                    let (status, body) = if path.starts_with("/redfish/v1/EventService") {
                        (
                            "200 OK",
                            json!({"ServiceEnabled": true,
                                "ServerSentEventUri": "/redfish/v1/EventService/SSE"})
                            .to_string(),
                        )
                    } else {
                        ("404 Not Found", json!({"error": "not served"}).to_string())
                    };
                    let reply = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if tls.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sse_stream_is_reopened() {
    // 1. A device forced to SSE on a BMC whose stream falls silent after one frame and
    //    one comment, with a short idle limit.
    let chain = Chain::start_with(PollSettings {
        sse_idle: Duration::from_millis(300),
        ..test_poll_settings()
    })
    .await;
    let streams = Arc::new(SilentStreams::default());
    let addr = start_silent_sse_bmc(streams.clone()).await;
    let account = json!({"user": BMC_USER, "password": BMC_PASSWORD, "intake": "sse"});
    chain
        .add_device("silent", &bmc_url(addr.port()), account)
        .await;

    // 2. The console drops the silent stream and shows the reason.
    let device = chain
        .wait_device("silent", "dropped its silent stream", |d| {
            d["stream"]
                .as_str()
                .unwrap_or("")
                .starts_with("reconnecting: no data on the SSE stream for 300 ms")
        })
        .await;
    assert_eq!(device["intake"], "sse");

    // 3. It opens the stream again, resuming after the frame it read.
    let deadline = tokio::time::Instant::now() + WAIT;
    while streams.opened.lock().unwrap().len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "stream opened only {:?}",
            streams.opened.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let opened = streams.opened.lock().unwrap().clone();
    assert_eq!(opened[0], None, "{opened:?}");
    assert!(
        opened[1..].iter().all(|id| id.as_deref() == Some("7")),
        "{opened:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_reads_log_while_stream_down() {
    // 1. A device on SSE; a poll while the stream is connected only sets the log marks.
    let chain = Chain::start().await;
    let port = chain.bmc.local_addr().port();
    let account = json!({"user": BMC_USER, "password": BMC_PASSWORD, "intake": "sse"});
    chain.add_device("fallback", &bmc_url(port), account).await;
    chain
        .wait_device("fallback", "connected", |d| d["stream"] == "connected")
        .await;
    chain.console().poll_now().await.unwrap();

    // 2. With the stream stopped, a fault reaches the console through the poll's log read.
    chain.console().fleet.stop_stream("fallback");
    enable_fault(&chain.bmc, "fan-failure").await;
    let before = chain.alerts_of("fallback").await;
    assert_eq!(count_alerts(&before, "FAN0002"), 0, "{before:?}");
    chain.console().poll_now().await.unwrap();
    let alerts = chain.alerts_of("fallback").await;
    assert_eq!(count_alerts(&alerts, "FAN0002"), 1, "{alerts:?}");
    let fan = alerts.iter().find(|a| alert_matches(a, "FAN0002")).unwrap();
    assert!(
        fan["event_id"].as_str().unwrap_or("").contains("/Entries/"),
        "the alert comes from a log entry: {fan}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_poll_alerts_once_across_restart() {
    // 1. A device forced to log polling; its first read only sets the marks.
    let mut chain = Chain::start().await;
    let port = chain.bmc.local_addr().port();
    let account = json!({"user": BMC_USER, "password": BMC_PASSWORD, "intake": "log-poll"});
    let added = chain.add_device("logged", &bmc_url(port), account).await;
    assert_eq!(added["intake"], "log-poll");
    assert_eq!(added["subscription"], Value::Null);
    // The old Critical entries of the simulated log raise nothing; the first poll's
    // health alert is the only one.
    chain.console().poll_now().await.unwrap();
    let alerts = chain.alerts_of("logged").await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["message_id"], "Rackside.1.0.HealthChanged");

    // 2. A new Critical log entry becomes one alert.
    enable_fault(&chain.bmc, "fan-failure").await;
    chain.console().poll_now().await.unwrap();
    let alerts = chain.alerts_of("logged").await;
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    assert_eq!(count_alerts(&alerts, "FAN0002"), 1, "{alerts:?}");

    // 3. After a console restart, the same entry raises nothing new.
    chain.restart_console().await;
    chain.console().poll_now().await.unwrap();
    let device = chain.device("logged").await;
    assert_eq!(device["poll_error"], Value::Null, "{device}");
    assert_eq!(device["intake"], "log-poll");
    let alerts = chain.alerts_of("logged").await;
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    assert_eq!(count_alerts(&alerts, "FAN0002"), 1, "{alerts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bmc_password_never_stored_or_logged() {
    // 1. A device with an account, polled, then the console restarted: the account was
    //    read back from the vault.
    let mut chain = Chain::start().await;
    let port = chain.bmc.local_addr().port();
    let account = json!({"user": BMC_USER, "password": BMC_PASSWORD});
    chain.add_device("kept", &bmc_url(port), account).await;
    chain.restart_console().await;
    let outcomes = chain.console().poll_now().await.unwrap();
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].error, None, "the account survives a restart");

    // 2. No file under the state folder and no log line contains the password.
    let state_dir = chain.dir.path().join("console");
    let mut pending = vec![state_dir.clone()];
    let mut files = 0;
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        files += 1;
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes
                .windows(BMC_PASSWORD.len())
                .any(|w| w == BMC_PASSWORD.as_bytes()),
            "{} contains the BMC password",
            path.display()
        );
    }
    assert!(files >= 4, "database, vault, header and key file expected");
    assert!(state_dir.join("accounts").join("vault.db").exists());
    let logs = captured_logs();
    assert!(logs.contains("kept"), "log capture works");
    assert!(
        !logs.contains(BMC_PASSWORD),
        "a log line contains the BMC password"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bmc_login_is_not_alerted() {
    // 1. A BMC that can push to the console, added with an account, and a subscribed phone.
    let chain = Chain::start().await;
    let bmc = start_bmc(
        &chain.dir.path().join("bmc-pushing"),
        Some(&chain.console().cert_pem),
    )
    .await;
    let url = bmc_url(bmc.local_addr().port());
    let account = json!({"user": BMC_USER, "password": BMC_PASSWORD});
    chain.add_device("pushing", &url, account).await;
    chain.subscribe("phone").await;

    // 2. A session login on the BMC reaches the console as an event, not as an alert.
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(bmc_tls(&bmc.certificate_der()))
        .build()
        .unwrap();
    let login = http
        .post(format!("{url}redfish/v1/SessionService/Sessions"))
        .json(&json!({"UserName": BMC_USER, "Password": BMC_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 201);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, events) = chain
            .api(reqwest::Method::GET, "/api/events?bmc=pushing", None)
            .await;
        let logged = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["message_id"].as_str().unwrap_or("").ends_with("USR0030"));
        if logged {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "login event never reached the console: {events}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // 3. A fan fault after it is pushed; the login never was.
    enable_fault(&bmc, "fan-failure").await;
    let fan = chain.wait_alert("pushing", "FAN0002").await;
    assert!(chain.wait_push_of(fan["message"].as_str().unwrap()).await);
    let pushes = chain.push.received.lock().unwrap().clone();
    assert!(
        pushes
            .iter()
            .all(|(_, p)| !p["message_id"].as_str().unwrap_or("").ends_with("USR0030")),
        "{pushes:?}"
    );
    let alerts = chain.alerts_of("pushing").await;
    assert_eq!(count_alerts(&alerts, "USR0030"), 0, "{alerts:?}");
}

/// Requests in flight at a BMC: now and the most at any moment.
#[derive(Default)]
struct InFlight {
    now: std::sync::atomic::AtomicUsize,
    max: std::sync::atomic::AtomicUsize,
    total: std::sync::atomic::AtomicUsize,
}

/// Serves the simulated BMC's service on a second HTTPS port, counting requests in flight
/// and holding each one for 5 ms.
async fn start_counting_bmc(
    bmc: &rackside_bmc::RunningBmc,
    counter: Arc<InFlight>,
) -> std::net::SocketAddr {
    use std::sync::atomic::Ordering::SeqCst;

    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
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
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = rackside_bmc::router(bmc.state());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, router, counter) = (acceptor.clone(), router.clone(), counter.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |request: axum::extract::Request<hyper::body::Incoming>| {
                        let (router, counter) = (router.clone(), counter.clone());
                        async move {
                            let now = counter.now.fetch_add(1, SeqCst) + 1;
                            counter.max.fetch_max(now, SeqCst);
                            counter.total.fetch_add(1, SeqCst);
                            // A slow BMC keeps requests open long enough to overlap, so an
                            // unbounded poller would show more than the limit.
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            let response = router.oneshot(request.map(axum::body::Body::new)).await;
                            counter.now.fetch_sub(1, SeqCst);
                            response
                        }
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_bounds_requests_in_flight() {
    use std::sync::atomic::Ordering::SeqCst;

    // 1. Twenty devices on one counting BMC, polled four at a time.
    let chain = Chain::start_with(PollSettings {
        concurrency: 4,
        ..test_poll_settings()
    })
    .await;
    let counter = Arc::new(InFlight::default());
    let addr = start_counting_bmc(&chain.bmc, counter.clone()).await;
    let account = json!({"user": BMC_USER, "password": BMC_PASSWORD, "intake": "log-poll"});
    for index in 0..20 {
        chain
            .add_device(
                &format!("node-{index:02}"),
                &bmc_url(addr.port()),
                account.clone(),
            )
            .await;
    }

    // 2. Adding sends requests outside the poll limit, so counting starts after the
    //    rounds that adding woke have ended.
    chain.console().poll_now().await.unwrap();
    counter.max.store(0, SeqCst);
    let before = counter.total.load(SeqCst);
    let outcomes = chain.console().poll_now().await.unwrap();

    // 3. Every device was polled, never more than four requests at once.
    assert_eq!(outcomes.len(), 20);
    assert!(outcomes.iter().all(|o| o.error.is_none()), "{outcomes:?}");
    assert!(counter.total.load(SeqCst) - before >= 20 * 3);
    let max = counter.max.load(SeqCst);
    eprintln!(
        "polled 20 devices with {} requests, at most {max} in flight",
        counter.total.load(SeqCst) - before
    );
    assert!(max <= 4, "{max} requests in flight at once");
    assert!(max >= 2, "devices were polled one at a time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_request_checks_intake_and_account() {
    let chain = Chain::start().await;
    let url = bmc_url(chain.bmc.local_addr().port());
    let cases = [
        (json!({"intake": "smtp"}), "push, sse or log-poll"),
        (json!({"intake": "sse"}), "need the BMC account"),
        (json!({"user": BMC_USER}), "user and password"),
    ];
    for (extra, expected) in cases {
        let mut request = json!({"name": "checked", "url": url});
        for (key, value) in extra.as_object().unwrap() {
            request[key] = value.clone();
        }
        let (status, body) = chain
            .api(reqwest::Method::POST, "/api/devices", Some(request))
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(body["error"].as_str().unwrap().contains(expected), "{body}");
    }
    let (status, _) = chain
        .api(reqwest::Method::DELETE, "/api/devices/checked", None)
        .await;
    assert_eq!(status, 404);
}
