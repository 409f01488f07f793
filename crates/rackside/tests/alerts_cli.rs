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

    // The stored password is replaced only by one that logs in.
    let wrong = run_console_cli(&cli, &["console", "passwd", "ops-console"], "not it").await;
    assert_code(&wrong, 5);
    let listed = run_console_cli(&cli, &["alerts"], "not it").await;
    assert_success(&listed);
    let replaced = run_console_cli(
        &cli,
        &["console", "passwd", "ops-console"],
        CONSOLE_PASSWORD,
    )
    .await;
    assert_success(&replaced);

    let consoles = run_console_cli(&cli, &["console", "list"], CONSOLE_PASSWORD).await;
    assert_success(&consoles);
    let table = stdout(&consoles);
    assert!(table.contains("ops-console (default)"), "{table}");
    assert!(table.contains(&url), "{table}");
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

    // After the console's limit of failed logins, the right password is refused for a while
    // too, and the message is the console's own reason.
    let args = [
        "console",
        "add",
        "ops-console",
        url.as_str(),
        "--user",
        CONSOLE_USER,
        "--accept-fingerprint",
        fingerprint.as_str(),
    ];
    let mut limited = None;
    for _ in 0..10 {
        let output = run_console_cli(&cli, &args, "not the password").await;
        if stderr(&output).contains("429 Too Many Requests") {
            limited = Some(output);
            break;
        }
        assert_code(&output, 5);
    }
    let limited = limited.expect("the console limits failed logins");
    assert_code(&limited, 5);
    assert!(
        stderr(&limited).contains("too many failed logins"),
        "{}",
        stderr(&limited)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_add_names_fingerprint_source() {
    let site = Site::start().await;
    let cli = Cli::new();
    let url = site.console_url();
    let undecided = run_console_cli(
        &cli,
        &[
            "console",
            "add",
            "ops-console",
            &url,
            "--user",
            CONSOLE_USER,
            "--non-interactive",
        ],
        CONSOLE_PASSWORD,
    )
    .await;
    assert!(!undecided.status.success());
    let message = stderr(&undecided);
    assert!(message.contains("ops-console presents"), "{message}");
    assert!(
        message.contains("tls-cert.pem in the console's state folder"),
        "{message}"
    );
    assert!(!message.contains("BMC"), "{message}");
}

// The push chain through the binary: `rackside bmc`, `relay serve`, `console serve`, then
// `subscribe`, `alerts watch` and `unsubscribe`, each a process on loopback.

const RELAY_CONSOLE_NAME: &str = "ome-1";
const CONSOLE_NAME: &str = "ops-console";
const BMC_NAME: &str = "rack-3";
/// Hang guard for conditions that are expected to hold much sooner.
const CHAIN_WAIT: Duration = Duration::from_secs(60);

/// Output lines of a running `rackside` process, collected as they arrive.
#[derive(Clone, Default)]
struct Lines(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Lines {
    fn snapshot(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    fn collect(&self, stream: impl tokio::io::AsyncRead + Unpin + Send + 'static) {
        use tokio::io::AsyncBufReadExt as _;
        let lines = self.clone();
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::new(stream).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                lines.0.lock().unwrap().push(line);
            }
        });
    }
}

/// A `rackside` process started in the background.
struct Process {
    child: tokio::process::Child,
    stdout: Lines,
    stderr: Lines,
}

