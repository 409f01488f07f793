//! The computer system: processors, memory, storage and host Ethernet interfaces.

use serde_json::{json, Value};

use super::{
    chassis, link, status_ok, Faults, Tree, CHASSIS, MANAGER, MANUFACTURER, PRODUCT, SERVICE_TAG,
    SYSTEM,
};

/// Id of the RAID controller's storage subsystem.
pub(super) const STORAGE_ID: &str = "RAID.Integrated.1";

/// Bay of the drive that reports a predictive failure.
pub(super) const FAILING_DRIVE_BAY: &str = "5";

/// Reset types the core accepts on the system's reset action.
pub(super) const RESET_TYPES: &[&str] = &[
    "On",
    "ForceOff",
    "GracefulShutdown",
    "GracefulRestart",
    "ForceRestart",
    "Nmi",
    "PowerCycle",
];

const PROCESSOR_MODEL: &str = "Intel(R) Xeon(R) Gold 6430";
const CORES_PER_SOCKET: u32 = 32;
const DIMM_CAPACITY_MIB: u64 = 32 * 1024;

/// DIMM slots per socket; slots 7 and 8 of each socket are empty.
const SLOTS_PER_SOCKET: u32 = 8;
const POPULATED_PER_SOCKET: u32 = 6;

pub(super) fn processor_path(socket: &str) -> String {
    format!("{SYSTEM}/Processors/CPU{socket}")
}

pub(super) fn dimm_path(slot: &str) -> String {
    format!("{SYSTEM}/Memory/DIMM.{slot}")
}

pub(super) fn storage_path() -> String {
    format!("{SYSTEM}/Storage/{STORAGE_ID}")
}

/// URI of a drive. Drives live below the chassis because the Drive schema marks drive URIs
/// below `Storage` as deprecated.
pub(super) fn drive_path(bay: &str) -> String {
    format!("{CHASSIS}/Drives/Disk.Bay.{bay}")
}

/// Adds the system and everything below it.
pub(super) fn add(tree: &mut Tree, faults: &Faults) {
    tree.add_collection(
        "/redfish/v1/Systems",
        "ComputerSystemCollection",
        "Computer System Collection",
        &[SYSTEM.to_owned()],
    );
    add_system(tree, faults);
    add_processors(tree);
    add_memory(tree);
    add_storage(tree, faults);
    add_ethernet_interfaces(tree);
}

fn add_system(tree: &mut Tree, faults: &Faults) {
    let populated = u64::from(2 * POPULATED_PER_SOCKET);
    tree.add(
        SYSTEM,
        json!({
            "@odata.type": "#ComputerSystem.v1_27_0.ComputerSystem",
            "Id": "1",
            "Name": "System",
            "Description": "Two-socket 1U rack server",
            "SystemType": "Physical",
            "Manufacturer": MANUFACTURER,
            "Model": PRODUCT,
            "SKU": SERVICE_TAG,
            "SerialNumber": SERVICE_TAG,
            "PartNumber": "R1U2S-B04",
            "AssetTag": "LAB-R14-U22",
            "UUID": "5b7a1e02-4c3d-4f5e-9a61-52534b315530",
            "HostName": "rks1u01.example.net",
            "PowerState": "On",
            "PowerRestorePolicy": "LastState",
            "IndicatorLED": "Off",
            "LocationIndicatorActive": false,
            "BiosVersion": "2.4.1",
            "LastResetTime": "2026-11-02T07:41:19+00:00",
            "Status": {
                "State": "Enabled",
                "Health": "OK",
                "HealthRollup": "Critical",
                "Conditions": [faults.fan.condition(), faults.drive.condition()],
            },
            "ProcessorSummary": {
                "Count": 2,
                "CoreCount": 2 * CORES_PER_SOCKET,
                "LogicalProcessorCount": 4 * CORES_PER_SOCKET,
                "Model": PROCESSOR_MODEL,
                "ThreadingEnabled": true,
            },
            "MemorySummary": {
                "TotalSystemMemoryGiB": populated * DIMM_CAPACITY_MIB / 1024,
                "MemoryMirroring": "None",
            },
            "Boot": {
                "BootSourceOverrideEnabled": "Disabled",
                "BootSourceOverrideEnabled@Redfish.AllowableValues":
                    ["Disabled", "Once", "Continuous"],
                "BootSourceOverrideTarget": "None",
                "BootSourceOverrideTarget@Redfish.AllowableValues":
                    ["None", "Pxe", "Cd", "Usb", "Hdd", "BiosSetup", "Diags", "UefiHttp"],
                "BootSourceOverrideMode": "UEFI",
                "BootSourceOverrideMode@Redfish.AllowableValues": ["Legacy", "UEFI"],
            },
            "Processors": link(&format!("{SYSTEM}/Processors")),
            "Memory": link(&format!("{SYSTEM}/Memory")),
            "Storage": link(&format!("{SYSTEM}/Storage")),
            "EthernetInterfaces": link(&format!("{SYSTEM}/EthernetInterfaces")),
            "Links": {
                "Chassis": [link(CHASSIS)],
                "ManagedBy": [link(MANAGER)],
            },
            "Actions": {
                "#ComputerSystem.Reset": {
                    "target": format!("{SYSTEM}/Actions/ComputerSystem.Reset"),
                    "ResetType@Redfish.AllowableValues": RESET_TYPES,
                },
            },
        }),
    );
}

