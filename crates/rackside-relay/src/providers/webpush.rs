//! Web Push (RFC 8030) with VAPID (RFC 8292): the payload is already an RFC 8291 `aes128gcm`
//! body, so it goes to the subscription endpoint unchanged.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::StatusCode;

use super::{network_retry, retry_on, Outcome, Push};
use crate::error::RelayError;
use crate::jwt::{unix_now, Signer};

/// Lifetime of a VAPID token. RFC 8292 section 2 allows at most 24 hours.
const VAPID_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Age after which a cached VAPID token is signed again, well inside its lifetime.
const VAPID_REUSE: Duration = Duration::from_secs(6 * 3600);
/// Push service origins whose token is kept; the cache starts over when it is full.
const VAPID_CACHE_ORIGINS: usize = 1024;
/// Longest `Topic` header value RFC 8030 section 5.4 allows, from the base64url alphabet.
const MAX_TOPIC: usize = 32;

/// The Web Push provider: a VAPID signing key, the contact URI sent as `sub`, and a cache
/// of signed tokens per push service origin. The cache keeps the signing time in Unix
/// seconds because the token's `exp` is wall time too.
pub struct WebPush {
    signer: Signer,
    subject: String,
    http: reqwest::Client,
    tokens: Mutex<HashMap<String, (String, u64)>>,
}

impl std::fmt::Debug for WebPush {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebPush")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
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
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// Returns the VAPID public key, base64url of the uncompressed point.
    pub fn public_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.signer.public_key())
    }

    /// Builds the `Authorization: vapid t=..., k=...` value for `endpoint`'s origin, from the
    /// cached token for that origin while it is younger than [`VAPID_REUSE`].
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
        let cached = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&origin)
            .filter(|(_, signed)| unix_now().saturating_sub(*signed) < VAPID_REUSE.as_secs())
            .map(|(token, _)| token.clone());
        let token = match cached {
            Some(token) => token,
            None => {
                let token = self.sign_for(&origin)?;
                let mut tokens = self
                    .tokens
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if tokens.len() >= VAPID_CACHE_ORIGINS {
                    tokens.clear();
                }
                tokens.insert(origin, (token.clone(), unix_now()));
                token
            }
        };
        Ok(format!("vapid t={token}, k={}", self.public_key()))
    }

    fn sign_for(&self, origin: &str) -> Result<String, RelayError> {
        let claims = serde_json::json!({
            "aud": origin,
            "exp": unix_now() + VAPID_LIFETIME.as_secs(),
            "sub": self.subject,
        });
        self.signer.sign(serde_json::Map::new(), &claims)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn claims_of(authorization: &str) -> serde_json::Value {
        let token = authorization
            .strip_prefix("vapid t=")
            .and_then(|rest| rest.split(',').next())
            .unwrap();
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    }

    fn provider() -> WebPush {
        let (_, pkcs8) = Signer::generate_es256().unwrap();
        WebPush::new(
            "mailto:ops@example.org".into(),
            &pkcs8,
            reqwest::Client::new(),
        )
        .unwrap()
    }

    #[test]
    fn vapid_token_is_reused_per_origin() {
        let push = provider();
        let one = url::Url::parse("https://push.example:8443/push/one").unwrap();
        let two = url::Url::parse("https://push.example:8443/push/two").unwrap();
        let other = url::Url::parse("https://other.example/push/one").unwrap();
        let first = push.authorization(&one).unwrap();
        assert_eq!(push.authorization(&two).unwrap(), first);
        let second = push.authorization(&other).unwrap();
        assert_ne!(second, first);
        assert_eq!(claims_of(&first)["aud"], "https://push.example:8443");
        assert_eq!(claims_of(&second)["aud"], "https://other.example");
    }

    #[test]
    fn stale_vapid_token_is_signed_again() {
        let push = provider();
        let endpoint = url::Url::parse("https://push.example/push/one").unwrap();
        let first = push.authorization(&endpoint).unwrap();
        for entry in push.tokens.lock().unwrap().values_mut() {
            entry.1 -= VAPID_REUSE.as_secs();
        }
        let second = push.authorization(&endpoint).unwrap();
        assert_ne!(second, first);
        let exp = claims_of(&second)["exp"].as_u64().unwrap();
        assert!(exp > unix_now() + VAPID_LIFETIME.as_secs() - 60);
    }
}
