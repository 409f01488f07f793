//! The Redfish client: service root, sessions, retries and collections.

use std::collections::HashSet;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::stream::{self, StreamExt as _};
use http::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use http::{HeaderMap, Method, StatusCode};
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::decode;
use crate::secret::{Credentials, Secret};
use crate::transport::{Request, Response, Transport};
use crate::Error;

/// Path of the Redfish service root.
pub const SERVICE_ROOT: &str = "/redfish/v1";

/// Maximum number of collection pages read before paging stops, so that a `nextLink`
/// that loops or a service that ignores `$skip` cannot hang the client.
pub const MAX_PAGES: usize = 500;

/// Most members read from one collection; a BMC listing more is cut off here so that a
/// hostile or broken collection cannot make the client send unbounded requests.
pub const MAX_MEMBERS: usize = 10_000;

/// Default maximum number of requests in flight at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 8;

/// Default time between two reads while waiting for a task or a power state.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Sessions collections tried when the service root does not link one.
const FALLBACK_SESSION_PATHS: [&str; 2] = [
    "/redfish/v1/SessionService/Sessions",
    "/redfish/v1/Sessions",
];

/// Maximum number of characters of a peer's message copied into an error.
const MAX_PEER_MESSAGE_CHARS: usize = 200;

/// Authentication method of a client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthMode {
    /// A Redfish session (`X-Auth-Token`). Falls back to Basic only when the service has
    /// no session service.
    #[default]
    Session,
    /// HTTP Basic authentication on every request.
    Basic,
}

/// Retry settings for transient failures (HTTP 500 and 503, read time-outs on GET).
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Maximum number of requests sent for one read, the first included.
    pub max_attempts: u32,
    /// Delay before the first retry; each later retry doubles it.
    pub base_delay: Duration,
    /// Upper bound for any delay, including one asked for by `Retry-After`.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            // Keeps an interactive command within about 30 s of waiting per resource even
            // when a BMC asks for a much longer `Retry-After`.
            max_delay: Duration::from_secs(10),
        }
    }
}

/// A resource read from the service.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    /// The path it was read from.
    pub path: String,
    /// The `ETag` header, or the body's `@odata.etag` (a string or a number).
    pub etag: Option<String>,
    /// The JSON body.
    pub body: Value,
}

/// Credentials attached to authenticated requests.
enum Auth {
    None,
    Session {
        token: Secret,
        location: Option<String>,
    },
    Basic {
        header: Secret,
    },
}

/// A client for one Redfish service over a [`Transport`].
pub struct Client<T: Transport> {
    transport: T,
    pub(crate) retry: RetryPolicy,
    root: Option<Value>,
    auth: Auth,
    in_flight: Semaphore,
    poll_interval: Duration,
}

impl<T: Transport> Client<T> {
    /// Creates a client that has not yet read the service root.
    pub fn new(transport: T, retry: RetryPolicy) -> Self {
        Client {
            transport,
            retry,
            root: None,
            auth: Auth::None,
            in_flight: Semaphore::new(DEFAULT_MAX_IN_FLIGHT),
            poll_interval: DEFAULT_POLL_INTERVAL,
        }
    }

    /// Sets the maximum number of requests in flight at once (at least 1).
    pub fn with_max_in_flight(mut self, max: usize) -> Self {
        self.in_flight = Semaphore::new(max.max(1));
        self
    }

    /// Sets the time between two reads while waiting for a task or a power state
    /// (at least 10 ms).
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Returns the time between two reads while waiting for a task or a power state.
    pub fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    /// Returns the transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// Returns the service root read by [`Client::connect`], if any.
    pub fn root(&self) -> Option<&Value> {
        self.root.as_ref()
    }

    /// Returns whether the client has a session token or Basic credentials.
    pub fn is_authenticated(&self) -> bool {
        !matches!(self.auth, Auth::None)
    }

