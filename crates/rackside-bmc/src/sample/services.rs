//! The service root and the services below it: sessions, accounts, events, tasks and
//! updates with the firmware inventory.

use serde_json::{json, Value};

use super::{
    chassis, link, status_ok, system, Tree, ACCOUNTS_PATH, CHASSIS, MANAGER, MANUFACTURER, PRODUCT,
    ROOT, SESSIONS_PATH, SYSTEM,
};

const FIRMWARE_INVENTORY: &str = "/redfish/v1/UpdateService/FirmwareInventory";

/// Adds the service root and the services.
pub(super) fn add(tree: &mut Tree) {
    add_root(tree);
    add_session_service(tree);
    add_account_service(tree);
    add_event_service(tree);
    add_task_service(tree);
    add_update_service(tree);
}

fn add_root(tree: &mut Tree) {
    tree.add(
        ROOT,
        json!({
            "@odata.type": "#ServiceRoot.v1_20_0.ServiceRoot",
            "Id": "RootService",
            "Name": "Root Service",
            "RedfishVersion": "1.20.0",
            "UUID": "5b7a1e02-4c3d-4f5e-9a61-52534b31b3c0",
            "Product": PRODUCT,
            "Vendor": MANUFACTURER,
            "ProtocolFeaturesSupported": {
                "ExpandQuery": {
                    "ExpandAll": true,
                    "Levels": true,
                    "Links": true,
                    "NoLinks": true,
                    "MaxLevels": 3,
                },
                "FilterQuery": true,
                "SelectQuery": true,
                "OnlyMemberQuery": true,
                "ExcerptQuery": false,
                "TopSkipQuery": true,
            },
            "Systems": link("/redfish/v1/Systems"),
            "Chassis": link("/redfish/v1/Chassis"),
            "Managers": link("/redfish/v1/Managers"),
            "SessionService": link("/redfish/v1/SessionService"),
            "AccountService": link("/redfish/v1/AccountService"),
            "EventService": link("/redfish/v1/EventService"),
            "Tasks": link("/redfish/v1/TaskService"),
            "UpdateService": link("/redfish/v1/UpdateService"),
            "Registries": link("/redfish/v1/Registries"),
            "Links": { "Sessions": link(SESSIONS_PATH) },
        }),
    );
}

fn add_session_service(tree: &mut Tree) {
    tree.add(
        "/redfish/v1/SessionService",
        json!({
            "@odata.type": "#SessionService.v1_2_0.SessionService",
            "Id": "SessionService",
            "Name": "Session Service",
            "ServiceEnabled": true,
            // NOTE: 30 minutes, the core's default idle timeout; a core configured otherwise
            // must patch this value when it serves the resource.
            "SessionTimeout": 1800,
            "Sessions": link(SESSIONS_PATH),
            "Status": status_ok(),
        }),
    );
}

/// Predefined roles and the Redfish privileges each one grants.
const ROLES: &[(&str, &[&str])] = &[
    (
        "Administrator",
        &[
            "Login",
            "ConfigureManager",
            "ConfigureUsers",
            "ConfigureSelf",
            "ConfigureComponents",
        ],
    ),
    (
        "Operator",
        &["Login", "ConfigureSelf", "ConfigureComponents"],
    ),
    ("ReadOnly", &["Login", "ConfigureSelf"]),
];

