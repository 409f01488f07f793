//! `rackside diag NAME FILE` or `rackside diag --all|--group G DIR` (DIR/NAME.tar.gz
//! each): a support bundle as one .tar.gz
//! with health.json, logs.json, inventory/firmware.json, the capture in DMTF long form and
//! manifest.json (rackside version, server, service and firmware versions, time).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use flate2::write::GzEncoder;
use flate2::Compression;
use rackside_redfish::{health, inventory, logs_with_gaps, scrub_with, LogQuery};
use serde_json::{json, Value};

use crate::cli::ClientOptions;
use crate::commands::capture::{self, SCRUB_HELP};
use crate::connect::{Connection, Context};
use crate::failure::Failure;
use crate::fleet::{self, Done, RunOptions};

/// Log entries put in a bundle.
const BUNDLE_LOG_ENTRIES: usize = 500;

/// `rackside diag`
#[derive(Debug, Args)]
#[command(after_help = SCRUB_HELP)]
pub struct DiagArgs {
    #[command(flatten)]
    pub client: ClientOptions,

    #[command(flatten)]
    pub target: fleet::TargetWithPath,

    /// Keep secrets, addresses and serial numbers as the BMC sent them
    #[arg(long)]
    pub no_scrub: bool,

    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// Runs the diag command on the selected servers.
pub async fn run(context: Context, args: DiagArgs) -> anyhow::Result<ExitCode> {
    let (target, file) = args.target.split()?;
    let options = RunOptions {
        target: &target,
        json: args.json,
        label: "diag",
    };
    let args = &args;
    let file = &file;
    fleet::run(context, options, |connection, single| async move {
        let file = if single {
            file.clone()
        } else {
            file.join(format!("{}.tar.gz", connection.name))
        };
        let result = bundle(&connection, &file, !args.no_scrub).await;
        (connection, result)
    })
    .await
}

async fn bundle(connection: &Connection, file: &Path, scrubbed: bool) -> anyhow::Result<Done> {
    if file.exists() {
        return Err(Failure::usage(format!(
            "{} exists; give a new file name for the bundle",
            file.display()
        ))
        .into());
    }
    let client = &connection.client;

    // 1. Read everything; a part that fails is recorded in the manifest, not fatal.
    let mut errors = Vec::new();
    let health = match health(client).await {
        Ok(report) => json!(report),
        Err(error) => {
            errors.push(format!("health: {error}"));
            Value::Null
        }
    };
    let query = LogQuery {
        limit: BUNDLE_LOG_ENTRIES,
        ..LogQuery::default()
    };
    let logs = match logs_with_gaps(client, &query).await {
        Ok(report) => json!(report),
        Err(error) => {
            errors.push(format!("logs: {error}"));
            Value::Null
        }
    };
    let firmware = match inventory(client).await {
        Ok(inventory) => json!(inventory
            .systems
            .iter()
            .map(|system| json!({ "system": system.system, "firmware": system.firmware }))
            .collect::<Vec<_>>()),
        Err(error) => {
            errors.push(format!("inventory: {error}"));
            Value::Null
        }
    };
    let mut capture = client.capture(4).await?;

    // 2. Scrub the capture and the reports together, so placeholders agree.
    let mut documents = [health, logs, firmware];
    let report = scrubbed.then(|| scrub_with(&mut capture, &mut documents));
    let [health, logs, firmware] = documents;

    // 3. Write the capture to a temporary folder, then everything into the archive.
    let staging = tempfile::tempdir().context("failed to create a temporary folder")?;
    let capture_dir = staging.path().join("capture");
    capture::write_mockup(&capture_dir, &capture)?;
    let root = client.root().cloned().unwrap_or(Value::Null);
    let manifest = json!({
        "rackside_version": env!("CARGO_PKG_VERSION"),
        "server": if scrubbed { Value::Null } else { json!(connection.name) },
        "created": chrono::Utc::now().to_rfc3339(),
        "redfish_version": root.get("RedfishVersion"),
        "service_product": root.get("Product"),
        "service_vendor": root.get("Vendor"),
        "scrubbed": scrubbed,
        "resources": capture.resources.len(),
        "unreadable": capture.unreadable,
        "errors": errors,
        "files": ["manifest.json", "health.json", "logs.json", "inventory/firmware.json", "capture/redfish/v1/"],
    });
    write_archive(
        file,
        &[
            ("manifest.json", &manifest),
            ("health.json", &health),
            ("logs.json", &logs),
            ("inventory/firmware.json", &firmware),
        ],
        &capture_dir,
    )?;
    let mut done = capture::done(file, &capture, report.as_ref());
    done.summary = format!(
        "bundle {}: {}",
        file.display(),
        capture::contents(&capture, report.as_ref())
    );
    done.notes.extend(errors);
    Ok(done)
}

fn write_archive(
    file: &Path,
    documents: &[(&str, &Value)],
    capture_dir: &Path,
) -> anyhow::Result<()> {
    if let Some(parent) = file
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("failed to create {}", parent.display()))?;
    }
    let partial = file.with_extension("partial");
    let output = std::fs::File::create(&partial)
        .with_context(|| format!("failed to create {}", partial.display()))?;
    let mut archive = tar::Builder::new(GzEncoder::new(output, Compression::default()));
    for (name, value) in documents {
        let bytes = serde_json::to_vec_pretty(value)?;
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(chrono::Utc::now().timestamp().max(0) as u64);
        header.set_cksum();
        archive.append_data(&mut header, name, bytes.as_slice())?;
    }
    if capture_dir.exists() {
        archive.append_dir_all("capture", capture_dir)?;
    }
    archive.into_inner()?.finish()?;
    std::fs::rename(&partial, file)
        .with_context(|| format!("failed to move the bundle to {}", file.display()))?;
    Ok(())
}
