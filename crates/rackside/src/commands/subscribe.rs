//! `rackside subscribe NAME` and `rackside unsubscribe NAME`: register this device for a
//! console's pushes through the console's relay, and remove that registration again.
//!
//! Subscribing registers a Web Push endpoint on the loopback receiver with the relay, then
//! gives the console the registration token and the device's public keys. Unsubscribing
//! first marks the console unsubscribed in the vault, so the receiver drops its pushes at
//! once, then removes both registrations. A removal that fails is kept as pending and
//! retried by the next `unsubscribe`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use clap::Args;
use rackside_redfish::Secret;
use rackside_trust::Pin;
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;
use url::Url;

use crate::cli::ServiceClientOptions;
use crate::commands::alerts::{
    console_entry, console_password, error_text, terminal_text, Session, SubscribeRequest,
};
use crate::connect::{Context, Peer};
use crate::failure::{describe, ExitKind, Failure};
use crate::store::{
    check_name, parse_url, ConsoleEntry, ConsoleSubscription, DeviceIdentity, ServerEntry,
};

/// Receiver address used when `--receiver` is absent and no identity exists yet.
const DEFAULT_RECEIVER: &str = "127.0.0.1:8446";
/// Time allowed for each request to the relay.
const RELAY_TIMEOUT: Duration = Duration::from_secs(30);

/// `rackside subscribe NAME`
#[derive(Debug, Args)]
pub struct SubscribeArgs {
    #[command(flatten)]
    pub client: ServiceClientOptions,

    /// Console to receive pushed alerts from, as added with `rackside console add`
    pub name: String,

    /// Loopback address and port that `rackside alerts watch` listens on for pushes [default:
    /// 127.0.0.1:8446, or the address chosen at the first subscribe]
    #[arg(long, value_name = "ADDR:PORT")]
    pub receiver: Option<String>,
}

/// `rackside unsubscribe NAME`
#[derive(Debug, Args)]
pub struct UnsubscribeArgs {
    #[command(flatten)]
    pub client: ServiceClientOptions,

    /// Console to stop receiving pushed alerts from
    pub name: String,
}

/// Subscribes this device to console `args.name`'s pushes.
pub async fn subscribe(args: SubscribeArgs) -> anyhow::Result<ExitCode> {
    let context = Context::new(&args.client.client())?;
    let name = args.name;
    check_name(&name)?;
    let receiver = args.receiver.as_deref().map(parse_receiver).transpose()?;
    let mut entry = console_entry(&context, &name)?;
    if entry.subscribed {
        eprintln!("console {name} is already subscribed; nothing changed");
        return Ok(ExitCode::SUCCESS);
    }
    if entry.subscription.is_some() {
        return Err(Failure::usage(format!(
            "the earlier subscription to console {name} is not fully removed yet; run \
             `rackside unsubscribe {name}` to finish it, then subscribe again"
        ))
        .into());
    }

    // 1. The device identity, created once. Its certificate goes to the relay operator.
    let identity = ensure_identity(&context, receiver)?;

    // 2. The console names its relay, which is trusted like a BMC and pinned.
    let password = console_password(&context, &name, &entry)?;
    let session = Session::open(&context, &name, &entry, &password).await?;
    let result = register(&context, &name, &mut entry, &identity, &session).await;
    session.close().await;
    result?;
    Ok(ExitCode::SUCCESS)
}

