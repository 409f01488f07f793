//! The BMC's own network settings: the manager's Ethernet interfaces with IPv4 (static or
//! DHCP), gateway, DNS servers, VLAN and host name.
//!
//! Every value is parsed into a type that cannot hold an invalid setting ([`StaticIpv4`],
//! [`VlanId`], [`HostName`]) before a request is built, because a bad value sent to a BMC's
//! own interface can cut it off the network.

use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::client::SERVICE_ROOT;
use crate::transport::Transport;
use crate::write::WriteOutcome;
use crate::{decode, Client, Error};

/// One IPv4 address of an interface as read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ipv4Entry {
    /// `Address`.
    pub address: String,
    /// `SubnetMask`.
    pub subnet_mask: Option<String>,
    /// `Gateway`.
    pub gateway: Option<String>,
    /// `AddressOrigin`, such as `DHCP` or `Static`.
    pub origin: Option<String>,
}

/// A manager (BMC) Ethernet interface as read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ManagerInterface {
    /// The interface resource.
    pub path: String,
    /// `Id`.
    pub id: String,
    /// `HostName`.
    pub host_name: Option<String>,
    /// `FQDN`.
    pub fqdn: Option<String>,
    /// `MACAddress`.
    pub mac: Option<String>,
    /// `DHCPv4.DHCPEnabled`.
    pub dhcp: Option<bool>,
    /// `IPv4Addresses`, the addresses in use.
    pub addresses: Vec<Ipv4Entry>,
    /// Whether the resource has `IPv4StaticAddresses`, which static settings are written to;
    /// without it they go to `IPv4Addresses`.
    pub has_static_addresses: bool,
    /// `NameServers` in use.
    pub name_servers: Vec<String>,
    /// Whether the resource has `StaticNameServers`, which DNS settings are written to;
    /// without it they go to `NameServers`.
    pub has_static_name_servers: bool,
    /// `VLAN.VLANEnable`.
    pub vlan_enabled: Option<bool>,
    /// `VLAN.VLANId`.
    pub vlan_id: Option<u64>,
}

/// A static IPv4 configuration whose gateway is inside the subnet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct StaticIpv4 {
    address: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
}

impl StaticIpv4 {
    /// Parses `A.B.C.D/PREFIX` and a gateway address.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidValue`] for a malformed address, a prefix outside 1 to 30, the
    /// subnet's network or broadcast address, a gateway outside the subnet, or a gateway
    /// equal to the address.
    pub fn parse(cidr: &str, gateway: &str) -> Result<StaticIpv4, Error> {
        let invalid = |name: &str, value: &str, detail: &str| Error::InvalidValue {
            name: name.into(),
            value: value.into(),
            detail: detail.into(),
        };
        let (address_text, prefix_text) = cidr.trim().split_once('/').ok_or_else(|| {
            invalid(
                "address",
                cidr,
                "expected A.B.C.D/PREFIX such as 192.0.2.10/24",
            )
        })?;
        let address: Ipv4Addr = address_text
            .parse()
            .map_err(|_| invalid("address", cidr, "not an IPv4 address such as 192.0.2.10"))?;
        let prefix: u8 = prefix_text
            .parse()
            .ok()
            .filter(|prefix| (1..=30).contains(prefix))
            .ok_or_else(|| invalid("prefix length", prefix_text, "expected 1 to 30"))?;
        let gateway_address: Ipv4Addr = gateway
            .trim()
            .parse()
            .map_err(|_| invalid("gateway", gateway, "not an IPv4 address such as 192.0.2.1"))?;

        let config = StaticIpv4 {
            address,
            prefix,
            gateway: gateway_address,
        };
        let network = config.network();
        let broadcast = Ipv4Addr::from(u32::from(network) | !u32::from(config.subnet_mask()));
        if address.is_unspecified() || address.is_multicast() || address.is_loopback() {
            return Err(invalid("address", cidr, "not usable as a host address"));
        }
        if address == network || address == broadcast {
            return Err(invalid(
                "address",
                cidr,
                &format!("it is the network or broadcast address of {network}/{prefix}"),
            ));
        }
        if !config.contains(gateway_address)
            || gateway_address == network
            || gateway_address == broadcast
        {
            return Err(invalid(
                "gateway",
                gateway,
                &format!("it is not a host address in {network}/{prefix}"),
            ));
        }
        if gateway_address == address {
            return Err(invalid(
                "gateway",
                gateway,
                "it equals the interface address",
            ));
        }
        Ok(config)
    }

