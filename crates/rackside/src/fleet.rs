//! Running one command on many servers: `NAME`, `--all` or `--group G`.
//!
//! A run has three steps. Certificates and passwords are settled one server at a time,
//! because they may prompt. The work then runs on up to `--concurrency` servers at once,
//! with a progress bar on standard error when it is a terminal. Last comes one table row
//! per server. A run on one `NAME` fails with that server's own error and exit code. A run
//! on several servers lists every failure and exits with 1 when any server failed, as the
//! README's exit code table says.

use std::future::Future;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rackside_redfish::{Client, Error as RedfishError, SERVICE_ROOT};
use serde::Serialize;
use serde_json::Value;

use crate::cli::{ClientOptions, Target};
use crate::connect::{Connection, Context};
use crate::failure::{describe, ExitKind, Failure};
use crate::output::{outln, Table};
use crate::via::BmcTransport;

/// The result of a command on one server.
#[derive(Debug, Default, Serialize)]
pub struct Done {
    /// One line for the result table, such as "On after 3.2 s".
    pub summary: String,
    /// Lines printed in full when the run has one server, such as a table of accounts.
    #[serde(skip)]
    pub lines: Vec<String>,
    /// Remarks on how the work went, such as a fallback to a PATCH without `If-Match`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The data read or written, for `--json`.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub data: Value,
}

impl Done {
    /// Creates a result with only a summary line.
    pub fn summary(summary: impl Into<String>) -> Self {
        Done {
            summary: summary.into(),
            ..Done::default()
        }
    }
}

/// One server's outcome.
#[derive(Debug, Serialize)]
pub struct ServerOutcome {
    /// Server name.
    pub server: String,
    /// The result, when the work succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Done>,
    /// The one-line error, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    exit: Option<ExitKind>,
}

/// Whether a failed write changed the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The BMC rejected the request or it was never sent.
    No,
    /// The request may have taken effect; the server's state must be checked.
    Unknown,
}

impl Applied {
    /// Classifies a Redfish error raised by a write. Rejections and checks made before
    /// sending mean nothing changed, while time-outs and server errors leave it open.
    pub fn of(error: &RedfishError) -> Applied {
        match error {
            RedfishError::Status { status, .. } if status.is_client_error() => Applied::No,
            RedfishError::InvalidUrl { .. }
            | RedfishError::Unauthorized { .. }
            | RedfishError::Forbidden { .. }
            | RedfishError::SessionLimit { .. }
            | RedfishError::PreconditionFailed { .. }
            | RedfishError::NotOffered { .. }
            | RedfishError::UnknownName { .. }
            | RedfishError::InvalidValue { .. }
            | RedfishError::Unsupported { .. }
            | RedfishError::Connect { .. }
            | RedfishError::Tls { .. } => Applied::No,
            _ => Applied::Unknown,
        }
    }
}

/// Adds to a write's error what happened to the server: "not applied" or "result unknown".
pub fn write_failed(error: RedfishError) -> anyhow::Error {
    let state = match Applied::of(&error) {
        Applied::No => "not applied",
        Applied::Unknown => "result unknown, check the server's state before retrying",
    };
    anyhow::Error::new(error).context(state)
}

/// Options every fleet command shares besides the client options.
pub struct RunOptions<'a> {
    /// Which servers.
    pub target: &'a Target,
    /// Print JSON instead of text.
    pub json: bool,
    /// The progress bar label, such as "power on".
    pub label: &'a str,
}

