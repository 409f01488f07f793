//! Forwarding new alerts to the relay: each one encrypted to each subscribed device (RFC
//! 8291) and pushed with the console's API key; subscriptions the relay reports gone are
//! disabled.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rackside_relay::ece::{self, RecipientKeys};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::error::{invalid, ConsoleError};
use crate::store::{Alert, Store, Subscription};

/// Largest alert plaintext sent: leaves room for base64url and the provider's JSON inside
/// the 4096 bytes FCM and APNs accept.
const MAX_PUSH_PLAINTEXT: usize = 2800;
/// Attempts per push for network failures and 5xx.
const ATTEMPTS: u32 = 3;

/// The relay this console forwards to.
pub struct RelayLink {
    /// The relay's base URL, `https://host:port/`.
    pub url: url::Url,
    /// This console's API key at the relay.
    pub api_key: Zeroizing<String>,
    /// The console's name at the relay, put into each alert so devices can tell consoles apart.
    pub console_name: String,
    /// The HTTPS client, trusting the relay's certificate.
    pub http: reqwest::Client,
}

impl fmt::Debug for RelayLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayLink")
            .field("url", &self.url.as_str())
            .field("api_key", &"[REDACTED]")
            .field("console_name", &self.console_name)
            .finish()
    }
}

impl RelayLink {
    /// Returns whether `relay_url` names this relay (trailing slash ignored).
    pub fn is_same(&self, relay_url: &str) -> bool {
        self.url.as_str().trim_end_matches('/') == relay_url.trim_end_matches('/')
    }

    /// Pushes `alert` to every enabled subscription. Failures are logged with the alert and
    /// subscription ids and never stop the other pushes.
    pub async fn forward(&self, store: &Arc<Store>, alert: &Alert) {
        let subscriptions = match store.subscriptions(true) {
            Ok(list) => list,
            Err(error) => {
                tracing::error!(%error, alert = alert.id, "failed to read subscriptions");
                return;
            }
        };
        let count = store.unread_count().unwrap_or(1);
        for subscription in subscriptions {
            if let Err(error) = self.push_one(store, &subscription, alert, count).await {
                tracing::warn!(%error, alert = alert.id, subscription = subscription.id, "alert not forwarded");
            }
        }
    }

    async fn push_one(
        &self,
        store: &Store,
        subscription: &Subscription,
        alert: &Alert,
        count: u32,
    ) -> Result<(), ConsoleError> {
        // 1. Encrypt the alert to the device. The relay gets only the ciphertext and the count.
        let keys = RecipientKeys::from_base64url(&subscription.p256dh, &subscription.auth)?;
        let mut message: String = alert.message.chars().take(1000).collect();
        let plaintext = loop {
            let body = serde_json::json!({
                "console": self.console_name,
                "id": alert.id,
                "bmc": alert.bmc,
                "severity": alert.severity,
                "message_id": alert.message_id,
                "message": message,
            })
            .to_string();
            if body.len() <= MAX_PUSH_PLAINTEXT || message.is_empty() {
                break Zeroizing::new(body);
            }
            let keep = message.chars().count() / 2;
            message = message.chars().take(keep).collect();
        };
        let payload = ece::encrypt(&keys, plaintext.as_bytes())?;
        let request = serde_json::json!({
            "token": subscription.token,
            "payload": URL_SAFE_NO_PAD.encode(payload),
            "count": count,
            "collapse_id": "alerts",
        });

        // 2. Send with bounded retries; 404 and 410 mean the registration is gone.
        let url = self
            .url
            .join("v1/push")
            .map_err(|e| invalid("relay URL", e.to_string()))?;
        let mut last_error = String::new();
        for attempt in 1..=ATTEMPTS {
            let sent = self
                .http
                .post(url.clone())
                .bearer_auth(self.api_key.as_str())
                .json(&request)
                .send()
                .await;
            match sent {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) if matches!(response.status().as_u16(), 404 | 410) => {
                    store.disable_subscription(
                        &subscription.relay_url,
                        &subscription.token,
                        "relay reports the device gone",
                    )?;
                    tracing::info!(subscription = subscription.id, device = %subscription.device, "subscription disabled: device gone");
                    return Ok(());
                }
                Ok(response) if response.status().is_server_error() || response.status() == 429 => {
                    last_error = format!("relay returned {}", response.status());
                }
                Ok(response) => {
                    let hint = if response.status() == 401 {
                        ": check the API key in --relay-api-key-file and that it was not revoked"
                    } else {
                        ""
                    };
                    return Err(ConsoleError::Relay {
                        relay: self.url.to_string(),
                        reason: format!("push rejected with {}{hint}", response.status()),
                    });
                }
                Err(error) => last_error = send_failure(error),
            }
            tokio::time::sleep(Duration::from_millis(200) * attempt).await;
        }
        Err(ConsoleError::Relay {
            relay: self.url.to_string(),
            reason: format!("{last_error} after {ATTEMPTS} attempts"),
        })
    }

    /// Collects the registrations the relay removed as dead and disables their
    /// subscriptions; returns how many changed.
    ///
    /// # Errors
    /// [`ConsoleError::Relay`] when the relay cannot be asked.
    pub async fn sync_gone(&self, store: &Store) -> Result<usize, ConsoleError> {
        #[derive(Deserialize)]
        struct Gone {
            gone: Vec<GoneItem>,
        }
        #[derive(Deserialize)]
        struct GoneItem {
            token: String,
        }
        let relay_error = |reason: String| ConsoleError::Relay {
            relay: self.url.to_string(),
            reason,
        };
        let url = self
            .url
            .join("v1/gone")
            .map_err(|e| invalid("relay URL", e.to_string()))?;
        let response = self
            .http
            .get(url)
            .bearer_auth(self.api_key.as_str())
            .send()
            .await
            .map_err(|e| relay_error(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(relay_error(format!(
                "gone list returned {}",
                response.status()
            )));
        }
        let gone: Gone = response
            .json()
            .await
            .map_err(|e| relay_error(e.to_string()))?;
        let mut changed = 0;
        for item in gone.gone {
            // Subscriptions store the relay URL in this link's spelling; see `api::subscribe`.
            if store.disable_subscription(
                self.url.as_str(),
                &item.token,
                "relay reports the device gone",
            )? {
                changed += 1;
            }
        }
        Ok(changed)
    }
}

/// Formats a request to the relay that failed before any response, with its cause such as a
/// refused connection. The URL stays out, as it is in the log line's `relay` field.
fn send_failure(error: reqwest::Error) -> String {
    rackside_relay::providers::error_chain(&error.without_url())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unreachable_relay_names_the_cause() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let error = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/v1/push"))
            .send()
            .await
            .unwrap_err();
        let text = send_failure(error);
        assert!(text.starts_with("error sending request"), "{text}");
        assert!(text.len() > "error sending request".len() + 10, "{text}");
        assert!(!text.contains("/v1/push"), "{text}");
    }
}
