//! Integration tests: a real relay on loopback against Web Push, FCM and APNs test servers
//! that check every request.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rackside_pushtest::{certificates, client_trusting, Behaviour, Providers, Recorder};
use rackside_relay::apikeys::{ApiKey, ApiKeyStore, ConsoleName};
use rackside_relay::ece::{self, DeviceKeys};
use rackside_relay::queue::RetryPolicy;
use rackside_relay::tls::ConnectionLimits;
use rackside_relay::{RelayConfig, RunningRelay};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- log and temp capture

/// Returns the temporary directory of this test process. `TMPDIR` points here, so every
/// temporary file the relay or the tests create lands where
/// `alert_text_never_reaches_disk_or_logs` can walk it.
fn temp_root() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("relay-tests-{}", std::process::id()))
}

/// Returns the buffer that collects every log line of every test in this binary, at trace
/// level. The first call also sets `TMPDIR` to [`temp_root`].
fn captured_logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        std::fs::create_dir_all(temp_root()).unwrap();
        std::env::set_var("TMPDIR", temp_root());
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || LogWriter(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buffer
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Returns every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if let Ok(bytes) = std::fs::read(&path) {
            if bytes.windows(needle.len()).any(|w| w == needle) {
                found.push(path);
            }
        }
    }
    found
}

// ---------------------------------------------------------------- harness

struct Harness {
    recorder: Arc<Recorder>,
    providers: Providers,
    state: tempfile::TempDir,
    relay: Option<RunningRelay>,
    client: reqwest::Client,
}

struct Options {
    fcm_key_expired: bool,
    retry: RetryPolicy,
    queue_capacity: usize,
    connections: ConnectionLimits,
    registrations_per_minute: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            fcm_key_expired: false,
            retry: RetryPolicy {
                max_attempts: 4,
                base_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(200),
            },
            queue_capacity: 1000,
            connections: ConnectionLimits::default(),
            registrations_per_minute: 30,
        }
    }
}

impl Harness {
    async fn start(options: Options) -> Self {
        captured_logs();
        let state = tempfile::tempdir().unwrap();
        let providers = Providers::start(
            &state.path().join("provider-secrets"),
            options.fcm_key_expired,
        )
        .await;
        let mut harness = Self {
            recorder: providers.recorder.clone(),
            providers,
            state,
            relay: None,
            client: reqwest::Client::new(),
        };
        harness.boot(options).await;
        harness
    }

    async fn boot(&mut self, options: Options) {
        let mut config = RelayConfig::new(self.state.path().join("relay"));
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.retry = options.retry;
        config.queue_capacity = options.queue_capacity;
        config.connections = options.connections;
        config.registrations_per_minute = options.registrations_per_minute;
        config.providers = self.providers.config();
        let relay = rackside_relay::start(config).await.unwrap();
        self.client = client_trusting(&certificates(&relay.cert_pem));
        self.relay = Some(relay);
    }

    async fn restart(&mut self) {
        if let Some(relay) = self.relay.take() {
            relay.shutdown().await;
        }
        self.boot(Options::default()).await;
    }

