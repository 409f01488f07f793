//! `rackside health [NAME | --all | --group G]`.

use std::process::ExitCode;

use futures_util::stream::{self, StreamExt};
use rackside_redfish::{health, HealthReport};
use serde::Serialize;

use crate::cli::{HealthArgs, SeverityArg};
use crate::connect::{Context, Prepared};
use crate::failure::{describe, ExitKind, Failure};
use crate::output::{outln, Table};

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
    if outcomes.iter().any(|outcome| outcome.error.is_some()) {
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
    Ok(report?)
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
    names
        .map(|name| match name.to_ascii_lowercase().as_str() {
            "critical" => 2,
            "warning" => 1,
            _ => 0,
        })
        .max()
        .unwrap_or(0)
}

fn text(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "-".to_owned())
}
