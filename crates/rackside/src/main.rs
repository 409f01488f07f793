//! The `rackside` binary: parses arguments, sets up logging, runs one command and maps its
//! outcome to a documented exit code. All the work happens in the library crates.

mod cli;
mod commands;
mod connect;
mod failure;
mod fleet;
mod output;
mod store;
mod via;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::failure::ExitKind;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("rackside: failed to start the async runtime: {error}");
            return ExitKind::Failure.code();
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(error) => {
            let (kind, message) = failure::describe(&error);
            eprintln!("rackside: {message}");
            kind.code()
        }
    }
}

/// Logs go to standard error; `RACKSIDE_LOG` takes an env-filter such as `debug` or
/// `rackside_redfish=trace`. The default shows warnings and the BMC's own info lines.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RACKSIDE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rackside_bmc=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
