//! Relay benchmark, not a timed test. It measures alerts per second and the latency from the
//! console's request to the Web Push test service, with a no-op axum handler behind the same
//! TLS accept loop under the same load as the baseline. It also measures memory per
//! registered device.
//!
//! Run: `cargo bench -p rackside-relay --bench relay`. `BENCH_SECONDS` (default 10),
//! `BENCH_CLIENTS` (concurrent console connections, default 32) and `BENCH_DEVICES`
//! (registrations for the memory figure, default 1000) change the load.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rackside_pushtest::{self as support, Behaviour, Recorder};
use rackside_relay::apikeys::{ApiKeyStore, ConsoleName};
use rackside_relay::ece::{self, DeviceKeys};
use rackside_relay::providers::ProviderConfig;
use rackside_relay::queue::RetryPolicy;
use rackside_relay::tls::ConnectionLimits;
use rackside_relay::RelayConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde_json::json;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn cpu_seconds() -> f64 {
    // Fields 14 and 15 of /proc/self/stat: user and system time in clock ticks (100 per second
    // on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

fn client_trusting(pem: &str) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
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
        .http1_only()
        .build()
        .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Sends pushes from `clients` tasks for `seconds`; returns (requests sent, each request's
/// round trip).
async fn load(
    client: &reqwest::Client,
    url: String,
    key: String,
    body: impl Fn(u128) -> serde_json::Value + Send + Sync + 'static,
    clients: u64,
    seconds: u64,
    start: Instant,
) -> (u64, Vec<Duration>) {
    let stop = Arc::new(AtomicBool::new(false));
    let body = Arc::new(body);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (client, url, key, stop, body) = (
            client.clone(),
            url.clone(),
            key.clone(),
            stop.clone(),
            body.clone(),
        );
        tasks.spawn(async move {
            let mut round_trips = Vec::new();
            let mut rejected = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&body(start.elapsed().as_nanos()))
                    .send()
                    .await
                    .unwrap();
                if response.status() != 202 {
                    rejected += 1;
                }
                round_trips.push(sent.elapsed());
            }
            (round_trips, rejected)
        });
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut rejected = 0;
    for (round_trips, r) in tasks.join_all().await {
        all.extend(round_trips);
        rejected += r;
    }
    assert_eq!(rejected, 0, "every request must be accepted");
    all.sort_unstable();
    (all.len() as u64, all)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let seconds = env_or("BENCH_SECONDS", 10);
    let clients = env_or("BENCH_CLIENTS", 32);
    let devices = env_or("BENCH_DEVICES", 1000);
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recorder::default());
    let push = support::start_webpush(recorder.clone()).await;

    // 1. The relay, one console key and one device.
    let mut config = RelayConfig::new(dir.path().join("relay"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.queue_capacity = 100_000;
    config.retry = RetryPolicy::default();
    // Every bench client and every registration comes from 127.0.0.1.
    config.connections = ConnectionLimits {
        max_per_address: 1024,
        ..ConnectionLimits::default()
    };
    config.registrations_per_minute = u32::MAX;
    config.providers = ProviderConfig {
        webpush_subject: Some("mailto:bench@rackside.test".into()),
        extra_roots: vec![push.cert.clone()],
        request_timeout: Duration::from_secs(10),
        ..ProviderConfig::default()
    };
    let relay = rackside_relay::start(config).await.unwrap();
    let key = ApiKeyStore::open(&dir.path().join("relay"))
        .add(&ConsoleName::parse("bench").unwrap())
        .unwrap();
    let client = client_trusting(&relay.cert_pem);
    let base = format!("https://localhost:{}", relay.addr.port());
    let device = Arc::new(DeviceKeys::generate());
    recorder.add_device("phone", device.clone(), Behaviour::Accept);
    let registration: serde_json::Value = client
        .post(format!("{base}/v1/registrations"))
        .json(&json!({"console": "bench", "device": "phone",
            "target": {"provider": "webpush", "endpoint": format!("{}push/phone", push.base_url())}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = registration["token"].as_str().unwrap().to_owned();

    // 2. Relay load: each request carries its send time inside the encrypted alert, so the
    //    test service can compute request-to-provider latency after decrypting.
    let recipient = device.recipient();
    let start = Instant::now();
    let cpu_before = cpu_seconds();
    let (sent, relay_round_trips) = load(
        &client,
        format!("{base}/v1/push"),
        key.expose().to_owned(),
        move |sent_ns| {
            let payload = ece::encrypt(&recipient, sent_ns.to_string().as_bytes()).unwrap();
            json!({"token": token, "payload": URL_SAFE_NO_PAD.encode(payload), "count": 1})
        },
        clients,
        seconds,
        start,
    )
    .await;
    let received = recorder
        .wait_for(sent as usize, Duration::from_secs(60))
        .await;
    let relay_cpu = cpu_seconds() - cpu_before;
    let mut latencies: Vec<Duration> = received
        .iter()
        .map(|r| {
            let sent_ns: u64 = r.plaintext.parse().unwrap();
            r.at.duration_since(start)
                .saturating_sub(Duration::from_nanos(sent_ns))
        })
        .collect();
    latencies.sort_unstable();
    let relay_elapsed = received
        .iter()
        .map(|r| r.at)
        .max()
        .unwrap()
        .duration_since(start);

    // 3. Baseline: a no-op handler behind the same TLS accept loop, same clients.
    let (tls, cert_pem) = rackside_relay::tls::load_or_generate(&dir.path().join("noop")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let noop_port = listener.local_addr().unwrap().port();
    let router = axum::Router::new().route(
        "/v1/push",
        axum::routing::post(|| async { axum::http::StatusCode::ACCEPTED }),
    );
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(rackside_relay::tls::accept_loop_with(
        listener,
        tls,
        router,
        ConnectionLimits {
            max_per_address: 1024,
            ..ConnectionLimits::default()
        },
        stop_rx,
    ));
    let noop_client = client_trusting(&cert_pem);
    let recipient = device.recipient();
    let cpu_before = cpu_seconds();
    let noop_start = Instant::now();
    let (noop_sent, noop_round_trips) = load(
        &noop_client,
        format!("https://localhost:{noop_port}/v1/push"),
        "unused".to_owned(),
        move |sent_ns| {
            let payload = ece::encrypt(&recipient, sent_ns.to_string().as_bytes()).unwrap();
            json!({"token": "t", "payload": URL_SAFE_NO_PAD.encode(payload), "count": 1})
        },
        clients,
        seconds,
        noop_start,
    )
    .await;
    let noop_cpu = cpu_seconds() - cpu_before;

    // 4. Memory per registered device.
    let rss_before = rss_kib();
    let register_start = Instant::now();
    for i in 0..devices {
        let response = client
            .post(format!("{base}/v1/registrations"))
            .json(&json!({"console": "bench", "device": format!("device-{i}"),
                "target": {"provider": "webpush", "endpoint": format!("{}push/device-{i}", push.base_url())}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    let register_elapsed = register_start.elapsed();
    let rss_after = rss_kib();

    println!("| measure | relay | no-op axum handler |");
    println!("| --- | ---: | ---: |");
    println!(
        "| requests accepted per second | {:.0} | {:.0} |",
        sent as f64 / seconds as f64,
        noop_sent as f64 / seconds as f64
    );
    println!(
        "| alerts delivered to the push service per second | {:.0} | - |",
        received.len() as f64 / relay_elapsed.as_secs_f64()
    );
    println!(
        "| requests per CPU-second of the whole process | {:.0} | {:.0} |",
        sent as f64 / relay_cpu,
        noop_sent as f64 / noop_cpu
    );
    println!(
        "| request round trip p50 / p99 | {:.1} / {:.1} ms | {:.1} / {:.1} ms |",
        ms(percentile(&relay_round_trips, 0.5)),
        ms(percentile(&relay_round_trips, 0.99)),
        ms(percentile(&noop_round_trips, 0.5)),
        ms(percentile(&noop_round_trips, 0.99))
    );
    println!(
        "| console request to push service p50 / p99 | {:.1} / {:.1} ms | - |",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99))
    );
    println!(
        "| memory per registered device (RSS growth / {devices}) | {:.2} KiB | - |",
        rss_after.saturating_sub(rss_before) as f64 / devices as f64
    );
    println!(
        "| registration time, mean of {devices} (each rewrites registrations.json) | {:.2} ms | - |",
        ms(register_elapsed) / devices as f64
    );
    println!(
        "\nsent {sent} alerts, {} reached the push service; load {clients} clients for {seconds} s",
        received.len()
    );
    relay.shutdown().await;
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
