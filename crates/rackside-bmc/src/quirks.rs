//! Changes that faults make to response bodies. Without an enabled fault a body is served
//! unchanged.

use serde_json::{json, Value};

use crate::fault::{Fault, Faults};
use crate::power::STRICT_RESET_TYPES;

/// Checks whether any enabled fault rewrites bodies, so that stored bytes cannot be served as they are.
pub(crate) fn rewrites_bodies(faults: &Faults) -> bool {
    [
        Fault::OldSessionUri,
        Fault::StrictResetTypes,
        Fault::MalformedDates,
        Fault::WrongContainerTypes,
        Fault::LegacyIndicatorLed,
    ]
    .into_iter()
    .any(|fault| faults.contains(fault))
}

/// Applies the body changes of the enabled faults to the resource at `path`.
pub(crate) fn rewrite(path: &str, body: &mut Value, faults: &Faults, sessions_path: &str) {
    if faults.contains(Fault::OldSessionUri) {
        if path == "/redfish/v1" {
            if let Some(link) = body.pointer_mut("/Links/Sessions") {
                *link = json!({ "@odata.id": sessions_path });
            }
        }
        if let Some(link) = body
            .get_mut("Sessions")
            .filter(|_| path == "/redfish/v1/SessionService")
        {
            *link = json!({ "@odata.id": sessions_path });
        }
    }
    if faults.contains(Fault::StrictResetTypes) {
        if let Some(values) = body
            .pointer_mut("/Actions/#ComputerSystem.Reset/ResetType@Redfish.AllowableValues")
            .and_then(Value::as_array_mut)
        {
            values.retain(|v| v.as_str().is_some_and(|t| STRICT_RESET_TYPES.contains(&t)));
        }
    }
    if faults.contains(Fault::LegacyIndicatorLed) {
        legacy_indicator(body);
    }
    if faults.contains(Fault::MalformedDates) {
        malform_dates(body);
    }
    if faults.contains(Fault::WrongContainerTypes) {
        wrong_containers(body);
    }
}

/// Replaces `LocationIndicatorActive` with the older `IndicatorLED`.
fn legacy_indicator(body: &mut Value) {
    let Some(map) = body.as_object_mut() else {
        return;
    };
    if let Some(active) = map.remove("LocationIndicatorActive") {
        if !map.contains_key("IndicatorLED") {
            let led = if active.as_bool() == Some(true) {
                "Lit"
            } else {
                "Off"
            };
            map.insert("IndicatorLED".into(), led.into());
        }
    }
}

/// Writes dates the way some firmware does: `LastResetTime` all zeros, `ReleaseDate` without a
/// date, `ValidNotBefore`/`ValidNotAfter` and `DateTime` with a month that is not zero-padded,
/// and `Created` with an offset without a colon.
fn malform_dates(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let Some(text) = item.as_str() else {
                    malform_dates(item);
                    continue;
                };
                let replacement = match key.as_str() {
                    "LastResetTime" => Some("0000-00-00T00:00:00+00:00".to_owned()),
                    "ReleaseDate" => Some("00:00:00Z".to_owned()),
                    "ValidNotBefore" | "ValidNotAfter" | "DateTime" => unpad_month(text),
                    "Created" => offset_without_colon(text),
                    _ => None,
                };
                if let Some(replacement) = replacement {
                    *item = Value::String(replacement);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(malform_dates),
        _ => {}
    }
}

/// `2020-04-28T...` becomes `2020-4-28T...`.
fn unpad_month(text: &str) -> Option<String> {
    let (year, rest) = text.split_once('-')?;
    let rest = rest.strip_prefix('0')?;
    Some(format!("{year}-{rest}"))
}

/// `...-06:00` becomes `...-0600`; `Z` becomes `+0000`.
fn offset_without_colon(text: &str) -> Option<String> {
    if let Some(stripped) = text.strip_suffix('Z') {
        return Some(format!("{stripped}+0000"));
    }
    let split = text.len().checked_sub(6)?;
    let (stamp, offset) = (text.get(..split)?, text.get(split..)?);
    let sign = offset.chars().next()?;
    if (sign == '+' || sign == '-') && offset.get(3..4) == Some(":") {
        Some(format!("{stamp}{}{}", offset.get(..3)?, offset.get(4..)?))
    } else {
        None
    }
}

/// `StorageControllers` arrays become `{}`, string `MemberId`s become numbers and
/// `MaxSpeedMHz` becomes an empty string.
fn wrong_containers(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                match key.as_str() {
                    "StorageControllers" if item.is_array() => *item = json!({}),
                    "MemberId" => {
                        if let Some(number) = item.as_str().and_then(|s| s.parse::<u64>().ok()) {
                            *item = json!(number);
                        }
                    }
                    "MaxSpeedMHz" if item.is_number() => *item = json!(""),
                    _ => wrong_containers(item),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(wrong_containers),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(fault: Fault) -> Faults {
        [fault].into_iter().collect()
    }

    #[test]
    fn malformed_dates_rewrite_each_kind() {
        let mut body = json!({
            "LastResetTime": "2024-01-02T03:04:05+00:00",
            "Entries": [{"Created": "2024-01-02T03:04:05-06:00"}],
            "Cert": {"ValidNotBefore": "2020-04-28T15:25:21+00:00"},
            "ReleaseDate": "2021-01-01T00:00:00Z",
        });
        rewrite("/x", &mut body, &with(Fault::MalformedDates), "");
        assert_eq!(body["LastResetTime"], "0000-00-00T00:00:00+00:00");
        assert_eq!(body["Entries"][0]["Created"], "2024-01-02T03:04:05-0600");
        assert_eq!(body["Cert"]["ValidNotBefore"], "2020-4-28T15:25:21+00:00");
        assert_eq!(body["ReleaseDate"], "00:00:00Z");
    }

    #[test]
    fn wrong_containers_change_types() {
        let mut body = json!({"StorageControllers": [{"MemberId": "0", "MaxSpeedMHz": 3000}]});
        rewrite("/x", &mut body, &with(Fault::WrongContainerTypes), "");
        assert_eq!(body["StorageControllers"], json!({}));
        let mut member = json!({"MemberId": "0", "MaxSpeedMHz": 3000});
        rewrite("/x", &mut member, &with(Fault::WrongContainerTypes), "");
        assert_eq!(member["MemberId"], 0);
        assert_eq!(member["MaxSpeedMHz"], "");
    }

    #[test]
    fn legacy_indicator_replaces_boolean() {
        let mut body = json!({"LocationIndicatorActive": true});
        rewrite("/x", &mut body, &with(Fault::LegacyIndicatorLed), "");
        assert_eq!(body, json!({"IndicatorLED": "Lit"}));
    }

    #[test]
    fn no_fault_changes_nothing() {
        let original = json!({"LastResetTime": "2024-01-02T03:04:05+00:00"});
        let mut body = original.clone();
        rewrite("/x", &mut body, &Faults::default(), "");
        assert_eq!(body, original);
    }
}
