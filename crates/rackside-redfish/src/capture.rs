//! Capturing a whole Redfish service for troubleshooting, and scrubbing what identifies it.
//!
//! [`Client::capture`] reads every resource reachable from the service root by following
//! `@odata.id` links (and `@Redfish.ActionInfo`), level by level with bounded concurrency.
//! Action targets are never requested. Paged collections are stored with all their members.
//! [`scrub`] then replaces secrets, addresses and serial numbers with stable placeholders,
//! so a capture can be shared.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures_util::stream::{self, StreamExt};
use http::Method;
use serde_json::Value;

use crate::client::{request_path, status_error, SERVICE_ROOT};
use crate::crawl::Unreadable;
use crate::transport::Transport;
use crate::{decode, Client, Error};

/// Maximum number of resources one capture reads.
pub const MAX_CAPTURE_RESOURCES: usize = 20_000;

/// The placeholder that replaces secrets.
pub const SCRUBBED: &str = "SCRUBBED";

/// Every resource read from a service.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Capture {
    /// Resource bodies by path, such as `/redfish/v1/Systems/1`.
    pub resources: BTreeMap<String, Value>,
    /// The CSDL document of `/redfish/v1/$metadata`, when the service has one.
    pub metadata: Option<String>,
    /// Resources that were linked but could not be read.
    pub unreadable: Vec<Unreadable>,
    /// Whether [`MAX_CAPTURE_RESOURCES`] stopped the crawl.
    pub truncated: bool,
}

impl<T: Transport> Client<T> {
    /// Reads every resource reachable from the service root, `concurrency` requests at a
    /// time (at least 1).
    ///
    /// # Errors
    ///
    /// Only fatal errors (connect, TLS, 401, session limit) and a failure to read the
    /// service root; any other failed resource is listed in [`Capture::unreadable`].
    pub async fn capture(&self, concurrency: usize) -> Result<Capture, Error> {
        let mut capture = Capture::default();
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut frontier = vec![SERVICE_ROOT.to_owned(), format!("{SERVICE_ROOT}/odata")];
        seen.extend(frontier.iter().cloned());

        while !frontier.is_empty() {
            let read: Vec<(String, Result<Value, Error>)> = stream::iter(frontier)
                .map(|path| async move {
                    let result = self.read_whole(&path).await;
                    (path, result)
                })
                .buffer_unordered(concurrency.max(1))
                .collect()
                .await;

            let mut next = Vec::new();
            for (path, result) in read {
                let body = match result {
                    Ok(body) => body,
                    Err(error) if error.is_fatal() || path == SERVICE_ROOT => return Err(error),
                    Err(error) => {
                        tracing::debug!(%path, %error, "resource unreadable during capture");
                        capture.unreadable.push(Unreadable {
                            path,
                            error: error.to_string(),
                        });
                        continue;
                    }
                };
                let mut links = Vec::new();
                collect_links(&body, false, &mut links);
                for link in links {
                    let Some(link) = capture_path(&link) else {
                        continue;
                    };
                    if seen.len() >= MAX_CAPTURE_RESOURCES {
                        capture.truncated = true;
                        break;
                    }
                    if seen.insert(link.clone()) {
                        next.push(link);
                    }
                }
                capture.resources.insert(path, body);
            }
            frontier = next;
        }
        capture.unreadable.sort_by(|a, b| a.path.cmp(&b.path));
        capture.metadata = self.read_metadata().await?;
        Ok(capture)
    }

    /// Reads one resource; a paged collection comes back with all members and no next link.
    async fn read_whole(&self, path: &str) -> Result<Value, Error> {
        let mut resource = self.get(path).await?;
        if decode::text(&resource.body, "Members@odata.nextLink").is_some() {
            let members = self.collection_entries(path).await?;
            if let Some(object) = resource.body.as_object_mut() {
                object.remove("Members@odata.nextLink");
                object.insert("Members@odata.count".into(), Value::from(members.len()));
                object.insert("Members".into(), Value::Array(members));
            }
        }
        Ok(resource.body)
    }

