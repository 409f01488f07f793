//! Structural checks of the sample tree: links, collections, logs, faults and schema versions.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use chrono::{DateTime, FixedOffset};
use serde_json::Value;

use super::*;

/// Paths of the static resources, mapped to their bodies.
fn resource_map(server: &SampleServer) -> BTreeMap<&str, &Value> {
    server
        .resources
        .iter()
        .map(|(path, body)| (path.as_str(), body))
        .collect()
}

/// Lists every URI a client can GET from the core serving this sample: the static resources
/// plus the collections and entries the core serves itself.
fn servable_paths(server: &SampleServer) -> BTreeSet<String> {
    let mut paths: BTreeSet<String> = server.resources.iter().map(|(p, _)| p.clone()).collect();
    paths.insert(SESSIONS_PATH.to_owned());
    paths.insert(ACCOUNTS_PATH.to_owned());
    paths.insert(server.lifecycle_log_path.clone());
    paths.insert(server.sel_path.clone());
    for entry in server.lifecycle_log.iter().chain(&server.sel) {
        paths.insert(entry["@odata.id"].as_str().unwrap().to_owned());
    }
    paths
}

/// Collects `(key, value)` of every string property at any depth.
fn strings<'a>(value: &'a Value, key: &'a str, out: &mut Vec<(&'a str, &'a str)>) {
    match value {
        Value::Object(fields) => {
            for (name, inner) in fields {
                strings(inner, name, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                strings(item, key, out);
            }
        }
        Value::String(text) => out.push((key, text)),
        _ => {}
    }
}

#[test]
fn sample_is_deterministic() {
    assert_eq!(sample_server(), sample_server());
}

#[test]
fn resource_paths_are_unique_and_match_odata_id() {
    let server = sample_server();
    let mut seen = BTreeSet::new();
    for (path, body) in &server.resources {
        assert!(seen.insert(path), "duplicate resource {path}");
        assert_eq!(body["@odata.id"], Value::from(path.as_str()), "at {path}");
        assert!(
            path.starts_with("/redfish/v1"),
            "{path} is outside /redfish/v1"
        );
        assert!(!path.ends_with('/'), "{path} ends with a slash");
        assert!(body["@odata.type"].is_string(), "{path} has no @odata.type");
        assert!(body["Name"].is_string(), "{path} has no Name");
    }
}

#[test]
fn every_link_resolves() {
    let server = sample_server();
    let servable = servable_paths(&server);
    let bodies = server
        .resources
        .iter()
        .map(|(_, body)| body)
        .chain(&server.lifecycle_log)
        .chain(&server.sel);
    for body in bodies {
        let mut found = Vec::new();
        strings(body, "", &mut found);
        for (key, uri) in found {
            if key == "@odata.id" || key == "DataSourceUri" {
                assert!(
                    servable.contains(uri),
                    "{key} {uri} in {} resolves to nothing",
                    body["@odata.id"]
                );
            }
        }
    }
}

#[test]
fn collection_members_match_count_and_exist() {
    let server = sample_server();
    let resources = resource_map(&server);
    let mut collections = 0;
    for (path, body) in &server.resources {
        let Some(members) = body.get("Members") else {
            continue;
        };
        collections += 1;
        let members = members.as_array().unwrap();
        assert_eq!(
            body["Members@odata.count"],
            members.len(),
            "count of {path}"
        );
        for member in members {
            let uri = member["@odata.id"].as_str().unwrap();
            assert!(
                uri.starts_with(&format!("{path}/")),
                "{uri} is not below {path}"
            );
            assert!(
                resources.contains_key(uri),
                "member {uri} of {path} is missing"
            );
        }
    }
    assert!(collections >= 20, "only {collections} collections");
}

#[test]
fn collections_have_parent_resource() {
    let server = sample_server();
    let resources = resource_map(&server);
    for (path, body) in &server.resources {
        let Some(kind) = body["@odata.type"].as_str() else {
            continue;
        };
        if kind.ends_with("Collection") {
            let parent = path.rsplit_once('/').map(|(parent, _)| parent).unwrap();
            assert!(
                resources.contains_key(parent),
                "{path} has no parent resource"
            );
        }
    }
}

