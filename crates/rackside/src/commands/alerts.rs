//! `rackside console add`, `rackside alerts` and `rackside alerts ack`: read a console's
//! alerts over its REST API with a login session. `rackside alerts watch` is in [`super::watch`].
//!
//! The console is trusted as BMCs are: its certificate is judged by the same rules and pinned
//! when added, and every later connection must present the pinned key.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use rackside_redfish::Secret;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::cli::ServiceClientOptions;
use crate::connect::{Context, Peer};
use crate::failure::{ExitKind, Failure};
use crate::output::{outln, Table};
use crate::store::{check_name, parse_url, ConsoleEntry, ServerEntry, Store};

/// User that logs in to a console when `--user` is absent.
const DEFAULT_CONSOLE_USER: &str = "admin";

/// `rackside console add NAME URL`
#[derive(Debug, Args)]
pub struct ConsoleAddArgs {
    #[command(flatten)]
    pub client: ServiceClientOptions,

    /// Name for the console in this client
    pub name: String,

    /// HTTPS URL of the console, such as https://console.example:8445/
    pub url: String,

    /// User that logs in to the console's API
    #[arg(long, default_value = DEFAULT_CONSOLE_USER)]
    pub user: String,
}

/// `rackside alerts [--console NAME] [--unread] [--json]` and `rackside alerts ack ID`
#[derive(Debug, Args)]
pub struct AlertsArgs {
    #[command(flatten)]
    pub client: ServiceClientOptions,

    /// Console to read [default: the first console added]
    #[arg(long, global = true, value_name = "NAME")]
    pub console: Option<String>,

    /// Show only alerts not yet acknowledged
    #[arg(long)]
    pub unread: bool,

    /// Print the alerts as JSON
    #[arg(long)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Option<AlertsCommand>,
}

/// The subcommands of `rackside alerts`.
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Acknowledge one alert on the console
    Ack {
        /// The alert's id, as `rackside alerts` lists it
        id: i64,
    },
    /// Receive pushed alerts of every subscribed console on this machine and print each one,
    /// then a notification line with the unread count, until interrupted
    Watch(super::watch::WatchArgs),
}

/// One alert as the console's API lists it.
#[derive(Debug, Deserialize, serde::Serialize)]
struct Alert {
    id: i64,
    bmc: String,
    severity: String,
    message: String,
    #[serde(default)]
    timestamp: Option<String>,
    received: i64,
    acknowledged: bool,
}

/// The body of `GET /api/alerts`.
#[derive(Debug, Deserialize)]
struct AlertList {
    alerts: Vec<Alert>,
}

/// Adds a console: judges and pins its certificate, checks the login and stores the entry
/// and the password in the vault.
pub async fn console_add(args: ConsoleAddArgs) -> anyhow::Result<ExitCode> {
    let context = Context::new(&args.client.client())?;
    let name = args.name;
    check_name(&name)?;
    if context.store.console(&name)?.is_some() {
        return Err(Failure::usage(format!(
            "console {name:?} already exists; pick another name"
        ))
        .into());
    }
    let url = parse_url(&args.url)?;

    // 1. Trust: the same judgement and pin as `server add`.
    let probe = ServerEntry {
        url: url.clone(),
        user: args.user.clone(),
        pin: None,
        groups: Vec::new(),
    };
    let pin = context
        .decide_peer_trust(Peer::Console, &name, &probe, false)
        .await?;
    let entry = ConsoleEntry {
        url,
        user: args.user,
        pin,
        subscribed: false,
        subscription: None,
    };

    // 2. The password must log in before anything is stored.
    let password = match context.given_password()? {
        Some(password) => password,
        None => context
            .password_to_store(&name, &entry.user, true)?
            .ok_or_else(|| Failure::usage(format!("no password for {} on {name}", entry.user)))?,
    };
    let session = Session::open(&context, &name, &entry, &password).await?;
    session.close().await;

    context.store.put_console(&name, &entry)?;
    context
        .store
        .put_credential(&Store::console_credential_key(&name), &password)?;
    eprintln!("added console {name}; try `rackside alerts --console {name}`");
    Ok(ExitCode::SUCCESS)
}

