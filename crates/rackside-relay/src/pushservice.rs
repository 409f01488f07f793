//! A minimal RFC 8030 push service for a receiver on this machine: it accepts pushes at
//! `POST /push/{subscription}` over TLS on loopback and hands each body to the subscriber,
//! still encrypted. Each subscription is restricted to one VAPID key (RFC 8292 section 3.2),
//! so only the relay that the device registered with can push to it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use ring::signature;
use tokio::sync::mpsc;

use crate::ece::RECORD_SIZE;
use crate::error::RelayError;
use crate::jwt::unix_now;

/// Pushes kept for a subscriber that is not reading; more get 429.
pub const BACKLOG: usize = 256;
/// Maximum length of a subscription id that [`PushService::subscribe_with_id`] accepts.
const MAX_ID_LEN: usize = 64;

/// One push as the subscriber receives it: the subscription id and the encrypted body.
#[derive(Debug)]
pub struct Delivered {
    /// The subscription the push was for.
    pub subscription: String,
    /// The `aes128gcm` body, still encrypted.
    pub body: Vec<u8>,
}

struct Subscription {
    vapid_key: Vec<u8>,
    sender: mpsc::Sender<Delivered>,
}

/// The push service's subscriptions.
#[derive(Clone, Default)]
pub struct PushService {
    subscriptions: Arc<Mutex<HashMap<String, Subscription>>>,
}

impl std::fmt::Debug for PushService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushService").finish_non_exhaustive()
    }
}

impl PushService {
    /// Creates a subscription restricted to `vapid_key` (the relay's uncompressed P-256
    /// public key) and returns its id and the receiving end.
    pub fn subscribe(&self, vapid_key: Vec<u8>) -> (String, mpsc::Receiver<Delivered>) {
        let mut raw = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let id = URL_SAFE_NO_PAD.encode(raw);
        let (sender, receiver) = mpsc::channel(BACKLOG);
        self.subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.clone(), Subscription { vapid_key, sender });
        (id, receiver)
    }

    /// Restores a subscription under a known `id`, restricted to `vapid_key`, so that a
    /// receiver that restarts keeps the endpoint it registered with the relay. Pushes go to
    /// `sender`, which several subscriptions may share, and [`Delivered::subscription`]
    /// names the subscription of each push. A subscription with the same id is replaced.
    ///
    /// # Errors
    /// [`RelayError::Config`] when `id` is not 1 to 64 base64url characters, because it
    /// becomes a path segment of the endpoint URL.
    pub fn subscribe_with_id(
        &self,
        id: &str,
        vapid_key: Vec<u8>,
        sender: mpsc::Sender<Delivered>,
    ) -> Result<(), RelayError> {
        let valid = !id.is_empty()
            && id.len() <= MAX_ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(RelayError::Config(format!(
                "invalid push subscription id {:?}: use 1 to {MAX_ID_LEN} base64url characters",
                id.chars().take(80).collect::<String>()
            )));
        }
        self.subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.to_owned(), Subscription { vapid_key, sender });
        Ok(())
    }

    /// Deletes a subscription; later pushes to it get 410, as from a real push service.
    pub fn unsubscribe(&self, id: &str) -> bool {
        self.subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id)
            .is_some()
    }

    /// Builds the router that accepts pushes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/push/{id}", post(receive))
            .layer(DefaultBodyLimit::max(RECORD_SIZE as usize))
            .with_state(self.clone())
    }
}

async fn receive(
    State(service): State<PushService>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    // 1. The subscription, and the VAPID token signed by the key it is restricted to.
    let (sender, vapid_key) = {
        let subscriptions = service
            .subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match subscriptions.get(&id) {
            Some(s) => (s.sender.clone(), s.vapid_key.clone()),
            None => return StatusCode::GONE,
        }
    };
    if !vapid_is_valid(&headers, &vapid_key) {
        tracing::debug!(subscription = %id, "push with a missing or invalid VAPID token rejected");
        return StatusCode::UNAUTHORIZED;
    }

    // 2. The body must be an aes128gcm message; it stays encrypted here.
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    if encoding != Some("aes128gcm") || headers.get("ttl").is_none() {
        return StatusCode::BAD_REQUEST;
    }
    let delivered = Delivered {
        subscription: id,
        body: body.to_vec(),
    };
    match sender.try_send(delivered) {
        Ok(()) => StatusCode::CREATED,
        Err(mpsc::error::TrySendError::Full(_)) => StatusCode::TOO_MANY_REQUESTS,
        Err(mpsc::error::TrySendError::Closed(push)) => {
            service.unsubscribe(&push.subscription);
            StatusCode::GONE
        }
    }
}

