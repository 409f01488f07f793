//! `rackside logs NAME`: lifecycle log and SEL entries, newest first.

use std::process::ExitCode;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use rackside_redfish::{logs_with_gaps, LogQuery, Severity};

use crate::cli::{LogsArgs, SeverityArg};
use crate::connect::Context;
use crate::failure::{ExitKind, Failure};
use crate::output::{outln, Table};

/// Prints the newest log entries of one server.
pub async fn run(mut context: Context, args: LogsArgs) -> anyhow::Result<ExitCode> {
    if args.limit == 0 {
        return Err(Failure::usage("--limit must be at least 1").into());
    }
    let since = match &args.since {
        Some(text) => Some(parse_since(text, Utc::now())?),
        None => None,
    };
    let query = LogQuery {
        limit: args.limit,
        min_severity: args.severity.map(|level| match level {
            SeverityArg::Ok => Severity::Ok,
            SeverityArg::Warning => Severity::Warning,
            SeverityArg::Critical => Severity::Critical,
        }),
        since,
    };

    let connection = context.open(&args.name).await?;
    let report = logs_with_gaps(&connection.client, &query).await;
    connection.close().await;
    let report = report?;
    for gap in &report.unreadable {
        eprintln!(
            "warning: {}: could not read {}: {}",
            args.name, gap.path, gap.error
        );
    }
    if report.records.is_empty() {
        if let Some(first) = report.unreadable.first() {
            return Err(Failure::new(
                ExitKind::BmcError,
                format!(
                    "no log of {} could be read ({}: {}); retry later or check the BMC's log \
                     service",
                    args.name, first.path, first.error
                ),
            )
            .into());
        }
    }
    let records = report.records;

    if args.json {
        outln!("{}", serde_json::to_string_pretty(&records)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(["CREATED", "SEVERITY", "LOG", "MESSAGE ID", "MESSAGE"]);
    for record in &records {
        let created = record.created.map_or_else(
            || record.created_raw.clone().unwrap_or_default(),
            |t| t.to_rfc3339(),
        );
        table.row([
            created,
            record.severity.to_string(),
            record.log.clone(),
            record.message_id.clone().unwrap_or_default(),
            record.message.clone(),
        ]);
    }
    table.print();
    Ok(ExitCode::SUCCESS)
}

/// Parses `--since`: RFC 3339, a UTC date, or an age like `90m`, `12h`, `7d`.
fn parse_since(text: &str, now: DateTime<Utc>) -> Result<DateTime<FixedOffset>, Failure> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time);
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        if let Some(midnight) = date.and_hms_opt(0, 0, 0) {
            return Ok(midnight.and_utc().fixed_offset());
        }
    }
    let invalid = || {
        Failure::usage(format!(
            "invalid --since {text:?}; use RFC 3339 (2026-12-01T08:00:00Z), a date (2026-12-01) \
             or an age such as 90m, 12h or 7d"
        ))
    };
    let split = text.len().checked_sub(1).ok_or_else(invalid)?;
    let (number, unit) = text.split_at(split);
    let amount: i64 = number.parse().map_err(|_| invalid())?;
    let seconds_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(invalid()),
    };
    let age = amount
        .checked_mul(seconds_per_unit)
        .and_then(chrono::Duration::try_seconds)
        .ok_or_else(invalid)?;
    now.checked_sub_signed(age)
        .map(|time| time.fixed_offset())
        .ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-04T12:00:00Z")
            .unwrap()
            .to_utc()
    }

    #[test]
    fn since_accepts_rfc3339() {
        let time = parse_since("2026-12-01T08:00:00+01:00", now()).unwrap();
        assert_eq!(time.to_rfc3339(), "2026-12-01T08:00:00+01:00");
    }

    #[test]
    fn since_date_means_utc_midnight() {
        let time = parse_since("2026-12-01", now()).unwrap();
        assert_eq!(time.to_rfc3339(), "2026-12-01T00:00:00+00:00");
    }

    #[test]
    fn since_age_counts_back_from_now() {
        let time = parse_since("12h", now()).unwrap();
        assert_eq!(time.to_utc().to_rfc3339(), "2026-12-04T00:00:00+00:00");
    }

    #[test]
    fn since_garbage_is_rejected() {
        for text in ["", "h", "yesterday", "5y", "99999999999999999d"] {
            assert!(parse_since(text, now()).is_err(), "{text:?}");
        }
    }
}
