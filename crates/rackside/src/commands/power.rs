//! `rackside power NAME|--all|--group G on|off|restart|cycle|nmi`.
//!
//! Each verb maps to the `ResetType` values the system advertises. Off and restart try the
//! graceful type first and use the forced one only with `--force`: at once when the
//! graceful type is not offered, else after the graceful wait passed its deadline.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use rackside_redfish::{Client, Error as RedfishError, PowerState, PowerWait, ResetType};
use serde_json::json;

use crate::cli::{ClientOptions, Target};
use crate::connect::{Connection, Context};
use crate::failure::Failure;
use crate::fleet::{
    self, confirm, describe_servers, parse_duration, write_failed, Done, RunOptions,
};
use crate::via::BmcTransport;

/// Maximum number of times one reset type is sent when the BMC responds with 503.
const RESET_ATTEMPTS: u32 = 3;

/// Wait before sending a reset again after a 503, multiplied by the attempt number.
const RESET_RETRY_DELAY: Duration = Duration::from_secs(1);

/// `rackside power`
#[derive(Debug, Args)]
pub struct PowerArgs {
    #[command(flatten)]
    pub client: ClientOptions,

    #[command(flatten)]
    pub target: Target,

    #[command(subcommand)]
    pub action: PowerAction,

    /// Use the forced reset (ForceOff, ForceRestart) when the graceful one is not offered or
    /// did not finish within --timeout
    #[arg(long, global = true)]
    pub force: bool,

    /// Do not ask for confirmation before interrupting a running server
    #[arg(long, global = true)]
    pub yes: bool,

    /// How long to wait for the new power state, per reset type tried (s, m or h)
    #[arg(long, global = true, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Print JSON
    #[arg(long, global = true)]
    pub json: bool,
}

/// A power verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum PowerAction {
    /// Turn on
    On,
    /// Shut down gracefully (forced with --force)
    Off,
    /// Restart gracefully (forced with --force)
    Restart,
    /// Turn off and on at once
    Cycle,
    /// Send a non-maskable interrupt
    Nmi,
}

impl PowerAction {
    /// Returns the reset types for this verb: the graceful ones, then the forced ones.
    fn reset_types(self) -> (&'static [ResetType], &'static [ResetType]) {
        match self {
            PowerAction::On => (
                &[
                    ResetType::On,
                    ResetType::ForceOn,
                    ResetType::PushPowerButton,
                ],
                &[],
            ),
            PowerAction::Off => (&[ResetType::GracefulShutdown], &[ResetType::ForceOff]),
            PowerAction::Restart => (&[ResetType::GracefulRestart], &[ResetType::ForceRestart]),
            PowerAction::Cycle => (&[ResetType::PowerCycle, ResetType::FullPowerCycle], &[]),
            PowerAction::Nmi => (&[ResetType::Nmi], &[]),
        }
    }

    fn name(self) -> &'static str {
        match self {
            PowerAction::On => "on",
            PowerAction::Off => "off",
            PowerAction::Restart => "restart",
            PowerAction::Cycle => "cycle",
            PowerAction::Nmi => "nmi",
        }
    }
}

/// Runs the power command on the selected servers.
pub async fn run(context: Context, args: PowerArgs) -> anyhow::Result<ExitCode> {
    if args.action != PowerAction::On {
        let names = context.store.select(&args.target)?;
        confirm(
            &args.client,
            &format!("power {} {}", args.action.name(), describe_servers(&names)),
            args.yes,
        )?;
    }
    let label = format!("power {}", args.action.name());
    let options = RunOptions {
        target: &args.target,
        json: args.json,
        label: &label,
    };
    let args = &args;
    fleet::run(context, options, |connection, _| async move {
        let result = apply(&connection, args).await;
        (connection, result)
    })
    .await
}