/// Registers with the relay, then with the console. When the console rejects the
/// subscription, the relay registration is removed again.
async fn register(
    context: &Context,
    name: &str,
    entry: &mut ConsoleEntry,
    identity: &DeviceIdentity,
    session: &Session,
) -> anyhow::Result<()> {
    // 1. The relay: trust, VAPID key, registration.
    let relay_info = session.relay().await?;
    let relay_url = parse_url(&relay_info.url)?;
    let relay_label = format!("relay of console {name}");
    let probe = ServerEntry {
        url: relay_url.clone(),
        user: String::new(),
        pin: None,
        groups: Vec::new(),
    };
    let relay_pin = context
        .decide_peer_trust(Peer::Relay, &relay_label, &probe, false)
        .await?;
    let relay = RelayClient::new(context, &relay_label, &relay_url, relay_pin.clone())?;
    let vapid_key = relay.vapid_key().await?;
    let mut raw = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let push_id = URL_SAFE_NO_PAD.encode(raw);
    let endpoint = format!("https://{}/push/{push_id}", identity.receiver);
    let registration_name = registration_name(&identity.id);
    let token = relay
        .register(&relay_info.console_name, &registration_name, &endpoint)
        .await?;
    // NOTE: the relay offers no way to check that this token is live without changing it.
    // It returns 201 with a token whether or not it stored one (for an unknown console too),
    // and its only other device call removes the registration, so success is reported
    // without that check.

    // 2. Record the registration before the console step, so a crash leaves something for
    //    `unsubscribe` to clean up.
    context.store.put_relay_token(name, &token)?;
    entry.subscription = Some(ConsoleSubscription {
        relay_url: relay_url.clone(),
        relay_console_name: relay_info.console_name.clone(),
        relay_pin,
        vapid_key,
        push_id,
        console_subscription_id: None,
        relay_registered: true,
    });
    context.store.put_console(name, entry)?;

    // 3. The console: the token and the device's public keys.
    let recipient = context.store.device_keys()?.recipient();
    let request = SubscribeRequest {
        device: &identity.id,
        relay_url: &relay_info.url,
        token: token.expose(),
        p256dh: &recipient.p256dh(),
        auth: &recipient.auth(),
    };
    let id = match session.subscribe(&request).await {
        Ok(id) => id,
        Err(error) => return Err(undo_relay(context, name, entry, &relay, &token, error).await),
    };
    if let Some(subscription) = entry.subscription.as_mut() {
        subscription.console_subscription_id = Some(id);
    }
    entry.subscribed = true;
    context.store.put_console(name, entry)?;
    eprintln!(
        "subscribed to console {name} through relay {relay_url} (console name there: {}); run \
         `rackside alerts watch` to receive its alerts on https://{}",
        terminal_text(&relay_info.console_name),
        identity.receiver
    );
    Ok(())
}

/// Removes the relay registration after the console refused the subscription, and returns
/// the error to report, which states whether the removal worked.
// NOTE: no test reaches this path, because a running console accepts every request this
// client builds. It runs when the console fails or stops between the two steps.
async fn undo_relay(
    context: &Context,
    name: &str,
    entry: &mut ConsoleEntry,
    relay: &RelayClient,
    token: &Secret,
    rejection: anyhow::Error,
) -> anyhow::Error {
    let (kind, reason) = describe(&rejection);
    match relay.unregister(token).await {
        Ok(_) => {
            entry.subscription = None;
            let cleared = context
                .store
                .put_relay_token(name, &Secret::new(String::new()))
                .and_then(|()| context.store.put_console(name, entry));
            if let Err(error) = cleared {
                tracing::debug!(error = %describe(&error).1, "failed to clear the removed registration");
            }
            Failure::new(
                kind,
                format!("{reason}; the relay registration was removed again, so nothing changed"),
            )
            .into()
        }
        Err(error) => Failure::new(
            kind,
            format!(
                "{reason}; removing the relay registration also failed ({}): run `rackside \
                 unsubscribe {name}` to retry",
                describe(&error).1
            ),
        )
        .into(),
    }
}

/// Unsubscribes this device from console `args.name`.
pub async fn unsubscribe(args: UnsubscribeArgs) -> anyhow::Result<ExitCode> {
    let context = Context::new(&args.client.client())?;
    let name = args.name;
    check_name(&name)?;
    let mut entry = console_entry(&context, &name)?;
    let Some(mut subscription) = entry.subscription.clone() else {
        if entry.subscribed {
            entry.subscribed = false;
            context.store.put_console(&name, &entry)?;
        }
        eprintln!("console {name} is not subscribed; nothing to remove");
        return Ok(ExitCode::SUCCESS);
    };

    // 1. Locally first: from now on the receiver drops this console's pushes.
    entry.subscribed = false;
    context.store.put_console(&name, &entry)?;

    // 2. The console's subscription, then the relay registration. Each failure is kept for
    //    the message.
    let mut failures = Vec::new();
    if let Some(id) = subscription.console_subscription_id {
        match remove_from_console(&context, &name, &entry, id).await {
            Ok(()) => subscription.console_subscription_id = None,
            Err(error) => failures.push(describe(&error)),
        }
    }
    if subscription.relay_registered {
        match remove_from_relay(&context, &name, &subscription).await {
            Ok(()) => {
                subscription.relay_registered = false;
                context
                    .store
                    .put_relay_token(&name, &Secret::new(String::new()))?;
            }
            Err(error) => failures.push(describe(&error)),
        }
    }

    // 3. Keep what is still pending, or forget the subscription.
    entry.subscription = (!subscription.is_removed()).then_some(subscription);
    context.store.put_console(&name, &entry)?;
    let Some((kind, _)) = failures.first() else {
        eprintln!(
            "unsubscribed from console {name}: its subscription on the console and its relay \
             registration are removed"
        );
        return Ok(ExitCode::SUCCESS);
    };
    let reasons: Vec<String> = failures.iter().map(|(_, reason)| reason.clone()).collect();
    Err(Failure::new(
        *kind,
        format!(
            "unsubscribed from console {name} on this device, so its alerts are no longer \
             shown, but the cleanup failed: {}; run `rackside unsubscribe {name}` again to retry",
            reasons.join("; ")
        ),
    )
    .into())
}

