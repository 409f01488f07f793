//! The Redfish HTTP service: one handler that authenticates each request and routes it by
//! method to the resource tree, the dynamic collections (sessions, accounts, logs, tasks), the
//! actions and the fault control endpoint.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use axum::Router;
use base64::Engine;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, IF_MATCH, WWW_AUTHENTICATE};
use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::config::Role;
use crate::dynamic;
use crate::fault::Fault;
use crate::query::QueryOptions;
use crate::reply::{self, msg, ErrorReply};
use crate::state::{BmcState, Inner, OLD_SESSIONS_PATH};
use crate::tree::{self, etag_of};

use crate::control::{control_faults, is_subscription_collection};
use crate::login::login;
use crate::read::{current_etag, json_get, serve_tree};

/// Largest request body accepted.
const MAX_REQUEST_BODY: usize = 1024 * 1024;

/// URI of the fault control endpoint.
pub const FAULTS_PATH: &str = "/rackside/faults";

/// Number of thermal and power requests that fail after [`Fault::TransientErrors`] is enabled.
pub const TRANSIENT_FAILURES: u64 = 2;

/// How long job collections stay empty after [`Fault::TransientErrors`] is enabled.
pub const TRANSIENT_EMPTY_WINDOW: Duration = Duration::from_secs(10);

/// Address of the client that sent a request, inserted by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Builds the Redfish service over `state`, without a socket.
///
/// The client address in log entries comes from a [`ClientAddr`] or
/// `ConnectInfo<SocketAddr>` request extension; without either it reads `unknown`.
pub fn router(state: Arc<BmcState>) -> Router {
    Router::new().fallback(dispatch).with_state(state)
}

/// One request, decoded.
pub(crate) struct Req {
    pub(crate) method: Method,
    pub(crate) path: String,
    /// `(name, value)` pairs, percent-decoded.
    pub(crate) query: Vec<(String, String)>,
    /// The query as sent, percent-decoded, to find captured pages such as `?$skip=50`.
    pub(crate) raw_query: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) client: String,
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    pub(crate) user: String,
    pub(crate) role: Role,
    pub(crate) session_id: Option<String>,
}