    /// Reads the service root without authentication and checks that it is Redfish.
    ///
    /// # Errors
    ///
    /// [`Error::NotRedfish`] when the response is an HTML page, non-JSON, or JSON without
    /// `RedfishVersion` and a service-root `@odata.id`; transport errors as they occur.
    pub async fn connect(&mut self) -> Result<&Value, Error> {
        let response = self.execute(Method::GET, SERVICE_ROOT, None, false).await?;
        let root = check_service_root(&response, &self.service_url())?;
        tracing::debug!(
            version = decode::text(&root, "RedfishVersion")
                .as_deref()
                .unwrap_or("unknown"),
            "connected to Redfish service"
        );
        Ok(self.root.insert(root))
    }

    /// Logs in. `AuthMode::Session` posts the credentials to the sessions collection linked
    /// from the service root, then to the two usual paths, and keeps the `X-Auth-Token`.
    /// It uses Basic only when the service has no session service. `AuthMode::Basic`
    /// checks the credentials with one authenticated read.
    ///
    /// # Errors
    ///
    /// [`Error::Unauthorized`] on 401, [`Error::SessionLimit`] when the BMC has no free
    /// session, [`Error::Session`] when the login response lacks a token.
    pub async fn login(&mut self, creds: &Credentials, mode: AuthMode) -> Result<(), Error> {
        if self.root.is_none() {
            self.connect().await?;
        }
        if matches!(self.auth, Auth::Session { .. }) {
            // A second login would leave the first session open on the BMC.
            if let Err(error) = self.logout().await {
                tracing::debug!(%error, "previous session not deleted before a new login");
            }
        }
        let root = self.root.clone().unwrap_or(Value::Null);

        if mode == AuthMode::Session {
            let candidates = session_candidates(&root);
            if candidates.is_empty() {
                tracing::debug!("service root has no session service, using Basic");
            }
            for path in candidates {
                match self.create_session(&path, creds).await? {
                    Some(auth) => {
                        self.auth = auth;
                        return Ok(());
                    }
                    None => tracing::debug!(%path, "no sessions collection at this path"),
                }
            }
        }

        self.auth = Auth::Basic {
            header: basic_header(creds),
        };
        let probe =
            decode::link(&root, "Systems").unwrap_or_else(|| format!("{SERVICE_ROOT}/Systems"));
        match self.get(&probe).await {
            Ok(_) => Ok(()),
            Err(Error::Unauthorized { message })
                if mode == AuthMode::Basic && !session_candidates(&root).is_empty() =>
            {
                self.auth = Auth::None;
                let hint =
                    "Basic authentication may be disabled on the BMC, session login may work";
                let message = if message.is_empty() {
                    hint.to_owned()
                } else {
                    format!("{message}; {hint}")
                };
                Err(Error::Unauthorized { message })
            }
            Err(error) => {
                self.auth = Auth::None;
                Err(error)
            }
        }
    }

    /// Deletes the session, if there is one, and clears the credentials in every case.
    ///
    /// # Errors
    ///
    /// The DELETE's error; [`Error::SessionNotDeleted`] when the BMC never returned the
    /// session's URI, so the session can only expire on its own.
    pub async fn logout(&mut self) -> Result<(), Error> {
        let auth = std::mem::replace(&mut self.auth, Auth::None);
        let Auth::Session { token, location } = auth else {
            return Ok(());
        };
        let Some(location) = location else {
            return Err(Error::SessionNotDeleted {
                detail: "the login response had no session URI to delete".into(),
            });
        };

        let mut request = self.request(Method::DELETE, &location, None, false);
        insert_secret_header(&mut request.headers, "x-auth-token", token.expose());
        let response = self.send_once(request).await?;
        if response.status.is_success() || response.status == StatusCode::NOT_FOUND {
            tracing::debug!(status = %response.status, "session deleted");
            Ok(())
        } else {
            Err(status_error(&location, &response))
        }
    }

    /// Reads one resource, retrying 500, 503 and read time-outs with bounded back-off.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidJson`] for a body that is not JSON, mapped status errors, and
    /// [`Error::RetriesExhausted`] when a transient failure outlasts the retry policy.
    pub async fn get(&self, path: &str) -> Result<Resource, Error> {
        let path = request_path(path)?;
        let response = self.execute(Method::GET, &path, None, true).await?;
        if !response.status.is_success() {
            return Err(status_error(&path, &response));
        }
        let body = parse_json(&path, &response.body)?;
        let etag = response
            .headers
            .get(http::header::ETAG)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
            .or_else(|| decode::text(&body, "@odata.etag"));
        Ok(Resource { path, etag, body })
    }

