//! The BMC's network settings: checks for the values a PATCH of an `EthernetInterface` may
//! carry (static IPv4 addresses, name servers, host names) and the follow-up that keeps the
//! reported addresses in line with the settings.
//!
//! NOTE: a real BMC moves to its new address when the settings change, which drops the client's
//! connection. The simulator keeps listening where it is and only reports the new values.

use std::net::{IpAddr, Ipv4Addr};

use serde_json::{json, Value};

use crate::logs::clip;
use crate::reply::{msg, Message};

/// Maximum number of static IPv4 addresses of one interface.
const MAX_STATIC_ADDRESSES: usize = 4;

/// Maximum number of static name servers of one interface.
const MAX_NAME_SERVERS: usize = 3;

/// Checks the `IPv4StaticAddresses` of a PATCH against the current list `old` and returns the
/// new list. Elements follow the Redfish array rules: `null` removes, `{}` keeps, an object
/// changes the element at its index.
pub(crate) fn ipv4_statics(request: &Value, old: Option<&Value>) -> Result<Value, Message> {
    let name = "IPv4StaticAddresses";
    let Some(items) = request.as_array() else {
        return Err(msg::property_value_type_error(&echoed(request), name));
    };
    if items.len() > MAX_STATIC_ADDRESSES {
        return Err(msg::property_value_out_of_range(
            &items.len().to_string(),
            name,
        ));
    }
    let old = old.and_then(Value::as_array).cloned().unwrap_or_default();
    let mut result = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let at = |key: &str| format!("{name}/{index}/{key}");
        let change = match item {
            Value::Null => continue,
            Value::Object(change) => change,
            other => return Err(msg::property_value_type_error(&echoed(other), name)),
        };
        let mut entry = old
            .get(index)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (key, value) in change {
            if !matches!(key.as_str(), "Address" | "SubnetMask" | "Gateway") {
                return Err(msg::property_unknown(&at(key)));
            }
            if !value.is_string() {
                return Err(msg::property_value_type_error(&echoed(value), &at(key)));
            }
            entry.insert(key.clone(), value.clone());
        }
        if entry.is_empty() {
            continue;
        }
        let text = |key: &str| entry.get(key).and_then(Value::as_str).map(str::to_owned);
        let address = text("Address").ok_or_else(|| msg::property_missing(&at("Address")))?;
        let mask = text("SubnetMask").ok_or_else(|| msg::property_missing(&at("SubnetMask")))?;
        let address_ip = unicast_ipv4(&address)
            .ok_or_else(|| msg::property_value_format_error(&clip(&address), &at("Address")))?;
        let prefix = prefix_length(&mask)
            .ok_or_else(|| msg::property_value_format_error(&clip(&mask), &at("SubnetMask")))?;
        if let Some(gateway) = text("Gateway") {
            let gateway_ip = unicast_ipv4(&gateway)
                .ok_or_else(|| msg::property_value_format_error(&clip(&gateway), &at("Gateway")))?;
            if !same_subnet(address_ip, gateway_ip, prefix) || gateway_ip == address_ip {
                return Err(msg::property_value_conflict(&at("Gateway"), &at("Address")));
            }
        }
        result.push(Value::Object(entry));
    }
    Ok(Value::Array(result))
}

/// Checks `StaticNameServers`: a list of IPv4 or IPv6 addresses; `null` elements are dropped.
pub(crate) fn name_servers(request: &Value) -> Result<Value, Message> {
    let name = "StaticNameServers";
    let Some(items) = request.as_array() else {
        return Err(msg::property_value_type_error(&echoed(request), name));
    };
    let servers: Vec<&Value> = items.iter().filter(|v| !v.is_null()).collect();
    if servers.len() > MAX_NAME_SERVERS {
        return Err(msg::property_value_out_of_range(
            &servers.len().to_string(),
            name,
        ));
    }
    let mut result = Vec::new();
    for (index, item) in servers.into_iter().enumerate() {
        let valid = item
            .as_str()
            .and_then(|t| t.parse::<IpAddr>().ok())
            .filter(|ip| !ip.is_unspecified() && !ip.is_multicast());
        match valid {
            Some(ip) => result.push(Value::String(ip.to_string())),
            None => {
                return Err(msg::property_value_format_error(
                    &echoed(item),
                    &format!("{name}/{index}"),
                ))
            }
        }
    }
    Ok(Value::Array(result))
}

