//! `rackside alerts watch`: the receiver on this machine.
//!
//! It serves a minimal RFC 8030 push service on the loopback address stored with the device
//! identity, with one subscription per subscribed console, each restricted to that console's
//! relay VAPID key. Each push is decrypted and checked against the vault as it is now, so an
//! `unsubscribe` in another terminal takes effect at once. A shown alert is followed by a
//! notification line whose count is read again from the consoles, never summed from pushes,
//! because push services drop and coalesce messages.

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use clap::Args;
use rackside_console::inbox::{notification_line, Dropped, Inbox, PushedAlert};
use rackside_relay::pushservice::{Delivered, PushService, BACKLOG};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::{mpsc, watch};

use crate::commands::alerts::{console_password, terminal_text, Session};
use crate::connect::Context;
use crate::failure::{describe, ExitKind, Failure};
use crate::output::outln;
use crate::store::{ConsoleEntry, DeviceIdentity};

/// Interval at which the vault is read again for consoles subscribed or removed meanwhile.
const RELOAD_INTERVAL: Duration = Duration::from_secs(5);
/// Maximum connections the receiver keeps open, because only this device's relays connect.
const MAX_CONNECTIONS: usize = 32;
/// Maximum length of a printed alert message, in characters.
const MAX_MESSAGE_CHARS: usize = 300;

/// `rackside alerts watch`
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Print only the notification lines (the unread count), never alert text, as a lock
    /// screen would show them
    #[arg(long)]
    pub count_only: bool,

    /// Exit after the first alert shown
    #[arg(long)]
    pub once: bool,
}

/// Receives pushes until Ctrl-C or SIGTERM, or after the first alert with `--once`.
pub async fn run(context: Context, args: WatchArgs) -> anyhow::Result<ExitCode> {
    // 1. The identity and keys that `subscribe` created.
    let identity = context.store.device_identity()?.ok_or_else(|| {
        Failure::usage("this device has no push identity yet; run `rackside subscribe NAME` first")
    })?;
    let tls = receiver_tls(&context, &identity)?;
    let mut receiver = Receiver {
        inbox: Inbox::new(context.store.device_keys()?),
        context,
        push_service: PushService::default(),
        restored: BTreeMap::new(),
        sessions: HashMap::new(),
        count_only: args.count_only,
    };
    let (sender, mut pushes) = mpsc::channel(BACKLOG);
    let consoles = receiver.reload(&sender)?;
    if consoles == 0 {
        return Err(Failure::usage(
            "no console is subscribed; run `rackside subscribe NAME` first",
        )
        .into());
    }

    // 2. The push service on the stored loopback address.
    let listener = tokio::net::TcpListener::bind(identity.receiver)
        .await
        .map_err(|error| {
            Failure::new(
                ExitKind::Failure,
                format!(
                    "failed to listen on {}: {error}; stop the other `rackside alerts watch`, or \
                     move the receiver with `rackside subscribe NAME --receiver ADDR:PORT` after \
                     unsubscribing every console",
                    identity.receiver
                ),
            )
        })?;
    let (stop, stopped) = watch::channel(false);
    let server = tokio::spawn(rackside_relay::tls::accept_loop(
        listener,
        tls,
        receiver.push_service.router(),
        MAX_CONNECTIONS,
        stopped,
    ));
    eprintln!(
        "receiving pushes on https://{} for {consoles} console(s); stop with Ctrl-C",
        identity.receiver
    );

    // 3. Pushes, reloads and the stop signal.
    let signal = super::relay::wait_for_shutdown_signal();
    tokio::pin!(signal);
    let mut reload = tokio::time::interval(RELOAD_INTERVAL);
    reload.tick().await;
    let result = loop {
        tokio::select! {
            () = &mut signal => break Ok(()),
            _ = reload.tick() => {
                if let Err(error) = receiver.reload(&sender) {
                    eprintln!("warning: failed to read the subscriptions again: {}", describe(&error).1);
                }
            }
            delivered = pushes.recv() => {
                let Some(delivered) = delivered else { break Ok(()) };
                match receiver.handle(delivered).await {
                    Ok(true) if args.once => break Ok(()),
                    Ok(_) => {}
                    // Without the vault, the subscription cannot be checked, so the push is dropped.
                    Err(error) => eprintln!(
                        "warning: push dropped: failed to read the subscriptions: {}",
                        describe(&error).1
                    ),
                }
            }
        }
    };
    let _ = stop.send(true);
    if let Err(error) = server.await {
        tracing::debug!(%error, "receiver task ended abnormally");
    }
    for (_, session) in receiver.sessions.drain() {
        session.close().await;
    }
    result.map(|()| ExitCode::SUCCESS)
}

