//! The BMC side of the link, without I/O: activation, range, one device at a time, the
//! handshake, login with lockout, and HTTP requests for the Redfish service.
//!
//! The caller feeds frames and the time, and drains frames, events and requests. It persists
//! the failed-login count whenever [`Event::FailedLoginsChanged`] appears.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

use crate::channel::Channel;
use crate::frame::Frame;
use crate::message::{Login, LoginResult, Message, Password};
use crate::segment::{
    segment_name, RefuseReason, Segment, Segmenter, MAX_SEGMENT_SIZE, MAX_WINDOW, MIN_SEGMENT_SIZE,
    VERSION,
};
use crate::{Advertisement, Error, Profile};

/// The BMC's description of itself, shown at scan and login.
#[derive(Clone, Debug)]
pub struct BmcIdentity {
    /// The Service Tag shown at connect.
    pub service_tag: String,
    /// The server model.
    pub model: String,
    /// The BMC's MAC address, the second factor of the legacy default password.
    pub mac: [u8; 6],
}

/// Policy of the BMC side.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// The channel profile.
    pub profile: Profile,
    /// Failed logins that lock the link until the button is pressed (default 3).
    pub max_failed_logins: u32,
    /// Time without a valid frame after which the link turns off (default 120 s).
    pub inactivity_timeout: Duration,
    /// Time from a connection request to a successful login before the session ends and the
    /// link is free for another device (default 30 s).
    pub login_timeout: Duration,
    /// Range before login in centimetres (default 100, the low transmit power).
    pub range_before_login_cm: u16,
    /// Range after login in centimetres (default 500, the normal transmit power).
    pub range_after_login_cm: u16,
    /// Largest segment size the BMC accepts (20..=244).
    pub max_segment_size: u8,
    /// Largest window the BMC accepts.
    pub window: u8,
    /// Whether the legacy default password is accepted (with the BMC's MAC address).
    pub legacy_default: Option<LegacyDefault>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            profile: Profile::Default,
            max_failed_logins: 3,
            inactivity_timeout: Duration::from_secs(120),
            login_timeout: Duration::from_secs(30),
            range_before_login_cm: 100,
            range_after_login_cm: 500,
            max_segment_size: 244,
            window: 4,
            legacy_default: None,
        }
    }
}

/// The legacy default credentials, accepted only together with the BMC's MAC address.
#[derive(Clone, Debug)]
pub struct LegacyDefault {
    /// The default user name.
    pub user: String,
    /// The default password.
    pub password: Password,
}

/// Checks BMC credentials. Implementations compare in constant time.
pub trait Authenticator: Send {
    /// Returns whether the user exists and the password is right.
    fn verify(&self, user: &str, password: &Password) -> bool;
}

/// Something the BMC's lifecycle log records.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The button was pressed; the link is on.
    Activated {
        /// Whether the press also cleared a lockout.
        cleared_lockout: bool,
    },
    /// The link turned off.
    Deactivated {
        /// Why, such as "inactivity timeout".
        reason: String,
    },
    /// A device opened a link.
    Connected {
        /// The device id.
        device: u32,
    },
    /// A connection request was refused.
    Refused {
        /// The device id.
        device: u32,
        /// "busy", "locked out" or "unsupported".
        reason: String,
    },
    /// A login succeeded.
    LoginSucceeded {
        /// The device id.
        device: u32,
        /// The user name.
        user: String,
        /// Whether the legacy default password was used.
        legacy: bool,
    },
    /// A login failed. The detail stays in this local event and never reaches the peer.
    LoginFailed {
        /// The device id.
        device: u32,
        /// The user name the device sent.
        user: String,
        /// Whether the legacy path was tried.
        legacy: bool,
        /// Why, such as "wrong credentials" or "channel binding mismatch".
        reason: String,
    },
    /// Too many failed logins; every handshake is refused until the button is pressed.
    LockedOut {
        /// The device that made the last failed attempt.
        device: u32,
    },
    /// The failed-login count changed; the caller persists it.
    FailedLoginsChanged {
        /// The new count.
        count: u32,
    },
    /// A device's link ended.
    Disconnected {
        /// The device id.
        device: u32,
        /// Why, such as "closed by the device" or an error.
        reason: String,
    },
}

