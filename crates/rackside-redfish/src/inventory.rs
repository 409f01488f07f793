//! Inventory: the hardware and firmware of each system.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::crawl::{self, StorageTree, SystemTree, Unreadable};
use crate::decode;
use crate::health::service_tag;
use crate::transport::Transport;
use crate::{Client, Error, Resource};

/// Hardware and firmware of every system of a service.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Inventory {
    /// One entry per computer system.
    pub systems: Vec<SystemInventory>,
}

/// Hardware and firmware of one system.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SystemInventory {
    /// The system itself.
    pub system: SystemSummary,
    /// Processors.
    pub processors: Vec<Processor>,
    /// Populated memory modules.
    pub memory: Vec<MemoryModule>,
    /// Storage controllers and drives (from `Storage`, or `SimpleStorage` on older services).
    pub storage: Vec<Storage>,
    /// The host's Ethernet interfaces as the system reports them.
    pub ethernet_interfaces: Vec<EthernetInterface>,
    /// Network adapters with their ports.
    pub network_adapters: Vec<NetworkAdapter>,
    /// Power supplies.
    pub power_supplies: Vec<PowerSupply>,
    /// Fans.
    pub fans: Vec<Fan>,
    /// Temperature sensors.
    pub temperatures: Vec<Temperature>,
    /// Firmware inventory of the service (`UpdateService/FirmwareInventory`).
    pub firmware: Vec<Firmware>,
    /// Resources that could not be read, so the inventory may be incomplete.
    pub unreadable: Vec<Unreadable>,
}

/// Identity and state of a computer system.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SystemSummary {
    /// `Id`.
    pub id: String,
    /// Resource path.
    pub path: String,
    /// `Name`.
    pub name: String,
    /// `Manufacturer`.
    pub manufacturer: Option<String>,
    /// `Model`.
    pub model: Option<String>,
    /// `SerialNumber`.
    pub serial_number: Option<String>,
    /// The vendor's service tag (Dell `SKU`).
    pub service_tag: Option<String>,
    /// `BiosVersion`.
    pub bios_version: Option<String>,
    /// `PowerState`.
    pub power_state: Option<String>,
    /// `Status.Health`.
    pub health: Option<String>,
    /// `MemorySummary.TotalSystemMemoryGiB`.
    pub total_memory_gib: Option<f64>,
}

/// A processor.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Processor {
    /// `Id`.
    pub id: String,
    /// `Socket`.
    pub socket: Option<String>,
    /// `Manufacturer`.
    pub manufacturer: Option<String>,
    /// `Model`.
    pub model: Option<String>,
    /// `TotalCores`.
    pub cores: Option<u64>,
    /// `TotalThreads`.
    pub threads: Option<u64>,
    /// `MaxSpeedMHz`.
    pub max_speed_mhz: Option<u64>,
    /// `Status.Health`.
    pub health: Option<String>,
}

/// A populated memory module.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemoryModule {
    /// `Id`.
    pub id: String,
    /// `DeviceLocator`, else `Name`.
    pub locator: String,
    /// `CapacityMiB`.
    pub capacity_mib: Option<u64>,
    /// `MemoryDeviceType`, such as "DDR4".
    pub device_type: Option<String>,
    /// `OperatingSpeedMhz`.
    pub speed_mhz: Option<u64>,
    /// `Manufacturer`.
    pub manufacturer: Option<String>,
    /// `PartNumber`.
    pub part_number: Option<String>,
    /// `SerialNumber`.
    pub serial_number: Option<String>,
    /// `Status.Health`.
    pub health: Option<String>,
}

/// A storage subsystem with its controllers and drives.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Storage {
    /// `Id` of the storage resource.
    pub id: String,
    /// `Name` of the storage resource.
    pub name: String,
    /// Controllers.
    pub controllers: Vec<StorageController>,
    /// Drives.
    pub drives: Vec<Drive>,
}

/// A storage controller.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StorageController {
    /// `Id` or `MemberId`.
    pub id: String,
    /// `Name`.
    pub name: String,
    /// `Manufacturer`.
    pub manufacturer: Option<String>,
    /// `Model`.
    pub model: Option<String>,
    /// `FirmwareVersion`.
    pub firmware_version: Option<String>,
    /// `Status.Health`.
    pub health: Option<String>,
}