/// Checks a host name: one DNS label of letters, digits and hyphens, 1 to 63 characters, not
/// starting or ending with a hyphen.
pub(crate) fn host_name(value: &Value, name: &str) -> Result<Value, Message> {
    let text = value
        .as_str()
        .ok_or_else(|| msg::property_value_type_error(&echoed(value), name))?;
    if is_label(text) {
        Ok(value.clone())
    } else {
        Err(msg::property_value_format_error(&clip(text), name))
    }
}

/// Checks a fully qualified domain name: labels joined by dots, at most 253 characters.
pub(crate) fn fqdn(value: &Value, name: &str) -> Result<Value, Message> {
    let text = value
        .as_str()
        .ok_or_else(|| msg::property_value_type_error(&echoed(value), name))?;
    let trimmed = text.strip_suffix('.').unwrap_or(text);
    if trimmed.len() <= 253 && trimmed.split('.').all(is_label) {
        Ok(value.clone())
    } else {
        Err(msg::property_value_format_error(&clip(text), name))
    }
}

/// Brings the reported values of an `EthernetInterface` in line with its settings after a
/// PATCH that changed the properties in `changed`.
///
/// The addresses in use follow the static ones, or stay and are marked as leased under DHCP.
/// The name servers in use follow the static ones, and `HostName` and `FQDN` agree.
pub(crate) fn settle(body: &mut Value, changed: &[String]) {
    let Some(map) = body.as_object_mut() else {
        return;
    };
    let dhcp = map
        .get("DHCPv4")
        .and_then(|d| d.get("DHCPEnabled"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let touched = |prefix: &str| changed.iter().any(|c| c.starts_with(prefix));

    // 1. Addresses in use.
    if touched("IPv4StaticAddresses") || touched("DHCPv4") {
        let addresses: Vec<Value> = if dhcp {
            map.get("IPv4Addresses")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|mut a| {
                    if let Some(entry) = a.as_object_mut() {
                        entry.insert("AddressOrigin".into(), "DHCP".into());
                    }
                    a
                })
                .collect()
        } else {
            map.get("IPv4StaticAddresses")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|mut a| {
                    if let Some(entry) = a.as_object_mut() {
                        entry.insert("AddressOrigin".into(), "Static".into());
                    }
                    a
                })
                .collect()
        };
        map.insert("IPv4Addresses".into(), Value::Array(addresses));
    }

    // 2. Name servers in use.
    if touched("StaticNameServers") || touched("DHCPv4") {
        let use_dhcp_dns = dhcp
            && map
                .get("DHCPv4")
                .and_then(|d| d.get("UseDNSServers"))
                .and_then(Value::as_bool)
                .unwrap_or(true);
        if !use_dhcp_dns {
            let servers = map
                .get("StaticNameServers")
                .cloned()
                .unwrap_or_else(|| json!([]));
            map.insert("NameServers".into(), servers);
        }
    }

    // 3. Host name and FQDN.
    let host = map
        .get("HostName")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let full = map.get("FQDN").and_then(Value::as_str).map(str::to_owned);
    match (touched("HostName"), touched("FQDN"), host, full) {
        (true, false, Some(host), Some(full)) => {
            let domain = full.split_once('.').map(|(_, d)| d.to_owned());
            let new = match domain {
                Some(domain) => format!("{host}.{domain}"),
                None => host,
            };
            map.insert("FQDN".into(), Value::String(new));
        }
        (false, true, Some(_), Some(full)) => {
            let first = full.split('.').next().unwrap_or_default().to_owned();
            map.insert("HostName".into(), Value::String(first));
        }
        _ => {}
    }
}

/// Parses an IPv4 address usable by a host: not unspecified, broadcast, multicast or loopback.
fn unicast_ipv4(text: &str) -> Option<Ipv4Addr> {
    let ip = text.parse::<Ipv4Addr>().ok()?;
    let usable =
        !ip.is_unspecified() && !ip.is_broadcast() && !ip.is_multicast() && !ip.is_loopback();
    usable.then_some(ip)
}