/// The BMC side of the link.
pub struct LinkServer {
    settings: ServerSettings,
    identity: BmcIdentity,
    tls: Arc<rustls::ServerConfig>,
    authenticator: Box<dyn Authenticator>,
    /// Time of the last valid frame or button press while on, `None` while off.
    last_activity: Option<Instant>,
    failed_logins: u32,
    session: Option<Session>,
    outgoing: VecDeque<Frame>,
    events: VecDeque<Event>,
    requests: VecDeque<Vec<u8>>,
}

struct Session {
    device: u32,
    channel: Channel,
    phase: Phase,
    /// Time by which the handshake and login must be done.
    login_deadline: Instant,
}

#[derive(Clone, PartialEq, Eq, Debug)]
enum Phase {
    Handshake,
    AwaitingLogin,
    LoggedIn,
    /// Final messages drain under the window, then the session ends for this reason.
    Closing(String),
}

impl std::fmt::Debug for LinkServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkServer")
            .field("profile", &self.settings.profile)
            .field("active", &self.last_activity.is_some())
            .field("failed_logins", &self.failed_logins)
            .field("device", &self.session.as_ref().map(|s| s.device))
            .finish()
    }
}

impl LinkServer {
    /// Creates the BMC side, off until the button is pressed. `failed_logins` is the count
    /// persisted from before a restart.
    pub fn new(
        settings: ServerSettings,
        identity: BmcIdentity,
        tls: Arc<rustls::ServerConfig>,
        authenticator: Box<dyn Authenticator>,
        failed_logins: u32,
    ) -> Self {
        LinkServer {
            settings,
            identity,
            tls,
            authenticator,
            last_activity: None,
            failed_logins,
            session: None,
            outgoing: VecDeque::new(),
            events: VecDeque::new(),
            requests: VecDeque::new(),
        }
    }

    /// Returns whether the link is on.
    pub fn is_active(&self) -> bool {
        self.last_activity.is_some()
    }

    /// Returns whether too many failed logins locked the link.
    pub fn is_locked(&self) -> bool {
        self.failed_logins >= self.settings.max_failed_logins
    }

    /// Returns the failed-login count.
    pub fn failed_logins(&self) -> u32 {
        self.failed_logins
    }

    /// Presses the activation button: turns the link on and clears a lockout. A count below
    /// the limit stays, so failures before a restart still count after it.
    pub fn press_button(&mut self, now: Instant) {
        let cleared_lockout = self.is_locked();
        if cleared_lockout {
            self.failed_logins = 0;
            self.events
                .push_back(Event::FailedLoginsChanged { count: 0 });
        }
        self.last_activity = Some(now);
        self.events.push_back(Event::Activated { cleared_lockout });
    }

    /// Returns when [`LinkServer::handle_timeout`] must run next, if the link is on.
    pub fn next_timeout(&self) -> Option<Instant> {
        let inactivity = self.inactivity_deadline()?;
        match self.pending_login_deadline() {
            Some(login) => Some(login.min(inactivity)),
            None => Some(inactivity),
        }
    }

    fn inactivity_deadline(&self) -> Option<Instant> {
        self.last_activity
            .map(|last| last + self.settings.inactivity_timeout)
    }

    /// The login deadline of a session that has not logged in yet.
    fn pending_login_deadline(&self) -> Option<Instant> {
        self.session
            .as_ref()
            .filter(|s| matches!(s.phase, Phase::Handshake | Phase::AwaitingLogin))
            .map(|s| s.login_deadline)
    }