fn add_account_service(tree: &mut Tree) {
    let roles_path = "/redfish/v1/AccountService/Roles";
    tree.add(
        "/redfish/v1/AccountService",
        json!({
            "@odata.type": "#AccountService.v1_18_1.AccountService",
            "Id": "AccountService",
            "Name": "Account Service",
            "ServiceEnabled": true,
            "LocalAccountAuth": "Enabled",
            "MinPasswordLength": 12,
            "MaxPasswordLength": 64,
            "AuthFailureLoggingThreshold": 1,
            // Failed logins do not lock accounts in the simulator, and 0 says so.
            "AccountLockoutThreshold": 0,
            "AccountLockoutDuration": 300,
            "AccountLockoutCounterResetAfter": 300,
            "Accounts": link(ACCOUNTS_PATH),
            "Roles": link(roles_path),
            "Status": status_ok(),
        }),
    );
    let members: Vec<String> = ROLES
        .iter()
        .map(|(role, _)| format!("{roles_path}/{role}"))
        .collect();
    tree.add_collection(roles_path, "RoleCollection", "Role Collection", &members);
    for ((role, privileges), path) in ROLES.iter().zip(&members) {
        tree.add(
            path,
            json!({
                "@odata.type": "#Role.v1_3_3.Role",
                "Id": role,
                "Name": format!("{role} Role"),
                "RoleId": role,
                "IsPredefined": true,
                "AssignedPrivileges": privileges,
                "OemPrivileges": [],
            }),
        );
    }
}

fn add_event_service(tree: &mut Tree) {
    let subscriptions = "/redfish/v1/EventService/Subscriptions";
    tree.add(
        "/redfish/v1/EventService",
        json!({
            "@odata.type": "#EventService.v1_12_0.EventService",
            "Id": "EventService",
            "Name": "Event Service",
            "ServiceEnabled": false,
            "DeliveryRetryAttempts": 3,
            "DeliveryRetryIntervalSeconds": 30,
            "EventFormatTypes": ["Event"],
            "RegistryPrefixes": ["Base", "ResourceEvent", "TaskEvent"],
            "Subscriptions": link(subscriptions),
            "Status": { "State": "Disabled" },
        }),
    );
    tree.add_collection(
        subscriptions,
        "EventDestinationCollection",
        "Event Subscription Collection",
        &[],
    );
}

fn add_task_service(tree: &mut Tree) {
    let tasks = "/redfish/v1/TaskService/Tasks";
    tree.add(
        "/redfish/v1/TaskService",
        json!({
            "@odata.type": "#TaskService.v1_3_0.TaskService",
            "Id": "TaskService",
            "Name": "Task Service",
            "ServiceEnabled": true,
            "CompletedTaskOverWritePolicy": "Oldest",
            "LifeCycleEventOnTaskStateChange": true,
            "Tasks": link(tasks),
            "Status": status_ok(),
        }),
    );
    tree.add_collection(tasks, "TaskCollection", "Task Collection", &[]);
}

/// One installed firmware image: id, name, version, release date, vendor, component URIs.
struct Firmware {
    id: &'static str,
    name: &'static str,
    version: &'static str,
    release_date: &'static str,
    manufacturer: &'static str,
    related: Vec<String>,
}

