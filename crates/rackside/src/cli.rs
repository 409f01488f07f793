//! Command-line syntax. Raw arguments are parsed here and turned into validated values by the
//! command modules before anything touches the network.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// rackside: monitor servers through their BMCs over Redfish, and run a BMC simulator.
#[derive(Debug, Parser)]
#[command(name = "rackside", version, about, max_term_width = 100)]
pub struct Cli {
    /// Log more to standard error: -v debug, -vv trace for the rackside crates (RUST_LOG or
    /// RACKSIDE_LOG take a full filter instead)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

/// Options of the commands that talk to BMCs as a client (not `bmc` or `demo`): those of
/// [`ServiceClientOptions`] and the transport.
#[derive(Debug, Args)]
pub struct ClientOptions {
    #[command(flatten)]
    pub service: ServiceClientOptions,

    #[command(flatten)]
    pub via: crate::via::ViaOptions,
}

/// Options of every client command, the console and relay commands included. The link
/// transport is in [`ClientOptions`] only, because only BMCs offer it.
#[derive(Clone, Debug, Args)]
pub struct ServiceClientOptions {
    /// Folder for installed CAs and, in its `vault` subfolder, the vault [default: the
    /// platform's config and data folders]. The device secret stays in the OS key store or the
    /// data folder
    #[arg(long, global = true, env = "RACKSIDE_CONFIG_DIR", value_name = "DIR")]
    pub config_dir: Option<PathBuf>,

    /// Trust this PEM CA certificate for this run, in addition to the system and installed CAs
    #[arg(long, global = true, value_name = "FILE")]
    pub trust_ca: Vec<PathBuf>,

    /// Accept a not-yet-trusted certificate whose SHA-256 fingerprint (certificate or public
    /// key; 64 hex digits, colons optional) is this value, without prompting
    #[arg(long, global = true, value_name = "SHA256")]
    pub accept_fingerprint: Option<String>,

    /// Read the password of the BMC or console from the first line of standard input
    /// (without it: the RACKSIDE_PASSWORD environment variable, else a prompt)
    #[arg(long, global = true)]
    pub password_stdin: bool,