/// `rackside console passwd NAME`
#[derive(Debug, Args)]
pub struct ConsolePasswdArgs {
    #[command(flatten)]
    pub client: ServiceClientOptions,

    /// The console, as `console add` named it
    pub name: String,
}

/// `rackside console list`
#[derive(Debug, Args)]
pub struct ConsoleListArgs {
    #[command(flatten)]
    pub client: ServiceClientOptions,
}

/// Replaces the stored login password of a console after checking that it logs in.
pub async fn console_passwd(args: ConsolePasswdArgs) -> anyhow::Result<ExitCode> {
    let context = Context::new(&args.client.client())?;
    let name = args.name;
    let entry = console_entry(&context, &name)?;
    let password = match context.given_password()? {
        Some(password) => password,
        None => context
            .password_to_store(&name, &entry.user, true)?
            .ok_or_else(|| Failure::usage(format!("no password for {} on {name}", entry.user)))?,
    };
    let session = Session::open(&context, &name, &entry, &password).await?;
    session.close().await;
    context
        .store
        .put_credential(&Store::console_credential_key(&name), &password)?;
    eprintln!(
        "stored the new password of {} on console {name}",
        entry.user
    );
    Ok(ExitCode::SUCCESS)
}

/// Lists the consoles this client added: name, URL, user and whether it is subscribed.
pub async fn console_list(args: ConsoleListArgs) -> anyhow::Result<ExitCode> {
    let context = Context::new(&args.client.client())?;
    let default = context.store.default_console().ok();
    let mut table = Table::new(["CONSOLE", "URL", "USER", "PUSH"]);
    for name in context.store.console_names()? {
        let Some(entry) = context.store.console(&name)? else {
            continue;
        };
        let marker = if default.as_deref() == Some(name.as_str()) {
            format!("{name} (default)")
        } else {
            name.clone()
        };
        let push = if entry.subscribed { "subscribed" } else { "-" };
        table.row([marker, entry.url.to_string(), entry.user, push.to_owned()]);
    }
    table.print();
    Ok(ExitCode::SUCCESS)
}

/// Lists a console's alerts, acknowledges one, or watches for pushed alerts.
pub async fn run(args: AlertsArgs) -> anyhow::Result<ExitCode> {
    let context = Context::new(&args.client.client())?;
    if let Some(AlertsCommand::Watch(watch)) = args.command {
        if args.console.is_some() {
            return Err(Failure::usage(
                "`alerts watch` receives from every subscribed console; drop --console, or \
                 run `rackside unsubscribe NAME` for consoles to leave out",
            )
            .into());
        }
        return super::watch::run(context, watch).await;
    }
    let name = match args.console {
        Some(name) => name,
        None => context.store.default_console()?,
    };
    let entry = console_entry(&context, &name)?;
    let session = Session::open(
        &context,
        &name,
        &entry,
        &console_password(&context, &name, &entry)?,
    )
    .await?;
    let result = match args.command {
        None => list(&session, args.unread, args.json).await,
        Some(AlertsCommand::Ack { id }) => session.acknowledge(id).await,
        Some(AlertsCommand::Watch(_)) => Ok(()),
    };
    session.close().await;
    result.map(|()| ExitCode::SUCCESS)
}

/// Reads console `name`'s entry, or returns a usage failure naming the command that adds it.
pub(crate) fn console_entry(context: &Context, name: &str) -> anyhow::Result<ConsoleEntry> {
    context.store.console(name)?.ok_or_else(|| {
        Failure::usage(format!(
            "console {name:?} not found; add it with `rackside console add {name} URL`"
        ))
        .into()
    })
}

/// Reads the login password of console `name`: from the vault, else from `--password-stdin`
/// or RACKSIDE_PASSWORD.
pub(crate) fn console_password(
    context: &Context,
    name: &str,
    entry: &ConsoleEntry,
) -> anyhow::Result<Secret> {
    if let Some(password) = context
        .store
        .credential(&Store::console_credential_key(name))?
    {
        return Ok(password);
    }
    context.given_password()?.ok_or_else(|| {
        Failure::usage(format!(
            "no password for {} on console {name}: pass it with --password-stdin or \
             RACKSIDE_PASSWORD",
            entry.user
        ))
        .into()
    })
}

