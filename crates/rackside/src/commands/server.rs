//! `rackside server add | list | remove | trust | passwd`.

use std::process::ExitCode;

use crate::cli::ServerCommand;
use crate::connect::Context;
use crate::failure::Failure;
use crate::output::{outln, Table};
use crate::store::{check_group, check_name, parse_url, ServerEntry};

const DEFAULT_USER: &str = "root";

/// Runs one `server` subcommand.
pub async fn run(mut context: Context, command: ServerCommand) -> anyhow::Result<ExitCode> {
    match command {
        ServerCommand::Add {
            name,
            url,
            user,
            groups,
        } => {
            check_name(&name)?;
            for group in &groups {
                check_group(group)?;
            }
            if context.store.servers().contains_key(&name) {
                return Err(Failure::usage(format!(
                    "server {name:?} already exists; remove it first or pick another name"
                ))
                .into());
            }
            let url = parse_url(&url)?;
            let user = user.unwrap_or_else(|| DEFAULT_USER.to_owned());
            let mut entry = ServerEntry {
                url,
                user,
                pin: None,
                groups,
            };
            let pin = context.decide_trust(&name, &entry, false).await?;
            entry.pin = Some(pin);
            let user = entry.user.clone();
            context.store.insert(&name, entry);
            context.store.save()?;
            if let Some(password) = context.password_to_store(&name, &user, false)? {
                context.store.put_credential(&name, &password)?;
                eprintln!("stored the password for {user} on {name} in the vault");
            }
            eprintln!("added {name}; try `rackside health {name}`");
        }
        ServerCommand::List { json } => {
            let servers = context.store.servers();
            if json {
                outln!("{}", serde_json::to_string_pretty(servers)?);
            } else {
                let mut table = Table::new(["NAME", "URL", "USER", "GROUPS", "PINNED KEY SHA-256"]);
                for (name, entry) in servers {
                    let pin = entry
                        .pin
                        .as_ref()
                        .map_or_else(|| "-".to_owned(), |pin| pin.public_key_sha256.to_string());
                    let groups = if entry.groups.is_empty() {
                        "-".to_owned()
                    } else {
                        entry.groups.join(",")
                    };
                    table.row([
                        name.clone(),
                        entry.url.to_string(),
                        entry.user.clone(),
                        groups,
                        pin,
                    ]);
                }
                table.print();
            }
        }
        ServerCommand::Remove { name } => {
            if context.store.remove(&name).is_none() {
                context.store.server(&name)?;
            }
            context.store.save()?;
            eprintln!("removed {name} and its pinned certificate");
        }
        ServerCommand::Trust { name } => {
            let entry = context.store.server(&name)?.clone();
            if let Some(pin) = &entry.pin {
                eprintln!(
                    "{name} is pinned to certificate SHA-256 {} (key SHA-256 {}), accepted {}",
                    pin.certificate_sha256,
                    pin.public_key_sha256,
                    pin.accepted_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
            }
            let pin = context.decide_trust(&name, &entry, true).await?;
            context.store.set_pin(&name, Some(pin));
            context.store.save()?;
            eprintln!("{name}: trust decision saved");
        }
        ServerCommand::Passwd { name } => {
            let user = context.store.server(&name)?.user.clone();
            if let Some(password) = context.password_to_store(&name, &user, true)? {
                context.store.put_credential(&name, &password)?;
                eprintln!(
                    "stored the password for {user} on {name} in the vault; the next command \
                     uses it"
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
