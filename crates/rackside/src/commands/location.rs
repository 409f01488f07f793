//! `rackside location NAME|--all|--group G show|set [--datacenter D --room R --aisle A
//! --rack K --slot S]`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use rackside_redfish::{LocationReport, ServerLocation};
use serde_json::json;

use crate::cli::{ClientOptions, Target};
use crate::connect::{Connection, Context};
use crate::failure::Failure;
use crate::fleet::{self, write_failed, Done, RunOptions};

/// `rackside location`
#[derive(Debug, Args)]
pub struct LocationArgs {
    #[command(flatten)]
    pub client: ClientOptions,

    #[command(flatten)]
    pub target: Target,

    #[command(subcommand)]
    pub command: LocationCommand,

    /// Print JSON
    #[arg(long, global = true)]
    pub json: bool,
}

/// `rackside location ...`
#[derive(Debug, Subcommand)]
pub enum LocationCommand {
    /// Show data center, room, aisle, rack and slot
    Show,
    /// Change the given fields and keep the others (written to the standard Location
    /// properties and, on Dell iDRAC, to Location.Info)
    Set {
        /// Data center name (Location.PostalAddress.Building)
        #[arg(long)]
        datacenter: Option<String>,
        /// Room (Location.PostalAddress.Room)
        #[arg(long)]
        room: Option<String>,
        /// Aisle (Location.Placement.Row)
        #[arg(long)]
        aisle: Option<String>,
        /// Rack (Location.Placement.Rack)
        #[arg(long)]
        rack: Option<String>,
        /// Slot in rack units from the bottom, 1 to 255 (Location.Placement.RackOffset)
        #[arg(long)]
        slot: Option<String>,
    },
}

/// Runs the location command on the selected servers.
pub async fn run(context: Context, args: LocationArgs) -> anyhow::Result<ExitCode> {
    // Check the values before contacting any server.
    let change = match &args.command {
        LocationCommand::Show => None,
        LocationCommand::Set {
            datacenter,
            room,
            aisle,
            rack,
            slot,
        } => {
            let change = ServerLocation::parse(
                datacenter.as_deref(),
                room.as_deref(),
                aisle.as_deref(),
                rack.as_deref(),
                slot.as_deref(),
            )
            .map_err(|error| Failure::usage(format!("{error}; nothing was sent")))?;
            if change.is_empty() {
                return Err(Failure::usage(
                    "location set needs at least one of --datacenter, --room, --aisle, --rack, --slot",
                )
                .into());
            }
            Some(change)
        }
    };
    let options = RunOptions {
        target: &args.target,
        json: args.json,
        label: "location",
    };
    let change = &change;
    fleet::run(context, options, |connection, _| async move {
        let result = apply(&connection, change.as_ref()).await;
        (connection, result)
    })
    .await
}

async fn apply(connection: &Connection, change: Option<&ServerLocation>) -> anyhow::Result<Done> {
    let client = &connection.client;
    let chassis = fleet::first_chassis(client).await?;
    let Some(change) = change else {
        return Ok(show(&client.location(&chassis).await?));
    };
    let outcome = client
        .set_location(&chassis, change)
        .await
        .map_err(write_failed)?;
    let mut done = show(&client.location(&chassis).await?);
    done.summary = format!("set: {}", done.summary);
    done.notes = outcome.notes;
    Ok(done)
}

fn show(report: &LocationReport) -> Done {
    let text = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".into());
    let location = &report.location;
    let slot = location
        .slot
        .map_or_else(|| "-".into(), |slot| slot.to_string());
    Done {
        summary: format!(
            "data center {}, room {}, aisle {}, rack {}, slot {}",
            text(&location.datacenter),
            text(&location.room),
            text(&location.aisle),
            text(&location.rack),
            slot
        ),
        lines: vec![
            format!("Chassis:      {}", report.chassis),
            format!("Data center:  {}", text(&location.datacenter)),
            format!("Room:         {}", text(&location.room)),
            format!("Aisle:        {}", text(&location.aisle)),
            format!("Rack:         {}", text(&location.rack)),
            format!("Slot:         {slot}"),
        ],
        notes: Vec::new(),
        data: json!(report),
    }
}
