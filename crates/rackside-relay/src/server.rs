//! The relay's HTTP API, built in [`router`] so tests can drive it without a socket.
//!
//! | method and path | who | what |
//! |---|---|---|
//! | `POST /v1/registrations` | device | register for one console; returns the registration token (replacing a registration needs its current token as the bearer); rate-limited per client address |
//! | `DELETE /v1/registrations` | device | remove the registration whose token is the bearer |
//! | `POST /v1/push` | console (API key) | queue one encrypted alert for one registration |
//! | `GET /v1/gone` | console (API key) | collect registrations removed as dead |
//! | `GET /v1/vapid` | anyone | the VAPID public key for Web Push subscriptions |
//! | `GET /v1/stats` | anyone | relay-wide queue counters: no content, and nothing per console or registration |

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::apikeys::{ApiKey, ApiKeyStore, ConsoleName};
use crate::ece::RECORD_SIZE;
use crate::providers::{Providers, Push};
use crate::queue::{EnqueueError, Job, Queue};
use crate::registry::{RegistrationToken, Registry, Target};

/// Largest request body: a 4096-byte payload in base64url plus JSON fields.
const MAX_BODY: usize = 8 * 1024;
/// Longest `collapse_id` accepted from a console.
const MAX_COLLAPSE_ID: usize = 64;
/// Maximum number of client addresses the registration limiter tracks at once.
const MAX_LIMITED_ADDRESSES: usize = 10_000;

/// State shared by the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Console API keys.
    pub keys: Arc<ApiKeyStore>,
    /// Device registrations.
    pub registry: Arc<Registry>,
    /// The in-memory delivery queue.
    pub queue: Queue,
    /// The providers, asked which targets they support.
    pub providers: Arc<Providers>,
    /// Time to live of a push that names none.
    pub default_ttl: Duration,
    /// Maximum time to live a push may request.
    pub max_ttl: Duration,
    /// Rate limit of registration requests per client address.
    pub registration_limiter: Arc<RegistrationLimiter>,
}

/// Builds the router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/registrations", post(register).delete(unregister))
        .route("/v1/push", post(push))
        .route("/v1/gone", get(gone))
        .route("/v1/vapid", get(vapid))
        .route("/v1/stats", get(stats))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Every failure a handler returns, mapped to a status in [`IntoResponse`].
#[derive(Debug)]
enum ApiError {
    Unauthorized,
    NotFound(&'static str),
    Gone,
    BadRequest(String),
    PayloadTooLarge(usize),
    TooManyRequests(Duration),
    QueueFull,
    RegistryFull,
    Internal,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = match &self {
            Self::TooManyRequests(wait) => Some(wait.as_secs_f64().ceil().max(1.0) as u64),
            Self::QueueFull | Self::RegistryFull => Some(1),
            _ => None,
        };
        let (status, message) = match self {
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "missing, unknown or revoked API key".to_owned(),
            ),
            Self::NotFound(what) => (StatusCode::NOT_FOUND, format!("{what} not found")),
            Self::Gone => (
                StatusCode::GONE,
                "registration removed: the push service reports the device gone".to_owned(),
            ),
            Self::BadRequest(reason) => (StatusCode::BAD_REQUEST, reason),
            Self::PayloadTooLarge(size) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("payload of {size} bytes is too large; the maximum is {RECORD_SIZE} bytes"),
            ),
            Self::TooManyRequests(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "too many registration requests from this address; retry after the time in Retry-After".to_owned(),
            ),
            Self::QueueFull => (
                StatusCode::SERVICE_UNAVAILABLE,
                "queue full; retry later".to_owned(),
            ),
            Self::RegistryFull => (
                StatusCode::SERVICE_UNAVAILABLE,
                "registration limit reached; retry later".to_owned(),
            ),
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error".to_owned(),
            ),
        };
        let mut response = (status, Json(serde_json::json!({ "error": message }))).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        }
        response
    }
}

/// `POST /v1/registrations` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The console that may push to this registration.
    pub console: ConsoleName,
    /// The device's own identifier.
    pub device: String,
    /// How to reach the device.
    pub target: Target,
}

/// `POST /v1/registrations` response.
#[derive(Debug, Serialize, Deserialize)]
pub struct RegisterResponse {
    /// The registration token, shown only here.
    pub token: String,
    /// A short id for logs.
    pub registration_id: String,
}