    /// Ends a session that stalled before login, so the next device is not kept busy, and
    /// turns the link off when it was idle for the inactivity timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self
            .pending_login_deadline()
            .is_some_and(|deadline| now >= deadline)
        {
            self.end_session("handshake or login timed out");
        }
        let Some(deadline) = self.inactivity_deadline() else {
            return;
        };
        if now < deadline {
            return;
        }
        self.end_session("inactivity timeout");
        self.last_activity = None;
        self.events.push_back(Event::Deactivated {
            reason: "inactivity timeout".into(),
        });
    }

    /// Returns the description a scan shows.
    pub fn advertisement(&self) -> Advertisement {
        Advertisement {
            service_tag: self.identity.service_tag.clone(),
            model: self.identity.model.clone(),
            profile: self.settings.profile,
            busy: self.session.is_some(),
        }
    }

    /// Processes one frame from the radio. Frames are lost while the link is off and when
    /// the device is beyond the current range. A peer error ends that device's session and
    /// becomes an event, so the caller gets neither a panic nor an error.
    pub fn receive_frame(&mut self, frame: &Frame, now: Instant) {
        // 1. The radio is off, or the device is beyond the current transmit power.
        if self.last_activity.is_none() {
            tracing::trace!(device = frame.device, "frame lost: link off");
            return;
        }
        let logged_in = self
            .session
            .as_ref()
            .is_some_and(|s| s.device == frame.device && s.phase == Phase::LoggedIn);
        let range = if logged_in {
            self.settings.range_after_login_cm
        } else {
            self.settings.range_before_login_cm
        };
        if frame.distance_cm > range {
            tracing::trace!(
                device = frame.device,
                distance_cm = frame.distance_cm,
                range,
                "frame lost: out of range"
            );
            return;
        }

        // 2. Decode; garbage from the session's device ends the session.
        let segment = match Segment::decode(&frame.segment) {
            Ok(segment) => segment,
            Err(error) => {
                if self.session_device() == Some(frame.device) {
                    self.end_session(&error.to_string());
                }
                return;
            }
        };

        // 3. Dispatch on the segment kind.
        match segment {
            Segment::Scan => {
                if let Ok(json) = serde_json::to_vec(&self.advertisement()) {
                    self.send_raw(frame.device, Segment::Advertisement(json));
                }
            }
            Segment::Connect {
                version,
                max_segment_size,
                window,
            } => self.handle_connect(frame.device, version, max_segment_size, window, now),
            Segment::Close if self.session_device() == Some(frame.device) => {
                self.last_activity = Some(now);
                self.end_session("closed by the device");
            }
            Segment::Data { .. } | Segment::Ack(_) => {
                if self.session_device() == Some(frame.device) {
                    self.last_activity = Some(now);
                    self.handle_session_segment(frame.segment.len(), segment);
                } else {
                    self.send_raw(frame.device, Segment::Refuse(RefuseReason::Busy));
                }
            }
            other => {
                tracing::debug!(
                    device = frame.device,
                    kind = segment_name(&other),
                    "ignored segment"
                );
            }
        }
    }

    /// Ends the session of a device whose connection went away, as when a Unix socket
    /// closes. A radio has no such signal, so there only the inactivity timeout applies.
    pub fn drop_device(&mut self, device: u32) {
        if self.session_device() == Some(device) {
            self.end_session("connection lost");
            self.outgoing.retain(|frame| frame.device != device);
        }
    }

    fn session_device(&self) -> Option<u32> {
        self.session.as_ref().map(|s| s.device)
    }

    fn handle_connect(
        &mut self,
        device: u32,
        version: u8,
        max_segment_size: u8,
        window: u8,
        now: Instant,
    ) {
        // 1. One device at a time; a device that reconnects drops its old session.
        match self.session_device() {
            Some(current) if current != device => {
                self.refuse(device, RefuseReason::Busy, "busy");
                return;
            }
            Some(_) => {
                // The device started over, so its old session ends without a close segment
                // that it would read as the end of the new one.
                self.end_session("reconnected");
                self.outgoing.retain(|frame| frame.device != device);
            }
            None => {}
        }

        // 2. A locked link refuses every handshake until the button.
        if self.is_locked() {
            self.refuse(device, RefuseReason::LockedOut, "locked out");
            return;
        }

        // 3. Negotiate the segment size and window.
        let segment_size = max_segment_size.min(self.settings.max_segment_size);
        let window = window.min(self.settings.window).min(MAX_WINDOW);
        let size_ok = (MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&usize::from(segment_size));
        if version != VERSION || !size_ok || window == 0 {
            self.refuse(device, RefuseReason::Unsupported, "unsupported");
            return;
        }

        // 4. Start the TLS server; the client speaks first.
        let tls = match rustls::ServerConnection::new(self.tls.clone()) {
            Ok(tls) => rustls::Connection::Server(tls),
            Err(error) => {
                tracing::debug!(%error, "cannot start TLS");
                self.refuse(device, RefuseReason::Unsupported, "unsupported");
                return;
            }
        };
        let Ok(segmenter) = Segmenter::new(usize::from(segment_size), window) else {
            self.refuse(device, RefuseReason::Unsupported, "unsupported");
            return;
        };
        self.session = Some(Session {
            device,
            channel: Channel::new(tls, segmenter),
            phase: Phase::Handshake,
            login_deadline: now + self.settings.login_timeout,
        });
        self.last_activity = Some(now);
        self.events.push_back(Event::Connected { device });
        self.send_raw(
            device,
            Segment::Accept {
                version: VERSION,
                segment_size,
                window,
            },
        );
    }

    fn refuse(&mut self, device: u32, reason: RefuseReason, text: &str) {
        self.events.push_back(Event::Refused {
            device,
            reason: text.into(),
        });
        self.send_raw(device, Segment::Refuse(reason));
    }

    fn handle_session_segment(&mut self, raw_len: usize, segment: Segment) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let messages = match session.channel.receive(raw_len, segment) {
            Ok(messages) => messages,
            Err(error) => {
                self.end_session(&error.to_string());
                return;
            }
        };
        if session.phase == Phase::Handshake && !session.channel.is_handshaking() {
            session.phase = Phase::AwaitingLogin;
            if let Some((version, suite)) = session.channel.negotiated() {
                tracing::debug!(
                    device = session.device,
                    ?version,
                    ?suite,
                    "link handshake done"
                );
            }
        }
        for message in messages {
            if let Err(error) = self.handle_message(message) {
                self.end_session(&error.to_string());
                return;
            }
        }
    }

    fn handle_message(&mut self, message: Message) -> Result<(), Error> {
        let Some(session) = self.session.as_mut() else {
            return Ok(());
        };
        let phase = session.phase.clone();
        match (phase, message) {
            (Phase::AwaitingLogin, Message::Login(login)) => self.handle_login(login),
            (Phase::LoggedIn, Message::HttpRequest(request)) => {
                self.requests.push_back(request);
                Ok(())
            }
            (Phase::Closing(_), _) => Ok(()),
            (phase, other) => Err(Error::unexpected(format!(
                "{} during {phase:?}",
                other.name()
            ))),
        }
    }

    fn handle_login(&mut self, login: Login) -> Result<(), Error> {
        let Some(session) = self.session.as_mut() else {
            return Ok(());
        };
        let device = session.device;
        let legacy = login.mac.is_some();

        // 1. Check every part, without stopping at the first mismatch.
        let binding_ok: bool = session.channel.binding()?.ct_eq(&login.binding).into();
        let credentials_ok = match (login.mac, &self.settings.legacy_default) {
            (Some(mac), Some(default)) => {
                let mac_ok: bool = mac.ct_eq(&self.identity.mac).into();
                let user_ok: bool = login.user.as_bytes().ct_eq(default.user.as_bytes()).into();
                let password_ok: bool = login
                    .password
                    .expose()
                    .as_bytes()
                    .ct_eq(default.password.expose().as_bytes())
                    .into();
                mac_ok & user_ok & password_ok
            }
            (Some(_), None) => false,
            (None, _) => self.authenticator.verify(&login.user, &login.password),
        };

        // 2. Success: the range widens to normal power and the count resets.
        if binding_ok && credentials_ok {
            session.phase = Phase::LoggedIn;
            if self.failed_logins > 0 {
                self.failed_logins = 0;
                self.events
                    .push_back(Event::FailedLoginsChanged { count: 0 });
            }
            self.events.push_back(Event::LoginSucceeded {
                device,
                user: login.user,
                legacy,
            });
            let result = LoginResult::Accepted {
                service_tag: self.identity.service_tag.clone(),
                model: self.identity.model.clone(),
            };
            return session.channel.send(&Message::LoginResult(result));
        }

        // 3. Failure: the reason stays in the local log, the peer learns only the count.
        let reason = match (binding_ok, legacy, self.settings.legacy_default.is_some()) {
            (false, _, _) => "channel binding mismatch",
            (true, true, false) => "legacy default password is off",
            (true, true, true) => "wrong legacy credentials or MAC address",
            (true, false, _) => "wrong credentials",
        };
        self.failed_logins = self.failed_logins.saturating_add(1);
        self.events.push_back(Event::FailedLoginsChanged {
            count: self.failed_logins,
        });
        self.events.push_back(Event::LoginFailed {
            device,
            user: login.user,
            legacy,
            reason: reason.into(),
        });
        if self.failed_logins >= self.settings.max_failed_logins {
            self.events.push_back(Event::LockedOut { device });
            session
                .channel
                .send(&Message::LoginResult(LoginResult::LockedOut))?;
            session.channel.close();
            session.phase = Phase::Closing("locked out".into());
            return Ok(());
        }
        // A rejected device reconnects for the next attempt, so each one costs a handshake.
        let remaining = self.settings.max_failed_logins - self.failed_logins;
        session
            .channel
            .send(&Message::LoginResult(LoginResult::Rejected {
                remaining: u8::try_from(remaining).unwrap_or(u8::MAX),
            }))?;
        session.channel.close();
        session.phase = Phase::Closing("login rejected".into());
        Ok(())
    }

    /// Returns the next HTTP request the logged-in device sent, for the Redfish service.
    pub fn poll_request(&mut self) -> Option<Vec<u8>> {
        self.requests.pop_front()
    }

    /// Sends the HTTP response to the oldest request.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] when the session ended meanwhile.
    pub fn send_response(&mut self, response: Vec<u8>) -> Result<(), Error> {
        let session = self
            .session
            .as_mut()
            .filter(|s| s.phase == Phase::LoggedIn)
            .ok_or(Error::Closed)?;
        session.channel.send(&Message::HttpResponse(response))
    }

    /// Returns the next frame to transmit.
    pub fn poll_frame(&mut self) -> Option<Frame> {
        if let Some(frame) = self.outgoing.pop_front() {
            return Some(frame);
        }
        let session = self.session.as_mut()?;
        match session.channel.poll_segment() {
            Ok(Some(segment)) => Some(Frame {
                device: session.device,
                distance_cm: 0,
                segment,
            }),
            Ok(None) => {
                if let Phase::Closing(reason) = &session.phase {
                    if !session.channel.has_pending() {
                        let reason = reason.clone();
                        self.end_session(&reason);
                        return self.outgoing.pop_front();
                    }
                }
                None
            }
            Err(error) => {
                self.end_session(&error.to_string());
                self.outgoing.pop_front()
            }
        }
    }

    /// Returns the next event for the lifecycle log.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn send_raw(&mut self, device: u32, segment: Segment) {
        self.outgoing.push_back(Frame {
            device,
            distance_cm: 0,
            segment: segment.encode(),
        });
    }

    /// Ends the session now: what the window still allows goes out (typically a TLS alert),
    /// then a close segment.
    fn end_session(&mut self, reason: &str) {
        let Some(mut session) = self.session.take() else {
            return;
        };
        while let Ok(Some(segment)) = session.channel.poll_segment() {
            self.outgoing.push_back(Frame {
                device: session.device,
                distance_cm: 0,
                segment,
            });
        }
        self.send_raw(session.device, Segment::Close);
        self.events.push_back(Event::Disconnected {
            device: session.device,
            reason: reason.into(),
        });
        tracing::debug!(device = session.device, reason, "link session ended");
    }
}
