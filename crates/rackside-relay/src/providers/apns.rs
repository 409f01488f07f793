//! Apple Push Notification service over HTTP/2 with token-based authentication. The ES256
//! provider token is reused and replaced between 20 and 60 minutes after issue, because APNs
//! rejects tokens older than one hour and throttles more frequent replacements.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use zeroize::Zeroizing;

use super::{network_retry, retry_on, Outcome, Push, MAX_PROVIDER_PAYLOAD};
use crate::error::{io_error, RelayError};
use crate::jwt::{unix_now, Signer};

/// Minimum refresh interval: APNs returns `TooManyProviderTokenUpdates` for faster changes.
pub const MIN_TOKEN_REFRESH: Duration = Duration::from_secs(20 * 60);
/// Maximum refresh interval: APNs rejects tokens older than one hour as expired.
pub const MAX_TOKEN_REFRESH: Duration = Duration::from_secs(60 * 60);
/// Default refresh interval, well inside both limits.
pub const DEFAULT_TOKEN_REFRESH: Duration = Duration::from_secs(40 * 60);
/// Longest `apns-collapse-id` APNs accepts, in bytes.
const MAX_COLLAPSE_ID: usize = 64;

/// APNs key, identifiers and endpoint.
#[derive(Debug, Clone)]
pub struct ApnsConfig {
    /// The `.p8` signing key file (PKCS#8 PEM, P-256).
    pub key_file: PathBuf,
    /// The key's 10-character identifier, the token's `kid`.
    pub key_id: String,
    /// The developer team identifier, the token's `iss`.
    pub team_id: String,
    /// The app's bundle id, sent as `apns-topic`.
    pub topic: String,
    /// The API base, `https://api.push.apple.com` in production.
    pub base_url: url::Url,
    /// Age at which the provider token is replaced; 20 to 60 minutes.
    pub token_refresh: Duration,
}

struct ProviderToken {
    value: String,
    issued: Instant,
}

/// The APNs provider with its current provider token.
pub struct Apns {
    signer: Signer,
    config: ApnsConfig,
    http: reqwest::Client,
    token: Mutex<Option<ProviderToken>>,
}

impl fmt::Debug for Apns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Apns")
            .field("key_id", &self.config.key_id)
            .field("team_id", &self.config.team_id)
            .field("topic", &self.config.topic)
            .finish_non_exhaustive()
    }
}

/// Returns whether a token issued `age` ago must be replaced under `refresh`.
pub fn token_needs_refresh(age: Duration, refresh: Duration) -> bool {
    age >= refresh
}

impl Apns {
    pub(super) fn new(config: ApnsConfig, http: reqwest::Client) -> Result<Self, RelayError> {
        if !(MIN_TOKEN_REFRESH..=MAX_TOKEN_REFRESH).contains(&config.token_refresh) {
            return Err(RelayError::Config(format!(
                "APNs token refresh of {} s is outside 1200 to 3600 s",
                config.token_refresh.as_secs()
            )));
        }
        let pem = Zeroizing::new(
            std::fs::read(&config.key_file).map_err(|e| io_error("read", &config.key_file, e))?,
        );
        let signer = Signer::from_pem("APNs signing key", &pem)?;
        if signer.algorithm() != "ES256" {
            return Err(RelayError::InvalidKey {
                what: "APNs signing key",
                reason: "expected a P-256 key (.p8)".to_owned(),
            });
        }
        Ok(Self {
            signer,
            config,
            http,
            token: Mutex::new(None),
        })
    }

    pub(super) async fn send(&self, device_token: &str, push: &Push) -> Outcome {
        // 1. The payload: a count the system may show, the ciphertext for the app's
        //    notification service extension to decrypt.
        let payload = serde_json::json!({
            "aps": {
                "alert": { "loc-key": "NEW_ALERTS", "loc-args": [push.count.to_string()] },
                "badge": push.count,
                "mutable-content": 1,
            },
            "payload": push.payload_base64url(),
        })
        .to_string();
        if payload.len() > MAX_PROVIDER_PAYLOAD {
            return Outcome::Failed(format!(
                "APNs payload of {} bytes is too large",
                payload.len()
            ));
        }
        let Ok(url) = self
            .config
            .base_url
            .join(&format!("3/device/{device_token}"))
        else {
            return Outcome::Failed("APNs device URL does not parse".to_owned());
        };

        // 2. Send; on ExpiredProviderToken issue a new token and try once more.
        for attempt in 0..2 {
            let token = match self.provider_token(attempt > 0).await {
                Ok(token) => token,
                Err(e) => return Outcome::Failed(e.to_string()),
            };
            let mut request = self
                .http
                .post(url.clone())
                .version(reqwest::Version::HTTP_2)
                .header(reqwest::header::AUTHORIZATION, format!("bearer {token}"))
                .header("apns-push-type", "alert")
                .header("apns-topic", &self.config.topic)
                .header("apns-priority", "10")
                .header(
                    "apns-expiration",
                    (unix_now() + push.ttl.as_secs()).to_string(),
                )
                .body(payload.clone());
            if let Some(id) = push
                .collapse_id
                .as_deref()
                .filter(|id| id.len() <= MAX_COLLAPSE_ID)
            {
                request = request.header("apns-collapse-id", id);
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) => return network_retry(e),
            };
            if let Some(retry) = retry_on(&response) {
                return retry;
            }
            let status = response.status();
            if status.is_success() {
                return Outcome::Delivered;
            }
            if status == reqwest::StatusCode::GONE {
                return Outcome::Gone;
            }
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            let reason = body
                .get("reason")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("unknown")
                .to_owned();
            if reason == "ExpiredProviderToken" && attempt == 0 {
                tracing::debug!("APNs reports the provider token expired; issuing a new one");
                continue;
            }
            return Outcome::Failed(format!("APNs returned {status} {reason}"));
        }
        Outcome::Failed("APNs rejected a freshly issued provider token".to_owned())
    }

    /// Returns the current provider token, signing a new one when none exists, the current
    /// one has reached the refresh age, or `renew` is set.
    async fn provider_token(&self, renew: bool) -> Result<String, RelayError> {
        let mut current = self.token.lock().await;
        if let Some(token) = current.as_ref() {
            if !renew && !token_needs_refresh(token.issued.elapsed(), self.config.token_refresh) {
                return Ok(token.value.clone());
            }
        }
        let mut header = serde_json::Map::new();
        header.insert("kid".into(), self.config.key_id.clone().into());
        let claims = serde_json::json!({ "iss": self.config.team_id, "iat": unix_now() });
        let value = self.signer.sign(header, &claims)?;
        tracing::debug!(key_id = %self.config.key_id, "APNs provider token issued");
        *current = Some(ProviderToken {
            value: value.clone(),
            issued: Instant::now(),
        });
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_refresh_follows_configured_age() {
        let refresh = DEFAULT_TOKEN_REFRESH;
        assert!(!token_needs_refresh(Duration::from_secs(19 * 60), refresh));
        assert!(!token_needs_refresh(Duration::from_secs(39 * 60), refresh));
        assert!(token_needs_refresh(Duration::from_secs(40 * 60), refresh));
        assert!(token_needs_refresh(Duration::from_secs(61 * 60), refresh));
    }
}
