//! `--via https|link`: the transport a client command uses to reach the BMC.
//!
//! Over HTTPS the client connects to the BMC's URL. Over the link it opens the at-the-server
//! link on the simulated radio's socket and checks the certificate presented there with the
//! same trust rules and pin as HTTPS. It then logs in inside the channel and sends the
//! command's Redfish requests through it. Either way the command gets a `Client<BmcTransport>`,
//! so its Redfish code is the same.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use rackside_link::{ClientSession, ClientSettings, LinkTransport, Password, Profile};
use rackside_redfish::{
    AuthMode, Client, Credentials, Error as RedfishError, HttpsTransport, Request, Response,
    RetryPolicy, Transport,
};

use crate::connect::Connection;
use crate::failure::{ExitKind, Failure};

/// Time to wait for each reply from the BMC over the link.
const LINK_TIMEOUT: Duration = Duration::from_secs(10);

/// Window of segments in flight on the link.
const LINK_WINDOW: u8 = 4;

/// The transport to the BMC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Via {
    /// The BMC's HTTPS URL from the server list
    #[default]
    Https,
    /// The at-the-server link on `--link-socket`, after the activation button was pressed
    Link,
}

/// The options that choose the transport and reach the link.
#[derive(Clone, Debug, Args)]
pub struct ViaOptions {
    /// How to reach the BMC: https (its URL) or link (the at-the-server link)
    #[arg(long, global = true, default_value = "https", value_name = "TRANSPORT")]
    pub via: Via,

    /// The BMC's link socket (`rackside bmc --link-socket`), for --via link
    #[arg(long, global = true, env = "RACKSIDE_LINK_SOCKET", value_name = "PATH")]
    pub link_socket: Option<PathBuf>,

    /// This device's distance from the server in metres, for --via link (about 1 m reaches
    /// the BMC before login, about 5 m after)
    #[arg(long, global = true, default_value_t = 0.5, value_name = "METERS")]
    pub distance: f64,

    /// Channel profile for --via link: default (TLS 1.3) or paper (TLS 1.2 with DHE); it must
    /// match the BMC's
    #[arg(long, global = true, default_value = "default", value_name = "PROFILE")]
    pub link_profile: Profile,
}

impl Default for ViaOptions {
    fn default() -> Self {
        ViaOptions {
            via: Via::Https,
            link_socket: None,
            distance: 0.5,
            link_profile: Profile::Default,
        }
    }
}

impl ViaOptions {
    /// Builds the device settings of the link: profile, largest segment size and distance.
    ///
    /// # Errors
    /// A distance that is negative, not a number, or beyond 655 m.
    pub fn link_settings(&self) -> Result<ClientSettings, Failure> {
        let centimetres = self.distance * 100.0;
        if !centimetres.is_finite() || !(0.0..=f64::from(u16::MAX)).contains(&centimetres) {
            return Err(Failure::usage(format!(
                "invalid --distance {}: give metres from 0 to 655",
                self.distance
            )));
        }
        Ok(ClientSettings {
            profile: self.link_profile,
            segment_size: rackside_link::segment::MAX_SEGMENT_SIZE,
            window: LINK_WINDOW,
            device: std::process::id(),
            // The range check above keeps the value inside u16.
            distance_cm: centimetres.round() as u16,
        })
    }

    /// Opens the link and completes the handshake when `--via link` is chosen, and returns
    /// `None` over HTTPS. No credential has been sent when this returns.
    ///
    /// # Errors
    /// A missing `--link-socket`, an invalid distance, or a BMC that rejects the connection or
    /// does not reply in time.
    pub async fn open_link(&self, name: &str) -> anyhow::Result<Option<ClientSession>> {
        if self.via != Via::Link {
            return Ok(None);
        }
        let socket = self.link_socket.as_ref().ok_or_else(|| {
            Failure::usage(format!(
                "--via link needs --link-socket PATH (or RACKSIDE_LINK_SOCKET) to reach {name}"
            ))
        })?;
        let settings = self.link_settings()?;
        let pipe = rackside_link::socket::connect(socket)
            .await
            .map_err(|error| link_failure(name, &error))?;
        let session = ClientSession::connect(pipe, settings, LINK_TIMEOUT)
            .await
            .map_err(|error| link_failure(name, &error))?;
        Ok(Some(session))
    }
}

