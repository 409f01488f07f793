//! Health: the rolled-up status of each system and every failing component with a reason.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::crawl::{self, SystemTree, Unreadable};
use crate::decode;
use crate::transport::Transport;
use crate::{Client, Error, Resource};

/// Health of every system of a service.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HealthReport {
    /// One entry per computer system.
    pub systems: Vec<SystemHealth>,
}

/// Health of one computer system.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SystemHealth {
    /// The system's `Id`.
    pub id: String,
    /// The system's resource path.
    pub path: String,
    /// The system's `Name`.
    pub name: String,
    /// The system's `Model`.
    pub model: Option<String>,
    /// The vendor's service tag (Dell `SKU`), when the service has one.
    pub service_tag: Option<String>,
    /// The system's `SerialNumber`.
    pub serial_number: Option<String>,
    /// `PowerState`, such as "On".
    pub power_state: Option<String>,
    /// `Status.Health` of the system itself.
    pub health: Option<String>,
    /// `Status.HealthRollup` of the system and its components.
    pub health_rollup: Option<String>,
    /// Components whose health is Warning or Critical.
    pub problems: Vec<ComponentProblem>,
    /// Resources that could not be read, so the report may be incomplete.
    pub unreadable: Vec<Unreadable>,
}

/// One failing component.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ComponentProblem {
    /// The component's kind.
    pub kind: ComponentKind,
    /// The component's name.
    pub name: String,
    /// The component's resource path.
    pub path: String,
    /// `Status.Health` ("Warning" or "Critical").
    pub health: String,
    /// `Status.State`, such as "Enabled".
    pub state: Option<String>,
    /// Why it fails: its conditions, a crossed threshold, or its status.
    pub reason: String,
}

/// Kinds of components that health and inventory report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentKind {
    /// A chassis.
    Chassis,
    /// A processor.
    Processor,
    /// A memory module.
    Memory,
    /// A storage subsystem.
    Storage,
    /// A storage controller.
    StorageController,
    /// A drive.
    Drive,
    /// A power supply.
    PowerSupply,
    /// A fan.
    Fan,
    /// A temperature sensor.
    Temperature,
    /// A network adapter.
    NetworkAdapter,
    /// A network port.
    NetworkPort,
}

impl fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ComponentKind::Chassis => "chassis",
            ComponentKind::Processor => "processor",
            ComponentKind::Memory => "memory",
            ComponentKind::Storage => "storage",
            ComponentKind::StorageController => "storage controller",
            ComponentKind::Drive => "drive",
            ComponentKind::PowerSupply => "power supply",
            ComponentKind::Fan => "fan",
            ComponentKind::Temperature => "temperature",
            ComponentKind::NetworkAdapter => "network adapter",
            ComponentKind::NetworkPort => "network port",
        })
    }
}

/// Reads the health of every system: power state, health, rollup and each component whose
/// health is Warning or Critical, walking processors, memory, storage, power supplies,
/// fans, temperature sensors and network adapters.
///
/// # Errors
///
/// Only errors that end the walk: connect, TLS, 401 and session limit, or a failure to
/// read the systems collection. Other unreadable resources are listed in
/// [`SystemHealth::unreadable`].
pub async fn health<T: Transport>(client: &Client<T>) -> Result<HealthReport, Error> {
    let root = crawl::service_root(client).await?;
    let trees = crawl::crawl_systems(client).await?;
    let systems = trees
        .iter()
        .map(|tree| system_health(tree, &root))
        .collect();
    Ok(HealthReport { systems })
}

fn system_health(tree: &SystemTree, root: &Value) -> SystemHealth {
    let body = &tree.system.body;
    let (health, health_rollup, _) = decode::status(body);

    let mut problems = Vec::new();
    let mut check_all = |kind: ComponentKind, resources: &[Resource]| {
        problems.extend(
            resources
                .iter()
                .filter_map(|resource| component_problem(kind, resource)),
        );
    };
    check_all(ComponentKind::Processor, &tree.processors);
    check_all(ComponentKind::Memory, &tree.memory);
    for storage in &tree.storage {
        check_all(
            ComponentKind::Storage,
            std::slice::from_ref(&storage.storage),
        );
        check_all(ComponentKind::StorageController, &storage.controllers);
        check_all(ComponentKind::Drive, &storage.drives);
    }
    let mut unreadable = tree.unreadable.clone();
    for chassis in &tree.chassis {
        check_all(
            ComponentKind::Chassis,
            std::slice::from_ref(&chassis.chassis),
        );
        check_all(ComponentKind::PowerSupply, &chassis.power_supplies);
        check_all(ComponentKind::Fan, &chassis.fans);
        check_all(ComponentKind::Temperature, &chassis.temperatures);
        for adapter in &chassis.network_adapters {
            check_all(
                ComponentKind::NetworkAdapter,
                std::slice::from_ref(&adapter.adapter),
            );
            check_all(ComponentKind::NetworkPort, &adapter.ports);
        }
        unreadable.extend(chassis.unreadable.iter().cloned());
    }

    SystemHealth {
        id: decode::identifier(body),
        path: tree.system.path.clone(),
        name: decode::display_name(body),
        model: decode::text(body, "Model"),
        service_tag: service_tag(body, root),
        serial_number: decode::text(body, "SerialNumber"),
        power_state: decode::text(body, "PowerState"),
        health,
        health_rollup,
        problems,
        unreadable: crawl::dedup_unreadable(unreadable),
    }
}