/// A drive.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Drive {
    /// `Id`.
    pub id: String,
    /// `Name`.
    pub name: String,
    /// `Manufacturer`.
    pub manufacturer: Option<String>,
    /// `Model`.
    pub model: Option<String>,
    /// `SerialNumber`.
    pub serial_number: Option<String>,
    /// `CapacityBytes`.
    pub capacity_bytes: Option<u64>,
    /// `MediaType`, such as "SSD".
    pub media_type: Option<String>,
    /// `Protocol`, such as "SATA".
    pub protocol: Option<String>,
    /// `Status.Health`.
    pub health: Option<String>,
}

/// A network adapter.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetworkAdapter {
    /// `Id`.
    pub id: String,
    /// `Name`.
    pub name: String,
    /// `Manufacturer`.
    pub manufacturer: Option<String>,
    /// `Model`.
    pub model: Option<String>,
    /// `Controllers[0].FirmwarePackageVersion`.
    pub firmware_version: Option<String>,
    /// `Status.Health`.
    pub health: Option<String>,
    /// Ports.
    pub ports: Vec<NetworkPort>,
}

/// A network port.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetworkPort {
    /// `Id`.
    pub id: String,
    /// `LinkStatus`, such as "Up".
    pub link_status: Option<String>,
    /// Current speed in Mbit/s (`CurrentSpeedGbps` or `CurrentLinkSpeedMbps`).
    pub speed_mbps: Option<u64>,
    /// First MAC address (`Ethernet.AssociatedMACAddresses` or `AssociatedNetworkAddresses`).
    pub mac_address: Option<String>,
}

/// A power supply.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PowerSupply {
    /// `Id` or `MemberId`.
    pub id: String,
    /// `Name`.
    pub name: String,
    /// `Model`.
    pub model: Option<String>,
    /// `SerialNumber`.
    pub serial_number: Option<String>,
    /// `PowerCapacityWatts`.
    pub capacity_watts: Option<f64>,
    /// `FirmwareVersion`.
    pub firmware_version: Option<String>,
    /// `Status.State`.
    pub state: Option<String>,
    /// `Status.Health`.
    pub health: Option<String>,
}

/// A fan.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Fan {
    /// `Id` or `MemberId`.
    pub id: String,
    /// `Name`.
    pub name: String,
    /// Current reading (`SpeedPercent.Reading`, or legacy `Reading`).
    pub reading: Option<f64>,
    /// Units of the reading, such as "RPM" or "%".
    pub units: Option<String>,
    /// `Status.State`.
    pub state: Option<String>,
    /// `Status.Health`.
    pub health: Option<String>,
}

/// A temperature sensor.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Temperature {
    /// `Id` or `MemberId`.
    pub id: String,
    /// `Name`.
    pub name: String,
    /// Reading in degrees Celsius.
    pub reading_celsius: Option<f64>,
    /// Upper critical threshold in degrees Celsius.
    pub upper_critical_celsius: Option<f64>,
    /// `Status.Health`.
    pub health: Option<String>,
}

/// One Ethernet interface of the host.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EthernetInterface {
    /// `Id`.
    pub id: String,
    /// `Name`.
    pub name: String,
    /// `MACAddress` (or `PermanentMACAddress`).
    pub mac_address: Option<String>,
    /// `SpeedMbps`.
    pub speed_mbps: Option<u64>,
    /// `LinkStatus`.
    pub link_status: Option<String>,
    /// Addresses from `IPv4Addresses`.
    pub ipv4_addresses: Vec<String>,
    /// `Status.Health`.
    pub health: Option<String>,
}

/// One firmware component.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Firmware {
    /// `Id`.
    pub id: String,
    /// `Name`.
    pub name: String,
    /// `Version`.
    pub version: Option<String>,
    /// `Updateable`.
    pub updateable: Option<bool>,
    /// `ReleaseDate`, when it names a date.
    pub release_date: Option<DateTime<FixedOffset>>,
    /// `ReleaseDate` as the service sent it.
    pub release_date_raw: Option<String>,
}