async fn list(session: &Session, unread: bool, as_json: bool) -> anyhow::Result<()> {
    let alerts = session.alerts(unread).await?;
    if as_json {
        outln!(
            "{}",
            escape_for_terminal(&serde_json::to_string_pretty(&alerts)?)
        );
        return Ok(());
    }
    let mut table = Table::new(["ID", "TIME", "BMC", "SEVERITY", "MESSAGE", "ACKNOWLEDGED"]);
    for alert in alerts {
        let time = alert.timestamp.as_deref().map_or_else(
            || {
                chrono::DateTime::from_timestamp(alert.received, 0).map_or_else(
                    || alert.received.to_string(),
                    |time| time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                )
            },
            terminal_text,
        );
        table.row([
            alert.id.to_string(),
            time,
            terminal_text(&alert.bmc),
            terminal_text(&alert.severity),
            terminal_text(&alert.message),
            if alert.acknowledged { "yes" } else { "no" }.to_owned(),
        ]);
    }
    table.print();
    Ok(())
}

/// A login session on one console's REST API, over a connection pinned to its certificate.
pub(crate) struct Session {
    name: String,
    base: url::Url,
    http: reqwest::Client,
    token: Secret,
}

impl Session {
    /// Logs in as `entry.user`; a rejected password gives [`ExitKind::AuthRejected`].
    pub(crate) async fn open(
        context: &Context,
        name: &str,
        entry: &ConsoleEntry,
        password: &Secret,
    ) -> anyhow::Result<Self> {
        let tls = context.pinned_tls(&entry.url, entry.pin.clone())?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        let url = entry.url.join("api/login")?;
        let response = http
            .post(url)
            .json(&json!({"user": entry.user, "password": password.expose()}))
            .send()
            .await
            .map_err(|error| unreachable_error(name, &entry.url, &error))?;
        if response.status() == reqwest::StatusCode::UNAUTHORIZED {
            return Err(Failure::new(
                ExitKind::AuthRejected,
                format!(
                    "console {name} rejected the login of {}; check the password",
                    entry.user
                ),
            )
            .into());
        }
        let body: serde_json::Value = checked(name, response).await?.json().await?;
        let token = body
            .get("token")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| bad_response(name, "the login response has no token"))?;
        Ok(Self {
            name: name.to_owned(),
            base: entry.url.clone(),
            http,
            token: Secret::new(token.to_owned()),
        })
    }

    async fn alerts(&self, unread: bool) -> anyhow::Result<Vec<Alert>> {
        let mut url = self.base.join("api/alerts")?;
        if unread {
            url.set_query(Some("unacknowledged=true"));
        }
        let response = self
            .http
            .get(url)
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(|error| unreachable_error(&self.name, &self.base, &error))?;
        let list: AlertList = checked(&self.name, response)
            .await?
            .json()
            .await
            .map_err(|error| bad_response(&self.name, &format!("invalid alert list: {error}")))?;
        Ok(list.alerts)
    }

    async fn acknowledge(&self, id: i64) -> anyhow::Result<()> {
        let url = self.base.join(&format!("api/alerts/{id}/ack"))?;
        let response = self
            .http
            .post(url)
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(|error| unreachable_error(&self.name, &self.base, &error))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(Failure::usage(format!(
                "alert {id} not found on console {}; list them with `rackside alerts`",
                self.name
            ))
            .into());
        }
        checked(&self.name, response).await?;
        eprintln!("acknowledged alert {id} on console {}", self.name);
        Ok(())
    }

    /// Reads the relay the console forwards alerts to: its URL and the console's name there.
    pub(crate) async fn relay(&self) -> anyhow::Result<ConsoleRelay> {
        let response = self
            .send(self.http.get(self.base.join("api/relay")?))
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(Failure::usage(format!(
                "console {} forwards alerts to no relay, so devices cannot subscribe to it; \
                 start it with --relay-url",
                self.name
            ))
            .into());
        }
        checked(&self.name, response)
            .await?
            .json()
            .await
            .map_err(|error| bad_response(&self.name, &format!("invalid relay answer: {error}")))
    }

    /// Subscribes this device to the console's pushes and returns the subscription id.
    pub(crate) async fn subscribe(&self, request: &SubscribeRequest<'_>) -> anyhow::Result<i64> {
        let url = self.base.join("api/subscriptions")?;
        let response = self.send(self.http.post(url).json(request)).await?;
        if response.status() == reqwest::StatusCode::BAD_REQUEST {
            let reason = error_text(response).await;
            return Err(bad_response(
                &self.name,
                &format!("the console rejected the subscription: {reason}"),
            ));
        }
        let body: serde_json::Value = checked(&self.name, response).await?.json().await?;
        body.get("id")
            .and_then(serde_json::Value::as_i64)
            .ok_or_else(|| bad_response(&self.name, "the subscription answer has no id"))
    }

    /// Removes subscription `id` from the console. Returns false when it was already gone.
    pub(crate) async fn unsubscribe(&self, id: i64) -> anyhow::Result<bool> {
        let url = self.base.join(&format!("api/subscriptions/{id}"))?;
        let response = self.send(self.http.delete(url)).await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(false);
        }
        checked(&self.name, response).await?;
        Ok(true)
    }

    /// Reads the console's number of unacknowledged alerts.
    pub(crate) async fn unread_count(&self) -> anyhow::Result<u32> {
        rackside_console::inbox::unread_count(&self.http, &self.base, self.token.expose())
            .await
            .map_err(|error| bad_response(&self.name, &error.to_string()))
    }

    /// Sends `request` with the session token; a connection failure gives
    /// [`ExitKind::Unreachable`].
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        request
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(|error| unreachable_error(&self.name, &self.base, &error))
    }

    /// Ends the session; a failure only costs the console a session until it expires.
    pub(crate) async fn close(self) {
        let Ok(url) = self.base.join("api/logout") else {
            return;
        };
        if let Err(error) = self
            .http
            .post(url)
            .bearer_auth(self.token.expose())
            .send()
            .await
        {
            tracing::debug!(console = %self.name, error = %error.without_url(), "logout failed");
        }
    }
}