    /// Reads `$metadata` as text; a service without it gives `None`.
    async fn read_metadata(&self) -> Result<Option<String>, Error> {
        let path = format!("{SERVICE_ROOT}/$metadata");
        let response = self.execute(Method::GET, &path, None, true).await?;
        if !response.status.is_success() {
            let error = status_error(&path, &response);
            tracing::debug!(%error, "no $metadata in the capture");
            return Ok(None);
        }
        Ok(Some(String::from_utf8_lossy(&response.body).into_owned()))
    }
}

/// Collects `@odata.id` links and, inside `Actions`, only `@Redfish.ActionInfo` links, so
/// that no action target is ever requested.
fn collect_links(value: &Value, in_actions: bool, links: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            for (key, child) in object {
                match child {
                    Value::String(link)
                        if (key == "@odata.id" && !in_actions)
                            || key.ends_with("@Redfish.ActionInfo") =>
                    {
                        links.push(link.clone());
                    }
                    _ => collect_links(child, in_actions || key == "Actions", links),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                collect_links(item, in_actions, links);
            }
        }
        _ => {}
    }
}

/// Normalizes a link to a path the capture reads: under the service root, without query
/// or fragment, without `.` or `..` segments, and not `$metadata` (read as text).
fn capture_path(link: &str) -> Option<String> {
    let path = request_path(link).ok()?;
    let path = path.split('?').next()?.trim_end_matches('/').to_owned();
    let under_root = path == SERVICE_ROOT || path.starts_with(&format!("{SERVICE_ROOT}/"));
    let plain = path
        .split('/')
        .skip(1)
        .all(|segment| !segment.is_empty() && segment != "." && segment != "..");
    (under_root && plain && !path.ends_with("/$metadata")).then_some(path)
}

/// Summary of the values [`scrub`] replaced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Secret values replaced with [`SCRUBBED`].
    pub secrets: usize,
    /// Distinct IPv4 and IPv6 addresses mapped into documentation ranges.
    pub addresses: usize,
    /// Distinct MAC addresses mapped to locally administered ones.
    pub macs: usize,
    /// Distinct serial numbers, service tags, UUIDs and host names replaced.
    pub identifiers: usize,
}

/// The property names whose values are replaced with [`SCRUBBED`]: any name (or, for
/// dotted attribute names such as `Users.2.IPMIKey`, its last part) containing `password`,
/// `passphrase`, `salt`, `secret`, `token` or `privatekey`, or ending in `key`, unless it
/// ends in a word that marks a setting rather than the secret itself (`Enabled`,
/// `Required`, `Length`, `Type` and the like) or is a lookup key such as `SlotKey`.
pub fn is_secret_name(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name).to_ascii_lowercase();
    const SETTING_SUFFIXES: [&str; 17] = [
        "enabled",
        "required",
        "expiration",
        "length",
        "type",
        "types",
        "algorithm",
        "usage",
        "format",
        "policy",
        "status",
        "state",
        "mode",
        "set",
        "keystroke",
        "curveid",
        "count",
    ];
    // Names that end in "key" but hold a lookup key, such as Dell's `SlotKey: "PCIe.Slot.2"`.
    const LOOKUP_KEYS: [&str; 3] = ["slotkey", "langkey", "sortkey"];
    if SETTING_SUFFIXES.iter().any(|suffix| last.ends_with(suffix))
        || LOOKUP_KEYS.contains(&last.as_str())
    {
        return false;
    }
    [
        "password",
        "passphrase",
        "salt",
        "secret",
        "token",
        "privatekey",
    ]
    .iter()
    .any(|word| last.contains(word))
        || last.ends_with("key")
}

/// The property names whose values identify the hardware: serial numbers, service tags,
/// UUIDs and host names.
pub fn is_identifier_name(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name).to_ascii_lowercase();
    matches!(
        last.as_str(),
        "serialnumber"
            | "servicetag"
            | "chassisservicetag"
            | "systemservicetag"
            | "nodeid"
            | "uuid"
            | "serviceentrypointuuid"
            | "hostname"
            | "fqdn"
            | "sku"
    )
}