fn add_processors(tree: &mut Tree) {
    let sockets = ["1", "2"];
    let members: Vec<String> = sockets
        .iter()
        .map(|socket| processor_path(socket))
        .collect();
    tree.add_collection(
        &format!("{SYSTEM}/Processors"),
        "ProcessorCollection",
        "Processor Collection",
        &members,
    );
    for (socket, microcode) in sockets.iter().zip(["0x2B000603", "0x2B000603"]) {
        tree.add(
            &processor_path(socket),
            json!({
                "@odata.type": "#Processor.v1_22_0.Processor",
                "Id": format!("CPU{socket}"),
                "Name": format!("Processor {socket}"),
                "Socket": format!("CPU {socket}"),
                "ProcessorType": "CPU",
                "ProcessorArchitecture": "x86",
                "InstructionSet": "x86-64",
                "Manufacturer": "Intel(R) Corporation",
                "Model": PROCESSOR_MODEL,
                "MaxSpeedMHz": 3400,
                "OperatingSpeedMHz": 2100,
                "TotalCores": CORES_PER_SOCKET,
                "TotalEnabledCores": CORES_PER_SOCKET,
                "TotalThreads": 2 * CORES_PER_SOCKET,
                "TDPWatts": 270,
                "ProcessorId": {
                    "VendorId": "GenuineIntel",
                    "IdentificationRegisters": "0x000806F8",
                    "EffectiveFamily": "0x6",
                    "EffectiveModel": "0x8F",
                    "Step": "0x8",
                    "MicrocodeInfo": microcode,
                },
                "Location": {
                    "PartLocation": {
                        "ServiceLabel": format!("CPU {socket}"),
                        "LocationType": "Socket",
                        "LocationOrdinalValue": socket.parse::<u32>().unwrap_or(1) - 1,
                    },
                },
                "Status": status_ok(),
                "Links": { "Chassis": link(CHASSIS) },
            }),
        );
    }
}

fn add_memory(tree: &mut Tree) {
    let mut members = Vec::new();
    let mut dimms = Vec::new();
    for (socket_index, bank) in ["A", "B"].iter().enumerate() {
        for slot in 1..=SLOTS_PER_SOCKET {
            let label = format!("{bank}{slot}");
            members.push(dimm_path(&label));
            dimms.push((label, socket_index as u32 + 1, slot));
        }
    }
    tree.add_collection(
        &format!("{SYSTEM}/Memory"),
        "MemoryCollection",
        "Memory Module Collection",
        &members,
    );

    for (label, socket, slot) in dimms {
        let part_location = json!({
            "PartLocation": {
                "ServiceLabel": format!("DIMM {label}"),
                "LocationType": "Slot",
                "LocationOrdinalValue": (socket - 1) * SLOTS_PER_SOCKET + slot - 1,
            },
        });
        let location = json!({
            "Socket": socket,
            "MemoryController": (slot - 1) / 4 + 1,
            "Channel": slot,
            "Slot": 1,
        });
        let body = if slot <= POPULATED_PER_SOCKET {
            // Two vendors, as servers often get mixed lots from the factory.
            let (vendor, part, serial_prefix) = if socket == 1 {
                ("Samsung", "M321R4GA3BB6-CQKET", "S3A")
            } else {
                ("SK Hynix", "HMCG88AEBRA107N", "H7C")
            };
            json!({
                "@odata.type": "#Memory.v1_23_0.Memory",
                "Id": format!("DIMM.{label}"),
                "Name": format!("DIMM {label}"),
                "Location": part_location,
                "MemoryLocation": location,
                "MemoryDeviceType": "DDR5",
                "MemoryType": "DRAM",
                "BaseModuleType": "RDIMM",
                "CapacityMiB": DIMM_CAPACITY_MIB,
                "DataWidthBits": 64,
                "BusWidthBits": 80,
                "RankCount": 2,
                "ErrorCorrection": "MultiBitECC",
                "AllowedSpeedsMHz": [4800],
                "OperatingSpeedMhz": 4400,
                "Manufacturer": vendor,
                "PartNumber": part,
                "SerialNumber": dimm_serial(serial_prefix, socket, slot),
                "Enabled": true,
                "Status": status_ok(),
            })
        } else {
            json!({
                "@odata.type": "#Memory.v1_23_0.Memory",
                "Id": format!("DIMM.{label}"),
                "Name": format!("DIMM {label}"),
                "Location": part_location,
                "MemoryLocation": location,
                "Status": { "State": "Absent" },
            })
        };
        tree.add(&dimm_path(&label), body);
    }
}