/// Token buckets of registration requests, one per client address.
#[derive(Debug)]
pub struct RegistrationLimiter {
    per_minute: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

/// Requests one address may still make, refilled continuously at the per-minute rate.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RegistrationLimiter {
    /// Creates a limiter that allows `per_minute` requests per minute from one address, all of
    /// them at once after a quiet minute. Zero counts as one.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute: f64::from(per_minute.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request for `address` at `now`, or returns how long the client must wait.
    fn check(&self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let per_second = self.per_minute / 60.0;
        let key = crate::tls::client_key(address);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let refill = |bucket: &Bucket| {
            let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
            (bucket.tokens + elapsed * per_second).min(self.per_minute)
        };
        if buckets.len() >= MAX_LIMITED_ADDRESSES && !buckets.contains_key(&key) {
            // Addresses whose bucket has refilled are no different from new ones.
            buckets.retain(|_, bucket| refill(bucket) < self.per_minute);
            if buckets.len() >= MAX_LIMITED_ADDRESSES {
                tracing::warn!(address = %key, "registration limiter full; request rejected");
                return Err(Duration::from_secs(60));
            }
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: self.per_minute,
            updated: now,
        });
        bucket.tokens = refill(bucket);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

async fn register(
    State(state): State<AppState>,
    connect_info: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Json(request): Json<RegisterRequest>,
) -> Result<(StatusCode, Json<RegisterResponse>), ApiError> {
    // 1. The rate limit per client address. A router served without `tls::accept_loop`
    //    has no client address, so all its clients share one limit.
    let address = connect_info.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0 .0.ip());
    if let Err(wait) = state.registration_limiter.check(address, Instant::now()) {
        tracing::info!(%address, "registration rate limit reached");
        return Err(ApiError::TooManyRequests(wait));
    }

    // 2. Check the input before anything about consoles or pairs is revealed.
    request
        .target
        .validate()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if !state.providers.supports(&request.target) {
        return Err(ApiError::BadRequest(format!(
            "provider {} is not configured on this relay",
            request.target.provider()
        )));
    }

    // 3. An unknown console, and a pair that exists without its current token in the
    // bearer, get a token that is never stored. So neither can be probed, and no other
    // client can cancel a device's registration.
    // NOTE: a device that lost its token cannot replace its registration; it must register
    // under a new device id.
    let known = state.keys.list().map_err(internal)?;
    let provider = request.target.provider();
    let stored = if known.iter().any(|k| k.console == request.console) {
        let current = bearer(&headers).map(|b| RegistrationToken::new(b.to_owned()));
        state
            .registry
            .register(
                request.console.clone(),
                request.device,
                request.target,
                current.as_ref(),
            )
            .map_err(|e| match e {
                crate::RelayError::Config(reason) => ApiError::BadRequest(reason),
                crate::RelayError::RegistryFull(_) => {
                    tracing::warn!(console = %request.console, %e, "registration rejected");
                    ApiError::RegistryFull
                }
                other => internal(other),
            })?
    } else {
        None
    };
    let token = match stored {
        Some(token) => {
            tracing::info!(registration = %token.id(), console = %request.console, provider, "device registered");
            token
        }
        None => {
            tracing::info!(console = %request.console, provider, "registration rejected: unknown console or pair without its token");
            RegistrationToken::generate()
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(RegisterResponse {
            registration_id: token.id(),
            token: token.expose().to_owned(),
        }),
    ))
}

async fn unregister(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let token = RegistrationToken::new(
        bearer(&headers)
            .ok_or(ApiError::NotFound("registration"))?
            .to_owned(),
    );
    if state.registry.remove(&token).map_err(internal)? {
        tracing::info!(registration = %token.id(), "device unregistered");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("registration"))
    }
}

/// `POST /v1/push` body: one encrypted alert for one registration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    /// The registration token the device gave the console.
    pub token: String,
    /// The RFC 8291 `aes128gcm` body, base64url.
    pub payload: String,
    /// Number of new alerts on the console.
    pub count: u32,
    /// Lets the provider replace an older push with the same id.
    #[serde(default)]
    pub collapse_id: Option<String>,
    /// How long the alert may wait for delivery, in seconds.
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

