//! The Redfish event service: subscriptions (`EventDestination`), delivery of `Event`
//! payloads to HTTPS destinations with iDRAC-style retries, `SubmitTestEvent`, and the
//! Server-Sent Events stream with `$filter` and `Last-Event-ID`.
//!
//! The simulator raises every lifecycle log entry here: logins and failed logins, changes,
//! the end of power transitions, failed fans and power supplies, and temperature thresholds
//! crossed.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http::{HeaderName, HeaderValue};
use rustls_pki_types::CertificateDer;
use serde_json::{json, Value};
use tokio::sync::broadcast;

/// Delivery attempts per event and subscription; iDRAC 9 makes 3.
pub const DEFAULT_RETRY_ATTEMPTS: u32 = 3;
/// Wait between two attempts; iDRAC 9 waits 30 seconds.
pub const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_secs(30);
/// Events kept for SSE clients that reconnect with `Last-Event-ID`.
pub const DEFAULT_HISTORY: usize = 1000;
/// Most subscriptions at once; a real BMC's limit is in the same range.
pub const MAX_SUBSCRIPTIONS: usize = 32;
/// Most custom headers one subscription may carry.
const MAX_HTTP_HEADERS: usize = 16;

/// Settings of the event service.
#[derive(Debug, Clone)]
pub struct EventConfig {
    /// Delivery attempts per event and subscription, the first included.
    pub retry_attempts: u32,
    /// Wait between attempts.
    pub retry_interval: Duration,
    /// Events kept for SSE replay.
    pub history: usize,
    /// Extra trust anchors for destinations, on top of the system roots.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Time limit for one delivery request.
    pub request_timeout: Duration,
}

impl Default for EventConfig {
    fn default() -> Self {
        Self {
            retry_attempts: DEFAULT_RETRY_ATTEMPTS,
            retry_interval: DEFAULT_RETRY_INTERVAL,
            history: DEFAULT_HISTORY,
            extra_roots: Vec::new(),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Handling of a subscription whose delivery failed on every attempt (Redfish
/// `DeliveryRetryPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryPolicy {
    /// Delete the subscription.
    TerminateAfterRetries,
    /// Keep it but stop sending until it is recreated.
    SuspendRetries,
    /// Keep sending later events.
    RetryForever,
}

impl RetryPolicy {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "TerminateAfterRetries" => Some(Self::TerminateAfterRetries),
            "SuspendRetries" => Some(Self::SuspendRetries),
            "RetryForever" => Some(Self::RetryForever),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::TerminateAfterRetries => "TerminateAfterRetries",
            Self::SuspendRetries => "SuspendRetries",
            Self::RetryForever => "RetryForever",
        }
    }
}

/// One subscription.
#[derive(Debug, Clone)]
struct Subscription {
    destination: url::Url,
    context: String,
    registry_prefixes: Vec<String>,
    message_ids: Vec<String>,
    http_headers: Vec<(HeaderName, HeaderValue)>,
    retry_policy: RetryPolicy,
    suspended: bool,
}

impl Subscription {
    fn wants(&self, event: &EventRecord) -> bool {
        let prefix = event.message_id.split('.').next().unwrap_or_default();
        (self.registry_prefixes.is_empty() || self.registry_prefixes.iter().any(|p| p == prefix))
            && (self.message_ids.is_empty()
                || self.message_ids.iter().any(|m| m == &event.message_id))
    }
}

/// An event the BMC raised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// Sequence number, also the SSE `id`.
    pub id: u64,
    /// `MessageId`, such as `ResourceEvent.1.0.ResourceChanged`.
    pub message_id: String,
    /// `OK`, `Warning` or `Critical`.
    pub severity: String,
    /// Message text.
    pub message: String,
    /// `MessageArgs`.
    pub message_args: Vec<String>,
    /// URI of the resource the event is about.
    pub origin: Option<String>,
    /// RFC 3339 time it was raised.
    pub timestamp: String,
}