/// Replaces secrets, IP and MAC addresses, serial numbers, service tags, UUIDs and host
/// names in a capture, including resource paths that contain an identifier.
///
/// Each distinct value gets the same placeholder everywhere, in the order of first
/// appearance by path, so a scrub of the same capture always gives the same result.
/// Addresses are also replaced inside free text such as log messages, except in
/// `@odata` properties, `Id` and version properties, where dotted numbers are versions.
pub fn scrub(capture: &mut Capture) -> ScrubReport {
    scrub_with(capture, &mut [])
}

/// Scrubs a capture like [`scrub`] together with other documents read from the same
/// service, such as a health report, so that a value gets the same placeholder in all.
pub fn scrub_with(capture: &mut Capture, documents: &mut [Value]) -> ScrubReport {
    let mut scrubber = Scrubber::default();
    for body in capture.resources.values().chain(documents.iter()) {
        scrubber.learn_identifiers(None, body);
    }
    let resources = std::mem::take(&mut capture.resources);
    for (path, mut body) in resources {
        scrubber.scrub_value(None, &mut body);
        capture
            .resources
            .insert(scrubber.replace_identifiers(&path), body);
    }
    for document in documents.iter_mut() {
        scrubber.scrub_value(None, document);
    }
    for gap in &mut capture.unreadable {
        gap.path = scrubber.replace_identifiers(&gap.path);
        gap.error = scrubber.scrub_text(&gap.error, true);
    }
    ScrubReport {
        secrets: scrubber.secrets,
        addresses: scrubber.ipv4.len() + scrubber.ipv6.len(),
        macs: scrubber.macs.len(),
        identifiers: scrubber.identifiers.len(),
    }
}

#[derive(Default)]
struct Scrubber {
    identifiers: BTreeMap<String, String>,
    identifier_order: Vec<String>,
    ipv4: HashMap<Ipv4Addr, Ipv4Addr>,
    ipv6: HashMap<Ipv6Addr, Ipv6Addr>,
    macs: HashMap<String, String>,
    secrets: usize,
}

impl Scrubber {
    /// Records every identifier value so it can be replaced wherever it appears.
    fn learn_identifiers(&mut self, key: Option<&str>, value: &Value) {
        match value {
            Value::Object(object) => {
                for (name, child) in object {
                    self.learn_identifiers(Some(name), child);
                }
            }
            Value::Array(items) => {
                for item in items {
                    self.learn_identifiers(key, item);
                }
            }
            Value::String(text) if key.is_some_and(is_identifier_name) => {
                let text = text.trim();
                // Short values such as "N/A" or "0" would match too much free text.
                if text.len() >= 4 && !self.identifiers.contains_key(text) {
                    let placeholder = format!("SCRUB{:04}", self.identifiers.len() + 1);
                    self.identifiers.insert(text.to_owned(), placeholder);
                    self.identifier_order.push(text.to_owned());
                    // Sort by length, longest first, so a value that contains another is replaced whole.
                    self.identifier_order
                        .sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
                }
            }
            _ => {}
        }
    }

    fn replace_identifiers(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for value in &self.identifier_order {
            if let Some(placeholder) = self.identifiers.get(value) {
                if out.contains(value.as_str()) {
                    out = out.replace(value.as_str(), placeholder);
                }
            }
        }
        out
    }

    fn scrub_value(&mut self, key: Option<&str>, value: &mut Value) {
        match value {
            Value::Object(object) => {
                for (name, child) in object.iter_mut() {
                    self.scrub_value(Some(name), child);
                }
            }
            Value::Array(items) => {
                for item in items {
                    self.scrub_value(key, item);
                }
            }
            Value::String(text) => {
                let secret = key.is_some_and(is_secret_name) || text.contains("PRIVATE KEY");
                if secret && !text.is_empty() {
                    *text = SCRUBBED.to_owned();
                    self.secrets += 1;
                    return;
                }
                let addresses_allowed = key.is_none_or(|name| {
                    !(name.starts_with("@odata.")
                        || name == "Id"
                        || name.to_ascii_lowercase().contains("version"))
                });
                *text = self.scrub_text(text, addresses_allowed);
            }
            _ => {}
        }
    }