/// Turns a dotted subnet mask into its prefix length; `None` unless its one bits are
/// contiguous and it is between /1 and /32.
fn prefix_length(text: &str) -> Option<u32> {
    let bits = u32::from(text.parse::<Ipv4Addr>().ok()?);
    let prefix = bits.leading_ones();
    let contiguous = bits.checked_shl(prefix).unwrap_or(0) == 0;
    (contiguous && prefix > 0).then_some(prefix)
}

fn same_subnet(a: Ipv4Addr, b: Ipv4Addr, prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(a) & mask == u32::from(b) & mask
}

fn is_label(text: &str) -> bool {
    (1..=63).contains(&text.len())
        && !text.starts_with('-')
        && !text.ends_with('-')
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn echoed(value: &Value) -> String {
    match value {
        Value::String(text) => clip(text),
        other => clip(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_address_is_checked_and_merged() {
        let old = json!([{"Address": "192.0.2.20", "SubnetMask": "255.255.255.0",
            "Gateway": "192.0.2.1"}]);
        let new = ipv4_statics(&json!([{"Address": "192.0.2.30"}]), Some(&old)).unwrap();
        assert_eq!(new[0]["Address"], "192.0.2.30");
        assert_eq!(new[0]["Gateway"], "192.0.2.1");
        assert_eq!(ipv4_statics(&json!([null]), Some(&old)).unwrap(), json!([]));
    }

    #[test]
    fn bad_addresses_masks_and_gateways_are_rejected() {
        let cases = [
            json!([{"Address": "192.0.2.300", "SubnetMask": "255.255.255.0"}]),
            json!([{"Address": "0.0.0.0", "SubnetMask": "255.255.255.0"}]),
            json!([{"Address": "192.0.2.5", "SubnetMask": "255.0.255.0"}]),
            json!([{"Address": "192.0.2.5", "SubnetMask": "255.255.255.0",
                "Gateway": "198.51.100.1"}]),
            json!([{"Address": "192.0.2.5"}]),
            json!([{"Address": "192.0.2.5", "SubnetMask": "255.255.255.0", "Colour": "red"}]),
        ];
        for case in cases {
            assert!(ipv4_statics(&case, None).is_err(), "{case}");
        }
    }

    #[test]
    fn prefix_length_needs_contiguous_ones() {
        assert_eq!(prefix_length("255.255.255.0"), Some(24));
        assert_eq!(prefix_length("255.255.255.255"), Some(32));
        assert_eq!(prefix_length("255.0.255.0"), None);
        assert_eq!(prefix_length("0.0.0.0"), None);
    }

    #[test]
    fn host_names_and_fqdns_are_dns_names() {
        assert!(host_name(&json!("bmc-r14-07"), "HostName").is_ok());
        assert!(host_name(&json!("bmc.r14"), "HostName").is_err());
        assert!(host_name(&json!("-bmc"), "HostName").is_err());
        assert!(fqdn(&json!("bmc.example.net"), "FQDN").is_ok());
        assert!(fqdn(&json!("bmc..example"), "FQDN").is_err());
    }

    #[test]
    fn settle_reports_static_addresses_and_matching_fqdn() {
        let mut body = json!({
            "HostName": "new-bmc",
            "FQDN": "old-bmc.example.net",
            "DHCPv4": {"DHCPEnabled": false},
            "IPv4StaticAddresses": [{"Address": "192.0.2.30", "SubnetMask": "255.255.255.0"}],
            "IPv4Addresses": [],
            "StaticNameServers": ["192.0.2.9"],
            "NameServers": [],
        });
        let changed = [
            "IPv4StaticAddresses".to_owned(),
            "HostName".to_owned(),
            "StaticNameServers".to_owned(),
        ];
        settle(&mut body, &changed);
        assert_eq!(body["IPv4Addresses"][0]["AddressOrigin"], "Static");
        assert_eq!(body["FQDN"], "new-bmc.example.net");
        assert_eq!(body["NameServers"], json!(["192.0.2.9"]));
    }
}
