//! Redfish types and the client rackside uses to read health, inventory and logs from BMCs.
//!
//! The [`Client`] sends plain HTTP requests through a [`Transport`]: [`HttpsTransport`]
//! for the network, or any other channel that carries HTTP. It reads the service root and
//! logs in with a Redfish session, using Basic only when the service has no session
//! service. It retries transient failures with bounded back-off, pages collections, and
//! decodes leniently because real BMCs send malformed dates, numbers as strings and
//! objects where arrays belong. [`health`], [`inventory`] and [`logs`] build reports on
//! top.
//!
//! Writes go through [`Client::patch`], which guards a PATCH with the resource's entity tag
//! and copes with the spellings BMCs expect, and [`Client::action`], which never sends
//! `If-Match` and is never retried blindly. On top sit resets that wait for `PowerState`
//! ([`Client::reset_and_wait`]), task following that survives a vanished task monitor
//! ([`Client::follow_task`]), the identify LED and the boot source override.
//! User accounts ([`Client::add_account`]), the BMC's own network settings
//! ([`Client::set_manager_interface`]) and the chassis location ([`Client::set_location`])
//! use the same PATCH. [`Client::capture`] reads the whole service for a mockup, and
//! [`scrub`] replaces its secrets, addresses and serial numbers.
//!
//! ```no_run
//! # async fn example(tls: std::sync::Arc<rustls::ClientConfig>) -> Result<(), rackside_redfish::Error> {
//! use rackside_redfish::*;
//!
//! let base = url::Url::parse("https://bmc.example").map_err(|e| Error::InvalidUrl {
//!     url: "https://bmc.example".into(),
//!     detail: e.to_string(),
//! })?;
//! let transport = HttpsTransport::new(&base, tls, Limits::default())?;
//! let mut client = Client::new(transport, RetryPolicy::default());
//! client.connect().await?;
//! let creds = Credentials { username: "root".into(), password: Secret::new("secret") };
//! client.login(&creds, AuthMode::Session).await?;
//! let report = health(&client).await;
//! client.logout().await?;
//! # report.map(|_| ())
//! # }
//! ```

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

mod accounts;
mod capture;
mod client;
mod crawl;
pub mod decode;
mod error;
mod health;
mod inventory;
mod location;
mod logs;
mod network;
mod power;
mod secret;
mod settings;
#[cfg(test)]
mod testing;
mod transport;
mod write;

pub use accounts::{Account, AccountCreated, AccountPolicy, STANDARD_ROLES};
pub use capture::{
    is_identifier_name, is_secret_name, scrub, scrub_with, Capture, ScrubReport,
    MAX_CAPTURE_RESOURCES, SCRUBBED,
};
pub use client::{
    AuthMode, Client, Resource, RetryPolicy, DEFAULT_MAX_IN_FLIGHT, DEFAULT_POLL_INTERVAL,
    MAX_MEMBERS, MAX_PAGES, SERVICE_ROOT,
};
pub use crawl::Unreadable;
pub use decode::parse_timestamp;
pub use error::Error;
pub use health::{health, ComponentKind, ComponentProblem, HealthReport, SystemHealth};
pub use inventory::{
    inventory, Drive, EthernetInterface, Fan, Firmware, Inventory, MemoryModule, NetworkAdapter,
    NetworkPort, PowerSupply, Processor, Storage, StorageController, SystemInventory,
    SystemSummary, Temperature,
};
pub use location::{LocationReport, ServerLocation, MAX_FIELD_CHARS, MAX_RACK_SLOT};
pub use logs::{logs, logs_with_gaps, LogQuery, LogRecord, LogReport, Severity};
pub use network::{
    HostName, Ipv4Entry, Ipv4Setting, ManagerInterface, NicChange, StaticIpv4, VlanId, VlanSetting,
};
pub use power::{PowerObservation, PowerState, PowerWait, ResetType};
pub use secret::{Credentials, Secret};
pub use settings::{BootMode, BootOverride, BootOverrideEnabled, Indicator};
pub use transport::{HttpsTransport, Limits, Request, Response, Transport};
pub use write::{
    ActionOutcome, EntityTags, TaskOutcome, WriteAttempt, WriteOutcome, MAX_TAG_ATTEMPTS,
};