    /// Never prompt; fail where a prompt would be needed
    #[arg(long, global = true)]
    pub non_interactive: bool,
}

impl ServiceClientOptions {
    /// Returns these options with HTTPS as the transport.
    pub fn client(&self) -> ClientOptions {
        ClientOptions {
            service: self.clone(),
            via: crate::via::ViaOptions::default(),
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add, list, remove and re-trust the BMCs this client manages
    Server(ServerArgs),

    /// Install, list and remove CA certificates trusted for BMC connections
    Ca(CaArgs),

    /// Create the encrypted vault, show its state, change its password, export or import it
    Vault(VaultArgs),

    /// Keep the vault open for later commands until `rackside lock` or an idle timeout
    Unlock(UnlockArgs),

    /// Lock the vault at once: the agent drops its keys and stops
    Lock(LockArgs),

    /// Show rolled-up health and every failing component
    #[command(override_usage = "rackside health [OPTIONS] <NAME | --all | --group GROUP>")]
    Health(HealthArgs),

    /// Show the hardware and firmware inventory
    Inventory(InventoryArgs),

    /// Show lifecycle log and SEL entries, newest first
    Logs(LogsArgs),

    /// Turn servers on or off, restart or power-cycle them, or send an NMI
    Power(crate::commands::power::PowerArgs),

    /// Turn the identify LED on, off or blinking
    Identify(crate::commands::identify::IdentifyArgs),

    /// Show or change the BMC's network settings (IPv4, gateway, DNS, VLAN, host name)
    Network(crate::commands::network::NetworkArgs),

    /// List, add, enable, disable BMC accounts and change their passwords and roles
    Account(crate::commands::account::AccountArgs),

    /// Show or set the boot source override
    Boot(crate::commands::boot::BootArgs),

    /// Show or set the data center, room, aisle, rack and slot
    Location(crate::commands::location::LocationArgs),

    /// Save the whole Redfish service as a mockup folder that `rackside bmc --mockup` serves
    Capture(crate::commands::capture::CaptureArgs),

    /// Write a support bundle (.tar.gz): health, logs, firmware and a capture
    Diag(crate::commands::diag::DiagArgs),

    /// Run the BMC simulator (Redfish over HTTPS)
    Bmc(BmcArgs),

    /// Reach a BMC at the server over its short-range link: scan, connect, press the button
    Nearby(crate::commands::nearby::NearbyArgs),

    /// Run the push relay, or manage its console API keys
    Relay(crate::commands::relay::RelayArgs),

    /// Run the fleet console
    Console(crate::commands::console::ConsoleArgs),

    /// List a console's alerts, acknowledge one, or watch for pushed alerts
    Alerts(crate::commands::alerts::AlertsArgs),

    /// Receive a console's alerts on this machine, pushed through the console's relay
    Subscribe(crate::commands::subscribe::SubscribeArgs),

    /// Stop receiving a console's alerts and remove this device's registrations
    Unsubscribe(crate::commands::subscribe::UnsubscribeArgs),

    /// Start an embedded BMC on loopback and walk through trust, health, inventory and logs
    Demo,
}

/// `rackside server ...` with the client options.
#[derive(Debug, Args)]
pub struct ServerArgs {
    #[command(flatten)]
    pub client: ClientOptions,

    #[command(subcommand)]
    pub command: ServerCommand,
}

/// `rackside ca ...` with the client options.
#[derive(Debug, Args)]
pub struct CaArgs {
    #[command(flatten)]
    pub client: ClientOptions,

    #[command(subcommand)]
    pub command: CaCommand,
}

/// `rackside server ...`
#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Add a BMC: checks its certificate and asks you to trust it
    Add {
        /// Name used in later commands
        name: String,
        /// BMC address, for example https://192.0.2.10 or https://bmc.example:8443
        url: String,
        /// BMC user name [default: root]
        #[arg(long, short)]
        user: Option<String>,
        /// Put the server in this group for `--group` runs (repeatable)
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
    },
    /// List the BMCs with their pinned fingerprints
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Remove a BMC and its pin
    Remove {
        /// Server name
        name: String,
    },
    /// Show the BMC's current certificate and decide again whether to trust it
    Trust {
        /// Server name
        name: String,
    },
    /// Store the BMC password of a server in the vault, replacing any stored one (read from
    /// --password-stdin, else a prompt)
    Passwd {
        /// Server name
        name: String,
    },
}

/// `rackside ca ...`
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Install a PEM CA certificate: BMC certificates it signed become green
    Add {
        /// PEM file with one or more CA certificates
        file: PathBuf,
    },
    /// List installed CA certificates
    List,
    /// Remove an installed CA certificate file by the name `ca list` shows
    Remove {
        /// File name as shown by `ca list` (with or without .pem)
        #[arg(value_name = "NAME")]
        fingerprint: String,
    },
}

/// Options of `vault`, `unlock` and `lock`.
#[derive(Debug, Args)]
pub struct VaultOptions {
    /// Folder whose `vault` subfolder contains the vault [default: the platform's data folder]
    #[arg(long, global = true, env = "RACKSIDE_CONFIG_DIR", value_name = "DIR")]
    pub config_dir: Option<PathBuf>,

    /// Read vault passwords from standard input, one line each in the order asked: the
    /// current one, then a new one (without it: RACKSIDE_VAULT_PASSWORD, else a prompt)
    #[arg(long, global = true)]
    pub password_stdin: bool,

    /// Never prompt; fail where a prompt would be needed
    #[arg(long, global = true)]
    pub non_interactive: bool,
}

/// `rackside vault ...` with its options.
#[derive(Debug, Args)]
pub struct VaultArgs {
    #[command(flatten)]
    pub options: VaultOptions,