    /// Reads every member of a collection. Follows `Members@odata.nextLink`, or `$skip`
    /// when `Members@odata.count` shows that more exist, drops duplicate `@odata.id`s and
    /// reads each member that the page lists only as a link.
    ///
    /// # Errors
    ///
    /// The first error of any page or member read.
    pub async fn members(&self, collection: &str) -> Result<Vec<Resource>, Error> {
        let (members, failures) = self.members_partial(collection).await?;
        match failures.into_iter().next() {
            Some((_, error)) => Err(error),
            None => Ok(members),
        }
    }

    /// Reads a collection like [`Client::members`] but returns members that failed to
    /// read beside the ones that succeeded. Only a failure to read the collection itself
    /// is an error.
    pub(crate) async fn members_partial(
        &self,
        collection: &str,
    ) -> Result<(Vec<Resource>, Vec<(String, Error)>), Error> {
        let entries = self.collection_entries(collection).await?;

        let mut slots: Vec<Option<Resource>> = Vec::new();
        let mut to_read = Vec::new();
        for entry in entries {
            let Some(path) = decode::odata_id(&entry) else {
                continue;
            };
            if is_expanded(&entry) {
                let etag = decode::text(&entry, "@odata.etag");
                slots.push(Some(Resource {
                    path,
                    etag,
                    body: entry,
                }));
            } else {
                to_read.push((slots.len(), path));
                slots.push(None);
            }
        }

        let read: Vec<(usize, String, Result<Resource, Error>)> = stream::iter(to_read)
            .map(|(slot, path)| async move {
                let result = self.get(&path).await;
                (slot, path, result)
            })
            .buffer_unordered(DEFAULT_MAX_IN_FLIGHT)
            .collect()
            .await;

        let mut failures = Vec::new();
        for (slot, path, result) in read {
            match result {
                Ok(resource) => {
                    if let Some(place) = slots.get_mut(slot) {
                        *place = Some(resource);
                    }
                }
                Err(error) if error.is_fatal() => return Err(error),
                Err(error) => failures.push((path, error)),
            }
        }
        let members = slots.into_iter().flatten().collect();
        Ok((members, failures))
    }

    /// Reads the `Members` entries of every page of a collection, without reading the
    /// members themselves, de-duplicated by `@odata.id` in page order.
    pub(crate) async fn collection_entries(&self, collection: &str) -> Result<Vec<Value>, Error> {
        let first_path = request_path(collection)?;
        let mut seen_ids = HashSet::new();
        let mut visited_pages = HashSet::new();
        let mut entries = Vec::new();
        let mut received = 0_usize;
        let mut next = Some(first_path.clone());

        while let Some(page_path) = next.take() {
            if visited_pages.len() >= MAX_PAGES {
                tracing::debug!(%collection, pages = MAX_PAGES, "page limit reached, stopping");
                break;
            }
            if !visited_pages.insert(page_path.clone()) {
                tracing::debug!(%page_path, "collection page seen before, stopping");
                break;
            }
            if entries.len() >= MAX_MEMBERS {
                tracing::debug!(%collection, members = MAX_MEMBERS, "member limit reached, stopping");
                break;
            }
            let page = self.get(&page_path).await?;
            let members = decode::array(&page.body, "Members");
            received += members.len();
            let mut new_members = 0;
            for member in members {
                let key = decode::odata_id(member).unwrap_or_default();
                if entries.len() >= MAX_MEMBERS {
                    break;
                }
                if key.is_empty() || seen_ids.insert(key) {
                    new_members += 1;
                    entries.push(member.clone());
                }
            }

            let count = decode::unsigned(&page.body, "Members@odata.count").map(|c| c as usize);
            next = match decode::text(&page.body, "Members@odata.nextLink") {
                Some(link) => Some(request_path(&link)?),
                None if new_members > 0 && count.is_some_and(|count| received < count) => {
                    Some(with_skip(&first_path, received))
                }
                None => None,
            };
        }
        // NOTE: an iDRAC can return an empty `Members` array for about two minutes after
        // its job queue is cleared. Such a collection is returned as empty, not retried.
        Ok(entries)
    }

