//! The async device side: a session over a frame pipe, and the Redfish [`Transport`] that
//! carries the client's HTTP requests over it.

use std::collections::VecDeque;
use std::time::Duration;

use rackside_redfish::{Request, Response, Transport};
use rustls::pki_types::CertificateDer;
use tokio::sync::Mutex;

use crate::memory::FramePipe;
use crate::{
    Advertisement, ClientOutput, ClientSettings, Error, LinkClient, LoginResult, Password,
};

/// The BMC's description after a successful login, with the channel's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// The server's Service Tag.
    pub service_tag: String,
    /// The server model.
    pub model: String,
    /// The TLS version, such as "TLSv1_3".
    pub version: String,
    /// The cipher suite, such as "TLS13_AES_128_GCM_SHA256".
    pub suite: String,
    /// The negotiated segment size in bytes.
    pub segment_size: usize,
}

/// The device side of one link, driven over a frame pipe.
#[derive(Debug)]
pub struct ClientSession {
    client: LinkClient,
    pipe: FramePipe,
    timeout: Duration,
    pending: VecDeque<ClientOutput>,
}

/// Lists the BMCs that reply to a scan within `wait`.
///
/// # Errors
///
/// [`Error::Closed`] when the pipe is closed.
pub async fn scan(
    pipe: &mut FramePipe,
    settings: &ClientSettings,
    wait: Duration,
) -> Result<Vec<Advertisement>, Error> {
    let mut client = LinkClient::new(settings.clone())?;
    client.scan();
    while let Some(frame) = client.poll_frame() {
        pipe.tx.send(frame).await.map_err(|_| Error::Closed)?;
    }
    let mut found = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(frame)) = tokio::time::timeout_at(deadline, pipe.rx.recv()).await {
        if let Ok(outputs) = client.receive_frame(&frame) {
            for output in outputs {
                if let ClientOutput::Advertisement(advertisement) = output {
                    found.push(advertisement);
                }
            }
        }
    }
    Ok(found)
}

impl ClientSession {
    /// Opens the link and completes the TLS handshake. The BMC's certificate is then
    /// available from [`ClientSession::peer_certificates`] for the caller to judge before
    /// [`ClientSession::login`].
    ///
    /// # Errors
    ///
    /// [`Error::Busy`], [`Error::LockedOut`], [`Error::Tls`] for a handshake that breaks the
    /// profile, and [`Error::Timeout`] when the BMC does not reply (off or out of range).
    pub async fn connect(
        pipe: FramePipe,
        settings: ClientSettings,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let client = LinkClient::new(settings)?;
        Self::connect_with(client, pipe, timeout).await
    }

    /// Opens the link with a prepared client, for tests with custom TLS configurations.
    ///
    /// # Errors
    ///
    /// As for [`ClientSession::connect`].
    pub async fn connect_with(
        mut client: LinkClient,
        pipe: FramePipe,
        timeout: Duration,
    ) -> Result<Self, Error> {
        client.connect()?;
        let mut session = ClientSession {
            client,
            pipe,
            timeout,
            pending: VecDeque::new(),
        };
        match session.next_output("waiting for the handshake").await? {
            ClientOutput::HandshakeDone => Ok(session),
            other => Err(Error::unexpected(format!("{other:?} during the handshake"))),
        }
    }

