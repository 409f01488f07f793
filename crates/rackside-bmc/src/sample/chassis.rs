//! The chassis: power and thermal subsystems, sensors and network adapters.

use serde_json::{json, Value};

use super::{
    link, status_ok, system, Faults, Tree, CHASSIS, MANAGER, MANUFACTURER, PRODUCT, SERVICE_TAG,
    SYSTEM,
};

pub(super) const POWER_SUBSYSTEM: &str = "/redfish/v1/Chassis/1/PowerSubsystem";
const THERMAL_SUBSYSTEM: &str = "/redfish/v1/Chassis/1/ThermalSubsystem";

/// Number of the fan that runs below its lower critical threshold.
pub(super) const FAILED_FAN: &str = "4";

pub(super) fn sensor_path(id: &str) -> String {
    format!("{CHASSIS}/Sensors/{id}")
}

pub(super) fn fan_path(number: &str) -> String {
    format!("{THERMAL_SUBSYSTEM}/Fans/Fan{number}")
}

pub(super) fn power_supply_path(number: &str) -> String {
    format!("{POWER_SUBSYSTEM}/PowerSupplies/PSU{number}")
}

pub(super) fn port_path(adapter: &str, port: &str) -> String {
    format!("{CHASSIS}/NetworkAdapters/{adapter}/Ports/{port}")
}

/// Adds the chassis and everything below it.
pub(super) fn add(tree: &mut Tree, faults: &Faults) {
    tree.add_collection(
        "/redfish/v1/Chassis",
        "ChassisCollection",
        "Chassis Collection",
        &[CHASSIS.to_owned()],
    );
    tree.add(
        CHASSIS,
        json!({
            "@odata.type": "#Chassis.v1_28_0.Chassis",
            "Id": "1",
            "Name": "System Chassis",
            "ChassisType": "RackMount",
            "Manufacturer": MANUFACTURER,
            "Model": PRODUCT,
            "SKU": SERVICE_TAG,
            "SerialNumber": SERVICE_TAG,
            "PartNumber": "R1U2S-CH-01",
            "AssetTag": "LAB-R14-U22",
            "UUID": "5b7a1e02-4c3d-4f5e-9a61-52534b315530",
            "PowerState": "On",
            "IndicatorLED": "Off",
            "LocationIndicatorActive": false,
            "HeightMm": 42.8,
            "WidthMm": 434.0,
            "DepthMm": 772.0,
            "WeightKg": 17.4,
            "Location": {
                "Placement": {
                    "Row": "R14",
                    "Rack": "R14-07",
                    "RackOffsetUnits": "EIA_310",
                    "RackOffset": 22,
                },
            },
            "Status": { "State": "Enabled", "Health": "OK", "HealthRollup": "Critical" },
            "PowerSubsystem": link(POWER_SUBSYSTEM),
            "ThermalSubsystem": link(THERMAL_SUBSYSTEM),
            "Sensors": link(&format!("{CHASSIS}/Sensors")),
            "NetworkAdapters": link(&format!("{CHASSIS}/NetworkAdapters")),
            "Drives": link(&format!("{CHASSIS}/Drives")),
            "Links": {
                "ComputerSystems": [link(SYSTEM)],
                "ManagedBy": [link(MANAGER)],
                "ManagersInChassis": [link(MANAGER)],
            },
        }),
    );
    add_power(tree);
    add_thermal(tree, faults);
    add_sensors(tree);
    add_network_adapters(tree);
}

