//! The relay's HTTP API, built in [`router`] so tests can drive it without a socket.
//!
//! | method and path | who | what |
//! |---|---|---|
//! | `POST /v1/registrations` | device | register for one console; returns the registration token (replacing a registration needs its current token as the bearer) |
//! | `DELETE /v1/registrations` | device | remove the registration whose token is the bearer |
//! | `POST /v1/push` | console (API key) | queue one encrypted alert for one registration |
//! | `GET /v1/gone` | console (API key) | collect registrations removed as dead |
//! | `GET /v1/vapid` | anyone | the VAPID public key for Web Push subscriptions |
//! | `GET /v1/stats` | anyone | queue counters, no content |

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
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
    QueueFull,
    RegistryFull,
    Internal,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
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
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
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

async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(request): Json<RegisterRequest>,
) -> Result<(StatusCode, Json<RegisterResponse>), ApiError> {
    // 1. Check the input before anything about consoles or pairs is revealed.
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

    // 2. An unknown console, and a pair that exists without its current token in the
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

async fn stats(State(state): State<AppState>) -> Json<serde_json::Value> {
    let mut value = serde_json::to_value(state.queue.stats.snapshot()).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert("registrations".into(), state.registry.len().into());
    }
    Json(value)
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