    #[command(subcommand)]
    pub command: VaultCommand,
}

/// `rackside vault ...`
#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Create the vault (without this, the first command that needs one creates it without a
    /// password)
    Init {
        /// Create it without a password: the device secret alone unlocks it
        #[arg(long)]
        no_password: bool,
    },
    /// Show where the vault is, how it is protected, the device key store and the agent
    Status,
    /// Set, change or remove the vault password (rewraps the key; the database is unchanged)
    Passwd {
        /// Remove the password: the device secret alone unlocks the vault
        #[arg(long)]
        remove: bool,
    },
    /// Write every record to FILE, encrypted under a passphrase of its own
    Export {
        /// The export file to create
        file: PathBuf,
        /// Read the passphrase from standard input (after the vault password, if both)
        #[arg(long)]
        passphrase_stdin: bool,
    },
    /// Add the records of an export FILE to this vault, replacing those of the same name
    Import {
        /// The export file
        file: PathBuf,
        /// Read the passphrase from standard input (after the vault password, if both)
        #[arg(long)]
        passphrase_stdin: bool,
    },
    /// Enable or disable quick unlock (`rackside unlock --quick`)
    Quick {
        /// The action
        action: QuickAction,
    },
    /// Run the unlock agent in the foreground (`rackside unlock` starts it)
    #[command(hide = true)]
    Agent {
        /// Seconds without use before the agent locks and stops
        #[arg(long, default_value_t = 900)]
        idle_timeout_secs: u64,
    },
}

/// `rackside vault quick` actions.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum QuickAction {
    /// Keep a second key in the device key store that unlocks without the password
    Enable,
    /// Delete that key
    Disable,
}

/// `rackside unlock`
#[derive(Debug, Args)]
pub struct UnlockArgs {
    #[command(flatten)]
    pub options: VaultOptions,

    /// Unlock with the quick-unlock key in the device key store instead of the password
    #[arg(long)]
    pub quick: bool,

    /// Lock again after this long without use: a number with s, m or h, such as 90s or 2h
    #[arg(long, default_value = "15m", value_parser = crate::commands::vault::parse_timeout)]
    pub timeout: std::time::Duration,
}

/// `rackside lock`
#[derive(Debug, Args)]
pub struct LockArgs {
    #[command(flatten)]
    pub options: VaultOptions,
}

/// Which servers a command runs on.
#[derive(Debug, Args)]
pub struct Target {
    /// Server name (see `rackside server list`)
    #[arg(
        required_unless_present_any = ["all", "group"],
        conflicts_with_all = ["all", "group"]
    )]
    pub name: Option<String>,

    /// Run on every server in the list
    #[arg(long, conflicts_with = "group")]
    pub all: bool,

    /// Run on every server of this group (see `rackside server list`)
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,

    /// Maximum number of servers contacted at once with --all or --group
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
}

/// `rackside health`
#[derive(Debug, Args)]
pub struct HealthArgs {
    #[command(flatten)]
    pub client: ClientOptions,

    #[command(flatten)]
    pub target: Target,

    /// Print JSON
    #[arg(long)]
    pub json: bool,

    /// Exit with 10 when any server reports this health or worse (after printing)
    #[arg(long, value_name = "LEVEL")]
    pub fail_on: Option<SeverityArg>,

    /// Print the last report stored in the vault, with its age, without contacting the BMC
    #[arg(long)]
    pub cached: bool,
}

/// `rackside inventory`
#[derive(Debug, Args)]
pub struct InventoryArgs {
    #[command(flatten)]
    pub client: ClientOptions,

    /// Server name
    pub name: String,

    /// Print JSON
    #[arg(long)]
    pub json: bool,

    /// Print the last inventory stored in the vault, with its age, without contacting the BMC
    #[arg(long)]
    pub cached: bool,
}

/// `rackside logs`
#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub client: ClientOptions,

    /// Server name
    pub name: String,

    /// Maximum number of entries shown
    #[arg(long, default_value_t = 50)]
    pub limit: usize,

    /// Show only entries of this severity or worse
    #[arg(long, value_name = "LEVEL")]
    pub severity: Option<SeverityArg>,

    /// Show only entries created at or after TIME: RFC 3339 (2026-12-01T08:00:00Z), a date
    /// (2026-12-01, UTC) or an age in s, m, h, d or w such as 90m, 12h, 7d
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,

    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// Severity levels accepted on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SeverityArg {
    /// Everything
    Ok,
    /// Warning and critical
    Warning,
    /// Critical only
    Critical,
}