    /// Returns the certificate chain the BMC presented.
    pub fn peer_certificates(&self) -> Vec<CertificateDer<'static>> {
        self.client.peer_certificates().unwrap_or_default()
    }

    /// Accepts the BMC's certificate after the caller judged it; [`ClientSession::login`]
    /// requires it.
    ///
    /// # Errors
    ///
    /// [`Error::State`] before the handshake finished.
    pub fn accept_certificate(&mut self) -> Result<(), Error> {
        self.client.accept_certificate()
    }

    /// Moves the simulated device.
    pub fn set_distance_cm(&mut self, distance_cm: u16) {
        self.client.set_distance_cm(distance_cm);
    }

    /// Logs in; `mac` only for the legacy default password.
    ///
    /// # Errors
    ///
    /// [`Error::State`] before [`ClientSession::accept_certificate`],
    /// [`Error::LoginRejected`] and [`Error::LockedOut`] as the BMC replies, [`Error::Timeout`]
    /// when it does not.
    pub async fn login(
        &mut self,
        user: &str,
        password: &Password,
        mac: Option<[u8; 6]>,
    ) -> Result<SessionInfo, Error> {
        self.client.login(user, password, mac)?;
        match self.next_output("waiting for the login result").await? {
            ClientOutput::LoginResult(LoginResult::Accepted { service_tag, model }) => {
                let (version, suite) = self
                    .client
                    .negotiated()
                    .map(|(version, suite)| (format!("{version:?}"), format!("{suite:?}")))
                    .unwrap_or_default();
                Ok(SessionInfo {
                    service_tag,
                    model,
                    version,
                    suite,
                    segment_size: self.client.segment_size().unwrap_or_default(),
                })
            }
            other => Err(Error::unexpected(format!(
                "{other:?} instead of a login result"
            ))),
        }
    }

    /// Sends one HTTP/1.1 request and returns the response bytes.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when no response arrives, any peer error otherwise.
    pub async fn request(&mut self, request: Vec<u8>) -> Result<Vec<u8>, Error> {
        self.client.send_request(request)?;
        match self.next_output("waiting for the HTTP response").await? {
            ClientOutput::HttpResponse(response) => Ok(response),
            other => Err(Error::unexpected(format!(
                "{other:?} instead of an HTTP response"
            ))),
        }
    }

    /// Closes the link.
    pub async fn close(mut self) {
        self.client.close();
        let _ = self.flush().await;
    }

    async fn flush(&mut self) -> Result<(), Error> {
        while let Some(frame) = self.client.poll_frame() {
            self.pipe.tx.send(frame).await.map_err(|_| Error::Closed)?;
        }
        Ok(())
    }

    async fn next_output(&mut self, what: &str) -> Result<ClientOutput, Error> {
        loop {
            if let Some(output) = self.pending.pop_front() {
                return Ok(output);
            }
            self.flush().await?;
            let frame = match tokio::time::timeout(self.timeout, self.pipe.rx.recv()).await {
                Ok(Some(frame)) => frame,
                Ok(None) => return Err(Error::Closed),
                Err(_) => {
                    return Err(Error::Timeout {
                        what: what.to_owned(),
                    })
                }
            };
            let outputs = self.client.receive_frame(&frame);
            // Send acks and alerts even when the frame ended the link.
            let flushed = self.flush().await;
            self.pending.extend(outputs?);
            flushed?;
        }
    }
}

/// The Redfish transport over a logged-in link.
#[derive(Debug)]
pub struct LinkTransport {
    session: Mutex<ClientSession>,
    max_body_bytes: usize,
}

impl LinkTransport {
    /// Wraps a logged-in session.
    pub fn new(session: ClientSession) -> Self {
        LinkTransport {
            session: Mutex::new(session),
            max_body_bytes: crate::message::MAX_BODY_SIZE,
        }
    }

    /// Returns the session, to close it.
    pub fn into_session(self) -> ClientSession {
        self.session.into_inner()
    }
}

impl Transport for LinkTransport {
    async fn send(&self, request: Request) -> Result<Response, rackside_redfish::Error> {
        let bytes = crate::http::encode_request(
            &request.method,
            &request.path,
            &request.headers,
            request.body.as_deref(),
        );
        let what = format!("{} {}", request.method, request.path);
        let response =
            self.session
                .lock()
                .await
                .request(bytes)
                .await
                .map_err(|error| match error {
                    Error::Timeout { .. } => rackside_redfish::Error::Timeout {
                        what: format!("over the link for {what}"),
                    },
                    other => rackside_redfish::Error::Connect {
                        url: format!("link:{}", request.path),
                        detail: other.to_string(),
                    },
                })?;
        if response.len() > self.max_body_bytes {
            return Err(rackside_redfish::Error::TooLarge {
                limit: self.max_body_bytes,
            });
        }
        let parsed = crate::http::parse_response(&response).map_err(|error| {
            rackside_redfish::Error::Connect {
                url: format!("link:{}", request.path),
                detail: error.to_string(),
            }
        })?;
        Ok(Response {
            status: parsed.status,
            headers: parsed.headers,
            body: parsed.body,
        })
    }

    fn base_url(&self) -> Option<String> {
        Some("link://bmc".into())
    }
}