/// Reads the inventory of every system.
///
/// # Errors
///
/// Only errors that end the walk: connect, TLS, 401 and session limit, or a failure to
/// read the systems collection. Other unreadable resources are listed in
/// [`SystemInventory::unreadable`].
pub async fn inventory<T: Transport>(client: &Client<T>) -> Result<Inventory, Error> {
    let root = crawl::service_root(client).await?;
    let (trees, firmware) = tokio::join!(crawl::crawl_systems(client), firmware(client, &root));
    let trees = trees?;
    let (firmware, firmware_unreadable) = firmware?;

    let systems = trees
        .iter()
        .map(|tree| {
            let mut inventory = system_inventory(tree, &root);
            inventory.firmware = firmware.clone();
            inventory
                .unreadable
                .extend(firmware_unreadable.iter().cloned());
            inventory.unreadable =
                crawl::dedup_unreadable(std::mem::take(&mut inventory.unreadable));
            inventory
        })
        .collect();
    Ok(Inventory { systems })
}

async fn firmware<T: Transport>(
    client: &Client<T>,
    root: &Value,
) -> Result<(Vec<Firmware>, Vec<Unreadable>), Error> {
    let Some(update_path) = decode::link(root, "UpdateService") else {
        return Ok((Vec::new(), Vec::new()));
    };
    let unreadable = |path: &str, error: Error| Unreadable {
        path: path.to_owned(),
        error: error.to_string(),
    };
    let update = match client.get(&update_path).await {
        Ok(update) => update,
        Err(error) if error.is_fatal() => return Err(error),
        Err(error) => return Ok((Vec::new(), vec![unreadable(&update_path, error)])),
    };
    let Some(inventory_path) = decode::link(&update.body, "FirmwareInventory") else {
        return Ok((Vec::new(), Vec::new()));
    };
    let (members, failures) = match client.members_partial(&inventory_path).await {
        Ok(read) => read,
        Err(error) if error.is_fatal() => return Err(error),
        Err(error) => return Ok((Vec::new(), vec![unreadable(&inventory_path, error)])),
    };
    let firmware = members
        .iter()
        .map(|member| firmware_item(&member.body))
        .collect();
    let failures = failures
        .into_iter()
        .map(|(path, error)| unreadable(&path, error))
        .collect();
    Ok((firmware, failures))
}

fn system_inventory(tree: &SystemTree, root: &Value) -> SystemInventory {
    let body = &tree.system.body;
    let system = SystemSummary {
        id: decode::identifier(body),
        path: tree.system.path.clone(),
        name: decode::display_name(body),
        manufacturer: decode::text(body, "Manufacturer"),
        model: decode::text(body, "Model"),
        serial_number: decode::text(body, "SerialNumber"),
        service_tag: service_tag(body, root),
        bios_version: decode::text(body, "BiosVersion"),
        power_state: decode::text(body, "PowerState"),
        health: decode::status(body).0,
        total_memory_gib: body
            .get("MemorySummary")
            .and_then(|summary| decode::number(summary, "TotalSystemMemoryGiB")),
    };

    let mut unreadable = tree.unreadable.clone();
    let mut power_supplies = Vec::new();
    let mut fans = Vec::new();
    let mut temperatures = Vec::new();
    let mut network_adapters = Vec::new();
    for chassis in &tree.chassis {
        power_supplies.extend(chassis.power_supplies.iter().map(|r| power_supply(&r.body)));
        fans.extend(chassis.fans.iter().map(|r| fan(&r.body)));
        temperatures.extend(chassis.temperatures.iter().map(|r| temperature(&r.body)));
        network_adapters.extend(
            chassis
                .network_adapters
                .iter()
                .map(|adapter| network_adapter(&adapter.adapter, &adapter.ports)),
        );
        unreadable.extend(chassis.unreadable.iter().cloned());
    }

    SystemInventory {
        system,
        processors: tree.processors.iter().map(|r| processor(&r.body)).collect(),
        memory: tree
            .memory
            .iter()
            .filter(|r| is_populated(&r.body))
            .map(|r| memory_module(&r.body))
            .collect(),
        storage: tree.storage.iter().map(storage).collect(),
        ethernet_interfaces: tree
            .ethernet_interfaces
            .iter()
            .map(ethernet_interface)
            .collect(),
        network_adapters,
        power_supplies,
        fans,
        temperatures,
        firmware: Vec::new(),
        unreadable,
    }
}

fn is_populated(memory: &Value) -> bool {
    let absent = decode::status(memory).2.as_deref() == Some("Absent");
    let empty = decode::unsigned(memory, "CapacityMiB") == Some(0);
    !absent && !empty
}