/// Returns the vendor's service tag: Dell puts it in the system's `SKU` and in the service
/// root's `Oem.Dell.ServiceTag`.
pub(crate) fn service_tag(system: &Value, root: &Value) -> Option<String> {
    let manufacturer = decode::text(system, "Manufacturer").unwrap_or_default();
    if manufacturer.to_ascii_lowercase().contains("dell") {
        if let Some(sku) = decode::text(system, "SKU") {
            return Some(sku);
        }
    }
    decode::text_at(root, &["Oem", "Dell", "ServiceTag"])
}

/// Returns the problem of a component whose health is Warning or Critical, unless the
/// component is absent.
pub(crate) fn component_problem(
    kind: ComponentKind,
    resource: &Resource,
) -> Option<ComponentProblem> {
    let body = &resource.body;
    let (health, rollup, state) = decode::status(body);
    if state.as_deref() == Some("Absent") {
        return None;
    }
    let health = health.or(rollup)?;
    if !matches!(health.as_str(), "Warning" | "Critical") {
        return None;
    }
    Some(ComponentProblem {
        kind,
        name: decode::display_name(body),
        path: resource.path.clone(),
        reason: failure_reason(body, &health, state.as_deref()),
        health,
        state,
    })
}

/// Explains a failure from the component's conditions, a crossed threshold, a predicted
/// failure, or else its status.
fn failure_reason(body: &Value, health: &str, state: Option<&str>) -> String {
    let mut reasons: Vec<String> = body
        .get("Status")
        .map(|status| decode::array(status, "Conditions"))
        .unwrap_or_default()
        .iter()
        .filter_map(|condition| {
            let message = decode::text(condition, "Message")?;
            Some(match decode::text(condition, "MessageId") {
                Some(id) => format!("{message} ({id})"),
                None => message,
            })
        })
        .collect();
    if let Some(threshold) = threshold_reason(body) {
        reasons.push(threshold);
    }
    if decode::boolean(body, "FailurePredicted") == Some(true) {
        reasons.push("failure predicted".to_owned());
    }
    if reasons.is_empty() {
        let state = state
            .map(|state| format!(", state {state}"))
            .unwrap_or_default();
        reasons.push(format!(
            "health {health}{state}, no reason given by the BMC"
        ));
    }
    reasons.join("; ")
}

/// Describes the most severe threshold the reading has crossed, as in "reading 112 °C
/// above upper critical 95 °C". Reads the `Sensor` schema (`Reading`, `Thresholds`) and
/// the legacy `Thermal` and `Power` arrays (`ReadingCelsius`, `UpperThresholdCritical`).
pub(crate) fn threshold_reason(body: &Value) -> Option<String> {
    let (reading, units) = match decode::number(body, "ReadingCelsius") {
        Some(celsius) => (celsius, "°C".to_owned()),
        None => {
            let reading =
                decode::number(body, "Reading").or_else(|| decode::number(body, "ReadingVolts"))?;
            let units = decode::text(body, "ReadingUnits").unwrap_or_default();
            (reading, display_units(&units))
        }
    };

    const UPPER: [(&str, &str, &str); 3] = [
        ("UpperFatal", "UpperThresholdFatal", "upper fatal"),
        ("UpperCritical", "UpperThresholdCritical", "upper critical"),
        ("UpperCaution", "UpperThresholdNonCritical", "upper caution"),
    ];
    const LOWER: [(&str, &str, &str); 3] = [
        ("LowerFatal", "LowerThresholdFatal", "lower fatal"),
        ("LowerCritical", "LowerThresholdCritical", "lower critical"),
        ("LowerCaution", "LowerThresholdNonCritical", "lower caution"),
    ];
    let threshold = |new_key: &str, legacy_key: &str| {
        body.get("Thresholds")
            .and_then(|thresholds| thresholds.get(new_key))
            .and_then(|threshold| decode::number(threshold, "Reading"))
            .or_else(|| decode::number(body, legacy_key))
    };

    for (new_key, legacy_key, label) in UPPER {
        if let Some(limit) = threshold(new_key, legacy_key) {
            if reading >= limit {
                return Some(format!(
                    "reading {} above {label} {}",
                    with_units(reading, &units),
                    with_units(limit, &units)
                ));
            }
        }
    }
    for (new_key, legacy_key, label) in LOWER {
        if let Some(limit) = threshold(new_key, legacy_key) {
            if reading <= limit {
                return Some(format!(
                    "reading {} below {label} {}",
                    with_units(reading, &units),
                    with_units(limit, &units)
                ));
            }
        }
    }
    None
}

