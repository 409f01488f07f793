//! The device side of the link, without I/O.
//!
//! The order is fixed: connect, finish the handshake, let the caller judge the BMC's
//! certificate, log in, then carry HTTP requests. Each step is only available in its state.

use std::collections::VecDeque;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};

use crate::channel::Channel;
use crate::frame::Frame;
use crate::message::{Login, LoginResult, Message, Password};
use crate::segment::{checked_segment_size, segment_name, Segment, Segmenter, VERSION};
use crate::{Advertisement, Error, Profile};

/// Settings of the device side.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// The channel profile; it must match the BMC's.
    pub profile: Profile,
    /// The largest segment size the device supports (20..=244).
    pub segment_size: usize,
    /// The device's receive window in segments.
    pub window: u8,
    /// The device's id on the radio.
    pub device: u32,
    /// The device's distance from the server in centimetres.
    pub distance_cm: u16,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            profile: Profile::Default,
            segment_size: 244,
            window: 4,
            device: 1,
            distance_cm: 50,
        }
    }
}

/// An output of a received frame.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ClientOutput {
    /// A BMC's reply to a scan.
    Advertisement(Advertisement),
    /// The handshake finished; the certificate can be judged.
    HandshakeDone,
    /// The BMC's reply to the login.
    LoginResult(LoginResult),
    /// The BMC's HTTP response.
    HttpResponse(Vec<u8>),
}

#[derive(Debug)]
enum State {
    Idle,
    Connecting,
    Handshaking(Box<Channel>),
    Established(Box<Channel>),
    LoggingIn(Box<Channel>),
    LoggedIn(Box<Channel>),
    Closed,
}

/// The device side of the link.
#[derive(Debug)]
pub struct LinkClient {
    settings: ClientSettings,
    tls: Arc<rustls::ClientConfig>,
    state: State,
    outgoing: VecDeque<Vec<u8>>,
    /// Set by [`LinkClient::accept_certificate`]; no credential leaves before it.
    certificate_accepted: bool,
}

impl LinkClient {
    /// Creates the device side.
    ///
    /// # Errors
    ///
    /// [`Error::SegmentSize`] outside 20..=244 and [`Error::Config`] when the profile's TLS
    /// configuration cannot be built.
    pub fn new(settings: ClientSettings) -> Result<Self, Error> {
        checked_segment_size(settings.segment_size)?;
        let tls = settings.profile.client_config()?;
        Ok(Self::with_tls_config(settings, tls))
    }

    /// Creates the device side with a caller-built TLS configuration, for tests of peers that
    /// break the profile.
    pub fn with_tls_config(settings: ClientSettings, tls: Arc<rustls::ClientConfig>) -> Self {
        LinkClient {
            settings,
            tls,
            state: State::Idle,
            outgoing: VecDeque::new(),
            certificate_accepted: false,
        }
    }

    /// Moves the simulated device; later frames carry the new distance.
    pub fn set_distance_cm(&mut self, distance_cm: u16) {
        self.settings.distance_cm = distance_cm;
    }

    /// Returns the device settings.
    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// Queues a scan request.
    pub fn scan(&mut self) {
        self.outgoing.push_back(Segment::Scan.encode());
    }

    /// Queues a connection request.
    ///
    /// # Errors
    ///
    /// [`Error::State`] unless the client is idle or closed.
    pub fn connect(&mut self) -> Result<(), Error> {
        if !matches!(self.state, State::Idle | State::Closed) {
            return Err(state_error("connect while a link is open"));
        }
        let max_segment_size = checked_segment_size(self.settings.segment_size)?;
        self.outgoing.push_back(
            Segment::Connect {
                version: VERSION,
                max_segment_size,
                window: self.settings.window,
            }
            .encode(),
        );
        self.state = State::Connecting;
        self.certificate_accepted = false;
        Ok(())
    }