    /// Sends a request, retrying transient failures of reads. Returns the response of the
    /// first attempt that is not transient, whatever its status.
    pub(crate) async fn execute(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        authenticated: bool,
    ) -> Result<Response, Error> {
        let retry_allowed = method == Method::GET;
        let max_attempts = if retry_allowed {
            self.retry.max_attempts.max(1)
        } else {
            1
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let request = self.request(method.clone(), path, body.clone(), authenticated);
            let (error, retry_after) = match self.send_once(request).await {
                Ok(response) if is_transient(response.status) => {
                    let error = status_error(path, &response);
                    if matches!(error, Error::SessionLimit { .. }) || !retry_allowed {
                        return Err(error);
                    }
                    let retry_after = retry_after(&response.headers);
                    (error, retry_after)
                }
                Ok(response) => return Ok(response),
                Err(error @ Error::Timeout { .. }) if retry_allowed => (error, None),
                Err(error) => return Err(error),
            };

            if attempt >= max_attempts {
                if attempt == 1 {
                    return Err(error);
                }
                return Err(Error::RetriesExhausted {
                    path: path.to_owned(),
                    attempts: attempt,
                    last: Box::new(error),
                });
            }
            let delay = retry_delay(&self.retry, attempt, retry_after);
            tracing::debug!(%path, attempt, ?delay, %error, "transient failure, retrying");
            tokio::time::sleep(delay).await;
        }
    }

    pub(crate) async fn send_once(&self, request: Request) -> Result<Response, Error> {
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| Error::Transport {
                what: format!("{} {}", request.method, request.path),
                detail: "the client is shutting down".into(),
            })?;
        self.transport.send(request).await
    }

    /// Builds a request with only standard headers.
    pub(crate) fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        authenticated: bool,
    ) -> Request {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert("odata-version", HeaderValue::from_static("4.0"));
        if body.is_some() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if authenticated {
            match &self.auth {
                Auth::None => {}
                Auth::Session { token, .. } => {
                    insert_secret_header(&mut headers, "x-auth-token", token.expose())
                }
                Auth::Basic { header } => {
                    insert_secret_header(&mut headers, AUTHORIZATION.as_str(), header.expose())
                }
            }
        }
        Request {
            method,
            path: path.to_owned(),
            headers,
            body,
        }
    }

    /// Posts the credentials to one sessions collection. Returns `None` when the path has
    /// no sessions collection (404 or 405).
    async fn create_session(&self, path: &str, creds: &Credentials) -> Result<Option<Auth>, Error> {
        let body = serde_json::json!({
            "UserName": creds.username,
            "Password": creds.password.expose(),
        });
        // NOTE: the request body contains the password in a plain buffer, not zeroized, until
        // the transport drops it. `Request`'s Debug output omits the body.
        let body = Bytes::from(body.to_string());
        let response = self.execute(Method::POST, path, Some(body), false).await?;

        if matches!(
            response.status,
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
        ) {
            return Ok(None);
        }
        if !response.status.is_success() {
            return Err(status_error(path, &response));
        }
        let token = response
            .headers
            .get("x-auth-token")
            .and_then(|value| value.to_str().ok())
            .filter(|token| !token.is_empty())
            .ok_or_else(|| Error::Session {
                path: path.to_owned(),
                detail: "the response has no X-Auth-Token header".into(),
            })?;
        let location = response
            .headers
            .get(LOCATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|location| request_path(location).ok())
            .or_else(|| {
                serde_json::from_slice::<Value>(&response.body)
                    .ok()
                    .and_then(|body| decode::odata_id(&body))
            });
        tracing::debug!(%path, has_location = location.is_some(), "session created");
        Ok(Some(Auth::Session {
            token: Secret::new(token),
            location,
        }))
    }

    fn service_url(&self) -> String {
        match self.transport.base_url() {
            Some(base) => format!("{base}{SERVICE_ROOT}"),
            None => SERVICE_ROOT.to_owned(),
        }
    }
}

