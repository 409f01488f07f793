//! `rackside boot NAME|--all|--group G show|set TARGET [--once|--continuous] [--mode M]`.

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use rackside_redfish::{BootMode, BootOverride, BootOverrideEnabled};
use serde_json::json;

use crate::cli::{ClientOptions, Target};
use crate::connect::{Connection, Context};
use crate::fleet::{self, write_failed, Done, RunOptions};

/// `rackside boot`
#[derive(Debug, Args)]
pub struct BootArgs {
    #[command(flatten)]
    pub client: ClientOptions,

    #[command(flatten)]
    pub target: Target,

    #[command(subcommand)]
    pub command: BootCommand,

    /// Print JSON
    #[arg(long, global = true)]
    pub json: bool,
}

/// `rackside boot ...`
#[derive(Debug, Subcommand)]
pub enum BootCommand {
    /// Show the boot source override and the targets the system offers
    Show,
    /// Set the boot source override to TARGET, one of the values `boot show` lists (such as
    /// Pxe, Hdd, Cd, BiosSetup)
    Set {
        /// The boot target
        #[arg(value_name = "TARGET")]
        boot_target: String,
        /// Apply to the next boot only (the default); the BMC then sets it back to Disabled
        #[arg(long, conflicts_with = "continuous")]
        once: bool,
        /// Apply to every boot until changed
        #[arg(long)]
        continuous: bool,
        /// Boot mode
        #[arg(long, value_enum)]
        mode: Option<ModeArg>,
    },
}

/// A boot mode on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModeArg {
    /// UEFI
    Uefi,
    /// Legacy BIOS
    Legacy,
}

/// Runs the boot command on the selected servers.
pub async fn run(context: Context, args: BootArgs) -> anyhow::Result<ExitCode> {
    let options = RunOptions {
        target: &args.target,
        json: args.json,
        label: "boot",
    };
    let command = &args.command;
    fleet::run(context, options, |connection, _| async move {
        let result = apply(&connection, command).await;
        (connection, result)
    })
    .await
}

async fn apply(connection: &Connection, command: &BootCommand) -> anyhow::Result<Done> {
    let client = &connection.client;
    let system = fleet::first_system(client).await?;
    match command {
        BootCommand::Show => {
            let current = client.boot_override(&system).await?;
            Ok(show(&current))
        }
        BootCommand::Set {
            boot_target,
            continuous,
            mode,
            ..
        } => {
            let enabled = if *continuous {
                BootOverrideEnabled::Continuous
            } else {
                BootOverrideEnabled::Once
            };
            let mode = mode.map(|mode| match mode {
                ModeArg::Uefi => BootMode::Uefi,
                ModeArg::Legacy => BootMode::Legacy,
            });
            let outcome = client
                .set_boot_override(&system, boot_target, enabled, mode)
                .await
                .map_err(write_failed)?;
            let after = client.boot_override(&system).await?;
            let mut done = show(&after);
            done.summary = format!("set: {}", done.summary);
            done.notes = outcome.notes;
            Ok(done)
        }
    }
}

fn show(current: &BootOverride) -> Done {
    let text = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".into());
    let allowed = current
        .allowed_targets
        .as_ref()
        .map(|list| list.join(", "))
        .unwrap_or_else(|| "not listed".into());
    Done {
        summary: format!(
            "target {}, enabled {}, mode {}",
            text(&current.target),
            text(&current.enabled),
            text(&current.mode)
        ),
        lines: vec![
            format!("System:   {}", current.system),
            format!("Target:   {}", text(&current.target)),
            format!("Enabled:  {}", text(&current.enabled)),
            format!("Mode:     {}", text(&current.mode)),
            format!("Offered:  {allowed}"),
        ],
        notes: Vec::new(),
        data: json!(current),
    }
}
