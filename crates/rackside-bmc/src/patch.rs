//! PATCH: the writable properties of each resource type, checked all at once so that a request
//! with one bad property changes nothing.

use std::time::Duration;

use http::StatusCode;
use serde_json::{Map, Value};

use crate::config::{Role, Secret, UserAccount};
use crate::fault::{Fault, Faults};
use crate::logs::clip;
use crate::reply::{msg, ErrorReply, Message};
use crate::state::Inner;

const LED_VALUES: &[&str] = &["Lit", "Blinking", "Off"];
const OVERRIDE_ENABLED: &[&str] = &["Disabled", "Once", "Continuous"];
const OVERRIDE_MODES: &[&str] = &["UEFI", "Legacy"];
const STANDARD_BOOT_TARGETS: &[&str] = &[
    "None",
    "Pxe",
    "Floppy",
    "Cd",
    "Usb",
    "Hdd",
    "BiosSetup",
    "Utilities",
    "Diags",
    "UefiShell",
    "UefiTarget",
    "SDCard",
    "UefiHttp",
    "RemoteDrive",
    "UefiBootNext",
];

/// Check applied to the value of a writable property.
#[derive(Clone, Copy)]
enum Rule {
    Text,
    Flag,
    /// One of these values, or of the values in the property's `@Redfish.AllowableValues`
    /// annotation when the resource has one.
    OneOf(&'static [&'static str]),
    Seconds {
        min: u64,
        max: u64,
    },
    /// A whole number in a range; outside it gets `PropertyValueOutOfRange`.
    Integer {
        min: i64,
        max: i64,
    },
    BootTarget,
    /// An array of strings, patched element by element: `null` removes an element, `{}` keeps
    /// it, and elements past the end of the request are removed.
    TextList,
    /// A password: checked as text, kept in the account list and never written into the body.
    Password,
    /// A DNS label such as `rks1u01-bmc`.
    HostName,
    /// A fully qualified domain name.
    Fqdn,
    /// `IPv4StaticAddresses` of an Ethernet interface.
    Ipv4Statics,
    /// `StaticNameServers` of an Ethernet interface.
    NameServers,
    /// An object whose own properties follow these rules.
    Object(&'static [(&'static str, Rule)]),
}

/// Lists the writable top-level properties of a resource type (the schema name in `@odata.type`).
fn writable(schema: &str) -> &'static [(&'static str, Rule)] {
    match schema {
        "ComputerSystem" => &[
            ("AssetTag", Rule::Text),
            ("HostName", Rule::Text),
            ("IndicatorLED", Rule::OneOf(LED_VALUES)),
            ("LocationIndicatorActive", Rule::Flag),
            ("Boot", Rule::Object(BOOT_WRITABLE)),
        ],
        "Chassis" => &[
            ("AssetTag", Rule::Text),
            ("IndicatorLED", Rule::OneOf(LED_VALUES)),
            ("LocationIndicatorActive", Rule::Flag),
            ("Location", Rule::Object(LOCATION_WRITABLE)),
        ],
        "Drive" => &[
            ("AssetTag", Rule::Text),
            ("IndicatorLED", Rule::OneOf(LED_VALUES)),
            ("LocationIndicatorActive", Rule::Flag),
        ],
        "EthernetInterface" => &[
            ("HostName", Rule::HostName),
            ("FQDN", Rule::Fqdn),
            ("DHCPv4", Rule::Object(DHCP_WRITABLE)),
            ("IPv4StaticAddresses", Rule::Ipv4Statics),
            ("StaticNameServers", Rule::NameServers),
            ("VLAN", Rule::Object(VLAN_WRITABLE)),
        ],
        "ManagerNetworkProtocol" => &[
            ("HostName", Rule::Text),
            ("NTP", Rule::Object(NTP_WRITABLE)),
        ],
        "ManagerAccount" => &[
            ("UserName", Rule::Text),
            ("Password", Rule::Password),
            (
                "RoleId",
                Rule::OneOf(&["Administrator", "Operator", "ReadOnly", "None"]),
            ),
            ("Enabled", Rule::Flag),
        ],
        "SessionService" => &[(
            "SessionTimeout",
            Rule::Seconds {
                min: 30,
                max: 86400,
            },
        )],
        // iDRAC's attribute resources: only the server topology (location) attributes.
        "DellAttributes" => &[("Attributes", Rule::Object(DELL_TOPOLOGY_WRITABLE))],
        _ => &[],
    }
}

