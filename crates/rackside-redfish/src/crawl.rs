//! Reads the resource tree that health and inventory are built from.
//!
//! One crawl collects each system with its processors, memory, storage, and the chassis
//! that hold it with their power supplies, fans, temperature sensors and network adapters.
//! A resource that cannot be read is recorded as unreadable and the crawl goes on; only
//! fatal errors (connect, TLS, 401, session limit) end it.

use std::collections::BTreeMap;

use futures_util::future::join_all;
use serde_json::Value;

use crate::client::{request_path, Client, Resource, SERVICE_ROOT};
use crate::decode;
use crate::transport::Transport;
use crate::Error;

/// A resource that could not be read, with the reason.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Unreadable {
    /// The path that failed.
    pub path: String,
    /// The error message.
    pub error: String,
}

/// One system and everything read under it.
pub(crate) struct SystemTree {
    pub system: Resource,
    pub processors: Vec<Resource>,
    pub memory: Vec<Resource>,
    pub storage: Vec<StorageTree>,
    pub ethernet_interfaces: Vec<Resource>,
    pub chassis: Vec<ChassisTree>,
    pub unreadable: Vec<Unreadable>,
}

/// One storage subsystem with its controllers and drives.
pub(crate) struct StorageTree {
    pub storage: Resource,
    pub controllers: Vec<Resource>,
    pub drives: Vec<Resource>,
}

/// One chassis with its power, cooling, sensors and network adapters.
#[derive(Clone)]
pub(crate) struct ChassisTree {
    pub chassis: Resource,
    pub power_supplies: Vec<Resource>,
    pub fans: Vec<Resource>,
    pub temperatures: Vec<Resource>,
    pub network_adapters: Vec<AdapterTree>,
    pub unreadable: Vec<Unreadable>,
}

/// One network adapter with its ports.
#[derive(Clone)]
pub(crate) struct AdapterTree {
    pub adapter: Resource,
    pub ports: Vec<Resource>,
}

/// Members that were read, and members that failed with their paths.
type Partial = (Vec<Resource>, Vec<(String, Error)>);

/// Collects failures of non-fatal reads.
#[derive(Default)]
struct Problems(Vec<Unreadable>);

impl Problems {
    /// Keeps a successful value, records a non-fatal error, and passes a fatal one on.
    fn keep<V: Default>(&mut self, path: &str, result: Result<V, Error>) -> Result<V, Error> {
        match result {
            Ok(value) => Ok(value),
            Err(error) if error.is_fatal() => Err(error),
            Err(error) => {
                tracing::debug!(%path, %error, "resource unreadable, continuing");
                self.0.push(Unreadable {
                    path: path.to_owned(),
                    error: error.to_string(),
                });
                Ok(V::default())
            }
        }
    }

    fn record(&mut self, failures: Vec<(String, Error)>) {
        for (path, error) in failures {
            self.0.push(Unreadable {
                path,
                error: error.to_string(),
            });
        }
    }
}

/// Reads the service root, from the client's cache when it has one.
pub(crate) async fn service_root<T: Transport>(client: &Client<T>) -> Result<Value, Error> {
    match client.root() {
        Some(root) => Ok(root.clone()),
        None => Ok(client.get(SERVICE_ROOT).await?.body),
    }
}

