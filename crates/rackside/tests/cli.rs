//! End-to-end tests: the real `rackside` binary against BMC simulators started in-process on
//! loopback, against every shared mockup, and against sushy-emulator.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

mod support;

use std::collections::HashSet;
use std::path::Path;

use rackside_bmc::{DataSource, Fault, TlsSource};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

use support::*;

// ---------------------------------------------------------------------------------------------
// Trust on first use

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_certificate_without_terminal_exits_3_and_sends_nothing() {
    let bmc = embedded_bmc(&[]).await;
    let cli = Cli::new();

    let output = cli.run(&["server", "add", "r1", &bmc.url()]).await;

    assert_code(&output, 3);
    let message = stderr(&output);
    assert!(
        message.contains(&bmc.fingerprint()),
        "fingerprint not shown: {message}"
    );
    assert!(message.contains("yellow"), "colour not shown: {message}");
    assert!(
        message.contains("--accept-fingerprint"),
        "no next step: {message}"
    );
    assert_eq!(bmc.running.stats().application_bytes_received, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_fingerprint_is_pinned_and_used() {
    let bmc = embedded_bmc(&[]).await;
    let cli = Cli::new();

    cli.add("r1", &bmc.url(), &bmc.fingerprint()).await;

    let servers = cli.servers();
    assert_eq!(
        servers["r1"]["pin"]["certificate_sha256"],
        bmc.fingerprint()
    );
    assert_success(&cli.run(&["health", "r1"]).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mismatched_fingerprint_is_rejected() {
    let bmc = embedded_bmc(&[]).await;
    let cli = Cli::new();
    let wrong = "00".repeat(32);

    let output = cli
        .run(&[
            "server",
            "add",
            "r1",
            &bmc.url(),
            "--accept-fingerprint",
            &wrong,
        ])
        .await;

    assert_code(&output, 3);
    assert!(
        stderr(&output).contains("does not match"),
        "{}",
        stderr(&output)
    );
    assert_eq!(bmc.running.stats().application_bytes_received, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_pin_asks_again() {
    let bmc = embedded_bmc(&[]).await;
    let cli = Cli::new();
    cli.add("r1", &bmc.url(), &bmc.fingerprint()).await;

    assert_success(&cli.run(&["server", "remove", "r1"]).await);
    let output = cli.run(&["server", "add", "r1", &bmc.url()]).await;

    assert_code(&output, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_key_blocks_with_alarm_not_password_error() {
    let first = embedded_bmc(&[]).await;
    let second = embedded_bmc(&[]).await;
    let cli = Cli::new();
    cli.add("r1", &first.url(), &first.fingerprint()).await;

    // The same server name now reaches a BMC with another key.
    cli.set_url("r1", &second.url());
    let output = cli.run(&["health", "r1"]).await;

    assert_code(&output, 4);
    let message = stderr(&output);
    assert!(message.contains("ALARM"), "{message}");
    assert!(message.contains("key"), "{message}");
    assert!(!message.to_lowercase().contains("password"), "{message}");
    assert!(!message.contains("credentials"), "{message}");
    assert_eq!(second.running.stats().application_bytes_received, 0);
    assert_eq!(
        cli.servers()["r1"]["pin"]["certificate_sha256"],
        first.fingerprint()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_key_new_certificate_is_a_notice() {
    let files = tempfile::tempdir().unwrap();
    let key = KeyPair::generate().unwrap();
    let first_cert = write_cert(files.path(), "first", &key, leaf_params("127.0.0.1"), None);
    let second_cert = write_cert(files.path(), "second", &key, leaf_params("127.0.0.1"), None);
    let first = start_bmc(DataSource::Embedded, first_cert, &[]).await;
    let second = start_bmc(DataSource::Embedded, second_cert, &[]).await;
    let cli = Cli::new();
    cli.add("r1", &first.url(), &first.fingerprint()).await;

    cli.set_url("r1", &second.url());
    let output = cli.run(&["health", "r1"]).await;

    assert_success(&output);
    assert!(stderr(&output).contains("notice"), "{}", stderr(&output));
    assert_eq!(
        cli.servers()["r1"]["pin"]["certificate_sha256"],
        second.fingerprint()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_certificate_is_red_and_blocked() {
    let files = tempfile::tempdir().unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = leaf_params("127.0.0.1");
    params.not_before = rcgen::date_time_ymd(2019, 1, 1);
    params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    let tls = write_cert(files.path(), "expired", &key, params, None);
    let bmc = start_bmc(DataSource::Embedded, tls, &[]).await;
    let cli = Cli::new();

    let output = cli
        .run(&[
            "server",
            "add",
            "r1",
            &bmc.url(),
            "--accept-fingerprint",
            &bmc.fingerprint(),
        ])
        .await;

    assert_code(&output, 4);
    assert!(stderr(&output).contains("red"), "{}", stderr(&output));
    assert_eq!(bmc.running.stats().application_bytes_received, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_ca_makes_matching_certificate_green() {
    let files = tempfile::tempdir().unwrap();
    let (ca_pem, tls) = ca_signed(files.path(), "127.0.0.1");
    let bmc = start_bmc(DataSource::Embedded, tls, &[]).await;
    let cli = Cli::new();

    let output = cli
        .run(&[
            "server",
            "add",
            "r1",
            &bmc.url(),
            "--user",
            USER,
            "--trust-ca",
            &ca_pem,
        ])
        .await;

    assert_success(&output);
    assert!(stderr(&output).contains("green"), "{}", stderr(&output));
    assert_success(&cli.run(&["health", "r1", "--trust-ca", &ca_pem]).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installed_ca_makes_certificate_green() {
    let files = tempfile::tempdir().unwrap();
    let (ca_pem, tls) = ca_signed(files.path(), "127.0.0.1");
    let bmc = start_bmc(DataSource::Embedded, tls, &[]).await;
    let cli = Cli::new();

    assert_success(&cli.run(&["ca", "add", &ca_pem]).await);
    let output = cli.run(&["server", "add", "r1", &bmc.url()]).await;

    assert_success(&output);
    assert!(stderr(&output).contains("green"), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_issued_certificate_for_other_name_is_red() {
    let files = tempfile::tempdir().unwrap();
    let (ca_pem, tls) = ca_signed(files.path(), "other.example");
    let bmc = start_bmc(DataSource::Embedded, tls, &[]).await;
    let cli = Cli::new();

    let output = cli
        .run(&[
            "server",
            "add",
            "r1",
            &bmc.url(),
            "--trust-ca",
            &ca_pem,
            "--accept-fingerprint",
            &bmc.fingerprint(),
        ])
        .await;

    assert_code(&output, 4);
    assert_eq!(bmc.running.stats().application_bytes_received, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_ca_certificate_is_yellow() {
    let files = tempfile::tempdir().unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = leaf_params("127.0.0.1");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let tls = write_cert(files.path(), "ca-true", &key, params, None);
    let bmc = start_bmc(DataSource::Embedded, tls, &[]).await;
    let cli = Cli::new();

    let refused = cli.run(&["server", "add", "r1", &bmc.url()]).await;
    assert_code(&refused, 3);
    assert!(stderr(&refused).contains("yellow"), "{}", stderr(&refused));
    cli.add("r1", &bmc.url(), &bmc.fingerprint()).await;
}

// ---------------------------------------------------------------------------------------------
// Health, inventory, logs on the embedded server

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_lists_failing_components_with_reasons() {
    let bmc = embedded_bmc(&[]).await;
    let cli = Cli::new();
    cli.add("r1", &bmc.url(), &bmc.fingerprint()).await;

    let output = cli.run(&["health", "r1", "--json"]).await;

    assert_success(&output);
    let outcomes = json(&output);
    let system = &outcomes[0]["report"]["systems"][0];
    assert_eq!(system["power_state"], "On");
    let problems = system["problems"].as_array().unwrap();
    assert!(problems.len() >= 2, "{problems:?}");
    assert!(problems
        .iter()
        .all(|p| !p["reason"].as_str().unwrap_or("").is_empty()));
    let table = cli.run(&["health", "r1"]).await;
    assert!(stdout(&table).contains("REASON"), "{}", stdout(&table));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_fail_on_sets_exit_code() {
    let bmc = embedded_bmc(&[]).await;
    let cli = Cli::new();
    cli.add("r1", &bmc.url(), &bmc.fingerprint()).await;

    let output = cli.run(&["health", "r1", "--fail-on", "warning"]).await;

    assert_code(&output, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_all_reports_each_server_and_failures() {
    let first = embedded_bmc(&[]).await;
    let second = embedded_bmc(&[]).await;
    let cli = Cli::new();
    cli.add("a", &first.url(), &first.fingerprint()).await;
    cli.add("b", &second.url(), &second.fingerprint()).await;
    cli.add("c", &second.url(), &second.fingerprint()).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("https://{}", listener.local_addr().unwrap());
    drop(listener);
    cli.set_url("c", &closed);

    let output = cli.run(&["health", "--all", "--json"]).await;

    assert_code(&output, 1);
    let outcomes = json(&output);
    let servers: Vec<&str> = outcomes
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["server"].as_str().unwrap())
        .collect();
    assert_eq!(servers, ["a", "b", "c"]);
    assert!(outcomes[0]["report"].is_object());
    assert!(outcomes[1]["report"].is_object());
    assert!(outcomes[2]["error"]
        .as_str()
        .unwrap()
        .contains("failed to reach"));
    assert!(
        stderr(&output).contains("rackside: 1 of 3 servers failed: c"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_covers_every_component_kind() {
    let bmc = embedded_bmc(&[]).await;
    let cli = Cli::new();
    cli.add("r1", &bmc.url(), &bmc.fingerprint()).await;

    let output = cli.run(&["inventory", "r1", "--json"]).await;

    assert_success(&output);
    let inventory = json(&output);
    let system = &inventory["systems"][0];
    assert_eq!(system["processors"].as_array().unwrap().len(), 2);
    for kind in [
        "memory",
        "storage",
        "network_adapters",
        "power_supplies",
        "fans",
        "firmware",
    ] {
        let count = system[kind].as_array().map_or(0, Vec::len);
        assert!(count > 0, "no {kind} in {system}");
    }
    let drives: usize = system["storage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|storage| storage["drives"].as_array().map_or(0, Vec::len))
        .sum();
    assert!(drives > 0, "no drives in {system}");
    let table = cli.run(&["inventory", "r1"]).await;
    assert_success(&table);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_page_newest_first_without_repeats() {
    let bmc = embedded_bmc(&[Fault::LogShiftsWhilePaging]).await;
    let cli = Cli::new();
    cli.add("r1", &bmc.url(), &bmc.fingerprint()).await;

    let output = cli.run(&["logs", "r1", "--limit", "180", "--json"]).await;

    assert_success(&output);
    let records = json(&output);
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 180);
    let mut seen = HashSet::new();
    for record in records {
        let key = (record["log"].to_string(), record["id"].to_string());
        assert!(seen.insert(key), "entry shown twice: {record}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_filter_by_severity_and_time() {
    let bmc = embedded_bmc(&[]).await;
    let cli = Cli::new();
    cli.add("r1", &bmc.url(), &bmc.fingerprint()).await;

    let output = cli
        .run(&["logs", "r1", "--severity", "critical", "--json"])
        .await;
    assert_success(&output);
    let records = json(&output);
    assert!(!records.as_array().unwrap().is_empty());
    assert!(records
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["severity"] == "Critical"));

    let future = cli
        .run(&["logs", "r1", "--since", "2999-01-01", "--json"])
        .await;
    assert_success(&future);
    assert!(json(&future).as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_is_logged_and_session_deleted() {
    let bmc = embedded_bmc(&[]).await;
    let cli = Cli::new();
    cli.add("r1", &bmc.url(), &bmc.fingerprint()).await;

    for _ in 0..3 {
        assert_success(&cli.run(&["health", "r1"]).await);
    }
    let output = cli.run(&["logs", "r1", "--limit", "10", "--json"]).await;

    assert_success(&output);
    let messages: Vec<String> = json(&output)
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["message"].as_str().unwrap_or("").to_owned())
        .collect();
    let logins = messages.iter().filter(|m| m.contains("logged in")).count();
    assert!(logins >= 3, "{messages:?}");
    assert!(
        messages.iter().any(|m| m.contains("127.0.0.1")),
        "{messages:?}"
    );
    assert_eq!(bmc.open_sessions().await, 0, "a session was left open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_log_hides_password_and_token() {
    let bmc = embedded_bmc(&[]).await;
    let cli = Cli::new();
    cli.add("r1", &bmc.url(), &bmc.fingerprint()).await;

    let output = cli.run(&["-vv", "health", "r1"]).await;

    assert_success(&output);
    let log = stderr(&output);
    assert!(log.contains("TRACE"), "-vv logged no trace lines: {log}");
    assert!(!log.contains(PASSWORD), "the password is in the log");
    // Session tokens of the simulator are 64 lowercase hex digits; the log may name the
    // certificate's SHA-256, so that one is allowed.
    let fingerprint = bmc.fingerprint().replace(':', "").to_lowercase();
    let tokens = hex_runs(&log, 64);
    assert!(
        tokens.iter().all(|run| *run == fingerprint),
        "a 64-digit hex value that may be the session token is in the log: {tokens:?}"
    );
}

/// Every run of exactly `len` lowercase hex digits in `text`.
fn hex_runs(text: &str, len: usize) -> Vec<String> {
    text.split(|c: char| !matches!(c, '0'..='9' | 'a'..='f'))
        .filter(|run| run.len() == len)
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Bad input

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_not_reported_as_certain() {
    let bmc = embedded_bmc(&[]).await;
    let cli = Cli::new();
    cli.add("r1", &bmc.url(), &bmc.fingerprint()).await;

    let output = cli
        .run_with(&["health", "r1"], &[("RACKSIDE_PASSWORD", "not it")])
        .await;

    assert_code(&output, 5);
    let message = stderr(&output);
    assert!(message.contains("role"), "{message}");
    assert!(!message.contains("wrong password"), "{message}");
    assert!(!message.contains("not it"), "password leaked: {message}");
    assert_eq!(message.trim().lines().count(), 1, "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_url_exits_2() {
    let cli = Cli::new();
    for url in [
        "https://[::1",
        "http://192.0.2.1",
        "https://root:pw@192.0.2.1",
        "https://",
    ] {
        let output = cli.run(&["server", "add", "r1", url]).await;
        assert_code(&output, 2);
        assert_eq!(
            stderr(&output).trim().lines().count(),
            1,
            "{}",
            stderr(&output)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_host_exits_6() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    drop(listener);
    let cli = Cli::new();

    let output = cli.run(&["server", "add", "r1", &url]).await;

    assert_code(&output, 6);
    assert!(
        stderr(&output).contains("failed to reach"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_server_name_exits_2() {
    let cli = Cli::new();
    let output = cli.run(&["health", "nosuch"]).await;
    assert_code(&output, 2);
    assert!(
        stderr(&output).contains("server list"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_password_without_terminal_exits_2() {
    let bmc = embedded_bmc(&[]).await;
    let cli = Cli::new();
    cli.add("r1", &bmc.url(), &bmc.fingerprint()).await;

    let output = cli.run_with(&["health", "r1"], &[]).await;

    assert_code(&output, 2);
    assert!(
        stderr(&output).contains("RACKSIDE_PASSWORD"),
        "{}",
        stderr(&output)
    );
}

// ---------------------------------------------------------------------------------------------
// Real BMC behaviour, one simulator switch each

async fn run_reads_with(fault: Fault) -> (Cli, Bmc) {
    let bmc = embedded_bmc(&[fault]).await;
    let cli = Cli::new();
    cli.add("r1", &bmc.url(), &bmc.fingerprint()).await;
    for args in [
        &["health", "r1", "--json"][..],
        &["inventory", "r1", "--json"][..],
        &["logs", "r1", "--limit", "60", "--json"][..],
    ] {
        let output = cli.run(args).await;
        assert_success(&output);
    }
    (cli, bmc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_cope_with_weak_and_numeric_etags() {
    run_reads_with(Fault::WeakEtag).await;
    run_reads_with(Fault::NumericEtag).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_cope_with_malformed_dates() {
    run_reads_with(Fault::MalformedDates).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_cope_with_wrong_container_types() {
    run_reads_with(Fault::WrongContainerTypes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_retry_transient_errors() {
    run_reads_with(Fault::TransientErrors).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_uses_old_session_uri_from_service_root() {
    run_reads_with(Fault::OldSessionUri).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_send_only_standard_headers() {
    run_reads_with(Fault::RejectUnusualHeaders).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_login_works_with_basic_auth_disabled() {
    run_reads_with(Fault::BasicAuthDisabled).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_reads_legacy_indicator_led() {
    run_reads_with(Fault::LegacyIndicatorLed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_exhaustion_tells_user_what_to_do() {
    let bmc = embedded_bmc(&[Fault::SessionExhaustion]).await;
    let cli = Cli::new();
    cli.add("r1", &bmc.url(), &bmc.fingerprint()).await;

    let output = cli.run(&["health", "r1"]).await;

    assert_code(&output, 8);
    let message = stderr(&output);
    assert!(message.contains("session"), "{message}");
    assert_eq!(message.trim().lines().count(), 1, "{message}");
}

// ---------------------------------------------------------------------------------------------
// Real data: every shared mockup, and an independent server

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shared_mockup_reads_cleanly() {
    let Some(data) = test_data() else { return };
    let mockups = data.join("redfish/mockups");
    let folders = [
        "dmtf/public-rackmount1",
        "dmtf/public-tower",
        "dmtf/public-bladed",
        "dmtf/public-localstorage",
        "vendor-captures/dell",
        "vendor-captures/hpe",
        "vendor-captures/lenovo",
    ];
    for folder in folders {
        let bmc = start_bmc(
            DataSource::Mockup(mockups.join(folder)),
            TlsSource::Generated,
            &[],
        )
        .await;
        let cli = Cli::new();
        cli.add("m", &bmc.url(), &bmc.fingerprint()).await;
        for args in [
            &["health", "m", "--json"][..],
            &["inventory", "m", "--json"][..],
            &["logs", "m", "--json"][..],
        ] {
            let output = cli.run(args).await;
            assert_eq!(
                output.status.code(),
                Some(0),
                "{folder} {args:?}: {}",
                stderr(&output)
            );
        }
        if folder == "dmtf/public-rackmount1" {
            // This service has only SimpleStorage and the system's own Ethernet interfaces.
            let output = cli.run(&["inventory", "m", "--json"]).await;
            let system = &json(&output)["systems"][0];
            let drives = system["storage"][0]["drives"]
                .as_array()
                .map_or(0, Vec::len);
            assert!(drives > 0, "SimpleStorage devices missing: {system}");
            let interfaces = system["ethernet_interfaces"].as_array().map_or(0, Vec::len);
            assert!(interfaces > 0, "Ethernet interfaces missing: {system}");
        }
        if folder == "vendor-captures/dell" {
            let output = cli.run(&["inventory", "m", "--json"]).await;
            assert!(
                stdout(&output).contains("TSTAG01"),
                "service tag missing for {folder}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sushy_emulator_reads_over_basic_auth() {
    let Some(venv) = venv() else { return };
    let files = tempfile::tempdir().unwrap();
    let key = KeyPair::generate().unwrap();
    let TlsSource::Files {
        cert,
        key: key_file,
    } = write_cert(files.path(), "sushy", &key, leaf_params("127.0.0.1"), None)
    else {
        unreachable!()
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut sushy = tokio::process::Command::new(venv.join("bin/sushy-emulator"))
        .args(["--fake", "-i", "127.0.0.1", "-p", &port.to_string()])
        .arg("--ssl-certificate")
        .arg(&cert)
        .arg("--ssl-key")
        .arg(&key_file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("https://127.0.0.1:{port}");
    wait_for_port(port).await;
    let fingerprint = {
        use sha2::Digest;
        let pem = std::fs::read(&cert).unwrap();
        let der = rustls_pemfile_der(&pem);
        sha2::Sha256::digest(&der)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    let cli = Cli::new();
    cli.add("sushy", &url, &fingerprint).await;

    let health = cli.run(&["health", "sushy", "--json"]).await;
    assert_success(&health);
    assert!(!json(&health)[0]["report"]["systems"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_success(&cli.run(&["inventory", "sushy", "--json"]).await);
    sushy.kill().await.ok();
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn leaf_params(name: &str) -> CertificateParams {
    CertificateParams::new(vec![name.to_owned()]).unwrap()
}

/// Signs `params` (self-signed, or by `issuer`) and writes PEM files for the BMC.
fn write_cert(
    dir: &Path,
    stem: &str,
    key: &KeyPair,
    params: CertificateParams,
    issuer: Option<(&rcgen::Certificate, &KeyPair)>,
) -> TlsSource {
    let cert = match issuer {
        Some((ca, ca_key)) => params.signed_by(key, ca, ca_key).unwrap(),
        None => params.self_signed(key).unwrap(),
    };
    let cert_path = dir.join(format!("{stem}-cert.pem"));
    let key_path = dir.join(format!("{stem}-key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    TlsSource::Files {
        cert: cert_path,
        key: key_path,
    }
}

/// A CA (written as PEM, path returned) and a BMC certificate it signed for `name`.
fn ca_signed(dir: &Path, name: &str) -> (String, TlsSource) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "rackside test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let tls = write_cert(
        dir,
        "leaf",
        &leaf_key,
        leaf_params(name),
        Some((&ca, &ca_key)),
    );
    (ca_path.to_string_lossy().into_owned(), tls)
}

/// The DER bytes of the first certificate in a PEM file.
fn rustls_pemfile_der(pem: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let text = std::str::from_utf8(pem).unwrap();
    let body: String = text
        .lines()
        .skip_while(|line| !line.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|line| !line.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

async fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("nothing listened on port {port} within 20 s");
}

// ---------------------------------------------------------------------------------------------
// Prompts in a terminal (a pseudo-terminal from util-linux `script`)

/// Runs `rackside ARGS` inside a pseudo-terminal, typing `input`.
async fn run_in_terminal(cli: &Cli, args: &[&str], input: &str) -> std::process::Output {
    use tokio::io::AsyncWriteExt;
    let command_line = std::iter::once(env!("CARGO_BIN_EXE_rackside"))
        .chain(args.iter().copied())
        .map(|word| format!("'{}'", word.replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = tokio::process::Command::new("script")
        .args(["-qec", &command_line, "/dev/null"])
        .envs(cli.isolation())
        .env_remove("RACKSIDE_PASSWORD")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The prompt appears only after the handshake; typed input waits in the terminal buffer.
    stdin.write_all(input.as_bytes()).await.unwrap();
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("rackside in a terminal did not finish within 60 s")
        .unwrap();
    drop(stdin);
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_user_accepts_certificate_with_yes() {
    let bmc = embedded_bmc(&[]).await;
    let cli = Cli::new();

    let output = run_in_terminal(&cli, &["server", "add", "r1", &bmc.url()], "yes\n").await;

    let shown = stdout(&output);
    assert!(shown.contains("Trust this certificate"), "{shown}");
    assert!(shown.contains(&bmc.fingerprint()), "{shown}");
    assert_success(&output);
    assert_eq!(
        cli.servers()["r1"]["pin"]["certificate_sha256"],
        bmc.fingerprint()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_user_rejects_certificate_and_nothing_is_sent() {
    let bmc = embedded_bmc(&[]).await;
    let cli = Cli::new();

    let output = run_in_terminal(&cli, &["server", "add", "r1", &bmc.url()], "no\n").await;

    assert_code(&output, 3);
    assert!(stdout(&output).contains("rejected"), "{}", stdout(&output));
    assert_eq!(bmc.running.stats().application_bytes_received, 0);
    assert_eq!(cli.servers(), serde_json::json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_output_pipe_ends_quietly() {
    let bmc = embedded_bmc(&[]).await;
    let cli = Cli::new();
    cli.add("r1", &bmc.url(), &bmc.fingerprint()).await;

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rackside"))
        .args(["inventory", "r1"])
        .envs(cli.isolation())
        .env("RACKSIDE_PASSWORD", PASSWORD)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before the command prints, as `| head -0` or `| true` would.
    drop(child.stdout.take());
    let output = child.wait_with_output().await.unwrap();

    assert_success(&output);
    assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_again_keeps_unchanged_pin_without_terminal() {
    let bmc = embedded_bmc(&[]).await;
    let cli = Cli::new();
    cli.add("r1", &bmc.url(), &bmc.fingerprint()).await;

    let output = cli.run(&["server", "trust", "r1"]).await;

    assert_success(&output);
    assert!(stderr(&output).contains("unchanged"), "{}", stderr(&output));
    assert_eq!(
        cli.servers()["r1"]["pin"]["certificate_sha256"],
        bmc.fingerprint()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_tells_the_story_and_writes_only_its_temp_folder() {
    // Home, XDG folders and TMPDIR all point into `root`. RACKSIDE_KEYSTORE=file makes any use
    // of the user's key store show up as a file under the fake home.
    let root = tempfile::tempdir().unwrap();
    let home = root.path().join("home");
    let tmp = root.path().join("tmp");
    let runtime = root.path().join("runtime");
    for dir in [&home, &tmp, &runtime] {
        std::fs::create_dir(dir).unwrap();
    }
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_rackside"));
    command
        .arg("demo")
        .env_remove("RACKSIDE_CONFIG_DIR")
        .env_remove("RACKSIDE_AGENT_SOCKET")
        .env_remove("RACKSIDE_PASSWORD")
        .env_remove("RACKSIDE_VAULT_PASSWORD")
        .env_remove("RACKSIDE_LOG")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env("RACKSIDE_KEYSTORE", "file")
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("XDG_STATE_HOME", home.join(".local/state"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("TMPDIR", &tmp)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);

    let output = tokio::time::timeout(std::time::Duration::from_secs(120), command.output())
        .await
        .expect("rackside demo did not finish within 120 s")
        .unwrap();

    assert_success(&output);
    let shown = stdout(&output);
    for step in [
        "yellow",
        "SHA-256 cert",
        "matches",
        "ROLLUP",
        "Processors",
        "logged in",
        "session deleted",
    ] {
        assert!(shown.contains(step), "demo output lacks {step:?}:\n{shown}");
    }
    assert!(
        !stderr(&output).contains("created a vault"),
        "{}",
        stderr(&output)
    );
    for dir in [&home, &tmp, &runtime] {
        let left = entries_under(dir);
        assert!(left.is_empty(), "demo left {left:?} in {}", dir.display());
    }
}

/// Lists every file and folder under `dir`, recursively.
fn entries_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path.clone());
            }
            found.push(path);
        }
    }
    found
}

// ---------------------------------------------------------------------------------------------
// Service settings

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_service_settings_exit_2() {
    let cli = Cli::new();
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap();

    let bad_name = cli
        .run(&["relay", "key", "--state-dir", state_dir, "add", "bad name"])
        .await;
    assert_code(&bad_name, 2);
    assert!(
        stderr(&bad_name).contains("bad name"),
        "{}",
        stderr(&bad_name)
    );

    let bad_subject = cli
        .run(&[
            "relay",
            "serve",
            "--state-dir",
            state_dir,
            "--listen",
            "127.0.0.1:0",
            "--vapid-subject",
            "ops@example.com",
        ])
        .await;
    assert_code(&bad_subject, 2);
    assert!(
        stderr(&bad_subject).contains("mailto:"),
        "{}",
        stderr(&bad_subject)
    );

    let password_file = state.path().join("password");
    std::fs::write(&password_file, "short\n").unwrap();
    let short_password = cli
        .run(&[
            "console",
            "serve",
            "--state-dir",
            state.path().join("console").to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--user",
            "ops",
            "--password-file",
            password_file.to_str().unwrap(),
        ])
        .await;
    assert_code(&short_password, 2);
    assert!(
        stderr(&short_password).contains("12 characters"),
        "{}",
        stderr(&short_password)
    );

    std::fs::write(&password_file, "long enough console password\n").unwrap();
    let key_file = state.path().join("relay-key");
    std::fs::write(&key_file, "key\n").unwrap();
    let plain_relay = cli
        .run(&[
            "console",
            "serve",
            "--state-dir",
            state.path().join("console").to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--user",
            "ops",
            "--password-file",
            password_file.to_str().unwrap(),
            "--relay-url",
            "http://127.0.0.1:9/",
            "--relay-console-name",
            "console1",
            "--relay-api-key-file",
            key_file.to_str().unwrap(),
        ])
        .await;
    assert_code(&plain_relay, 2);
    assert!(
        stderr(&plain_relay).contains("https://"),
        "{}",
        stderr(&plain_relay)
    );
}
