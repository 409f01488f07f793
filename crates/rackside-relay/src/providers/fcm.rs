//! Firebase Cloud Messaging HTTP v1: an OAuth 2.0 access token obtained with the JWT bearer
//! grant (RFC 7523) from a service-account key, then data-only messages.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use super::{network_retry, retry_on, Outcome, Push, MAX_PROVIDER_PAYLOAD};
use crate::error::{io_error, RelayError};
use crate::jwt::{unix_now, Signer};

/// OAuth 2.0 scope that FCM HTTP v1 requires.
pub const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// Lifetime asked for in the grant assertion; Google accepts at most one hour.
const ASSERTION_LIFETIME: u64 = 3600;
/// An access token is replaced this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(120);

/// FCM endpoint and service-account file.
#[derive(Debug, Clone)]
pub struct FcmConfig {
    /// The service-account JSON file as the Firebase console downloads it.
    pub service_account: PathBuf,
    /// The API base, `https://fcm.googleapis.com` in production.
    pub base_url: url::Url,
}

/// The fields of a service-account file that the grant needs.
pub struct ServiceAccount {
    /// The Firebase project that messages are sent in.
    pub project_id: String,
    /// The account's e-mail address, the assertion's `iss`.
    pub client_email: String,
    /// The OAuth 2.0 token endpoint, the assertion's `aud`.
    pub token_uri: url::Url,
    signer: Signer,
}

impl fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("project_id", &self.project_id)
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri.as_str())
            .field("private_key", &"[REDACTED]")
            .finish()
    }
}

#[derive(Deserialize)]
struct AccountFile {
    project_id: String,
    client_email: String,
    token_uri: String,
    private_key: Zeroizing<String>,
}

impl ServiceAccount {
    /// Parses a service-account JSON document.
    ///
    /// # Errors
    /// [`RelayError::Config`] for missing fields or a token URI that is not https;
    /// [`RelayError::InvalidKey`] when the private key is not an RSA PKCS#8 PEM.
    pub fn parse(json: &[u8]) -> Result<Self, RelayError> {
        let file: AccountFile = serde_json::from_slice(json)
            .map_err(|e| RelayError::Config(format!("invalid FCM service-account JSON: {e}")))?;
        let token_uri = url::Url::parse(&file.token_uri).map_err(|e| {
            RelayError::Config(format!("invalid token_uri in service-account JSON: {e}"))
        })?;
        if token_uri.scheme() != "https" {
            return Err(RelayError::Config(
                "token_uri in service-account JSON must be https".to_owned(),
            ));
        }
        let signer = Signer::from_pem("FCM service-account key", file.private_key.as_bytes())?;
        if signer.algorithm() != "RS256" {
            return Err(RelayError::InvalidKey {
                what: "FCM service-account key",
                reason: "expected an RSA key".to_owned(),
            });
        }
        Ok(Self {
            project_id: file.project_id,
            client_email: file.client_email,
            token_uri,
            signer,
        })
    }

    /// Builds the signed grant assertion (RFC 7523 section 2.1) for the FCM scope.
    ///
    /// # Errors
    /// Signing errors.
    pub fn assertion(&self) -> Result<String, RelayError> {
        let now = unix_now();
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": FCM_SCOPE,
            "aud": self.token_uri.as_str(),
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
        });
        self.signer.sign(serde_json::Map::new(), &claims)
    }
}

struct AccessToken {
    value: Zeroizing<String>,
    refresh_at: Instant,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Zeroizing<String>,
    expires_in: u64,
}

/// The FCM provider with its cached access token.
pub struct Fcm {
    account: ServiceAccount,
    send_url: url::Url,
    http: reqwest::Client,
    token: Mutex<Option<AccessToken>>,
}

impl fmt::Debug for Fcm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fcm")
            .field("account", &self.account)
            .field("send_url", &self.send_url.as_str())
            .finish_non_exhaustive()
    }
}

