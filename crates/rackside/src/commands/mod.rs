//! One module per subcommand; [`run`] dispatches.

mod bmc;
mod ca;
mod demo;
mod health;
mod inventory;
mod logs;
mod server;
pub mod vault;

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::connect::Context;

/// Runs the parsed command line and returns the exit code of a command that finished.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Bmc(args) => bmc::run(args).await,
        Command::Demo => demo::run().await,
        Command::Server(args) => server::run(Context::new(&args.client)?, args.command).await,
        Command::Ca(args) => ca::run(Context::new(&args.client)?, args.command),
        Command::Vault(args) => vault::run(args).await,
        Command::Unlock(args) => vault::unlock(args),
        Command::Lock(args) => vault::lock(args),
        Command::Health(args) => health::run(Context::new(&args.client)?, args).await,
        Command::Inventory(args) => inventory::run(Context::new(&args.client)?, args).await,
        Command::Logs(args) => logs::run(Context::new(&args.client)?, args).await,
    }
}
