//! A stateful Redfish BMC simulator served over HTTPS.
//!
//! [`start`] serves either the embedded sample server ([`sample`]) or any DMTF mockup folder on
//! a loopback port, with a self-signed certificate kept in the state directory. The service
//! has session and Basic authentication, a per-user session limit, ETags, paging, a power
//! state machine, simulated tasks, a lifecycle log that records every login, and switchable
//! [`Fault`]s that reproduce the misbehaviour of real BMCs.
//!
//! [`router`] builds the same service without a socket, for in-process tests.
//!
//! # If-Match policy
//!
//! A PATCH with `If-Match` must name the current entity tag (or `*`), else it gets 412. A PATCH
//! without `If-Match` is accepted, except under [`Fault::WeakEtag`], which answers it with 428.
//!
//! # Audit
//!
//! Every session login, failed login (session or Basic) and logout writes a lifecycle log entry
//! with the client address. A successful Basic request writes none, so that a client polling
//! with Basic credentials does not flood the log.
//!
//! # Dynamic resources
//!
//! The simulator serves these itself instead of from the data: the sessions collection at the
//! URI of the service root's `Links.Sessions`, the log Entries collections (newest first, 50 a
//! page), the accounts collection and `$metadata` and `/redfish/v1/odata` when the data has
//! none, tasks, and the event service: subscriptions, `SubmitTestEvent` and the SSE stream
//! of [`events::EventService`].
//!
//! # Events
//!
//! Every lifecycle log entry is also raised as a Redfish event: logins, failed logins,
//! logouts and changes. So are the end of each power transition
//! (`Rackside.1.0.PowerStateChanged`), a failed fan or power supply, and a temperature
//! sensor crossing an upper threshold. Subscriptions accept `https` destinations only.
//!
//! # Writable properties
//!
//! PATCH changes these properties:
//!
//! - systems: `AssetTag`, `HostName`, `IndicatorLED`, `LocationIndicatorActive`, the `Boot`
//!   override;
//! - chassis: the identify LED, `AssetTag`, `Location` (placement, postal address, part
//!   location); drives: the identify LED and `AssetTag`;
//! - Ethernet interfaces: `HostName`, `FQDN`, `DHCPv4`, `IPv4StaticAddresses`,
//!   `StaticNameServers`, `VLAN`; network protocol settings: `HostName`, `NTP`;
//! - the session service's `SessionTimeout`, and the `ServerTopology.1.*` attributes of an
//!   iDRAC capture;
//! - `UserName`, `Password`, `RoleId` and `Enabled` of account resources in a mockup (a filled
//!   account can log in).
//!
//! A read-only property gets 400 `PropertyNotWritable`, an absent one 400 `PropertyUnknown`,
//! a malformed value `PropertyValueFormatError`. Nothing changes when any property of a
//! request is rejected. Every change goes into the lifecycle log with the user and the client
//! address, and [`RunningBmc::record_event`] adds entries from elsewhere.
//!
//! The identify LED properties stay consistent with each other, a one-time boot override goes
//! back to `Disabled` once the host has booted, and the reported addresses of an Ethernet
//! interface follow its settings (the simulator itself keeps its listening address).
//!
//! # Accounts
//!
//! Unless the data has its own, the accounts collection is served from the configured accounts
//! and takes POST (create), PATCH and DELETE from administrators, with the password lengths of
//! the account service. Disabled and deleted accounts cannot log in, and their sessions end.
//!
//! # Query parameters
//!
//! `$top`, `$skip`, `only`, `$select`, `$filter` (`eq`, `ne`, `gt`, `ge`, `lt`, `le`, `and`,
//! `or`, `not`, parentheses) and `$expand` (`*`, `.`, `~` with `$levels` up to 3) work on
//! every resource; `excerpt` is accepted and ignored.
//!
//! # Fleets
//!
//! [`start_fleet`] starts several independent BMCs for fleet tests, each with its own state
//! folder, certificate, service tag and MAC addresses, sharing the unchanged parts of the data.
//!
//! # Fault control
//!
//! `GET /rackside/faults` lists the enabled and the known faults. An administrator changes them
//! with `POST /rackside/faults` and a body such as
//! `{"enable": ["weak-etag"], "disable": ["numeric-etag"]}`. Enabling `fan-failure` or
//! `psu-failure` marks the first fan or power supply `Critical` and raises an event, and
//! `{"temperature": 95.0}` sets the reading of the first temperature sensor in degrees
//! Celsius, raising an event when it crosses an upper threshold.
#![deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
#![cfg_attr(
    test,
    allow(
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::unwrap_used
    )
)]

mod account_api;
mod accounts;
mod actions;
mod config;
mod control;
mod dynamic;
mod error;
mod event_routes;
pub mod events;
mod fault;
mod fleet;
pub mod link;
mod listener;
mod login;
mod logs;
mod metadata;
mod network;
mod patch;
mod power;
mod query;
mod quirks;
mod read;
mod reply;
pub mod sample;
mod service;
mod state;
mod tasks;
mod tls;
mod tree;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use config::{BmcConfig, DataSource, Role, Secret, TlsSource, UserAccount};
pub use error::BmcError;
pub use fault::{Fault, FaultControl, Faults, UnknownFault};
pub use fleet::start_fleet;
pub use listener::{ConnectionStats, RunningBmc};
pub use logs::PAGE_SIZE;
pub use service::{router, ClientAddr, FAULTS_PATH, TRANSIENT_EMPTY_WINDOW, TRANSIENT_FAILURES};
pub use state::BmcState;
pub use tls::{CERT_FILE, KEY_FILE};

/// Loads the data and certificate of `config` and starts serving HTTPS on a background task.
///
/// # Errors
///
/// [`BmcError::NoUser`] without a first user; [`BmcError::InvalidMockup`] or [`BmcError::Io`]
/// for an unreadable mockup; [`BmcError::InvalidTlsFile`], [`BmcError::CertificateGeneration`]
/// or [`BmcError::Tls`] for certificate problems; [`BmcError::Bind`] when the address is taken.
pub async fn start(config: BmcConfig) -> Result<RunningBmc, BmcError> {
    let data = state::load_data(&config)?;
    serve(config, data).await
}

/// Serves `data` as [`start`] does, so that a fleet loads its data once.
async fn serve(config: BmcConfig, data: tree::LoadedData) -> Result<RunningBmc, BmcError> {
    let state = Arc::new(BmcState::with_data(&config, data)?);
    let identity = tls::load_identity(&config.tls, &config.state_dir, &state.host_label)?;
    let certificate = identity
        .chain
        .first()
        .cloned()
        .ok_or_else(|| BmcError::Tls("the certificate chain is empty".into()))?;
    let acceptor = TlsAcceptor::from(tls::server_config(&identity)?);

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| BmcError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| BmcError::Bind {
        addr: config.listen,
        source,
    })?;

    let counters = Arc::new(listener::Counters::default());
    let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
    let faults = state.faults();
    let settings = listener::LoopSettings {
        max_connections: config.max_connections.max(1),
        max_connections_per_client: config.max_connections_per_client.max(1),
        header_read_timeout: config.header_read_timeout,
    };
    let task = tokio::spawn(listener::accept_loop(
        listener,
        acceptor,
        router(state.clone()),
        counters.clone(),
        settings,
        shutdown_rx,
    ));
    tracing::debug!(%local_addr, "BMC simulator listening");
    Ok(RunningBmc {
        local_addr,
        certificate,
        counters,
        faults,
        state,
        shutdown,
        task,
    })
}