fn processor(body: &Value) -> Processor {
    Processor {
        id: decode::identifier(body),
        socket: decode::text(body, "Socket"),
        manufacturer: decode::text(body, "Manufacturer"),
        model: decode::text(body, "Model"),
        cores: decode::unsigned(body, "TotalCores"),
        threads: decode::unsigned(body, "TotalThreads"),
        max_speed_mhz: decode::unsigned(body, "MaxSpeedMHz"),
        health: decode::status(body).0,
    }
}

fn memory_module(body: &Value) -> MemoryModule {
    MemoryModule {
        id: decode::identifier(body),
        locator: decode::text(body, "DeviceLocator").unwrap_or_else(|| decode::display_name(body)),
        capacity_mib: decode::unsigned(body, "CapacityMiB"),
        device_type: decode::text(body, "MemoryDeviceType"),
        speed_mhz: decode::unsigned(body, "OperatingSpeedMhz"),
        manufacturer: decode::text(body, "Manufacturer"),
        part_number: decode::text(body, "PartNumber"),
        serial_number: decode::text(body, "SerialNumber"),
        health: decode::status(body).0,
    }
}

fn ethernet_interface(resource: &Resource) -> EthernetInterface {
    let body = &resource.body;
    EthernetInterface {
        id: decode::identifier(body),
        name: decode::display_name(body),
        mac_address: decode::text(body, "MACAddress")
            .or_else(|| decode::text(body, "PermanentMACAddress")),
        speed_mbps: decode::unsigned(body, "SpeedMbps"),
        link_status: decode::text(body, "LinkStatus"),
        ipv4_addresses: decode::array(body, "IPv4Addresses")
            .iter()
            .filter_map(|address| decode::text(address, "Address"))
            .collect(),
        health: decode::status(body).0,
    }
}

fn storage(tree: &StorageTree) -> Storage {
    Storage {
        id: decode::identifier(&tree.storage.body),
        name: decode::display_name(&tree.storage.body),
        controllers: tree.controllers.iter().map(storage_controller).collect(),
        drives: tree.drives.iter().map(|r| drive(&r.body)).collect(),
    }
}

fn storage_controller(resource: &Resource) -> StorageController {
    let body = &resource.body;
    StorageController {
        id: decode::identifier(body),
        name: decode::display_name(body),
        manufacturer: decode::text(body, "Manufacturer"),
        model: decode::text(body, "Model"),
        firmware_version: decode::text(body, "FirmwareVersion"),
        health: decode::status(body).0,
    }
}

fn drive(body: &Value) -> Drive {
    Drive {
        id: decode::identifier(body),
        name: decode::display_name(body),
        manufacturer: decode::text(body, "Manufacturer"),
        model: decode::text(body, "Model"),
        serial_number: decode::text(body, "SerialNumber"),
        capacity_bytes: decode::unsigned(body, "CapacityBytes"),
        media_type: decode::text(body, "MediaType"),
        protocol: decode::text(body, "Protocol"),
        health: decode::status(body).0,
    }
}

fn network_adapter(adapter: &Resource, ports: &[Resource]) -> NetworkAdapter {
    let body = &adapter.body;
    let firmware_version = decode::array(body, "Controllers")
        .iter()
        .find_map(|controller| decode::text(controller, "FirmwarePackageVersion"));
    NetworkAdapter {
        id: decode::identifier(body),
        name: decode::display_name(body),
        manufacturer: decode::text(body, "Manufacturer"),
        model: decode::text(body, "Model"),
        firmware_version,
        health: decode::status(body).0,
        ports: ports.iter().map(|port| network_port(&port.body)).collect(),
    }
}

fn network_port(body: &Value) -> NetworkPort {
    let speed_mbps = decode::number(body, "CurrentSpeedGbps")
        .map(|gbps| (gbps * 1000.0).round() as u64)
        .or_else(|| decode::unsigned(body, "CurrentLinkSpeedMbps"));
    let mac_address = body
        .get("Ethernet")
        .map(|ethernet| decode::array(ethernet, "AssociatedMACAddresses"))
        .filter(|addresses| !addresses.is_empty())
        .unwrap_or_else(|| decode::array(body, "AssociatedNetworkAddresses"))
        .iter()
        .find_map(|address| {
            address
                .as_str()
                .filter(|text| !text.is_empty())
                .map(str::to_owned)
        });
    NetworkPort {
        id: decode::identifier(body),
        link_status: decode::text(body, "LinkStatus"),
        speed_mbps,
        mac_address,
    }
}