impl<T: Transport> Drop for Client<T> {
    fn drop(&mut self) {
        if matches!(self.auth, Auth::Session { .. }) {
            // The BMC keeps the session until its idle time-out and counts it against its
            // session limit, so callers should call `logout` first.
            tracing::debug!("client dropped without logout, the BMC session stays open");
        }
    }
}

/// Checks that a service-root response is Redfish and returns its body.
fn check_service_root(response: &Response, url: &str) -> Result<Value, Error> {
    let not_redfish = |detail: String| Error::NotRedfish {
        url: url.to_owned(),
        detail,
    };
    let content_type = response
        .headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let status = response.status;
    let text = String::from_utf8_lossy(&response.body);
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();

    if trimmed.starts_with('<') || content_type.contains("html") {
        let title = html_title(trimmed)
            .map(|title| format!(" titled {title:?}"))
            .unwrap_or_default();
        return Err(not_redfish(format!("an HTML page{title} (HTTP {status})")));
    }
    let Ok(body) = serde_json::from_str::<Value>(trimmed) else {
        let body = match (response.body.len(), content_type.as_str()) {
            (0, _) => "an empty body".to_owned(),
            (length, "") => format!("{length} bytes without a Content-Type"),
            (length, content_type) => format!("{length} bytes of {content_type}"),
        };
        return Err(not_redfish(format!("{body}, not JSON (HTTP {status})")));
    };
    if !status.is_success() {
        if body.get("error").is_some() {
            return Err(status_error(SERVICE_ROOT, response));
        }
        return Err(not_redfish(format!("JSON with HTTP {status}")));
    }
    let has_version = decode::text(&body, "RedfishVersion").is_some();
    let root_id =
        decode::odata_id(&body).is_some_and(|id| id.trim_end_matches('/') == SERVICE_ROOT);
    if !has_version && !root_id {
        return Err(not_redfish(
            "JSON without RedfishVersion or a service-root @odata.id".into(),
        ));
    }
    Ok(body)
}

fn html_title(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let start = lower.find("<title>")? + "<title>".len();
    let end = start + lower.get(start..)?.find("</title>")?;
    html.get(start..end)
        .map(|title| clean_peer_text(title.trim()))
}

/// Returns the sessions collections to try, most specific first. Empty when the service
/// root has no session service at all.
fn session_candidates(root: &Value) -> Vec<String> {
    let linked = root
        .get("Links")
        .and_then(|links| decode::link(links, "Sessions"));
    if linked.is_none() && root.get("SessionService").is_none() {
        return Vec::new();
    }
    let mut candidates: Vec<String> = linked
        .and_then(|path| request_path(&path).ok())
        .into_iter()
        .collect();
    for path in FALLBACK_SESSION_PATHS {
        if !candidates.iter().any(|existing| existing == path) {
            candidates.push(path.to_owned());
        }
    }
    candidates
}

fn basic_header(creds: &Credentials) -> Secret {
    let pair = zeroize::Zeroizing::new(format!("{}:{}", creds.username, creds.password.expose()));
    let encoded =
        zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(pair.as_bytes()));
    Secret::new(format!("Basic {}", encoded.as_str()))
}

fn insert_secret_header(headers: &mut HeaderMap, name: &'static str, value: &str) {
    // A token with characters outside visible ASCII cannot be sent, so the request goes
    // out without it and the BMC returns 401.
    if let Ok(mut value) = HeaderValue::from_str(value) {
        value.set_sensitive(true);
        headers.insert(name, value);
    }
}