#[test]
fn hardware_matches_the_specification() {
    let server = sample_server();
    let resources = resource_map(&server);
    let count = |collection: &str| {
        resources[collection]["Members@odata.count"]
            .as_u64()
            .unwrap()
    };

    assert_eq!(count("/redfish/v1/Systems/1/Processors"), 2);
    assert_eq!(count("/redfish/v1/Systems/1/Memory"), 16);
    assert_eq!(
        count("/redfish/v1/Chassis/1/PowerSubsystem/PowerSupplies"),
        2
    );
    assert_eq!(count("/redfish/v1/Chassis/1/ThermalSubsystem/Fans"), 6);
    assert_eq!(count("/redfish/v1/Chassis/1/NetworkAdapters"), 2);
    assert!(count("/redfish/v1/UpdateService/FirmwareInventory") >= 10);

    let storage = resources["/redfish/v1/Systems/1/Storage/RAID.Integrated.1"];
    assert_eq!(storage["Drives@odata.count"], 8);

    let absent = server
        .resources
        .iter()
        .filter(|(path, body)| {
            path.starts_with("/redfish/v1/Systems/1/Memory/") && body["Status"]["State"] == "Absent"
        })
        .count();
    assert_eq!(absent, 4);

    let system = resources[SYSTEM];
    assert_eq!(system["SKU"], SERVICE_TAG);
    assert_eq!(system["MemorySummary"]["TotalSystemMemoryGiB"], 384);
    assert_eq!(system["ProcessorSummary"]["CoreCount"], 64);
    assert_eq!(
        system["Actions"]["#ComputerSystem.Reset"]["ResetType@Redfish.AllowableValues"],
        serde_json::json!([
            "On",
            "ForceOff",
            "GracefulShutdown",
            "GracefulRestart",
            "ForceRestart",
            "Nmi",
            "PowerCycle"
        ])
    );
    let root = resources[ROOT];
    assert_eq!(root["Links"]["Sessions"]["@odata.id"], SESSIONS_PATH);
}

#[test]
fn faults_appear_in_component_system_and_log() {
    let server = sample_server();
    let resources = resource_map(&server);

    let fan = resources["/redfish/v1/Chassis/1/ThermalSubsystem/Fans/Fan4"];
    assert_eq!(fan["Status"]["Health"], "Critical");
    let fan_reason = fan["Status"]["Conditions"][0]["Message"].as_str().unwrap();
    assert!(fan_reason.contains("below the lower critical threshold"));

    let drive = resources["/redfish/v1/Chassis/1/Drives/Disk.Bay.5"];
    assert_eq!(drive["Status"]["Health"], "Warning");
    assert_eq!(drive["FailurePredicted"], true);
    let drive_reason = drive["Status"]["Conditions"][0]["Message"]
        .as_str()
        .unwrap();
    assert!(drive_reason.contains("Predictive failure"));

    let conditions = resources[SYSTEM]["Status"]["Conditions"]
        .as_array()
        .unwrap();
    assert_eq!(conditions.len(), 2);
    assert_eq!(resources[SYSTEM]["Status"]["HealthRollup"], "Critical");

    let newest: Vec<&Value> = server.lifecycle_log.iter().rev().take(2).collect();
    assert_eq!(newest[0]["Severity"], "Warning");
    assert_eq!(
        newest[0]["Links"]["OriginOfCondition"]["@odata.id"],
        drive["@odata.id"]
    );
    assert_eq!(newest[1]["Severity"], "Critical");
    assert_eq!(
        newest[1]["Links"]["OriginOfCondition"]["@odata.id"],
        fan["@odata.id"]
    );
    assert_eq!(
        conditions[0]["LogEntry"]["@odata.id"],
        newest[1]["@odata.id"]
    );

    let healthy_fans = server
        .resources
        .iter()
        .filter(|(path, body)| path.contains("/Fans/Fan") && body["Status"]["Health"] == "OK")
        .count();
    assert_eq!(healthy_fans, 5);
}

