//! Shared helpers for the end-to-end tests: a BMC in-process, the real binary, test data.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use rackside_bmc::{BmcConfig, DataSource, Fault, RunningBmc, TlsSource};
use tempfile::TempDir;

/// The password of the BMC account every test uses.
pub const PASSWORD: &str = "correct horse battery staple";
/// The BMC account every test uses.
pub const USER: &str = "admin";

/// The shared Redfish test data, or `None` (after saying why) when it is missing.
/// With `RACKSIDE_REQUIRE_EXTERNAL=1`, as in CI, a missing folder fails the test instead.
pub fn test_data() -> Option<PathBuf> {
    let path = match std::env::var_os("RACKSIDE_TEST_DATA") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    };
    if path.join("redfish").is_dir() {
        return Some(path);
    }
    skip_or_fail("RACKSIDE_TEST_DATA not set and ../shared not found");
    None
}

/// The Python venv with sushy-emulator and DMTF's tools, or `None` when it is missing.
pub fn venv() -> Option<PathBuf> {
    let path = match std::env::var_os("RACKSIDE_VENV") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv"),
    };
    if path.join("bin/python").exists() {
        return Some(path);
    }
    skip_or_fail("RACKSIDE_VENV not set and .venv not found; run ./scripts/test");
    None
}

fn skip_or_fail(reason: &str) {
    if std::env::var("RACKSIDE_REQUIRE_EXTERNAL").is_ok_and(|value| value == "1") {
        panic!("required test input missing: {reason}");
    }
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    eprintln!("skipped {test}: {reason}");
}

/// A BMC running in this process, with its state folder.
pub struct Bmc {
    pub running: RunningBmc,
    pub state: TempDir,
}

impl Bmc {
    /// The HTTPS URL of the BMC.
    pub fn url(&self) -> String {
        format!("https://{}", self.running.local_addr())
    }

    /// Number of open Redfish sessions, read from the sessions collection with Basic auth.
    pub async fn open_sessions(&self) -> u64 {
        // Test-only client on loopback: the certificate was checked by the code under test.
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        let url = format!("{}/redfish/v1/SessionService/Sessions", self.url());
        let bytes = client
            .get(url)
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        body["Members@odata.count"].as_u64().unwrap()
    }

    /// SHA-256 of the BMC's certificate as the CLI prints it.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.running.certificate_der().as_ref());
        digest
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }
}

/// A configuration for a BMC on a free loopback port with the test account.
pub fn config(state: &Path) -> BmcConfig {
    let mut config = BmcConfig::new(state.to_path_buf());
    config.listen = "127.0.0.1:0".parse::<SocketAddr>().unwrap();
    config.first_user = Some((USER.to_owned(), PASSWORD.to_owned().into()));
    config.power_delay = Duration::from_millis(300);
    config
}

/// Starts a BMC serving `data` with the given faults.
pub async fn start_bmc(data: DataSource, tls: TlsSource, faults: &[Fault]) -> Bmc {
    let state = tempfile::tempdir().unwrap();
    let mut config = config(state.path());
    config.data = data;
    config.tls = tls;
    for fault in faults {
        config.faults.insert(*fault);
    }
    let running = rackside_bmc::start(config).await.unwrap();
    Bmc { running, state }
}

/// Starts the embedded sample BMC with a generated certificate.
pub async fn embedded_bmc(faults: &[Fault]) -> Bmc {
    start_bmc(DataSource::Embedded, TlsSource::Generated, faults).await
}

/// A client config folder and a way to run the real binary with it.
///
/// Each one is isolated, so tests never touch the user's vault, keys or agent. Its vault is in
/// the folder's `vault/`, its device secret in a file key store under `data/`, and its unlock
/// agent (if any) on a socket under `run/`.
pub struct Cli {
    pub config: TempDir,
}

impl Cli {
    /// A folder with a vault without a password, as the first command would create it.
    pub fn new() -> Self {
        let cli = Self::bare();
        let vault = rackside_vault::Vault::create(
            &cli.vault_dir(),
            rackside_vault::CreateOptions {
                password: None,
                kdf: rackside_vault::KdfChoice::Fixed(rackside_vault::KdfParams::TEST),
            },
            &cli.keystore(),
        )
        .unwrap();
        vault.close().unwrap();
        cli
    }