/// Reads every system with its components and chassis.
pub(crate) async fn crawl_systems<T: Transport>(
    client: &Client<T>,
) -> Result<Vec<SystemTree>, Error> {
    let root = service_root(client).await?;
    let Some(systems_path) = decode::link(&root, "Systems") else {
        return Ok(Vec::new());
    };
    let (systems, system_failures) = client.members_partial(&systems_path).await?;

    let mut problems = Problems::default();
    problems.record(system_failures);
    let chassis_trees: Vec<ChassisTree> = match decode::link(&root, "Chassis") {
        Some(path) => {
            let chassis = keep_partial(&mut problems, &path, client.members_partial(&path).await)?;
            let trees = join_all(
                chassis
                    .into_iter()
                    .map(|chassis| crawl_chassis(client, chassis)),
            )
            .await;
            trees.into_iter().collect::<Result<_, _>>()?
        }
        None => Vec::new(),
    };

    let single_system = systems.len() == 1;
    let trees = join_all(systems.into_iter().map(|system| {
        let chassis = chassis_for_system(&system, &chassis_trees, single_system);
        crawl_system(client, system, chassis)
    }))
    .await;
    let mut trees: Vec<SystemTree> = trees.into_iter().collect::<Result<_, _>>()?;

    if let Some(first) = trees.first_mut() {
        first.unreadable.extend(problems.0);
    }
    Ok(trees)
}

/// Picks the chassis linked from a system; with a single system, every chassis.
///
/// NOTE: with several systems, a chassis that no system links (such as a blade enclosure)
/// appears in no report.
fn chassis_for_system(
    system: &Resource,
    all: &[ChassisTree],
    single_system: bool,
) -> Vec<ChassisTree> {
    if single_system {
        return all.to_vec();
    }
    let linked: Vec<String> = system
        .body
        .get("Links")
        .map(|links| decode::array(links, "Chassis"))
        .unwrap_or_default()
        .iter()
        .filter_map(decode::odata_id)
        .filter_map(|path| request_path(&path).ok())
        .collect();
    all.iter()
        .filter(|tree| {
            linked
                .iter()
                .any(|path| same_path(path, &tree.chassis.path))
        })
        .cloned()
        .collect()
}

async fn crawl_system<T: Transport>(
    client: &Client<T>,
    system: Resource,
    chassis: Vec<ChassisTree>,
) -> Result<SystemTree, Error> {
    let mut problems = Problems::default();
    let body = &system.body;

    let (processors, memory, storage, interfaces) = tokio::join!(
        linked_members(client, body, "Processors"),
        linked_members(client, body, "Memory"),
        crawl_storage(client, body),
        linked_members(client, body, "EthernetInterfaces"),
    );
    let processors = keep_members(&mut problems, body, "Processors", processors)?;
    let memory = keep_members(&mut problems, body, "Memory", memory)?;
    let ethernet_interfaces = keep_members(&mut problems, body, "EthernetInterfaces", interfaces)?;
    let (storage, storage_failures) = storage?;
    problems.0.extend(storage_failures);

    Ok(SystemTree {
        system,
        ethernet_interfaces,
        processors,
        memory,
        storage,
        chassis,
        unreadable: problems.0,
    })
}

async fn crawl_storage<T: Transport>(
    client: &Client<T>,
    system: &Value,
) -> Result<(Vec<StorageTree>, Vec<Unreadable>), Error> {
    let mut problems = Problems::default();
    let storages = keep_members(
        &mut problems,
        system,
        "Storage",
        linked_members(client, system, "Storage").await,
    )?;

    let trees = join_all(storages.into_iter().map(|storage| async move {
        let mut problems = Problems::default();
        let inline: Vec<Resource> = decode::array(&storage.body, "StorageControllers")
            .iter()
            .enumerate()
            .map(|(index, item)| inline_resource(&storage.path, "StorageControllers", index, item))
            .collect();
        let controllers = if inline.is_empty() {
            keep_members(
                &mut problems,
                &storage.body,
                "Controllers",
                linked_members(client, &storage.body, "Controllers").await,
            )?
        } else {
            inline
        };

        let drive_paths: Vec<String> = decode::array(&storage.body, "Drives")
            .iter()
            .filter_map(decode::odata_id)
            .collect();
        let drives = join_all(drive_paths.iter().map(|path| client.get(path))).await;
        let mut drives_read = Vec::new();
        for (path, result) in drive_paths.iter().zip(drives) {
            if let Some(drive) = problems.keep(path, result.map(Some))? {
                drives_read.push(drive);
            }
        }
        Ok::<_, Error>((
            StorageTree {
                storage,
                controllers,
                drives: drives_read,
            },
            problems.0,
        ))
    }))
    .await;

    let mut result = Vec::new();
    for tree in trees {
        let (tree, failures) = tree?;
        problems.0.extend(failures);
        result.push(tree);
    }

    // Older services describe disks only through `SimpleStorage`, whose devices are inline.
    if result.is_empty() {
        let simple = keep_members(
            &mut problems,
            system,
            "SimpleStorage",
            linked_members(client, system, "SimpleStorage").await,
        )?;
        for storage in simple {
            let drives = decode::array(&storage.body, "Devices")
                .iter()
                .enumerate()
                .map(|(index, item)| inline_resource(&storage.path, "Devices", index, item))
                .collect();
            let controller = storage.clone();
            result.push(StorageTree {
                storage,
                controllers: vec![controller],
                drives,
            });
        }
    }
    Ok((result, problems.0))
}