/// Turns a path or absolute URL from the service into a request path: the host is
/// dropped, so a link can never send a request to another server, and so is any fragment.
pub(crate) fn request_path(raw: &str) -> Result<String, Error> {
    let raw = raw.trim();
    let without_host = if raw.starts_with("https://") || raw.starts_with("http://") {
        let url = url::Url::parse(raw).map_err(|error| Error::InvalidUrl {
            url: raw.to_owned(),
            detail: error.to_string(),
        })?;
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    } else {
        raw.to_owned()
    };
    let path = without_host
        .split('#')
        .next()
        .unwrap_or_default()
        .to_owned();
    if !path.starts_with('/') || path.starts_with("//") || path.chars().any(char::is_control) {
        return Err(Error::InvalidUrl {
            url: raw.to_owned(),
            detail: "a resource path must start with a single '/'".into(),
        });
    }
    Ok(path)
}

/// Adds or replaces the `$skip` query parameter of a path.
pub(crate) fn with_skip(path: &str, skip: usize) -> String {
    let (base, query) = path.split_once('?').unwrap_or((path, ""));
    let mut parts: Vec<String> = query
        .split('&')
        .filter(|part| {
            !part.is_empty() && !part.starts_with("$skip=") && !part.starts_with("%24skip=")
        })
        .map(str::to_owned)
        .collect();
    parts.push(format!("$skip={skip}"));
    format!("{base}?{}", parts.join("&"))
}

/// Returns whether a collection member is an expanded resource rather than a bare link.
fn is_expanded(member: &Value) -> bool {
    member.as_object().is_some_and(|object| {
        object
            .keys()
            .any(|key| !key.starts_with("@odata.") && key != "Name" && key != "Id")
    })
}

pub(crate) fn parse_json(path: &str, body: &[u8]) -> Result<Value, Error> {
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::InvalidJson {
            path: path.to_owned(),
            detail: "empty body".into(),
        });
    }
    serde_json::from_slice(body).map_err(|error| Error::InvalidJson {
        path: path.to_owned(),
        detail: error.to_string(),
    })
}

pub(crate) fn is_transient(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR | StatusCode::SERVICE_UNAVAILABLE
    )
}

/// Reads `Retry-After` as seconds or as an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// Returns the delay before retry number `attempt` (1 for the first retry): the
/// `Retry-After` value when the service sent one, else exponential back-off, both capped.
pub(crate) fn retry_delay(
    policy: &RetryPolicy,
    attempt: u32,
    retry_after: Option<Duration>,
) -> Duration {
    let backoff = policy
        .base_delay
        .saturating_mul(2_u32.saturating_pow(attempt.saturating_sub(1)));
    retry_after.unwrap_or(backoff).min(policy.max_delay)
}

/// Maps an unsuccessful response to an error, reading the Redfish error body if present.
pub(crate) fn status_error(path: &str, response: &Response) -> Error {
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    let error = body.get("error").unwrap_or(&Value::Null);
    let extended = decode::array(error, "@Message.ExtendedInfo");

    let message_id = extended
        .iter()
        .find_map(|info| decode::text(info, "MessageId"))
        .or_else(|| decode::text(error, "code"));
    let message = extended
        .iter()
        .find_map(|info| decode::text(info, "Message"))
        .or_else(|| decode::text(error, "message"))
        .map(|text| clean_peer_text(&text))
        .unwrap_or_default();

    let session_limit = extended
        .iter()
        .filter_map(|info| decode::text(info, "MessageId"))
        .chain(message_id.clone())
        .any(|id| id.contains("RAC0218"))
        || extended
            .iter()
            .filter_map(|info| decode::text(info, "Message"))
            .chain(decode::text(error, "message"))
            .any(|text| {
                text.to_ascii_lowercase()
                    .contains("maximum number of user sessions")
            });

    match response.status {
        StatusCode::SERVICE_UNAVAILABLE if session_limit => Error::SessionLimit { message },
        StatusCode::UNAUTHORIZED => Error::Unauthorized { message },
        StatusCode::FORBIDDEN => Error::Forbidden {
            path: path.to_owned(),
            message,
        },
        status => Error::Status {
            status,
            path: path.to_owned(),
            message_id,
            message,
        },
    }
}

/// Makes a peer's text safe for a one-line message: no control characters, bounded length.
pub(crate) fn clean_peer_text(text: &str) -> String {
    let single_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_PEER_MESSAGE_CHARS)
        .collect();
    single_line.trim().to_owned()
}

#[cfg(test)]
mod tests;