    /// Makes an empty folder, with no vault yet.
    pub fn bare() -> Self {
        Self {
            config: tempfile::tempdir().unwrap(),
        }
    }

    /// Returns the vault folder the binary uses with this config folder.
    pub fn vault_dir(&self) -> PathBuf {
        self.config.path().join("vault")
    }

    /// Returns the file key store the binary uses with [`Cli::isolation`].
    pub fn keystore(&self) -> rackside_vault::FileKeyStore {
        rackside_vault::FileKeyStore::new(self.data_dir().join("rackside").join("keys"))
    }

    fn data_dir(&self) -> PathBuf {
        self.config.path().join("data")
    }

    /// Returns the agent socket of this folder. It sits in a subfolder that the agent makes
    /// private, because the temporary folder itself may be readable by others.
    pub fn agent_socket(&self) -> PathBuf {
        self.config.path().join("run").join("agent.sock")
    }

    /// Returns the environment that confines a `rackside` process to this folder.
    pub fn isolation(&self) -> Vec<(&'static str, PathBuf)> {
        vec![
            ("RACKSIDE_CONFIG_DIR", self.config.path().to_path_buf()),
            ("RACKSIDE_KEYSTORE", PathBuf::from("file")),
            ("XDG_DATA_HOME", self.data_dir()),
            ("RACKSIDE_AGENT_SOCKET", self.agent_socket()),
        ]
    }

    /// Opens this folder's vault, which must have no password, for checks and edits.
    pub fn open_vault(&self) -> rackside_vault::Vault {
        rackside_vault::Vault::open(
            &self.vault_dir(),
            rackside_vault::Unlock::without_password(),
            &self.keystore(),
        )
        .unwrap()
    }

    /// Runs `rackside ARGS` with this config folder, the test password and no terminal.
    pub async fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[("RACKSIDE_PASSWORD", PASSWORD)])
            .await
    }

    /// Runs `rackside ARGS` with extra environment variables.
    pub async fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_rackside"));
        command
            .args(args)
            .envs(self.isolation())
            .env_remove("RACKSIDE_PASSWORD")
            .env_remove("RACKSIDE_VAULT_PASSWORD")
            .env_remove("RACKSIDE_LOG")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        tokio::time::timeout(Duration::from_secs(120), command.output())
            .await
            .expect("rackside did not finish within 120 s")
            .unwrap()
    }

    /// Adds `name` at `url`, accepting `fingerprint`, and asserts success.
    pub async fn add(&self, name: &str, url: &str, fingerprint: &str) {
        let output = self
            .run(&[
                "server",
                "add",
                name,
                url,
                "--user",
                USER,
                "--accept-fingerprint",
                fingerprint,
            ])
            .await;
        assert_success(&output);
    }

    /// The saved server list, read from the vault, by name.
    pub fn servers(&self) -> serde_json::Value {
        let vault = self.open_vault();
        let mut servers = serde_json::Map::new();
        for record in vault.servers().unwrap() {
            let name = record.name.clone();
            servers.insert(name, serde_json::to_value(record).unwrap());
        }
        serde_json::Value::Object(servers)
    }

    /// Rewrites the saved URL of `name` in the vault, keeping its pin.
    pub fn set_url(&self, name: &str, url: &str) {
        let vault = self.open_vault();
        let mut record = vault.server(name).unwrap().unwrap();
        record.url = format!("{url}/");
        vault.put_server(&record).unwrap();
    }
}

/// Standard error as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Standard output as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Standard output parsed as JSON.
pub fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("stdout is not JSON ({error}): {}", stdout(output)))
}

/// Asserts exit code 0, printing both streams otherwise.
pub fn assert_success(output: &Output) {
    assert_code(output, 0);
}

/// Asserts the exit code, printing both streams otherwise.
pub fn assert_code(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "expected exit {code}\nstdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
}
