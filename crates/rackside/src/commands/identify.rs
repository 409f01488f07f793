//! `rackside identify NAME|--all|--group G on|off|blink [--for DURATION]`.
//!
//! The LED of the computer system is used when it has one, else that of its chassis.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use rackside_redfish::{Client, Error as RedfishError, Indicator};
use serde_json::json;

use crate::cli::{ClientOptions, Target};
use crate::connect::{Connection, Context};
use crate::fleet::{self, parse_duration, write_failed, Done, RunOptions};
use crate::via::BmcTransport;

/// `rackside identify`
#[derive(Debug, Args)]
pub struct IdentifyArgs {
    #[command(flatten)]
    pub client: ClientOptions,

    #[command(flatten)]
    pub target: Target,

    #[command(subcommand)]
    pub setting: LedSetting,

    /// Turn the LED off again after this long (s, m or h), for on and blink
    #[arg(long = "for", global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Print JSON
    #[arg(long, global = true)]
    pub json: bool,
}

/// An identify LED setting on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum LedSetting {
    /// Lit steadily
    On,
    /// Off
    Off,
    /// Blinking; needs a BMC with IndicatorLED
    Blink,
}

impl From<LedSetting> for Indicator {
    fn from(setting: LedSetting) -> Self {
        match setting {
            LedSetting::On => Indicator::On,
            LedSetting::Off => Indicator::Off,
            LedSetting::Blink => Indicator::Blink,
        }
    }
}

/// Runs the identify command on the selected servers.
pub async fn run(context: Context, args: IdentifyArgs) -> anyhow::Result<ExitCode> {
    let options = RunOptions {
        target: &args.target,
        json: args.json,
        label: "identify",
    };
    let args = &args;
    fleet::run(context, options, |connection, _| async move {
        let result = apply(&connection, args).await;
        (connection, result)
    })
    .await
}

async fn apply(connection: &Connection, args: &IdentifyArgs) -> anyhow::Result<Done> {
    let client = &connection.client;
    let setting = Indicator::from(args.setting);
    let resource = led_resource(client).await?;
    let outcome = client
        .set_indicator(&resource, setting)
        .await
        .map_err(write_failed)?;
    let mut notes = outcome.notes;
    let mut summary = format!("set the LED of {resource} to {setting}");
    if let (Some(duration), true) = (args.duration, setting != Indicator::Off) {
        tokio::time::sleep(duration).await;
        client
            .set_indicator(&resource, Indicator::Off)
            .await
            .map_err(|error| {
                write_failed(error).context(format!(
                    "the LED was turned {setting} but turning it off after {} s failed",
                    duration.as_secs()
                ))
            })?;
        summary = format!(
            "set the LED of {resource} to {setting} for {} s, then off",
            duration.as_secs()
        );
    } else if args.duration.is_some() {
        notes.push("--for has no effect with off".into());
    }
    let now = client.indicator(&resource).await.ok().flatten();
    Ok(Done {
        summary,
        lines: Vec::new(),
        notes,
        data: json!({ "resource": resource, "requested": setting, "read_back": now }),
    })
}

/// Returns the system when it has an identify LED, else its chassis.
async fn led_resource(client: &Client<BmcTransport>) -> anyhow::Result<String> {
    let system = fleet::first_system(client).await?;
    if client.indicator(&system).await?.is_some() {
        return Ok(system);
    }
    let chassis = fleet::first_chassis(client).await?;
    if client.indicator(&chassis).await?.is_some() {
        return Ok(chassis);
    }
    Err(write_failed(RedfishError::Unsupported {
        path: system,
        detail: format!(
            "an identify LED (neither it nor {chassis} has LocationIndicatorActive or IndicatorLED)"
        ),
    }))
}