/// Logs in over a link whose certificate the caller has already judged and accepted: first
/// to the link inside the channel, then to the Redfish service through it.
///
/// # Errors
/// A login the BMC rejects or a locked link, with the exit code and the next step to take.
pub async fn login_link(
    name: &str,
    mut session: ClientSession,
    credentials: &Credentials,
) -> anyhow::Result<Connection> {
    session
        .accept_certificate()
        .map_err(|error| link_failure(name, &error))?;
    let password = Password::new(credentials.password.expose());
    let info = session
        .login(&credentials.username, &password, None)
        .await
        .map_err(|error| link_failure(name, &error))?;
    eprintln!(
        "{name}: link open to Service Tag {} ({}), {} {}",
        info.service_tag, info.model, info.version, info.suite
    );
    let mut client = Client::new(
        BmcTransport::Link(LinkTransport::new(session)),
        RetryPolicy::default(),
    );
    client.connect().await?;
    client.login(credentials, AuthMode::Session).await?;
    Ok(Connection {
        name: name.to_owned(),
        client,
    })
}

/// Turns a link error into a one-line failure with the exit code a script can test.
///
/// A locked link exits with [`ExitKind::AuthRejected`] (5), like a rejected password. A busy,
/// silent or closed link exits with [`ExitKind::Unreachable`] (6).
pub fn link_failure(name: &str, error: &rackside_link::Error) -> Failure {
    Failure::new(link_kind(error), format!("link to {name}: {error}"))
}

/// Maps a link error to its exit code, as [`link_failure`] describes.
pub fn link_kind(error: &rackside_link::Error) -> ExitKind {
    match error {
        rackside_link::Error::LockedOut | rackside_link::Error::LoginRejected { .. } => {
            ExitKind::AuthRejected
        }
        rackside_link::Error::SegmentSize { .. } | rackside_link::Error::Config { .. } => {
            ExitKind::Usage
        }
        _ => ExitKind::Unreachable,
    }
}

/// The Redfish transport of a connection: HTTPS to the BMC's URL, or the at-the-server link.
#[derive(Debug)]
pub enum BmcTransport {
    /// HTTPS with the pinned certificate.
    Https(HttpsTransport),
    /// The at-the-server link after login.
    Link(LinkTransport),
}

impl Transport for BmcTransport {
    async fn send(&self, request: Request) -> Result<Response, RedfishError> {
        match self {
            BmcTransport::Https(transport) => transport.send(request).await,
            BmcTransport::Link(transport) => transport.send(request).await,
        }
    }

    fn base_url(&self) -> Option<String> {
        match self {
            BmcTransport::Https(transport) => transport.base_url(),
            BmcTransport::Link(transport) => transport.base_url(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(distance: f64) -> ViaOptions {
        ViaOptions {
            via: Via::Link,
            link_socket: None,
            distance,
            link_profile: Profile::Default,
        }
    }

    #[test]
    fn distance_becomes_centimetres() {
        let settings = options(4.25).link_settings().unwrap();
        assert_eq!(settings.distance_cm, 425);
    }

    #[test]
    fn negative_or_huge_distance_is_rejected() {
        for distance in [-1.0, 700.0, f64::NAN] {
            let failure = options(distance).link_settings().unwrap_err();
            assert_eq!(failure.kind, ExitKind::Usage, "{distance}");
        }
    }

    #[tokio::test]
    async fn link_without_socket_is_a_usage_error() {
        let error = options(0.5).open_link("r1").await.unwrap_err();
        let failure = error.downcast_ref::<Failure>().unwrap();
        assert_eq!(failure.kind, ExitKind::Usage);
        assert!(failure.message.contains("--link-socket"));
    }

    #[test]
    fn locked_link_exits_as_rejected_login() {
        let failure = link_failure("r1", &rackside_link::Error::LockedOut);
        assert_eq!(failure.kind, ExitKind::AuthRejected);
        assert!(failure.message.contains("press the activation button"));
    }
}
