//! The whole alert chain on loopback in one test: a simulated BMC, the console, the relay and
//! the Web Push, FCM and APNs test services, with a receiver per device.
//!
//! This is a separate test binary because it needs all three provider services from
//! `rackside-pushtest`, which the other console tests do not start.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::Duration;

use rackside_console::inbox::{notification_line, unread_count, Dropped, Inbox};
use rackside_console::{ConsoleConfig, RelayConfig};
use rackside_pushtest::{certificates, client_trusting, Behaviour, Providers, Received};
use rackside_relay::apikeys::{ApiKeyStore, ConsoleName};
use rackside_relay::ece::DeviceKeys;
use serde_json::{json, Value};

/// Maximum wait for one step of the chain. It guards against hangs and is not a speed claim.
const WAIT: Duration = Duration::from_secs(60);
const CONSOLE_PASSWORD: &str = "correct horse battery";
const BMC_PASSWORD: &str = "calvin-calvin";
const PROVIDERS: [&str; 3] = ["webpush", "fcm", "apns"];

/// Returns the first push each provider service received whose alert has `message_id`.
fn fan_pushes(received: &[Received], message_id: &str) -> Vec<Received> {
    PROVIDERS
        .iter()
        .filter_map(|provider| {
            received
                .iter()
                .find(|push| {
                    push.provider == *provider
                        && serde_json::from_str::<Value>(&push.plaintext)
                            .is_ok_and(|alert| alert["message_id"] == message_id)
                })
                .cloned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bmc_fault_reaches_every_provider_and_receiver() {
    let dir = tempfile::tempdir().unwrap();

    // 1. Provider services, a relay that sends to them, a console that forwards to the
    //    relay, and a simulated BMC that trusts the console for event deliveries.
    let providers = Providers::start(&dir.path().join("provider-secrets"), false).await;
    let relay_dir = dir.path().join("relay");
    std::fs::create_dir_all(&relay_dir).unwrap();
    let api_key = ApiKeyStore::open(&relay_dir)
        .add(&ConsoleName::parse("ome-1").unwrap())
        .unwrap();
    let mut relay_config = rackside_relay::RelayConfig::new(relay_dir);
    relay_config.listen = "127.0.0.1:0".parse().unwrap();
    relay_config.providers = providers.config();
    let relay = rackside_relay::start(relay_config).await.unwrap();
    let relay_url = url::Url::parse(&format!("https://localhost:{}/", relay.addr.port())).unwrap();

    let mut console_config = ConsoleConfig::new(dir.path().join("console"));
    console_config.listen = "127.0.0.1:0".parse().unwrap();
    console_config.users = vec![(
        "admin".into(),
        zeroize::Zeroizing::new(CONSOLE_PASSWORD.into()),
    )];
    console_config.relay = Some(RelayConfig {
        url: relay_url.clone(),
        console_name: "ome-1".into(),
        api_key: zeroize::Zeroizing::new(api_key.expose().to_owned()),
        ca_pem: Some(relay.cert_pem.clone()),
    });
    let console = rackside_console::start(console_config).await.unwrap();
    let console_url =
        url::Url::parse(&format!("https://localhost:{}/", console.addr.port())).unwrap();

    let mut bmc_config = rackside_bmc::BmcConfig::new(dir.path().join("bmc"));
    bmc_config.listen = "127.0.0.1:0".parse().unwrap();
    bmc_config.first_user = Some(("root".to_owned(), BMC_PASSWORD.to_owned().into()));
    bmc_config.events.extra_roots = vec![certificates(&console.cert_pem)[0].clone()];
    let bmc = rackside_bmc::start(bmc_config).await.unwrap();
    let bmc_url = format!("https://127.0.0.1:{}/", bmc.local_addr().port());

    // 2. Log in to the console.
    let client = client_trusting(&[
        certificates(&console.cert_pem)[0].clone(),
        certificates(&relay.cert_pem)[0].clone(),
        bmc.certificate_der(),
    ]);
    let login: Value = client
        .post(console_url.join("api/login").unwrap())
        .json(&json!({"user": "admin", "password": CONSOLE_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session = login["token"].as_str().unwrap().to_owned();

    // 3. One device per provider registers at the relay and subscribes at the console. Each
    //    device's receiver keeps its own copy of the keys.
    let mut inboxes = Vec::new();
    for provider in PROVIDERS {
        let device = format!("phone-{provider}");
        let keys = Arc::new(DeviceKeys::generate());
        let target = providers.add_device(provider, &device, keys.clone(), Behaviour::Accept);
        let registration = client
            .post(relay_url.join("v1/registrations").unwrap())
            .json(&json!({"console": "ome-1", "device": device, "target": target}))
            .send()
            .await
            .unwrap();
        assert_eq!(registration.status(), 201, "registering {device}");
        let registration: Value = registration.json().await.unwrap();
        let recipient = keys.recipient();
        let subscribed = client
            .post(console_url.join("api/subscriptions").unwrap())
            .bearer_auth(&session)
            .json(&json!({"device": device, "relay_url": relay_url.as_str(),
                "token": registration["token"], "p256dh": recipient.p256dh(), "auth": recipient.auth()}))
            .send()
            .await
            .unwrap();
        assert_eq!(subscribed.status(), 201, "subscribing {device}");
        let mut inbox = Inbox::new(DeviceKeys::from_bytes(&keys.to_bytes()).unwrap());
        inbox.subscribe("ome-1");
        inboxes.push((provider, inbox));
    }

    // 4. The console adds the BMC with an account, confirming its self-signed certificate,
    //    and subscribes itself to the BMC's events.
    let add = |confirm: Value| {
        client
            .post(console_url.join("api/devices").unwrap())
            .bearer_auth(&session)
            .json(
                &json!({"name": "rack-1", "url": bmc_url, "accept_certificate_sha256": confirm,
                "user": "root", "password": BMC_PASSWORD}),
            )
            .send()
    };
    let unconfirmed = add(Value::Null).await.unwrap();
    assert_eq!(unconfirmed.status(), 409);
    let unconfirmed: Value = unconfirmed.json().await.unwrap();
    let added = add(unconfirmed["certificate"]["certificate_sha256"].clone())
        .await
        .unwrap();
    assert_eq!(added.status(), 201);

    // 5. A fan fault switched on at the BMC.
    let fault = client
        .post(format!("{bmc_url}rackside/faults"))
        .basic_auth("root", Some(BMC_PASSWORD))
        .json(&json!({"enable": ["fan-failure"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(fault.status(), 200);

    // 6. It is stored on the console as one Critical alert.
    let deadline = tokio::time::Instant::now() + WAIT;
    let stored = loop {
        let listed: Value = client
            .get(console_url.join("api/alerts?bmc=rack-1").unwrap())
            .bearer_auth(&session)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let fans: Vec<Value> = listed["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|alert| alert["severity"] == "Critical")
            .cloned()
            .collect();
        if !fans.is_empty() || tokio::time::Instant::now() >= deadline {
            break fans;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(stored.len(), 1, "one Critical alert on the console");
    let message_id = stored[0]["message_id"].as_str().unwrap().to_owned();
    let message = stored[0]["message"].as_str().unwrap().to_owned();

    // 7. It went out through every provider service, and each receiver shows it once.
    let deadline = tokio::time::Instant::now() + WAIT;
    let pushes = loop {
        let pushes = fan_pushes(&providers.recorder.received.lock().unwrap(), &message_id);
        if pushes.len() == PROVIDERS.len() || tokio::time::Instant::now() >= deadline {
            break pushes;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(providers.recorder.violations(), Vec::<String>::new());
    assert_eq!(
        pushes.len(),
        PROVIDERS.len(),
        "a push through each provider"
    );
    for (provider, inbox) in &mut inboxes {
        let push = pushes.iter().find(|p| p.provider == *provider).unwrap();
        assert!(
            !push
                .ciphertext
                .windows(message.len())
                .any(|w| w == message.as_bytes()),
            "{provider} saw the alert text"
        );
        let accepted = inbox.accept(&push.ciphertext).unwrap();
        assert_eq!(accepted.message, message, "{provider}");
        assert_eq!(accepted.bmc, "rack-1", "{provider}");
        assert_eq!(accepted.console, "ome-1", "{provider}");
        assert_eq!(accepted.id, stored[0]["id"].as_i64().unwrap(), "{provider}");
        assert_eq!(
            inbox.accept(&push.ciphertext),
            Err(Dropped::Duplicate),
            "{provider}"
        );
    }

    // 8. The notification line contains the console's unread count and no alert text.
    let unread = unread_count(&client, &console_url, &session).await.unwrap();
    let line = notification_line(unread);
    assert!(unread >= 1);
    assert!(line.starts_with("rackside: "), "{line}");
    for text in [message.as_str(), message_id.as_str(), "rack-1", "Fan"] {
        assert!(!line.contains(text), "{line:?} contains {text:?}");
    }

    console.shutdown().await;
    relay.shutdown().await;
}