    /// The interface address.
    pub fn address(&self) -> Ipv4Addr {
        self.address
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// The subnet mask of the prefix, such as 255.255.255.0 for 24.
    pub fn subnet_mask(&self) -> Ipv4Addr {
        Ipv4Addr::from(
            u32::MAX
                .checked_shl(32 - u32::from(self.prefix))
                .unwrap_or(0),
        )
    }

    fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.address) & u32::from(self.subnet_mask()))
    }

    fn contains(&self, other: Ipv4Addr) -> bool {
        u32::from(other) & u32::from(self.subnet_mask()) == u32::from(self.network())
    }
}

/// Source of the interface's IPv4 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Ipv4Setting {
    /// From a DHCP server.
    Dhcp,
    /// A fixed address, prefix and gateway.
    Static(StaticIpv4),
}

/// An IEEE 802.1Q VLAN id, 1 to 4094.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct VlanId(u16);

impl VlanId {
    /// Parses a VLAN id.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidValue`] for anything but a whole number from 1 to 4094 (0 and 4095
    /// are reserved by IEEE 802.1Q).
    pub fn parse(text: &str) -> Result<VlanId, Error> {
        text.trim()
            .parse::<u16>()
            .ok()
            .filter(|id| (1..=4094).contains(id))
            .map(VlanId)
            .ok_or_else(|| Error::InvalidValue {
                name: "VLAN id".into(),
                value: text.to_owned(),
                detail: "expected a whole number from 1 to 4094, or off".into(),
            })
    }

    /// The id.
    pub fn get(self) -> u16 {
        self.0
    }
}

/// Whether the interface tags its traffic with a VLAN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum VlanSetting {
    /// No VLAN tag.
    Off,
    /// Tag with this VLAN id.
    On(VlanId),
}

/// A host name that follows RFC 1123: labels of 1 to 63 letters, digits and hyphens, not
/// starting or ending with a hyphen, at most 253 characters in all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostName(String);