fn add_power(tree: &mut Tree) {
    let supplies: Vec<String> = ["1", "2"].iter().map(|n| power_supply_path(n)).collect();
    tree.add(
        POWER_SUBSYSTEM,
        json!({
            "@odata.type": "#PowerSubsystem.v1_1_3.PowerSubsystem",
            "Id": "PowerSubsystem",
            "Name": "Power Subsystem",
            "CapacityWatts": 1100,
            "Allocation": { "RequestedWatts": 742, "AllocatedWatts": 1100 },
            "PowerSupplyRedundancy": [{
                "RedundancyType": "NPlusM",
                "MaxSupportedInGroup": 2,
                "MinNeededInGroup": 1,
                "RedundancyGroup": supplies.iter().map(|path| link(path)).collect::<Vec<Value>>(),
                "Status": status_ok(),
            }],
            "PowerSupplies": link(&format!("{POWER_SUBSYSTEM}/PowerSupplies")),
            "Status": { "State": "Enabled", "Health": "OK", "HealthRollup": "OK" },
        }),
    );
    tree.add_collection(
        &format!("{POWER_SUBSYSTEM}/PowerSupplies"),
        "PowerSupplyCollection",
        "Power Supply Collection",
        &supplies,
    );
    for ((number, serial), path) in [("1", "PSR1100T4A0417"), ("2", "PSR1100T4A0452")]
        .iter()
        .zip(&supplies)
    {
        tree.add(
            path,
            json!({
                "@odata.type": "#PowerSupply.v1_6_0.PowerSupply",
                "Id": format!("PSU{number}"),
                "Name": format!("Power Supply {number}"),
                "Manufacturer": MANUFACTURER,
                "Model": "RPS-1100T 1100W Titanium",
                "SerialNumber": serial,
                "PartNumber": "RPS1100T-02",
                "FirmwareVersion": "00.1D.7A",
                "PowerSupplyType": "AC",
                "LineInputStatus": "Normal",
                "PowerCapacityWatts": 1100,
                "InputRanges": [{
                    "NominalVoltageType": "AC200To240V",
                    "CapacityWatts": 1100,
                }],
                "EfficiencyRatings": [{ "LoadPercent": 50, "EfficiencyPercent": 96 }],
                "HotPluggable": true,
                "LocationIndicatorActive": false,
                "Location": {
                    "PartLocation": {
                        "ServiceLabel": format!("PSU {number}"),
                        "LocationType": "Bay",
                        "LocationOrdinalValue": number.parse::<u32>().unwrap_or(1) - 1,
                    },
                },
                "Metrics": link(&format!("{path}/Metrics")),
                "Status": status_ok(),
            }),
        );
        tree.add(
            &format!("{path}/Metrics"),
            json!({
                "@odata.type": "#PowerSupplyMetrics.v1_2_0.PowerSupplyMetrics",
                "Id": "Metrics",
                "Name": format!("Power Supply {number} Metrics"),
                "InputPowerWatts": sensor_excerpt(&format!("PSU{number}InputPower")),
                "InputVoltage": sensor_excerpt(&format!("PSU{number}InputVoltage")),
                "InputCurrentAmps": sensor_excerpt(&format!("PSU{number}InputCurrent")),
                "TemperatureCelsius": sensor_excerpt(&format!("PSU{number}Temp")),
                "Status": status_ok(),
            }),
        );
    }
}

/// Builds the sensor excerpt (`Reading` and `DataSourceUri`) of the chassis sensor `id`.
fn sensor_excerpt(id: &str) -> Value {
    let reading = TEMPERATURES
        .iter()
        .find(|sensor| sensor.0 == id)
        .map(|sensor| sensor.3)
        .or_else(|| {
            ELECTRICAL
                .iter()
                .find(|sensor| sensor.0 == id)
                .map(|sensor| sensor.5)
        });
    json!({ "Reading": reading, "DataSourceUri": sensor_path(id) })
}

/// One fan: number, speed in percent of the rated speed and in RPM.
const FANS: &[(&str, u32, u32)] = &[
    ("1", 38, 9_120),
    ("2", 37, 8_880),
    ("3", 39, 9_360),
    ("4", 6, 1_440),
    ("5", 38, 9_120),
    ("6", 40, 9_600),
];