/// Checks `Authorization: vapid t=<JWT>, k=<key>`: the key must be the subscription's, the
/// ES256 signature must verify, and `exp` must lie within the next 24 hours.
fn vapid_is_valid(headers: &HeaderMap, expected_key: &[u8]) -> bool {
    let Some(credential) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("vapid "))
    else {
        return false;
    };
    let mut token = None;
    let mut key = None;
    for part in credential.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => token = Some(value),
            Some(("k", value)) => key = URL_SAFE_NO_PAD.decode(value).ok(),
            _ => {}
        }
    }
    let (Some(token), Some(key)) = (token, key) else {
        return false;
    };

    if key != expected_key {
        return false;
    }
    let Some((signed, signature_text)) = token.rsplit_once('.') else {
        return false;
    };
    let Ok(signature_bytes) = URL_SAFE_NO_PAD.decode(signature_text) else {
        return false;
    };
    let verified = signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &key)
        .verify(signed.as_bytes(), &signature_bytes)
        .is_ok();

    let claims = signed
        .split_once('.')
        .and_then(|(_, claims)| URL_SAFE_NO_PAD.decode(claims).ok())
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
    let expiry = claims
        .as_ref()
        .and_then(|c| c.get("exp"))
        .and_then(serde_json::Value::as_u64);
    let now = unix_now();
    verified && expiry.is_some_and(|exp| exp > now && exp <= now + 24 * 3600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::Signer;

    fn vapid_headers(signer: &Signer, exp: u64) -> HeaderMap {
        let token = signer
            .sign(
                serde_json::Map::new(),
                &serde_json::json!({"aud": "https://localhost", "exp": exp}),
            )
            .unwrap();
        let mut headers = HeaderMap::new();
        let value = format!(
            "vapid t={token}, k={}",
            URL_SAFE_NO_PAD.encode(signer.public_key())
        );
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn vapid_from_subscribed_key_is_accepted() {
        let (signer, _) = Signer::generate_es256().unwrap();
        assert!(vapid_is_valid(
            &vapid_headers(&signer, unix_now() + 600),
            &signer.public_key()
        ));
    }

    #[tokio::test]
    async fn restored_subscription_receives_and_checks_its_key() {
        use tower::ServiceExt as _;

        let (signer, _) = Signer::generate_es256().unwrap();
        let (other, _) = Signer::generate_es256().unwrap();
        let service = PushService::default();
        let (sender, mut receiver) = mpsc::channel(4);
        service
            .subscribe_with_id("known-id_1", signer.public_key(), sender)
            .unwrap();
        let push = |signer: &Signer| {
            let mut request = axum::http::Request::post("/push/known-id_1")
                .header("content-encoding", "aes128gcm")
                .header("ttl", "60");
            for (name, value) in &vapid_headers(signer, unix_now() + 600) {
                request = request.header(name, value);
            }
            request.body(axum::body::Body::from("body")).unwrap()
        };

        let accepted = service.router().oneshot(push(&signer)).await.unwrap();
        assert_eq!(accepted.status(), StatusCode::CREATED);
        let delivered = receiver.recv().await.unwrap();
        assert_eq!(delivered.subscription, "known-id_1");
        assert_eq!(delivered.body, b"body");

        let foreign = service.router().oneshot(push(&other)).await.unwrap();
        assert_eq!(foreign.status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn restored_subscription_id_must_be_base64url() {
        let service = PushService::default();
        let (sender, _receiver) = mpsc::channel(1);
        for id in ["", "../x", "a b", &"a".repeat(65)] {
            assert!(
                service
                    .subscribe_with_id(id, vec![4; 65], sender.clone())
                    .is_err(),
                "{id:?}"
            );
        }
    }

    #[test]
    fn vapid_from_other_key_or_expired_is_rejected() {
        let (signer, _) = Signer::generate_es256().unwrap();
        let (other, _) = Signer::generate_es256().unwrap();
        assert!(!vapid_is_valid(
            &vapid_headers(&other, unix_now() + 600),
            &signer.public_key()
        ));
        assert!(!vapid_is_valid(
            &vapid_headers(&signer, unix_now() - 1),
            &signer.public_key()
        ));
        assert!(!vapid_is_valid(
            &vapid_headers(&signer, unix_now() + 48 * 3600),
            &signer.public_key()
        ));
        assert!(!vapid_is_valid(&HeaderMap::new(), &signer.public_key()));
    }
}
