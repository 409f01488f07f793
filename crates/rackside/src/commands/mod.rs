//! One module per subcommand; [`run`] dispatches.

pub mod account;
pub mod alerts;
mod bmc;
pub mod boot;
mod ca;
pub mod capture;
pub mod console;
mod demo;
pub mod diag;
mod health;
pub mod identify;
mod inventory;
pub mod location;
mod logs;
pub mod nearby;
pub mod network;
pub mod power;
pub mod relay;
mod server;
pub mod subscribe;
pub mod vault;
mod watch;

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::connect::Context;

/// Runs the parsed command line and returns the exit code of a command that finished.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Bmc(args) => bmc::run(args).await,
        Command::Demo => demo::run().await,
        Command::Nearby(args) => nearby::run(args).await,
        Command::Relay(args) => relay::run(args).await,
        Command::Console(args) => console::run(args).await,
        Command::Alerts(args) => alerts::run(args).await,
        Command::Subscribe(args) => subscribe::subscribe(args).await,
        Command::Unsubscribe(args) => subscribe::unsubscribe(args).await,
        Command::Server(args) => server::run(Context::new(&args.client)?, args.command).await,
        Command::Ca(args) => ca::run(&args.client, args.command),
        Command::Vault(args) => vault::run(args).await,
        Command::Unlock(args) => vault::unlock(args),
        Command::Lock(args) => vault::lock(args),
        Command::Health(args) => health::run(Context::new(&args.client)?, args).await,
        Command::Inventory(args) => inventory::run(Context::new(&args.client)?, args).await,
        Command::Logs(args) => logs::run(Context::new(&args.client)?, args).await,
        Command::Power(args) => power::run(Context::new(&args.client)?, args).await,
        Command::Identify(args) => identify::run(Context::new(&args.client)?, args).await,
        Command::Network(args) => network::run(Context::new(&args.client)?, args).await,
        Command::Account(args) => account::run(Context::new(&args.client)?, args).await,
        Command::Boot(args) => boot::run(Context::new(&args.client)?, args).await,
        Command::Location(args) => location::run(Context::new(&args.client)?, args).await,
        Command::Capture(args) => capture::run(Context::new(&args.client)?, args).await,
        Command::Diag(args) => diag::run(Context::new(&args.client)?, args).await,
    }
}