fn add_thermal(tree: &mut Tree, faults: &Faults) {
    let fans: Vec<String> = FANS.iter().map(|(number, ..)| fan_path(number)).collect();
    tree.add(
        THERMAL_SUBSYSTEM,
        json!({
            "@odata.type": "#ThermalSubsystem.v1_5_0.ThermalSubsystem",
            "Id": "ThermalSubsystem",
            "Name": "Thermal Subsystem",
            "Fans": link(&format!("{THERMAL_SUBSYSTEM}/Fans")),
            "FanRedundancy": [{
                "RedundancyType": "NPlusM",
                "MaxSupportedInGroup": 6,
                "MinNeededInGroup": 5,
                "RedundancyGroup": fans.iter().map(|path| link(path)).collect::<Vec<Value>>(),
                "Status": { "State": "Enabled", "Health": "Warning" },
            }],
            "Status": { "State": "Enabled", "Health": "OK", "HealthRollup": "Critical" },
        }),
    );
    tree.add_collection(
        &format!("{THERMAL_SUBSYSTEM}/Fans"),
        "FanCollection",
        "Fan Collection",
        &fans,
    );
    for ((number, percent, rpm), path) in FANS.iter().zip(&fans) {
        let status = if *number == FAILED_FAN {
            json!({
                "State": "Enabled",
                "Health": "Critical",
                "Conditions": [faults.fan.condition()],
            })
        } else {
            status_ok()
        };
        tree.add(
            path,
            json!({
                "@odata.type": "#Fan.v1_6_0.Fan",
                "Id": format!("Fan{number}"),
                "Name": format!("System Fan {number}"),
                "Manufacturer": MANUFACTURER,
                "Model": "RF-4056 40x56 mm dual rotor",
                "PartNumber": "RF4056-DR",
                "PhysicalContext": "SystemBoard",
                "HotPluggable": true,
                "RatedSpeedRPM": 24_000,
                "SpeedPercent": {
                    "Reading": percent,
                    "SpeedRPM": rpm,
                    "DataSourceUri": sensor_path(&format!("Fan{number}")),
                },
                "Location": {
                    "PartLocation": {
                        "ServiceLabel": format!("Fan {number}"),
                        "LocationType": "Bay",
                        "LocationOrdinalValue": number.parse::<u32>().unwrap_or(1) - 1,
                    },
                },
                "Status": status,
            }),
        );
    }
}

/// A temperature sensor: id, name, physical context, reading and thresholds in degrees
/// Celsius (lower critical, upper caution, upper critical).
const TEMPERATURES: &[(&str, &str, &str, f64, f64, f64, f64)] = &[
    (
        "InletTemp",
        "System Board Inlet Temp",
        "Intake",
        23.0,
        3.0,
        38.0,
        42.0,
    ),
    (
        "ExhaustTemp",
        "System Board Exhaust Temp",
        "Exhaust",
        41.0,
        3.0,
        70.0,
        75.0,
    ),
    ("CPU1Temp", "CPU 1 Temp", "CPU", 58.0, 3.0, 93.0, 98.0),
    ("CPU2Temp", "CPU 2 Temp", "CPU", 61.0, 3.0, 93.0, 98.0),
    (
        "DIMMBankATemp",
        "DIMM Bank A Temp",
        "Memory",
        44.0,
        3.0,
        85.0,
        90.0,
    ),
    (
        "DIMMBankBTemp",
        "DIMM Bank B Temp",
        "Memory",
        46.0,
        3.0,
        85.0,
        90.0,
    ),
    (
        "RAIDTemp",
        "RAID Controller Temp",
        "StorageDevice",
        52.0,
        3.0,
        100.0,
        105.0,
    ),
    (
        "PSU1Temp",
        "PSU 1 Temp",
        "PowerSupply",
        35.0,
        3.0,
        65.0,
        70.0,
    ),
    (
        "PSU2Temp",
        "PSU 2 Temp",
        "PowerSupply",
        34.0,
        3.0,
        65.0,
        70.0,
    ),
];