async fn dispatch(State(state): State<Arc<BmcState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let client = parts
        .extensions
        .get::<ClientAddr>()
        .map(|c| c.0.ip().to_string())
        .or_else(|| {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let read = axum::body::to_bytes(body, MAX_REQUEST_BODY);
    let body = match tokio::time::timeout(state.body_read_timeout, read).await {
        Ok(Ok(body)) => body,
        Ok(Err(error)) => {
            tracing::debug!(%client, %error, "request body rejected");
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
            return finish(response);
        }
        Err(_) => {
            tracing::debug!(%client, timeout = ?state.body_read_timeout, "request body timed out");
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
            response
                .headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            return finish(response);
        }
    };
    let raw_path = parts.uri.path();
    let path =
        tree::normalize_path(&percent_encoding::percent_decode_str(raw_path).decode_utf8_lossy());
    let raw_query = parts.uri.query().unwrap_or_default();
    let query = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect();
    let req = Req {
        method: parts.method,
        path,
        query,
        raw_query: decode(raw_query),
        headers: parts.headers,
        body,
        client,
    };
    tracing::trace!(method = %req.method, path = %req.path, "request");
    let response = match handle(&state, &req) {
        Ok(response) => not_modified(&req, response),
        Err(error) => error.into_response(),
    };
    finish(response)
}

/// Turns a successful read into 304 Not Modified when `If-None-Match` names its entity tag.
fn not_modified(req: &Req, response: Response) -> Response {
    let is_read = req.method == Method::GET || req.method == Method::HEAD;
    let Some(wanted) = req
        .headers
        .get(http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return response;
    };
    let Some(etag) = response.headers().get(http::header::ETAG).cloned() else {
        return response;
    };
    let current = etag.to_str().unwrap_or_default();
    let matches = wanted
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag == current);
    if !is_read || response.status() != StatusCode::OK || !matches {
        return response;
    }
    let mut unchanged = Response::new(Body::empty());
    *unchanged.status_mut() = StatusCode::NOT_MODIFIED;
    unchanged.headers_mut().insert(http::header::ETAG, etag);
    unchanged
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// Adds the headers every Redfish response carries.
fn finish(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert("OData-Version", HeaderValue::from_static("4.0"));
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    headers.insert(
        http::header::LINK,
        HeaderValue::from_static("</redfish/v1/$metadata>; rel=describedby"),
    );
    response
}

fn handle(state: &BmcState, req: &Req) -> Result<Response, ErrorReply> {
    // 1. Faults that reject a request before anything else.
    if state.faults.is_enabled(Fault::RejectUnusualHeaders) {
        if let Some(name) = req.headers.keys().find(|name| !is_standard_header(name)) {
            tracing::debug!(header = %name, "rejected an unusual request header");
            return Err(ErrorReply::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                msg::internal_error_1_0(),
            ));
        }
    }

    // 2. Only OData 4.0 is spoken.
    if let Some(version) = req.headers.get("OData-Version") {
        if version.as_bytes() != b"4.0" {
            let text = version.to_str().unwrap_or_default();
            return Err(ErrorReply::new(
                StatusCode::PRECONDITION_FAILED,
                msg::header_invalid(&format!("OData-Version: {text}")),
            ));
        }
    }

    // 3. The SSE stream reads `$filter` itself and stays open, so it skips the query options.
    if req.method == Method::GET && req.path == crate::event_routes::SSE_PATH {
        let events = {
            let mut inner = state.lock();
            authenticate(state, &mut inner, req)?;
            inner.events.clone()
        };
        return crate::event_routes::sse(&events, req);
    }

    // 4. Query parameters that reshape a response are only noted here. Their values are
    // parsed after authentication, so an anonymous client cannot feed the parser.
    let is_read = req.method == Method::GET || req.method == Method::HEAD;
    let reshaping = is_read && QueryOptions::requested(&req.query);

    // 5. Resources that need no authentication. A service root reshaped by query parameters
    // takes its expanded resources from the user's view, so it needs authentication.
    let mut inner = state.lock();
    let sessions_path = state.active_sessions_path().to_owned();
    match req.path.as_str() {
        "/redfish" if is_read => {
            return Ok(json_get(&json!({ "v1": "/redfish/v1/" }), "GET, HEAD"));
        }
        "/redfish/v1/$metadata" if is_read => {
            let etag = etag_of(&state.metadata);
            return Ok(reply::resource_response(
                state.metadata.clone(),
                "application/xml",
                &etag,
                "GET, HEAD",
            ));
        }
        "/redfish/v1/odata" if is_read && !inner.tree.contains("/redfish/v1/odata") => {
            return Ok(json_get(
                &crate::metadata::service_document(inner.tree.json("/redfish/v1")),
                "GET, HEAD",
            ));
        }
        "/redfish/v1" | "/redfish/v1/odata" if is_read && !reshaping => {
            return serve_tree(state, &mut inner, req);
        }
        "/redfish/v1" if is_read => {}
        "/redfish" | "/redfish/v1" | "/redfish/v1/$metadata" | "/redfish/v1/odata" => {
            return Err(ErrorReply::method_not_allowed("GET, HEAD"));
        }
        _ => {}
    }
    let members_form = format!("{sessions_path}/Members");
    if req.method == Method::POST && (req.path == sessions_path || req.path == members_form) {
        return login(state, &mut inner, req, &sessions_path);
    }

    // 6. Everything else needs a session or Basic credentials.
    let principal = authenticate(state, &mut inner, req)?;

    // 7. Query parameters that reshape a response are taken out; the handlers see the rest.
    let (options, rest) = if reshaping {
        QueryOptions::split(&req.query)?
    } else {
        (QueryOptions::default(), req.query.clone())
    };
    let plain;
    let req = if options.is_empty() {
        req
    } else {
        plain = Req {
            method: req.method.clone(),
            path: req.path.clone(),
            raw_query: rest
                .iter()
                .map(|(name, value)| {
                    if value.is_empty() {
                        name.clone()
                    } else {
                        format!("{name}={value}")
                    }
                })
                .collect::<Vec<_>>()
                .join("&"),
            query: rest,
            headers: req.headers.clone(),
            body: req.body.clone(),
            client: req.client.clone(),
        };
        &plain
    };

    // 8. The event service, then the rest by method.
    if let Some(result) = crate::event_routes::route(state, &mut inner, req, &principal) {
        return result;
    }
    match req.method {
        Method::GET | Method::HEAD => {
            let response = get(state, &mut inner, req, &principal, &sessions_path)?;
            if options.is_empty() {
                return Ok(response);
            }
            reshape(
                state,
                &mut inner,
                req,
                &principal,
                &sessions_path,
                &options,
                response,
            )
        }
        Method::PATCH => patch(state, &mut inner, req, &principal),
        Method::POST => post(state, &mut inner, req, &principal),
        Method::DELETE => delete(state, &mut inner, req, &principal, &sessions_path),
        _ => Err(method_not_allowed(state, &inner, &req.path, &sessions_path)),
    }
}

/// Headers that standard HTTP clients and Redfish tools send.
fn is_standard_header(name: &HeaderName) -> bool {
    const STANDARD: &[&str] = &[
        "host",
        "user-agent",
        "accept",
        "accept-encoding",
        "accept-language",
        "authorization",
        "connection",
        "content-type",
        "content-length",
        "if-match",
        "if-none-match",
        "odata-version",
        "odata-maxversion",
        "x-auth-token",
        "cache-control",
        "pragma",
        "te",
        "transfer-encoding",
        "keep-alive",
        "origin",
        "referer",
    ];
    STANDARD.contains(&name.as_str())
}

fn authenticate(state: &BmcState, inner: &mut Inner, req: &Req) -> Result<Principal, ErrorReply> {
    if let Some(token) = req.headers.get("X-Auth-Token") {
        let session = token.to_str().ok().and_then(|t| inner.sessions.touch(t));
        return match session {
            Some(s) => Ok(Principal {
                user: s.user,
                role: s.role,
                session_id: Some(s.id),
            }),
            None => Err(unauthorized(state, msg::no_valid_session())),
        };
    }
    let Some(basic) = req
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
    else {
        return Err(unauthorized(state, msg::no_valid_session()));
    };
    if !state.basic_auth || state.faults.is_enabled(Fault::BasicAuthDisabled) {
        return Err(ErrorReply::new(
            StatusCode::UNAUTHORIZED,
            msg::access_denied(&req.path),
        ));
    }
    let decoded = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .unwrap_or_default(),
    );
    let text = std::str::from_utf8(&decoded).unwrap_or_default();
    let (user, password) = text.split_once(':').unwrap_or((text, ""));
    match inner.accounts.verify(user, password) {
        Some(role) => Ok(Principal {
            user: user.to_owned(),
            role,
            session_id: None,
        }),
        None => {
            inner.log_failed_login(user, &req.client);
            Err(unauthorized(
                state,
                msg::resource_at_uri_unauthorized(&req.path, "Unauthorized"),
            ))
        }
    }
}

