//! The BMC manager: network protocols, its Ethernet interface and the two log services.

use serde_json::json;

use super::logs::{Logs, LIFECYCLE_ENTRIES};
use super::{link, status_ok, Tree, CHASSIS, LIFECYCLE_LOG, MANAGER, SEL, SYSTEM};

const BMC_MAC: &str = "02:1B:2C:3A:00:01";
const BMC_ADDRESS: &str = "192.0.2.10";
/// The IPv6 link-local address formed from [`BMC_MAC`].
const BMC_LINK_LOCAL: &str = "fe80::1b:2cff:fe3a:1";

/// Adds the manager and everything below it.
pub(super) fn add(tree: &mut Tree, logs: &Logs) {
    tree.add_collection(
        "/redfish/v1/Managers",
        "ManagerCollection",
        "Manager Collection",
        &[MANAGER.to_owned()],
    );
    tree.add(
        MANAGER,
        json!({
            "@odata.type": "#Manager.v1_24_0.Manager",
            "Id": "1",
            "Name": "Manager",
            "Description": "Baseboard management controller",
            "ManagerType": "BMC",
            "Manufacturer": "Rackside",
            "Model": "Rackside BMC 2",
            "FirmwareVersion": "3.10.15.00",
            "UUID": "5b7a1e02-4c3d-4f5e-9a61-52534b31b3c0",
            "ServiceEntryPointUUID": "5b7a1e02-4c3d-4f5e-9a61-52534b31b3c0",
            "PowerState": "On",
            // NOTE: a fixed clock shortly after the newest log entry; a live core may
            // replace it with the current time.
            "DateTime": logs.now,
            "DateTimeLocalOffset": "+00:00",
            "LastResetTime": "2026-10-20T04:12:55+00:00",
            "TimeZoneName": "UTC",
            "GraphicalConsole": {
                "ServiceEnabled": true,
                "MaxConcurrentSessions": 6,
                "ConnectTypesSupported": ["KVMIP"],
            },
            "CommandShell": {
                "ServiceEnabled": true,
                "MaxConcurrentSessions": 4,
                "ConnectTypesSupported": ["SSH"],
            },
            "Status": status_ok(),
            "NetworkProtocol": link(&format!("{MANAGER}/NetworkProtocol")),
            "EthernetInterfaces": link(&format!("{MANAGER}/EthernetInterfaces")),
            "LogServices": link(&format!("{MANAGER}/LogServices")),
            "Links": {
                "ManagerForServers": [link(SYSTEM)],
                "ManagerForChassis": [link(CHASSIS)],
                "ManagerInChassis": link(CHASSIS),
            },
        }),
    );
    add_network(tree);
    add_log_services(tree, &logs.now);
}

fn add_network(tree: &mut Tree) {
    tree.add(
        &format!("{MANAGER}/NetworkProtocol"),
        json!({
            "@odata.type": "#ManagerNetworkProtocol.v1_12_0.ManagerNetworkProtocol",
            "Id": "NetworkProtocol",
            "Name": "Manager Network Protocol",
            "HostName": "rks1u01-bmc",
            "FQDN": "rks1u01-bmc.example.net",
            "HTTP": { "ProtocolEnabled": false, "Port": 80 },
            "HTTPS": { "ProtocolEnabled": true, "Port": 443 },
            "SSH": { "ProtocolEnabled": true, "Port": 22 },
            "IPMI": { "ProtocolEnabled": false, "Port": 623 },
            "SNMP": { "ProtocolEnabled": false, "Port": 161 },
            "SSDP": { "ProtocolEnabled": false, "Port": 1900 },
            "NTP": {
                "ProtocolEnabled": true,
                "Port": 123,
                "NTPServers": ["192.0.2.5", "192.0.2.6"],
            },
            "Status": status_ok(),
        }),
    );

    let interfaces = format!("{MANAGER}/EthernetInterfaces");
    let nic = format!("{interfaces}/NIC.1");
    tree.add_collection(
        &interfaces,
        "EthernetInterfaceCollection",
        "Manager Ethernet Interface Collection",
        std::slice::from_ref(&nic),
    );
    tree.add(
        &nic,
        json!({
            "@odata.type": "#EthernetInterface.v1_12_4.EthernetInterface",
            "Id": "NIC.1",
            "Name": "Manager Ethernet Interface",
            "Description": "Dedicated management port",
            "MACAddress": BMC_MAC,
            "PermanentMACAddress": BMC_MAC,
            "SpeedMbps": 1000,
            "FullDuplex": true,
            "AutoNeg": true,
            "InterfaceEnabled": true,
            "LinkStatus": "LinkUp",
            "HostName": "rks1u01-bmc",
            "FQDN": "rks1u01-bmc.example.net",
            "DHCPv4": { "DHCPEnabled": false },
            "IPv4Addresses": [{
                "Address": BMC_ADDRESS,
                "SubnetMask": "255.255.255.0",
                "AddressOrigin": "Static",
                "Gateway": "192.0.2.1",
            }],
            "IPv4StaticAddresses": [{
                "Address": BMC_ADDRESS,
                "SubnetMask": "255.255.255.0",
                "Gateway": "192.0.2.1",
            }],
            "StaticNameServers": ["192.0.2.2", "192.0.2.3"],
            "NameServers": ["192.0.2.2", "192.0.2.3"],
            "IPv6Addresses": [{
                "Address": BMC_LINK_LOCAL,
                "PrefixLength": 64,
                "AddressOrigin": "LinkLocal",
                "AddressState": "Preferred",
            }],
            "IPv6StaticAddresses": [],
            "IPv6DefaultGateway": "fe80::1",
            "IPv6StaticDefaultGateways": [],
            "VLAN": {
                "VLANEnable": false,
                "VLANId": 1,
                "VLANPriority": 0,
                "Tagged": false,
            },
            "Status": status_ok(),
        }),
    );
}

fn add_log_services(tree: &mut Tree, now: &str) {
    let services = format!("{MANAGER}/LogServices");
    let lifecycle = format!("{services}/Lclog");
    let sel = format!("{services}/Sel");
    tree.add_collection(
        &services,
        "LogServiceCollection",
        "Log Service Collection",
        &[lifecycle.clone(), sel.clone()],
    );
    tree.add(
        &lifecycle,
        json!({
            "@odata.type": "#LogService.v1_9_0.LogService",
            "Id": "Lclog",
            "Name": "Lifecycle Log",
            "Description": "Lifecycle log: audit, configuration, firmware and hardware events",
            "LogEntryType": "Event",
            "MaxNumberOfRecords": 10 * LIFECYCLE_ENTRIES,
            "OverWritePolicy": "WrapsWhenFull",
            "DateTime": now,
            "DateTimeLocalOffset": "+00:00",
            "ServiceEnabled": true,
            "Entries": link(LIFECYCLE_LOG),
            "Status": status_ok(),
        }),
    );
    tree.add(
        &sel,
        json!({
            "@odata.type": "#LogService.v1_9_0.LogService",
            "Id": "Sel",
            "Name": "System Event Log",
            "Description": "IPMI system event log",
            "LogEntryType": "SEL",
            "MaxNumberOfRecords": 1024,
            "OverWritePolicy": "WrapsWhenFull",
            "DateTime": now,
            "DateTimeLocalOffset": "+00:00",
            "ServiceEnabled": true,
            "Entries": link(SEL),
            "Status": status_ok(),
        }),
    );
}