/// A power, voltage or current sensor: id, name, physical context, type, units, reading.
const ELECTRICAL: &[(&str, &str, &str, &str, &str, f64)] = &[
    (
        "TotalPower",
        "System Input Power",
        "PowerSubsystem",
        "Power",
        "W",
        742.0,
    ),
    (
        "PSU1InputPower",
        "PSU 1 Input Power",
        "PowerSupply",
        "Power",
        "W",
        388.0,
    ),
    (
        "PSU2InputPower",
        "PSU 2 Input Power",
        "PowerSupply",
        "Power",
        "W",
        371.0,
    ),
    (
        "PSU1InputVoltage",
        "PSU 1 Input Voltage",
        "PowerSupply",
        "Voltage",
        "V",
        231.0,
    ),
    (
        "PSU2InputVoltage",
        "PSU 2 Input Voltage",
        "PowerSupply",
        "Voltage",
        "V",
        229.0,
    ),
    (
        "PSU1InputCurrent",
        "PSU 1 Input Current",
        "PowerSupply",
        "Current",
        "A",
        1.7,
    ),
    (
        "PSU2InputCurrent",
        "PSU 2 Input Current",
        "PowerSupply",
        "Current",
        "A",
        1.6,
    ),
];

/// Lower critical and lower caution thresholds of the fan speed sensors, in percent.
const FAN_LOWER_CRITICAL_PERCENT: f64 = 10.0;
const FAN_LOWER_CAUTION_PERCENT: f64 = 15.0;

fn add_sensors(tree: &mut Tree) {
    let mut sensors: Vec<(String, Value)> = Vec::new();

    for (id, name, context, reading, lower_critical, upper_caution, upper_critical) in TEMPERATURES
    {
        sensors.push((
            sensor_path(id),
            json!({
                "@odata.type": "#Sensor.v1_12_0.Sensor",
                "Id": id,
                "Name": name,
                "ReadingType": "Temperature",
                "ReadingUnits": "Cel",
                "Reading": reading,
                "PhysicalContext": context,
                "ReadingRangeMin": 0,
                "ReadingRangeMax": 127,
                "Thresholds": {
                    "LowerCritical": { "Reading": lower_critical },
                    "UpperCaution": { "Reading": upper_caution },
                    "UpperCritical": { "Reading": upper_critical },
                },
                "Status": status_ok(),
            }),
        ));
    }

    for (number, percent, rpm) in FANS {
        let id = format!("Fan{number}");
        let health = if f64::from(*percent) < FAN_LOWER_CRITICAL_PERCENT {
            "Critical"
        } else {
            "OK"
        };
        sensors.push((
            sensor_path(&id),
            json!({
                "@odata.type": "#Sensor.v1_12_0.Sensor",
                "Id": id,
                "Name": format!("System Fan {number} Speed"),
                "ReadingType": "Percent",
                "ReadingUnits": "%",
                "Reading": percent,
                "SpeedRPM": rpm,
                "PhysicalContext": "Fan",
                "ReadingRangeMin": 0,
                "ReadingRangeMax": 100,
                "Thresholds": {
                    "LowerCritical": { "Reading": FAN_LOWER_CRITICAL_PERCENT },
                    "LowerCaution": { "Reading": FAN_LOWER_CAUTION_PERCENT },
                },
                "Status": { "State": "Enabled", "Health": health },
            }),
        ));
    }

    for (id, name, context, reading_type, units, reading) in ELECTRICAL {
        sensors.push((
            sensor_path(id),
            json!({
                "@odata.type": "#Sensor.v1_12_0.Sensor",
                "Id": id,
                "Name": name,
                "ReadingType": reading_type,
                "ReadingUnits": units,
                "Reading": reading,
                "PhysicalContext": context,
                "Status": status_ok(),
            }),
        ));
    }

    let members: Vec<String> = sensors.iter().map(|(path, _)| path.clone()).collect();
    tree.add_collection(
        &format!("{CHASSIS}/Sensors"),
        "SensorCollection",
        "Sensor Collection",
        &members,
    );
    for (path, body) in sensors {
        tree.add(&path, body);
    }
}

