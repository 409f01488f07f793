//! `rackside vault init | status | passwd | export | import | quick`, `rackside unlock` and
//! `rackside lock`.
//!
//! `unlock` checks the password here (so a wrong one gets its own exit code), then starts the
//! agent as a detached `rackside vault agent` process on the per-user socket and hands it the
//! password. Data commands then go through the agent until it locks: on `rackside lock`, or
//! after the idle timeout measured on the boot clock.

use std::io::{BufRead, IsTerminal};
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rackside_vault::agent::{self, AgentConfig, BlockingClient};
use rackside_vault::{DeviceKeyStore, KdfChoice, Secret, Unlock, Vault, VaultStatus};
use zeroize::Zeroize;

use crate::cli::{LockArgs, QuickAction, UnlockArgs, VaultArgs, VaultCommand, VaultOptions};
use crate::failure::{ExitKind, Failure};
use crate::output::outln;
use crate::store::{
    agent_for, create_vault, keystore, open_direct, same_folder, Location, PasswordSource,
    VAULT_PASSWORD_ENV,
};

/// The environment variable naming a file for the agent's log (standard error).
const AGENT_LOG_ENV: &str = "RACKSIDE_AGENT_LOG";

/// How long `unlock` waits for the agent it started to listen.
const AGENT_START_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs one `vault` subcommand.
pub async fn run(args: VaultArgs) -> anyhow::Result<ExitCode> {
    let location = Location::resolve(args.options.config_dir.as_deref())?;
    let input = Input::new(&args.options);
    let keystore = keystore()?;
    match args.command {
        VaultCommand::Init { no_password } => {
            init(&location, &input, keystore.as_ref(), no_password)
        }
        VaultCommand::Status => status(&location, keystore.as_ref()),
        VaultCommand::Passwd { remove } => passwd(&location, &input, keystore.as_ref(), remove),
        VaultCommand::Export {
            file,
            passphrase_stdin,
        } => {
            if file.exists() {
                return Err(Failure::usage(format!(
                    "{} already exists; pick another file name or delete it first",
                    file.display()
                ))
                .into());
            }
            let vault = input.open_again(&location.vault_dir, keystore.as_ref(), "vault export")?;
            let passphrase =
                input.new_secret("Export passphrase", "--passphrase-stdin", passphrase_stdin)?;
            check_passphrase(&passphrase)?;
            vault.export(&file, &passphrase)?;
            eprintln!(
                "exported every record to {}, encrypted under its passphrase; import it with \
                 `rackside vault import {}`",
                file.display(),
                file.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        VaultCommand::Import {
            file,
            passphrase_stdin,
        } => {
            if !file.is_file() {
                return Err(Failure::usage(format!(
                    "export file {} not found; give the file that `rackside vault export` wrote",
                    file.display()
                ))
                .into());
            }
            rackside_vault::check_export(&file)?;
            let mut vault = input.open(&location.vault_dir, keystore.as_ref(), true)?;
            let passphrase =
                input.secret("Export passphrase", "--passphrase-stdin", passphrase_stdin)?;
            vault.import(&file, &passphrase)?;
            eprintln!(
                "imported {} into the vault in {}",
                file.display(),
                location.vault_dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        VaultCommand::Quick { action } => {
            let mut vault = match action {
                QuickAction::Enable => input.open_again(
                    &location.vault_dir,
                    keystore.as_ref(),
                    "vault quick enable",
                )?,
                QuickAction::Disable => {
                    input.open(&location.vault_dir, keystore.as_ref(), false)?
                }
            };
            match action {
                QuickAction::Enable => {
                    vault.enable_quick_unlock(keystore.as_ref())?;
                    eprintln!(
                        "quick unlock enabled: `rackside unlock --quick` opens the vault with a \
                         key held by {}",
                        keystore.describe()
                    );
                }
                QuickAction::Disable => {
                    vault.disable_quick_unlock(keystore.as_ref())?;
                    eprintln!("quick unlock disabled; its key was deleted from the key store");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        VaultCommand::Agent { idle_timeout_secs } => {
            run_agent(&location, keystore, idle_timeout_secs).await
        }
    }
}

/// `rackside unlock`: checks the password, starts the agent and unlocks it.
pub fn unlock(args: UnlockArgs) -> anyhow::Result<ExitCode> {
    let location = Location::resolve(args.options.config_dir.as_deref())?;
    let input = Input::new(&args.options);
    let keystore = keystore()?;
    let timeout = describe_duration(args.timeout);
    if let Some(mut client) = agent_for(&location.vault_dir)? {
        let (_, left) = client.status()?;
        eprintln!(
            "the vault is already unlocked; it locks after {} without use",
            describe_duration(Duration::from_secs(left))
        );
        return Ok(ExitCode::SUCCESS);
    }

    // 1. Check the password in this process, where a wrong one is a typed error.
    let unlock = match Vault::inspect(&location.vault_dir, keystore.as_ref()) {
        Err(rackside_vault::Error::NotFound { .. }) => {
            create_vault(&location.vault_dir, None, keystore.as_ref())?.close()?;
            eprintln!(
                "note: created a vault without a password in {}; set one with `rackside vault \
                 passwd`",
                location.vault_dir.display()
            );
            Unlock::without_password()
        }
        Err(error) => return Err(error.into()),
        Ok(_) if args.quick => Unlock::quick(),
        Ok(status) if status.password_set => {
            Unlock::with_password(input.vault_password(&location.vault_dir)?)
        }
        Ok(_) => Unlock::without_password(),
    };
    let check = Unlock {
        password: unlock.password.clone(),
        quick: unlock.quick,
    };
    Vault::open(&location.vault_dir, check, keystore.as_ref())?.close()?;

    // 2. Start the agent and hand it the same unlock.
    let socket = agent::default_socket_path()?;
    stop_locked_agent(&socket, &location.vault_dir)?;
    let mut child = spawn_agent(&args.options, args.timeout)?;
    let mut client = wait_for_agent(&socket, &mut child)?;
    client.unlock(unlock)?;
    eprintln!(
        "unlocked the vault in {} for later commands; it locks after {timeout} without use, or \
         now with `rackside lock`",
        location.vault_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `rackside lock`: locks the agent's vault at once, which also stops the agent.
pub fn lock(_args: LockArgs) -> anyhow::Result<ExitCode> {
    let socket = agent::default_socket_path()?;
    if !socket.exists() {
        eprintln!("no vault agent is running; the vault is locked");
        return Ok(ExitCode::SUCCESS);
    }
    match BlockingClient::connect(&socket) {
        Ok(mut client) => {
            client.lock()?;
            eprintln!("locked the vault: the agent dropped its keys and stopped");
        }
        Err(error) => {
            tracing::debug!(%error, "no agent responded on the socket");
            eprintln!("no vault agent is running; the vault is locked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn init(
    location: &Location,
    input: &Input,
    keystore: &dyn DeviceKeyStore,
    no_password: bool,
) -> anyhow::Result<ExitCode> {
    let password = if no_password {
        None
    } else {
        let password = input.new_secret(
            "New vault password",
            "--password-stdin",
            input.password_stdin,
        )?;
        rackside_vault::check_password(&password)?;
        Some(password)
    };
    let with_password = password.is_some();
    create_vault(&location.vault_dir, password, keystore)?.close()?;
    eprintln!(
        "created the vault in {} ({}), device secret in {}",
        location.vault_dir.display(),
        if with_password {
            "with a password"
        } else {
            "without a password: the device secret alone unlocks it"
        },
        keystore.describe()
    );
    Ok(ExitCode::SUCCESS)
}

fn status(location: &Location, keystore: &dyn DeviceKeyStore) -> anyhow::Result<ExitCode> {
    let status = match Vault::inspect(&location.vault_dir, keystore) {
        Ok(status) => status,
        Err(rackside_vault::Error::NotFound { .. }) => {
            outln!(
                "vault:          none yet in {}",
                location.vault_dir.display()
            );
            outln!("                (created by `rackside vault init` or the first command)");
            outln!("device secret:  {}", keystore.describe());
            return Ok(ExitCode::SUCCESS);
        }
        Err(error) => return Err(error.into()),
    };
    print_status(&status);
    outln!("agent:          {}", agent_state(&location.vault_dir)?);
    Ok(ExitCode::SUCCESS)
}

fn print_status(status: &VaultStatus) {
    let kdf = &status.kdf;
    outln!("vault:          {}", status.path.display());
    outln!(
        "password:       {}",
        if status.password_set {
            "set"
        } else {
            "not set"
        }
    );
    outln!(
        "key derivation: Argon2id, {} KiB, {} passes, {} lane(s){}",
        kdf.m_cost_kib,
        kdf.t_cost,
        kdf.p_cost,
        if status.password_set {
            ""
        } else {
            " (unused until a password is set)"
        }
    );
    outln!(
        "quick unlock:   {}",
        if status.quick_unlock {
            "enabled"
        } else {
            "disabled"
        }
    );
    outln!("device secret:  {}", status.keystore);
    outln!("database:       {} bytes", status.database_bytes);
}

/// Describes what the agent on the socket does for this vault, in one phrase.
fn agent_state(vault_dir: &Path) -> anyhow::Result<String> {
    let socket = agent::default_socket_path()?;
    let Ok(mut client) = BlockingClient::connect(&socket) else {
        return Ok(format!(
            "not running (socket {}); `rackside unlock` starts it",
            socket.display()
        ));
    };
    Ok(match client.status()? {
        (Some(status), left) if same_folder(&status.path, vault_dir) => format!(
            "unlocked, locks after {} more without use",
            describe_duration(Duration::from_secs(left))
        ),
        (Some(status), _) => format!(
            "running for another vault ({}) on {}",
            status.path.display(),
            socket.display()
        ),
        (None, _) => "running but locked".to_owned(),
    })
}

fn passwd(
    location: &Location,
    input: &Input,
    keystore: &dyn DeviceKeyStore,
    remove: bool,
) -> anyhow::Result<ExitCode> {
    let status = Vault::inspect(&location.vault_dir, keystore)?;
    let current = if status.password_set {
        Some(input.vault_password(&location.vault_dir)?)
    } else {
        None
    };
    let unlock = match &current {
        Some(password) => Unlock::with_password(password.clone()),
        None => Unlock::without_password(),
    };
    let mut vault = Vault::open(&location.vault_dir, unlock, keystore)?;

    if remove {
        let Some(current) = current else {
            return Err(Failure::usage("the vault has no password to remove").into());
        };
        vault.change_password(Some(&current), None, keystore)?;
        eprintln!(
            "removed the vault password: the device secret alone unlocks it now; quick unlock \
             is off"
        );
        return Ok(ExitCode::SUCCESS);
    }

    let new = input.new_secret(
        "New vault password",
        "--password-stdin",
        input.password_stdin,
    )?;
    rackside_vault::check_password(&new)?;
    if current.is_none() {
        // A vault made without a password stores the smallest parameters; calibrate now.
        let calibrated = KdfChoice::default().resolve()?;
        if calibrated.at_least(&status.kdf) && calibrated != status.kdf {
            vault.raise_parameters(None, calibrated, keystore)?;
        }
    }
    vault.change_password(current.as_ref(), Some(&new), keystore)?;
    eprintln!(
        "vault password {}; the database was not rewritten, quick unlock is off",
        if current.is_some() { "changed" } else { "set" }
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs the agent in this process until it locks (by request or idle time) or is stopped.
async fn run_agent(
    location: &Location,
    keystore: Box<dyn DeviceKeyStore>,
    idle_timeout_secs: u64,
) -> anyhow::Result<ExitCode> {
    let keystore: Arc<dyn DeviceKeyStore> = Arc::from(keystore);
    let mut config = AgentConfig::new(location.vault_dir.clone(), keystore)?;
    config.idle_timeout = Duration::from_secs(idle_timeout_secs);
    let handle = agent::serve(config).await?;
    tracing::info!(socket = %handle.socket_path().display(), "vault agent started");
    handle.wait().await;
    tracing::info!("vault agent stopped");
    Ok(ExitCode::SUCCESS)
}

/// Stops an agent that runs locked on `socket`, so that a fresh one can take it; refuses to
/// touch an unlocked agent of another vault.
fn stop_locked_agent(socket: &Path, vault_dir: &Path) -> anyhow::Result<()> {
    let Ok(mut client) = BlockingClient::connect(socket) else {
        return Ok(());
    };
    match client.status()? {
        (Some(status), _) if !same_folder(&status.path, vault_dir) => Err(Failure::usage(format!(
            "the agent on {} holds another vault ({}) unlocked; run `rackside lock` first, or \
             set RACKSIDE_AGENT_SOCKET to use a separate agent",
            socket.display(),
            status.path.display()
        ))
        .into()),
        _ => {
            client.request(&agent::Request::Shutdown)?;
            let deadline = Instant::now() + Duration::from_secs(2);
            while socket.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(())
        }
    }
}

/// Starts `rackside vault agent` detached: its own process group, no terminal, no inherited
/// passwords.
fn spawn_agent(options: &VaultOptions, timeout: Duration) -> anyhow::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;

    let exe = std::env::current_exe()?;
    let mut command = std::process::Command::new(exe);
    command
        .args(["vault", "agent", "--idle-timeout-secs"])
        .arg(timeout.as_secs().to_string())
        .env_remove(VAULT_PASSWORD_ENV)
        .env_remove("RACKSIDE_PASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    if let Some(dir) = &options.config_dir {
        command.arg("--config-dir").arg(dir);
    }
    // The agent logs no secret, so its log may go to a file for troubleshooting.
    if let Some(path) = std::env::var_os(AGENT_LOG_ENV) {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        command.stderr(file);
    }
    command.spawn().map_err(|error| {
        Failure::new(
            ExitKind::Failure,
            format!("failed to start the vault agent: {error}"),
        )
        .into()
    })
}

/// Waits until the agent listens on `socket`.
fn wait_for_agent(
    socket: &Path,
    child: &mut std::process::Child,
) -> anyhow::Result<BlockingClient> {
    let deadline = Instant::now() + AGENT_START_TIMEOUT;
    loop {
        if let Ok(client) = BlockingClient::connect(socket) {
            return Ok(client);
        }
        if let Some(status) = child.try_wait()? {
            return Err(Failure::new(
                ExitKind::Failure,
                format!(
                    "the vault agent exited ({status}) before listening on {}; set \
                     {AGENT_LOG_ENV}=FILE and run `rackside unlock` again to see why",
                    socket.display()
                ),
            )
            .into());
        }
        if Instant::now() >= deadline {
            return Err(Failure::new(
                ExitKind::Failure,
                format!(
                    "the vault agent did not listen on {} within {} s",
                    socket.display(),
                    AGENT_START_TIMEOUT.as_secs()
                ),
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Parses an idle timeout such as `90s`, `15m` or `2h` (a bare number is minutes).
///
/// # Errors
/// A message naming the value and the accepted forms.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "m"),
    };
    let value: u64 = number
        .parse()
        .map_err(|_| format!("invalid timeout {text:?}; use a number with s, m or h, like 15m"))?;
    let seconds = match unit {
        "s" => Some(value),
        "m" => value.checked_mul(60),
        "h" => value.checked_mul(3600),
        _ => None,
    }
    .filter(|seconds| (10..=7 * 24 * 3600).contains(seconds))
    .ok_or_else(|| {
        format!("invalid timeout {text:?}; use 10s to 168h, with s, m or h, like 15m")
    })?;
    Ok(Duration::from_secs(seconds))
}

/// Formats a duration as minutes and seconds, for messages.
fn describe_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    match (secs / 60, secs % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    }
}

/// Password input of the vault commands: standard input (one line per password requested, in
/// the order requested), RACKSIDE_VAULT_PASSWORD for the current vault password, or a terminal
/// prompt.
struct Input {
    password_stdin: bool,
    interactive: bool,
}

impl Input {
    fn new(options: &VaultOptions) -> Self {
        let interactive = !options.non_interactive
            && std::io::stdin().is_terminal()
            && std::io::stderr().is_terminal();
        Self {
            password_stdin: options.password_stdin,
            interactive,
        }
    }

    /// Returns the source of the current vault password when standard input is not used.
    fn source(&self) -> PasswordSource {
        PasswordSource {
            interactive: self.interactive,
        }
    }

    /// Opens the vault in `dir` in this process, reading its password (if it has one) as
    /// [`Input::vault_password`] does. A missing vault is created without a password when
    /// `create` is set.
    fn open(
        &self,
        dir: &Path,
        keystore: &dyn DeviceKeyStore,
        create: bool,
    ) -> anyhow::Result<Vault> {
        if !self.password_stdin {
            return open_direct(dir, keystore, self.source(), create);
        }
        match Vault::inspect(dir, keystore) {
            Ok(status) if status.password_set => {
                let password = self.vault_password(dir)?;
                Ok(Vault::open(dir, Unlock::with_password(password), keystore)?)
            }
            _ => open_direct(dir, keystore, self.source(), create),
        }
    }

    /// Opens the vault in `dir` for `command`, which needs the vault password even while an
    /// agent holds the vault unlocked, so that the agent alone cannot export the records or
    /// add a key. A vault without a password opens as [`Input::open`] does.
    ///
    /// # Errors
    /// A usage error when the vault has a password and there is no way to read it.
    fn open_again(
        &self,
        dir: &Path,
        keystore: &dyn DeviceKeyStore,
        command: &str,
    ) -> anyhow::Result<Vault> {
        let password_set = matches!(
            Vault::inspect(dir, keystore),
            Ok(status) if status.password_set
        );
        let password_available = self.password_stdin
            || self.interactive
            || std::env::var_os(VAULT_PASSWORD_ENV).is_some();
        if password_set && !password_available {
            return Err(Failure::usage(format!(
                "{command} needs the vault password even while unlocked: pass it with \
                 --password-stdin or at the prompt"
            ))
            .into());
        }
        self.open(dir, keystore, false)
    }

    /// Reads the current vault password: standard input with `--password-stdin`, else
    /// RACKSIDE_VAULT_PASSWORD or a prompt.
    fn vault_password(&self, vault_dir: &Path) -> anyhow::Result<Secret> {
        if self.password_stdin {
            return read_line("vault password");
        }
        self.source().password(vault_dir)
    }

    /// Reads a secret that exists already (an export's passphrase) from one line or one prompt.
    /// `label` is the prompt and `flag` the option that reads it from standard input.
    fn secret(&self, label: &str, flag: &str, from_stdin: bool) -> anyhow::Result<Secret> {
        let name = label.to_lowercase();
        if from_stdin {
            return read_line(&name);
        }
        if !self.interactive {
            return Err(Failure::usage(format!(
                "{name} needed: pass it on standard input with {flag}, or run in a terminal"
            ))
            .into());
        }
        Ok(Secret::new(rpassword::prompt_password(format!(
            "{label}: "
        ))?))
    }

    /// Reads a new secret from one line, or from a prompt typed twice.
    fn new_secret(&self, label: &str, flag: &str, from_stdin: bool) -> anyhow::Result<Secret> {
        let first = self.secret(label, flag, from_stdin)?;
        if from_stdin {
            return Ok(first);
        }
        let again = Secret::new(rpassword::prompt_password(format!("{label} again: "))?);
        if first != again {
            return Err(Failure::usage(format!(
                "the two {} entries differ; nothing changed",
                label.to_lowercase()
            ))
            .into());
        }
        Ok(first)
    }
}

/// Checks an export passphrase against the vault's password policy, naming it a passphrase.
///
/// # Errors
/// A usage error with the policy's reason.
fn check_passphrase(passphrase: &Secret) -> anyhow::Result<()> {
    match rackside_vault::check_password(passphrase) {
        Err(rackside_vault::Error::WeakPassword { reason }) => Err(Failure::usage(format!(
            "export passphrase rejected: {reason}; choose a longer or less guessable one"
        ))
        .into()),
        other => Ok(other?),
    }
}

/// Reads one line of standard input as a secret.
fn read_line(label: &str) -> anyhow::Result<Secret> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let secret = Secret::new(line.trim_end_matches(['\r', '\n']).to_owned());
    line.zeroize();
    if secret.is_empty() {
        return Err(Failure::usage(format!("no {label} line on standard input")).into());
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_units_are_parsed() {
        assert_eq!(parse_timeout("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_timeout("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_timeout("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_timeout("5").unwrap(), Duration::from_secs(300));
    }

    #[test]
    fn timeout_out_of_range_is_rejected() {
        assert!(parse_timeout("1s").is_err());
        assert!(parse_timeout("200h").is_err());
        assert!(parse_timeout("15x").is_err());
        assert!(parse_timeout("m").is_err());
    }

    #[test]
    fn duration_reads_as_minutes_and_seconds() {
        assert_eq!(describe_duration(Duration::from_secs(45)), "45 s");
        assert_eq!(describe_duration(Duration::from_secs(900)), "15 min");
        assert_eq!(describe_duration(Duration::from_secs(61)), "1 min 1 s");
    }
}