/// Runs `work` on every server `target` selects and prints the outcome.
///
/// `work` gets the logged-in connection and whether the run has a single server. The
/// session is deleted after the work, whatever its result.
///
/// # Errors
///
/// For a single server, that server's error (with its exit code). For several servers,
/// only errors that stop the whole run, such as an unknown group.
pub async fn run<F, Fut>(
    mut context: Context,
    options: RunOptions<'_>,
    work: F,
) -> anyhow::Result<ExitCode>
where
    F: Fn(Connection, bool) -> Fut,
    Fut: Future<Output = (Connection, anyhow::Result<Done>)>,
{
    let names = context.store.select(options.target)?;
    let single = options.target.name.is_some();

    // 1. Certificate decisions and passwords, one server at a time because they may prompt.
    let mut outcomes = Vec::new();
    let mut ready = Vec::new();
    for name in &names {
        match context.prepare(name).await {
            Ok(prepared) => ready.push(prepared),
            Err(error) => outcomes.push(failed(name, &error.context("not applied"))),
        }
    }

    // 2. Logins and work, several servers at once.
    let progress = progress_bar(ready.len(), options.label, single);
    let context = &context;
    let work = &work;
    let progress_ref = &progress;
    let done: Vec<ServerOutcome> = stream::iter(ready)
        .map(|prepared| async move {
            let name = prepared.name.clone();
            let outcome = match context.connect(&prepared).await {
                Ok(connection) => {
                    let (connection, result) = work(connection, single).await;
                    connection.close().await;
                    match result {
                        Ok(done) => ServerOutcome {
                            server: name.clone(),
                            result: Some(done),
                            error: None,
                            exit: None,
                        },
                        Err(error) => failed(&name, &error),
                    }
                }
                Err(error) => failed(&name, &error.context("not applied")),
            };
            progress_ref.inc(1);
            outcome
        })
        .buffer_unordered(usize::from(options.target.concurrency))
        .collect()
        .await;
    progress.finish_and_clear();
    outcomes.extend(done);
    outcomes.sort_by(|a, b| a.server.cmp(&b.server));

    // 3. Output and exit code.
    if single {
        if let Some(ServerOutcome {
            exit: Some(kind),
            error: Some(message),
            server,
            ..
        }) = outcomes.first()
        {
            return Err(Failure::new(*kind, format!("{server}: {message}")).into());
        }
    }
    if options.json {
        outln!("{}", serde_json::to_string_pretty(&outcomes)?);
    } else {
        print_outcomes(&outcomes, single);
    }
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.error.is_some())
        .map(|o| o.server.as_str())
        .collect();
    if !failed.is_empty() {
        print_failed_servers(&failed, outcomes.len());
        return Ok(ExitKind::Failure.code());
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the one-line summary of a run on several servers in which `failed` of `total`
/// servers failed, such as `rackside: 2 of 8 servers failed: a, b`, on standard error.
pub fn print_failed_servers(failed: &[&str], total: usize) {
    eprintln!(
        "rackside: {} of {total} servers failed: {}",
        failed.len(),
        failed.join(", ")
    );
}

fn failed(name: &str, error: &anyhow::Error) -> ServerOutcome {
    let (kind, message) = describe(error);
    ServerOutcome {
        server: name.to_owned(),
        result: None,
        error: Some(message),
        exit: Some(kind),
    }
}

fn progress_bar(total: usize, label: &str, single: bool) -> ProgressBar {
    if single || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn print_outcomes(outcomes: &[ServerOutcome], single: bool) {
    if single {
        for outcome in outcomes {
            if let Some(done) = &outcome.result {
                if done.lines.is_empty() {
                    outln!("{}: {}", outcome.server, done.summary);
                } else {
                    for line in &done.lines {
                        outln!("{line}");
                    }
                }
                for note in &done.notes {
                    eprintln!("note: {}: {note}", outcome.server);
                }
            }
        }
        return;
    }
    let mut table = Table::new(["SERVER", "RESULT", "DETAIL"]);
    for outcome in outcomes {
        match (&outcome.result, &outcome.error) {
            (Some(done), _) => {
                table.row([outcome.server.clone(), "ok".into(), done.summary.clone()]);
                for note in &done.notes {
                    eprintln!("note: {}: {note}", outcome.server);
                }
            }
            (None, error) => table.row([
                outcome.server.clone(),
                "failed".into(),
                error.clone().unwrap_or_default(),
            ]),
        }
    }
    table.print();
}

/// Asks for confirmation before a change that interrupts servers, unless `yes` is set.
///
/// # Errors
///
/// A usage failure when there is no terminal to ask on and `--yes` was not given; a
/// failure when the user does not type yes.
pub fn confirm(client: &ClientOptions, question: &str, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    let interactive = !client.service.non_interactive
        && std::io::stdin().is_terminal()
        && std::io::stderr().is_terminal();
    if !interactive {
        return Err(Failure::usage(format!(
            "{question}: confirmation needed but there is no terminal to ask on; rerun with --yes"
        ))
        .into());
    }
    eprint!("{question}? Type yes to continue: ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim().eq_ignore_ascii_case("yes") {
        Ok(())
    } else {
        Err(Failure::new(
            ExitKind::Failure,
            "cancelled; nothing was sent to any server",
        )
        .into())
    }
}

/// Names the servers of a run for a confirmation question, at most five of them.
pub fn describe_servers(names: &[String]) -> String {
    match names {
        [one] => one.clone(),
        _ if names.len() <= 5 => format!("{} servers ({})", names.len(), names.join(", ")),
        _ => format!(
            "{} servers ({}, ...)",
            names.len(),
            names.get(..5).unwrap_or_default().join(", ")
        ),
    }
}

/// Parses a duration such as `90s`, `5m`, `1h` or a bare number of seconds.
///
/// # Errors
///
/// A message naming the value and the accepted forms.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(index) => text.split_at(index),
        None => (text, "s"),
    };
    let value: u64 = number.parse().map_err(|_| {
        format!("invalid duration {text:?}; give a number with s, m or h, such as 90s or 5m")
    })?;
    let seconds = match unit {
        "s" => value,
        "m" => value.saturating_mul(60),
        "h" => value.saturating_mul(3600),
        _ => {
            return Err(format!(
                "invalid duration unit in {text:?}; use s, m or h, such as 90s or 5m"
            ))
        }
    };
    if seconds == 0 {
        return Err(format!(
            "invalid duration {text:?}; it must be more than 0 s"
        ));
    }
    Ok(Duration::from_secs(seconds))
}