/// The writable properties inside `Boot`.
const BOOT_WRITABLE: &[(&str, Rule)] = &[
    ("BootSourceOverrideTarget", Rule::BootTarget),
    ("BootSourceOverrideEnabled", Rule::OneOf(OVERRIDE_ENABLED)),
    ("BootSourceOverrideMode", Rule::OneOf(OVERRIDE_MODES)),
];

/// The writable properties inside `NTP` of `ManagerNetworkProtocol`.
const NTP_WRITABLE: &[(&str, Rule)] = &[
    ("NTPServers", Rule::TextList),
    ("ProtocolEnabled", Rule::Flag),
];

/// The writable properties inside `DHCPv4` of an Ethernet interface.
const DHCP_WRITABLE: &[(&str, Rule)] = &[
    ("DHCPEnabled", Rule::Flag),
    ("UseDNSServers", Rule::Flag),
    ("UseGateway", Rule::Flag),
    ("UseNTPServers", Rule::Flag),
    ("UseDomainName", Rule::Flag),
];

/// The writable properties inside `VLAN` of an Ethernet interface.
const VLAN_WRITABLE: &[(&str, Rule)] = &[
    ("VLANEnable", Rule::Flag),
    ("VLANId", Rule::Integer { min: 1, max: 4094 }),
    ("VLANPriority", Rule::Integer { min: 0, max: 7 }),
];

/// The writable properties inside `Location` of a chassis.
const LOCATION_WRITABLE: &[(&str, Rule)] = &[
    ("Info", Rule::Text),
    ("InfoFormat", Rule::Text),
    ("Placement", Rule::Object(PLACEMENT_WRITABLE)),
    ("PostalAddress", Rule::Object(POSTAL_WRITABLE)),
    ("PartLocation", Rule::Object(PART_LOCATION_WRITABLE)),
];

const PLACEMENT_WRITABLE: &[(&str, Rule)] = &[
    ("Row", Rule::Text),
    ("Rack", Rule::Text),
    ("RackOffsetUnits", Rule::OneOf(&["OpenU", "EIA_310"])),
    ("RackOffset", Rule::Integer { min: 0, max: 100 }),
    ("AdditionalInfo", Rule::Text),
];

const POSTAL_WRITABLE: &[(&str, Rule)] = &[
    ("Country", Rule::Text),
    ("Territory", Rule::Text),
    ("City", Rule::Text),
    ("Street", Rule::Text),
    (
        "HouseNumber",
        Rule::Integer {
            min: 0,
            max: 999_999,
        },
    ),
    ("Name", Rule::Text),
    ("PostalCode", Rule::Text),
    ("Building", Rule::Text),
    ("Floor", Rule::Text),
    ("Room", Rule::Text),
    ("Location", Rule::Text),
    ("AdditionalInfo", Rule::Text),
];

const PART_LOCATION_WRITABLE: &[(&str, Rule)] = &[
    ("ServiceLabel", Rule::Text),
    (
        "LocationType",
        Rule::OneOf(&[
            "Slot",
            "Bay",
            "Connector",
            "Socket",
            "Backplane",
            "Embedded",
        ]),
    ),
    ("LocationOrdinalValue", Rule::Integer { min: 0, max: 1000 }),
];

/// The iDRAC attributes that hold the server's place in the data center.
const DELL_TOPOLOGY_WRITABLE: &[(&str, Rule)] = &[
    ("ServerTopology.1.DataCenterName", Rule::Text),
    ("ServerTopology.1.RoomName", Rule::Text),
    ("ServerTopology.1.AisleName", Rule::Text),
    ("ServerTopology.1.RackName", Rule::Text),
    (
        "ServerTopology.1.RackSlot",
        Rule::Integer { min: 1, max: 255 },
    ),
];

/// Returns the schema name of a body, `ComputerSystem` for `#ComputerSystem.v1_20_0.ComputerSystem`.
pub(crate) fn schema_of(body: &Value) -> &str {
    body.get("@odata.type")
        .and_then(Value::as_str)
        .and_then(|t| t.trim_start_matches('#').split('.').next())
        .unwrap_or_default()
}

/// Checks whether a resource has any property that PATCH may change.
pub(crate) fn is_patchable(body: &Value) -> bool {
    writable(schema_of(body))
        .iter()
        .any(|(name, _)| body.get(*name).is_some())
}

