//! `rackside network NAME|--all|--group G show|set [--dhcp | --address A/PREFIX --gateway G]
//! [--dns A,B] [--vlan ID|off] [--hostname H]`.
//!
//! Every value is checked before any server is contacted. A change that moves the address
//! the client is connected to is announced with the way back, and needs confirmation or
//! `--yes`.

use std::net::IpAddr;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use rackside_redfish::{
    HostName, Ipv4Setting, ManagerInterface, NicChange, StaticIpv4, VlanId, VlanSetting,
};
use serde_json::json;

use crate::cli::{ClientOptions, Target};
use crate::connect::{Connection, Context};
use crate::failure::Failure;
use crate::fleet::{self, confirm, write_failed, Done, RunOptions};

/// `rackside network`
#[derive(Debug, Args)]
pub struct NetworkArgs {
    #[command(flatten)]
    pub client: ClientOptions,

    #[command(flatten)]
    pub target: Target,

    #[command(subcommand)]
    pub command: NetworkCommand,

    /// Print JSON
    #[arg(long, global = true)]
    pub json: bool,
}

/// `rackside network ...`
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Show the BMC's network interfaces: addresses, gateway, DNS, VLAN and host name
    Show,
    /// Change the BMC's network settings; unset options stay as they are
    Set(NetworkSet),
}

/// `rackside network set` options.
#[derive(Debug, Args)]
pub struct NetworkSet {
    /// Get the IPv4 address from DHCP
    #[arg(long, conflicts_with_all = ["address", "gateway"])]
    pub dhcp: bool,

    /// Static IPv4 address with prefix length, such as 192.0.2.10/24 (needs --gateway)
    #[arg(long, requires = "gateway", value_name = "A/PREFIX")]
    pub address: Option<String>,

    /// IPv4 gateway inside the --address subnet
    #[arg(long, requires = "address", value_name = "G")]
    pub gateway: Option<String>,

    /// DNS servers, comma-separated, such as 192.0.2.53,198.51.100.53
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub dns: Option<Vec<String>>,

    /// VLAN id 1 to 4094, or off
    #[arg(long, value_name = "ID|off")]
    pub vlan: Option<String>,

    /// BMC host name (RFC 1123: letters, digits, hyphens, dots between labels)
    #[arg(long, value_name = "H")]
    pub hostname: Option<String>,

    /// Do not ask for confirmation when the change moves the address rackside connects to
    #[arg(long)]
    pub yes: bool,
}

impl NetworkSet {
    /// Turns the options into a checked change.
    fn change(&self) -> Result<NicChange, Failure> {
        let usage =
            |error: rackside_redfish::Error| Failure::usage(format!("{error}; nothing was sent"));
        let ipv4 = match (&self.address, &self.gateway) {
            (Some(address), Some(gateway)) => Some(Ipv4Setting::Static(
                StaticIpv4::parse(address, gateway).map_err(usage)?,
            )),
            _ if self.dhcp => Some(Ipv4Setting::Dhcp),
            _ => None,
        };
        let dns = match &self.dns {
            Some(servers) => {
                let mut parsed = Vec::new();
                for server in servers {
                    let ip: IpAddr = server.trim().parse().map_err(|_| {
                        Failure::usage(format!(
                            "invalid DNS server {server:?}: not an IP address such as 192.0.2.53; nothing was sent"
                        ))
                    })?;
                    parsed.push(ip);
                }
                Some(parsed)
            }
            None => None,
        };
        let vlan = match self.vlan.as_deref() {
            Some(text) if text.eq_ignore_ascii_case("off") => Some(VlanSetting::Off),
            Some(text) => Some(VlanSetting::On(VlanId::parse(text).map_err(usage)?)),
            None => None,
        };
        let host_name = match &self.hostname {
            Some(name) => Some(HostName::parse(name).map_err(usage)?),
            None => None,
        };
        let change = NicChange {
            ipv4,
            dns,
            vlan,
            host_name,
        };
        if change.is_empty() {
            return Err(Failure::usage(
                "network set needs at least one of --dhcp, --address, --dns, --vlan, --hostname",
            ));
        }
        Ok(change)
    }
}

