//! `rackside capture NAME DIR` or `rackside capture --all|--group G DIR` (each server in
//! DIR/NAME), with `--no-scrub` to keep secrets: the whole Redfish service as a
//! DMTF mockup folder in long form (`DIR/redfish/v1/.../index.json`), which
//! `rackside bmc --mockup DIR` serves.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use rackside_redfish::{scrub, Capture, ScrubReport};
use serde_json::json;

use crate::cli::ClientOptions;
use crate::connect::{Connection, Context};
use crate::failure::Failure;
use crate::fleet::{self, Done, RunOptions};

/// Help text shared with `diag`: what the scrub replaces.
pub const SCRUB_HELP: &str = "By default the capture is scrubbed: values of properties named like \
passwords, passphrases, salts, secrets, tokens, private keys or keys (such as IPMIKey) become \
SCRUBBED, as does any text holding a PEM private key; IPv4 and IPv6 addresses map to the \
documentation ranges (192.0.2.0/24, 2001:db8::/32) and MAC addresses to 02:00:00:00:xx:xx; \
serial numbers, service tags, SKUs, UUIDs and host names become SCRUBnnnn wherever they \
appear, resource paths included. Each value gets the same placeholder everywhere.";

/// `rackside capture`
#[derive(Debug, Args)]
#[command(after_help = SCRUB_HELP)]
pub struct CaptureArgs {
    #[command(flatten)]
    pub client: ClientOptions,

    #[command(flatten)]
    pub target: fleet::TargetWithPath,

    /// Keep secrets, addresses and serial numbers as the BMC sent them
    #[arg(long)]
    pub no_scrub: bool,

    /// Maximum requests in flight to one BMC while crawling
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub requests: u16,

    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// Runs the capture command on the selected servers.
pub async fn run(context: Context, args: CaptureArgs) -> anyhow::Result<ExitCode> {
    let (target, dir) = args.target.split()?;
    let options = RunOptions {
        target: &target,
        json: args.json,
        label: "capture",
    };
    let args = &args;
    let dir = &dir;
    fleet::run(context, options, |connection, single| async move {
        let dir = if single {
            dir.clone()
        } else {
            dir.join(&connection.name)
        };
        let result = capture_to(&connection, &dir, !args.no_scrub, args.requests).await;
        (connection, result)
    })
    .await
}

async fn capture_to(
    connection: &Connection,
    dir: &Path,
    scrubbed: bool,
    requests: u16,
) -> anyhow::Result<Done> {
    check_empty(dir)?;
    let mut capture = connection.client.capture(usize::from(requests)).await?;
    let report = scrubbed.then(|| scrub(&mut capture));
    write_mockup(dir, &capture)?;
    Ok(done(dir, &capture, report.as_ref()))
}

/// Describes what a capture contains and how it was scrubbed, such as
/// `120 resources (scrubbed 2 secrets, ...)`, for summaries that name the file themselves.
pub fn contents(capture: &Capture, report: Option<&ScrubReport>) -> String {
    format!("{} ({})", resource_count(capture), scrub_text(report))
}

fn resource_count(capture: &Capture) -> String {
    format!("{} resources", capture.resources.len())
}

fn scrub_text(report: Option<&ScrubReport>) -> String {
    match report {
        Some(report) => format!(
            "scrubbed {} secrets, {} addresses, {} MACs, {} identifiers",
            report.secrets, report.addresses, report.macs, report.identifiers
        ),
        None => "not scrubbed".into(),
    }
}

/// Describes a written capture.
pub fn done(dir: &Path, capture: &Capture, report: Option<&ScrubReport>) -> Done {
    let mut notes = Vec::new();
    for gap in &capture.unreadable {
        notes.push(format!("could not read {}: {}", gap.path, gap.error));
    }
    if capture.truncated {
        notes.push(format!(
            "stopped at {} resources; the capture is incomplete",
            rackside_redfish::MAX_CAPTURE_RESOURCES
        ));
    }
    Done {
        summary: format!(
            "{} to {} ({})",
            resource_count(capture),
            dir.display(),
            scrub_text(report)
        ),
        lines: Vec::new(),
        notes,
        data: json!({
            "dir": dir,
            "resources": capture.resources.len(),
            "unreadable": capture.unreadable,
            "scrubbed": report.is_some(),
        }),
    }
}

/// Fails unless `dir` is missing or an empty folder, so a capture never mixes with others.
pub fn check_empty(dir: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Failure::usage(format!(
                    "{} is not empty; give a new or empty folder for the capture",
                    dir.display()
                ))
                .into());
            }
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error).with_context(|| format!("failed to read {}", dir.display())),
    }
}

/// Writes a capture in DMTF long form: each resource's body to
/// `DIR/redfish/v1/.../index.json` and `$metadata` to `DIR/redfish/v1/$metadata/index.xml`.
///
/// # Errors
///
/// A path segment that is empty, `.` or `..` or contains a backslash (the capture never
/// produces one, but a path is not written outside `DIR`); file system errors.
pub fn write_mockup(dir: &Path, capture: &Capture) -> anyhow::Result<()> {
    for (path, body) in &capture.resources {
        let folder = folder_of(dir, path)?;
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("failed to create {}", folder.display()))?;
        let file = folder.join("index.json");
        std::fs::write(&file, serde_json::to_vec_pretty(body)?)
            .with_context(|| format!("failed to write {}", file.display()))?;
    }
    if let Some(metadata) = &capture.metadata {
        let folder = folder_of(dir, "/redfish/v1/$metadata")?;
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("failed to create {}", folder.display()))?;
        std::fs::write(folder.join("index.xml"), metadata)
            .with_context(|| format!("failed to write {}", folder.display()))?;
    }
    Ok(())
}

fn folder_of(dir: &Path, path: &str) -> anyhow::Result<PathBuf> {
    let mut folder = dir.to_path_buf();
    for segment in path.trim_start_matches('/').split('/') {
        let usable = !segment.is_empty()
            && segment != "."
            && segment != ".."
            && !segment.contains(['\\', '\0']);
        if !usable {
            return Err(anyhow::anyhow!(
                "resource path {path:?} cannot be stored as a folder; it was left out"
            ));
        }
        folder.push(segment);
    }
    Ok(folder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_rejects_parent_segments() {
        let dir = Path::new("/tmp/capture");
        assert!(folder_of(dir, "/redfish/v1/../x").is_err());
        assert_eq!(
            folder_of(dir, "/redfish/v1/Systems/1").unwrap(),
            Path::new("/tmp/capture/redfish/v1/Systems/1")
        );
    }
}