async fn push(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(request): Json<PushRequest>,
) -> Result<StatusCode, ApiError> {
    // 1. The console, from its API key.
    let console = authenticate(&state, &headers)?;

    // 2. The registration must exist and belong to this console. A token of another console
    //    gets the same response as an unknown one, so tokens cannot be probed.
    let token = RegistrationToken::new(request.token);
    let registration = match state.registry.lookup(&token) {
        Some(registration) if registration.console == console => registration,
        _ if state.queue.gone.contains(&console, &token) => return Err(ApiError::Gone),
        _ => {
            tracing::debug!(registration = %token.id(), %console, "push to unknown registration rejected");
            return Err(ApiError::NotFound("registration"));
        }
    };

    // 3. The payload: base64url ciphertext of at most one record.
    let payload = Zeroizing::new(
        URL_SAFE_NO_PAD
            .decode(request.payload.trim_end_matches('='))
            .map_err(|_| ApiError::BadRequest("payload is not base64url".to_owned()))?,
    );
    if payload.len() > RECORD_SIZE as usize {
        return Err(ApiError::PayloadTooLarge(payload.len()));
    }
    if payload.len() < crate::ece::HEADER_LEN + 17 {
        return Err(ApiError::BadRequest(
            "payload is shorter than an aes128gcm record".to_owned(),
        ));
    }
    if request
        .collapse_id
        .as_ref()
        .is_some_and(|id| id.len() > MAX_COLLAPSE_ID || id.chars().any(char::is_control))
    {
        return Err(ApiError::BadRequest(
            "collapse_id must be at most 64 printable characters".to_owned(),
        ));
    }
    let ttl = request
        .ttl_seconds
        .map_or(state.default_ttl, Duration::from_secs)
        .min(state.max_ttl);

    // 4. Queue it. The response does not wait for the provider.
    let job = Job {
        token,
        registration,
        push: Push {
            payload: Arc::new(payload),
            count: request.count,
            collapse_id: request.collapse_id,
            ttl,
        },
        attempts: 0,
        deadline: Instant::now() + ttl,
    };
    match state.queue.enqueue(job) {
        Ok(()) => {
            state.queue.stats.accepted.fetch_add(1, Ordering::Relaxed);
            Ok(StatusCode::ACCEPTED)
        }
        Err(EnqueueError::Full) => {
            tracing::warn!(%console, "queue full; push rejected");
            Err(ApiError::QueueFull)
        }
        Err(EnqueueError::Closed) => Err(ApiError::Internal),
    }
}

/// Response body of `GET /v1/gone`.
#[derive(Debug, Serialize, Deserialize)]
pub struct GoneResponse {
    /// Registrations removed since the last call.
    pub gone: Vec<GoneItem>,
}

/// One removed registration.
#[derive(Debug, Serialize, Deserialize)]
pub struct GoneItem {
    /// The registration token as the console sent it.
    pub token: String,
    /// The device id.
    pub device: String,
}

async fn gone(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<GoneResponse>, ApiError> {
    let console = authenticate(&state, &headers)?;
    let gone = state
        .queue
        .gone
        .take(&console)
        .into_iter()
        .map(|entry| GoneItem {
            token: entry.token.expose().to_owned(),
            device: entry.device,
        })
        .collect();
    Ok(Json(GoneResponse { gone }))
}

async fn vapid(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let key = state
        .providers
        .vapid_public_key()
        .ok_or(ApiError::NotFound("Web Push provider"))?;
    Ok(Json(serde_json::json!({ "public_key": key })))
}

/// Returns the relay-wide queue counters. Without a login it must not return anything per
/// console or the number of registrations, because watching that number while registering
/// would show which console names exist.
async fn stats(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::to_value(state.queue.stats.snapshot()).unwrap_or_default())
}

fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<ConsoleName, ApiError> {
    let presented = ApiKey::new(bearer(headers).ok_or(ApiError::Unauthorized)?.to_owned());
    match state.keys.verify(&presented).map_err(internal)? {
        Some(console) => Ok(console),
        None => {
            tracing::info!("push with an unknown or revoked API key rejected");
            Err(ApiError::Unauthorized)
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credential) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credential.trim())
}

fn internal(error: crate::RelayError) -> ApiError {
    tracing::error!(%error, "request failed");
    ApiError::Internal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_rejects_beyond_rate_and_refills_over_time() {
        let limiter = RegistrationLimiter::new(3);
        let client: IpAddr = "127.0.0.1".parse().unwrap();
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check(client, start).is_ok());
        }
        let wait = limiter.check(client, start).unwrap_err();
        assert_eq!(
            wait,
            Duration::from_secs(20),
            "one request per 20 s at 3 per minute"
        );
        assert!(limiter
            .check(client, start + Duration::from_secs(19))
            .is_err());
        assert!(limiter
            .check(client, start + Duration::from_secs(40))
            .is_ok());
    }

    #[test]
    fn limiter_counts_each_address_separately() {
        let limiter = RegistrationLimiter::new(1);
        let now = Instant::now();
        assert!(limiter.check("127.0.0.1".parse().unwrap(), now).is_ok());
        assert!(limiter.check("127.0.0.1".parse().unwrap(), now).is_err());
        assert!(limiter.check("127.0.0.2".parse().unwrap(), now).is_ok());
    }

    #[test]
    fn limiter_forgets_refilled_addresses_when_full() {
        let limiter = RegistrationLimiter::new(60);
        let start = Instant::now();
        for i in 0..MAX_LIMITED_ADDRESSES as u32 {
            let address = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            assert!(limiter.check(address, start).is_ok());
        }
        let newcomer = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        assert!(
            limiter.check(newcomer, start).is_err(),
            "no room while every tracked address is still limited"
        );
        assert!(limiter
            .check(newcomer, start + Duration::from_secs(2))
            .is_ok());
        assert_eq!(limiter.buckets.lock().unwrap().len(), 1);
    }
}
