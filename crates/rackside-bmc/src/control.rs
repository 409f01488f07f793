//! Creating resources: event subscriptions and the fault control endpoint.

use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::fault::Fault;
use crate::read::json_get;
use crate::reply::{self, msg, ErrorReply};
use crate::service::Req;
use crate::state::{BmcState, Inner};
use crate::tree::{self, Resource};

pub(crate) fn is_subscription_collection(inner: &Inner, path: &str) -> bool {
    inner
        .tree
        .json(path)
        .and_then(|b| b.get("@odata.type"))
        .and_then(Value::as_str)
        == Some("#EventDestinationCollection.EventDestinationCollection")
}

/// Creates an event subscription.
// NOTE: subscriptions are stored and listed, but the simulator sends no events.
pub(crate) fn create_subscription(
    inner: &mut Inner,
    collection: &str,
    body: &[u8],
) -> Result<Response, ErrorReply> {
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(body) else {
        return Err(ErrorReply::new(
            StatusCode::BAD_REQUEST,
            msg::malformed_json(),
        ));
    };
    let destination = match request.get("Destination") {
        Some(Value::String(d)) if d.starts_with("https://") || d.starts_with("http://") => {
            d.clone()
        }
        Some(other) => {
            return Err(ErrorReply::new(
                StatusCode::BAD_REQUEST,
                msg::property_value_format_error(&other.to_string(), "Destination"),
            ));
        }
        None => {
            return Err(ErrorReply::new(
                StatusCode::BAD_REQUEST,
                msg::property_missing("Destination"),
            ))
        }
    };
    let protocol = request
        .get("Protocol")
        .and_then(Value::as_str)
        .unwrap_or("Redfish");
    if protocol != "Redfish" {
        return Err(ErrorReply::new(
            StatusCode::BAD_REQUEST,
            msg::property_value_not_in_list(protocol, "Protocol"),
        ));
    }
    let mut number = inner.tree.member_paths(collection).len() + 1;
    while inner.tree.contains(&format!("{collection}/{number}")) {
        number += 1;
    }
    let path = format!("{collection}/{number}");
    let subscription = json!({
        "@odata.id": path,
        "@odata.type": "#EventDestination.v1_14_0.EventDestination",
        "Id": number.to_string(),
        "Name": "Event Subscription",
        "Destination": destination,
        "Protocol": "Redfish",
        "Context": request.get("Context").and_then(Value::as_str).unwrap_or_default(),
        "SubscriptionType": "RedfishEvent",
        "EventFormatType": "Event",
    });
    inner
        .tree
        .insert(path.clone(), Resource::from_value(subscription.clone()));
    inner.tree.update(collection, |body| {
        if let Some(map) = body.as_object_mut() {
            let members = map.entry("Members").or_insert_with(|| json!([]));
            if let Some(list) = members.as_array_mut() {
                list.push(json!({ "@odata.id": path }));
                let count = list.len();
                map.insert("Members@odata.count".into(), json!(count));
            }
        }
    });
    let response = reply::json_response(StatusCode::CREATED, tree::serialize(&subscription));
    Ok(reply::with_location(response, &path))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultRequest {
    #[serde(default)]
    enable: Vec<String>,
    #[serde(default)]
    disable: Vec<String>,
}

pub(crate) fn control_faults(state: &BmcState, req: &Req) -> Result<Response, ErrorReply> {
    let Ok(request) = serde_json::from_slice::<FaultRequest>(&req.body) else {
        return Err(ErrorReply::new(
            StatusCode::BAD_REQUEST,
            msg::malformed_json(),
        ));
    };
    let parse = |names: &[String]| -> Result<Vec<Fault>, ErrorReply> {
        names
            .iter()
            .map(|name| {
                name.parse::<Fault>().map_err(|_| {
                    ErrorReply::new(
                        StatusCode::BAD_REQUEST,
                        msg::property_value_not_in_list(name, "enable"),
                    )
                })
            })
            .collect()
    };
    let enable = parse(&request.enable)?;
    let disable = parse(&request.disable)?;
    for fault in disable {
        state.faults.disable(fault);
    }
    for fault in enable {
        state.faults.enable(fault);
    }
    let enabled: Vec<String> = state
        .faults
        .enabled()
        .iter()
        .map(|f| f.to_string())
        .collect();
    Ok(json_get(&json!({ "enabled": enabled }), "GET, HEAD, POST"))
}
