//! `rackside account NAME|--all|--group G list|add|passwd|disable|enable|role`.
//!
//! New BMC passwords come from a prompt (typed twice) or `--new-password-stdin`. They must
//! pass the vault's password policy (at least 12 characters and a zxcvbn score of 3 or
//! more) and the BMC's own `MinPasswordLength` and `MaxPasswordLength`.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use rackside_redfish::{Account, Secret};
use serde_json::json;

use crate::cli::{ClientOptions, Target};
use crate::connect::{Connection, Context};
use crate::failure::Failure;
use crate::fleet::{self, write_failed, Done, RunOptions};
use crate::output::Table;

/// `rackside account`
#[derive(Debug, Args)]
pub struct AccountArgs {
    #[command(flatten)]
    pub client: ClientOptions,

    #[command(flatten)]
    pub target: Target,

    #[command(subcommand)]
    pub command: AccountCommand,

    /// Read the new account password from the first line of standard input instead of a
    /// prompt (the login password then comes from RACKSIDE_PASSWORD)
    #[arg(long, global = true)]
    pub new_password_stdin: bool,

    /// Print JSON
    #[arg(long, global = true)]
    pub json: bool,
}

/// `rackside account ...`
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// List the BMC's accounts with role and state
    List,
    /// Add an enabled account
    Add {
        /// User name
        user: String,
        /// Role id, such as Administrator, Operator or ReadOnly (the BMC's Roles list)
        #[arg(long)]
        role: String,
    },
    /// Set a new password for an account
    Passwd {
        /// User name
        user: String,
    },
    /// Disable an account
    Disable {
        /// User name
        user: String,
    },
    /// Enable an account
    Enable {
        /// User name
        user: String,
    },
    /// Change an account's role
    Role {
        /// User name
        user: String,
        /// New role id
        role: String,
    },
}

/// Runs the account command on the selected servers.
pub async fn run(context: Context, args: AccountArgs) -> anyhow::Result<ExitCode> {
    let password = match &args.command {
        AccountCommand::Add { user, .. } | AccountCommand::Passwd { user } => {
            Some(new_password(user, args.new_password_stdin, &args.client)?)
        }
        _ => None,
    };
    let options = RunOptions {
        target: &args.target,
        json: args.json,
        label: "account",
    };
    let command = &args.command;
    let password = &password;
    let users: std::collections::BTreeMap<String, String> = context
        .store
        .servers()
        .iter()
        .map(|(name, entry)| (name.clone(), entry.user.clone()))
        .collect();
    let users = &users;
    fleet::run(context, options, |connection, _| async move {
        let login_user = users.get(&connection.name).map(String::as_str);
        let result = apply(&connection, command, password.as_ref(), login_user).await;
        (connection, result)
    })
    .await
}

async fn apply(
    connection: &Connection,
    command: &AccountCommand,
    password: Option<&Secret>,
    login_user: Option<&str>,
) -> anyhow::Result<Done> {
    let client = &connection.client;
    let missing = || Failure::usage("internal error: no new password was read");
    match command {
        AccountCommand::List => Ok(list(&client.accounts().await?)),
        AccountCommand::Add { user, role } => {
            let password = password.ok_or_else(missing)?;
            let created = client
                .add_account(user, password, role)
                .await
                .map_err(write_failed)?;
            let mut done = Done::summary(format!("added {user} at {}", created.path));
            if created.used_slot {
                done.notes.push(format!(
                    "the BMC has fixed account slots, so {user} was written to {}",
                    created.path
                ));
            }
            done.data =
                json!({ "user": user, "path": created.path, "used_slot": created.used_slot });
            Ok(done)
        }
        AccountCommand::Passwd { user } => {
            let password = password.ok_or_else(missing)?;
            let outcome = client
                .set_account_password(user, password)
                .await
                .map_err(write_failed)?;
            let mut done = Done::summary(format!("password of {user} changed"));
            done.notes = outcome.notes;
            if login_user == Some(user.as_str()) {
                done.notes.push(format!(
                    "{user} is the account rackside logs in with; update RACKSIDE_PASSWORD or your password source"
                ));
            }
            Ok(done)
        }
        AccountCommand::Disable { user } | AccountCommand::Enable { user } => {
            let enable = matches!(command, AccountCommand::Enable { .. });
            let outcome = client
                .set_account_enabled(user, enable)
                .await
                .map_err(write_failed)?;
            let after = client.find_account(user).await?;
            let mut done = Done::summary(format!(
                "{user} {}",
                match after.enabled {
                    Some(true) => "enabled",
                    Some(false) => "disabled",
                    None => "changed (the BMC does not report Enabled)",
                }
            ));
            done.notes = outcome.notes;
            Ok(done)
        }
        AccountCommand::Role { user, role } => {
            let outcome = client
                .set_account_role(user, role)
                .await
                .map_err(write_failed)?;
            let after = client.find_account(user).await?;
            let mut done = Done::summary(format!(
                "{user} has role {}",
                after.role.unwrap_or_else(|| "unknown".into())
            ));
            done.notes = outcome.notes;
            Ok(done)
        }
    }
}

fn list(accounts: &[Account]) -> Done {
    let flag = |value: Option<bool>| match value {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    };
    let mut table = Table::new(["USER", "ROLE", "ENABLED", "LOCKED", "ID"]);
    for account in accounts {
        table.row([
            account.user_name.clone(),
            account.role.clone().unwrap_or_else(|| "-".into()),
            flag(account.enabled).into(),
            flag(account.locked).into(),
            account.id.clone(),
        ]);
    }
    Done {
        summary: format!(
            "{} accounts: {}",
            accounts.len(),
            accounts
                .iter()
                .map(|account| account.user_name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        lines: table.render().lines().map(str::to_owned).collect(),
        notes: Vec::new(),
        data: json!(accounts),
    }
}

/// Reads a new account password and applies the vault's password policy to it.
fn new_password(user: &str, from_stdin: bool, client: &ClientOptions) -> anyhow::Result<Secret> {
    if from_stdin && client.service.password_stdin {
        return Err(Failure::usage(
            "--password-stdin and --new-password-stdin both read standard input; pass the login password in RACKSIDE_PASSWORD instead",
        )
        .into());
    }
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let password = Secret::new(line.trim_end_matches(['\r', '\n']).to_owned());
        zeroize::Zeroize::zeroize(&mut line);
        password
    } else if !client.service.non_interactive && std::io::stdin().is_terminal() {
        let first = Secret::new(rpassword::prompt_password(format!(
            "New password for {user}: "
        ))?);
        let second = Secret::new(rpassword::prompt_password("Type it again: ")?);
        if first.expose() != second.expose() {
            return Err(Failure::usage("the two passwords differ; nothing was sent").into());
        }
        first
    } else {
        return Err(Failure::usage(
            "a new password is needed but there is no terminal to ask on; pass it with --new-password-stdin",
        )
        .into());
    };
    rackside_vault::check_password(&rackside_vault::Secret::new(password.expose()))
        .map_err(|error| Failure::usage(format!("{error}; nothing was sent")))?;
    Ok(password)
}