async fn crawl_chassis<T: Transport>(
    client: &Client<T>,
    chassis: Resource,
) -> Result<ChassisTree, Error> {
    let mut problems = Problems::default();
    let body = chassis.body.clone();

    let (power_supplies, fans, temperatures, adapters) = tokio::join!(
        power_supplies(client, &body),
        fans(client, &body),
        temperatures(client, &body),
        linked_members(client, &body, "NetworkAdapters"),
    );
    let power_supplies = keep_partial(&mut problems, &chassis.path, power_supplies)?;
    let fans = keep_partial(&mut problems, &chassis.path, fans)?;
    let temperatures = keep_partial(&mut problems, &chassis.path, temperatures)?;
    let adapters = keep_members(&mut problems, &body, "NetworkAdapters", adapters)?;

    let adapter_trees = join_all(adapters.into_iter().map(|adapter| async move {
        let mut problems = Problems::default();
        let ports = match decode::link(&adapter.body, "Ports") {
            Some(_) => linked_members(client, &adapter.body, "Ports").await,
            None => linked_members(client, &adapter.body, "NetworkPorts").await,
        };
        let key = if decode::link(&adapter.body, "Ports").is_some() {
            "Ports"
        } else {
            "NetworkPorts"
        };
        let ports = keep_members(&mut problems, &adapter.body, key, ports)?;
        Ok::<_, Error>((AdapterTree { adapter, ports }, problems.0))
    }))
    .await;
    let mut network_adapters = Vec::new();
    for tree in adapter_trees {
        let (tree, failures) = tree?;
        problems.0.extend(failures);
        network_adapters.push(tree);
    }

    Ok(ChassisTree {
        chassis,
        power_supplies,
        fans,
        temperatures,
        network_adapters,
        unreadable: problems.0,
    })
}

/// Power supplies from `PowerSubsystem`, else from the legacy `Power` resource.
async fn power_supplies<T: Transport>(
    client: &Client<T>,
    chassis: &Value,
) -> Result<Partial, Error> {
    if let Some(path) = decode::link(chassis, "PowerSubsystem") {
        match client.get(&path).await {
            Ok(subsystem) => {
                if decode::link(&subsystem.body, "PowerSupplies").is_some() {
                    return client
                        .members_partial(&linked(&subsystem.body, "PowerSupplies"))
                        .await;
                }
            }
            Err(error) if error.is_fatal() => return Err(error),
            Err(error) => {
                tracing::debug!(%path, %error, "power subsystem unreadable, trying Power")
            }
        }
    }
    Ok((
        legacy_array(client, chassis, "Power", "PowerSupplies").await?,
        Vec::new(),
    ))
}