/// The body of `GET /api/relay`.
#[derive(Debug, Deserialize)]
pub(crate) struct ConsoleRelay {
    /// The relay's base URL, spelled as the console expects it back.
    pub url: String,
    /// The console's name at the relay.
    pub console_name: String,
}

/// The body of `POST /api/subscriptions`.
#[derive(Serialize)]
pub(crate) struct SubscribeRequest<'a> {
    /// This device's id.
    pub device: &'a str,
    /// The relay, exactly as `GET /api/relay` returned it.
    pub relay_url: &'a str,
    /// The relay registration token the console pushes to.
    pub token: &'a str,
    /// The device's public key, base64url.
    pub p256dh: &'a str,
    /// The device's authentication secret, base64url.
    pub auth: &'a str,
}

impl std::fmt::Debug for SubscribeRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscribeRequest")
            .field("device", &self.device)
            .field("relay_url", &self.relay_url)
            .finish_non_exhaustive()
    }
}

/// Reads the `error` field of a JSON error body, clipped, or the status alone.
pub(crate) async fn error_text(response: reqwest::Response) -> String {
    let status = response.status();
    let body: Option<serde_json::Value> = response.json().await.ok();
    let reason = body
        .as_ref()
        .and_then(|body| body.get("error"))
        .and_then(serde_json::Value::as_str)
        .map(|text| terminal_text(&text.chars().take(200).collect::<String>()));
    match reason {
        Some(reason) => format!("{status}: {reason}"),
        None => status.to_string(),
    }
}

