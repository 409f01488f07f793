//! The console's HTTP API, built in [`router`] so tests can call it without a socket. The
//! device, health and event delivery routes also need the [`Fleet`], which [`service`] adds.
//!
//! Clients log in (`POST /api/login`) and send the session token as a bearer token. BMCs
//! deliver events to `POST /events/{bmc}` with the per-source secret in
//! [`EVENT_SECRET_HEADER`]. The full description is served at `/openapi.json`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::bmc_link::BmcLogin;
use crate::events::parse_event_payload;
use crate::forward::RelayLink;
use crate::intake::Intake;
use crate::login::{LoginCheck, LoginGuard};
use crate::poll::Fleet;
use crate::store::{AlertFilter, Store};
use crate::trust::{check_identity, Decision};

/// Header that carries a source's delivery secret on every event the BMC sends; the console
/// sets it through the subscription's `HttpHeaders`.
pub const EVENT_SECRET_HEADER: &str = "x-rackside-event-secret";
/// A session expires after this long without a request.
pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// Largest request body, event deliveries included.
const MAX_BODY: usize = 256 * 1024;
const OPENAPI: &str = include_str!("openapi.json");

/// One console user: a name and an Argon2id password hash in PHC format.
#[derive(Clone)]
pub struct User {
    /// The user name.
    pub name: String,
    /// The PHC string of the password hash.
    pub password_hash: String,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// State shared by the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The alert store.
    pub store: Arc<Store>,
    /// The relay link, when forwarding is configured.
    pub relay: Option<Arc<RelayLink>>,
    /// Users allowed to log in.
    pub users: Arc<Vec<User>>,
    /// Open sessions by token hash, with their last use.
    pub sessions: Arc<Mutex<HashMap<[u8; 32], Instant>>>,
    /// The URL BMCs deliver events to, ending in `/events/`.
    pub listener_base: String,
    /// Password checks and the failed-login limit.
    pub login: Arc<LoginGuard>,
}

/// Builds the router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/devices", get(devices).post(add_source))
        .route("/api/devices/{name}", delete(remove_source))
        .route("/api/health", get(health))
        .route("/api/events", get(event_log))
        .route("/api/alerts", get(alerts))
        .route("/api/alerts/count", get(count))
        .route("/api/alerts/{id}/ack", post(acknowledge))
        .route("/api/subscriptions", get(subscriptions).post(subscribe))
        .route("/api/subscriptions/{id}", delete(unsubscribe))
        .route("/api/relay", get(relay))
        .route("/events/{bmc}", post(receive_events))
        .route("/openapi.json", get(openapi))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Builds the router with the fleet that the device, health and event delivery routes use.
pub fn service(state: AppState, fleet: Arc<Fleet>) -> Router {
    router(state).layer(Extension(fleet))
}

/// Handler failures, each mapped to a status in one place.
#[derive(Debug)]
enum ApiError {
    Unauthorized,
    /// An event delivery without the right secret header, for the BMC name in the path.
    EventSecret(String),
    NotFound(&'static str),
    NoRelay,
    BadRequest(String),
    Confirm(serde_json::Value),
    Rejected(String),
    TooManyLogins,
    /// A login with a wrong user name or password.
    LoginRejected,
    Internal,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "log in first: missing or expired session".to_owned(),
            ),
            Self::EventSecret(bmc) => (
                StatusCode::UNAUTHORIZED,
                format!(
                    "invalid or missing event secret header X-Rackside-Event-Secret for BMC \
                     {bmc}: the BMC's subscription must send the header the console returned \
                     when the BMC was added"
                ),
            ),
            Self::NotFound(what) => (StatusCode::NOT_FOUND, format!("{what} not found")),
            Self::NoRelay => (
                StatusCode::NOT_FOUND,
                "no relay configured: this console forwards alerts to no relay; start it with \
                 --relay-url"
                    .to_owned(),
            ),
            Self::BadRequest(reason) => (StatusCode::BAD_REQUEST, reason),
            Self::Confirm(summary) => {
                let body = serde_json::json!({
                    "error": "certificate not trusted: confirm its SHA-256 fingerprint with accept_certificate_sha256",
                    "certificate": summary,
                });
                return (StatusCode::CONFLICT, Json(body)).into_response();
            }
            Self::Rejected(reason) => (StatusCode::UNPROCESSABLE_ENTITY, reason),
            Self::TooManyLogins => {
                let wait = crate::login::FAILURE_WINDOW.as_secs();
                let body = serde_json::json!({
                    "error": format!("too many failed logins from this address: wait {wait} s and retry"),
                });
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(axum::http::header::RETRY_AFTER, wait.to_string())],
                    Json(body),
                )
                    .into_response();
            }
            Self::LoginRejected => (
                StatusCode::UNAUTHORIZED,
                "wrong user name or password".to_owned(),
            ),
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error".to_owned(),
            ),
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

