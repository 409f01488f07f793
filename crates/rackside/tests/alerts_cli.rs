//! End-to-end tests of `rackside console add` and `rackside alerts`: the real binary reads an
//! in-process console that collects events from an in-process BMC, all on loopback.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

mod support;

use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::{json, Value};
use sha2::Digest;

use support::*;

const CONSOLE_USER: &str = "ops";
const CONSOLE_PASSWORD: &str = "console password 1";
const BMC_USER: &str = "root";
const BMC_PASSWORD: &str = "calvin-calvin";
const WAIT: Duration = Duration::from_secs(20);

/// A console and a BMC that reports its events to it.
struct Site {
    _dir: tempfile::TempDir,
    console: rackside_console::RunningConsole,
    _bmc: rackside_bmc::RunningBmc,
    bmc_url: String,
    http: reqwest::Client,
}

impl Site {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = rackside_console::ConsoleConfig::new(dir.path().join("console"));
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.users = vec![(
            CONSOLE_USER.into(),
            zeroize::Zeroizing::new(CONSOLE_PASSWORD.into()),
        )];
        let console = rackside_console::start(config).await.unwrap();

        let console_cert = CertificateDer::pem_slice_iter(console.cert_pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let mut bmc_config = rackside_bmc::BmcConfig::new(dir.path().join("bmc"));
        bmc_config.listen = "127.0.0.1:0".parse().unwrap();
        bmc_config.first_user = Some((BMC_USER.to_owned(), BMC_PASSWORD.to_owned().into()));
        bmc_config.events.extra_roots = vec![console_cert];
        let bmc = rackside_bmc::start(bmc_config).await.unwrap();
        let bmc_url = format!("https://127.0.0.1:{}/", bmc.local_addr().port());

        // Test-only client on loopback: the code under test checks certificates itself.
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        Self {
            _dir: dir,
            console,
            _bmc: bmc,
            bmc_url,
            http,
        }
    }

    fn console_url(&self) -> String {
        format!("https://localhost:{}/", self.console.addr.port())
    }

    fn console_fingerprint(&self) -> String {
        let der = CertificateDer::pem_slice_iter(self.console.cert_pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        hex::encode(sha2::Sha256::digest(der.as_ref()))
    }

    /// Adds the BMC to the console with its account, so the console subscribes to its events.
    async fn add_bmc(&self, name: &str) {
        let login: Value = self
            .http
            .post(format!("{}api/login", self.console_url()))
            .json(&json!({"user": CONSOLE_USER, "password": CONSOLE_PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = login["token"].as_str().unwrap().to_owned();
        let devices = format!("{}api/devices", self.console_url());
        let first = self
            .http
            .post(&devices)
            .bearer_auth(&token)
            .json(&json!({"name": name, "url": self.bmc_url}))
            .send()
            .await
            .unwrap();
        assert_eq!(first.status(), 409, "a self-signed BMC needs confirmation");
        let body: Value = first.json().await.unwrap();
        let request = json!({
            "name": name,
            "url": self.bmc_url,
            "accept_certificate_sha256": body["certificate"]["certificate_sha256"],
            "user": BMC_USER,
            "password": BMC_PASSWORD,
        });
        let added = self
            .http
            .post(&devices)
            .bearer_auth(&token)
            .json(&request)
            .send()
            .await
            .unwrap();
        assert_eq!(added.status(), 201);
    }

    async fn switch_on_fan_failure(&self) {
        let reply = self
            .http
            .post(format!("{}rackside/faults", self.bmc_url))
            .basic_auth(BMC_USER, Some(BMC_PASSWORD))
            .json(&json!({"enable": ["fan-failure"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
    }
}

async fn run_console_cli(cli: &Cli, args: &[&str], password: &str) -> std::process::Output {
    cli.run_with(args, &[("RACKSIDE_PASSWORD", password)]).await
}

/// Lists unread alerts through the binary until a fan alert shows or [`WAIT`] runs out.
async fn wait_fan_alert(cli: &Cli) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        let output =
            run_console_cli(cli, &["alerts", "--unread", "--json"], CONSOLE_PASSWORD).await;
        assert_success(&output);
        let alerts = json(&output);
        let fan = alerts.as_array().unwrap().iter().find(|alert| {
            alert["message"]
                .as_str()
                .unwrap_or("")
                .to_lowercase()
                .contains("fan")
        });
        if let Some(fan) = fan {
            return Some(fan.clone());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_alert_is_listed_then_acknowledged() {
    let site = Site::start().await;
    site.add_bmc("rack-3").await;
    let cli = Cli::new();
    let fingerprint = site.console_fingerprint();
    let url = site.console_url();
    let added = run_console_cli(
        &cli,
        &[
            "console",
            "add",
            "ops-console",
            &url,
            "--user",
            CONSOLE_USER,
            "--accept-fingerprint",
            &fingerprint,
        ],
        CONSOLE_PASSWORD,
    )
    .await;
    assert_success(&added);

    site.switch_on_fan_failure().await;
    let fan = wait_fan_alert(&cli)
        .await
        .expect("no fan alert listed as unread");
    assert_eq!(fan["bmc"], "rack-3");
    assert_eq!(fan["acknowledged"], false);

    let table = run_console_cli(&cli, &["alerts", "--unread"], CONSOLE_PASSWORD).await;
    assert_success(&table);
    assert!(stdout(&table).contains("rack-3"), "{}", stdout(&table));

    let id = fan["id"].as_i64().unwrap().to_string();
    let acknowledged = run_console_cli(
        &cli,
        &["alerts", "ack", &id, "--console", "ops-console"],
        CONSOLE_PASSWORD,
    )
    .await;
    assert_success(&acknowledged);
    let unread = run_console_cli(&cli, &["alerts", "--unread", "--json"], CONSOLE_PASSWORD).await;
    assert_success(&unread);
    let still_unread = json(&unread)
        .as_array()
        .unwrap()
        .iter()
        .any(|alert| alert["id"].as_i64().unwrap().to_string() == id);
    assert!(!still_unread, "alert {id} is still unread after ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_console_password_exits_5() {
    let site = Site::start().await;
    let cli = Cli::new();
    let fingerprint = site.console_fingerprint();
    let url = site.console_url();
    let added = run_console_cli(
        &cli,
        &[
            "console",
            "add",
            "ops-console",
            &url,
            "--user",
            CONSOLE_USER,
            "--accept-fingerprint",
            &fingerprint,
        ],
        "not the password",
    )
    .await;
    assert_code(&added, 5);
    assert!(
        !stderr(&added).contains("not the password"),
        "the password leaked into the error"
    );
}