/// One network adapter: id, model data, firmware, port speed in Gbit/s and the host
/// interface of each port.
struct AdapterSpec {
    id: &'static str,
    name: &'static str,
    manufacturer: &'static str,
    model: &'static str,
    part_number: &'static str,
    serial_number: &'static str,
    firmware: &'static str,
    speed_gbps: f64,
    ports: &'static [(&'static str, &'static str, bool)],
}

const ADAPTERS: &[AdapterSpec] = &[
    AdapterSpec {
        id: "NIC.Integrated.1",
        name: "OCP 3.0 Dual Port 25GbE SFP28 Adapter",
        manufacturer: "Broadcom Inc. and subsidiaries",
        model: "BCM57414 NetXtreme-E 10Gb/25Gb RDMA Ethernet Controller",
        part_number: "OCP-57414-2P",
        serial_number: "BC57414A2201873",
        firmware: "22.71.3",
        speed_gbps: 25.0,
        ports: &[
            ("1", "NIC.Integrated.1-1", true),
            ("2", "NIC.Integrated.1-2", true),
        ],
    },
    AdapterSpec {
        id: "NIC.Slot.1",
        name: "PCIe Dual Port 25GbE SFP28 Adapter",
        manufacturer: "Intel Corporation",
        model: "Intel(R) Ethernet 25G 2P E810-XXV Adapter",
        part_number: "E810XXVDA2",
        serial_number: "INE810X0990412",
        firmware: "4.40",
        speed_gbps: 25.0,
        ports: &[("1", "NIC.Slot.1-1", true), ("2", "NIC.Slot.1-2", false)],
    },
];

fn add_network_adapters(tree: &mut Tree) {
    let base = format!("{CHASSIS}/NetworkAdapters");
    let members: Vec<String> = ADAPTERS
        .iter()
        .map(|adapter| format!("{base}/{}", adapter.id))
        .collect();
    tree.add_collection(
        &base,
        "NetworkAdapterCollection",
        "Network Adapter Collection",
        &members,
    );

    for (adapter, path) in ADAPTERS.iter().zip(&members) {
        let ports: Vec<String> = adapter
            .ports
            .iter()
            .map(|(port, ..)| port_path(adapter.id, port))
            .collect();
        tree.add(
            path,
            json!({
                "@odata.type": "#NetworkAdapter.v1_14_0.NetworkAdapter",
                "Id": adapter.id,
                "Name": adapter.name,
                "Manufacturer": adapter.manufacturer,
                "Model": adapter.model,
                "PartNumber": adapter.part_number,
                "SerialNumber": adapter.serial_number,
                "Controllers": [{
                    "FirmwarePackageVersion": adapter.firmware,
                    "ControllerCapabilities": { "NetworkPortCount": adapter.ports.len() },
                    "Links": {
                        "Ports@odata.count": ports.len(),
                        "Ports": ports.iter().map(|port| link(port)).collect::<Vec<Value>>(),
                    },
                }],
                "Ports": link(&format!("{path}/Ports")),
                "Status": status_ok(),
            }),
        );
        tree.add_collection(
            &format!("{path}/Ports"),
            "PortCollection",
            "Port Collection",
            &ports,
        );
        for ((port, interface, link_up), port_uri) in adapter.ports.iter().zip(&ports) {
            let mac = system::host_mac(interface);
            tree.add(
                port_uri,
                json!({
                    "@odata.type": "#Port.v1_18_0.Port",
                    "Id": port,
                    "Name": format!("{} Port {port}", adapter.id),
                    "PortId": port,
                    "PortProtocol": "Ethernet",
                    "PortType": "BidirectionalPort",
                    "PortMedium": "Optical",
                    "MaxSpeedGbps": adapter.speed_gbps,
                    "CurrentSpeedGbps": if *link_up { adapter.speed_gbps } else { 0.0 },
                    "LinkState": "Enabled",
                    "LinkStatus": if *link_up { "LinkUp" } else { "LinkDown" },
                    "Ethernet": { "AssociatedMACAddresses": [mac] },
                    "Status": status_ok(),
                }),
            );
        }
    }
}