fn internal(error: crate::ConsoleError) -> ApiError {
    tracing::error!(%error, "request failed");
    ApiError::Internal
}

#[derive(Deserialize)]
struct LoginRequest {
    user: String,
    password: zeroize::Zeroizing<String>,
}

async fn login(
    State(state): State<AppState>,
    client: Option<Extension<ConnectInfo<SocketAddr>>>,
    Json(request): Json<LoginRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let client = client.map(|Extension(ConnectInfo(addr))| addr.ip());
    let shown_user = request.user.chars().take(64).collect::<String>();
    match state
        .login
        .check(&state.users, client, &request.user, request.password)
        .await
    {
        LoginCheck::Verified => {}
        LoginCheck::Rejected => {
            tracing::info!(user = %shown_user, ?client, "login failed");
            return Err(ApiError::LoginRejected);
        }
        LoginCheck::Limited => {
            tracing::warn!(user = %shown_user, ?client, "login rejected: too many failures");
            return Err(ApiError::TooManyLogins);
        }
    }
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let token = URL_SAFE_NO_PAD.encode(raw);
    let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let mut sessions = state
        .sessions
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    sessions.retain(|_, used| used.elapsed() < SESSION_IDLE);
    sessions.insert(hash, Instant::now());
    tracing::info!(user = %request.user, "login succeeded");
    Ok(Json(
        serde_json::json!({ "token": token, "idle_timeout_seconds": SESSION_IDLE.as_secs() }),
    ))
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<StatusCode, ApiError> {
    let hash = session_hash(&headers).ok_or(ApiError::Unauthorized)?;
    let mut sessions = state
        .sessions
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    sessions
        .remove(&hash)
        .map(|_| StatusCode::NO_CONTENT)
        .ok_or(ApiError::Unauthorized)
}

fn session_hash(headers: &HeaderMap) -> Option<[u8; 32]> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ")?;
    Some(Sha256::digest(token.trim().as_bytes()).into())
}

/// Checks the session and refreshes its idle timer.
fn require_session(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let hash = session_hash(headers).ok_or(ApiError::Unauthorized)?;
    let mut sessions = state
        .sessions
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match sessions.get_mut(&hash) {
        Some(used) if used.elapsed() < SESSION_IDLE => {
            *used = Instant::now();
            Ok(())
        }
        Some(_) => {
            sessions.remove(&hash);
            Err(ApiError::Unauthorized)
        }
        None => Err(ApiError::Unauthorized),
    }
}

/// Lists the devices with their intake, the state of an SSE stream, and the latest poll:
/// health, failing components, inventory summary, time and error.
async fn devices(
    State(state): State<AppState>,
    Extension(fleet): Extension<Arc<Fleet>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_session(&state, &headers)?;
    let sources = state.store.source_list().map_err(internal)?;
    let mut list = Vec::new();
    for source in sources {
        let status = state.store.status(&source.bmc).map_err(internal)?;
        let polled = fleet.accounts.get(&source.bmc).map_err(internal)?.is_some();
        list.push(serde_json::json!({
            "name": source.bmc,
            "url": source.url,
            "intake": source.intake,
            "stream": fleet.stream_state(&source.bmc),
            "subscription": source.subscription,
            "polled": polled,
            "health": status.as_ref().and_then(|s| s.health),
            "problems": status.as_ref().map(|s| s.problems.clone()),
            "inventory": status.as_ref().map(|s| s.inventory.clone()),
            "last_polled": status.as_ref().map(|s| s.last_polled),
            "poll_error": status.as_ref().and_then(|s| s.poll_error.clone()),
        }));
    }
    Ok(Json(serde_json::json!({ "devices": list })))
}