async fn remove_from_console(
    context: &Context,
    name: &str,
    entry: &ConsoleEntry,
    id: i64,
) -> anyhow::Result<()> {
    let password = console_password(context, name, entry)?;
    let session = Session::open(context, name, entry, &password).await?;
    let removed = session.unsubscribe(id).await;
    session.close().await;
    if !removed? {
        tracing::debug!(
            console = name,
            subscription = id,
            "console subscription was already gone"
        );
    }
    Ok(())
}

async fn remove_from_relay(
    context: &Context,
    name: &str,
    subscription: &ConsoleSubscription,
) -> anyhow::Result<()> {
    let Some(token) = context.store.relay_token(name)? else {
        tracing::debug!(console = name, "no relay token stored; nothing to remove");
        return Ok(());
    };
    let label = format!("relay of console {name}");
    let relay = RelayClient::new(
        context,
        &label,
        &subscription.relay_url,
        subscription.relay_pin.clone(),
    )?;
    if !relay.unregister(&token).await? {
        tracing::debug!(console = name, "relay registration was already gone");
    }
    Ok(())
}

/// Returns the device identity, creating it on first use or when `receiver` moves it while
/// no console is subscribed.
fn ensure_identity(
    context: &Context,
    receiver: Option<SocketAddr>,
) -> anyhow::Result<DeviceIdentity> {
    let existing = context.store.device_identity()?;
    if let Some(identity) = &existing {
        if receiver.is_none_or(|address| address == identity.receiver) {
            return Ok(identity.clone());
        }
        for other in context.store.console_names()? {
            if context
                .store
                .console(&other)?
                .is_some_and(|entry| entry.subscription.is_some())
            {
                return Err(Failure::usage(format!(
                    "the receiver listens on {} for console {other}; run `rackside unsubscribe` \
                     for every console before moving it",
                    identity.receiver
                ))
                .into());
            }
        }
    }
    let address = match receiver {
        Some(address) => address,
        None => parse_receiver(DEFAULT_RECEIVER)?,
    };
    let (identity, pem_path) = context.store.create_device_identity(address)?;
    eprintln!(
        "created this device's push identity {}; the receiver listens on https://{address}. \
         Its certificate is in {}: the relay must trust it (`rackside relay serve \
         --provider-ca {}`) to deliver alerts here",
        identity.id,
        pem_path.display(),
        pem_path.display()
    );
    Ok(identity)
}

/// Returns the name this subscribe attempt registers under at the relay: the device id with
/// a random suffix, new for every attempt.
///
/// The relay keeps one registration per (console, name) pair and replaces it only for a
/// caller that sends its current token. An attempt killed after the relay stored its
/// registration, before the token reached the vault, leaves an orphan whose token is lost.
/// A new attempt under the same name would get an unstored token, so every push would fail.
/// A fresh name never meets such an orphan. The orphan itself is never pushed to, because
/// no console subscription contains its token. It only takes one of the console's
/// registration slots at the relay until the relay operator removes it.
fn registration_name(device_id: &str) -> String {
    let mut suffix = [0u8; 6];
    rand::rngs::OsRng.fill_bytes(&mut suffix);
    format!("{device_id}-{}", hex::encode(suffix))
}

/// Parses `--receiver`: an IP address and port on loopback only, because the receiver
/// accepts pushes from the relay on this machine.
fn parse_receiver(text: &str) -> Result<SocketAddr, Failure> {
    let address: SocketAddr = text.parse().map_err(|_| {
        Failure::usage(format!(
            "invalid --receiver {text:?}; give a loopback address and port such as 127.0.0.1:8446"
        ))
    })?;
    if !address.ip().is_loopback() || address.port() == 0 {
        return Err(Failure::usage(format!(
            "invalid --receiver {text:?}: the receiver listens on a loopback address only, with a \
             fixed port; use 127.0.0.1:PORT or [::1]:PORT"
        )));
    }
    Ok(address)
}

/// The relay's device API over a connection pinned to its accepted certificate.
struct RelayClient {
    label: String,
    base: Url,
    http: reqwest::Client,
}

