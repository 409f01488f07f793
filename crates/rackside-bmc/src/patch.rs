//! PATCH: the writable properties of each resource type, checked all at once so that a request
//! with one bad property changes nothing.

use std::time::Duration;

use http::StatusCode;
use serde_json::{Map, Value};

use crate::config::{Role, Secret, UserAccount};
use crate::fault::{Fault, Faults};
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
    OneOf(&'static [&'static str]),
    Seconds {
        min: u64,
        max: u64,
    },
    BootTarget,
    /// An array of strings, patched element by element: `null` removes an element, `{}` keeps
    /// it, and elements past the end of the request are removed.
    TextList,
    /// A password: checked as text, kept in the account list and never written into the body.
    Password,
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
        "Chassis" | "Drive" => &[
            ("AssetTag", Rule::Text),
            ("IndicatorLED", Rule::OneOf(LED_VALUES)),
            ("LocationIndicatorActive", Rule::Flag),
        ],
        "EthernetInterface" => &[("HostName", Rule::Text)],
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
                &mut errors,
                &mut changes,
            ),
            (true, Some(rule)) => match check(&current, rule, name, value, current.get(name)) {
                Ok(result) => changes.push((name.clone(), result)),
                Err(message) => errors.push(message),
            },
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
    Ok(logged)
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
            if values.contains(&text) {
                Ok(value.clone())
            } else {
                Err(msg::property_value_not_in_list(text, name))
            }
        }
        Rule::Seconds { min, max } => {
            let seconds = value.as_u64().ok_or_else(type_error)?;
            if (min..=max).contains(&seconds) {
                Ok(value.clone())
            } else {
                Err(msg::property_value_not_in_list(&seconds.to_string(), name))
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
                Err(msg::property_value_not_in_list(text, name))
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

/// Checks the properties of a writable object such as `Boot`; changes are named `Boot/X`.
fn check_object(
    current: &Value,
    name: &str,
    rules: &[(&str, Rule)],
    value: &Value,
    errors: &mut Vec<Message>,
    changes: &mut Vec<(String, Value)>,
) {
    let Some(request) = value.as_object() else {
        errors.push(msg::property_value_type_error(&value_text(value), name));
        return;
    };
    let existing = current.get(name).cloned().unwrap_or_default();
    for (inner_name, item) in request {
        if inner_name.starts_with('@') {
            continue;
        }
        let full = format!("{name}/{inner_name}");
        let rule = rules.iter().find(|(n, _)| n == inner_name).map(|(_, r)| *r);
        match (existing.get(inner_name).is_some(), rule) {
            (false, _) => errors.push(msg::property_unknown(&full)),
            (true, None) => errors.push(msg::property_not_writable(&full)),
            (true, Some(rule)) => match check(current, rule, &full, item, existing.get(inner_name))
            {
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
    if let Some((outer, inner_name)) = name.split_once('/') {
        if let Some(object) = map.get_mut(outer).and_then(Value::as_object_mut) {
            object.insert(inner_name.to_owned(), value);
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
