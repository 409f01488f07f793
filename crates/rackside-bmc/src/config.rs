//! Configuration of one simulated BMC.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::fault::Faults;

/// Everything [`crate::start`] needs to run a simulated BMC.
#[derive(Debug, Clone)]
pub struct BmcConfig {
    /// Address of the HTTPS listener; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Folder for the generated certificate (`bmc-cert.pem`) and key (`bmc-key.pem`, mode 0600).
    pub state_dir: PathBuf,
    /// Where the TLS certificate comes from.
    pub tls: TlsSource,
    /// Which resource tree to serve.
    pub data: DataSource,
    /// The first administrator account; the simulator has no built-in default password.
    pub first_user: Option<(String, Secret)>,
    /// Further accounts, for example a read-only user to reproduce role problems.
    pub extra_users: Vec<UserAccount>,
    /// Whether HTTP Basic authentication is accepted; `false` rejects every Basic request with
    /// `Base.1.22.AccessDenied`.
    pub basic_auth: bool,
    /// Maximum number of open sessions per user; one more login gets 503 with `RAC0218`.
    pub max_sessions_per_user: usize,
    /// A session unused for this long is deleted.
    pub session_idle_timeout: Duration,
    /// Time a system spends in `PoweringOn` or `PoweringOff` after a reset, and the run time of
    /// a simulated task.
    pub power_delay: Duration,
    /// Behaviour cases enabled from the start.
    pub faults: Faults,
    /// Maximum number of open connections; further connections are closed right after accept.
    pub max_connections: usize,
    /// Maximum number of open connections from one client IP address, so one client cannot
    /// take every connection slot.
    pub max_connections_per_client: usize,
    /// Time allowed for the TLS handshake and for the request headers to arrive.
    pub header_read_timeout: Duration,
    /// Time allowed for a request body to arrive once the headers are in; a slower body gets
    /// 408 Request Timeout and the connection is closed.
    pub body_read_timeout: Duration,
    /// Position of this BMC in a fleet (from 1), set by [`crate::start_fleet`]: gives it its
    /// own service tag, MAC addresses and UUIDs. `None` serves the data as it is.
    pub fleet_index: Option<usize>,
    /// Event delivery settings: retries, SSE history and extra trust anchors for
    /// subscription destinations.
    pub events: crate::events::EventConfig,
}

impl BmcConfig {
    /// Creates a configuration with the defaults: `127.0.0.1:8443`, a generated certificate,
    /// the embedded sample server, Basic auth on, 8 sessions per user, 30 minutes idle expiry,
    /// 3 s power transitions, no faults, 256 connections (32 per client address), 10 s for
    /// the handshake and headers, 20 s for a request body, and event delivery as iDRAC 9 does it
    /// (3 attempts, 30 s apart). A first user must still be set.
    pub fn new(state_dir: PathBuf) -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8443)),
            state_dir,
            tls: TlsSource::Generated,
            data: DataSource::Embedded,
            first_user: None,
            extra_users: Vec::new(),
            basic_auth: true,
            max_sessions_per_user: 8,
            session_idle_timeout: Duration::from_secs(30 * 60),
            power_delay: Duration::from_secs(3),
            faults: Faults::default(),
            max_connections: 256,
            max_connections_per_client: 32,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(20),
            fleet_index: None,
            events: crate::events::EventConfig::default(),
        }
    }
}

/// Source of the server certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// A self-signed certificate generated on first start and kept in the state directory.
    Generated,
    /// The user's own PEM files: a certificate chain (leaf first) and its private key.
    Files {
        /// PEM certificate chain.
        cert: PathBuf,
        /// PEM private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
}

/// Source of the Redfish resource tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    /// The sample server built into this crate ([`crate::sample::sample_server`]).
    Embedded,
    /// A DMTF mockup folder: short form (the folder is `/redfish/v1`) or long form (it holds
    /// `redfish/v1/`).
    Mockup(PathBuf),
}

/// Privilege level of an account, named after the Redfish standard roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// May read and change everything.
    Administrator,
    /// May read, patch and run actions, but not change the simulator's faults.
    Operator,
    /// May only read.
    ReadOnly,
}

impl Role {
    /// The Redfish `RoleId` of this role.
    pub fn role_id(self) -> &'static str {
        match self {
            Role::Administrator => "Administrator",
            Role::Operator => "Operator",
            Role::ReadOnly => "ReadOnly",
        }
    }
}

/// An account besides the first user.
#[derive(Debug, Clone)]
pub struct UserAccount {
    /// User name.
    pub name: String,
    /// Password.
    pub password: Secret,
    /// Privilege level.
    pub role: Role,
}

/// A password held in memory that is wiped on drop and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a password.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The password itself. Callers compare or hash it; they never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_is_redacted() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "[REDACTED]");
        assert_eq!(secret.expose(), "hunter2");
    }
}