impl Fcm {
    pub(super) fn new(config: FcmConfig, http: reqwest::Client) -> Result<Self, RelayError> {
        let json = Zeroizing::new(
            std::fs::read(&config.service_account)
                .map_err(|e| io_error("read", &config.service_account, e))?,
        );
        let account = ServiceAccount::parse(&json)?;
        let path = format!("v1/projects/{}/messages:send", account.project_id);
        let send_url = config
            .base_url
            .join(&path)
            .map_err(|e| RelayError::Config(format!("invalid FCM base URL: {e}")))?;
        Ok(Self {
            account,
            send_url,
            http,
            token: Mutex::new(None),
        })
    }

    pub(super) async fn send(&self, device_token: &str, push: &Push) -> Outcome {
        // 1. A data-only message: no notification block, so the app decides what to show.
        let message = serde_json::json!({
            "message": {
                "token": device_token,
                "data": { "payload": push.payload_base64url(), "count": push.count.to_string() },
                "android": {
                    "priority": "high",
                    "ttl": format!("{}s", push.ttl.as_secs()),
                    "collapse_key": push.collapse_id,
                },
            }
        });
        let body = message.to_string();
        if body.len() > MAX_PROVIDER_PAYLOAD + 512 {
            return Outcome::Failed(format!("FCM message of {} bytes is too large", body.len()));
        }

        // 2. Send with the cached token; one fresh token and one more try on 401.
        for attempt in 0..2 {
            let token = match self.access_token(attempt > 0).await {
                Ok(token) => token,
                Err(outcome) => return outcome,
            };
            let response = match self
                .http
                .post(self.send_url.clone())
                .bearer_auth(token.as_str())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await
            {
                Ok(response) => response,
                Err(e) => return network_retry(e),
            };
            if response.status() == reqwest::StatusCode::UNAUTHORIZED && attempt == 0 {
                tracing::debug!("FCM rejected the access token; requesting a new one");
                continue;
            }
            return classify(response).await;
        }
        Outcome::Failed("FCM rejected a freshly issued access token".to_owned())
    }

    /// Returns a valid access token, asking the token endpoint when none is cached, it is
    /// about to expire, or `renew` is set.
    async fn access_token(&self, renew: bool) -> Result<Zeroizing<String>, Outcome> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached
            .as_ref()
            .filter(|t| !renew && Instant::now() < t.refresh_at)
        {
            return Ok(token.value.clone());
        }
        let assertion = self
            .account
            .assertion()
            .map_err(|e| Outcome::Failed(e.to_string()))?;
        let form = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
        );
        let response = self
            .http
            .post(self.account.token_uri.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form)
            .send()
            .await
            .map_err(network_retry)?;
        if let Some(retry) = retry_on(&response) {
            return Err(retry);
        }
        let status = response.status();
        if !status.is_success() {
            // An expired or deleted key shows up here as 400 invalid_grant.
            let detail = response.text().await.unwrap_or_default();
            let error = serde_json::from_str::<serde_json::Value>(&detail)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
                .unwrap_or_default();
            return Err(Outcome::Failed(format!(
                "FCM token request for {} returned {status} {error}; check the service-account key",
                self.account.client_email
            )));
        }
        let parsed: TokenResponse = response
            .json()
            .await
            .map_err(|e| Outcome::Failed(format!("FCM token response is invalid: {e}")))?;
        let lifetime = Duration::from_secs(parsed.expires_in).saturating_sub(TOKEN_MARGIN);
        let value = parsed.access_token.clone();
        *cached = Some(AccessToken {
            value: parsed.access_token,
            refresh_at: Instant::now() + lifetime,
        });
        tracing::debug!(lifetime_s = lifetime.as_secs(), "FCM access token issued");
        Ok(value)
    }
}

/// Classifies a send response: `UNREGISTERED` (404) means the app is gone.
async fn classify(response: reqwest::Response) -> Outcome {
    if let Some(retry) = retry_on(&response) {
        return retry;
    }
    let status = response.status();
    if status.is_success() {
        return Outcome::Delivered;
    }
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let unregistered = body
        .pointer("/error/details")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .any(|detail| {
            detail.get("errorCode").and_then(serde_json::Value::as_str) == Some("UNREGISTERED")
        });
    let code = body
        .pointer("/error/status")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("unknown")
        .to_owned();
    if unregistered || code == "UNREGISTERED" {
        return Outcome::Gone;
    }
    Outcome::Failed(format!("FCM returned {status} {code}"))
}