    fn scrub_text(&mut self, text: &str, addresses: bool) -> String {
        let text = self.replace_identifiers(text);
        if !addresses {
            return text;
        }
        let mut out = String::with_capacity(text.len());
        let mut token = String::new();
        for c in text.chars() {
            if c.is_ascii_hexdigit() || c == '.' || c == ':' {
                token.push(c);
            } else {
                out.push_str(&self.scrub_token(&token));
                token.clear();
                out.push(c);
            }
        }
        out.push_str(&self.scrub_token(&token));
        out
    }

    /// Maps a run of hex digits, dots and colons when it is an address; a trailing dot or
    /// colon (end of a sentence, "address:") is kept as is.
    fn scrub_token(&mut self, token: &str) -> String {
        let core = token.trim_end_matches(['.', ':']);
        let tail = token.get(core.len()..).unwrap_or_default();
        if let Some(mac) = self.map_mac(core) {
            return format!("{mac}{tail}");
        }
        if let Ok(ip) = core.parse::<IpAddr>() {
            if let Some(mapped) = self.map_ip(ip) {
                return format!("{mapped}{tail}");
            }
        }
        token.to_owned()
    }

    fn map_mac(&mut self, token: &str) -> Option<String> {
        let parts: Vec<&str> = token.split(':').collect();
        let is_mac = parts.len() == 6
            && parts
                .iter()
                .all(|part| part.len() == 2 && part.chars().all(|c| c.is_ascii_hexdigit()));
        if !is_mac {
            return None;
        }
        let key = token.to_ascii_lowercase();
        if key == "00:00:00:00:00:00" {
            return Some(token.to_owned());
        }
        let next = self.macs.len() + 1;
        let mapped = self.macs.entry(key).or_insert_with(|| {
            format!("02:00:00:00:{:02x}:{:02x}", (next >> 8) & 0xff, next & 0xff)
        });
        Some(mapped.clone())
    }

    fn map_ip(&mut self, ip: IpAddr) -> Option<String> {
        match ip {
            IpAddr::V4(v4) => {
                let [first, ..] = v4.octets();
                let keep =
                    v4.is_unspecified() || v4.is_loopback() || v4.is_broadcast() || first == 255;
                if keep {
                    return None;
                }
                let next = self.ipv4.len();
                let mapped = *self
                    .ipv4
                    .entry(v4)
                    .or_insert_with(|| documentation_v4(next));
                Some(mapped.to_string())
            }
            IpAddr::V6(v6) => {
                if v6.is_unspecified() || v6.is_loopback() {
                    return None;
                }
                let next = self.ipv6.len() as u16 + 1;
                let mapped = *self
                    .ipv6
                    .entry(v6)
                    .or_insert_with(|| Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, next));
                Some(mapped.to_string())
            }
        }
    }
}