/// The receiver's state between pushes.
struct Receiver {
    context: Context,
    inbox: Inbox,
    push_service: PushService,
    /// Push subscription ids restored in the push service, with the console they belong to.
    restored: BTreeMap<String, String>,
    /// Console login sessions for the unread count, opened on first use.
    sessions: HashMap<String, Session>,
    count_only: bool,
}

impl Receiver {
    /// Reads the consoles from the vault and brings the push service's subscriptions in line:
    /// one per console with a subscription record, pending removal included, because the
    /// inbox drops the pushes of unsubscribed consoles. Returns how many consoles are
    /// subscribed.
    fn reload(&mut self, sender: &mpsc::Sender<Delivered>) -> anyhow::Result<usize> {
        let consoles = read_consoles(&self.context)?;
        let mut current = BTreeMap::new();
        for (name, entry) in &consoles {
            let Some(subscription) = &entry.subscription else {
                continue;
            };
            let vapid_key = URL_SAFE_NO_PAD
                .decode(&subscription.vapid_key)
                .unwrap_or_default();
            if !self.restored.contains_key(&subscription.push_id) {
                self.push_service
                    .subscribe_with_id(&subscription.push_id, vapid_key, sender.clone())
                    .map_err(|error| {
                        Failure::new(
                            ExitKind::Failure,
                            format!(
                                "the push subscription of console {name} in the vault is \
                                 invalid ({error}); run `rackside unsubscribe {name}` and \
                                 subscribe again"
                            ),
                        )
                    })?;
                tracing::debug!(console = %name, "push subscription restored");
            }
            current.insert(subscription.push_id.clone(), name.clone());
        }
        for (push_id, name) in &self.restored {
            if !current.contains_key(push_id) {
                self.push_service.unsubscribe(push_id);
                tracing::debug!(console = %name, "push subscription removed");
            }
        }
        self.restored = current;
        Ok(consoles.values().filter(|entry| entry.subscribed).count())
    }

    /// Shows one push if it decrypts, comes from a console subscribed now and was not shown
    /// before. Returns whether it was shown.
    async fn handle(&mut self, delivered: Delivered) -> anyhow::Result<bool> {
        // 1. The vault as it is now decides which consoles are subscribed.
        let consoles = read_consoles(&self.context)?;
        let Some((name, entry)) = consoles.iter().find(|(_, entry)| {
            entry
                .subscription
                .as_ref()
                .is_some_and(|s| s.push_id == delivered.subscription)
        }) else {
            tracing::debug!(subscription = %delivered.subscription, reason = "unknown subscription", "push dropped");
            return Ok(false);
        };
        for entry in consoles.values() {
            if let Some(subscription) = &entry.subscription {
                if entry.subscribed {
                    self.inbox.subscribe(&subscription.relay_console_name);
                } else {
                    self.inbox.unsubscribe(&subscription.relay_console_name);
                }
            }
        }

        // 2. Decrypt and drop what must not be shown. Only the reason is logged, never the text.
        let alert = match self.inbox.accept(&delivered.body) {
            Ok(alert) => alert,
            Err(dropped) => {
                let reason = match dropped {
                    Dropped::Undecryptable => "undecryptable",
                    Dropped::Unsubscribed(_) => "console unsubscribed",
                    Dropped::Duplicate => "duplicate",
                };
                tracing::debug!(console = %name, reason, "push dropped");
                return Ok(false);
            }
        };
        let expected = entry
            .subscription
            .as_ref()
            .map(|s| s.relay_console_name.as_str());
        if expected != Some(alert.console.as_str()) {
            tracing::debug!(console = %name, reason = "sent for another console", "push dropped");
            return Ok(false);
        }

        // 3. The alert, then the count read again from every subscribed console.
        if !self.count_only {
            outln!("{}", alert_line(name, &alert));
        }
        match self.unread_total(&consoles).await {
            Ok(total) => outln!("{}", notification_line(total)),
            Err(reason) => eprintln!("warning: {reason}; no notification line for this alert"),
        }
        Ok(true)
    }