/// `rackside bmc`
#[derive(Debug, Args)]
pub struct BmcArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,

    /// Folder for the generated certificate and key [default: the platform's data folder]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// PEM certificate chain to serve instead of the generated one (needs --key)
    #[arg(long, requires = "key", value_name = "FILE")]
    pub cert: Option<PathBuf>,

    /// PEM private key for --cert
    #[arg(long, requires = "cert", value_name = "FILE")]
    pub key: Option<PathBuf>,

    /// Serve a DMTF-format mockup folder (short form or redfish/v1 long form) instead of the
    /// embedded sample server
    #[arg(long, value_name = "DIR")]
    pub mockup: Option<PathBuf>,

    /// First account's user name
    #[arg(long, env = "RACKSIDE_BMC_USER", value_name = "NAME")]
    pub user: Option<String>,

    /// File whose first line is the first account's password; without it the password comes
    /// from RACKSIDE_BMC_PASSWORD or a prompt (there is no built-in default password)
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// Extra CA certificate (PEM) trusted for event destinations, such as a console with a
    /// self-signed certificate; repeatable
    #[arg(long = "event-ca", value_name = "FILE")]
    pub event_cas: Vec<PathBuf>,

    /// Reject HTTP Basic authentication; sessions only
    #[arg(long)]
    pub no_basic_auth: bool,

    /// Maximum open sessions per user
    #[arg(long, default_value_t = 8)]
    pub session_limit: usize,

    /// Seconds a session may stay idle before it expires
    #[arg(long, default_value_t = 1800)]
    pub session_idle_timeout: u64,

    /// Seconds a client may take to send a request body before it gets 408
    #[arg(long, default_value_t = 20)]
    pub body_read_timeout: u64,

    /// Maximum open connections from one client address
    #[arg(long, default_value_t = 32)]
    pub connections_per_client: usize,

    /// Seconds a power transition takes (PoweringOn before On)
    #[arg(long, default_value_t = 3)]
    pub power_delay: u64,

    /// Enable a real-BMC misbehaviour (repeatable); --list-faults shows the names
    #[arg(long = "fault", value_name = "NAME")]
    pub faults: Vec<String>,

    /// List the fault names and exit
    #[arg(long)]
    pub list_faults: bool,

    /// Serve N independent BMCs (each with its own state subfolder, certificate, service tag
    /// and MAC addresses) on consecutive ports from the --listen port (port 0: free ports)
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub count: u16,

    /// Serve the at-the-server link on this Unix socket; it stays off until
    /// `rackside bmc button`
    #[arg(long, value_name = "PATH")]
    pub link_socket: Option<PathBuf>,

    /// Link channel profile: default (TLS 1.3, X25519) or paper (TLS 1.2, FFDHE)
    #[arg(long, default_value = "default", value_name = "PROFILE")]
    pub link_profile: rackside_link::Profile,

    /// The BMC's MAC address, which the legacy default password requires
    #[arg(long, default_value = "02:00:00:00:00:01", value_name = "MAC")]
    pub link_mac: String,

    /// Accept the legacy default password (root / calvin) over the link, only together with
    /// the MAC address; weak, and every use is logged
    #[arg(long)]
    pub link_legacy_default: bool,

    /// Act on a running simulator instead of starting one
    #[command(subcommand)]
    pub action: Option<BmcAction>,
}

/// `rackside bmc` subcommands that act on a running simulator.
#[derive(Debug, Subcommand)]
pub enum BmcAction {
    /// Press the activation button of a simulator started with --link-socket
    Button {
        /// The simulator's link socket; the button's control socket is beside it
        #[arg(long, env = "RACKSIDE_LINK_SOCKET", value_name = "PATH")]
        socket: PathBuf,
    },
}
