//! The EventService routes: the subscriptions collection (GET, POST) and its members (GET,
//! DELETE), the `SubmitTestEvent` action and the Server-Sent Events stream. The
//! [`EventService`] engine behind them contains the subscriptions, so subscriptions that a
//! mockup lists in its own data are not served.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, StatusCode};
use serde_json::{json, Value};

use crate::config::Role;
use crate::events::{EventConfig, EventRequestError, EventService};
use crate::read::json_get;
use crate::reply::{self, msg, ErrorReply};
use crate::service::{require_role, Principal, Req};
use crate::state::{BmcState, Inner};
use crate::tree::Tree;

/// URI of the EventService resource.
pub(crate) const EVENT_SERVICE_PATH: &str = "/redfish/v1/EventService";
/// URI of the subscriptions collection; the engine names its members below it.
pub(crate) const SUBSCRIPTIONS_PATH: &str = "/redfish/v1/EventService/Subscriptions";
/// `ServerSentEventUri` of the EventService.
pub(crate) const SSE_PATH: &str = "/redfish/v1/EventService/SSE";
/// Target of the `SubmitTestEvent` action.
pub(crate) const SUBMIT_TEST_EVENT_PATH: &str =
    "/redfish/v1/EventService/Actions/EventService.SubmitTestEvent";

/// Turns the data's EventService on and names the SSE URI, the test event action and the
/// retry settings of `config`. Data without an EventService is left unchanged.
pub(crate) fn enable_event_service(tree: &mut Tree, config: &EventConfig) {
    tree.update(EVENT_SERVICE_PATH, |service| {
        let Some(map) = service.as_object_mut() else {
            return;
        };
        map.insert("ServiceEnabled".into(), json!(true));
        map.insert(
            "Status".into(),
            json!({ "State": "Enabled", "Health": "OK" }),
        );
        map.insert("DeliveryRetryAttempts".into(), json!(config.retry_attempts));
        map.insert(
            "DeliveryRetryIntervalSeconds".into(),
            json!(config.retry_interval.as_secs()),
        );
        map.insert("ServerSentEventUri".into(), json!(SSE_PATH));
        map.insert(
            "Subscriptions".into(),
            json!({ "@odata.id": SUBSCRIPTIONS_PATH }),
        );
        let actions = map.entry("Actions").or_insert_with(|| json!({}));
        if let Some(actions) = actions.as_object_mut() {
            actions.insert(
                "#EventService.SubmitTestEvent".into(),
                json!({ "target": SUBMIT_TEST_EVENT_PATH }),
            );
        }
    });
}

/// Serves a request for the subscriptions or the test event action, or returns `None` when
/// `req` is for another resource.
pub(crate) fn route(
    state: &BmcState,
    inner: &mut Inner,
    req: &Req,
    principal: &Principal,
) -> Option<Result<Response, ErrorReply>> {
    let path = req.path.as_str();
    let collection = path.strip_suffix("/Members").unwrap_or(path);
    let events = inner.events.clone();

    if path == SUBMIT_TEST_EVENT_PATH {
        if req.method != Method::POST {
            return Some(Err(ErrorReply::method_not_allowed("POST")));
        }
        return Some(
            require_role(state, principal, Role::Operator).and_then(|()| {
                events
                    .submit_test_event(&req.body)
                    .map(|record| {
                        tracing::debug!(event = record.id, "test event raised");
                        reply::no_content()
                    })
                    .map_err(rejected)
            }),
        );
    }

    if collection == SUBSCRIPTIONS_PATH {
        return Some(match req.method {
            Method::GET | Method::HEAD => {
                Ok(json_get(&collection_json(&events), "GET, HEAD, POST"))
            }
            Method::POST => require_role(state, principal, Role::Operator).and_then(|()| {
                let (id, body) = events.subscribe(&req.body).map_err(rejected)?;
                let response = reply::json_response(StatusCode::CREATED, body.to_string().into());
                Ok(reply::with_location(
                    response,
                    &format!("{SUBSCRIPTIONS_PATH}/{id}"),
                ))
            }),
            _ => Err(ErrorReply::method_not_allowed("GET, HEAD, POST")),
        });
    }

    let id = path
        .strip_prefix(SUBSCRIPTIONS_PATH)?
        .strip_prefix('/')?
        .parse::<u32>()
        .ok()?;
    Some(match req.method {
        Method::GET | Method::HEAD => events
            .subscription(id)
            .map(|body| json_get(&body, "GET, HEAD, DELETE"))
            .ok_or_else(|| ErrorReply::not_found(path)),
        Method::DELETE => require_role(state, principal, Role::Operator).and_then(|()| {
            if events.unsubscribe(id) {
                tracing::debug!(subscription = id, "event subscription deleted");
                Ok(reply::no_content())
            } else {
                Err(ErrorReply::not_found(path))
            }
        }),
        _ => Err(ErrorReply::method_not_allowed("GET, HEAD, DELETE")),
    })
}

/// Opens the SSE stream for an authenticated GET on [`SSE_PATH`]: `$filter` selects events
/// and the `Last-Event-ID` header replays the events raised after that id.
pub(crate) fn sse(events: &Arc<EventService>, req: &Req) -> Result<Response, ErrorReply> {
    let filter = req
        .query
        .iter()
        .find(|(name, _)| name == "$filter")
        .map(|(_, value)| value.as_str());
    let last_event_id = match req.headers.get("Last-Event-ID") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ErrorReply::new(
                        StatusCode::BAD_REQUEST,
                        msg::header_invalid("Last-Event-ID"),
                    )
                })?,
        ),
    };
    let stream = events.sse_stream(filter, last_event_id).map_err(|error| {
        tracing::debug!(%error, "SSE request rejected");
        ErrorReply::new(
            StatusCode::BAD_REQUEST,
            msg::query_parameter_value_format_error(filter.unwrap_or_default(), "$filter"),
        )
    })?;
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// Builds the subscriptions collection from the engine's subscriptions.
fn collection_json(events: &EventService) -> Value {
    let members: Vec<Value> = events
        .subscription_ids()
        .into_iter()
        .map(|id| json!({ "@odata.id": format!("{SUBSCRIPTIONS_PATH}/{id}") }))
        .collect();
    json!({
        "@odata.id": SUBSCRIPTIONS_PATH,
        "@odata.type": "#EventDestinationCollection.EventDestinationCollection",
        "Name": "Event Subscription Collection",
        "Members@odata.count": members.len(),
        "Members": members,
    })
}

/// Maps a rejected subscription or test event to a Redfish 400 naming the property.
fn rejected(error: EventRequestError) -> ErrorReply {
    tracing::debug!(%error, "event service request rejected");
    let message = match &error {
        EventRequestError::MalformedJson => msg::malformed_json(),
        EventRequestError::Missing(property) => msg::property_missing(property),
        EventRequestError::Invalid { property, reason } => {
            msg::property_value_format_error(reason, property)
        }
        EventRequestError::TooMany => msg::operation_not_allowed(),
    };
    ErrorReply::new(StatusCode::BAD_REQUEST, message)
}