/// Servers and an output path given as `NAME PATH`, or as `PATH` with `--all` or `--group`.
#[derive(Debug, clap::Args)]
pub struct TargetWithPath {
    /// NAME and the output path, or only the output path with --all or --group
    #[arg(value_name = "NAME PATH", num_args = 1..=2, required = true)]
    pub words: Vec<String>,

    /// Run on every server in the list
    #[arg(long, conflicts_with = "group")]
    pub all: bool,

    /// Run on every server of this group (see `rackside server list`)
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,

    /// Maximum number of servers contacted at once with --all or --group
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
}

impl TargetWithPath {
    /// Splits the words into the server selection and the output path.
    ///
    /// # Errors
    ///
    /// A usage failure when the number of words does not fit `--all` or `--group`.
    pub fn split(&self) -> Result<(Target, std::path::PathBuf), Failure> {
        let fleet = self.all || self.group.is_some();
        match (self.words.as_slice(), fleet) {
            ([path], true) => Ok((
                Target {
                    name: None,
                    all: self.all,
                    group: self.group.clone(),
                    concurrency: self.concurrency,
                },
                path.into(),
            )),
            ([name, path], false) => Ok((
                Target {
                    name: Some(name.clone()),
                    all: false,
                    group: None,
                    concurrency: self.concurrency,
                },
                path.into(),
            )),
            (_, true) => Err(Failure::usage(
                "with --all or --group give only the output path, not a server name",
            )),
            (_, false) => Err(Failure::usage(
                "give a server NAME and an output path, or --all or --group with a path",
            )),
        }
    }
}