/// Runs the network command on the selected servers.
pub async fn run(context: Context, args: NetworkArgs) -> anyhow::Result<ExitCode> {
    let change = match &args.command {
        NetworkCommand::Show => None,
        NetworkCommand::Set(set) => Some((set.change()?, set.yes)),
    };
    // One static address or host name on several BMCs would give them all the same one.
    let per_server = change.as_ref().is_some_and(|(change, _)| {
        matches!(change.ipv4, Some(Ipv4Setting::Static(_))) || change.host_name.is_some()
    });
    if per_server && args.target.name.is_none() {
        return Err(Failure::usage(
            "--address and --hostname set one server's own values; give a server NAME instead of --all or --group",
        )
        .into());
    }
    let options = RunOptions {
        target: &args.target,
        json: args.json,
        label: "network",
    };
    let change = &change;
    let client_options = &args.client;
    let hosts: std::collections::BTreeMap<String, String> = context
        .store
        .servers()
        .iter()
        .map(|(name, entry)| {
            (
                name.clone(),
                entry.url.host_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let hosts = &hosts;
    fleet::run(context, options, |connection, single| async move {
        let host = hosts.get(&connection.name).cloned().unwrap_or_default();
        let result = match change {
            None => show(&connection).await,
            Some((change, yes)) => {
                set(&connection, change, &host, *yes, single, client_options).await
            }
        };
        (connection, result)
    })
    .await
}

async fn show(connection: &Connection) -> anyhow::Result<Done> {
    let interfaces = connection.client.manager_interfaces().await?;
    let mut lines = Vec::new();
    for nic in &interfaces {
        lines.extend(describe(nic));
    }
    let summary = interfaces
        .iter()
        .map(|nic| format!("{}: {}", nic.id, addresses(nic)))
        .collect::<Vec<_>>()
        .join("; ");
    Ok(Done {
        summary,
        lines,
        notes: Vec::new(),
        data: json!(interfaces),
    })
}

async fn set(
    connection: &Connection,
    change: &NicChange,
    host: &str,
    yes: bool,
    single: bool,
    client_options: &ClientOptions,
) -> anyhow::Result<Done> {
    let client = &connection.client;
    let interfaces = client.manager_interfaces().await?;
    // The interface that carries the connection, else the first one.
    let host_ip: Option<IpAddr> = host.trim_matches(['[', ']']).parse().ok();
    let interface = interfaces
        .iter()
        .find(|nic| {
            nic.addresses
                .iter()
                .any(|entry| entry.address.parse::<IpAddr>().ok() == host_ip && host_ip.is_some())
        })
        .or_else(|| interfaces.first())
        .ok_or_else(|| anyhow::anyhow!("not applied: the BMC lists no network interface"))?;

    let mut notes = Vec::new();
    if let Some(reason) = change.cuts_connection(interface, host) {
        let way_back = format!(
            "this change {reason}, so the connection to {host} will drop. To get back: try the \
             old address {}, or use the serial console or the at-the-server link, then update \
             the server with `rackside server add NAME https://NEW-ADDRESS`",
            addresses(interface)
        );
        eprintln!("warning: {}: {way_back}", connection.name);
        if single {
            confirm(
                client_options,
                &format!("change the network settings of {}", connection.name),
                yes,
            )
            .map_err(|error| error.context("not applied"))?;
        } else if !yes {
            return Err(anyhow::anyhow!(
                "not applied: the change {reason}; rerun with --yes to apply it to every server"
            ));
        }
        notes.push(way_back);
    }

    let outcome = match client.set_manager_interface(interface, change).await {
        Ok(outcome) => outcome,
        Err(error) if !notes.is_empty() => {
            return Err(write_failed(error).context(
                "the BMC may have applied the change before the connection dropped; check it at the new address",
            ));
        }
        Err(error) => return Err(write_failed(error)),
    };
    notes.extend(outcome.notes);
    let summary = if change.cuts_connection(interface, host).is_some() {
        format!(
            "sent to {}; the BMC moves to its new settings",
            interface.id
        )
    } else {
        let after = client.manager_interfaces().await?;
        let now = after.iter().find(|nic| nic.path == interface.path);
        format!(
            "applied to {}: {}",
            interface.id,
            now.map(addresses).unwrap_or_default()
        )
    };
    Ok(Done {
        summary,
        lines: Vec::new(),
        notes,
        data: json!({ "interface": interface.path, "change": change }),
    })
}

fn addresses(nic: &ManagerInterface) -> String {
    let list: Vec<String> = nic
        .addresses
        .iter()
        .map(|entry| match &entry.subnet_mask {
            Some(mask) => format!("{} mask {mask}", entry.address),
            None => entry.address.clone(),
        })
        .collect();
    if list.is_empty() {
        "no IPv4 address".into()
    } else {
        list.join(", ")
    }
}

fn describe(nic: &ManagerInterface) -> Vec<String> {
    let text = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".into());
    let gateway = nic
        .addresses
        .iter()
        .find_map(|entry| entry.gateway.clone())
        .unwrap_or_else(|| "-".into());
    let vlan = match (nic.vlan_enabled, nic.vlan_id) {
        (Some(true), Some(id)) => id.to_string(),
        (Some(true), None) => "on, id unknown".into(),
        (Some(false), _) => "off".into(),
        (None, _) => "-".into(),
    };
    vec![
        format!("Interface:  {} ({})", nic.id, nic.path),
        format!("MAC:        {}", text(&nic.mac)),
        format!(
            "DHCP:       {}",
            nic.dhcp.map_or("-", |on| if on { "on" } else { "off" })
        ),
        format!("IPv4:       {}", addresses(nic)),
        format!("Gateway:    {gateway}"),
        format!(
            "DNS:        {}",
            if nic.name_servers.is_empty() {
                "-".into()
            } else {
                nic.name_servers.join(", ")
            }
        ),
        format!("VLAN:       {vlan}"),
        format!("Host name:  {}", text(&nic.host_name)),
    ]
}