impl HostName {
    /// Parses a host name.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidValue`] saying which rule the name breaks.
    pub fn parse(text: &str) -> Result<HostName, Error> {
        let invalid = |detail: &str| Error::InvalidValue {
            name: "host name".into(),
            value: text.to_owned(),
            detail: format!("{detail}; use letters, digits and hyphens, with dots between labels"),
        };
        if text.is_empty() || text.len() > 253 {
            return Err(invalid("it must have 1 to 253 characters"));
        }
        for label in text.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(invalid("each label must have 1 to 63 characters"));
            }
            if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(invalid("it contains a character that is not allowed"));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(invalid("a label starts or ends with a hyphen"));
            }
        }
        Ok(HostName(text.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The settings to change on an interface; `None` leaves a setting as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NicChange {
    /// DHCP or a static address.
    pub ipv4: Option<Ipv4Setting>,
    /// The DNS servers, in order.
    pub dns: Option<Vec<IpAddr>>,
    /// The VLAN.
    pub vlan: Option<VlanSetting>,
    /// The host name.
    pub host_name: Option<HostName>,
}

impl NicChange {
    /// Returns whether nothing would change.
    pub fn is_empty(&self) -> bool {
        self.ipv4.is_none() && self.dns.is_none() && self.vlan.is_none() && self.host_name.is_none()
    }

    /// Builds the PATCH body for `current`, writing static settings to
    /// `IPv4StaticAddresses` and `StaticNameServers` where the resource has them.
    pub fn body(&self, current: &ManagerInterface) -> Value {
        let mut body = Map::new();
        match self.ipv4 {
            Some(Ipv4Setting::Dhcp) => {
                body.insert("DHCPv4".into(), json!({ "DHCPEnabled": true }));
            }
            Some(Ipv4Setting::Static(config)) => {
                body.insert("DHCPv4".into(), json!({ "DHCPEnabled": false }));
                let field = if current.has_static_addresses {
                    "IPv4StaticAddresses"
                } else {
                    "IPv4Addresses"
                };
                body.insert(
                    field.into(),
                    json!([{
                        "Address": config.address().to_string(),
                        "SubnetMask": config.subnet_mask().to_string(),
                        "Gateway": config.gateway().to_string(),
                    }]),
                );
            }
            None => {}
        }
        if let Some(dns) = &self.dns {
            let field = if current.has_static_name_servers {
                "StaticNameServers"
            } else {
                "NameServers"
            };
            let servers: Vec<String> = dns.iter().map(IpAddr::to_string).collect();
            body.insert(field.into(), json!(servers));
        }
        match self.vlan {
            Some(VlanSetting::Off) => {
                body.insert("VLAN".into(), json!({ "VLANEnable": false }));
            }
            Some(VlanSetting::On(id)) => {
                body.insert(
                    "VLAN".into(),
                    json!({ "VLANEnable": true, "VLANId": id.get() }),
                );
            }
            None => {}
        }
        if let Some(name) = &self.host_name {
            body.insert("HostName".into(), json!(name.as_str()));
        }
        Value::Object(body)
    }

    /// Says why the change may cut off a client that reaches the BMC at `host`, or returns
    /// `None` when it keeps that address reachable.
    ///
    /// An address change, a switch to DHCP or a VLAN change on the interface that carries
    /// `host` cuts the connection. When `host` is a name rather than an address, any such
    /// change is assumed to cut it, because the name cannot be matched to an interface.
    pub fn cuts_connection(&self, current: &ManagerInterface, host: &str) -> Option<String> {
        let host_ip: Option<IpAddr> = host.trim_matches(['[', ']']).parse().ok();
        let carries_host = match host_ip {
            Some(ip) => current
                .addresses
                .iter()
                .any(|entry| entry.address.parse::<IpAddr>().ok() == Some(ip)),
            None => true,
        };
        if !carries_host {
            return None;
        }
        let moves = match self.ipv4 {
            Some(Ipv4Setting::Dhcp) if current.dhcp != Some(true) => {
                Some("switches the address to DHCP, so it may change".to_owned())
            }
            Some(Ipv4Setting::Static(config)) if host_ip != Some(IpAddr::V4(config.address())) => {
                Some(format!("moves the BMC to {}", config.address()))
            }
            _ => None,
        };
        let vlan = match self.vlan {
            Some(VlanSetting::On(id))
                if current.vlan_id != Some(u64::from(id.get()))
                    || current.vlan_enabled != Some(true) =>
            {
                Some(format!("puts the interface on VLAN {}", id.get()))
            }
            Some(VlanSetting::Off) if current.vlan_enabled == Some(true) => {
                Some("takes the interface off its VLAN".to_owned())
            }
            _ => None,
        };
        let reasons: Vec<String> = moves.into_iter().chain(vlan).collect();
        (!reasons.is_empty()).then(|| reasons.join(" and "))
    }
}

impl<T: Transport> Client<T> {
    /// Reads the Ethernet interfaces of every manager.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] when no manager lists Ethernet interfaces; read errors.
    pub async fn manager_interfaces(&self) -> Result<Vec<ManagerInterface>, Error> {
        let managers_path = self
            .root()
            .and_then(|root| decode::link(root, "Managers"))
            .unwrap_or_else(|| format!("{SERVICE_ROOT}/Managers"));
        let mut interfaces = Vec::new();
        for manager in self.members(&managers_path).await? {
            let Some(collection) = decode::link(&manager.body, "EthernetInterfaces") else {
                continue;
            };
            for nic in self.members(&collection).await? {
                interfaces.push(interface_of(&nic.path, &nic.body));
            }
        }
        if interfaces.is_empty() {
            return Err(Error::Unsupported {
                path: managers_path,
                detail: "BMC network settings (no manager lists EthernetInterfaces)".into(),
            });
        }
        Ok(interfaces)
    }

    /// Applies `change` to the interface at `path` with [`Client::patch`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidValue`] when the change is empty; the errors of [`Client::patch`].
    pub async fn set_manager_interface(
        &self,
        interface: &ManagerInterface,
        change: &NicChange,
    ) -> Result<WriteOutcome, Error> {
        if change.is_empty() {
            return Err(Error::InvalidValue {
                name: "network change".into(),
                value: String::new(),
                detail: "nothing to change; give --dhcp, --address, --dns, --vlan or --hostname"
                    .into(),
            });
        }
        tracing::debug!(path = %interface.path, "BMC network change requested");
        self.patch(&interface.path, &change.body(interface)).await
    }
}

fn interface_of(path: &str, body: &Value) -> ManagerInterface {
    let addresses = decode::array(body, "IPv4Addresses")
        .iter()
        .filter_map(|entry| {
            Some(Ipv4Entry {
                address: decode::text(entry, "Address")?,
                subnet_mask: decode::text(entry, "SubnetMask"),
                gateway: decode::text(entry, "Gateway"),
                origin: decode::text(entry, "AddressOrigin"),
            })
        })
        .collect();
    let name_servers = decode::array(body, "NameServers")
        .iter()
        .filter_map(Value::as_str)
        .filter(|server| !server.is_empty())
        .map(str::to_owned)
        .collect();
    let vlan = body.get("VLAN").cloned().unwrap_or(Value::Null);
    ManagerInterface {
        path: path.to_owned(),
        id: decode::text(body, "Id").unwrap_or_default(),
        host_name: decode::text(body, "HostName"),
        fqdn: decode::text(body, "FQDN"),
        mac: decode::text(body, "MACAddress"),
        dhcp: body
            .get("DHCPv4")
            .and_then(|dhcp| decode::boolean(dhcp, "DHCPEnabled")),
        addresses,
        has_static_addresses: body.get("IPv4StaticAddresses").is_some(),
        name_servers,
        has_static_name_servers: body.get("StaticNameServers").is_some(),
        vlan_enabled: decode::boolean(&vlan, "VLANEnable"),
        vlan_id: decode::unsigned(&vlan, "VLANId"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interface(address: &str) -> ManagerInterface {
        ManagerInterface {
            path: "/redfish/v1/Managers/1/EthernetInterfaces/1".into(),
            id: "1".into(),
            host_name: None,
            fqdn: None,
            mac: None,
            dhcp: Some(false),
            addresses: vec![Ipv4Entry {
                address: address.into(),
                subnet_mask: Some("255.255.255.0".into()),
                gateway: Some("192.0.2.1".into()),
                origin: Some("Static".into()),
            }],
            has_static_addresses: true,
            name_servers: Vec::new(),
            has_static_name_servers: false,
            vlan_enabled: Some(false),
            vlan_id: None,
        }
    }

    #[test]
    fn static_address_gives_subnet_mask() {
        let config = StaticIpv4::parse("192.0.2.10/24", "192.0.2.1").unwrap();
        assert_eq!(config.subnet_mask(), Ipv4Addr::new(255, 255, 255, 0));
    }

    #[test]
    fn gateway_outside_subnet_is_rejected() {
        let error = StaticIpv4::parse("192.0.2.10/24", "198.51.100.1").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("not a host address in 192.0.2.0/24"),
            "{error}"
        );
    }

    #[test]
    fn broadcast_address_is_rejected() {
        assert!(StaticIpv4::parse("192.0.2.255/24", "192.0.2.1").is_err());
    }

    #[test]
    fn prefix_out_of_range_is_rejected() {
        assert!(StaticIpv4::parse("192.0.2.10/31", "192.0.2.11").is_err());
        assert!(StaticIpv4::parse("192.0.2.10/0", "192.0.2.1").is_err());
    }

    #[test]
    fn malformed_address_is_rejected() {
        assert!(StaticIpv4::parse("192.0.2.300/24", "192.0.2.1").is_err());
        assert!(StaticIpv4::parse("192.0.2.10", "192.0.2.1").is_err());
    }

    #[test]
    fn vlan_id_limits_are_enforced() {
        assert!(VlanId::parse("0").is_err());
        assert!(VlanId::parse("4095").is_err());
        assert_eq!(VlanId::parse("4094").unwrap().get(), 4094);
    }

    #[test]
    fn host_name_rules_follow_rfc_1123() {
        assert!(HostName::parse("bmc-01.example").is_ok());
        assert!(HostName::parse("-bmc").is_err());
        assert!(HostName::parse("bmc_01").is_err());
        assert!(HostName::parse(&"a".repeat(64)).is_err());
        assert!(HostName::parse("").is_err());
    }

    #[test]
    fn static_change_writes_static_addresses() {
        let change = NicChange {
            ipv4: Some(Ipv4Setting::Static(
                StaticIpv4::parse("192.0.2.20/24", "192.0.2.1").unwrap(),
            )),
            ..NicChange::default()
        };
        let body = change.body(&interface("192.0.2.10"));
        assert_eq!(body["IPv4StaticAddresses"][0]["Address"], "192.0.2.20");
        assert_eq!(body["DHCPv4"]["DHCPEnabled"], false);
    }

    #[test]
    fn address_change_on_connected_interface_cuts_connection() {
        let change = NicChange {
            ipv4: Some(Ipv4Setting::Static(
                StaticIpv4::parse("192.0.2.20/24", "192.0.2.1").unwrap(),
            )),
            ..NicChange::default()
        };
        let reason = change.cuts_connection(&interface("192.0.2.10"), "192.0.2.10");
        assert!(reason.is_some_and(|text| text.contains("192.0.2.20")));
    }

    #[test]
    fn change_on_other_interface_keeps_connection() {
        let change = NicChange {
            ipv4: Some(Ipv4Setting::Dhcp),
            ..NicChange::default()
        };
        assert_eq!(
            change.cuts_connection(&interface("192.0.2.10"), "198.51.100.7"),
            None
        );
    }

    #[test]
    fn dns_only_change_keeps_connection() {
        let change = NicChange {
            dns: Some(vec!["192.0.2.53".parse().unwrap()]),
            ..NicChange::default()
        };
        assert_eq!(
            change.cuts_connection(&interface("192.0.2.10"), "192.0.2.10"),
            None
        );
    }
}