/// Fans from `ThermalSubsystem`, else from the legacy `Thermal` resource.
async fn fans<T: Transport>(client: &Client<T>, chassis: &Value) -> Result<Partial, Error> {
    if let Some(path) = decode::link(chassis, "ThermalSubsystem") {
        match client.get(&path).await {
            Ok(subsystem) => {
                if decode::link(&subsystem.body, "Fans").is_some() {
                    return client
                        .members_partial(&linked(&subsystem.body, "Fans"))
                        .await;
                }
            }
            Err(error) if error.is_fatal() => return Err(error),
            Err(error) => {
                tracing::debug!(%path, %error, "thermal subsystem unreadable, trying Thermal")
            }
        }
    }
    Ok((
        legacy_array(client, chassis, "Thermal", "Fans").await?,
        Vec::new(),
    ))
}

/// Temperature sensors from the chassis `Sensors` collection, else from the legacy
/// `Thermal` resource.
async fn temperatures<T: Transport>(client: &Client<T>, chassis: &Value) -> Result<Partial, Error> {
    if let Some(path) = decode::link(chassis, "Sensors") {
        match client.members_partial(&path).await {
            Ok((sensors, failures)) => {
                let temperatures: Vec<Resource> = sensors
                    .into_iter()
                    .filter(|sensor| {
                        decode::text(&sensor.body, "ReadingType").as_deref() == Some("Temperature")
                    })
                    .collect();
                if !temperatures.is_empty() {
                    return Ok((temperatures, failures));
                }
            }
            Err(error) if error.is_fatal() => return Err(error),
            Err(error) => tracing::debug!(%path, %error, "sensors unreadable, trying Thermal"),
        }
    }
    Ok((
        legacy_array(client, chassis, "Thermal", "Temperatures").await?,
        Vec::new(),
    ))
}

/// Reads the array `key` of the legacy resource linked as `parent` (`Power` or `Thermal`).
async fn legacy_array<T: Transport>(
    client: &Client<T>,
    chassis: &Value,
    parent: &str,
    key: &str,
) -> Result<Vec<Resource>, Error> {
    let Some(path) = decode::link(chassis, parent) else {
        return Ok(Vec::new());
    };
    let resource = client.get(&path).await?;
    Ok(decode::array(&resource.body, key)
        .iter()
        .enumerate()
        .map(|(index, item)| inline_resource(&resource.path, key, index, item))
        .collect())
}

/// Reads the members of the collection linked from `parent` under `key`; none when the
/// link is missing.
async fn linked_members<T: Transport>(
    client: &Client<T>,
    parent: &Value,
    key: &str,
) -> Result<Partial, Error> {
    match decode::link(parent, key) {
        Some(path) => client.members_partial(&path).await,
        None => Ok((Vec::new(), Vec::new())),
    }
}

fn keep_members(
    problems: &mut Problems,
    parent: &Value,
    key: &str,
    result: Result<Partial, Error>,
) -> Result<Vec<Resource>, Error> {
    let path = decode::link(parent, key).unwrap_or_else(|| key.to_owned());
    keep_partial(problems, &path, result)
}

fn keep_partial(
    problems: &mut Problems,
    path: &str,
    result: Result<Partial, Error>,
) -> Result<Vec<Resource>, Error> {
    let (members, failures) = problems.keep(path, result)?;
    problems.record(failures);
    Ok(members)
}

fn linked(value: &Value, key: &str) -> String {
    decode::link(value, key).unwrap_or_default()
}

/// Wraps an item of an inline array as a resource, using its own `@odata.id` when present.
fn inline_resource(parent: &str, key: &str, index: usize, item: &Value) -> Resource {
    Resource {
        path: decode::odata_id(item).unwrap_or_else(|| format!("{parent}#/{key}/{index}")),
        etag: None,
        body: item.clone(),
    }
}

fn same_path(left: &str, right: &str) -> bool {
    left.trim_end_matches('/') == right.trim_end_matches('/')
}

