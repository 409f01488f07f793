//! End-to-end tests of `--via link`: the real `rackside` binary reaches an in-process BMC over
//! its at-the-server link socket and must print the same results as over HTTPS.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

mod support;

use std::path::PathBuf;

use rackside_bmc::link::{serve_link, LinkOptions};
use rackside_link::service::LinkService;
use rackside_link::Profile;

use support::*;

/// A BMC with its HTTPS listener and its link socket.
struct LinkedBmc {
    bmc: Bmc,
    link: LinkService,
    socket: PathBuf,
    _socket_dir: tempfile::TempDir,
}

impl LinkedBmc {
    /// Runs `rackside ARGS --via link` at half a metre from the server.
    async fn run_via_link(&self, cli: &Cli, args: &[&str], password: &str) -> std::process::Output {
        let socket = self.socket.to_str().unwrap();
        let mut all = args.to_vec();
        all.extend(["--via", "link", "--link-socket", socket]);
        cli.run_with(&all, &[("RACKSIDE_PASSWORD", password)]).await
    }
}

/// Starts the embedded BMC, serves its link with the HTTPS certificate, and adds it to `cli`
/// as r1 with its fingerprint accepted.
async fn linked_bmc(cli: &Cli) -> LinkedBmc {
    let bmc = embedded_bmc(&[]).await;
    let socket_dir = tempfile::tempdir().unwrap();
    let socket = socket_dir.path().join("link.sock");
    let state_dir = bmc.state.path().to_path_buf();
    let options = LinkOptions {
        socket: socket.clone(),
        cert: state_dir.join(rackside_bmc::CERT_FILE),
        key: state_dir.join(rackside_bmc::KEY_FILE),
        state_dir,
        profile: Profile::Default,
        mac: [0x02, 0, 0, 0, 0, 0x01],
        model: "test server".into(),
        legacy_default: None,
    };
    let link = serve_link(bmc.running.state(), options).await.unwrap();
    cli.add("r1", &bmc.url(), &bmc.fingerprint()).await;
    LinkedBmc {
        bmc,
        link,
        socket,
        _socket_dir: socket_dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_over_link_matches_https() {
    let cli = Cli::new();
    let linked = linked_bmc(&cli).await;
    linked.link.press_button().await.unwrap();

    let https = cli.run(&["health", "r1", "--json"]).await;
    let link = linked
        .run_via_link(&cli, &["health", "r1", "--json"], PASSWORD)
        .await;

    assert_success(&https);
    assert_success(&link);
    assert_eq!(json(&link), json(&https));
    assert!(
        stderr(&link).contains("link open to Service Tag"),
        "{}",
        stderr(&link)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identify_and_power_over_link_match_https() {
    let cli = Cli::new();
    let linked = linked_bmc(&cli).await;
    linked.link.press_button().await.unwrap();

    let on_link = linked
        .run_via_link(&cli, &["identify", "r1", "on", "--json"], PASSWORD)
        .await;
    let on_https = cli.run(&["identify", "r1", "on", "--json"]).await;
    assert_success(&on_link);
    assert_success(&on_https);
    assert_eq!(
        json(&on_link)[0]["result"]["data"]["read_back"],
        json(&on_https)[0]["result"]["data"]["read_back"]
    );

    let off_link = linked
        .run_via_link(
            &cli,
            &["power", "r1", "off", "--force", "--yes", "--json"],
            PASSWORD,
        )
        .await;
    assert_success(&off_link);
    let state = cli.run(&["health", "r1", "--json"]).await;
    assert_success(&state);
    let text = stdout(&state);
    assert!(text.contains("\"Off\""), "power not off over HTTPS: {text}");

    let on_link = linked
        .run_via_link(&cli, &["power", "r1", "on", "--yes", "--json"], PASSWORD)
        .await;
    assert_success(&on_link);
    let off_https = cli
        .run(&["power", "r1", "off", "--force", "--yes", "--json"])
        .await;
    assert_success(&off_https);
    // Timings differ from run to run; what was sent and the final state must not.
    for field in ["system", "sent", "power_state"] {
        assert_eq!(
            json(&off_link)[0]["result"]["data"][field],
            json(&off_https)[0]["result"]["data"][field],
            "{field}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_link_exits_5_until_button() {
    let cli = Cli::new();
    let linked = linked_bmc(&cli).await;
    linked.link.press_button().await.unwrap();

    for _ in 0..3 {
        let wrong = linked
            .run_via_link(&cli, &["health", "r1"], "not-the-password")
            .await;
        assert_code(&wrong, 5);
    }
    let locked = linked.run_via_link(&cli, &["health", "r1"], PASSWORD).await;

    assert_code(&locked, 5);
    let message = stderr(&locked);
    assert!(
        message.contains("press the activation button"),
        "no next step: {message}"
    );

    linked.link.press_button().await.unwrap();
    assert_success(&linked.run_via_link(&cli, &["health", "r1"], PASSWORD).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_checks_server_entry_pin() {
    let cli = Cli::new();
    let linked = linked_bmc(&cli).await;
    linked.link.press_button().await.unwrap();
    let other = embedded_bmc(&[]).await;
    cli.run(&["server", "remove", "r1"]).await;
    cli.add("r1", &other.url(), &other.fingerprint()).await;

    let output = linked.run_via_link(&cli, &["health", "r1"], PASSWORD).await;

    assert_code(&output, 4);
    assert!(stderr(&output).contains("ALARM"), "{}", stderr(&output));
    assert_eq!(linked.bmc.open_sessions().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_without_socket_is_a_usage_error() {
    let cli = Cli::new();
    let bmc = embedded_bmc(&[]).await;
    cli.add("r1", &bmc.url(), &bmc.fingerprint()).await;

    let output = cli.run(&["health", "r1", "--via", "link"]).await;

    assert_code(&output, 2);
    assert!(
        stderr(&output).contains("--link-socket"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn button_command_activates_the_link() {
    let cli = Cli::new();
    let linked = linked_bmc(&cli).await;
    let socket = linked.socket.to_str().unwrap();

    let pressed = cli.run(&["bmc", "button", "--socket", socket]).await;

    assert_success(&pressed);
    assert!(
        stdout(&pressed).starts_with("activated"),
        "{}",
        stdout(&pressed)
    );
    assert_success(&linked.run_via_link(&cli, &["health", "r1"], PASSWORD).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nearby_connect_exit_codes_match_table() {
    let cli = Cli::new();
    let linked = linked_bmc(&cli).await;
    linked.link.press_button().await.unwrap();
    let socket = linked.socket.to_str().unwrap();
    let fingerprint = linked.bmc.fingerprint();
    let connect = [
        "nearby", "connect", "RKS1U01", "--socket", socket, "--user", USER,
    ];

    let unpinned = cli
        .run_with(&connect, &[("RACKSIDE_LINK_PASSWORD", PASSWORD)])
        .await;
    let mut pinned = connect.to_vec();
    pinned.extend(["--pin", fingerprint.as_str()]);
    let wrong_password = cli
        .run_with(&pinned, &[("RACKSIDE_LINK_PASSWORD", "not-the-password")])
        .await;

    assert_code(&unpinned, 3);
    assert!(
        stderr(&unpinned).contains("certificate not accepted"),
        "{}",
        stderr(&unpinned)
    );
    assert_code(&wrong_password, 5);
    assert!(
        stderr(&wrong_password).contains("login rejected"),
        "{}",
        stderr(&wrong_password)
    );
}