impl EventRecord {
    fn to_json(&self) -> Value {
        let mut record = json!({
            "EventType": "Alert",
            "EventId": self.id.to_string(),
            "EventTimestamp": self.timestamp,
            "Severity": self.severity,
            "MessageSeverity": self.severity,
            "Message": self.message,
            "MessageId": self.message_id,
            "MessageArgs": self.message_args,
        });
        if let (Some(origin), Some(map)) = (&self.origin, record.as_object_mut()) {
            map.insert("OriginOfCondition".into(), json!({ "@odata.id": origin }));
        }
        record
    }

    /// Builds the `#Event` payload with one record and the subscription's `Context`.
    pub fn payload(&self, context: &str) -> Value {
        json!({
            "@odata.type": "#Event.v1_7_0.Event",
            "Id": self.id.to_string(),
            "Name": "Event Array",
            "Context": context,
            "Events": [self.to_json()],
        })
    }
}

/// An event to raise.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// `MessageId`.
    pub message_id: String,
    /// `OK`, `Warning` or `Critical`.
    pub severity: String,
    /// Message text.
    pub message: String,
    /// `MessageArgs`.
    pub message_args: Vec<String>,
    /// URI of the resource concerned.
    pub origin: Option<String>,
}

/// Reason a request to the event service was rejected; each maps to 400 with the property.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventRequestError {
    /// The body is not a JSON object.
    #[error("request body is not a JSON object")]
    MalformedJson,
    /// A required property is missing.
    #[error("property {0} is missing")]
    Missing(&'static str),
    /// A property has a value the service does not accept.
    #[error("property {property} has an invalid value: {reason}")]
    Invalid {
        /// The property.
        property: &'static str,
        /// Why.
        reason: String,
    },
    /// The subscription limit is reached.
    #[error("the service holds its maximum of {MAX_SUBSCRIPTIONS} subscriptions")]
    TooMany,
}

/// The event service of one BMC.
#[derive(Debug)]
pub struct EventService {
    config: EventConfig,
    subscriptions: Mutex<BTreeMap<u32, Subscription>>,
    next_subscription: AtomicU32,
    history: Mutex<VecDeque<Arc<EventRecord>>>,
    next_event: AtomicU64,
    stream: broadcast::Sender<Arc<EventRecord>>,
    http: reqwest::Client,
}

impl EventService {
    /// Creates the service.
    ///
    /// # Errors
    /// A message when the HTTPS client cannot be built.
    pub fn new(config: EventConfig) -> Result<Arc<Self>, String> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in &config.extra_roots {
            roots
                .add(cert.clone())
                .map_err(|e| format!("event destination CA rejected: {e}"))?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(config.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("event delivery client: {e}"))?;
        let (stream, _) = broadcast::channel(256);
        Ok(Arc::new(Self {
            config,
            subscriptions: Mutex::new(BTreeMap::new()),
            next_subscription: AtomicU32::new(1),
            history: Mutex::new(VecDeque::new()),
            next_event: AtomicU64::new(1),
            stream,
            http,
        }))
    }

    /// Creates a subscription from a POST body and returns its id and `EventDestination`.
    ///
    /// # Errors
    /// [`EventRequestError`] naming the property at fault; only `https` destinations are
    /// accepted.
    pub fn subscribe(&self, body: &[u8]) -> Result<(u32, Value), EventRequestError> {
        let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(body) else {
            return Err(EventRequestError::MalformedJson);
        };
        let invalid = |property: &'static str, reason: &str| EventRequestError::Invalid {
            property,
            reason: reason.to_owned(),
        };