#[derive(Deserialize)]
struct AddSource {
    name: String,
    url: url::Url,
    /// The certificate fingerprint the user accepted after seeing a yellow certificate.
    #[serde(default)]
    accept_certificate_sha256: Option<String>,
    /// A BMC account allowed to create event subscriptions (Operator or Administrator).
    /// When given, the console creates the BMC's push subscription itself.
    #[serde(default)]
    user: Option<String>,
    /// The password of `user`, kept in the encrypted account vault for polling.
    #[serde(default)]
    password: Option<zeroize::Zeroizing<String>>,
    /// `push`, `sse` or `log-poll` to override the intake chosen from the BMC's
    /// EventService; `sse` and `log-poll` need an account.
    #[serde(default)]
    intake: Option<String>,
}

/// Adds a BMC as an event source once its certificate passes the client's trust rules, and
/// returns the destination and secret header for the BMC's event subscription. A yellow
/// certificate gets 409 with its summary until the request confirms its fingerprint. With an
/// account, the console keeps it for polling and sets up the intake itself.
async fn add_source(
    State(state): State<AppState>,
    Extension(fleet): Extension<Arc<Fleet>>,
    headers: HeaderMap,
    Json(request): Json<AddSource>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    // 1. The request on its own.
    require_session(&state, &headers)?;
    let valid_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if request.name.is_empty() || request.name.len() > 64 || !request.name.chars().all(valid_name) {
        return Err(ApiError::BadRequest(
            "invalid device name: use 1 to 64 characters from A-Z, a-z, 0-9, '.', '_', '-'"
                .to_owned(),
        ));
    }
    if request.url.scheme() != "https" {
        return Err(ApiError::BadRequest(
            "invalid BMC URL: use https".to_owned(),
        ));
    }
    let forced = request
        .intake
        .as_deref()
        .map(Intake::parse)
        .transpose()
        .map_err(ApiError::BadRequest)?;
    let login = match (request.user, request.password) {
        (Some(user), Some(password)) => Some(BmcLogin { user, password }),
        (None, None) => None,
        _ => {
            return Err(ApiError::BadRequest(
                "give both user and password, or neither".to_owned(),
            ))
        }
    };
    if login.is_none() && forced.is_some_and(|i| i != Intake::Push) {
        return Err(ApiError::BadRequest(
            "intake sse and log-poll need the BMC account: add user and password".to_owned(),
        ));
    }

    // 2. The BMC's identity.
    let confirmed = request.accept_certificate_sha256.as_deref();
    let pin = match check_identity(&request.url, confirmed).await {
        Decision::Accept(pin) => pin,
        Decision::Confirm(summary) => return Err(ApiError::Confirm(summary)),
        Decision::Reject(reason) => {
            tracing::warn!(bmc = %request.name, %reason, "BMC rejected");
            return Err(ApiError::Rejected(reason));
        }
    };

    // 3. The source, replacing one of the same name.
    if state
        .store
        .source(&request.name)
        .map_err(internal)?
        .is_some()
    {
        forget_source(&state, &fleet, &request.name).await?;
    }
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let secret = URL_SAFE_NO_PAD.encode(raw);
    let hash: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
    state
        .store
        .put_source(&request.name, request.url.as_str(), &hash, &pin, unix_now())
        .map_err(internal)?;
    let destination = format!("{}{}", state.listener_base, request.name);

    // 4. With an account, the console keeps it and sets up the intake; without, the caller
    //    points the BMC at the returned destination and header.
    let mut intake = Intake::Push;
    let mut subscription = None;
    if let Some(login) = login {
        let set_up = set_up_intake(
            &fleet,
            &request.name,
            &request.url,
            &pin,
            &login,
            forced,
            (&destination, &secret),
        )
        .await;
        match set_up {
            Ok((chosen, uri)) => {
                intake = chosen;
                subscription = uri;
            }
            Err(reason) => {
                tracing::warn!(bmc = %request.name, %reason, "failed to set up the event intake");
                if let Err(error) = fleet.accounts.remove(&request.name) {
                    tracing::error!(bmc = %request.name, %error, "failed to remove the BMC account");
                }
                state.store.remove_source(&request.name).map_err(internal)?;
                return Err(ApiError::Rejected(reason));
            }
        }
        fleet.wake();
    }
    tracing::info!(bmc = %request.name, intake = intake.as_str(), "event source added");
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "name": request.name,
            "destination": destination,
            "http_headers": { "X-Rackside-Event-Secret": secret },
            "subscription": subscription,
            "intake": intake.as_str(),
        })),
    ))
}