/// Makes up a DIMM serial number from the vendor prefix and the slot.
fn dimm_serial(prefix: &str, socket: u32, slot: u32) -> String {
    format!("{prefix}{socket}{slot:02}{:04X}", 0x1F00 + slot * 37)
}

/// Makes up a drive serial number from the model's first two letters and the bay.
fn drive_serial(model: &str, bay: u32) -> String {
    let prefix = model.get(..2).unwrap_or("XX");
    format!("{prefix}{:06}", 418_200 + bay * 1_377)
}

/// One drive of the sample: bay, media, model data and capacity.
struct DriveSpec {
    bay: &'static str,
    media: &'static str,
    protocol: &'static str,
    manufacturer: &'static str,
    model: &'static str,
    revision: &'static str,
    capacity_bytes: u64,
    rotation_rpm: Option<u32>,
    speed_gbs: f64,
    volume: &'static str,
}

const DRIVES: &[DriveSpec] = &[
    DriveSpec {
        bay: "0",
        media: "SSD",
        protocol: "SATA",
        manufacturer: "Samsung",
        model: "MZ7L3960HCJR-00B7C",
        revision: "JXTC604Q",
        capacity_bytes: 960_197_124_096,
        rotation_rpm: None,
        speed_gbs: 6.0,
        volume: "1",
    },
    DriveSpec {
        bay: "1",
        media: "SSD",
        protocol: "SATA",
        manufacturer: "Samsung",
        model: "MZ7L3960HCJR-00B7C",
        revision: "JXTC604Q",
        capacity_bytes: 960_197_124_096,
        rotation_rpm: None,
        speed_gbs: 6.0,
        volume: "1",
    },
    DriveSpec {
        bay: "2",
        media: "SSD",
        protocol: "SAS",
        manufacturer: "KIOXIA",
        model: "KPM7XRUG1T92",
        revision: "0103",
        capacity_bytes: 1_920_383_410_176,
        rotation_rpm: None,
        speed_gbs: 24.0,
        volume: "2",
    },
    DriveSpec {
        bay: "3",
        media: "SSD",
        protocol: "SAS",
        manufacturer: "KIOXIA",
        model: "KPM7XRUG1T92",
        revision: "0103",
        capacity_bytes: 1_920_383_410_176,
        rotation_rpm: None,
        speed_gbs: 24.0,
        volume: "2",
    },
    DriveSpec {
        bay: "4",
        media: "HDD",
        protocol: "SAS",
        manufacturer: "SEAGATE",
        model: "ST2400MM0129",
        revision: "C004",
        capacity_bytes: 2_400_476_553_216,
        rotation_rpm: Some(10_000),
        speed_gbs: 12.0,
        volume: "3",
    },
    DriveSpec {
        bay: "5",
        media: "HDD",
        protocol: "SAS",
        manufacturer: "SEAGATE",
        model: "ST2400MM0129",
        revision: "C004",
        capacity_bytes: 2_400_476_553_216,
        rotation_rpm: Some(10_000),
        speed_gbs: 12.0,
        volume: "3",
    },
    DriveSpec {
        bay: "6",
        media: "HDD",
        protocol: "SAS",
        manufacturer: "SEAGATE",
        model: "ST2400MM0129",
        revision: "C004",
        capacity_bytes: 2_400_476_553_216,
        rotation_rpm: Some(10_000),
        speed_gbs: 12.0,
        volume: "3",
    },
    DriveSpec {
        bay: "7",
        media: "HDD",
        protocol: "SAS",
        manufacturer: "SEAGATE",
        model: "ST2400MM0129",
        revision: "C004",
        capacity_bytes: 2_400_476_553_216,
        rotation_rpm: Some(10_000),
        speed_gbs: 12.0,
        volume: "3",
    },
];

