//! `rackside health [NAME | --all | --group G]`.

use std::process::ExitCode;

use futures_util::stream::{self, StreamExt};
use rackside_redfish::{health, HealthReport};
use serde::Serialize;

use crate::cli::{HealthArgs, SeverityArg};
use crate::connect::{Context, Prepared};
use crate::failure::{describe, ExitKind, Failure};
use crate::output::{outln, Table};
use crate::store::{describe_age, Cached};

/// The vault cache kind of health reports.
const CACHE_KIND: &str = "health";

/// One server's outcome in a fleet run.
#[derive(Serialize)]
struct Outcome {
    server: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<HealthReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip)]
    exit: Option<ExitKind>,
}

/// Reads health from one server or from all, with bounded concurrency.
pub async fn run(mut context: Context, args: HealthArgs) -> anyhow::Result<ExitCode> {
    let names = context.store.select(&args.target)?;
    if args.cached {
        return run_cached(&context, &args, &names);
    }

    // 1. Certificate decisions and passwords, one server at a time because they may prompt.
    let mut outcomes = Vec::new();
    let mut ready = Vec::new();
    for name in &names {
        match context.prepare(name).await {
            Ok(prepared) => ready.push(prepared),
            Err(error) => outcomes.push(failed(name, &error)),
        }
    }

    // 2. Logins and reads, several servers at once.
    let context = &context;
    let fetched: Vec<Outcome> = stream::iter(ready)
        .map(|prepared: Prepared| async move {
            let name = prepared.name.clone();
            match fetch(context, prepared).await {
                Ok(report) => Outcome {
                    server: name,
                    report: Some(report),
                    error: None,
                    exit: None,
                },
                Err(error) => failed(&name, &error),
            }
        })
        .buffer_unordered(usize::from(args.target.concurrency))
        .collect()
        .await;
    outcomes.extend(fetched);
    outcomes.sort_by(|a, b| a.server.cmp(&b.server));

    // 3. Output and exit code.
    if args.target.name.is_some() {
        if let Some(Outcome {
            exit: Some(kind),
            error: Some(message),
            ..
        }) = outcomes.first()
        {
            return Err(Failure::new(*kind, message.clone()).into());
        }
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&outcomes)?);
    } else {
        print_table(&outcomes);
    }
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|outcome| outcome.error.is_some())
        .map(|outcome| outcome.server.as_str())
        .collect();
    if !failed.is_empty() {
        crate::fleet::print_failed_servers(&failed, outcomes.len());
        return Ok(ExitKind::Failure.code());
    }
    if let Some(level) = args.fail_on {
        let reached = outcomes
            .iter()
            .filter_map(|outcome| outcome.report.as_ref())
            .any(|report| worst_rank(report) >= rank(level));
        if reached {
            return Ok(ExitKind::HealthThreshold.code());
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn fetch(context: &Context, prepared: Prepared) -> anyhow::Result<HealthReport> {
    let connection = context.connect(&prepared).await?;
    let report = health(&connection.client).await;
    connection.close().await;
    let report = report?;
    store_report(context, &prepared.name, &report);
    Ok(report)
}

/// Keeps `report` as the latest cached one; a failure is a warning, because the report itself
/// was read.
fn store_report(context: &Context, name: &str, report: &HealthReport) {
    let stored = serde_json::to_value(report)
        .map_err(anyhow::Error::from)
        .and_then(|body| context.store.put_cached(CACHE_KIND, name, body));
    if let Err(error) = stored {
        eprintln!(
            "warning: {name}: failed to cache the health report in the vault: {}",
            describe(&error).1
        );
    }
}

/// `health --cached`: the reports stored by earlier runs, without any network access. They
/// print as the same tables as live reports.
fn run_cached(context: &Context, args: &HealthArgs, names: &[String]) -> anyhow::Result<ExitCode> {
    let now = chrono::Utc::now();
    let mut found: Vec<(String, Cached)> = Vec::new();
    let mut missing = Vec::new();
    for name in names {
        match context.store.cached(CACHE_KIND, name)? {
            Some(cached) => found.push((name.clone(), cached)),
            None => missing.push(name.clone()),
        }
    }
    if args.target.name.is_some() && found.is_empty() {
        let name = names.first().cloned().unwrap_or_default();
        return Err(Failure::new(
            ExitKind::Failure,
            format!(
                "no cached health report for {name}: run `rackside health {name}` once while \
                 the BMC is reachable"
            ),
        )
        .into());
    }
    for (name, cached) in &found {
        eprintln!("{name}: {}", describe_age(cached.fetched_at, now));
    }
    for name in &missing {
        eprintln!("{name}: no cached health report yet");
    }

    if args.json {
        let entries: Vec<serde_json::Value> = found
            .iter()
            .map(|(name, cached)| {
                serde_json::json!({
                    "server": name,
                    "fetched_at": cached.fetched_at.to_rfc3339(),
                    "report": cached.body,
                })
            })
            .chain(missing.iter().map(
                |name| serde_json::json!({ "server": name, "error": "no cached health report" }),
            ))
            .collect();
        outln!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(cached_exit(args, &found, &missing));
    }

    let mut outcomes: Vec<Outcome> = found
        .iter()
        .map(|(name, cached)| match decode_cached(name, cached) {
            Ok(report) => Outcome {
                server: name.clone(),
                report: Some(report),
                error: None,
                exit: None,
            },
            Err(message) => Outcome {
                server: name.clone(),
                report: None,
                error: Some(message),
                exit: Some(ExitKind::Failure),
            },
        })
        .collect();
    outcomes.extend(missing.iter().map(|name| Outcome {
        server: name.clone(),
        report: None,
        error: Some("no cached report".into()),
        exit: Some(ExitKind::Failure),
    }));
    outcomes.sort_by(|a, b| a.server.cmp(&b.server));
    print_table(&outcomes);
    Ok(cached_exit(args, &found, &missing))
}

/// Returns the exit code of `health --cached`: a missing or unreadable report fails, then
/// `--fail-on` applies as it does to live reports.
fn cached_exit(args: &HealthArgs, found: &[(String, Cached)], missing: &[String]) -> ExitCode {
    let reports: Vec<HealthReport> = found
        .iter()
        .filter_map(|(name, cached)| decode_cached(name, cached).ok())
        .collect();
    if !missing.is_empty() || reports.len() < found.len() {
        return ExitKind::Failure.code();
    }
    if let Some(level) = args.fail_on {
        if reports
            .iter()
            .any(|report| worst_rank(report) >= rank(level))
        {
            return ExitKind::HealthThreshold.code();
        }
    }
    ExitCode::SUCCESS
}

/// Decodes a cached report into the typed value a live run prints. When the stored form cannot
/// be read (an older format, for example), the message names the server and the refresh command.
fn decode_cached(name: &str, cached: &Cached) -> Result<HealthReport, String> {
    serde_json::from_value(cached.body.clone()).map_err(|error| {
        format!(
            "cached health report unreadable ({error}): run `rackside health {name}` to \
             replace it"
        )
    })
}

fn rank_name(name: &str) -> u8 {
    match name.to_ascii_lowercase().as_str() {
        "critical" => 2,
        "warning" => 1,
        _ => 0,
    }
}

fn failed(name: &str, error: &anyhow::Error) -> Outcome {
    let (kind, message) = describe(error);
    Outcome {
        server: name.to_owned(),
        report: None,
        error: Some(message),
        exit: Some(kind),
    }
}

/// Prints health reports as the `health` command does.
pub fn print_reports(reports: &[(String, HealthReport)]) {
    let outcomes: Vec<Outcome> = reports
        .iter()
        .map(|(server, report)| Outcome {
            server: server.clone(),
            report: Some(report.clone()),
            error: None,
            exit: None,
        })
        .collect();
    print_table(&outcomes);
}

fn print_table(outcomes: &[Outcome]) {
    // ROLLUP covers the system and every part of it; SELF is the system's own health only.
    let mut table = Table::new(["SERVER", "SYSTEM", "POWER", "ROLLUP", "SELF", "PROBLEMS"]);
    let mut details = Vec::new();
    for outcome in outcomes {
        if let Some(report) = &outcome.report {
            warn_gaps(&outcome.server, report);
        }
        let Some(report) = &outcome.report else {
            let error = outcome.error.clone().unwrap_or_default();
            table.row([
                outcome.server.clone(),
                "-".into(),
                "-".into(),
                "error".into(),
                "-".into(),
                error,
            ]);
            continue;
        };
        for system in &report.systems {
            table.row([
                outcome.server.clone(),
                system.id.clone(),
                text(&system.power_state),
                text(&system.health_rollup),
                text(&system.health),
                system.problems.len().to_string(),
            ]);
            for problem in &system.problems {
                details.push([
                    outcome.server.clone(),
                    problem.health.clone(),
                    problem.kind.to_string(),
                    problem.name.clone(),
                    problem.reason.clone(),
                ]);
            }
        }
    }
    table.print();
    if !details.is_empty() {
        outln!();
        let mut problems = Table::new(["SERVER", "HEALTH", "COMPONENT", "NAME", "REASON"]);
        for row in details {
            problems.row(row);
        }
        problems.print();
    }
}

/// Tells on standard error what the report could not cover.
fn warn_gaps(server: &str, report: &HealthReport) {
    if report.systems.is_empty() {
        eprintln!("warning: {server} lists no computer systems; nothing to report");
    }
    for system in &report.systems {
        for gap in &system.unreadable {
            eprintln!(
                "warning: {server}: could not read {}: {}",
                gap.path, gap.error
            );
        }
    }
}

fn rank(level: SeverityArg) -> u8 {
    match level {
        SeverityArg::Ok => 0,
        SeverityArg::Warning => 1,
        SeverityArg::Critical => 2,
    }
}

fn worst_rank(report: &HealthReport) -> u8 {
    let names = report.systems.iter().flat_map(|system| {
        [text(&system.health), text(&system.health_rollup)]
            .into_iter()
            .chain(system.problems.iter().map(|problem| problem.health.clone()))
    });
    names.map(|name| rank_name(&name)).max().unwrap_or(0)
}

fn text(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "-".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system(health: &str, rollup: &str, problems: &[&str]) -> rackside_redfish::SystemHealth {
        let body = serde_json::json!({
            "id": "1", "path": "/redfish/v1/Systems/1", "name": "System",
            "model": null, "service_tag": null, "serial_number": null, "power_state": "On",
            "health": health, "health_rollup": rollup,
            "problems": problems.iter().map(|health| serde_json::json!({
                "kind": "fan", "name": "Fan 1", "path": "/redfish/v1/Chassis/1/Thermal",
                "health": health, "state": null, "reason": "below the lower threshold",
            })).collect::<Vec<_>>(),
            "unreadable": [],
        });
        serde_json::from_value(body).expect("a system health in the cached form")
    }

    #[test]
    fn worst_rank_takes_worst_of_system_and_problems() {
        let ok = HealthReport {
            systems: vec![system("OK", "OK", &[])],
        };
        let warning = HealthReport {
            systems: vec![system("OK", "OK", &["Warning"])],
        };
        let critical = HealthReport {
            systems: vec![system("OK", "OK", &[]), system("OK", "Critical", &[])],
        };
        assert_eq!(worst_rank(&ok), 0);
        assert_eq!(worst_rank(&warning), 1);
        assert_eq!(worst_rank(&critical), 2);
    }

    #[test]
    fn unknown_cached_form_names_refresh_command() {
        let cached = Cached {
            body: serde_json::json!({"unexpected": true}),
            fetched_at: chrono::Utc::now(),
        };
        let message = decode_cached("web1", &cached).expect_err("an unknown form is refused");
        assert!(message.contains("rackside health web1"), "{message}");
    }
}
