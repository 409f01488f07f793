//! `rackside relay`: run the push relay, and manage console API keys in its state folder.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use rackside_relay::apikeys::{ApiKeyStore, ConsoleName};
use rackside_relay::providers::{apns::ApnsConfig, fcm::FcmConfig, ProviderConfig};
use rackside_relay::queue::RetryPolicy;
use rackside_relay::RelayConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::failure::Failure;

/// `rackside relay`
#[derive(Debug, Args)]
pub struct RelayArgs {
    /// Folder for API key hashes, registrations, the VAPID key and the certificate
    /// [default: the platform's data folder]
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: RelayCommand,
}

/// The relay's subcommands.
#[derive(Debug, Subcommand)]
pub enum RelayCommand {
    /// Serve the relay's HTTPS API until interrupted
    Serve(Box<ServeArgs>),
    /// Add, list or revoke console API keys
    #[command(subcommand)]
    Key(KeyCommand),
}

/// `rackside relay key ...`
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create the API key of a console and print it once; only its hash is stored
    Add {
        /// Console name (A-Z, a-z, 0-9, '.', '_', '-')
        console: String,
    },
    /// List the consoles that hold a key, with creation time and hash prefix
    List,
    /// Revoke a console's key; its pushes fail from the next request on
    Revoke {
        /// Console name
        console: String,
    },
}

/// `rackside relay serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:8444")]
    pub listen: SocketAddr,

    /// VAPID contact (mailto: or https: URI); enables Web Push
    #[arg(long, value_name = "URI")]
    pub vapid_subject: Option<String>,

    /// FCM service-account JSON file; enables FCM
    #[arg(long, value_name = "FILE")]
    pub fcm_service_account: Option<PathBuf>,

    /// FCM API base URL
    #[arg(
        long,
        default_value = "https://fcm.googleapis.com/",
        value_name = "URL"
    )]
    pub fcm_base_url: url::Url,

    /// APNs signing key (.p8); enables APNs together with the three ids below
    #[arg(long, value_name = "FILE", requires_all = ["apns_key_id", "apns_team_id", "apns_topic"])]
    pub apns_key: Option<PathBuf>,

    /// APNs key id (the token's kid)
    #[arg(long, value_name = "ID")]
    pub apns_key_id: Option<String>,

    /// Apple developer team id (the token's iss)
    #[arg(long, value_name = "ID")]
    pub apns_team_id: Option<String>,

    /// App bundle id sent as apns-topic
    #[arg(long, value_name = "BUNDLE")]
    pub apns_topic: Option<String>,

    /// APNs API base URL
    #[arg(
        long,
        default_value = "https://api.push.apple.com/",
        value_name = "URL"
    )]
    pub apns_base_url: url::Url,

    /// Seconds after which the APNs provider token is replaced (1200 to 3600)
    #[arg(long, default_value_t = 2400, value_name = "SECONDS")]
    pub apns_token_refresh: u64,

    /// Extra CA certificate (PEM) trusted for provider connections; repeatable
    #[arg(long = "provider-ca", value_name = "FILE")]
    pub provider_cas: Vec<PathBuf>,

    /// Maximum alerts waiting for delivery; more pushes get 503
    #[arg(long, default_value_t = 10_000)]
    pub queue_capacity: usize,

    /// Maximum provider requests in flight
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,

    /// Delivery attempts per alert, the first one included
    #[arg(long, default_value_t = 4)]
    pub max_attempts: u32,
}

/// Runs `rackside relay ...`.
pub async fn run(args: RelayArgs) -> anyhow::Result<ExitCode> {
    let state_dir = match args.state_dir {
        Some(dir) => dir,
        None => directories::ProjectDirs::from("", "", "rackside")
            .map(|dirs| dirs.data_dir().join("relay"))
            .ok_or_else(|| Failure::usage("no home folder found; pass --state-dir DIR"))?,
    };
    match args.command {
        RelayCommand::Key(command) => manage_keys(&state_dir, command),
        RelayCommand::Serve(serve) => serve_relay(state_dir, *serve).await,
    }
}

fn manage_keys(state_dir: &std::path::Path, command: KeyCommand) -> anyhow::Result<ExitCode> {
    let store = ApiKeyStore::open(state_dir);
    match command {
        KeyCommand::Add { console } => {
            let console = ConsoleName::parse(&console)?;
            let key = store.add(&console)?;
            // Shown this once: the relay keeps only its SHA-256.
            println!("{}", key.expose());
            eprintln!("API key for console {console} created; it is shown only now");
        }
        KeyCommand::List => {
            let keys = store.list()?;
            if keys.is_empty() {
                eprintln!(
                    "no console holds an API key; add one with `rackside relay key add NAME`"
                );
            }
            for key in keys {
                let created = i64::try_from(key.created)
                    .ok()
                    .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
                    .map_or_else(
                        || format!("at Unix time {}", key.created),
                        |time| time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    );
                println!(
                    "{}\tcreated {created}\tsha256 {}...",
                    key.console, key.fingerprint
                );
            }
        }
        KeyCommand::Revoke { console } => {
            let console = ConsoleName::parse(&console)?;
            store.revoke(&console)?;
            eprintln!("API key of console {console} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn serve_relay(state_dir: PathBuf, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut extra_roots = Vec::new();
    for path in &args.provider_cas {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                Failure::usage(format!("invalid --provider-ca {}: {e}", path.display()))
            })?;
        extra_roots.extend(certs);
    }
    let apns = match (
        args.apns_key,
        args.apns_key_id,
        args.apns_team_id,
        args.apns_topic,
    ) {
        (Some(key_file), Some(key_id), Some(team_id), Some(topic)) => Some(ApnsConfig {
            key_file,
            key_id,
            team_id,
            topic,
            base_url: args.apns_base_url,
            token_refresh: Duration::from_secs(args.apns_token_refresh),
        }),
        _ => None,
    };
    let mut config = RelayConfig::new(state_dir);
    config.listen = args.listen;
    config.queue_capacity = args.queue_capacity;
    config.concurrency = args.concurrency;
    config.retry = RetryPolicy {
        max_attempts: args.max_attempts.max(1),
        ..RetryPolicy::default()
    };
    config.providers = ProviderConfig {
        webpush_subject: args.vapid_subject,
        fcm: args.fcm_service_account.map(|service_account| FcmConfig {
            service_account,
            base_url: args.fcm_base_url,
        }),
        apns,
        extra_roots,
        request_timeout: Duration::from_secs(15),
    };
    let no_provider = config.providers.webpush_subject.is_none()
        && config.providers.fcm.is_none()
        && config.providers.apns.is_none();
    let relay = rackside_relay::start(config).await?;
    eprintln!("relay listening on https://{}", relay.addr);
    if no_provider {
        eprintln!(
            "warning: no push provider is enabled, so every device registration is rejected; \
             pass --vapid-subject, --fcm-service-account or --apns-key"
        );
    }
    wait_for_shutdown_signal().await;
    relay.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn wait_for_shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