/// Replaces by a space every character of console-provided `text` that could change what a
/// terminal shows. Control characters move the cursor or end the line. Format characters
/// (bidi overrides and isolates, zero-width and invisible characters) reorder or hide text.
pub(crate) fn terminal_text(text: &str) -> String {
    text.chars()
        .map(|c| if is_unsafe_on_terminal(c) { ' ' } else { c })
        .collect()
}

/// Escapes, in JSON that serde wrote, the characters [`terminal_text`] replaces but serde
/// leaves raw (DEL, C1 controls and format characters), as `\uXXXX`. The value is unchanged
/// for a JSON reader. A raw one can only sit inside a string, because serde escapes controls
/// below U+0020 and the structure is ASCII.
fn escape_for_terminal(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c >= '\u{7f}' && is_unsafe_on_terminal(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Returns true for control characters, the line and paragraph separators, and the
/// characters of Unicode's format category (Cf). Cf includes the bidi controls U+061C,
/// U+200E, U+200F, U+202A to U+202E and U+2066 to U+2069.
fn is_unsafe_on_terminal(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{ad}'
                | '\u{600}'..='\u{605}'
                | '\u{61c}'
                | '\u{6dd}'
                | '\u{70f}'
                | '\u{890}'..='\u{891}'
                | '\u{8e2}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206f}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
                | '\u{110bd}'
                | '\u{110cd}'
                | '\u{13430}'..='\u{1343f}'
                | '\u{1bca0}'..='\u{1bca3}'
                | '\u{1d173}'..='\u{1d17a}'
                | '\u{e0001}'
                | '\u{e0020}'..='\u{e007f}'
        )
}

async fn checked(name: &str, response: reqwest::Response) -> anyhow::Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    // A refused login and the console's limit on failed logins are both about credentials.
    let kind = if matches!(status.as_u16(), 401 | 403 | 429) {
        ExitKind::AuthRejected
    } else {
        ExitKind::BadResponse
    };
    let message = format!("console {name} returned {}", error_text(response).await);
    Err(Failure::new(kind, message).into())
}

fn unreachable_error(name: &str, url: &url::Url, error: &reqwest::Error) -> anyhow::Error {
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        detail = format!("{detail}: {inner}");
        source = inner.source();
    }
    Failure::new(
        ExitKind::Unreachable,
        format!("failed to reach console {name} at {url}: {detail}; check the URL and that the console runs"),
    )
    .into()
}

fn bad_response(name: &str, detail: &str) -> anyhow::Error {
    Failure::new(ExitKind::BadResponse, format!("console {name}: {detail}")).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_text_replaces_format_characters() {
        let spoofed = "ok\u{202e}txt.exe\u{202c}\u{200b}\u{2067}x\u{2069}\u{61c}\u{200e}\u{feff}";
        assert_eq!(terminal_text(spoofed), "ok txt.exe   x    ");
        assert_eq!(terminal_text("Fan\r\n\u{1b}[2J\u{9b}1m"), "Fan   [2J 1m");
    }

    #[test]
    fn terminal_text_keeps_ordinary_text() {
        let text = "Lüfter 1 ausgefallen — 温度 ✓ (Fan.1.0)";
        assert_eq!(terminal_text(text), text);
    }

    #[test]
    fn json_escapes_bidi_controls_losslessly() {
        let alert = Alert {
            id: 3,
            bmc: "rack\u{2066}-3".into(),
            severity: "Critical".into(),
            message: "Fan \u{202e}deliaf\u{7f}\u{9b} \u{e0041}".into(),
            timestamp: None,
            received: 0,
            acknowledged: false,
        };
        let json = escape_for_terminal(&serde_json::to_string_pretty(&[&alert]).unwrap());
        assert!(
            !json.chars().any(|c| c != '\n' && is_unsafe_on_terminal(c)),
            "{json}"
        );
        assert!(
            json.contains(r"Fan \u202edeliaf\u007f\u009b \udb40\udc41"),
            "{json}"
        );
        let read: Vec<Alert> = serde_json::from_str(&json).unwrap();
        assert_eq!(read[0].message, alert.message);
        assert_eq!(read[0].bmc, alert.bmc);
    }
}