fn unauthorized(state: &BmcState, message: crate::reply::Message) -> ErrorReply {
    let reply = ErrorReply::new(StatusCode::UNAUTHORIZED, message);
    if state.basic_auth && !state.faults.is_enabled(Fault::BasicAuthDisabled) {
        reply.header(WWW_AUTHENTICATE, "Basic realm=\"RedfishService\"")
    } else {
        reply
    }
}

/// Rejects a request that the caller's role does not allow: 403, or 401 under
/// [`Fault::RoleProblem401`].
pub(crate) fn require_role(
    state: &BmcState,
    principal: &Principal,
    needed: Role,
) -> Result<(), ErrorReply> {
    let allowed = match needed {
        Role::Administrator => principal.role == Role::Administrator,
        Role::Operator => principal.role != Role::ReadOnly,
        Role::ReadOnly => true,
    };
    if allowed {
        return Ok(());
    }
    let status = if state.faults.is_enabled(Fault::RoleProblem401) {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::FORBIDDEN
    };
    Err(ErrorReply::new(status, msg::insufficient_privilege()))
}

fn get(
    state: &BmcState,
    inner: &mut Inner,
    req: &Req,
    principal: &Principal,
    sessions_path: &str,
) -> Result<Response, ErrorReply> {
    let path = req.path.as_str();

    // Fault control endpoint.
    if path == FAULTS_PATH {
        let enabled: Vec<String> = state
            .faults
            .enabled()
            .iter()
            .map(|f| f.to_string())
            .collect();
        let known: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
        return Ok(json_get(
            &json!({ "enabled": enabled, "known": known }),
            "GET, HEAD, POST",
        ));
    }

    if let Some(response) = dynamic::sessions(state, inner, req, sessions_path)? {
        return Ok(response);
    }
    if let Some(response) = crate::account_api::get(state, inner, req)? {
        return Ok(response);
    }
    if let Some(response) = dynamic::logs(state, inner, req, principal, sessions_path)? {
        return Ok(response);
    }
    if let Some(response) = dynamic::tasks(inner, req)? {
        return Ok(response);
    }

    // Transient errors on thermal and power resources.
    if state.faults.is_enabled(Fault::TransientErrors) && is_thermal_or_power(path) {
        transient_failure(state.faults.next_transient_request())?;
    }
    serve_tree(state, inner, req)
}