/// One virtual disk: id, name, RAID level and usable capacity.
const VOLUMES: &[(&str, &str, &str, u64)] = &[
    ("1", "OS", "RAID1", 959_119_884_288),
    ("2", "Scratch", "RAID1", 1_919_850_381_312),
    ("3", "Data", "RAID5", 7_199_817_498_624),
];

fn add_storage(tree: &mut Tree, faults: &Faults) {
    let storage = storage_path();
    let controller = format!("{storage}/Controllers/0");
    let drives: Vec<String> = DRIVES.iter().map(|drive| drive_path(drive.bay)).collect();
    let volumes: Vec<String> = VOLUMES
        .iter()
        .map(|(id, ..)| format!("{storage}/Volumes/{id}"))
        .collect();

    tree.add_collection(
        &format!("{SYSTEM}/Storage"),
        "StorageCollection",
        "Storage Collection",
        std::slice::from_ref(&storage),
    );
    tree.add(
        &storage,
        json!({
            "@odata.type": "#Storage.v1_21_0.Storage",
            "Id": STORAGE_ID,
            "Name": "RAID Controller in Integrated Slot 1",
            "Status": { "State": "Enabled", "Health": "OK", "HealthRollup": "Warning" },
            "Controllers": link(&format!("{storage}/Controllers")),
            "Drives@odata.count": drives.len(),
            "Drives": drives.iter().map(|drive| link(drive)).collect::<Vec<Value>>(),
            "Volumes": link(&format!("{storage}/Volumes")),
            "Links": { "Enclosures": [link(CHASSIS)] },
        }),
    );

    tree.add_collection(
        &format!("{storage}/Controllers"),
        "StorageControllerCollection",
        "Storage Controller Collection",
        std::slice::from_ref(&controller),
    );
    tree.add(
        &controller,
        json!({
            "@odata.type": "#StorageController.v1_11_0.StorageController",
            "Id": "0",
            "Name": "RS-9540-8i RAID Controller",
            "Manufacturer": MANUFACTURER,
            "Model": "RS-9540-8i 12Gb/s SAS RAID Controller",
            "SerialNumber": "SKC4419R0127",
            "PartNumber": "RS9540-8I-A02",
            "FirmwareVersion": "52.26.0-5179",
            "SpeedGbps": 12,
            "SupportedControllerProtocols": ["PCIe"],
            "SupportedDeviceProtocols": ["SAS", "SATA"],
            "SupportedRAIDTypes":
                ["RAID0", "RAID1", "RAID5", "RAID6", "RAID10", "RAID50", "RAID60"],
            "CacheSummary": { "TotalCacheSizeMiB": 4096, "Status": status_ok() },
            "Status": status_ok(),
        }),
    );

    tree.add_collection(
        &format!("{CHASSIS}/Drives"),
        "DriveCollection",
        "Drive Collection",
        &drives,
    );
    for (spec, path) in DRIVES.iter().zip(&drives) {
        add_drive(tree, spec, path, &storage, faults);
    }

    tree.add_collection(
        &format!("{storage}/Volumes"),
        "VolumeCollection",
        "Volume Collection",
        &volumes,
    );
    for ((id, name, raid, capacity), path) in VOLUMES.iter().zip(&volumes) {
        let members: Vec<Value> = DRIVES
            .iter()
            .filter(|drive| drive.volume == *id)
            .map(|drive| link(&drive_path(drive.bay)))
            .collect();
        tree.add(
            path,
            json!({
                "@odata.type": "#Volume.v1_10_2.Volume",
                "Id": id,
                "Name": name,
                "RAIDType": raid,
                "CapacityBytes": capacity,
                "Encrypted": false,
                "DisplayName": name,
                "Status": status_ok(),
                "Links": { "Drives@odata.count": members.len(), "Drives": members },
            }),
        );
    }
}