    fn relay(&self) -> &RunningRelay {
        self.relay.as_ref().unwrap()
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.relay().addr.port())
    }

    fn add_key(&self, console: &str) -> ApiKey {
        ApiKeyStore::open(&self.state.path().join("relay"))
            .add(&ConsoleName::parse(console).unwrap())
            .unwrap()
    }

    /// Registers a device with the relay and with the test server; returns its token.
    async fn register(
        &self,
        console: &str,
        device: &str,
        provider: &str,
        behaviour: Behaviour,
    ) -> (String, Arc<DeviceKeys>) {
        let keys = Arc::new(DeviceKeys::generate());
        let target = self
            .providers
            .add_device(provider, device, keys.clone(), behaviour);
        let response = self
            .client
            .post(self.url("/v1/registrations"))
            .json(&json!({"console": console, "device": device, "target": target}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "registering {device}");
        let body: serde_json::Value = response.json().await.unwrap();
        (body["token"].as_str().unwrap().to_owned(), keys)
    }

    async fn push(
        &self,
        key: &str,
        token: &str,
        keys: &DeviceKeys,
        text: &str,
    ) -> reqwest::Response {
        let payload = ece::encrypt(&keys.recipient(), text.as_bytes()).unwrap();
        self.push_raw(key, json!({"token": token, "payload": URL_SAFE_NO_PAD.encode(payload), "count": 1, "collapse_id": "alerts"}))
            .await
    }

    async fn push_raw(&self, key: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url("/v1/push"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn stats(&self) -> serde_json::Value {
        self.client
            .get(self.url("/v1/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until the stats counter `name` reaches `value`.
    async fn wait_stat(&self, name: &str, value: u64) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let stats = self.stats().await;
            if stats[name].as_u64().unwrap_or(0) >= value || tokio::time::Instant::now() >= deadline
            {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_reaches_each_provider_and_decrypts() {
    let harness = Harness::start(Options::default()).await;
    let key = harness.add_key("ome-1");
    for provider in ["webpush", "fcm", "apns"] {
        let (token, keys) = harness
            .register(
                "ome-1",
                &format!("phone-{provider}"),
                provider,
                Behaviour::Accept,
            )
            .await;
        let response = harness
            .push(
                key.expose(),
                &token,
                &keys,
                &format!("fan 2 failed via {provider}"),
            )
            .await;
        assert_eq!(response.status(), 202, "{provider}");
    }
    let received = harness.recorder.wait_for(3, WAIT).await;
    assert_eq!(harness.recorder.violations(), Vec::<String>::new());
    assert_eq!(received.len(), 3);
    for provider in ["webpush", "fcm", "apns"] {
        let push = received.iter().find(|r| r.provider == provider).unwrap();
        assert_eq!(push.plaintext, format!("fan 2 failed via {provider}"));
    }
    assert_eq!(
        received.iter().find(|r| r.provider == "fcm").unwrap().count,
        Some(1)
    );
    assert_eq!(
        received
            .iter()
            .find(|r| r.provider == "apns")
            .unwrap()
            .count,
        Some(1)
    );
    let stats = harness.wait_stat("delivered", 3).await;
    assert_eq!(stats["delivered"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_revoked_api_key_is_rejected() {
    let harness = Harness::start(Options::default()).await;
    let key = harness.add_key("ome-1");
    let (token, keys) = harness
        .register("ome-1", "phone", "webpush", Behaviour::Accept)
        .await;

    let wrong = harness
        .push("rsk_not-a-key", &token, &keys, "psu lost input")
        .await;
    assert_eq!(wrong.status(), 401);
    let missing = harness
        .client
        .post(harness.url("/v1/push"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(
        missing.status() == 401 || missing.status() == 422,
        "{}",
        missing.status()
    );

    ApiKeyStore::open(&harness.state.path().join("relay"))
        .revoke(&ConsoleName::parse("ome-1").unwrap())
        .unwrap();
    let revoked = harness
        .push(key.expose(), &token, &keys, "psu lost input")
        .await;
    assert_eq!(revoked.status(), 401);
    assert!(harness.recorder.received.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_to_other_consoles_token_is_rejected() {
    let harness = Harness::start(Options::default()).await;
    let _ = harness.add_key("ome-1");
    let other_key = harness.add_key("ome-2");
    let (token, keys) = harness
        .register("ome-1", "phone", "webpush", Behaviour::Accept)
        .await;

    let cross = harness.push(other_key.expose(), &token, &keys, "x").await;
    assert_eq!(cross.status(), 404);
    let unknown = harness
        .push(other_key.expose(), "rrt_unknown", &keys, "x")
        .await;
    assert_eq!(unknown.status(), 404);
    let cross_body = cross.text().await.unwrap();
    let unknown_body = unknown.text().await.unwrap();
    assert_eq!(
        cross_body, unknown_body,
        "the two refusals must look the same"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_for_unknown_console_is_not_stored() {
    let harness = Harness::start(Options::default()).await;
    let response = harness
        .client
        .post(harness.url("/v1/registrations"))
        .json(&json!({"console": "nobody", "device": "phone", "target": {"provider": "fcm", "token": "t"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "same status as for a known console");
    assert_eq!(harness.relay().state.registry.len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reregistration_needs_current_token() {
    let harness = Harness::start(Options::default()).await;
    let key = harness.add_key("ome-1");
    let (token, keys) = harness
        .register("ome-1", "phone", "fcm", Behaviour::Accept)
        .await;
    let body = json!({"console": "ome-1", "device": "phone", "target": {"provider": "fcm", "token": "fcm-phone"}});

    // 1. Without the current token the answer looks the same, but nothing changes.
    let stranger = harness
        .client
        .post(harness.url("/v1/registrations"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), 201);
    let stranger: serde_json::Value = stranger.json().await.unwrap();
    let stranger_token = stranger["token"].as_str().unwrap().to_owned();
    let pushed = harness
        .push(key.expose(), &token, &keys, "still mine")
        .await;
    assert_eq!(pushed.status(), 202);
    let pushed = harness
        .push(key.expose(), &stranger_token, &keys, "not stored")
        .await;
    assert_eq!(pushed.status(), 404);

    // 2. With the current token the pair gets a new token and the old one ends.
    let renewed = harness
        .client
        .post(harness.url("/v1/registrations"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(renewed.status(), 201);
    let renewed: serde_json::Value = renewed.json().await.unwrap();
    let renewed_token = renewed["token"].as_str().unwrap().to_owned();
    let pushed = harness.push(key.expose(), &token, &keys, "old token").await;
    assert_eq!(pushed.status(), 404);
    let pushed = harness
        .push(key.expose(), &renewed_token, &keys, "new token")
        .await;
    assert_eq!(pushed.status(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_registrations_are_removed_and_reported() {
    let harness = Harness::start(Options::default()).await;
    let key = harness.add_key("ome-1");
    let mut tokens = Vec::new();
    for provider in ["webpush", "fcm", "apns"] {
        let (token, keys) = harness
            .register(
                "ome-1",
                &format!("old-{provider}"),
                provider,
                Behaviour::Gone,
            )
            .await;
        assert_eq!(
            harness
                .push(key.expose(), &token, &keys, "temperature high")
                .await
                .status(),
            202
        );
        tokens.push((token, keys));
    }
    let stats = harness.wait_stat("gone", 3).await;
    assert_eq!(stats["gone"], 3);
    assert_eq!(harness.relay().state.registry.len(), 0);

    // A push to a dead token gets 410 until the console collects the list.
    let (token, keys) = &tokens[0];
    assert_eq!(
        harness
            .push(key.expose(), token, keys, "again")
            .await
            .status(),
        410
    );

    let gone: serde_json::Value = harness
        .client
        .get(harness.url("/v1/gone"))
        .bearer_auth(key.expose())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut devices: Vec<&str> = gone["gone"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["device"].as_str().unwrap())
        .collect();
    devices.sort_unstable();
    assert_eq!(devices, ["old-apns", "old-fcm", "old-webpush"]);
    for (token, _) in &tokens {
        assert!(gone["gone"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["token"] == token.as_str()));
    }
    assert_eq!(
        harness
            .push(key.expose(), token, keys, "again")
            .await
            .status(),
        404
    );
    assert_eq!(harness.recorder.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_push_is_retried() {
    let harness = Harness::start(Options::default()).await;
    let key = harness.add_key("ome-1");
    let (token, keys) = harness
        .register("ome-1", "busy", "webpush", Behaviour::BusyFirst(2.into()))
        .await;
    assert_eq!(
        harness
            .push(key.expose(), &token, &keys, "power restored")
            .await
            .status(),
        202
    );
    let received = harness.recorder.wait_for(1, WAIT).await;
    assert_eq!(received.len(), 1);
    assert_eq!(
        harness
            .recorder
            .busy_answers
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );
    let stats = harness.wait_stat("delivered", 1).await;
    assert_eq!(stats["retried"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stop_after_max_attempts() {
    let harness = Harness::start(Options::default()).await;
    let key = harness.add_key("ome-1");
    let (token, keys) = harness
        .register(
            "ome-1",
            "always-busy",
            "webpush",
            Behaviour::BusyFirst(100.into()),
        )
        .await;
    assert_eq!(
        harness
            .push(key.expose(), &token, &keys, "x")
            .await
            .status(),
        202
    );
    let stats = harness.wait_stat("failed", 1).await;
    assert_eq!(stats["failed"], 1);
    assert_eq!(stats["retried"], 3);
    assert_eq!(
        harness
            .recorder
            .busy_answers
            .load(std::sync::atomic::Ordering::SeqCst),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_service_account_key_fails_cleanly() {
    let harness = Harness::start(Options {
        fcm_key_expired: true,
        ..Options::default()
    })
    .await;
    let key = harness.add_key("ome-1");
    let (token, keys) = harness
        .register("ome-1", "android", "fcm", Behaviour::Accept)
        .await;
    assert_eq!(
        harness
            .push(key.expose(), &token, &keys, "x")
            .await
            .status(),
        202
    );
    let stats = harness.wait_stat("failed", 1).await;
    assert_eq!(stats["failed"], 1);
    assert_eq!(stats["delivered"], 0);
    let logs = String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned();
    assert!(
        logs.contains("invalid_grant"),
        "the log names the token endpoint's answer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_or_malformed_payload_is_rejected() {
    let harness = Harness::start(Options::default()).await;
    let key = harness.add_key("ome-1");
    let (token, _) = harness
        .register("ome-1", "phone", "webpush", Behaviour::Accept)
        .await;
    let huge = URL_SAFE_NO_PAD.encode(vec![7u8; 4097]);
    let response = harness
        .push_raw(
            key.expose(),
            json!({"token": token, "payload": huge, "count": 1}),
        )
        .await;
    assert_eq!(response.status(), 413);
    let response = harness
        .push_raw(
            key.expose(),
            json!({"token": token, "payload": "***", "count": 1}),
        )
        .await;
    assert_eq!(response.status(), 400);
    let response = harness
        .push_raw(
            key.expose(),
            json!({"token": token, "payload": "AAAA", "count": 1}),
        )
        .await;
    assert_eq!(response.status(), 400);
    let body = "{".repeat(100_000);
    let response = harness
        .client
        .post(harness.url("/v1/push"))
        .bearer_auth(key.expose())
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_answers_503() {
    let harness = Harness::start(Options {
        queue_capacity: 1,
        retry: RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        },
        // The client speaks HTTP/1.1, so 200 concurrent pushes open up to 200 connections.
        connections: ConnectionLimits {
            max_per_address: 256,
            ..ConnectionLimits::default()
        },
        ..Options::default()
    })
    .await;
    let key = harness.add_key("ome-1");
    let (token, keys) = harness
        .register("ome-1", "phone", "webpush", Behaviour::Accept)
        .await;
    let payload = URL_SAFE_NO_PAD.encode(ece::encrypt(&keys.recipient(), b"x").unwrap());
    let mut pushes = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let request = harness
            .client
            .post(harness.url("/v1/push"))
            .bearer_auth(key.expose())
            .json(&json!({"token": token, "payload": payload, "count": 1}));
        pushes.spawn(async move { request.send().await.unwrap().status().as_u16() });
    }
    let statuses = pushes.join_all().await;
    assert!(
        statuses.iter().all(|s| *s == 202 || *s == 503),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&503),
        "200 concurrent pushes into a queue of 1 must overflow"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_loses_queue_but_keeps_registrations() {
    let mut harness = Harness::start(Options {
        retry: RetryPolicy {
            max_attempts: 50,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_millis(200),
        },
        ..Options::default()
    })
    .await;
    let key = harness.add_key("ome-1");
    let (token, keys) = harness
        .register(
            "ome-1",
            "phone",
            "webpush",
            Behaviour::BusyFirst(1000.into()),
        )
        .await;
    assert_eq!(
        harness
            .push(key.expose(), &token, &keys, "queued then lost")
            .await
            .status(),
        202
    );
    harness.wait_stat("retried", 1).await;

    harness.restart().await;
    let stats = harness.stats().await;
    assert_eq!(stats["accepted"], 0, "the queue does not survive a restart");
    assert_eq!(harness.relay().state.registry.len(), 1, "registrations do");
    let busy_before = harness
        .recorder
        .busy_answers
        .load(std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let busy_after = harness
        .recorder
        .busy_answers
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        busy_before, busy_after,
        "no attempt of the old queue runs after the restart"
    );

    // The same token and key work after the restart.
    harness
        .recorder
        .add_device("phone", keys.clone(), Behaviour::Accept);
    assert_eq!(
        harness
            .push(key.expose(), &token, &keys, "after restart")
            .await
            .status(),
        202
    );
    let received = harness.recorder.wait_for(1, WAIT).await;
    assert_eq!(
        received.first().map(|r| r.plaintext.as_str()),
        Some("after restart")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_text_never_reaches_disk_or_logs() {
    let harness = Harness::start(Options::default()).await;
    let key = harness.add_key("ome-1");
    let secret_text = "ALERT-TEXT-7f3a: PSU 2 failed in rack B4";
    for provider in ["webpush", "fcm", "apns"] {
        let (token, keys) = harness
            .register(
                "ome-1",
                &format!("d-{provider}"),
                provider,
                Behaviour::Accept,
            )
            .await;
        assert_eq!(
            harness
                .push(key.expose(), &token, &keys, secret_text)
                .await
                .status(),
            202
        );
    }
    let (token, keys) = harness
        .register("ome-1", "d-gone", "fcm", Behaviour::Gone)
        .await;
    assert_eq!(
        harness
            .push(key.expose(), &token, &keys, secret_text)
            .await
            .status(),
        202
    );
    harness.recorder.wait_for(3, WAIT).await;
    harness.wait_stat("gone", 1).await;

    let needle = secret_text.as_bytes();
    assert_eq!(
        files_containing(harness.state.path(), needle),
        Vec::<PathBuf>::new()
    );
    assert_eq!(std::env::temp_dir(), temp_root());
    assert_eq!(
        files_containing(&temp_root(), needle),
        Vec::<PathBuf>::new()
    );
    let logs = captured_logs().lock().unwrap().clone();
    assert!(!logs.is_empty(), "the relay logged something to check");
    assert!(
        !logs.windows(needle.len()).any(|w| w == needle),
        "a log line holds alert text"
    );
    assert!(
        !String::from_utf8_lossy(&logs).contains(key.expose()),
        "a log line holds the API key"
    );
    assert!(
        !String::from_utf8_lossy(&logs).contains(&token),
        "a log line holds a registration token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vapid_key_is_published_and_stable() {
    let mut harness = Harness::start(Options::default()).await;
    let first: serde_json::Value = harness
        .client
        .get(harness.url("/v1/vapid"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    harness.restart().await;
    let second: serde_json::Value = harness
        .client
        .get(harness.url("/v1/vapid"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = URL_SAFE_NO_PAD
        .decode(first["public_key"].as_str().unwrap())
        .unwrap();
    assert_eq!(key.len(), 65);
    assert_eq!(first, second);
}

// ---------------------------------------------------------------- connection limits

/// A second loopback address, so a test can act as a different client.
const OTHER_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// Builds an HTTPS client that trusts the relay and connects from `local`.
fn client_from(harness: &Harness, local: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls_client_config(harness, &[]))
        .local_address(local)
        .build()
        .unwrap()
}

fn tls_client_config(harness: &Harness, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in certificates(&harness.relay().cert_pem) {
        roots.add(certificate).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// Opens a TLS connection to the relay from 127.0.0.1 offering `alpn`; fails when the relay
/// closes the connection before the handshake ends.
async fn connect_tls(
    harness: &Harness,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let stream = tokio::net::TcpStream::connect(harness.relay().addr).await?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_client_config(harness, alpn)));
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(WAIT, connector.connect(name, stream))
        .await
        .unwrap()
}

/// Sends the headers of a request with a 4000-byte body and none of the body.
async fn send_stalled_body(
    stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) -> std::io::Result<()> {
    stream
        .write_all(
            b"POST /v1/push HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
              Content-Length: 4000\r\n\r\n",
        )
        .await?;
    stream.flush().await
}

/// Reads until the relay closes the connection and returns what it sent. Panics if the
/// connection is still open after [`WAIT`].
async fn read_until_closed(
    stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    };
    tokio::time::timeout(WAIT, read_all)
        .await
        .expect("the relay kept the connection open");
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_leave_room_for_others() {
    let harness = Harness::start(Options {
        connections: ConnectionLimits {
            max_connections: 8,
            max_per_address: 4,
            ..ConnectionLimits::default()
        },
        ..Options::default()
    })
    .await;

    // 1. One client tries to fill every connection slot with stalled bodies.
    let mut stalled = Vec::new();
    let mut rejected = 0;
    for _ in 0..8 {
        match connect_tls(&harness, &[b"http/1.1"]).await {
            Ok(mut stream) => {
                send_stalled_body(&mut stream).await.unwrap();
                stalled.push(stream);
            }
            Err(_) => rejected += 1,
        }
    }
    assert_eq!(stalled.len(), 4, "the per-address limit holds");
    assert_eq!(rejected, 4);

    // 2. Another client still gets served.
    let response = client_from(&harness, OTHER_CLIENT)
        .get(harness.url("/v1/stats"))
        .send()
        .await
        .expect("binding 127.0.0.2 works on Linux loopback");
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_body_connection_is_closed_after_request_timeout() {
    let harness = Harness::start(Options {
        connections: ConnectionLimits {
            request_timeout: Duration::from_millis(300),
            ..ConnectionLimits::default()
        },
        ..Options::default()
    })
    .await;
    let mut stream = connect_tls(&harness, &[b"http/1.1"]).await.unwrap();
    send_stalled_body(&mut stream).await.unwrap();
    let received = read_until_closed(&mut stream).await;
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connection_is_closed() {
    let harness = Harness::start(Options {
        connections: ConnectionLimits {
            idle_timeout: Duration::from_millis(300),
            ..ConnectionLimits::default()
        },
        ..Options::default()
    })
    .await;
    let mut stream = connect_tls(&harness, &[b"h2"]).await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    // The client preface and an empty SETTINGS frame, then no request.
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    stream.flush().await.unwrap();
    let received = read_until_closed(&mut stream).await;
    // Frame type 7 is GOAWAY, sent before the relay closes.
    let mut frames = &received[..];
    let mut types = Vec::new();
    while frames.len() >= 9 {
        let length =
            usize::from(frames[0]) << 16 | usize::from(frames[1]) << 8 | usize::from(frames[2]);
        types.push(frames[3]);
        frames = &frames[(9 + length).min(frames.len())..];
    }
    assert!(types.contains(&7), "frame types received: {types:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http1_keep_alive_connection_is_closed() {
    let harness = Harness::start(Options {
        connections: ConnectionLimits {
            idle_timeout: Duration::from_millis(300),
            // hyper's header timeout also closes idle HTTP/1 connections, so it must not be
            // the limit that fires here.
            handshake_timeout: WAIT * 6,
            ..ConnectionLimits::default()
        },
        ..Options::default()
    })
    .await;
    let mut stream = connect_tls(&harness, &[b"http/1.1"]).await.unwrap();
    stream
        .write_all(b"GET /v1/stats HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    stream.flush().await.unwrap();
    let received = read_until_closed(&mut stream).await;
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

// ---------------------------------------------------------------- registration probing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_stats_do_not_reveal_registrations() {
    let harness = Harness::start(Options::default()).await;
    harness.add_key("con1");
    let before = harness.stats().await;
    harness
        .register("con1", "phone", "fcm", Behaviour::Accept)
        .await;
    assert_eq!(harness.relay().state.registry.len(), 1);
    let after = harness.stats().await;
    assert_eq!(
        before, after,
        "a registration changes nothing in the public stats"
    );
    assert!(after.get("registrations").is_none(), "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_flood_gets_429() {
    let harness = Harness::start(Options {
        registrations_per_minute: 3,
        ..Options::default()
    })
    .await;
    let register = |client: reqwest::Client, device: &str| {
        let request = client
            .post(harness.url("/v1/registrations"))
            .json(&json!({"console": "nobody", "device": device, "target": {"provider": "fcm", "token": "t"}}));
        async move { request.send().await.unwrap() }
    };
    for i in 0..3 {
        let response = register(harness.client.clone(), &format!("device-{i}")).await;
        assert_eq!(response.status(), 201);
    }
    let limited = register(harness.client.clone(), "device-3").await;
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=60).contains(&retry_after),
        "Retry-After: {retry_after}"
    );

    // The limit is per client address.
    let other = register(client_from(&harness, OTHER_CLIENT), "device-4").await;
    assert_eq!(other.status(), 201);
}