/// Fails request `number` (from 1) since [`Fault::TransientErrors`] was enabled, as a BMC
/// that reloads its data does: odd numbers get 503 with `Retry-After`, even ones 500 `SYS518`,
/// until [`TRANSIENT_FAILURES`] requests have failed.
fn transient_failure(number: u64) -> Result<(), ErrorReply> {
    if number > TRANSIENT_FAILURES {
        return Ok(());
    }
    tracing::debug!(number, "transient failure on purpose");
    Err(if number % 2 == 1 {
        reply::unavailable(1)
    } else {
        ErrorReply::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            msg::data_unavailable_sys518(),
        )
    })
}

/// Fails the first writes after [`Fault::TransientErrors`] was enabled.
fn transient_write_failure(state: &BmcState) -> Result<(), ErrorReply> {
    if state.faults.is_enabled(Fault::TransientErrors) {
        transient_failure(state.faults.next_transient_write())?;
    }
    Ok(())
}

/// Applies `$filter`, `$expand`, `$select` and `only` to a successful read.
fn reshape(
    state: &BmcState,
    inner: &mut Inner,
    req: &Req,
    principal: &Principal,
    sessions_path: &str,
    options: &QueryOptions,
    response: Response,
) -> Result<Response, ErrorReply> {
    if response.status() != StatusCode::OK {
        return Ok(response);
    }
    let allow = response
        .headers()
        .get(http::header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("GET, HEAD")
        .to_owned();
    let (parts, body) = response.into_parts();
    let Some(bytes) = read_now(body) else {
        return Ok(Response::from_parts(parts, Body::empty()));
    };
    let Ok(value) = serde_json::from_slice::<Value>(&bytes) else {
        // Not JSON (XML or a broken captured file): served as it is.
        return Ok(Response::from_parts(parts, Body::from(bytes)));
    };
    let mut fetch = |path: &str| -> Option<Value> {
        let sub = Req {
            method: Method::GET,
            path: path.to_owned(),
            query: Vec::new(),
            raw_query: String::new(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            client: req.client.clone(),
        };
        let response = get(state, inner, &sub, principal, sessions_path).ok()?;
        if response.status() != StatusCode::OK {
            return None;
        }
        let bytes = read_now(response.into_body())?;
        serde_json::from_slice(&bytes).ok()
    };
    let reshaped = options.apply(&req.path, value, &mut fetch)?;
    Ok(crate::read::json_get_with(
        state, &req.path, reshaped, &allow,
    ))
}

/// Reads a body that is already in memory, as every body this service builds is.
fn read_now(body: Body) -> Option<Bytes> {
    use futures_util::FutureExt;
    axum::body::to_bytes(body, MAX_REQUEST_BODY * 64)
        .now_or_never()?
        .ok()
}

/// Returns the last segment of `path` when `path` is a direct child of `parent`.
pub(crate) fn child_of<'a>(path: &'a str, parent: &str) -> Option<&'a str> {
    path.strip_prefix(parent)?
        .strip_prefix('/')
        .filter(|rest| !rest.is_empty() && !rest.contains('/'))
}

