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
    init_logging(cli.verbose);
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

/// The rackside crates, which `-v` and `-vv` raise to debug and trace.
const RACKSIDE_CRATES: [&str; 8] = [
    "rackside",
    "rackside_bmc",
    "rackside_console",
    "rackside_link",
    "rackside_redfish",
    "rackside_relay",
    "rackside_trust",
    "rackside_vault",
];

/// Sets up logging to standard error. `-v` (debug) and `-vv` (trace) raise the rackside crates
/// and win over the environment; without them `RACKSIDE_LOG`, else `RUST_LOG`, takes an
/// env-filter such as `debug` or `rackside_redfish=trace`. The default shows warnings and the
/// BMC's own info lines.
fn init_logging(verbose: u8) {
    let filter = match verbose {
        0 => tracing_subscriber::EnvFilter::try_from_env("RACKSIDE_LOG")
            .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rackside_bmc=info")),
        level => {
            let level = if level == 1 { "debug" } else { "trace" };
            let directives: Vec<String> = RACKSIDE_CRATES
                .iter()
                .map(|krate| format!("{krate}={level}"))
                .collect();
            tracing_subscriber::EnvFilter::new(format!("warn,{}", directives.join(",")))
        }
    };
    // Colour codes only on a terminal, so log files stay plain text.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
