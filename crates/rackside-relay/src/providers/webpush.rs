//! Web Push (RFC 8030) with VAPID (RFC 8292): the payload is already an RFC 8291 `aes128gcm`
//! body, so it goes to the subscription endpoint unchanged.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::StatusCode;

use super::{network_retry, retry_on, Outcome, Push};
use crate::error::RelayError;
use crate::jwt::{unix_now, Signer};

/// Lifetime of a VAPID token. RFC 8292 section 2 allows at most 24 hours.
const VAPID_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Longest `Topic` header value RFC 8030 section 5.4 allows, from the base64url alphabet.
const MAX_TOPIC: usize = 32;

/// The Web Push provider: a VAPID signing key and the contact URI sent as `sub`.
#[derive(Debug)]
pub struct WebPush {
    signer: Signer,
    subject: String,
    http: reqwest::Client,
}

impl WebPush {
    pub(super) fn new(
        subject: String,
        vapid_key_der: &[u8],
        http: reqwest::Client,
    ) -> Result<Self, RelayError> {
        if !(subject.starts_with("mailto:") || subject.starts_with("https:")) {
            return Err(RelayError::Config(format!(
                "invalid VAPID subject {subject:?}: use a mailto: or https: URI"
            )));
        }
        Ok(Self {
            signer: Signer::es256_from_pkcs8("VAPID key", vapid_key_der)?,
            subject,
            http,
        })
    }

    /// Returns the VAPID public key, base64url of the uncompressed point.
    pub fn public_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.signer.public_key())
    }

    /// Builds the `Authorization: vapid t=..., k=...` value for `endpoint`'s origin.
    ///
    /// # Errors
    /// [`RelayError::Config`] for an endpoint without an origin; signing errors.
    pub fn authorization(&self, endpoint: &url::Url) -> Result<String, RelayError> {
        let origin = endpoint.origin().ascii_serialization();
        if origin == "null" {
            return Err(RelayError::Config(
                "Web Push endpoint has no origin".to_owned(),
            ));
        }
        let claims = serde_json::json!({
            "aud": origin,
            "exp": unix_now() + VAPID_LIFETIME.as_secs(),
            "sub": self.subject,
        });
        let token = self.signer.sign(serde_json::Map::new(), &claims)?;
        Ok(format!("vapid t={token}, k={}", self.public_key()))
    }

    pub(super) async fn send(&self, endpoint: &str, push: &Push) -> Outcome {
        // 1. Headers: VAPID, TTL, content coding, urgency and an optional topic.
        let Ok(url) = url::Url::parse(endpoint) else {
            return Outcome::Failed("stored Web Push endpoint no longer parses".to_owned());
        };
        let authorization = match self.authorization(&url) {
            Ok(value) => value,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let mut request = self
            .http
            .post(url)
            .header(reqwest::header::AUTHORIZATION, authorization)
            .header("TTL", push.ttl.as_secs().to_string())
            .header(reqwest::header::CONTENT_ENCODING, "aes128gcm")
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header("Urgency", "high")
            .body(push.payload.to_vec());
        if let Some(topic) = push.collapse_id.as_deref().filter(|t| is_topic(t)) {
            request = request.header("Topic", topic);
        }

        // 2. Classify the response (RFC 8030 section 5 and 7, RFC 8292 section 4).
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return network_retry(e),
        };
        if let Some(retry) = retry_on(&response) {
            return retry;
        }
        match response.status() {
            s if s.is_success() => Outcome::Delivered,
            StatusCode::NOT_FOUND | StatusCode::GONE => Outcome::Gone,
            s => Outcome::Failed(format!("push service returned {s}")),
        }
    }
}

fn is_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= MAX_TOPIC
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
