//! `rackside console serve`: run the fleet console.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use rackside_console::{ConsoleConfig, PollSettings, RelayConfig, Severity};
use zeroize::Zeroizing;

use crate::failure::Failure;

/// `rackside console`
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    #[command(subcommand)]
    pub command: ConsoleCommand,
}

/// The console's subcommands.
#[derive(Debug, Subcommand)]
pub enum ConsoleCommand {
    /// Serve the console's HTTPS API and event listener until interrupted
    Serve(Box<ServeArgs>),

    /// Add a console to read alerts from: judge and pin its certificate, store the login
    Add(Box<crate::commands::alerts::ConsoleAddArgs>),

    /// Replace the stored login password of a console, after checking that it logs in
    Passwd(Box<crate::commands::alerts::ConsolePasswdArgs>),

    /// List the consoles this client added
    List(Box<crate::commands::alerts::ConsoleListArgs>),
}

/// `rackside console serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:8445")]
    pub listen: SocketAddr,

    /// Folder for the alert database and the certificate [default: the platform's data folder]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Host name BMCs use to reach the event listener
    #[arg(long, default_value = "localhost", value_name = "HOST")]
    pub public_host: String,

    /// User name that clients log in with
    #[arg(long, env = "RACKSIDE_CONSOLE_USER", value_name = "NAME")]
    pub user: String,

    /// File whose first line is that user's password (at least 12 characters); without it
    /// the password comes from RACKSIDE_CONSOLE_PASSWORD
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// Relay base URL; with it, new alerts are pushed to subscribed devices
    #[arg(long, value_name = "URL", requires_all = ["relay_console_name", "relay_api_key_file"])]
    pub relay_url: Option<url::Url>,

    /// This console's name at the relay
    #[arg(long, value_name = "NAME")]
    pub relay_console_name: Option<String>,

    /// File whose first line is this console's API key at the relay
    #[arg(long, value_name = "FILE")]
    pub relay_api_key_file: Option<PathBuf>,

    /// The relay's certificate (PEM) to trust, for a relay with a self-signed certificate
    #[arg(long, value_name = "FILE")]
    pub relay_ca: Option<PathBuf>,

    /// Seconds between two polls of the health, inventory and logs of BMCs added with an
    /// account
    #[arg(long, default_value_t = 300, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(10..))]
    pub poll_interval: u64,

    /// Seconds between two reads of the inventory of each polled BMC
    #[arg(long, default_value_t = 3600, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(10..))]
    pub inventory_interval: u64,

    /// Maximum number of BMCs polled at once, and so of requests to BMCs in flight
    #[arg(long, default_value_t = 8, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=256))]
    pub poll_concurrency: u64,

    /// Seconds allowed for each request to a BMC while polling
    #[arg(long, default_value_t = 30, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub poll_timeout: u64,

    /// Seconds without a byte (keep-alive comments included) after which an SSE stream is
    /// reopened; the log is read at each poll while it is down
    #[arg(long, default_value_t = 300, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(10..=86_400))]
    pub sse_idle: u64,

    /// Minimum event severity that becomes an alert and is forwarded: ok, warning or
    /// critical. Events below it, such as logins, are only kept in the event log
    #[arg(long, default_value = "warning", value_name = "SEVERITY", value_parser = parse_severity)]
    pub min_severity: Severity,

    /// Redfish registry prefix (RegistryPrefixes) that push subscriptions and SSE streams are
    /// limited to. Repeat it for more; without it BMCs send every event
    #[arg(long = "event-registry", value_name = "PREFIX", value_parser = parse_registry_prefix)]
    pub event_registries: Vec<String>,
}

fn parse_registry_prefix(text: &str) -> Result<String, String> {
    if text.is_empty() || !text.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "{text:?} is not a Redfish registry prefix: use letters and digits only, such as Fan"
        ));
    }
    Ok(text.to_owned())
}

fn parse_severity(text: &str) -> Result<Severity, String> {
    match text.to_ascii_lowercase().as_str() {
        "ok" => Ok(Severity::OK),
        "warning" => Ok(Severity::Warning),
        "critical" => Ok(Severity::Critical),
        _ => Err(format!(
            "unknown severity {text:?}: use ok, warning or critical"
        )),
    }
}

/// Runs `rackside console ...`.
pub async fn run(args: ConsoleArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ConsoleCommand::Serve(serve) => serve_console(*serve).await,
        ConsoleCommand::Add(add) => crate::commands::alerts::console_add(*add).await,
        ConsoleCommand::Passwd(passwd) => crate::commands::alerts::console_passwd(*passwd).await,
        ConsoleCommand::List(list) => crate::commands::alerts::console_list(*list).await,
    }
}

async fn serve_console(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let state_dir = match args.state_dir {
        Some(dir) => dir,
        None => directories::ProjectDirs::from("", "", "rackside")
            .map(|dirs| dirs.data_dir().join("console"))
            .ok_or_else(|| Failure::usage("no home folder found; pass --state-dir DIR"))?,
    };
    let password = match &args.password_file {
        Some(path) => first_line(path)?,
        None => Zeroizing::new(std::env::var("RACKSIDE_CONSOLE_PASSWORD").map_err(|_| {
            Failure::usage(
                "no console password: pass --password-file FILE or set RACKSIDE_CONSOLE_PASSWORD",
            )
        })?),
    };
    if let Some(url) = args
        .relay_url
        .as_ref()
        .filter(|url| url.scheme() != "https")
    {
        return Err(Failure::usage(format!(
            "invalid --relay-url {url}: the relay is reached over HTTPS only; use https://"
        ))
        .into());
    }
    let relay = match (
        args.relay_url,
        args.relay_console_name,
        args.relay_api_key_file,
    ) {
        (Some(url), Some(console_name), Some(key_file)) => Some(RelayConfig {
            url,
            console_name,
            api_key: first_line(&key_file)?,
            ca_pem: match &args.relay_ca {
                Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                    Failure::usage(format!("cannot read --relay-ca {}: {e}", path.display()))
                })?),
                None => None,
            },
        }),
        _ => None,
    };
    let mut config = ConsoleConfig::new(state_dir);
    config.listen = args.listen;
    config.public_host = args.public_host;
    config.users = vec![(args.user, password)];
    config.relay = relay;
    config.min_severity = args.min_severity;
    config.poll = PollSettings {
        interval: Duration::from_secs(args.poll_interval),
        inventory_interval: Duration::from_secs(args.inventory_interval),
        concurrency: usize::try_from(args.poll_concurrency).unwrap_or(8),
        request_timeout: Duration::from_secs(args.poll_timeout),
        // Health, inventory and logs take some dozens of requests per BMC.
        device_timeout: Duration::from_secs((args.poll_timeout * 10).max(300)),
        registry_prefixes: args.event_registries,
        sse_idle: Duration::from_secs(args.sse_idle),
        ..PollSettings::default()
    };
    let console = rackside_console::start(config).await?;
    eprintln!("console listening on https://{}", console.addr);
    super::relay::wait_for_shutdown_signal().await;
    console.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

fn first_line(path: &std::path::Path) -> anyhow::Result<Zeroizing<String>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?,
    );
    let line = text.lines().next().unwrap_or("").trim().to_owned();
    if line.is_empty() {
        return Err(Failure::usage(format!(
            "{} is empty; put the secret on its first line",
            path.display()
        ))
        .into());
    }
    Ok(Zeroizing::new(line))
}