fn power_supply(body: &Value) -> PowerSupply {
    let (health, _, state) = decode::status(body);
    PowerSupply {
        id: decode::identifier(body),
        name: decode::display_name(body),
        model: decode::text(body, "Model"),
        serial_number: decode::text(body, "SerialNumber"),
        capacity_watts: decode::number(body, "PowerCapacityWatts"),
        firmware_version: decode::text(body, "FirmwareVersion"),
        state,
        health,
    }
}

fn fan(body: &Value) -> Fan {
    let (health, _, state) = decode::status(body);
    let (reading, units) = match body.get("SpeedPercent") {
        Some(speed) => (
            decode::number(speed, "Reading"),
            Some("%".to_owned()).filter(|_| decode::number(speed, "Reading").is_some()),
        ),
        None => (
            decode::number(body, "Reading"),
            decode::text(body, "ReadingUnits"),
        ),
    };
    Fan {
        id: decode::identifier(body),
        name: decode::display_name(body),
        reading,
        units,
        state,
        health,
    }
}

fn temperature(body: &Value) -> Temperature {
    let reading_celsius =
        decode::number(body, "ReadingCelsius").or_else(|| decode::number(body, "Reading"));
    let upper_critical_celsius = body
        .get("Thresholds")
        .and_then(|thresholds| thresholds.get("UpperCritical"))
        .and_then(|threshold| decode::number(threshold, "Reading"))
        .or_else(|| decode::number(body, "UpperThresholdCritical"));
    Temperature {
        id: decode::identifier(body),
        name: decode::display_name(body),
        reading_celsius,
        upper_critical_celsius,
        health: decode::status(body).0,
    }
}

fn firmware_item(body: &Value) -> Firmware {
    let release_date_raw = decode::text(body, "ReleaseDate");
    Firmware {
        id: decode::identifier(body),
        name: decode::display_name(body),
        version: decode::text(body, "Version"),
        updateable: decode::boolean(body, "Updateable"),
        release_date: release_date_raw
            .as_deref()
            .and_then(decode::parse_timestamp),
        release_date_raw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn processor_with_empty_speed_string_still_decodes() {
        let cpu = processor(
            &json!({"Id": "CPU.1", "Model": "Xeon", "MaxSpeedMHz": "", "TotalCores": 16}),
        );
        assert_eq!(cpu.max_speed_mhz, None);
        assert_eq!(cpu.cores, Some(16));
        assert_eq!(cpu.model.as_deref(), Some("Xeon"));
    }

    #[test]
    fn firmware_with_bare_time_release_date_is_unknown() {
        let item =
            firmware_item(&json!({"Id": "BIOS", "Version": "1.8.2", "ReleaseDate": "00:00:00Z"}));
        assert_eq!(item.release_date, None);
        assert_eq!(item.release_date_raw.as_deref(), Some("00:00:00Z"));
        assert_eq!(item.version.as_deref(), Some("1.8.2"));
    }

    #[test]
    fn absent_dimm_is_not_populated() {
        assert!(!is_populated(&json!({"Status": {"State": "Absent"}})));
        assert!(!is_populated(
            &json!({"CapacityMiB": 0, "Status": {"State": "Enabled"}})
        ));
        assert!(is_populated(
            &json!({"CapacityMiB": 32768, "Status": {"State": "Enabled"}})
        ));
    }

    #[test]
    fn port_speed_reads_either_schema() {
        let new = network_port(
            &json!({"Id": "1", "CurrentSpeedGbps": 25, "Ethernet": {"AssociatedMACAddresses": ["02:00:00:00:00:01"]}}),
        );
        assert_eq!(new.speed_mbps, Some(25000));
        assert_eq!(new.mac_address.as_deref(), Some("02:00:00:00:00:01"));
        let old = network_port(
            &json!({"Id": "2", "CurrentLinkSpeedMbps": 1000, "AssociatedNetworkAddresses": ["02:00:00:00:00:02"]}),
        );
        assert_eq!(old.speed_mbps, Some(1000));
        assert_eq!(old.mac_address.as_deref(), Some("02:00:00:00:00:02"));
    }
}
