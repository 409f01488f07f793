//! Provisioning and control end to end: the real binary against the BMC simulator started in
//! this process (every fault that touches writes), against sushy-emulator, against a capture
//! of the simulator served again, and over a fleet of 50 simulated BMCs.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::path::Path;

use rackside_bmc::{DataSource, Fault, TlsSource};
use support::*;

/// Starts the embedded BMC with `faults` and adds it to a new client config as `r1`.
async fn setup(faults: &[Fault]) -> (Cli, Bmc) {
    let bmc = embedded_bmc(faults).await;
    let cli = Cli::new();
    cli.add("r1", &bmc.url(), &bmc.fingerprint()).await;
    (cli, bmc)
}

// ---------------------------------------------------------------------------------------------
// Power

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_off_then_on_reaches_each_state() {
    let (cli, _bmc) = setup(&[]).await;

    let off = cli.run(&["power", "r1", "off", "--yes", "--json"]).await;
    assert_success(&off);
    assert_eq!(json(&off)[0]["result"]["data"]["power_state"], "Off");
    assert_eq!(
        json(&off)[0]["result"]["data"]["sent"][0],
        "GracefulShutdown"
    );

    let on = cli.run(&["power", "r1", "on", "--json"]).await;
    assert_success(&on);
    assert_eq!(json(&on)[0]["result"]["data"]["power_state"], "On");
    let seen = json(&on)[0]["result"]["data"]["seen"].to_string();
    assert!(seen.contains("PoweringOn"), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_off_without_yes_or_terminal_exits_2() {
    let (cli, bmc) = setup(&[]).await;
    let output = cli.run(&["power", "r1", "off"]).await;
    assert_code(&output, 2);
    assert!(stderr(&output).contains("--yes"), "{}", stderr(&output));
    let system = power_state(&bmc).await;
    assert_eq!(
        system, "On",
        "the server was powered off without confirmation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_restart_not_offered_names_allowed_types() {
    let (cli, _bmc) = setup(&[Fault::StrictResetTypes]).await;
    let output = cli.run(&["power", "r1", "restart", "--yes"]).await;
    assert_code(&output, 2);
    let text = stderr(&output);
    assert!(text.contains("not applied"), "{text}");
    assert!(text.contains("ForceRestart"), "{text}");
    assert!(text.contains("--force"), "{text}");

    let forced = cli
        .run(&["power", "r1", "restart", "--yes", "--force", "--json"])
        .await;
    assert_success(&forced);
    assert_eq!(
        json(&forced)[0]["result"]["data"]["sent"][0],
        "ForceRestart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_off_waits_through_delayed_power_state() {
    let (cli, _bmc) = setup(&[Fault::DelayedPowerState, Fault::IfMatchOnAction412]).await;
    let output = cli
        .run(&["power", "r1", "off", "--yes", "--timeout", "30s", "--json"])
        .await;
    assert_success(&output);
    let data = &json(&output)[0]["result"]["data"];
    assert_eq!(data["power_state"], "Off");
    assert_eq!(data["seen"][0]["state"], "On", "{data}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_restart_unseen_is_reported_unknown() {
    // With no power delay, a restart ends before any read, so PowerState never leaves On.
    let state = tempfile::tempdir().unwrap();
    let mut config = config(state.path());
    config.power_delay = std::time::Duration::ZERO;
    config.faults.insert(Fault::DelayedPowerState);
    let running = rackside_bmc::start(config).await.unwrap();
    let bmc = Bmc { running, state };
    let cli = Cli::new();
    cli.add("r1", &bmc.url(), &bmc.fingerprint()).await;

    let output = cli
        .run(&["power", "r1", "restart", "--yes", "--timeout", "3s"])
        .await;
    assert_code(&output, 8);
    let text = stderr(&output);
    assert!(text.contains("result unknown"), "{text}");
    assert!(text.contains("stayed On"), "{text}");
}

async fn power_state(bmc: &Bmc) -> String {
    let body = get_json(bmc, "/redfish/v1/Systems").await;
    let system = body["Members"][0]["@odata.id"].as_str().unwrap().to_owned();
    get_json(bmc, &system).await["PowerState"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Reads a resource with Basic authentication, outside the code under test.
async fn get_json(bmc: &Bmc, path: &str) -> serde_json::Value {
    // Test-only client on loopback: the certificate was checked by the code under test.
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let bytes = client
        .get(format!("{}{path}", bmc.url()))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Identify, boot, location

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identify_on_then_off_is_read_back() {
    let (cli, _bmc) = setup(&[Fault::WeakEtag]).await;
    let on = cli.run(&["identify", "r1", "on", "--json"]).await;
    assert_success(&on);
    assert_eq!(json(&on)[0]["result"]["data"]["read_back"], "On");
    let off = cli.run(&["identify", "r1", "off", "--json"]).await;
    assert_success(&off);
    assert_eq!(json(&off)[0]["result"]["data"]["read_back"], "Off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identify_blink_with_legacy_led_turns_off() {
    let (legacy, _bmc) = setup(&[Fault::LegacyIndicatorLed]).await;
    let blink = legacy
        .run(&["identify", "r1", "blink", "--for", "1s", "--json"])
        .await;
    assert_success(&blink);
    assert_eq!(json(&blink)[0]["result"]["data"]["read_back"], "Off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_once_reverts_after_reset() {
    let (cli, _bmc) = setup(&[Fault::BootOverrideOnce, Fault::NumericEtag]).await;
    let set = cli
        .run(&["boot", "r1", "set", "pxe", "--once", "--json"])
        .await;
    assert_success(&set);
    let data = &json(&set)[0]["result"]["data"];
    assert_eq!(data["target"], "Pxe");
    assert_eq!(data["enabled"], "Once");

    assert_success(&cli.run(&["power", "r1", "restart", "--yes"]).await);
    let show = cli.run(&["boot", "r1", "show", "--json"]).await;
    assert_success(&show);
    assert_eq!(json(&show)[0]["result"]["data"]["enabled"], "Disabled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_unknown_target_lists_allowed_values() {
    let (cli, _bmc) = setup(&[]).await;
    let output = cli.run(&["boot", "r1", "set", "Floppy9"]).await;
    assert_code(&output, 2);
    let text = stderr(&output);
    assert!(text.contains("Floppy9"), "{text}");
    assert!(text.contains("Pxe"), "{text}");
    assert!(text.contains("not applied"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn location_set_keeps_other_fields() {
    let (cli, _bmc) = setup(&[]).await;
    let first = cli
        .run(&[
            "location",
            "r1",
            "set",
            "--datacenter",
            "DC1",
            "--rack",
            "R7",
            "--slot",
            "12",
        ])
        .await;
    assert_success(&first);
    assert_success(
        &cli.run(&["location", "r1", "set", "--room", "Hall B"])
            .await,
    );

    let show = cli.run(&["location", "r1", "show", "--json"]).await;
    assert_success(&show);
    let location = &json(&show)[0]["result"]["data"]["location"];
    assert_eq!(location["datacenter"], "DC1");
    assert_eq!(location["room"], "Hall B");
    assert_eq!(location["rack"], "R7");
    assert_eq!(location["slot"], 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn location_on_dell_writes_info_string() {
    let Some(data) = test_data() else { return };
    let source = data.join("redfish/mockups/vendor-captures/dell");
    let bmc = start_bmc(DataSource::Mockup(source), TlsSource::Generated, &[]).await;
    let cli = Cli::new();
    cli.add("d1", &bmc.url(), &bmc.fingerprint()).await;

    let set = cli
        .run(&[
            "location",
            "d1",
            "set",
            "--datacenter",
            "DC2",
            "--aisle",
            "A4",
            "--slot",
            "9",
        ])
        .await;
    assert_success(&set);
    let show = cli.run(&["location", "d1", "show", "--json"]).await;
    assert_success(&show);
    let report = &json(&show)[0]["result"]["data"];
    assert_eq!(report["dell_info"], true);
    assert_eq!(report["location"]["datacenter"], "DC2");
    assert_eq!(report["location"]["aisle"], "A4");
    assert_eq!(report["location"]["slot"], 9);

    let chassis = get_json(&bmc, report["chassis"].as_str().unwrap()).await;
    assert_eq!(chassis["Location"]["Info"], "DC2;;A4;;9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn location_bad_slot_exits_2_before_connecting() {
    let cli = Cli::new();
    let output = cli
        .run(&["location", "nowhere", "set", "--slot", "0"])
        .await;
    assert_code(&output, 2);
    assert!(stderr(&output).contains("rack slot"), "{}", stderr(&output));
}

// ---------------------------------------------------------------------------------------------
// Network

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_set_dns_vlan_and_host_name() {
    let (cli, _bmc) = setup(&[]).await;
    let output = cli
        .run(&[
            "network",
            "r1",
            "set",
            "--dns",
            "192.0.2.53,198.51.100.53",
            "--vlan",
            "42",
            "--hostname",
            "rack7-bmc",
            "--yes",
        ])
        .await;
    assert_success(&output);

    let show = cli.run(&["network", "r1", "show", "--json"]).await;
    assert_success(&show);
    let nic = &json(&show)[0]["result"]["data"][0];
    assert_eq!(nic["host_name"], "rack7-bmc");
    assert_eq!(nic["vlan_id"], 42);
    assert_eq!(nic["vlan_enabled"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_static_address_is_applied() {
    let (cli, _bmc) = setup(&[]).await;
    let output = cli
        .run(&[
            "network",
            "r1",
            "set",
            "--address",
            "192.0.2.77/24",
            "--gateway",
            "192.0.2.1",
        ])
        .await;
    assert_success(&output);
    let show = cli.run(&["network", "r1", "show", "--json"]).await;
    let nic = json(&show)[0]["result"]["data"][0].to_string();
    assert!(nic.contains("192.0.2.77"), "{nic}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_static_address_on_group_exits_2() {
    let cli = Cli::new();
    let output = cli
        .run(&[
            "network",
            "--all",
            "set",
            "--address",
            "192.0.2.10/24",
            "--gateway",
            "192.0.2.1",
        ])
        .await;
    assert_code(&output, 2);
    assert!(
        stderr(&output).contains("server NAME"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_invalid_values_exit_2() {
    let cli = Cli::new();
    for (args, expected) in [
        (&["--vlan", "4095"][..], "VLAN id"),
        (
            &["--address", "192.0.2.10/24", "--gateway", "198.51.100.1"][..],
            "gateway",
        ),
        (&["--hostname", "bad_name"][..], "host name"),
        (&["--dns", "192.0.2.999"][..], "DNS server"),
    ] {
        let mut command = vec!["network", "r1", "set"];
        command.extend_from_slice(args);
        let output = cli.run(&command).await;
        assert_code(&output, 2);
        assert!(
            stderr(&output).contains(expected),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Accounts

const NEW_PASSWORD: &str = "violet kettle marching 42 orbit";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_added_user_can_log_in() {
    let (cli, bmc) = setup(&[Fault::NumericEtag]).await;
    let add = run_with_stdin(
        &cli,
        &[
            "account",
            "r1",
            "add",
            "operator1",
            "--role",
            "operator",
            "--new-password-stdin",
        ],
        NEW_PASSWORD,
    )
    .await;
    assert_success(&add);

    let list = cli.run(&["account", "r1", "list", "--json"]).await;
    assert_success(&list);
    let accounts = json(&list)[0]["result"]["data"].to_string();
    assert!(accounts.contains("operator1"), "{accounts}");
    assert!(accounts.contains("Operator"), "{accounts}");

    let other = Cli::new();
    let added = other
        .run_with(
            &[
                "server",
                "add",
                "r1",
                &bmc.url(),
                "--user",
                "operator1",
                "--accept-fingerprint",
                &bmc.fingerprint(),
            ],
            &[("RACKSIDE_PASSWORD", NEW_PASSWORD)],
        )
        .await;
    assert_success(&added);
    let health = other
        .run_with(&["health", "r1"], &[("RACKSIDE_PASSWORD", NEW_PASSWORD)])
        .await;
    assert_success(&health);

    assert_success(&cli.run(&["account", "r1", "disable", "operator1"]).await);
    let denied = other
        .run_with(&["health", "r1"], &[("RACKSIDE_PASSWORD", NEW_PASSWORD)])
        .await;
    assert_code(&denied, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_weak_password_is_rejected_with_reason() {
    let cli = Cli::new();
    let output = run_with_stdin(
        &cli,
        &["account", "r1", "passwd", "admin", "--new-password-stdin"],
        "password1234",
    )
    .await;
    assert_code(&output, 2);
    let text = stderr(&output);
    assert!(text.contains("password"), "{text}");
    assert!(text.contains("nothing was sent"), "{text}");
    assert!(!text.contains("password1234"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_role_change_and_unknown_role() {
    let (cli, _bmc) = setup(&[Fault::WeakEtag]).await;
    let add = run_with_stdin(
        &cli,
        &[
            "account",
            "r1",
            "add",
            "viewer1",
            "--role",
            "ReadOnly",
            "--new-password-stdin",
        ],
        NEW_PASSWORD,
    )
    .await;
    assert_success(&add);
    let role = cli
        .run(&["account", "r1", "role", "viewer1", "Operator"])
        .await;
    assert_success(&role);
    assert!(stdout(&role).contains("Operator"), "{}", stdout(&role));

    let unknown = cli.run(&["account", "r1", "role", "viewer1", "Root"]).await;
    assert_code(&unknown, 2);
    let text = stderr(&unknown);
    assert!(text.contains("Administrator"), "{text}");
    assert!(text.contains("not applied"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_add_on_dell_fills_slot() {
    let Some(data) = test_data() else { return };
    let source = data.join("redfish/mockups/vendor-captures/dell");
    let bmc = start_bmc(DataSource::Mockup(source), TlsSource::Generated, &[]).await;
    let cli = Cli::new();
    cli.add("d1", &bmc.url(), &bmc.fingerprint()).await;

    let add = run_with_stdin(
        &cli,
        &[
            "account",
            "d1",
            "add",
            "ops2",
            "--role",
            "Operator",
            "--new-password-stdin",
            "--json",
        ],
        NEW_PASSWORD,
    )
    .await;
    assert_success(&add);
    // iDRAC has fixed account slots: the POST gets 405 and an empty slot is filled.
    assert_eq!(json(&add)[0]["result"]["data"]["used_slot"], true);
    let list = cli.run(&["account", "d1", "list", "--json"]).await;
    assert_success(&list);
    let accounts = json(&list)[0]["result"]["data"].to_string();
    assert!(accounts.contains("ops2"), "{accounts}");
}

async fn run_with_stdin(cli: &Cli, args: &[&str], input: &str) -> std::process::Output {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rackside"))
        .args(args)
        .envs(cli.isolation())
        .env("RACKSIDE_PASSWORD", PASSWORD)
        .env_remove("RACKSIDE_VAULT_PASSWORD")
        .env_remove("RACKSIDE_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{input}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    tokio::time::timeout(
        std::time::Duration::from_secs(120),
        child.wait_with_output(),
    )
    .await
    .unwrap()
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Every fault that touches writes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_cope_with_each_write_fault() {
    for fault in [
        Fault::IfMatchOnAction412,
        Fault::WeakEtag,
        Fault::NumericEtag,
        Fault::VanishingTaskMonitor,
        Fault::StrictResetTypes,
        Fault::TransientErrors,
        Fault::RejectUnusualHeaders,
        Fault::LegacyIndicatorLed,
        Fault::BootOverrideOnce,
        Fault::DelayedPowerState,
        Fault::OldSessionUri,
        Fault::BasicAuthDisabled,
    ] {
        let (cli, _bmc) = setup(&[fault]).await;
        for args in [
            &["power", "r1", "off", "--yes", "--force", "--timeout", "30s"][..],
            &["power", "r1", "on", "--timeout", "30s"][..],
            &["identify", "r1", "on"][..],
            &["boot", "r1", "set", "Pxe", "--once"][..],
            &["location", "r1", "set", "--rack", "R9"][..],
            &["network", "r1", "set", "--hostname", "fault-test"][..],
        ] {
            let output = cli.run(args).await;
            assert_eq!(
                output.status.code(),
                Some(0),
                "{} with {args:?}\nstdout:\n{}\nstderr:\n{}",
                fault.name(),
                stdout(&output),
                stderr(&output)
            );
        }

        let add = run_with_stdin(
            &cli,
            &[
                "account",
                "r1",
                "add",
                "faulty",
                "--role",
                "Operator",
                "--new-password-stdin",
            ],
            NEW_PASSWORD,
        )
        .await;
        assert_eq!(
            add.status.code(),
            Some(0),
            "{}: {}",
            fault.name(),
            stderr(&add)
        );
        let role = cli
            .run(&["account", "r1", "role", "faulty", "ReadOnly"])
            .await;
        assert_eq!(
            role.status.code(),
            Some(0),
            "{}: {}",
            fault.name(),
            stderr(&role)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_exhaustion_reports_not_applied() {
    let (cli, _bmc) = setup(&[Fault::SessionExhaustion]).await;
    let output = cli.run(&["identify", "r1", "on"]).await;
    assert_code(&output, 8);
    let text = stderr(&output);
    assert!(text.contains("not applied"), "{text}");
    assert!(text.contains("sessions"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Capture and diag

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_served_again_passes_health_and_inventory() {
    let (cli, _bmc) = setup(&[]).await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("mockup");
    let capture = cli
        .run(&["capture", "r1", dir.to_str().unwrap(), "--json"])
        .await;
    assert_success(&capture);
    assert!(dir.join("redfish/v1/index.json").is_file());
    assert!(dir.join("redfish/v1/$metadata/index.xml").is_file());
    assert!(!dir
        .join("redfish/v1/Systems")
        .read_dir()
        .unwrap()
        .any(|entry| entry
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("Actions")));

    let served = start_bmc(DataSource::Mockup(dir), TlsSource::Generated, &[]).await;
    let again = Cli::new();
    again
        .add("copy", &served.url(), &served.fingerprint())
        .await;
    let health = again.run(&["health", "copy", "--json"]).await;
    assert_success(&health);
    assert!(!json(&health)[0]["report"]["systems"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_success(&again.run(&["inventory", "copy", "--json"]).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_capture_leaves_no_password_hashes_or_keys() {
    let Some(data) = test_data() else { return };
    for vendor in ["dell", "hpe", "lenovo"] {
        let source = data.join("redfish/mockups/vendor-captures").join(vendor);
        let secrets = secret_values(&source);
        let served = start_bmc(DataSource::Mockup(source), TlsSource::Generated, &[]).await;
        let cli = Cli::new();
        cli.add("v", &served.url(), &served.fingerprint()).await;
        let out = tempfile::tempdir().unwrap();
        let dir = out.path().join(vendor);
        let capture = cli.run(&["capture", "v", dir.to_str().unwrap()]).await;
        assert_success(&capture);

        let written = read_tree(&dir);
        assert!(written.len() > 1000, "{vendor}: capture too small");
        for secret in &secrets {
            assert!(
                !written.contains(secret.as_str()),
                "{vendor}: secret value {secret} left in the capture"
            );
        }
        if vendor == "dell" {
            assert!(!written.contains("TSTAG01"), "dell: service tag left");
        }
    }
}

/// Collects the values of secret-named properties under `dir` that look like hashes or keys:
/// at least 8 characters with a digit, so setting words such as "Disabled" are left out.
fn secret_values(dir: &Path) -> Vec<String> {
    fn walk(value: &serde_json::Value, key: Option<&str>, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(object) => {
                for (name, child) in object {
                    walk(child, Some(name), out);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, key, out)),
            serde_json::Value::String(text)
                if text.len() >= 8
                    && text.chars().any(|c| c.is_ascii_digit())
                    && key.is_some_and(rackside_redfish::is_secret_name) =>
            {
                out.push(text.clone());
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for file in files_under(dir) {
        if file.extension().is_some_and(|ext| ext == "json") {
            if let Ok(value) = serde_json::from_slice(&std::fs::read(&file).unwrap()) {
                walk(&value, None, &mut out);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

fn read_tree(dir: &Path) -> String {
    files_under(dir)
        .iter()
        .map(|file| String::from_utf8_lossy(&std::fs::read(file).unwrap()).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diag_bundle_holds_every_part() {
    let (cli, _bmc) = setup(&[]).await;
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("r1.tar.gz");
    let output = cli.run(&["diag", "r1", file.to_str().unwrap()]).await;
    assert_success(&output);

    let listing = std::process::Command::new("tar")
        .arg("-tzf")
        .arg(&file)
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&listing.stdout).into_owned();
    for part in [
        "manifest.json",
        "health.json",
        "logs.json",
        "inventory/firmware.json",
        "capture/redfish/v1/index.json",
    ] {
        assert!(
            names.lines().any(|line| line == part),
            "{part} missing:\n{names}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Fleet runs

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_of_50_lists_failures_and_exits_1() {
    let cli = Cli::new();
    let mut bmcs = Vec::new();
    for index in 0..50 {
        let bmc = embedded_bmc(&[]).await;
        let name = format!("n{index:02}");
        let output = cli
            .run(&[
                "server",
                "add",
                &name,
                &bmc.url(),
                "--user",
                USER,
                "--group",
                "rack1",
                "--accept-fingerprint",
                &bmc.fingerprint(),
            ])
            .await;
        assert_success(&output);
        bmcs.push(bmc);
    }
    // Three servers go away and two reject every session login with 503 RAC0218.
    for bmc in bmcs.drain(45..48) {
        bmc.running.shutdown().await;
    }
    for bmc in &bmcs[..2] {
        bmc.running.faults().enable(Fault::SessionExhaustion);
    }

    let output = cli
        .run(&[
            "identify",
            "--group",
            "rack1",
            "--concurrency",
            "16",
            "on",
            "--json",
        ])
        .await;
    assert_code(&output, 1);
    let outcomes = json(&output);
    let outcomes = outcomes.as_array().unwrap();
    assert_eq!(outcomes.len(), 50);
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|outcome| outcome.get("error").is_some())
        .map(|outcome| outcome["server"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["n00", "n01", "n45", "n46", "n47"]);
    assert!(
        stderr(&output).contains("servers failed"),
        "{}",
        stderr(&output)
    );

    let table = cli.run(&["identify", "--all", "off"]).await;
    assert_code(&table, 1);
    let text = stdout(&table);
    assert!(text.starts_with("SERVER"), "{text}");
    assert!(
        text.lines()
            .any(|line| line.starts_with("n45") && line.contains("failed")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|line| line.starts_with("n10") && line.contains("ok")),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// sushy-emulator

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sushy_power_and_boot_override() {
    let Some(venv) = venv() else { return };
    let files = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let cert_path = files.path().join("cert.pem");
    let key_path = files.path().join("key.pem");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut sushy = tokio::process::Command::new(venv.join("bin/sushy-emulator"))
        .args(["--fake", "-i", "127.0.0.1", "-p", &port.to_string()])
        .arg("--ssl-certificate")
        .arg(&cert_path)
        .arg("--ssl-key")
        .arg(&key_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let fingerprint = {
        use sha2::Digest;
        sha2::Sha256::digest(cert.der().as_ref())
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    let cli = Cli::new();
    cli.add("sushy", &format!("https://127.0.0.1:{port}"), &fingerprint)
        .await;

    let off = cli
        .run(&[
            "power",
            "sushy",
            "off",
            "--yes",
            "--force",
            "--timeout",
            "30s",
            "--json",
        ])
        .await;
    assert_success(&off);
    assert_eq!(json(&off)[0]["result"]["data"]["power_state"], "Off");
    let on = cli
        .run(&["power", "sushy", "on", "--timeout", "30s", "--json"])
        .await;
    assert_success(&on);
    assert_eq!(json(&on)[0]["result"]["data"]["power_state"], "On");

    let boot = cli
        .run(&["boot", "sushy", "set", "Pxe", "--continuous", "--json"])
        .await;
    assert_success(&boot);
    assert_eq!(json(&boot)[0]["result"]["data"]["target"], "Pxe");
    let bad = cli.run(&["boot", "sushy", "set", "Floppy9"]).await;
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("Floppy9"), "{}", stderr(&bad));
    sushy.kill().await.ok();
}