/// Checks one log: size, sequential ids under its path, ordered RFC 3339 times, severities.
fn check_log(entries: &[Value], path: &str, expected: usize) -> BTreeMap<String, usize> {
    assert_eq!(entries.len(), expected, "size of {path}");
    let mut severities = BTreeMap::new();
    let mut previous: Option<DateTime<FixedOffset>> = None;
    for (index, entry) in entries.iter().enumerate() {
        let id = (index + 1).to_string();
        assert_eq!(entry["Id"], Value::from(id.as_str()));
        assert_eq!(entry["@odata.id"], Value::from(format!("{path}/{id}")));
        let created = entry["Created"].as_str().unwrap();
        let created = DateTime::parse_from_rfc3339(created).unwrap();
        if let Some(previous) = previous {
            assert!(
                created >= previous,
                "entry {id} is older than the one before"
            );
        }
        previous = Some(created);
        assert!(!entry["Message"].as_str().unwrap().is_empty());
        *severities
            .entry(entry["Severity"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    severities
}

#[test]
fn lifecycle_log_is_long_and_mixed() {
    let server = sample_server();
    let severities = check_log(&server.lifecycle_log, LIFECYCLE_LOG, 600);
    let share = |severity: &str| severities.get(severity).copied().unwrap_or(0) * 100 / 600;
    assert!(share("OK") >= 50, "{severities:?}");
    assert!(share("Warning") >= 10, "{severities:?}");
    assert!(share("Critical") >= 2, "{severities:?}");
    assert_eq!(severities.len(), 3, "{severities:?}");

    let first = DateTime::parse_from_rfc3339(server.lifecycle_log[0]["Created"].as_str().unwrap());
    let last = DateTime::parse_from_rfc3339(server.lifecycle_log[599]["Created"].as_str().unwrap());
    let span = last.unwrap() - first.unwrap();
    assert!(
        span.num_days() >= 90,
        "the log spans only {} days",
        span.num_days()
    );

    let ids: BTreeSet<&str> = server
        .lifecycle_log
        .iter()
        .map(|entry| entry["MessageId"].as_str().unwrap())
        .collect();
    assert!(ids.len() >= 20, "only {} distinct message ids", ids.len());
    assert!(ids.iter().all(|id| id.split('.').count() == 4), "{ids:?}");
}

#[test]
fn sel_has_ipmi_fields() {
    let server = sample_server();
    let severities = check_log(&server.sel, SEL, 80);
    assert_eq!(severities.len(), 3, "{severities:?}");
    for entry in &server.sel {
        assert_eq!(entry["EntryType"], "SEL");
        assert!(entry["SensorType"].is_string());
        assert!(entry["SensorNumber"].is_u64());
        let event_data = entry["MessageId"].as_str().unwrap();
        assert_eq!(event_data.len(), 10, "{event_data}");
        assert!(
            u32::from_str_radix(&event_data[2..], 16).is_ok(),
            "{event_data}"
        );
    }
}

#[test]
fn addresses_use_documentation_and_local_ranges() {
    let server = sample_server();
    let mut found = Vec::new();
    for (_, body) in &server.resources {
        strings(body, "", &mut found);
    }
    let mut macs = 0;
    for (key, value) in found {
        if key.contains("MACAddress") {
            macs += 1;
            let first = u8::from_str_radix(&value[..2], 16).unwrap();
            assert_eq!(first & 0x02, 0x02, "{value} is not locally administered");
        }
        let is_address = ["Address", "Gateway", "NameServers", "IPv6DefaultGateway"];
        if is_address.contains(&key) && value.contains(':') {
            assert!(
                value.starts_with("fe80:") || value.starts_with("2001:db8:"),
                "{key} {value} is neither link-local nor in 2001:db8::/32"
            );
        } else if is_address.contains(&key) {
            assert!(
                value.starts_with("192.0.2."),
                "{key} {value} is outside 192.0.2.0/24"
            );
        }
    }
    assert!(macs >= 10, "only {macs} MAC addresses");
}

/// Finds the shared test data directory, or returns `None` when it is not available.
fn test_data() -> Option<PathBuf> {
    let dir = match std::env::var_os("RACKSIDE_TEST_DATA") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    };
    dir.is_dir().then_some(dir)
}

#[test]
fn odata_types_exist_in_dmtf_schema() {
    let Some(data) = test_data() else {
        println!("skipped: RACKSIDE_TEST_DATA not set and ../shared not found");
        return;
    };
    let server = sample_server();
    let types: BTreeSet<&str> = server
        .resources
        .iter()
        .map(|(_, body)| body)
        .chain(&server.lifecycle_log)
        .chain(&server.sel)
        .map(|body| body["@odata.type"].as_str().unwrap())
        .collect();
    for odata_type in types {
        let name = odata_type.trim_start_matches('#');
        let (namespace, _) = name.rsplit_once('.').unwrap();
        let schema = namespace.split('.').next().unwrap();
        let file = data.join(format!("redfish/csdl/{schema}_v1.xml"));
        let csdl = std::fs::read_to_string(&file).unwrap();
        assert!(
            csdl.contains(&format!("Namespace=\"{namespace}\"")),
            "{odata_type} is not in {}",
            file.display()
        );
    }
}

#[test]
fn lifecycle_message_formats_arguments() {
    let (id, text, severity) = lifecycle_message("USR0030", &["root", "192.0.2.7", "Redfish"])
        .expect("USR0030 is in the registry");
    assert_eq!(id, format!("{MESSAGE_REGISTRY}.USR0030"));
    assert_eq!(text, "User root logged in from 192.0.2.7 using Redfish.");
    assert_eq!(severity, "OK");
}

#[test]
fn lifecycle_message_rejects_wrong_arity() {
    assert!(lifecycle_message("USR0030", &["root"]).is_none());
    assert!(lifecycle_message("XYZ0000", &[]).is_none());
}

#[test]
fn every_lifecycle_message_id_is_in_registry() {
    let server = sample_server();
    let resources = resource_map(&server);
    let registry = resources["/redfish/v1/Registries/RacksideEvent.1.0.0/Registry"];
    let messages = registry["Messages"].as_object().unwrap();
    for entry in &server.lifecycle_log {
        let id = entry["MessageId"].as_str().unwrap();
        let key = id.strip_prefix(&format!("{MESSAGE_REGISTRY}.")).unwrap();
        let message = &messages[key];
        assert_eq!(message["MessageSeverity"], entry["Severity"], "{id}");
        assert_eq!(
            message["NumberOfArgs"],
            entry["MessageArgs"].as_array().unwrap().len(),
            "{id}"
        );
    }
}