fn add_drive(tree: &mut Tree, spec: &DriveSpec, path: &str, storage: &str, faults: &Faults) {
    let failing = spec.bay == FAILING_DRIVE_BAY;
    let status = if failing {
        json!({
            "State": "Enabled",
            "Health": "Warning",
            "Conditions": [faults.drive.condition()],
        })
    } else {
        status_ok()
    };
    let bay_number: u32 = spec.bay.parse().unwrap_or(0);
    let mut body = json!({
        "@odata.type": "#Drive.v1_22_0.Drive",
        "Id": format!("Disk.Bay.{}", spec.bay),
        "Name": format!("Drive in Bay {}", spec.bay),
        "MediaType": spec.media,
        "Protocol": spec.protocol,
        "Manufacturer": spec.manufacturer,
        "Model": spec.model,
        "Revision": spec.revision,
        "SerialNumber": drive_serial(spec.model, bay_number),
        "CapacityBytes": spec.capacity_bytes,
        "BlockSizeBytes": 512,
        "CapableSpeedGbs": spec.speed_gbs,
        "NegotiatedSpeedGbs": spec.speed_gbs.min(12.0),
        "FailurePredicted": failing,
        "HotspareType": "None",
        "EncryptionAbility": "None",
        "EncryptionStatus": "Unencrypted",
        "PhysicalLocation": {
            "PartLocation": {
                "ServiceLabel": format!("Drive Bay {}", spec.bay),
                "LocationType": "Bay",
                "LocationOrdinalValue": bay_number,
            },
        },
        "Status": status,
        "Links": {
            "Chassis": link(CHASSIS),
            "Storage": link(storage),
            "Volumes": [link(&format!("{storage}/Volumes/{}", spec.volume))],
        },
    });
    if let Some(fields) = body.as_object_mut() {
        match spec.rotation_rpm {
            Some(rpm) => {
                fields.insert("RotationSpeedRPM".to_owned(), json!(rpm));
            }
            None => {
                fields.insert(
                    "PredictedMediaLifeLeftPercent".to_owned(),
                    json!(97 - bay_number),
                );
            }
        }
    }
    tree.add(path, body);
}

/// One host network interface: id, MAC address, speed, link and IPv4 address if configured.
const HOST_INTERFACES: &[(&str, &str, u32, bool, Option<&str>)] = &[
    (
        "NIC.Integrated.1-1",
        "02:1B:2C:3A:00:10",
        25_000,
        true,
        Some("192.0.2.21"),
    ),
    (
        "NIC.Integrated.1-2",
        "02:1B:2C:3A:00:11",
        25_000,
        true,
        Some("192.0.2.22"),
    ),
    ("NIC.Slot.1-1", "02:1B:2C:4B:00:20", 25_000, true, None),
    ("NIC.Slot.1-2", "02:1B:2C:4B:00:21", 25_000, false, None),
];

/// URI of the adapter port behind the host interface `NIC.Integrated.1-2` style id.
fn host_port_path(interface: &str) -> String {
    let (adapter, port) = interface.rsplit_once('-').unwrap_or((interface, "1"));
    chassis::port_path(adapter, port)
}

pub(super) fn host_mac(interface: &str) -> &'static str {
    HOST_INTERFACES
        .iter()
        .find(|(id, ..)| *id == interface)
        .map_or("02:1B:2C:00:00:00", |(_, mac, ..)| *mac)
}

fn add_ethernet_interfaces(tree: &mut Tree) {
    let base = format!("{SYSTEM}/EthernetInterfaces");
    let members: Vec<String> = HOST_INTERFACES
        .iter()
        .map(|(id, ..)| format!("{base}/{id}"))
        .collect();
    tree.add_collection(
        &base,
        "EthernetInterfaceCollection",
        "System Ethernet Interface Collection",
        &members,
    );
    for ((id, mac, speed, link_up, address), path) in HOST_INTERFACES.iter().zip(&members) {
        let ipv4: Vec<Value> = address
            .iter()
            .map(|address| {
                json!({
                    "Address": address,
                    "SubnetMask": "255.255.255.0",
                    "AddressOrigin": "Static",
                    "Gateway": "192.0.2.1",
                })
            })
            .collect();
        tree.add(
            path,
            json!({
                "@odata.type": "#EthernetInterface.v1_12_4.EthernetInterface",
                "Id": id,
                "Name": format!("Host Ethernet Interface {id}"),
                "MACAddress": mac,
                "PermanentMACAddress": mac,
                "SpeedMbps": if *link_up { *speed } else { 0 },
                "FullDuplex": true,
                "AutoNeg": true,
                "InterfaceEnabled": true,
                "LinkStatus": if *link_up { "LinkUp" } else { "LinkDown" },
                "HostName": "rks1u01",
                "FQDN": "rks1u01.example.net",
                "IPv4Addresses": ipv4,
                "Links": { "Ports": [link(&host_port_path(id))] },
                "Status": status_ok(),
            }),
        );
    }
}