impl RelayClient {
    fn new(context: &Context, label: &str, base: &Url, pin: Pin) -> anyhow::Result<Self> {
        let tls = context.pinned_tls(base, pin)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(RELAY_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            label: label.to_owned(),
            base: base.clone(),
            http,
        })
    }

    /// Reads the relay's VAPID public key and returns it as base64url, checked to be an
    /// uncompressed P-256 point.
    async fn vapid_key(&self) -> anyhow::Result<String> {
        #[derive(Deserialize)]
        struct Vapid {
            public_key: String,
        }
        let response = self
            .send(self.http.get(self.base.join("v1/vapid")?))
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(self.failure(
                ExitKind::BadResponse,
                "offers no Web Push; start it with --vapid-subject",
            ));
        }
        let vapid: Vapid = self
            .checked(response)
            .await?
            .json()
            .await
            .map_err(|error| {
                self.failure(
                    ExitKind::BadResponse,
                    &format!("sent an invalid VAPID answer: {error}"),
                )
            })?;
        let key = URL_SAFE_NO_PAD
            .decode(vapid.public_key.trim_end_matches('='))
            .unwrap_or_default();
        if key.len() != 65 || key.first() != Some(&0x04) {
            return Err(self.failure(
                ExitKind::BadResponse,
                "sent a VAPID key that is not an uncompressed P-256 point",
            ));
        }
        Ok(URL_SAFE_NO_PAD.encode(key))
    }

    /// Registers `device` for `console` with a Web Push target at `endpoint` and returns the
    /// registration token.
    async fn register(
        &self,
        console: &str,
        device: &str,
        endpoint: &str,
    ) -> anyhow::Result<Secret> {
        #[derive(Deserialize)]
        struct Registered {
            token: String,
            registration_id: String,
        }
        let body = json!({
            "console": console,
            "device": device,
            "target": {"provider": "webpush", "endpoint": endpoint},
        });
        let url = self.base.join("v1/registrations")?;
        let response = self.send(self.http.post(url).json(&body)).await?;
        let registered: Registered =
            self.checked(response)
                .await?
                .json()
                .await
                .map_err(|error| {
                    self.failure(
                        ExitKind::BadResponse,
                        &format!("sent an invalid registration answer: {error}"),
                    )
                })?;
        tracing::debug!(registration = %registered.registration_id, "registered with the relay");
        Ok(Secret::new(registered.token))
    }

    /// Removes the registration whose token is `token`. Returns false when the relay no
    /// longer had it.
    async fn unregister(&self, token: &Secret) -> anyhow::Result<bool> {
        let url = self.base.join("v1/registrations")?;
        let request = self.http.delete(url).bearer_auth(token.expose());
        let response = self.send(request).await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(false);
        }
        self.checked(response).await?;
        Ok(true)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        request.send().await.map_err(|error| {
            let mut causes = String::new();
            let mut source = std::error::Error::source(&error);
            while let Some(inner) = source {
                causes = format!("{causes}: {inner}");
                source = inner.source();
            }
            let detail = format!("{}{causes}", error.without_url());
            self.failure(
                ExitKind::Unreachable,
                &format!(
                    "at {} is unreachable: {detail}; check that it runs",
                    self.base
                ),
            )
        })
    }

    async fn checked(&self, response: reqwest::Response) -> anyhow::Result<reqwest::Response> {
        if response.status().is_success() {
            return Ok(response);
        }
        let reason = error_text(response).await;
        Err(self.failure(ExitKind::BadResponse, &format!("returned {reason}")))
    }

    fn failure(&self, kind: ExitKind, detail: &str) -> anyhow::Error {
        Failure::new(kind, format!("{} {detail}", self.label)).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_name_is_new_per_attempt() {
        let first = registration_name("rackside-0a1b");
        let second = registration_name("rackside-0a1b");
        assert_ne!(first, second);
        for name in [&first, &second] {
            let suffix = name.strip_prefix("rackside-0a1b-").unwrap();
            assert_eq!(suffix.len(), 12, "{name}");
            assert!(suffix.chars().all(|c| c.is_ascii_hexdigit()), "{name}");
        }
    }

    #[test]
    fn receiver_on_loopback_is_accepted() {
        assert_eq!(
            parse_receiver("127.0.0.1:8446").unwrap(),
            "127.0.0.1:8446".parse().unwrap()
        );
        assert!(parse_receiver("[::1]:9000").is_ok());
    }

    #[test]
    fn receiver_off_loopback_is_rejected() {
        for text in [
            "0.0.0.0:8446",
            "192.0.2.7:8446",
            "[::]:8446",
            "127.0.0.1:0",
            "localhost:8446",
        ] {
            let error = parse_receiver(text).unwrap_err();
            assert_eq!(error.kind, ExitKind::Usage, "{text}");
            assert!(error.message.contains("--receiver"), "{}", error.message);
        }
    }
}