/// Stores the account, chooses the intake (unless `forced`) from the BMC's EventService and
/// starts it: the push subscription to `destination` with `secret`, or the SSE stream.
/// Returns the intake and the subscription's URI.
async fn set_up_intake(
    fleet: &Arc<Fleet>,
    name: &str,
    url: &url::Url,
    pin: &rackside_trust::Pin,
    login: &BmcLogin,
    forced: Option<Intake>,
    (destination, secret): (&str, &str),
) -> Result<(Intake, Option<String>), String> {
    let store = &fleet.sink.store;
    fleet
        .accounts
        .put(name, url, pin, login)
        .map_err(|e| e.to_string())?;
    let intake = match forced {
        Some(intake) => intake,
        None => {
            let service = crate::bmc_link::read_event_service(url, pin, login).await?;
            Intake::choose(service.as_ref())
        }
    };
    let subscription = match intake {
        Intake::Push => {
            let uri = crate::bmc_link::create_subscription(
                url,
                pin,
                login,
                destination,
                name,
                secret,
                &fleet.settings.registry_prefixes,
            )
            .await?;
            tracing::info!(bmc = %name, subscription = %uri, "event subscription created on the BMC");
            Some(uri)
        }
        Intake::Sse | Intake::LogPoll => None,
    };
    store
        .set_intake(name, intake.as_str(), subscription.as_deref())
        .map_err(|e| e.to_string())?;
    if intake == Intake::Sse {
        fleet.start_stream(name);
    }
    Ok((intake, subscription))
}

/// Removes a device: its SSE stream, its push subscription on the BMC (best effort), its
/// account and its source. Its alerts stay.
async fn remove_source(
    State(state): State<AppState>,
    Extension(fleet): Extension<Arc<Fleet>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_session(&state, &headers)?;
    if state.store.source(&name).map_err(internal)?.is_none() {
        return Err(ApiError::NotFound("device"));
    }
    forget_source(&state, &fleet, &name).await?;
    tracing::info!(bmc = %name, "event source removed");
    Ok(StatusCode::NO_CONTENT)
}

/// Stops the intake of `name`, deletes its push subscription on the BMC when the console
/// has the account (a failure is logged, not returned), and removes the account and the
/// source.
async fn forget_source(state: &AppState, fleet: &Arc<Fleet>, name: &str) -> Result<(), ApiError> {
    fleet.stop_stream(name);
    let source = state.store.source(name).map_err(internal)?;
    let account = fleet.accounts.get(name).map_err(internal)?;
    if let (Some(account), Some(uri)) = (account, source.and_then(|s| s.subscription)) {
        let deleted =
            crate::bmc_link::delete_subscription(&account.url, &account.pin, &account.login, &uri)
                .await;
        match deleted {
            Ok(()) => {
                tracing::info!(bmc = %name, subscription = %uri, "event subscription deleted on the BMC")
            }
            Err(reason) => {
                tracing::warn!(bmc = %name, subscription = %uri, %reason, "failed to delete the event subscription on the BMC");
            }
        }
    }
    fleet.accounts.remove(name).map_err(internal)?;
    state.store.remove_source(name).map_err(internal)?;
    Ok(())
}