    /// Returns the chain the BMC presented, once the handshake finished.
    pub fn peer_certificates(&self) -> Option<Vec<CertificateDer<'static>>> {
        match &self.state {
            State::Established(channel) | State::LoggingIn(channel) | State::LoggedIn(channel) => {
                Some(channel.peer_certificates())
            }
            _ => None,
        }
    }

    /// Returns the negotiated TLS version and cipher suite, once the handshake finished.
    pub fn negotiated(&self) -> Option<(rustls::ProtocolVersion, rustls::CipherSuite)> {
        match &self.state {
            State::Established(channel) | State::LoggingIn(channel) | State::LoggedIn(channel) => {
                channel.negotiated()
            }
            _ => None,
        }
    }

    /// Returns the negotiated segment size, once connected.
    pub fn segment_size(&self) -> Option<usize> {
        match &self.state {
            State::Handshaking(channel)
            | State::Established(channel)
            | State::LoggingIn(channel)
            | State::LoggedIn(channel) => Some(channel.segment_size()),
            _ => None,
        }
    }

    /// Returns whether the login succeeded and the link is open.
    pub fn is_logged_in(&self) -> bool {
        matches!(self.state, State::LoggedIn(_))
    }

    /// Returns whether the link ended.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Records that the caller judged the BMC's certificate (from
    /// [`LinkClient::peer_certificates`]) and accepts it, which [`LinkClient::login`] requires.
    ///
    /// # Errors
    ///
    /// [`Error::State`] before the handshake finished.
    pub fn accept_certificate(&mut self) -> Result<(), Error> {
        if !matches!(self.state, State::Established(_)) {
            return Err(state_error(
                "certificate accepted before the handshake finished",
            ));
        }
        self.certificate_accepted = true;
        Ok(())
    }

    /// Sends the login, bound to this channel.
    ///
    /// # Errors
    ///
    /// [`Error::State`] before the handshake finished, before
    /// [`LinkClient::accept_certificate`], or after a login was sent.
    pub fn login(
        &mut self,
        user: &str,
        password: &Password,
        mac: Option<[u8; 6]>,
    ) -> Result<(), Error> {
        if !self.certificate_accepted {
            return Err(state_error(
                "login before the BMC's certificate was accepted",
            ));
        }
        let State::Established(mut channel) = std::mem::replace(&mut self.state, State::Closed)
        else {
            return Err(state_error("login before the handshake finished or twice"));
        };
        let login = Login {
            user: user.to_owned(),
            password: password.clone(),
            binding: channel.binding()?,
            mac,
        };
        channel.send(&Message::Login(login))?;
        self.state = State::LoggingIn(channel);
        Ok(())
    }

    /// Sends one HTTP/1.1 request.
    ///
    /// # Errors
    ///
    /// [`Error::State`] before login.
    pub fn send_request(&mut self, request: Vec<u8>) -> Result<(), Error> {
        let State::LoggedIn(channel) = &mut self.state else {
            return Err(state_error("HTTP request before login"));
        };
        channel.send(&Message::HttpRequest(request))
    }

    /// Queues a close and ends the link.
    pub fn close(&mut self) {
        let state = std::mem::replace(&mut self.state, State::Closed);
        if let State::Handshaking(mut channel)
        | State::Established(mut channel)
        | State::LoggingIn(mut channel)
        | State::LoggedIn(mut channel) = state
        {
            channel.close();
            while let Ok(Some(segment)) = channel.poll_segment() {
                self.outgoing.push_back(segment);
            }
            self.outgoing.push_back(Segment::Close.encode());
        }
    }

    /// Returns the next frame to transmit.
    pub fn poll_frame(&mut self) -> Option<Frame> {
        let segment = match self.outgoing.pop_front() {
            Some(segment) => Some(segment),
            None => match &mut self.state {
                State::Handshaking(channel)
                | State::Established(channel)
                | State::LoggingIn(channel)
                | State::LoggedIn(channel) => channel.poll_segment().ok().flatten(),
                _ => None,
            },
        }?;
        Some(Frame {
            device: self.settings.device,
            distance_cm: self.settings.distance_cm,
            segment,
        })
    }

    /// Processes one frame from the BMC.
    ///
    /// # Errors
    ///
    /// Any peer error ends the link: the error says what happened, and later calls return
    /// [`Error::Closed`].
    pub fn receive_frame(&mut self, frame: &Frame) -> Result<Vec<ClientOutput>, Error> {
        if frame.device != self.settings.device {
            return Ok(Vec::new());
        }
        let result = self.receive_segment(&frame.segment);
        if result.is_err() {
            if let State::Handshaking(channel)
            | State::Established(channel)
            | State::LoggingIn(channel)
            | State::LoggedIn(channel) = &mut self.state
            {
                // Send the TLS alert, if any, before giving up.
                while let Ok(Some(segment)) = channel.poll_segment() {
                    self.outgoing.push_back(segment);
                }
            }
            self.state = State::Closed;
        }
        result
    }

    fn receive_segment(&mut self, bytes: &[u8]) -> Result<Vec<ClientOutput>, Error> {
        let segment = Segment::decode(bytes)?;
        let state = std::mem::replace(&mut self.state, State::Closed);
        match (state, segment) {
            (state, Segment::Advertisement(json)) => {
                self.state = state;
                let advertisement = serde_json::from_slice(&json)
                    .map_err(|error| Error::segment(format!("invalid advertisement: {error}")))?;
                Ok(vec![ClientOutput::Advertisement(advertisement)])
            }
            (
                State::Connecting,
                Segment::Accept {
                    version,
                    segment_size,
                    window,
                },
            ) => {
                if version != VERSION
                    || usize::from(segment_size) > self.settings.segment_size
                    || window > self.settings.window
                {
                    return Err(Error::unexpected(format!(
                        "connect accept with version {version}, segment size {segment_size}, window {window}"
                    )));
                }
                let segmenter = Segmenter::new(usize::from(segment_size), window)?;
                let name = ServerName::try_from("bmc.link.invalid")
                    .map_err(|error| Error::segment(error.to_string()))?;
                let tls = rustls::ClientConnection::new(self.tls.clone(), name)?;
                self.state = State::Handshaking(Box::new(Channel::new(
                    rustls::Connection::Client(tls),
                    segmenter,
                )));
                Ok(Vec::new())
            }
            (State::Connecting, Segment::Refuse(reason)) => Err(reason.into_error()),
            (_, Segment::Close) => Err(Error::Closed),
            (
                State::Handshaking(mut channel),
                segment @ (Segment::Data { .. } | Segment::Ack(_)),
            ) => {
                let messages = channel.receive(bytes.len(), segment)?;
                if let Some(message) = messages.first() {
                    return Err(Error::unexpected(format!(
                        "{} during the handshake",
                        message.name()
                    )));
                }
                if channel.is_handshaking() {
                    self.state = State::Handshaking(channel);
                    Ok(Vec::new())
                } else {
                    self.state = State::Established(channel);
                    Ok(vec![ClientOutput::HandshakeDone])
                }
            }
            (State::LoggingIn(mut channel), segment @ (Segment::Data { .. } | Segment::Ack(_))) => {
                let mut messages = channel.receive(bytes.len(), segment)?.into_iter();
                let Some(message) = messages.next() else {
                    self.state = State::LoggingIn(channel);
                    return Ok(Vec::new());
                };
                match message {
                    Message::LoginResult(LoginResult::Accepted { service_tag, model }) => {
                        if let Some(extra) = messages.next() {
                            return Err(Error::unexpected(format!(
                                "{} after the login result",
                                extra.name()
                            )));
                        }
                        self.state = State::LoggedIn(channel);
                        Ok(vec![ClientOutput::LoginResult(LoginResult::Accepted {
                            service_tag,
                            model,
                        })])
                    }
                    Message::LoginResult(LoginResult::Rejected { remaining }) => {
                        Err(Error::LoginRejected { remaining })
                    }
                    Message::LoginResult(LoginResult::LockedOut) => Err(Error::LockedOut),
                    other => Err(Error::unexpected(format!(
                        "{} instead of a login result",
                        other.name()
                    ))),
                }
            }
            (
                State::Established(mut channel),
                segment @ (Segment::Data { .. } | Segment::Ack(_)),
            ) => {
                if let Some(message) = channel.receive(bytes.len(), segment)?.first() {
                    return Err(Error::unexpected(format!(
                        "{} before login",
                        message.name()
                    )));
                }
                self.state = State::Established(channel);
                Ok(Vec::new())
            }
            (State::LoggedIn(mut channel), segment @ (Segment::Data { .. } | Segment::Ack(_))) => {
                let mut outputs = Vec::new();
                for message in channel.receive(bytes.len(), segment)? {
                    match message {
                        Message::HttpResponse(response) => {
                            outputs.push(ClientOutput::HttpResponse(response));
                        }
                        other => {
                            return Err(Error::unexpected(format!(
                                "{} on an open link",
                                other.name()
                            )))
                        }
                    }
                }
                self.state = State::LoggedIn(channel);
                Ok(outputs)
            }
            (state, segment) => {
                let name = segment_name(&segment);
                let what = format!("{name} segment in state {}", state_name(&state));
                Err(Error::unexpected(what))
            }
        }
    }
}

fn state_name(state: &State) -> &'static str {
    match state {
        State::Idle => "idle",
        State::Connecting => "connecting",
        State::Handshaking(_) => "handshake",
        State::Established(_) => "awaiting login",
        State::LoggingIn(_) => "login",
        State::LoggedIn(_) => "logged in",
        State::Closed => "closed",
    }
}

fn state_error(detail: &str) -> Error {
    Error::State {
        detail: detail.into(),
    }
}
