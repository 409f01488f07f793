//! `rackside bmc`: runs the BMC simulator until interrupted.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use rackside_bmc::{BmcConfig, DataSource, Fault, Faults, TlsSource};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};

use crate::cli::{BmcAction, BmcArgs};
use crate::failure::Failure;
use crate::output::outln;

/// Starts the simulator from the command line and serves until Ctrl-C or SIGTERM.
pub async fn run(args: BmcArgs) -> anyhow::Result<ExitCode> {
    if let Some(BmcAction::Button { socket }) = args.action {
        return crate::commands::nearby::press_button(socket).await;
    }
    if args.list_faults {
        for fault in Fault::ALL {
            outln!("{:<26} {}", fault.name(), fault.description());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let count = usize::from(args.count);
    let link = crate::commands::nearby::bmc_link_settings(&args)?;
    let mut config = config_from_args(args)?;
    if let Some(link) = &link {
        link.prepare_certificate(&mut config)?;
    }
    if count > 1 {
        if link.is_some() {
            return Err(
                Failure::usage("--link-socket serves one BMC; drop --count or the link").into(),
            );
        }
        return run_fleet(config, count).await;
    }
    let link = link.map(|link| link.into_options(&config));
    let running = rackside_bmc::start(config).await?;
    let fingerprint = Sha256::digest(running.certificate_der().as_ref());
    outln!("rackside bmc listening on https://{}", running.local_addr());
    outln!("certificate SHA-256 {}", colon_hex(&fingerprint));
    if let Some(options) = link {
        let socket = options.socket.clone();
        rackside_bmc::link::serve_link(running.state(), options).await?;
        outln!(
            "link on {} (off until `rackside bmc button --socket {}`)",
            socket.display(),
            socket.display()
        );
    }
    wait_for_shutdown_signal().await;
    eprintln!("rackside bmc stopping");
    running.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Serves `count` BMCs and prints one line per BMC: address, service tag, certificate
/// fingerprint.
async fn run_fleet(config: BmcConfig, count: usize) -> anyhow::Result<ExitCode> {
    let fleet = rackside_bmc::start_fleet(config, count).await?;
    outln!("rackside bmc serving {count} BMCs");
    for running in &fleet {
        let fingerprint = Sha256::digest(running.certificate_der().as_ref());
        outln!(
            "https://{} {} SHA-256 {}",
            running.local_addr(),
            running.service_tag(),
            colon_hex(&fingerprint)
        );
    }
    wait_for_shutdown_signal().await;
    eprintln!("rackside bmc stopping");
    for running in fleet {
        running.shutdown().await;
    }
    Ok(ExitCode::SUCCESS)
}

fn config_from_args(args: BmcArgs) -> anyhow::Result<BmcConfig> {
    let mut faults = Faults::default();
    for name in &args.faults {
        let fault: Fault = name.parse().map_err(|_| {
            Failure::usage(format!(
                "unknown fault {name:?}; `rackside bmc --list-faults` lists the names"
            ))
        })?;
        faults.insert(fault);
    }
    let user = args.user.ok_or_else(|| {
        Failure::usage(
            "no BMC account: pass --user NAME or set RACKSIDE_BMC_USER; the simulator has no \
             built-in account",
        )
    })?;
    let password = first_password(args.password_file.as_ref())?;
    let state_dir = match args.state_dir {
        Some(dir) => dir,
        None => directories::ProjectDirs::from("", "", "rackside")
            .map(|dirs| dirs.data_dir().join("bmc"))
            .ok_or_else(|| Failure::usage("no home folder found; pass --state-dir DIR"))?,
    };
    let tls = match (args.cert, args.key) {
        (Some(cert), Some(key)) => TlsSource::Files { cert, key },
        _ => TlsSource::Generated,
    };
    let data = match args.mockup {
        Some(dir) if dir.is_dir() => DataSource::Mockup(dir),
        Some(dir) => {
            return Err(Failure::usage(format!(
                "mockup folder {} not found; give a DMTF mockup folder (short form or one \
                 holding redfish/v1)",
                dir.display()
            ))
            .into())
        }
        None => DataSource::Embedded,
    };
    let mut event_roots = Vec::new();
    for path in &args.event_cas {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|e| Failure::usage(format!("invalid --event-ca {}: {e}", path.display())))?;
        event_roots.extend(certs);
    }
    let mut config = BmcConfig::new(state_dir);
    config.events.extra_roots = event_roots;
    config.listen = args.listen;
    config.tls = tls;
    config.data = data;
    config.first_user = Some((user, password.into()));
    config.basic_auth = !args.no_basic_auth;
    config.max_sessions_per_user = args.session_limit;
    config.session_idle_timeout = Duration::from_secs(args.session_idle_timeout);
    config.power_delay = Duration::from_secs(args.power_delay);
    config.body_read_timeout = Duration::from_secs(args.body_read_timeout);
    config.max_connections_per_client = args.connections_per_client;
    config.faults = faults;
    Ok(config)
}

/// Reads the first account's password from `--password-file`, RACKSIDE_BMC_PASSWORD or a prompt.
fn first_password(file: Option<&PathBuf>) -> anyhow::Result<String> {
    if let Some(path) = file {
        let handle = std::fs::File::open(path).map_err(|error| {
            Failure::usage(format!(
                "failed to read password file {}: {error}",
                path.display()
            ))
        })?;
        let mut line = String::new();
        std::io::BufReader::new(handle).read_line(&mut line)?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        if password.is_empty() {
            return Err(Failure::usage(format!(
                "password file {} is empty; put the password on its first line",
                path.display()
            ))
            .into());
        }
        return Ok(password);
    }
    if let Ok(password) = std::env::var("RACKSIDE_BMC_PASSWORD") {
        if !password.is_empty() {
            return Ok(password);
        }
    }
    if std::io::stdin().is_terminal() {
        return Ok(rpassword::prompt_password(
            "Password for the BMC's first account: ",
        )?);
    }
    Err(Failure::usage(
        "no BMC password: set RACKSIDE_BMC_PASSWORD or pass --password-file FILE; there is no \
         built-in default password",
    )
    .into())
}

/// Formats bytes as uppercase hex pairs joined by colons.
pub fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

async fn wait_for_shutdown_signal() {
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
