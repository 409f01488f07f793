//! The receiving side on the administrator's machine: decrypts pushed alerts, drops those
//! from consoles the user unsubscribed from, shows each alert once, and builds the
//! notification line, which holds only a count.
//!
//! The count comes from the console ([`unread_count`]) and is never summed from pushes,
//! because push services drop and coalesce messages.

use std::collections::{BTreeSet, HashSet};

use rackside_relay::ece::DeviceKeys;
use serde::Deserialize;

use crate::error::{invalid, ConsoleError};

/// An alert as the console pushes it, after decryption.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PushedAlert {
    /// The console's name at the relay.
    pub console: String,
    /// The alert's id on that console.
    pub id: i64,
    /// The BMC that raised it.
    pub bmc: String,
    /// `OK`, `Warning` or `Critical`.
    pub severity: String,
    /// The Redfish `MessageId`.
    pub message_id: String,
    /// The message text.
    pub message: String,
}

/// Reason a push was not shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dropped {
    /// The body did not decrypt or is not an alert.
    Undecryptable,
    /// The console is not (or no longer) subscribed.
    Unsubscribed(String),
    /// The alert was shown before.
    Duplicate,
}

/// The receiver's state: device keys, subscribed consoles and alerts already shown.
#[derive(Debug)]
pub struct Inbox {
    keys: DeviceKeys,
    subscribed: BTreeSet<String>,
    shown: HashSet<(String, i64)>,
}

impl Inbox {
    /// Creates an inbox for the device whose keys are `keys`.
    pub fn new(keys: DeviceKeys) -> Self {
        Self {
            keys,
            subscribed: BTreeSet::new(),
            shown: HashSet::new(),
        }
    }

    /// Starts accepting alerts from `console`.
    pub fn subscribe(&mut self, console: &str) {
        self.subscribed.insert(console.to_owned());
    }

    /// Stops accepting alerts from `console`; pushes already in flight are dropped.
    pub fn unsubscribe(&mut self, console: &str) {
        self.subscribed.remove(console);
    }

    /// Decrypts one push and returns the alert to show.
    ///
    /// # Errors
    /// [`Dropped`] with the reason the push is not shown.
    pub fn accept(&mut self, body: &[u8]) -> Result<PushedAlert, Dropped> {
        let plain = self
            .keys
            .decrypt(body)
            .map_err(|_| Dropped::Undecryptable)?;
        let alert: PushedAlert =
            serde_json::from_slice(&plain).map_err(|_| Dropped::Undecryptable)?;
        if !self.subscribed.contains(&alert.console) {
            return Err(Dropped::Unsubscribed(alert.console));
        }
        if !self.shown.insert((alert.console.clone(), alert.id)) {
            return Err(Dropped::Duplicate);
        }
        Ok(alert)
    }
}

/// Builds the notification line shown outside the app: the count only, never alert text.
pub fn notification_line(unread: u32) -> String {
    match unread {
        0 => "rackside: no new alerts".to_owned(),
        1 => "rackside: 1 new alert".to_owned(),
        n => format!("rackside: {n} new alerts"),
    }
}

/// Reads the unread count from a console's `GET /api/alerts/count` with a session token.
///
/// # Errors
/// [`ConsoleError::Invalid`] when the console cannot be reached or its response has no count.
pub async fn unread_count(
    http: &reqwest::Client,
    console: &url::Url,
    session: &str,
) -> Result<u32, ConsoleError> {
    let url = console
        .join("api/alerts/count")
        .map_err(|e| invalid("console URL", e.to_string()))?;
    let response = http
        .get(url)
        .bearer_auth(session)
        .send()
        .await
        .map_err(|e| invalid("console response", e.without_url().to_string()))?;
    if !response.status().is_success() {
        return Err(invalid(
            "console response",
            format!("alert count returned {}; log in again", response.status()),
        ));
    }
    let body: serde_json::Value = response
        .json()
        .await
        .map_err(|e| invalid("console response", e.to_string()))?;
    body.get("unread")
        .and_then(serde_json::Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| invalid("console response", "no unread count in the response"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(keys: &DeviceKeys, console: &str, id: i64) -> Vec<u8> {
        let alert = serde_json::json!({"console": console, "id": id, "bmc": "b", "severity": "Critical",
            "message_id": "Fan.1.0.FanFailed", "message": "Fan 2 failed"});
        rackside_relay::ece::encrypt(&keys.recipient(), alert.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn alert_is_shown_once() {
        let keys = DeviceKeys::generate();
        let body = push(&keys, "ome-1", 1);
        let mut inbox = Inbox::new(keys);
        inbox.subscribe("ome-1");
        assert_eq!(inbox.accept(&body).unwrap().message, "Fan 2 failed");
        assert_eq!(inbox.accept(&body), Err(Dropped::Duplicate));
    }

    #[test]
    fn unsubscribed_console_is_dropped() {
        let keys = DeviceKeys::generate();
        let body = push(&keys, "ome-2", 1);
        let mut inbox = Inbox::new(keys);
        inbox.subscribe("ome-2");
        inbox.unsubscribe("ome-2");
        assert_eq!(
            inbox.accept(&body),
            Err(Dropped::Unsubscribed("ome-2".into()))
        );
    }

    #[test]
    fn foreign_push_is_undecryptable() {
        let body = push(&DeviceKeys::generate(), "ome-1", 1);
        let mut inbox = Inbox::new(DeviceKeys::generate());
        inbox.subscribe("ome-1");
        assert_eq!(inbox.accept(&body), Err(Dropped::Undecryptable));
    }

    #[test]
    fn notification_line_holds_only_count() {
        assert_eq!(notification_line(0), "rackside: no new alerts");
        assert_eq!(notification_line(1), "rackside: 1 new alert");
        assert_eq!(notification_line(12), "rackside: 12 new alerts");
    }
}