    /// Sums the unread counts of every subscribed console, logging in again once when a
    /// session has expired.
    async fn unread_total(
        &mut self,
        consoles: &BTreeMap<String, ConsoleEntry>,
    ) -> Result<u32, String> {
        let mut total: u32 = 0;
        for (name, entry) in consoles.iter().filter(|(_, entry)| entry.subscribed) {
            let mut count = None;
            let mut last_error = String::new();
            for _ in 0..2 {
                let read = match self.session(name, entry).await {
                    Ok(session) => session.unread_count().await,
                    Err(error) => {
                        last_error = describe(&error).1;
                        break;
                    }
                };
                match read {
                    Ok(unread) => {
                        count = Some(unread);
                        break;
                    }
                    Err(error) => {
                        last_error = describe(&error).1;
                        if let Some(expired) = self.sessions.remove(name) {
                            expired.close().await;
                        }
                    }
                }
            }
            let count = count.ok_or_else(|| {
                format!("failed to read the unread count from console {name}: {last_error}")
            })?;
            total = total.saturating_add(count);
        }
        Ok(total)
    }

    async fn session(&mut self, name: &str, entry: &ConsoleEntry) -> anyhow::Result<&Session> {
        if !self.sessions.contains_key(name) {
            let password = console_password(&self.context, name, entry)?;
            let session = Session::open(&self.context, name, entry, &password).await?;
            self.sessions.insert(name.to_owned(), session);
        }
        self.sessions
            .get(name)
            .ok_or_else(|| Failure::new(ExitKind::Failure, "internal error: session lost").into())
    }
}

/// Reads every listed console entry from the vault.
fn read_consoles(context: &Context) -> anyhow::Result<BTreeMap<String, ConsoleEntry>> {
    let mut consoles = BTreeMap::new();
    for name in context.store.console_names()? {
        if let Some(entry) = context.store.console(&name)? {
            consoles.insert(name, entry);
        }
    }
    Ok(consoles)
}

/// Formats one alert as a line: severity, console, BMC, message and the alert's id. Control
/// and format characters from the console are replaced, so a message cannot move the cursor,
/// end the line or reorder the text shown.
fn alert_line(console: &str, alert: &PushedAlert) -> String {
    let clean = |text: &str, max: usize| -> String {
        terminal_text(&text.chars().take(max).collect::<String>())
    };
    format!(
        "{} {console} {}: {} (alert {})",
        clean(&alert.severity, 16),
        clean(&alert.bmc, 64),
        clean(&alert.message, MAX_MESSAGE_CHARS),
        alert.id
    )
}

/// Builds the receiver's TLS configuration from the certificate and the key in the vault.
fn receiver_tls(
    context: &Context,
    identity: &DeviceIdentity,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let damaged = |what: &str| {
        Failure::new(
            ExitKind::Failure,
            format!(
                "the receiver's {what} in the vault is damaged; unsubscribe every console and \
                 subscribe again to create a new one"
            ),
        )
    };
    let chain = CertificateDer::pem_slice_iter(identity.certificate_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| damaged("certificate"))?;
    let key_pem = context.store.receiver_key()?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.expose().as_bytes())
        .map_err(|_| damaged("TLS key"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|_| damaged("TLS key"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(message: &str) -> PushedAlert {
        PushedAlert {
            console: "ome-1".into(),
            id: 7,
            bmc: "rack-3".into(),
            severity: "Critical".into(),
            message_id: "Fan.1.0.FanFailed".into(),
            message: message.into(),
        }
    }

    #[test]
    fn alert_line_names_severity_console_bmc_and_id() {
        let line = alert_line("ops", &alert("Fan 1 failed"));
        assert_eq!(line, "Critical ops rack-3: Fan 1 failed (alert 7)");
    }

    #[test]
    fn alert_line_replaces_bidi_controls() {
        let line = alert_line(
            "ops",
            &alert("Fan \u{202e}deliaf\u{202c} \u{2066}ok\u{2069}"),
        );
        for c in ['\u{202e}', '\u{202c}', '\u{2066}', '\u{2069}'] {
            assert!(!line.contains(c), "{line:?}");
        }
        assert!(line.contains("Fan  deliaf   ok "), "{line:?}");
    }

    #[test]
    fn alert_line_replaces_control_characters() {
        let line = alert_line("ops", &alert("Fan\n1\u{1b}[2J failed"));
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(line.contains("Fan 1 [2J failed"), "{line:?}");
    }
}