/// Rolls up each device's polled health with its open alerts, the worst winning, and the
/// fleet's worst over all devices.
async fn health(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_session(&state, &headers)?;
    let rollup = state.store.rollup().map_err(internal)?;
    let worst = rollup.iter().map(|device| device.health).max();
    let devices: Vec<_> = rollup
        .into_iter()
        .map(|device| {
            serde_json::json!({
                "name": device.bmc,
                "health": device.health,
                "polled_health": device.polled_health,
                "open_alerts": device.open_alerts,
            })
        })
        .collect();
    Ok(Json(
        serde_json::json!({ "health": worst, "devices": devices }),
    ))
}

#[derive(Deserialize)]
struct EventQuery {
    bmc: Option<String>,
    limit: Option<u32>,
}

/// Lists the event log: events below the alert severity, newest first.
async fn event_log(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<EventQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_session(&state, &headers)?;
    let limit = query.limit.unwrap_or(crate::store::MAX_EVENT_PAGE);
    let list = state
        .store
        .events(query.bmc.as_deref(), limit)
        .map_err(internal)?;
    Ok(Json(serde_json::json!({ "events": list })))
}

async fn alerts(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(filter): Query<AlertFilter>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_session(&state, &headers)?;
    let list = state.store.alerts(&filter).map_err(internal)?;
    Ok(Json(serde_json::json!({ "alerts": list })))
}

async fn count(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_session(&state, &headers)?;
    let unread = state.store.unread_count().map_err(internal)?;
    Ok(Json(serde_json::json!({ "unread": unread })))
}

async fn acknowledge(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    require_session(&state, &headers)?;
    if state.store.acknowledge(id).map_err(internal)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("alert"))
    }
}

#[derive(Deserialize)]
struct SubscribeRequest {
    device: String,
    relay_url: String,
    token: String,
    p256dh: String,
    auth: String,
}

async fn subscribe(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(request): Json<SubscribeRequest>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    require_session(&state, &headers)?;
    let relay = state
        .relay
        .as_ref()
        .ok_or_else(|| ApiError::BadRequest("this console has no relay configured".to_owned()))?;
    if !relay.is_same(&request.relay_url) {
        return Err(ApiError::BadRequest(format!(
            "this console forwards only to relay {}; register the device there",
            relay.url
        )));
    }
    rackside_relay::ece::RecipientKeys::from_base64url(&request.p256dh, &request.auth)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if request.device.is_empty()
        || request.device.len() > 128
        || request.token.is_empty()
        || request.token.len() > 256
    {
        return Err(ApiError::BadRequest(
            "device must be 1 to 128 and token 1 to 256 characters".to_owned(),
        ));
    }
    let id = state
        .store
        .add_subscription(
            &request.device,
            relay.url.as_str(),
            &request.token,
            &request.p256dh,
            &request.auth,
        )
        .map_err(internal)?;
    tracing::info!(subscription = id, device = %request.device, "mobile subscription added");
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "id": id }))))
}

async fn subscriptions(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_session(&state, &headers)?;
    let list = state.store.subscriptions(false).map_err(internal)?;
    Ok(Json(serde_json::json!({ "subscriptions": list })))
}

async fn unsubscribe(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    require_session(&state, &headers)?;
    if state.store.remove_subscription(id).map_err(internal)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("subscription"))
    }
}

/// Returns the relay this console forwards alerts to and the console's name there, which
/// devices need to register with that relay.
async fn relay(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_session(&state, &headers)?;
    let relay = state.relay.as_ref().ok_or(ApiError::NoRelay)?;
    Ok(Json(serde_json::json!({
        "url": relay.url.as_str(),
        "console_name": relay.console_name,
    })))
}

