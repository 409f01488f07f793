//! Fleets of simulated BMCs for fleet tests: [`start_fleet`] starts several independent BMCs,
//! each with its own state folder, certificate, service tag, MAC addresses and UUIDs.

use serde_json::Value;

use crate::config::BmcConfig;
use crate::error::BmcError;
use crate::listener::RunningBmc;
use crate::tree::LoadedData;

/// Starts `count` independent BMCs from `config`.
///
/// BMC number `n` (from 1) keeps its state in `state_dir/bmc-NNN` and listens on the port of
/// `config.listen` plus `n - 1`, or on a free port of its own when that port is 0. The
/// embedded sample server of BMC `n` has the service tag `RKS1Unn` (`RKS1U01`, `RKS1U02`, ...)
/// and MAC addresses and UUIDs of its own. A mockup's service tag gets `-nnn` appended.
///
/// # Errors
///
/// The first error of [`crate::start`]; the BMCs already started are shut down first.
/// [`BmcError::Bind`] also when the ports run past 65535.
pub async fn start_fleet(config: BmcConfig, count: usize) -> Result<Vec<RunningBmc>, BmcError> {
    // The data is loaded once; members share its unchanged resources and log entries.
    let data = crate::state::load_data(&config)?;
    let mut fleet = Vec::with_capacity(count);
    for index in 1..=count {
        let mut member = config.clone();
        member.state_dir = config.state_dir.join(format!("bmc-{index:03}"));
        member.fleet_index = Some(index);
        if config.listen.port() != 0 {
            let port = u16::try_from(index - 1)
                .ok()
                .and_then(|offset| config.listen.port().checked_add(offset));
            let Some(port) = port else {
                shut_down(fleet).await;
                return Err(BmcError::Bind {
                    addr: config.listen,
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!(
                            "{count} consecutive ports from {} run past 65535",
                            config.listen.port()
                        ),
                    ),
                });
            };
            member.listen.set_port(port);
        }
        match crate::serve(member, data.clone()).await {
            Ok(running) => fleet.push(running),
            Err(error) => {
                shut_down(fleet).await;
                return Err(error);
            }
        }
    }
    Ok(fleet)
}

async fn shut_down(fleet: Vec<RunningBmc>) {
    for running in fleet {
        running.shutdown().await;
    }
}

/// Gives the data of fleet member `index` (from 1) its own identity: the service tag, and for
/// the embedded sample server the MAC addresses and UUIDs.
///
/// NOTE: a mockup's MAC addresses and UUIDs stay as captured; only its service tag changes.
pub(crate) fn personalize(data: &mut LoadedData, index: usize, embedded: bool) {
    let mut replacements: Vec<(String, String)> = Vec::new();
    let tag = service_tag(data);
    if embedded {
        let sample = crate::sample::SERVICE_TAG;
        let new = format!("RKS1U{index:02}");
        replacements.push((sample.to_ascii_lowercase(), new.to_ascii_lowercase()));
        replacements.push((sample.to_owned(), new));
        let number = index % 0x1_0000;
        replacements.push((
            "02:1B:2C:".to_owned(),
            format!("02:{:02X}:{:02X}:", number >> 8, number & 0xff),
        ));
        replacements.push((
            "5b7a1e02-4c3d-".to_owned(),
            format!("5b7a1e02-{number:04x}-"),
        ));
    } else if let Some(tag) = tag {
        replacements.push((tag.clone(), format!("{tag}-{index:03}")));
    }
    if replacements.is_empty() {
        return;
    }
    let paths: Vec<String> = data
        .tree
        .iter()
        .filter(|(_, resource)| {
            resource
                .json
                .as_ref()
                .is_some_and(|j| mentions(j, &replacements))
        })
        .map(|(path, _)| path.clone())
        .collect();
    for path in paths {
        data.tree
            .update(&path, |body| replace_strings(body, &replacements));
    }
    if let Some(tag) = service_tag(data) {
        data.host_label = crate::tree::host_label(&tag);
    }
}

/// Returns the service tag of the data: `SKU` or `SerialNumber` of the first system.
pub(crate) fn service_tag(data: &LoadedData) -> Option<String> {
    data.system_paths
        .first()
        .and_then(|path| data.tree.json(path))
        .and_then(|system| {
            ["SKU", "SerialNumber"]
                .iter()
                .find_map(|key| system.get(*key).and_then(Value::as_str))
                .map(str::to_owned)
        })
        .filter(|tag| !tag.is_empty())
}

fn mentions(value: &Value, replacements: &[(String, String)]) -> bool {
    match value {
        Value::String(text) => replacements
            .iter()
            .any(|(from, _)| text.contains(from.as_str())),
        Value::Array(items) => items.iter().any(|v| mentions(v, replacements)),
        Value::Object(map) => map.values().any(|v| mentions(v, replacements)),
        _ => false,
    }
}

fn replace_strings(value: &mut Value, replacements: &[(String, String)]) {
    match value {
        Value::String(text) => {
            for (from, to) in replacements {
                if text.contains(from.as_str()) {
                    *text = text.replace(from.as_str(), to);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| replace_strings(v, replacements)),
        Value::Object(map) => map
            .values_mut()
            .for_each(|v| replace_strings(v, replacements)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personalize_changes_tag_mac_and_uuid() {
        let mut data = crate::tree::load_sample(crate::sample::sample_server());
        personalize(&mut data, 7, true);
        let system = data.tree.json("/redfish/v1/Systems/1").unwrap();
        assert_eq!(system["SKU"], "RKS1U07");
        assert!(system["UUID"]
            .as_str()
            .unwrap()
            .starts_with("5b7a1e02-0007-"));
        let nic = data
            .tree
            .json("/redfish/v1/Managers/1/EthernetInterfaces/NIC.1")
            .unwrap();
        assert_eq!(nic["MACAddress"], "02:00:07:3A:00:01");
        assert_eq!(nic["HostName"], "rks1u07-bmc");
    }
}