impl Process {
    fn spawn(cli: &Cli, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_rackside"));
        command
            .args(args)
            .envs(cli.isolation())
            .env_remove("RACKSIDE_PASSWORD")
            .env_remove("RACKSIDE_LOG")
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().unwrap();
        let stdout = Lines::default();
        let stderr = Lines::default();
        stdout.collect(child.stdout.take().unwrap());
        stderr.collect(child.stderr.take().unwrap());
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// Waits for a line containing `text` on standard output or error and returns it.
    async fn wait_line(&self, text: &str) -> String {
        let deadline = tokio::time::Instant::now() + CHAIN_WAIT;
        loop {
            let all = self
                .stdout
                .snapshot()
                .into_iter()
                .chain(self.stderr.snapshot());
            if let Some(line) = all.into_iter().find(|line| line.contains(text)) {
                return line;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no line with {text:?}\nstdout: {:#?}\nstderr: {:#?}",
                self.stdout.snapshot(),
                self.stderr.snapshot()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the process to exit and returns its exit code.
    async fn wait_exit(&mut self) -> Option<i32> {
        let status = tokio::time::timeout(CHAIN_WAIT, self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "process did not exit\nstdout: {:#?}\nstderr: {:#?}",
                    self.stdout.snapshot(),
                    self.stderr.snapshot()
                )
            })
            .unwrap();
        // The readers may still be draining the pipes.
        tokio::time::sleep(Duration::from_millis(200)).await;
        status.code()
    }

    async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }
}

/// Returns a loopback port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Returns the SHA-256 of the first certificate in a PEM file, as hex.
fn pem_fingerprint(path: &std::path::Path) -> String {
    let der = CertificateDer::pem_file_iter(path)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    hex::encode(sha2::Sha256::digest(der.as_ref()))
}

/// A BMC, a relay and a console as processes, and a client subscribed to the console.
struct Chain {
    dir: tempfile::TempDir,
    /// Runs the services; its config folder is not the client's.
    services: Cli,
    cli: Cli,
    relay: Option<Process>,
    relay_port: u16,
    console: Process,
    console_url: String,
    _bmc: Process,
    bmc_url: String,
    receiver: String,
    http: reqwest::Client,
}

impl Chain {
    /// Starts the services, adds the BMC to the console and the console to the client, and
    /// subscribes with `subscribe_flags`. The relay is then restarted so it trusts the receiver.
    async fn start(subscribe_flags: &[&str]) -> (Self, std::process::Output) {
        let dir = tempfile::tempdir().unwrap();
        let services = Cli::new();

        // 1. The relay, with an API key for the console.
        let relay_dir = dir.path().join("relay");
        let key = services
            .run(&[
                "relay",
                "--state-dir",
                relay_dir.to_str().unwrap(),
                "key",
                "add",
                RELAY_CONSOLE_NAME,
            ])
            .await;
        assert_success(&key);
        let key_file = dir.path().join("relay-api-key");
        std::fs::write(&key_file, &key.stdout).unwrap();
        let relay_port = free_port();
        let mut chain_relay = Self::spawn_relay(&services, &relay_dir, relay_port, None);
        chain_relay.wait_line("relay listening").await;

        // 2. The console, forwarding to the relay.
        let console_dir = dir.path().join("console");
        let relay_url = format!("https://localhost:{relay_port}/");
        let console = Process::spawn(
            &services,
            &[
                "console",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--state-dir",
                console_dir.to_str().unwrap(),
                "--user",
                CONSOLE_USER,
                "--relay-url",
                &relay_url,
                "--relay-console-name",
                RELAY_CONSOLE_NAME,
                "--relay-api-key-file",
                key_file.to_str().unwrap(),
                "--relay-ca",
                relay_dir.join("tls-cert.pem").to_str().unwrap(),
            ],
            &[("RACKSIDE_CONSOLE_PASSWORD", CONSOLE_PASSWORD)],
        );
        let line = console.wait_line("console listening on https://").await;
        let port = line.rsplit(':').next().unwrap().trim().to_owned();
        let console_url = format!("https://localhost:{port}/");

        // 3. The BMC, trusting the console for its event deliveries.
        let bmc = Process::spawn(
            &services,
            &[
                "bmc",
                "--listen",
                "127.0.0.1:0",
                "--state-dir",
                dir.path().join("bmc").to_str().unwrap(),
                "--user",
                BMC_USER,
                "--event-ca",
                console_dir.join("tls-cert.pem").to_str().unwrap(),
            ],
            &[("RACKSIDE_BMC_PASSWORD", BMC_PASSWORD)],
        );
        let line = bmc.wait_line("rackside bmc listening on https://").await;
        let bmc_url = format!("{}/", line.rsplit(' ').next().unwrap().trim());

        // Test-only client on loopback: the code under test checks certificates itself.
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        let mut chain = Self {
            dir,
            services,
            cli: Cli::new(),
            relay: None,
            relay_port,
            console,
            console_url,
            _bmc: bmc,
            bmc_url,
            receiver: format!("127.0.0.1:{}", free_port()),
            http,
        };
        chain.add_bmc_to_console().await;

        // 4. The client adds the console and subscribes.
        let fingerprint = pem_fingerprint(&console_dir.join("tls-cert.pem"));
        let added = chain
            .client(&[
                "console",
                "add",
                CONSOLE_NAME,
                &chain.console_url,
                "--user",
                CONSOLE_USER,
                "--accept-fingerprint",
                &fingerprint,
            ])
            .await;
        assert_success(&added);
        let relay_fingerprint = pem_fingerprint(&relay_dir.join("tls-cert.pem"));
        let mut args = vec![
            "subscribe",
            CONSOLE_NAME,
            "--receiver",
            &chain.receiver,
            "--accept-fingerprint",
            &relay_fingerprint,
        ];
        args.extend_from_slice(subscribe_flags);
        let subscribed = chain.client(&args).await;
        assert_success(&subscribed);

        // 5. The relay operator restarts the relay trusting the receiver's certificate.
        chain_relay.kill().await;
        chain.relay = Some(chain_relay);
        chain.start_relay().await;
        (chain, subscribed)
    }

    fn spawn_relay(
        services: &Cli,
        relay_dir: &std::path::Path,
        port: u16,
        provider_ca: Option<&std::path::Path>,
    ) -> Process {
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec![
            "relay",
            "--state-dir",
            relay_dir.to_str().unwrap(),
            "serve",
            "--listen",
            &listen,
            "--vapid-subject",
            "mailto:ops@rackside.test",
            "--max-attempts",
            "2",
        ];
        if let Some(path) = provider_ca {
            args.push("--provider-ca");
            args.push(path.to_str().unwrap());
        }
        Process::spawn(services, &args, &[])
    }

    /// Starts the relay on its port, trusting the client's receiver certificate.
    async fn start_relay(&mut self) {
        let receiver_pem = self.cli.config.path().join("receiver.pem");
        let relay = Self::spawn_relay(
            &self.services,
            &self.dir.path().join("relay"),
            self.relay_port,
            Some(&receiver_pem),
        );
        relay.wait_line("relay listening").await;
        self.relay = Some(relay);
    }

    async fn stop_relay(&mut self) {
        let mut relay = self.relay.take().unwrap();
        relay.kill().await;
    }

    async fn client(&self, args: &[&str]) -> std::process::Output {
        self.cli
            .run_with(args, &[("RACKSIDE_PASSWORD", CONSOLE_PASSWORD)])
            .await
    }

    fn watch(&self, args: &[&str]) -> Process {
        let mut all = vec!["alerts", "watch"];
        all.extend_from_slice(args);
        Process::spawn(&self.cli, &all, &[])
    }

    async fn console_session(&self) -> String {
        let login: Value = self
            .http
            .post(format!("{}api/login", self.console_url))
            .json(&json!({"user": CONSOLE_USER, "password": CONSOLE_PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        login["token"].as_str().unwrap().to_owned()
    }

    async fn add_bmc_to_console(&self) {
        let token = self.console_session().await;
        let devices = format!("{}api/devices", self.console_url);
        let first: Value = self
            .http
            .post(&devices)
            .bearer_auth(&token)
            .json(&json!({"name": BMC_NAME, "url": self.bmc_url}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let request = json!({
            "name": BMC_NAME,
            "url": self.bmc_url,
            "accept_certificate_sha256": first["certificate"]["certificate_sha256"],
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
        assert_eq!(added.status(), 201, "{:?}", added.text().await);
    }

    async fn switch_on(&self, fault: &str) {
        let reply = self
            .http
            .post(format!("{}rackside/faults", self.bmc_url))
            .basic_auth(BMC_USER, Some(BMC_PASSWORD))
            .json(&json!({"enable": [fault]}))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
    }

    /// Lists the console's alerts through the binary.
    async fn alerts(&self, unread: bool) -> Vec<Value> {
        let mut args = vec!["alerts", "--json"];
        if unread {
            args.push("--unread");
        }
        let output = self.client(&args).await;
        assert_success(&output);
        json(&output).as_array().unwrap().clone()
    }

    /// Waits until `rackside alerts` lists an alert whose message contains `text`.
    async fn wait_listed(&self, text: &str) -> Value {
        let deadline = tokio::time::Instant::now() + CHAIN_WAIT;
        loop {
            let found = self.alerts(false).await.into_iter().find(|alert| {
                alert["message"]
                    .as_str()
                    .unwrap_or("")
                    .to_lowercase()
                    .contains(text)
            });
            if let Some(alert) = found {
                return alert;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no alert with {text:?} listed"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Reads the console entry as the client stored it in the vault.
    fn console_entry(&self) -> Value {
        let vault = self.cli.open_vault();
        let text = vault
            .setting(&format!("console/{CONSOLE_NAME}"))
            .unwrap()
            .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// Rewrites the stored console entry's `subscribed` flag, as another process would.
    fn set_subscribed(&self, subscribed: bool) {
        let mut entry = self.console_entry();
        entry["subscribed"] = json!(subscribed);
        let vault = self.cli.open_vault();
        vault
            .put_setting(&format!("console/{CONSOLE_NAME}"), &entry.to_string())
            .unwrap();
    }
}

/// Asserts the notification line format and returns its count.
fn notification_count(line: &str) -> u64 {
    match line {
        "rackside: no new alerts" => 0,
        "rackside: 1 new alert" => 1,
        other => {
            let count = other
                .strip_prefix("rackside: ")
                .and_then(|rest| rest.strip_suffix(" new alerts"))
                .unwrap_or_else(|| panic!("not a notification line: {other:?}"));
            count.parse().unwrap()
        }
    }
}

/// Returns every form a secret could be written in: raw, hex, base64 and base64url.
fn secret_forms(bytes: &[u8]) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    vec![
        bytes.to_vec(),
        hex::encode(bytes).into_bytes(),
        base64::engine::general_purpose::STANDARD
            .encode(bytes)
            .into_bytes(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(bytes)
            .into_bytes(),
    ]
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_fault_reaches_watch_through_relay() {
    let (chain, subscribed) = Chain::start(&["-vv"]).await;
    assert!(
        stderr(&subscribed).contains("receiver.pem"),
        "{}",
        stderr(&subscribed)
    );
    let entry = chain.console_entry();
    assert_eq!(entry["subscribed"], true);
    assert_eq!(
        entry["subscription"]["relay_console_name"],
        RELAY_CONSOLE_NAME
    );

    // 1. Subscribing again changes nothing.
    let again = chain.client(&["subscribe", CONSOLE_NAME]).await;
    assert_success(&again);
    assert!(
        stderr(&again).contains("already subscribed"),
        "{}",
        stderr(&again)
    );
    assert_eq!(chain.console_entry(), entry);

    // 2. A fan fault on the BMC reaches the watching receiver.
    let mut watch = chain.watch(&["--once", "-vv"]);
    watch.wait_line("receiving pushes on").await;
    chain.switch_on("fan-failure").await;
    assert_eq!(watch.wait_exit().await, Some(0));
    let shown = watch.stdout.snapshot();
    assert_eq!(shown.len(), 2, "{shown:#?}");
    let (alert_line, notification) = (&shown[0], &shown[1]);
    assert!(alert_line.starts_with("Critical "), "{alert_line}");
    assert!(alert_line.contains(CONSOLE_NAME), "{alert_line}");
    assert!(alert_line.contains(BMC_NAME), "{alert_line}");

    // 3. `rackside alerts` lists the same alert. The console may also raise a health alert
    //    of its own for the fault, so the first alert shown is found by its id, and the count
    //    is bounded by the unread alerts listed afterwards.
    chain.wait_listed("fan").await;
    let id: i64 = alert_line
        .rsplit_once("(alert ")
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no alert id in {alert_line:?}"))
        .parse()
        .unwrap();
    let listed = chain.alerts(false).await;
    let shown_alert = listed
        .iter()
        .find(|alert| alert["id"] == id)
        .unwrap_or_else(|| panic!("alert {id} not listed: {listed:#?}"));
    let message = shown_alert["message"].as_str().unwrap();
    assert!(alert_line.contains(message), "{alert_line}");
    assert_eq!(shown_alert["bmc"], BMC_NAME);
    let count = notification_count(notification);
    assert!(count >= 1, "{notification}");
    let unread = chain.alerts(true).await.len() as u64;
    assert!(count <= unread, "{notification} but {unread} unread");

    // 4. The notification line contains no alert text.
    assert!(!notification.contains(message), "{notification}");
    assert!(!notification.contains(BMC_NAME), "{notification}");
    assert!(!notification.contains("FAN0002"), "{notification}");
    assert!(!notification.contains(CONSOLE_NAME), "{notification}");

    // 5. The device keys and the registration token are in no file and no -vv output.
    let vault = chain.cli.open_vault();
    let keys = vault.credential("device/keys").unwrap().unwrap();
    let keys = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        keys.expose(),
    )
    .unwrap();
    let token = vault
        .credential(&format!("relay-token/{CONSOLE_NAME}"))
        .unwrap()
        .unwrap();
    assert!(!token.expose().is_empty());
    drop(vault);
    let (private_key, auth) = keys.split_at(32);
    let secrets = [
        ("device private key", private_key.to_vec()),
        ("auth secret", auth.to_vec()),
        ("registration token", token.expose().to_vec()),
    ];
    let mut files = vec![chain.cli.config.path().to_path_buf()];
    let mut checked = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        checked += 1;
        for (what, secret) in &secrets {
            for form in secret_forms(secret) {
                assert!(
                    !contains(&bytes, &form),
                    "{what} found in {}",
                    path.display()
                );
            }
        }
    }
    assert!(checked >= 2, "only {checked} files checked");
    let logs = [
        subscribed.stderr.clone(),
        watch.stderr.snapshot().join("\n").into_bytes(),
    ];
    assert!(logs[1].len() > 100, "the watch wrote no -vv log");
    for log in &logs {
        for (what, secret) in &secrets {
            for form in secret_forms(secret) {
                assert!(!contains(log, &form), "{what} found in -vv output");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribed_console_push_is_dropped() {
    let (mut chain, _) = Chain::start(&[]).await;
    let watch = chain.watch(&["-v"]);
    watch.wait_line("receiving pushes on").await;

    // 1. Another process marks the console unsubscribed, so its next push is dropped unread.
    chain.set_subscribed(false);
    chain.switch_on("fan-failure").await;
    let dropped = watch.wait_line("push dropped").await;
    assert!(dropped.contains("console unsubscribed"), "{dropped}");
    let fan = chain.wait_listed("fan").await;
    let message = fan["message"].as_str().unwrap();
    assert!(!dropped.contains(message), "{dropped}");
    assert!(
        watch.stdout.snapshot().is_empty(),
        "{:#?}",
        watch.stdout.snapshot()
    );

    // 2. `unsubscribe` with the relay down keeps the local unsubscription and explains how to
    //    retry the relay's cleanup.
    chain.stop_relay().await;
    let first = chain.client(&["unsubscribe", CONSOLE_NAME]).await;
    assert_code(&first, 6);
    let message = stderr(&first);
    assert!(message.contains("relay"), "{message}");
    assert!(
        message.contains("rackside unsubscribe ops-console"),
        "{message}"
    );
    let entry = chain.console_entry();
    assert_eq!(entry["subscribed"], false);
    assert_eq!(entry["subscription"]["relay_registered"], true);
    assert_eq!(
        entry["subscription"]["console_subscription_id"],
        Value::Null
    );

    // 3. Run again with the relay back, `unsubscribe` removes the registration.
    chain.start_relay().await;
    assert_eq!(relay_registrations(&chain).len(), 1);
    let second = chain.client(&["unsubscribe", CONSOLE_NAME]).await;
    assert_success(&second);
    assert!(chain.console_entry().get("subscription").is_none());
    assert!(relay_registrations(&chain).is_empty());
    let token = chain.console_session().await;
    let subscriptions: Value = chain
        .http
        .get(format!("{}api/subscriptions", chain.console_url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let enabled = subscriptions["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["enabled"] != false)
        .count();
    assert_eq!(enabled, 0, "{subscriptions}");

    // 4. The console still stores later alerts, and the watch shows none of them.
    chain.switch_on("psu-failure").await;
    chain.wait_listed("power supply").await;
    assert!(
        watch.stdout.snapshot().is_empty(),
        "{:#?}",
        watch.stdout.snapshot()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_push_is_shown_once() {
    use base64::Engine as _;

    let (mut chain, _) = Chain::start(&[]).await;
    let mut watch = chain.watch(&[]);
    watch.wait_line("receiving pushes on").await;

    // 1. Pushes signed with the relay's VAPID key and encrypted to the device, as the relay
    //    and the console make them.
    let vault = chain.cli.open_vault();
    let keys = vault.credential("device/keys").unwrap().unwrap();
    let keys = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(keys.expose())
        .unwrap();
    drop(vault);
    let recipient = rackside_relay::ece::DeviceKeys::from_bytes(&keys)
        .unwrap()
        .recipient();
    let push_id = chain.console_entry()["subscription"]["push_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let vapid_der = std::fs::read(chain.dir.path().join("relay").join("vapid-key.der")).unwrap();
    let signer = rackside_relay::jwt::Signer::es256_from_pkcs8("VAPID key", &vapid_der).unwrap();
    let origin = format!("https://{}", chain.receiver);
    let token = signer
        .sign(
            serde_json::Map::new(),
            &json!({"aud": origin, "exp": unix_seconds() + 600,
                "sub": "mailto:ops@rackside.test"}),
        )
        .unwrap();
    let authorization = format!(
        "vapid t={token}, k={}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signer.public_key())
    );
    let receiver_pem = std::fs::read(chain.cli.config.path().join("receiver.pem")).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&receiver_pem).unwrap())
        .build()
        .unwrap();
    let body = |id: i64| {
        let alert = json!({"console": RELAY_CONSOLE_NAME, "id": id, "bmc": BMC_NAME,
            "severity": "Warning", "message_id": "Test.1.0.Replay", "message": "replayed alert"});
        rackside_relay::ece::encrypt(&recipient, alert.to_string().as_bytes()).unwrap()
    };
    let send = |body: Vec<u8>| {
        http.post(format!("{origin}/push/{push_id}"))
            .header("authorization", &authorization)
            .header("content-encoding", "aes128gcm")
            .header("ttl", "60")
            .body(body)
            .send()
    };

    // 2. The same body twice, then another alert: the first shows once.
    let replayed = body(9001);
    for _ in 0..2 {
        assert_eq!(send(replayed.clone()).await.unwrap().status(), 201);
    }
    assert_eq!(send(body(9002)).await.unwrap().status(), 201);
    watch.wait_line("(alert 9002)").await;
    let shown = watch.stdout.snapshot();
    let first = shown.iter().filter(|l| l.ends_with("(alert 9001)")).count();
    assert_eq!(first, 1, "{shown:#?}");

    // 3. Without the console, the alert still shows, with a warning in place of the count.
    chain.console.kill().await;
    assert_eq!(send(body(9003)).await.unwrap().status(), 201);
    watch.wait_line("(alert 9003)").await;
    let warning = watch.wait_line("failed to read the unread count").await;
    assert!(warning.starts_with("warning: "), "{warning}");

    // 4. SIGTERM stops the watch cleanly.
    let pid = watch.child.id().unwrap().to_string();
    let signalled = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(signalled.success());
    assert_eq!(watch.wait_exit().await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_during_relay_restart_are_counted() {
    let (mut chain, _) = Chain::start(&[]).await;

    // 1. With the relay down, the console still stores the alert.
    chain.stop_relay().await;
    chain.switch_on("psu-failure").await;
    let psu = chain.wait_listed("power supply").await;

    // 2. After the restart, the next alert reaches the receiver, and its count includes the
    //    alert raised while the relay was down. `--count-only` prints the count alone.
    chain.start_relay().await;
    let mut watch = chain.watch(&["--once", "--count-only"]);
    watch.wait_line("receiving pushes on").await;
    chain.switch_on("fan-failure").await;
    assert_eq!(watch.wait_exit().await, Some(0));
    let shown = watch.stdout.snapshot();
    assert_eq!(shown.len(), 1, "{shown:#?}");
    let unread = chain.alerts(true).await;
    assert!(
        unread.iter().any(|alert| alert["id"] == psu["id"]),
        "{unread:#?}"
    );
    // One push arrived, so a count of two or more was read from the console.
    let count = notification_count(&shown[0]);
    assert!(count >= 2, "{}", shown[0]);
    assert!(count <= unread.len() as u64, "{}", shown[0]);
}

/// Returns the relay's registrations as stored in its state folder: (console, name) pairs.
fn relay_registrations(chain: &Chain) -> Vec<(String, String)> {
    let path = chain.dir.path().join("relay").join("registrations.json");
    let table: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    table["registrations"]
        .as_object()
        .unwrap()
        .values()
        .map(|r| {
            let field = |name: &str| r[name].as_str().unwrap().to_owned();
            (field("console"), field("device"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribe_after_killed_run_receives_pushes() {
    let (chain, _) = Chain::start(&[]).await;
    let first = relay_registrations(&chain);
    assert_eq!(first.len(), 1, "{first:#?}");
    let unsubscribed = chain.client(&["unsubscribe", CONSOLE_NAME]).await;
    assert_success(&unsubscribed);
    assert!(relay_registrations(&chain).is_empty());

    // 1. A subscribe killed after the relay stored its registration, before the vault got
    //    the token: the relay keeps a registration under the device id whose token is lost.
    let vault = chain.cli.open_vault();
    let identity: Value = serde_json::from_str(&vault.setting("device").unwrap().unwrap()).unwrap();
    drop(vault);
    let device_id = identity["id"].as_str().unwrap().to_owned();
    let orphan = chain
        .http
        .post(format!(
            "https://127.0.0.1:{}/v1/registrations",
            chain.relay_port
        ))
        .json(&json!({
            "console": RELAY_CONSOLE_NAME,
            "device": device_id,
            "target": {"provider": "webpush",
                "endpoint": format!("https://{}/push/lost", chain.receiver)},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(orphan.status(), 201);

    // 2. Without a decision, the relay's certificate is rejected with where to check it.
    let undecided = chain
        .client(&["subscribe", CONSOLE_NAME, "--non-interactive"])
        .await;
    assert!(!undecided.status.success());
    let message = stderr(&undecided);
    assert!(
        message.contains("relay of console ops-console"),
        "{message}"
    );
    assert!(
        message.contains("tls-cert.pem in the relay's state folder"),
        "{message}"
    );
    assert!(!message.contains("BMC"), "{message}");

    // 3. The re-run registers under a name no earlier attempt used, so the relay stores the
    //    token it returns.
    let relay_fingerprint = pem_fingerprint(&chain.dir.path().join("relay").join("tls-cert.pem"));
    let again = chain
        .client(&[
            "subscribe",
            CONSOLE_NAME,
            "--accept-fingerprint",
            &relay_fingerprint,
        ])
        .await;
    assert_success(&again);

    // 4. A fault reaches the watch through the new registration.
    let mut watch = chain.watch(&["--once"]);
    watch.wait_line("receiving pushes on").await;
    chain.switch_on("fan-failure").await;
    assert_eq!(watch.wait_exit().await, Some(0));
    let shown = watch.stdout.snapshot();
    assert!(
        shown.first().is_some_and(|line| line.contains(BMC_NAME)),
        "{shown:#?}"
    );

    // 5. The new registration is the only one besides the orphan, under a new name.
    let registrations = relay_registrations(&chain);
    assert_eq!(registrations.len(), 2, "{registrations:#?}");
    let new: Vec<_> = registrations
        .iter()
        .filter(|(_, name)| *name != device_id)
        .collect();
    assert_eq!(new.len(), 1, "{registrations:#?}");
    assert_eq!(new[0].0, RELAY_CONSOLE_NAME);
    assert_ne!(
        new[0].1, first[0].1,
        "the re-run reused the first attempt's name"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_rejects_receiver_off_loopback() {
    let cli = Cli::new();
    let output = cli
        .run(&["subscribe", "ops", "--receiver", "0.0.0.0:8446"])
        .await;
    assert_code(&output, 2);
    assert!(stderr(&output).contains("loopback"), "{}", stderr(&output));
}
