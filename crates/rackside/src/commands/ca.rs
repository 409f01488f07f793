//! `rackside ca add | list | remove`: CAs whose BMC certificates count as green.
//!
//! CA files are public and live in the config folder, so these commands never open the vault:
//! they work while it is locked and under `--non-interactive`.

use std::fs;
use std::process::ExitCode;

use rackside_trust::TrustAnchors;
use sha2::{Digest, Sha256};

use crate::cli::{CaCommand, ClientOptions};
use crate::failure::Failure;
use crate::output::outln;
use crate::store::CaFolder;

/// Runs one `ca` subcommand.
pub fn run(options: &ClientOptions, command: CaCommand) -> anyhow::Result<ExitCode> {
    let cas = CaFolder::resolve(options.service.config_dir.as_deref())?;
    match command {
        CaCommand::Add { file } => {
            let pem = fs::read(&file).map_err(|error| {
                Failure::usage(format!("failed to read {}: {error}", file.display()))
            })?;
            let count = TrustAnchors::empty()
                .add_user_ca_pem(&pem)
                .map_err(|error| {
                    Failure::usage(format!("{} cannot be installed: {error}", file.display()))
                })?;
            let name = format!("{}.pem", hex::encode(&Sha256::digest(&pem)[..8]));
            cas.install(&name, &pem)?;
            eprintln!(
                "installed {count} CA certificate(s) from {} as {name}",
                file.display()
            );
        }
        CaCommand::List => {
            for path in cas.files()? {
                outln!("{}", path.display());
            }
        }
        CaCommand::Remove { fingerprint } => {
            let wanted = fingerprint.trim_end_matches(".pem").to_ascii_lowercase();
            let path = cas.dir().join(format!("{wanted}.pem"));
            fs::remove_file(&path).map_err(|_| {
                Failure::usage(format!(
                    "no installed CA named {fingerprint:?}; `rackside ca list` shows the names"
                ))
            })?;
            eprintln!("removed {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