/// The `index`-th address of the IPv4 documentation ranges (RFC 5737), then of 100.64/10.
fn documentation_v4(index: usize) -> Ipv4Addr {
    let host = (index % 254 + 1) as u8;
    match index / 254 {
        0 => Ipv4Addr::new(192, 0, 2, host),
        1 => Ipv4Addr::new(198, 51, 100, host),
        2 => Ipv4Addr::new(203, 0, 113, host),
        block => Ipv4Addr::new(
            100,
            64 + ((block >> 8) & 0x3f) as u8,
            (block & 0xff) as u8,
            host,
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn capture_of(resources: &[(&str, Value)]) -> Capture {
        Capture {
            resources: resources
                .iter()
                .map(|(path, body)| ((*path).to_owned(), body.clone()))
                .collect(),
            ..Capture::default()
        }
    }

    #[test]
    fn secret_names_are_recognised() {
        for name in [
            "Password",
            "Users.2.SHA256Password",
            "Users.2.SHA256PasswordSalt",
            "Users.2.IPMIKey",
            "EncryptionKey",
            "AuthToken",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "PasswordChangeRequired",
            "MinPasswordLength",
            "SNMPv3PassphraseEnabled",
            "KeyUsage",
            "EncryptionKeySet",
            "HashValue",
            "SlotKey",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn password_hash_is_replaced() {
        let mut capture = capture_of(&[(
            "/redfish/v1/Managers/1/Attributes",
            json!({ "Attributes": { "Users.2.SHA256Password": "ab12cd34", "Users.2.UserName": "root" } }),
        )]);
        scrub(&mut capture);
        let text = serde_json::to_string(&capture.resources).unwrap();
        assert!(!text.contains("ab12cd34"), "{text}");
        assert!(text.contains("\"root\""), "{text}");
    }

    #[test]
    fn addresses_map_stably_into_documentation_ranges() {
        let mut capture = capture_of(&[
            (
                "/redfish/v1/A",
                json!({ "Address": "10.1.2.3", "MACAddress": "A4:BF:01:02:03:04" }),
            ),
            (
                "/redfish/v1/B",
                json!({ "Message": "login from 10.1.2.3." }),
            ),
        ]);
        let report = scrub(&mut capture);
        assert_eq!(capture.resources["/redfish/v1/A"]["Address"], "192.0.2.1");
        assert_eq!(
            capture.resources["/redfish/v1/A"]["MACAddress"],
            "02:00:00:00:00:01"
        );
        assert_eq!(
            capture.resources["/redfish/v1/B"]["Message"],
            "login from 192.0.2.1."
        );
        assert_eq!(report.addresses, 1);
    }

    #[test]
    fn versions_and_masks_are_kept() {
        let mut capture = capture_of(&[(
            "/redfish/v1/A",
            json!({ "FirmwareVersion": "2.10.0.1", "SubnetMask": "255.255.255.0" }),
        )]);
        scrub(&mut capture);
        assert_eq!(
            capture.resources["/redfish/v1/A"]["FirmwareVersion"],
            "2.10.0.1"
        );
        assert_eq!(
            capture.resources["/redfish/v1/A"]["SubnetMask"],
            "255.255.255.0"
        );
    }

    #[test]
    fn service_tag_is_replaced_everywhere() {
        let mut capture = capture_of(&[
            (
                "/redfish/v1/Systems/1",
                json!({ "SKU": "ABC1234", "HostName": "idrac-ABC1234" }),
            ),
            ("/redfish/v1/Chassis/ABC1234", json!({ "Id": "ABC1234" })),
        ]);
        scrub(&mut capture);
        let text = serde_json::to_string(&capture.resources).unwrap();
        assert!(!text.contains("ABC1234"), "{text}");
        assert!(capture
            .resources
            .contains_key("/redfish/v1/Chassis/SCRUB0001"));
    }

    #[test]
    fn links_inside_actions_are_not_followed() {
        let body = json!({
            "Actions": { "#ComputerSystem.Reset": {
                "target": "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
                "@Redfish.ActionInfo": "/redfish/v1/Systems/1/ResetActionInfo"
            }},
            "Bios": { "@odata.id": "/redfish/v1/Systems/1/Bios" }
        });
        let mut links = Vec::new();
        collect_links(&body, false, &mut links);
        links.sort();
        assert_eq!(
            links,
            [
                "/redfish/v1/Systems/1/Bios",
                "/redfish/v1/Systems/1/ResetActionInfo"
            ]
        );
    }

    #[test]
    fn capture_path_rejects_escapes_and_metadata() {
        assert_eq!(
            capture_path("/redfish/v1/Systems/"),
            Some("/redfish/v1/Systems".into())
        );
        assert_eq!(capture_path("/redfish/v1/../etc"), None);
        assert_eq!(capture_path("/redfish/v1/$metadata"), None);
        assert_eq!(capture_path("/other"), None);
        assert_eq!(
            capture_path("/redfish/v1/Chassis/1/Power#/PowerControl/0"),
            Some("/redfish/v1/Chassis/1/Power".into())
        );
    }
}