/// Checks `request` against the resource at `path` and applies it.
///
/// Returns the changed properties as `(name, value)` for the lifecycle log.
pub(crate) fn apply(
    inner: &mut Inner,
    path: &str,
    request: &Map<String, Value>,
    faults: &Faults,
) -> Result<Vec<(String, String)>, ErrorReply> {
    let current = inner.tree.json(path).cloned().unwrap_or_default();
    let legacy_led = faults.contains(Fault::LegacyIndicatorLed);
    let rules = writable(schema_of(&current));
    let mut errors = Vec::new();
    let mut changes: Vec<(String, Value)> = Vec::new();

    for (name, value) in request {
        if name.starts_with('@') {
            continue;
        }
        let present = match name.as_str() {
            "LocationIndicatorActive" if legacy_led => false,
            "IndicatorLED" if legacy_led => {
                current.get("IndicatorLED").is_some()
                    || current.get("LocationIndicatorActive").is_some()
            }
            // Services may leave the write-only password out of the body.
            "Password" => rules.iter().any(|(n, _)| *n == "Password"),
            // A chassis without a recorded location gets one.
            "Location" => rules.iter().any(|(n, _)| *n == "Location"),
            _ => current.get(name).is_some(),
        };
        let rule = rules.iter().find(|(n, _)| n == name).map(|(_, r)| *r);
        match (present, rule) {
            (false, _) => errors.push(msg::property_unknown(name)),
            (true, None) => errors.push(msg::property_not_writable(name)),
            (true, Some(Rule::Object(inner_rules))) => check_object(
                &current,
                name,
                inner_rules,
                value,
                current.get(name),
                &mut errors,
                &mut changes,
            ),
            (true, Some(rule)) => match check(&current, rule, name, value, current.get(name)) {
                Ok(result) => changes.push((name.clone(), result)),
                Err(message) => errors.push(message),
            },
        }
    }
    let led = request.get("IndicatorLED").and_then(Value::as_str);
    let active = request
        .get("LocationIndicatorActive")
        .and_then(Value::as_bool);
    if let (Some(led), Some(active)) = (led, active) {
        if (led != "Off") != active {
            errors.push(msg::property_value_conflict(
                "IndicatorLED",
                "LocationIndicatorActive",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ErrorReply::many(StatusCode::BAD_REQUEST, errors));
    }

    let defer_mode = faults.contains(Fault::BootOverrideOnce);
    let mut logged = Vec::new();
    let mut new_password = None;
    for (name, value) in changes {
        if name == "Password" {
            new_password = value.as_str().map(Secret::new);
            logged.push((name, "a new value".to_owned()));
            continue;
        }
        logged.push((name.clone(), value_text(&value)));
        if name == "Boot/BootSourceOverrideMode" && defer_mode {
            if let Some(mode) = value.as_str() {
                inner
                    .pending_boot_mode
                    .insert(path.to_owned(), mode.to_owned());
            }
            continue;
        }
        if name == "SessionTimeout" {
            if let Some(seconds) = value.as_u64() {
                inner.idle_timeout = Duration::from_secs(seconds);
            }
        }
        inner.tree.update(path, |body| set(body, &name, value));
    }
    if schema_of(&current) == "ManagerAccount" {
        update_account(inner, path, new_password);
    }
    let led_changed = logged
        .iter()
        .any(|(name, _)| name == "IndicatorLED" || name == "LocationIndicatorActive");
    if led_changed {
        mirror_identify_led(inner, path);
    }
    if schema_of(&current) == "EthernetInterface" {
        let changed: Vec<String> = logged.iter().map(|(name, _)| name.clone()).collect();
        inner
            .tree
            .update(path, |body| crate::network::settle(body, &changed));
        share_host_name(inner, path);
    }
    Ok(logged)
}

/// Copies the identify LED state of the system or chassis at `path` to its one linked chassis
/// or system, because both show the same LED when one system fills one chassis.
fn mirror_identify_led(inner: &mut Inner, path: &str) {
    let body = inner.tree.json(path).cloned().unwrap_or_default();
    let (links, back) = match schema_of(&body) {
        "ComputerSystem" => ("/Links/Chassis", "/Links/ComputerSystems"),
        "Chassis" => ("/Links/ComputerSystems", "/Links/Chassis"),
        _ => return,
    };
    let single = |value: &Value, pointer: &str| -> Option<String> {
        match value.pointer(pointer)?.as_array()?.as_slice() {
            [only] => only
                .get("@odata.id")
                .and_then(Value::as_str)
                .map(crate::tree::normalize_path),
            _ => None,
        }
    };
    let Some(other) = single(&body, links) else {
        return;
    };
    let linked_back = inner
        .tree
        .json(&other)
        .and_then(|o| single(o, back))
        .as_deref()
        == Some(path);
    if !linked_back {
        return;
    }
    let led = match body.get("IndicatorLED").and_then(Value::as_str) {
        Some(led) => led.to_owned(),
        None if body.get("LocationIndicatorActive") == Some(&Value::Bool(true)) => "Lit".into(),
        None => "Off".into(),
    };
    inner.tree.update(&other, |target| {
        let Some(map) = target.as_object_mut() else {
            return;
        };
        if map.contains_key("IndicatorLED") {
            map.insert("IndicatorLED".into(), Value::String(led.clone()));
        }
        if map.contains_key("LocationIndicatorActive") {
            map.insert("LocationIndicatorActive".into(), Value::Bool(led != "Off"));
        }
    });
}

/// Copies `HostName` and `FQDN` of a manager's Ethernet interface at `path` to the manager's
/// network protocol settings, which report the same BMC name on a real BMC.
fn share_host_name(inner: &mut Inner, path: &str) {
    let Some(manager) = inner.manager_path.clone() else {
        return;
    };
    if !path.starts_with(&format!("{manager}/")) {
        return;
    }
    let Some(protocol) = inner
        .tree
        .json(&manager)
        .and_then(|m| m.pointer("/NetworkProtocol/@odata.id"))
        .and_then(Value::as_str)
        .map(crate::tree::normalize_path)
    else {
        return;
    };
    let nic = inner.tree.json(path).cloned().unwrap_or_default();
    inner.tree.update(&protocol, |settings| {
        let Some(map) = settings.as_object_mut() else {
            return;
        };
        for key in ["HostName", "FQDN"] {
            if let (Some(value), true) = (nic.get(key), map.contains_key(key)) {
                map.insert(key.to_owned(), value.clone());
            }
        }
    });
}

/// Makes the account resource at `path` usable for login once it has a user name, a password,
/// a role and is enabled; otherwise removes it from the accounts.
fn update_account(inner: &mut Inner, path: &str, new_password: Option<Secret>) {
    let body = inner.tree.json(path).cloned().unwrap_or_default();
    if let Some(password) = new_password {
        inner.accounts.set_patched_password(path, password);
    }
    let password = inner.accounts.patched_password(path);
    let name = body
        .get("UserName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let enabled = body.get("Enabled").and_then(Value::as_bool).unwrap_or(true);
    let role = match body.get("RoleId").and_then(Value::as_str) {
        Some("Administrator") => Some(Role::Administrator),
        Some("Operator") => Some(Role::Operator),
        Some("ReadOnly") => Some(Role::ReadOnly),
        _ => None,
    };
    let account = match (password, role) {
        (Some(password), Some(role)) if enabled && !name.is_empty() => Some(UserAccount {
            name: name.to_owned(),
            password,
            role,
        }),
        _ => None,
    };
    inner.accounts.set_patched(path, account);
}

/// Checks one value and returns the value to store.
fn check(
    current: &Value,
    rule: Rule,
    name: &str,
    value: &Value,
    old: Option<&Value>,
) -> Result<Value, Message> {
    let type_error = || msg::property_value_type_error(&value_text(value), name);
    match rule {
        Rule::Text | Rule::Password => value.as_str().map(|_| value.clone()).ok_or_else(type_error),
        Rule::Flag => value
            .as_bool()
            .map(|_| value.clone())
            .ok_or_else(type_error),
        Rule::OneOf(values) => {
            let text = value.as_str().ok_or_else(type_error)?;
            let annotation = format!("/{name}@Redfish.AllowableValues");
            let advertised: Option<Vec<&str>> = current
                .pointer(&annotation)
                .and_then(Value::as_array)
                .map(|list| list.iter().filter_map(Value::as_str).collect());
            let allowed = advertised.unwrap_or_else(|| values.to_vec());
            if allowed.contains(&text) {
                Ok(value.clone())
            } else {
                Err(msg::property_value_not_in_list(&clip(text), name))
            }
        }
        Rule::Integer { min, max } => {
            let number = value.as_i64().ok_or_else(type_error)?;
            if (min..=max).contains(&number) {
                Ok(value.clone())
            } else {
                Err(msg::property_value_out_of_range(&number.to_string(), name))
            }
        }
        Rule::HostName => crate::network::host_name(value, name),
        Rule::Fqdn => crate::network::fqdn(value, name),
        Rule::Ipv4Statics => crate::network::ipv4_statics(value, old),
        Rule::NameServers => crate::network::name_servers(value),
        Rule::Seconds { min, max } => {
            let seconds = value.as_u64().ok_or_else(type_error)?;
            if (min..=max).contains(&seconds) {
                Ok(value.clone())
            } else {
                Err(msg::property_value_out_of_range(&seconds.to_string(), name))
            }
        }
        Rule::BootTarget => {
            let text = value.as_str().ok_or_else(type_error)?;
            let allowed: Vec<&str> = current
                .pointer("/Boot/BootSourceOverrideTarget@Redfish.AllowableValues")
                .and_then(Value::as_array)
                .map(|values| values.iter().filter_map(Value::as_str).collect())
                .unwrap_or_else(|| STANDARD_BOOT_TARGETS.to_vec());
            if allowed.contains(&text) {
                Ok(value.clone())
            } else {
                Err(msg::property_value_not_in_list(&clip(text), name))
            }
        }
        Rule::TextList => {
            let request = value.as_array().ok_or_else(type_error)?;
            let old = old.and_then(Value::as_array).cloned().unwrap_or_default();
            let mut result = Vec::new();
            for (index, item) in request.iter().enumerate() {
                match item {
                    Value::Null => {}
                    Value::Object(map) if map.is_empty() => result.extend(old.get(index).cloned()),
                    Value::String(_) => result.push(item.clone()),
                    _ => return Err(msg::property_value_type_error(&value_text(item), name)),
                }
            }
            Ok(Value::Array(result))
        }
        Rule::Object(_) => Err(type_error()),
    }
}

/// Checks the properties of a writable object such as `Boot`; changes are named `Boot/X`,
/// and nested objects `Location/Placement/Row`. A property the rules name may be set even
/// where the resource does not show it yet.
fn check_object(
    current: &Value,
    name: &str,
    rules: &[(&str, Rule)],
    value: &Value,
    existing: Option<&Value>,
    errors: &mut Vec<Message>,
    changes: &mut Vec<(String, Value)>,
) {
    let Some(request) = value.as_object() else {
        errors.push(msg::property_value_type_error(&value_text(value), name));
        return;
    };
    let existing = existing.cloned().unwrap_or_default();
    for (inner_name, item) in request {
        if inner_name.starts_with('@') {
            continue;
        }
        let full = format!("{name}/{inner_name}");
        let rule = rules.iter().find(|(n, _)| n == inner_name).map(|(_, r)| *r);
        match (existing.get(inner_name).is_some(), rule) {
            (false, None) => errors.push(msg::property_unknown(&full)),
            (true, None) => errors.push(msg::property_not_writable(&full)),
            (_, Some(Rule::Object(nested))) => check_object(
                current,
                &full,
                nested,
                item,
                existing.get(inner_name),
                errors,
                changes,
            ),
            (_, Some(rule)) => match check(current, rule, &full, item, existing.get(inner_name)) {
                Ok(result) => changes.push((full, result)),
                Err(message) => errors.push(message),
            },
        }
    }
}

/// Sets `name` (`Boot/X` for nested properties) and keeps the two identify-LED properties in
/// agreement when a resource has both.
fn set(body: &mut Value, name: &str, value: Value) {
    let Some(map) = body.as_object_mut() else {
        return;
    };
    if let Some((outer, rest)) = name.split_once('/') {
        let child = map
            .entry(outer.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if child.is_object() {
            set(child, rest, value);
        }
        return;
    }
    match name {
        "IndicatorLED" => {
            let lit = value.as_str() != Some("Off");
            if map.contains_key("LocationIndicatorActive") {
                map.insert("LocationIndicatorActive".into(), Value::Bool(lit));
            }
            if map.contains_key("IndicatorLED") {
                map.insert("IndicatorLED".into(), value);
            }
        }
        "LocationIndicatorActive" => {
            if map.contains_key("IndicatorLED") {
                let led = if value.as_bool() == Some(true) {
                    "Lit"
                } else {
                    "Off"
                };
                map.insert("IndicatorLED".into(), led.into());
            }
            map.insert(name.to_owned(), value);
        }
        _ => {
            map.insert(name.to_owned(), value);
        }
    }
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}