async fn apply(connection: &Connection, args: &PowerArgs) -> anyhow::Result<Done> {
    let client = &connection.client;
    let system = fleet::first_system(client).await?;
    let offered = client.reset_types(&system).await.map_err(write_failed)?;
    let is_offered = |reset: &ResetType| offered.as_ref().is_none_or(|list| list.contains(reset));
    let (graceful, forced) = args.action.reset_types();
    let graceful = graceful.iter().copied().find(|reset| is_offered(reset));
    let forced = forced.iter().copied().find(|reset| is_offered(reset));

    let before = client.get(&system).await?;
    let state = rackside_redfish::decode::text(&before.body, "PowerState");
    let state = state.as_deref().and_then(PowerState::parse);
    let already = match args.action {
        PowerAction::On => state == Some(PowerState::On),
        PowerAction::Off => state == Some(PowerState::Off),
        _ => false,
    };
    if already {
        return Ok(Done {
            summary: format!(
                "already {}; nothing sent",
                state.map_or("?", PowerState::as_str)
            ),
            data: json!({ "system": system, "power_state": state, "sent": [] }),
            ..Done::default()
        });
    }
    if matches!(
        args.action,
        PowerAction::Restart | PowerAction::Cycle | PowerAction::Nmi
    ) && state == Some(PowerState::Off)
    {
        return Err(anyhow::anyhow!(
            "not applied: the system is Off, so it cannot {}; use `rackside power {} on`",
            args.action.name(),
            connection.name
        ));
    }

    let allowed = offered
        .as_ref()
        .map(|list| {
            list.iter()
                .map(|reset| reset.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_else(|| "not listed".into());
    let first = match (graceful, forced) {
        (Some(graceful), _) => graceful,
        (None, Some(forced)) if args.force => forced,
        (None, Some(forced)) => {
            return Err(Failure::usage(format!(
                "not applied: {system} offers no graceful reset for power {} (offered: \
                 {allowed}); rerun with --force to use {forced}",
                args.action.name()
            ))
            .into());
        }
        (None, None) => {
            return Err(write_failed(RedfishError::NotOffered {
                path: system.clone(),
                name: "ResetType".into(),
                value: format!("power {}", args.action.name()),
                allowed,
            }));
        }
    };

    let mut sent = vec![first];
    let mut notes = Vec::new();
    let wait = match reset_with_retry(client, &system, first, args.timeout, &mut notes).await {
        Ok(wait) => wait,
        Err(error) => {
            let fallback = forced.filter(|forced| args.force && *forced != first);
            match (error, fallback) {
                (RedfishError::WaitExpired { detail, .. }, Some(forced)) => {
                    notes.push(format!(
                        "{first} did not finish within {} s ({detail}), so {forced} was sent",
                        args.timeout.as_secs()
                    ));
                    sent.push(forced);
                    reset_with_retry(client, &system, forced, args.timeout, &mut notes)
                        .await
                        .map_err(write_failed)?
                }
                (error, _) => return Err(write_failed(error)),
            }
        }
    };
    Ok(done(&system, &sent, &wait, notes))
}

/// Resets and waits, sending the reset again when the BMC answered that it did not take it.
///
/// A 503, or iDRAC's 500 with MessageId SYS518 ("data sources are unavailable" while it
/// reloads), means the request was not processed, so a second reset cannot apply twice.
/// Other failures, any other 500 included, are not retried because the BMC may have
/// started the reset.
async fn reset_with_retry(
    client: &Client<BmcTransport>,
    system: &str,
    reset: ResetType,
    timeout: Duration,
    notes: &mut Vec<String>,
) -> Result<PowerWait, RedfishError> {
    let mut attempt = 1;
    loop {
        match client.reset_and_wait(system, reset, timeout).await {
            Err(RedfishError::Status {
                status, message_id, ..
            }) if not_taken(status.as_u16(), message_id.as_deref()) && attempt < RESET_ATTEMPTS => {
                notes.push(format!(
                    "the BMC answered {reset} with {} (busy), so it was sent again",
                    status.as_u16()
                ));
                tokio::time::sleep(RESET_RETRY_DELAY * attempt).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Returns whether a status and MessageId mean the BMC did not process the request.
fn not_taken(status: u16, message_id: Option<&str>) -> bool {
    status == 503 || (status == 500 && message_id.is_some_and(|id| id.ends_with("SYS518")))
}

fn done(system: &str, sent: &[ResetType], wait: &PowerWait, notes: Vec<String>) -> Done {
    let seen: Vec<&str> = wait.seen.iter().map(|seen| seen.state.as_str()).collect();
    let names: Vec<&str> = sent.iter().map(|reset| reset.as_str()).collect();
    Done {
        summary: format!(
            "{} after {:.1} s via {} (seen: {})",
            wait.state,
            wait.elapsed.as_secs_f64(),
            names.join(" then "),
            seen.join(", ")
        ),
        lines: Vec::new(),
        notes,
        data: json!({
            "system": system,
            "sent": names,
            "power_state": wait.state,
            "seen": wait.seen,
            "elapsed_seconds": wait.elapsed.as_secs_f64(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_answers_are_not_taken() {
        assert!(not_taken(503, None));
        assert!(not_taken(500, Some("IDRAC.2.9.SYS518")));
    }

    #[test]
    fn other_errors_may_have_started() {
        assert!(!not_taken(500, None));
        assert!(!not_taken(500, Some("Base.1.0.InternalError")));
        assert!(!not_taken(400, Some("IDRAC.2.9.SYS518")));
    }
}