/// Checks whether `path` is the sessions collection, or a session, at the URI not in use now.
pub(crate) fn is_inactive_sessions_path(state: &BmcState, path: &str) -> bool {
    let inactive = if state.faults.is_enabled(Fault::OldSessionUri) {
        state.sessions_path.as_str()
    } else {
        return false;
    };
    inactive != OLD_SESSIONS_PATH && (path == inactive || child_of(path, inactive).is_some())
}

fn is_thermal_or_power(path: &str) -> bool {
    path.ends_with("/Thermal")
        || path.ends_with("/Power")
        || path.contains("/ThermalSubsystem")
        || path.contains("/PowerSubsystem")
}

pub(crate) fn allow_for(inner: &Inner, path: &str, body: &Value) -> String {
    let mut allow = String::from("GET, HEAD");
    if crate::patch::is_patchable(body) {
        allow.push_str(", PATCH");
    }
    if inner.actions.contains_key(path)
        || is_subscription_collection(inner, path)
        || crate::account_api::is_open_tree_collection(inner, path)
    {
        allow.push_str(", POST");
    }
    let parent = path
        .rsplit_once('/')
        .map(|(parent, _)| parent)
        .unwrap_or_default();
    if is_subscription_collection(inner, parent) || crate::account_api::is_tree_member(inner, path)
    {
        allow.push_str(", DELETE");
    }
    allow
}

fn method_not_allowed(
    state: &BmcState,
    inner: &Inner,
    path: &str,
    sessions_path: &str,
) -> ErrorReply {
    if path == sessions_path {
        return ErrorReply::method_not_allowed("GET, HEAD, POST");
    }
    if child_of(path, sessions_path).is_some()
        && inner
            .sessions
            .get(child_of(path, sessions_path).unwrap_or_default())
            .is_some()
    {
        return ErrorReply::method_not_allowed("GET, HEAD, DELETE");
    }
    if path == FAULTS_PATH {
        return ErrorReply::method_not_allowed("GET, HEAD, POST");
    }
    if inner.actions.contains_key(path) {
        return ErrorReply::method_not_allowed("POST");
    }
    if crate::account_api::member(state, inner, path).is_some() {
        return ErrorReply::method_not_allowed(crate::account_api::ACCOUNT_ALLOW);
    }
    if crate::account_api::is_collection(state, path) {
        return ErrorReply::method_not_allowed(crate::account_api::COLLECTION_ALLOW);
    }
    match inner.tree.json(path) {
        Some(body) => ErrorReply::method_not_allowed(&allow_for(inner, path, body)),
        None if inner.tree.contains(path) || is_dynamic(state, inner, path) => {
            ErrorReply::method_not_allowed("GET, HEAD")
        }
        None => ErrorReply::not_found(path),
    }
}

fn is_dynamic(state: &BmcState, inner: &Inner, path: &str) -> bool {
    inner
        .logs
        .iter()
        .any(|s| s.entries_path == path || s.find(path).is_some())
        || state.accounts_path.as_deref() == Some(path)
        || inner
            .tasks
            .iter()
            .any(|t| t.task_path == path || t.job_path.as_deref() == Some(path))
}

