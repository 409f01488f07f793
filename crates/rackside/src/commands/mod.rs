//! One module per subcommand; [`run`] dispatches.

mod bmc;
mod ca;
mod demo;
mod health;
mod inventory;
mod logs;
mod server;

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::connect::Context;

/// Runs the parsed command line and returns the exit code of a command that finished.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Bmc(args) => bmc::run(args).await,
        Command::Demo => demo::run().await,
        Command::Server(command) => server::run(Context::new(&cli.global)?, command).await,
        Command::Ca(command) => ca::run(Context::new(&cli.global)?, command),
        Command::Health(args) => health::run(Context::new(&cli.global)?, args).await,
        Command::Inventory(args) => inventory::run(Context::new(&cli.global)?, args).await,
        Command::Logs(args) => logs::run(Context::new(&cli.global)?, args).await,
    }
}