        let destination = request
            .get("Destination")
            .ok_or(EventRequestError::Missing("Destination"))?
            .as_str()
            .and_then(|d| url::Url::parse(d).ok())
            .ok_or_else(|| invalid("Destination", "not a URL"))?;
        if destination.scheme() != "https" {
            return Err(invalid(
                "Destination",
                "only https destinations are accepted",
            ));
        }
        match request.get("Protocol").and_then(Value::as_str) {
            None | Some("Redfish") => {}
            Some(_) => return Err(invalid("Protocol", "only Redfish is supported")),
        }
        let strings = |name: &'static str| -> Result<Vec<String>, EventRequestError> {
            match request.get(name) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| invalid(name, "expected strings"))
                    })
                    .collect(),
                Some(_) => Err(invalid(name, "expected an array of strings")),
            }
        };
        let registry_prefixes = strings("RegistryPrefixes")?;
        let message_ids = strings("MessageIds")?;
        let mut http_headers = Vec::new();
        match request.get("HttpHeaders") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) if map.len() <= MAX_HTTP_HEADERS => {
                for (name, value) in map {
                    let name = HeaderName::try_from(name.as_str())
                        .map_err(|_| invalid("HttpHeaders", "invalid header name"))?;
                    let value = value
                        .as_str()
                        .and_then(|v| HeaderValue::from_str(v).ok())
                        .ok_or_else(|| invalid("HttpHeaders", "invalid header value"))?;
                    http_headers.push((name, value));
                }
            }
            Some(_) => {
                return Err(invalid(
                    "HttpHeaders",
                    "expected an object of at most 16 headers",
                ))
            }
        }
        let retry_policy = match request.get("DeliveryRetryPolicy").and_then(Value::as_str) {
            None => RetryPolicy::TerminateAfterRetries,
            Some(text) => RetryPolicy::parse(text).ok_or_else(|| {
                invalid(
                    "DeliveryRetryPolicy",
                    "use TerminateAfterRetries, SuspendRetries or RetryForever",
                )
            })?,
        };
        let context = request
            .get("Context")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .chars()
            .take(256)
            .collect();

        let mut subscriptions = self
            .subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if subscriptions.len() >= MAX_SUBSCRIPTIONS {
            return Err(EventRequestError::TooMany);
        }
        let id = self.next_subscription.fetch_add(1, Ordering::Relaxed);
        let subscription = Subscription {
            destination,
            context,
            registry_prefixes,
            message_ids,
            http_headers,
            retry_policy,
            suspended: false,
        };
        let body = subscription_json(id, &subscription);
        subscriptions.insert(id, subscription);
        tracing::debug!(subscription = id, "event subscription created");
        Ok((id, body))
    }

    /// Returns a subscription's `EventDestination`; `HttpHeaders` reads back as null, as
    /// the Redfish schema requires for this write-only property.
    pub fn subscription(&self, id: u32) -> Option<Value> {
        let subscriptions = self
            .subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        subscriptions.get(&id).map(|s| subscription_json(id, s))
    }

    /// Returns the ids of all subscriptions.
    pub fn subscription_ids(&self) -> Vec<u32> {
        let subscriptions = self
            .subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        subscriptions.keys().copied().collect()
    }

    /// Deletes a subscription; returns whether it existed.
    pub fn unsubscribe(&self, id: u32) -> bool {
        let mut subscriptions = self
            .subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        subscriptions.remove(&id).is_some()
    }

    /// Raises an event: keeps it for SSE replay, sends it to SSE clients and delivers it to
    /// every subscription whose filters match. Outside a Tokio runtime nothing is delivered.
    pub fn raise(self: &Arc<Self>, event: NewEvent) -> Arc<EventRecord> {
        let record = Arc::new(EventRecord {
            id: self.next_event.fetch_add(1, Ordering::Relaxed),
            message_id: event.message_id,
            severity: event.severity,
            message: event.message,
            message_args: event.message_args,
            origin: event.origin,
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        {
            let mut history = self
                .history
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            history.push_back(record.clone());
            while history.len() > self.config.history {
                history.pop_front();
            }
        }
        let _ = self.stream.send(record.clone());

        let targets: Vec<(u32, Subscription)> = {
            let subscriptions = self
                .subscriptions
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            subscriptions
                .iter()
                .filter(|(_, s)| !s.suspended && s.wants(&record))
                .map(|(id, s)| (*id, s.clone()))
                .collect()
        };
        if targets.is_empty() {
            return record;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(event = record.id, "no Tokio runtime; event not delivered");
            return record;
        };
        for (id, subscription) in targets {
            let service = self.clone();
            let record = record.clone();
            runtime.spawn(async move { service.deliver(id, subscription, record).await });
        }
        record
    }

    /// Handles `SubmitTestEvent`: raises the event the body describes.
    ///
    /// # Errors
    /// [`EventRequestError`] for a body that is not an object or lacks `MessageId`.
    pub fn submit_test_event(
        self: &Arc<Self>,
        body: &[u8],
    ) -> Result<Arc<EventRecord>, EventRequestError> {
        let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(body) else {
            return Err(EventRequestError::MalformedJson);
        };
        let text = |name: &str| request.get(name).and_then(Value::as_str).map(str::to_owned);
        let message_id = text("MessageId").ok_or(EventRequestError::Missing("MessageId"))?;
        let severity = text("Severity")
            .or_else(|| text("MessageSeverity"))
            .unwrap_or_else(|| "OK".to_owned());
        if !matches!(severity.as_str(), "OK" | "Warning" | "Critical") {
            return Err(EventRequestError::Invalid {
                property: "Severity",
                reason: "use OK, Warning or Critical".to_owned(),
            });
        }
        let message_args = request
            .get("MessageArgs")
            .and_then(Value::as_array)
            .map(|args| {
                args.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Ok(self.raise(NewEvent {
            message: text("Message").unwrap_or_else(|| "Test event".to_owned()),
            message_id,
            severity,
            message_args,
            origin: request
                .get("OriginOfCondition")
                .and_then(|o| {
                    o.as_str()
                        .or_else(|| o.get("@odata.id").and_then(Value::as_str))
                })
                .map(str::to_owned),
        }))
    }

    /// Returns the SSE stream: events after `last_event_id` from the history, then new
    /// events as they are raised, each as `id: N` and `data: <Event payload>`.
    ///
    /// # Errors
    /// [`EventRequestError::Invalid`] for a `$filter` outside the supported subset:
    /// `MessageId eq '...'`, `RegistryPrefix eq '...'` and `OriginResource eq '...'`
    /// joined by `or`.
    pub fn sse_stream(
        self: &Arc<Self>,
        filter: Option<&str>,
        last_event_id: Option<u64>,
    ) -> Result<impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static, EventRequestError>
    {
        let filter = match filter {
            Some(text) => Some(SseFilter::parse(text)?),
            None => None,
        };
        let receiver = self.stream.subscribe();
        let backlog: VecDeque<Arc<EventRecord>> = {
            let history = self
                .history
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            history
                .iter()
                .filter(|r| last_event_id.is_some_and(|last| r.id > last))
                .cloned()
                .collect()
        };
        let newest_sent = backlog.back().map_or(last_event_id.unwrap_or(0), |r| r.id);
        let state = (backlog, receiver, filter, newest_sent);
        Ok(futures_util::stream::unfold(
            state,
            |(mut backlog, mut receiver, filter, mut newest)| async move {
                loop {
                    let record = match backlog.pop_front() {
                        Some(record) => record,
                        None => match receiver.recv().await {
                            Ok(record) if record.id > newest => record,
                            Ok(_) => continue,
                            Err(broadcast::error::RecvError::Lagged(skipped)) => {
                                tracing::debug!(skipped, "SSE client fell behind; events skipped");
                                continue;
                            }
                            Err(broadcast::error::RecvError::Closed) => return None,
                        },
                    };
                    newest = newest.max(record.id);
                    if filter.as_ref().is_some_and(|f| !f.matches(&record)) {
                        continue;
                    }
                    let frame = format!("id: {}\ndata: {}\n\n", record.id, record.payload(""));
                    return Some((Ok(Bytes::from(frame)), (backlog, receiver, filter, newest)));
                }
            },
        ))
    }

    /// Delivers one event to one subscription with the configured retries, then applies
    /// the subscription's `DeliveryRetryPolicy` if every attempt failed.
    async fn deliver(&self, id: u32, subscription: Subscription, record: Arc<EventRecord>) {
        let body = record.payload(&subscription.context).to_string();
        for attempt in 1..=self.config.retry_attempts.max(1) {
            let mut request = self
                .http
                .post(subscription.destination.clone())
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            for (name, value) in &subscription.http_headers {
                request = request.header(name.clone(), value.clone());
            }
            match request.send().await {
                Ok(response) if response.status().is_success() => {
                    tracing::debug!(
                        subscription = id,
                        event = record.id,
                        attempt,
                        "event delivered"
                    );
                    return;
                }
                Ok(response) => {
                    tracing::debug!(subscription = id, event = record.id, attempt, status = %response.status(), "event delivery rejected");
                }
                Err(error) => {
                    tracing::debug!(subscription = id, event = record.id, attempt, error = %error.without_url(), "event delivery failed");
                }
            }
            if attempt < self.config.retry_attempts {
                tokio::time::sleep(self.config.retry_interval).await;
            }
        }
        let mut subscriptions = self
            .subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match subscription.retry_policy {
            RetryPolicy::TerminateAfterRetries => {
                subscriptions.remove(&id);
                tracing::info!(
                    subscription = id,
                    "event subscription deleted after failed retries"
                );
            }
            RetryPolicy::SuspendRetries => {
                if let Some(s) = subscriptions.get_mut(&id) {
                    s.suspended = true;
                }
                tracing::info!(
                    subscription = id,
                    "event subscription suspended after failed retries"
                );
            }
            RetryPolicy::RetryForever => {}
        }
    }
}

fn subscription_json(id: u32, s: &Subscription) -> Value {
    json!({
        "@odata.id": format!("/redfish/v1/EventService/Subscriptions/{id}"),
        "@odata.type": "#EventDestination.v1_14_0.EventDestination",
        "Id": id.to_string(),
        "Name": "Event Subscription",
        "Destination": s.destination.as_str(),
        "Protocol": "Redfish",
        "Context": s.context,
        "SubscriptionType": "RedfishEvent",
        "EventFormatType": "Event",
        "RegistryPrefixes": s.registry_prefixes,
        "MessageIds": s.message_ids,
        "HttpHeaders": Value::Null,
        "DeliveryRetryPolicy": s.retry_policy.as_str(),
        "Status": { "State": if s.suspended { "Disabled" } else { "Enabled" } },
    })
}

/// The supported `$filter` subset for SSE.
#[derive(Debug, Clone)]
struct SseFilter {
    terms: Vec<(FilterField, String)>,
}

#[derive(Debug, Clone, Copy)]
enum FilterField {
    MessageId,
    RegistryPrefix,
    OriginResource,
}

impl SseFilter {
    fn parse(text: &str) -> Result<Self, EventRequestError> {
        let invalid = |reason: String| EventRequestError::Invalid {
            property: "$filter",
            reason,
        };
        let mut terms = Vec::new();
        for clause in text.split(" or ") {
            let mut parts = clause.trim().splitn(3, ' ');
            let (Some(field), Some("eq"), Some(value)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(invalid(format!(
                    "expected 'Field eq 'value'', got {clause:?}"
                )));
            };
            let field = match field {
                "MessageId" => FilterField::MessageId,
                "RegistryPrefix" => FilterField::RegistryPrefix,
                "OriginResource" => FilterField::OriginResource,
                other => return Err(invalid(format!("unsupported field {other:?}"))),
            };
            let value = value
                .trim()
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .ok_or_else(|| invalid(format!("value must be quoted in {clause:?}")))?;
            terms.push((field, value.to_owned()));
        }
        Ok(Self { terms })
    }

    fn matches(&self, record: &EventRecord) -> bool {
        self.terms.iter().any(|(field, value)| match field {
            FilterField::MessageId => &record.message_id == value,
            FilterField::RegistryPrefix => {
                record.message_id.split('.').next() == Some(value.as_str())
            }
            FilterField::OriginResource => record.origin.as_deref() == Some(value.as_str()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt as _;

    fn service(attempts: u32) -> Arc<EventService> {
        EventService::new(EventConfig {
            retry_attempts: attempts,
            retry_interval: Duration::from_millis(10),
            ..EventConfig::default()
        })
        .unwrap()
    }

    fn fan_event() -> NewEvent {
        NewEvent {
            message_id: "Fan.1.0.FanFailed".into(),
            severity: "Critical".into(),
            message: "Fan 2 failed".into(),
            message_args: vec!["2".into()],
            origin: Some("/redfish/v1/Chassis/1/Thermal".into()),
        }
    }

    #[test]
    fn subscription_rejects_plain_http_and_bad_policy() {
        let events = service(3);
        let http = br#"{"Destination": "http://x.test/e"}"#;
        assert!(matches!(
            events.subscribe(http),
            Err(EventRequestError::Invalid {
                property: "Destination",
                ..
            })
        ));
        let policy = br#"{"Destination": "https://x.test/e", "DeliveryRetryPolicy": "Sometimes"}"#;
        assert!(matches!(
            events.subscribe(policy),
            Err(EventRequestError::Invalid { .. })
        ));
        assert_eq!(
            events.subscribe(b"{}"),
            Err(EventRequestError::Missing("Destination"))
        );
        assert_eq!(
            events.subscribe(b"[1]"),
            Err(EventRequestError::MalformedJson)
        );
    }

    #[test]
    fn http_headers_are_write_only() {
        let events = service(3);
        let body = br#"{"Destination": "https://x.test/e", "HttpHeaders": {"X-Secret": "s3"}, "Context": "c"}"#;
        let (id, created) = events.subscribe(body).unwrap();
        assert_eq!(created["HttpHeaders"], Value::Null);
        assert_eq!(events.subscription(id).unwrap()["Context"], "c");
        assert!(!events.subscription(id).unwrap().to_string().contains("s3"));
    }

    #[test]
    fn filters_select_events() {
        let by_prefix = Subscription {
            destination: url::Url::parse("https://x.test/").unwrap(),
            context: String::new(),
            registry_prefixes: vec!["Fan".into()],
            message_ids: vec![],
            http_headers: vec![],
            retry_policy: RetryPolicy::RetryForever,
            suspended: false,
        };
        let record = |id: &str| EventRecord {
            id: 1,
            message_id: id.into(),
            severity: "OK".into(),
            message: String::new(),
            message_args: vec![],
            origin: None,
            timestamp: String::new(),
        };
        assert!(by_prefix.wants(&record("Fan.1.0.FanFailed")));
        assert!(!by_prefix.wants(&record("Power.1.0.On")));
        let filter =
            SseFilter::parse("MessageId eq 'Power.1.0.On' or RegistryPrefix eq 'Fan'").unwrap();
        assert!(filter.matches(&record("Power.1.0.On")));
        assert!(filter.matches(&record("Fan.1.0.X")));
        assert!(!filter.matches(&record("Thermal.1.0.X")));
        assert!(SseFilter::parse("Severity gt 'x'").is_err());
        assert!(SseFilter::parse("MessageId eq unquoted").is_err());
    }

    #[tokio::test]
    async fn sse_replays_after_last_event_id_then_streams() {
        let events = service(3);
        for _ in 0..3 {
            events.raise(fan_event());
        }
        let stream = events.sse_stream(None, Some(1)).unwrap();
        tokio::pin!(stream);
        let second = stream.next().await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&second).starts_with("id: 2\n"));
        let third = stream.next().await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&third).starts_with("id: 3\n"));
        events.raise(fan_event());
        let fourth = stream.next().await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&fourth).starts_with("id: 4\n"));
        assert!(String::from_utf8_lossy(&fourth).contains("Fan.1.0.FanFailed"));
    }

    #[tokio::test]
    async fn sse_filter_skips_other_events() {
        let events = service(3);
        let stream = events
            .sse_stream(Some("MessageId eq 'Power.1.0.On'"), None)
            .unwrap();
        tokio::pin!(stream);
        events.raise(fan_event());
        events.raise(NewEvent {
            message_id: "Power.1.0.On".into(),
            ..fan_event()
        });
        let frame = stream.next().await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&frame).contains("Power.1.0.On"));
    }

    #[tokio::test]
    async fn unreachable_destination_ends_subscription_after_retries() {
        let events = service(3);
        // Port 9 on loopback: nothing listens in the test environment, so every attempt fails.
        let (terminate, _) = events
            .subscribe(br#"{"Destination": "https://127.0.0.1:9/e"}"#)
            .unwrap();
        let (suspend, _) = events
            .subscribe(br#"{"Destination": "https://127.0.0.1:9/e", "DeliveryRetryPolicy": "SuspendRetries"}"#)
            .unwrap();
        events.raise(fan_event());
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(events.subscription(terminate).is_none());
        assert_eq!(
            events.subscription(suspend).unwrap()["Status"]["State"],
            "Disabled"
        );
    }

    /// Starts an HTTPS receiver on loopback that records each delivery's headers and body.
    async fn receiver() -> (
        u16,
        CertificateDer<'static>,
        Arc<Mutex<Vec<(http::HeaderMap, Value)>>>,
    ) {
        use hyper_util::rt::TokioIo;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().clone();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![der.clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (acceptor, sink) = (acceptor.clone(), sink.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| {
                            let sink = sink.clone();
                            async move {
                                use http_body_util::BodyExt as _;
                                let headers = request.headers().clone();
                                let body = request.into_body().collect().await.unwrap().to_bytes();
                                sink.lock()
                                    .unwrap()
                                    .push((headers, serde_json::from_slice(&body).unwrap()));
                                Ok::<_, Infallible>(hyper::Response::new(http_body_util::Empty::<
                                    Bytes,
                                >::new(
                                )))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        (port, der, seen)
    }

    #[tokio::test]
    async fn delivery_echoes_headers_and_context() {
        let (port, cert, seen) = receiver().await;
        let events = EventService::new(EventConfig {
            extra_roots: vec![cert],
            ..EventConfig::default()
        })
        .unwrap();
        let body = format!(
            r#"{{"Destination": "https://localhost:{port}/events", "Context": "ome-1", "HttpHeaders": {{"X-Rackside-Event-Secret": "s3"}}, "RegistryPrefixes": ["Fan"]}}"#
        );
        events.subscribe(body.as_bytes()).unwrap();
        events.raise(NewEvent {
            message_id: "Power.1.0.On".into(),
            ..fan_event()
        });
        events.raise(fan_event());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while seen.lock().unwrap().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.len(),
            1,
            "the registry prefix filter passes only the fan event"
        );
        let (headers, payload) = &seen[0];
        assert_eq!(headers["x-rackside-event-secret"], "s3");
        assert_eq!(payload["Context"], "ome-1");
        assert_eq!(payload["Events"][0]["MessageId"], "Fan.1.0.FanFailed");
    }

    #[tokio::test]
    async fn test_event_requires_message_id() {
        let events = service(3);
        assert_eq!(
            events.submit_test_event(b"{}").unwrap_err(),
            EventRequestError::Missing("MessageId")
        );
        let record = events
            .submit_test_event(br#"{"MessageId": "Test.1.0.Hello", "Severity": "Warning"}"#)
            .unwrap();
        assert_eq!(record.severity, "Warning");
    }
}