fn patch(
    state: &BmcState,
    inner: &mut Inner,
    req: &Req,
    principal: &Principal,
) -> Result<Response, ErrorReply> {
    let path = req.path.as_str();
    let sessions_path = state.active_sessions_path().to_owned();
    transient_write_failure(state)?;
    if crate::account_api::member(state, inner, path).is_some() {
        return crate::account_api::patch(state, inner, req, principal);
    }
    let Some(body) = inner.tree.json(path).cloned() else {
        return Err(method_not_allowed(state, inner, path, &sessions_path));
    };
    if !crate::patch::is_patchable(&body) {
        return Err(ErrorReply::method_not_allowed(&allow_for(
            inner, path, &body,
        )));
    }
    require_role(state, principal, Role::Operator)?;

    // Preconditions: If-Match must name the current tag; it is required only under WeakEtag.
    let current = current_etag(state, inner, path).unwrap_or_default();
    match req.headers.get(IF_MATCH).and_then(|v| v.to_str().ok()) {
        Some(if_match) => {
            let matches = if_match
                .split(',')
                .map(str::trim)
                .any(|tag| tag == "*" || tag == current);
            if !matches {
                return Err(ErrorReply::new(
                    StatusCode::PRECONDITION_FAILED,
                    msg::precondition_failed(),
                ));
            }
        }
        None if state.faults.is_enabled(Fault::WeakEtag) => {
            return Err(ErrorReply::new(
                StatusCode::PRECONDITION_REQUIRED,
                msg::precondition_required(),
            ));
        }
        None => {}
    }

    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(&req.body) else {
        return Err(ErrorReply::new(
            StatusCode::BAD_REQUEST,
            msg::malformed_json(),
        ));
    };
    let changes = crate::patch::apply(inner, path, &request, &state.faults.enabled())?;
    for (name, value) in changes {
        let value = crate::logs::clip(&value);
        inner.log_change_from(
            &principal.user,
            &req.client,
            format!("{name} of {path} set to {value}"),
        );
    }
    serve_tree(
        state,
        inner,
        &Req {
            method: Method::GET,
            path: path.to_owned(),
            query: Vec::new(),
            raw_query: String::new(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            client: req.client.clone(),
        },
    )
}

fn post(
    state: &BmcState,
    inner: &mut Inner,
    req: &Req,
    principal: &Principal,
) -> Result<Response, ErrorReply> {
    let path = req.path.as_str();
    if path == FAULTS_PATH {
        require_role(state, principal, Role::Administrator)?;
        return control_faults(state, inner, req);
    }
    transient_write_failure(state)?;
    let collection = path.strip_suffix("/Members").unwrap_or(path);
    if crate::account_api::is_collection(state, collection) {
        return crate::account_api::create(state, inner, req, principal);
    }
    if crate::account_api::is_open_tree_collection(inner, collection) {
        return crate::account_api::create_in_tree(state, inner, req, principal, collection);
    }
    let Some((resource, action)) = inner.actions.get(path).cloned() else {
        let sessions_path = state.active_sessions_path().to_owned();
        return Err(method_not_allowed(state, inner, path, &sessions_path));
    };
    require_role(state, principal, Role::Operator)?;
    crate::actions::run(state, inner, req, principal, &resource, &action)
}

fn delete(
    state: &BmcState,
    inner: &mut Inner,
    req: &Req,
    principal: &Principal,
    sessions_path: &str,
) -> Result<Response, ErrorReply> {
    let path = req.path.as_str();
    if crate::account_api::member(state, inner, path).is_some() {
        return crate::account_api::delete(state, inner, req, principal);
    }
    if crate::account_api::is_tree_member(inner, path) {
        return crate::account_api::delete_in_tree(state, inner, req, principal);
    }
    let Some(id) = child_of(path, sessions_path).filter(|id| inner.sessions.get(id).is_some())
    else {
        return Err(method_not_allowed(state, inner, path, sessions_path));
    };
    let own = principal.session_id.as_deref() == Some(id);
    if !own {
        require_role(state, principal, Role::Administrator)?;
    }
    if let Some(session) = inner.sessions.remove(id) {
        inner.log_logout(&session.user, &req.client);
    }
    Ok(reply::no_content())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_of_accepts_direct_children_only() {
        assert_eq!(child_of("/a/b/c", "/a/b"), Some("c"));
        assert_eq!(child_of("/a/b/c/d", "/a/b"), None);
        assert_eq!(child_of("/a/bc", "/a/b"), None);
    }
}
