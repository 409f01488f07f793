//! The CLI on top of the encrypted vault: migration of the plain server list, stored BMC
//! passwords, cached reports, unlock and lock, vault passwords, export and import.
//!
//! Every test runs the real binary in its own config folder with a file key store and agent
//! socket inside it (see `support::Cli`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use support::{assert_code, assert_success, embedded_bmc, stderr, stdout, Cli, PASSWORD, USER};

/// A vault password that passes the policy (length and zxcvbn score).
const VAULT_PASSWORD: &str = "lantern quarry velvet 4819 osprey";
/// An export passphrase that passes the policy.
const PASSPHRASE: &str = "copper meadow thistle 7702 harbor";

/// Runs `rackside ARGS` in `cli`'s folder with `input` on standard input and `env` added.
async fn run_input(cli: &Cli, args: &[&str], input: &str, env: &[(&str, &str)]) -> Output {
    use tokio::io::AsyncWriteExt;
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_rackside"));
    command
        .args(args)
        .envs(cli.isolation())
        .env_remove("RACKSIDE_PASSWORD")
        .env_remove("RACKSIDE_VAULT_PASSWORD")
        .env_remove("RACKSIDE_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("rackside did not finish within 120 s")
        .unwrap()
}

/// Locks (and so stops) the agent of a folder when a test ends, passed or not.
struct AgentGuard<'a>(&'a Cli);

impl Drop for AgentGuard<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new(env!("CARGO_BIN_EXE_rackside"))
            .arg("lock")
            .envs(self.0.isolation())
            .stdin(std::process::Stdio::null())
            .output();
    }
}

/// Lists every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// Lists the files under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<std::path::PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|path| {
            let bytes = std::fs::read(path).unwrap_or_default();
            bytes
                .windows(needle.len())
                .any(|window| window == needle.as_bytes())
        })
        .collect()
}