fn firmware_images() -> Vec<Firmware> {
    let ssd_sata: Vec<String> = ["0", "1"]
        .iter()
        .map(|bay| system::drive_path(bay))
        .collect();
    let ssd_sas: Vec<String> = ["2", "3"]
        .iter()
        .map(|bay| system::drive_path(bay))
        .collect();
    let hdd: Vec<String> = ["4", "5", "6", "7"]
        .iter()
        .map(|bay| system::drive_path(bay))
        .collect();
    vec![
        Firmware {
            id: "Installed-BIOS",
            name: "BIOS",
            version: "2.4.1",
            release_date: "2026-05-12T00:00:00Z",
            manufacturer: MANUFACTURER,
            related: vec![SYSTEM.to_owned()],
        },
        Firmware {
            id: "Installed-BMC",
            name: "Rackside BMC",
            version: "3.10.15.00",
            release_date: "2026-06-03T00:00:00Z",
            manufacturer: MANUFACTURER,
            related: vec![MANAGER.to_owned()],
        },
        Firmware {
            id: "Installed-CPLD",
            name: "System CPLD",
            version: "1.0.7",
            release_date: "2025-11-20T00:00:00Z",
            manufacturer: MANUFACTURER,
            related: vec![CHASSIS.to_owned()],
        },
        Firmware {
            id: "Installed-NIC.Integrated.1",
            name: "Broadcom BCM57414 Family Firmware",
            version: "22.71.3",
            release_date: "2026-02-17T00:00:00Z",
            manufacturer: "Broadcom Inc. and subsidiaries",
            related: vec![format!("{CHASSIS}/NetworkAdapters/NIC.Integrated.1")],
        },
        Firmware {
            id: "Installed-NIC.Slot.1",
            name: "Intel E810 Family Firmware",
            version: "4.40",
            release_date: "2026-01-29T00:00:00Z",
            manufacturer: "Intel Corporation",
            related: vec![format!("{CHASSIS}/NetworkAdapters/NIC.Slot.1")],
        },
        Firmware {
            id: "Installed-RAID.Integrated.1",
            name: "RS-9540-8i RAID Controller Firmware",
            version: "52.26.0-5179",
            release_date: "2026-03-09T00:00:00Z",
            manufacturer: MANUFACTURER,
            related: vec![format!("{}/Controllers/0", system::storage_path())],
        },
        Firmware {
            id: "Installed-Disk.SATA-SSD",
            name: "Samsung PM893 SATA SSD Firmware",
            version: "JXTC604Q",
            release_date: "2025-09-15T00:00:00Z",
            manufacturer: "Samsung",
            related: ssd_sata,
        },
        Firmware {
            id: "Installed-Disk.SAS-SSD",
            name: "KIOXIA PM7-R SAS SSD Firmware",
            version: "0103",
            release_date: "2025-10-02T00:00:00Z",
            manufacturer: "KIOXIA",
            related: ssd_sas,
        },
        Firmware {
            id: "Installed-Disk.SAS-HDD",
            name: "Seagate Exos 10E2400 SAS HDD Firmware",
            version: "C004",
            release_date: "2024-12-04T00:00:00Z",
            manufacturer: "SEAGATE",
            related: hdd,
        },
        Firmware {
            id: "Installed-PSU",
            name: "RPS-1100T Power Supply Firmware",
            version: "00.1D.7A",
            release_date: "2025-06-23T00:00:00Z",
            manufacturer: MANUFACTURER,
            related: vec![
                chassis::power_supply_path("1"),
                chassis::power_supply_path("2"),
            ],
        },
        Firmware {
            id: "Installed-TPM",
            name: "TPM 2.0 Firmware",
            version: "7.2.3.1",
            release_date: "2024-08-30T00:00:00Z",
            manufacturer: "Infineon",
            related: vec![SYSTEM.to_owned()],
        },
    ]
}

fn add_update_service(tree: &mut Tree) {
    tree.add(
        "/redfish/v1/UpdateService",
        json!({
            "@odata.type": "#UpdateService.v1_17_0.UpdateService",
            "Id": "UpdateService",
            "Name": "Update Service",
            "ServiceEnabled": true,
            "FirmwareInventory": link(FIRMWARE_INVENTORY),
            "Status": status_ok(),
        }),
    );
    let images = firmware_images();
    let members: Vec<String> = images
        .iter()
        .map(|image| format!("{FIRMWARE_INVENTORY}/{}", image.id))
        .collect();
    tree.add_collection(
        FIRMWARE_INVENTORY,
        "SoftwareInventoryCollection",
        "Firmware Inventory Collection",
        &members,
    );
    for (image, path) in images.iter().zip(&members) {
        let related: Vec<Value> = image.related.iter().map(|uri| link(uri)).collect();
        tree.add(
            path,
            json!({
                "@odata.type": "#SoftwareInventory.v1_13_0.SoftwareInventory",
                "Id": image.id,
                "Name": image.name,
                "Version": image.version,
                "ReleaseDate": image.release_date,
                "Manufacturer": image.manufacturer,
                "SoftwareId": image.id.trim_start_matches("Installed-"),
                "Updateable": true,
                "RelatedItem@odata.count": related.len(),
                "RelatedItem": related,
                "Status": status_ok(),
            }),
        );
    }
}