/// Receives one event delivery: checks the source's secret, stores new alerts and forwards
/// them. Always 204 for a valid secret, so a BMC does not retry a payload it cannot fix.
async fn receive_events(
    State(state): State<AppState>,
    Extension(fleet): Extension<Arc<Fleet>>,
    Path(bmc): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    // 1. The secret header must match the source's; unknown sources get the same 401.
    let presented = headers
        .get(EVENT_SECRET_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let presented_hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let stored = state.store.source_secret(&bmc).map_err(internal)?;
    let matches = stored.is_some_and(|hash| bool::from(hash.as_slice().ct_eq(&presented_hash)));
    if !matches {
        let shown: String = bmc.chars().filter(|c| !c.is_control()).take(64).collect();
        tracing::warn!(bmc = %shown, "event delivery with a wrong or missing secret rejected");
        return Err(ApiError::EventSecret(shown));
    }

    // 2. Parse, then store and forward what is new and severe enough.
    let parsed = match parse_event_payload(&bmc, &body) {
        Ok(parsed) => parsed,
        Err(error) => {
            tracing::warn!(%bmc, %error, "malformed event delivery ignored");
            return Ok(StatusCode::NO_CONTENT);
        }
    };
    fleet.sink.accept(parsed, unix_now()).map_err(internal)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use tower::ServiceExt as _;

    use super::*;

    const SESSION: &str = "test-session-token";

    fn state(dir: &std::path::Path, relay: Option<crate::forward::RelayLink>) -> AppState {
        let hash: [u8; 32] = Sha256::digest(SESSION.as_bytes()).into();
        let mut sessions = HashMap::new();
        sessions.insert(hash, Instant::now());
        AppState {
            store: Arc::new(Store::open(dir).unwrap()),
            relay: relay.map(Arc::new),
            users: Arc::new(Vec::new()),
            sessions: Arc::new(Mutex::new(sessions)),
            listener_base: "https://127.0.0.1:1/events/".into(),
            login: Arc::new(LoginGuard::new().unwrap()),
        }
    }

    async fn get_relay(state: AppState, session: Option<&str>) -> (StatusCode, serde_json::Value) {
        let mut request = axum::http::Request::get("/api/relay");
        if let Some(token) = session {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = router(state)
            .oneshot(request.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn relay_route_returns_url_and_console_name() {
        let dir = tempfile::tempdir().unwrap();
        let link = crate::forward::RelayLink {
            url: url::Url::parse("https://relay.test:8444/").unwrap(),
            api_key: zeroize::Zeroizing::new("not used here".into()),
            console_name: "ome-1".into(),
            http: reqwest::Client::new(),
        };
        let (status, body) = get_relay(state(dir.path(), Some(link)), Some(SESSION)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["url"], "https://relay.test:8444/");
        assert_eq!(body["console_name"], "ome-1");
        assert!(body.get("api_key").is_none(), "{body}");
    }

    #[tokio::test]
    async fn wrong_login_names_the_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let request = axum::http::Request::post("/api/login")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(
                r#"{"user":"nobody","password":"wrong password"}"#,
            ))
            .unwrap();
        let response = router(state(dir.path(), None))
            .oneshot(request)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["error"], "wrong user name or password");
    }

    #[test]
    fn login_limit_gives_retry_after() {
        let response = ApiError::TooManyLogins.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let wait = crate::login::FAILURE_WINDOW.as_secs().to_string();
        assert_eq!(
            response.headers()[axum::http::header::RETRY_AFTER],
            wait.as_str()
        );
    }

    #[tokio::test]
    async fn relay_route_without_relay_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let (status, body) = get_relay(state(dir.path(), None), Some(SESSION)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(
            body["error"].as_str().unwrap().contains("--relay-url"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn relay_route_without_session_is_unauthorized() {
        let dir = tempfile::tempdir().unwrap();
        let (status, _) = get_relay(state(dir.path(), None), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}
