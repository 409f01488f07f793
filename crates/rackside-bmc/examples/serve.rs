//! Serves a simulated BMC until Ctrl-C, for trying clients and validators by hand.
//!
//! ```text
//! RACKSIDE_BMC_PASSWORD=secret cargo run -p rackside-bmc --example serve -- \
//!     [--mockup DIR] [--port N] [--state-dir DIR] [--user NAME] [--fault NAME]...
//! ```
//!
//! The first line printed is the HTTPS base URL.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use rackside_bmc::{BmcConfig, DataSource, Fault, Secret};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("serve: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let mut state_dir = std::env::temp_dir().join("rackside-bmc-example");
    let mut port = 0u16;
    let mut user = "root".to_owned();
    let mut data = DataSource::Embedded;
    let mut faults = Vec::new();
    let mut power_delay = Duration::from_secs(3);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("missing value after {arg}"))
        };
        match arg.as_str() {
            "--mockup" => data = DataSource::Mockup(PathBuf::from(value()?)),
            "--port" => {
                port = value()?
                    .parse()
                    .map_err(|e| format!("invalid --port: {e}"))?
            }
            "--state-dir" => state_dir = PathBuf::from(value()?),
            "--user" => user = value()?,
            "--fault" => faults.push(value()?.parse::<Fault>().map_err(|e| e.to_string())?),
            "--power-delay-ms" => {
                let ms: u64 = value()?
                    .parse()
                    .map_err(|e| format!("invalid --power-delay-ms: {e}"))?;
                power_delay = Duration::from_millis(ms);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let password = std::env::var("RACKSIDE_BMC_PASSWORD")
        .map_err(|_| "set RACKSIDE_BMC_PASSWORD to the first user's password".to_owned())?;

    let mut config = BmcConfig::new(state_dir);
    config.listen.set_port(port);
    config.data = data;
    config.first_user = Some((user, Secret::new(password)));
    config.faults = faults.into_iter().collect();
    config.power_delay = power_delay;
    let bmc = rackside_bmc::start(config)
        .await
        .map_err(|e| e.to_string())?;
    println!("https://{}", bmc.local_addr());
    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
    bmc.shutdown().await;
    Ok(())
}