/// Returns the path of the first computer system the BMC lists.
///
/// # Errors
///
/// A BMC error when the service lists no systems; read errors.
// NOTE: commands act on the first system only; a blade chassis BMC that lists several
// systems needs the per-system choice that `--system` would add.
pub async fn first_system(client: &Client<BmcTransport>) -> anyhow::Result<String> {
    first_member(client, "Systems").await
}

/// Returns the chassis that contains the first system (its `Links.Chassis`), else the first
/// chassis the BMC lists.
///
/// # Errors
///
/// A BMC error when the service lists no chassis; read errors.
pub async fn first_chassis(client: &Client<BmcTransport>) -> anyhow::Result<String> {
    if let Ok(system) = first_system(client).await {
        let system = client.get(&system).await?;
        let linked = system
            .body
            .get("Links")
            .and_then(|links| links.get("Chassis"))
            .and_then(Value::as_array)
            .and_then(|chassis| chassis.first())
            .and_then(rackside_redfish::decode::odata_id);
        if let Some(chassis) = linked {
            return Ok(chassis);
        }
    }
    first_member(client, "Chassis").await
}

async fn first_member(client: &Client<BmcTransport>, link: &str) -> anyhow::Result<String> {
    let collection = client
        .root()
        .and_then(|root| rackside_redfish::decode::link(root, link))
        .unwrap_or_else(|| format!("{SERVICE_ROOT}/{link}"));
    let members = client.get(&collection).await?;
    let first = rackside_redfish::decode::array(&members.body, "Members")
        .iter()
        .find_map(rackside_redfish::decode::odata_id);
    first.ok_or_else(|| {
        Failure::new(
            ExitKind::BmcError,
            format!("{collection} lists no members; the BMC reports no {link}"),
        )
        .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
    }

    #[test]
    fn bad_durations_are_rejected() {
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn rejected_write_is_not_applied() {
        let rejected = RedfishError::NotOffered {
            path: "/redfish/v1/Systems/1".into(),
            name: "ResetType".into(),
            value: "Nmi".into(),
            allowed: "On, ForceOff".into(),
        };
        assert_eq!(Applied::of(&rejected), Applied::No);
    }

    #[test]
    fn timed_out_write_is_unknown() {
        let timeout = RedfishError::Timeout {
            what: "reading PATCH /redfish/v1/Systems/1".into(),
        };
        assert_eq!(Applied::of(&timeout), Applied::Unknown);
        let error = write_failed(timeout);
        assert!(error.to_string().contains("result unknown"), "{error}");
    }

    fn words(words: &[&str], all: bool, group: Option<&str>) -> TargetWithPath {
        TargetWithPath {
            words: words.iter().map(|word| (*word).to_owned()).collect(),
            all,
            group: group.map(str::to_owned),
            concurrency: 8,
        }
    }

    #[test]
    fn name_and_path_split_for_one_server() {
        let (target, path) = words(&["r1", "out"], false, None).split().unwrap();
        assert_eq!(target.name.as_deref(), Some("r1"));
        assert_eq!(path, std::path::Path::new("out"));
    }

    #[test]
    fn group_takes_only_a_path() {
        let (target, path) = words(&["out"], false, Some("rack1")).split().unwrap();
        assert_eq!(target.group.as_deref(), Some("rack1"));
        assert_eq!(target.name, None);
        assert_eq!(path, std::path::Path::new("out"));
    }

    #[test]
    fn wrong_word_count_is_rejected() {
        assert!(words(&["r1", "out"], true, None).split().is_err());
        assert!(words(&["out"], false, None).split().is_err());
    }

    #[test]
    fn long_server_lists_are_shortened() {
        let names: Vec<String> = (1..=7).map(|i| format!("s{i}")).collect();
        assert_eq!(
            describe_servers(&names),
            "7 servers (s1, s2, s3, s4, s5, ...)"
        );
    }
}