/// Groups unreadable entries by path so each appears once.
pub(crate) fn dedup_unreadable(entries: Vec<Unreadable>) -> Vec<Unreadable> {
    let mut by_path = BTreeMap::new();
    for entry in entries {
        by_path.entry(entry.path.clone()).or_insert(entry);
    }
    by_path.into_values().collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::{Method, StatusCode};
    use serde_json::json;

    use crate::testing::{redfish_error, service_root, Scripted};
    use crate::{health, inventory, ComponentKind, RetryPolicy};

    use super::*;

    /// Builds a one-system service with the decoding quirks real BMCs show: numbers as strings,
    /// empty strings for numbers, `{}` where an array belongs, malformed dates, and a
    /// thermal subsystem that keeps failing.
    fn quirky_service() -> Scripted {
        let mut root = service_root("/redfish/v1/SessionService/Sessions");
        root["UpdateService"] = json!({"@odata.id": "/redfish/v1/UpdateService"});
        let system = "/redfish/v1/Systems/System.Embedded.1";
        let chassis = "/redfish/v1/Chassis/System.Embedded.1";
        Scripted::new()
            .serve("/redfish/v1", root)
            .serve("/redfish/v1/Systems", json!({"Members": [{"@odata.id": system}]}))
            .serve(system, json!({
                "@odata.id": system, "Id": "System.Embedded.1", "Name": "System",
                "Manufacturer": "Dell Inc.", "Model": "PowerEdge R650", "SKU": "TSTAG01",
                "SerialNumber": "CN0001", "BiosVersion": "1.8.2", "PowerState": "On",
                "LastResetTime": "0000-00-00T00:00:00+00:00",
                "Status": {"Health": "Warning", "HealthRollup": "Critical", "State": "Enabled"},
                "MemorySummary": {"TotalSystemMemoryGiB": "64"},
                "Processors": {"@odata.id": format!("{system}/Processors")},
                "Memory": {"@odata.id": format!("{system}/Memory")},
                "Storage": {"@odata.id": format!("{system}/Storage")},
                "Links": {"Chassis": [{"@odata.id": chassis}]}
            }))
            .serve(&format!("{system}/Processors"), json!({"Members": [
                {"@odata.id": format!("{system}/Processors/CPU.1")},
                {"@odata.id": format!("{system}/Processors/CPU.2")}
            ]}))
            .serve(&format!("{system}/Processors/CPU.1"), json!({
                "Id": "CPU.1", "Model": "Xeon Gold 6330", "MaxSpeedMHz": "", "TotalCores": "28",
                "Status": {"Health": "OK", "State": "Enabled"}
            }))
            .serve(&format!("{system}/Processors/CPU.2"), json!({
                "Id": "CPU.2", "Name": "CPU 2", "Model": "Xeon Gold 6330", "MaxSpeedMHz": 3100,
                "Status": {"Health": "Critical", "State": "Enabled", "Conditions": [
                    {"MessageId": "CPU0001", "Message": "CPU 2 has a thermal trip (over-temperature) event."}
                ]}
            }))
            .serve(&format!("{system}/Memory"), json!({"Members": [
                {"@odata.id": format!("{system}/Memory/DIMM.A1")},
                {"@odata.id": format!("{system}/Memory/DIMM.B1")}
            ]}))
            .serve(&format!("{system}/Memory/DIMM.A1"), json!({
                "Id": "DIMM.A1", "DeviceLocator": "A1", "CapacityMiB": 32768, "OperatingSpeedMhz": "3200",
                "Status": {"Health": "OK", "State": "Enabled"}
            }))
            .serve(&format!("{system}/Memory/DIMM.B1"), json!({
                "Id": "DIMM.B1", "DeviceLocator": "B1", "CapacityMiB": 0,
                "Status": {"Health": "Critical", "State": "Absent"}
            }))
            .serve(&format!("{system}/Storage"), json!({"Members": [{"@odata.id": format!("{system}/Storage/RAID.1")}]}))
            .serve(&format!("{system}/Storage/RAID.1"), json!({
                "Id": "RAID.1", "Name": "PERC H755",
                "Controllers": {},
                "StorageControllers": [{"MemberId": 0, "Name": "PERC H755 Front", "FirmwareVersion": 52.16, "Status": {"Health": "OK"}}],
                "Drives": [{"@odata.id": format!("{system}/Storage/RAID.1/Drives/Disk.0")}]
            }))
            .serve(&format!("{system}/Storage/RAID.1/Drives/Disk.0"), json!({
                "Id": "Disk.0", "Name": "Disk 0", "CapacityBytes": "959656755200", "MediaType": "SSD",
                "FailurePredicted": true, "Status": {"Health": "Warning", "State": "Enabled"}
            }))
            .serve("/redfish/v1/Chassis", json!({"Members": [{"@odata.id": chassis}]}))
            .serve(chassis, json!({
                "@odata.id": chassis, "Id": "System.Embedded.1", "Name": "Chassis",
                "Status": {"Health": "OK", "State": "Enabled"},
                "ThermalSubsystem": {"@odata.id": format!("{chassis}/ThermalSubsystem")},
                "Thermal": {"@odata.id": format!("{chassis}/Thermal")},
                "PowerSubsystem": {"@odata.id": format!("{chassis}/PowerSubsystem")},
                "NetworkAdapters": {"@odata.id": format!("{chassis}/NetworkAdapters")}
            }))
            .serve(&format!("{chassis}/ThermalSubsystem"), Value::Null)
            .serve(&format!("{chassis}/Thermal"), json!({
                "Fans": [
                    {"MemberId": 0, "Name": "Fan 1", "Reading": 9000, "ReadingUnits": "RPM", "Status": {"Health": "OK", "State": "Enabled"}},
                    {"MemberId": 1, "Name": "Fan 2", "Status": {"State": "Absent"}}
                ],
                "Temperatures": [
                    {"MemberId": "0", "Name": "CPU2 Temp", "ReadingCelsius": 112, "UpperThresholdCritical": 95,
                     "UpperThresholdNonCritical": "", "Status": {"Health": "Critical", "State": "Enabled"}}
                ]
            }))
            .serve(&format!("{chassis}/PowerSubsystem"), json!({"PowerSupplies": {"@odata.id": format!("{chassis}/PowerSubsystem/PowerSupplies")}}))
            .serve(&format!("{chassis}/PowerSubsystem/PowerSupplies"), json!({"Members": [{"@odata.id": format!("{chassis}/PowerSubsystem/PowerSupplies/PSU.1")}]}))
            .serve(&format!("{chassis}/PowerSubsystem/PowerSupplies/PSU.1"), json!({
                "Id": "PSU.1", "Name": "PS1", "PowerCapacityWatts": "1400", "Model": "PWR SPLY,1400W",
                "Status": {"Health": "Critical", "State": "Enabled", "Conditions": [{"Message": "Power supply input lost"}]}
            }))
            .serve(&format!("{chassis}/NetworkAdapters"), json!({"Members": [{"@odata.id": format!("{chassis}/NetworkAdapters/NIC.1")}]}))
            .serve(&format!("{chassis}/NetworkAdapters/NIC.1"), json!({
                "Id": "NIC.1", "Manufacturer": "Broadcom", "Controllers": [{"FirmwarePackageVersion": "22.31.6"}],
                "Ports": {"@odata.id": format!("{chassis}/NetworkAdapters/NIC.1/Ports")}
            }))
            .serve(&format!("{chassis}/NetworkAdapters/NIC.1/Ports"), json!({"Members": [
                {"@odata.id": format!("{chassis}/NetworkAdapters/NIC.1/Ports/1"), "Id": "1", "LinkStatus": "Up", "CurrentSpeedGbps": 25}
            ]}))
            .serve("/redfish/v1/UpdateService", json!({"FirmwareInventory": {"@odata.id": "/redfish/v1/UpdateService/FirmwareInventory"}}))
            .serve("/redfish/v1/UpdateService/FirmwareInventory", json!({"Members": [
                {"@odata.id": "/redfish/v1/UpdateService/FirmwareInventory/BIOS"},
                {"@odata.id": "/redfish/v1/UpdateService/FirmwareInventory/iDRAC"}
            ]}))
            .serve("/redfish/v1/UpdateService/FirmwareInventory/BIOS", json!({"Id": "BIOS", "Version": "1.8.2", "ReleaseDate": "00:00:00Z"}))
            .serve("/redfish/v1/UpdateService/FirmwareInventory/iDRAC", json!({"Id": "iDRAC", "Version": "6.00.30.00", "ReleaseDate": "2020-4-28T15:25:21+00:00", "Updateable": "true"}))
    }

    /// Makes the thermal subsystem fail with 503 on every attempt.
    fn with_failing_thermal_subsystem(transport: Scripted, attempts: u32) -> Scripted {
        let path = "/redfish/v1/Chassis/System.Embedded.1/ThermalSubsystem";
        (0..attempts).fold(transport, |transport, _| {
            transport.expect(
                Method::GET,
                path,
                redfish_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Base.1.0.ServiceTemporarilyUnavailable",
                    "busy",
                ),
            )
        })
    }

    fn client(transport: Scripted) -> Client<Scripted> {
        let retry = RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        };
        Client::new(transport, retry)
    }

    #[tokio::test]
    async fn health_lists_failing_components_with_reasons() {
        let client = client(with_failing_thermal_subsystem(quirky_service(), 2));
        let report = health(&client).await.expect("health");
        let system = &report.systems[0];
        assert_eq!(system.service_tag.as_deref(), Some("TSTAG01"));
        assert_eq!(system.power_state.as_deref(), Some("On"));
        assert_eq!(system.health.as_deref(), Some("Warning"));
        assert_eq!(system.health_rollup.as_deref(), Some("Critical"));

        let reason = |kind: ComponentKind| {
            system
                .problems
                .iter()
                .find(|problem| problem.kind == kind)
                .map(|problem| problem.reason.clone())
        };
        assert_eq!(
            reason(ComponentKind::Processor).as_deref(),
            Some("CPU 2 has a thermal trip (over-temperature) event. (CPU0001)")
        );
        assert_eq!(
            reason(ComponentKind::Drive).as_deref(),
            Some("failure predicted")
        );
        assert_eq!(
            reason(ComponentKind::Temperature).as_deref(),
            Some("reading 112 °C above upper critical 95 °C")
        );
        assert_eq!(
            reason(ComponentKind::PowerSupply).as_deref(),
            Some("Power supply input lost")
        );
        assert_eq!(
            reason(ComponentKind::Memory),
            None,
            "absent DIMM is not a failure"
        );
        assert_eq!(system.problems.len(), 4, "{:#?}", system.problems);
        client.transport().assert_done();
    }

    #[tokio::test]
    async fn inventory_decodes_quirky_fields() {
        let client = client(quirky_service());
        let inventory = inventory(&client).await.expect("inventory");
        let system = &inventory.systems[0];
        assert_eq!(system.system.service_tag.as_deref(), Some("TSTAG01"));
        assert_eq!(system.system.bios_version.as_deref(), Some("1.8.2"));
        assert_eq!(system.system.total_memory_gib, Some(64.0));

        assert_eq!(system.processors.len(), 2);
        assert_eq!(system.processors[0].max_speed_mhz, None);
        assert_eq!(system.processors[0].cores, Some(28));
        assert_eq!(system.processors[1].max_speed_mhz, Some(3100));

        assert_eq!(system.memory.len(), 1, "only populated DIMMs");
        assert_eq!(system.memory[0].speed_mhz, Some(3200));

        let storage = &system.storage[0];
        assert_eq!(storage.controllers.len(), 1);
        assert_eq!(storage.controllers[0].id, "0");
        assert_eq!(
            storage.controllers[0].firmware_version.as_deref(),
            Some("52.16")
        );
        assert_eq!(storage.drives[0].capacity_bytes, Some(959_656_755_200));

        assert_eq!(system.fans.len(), 2);
        assert_eq!(system.fans[0].id, "0");
        assert_eq!(system.temperatures[0].reading_celsius, Some(112.0));
        assert_eq!(system.power_supplies[0].capacity_watts, Some(1400.0));
        assert_eq!(
            system.network_adapters[0].firmware_version.as_deref(),
            Some("22.31.6")
        );
        assert_eq!(system.network_adapters[0].ports[0].speed_mbps, Some(25_000));

        let bios = system
            .firmware
            .iter()
            .find(|f| f.id == "BIOS")
            .expect("BIOS");
        assert_eq!(bios.release_date, None);
        let idrac = system
            .firmware
            .iter()
            .find(|f| f.id == "iDRAC")
            .expect("iDRAC");
        assert_eq!(
            idrac.release_date.map(|date| date.to_rfc3339()).as_deref(),
            Some("2020-04-28T15:25:21+00:00")
        );
        assert_eq!(idrac.updateable, Some(true));
        assert!(system.unreadable.is_empty(), "{:?}", system.unreadable);
    }

    #[tokio::test]
    async fn unreadable_component_is_reported_not_fatal() {
        let drive = "/redfish/v1/Systems/System.Embedded.1/Storage/RAID.1/Drives/Disk.0";
        let transport = (0..2).fold(quirky_service(), |transport, _| {
            transport.expect(
                Method::GET,
                drive,
                redfish_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "IDRAC.2.8.SYS518",
                    "data sources are unavailable",
                ),
            )
        });
        let client = client(transport);
        let report = health(&client).await.expect("health");
        let system = &report.systems[0];
        let unreadable = system
            .unreadable
            .iter()
            .find(|entry| entry.path == drive)
            .expect("drive listed");
        assert!(
            unreadable.error.contains("after 2 attempts"),
            "{}",
            unreadable.error
        );
        assert!(system
            .problems
            .iter()
            .any(|p| p.kind == ComponentKind::PowerSupply));
    }

    #[tokio::test]
    async fn unauthorized_during_walk_is_fatal() {
        let transport = quirky_service().expect(
            Method::GET,
            "/redfish/v1/Systems",
            redfish_error(
                StatusCode::UNAUTHORIZED,
                "Base.1.0.NoValidSession",
                "session expired",
            ),
        );
        let client = client(transport);
        let error = health(&client).await.expect_err("401 ends the walk");
        assert!(matches!(error, Error::Unauthorized { .. }), "{error:?}");
    }

    #[tokio::test]
    async fn unreadable_chassis_collection_is_not_fatal() {
        let transport = quirky_service().expect(
            Method::GET,
            "/redfish/v1/Chassis",
            redfish_error(
                StatusCode::NOT_FOUND,
                "Base.1.0.ResourceMissingAtURI",
                "missing",
            ),
        );
        let client = client(transport);
        let report = health(&client).await.expect("health");
        let system = &report.systems[0];
        assert!(system
            .unreadable
            .iter()
            .any(|entry| entry.path == "/redfish/v1/Chassis"));
        assert!(system
            .problems
            .iter()
            .any(|p| p.kind == ComponentKind::Processor));
    }

    #[test]
    fn report_futures_are_send() {
        fn assert_send<F: std::future::Future + Send>(_: F) {}
        let client = client(Scripted::new());
        assert_send(health(&client));
        assert_send(inventory(&client));
        assert_send(crate::logs(&client, &crate::LogQuery::default()));
        assert_send(client.members("/redfish/v1/Systems"));
    }
}
