//! POST to action targets: `ComputerSystem.Reset`, `Manager.Reset`, `LogService.ClearLog` and
//! `UpdateService.SimpleUpdate`.

use std::collections::HashMap;

use axum::response::Response;
use http::StatusCode;
use serde_json::{Map, Value};

use crate::fault::Fault;
use crate::logs::clip;
use crate::power::ResetEffect;
use crate::reply::{self, msg, ErrorReply};
use crate::service::{Principal, Req};
use crate::state::{BmcState, Inner};
use crate::tasks::Task;
use crate::tree::{normalize_path, Tree};

/// Finds every action target that the resources advertise.
pub(crate) fn index_targets(tree: &Tree) -> HashMap<String, (String, String)> {
    let mut targets = HashMap::new();
    for (path, resource) in tree.iter() {
        let Some(actions) = resource
            .json
            .as_ref()
            .and_then(|b| b.get("Actions"))
            .and_then(Value::as_object)
        else {
            continue;
        };
        for (name, action) in actions {
            if let Some(target) = action.get("target").and_then(Value::as_str) {
                targets.insert(normalize_path(target), (path.clone(), name.clone()));
            }
        }
    }
    targets
}

/// Runs the action `name` of the resource at `resource`.
pub(crate) fn run(
    state: &BmcState,
    inner: &mut Inner,
    req: &Req,
    principal: &Principal,
    resource: &str,
    name: &str,
) -> Result<Response, ErrorReply> {
    let action = name.trim_start_matches('#');
    if state.faults.is_enabled(Fault::IfMatchOnAction412)
        && req.headers.contains_key(http::header::IF_MATCH)
    {
        return Err(ErrorReply::new(
            StatusCode::PRECONDITION_FAILED,
            msg::precondition_failed(),
        ));
    }
    let params = parse_parameters(&req.body)?;

    match action {
        "ComputerSystem.Reset" => reset_system(
            state,
            inner,
            principal,
            &req.client,
            resource,
            action,
            &params,
        ),
        "Manager.Reset" => {
            let reset_type = required_string(&params, action, "ResetType")?;
            reject_extra(&params, action, &["ResetType"])?;
            inner.log_change_from(
                &principal.user,
                &req.client,
                format!(
                    "Manager reset {} requested for {resource}",
                    clip(&reset_type)
                ),
            );
            Ok(reply::no_content())
        }
        "LogService.ClearLog" => {
            reject_extra(&params, action, &[])?;
            let Some(store) = inner
                .logs
                .iter_mut()
                .find(|s| s.service_path.as_deref() == Some(resource))
            else {
                return Err(ErrorReply::new(
                    StatusCode::BAD_REQUEST,
                    msg::action_not_supported(action),
                ));
            };
            store.clear();
            inner.log_change_from(
                &principal.user,
                &req.client,
                format!("Log {resource} cleared"),
            );
            Ok(reply::no_content())
        }
        "UpdateService.SimpleUpdate" => {
            let image = required_string(&params, action, "ImageURI")?;
            let number = inner.tasks.len() + 1;
            let vanishes = state.faults.is_enabled(Fault::VanishingTaskMonitor);
            let task = Task::start(
                number,
                "Firmware Update",
                inner.manager_path.as_deref(),
                state.power_delay,
                vanishes,
            );
            inner.log_change_from(
                &principal.user,
                &req.client,
                format!(
                    "Firmware update job {} created for {}",
                    task.id,
                    clip(&image)
                ),
            );
            let body = task
                .task_body(std::time::Instant::now())
                .unwrap_or_default();
            let location = task.task_path.clone();
            inner.tasks.push(task);
            let mut response =
                reply::json_response(StatusCode::ACCEPTED, crate::tree::serialize(&body));
            response = reply::with_location(response, &location);
            Ok(response)
        }
        _ => Err(ErrorReply::new(
            StatusCode::BAD_REQUEST,
            msg::action_not_supported(action),
        )),
    }
}

fn reset_system(
    state: &BmcState,
    inner: &mut Inner,
    principal: &Principal,
    client: &str,
    resource: &str,
    action: &str,
    params: &Map<String, Value>,
) -> Result<Response, ErrorReply> {
    let reset_type = required_string(params, action, "ResetType")?;
    reject_extra(params, action, &["ResetType"])?;
    let system = inner.tree.json(resource).cloned().unwrap_or_default();
    let strict = state.faults.is_enabled(Fault::StrictResetTypes);
    let allowed = crate::power::allowed_reset_types(&system, &inner.tree, strict);
    if !allowed.iter().any(|t| t == &reset_type) {
        return Err(ErrorReply::new(
            StatusCode::BAD_REQUEST,
            msg::property_value_not_in_list(&reset_type, "ResetType"),
        ));
    }
    let effect = crate::power::reset(
        inner,
        resource,
        &reset_type,
        state.power_delay,
        state.faults.is_enabled(Fault::DelayedPowerState),
    );
    let change = match effect {
        ResetEffect::Transition => format!("Reset {reset_type} started for {resource}"),
        ResetEffect::Interrupt => {
            format!("Diagnostic interrupt (NMI) sent to the host of {resource}")
        }
        ResetEffect::NoChange if reset_type == "Nmi" => {
            format!("Diagnostic interrupt (NMI) requested for {resource}, which is off; none sent")
        }
        ResetEffect::NoChange => {
            format!("Reset {reset_type} requested for {resource}, which is already in that state")
        }
    };
    inner.log_change_from(&principal.user, client, change);
    Ok(reply::no_content())
}

/// Parses an action body: empty or a JSON object.
fn parse_parameters(body: &[u8]) -> Result<Map<String, Value>, ErrorReply> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ErrorReply::new(
            StatusCode::BAD_REQUEST,
            msg::malformed_json(),
        )),
    }
}

fn required_string(
    params: &Map<String, Value>,
    action: &str,
    name: &str,
) -> Result<String, ErrorReply> {
    match params.get(name) {
        None => Err(ErrorReply::new(
            StatusCode::BAD_REQUEST,
            msg::action_parameter_missing(action, name),
        )),
        Some(Value::String(value)) => Ok(value.clone()),
        Some(other) => Err(ErrorReply::new(
            StatusCode::BAD_REQUEST,
            msg::property_value_type_error(&other.to_string(), name),
        )),
    }
}

fn reject_extra(
    params: &Map<String, Value>,
    action: &str,
    known: &[&str],
) -> Result<(), ErrorReply> {
    let unknown: Vec<_> = params
        .keys()
        .filter(|k| !known.contains(&k.as_str()) && !k.starts_with('@'))
        .map(|k| msg::action_parameter_not_supported(k, action))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(ErrorReply::many(StatusCode::BAD_REQUEST, unknown))
    }
}