fn display_units(units: &str) -> String {
    match units {
        "Cel" => "°C".to_owned(),
        "{rev}/min" => "RPM".to_owned(),
        other => other.to_owned(),
    }
}

fn with_units(value: f64, units: &str) -> String {
    let number = if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    };
    match units {
        "" => number,
        "%" => format!("{number}%"),
        units => format!("{number} {units}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resource(body: Value) -> Resource {
        Resource {
            path: "/redfish/v1/Chassis/1/Sensors/CPU1Temp".into(),
            etag: None,
            body,
        }
    }

    #[test]
    fn sensor_above_upper_critical_gives_reading_reason() {
        let sensor = resource(json!({
            "Name": "CPU1 Temp", "Reading": 112, "ReadingUnits": "Cel",
            "Thresholds": {"UpperCritical": {"Reading": 95}, "UpperCaution": {"Reading": 85}},
            "Status": {"State": "Enabled", "Health": "Critical"}
        }));
        let problem = component_problem(ComponentKind::Temperature, &sensor).expect("problem");
        assert_eq!(problem.reason, "reading 112 °C above upper critical 95 °C");
        assert_eq!(problem.health, "Critical");
    }

    #[test]
    fn legacy_fan_below_lower_critical_gives_reading_reason() {
        let fan = resource(json!({
            "MemberId": 0, "Name": "Fan 1", "Reading": 900, "ReadingUnits": "RPM",
            "LowerThresholdCritical": 1000, "LowerThresholdNonCritical": "",
            "Status": {"State": "Enabled", "Health": "Warning"}
        }));
        let problem = component_problem(ComponentKind::Fan, &fan).expect("problem");
        assert_eq!(
            problem.reason,
            "reading 900 RPM below lower critical 1000 RPM"
        );
    }

    #[test]
    fn conditions_give_reason() {
        let psu = resource(json!({
            "Name": "PSU 2",
            "Status": {"State": "Enabled", "Health": "Critical", "Conditions": [
                {"Message": "Power supply input lost", "MessageId": "PSU0002"}
            ]}
        }));
        let problem = component_problem(ComponentKind::PowerSupply, &psu).expect("problem");
        assert_eq!(problem.reason, "Power supply input lost (PSU0002)");
    }

    #[test]
    fn absent_component_is_not_a_problem() {
        let dimm = resource(
            json!({"Name": "DIMM B2", "Status": {"State": "Absent", "Health": "Critical"}}),
        );
        assert!(component_problem(ComponentKind::Memory, &dimm).is_none());
    }

    #[test]
    fn healthy_component_is_not_a_problem() {
        let dimm =
            resource(json!({"Name": "DIMM A1", "Status": {"State": "Enabled", "Health": "OK"}}));
        assert!(component_problem(ComponentKind::Memory, &dimm).is_none());
    }

    #[test]
    fn failing_component_without_detail_names_its_status() {
        let cpu =
            resource(json!({"Name": "CPU 1", "Status": {"State": "Enabled", "Health": "Warning"}}));
        let problem = component_problem(ComponentKind::Processor, &cpu).expect("problem");
        assert_eq!(
            problem.reason,
            "health Warning, state Enabled, no reason given by the BMC"
        );
    }

    #[test]
    fn dell_service_tag_comes_from_sku() {
        let system =
            json!({"Manufacturer": "Dell Inc.", "SKU": "TSTAG01", "SerialNumber": "CN123"});
        assert_eq!(
            service_tag(&system, &Value::Null).as_deref(),
            Some("TSTAG01")
        );
        let other = json!({"Manufacturer": "Contoso", "SKU": "8675309"});
        assert_eq!(service_tag(&other, &Value::Null), None);
    }
}
