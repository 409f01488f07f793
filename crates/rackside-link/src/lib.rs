//! The at-the-server link of rackside: a device standing at the server talks to the BMC over a
//! short-range radio, after someone pressed the BMC's activation button.
//!
//! The core is sans-IO in the manner of rustls: [`LinkClient`] and [`LinkServer`] take frames
//! and time in and give frames, events and messages out, and never touch a socket or a clock.
//! Layers, bottom up:
//!
//! - [`Frame`]: one radio frame with the device id and its simulated distance;
//! - [`segment`]: segments of 20 to 244 bytes with sequence numbers, acks and a window, as
//!   Matter's BTP does over GATT;
//! - a TLS channel in one of two [`Profile`]s (TLS 1.3 with X25519, or TLS 1.2 with RFC 7919
//!   FFDHE), both AES-128-GCM only;
//! - [`Message`]s inside the channel: a login bound to the channel by a TLS exporter, then
//!   HTTP/1.1 requests for the BMC's Redfish service.
//!
//! The transports drive the core: [`memory`] (in-process, with fault injection), [`socket`]
//! (a Unix socket between processes) and, with the `ble` feature, `ble` (BLE GATT through
//! BlueZ, which needs the Debian package libdbus-1-dev to build).

#![deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

#[cfg(feature = "ble")]
pub mod ble;
mod channel;
mod client;
mod error;
mod ffdhe;
mod frame;
pub mod http;
pub mod lockout;
pub mod memory;
mod message;
mod profile;
pub mod segment;
mod server;
pub mod service;
pub mod socket;
mod transport;

pub use client::{ClientOutput, ClientSettings, LinkClient};
pub use error::Error;
pub use frame::{Frame, MAX_FRAME_SIZE};
pub use message::{parse_mac, Login, LoginResult, Message, Password, BINDING_LEN};
pub use profile::{generate_rsa_key, Profile, RSA_KEY_BITS};
pub use server::{Authenticator, BmcIdentity, Event, LegacyDefault, LinkServer, ServerSettings};
pub use transport::{scan, ClientSession, LinkTransport, SessionInfo};

/// The description an activated BMC sends in reply to a scan.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Advertisement {
    /// The server's Service Tag.
    pub service_tag: String,
    /// The server model.
    pub model: String,
    /// The channel profile the BMC speaks.
    pub profile: Profile,
    /// Whether another device has the link open.
    pub busy: bool,
}