fn pin_json(seed: u8) -> serde_json::Value {
    let hex = |byte: u8| {
        std::iter::repeat_n(format!("{byte:02X}"), 32)
            .collect::<Vec<_>>()
            .join(":")
    };
    serde_json::json!({
        "certificate_sha256": hex(seed),
        "public_key_sha256": hex(seed.wrapping_add(1)),
        "accepted_at": "2026-12-01T08:00:00Z",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_server_list_moves_into_vault_once() {
    let cli = Cli::bare();
    let plain = serde_json::json!({
        "r1": {
            "url": "https://192.0.2.10/",
            "user": "root",
            "pin": pin_json(0xAA),
            "groups": ["rack1", "db"],
        },
        "r2": { "url": "https://192.0.2.11:8443/", "user": "admin", "pin": pin_json(0x10) },
    });
    let plain_bytes = serde_json::to_vec_pretty(&plain).unwrap();
    let legacy = cli.config.path().join("servers.json");
    std::fs::write(&legacy, &plain_bytes).unwrap();
    std::fs::write(cli.config.path().join("servers.lock"), b"").unwrap();

    let output = cli.run(&["server", "list", "--json"]).await;

    assert_success(&output);
    assert!(
        stderr(&output).contains("moved 2 server(s)"),
        "{}",
        stderr(&output)
    );
    assert!(!legacy.exists(), "servers.json was not deleted");
    assert!(!cli.config.path().join("servers.lock").exists());
    let listed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listed["r1"]["pin"], plain["r1"]["pin"]);
    assert_eq!(listed["r2"]["pin"], plain["r2"]["pin"]);
    assert_eq!(listed["r1"]["groups"], serde_json::json!(["rack1", "db"]));
    assert_eq!(listed["r2"]["user"], "admin");

    // A crash between the vault commit and the delete leaves the file: the next run moves the
    // same entries again without duplicating them.
    std::fs::write(&legacy, &plain_bytes).unwrap();
    let again = cli.run(&["server", "list", "--json"]).await;
    assert_success(&again);
    assert!(!legacy.exists());
    let vault = cli.open_vault();
    assert_eq!(vault.servers().unwrap().len(), 2);
    let table = cli.run(&["server", "list"]).await;
    assert!(stdout(&table).contains("rack1,db"), "{}", stdout(&table));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_command_creates_vault_and_says_so_once() {
    let cli = Cli::bare();

    let first = cli.run(&["server", "list"]).await;
    let second = cli.run(&["server", "list"]).await;

    assert_success(&first);
    assert!(
        stderr(&first).contains("created a vault without a password"),
        "{}",
        stderr(&first)
    );
    assert!(cli.vault_dir().join("vault.header").exists());
    assert_success(&second);
    assert!(!stderr(&second).contains("created"), "{}", stderr(&second));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_password_is_used_and_never_plaintext() {
    let bmc = embedded_bmc(&[]).await;
    let cli = Cli::new();
    let mut outputs = Vec::new();

    let added = run_input(
        &cli,
        &[
            "server",
            "add",
            "r1",
            &bmc.url(),
            "--user",
            USER,
            "--accept-fingerprint",
            &bmc.fingerprint(),
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
        &[],
    )
    .await;
    assert_success(&added);
    assert!(
        stderr(&added).contains("stored the password"),
        "{}",
        stderr(&added)
    );
    outputs.push(added);

    // No RACKSIDE_PASSWORD, no terminal, no --password-stdin: only the vault has it.
    let health = cli
        .run_with(&["health", "r1", "--non-interactive"], &[])
        .await;
    assert_success(&health);
    assert!(stdout(&health).contains("ROLLUP"), "{}", stdout(&health));
    outputs.push(health);
    let listed = cli.run_with(&["server", "list", "--json"], &[]).await;
    outputs.push(listed);

    for output in &outputs {
        assert!(!stdout(output).contains(PASSWORD), "password in stdout");
        assert!(!stderr(output).contains(PASSWORD), "password in stderr");
    }
    let leaked = files_containing(cli.config.path(), PASSWORD);
    assert!(leaked.is_empty(), "plaintext password in {leaked:?}");
    let stored = cli.open_vault().credential("r1").unwrap().unwrap();
    assert_eq!(stored.expose_str(), Some(PASSWORD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_stored_password_names_the_fix() {
    let bmc = embedded_bmc(&[]).await;
    let cli = Cli::new();
    cli.add("r1", &bmc.url(), &bmc.fingerprint()).await;
    let replaced = run_input(
        &cli,
        &["server", "passwd", "r1", "--password-stdin"],
        "not the password\n",
        &[],
    )
    .await;
    assert_success(&replaced);

    let output = cli.run_with(&["health", "r1"], &[]).await;

    assert_code(&output, 5);
    let message = stderr(&output);
    assert!(message.contains("stored in the vault"), "{message}");
    assert!(message.contains("rackside server passwd r1"), "{message}");
    assert!(!message.contains("not the password"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_reports_show_age_with_bmc_down() {
    let bmc = embedded_bmc(&[]).await;
    let cli = Cli::new();
    cli.add("r1", &bmc.url(), &bmc.fingerprint()).await;
    let live_health = cli.run(&["health", "r1"]).await;
    let live_inventory = cli.run(&["inventory", "r1"]).await;
    assert_success(&live_health);
    assert_success(&live_inventory);
    bmc.running.shutdown().await;

    let health = cli.run_with(&["health", "r1", "--cached"], &[]).await;
    let inventory = cli.run_with(&["inventory", "r1", "--cached"], &[]).await;
    let live = cli.run(&["health", "r1"]).await;

    assert_success(&health);
    assert!(
        stderr(&health).contains("r1: cached "),
        "{}",
        stderr(&health)
    );
    assert!(
        stderr(&health).contains(" ago, fetched 20"),
        "{}",
        stderr(&health)
    );
    assert!(stdout(&health).contains("ROLLUP"), "{}", stdout(&health));
    assert!(stdout(&health).contains("Critical"), "{}", stdout(&health));
    assert_success(&inventory);
    assert!(
        stderr(&inventory).contains("ago, fetched"),
        "{}",
        stderr(&inventory)
    );
    // The cached reports print the same tables, row for row, as the live runs did.
    assert_eq!(stdout(&health), stdout(&live_health));
    assert_eq!(stdout(&inventory), stdout(&live_inventory));
    assert!(
        stdout(&inventory).contains("Processors"),
        "{}",
        stdout(&inventory)
    );
    let cached_json = cli.run(&["inventory", "r1", "--cached", "--json"]).await;
    assert_success(&cached_json);
    assert!(
        stdout(&cached_json).contains("\"systems\""),
        "{}",
        stdout(&cached_json)
    );
    assert_code(&live, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_without_report_is_a_clear_error() {
    let cli = Cli::new();
    let vault = cli.open_vault();
    vault
        .put_server(&rackside_vault::ServerRecord {
            name: "r1".into(),
            url: "https://192.0.2.10/".into(),
            user: Some("root".into()),
            pin: Some(pin_json(1)),
            groups: vec!["rack1".into()],
        })
        .unwrap();
    vault.close().unwrap();

    let health = cli.run(&["health", "r1", "--cached"]).await;
    let inventory = cli.run(&["inventory", "r1", "--cached"]).await;
    let group = cli.run(&["health", "--group", "rack1", "--cached"]).await;

    assert_code(&health, 1);
    assert!(
        stderr(&health).contains("no cached health report for r1"),
        "{}",
        stderr(&health)
    );
    assert_code(&inventory, 1);
    assert!(
        stderr(&inventory).contains("no cached inventory"),
        "{}",
        stderr(&inventory)
    );
    assert_code(&group, 1);
    assert!(
        stdout(&group).contains("no cached report"),
        "{}",
        stdout(&group)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_group_lists_known_groups() {
    let bmc = embedded_bmc(&[]).await;
    let cli = Cli::new();
    let added = cli
        .run(&[
            "server",
            "add",
            "r1",
            &bmc.url(),
            "--user",
            USER,
            "--group",
            "rack1",
            "--accept-fingerprint",
            &bmc.fingerprint(),
        ])
        .await;
    assert_success(&added);

    let member = cli.run(&["health", "--group", "rack1"]).await;
    let unknown = cli.run(&["health", "--group", "rack9"]).await;
    let bad_name = cli
        .run(&["server", "add", "r2", &bmc.url(), "--group", "bad group"])
        .await;

    assert_success(&member);
    assert!(stdout(&member).contains("r1"), "{}", stdout(&member));
    assert_code(&unknown, 2);
    assert!(
        stderr(&unknown).contains("known groups: rack1"),
        "{}",
        stderr(&unknown)
    );
    assert_code(&bad_name, 2);
    assert!(
        stderr(&bad_name).contains("invalid group name"),
        "{}",
        stderr(&bad_name)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlock_and_lock_gate_a_password_vault() {
    let cli = Cli::bare();
    let _guard = AgentGuard(&cli);
    let init = run_input(
        &cli,
        &["vault", "init", "--password-stdin"],
        &format!("{VAULT_PASSWORD}\n"),
        &[],
    )
    .await;
    assert_success(&init);

    let locked = cli.run(&["server", "list", "--non-interactive"]).await;
    assert_code(&locked, 11);
    assert!(
        stderr(&locked).contains("rackside unlock"),
        "{}",
        stderr(&locked)
    );

    let unlock = run_input(
        &cli,
        &["unlock", "--password-stdin", "--timeout", "2m"],
        &format!("{VAULT_PASSWORD}\n"),
        &[],
    )
    .await;
    assert_success(&unlock);
    assert!(cli.agent_socket().exists());

    let through_agent = cli.run(&["server", "list", "--non-interactive"]).await;
    assert_success(&through_agent);
    let status = cli.run(&["vault", "status"]).await;
    assert_success(&status);
    assert!(
        stdout(&status).contains("password:       set"),
        "{}",
        stdout(&status)
    );
    assert!(
        stdout(&status).contains("unlocked, locks after"),
        "{}",
        stdout(&status)
    );
    assert!(
        stdout(&status).contains("user-only file in"),
        "{}",
        stdout(&status)
    );

    assert_success(&cli.run(&["lock"]).await);
    let again = cli.run(&["server", "list", "--non-interactive"]).await;
    assert_code(&again, 11);
    assert!(!cli.agent_socket().exists(), "the agent did not stop");
    for output in [&init, &locked, &unlock, &through_agent, &status, &again] {
        assert!(
            !stderr(output).contains(VAULT_PASSWORD),
            "password in stderr"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_vault_password_exits_12() {
    let cli = Cli::bare();
    let _guard = AgentGuard(&cli);
    let init = run_input(
        &cli,
        &["vault", "init", "--password-stdin"],
        &format!("{VAULT_PASSWORD}\n"),
        &[],
    )
    .await;
    assert_success(&init);

    let unlock = run_input(
        &cli,
        &["unlock", "--password-stdin"],
        "lantern quarry velvet 4819 osprez\n",
        &[],
    )
    .await;
    let direct = cli
        .run_with(
            &["server", "list"],
            &[("RACKSIDE_VAULT_PASSWORD", "guessed wrong vault password")],
        )
        .await;

    assert_code(&unlock, 12);
    assert!(
        stderr(&unlock).contains("wrong password"),
        "{}",
        stderr(&unlock)
    );
    assert_eq!(
        stderr(&unlock).trim().lines().count(),
        1,
        "{}",
        stderr(&unlock)
    );
    assert!(
        !cli.agent_socket().exists(),
        "an agent started after a wrong password"
    );
    assert_code(&direct, 12);
    assert!(
        !stderr(&direct).contains("guessed wrong"),
        "{}",
        stderr(&direct)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_vault_header_exits_12() {
    let new_password = "marble sparrow kettle 6630 beacon";
    let cli = Cli::bare();
    let _guard = AgentGuard(&cli);
    let init = run_input(
        &cli,
        &["vault", "init", "--password-stdin"],
        &format!("{VAULT_PASSWORD}\n"),
        &[],
    )
    .await;
    assert_success(&init);
    let header = cli.vault_dir().join("vault.header");
    let old_header = std::fs::read(&header).unwrap();
    let passwd = run_input(
        &cli,
        &["vault", "passwd", "--password-stdin"],
        &format!("{VAULT_PASSWORD}\n{new_password}\n"),
        &[],
    )
    .await;
    assert_success(&passwd);
    std::fs::write(&header, &old_header).unwrap();

    let old = run_input(
        &cli,
        &["unlock", "--password-stdin"],
        &format!("{VAULT_PASSWORD}\n"),
        &[],
    )
    .await;
    let new = cli
        .run_with(
            &["server", "list"],
            &[("RACKSIDE_VAULT_PASSWORD", new_password)],
        )
        .await;

    for output in [&old, &new] {
        assert_code(output, 12);
        let message = stderr(output);
        assert!(
            message.contains("older than the one this device last wrote"),
            "{message}"
        );
        assert!(message.contains("rackside vault import"), "{message}");
        assert!(!message.contains("wrong password"), "{message}");
        assert_eq!(message.trim().lines().count(), 1, "{message}");
    }
    assert!(
        !cli.agent_socket().exists(),
        "an agent started for an old header"
    );
}

/// Changes one hex digit inside the header's wrapped data key, so the header still parses and
/// only the unwrap fails.
fn flip_wrapped_key(cli: &Cli) {
    let path = cli.vault_dir().join("vault.header");
    let mut bytes = std::fs::read(&path).unwrap();
    let marker = b"\"ciphertext\":\"";
    let at = bytes
        .windows(marker.len())
        .position(|window| window == marker)
        .expect("the header contains the wrapped key")
        + marker.len()
        + 4;
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    std::fs::write(&path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrapped_key_flip_message_fits_vault() {
    let plain = Cli::new();
    let protected = Cli::bare();
    let init = run_input(
        &protected,
        &["vault", "init", "--password-stdin"],
        &format!("{VAULT_PASSWORD}\n"),
        &[],
    )
    .await;
    assert_success(&init);
    flip_wrapped_key(&plain);
    flip_wrapped_key(&protected);

    let without_password = plain.run(&["server", "list"]).await;
    let with_password = protected
        .run_with(
            &["server", "list"],
            &[("RACKSIDE_VAULT_PASSWORD", VAULT_PASSWORD)],
        )
        .await;

    assert_code(&without_password, 12);
    let message = stderr(&without_password);
    assert!(
        message.contains("vault header") && message.contains("damaged or made on another device"),
        "{message}"
    );
    assert!(!message.contains("wrong password"), "{message}");
    assert_eq!(message.trim().lines().count(), 1, "{message}");
    assert_code(&with_password, 12);
    let message = stderr(&with_password);
    assert!(
        message.contains("wrong password, or the vault was made on another device"),
        "{message}"
    );
    assert_eq!(message.trim().lines().count(), 1, "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_vault_password_is_refused_with_reason() {
    let cli = Cli::bare();

    let output = run_input(
        &cli,
        &["vault", "init", "--password-stdin"],
        "password1234\n",
        &[],
    )
    .await;

    assert_code(&output, 2);
    assert!(stderr(&output).contains("password"), "{}", stderr(&output));
    assert!(!cli.vault_dir().join("vault.header").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_needs_password_while_unlocked() {
    let cli = Cli::bare();
    let _guard = AgentGuard(&cli);
    let init = run_input(
        &cli,
        &["vault", "init", "--password-stdin"],
        &format!("{VAULT_PASSWORD}\n"),
        &[],
    )
    .await;
    assert_success(&init);
    let unlock = run_input(
        &cli,
        &["unlock", "--password-stdin", "--timeout", "2m"],
        &format!("{VAULT_PASSWORD}\n"),
        &[],
    )
    .await;
    assert_success(&unlock);
    let file = cli.config.path().join("backup.rsv");

    let export = cli
        .run(&[
            "vault",
            "export",
            file.to_str().unwrap(),
            "--non-interactive",
        ])
        .await;
    let quick = cli
        .run(&["vault", "quick", "enable", "--non-interactive"])
        .await;

    assert_code(&export, 2);
    assert!(
        stderr(&export).contains("vault export needs the vault password even while unlocked"),
        "{}",
        stderr(&export)
    );
    assert!(!file.exists(), "an export was written without the password");
    assert_code(&quick, 2);
    assert!(
        stderr(&quick).contains("vault quick enable needs the vault password"),
        "{}",
        stderr(&quick)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_checks_file_before_passphrase() {
    let cli = Cli::bare();
    let missing = cli.config.path().join("missing.rsv");
    let not_export = cli.config.path().join("notes.txt");
    std::fs::write(&not_export, "not an export\n").unwrap();

    let absent = cli
        .run(&[
            "vault",
            "import",
            missing.to_str().unwrap(),
            "--non-interactive",
        ])
        .await;
    let wrong_kind = cli
        .run(&[
            "vault",
            "import",
            not_export.to_str().unwrap(),
            "--non-interactive",
        ])
        .await;

    assert_code(&absent, 2);
    assert!(stderr(&absent).contains("not found"), "{}", stderr(&absent));
    assert_code(&wrong_kind, 2);
    assert!(
        stderr(&wrong_kind).contains("is not a rackside vault export"),
        "{}",
        stderr(&wrong_kind)
    );
    for output in [&absent, &wrong_kind] {
        assert!(
            !stderr(output).contains("passphrase needed"),
            "asked for the passphrase first: {}",
            stderr(output)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_import_moves_records_to_another_device() {
    let bmc = embedded_bmc(&[]).await;
    let first = Cli::new();
    first.add("r1", &bmc.url(), &bmc.fingerprint()).await;
    let stored = run_input(
        &first,
        &["server", "passwd", "r1", "--password-stdin"],
        &format!("{PASSWORD}\n"),
        &[],
    )
    .await;
    assert_success(&stored);
    let file = first.config.path().join("moved.rsv");
    let file_arg = file.to_str().unwrap();

    let export = run_input(
        &first,
        &["vault", "export", file_arg, "--passphrase-stdin"],
        &format!("{PASSPHRASE}\n"),
        &[],
    )
    .await;
    assert_success(&export);
    assert!(files_containing(first.config.path(), PASSWORD).is_empty());

    // A second folder has its own key store, so its own device secret.
    let second = Cli::bare();
    let wrong = run_input(
        &second,
        &["vault", "import", file_arg, "--passphrase-stdin"],
        "not the passphrase at all 12\n",
        &[],
    )
    .await;
    let import = run_input(
        &second,
        &["vault", "import", file_arg, "--passphrase-stdin"],
        &format!("{PASSPHRASE}\n"),
        &[],
    )
    .await;

    assert_ne!(wrong.status.code(), Some(0), "{}", stderr(&wrong));
    assert_success(&import);
    let servers = second.servers();
    assert_eq!(
        servers["r1"]["pin"]["certificate_sha256"],
        bmc.fingerprint()
    );
    let password = second.open_vault().credential("r1").unwrap().unwrap();
    assert_eq!(password.expose_str(), Some(PASSWORD));
    let device = |cli: &Cli| {
        let store = cli.keystore();
        rackside_vault::device_secret(&store, false).unwrap()
    };
    assert_ne!(device(&first), device(&second));
    // The imported password logs in without any other source.
    let health = second.run_with(&["health", "r1"], &[]).await;
    assert_success(&health);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_password_change_keeps_records() {
    let cli = Cli::new();
    let vault = cli.open_vault();
    vault
        .put_server(&rackside_vault::ServerRecord {
            name: "r1".into(),
            url: "https://192.0.2.10/".into(),
            user: Some("root".into()),
            pin: None,
            groups: Vec::new(),
        })
        .unwrap();
    vault.close().unwrap();
    let database = cli.vault_dir().join("vault.db");
    let before = std::fs::read(&database).unwrap();

    let set = run_input(
        &cli,
        &["vault", "passwd", "--password-stdin"],
        &format!("{VAULT_PASSWORD}\n"),
        &[],
    )
    .await;
    assert_success(&set);
    let status = cli.run(&["vault", "status"]).await;
    let with_password = cli
        .run_with(
            &["server", "list"],
            &[("RACKSIDE_VAULT_PASSWORD", VAULT_PASSWORD)],
        )
        .await;
    let removed = run_input(
        &cli,
        &["vault", "passwd", "--remove", "--password-stdin"],
        &format!("{VAULT_PASSWORD}\n"),
        &[],
    )
    .await;

    assert!(
        stdout(&status).contains("password:       set"),
        "{}",
        stdout(&status)
    );
    assert!(
        !stdout(&status).contains("Argon2id, 1024 KiB, 1 passes"),
        "parameters were not calibrated: {}",
        stdout(&status)
    );
    assert_success(&with_password);
    assert!(
        stdout(&with_password).contains("r1"),
        "{}",
        stdout(&with_password)
    );
    assert_success(&removed);
    assert_success(&cli.run(&["server", "list"]).await);
    assert_eq!(
        std::fs::read(&database).unwrap(),
        before,
        "database was rewritten"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_vault_fails_in_one_line() {
    let cli = Cli::new();
    let header = cli.vault_dir().join("vault.header");
    let original = std::fs::read(&header).unwrap();
    let one_line = |output: &Output| {
        assert_eq!(
            stderr(output).trim().lines().count(),
            1,
            "{}",
            stderr(output)
        );
    };

    // A flipped byte in the header's magic is a corrupted header. One in the wrapped key fails
    // the unwrap instead (see `wrapped_key_flip_message_fits_vault`), and
    // the vault crate's tests cover every position.
    let mut flipped = original.clone();
    flipped[0] ^= 0x01;
    std::fs::write(&header, &flipped).unwrap();
    let corrupted = cli.run(&["server", "list"]).await;
    assert_code(&corrupted, 1);
    assert!(
        stderr(&corrupted).contains("corrupted"),
        "{}",
        stderr(&corrupted)
    );
    one_line(&corrupted);

    std::fs::remove_file(&header).unwrap();
    let missing = cli.run(&["server", "list"]).await;
    assert_code(&missing, 1);
    assert!(stderr(&missing).contains("header"), "{}", stderr(&missing));
    assert!(stderr(&missing).contains("missing"), "{}", stderr(&missing));
    one_line(&missing);
    std::fs::write(&header, &original).unwrap();

    let unknown_store = cli
        .run_with(&["server", "list"], &[("RACKSIDE_KEYSTORE", "tpm")])
        .await;
    assert_code(&unknown_store, 1);
    assert!(
        stderr(&unknown_store).contains("RACKSIDE_KEYSTORE"),
        "{}",
        stderr(&unknown_store)
    );
    one_line(&unknown_store);

    let keys = cli.config.path().join("data");
    let moved = cli.config.path().join("data-moved");
    std::fs::rename(&keys, &moved).unwrap();
    let other_device = cli.run(&["server", "list"]).await;
    assert_code(&other_device, 12);
    assert!(
        stderr(&other_device).contains("device secret"),
        "{}",
        stderr(&other_device)
    );
    one_line(&other_device);
    std::fs::rename(&moved, &keys).unwrap();

    assert_success(&cli.run(&["server", "list"]).await);
}

/// A vault with one server, `r1`, for the failure tests below.
fn vault_with_one_server() -> Cli {
    let cli = Cli::new();
    let vault = cli.open_vault();
    vault
        .put_server(&rackside_vault::ServerRecord {
            name: "r1".into(),
            url: "https://192.0.2.10/".into(),
            user: Some("root".into()),
            pin: Some(pin_json(1)),
            groups: Vec::new(),
        })
        .unwrap();
    vault.close().unwrap();
    cli
}

/// Asserts that `output` failed with exit code 1 and a one-line message.
fn assert_one_line_failure(output: &Output) {
    assert_code(output, 1);
    assert_eq!(
        stderr(output).trim().lines().count(),
        1,
        "{}",
        stderr(output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_database_fails_in_one_line() {
    use std::io::BufRead;
    let cli = vault_with_one_server();
    let database = cli.vault_dir().join(rackside_vault::DATABASE_FILE);
    // Another process holds a POSIX write lock over the whole file, which covers the lock
    // bytes SQLite uses, as a writer in the middle of a transaction would.
    let script = "import fcntl, sys\n\
                  f = open(sys.argv[1], 'r+b')\n\
                  fcntl.lockf(f, fcntl.LOCK_EX)\n\
                  print('locked', flush=True)\n\
                  sys.stdin.read()\n";
    let Ok(mut holder) = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&database)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
    else {
        println!("skipped: python3 not found");
        return;
    };
    let mut line = String::new();
    std::io::BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");

    let blocked = cli.run(&["server", "list"]).await;
    drop(holder.stdin.take());
    holder.wait().unwrap();
    let after = cli.run(&["server", "list"]).await;

    assert_one_line_failure(&blocked);
    let message = stderr(&blocked);
    assert!(message.contains("locked by another process"), "{message}");
    assert!(message.contains("retry"), "{message}");
    assert_success(&after);
    assert!(stdout(&after).contains("r1"), "{}", stdout(&after));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_key_store_fails_in_one_line() {
    // A file where the key store's folder belongs stops even root, which ignores modes.
    let cli = vault_with_one_server();
    let fresh = Cli::bare();
    let blocker = cli.config.path().join("blocker");
    std::fs::write(&blocker, b"").unwrap();
    let blocked_env = [("XDG_DATA_HOME", blocker.to_str().unwrap())];

    let existing = cli.run_with(&["server", "list"], &blocked_env).await;
    let first_use = fresh.run_with(&["server", "list"], &blocked_env).await;
    let after = cli.run(&["server", "list"]).await;

    for output in [&existing, &first_use] {
        assert_one_line_failure(output);
        let message = stderr(output);
        assert!(message.contains("device secret file"), "{message}");
        assert!(message.contains("XDG_DATA_HOME"), "{message}");
    }
    assert!(
        !fresh.vault_dir().exists(),
        "a vault was made without its device secret"
    );
    assert_success(&after);
    assert!(stdout(&after).contains("r1"), "{}", stdout(&after));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_commands_skip_locked_vault() {
    let cli = Cli::bare();
    let init = run_input(
        &cli,
        &["vault", "init", "--password-stdin"],
        &format!("{VAULT_PASSWORD}\n"),
        &[],
    )
    .await;
    assert_success(&init);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let pem_path = cli.config.path().join("site-ca.pem");
    std::fs::write(&pem_path, params.self_signed(&key).unwrap().pem()).unwrap();
    let pem = pem_path.to_str().unwrap();

    let add = cli.run(&["ca", "add", pem, "--non-interactive"]).await;
    let list = cli.run(&["ca", "list", "--non-interactive"]).await;
    let listed = stdout(&list);
    let name = Path::new(listed.trim())
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let remove = cli.run(&["ca", "remove", &name, "--non-interactive"]).await;
    let servers = cli.run(&["server", "list", "--non-interactive"]).await;

    assert_success(&add);
    assert_success(&list);
    assert_eq!(listed.trim().lines().count(), 1, "{listed}");
    assert!(name.ends_with(".pem"), "{listed}");
    assert_success(&remove);
    assert!(
        !cli.config.path().join("ca").join(&name).exists(),
        "CA file left after remove"
    );
    // The servers stay behind the password.
    assert_code(&servers, 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_unlock_opens_without_password() {
    let cli = Cli::bare();
    let _guard = AgentGuard(&cli);
    let password_line = format!("{VAULT_PASSWORD}\n");
    assert_success(
        &run_input(
            &cli,
            &["vault", "init", "--password-stdin"],
            &password_line,
            &[],
        )
        .await,
    );

    let not_yet = cli.run(&["unlock", "--quick"]).await;
    let enable = run_input(
        &cli,
        &["vault", "quick", "enable", "--password-stdin"],
        &password_line,
        &[],
    )
    .await;
    let unlock = cli.run(&["unlock", "--quick", "--timeout", "2m"]).await;
    let listed = cli.run(&["server", "list", "--non-interactive"]).await;
    let status = cli.run(&["vault", "status"]).await;

    assert_code(&not_yet, 12);
    assert!(
        stderr(&not_yet).contains("quick unlock is not enabled"),
        "{}",
        stderr(&not_yet)
    );
    assert_success(&enable);
    assert_success(&unlock);
    assert_success(&listed);
    assert!(
        stdout(&status).contains("quick unlock:   enabled"),
        "{}",
        stdout(&status)
    );
    assert_success(&cli.run(&["lock"]).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_agent_locks_and_stops() {
    let cli = Cli::bare();
    let _guard = AgentGuard(&cli);
    let password_line = format!("{VAULT_PASSWORD}\n");
    assert_success(
        &run_input(
            &cli,
            &["vault", "init", "--password-stdin"],
            &password_line,
            &[],
        )
        .await,
    );
    let unlock = run_input(
        &cli,
        &["unlock", "--password-stdin", "--timeout", "10s"],
        &password_line,
        &[],
    )
    .await;
    assert_success(&unlock);
    assert!(
        stderr(&unlock).contains("after 10 s without use"),
        "{}",
        stderr(&unlock)
    );
    assert_success(&cli.run(&["server", "list", "--non-interactive"]).await);

    // The agent checks its idle time every 5 s, so it stops between 10 and about 15 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(45);
    while cli.agent_socket().exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    assert!(
        !cli.agent_socket().exists(),
        "the agent did not lock within 45 s"
    );
    let after = cli.run(&["server", "list", "--non-interactive"]).await;
    assert_code(&after, 11);
}
