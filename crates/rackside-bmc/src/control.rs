//! The fault control endpoint, which also fails hardware and sets temperature readings so
//! that the simulator raises events from its own state.

use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::fault::Fault;
use crate::logs::Severity;
use crate::read::json_get;
use crate::reply::{msg, ErrorReply};
use crate::service::Req;
use crate::state::{BmcState, Inner};

pub(crate) fn is_subscription_collection(inner: &Inner, path: &str) -> bool {
    inner
        .tree
        .json(path)
        .and_then(|b| b.get("@odata.type"))
        .and_then(Value::as_str)
        == Some("#EventDestinationCollection.EventDestinationCollection")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultRequest {
    #[serde(default)]
    enable: Vec<String>,
    #[serde(default)]
    disable: Vec<String>,
    /// New reading in degrees Celsius of the first temperature sensor.
    temperature: Option<f64>,
}

/// Applies a fault control request: faults to disable and enable, then an optional
/// temperature reading. Enabling [`Fault::FanFailure`] or [`Fault::PsuFailure`] marks the
/// hardware failed and raises its event once, until the fault is disabled again.
pub(crate) fn control_faults(
    state: &BmcState,
    inner: &mut Inner,
    req: &Req,
) -> Result<Response, ErrorReply> {
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
    let temperature = match request.temperature {
        Some(value) if !(-273.0..=1000.0).contains(&value) => {
            return Err(ErrorReply::new(
                StatusCode::BAD_REQUEST,
                msg::property_value_out_of_range(&value.to_string(), "temperature"),
            ));
        }
        other => other,
    };
    for fault in disable {
        state.faults.disable(fault);
        if fault == Fault::FanFailure || fault == Fault::PsuFailure {
            set_hardware_health(inner, fault, "OK");
        }
    }
    for fault in enable {
        let was_enabled = state.faults.is_enabled(fault);
        state.faults.enable(fault);
        if !was_enabled {
            fail_hardware(inner, fault);
        }
    }
    if let Some(reading) = temperature {
        set_temperature(inner, reading)?;
    }
    let enabled: Vec<String> = state
        .faults
        .enabled()
        .iter()
        .map(|f| f.to_string())
        .collect();
    Ok(json_get(&json!({ "enabled": enabled }), "GET, HEAD, POST"))
}

/// Marks the hardware that `fault` names as failed and raises its event with the sample
/// registry's keys: `FAN0002` for a fan and `PSU0031` for a power supply.
fn fail_hardware(inner: &mut Inner, fault: Fault) {
    let Some(path) = set_hardware_health(inner, fault, "Critical") else {
        return;
    };
    let name = inner
        .tree
        .json(&path)
        .and_then(|body| body.get("Name"))
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_owned();
    let (key, message) = if fault == Fault::FanFailure {
        let text = format!("Fan {name} speed is below the lower critical threshold.");
        ("FAN0002", text)
    } else {
        ("PSU0031", format!("Power supply {name} lost its AC input."))
    };
    inner.log_hardware(key, message, vec![name], Severity::Critical, Some(path));
}

/// Sets `Status.Health` of the first fan or power supply and returns its URI. Returns
/// `None` when the data has none or `fault` is not a hardware fault.
fn set_hardware_health(inner: &mut Inner, fault: Fault, health: &str) -> Option<String> {
    let type_prefix = match fault {
        Fault::FanFailure => "#Fan.",
        Fault::PsuFailure => "#PowerSupply.",
        _ => return None,
    };
    let path = first_of_type(inner, type_prefix, |_| true)?;
    inner.tree.update(&path, |body| {
        if let Some(status) = body.get_mut("Status").and_then(Value::as_object_mut) {
            status.insert("Health".into(), json!(health));
        } else if let Some(map) = body.as_object_mut() {
            map.insert(
                "Status".into(),
                json!({ "State": "Enabled", "Health": health }),
            );
        }
    });
    Some(path)
}

/// Sets the reading of the first temperature sensor and raises an event when the reading
/// crosses one of its upper thresholds upward: `TMP0120` for `UpperCaution` and `TMP0121`
/// for `UpperCritical`, as the sample registry names them.
fn set_temperature(inner: &mut Inner, reading: f64) -> Result<(), ErrorReply> {
    let Some(path) = first_of_type(inner, "#Sensor.", |body| {
        body.get("ReadingType").and_then(Value::as_str) == Some("Temperature")
    }) else {
        return Err(ErrorReply::new(
            StatusCode::BAD_REQUEST,
            msg::action_not_supported("temperature"),
        ));
    };
    let sensor = inner.tree.json(&path).cloned().unwrap_or_default();
    let threshold = |name: &str| {
        sensor
            .pointer(&format!("/Thresholds/{name}/Reading"))
            .and_then(Value::as_f64)
    };
    let previous = sensor.get("Reading").and_then(Value::as_f64).unwrap_or(0.0);
    let crossed = |limit: Option<f64>| limit.is_some_and(|l| previous < l && reading >= l);
    let critical = threshold("UpperCritical");
    let caution = threshold("UpperCaution");
    let (health, event) = if crossed(critical) {
        let event = ("TMP0121", "critical", critical, Severity::Critical);
        ("Critical", Some(event))
    } else if crossed(caution) {
        let event = ("TMP0120", "warning", caution, Severity::Warning);
        ("Warning", Some(event))
    } else if caution.is_some_and(|l| reading < l) {
        ("OK", None)
    } else {
        (
            sensor
                .pointer("/Status/Health")
                .and_then(Value::as_str)
                .unwrap_or("OK"),
            None,
        )
    };
    let health = health.to_owned();
    inner.tree.update(&path, |body| {
        if let Some(map) = body.as_object_mut() {
            map.insert("Reading".into(), json!(reading));
        }
        if let Some(status) = body.get_mut("Status").and_then(Value::as_object_mut) {
            status.insert("Health".into(), json!(health));
        }
    });
    if let Some((key, level, limit, severity)) = event {
        let limit = limit.unwrap_or_default();
        let name = sensor
            .get("Name")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned();
        let message = format!(
            "{name} temperature of {reading} C is above the upper {level} threshold of {limit} C."
        );
        inner.log_hardware(
            key,
            message,
            vec![reading.to_string(), limit.to_string()],
            severity,
            Some(path),
        );
    }
    Ok(())
}

/// Returns the URI of the first resource whose `@odata.type` starts with `prefix` and that
/// `accept` takes, in URI order.
fn first_of_type(inner: &Inner, prefix: &str, accept: impl Fn(&Value) -> bool) -> Option<String> {
    let mut matches: Vec<&String> = inner
        .tree
        .iter()
        .filter(|(_, resource)| {
            resource.json.as_deref().is_some_and(|body| {
                body.get("@odata.type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.starts_with(prefix))
                    && accept(body)
            })
        })
        .map(|(path, _)| path)
        .collect();
    matches.sort();
    matches.first().map(|path| (*path).clone())
}
