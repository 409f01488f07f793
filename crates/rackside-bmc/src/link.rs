//! The BMC side of the at-the-server link: serves `rackside-link` on a Unix socket, checks
//! logins against the BMC's accounts, passes HTTP requests to the same Redfish router the
//! HTTPS listener uses, and writes every link event to the lifecycle log.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http_body_util::BodyExt;
use rackside_link::lockout::LockoutFile;
use rackside_link::service::{EventSink, LinkService, RequestHandler};
use rackside_link::{
    Authenticator, BmcIdentity, Event, LegacyDefault, LinkServer, Password, Profile, ServerSettings,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tower::ServiceExt;

use crate::service::{router, ClientAddr};
use crate::state::BmcState;

/// Name of the failed-login count file in the state folder.
pub const LOCKOUT_FILE: &str = "link-lockout.json";

/// The largest Redfish response carried over the link.
const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// Settings of the link endpoint.
#[derive(Clone, Debug)]
pub struct LinkOptions {
    /// The Unix socket devices connect to.
    pub socket: PathBuf,
    /// The PEM certificate chain the HTTPS listener serves.
    pub cert: PathBuf,
    /// The PEM private key of that certificate.
    pub key: PathBuf,
    /// The folder for the failed-login count ([`LOCKOUT_FILE`]).
    pub state_dir: PathBuf,
    /// The channel profile.
    pub profile: Profile,
    /// The BMC's MAC address, which the legacy default password requires.
    pub mac: [u8; 6],
    /// The server model shown to scans.
    pub model: String,
    /// The legacy default credentials, accepted only with the MAC address; `None` is off.
    pub legacy_default: Option<LegacyDefault>,
}

/// Starts the link on `options.socket` with the HTTPS certificate and returns the handle that
/// presses the button. The link is off until then.
///
/// # Errors
///
/// [`rackside_link::Error::Io`] when the certificate, key or lockout file cannot be read or
/// the socket cannot be bound, [`rackside_link::Error::Config`] when the key does not fit the
/// profile.
pub async fn serve_link(
    state: Arc<BmcState>,
    options: LinkOptions,
) -> Result<LinkService, rackside_link::Error> {
    // 1. The same certificate and key the HTTPS listener presents.
    let read_error = |path: PathBuf| {
        move |error: rustls_pki_types::pem::Error| rackside_link::Error::Io {
            what: format!("reading {}", path.display()),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, error.to_string()),
        }
    };
    let cert_path = options.cert.clone();
    let key_path = options.key.clone();
    let chain = CertificateDer::pem_file_iter(&cert_path)
        .map_err(read_error(cert_path.clone()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_error(cert_path.clone()))?;
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(read_error(key_path))?;
    let tls = options.profile.server_config(chain, key)?;

    // 2. The failed-login count from before a restart.
    let lockout = LockoutFile::new(options.state_dir.join(LOCKOUT_FILE));
    let failed_logins = lockout.load()?;

    // 3. The sans-IO server and its driver.
    let settings = ServerSettings {
        profile: options.profile,
        legacy_default: options.legacy_default.clone(),
        ..ServerSettings::default()
    };
    let identity = BmcIdentity {
        service_tag: state.service_tag().to_owned(),
        model: options.model.clone(),
        mac: options.mac,
    };
    let server = LinkServer::new(
        settings,
        identity,
        tls,
        Box::new(StateAccounts(state.clone())),
        failed_logins,
    );
    let service = LinkService::spawn(
        server,
        Arc::new(RouterHandler(state.clone())),
        Arc::new(LifecycleLog { state, lockout }),
    );

    // 4. The button's control socket: every connection presses it once.
    let button_path = button_socket_path(&options.socket);
    let _ = std::fs::remove_file(&button_path);
    let button = tokio::net::UnixListener::bind(&button_path).map_err(|source| {
        rackside_link::Error::Io {
            what: format!("binding the button socket {}", button_path.display()),
            source,
        }
    })?;
    tokio::spawn(serve_button(button, service.clone()));

    // 5. Accept devices on the socket in the background.
    let _ = std::fs::remove_file(&options.socket);
    let listener_service = service.clone();
    let socket = options.socket.clone();
    let listener =
        tokio::net::UnixListener::bind(&socket).map_err(|source| rackside_link::Error::Io {
            what: format!("binding the link socket {}", socket.display()),
            source,
        })?;
    tokio::spawn(async move {
        if let Err(error) = rackside_link::service::serve_socket(listener, listener_service).await {
            tracing::error!(%error, "link socket stopped");
        }
    });
    Ok(service)
}

/// File name of the RSA certificate for the paper profile inside the state folder.
pub const RSA_CERT_FILE: &str = "bmc-rsa-cert.pem";
/// File name of the RSA private key for the paper profile inside the state folder.
pub const RSA_KEY_FILE: &str = "bmc-rsa-key.pem";

/// Returns the RSA-2048 certificate and key that a BMC serves, over HTTPS and the link, when
/// its link speaks the paper profile, generating them in `state_dir` on first use.
///
/// The paper profile's only suite, TLS_DHE_RSA_WITH_AES_128_GCM_SHA256, signs with RSA, so the
/// P-256 certificate the simulator generates otherwise cannot serve it. The key file is
/// readable by its owner only.
///
/// # Errors
///
/// [`rackside_link::Error::Io`] when a file cannot be written or only one of the pair exists,
/// [`rackside_link::Error::Config`] when generation fails.
pub fn paper_certificate(state_dir: &Path) -> Result<(PathBuf, PathBuf), rackside_link::Error> {
    let cert = state_dir.join(RSA_CERT_FILE);
    let key = state_dir.join(RSA_KEY_FILE);
    match (cert.exists(), key.exists()) {
        (true, true) => return Ok((cert, key)),
        (false, false) => {}
        (true, false) | (false, true) => {
            return Err(rackside_link::Error::Io {
                what: format!("reading {} and {}", cert.display(), key.display()),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "only one of the RSA certificate and key exists; remove both to generate a \
                     new pair",
                ),
            })
        }
    }
    let io_error = |what: String| move |source| rackside_link::Error::Io { what, source };
    std::fs::create_dir_all(state_dir)
        .map_err(io_error(format!("creating {}", state_dir.display())))?;

    let private = rackside_link::generate_rsa_key()?;
    let (cert_pem, key_pem) =
        rsa_self_signed(&private).map_err(|error| rackside_link::Error::Config {
            profile: Profile::Paper.name(),
            detail: format!("RSA certificate generation failed: {error}"),
        })?;
    write_owner_only(&key, key_pem.as_bytes())
        .map_err(io_error(format!("writing {}", key.display())))?;
    std::fs::write(&cert, cert_pem).map_err(io_error(format!("writing {}", cert.display())))?;
    tracing::debug!(path = %cert.display(), "generated an RSA certificate for the paper profile");
    Ok((cert, key))
}

/// Makes a self-signed certificate for localhost and 127.0.0.1 around an RSA key, valid from
/// yesterday for two years like the simulator's P-256 one. Returns the certificate and key PEM.
fn rsa_self_signed(
    private: &rustls_pki_types::PrivatePkcs8KeyDer<'static>,
) -> Result<(String, zeroize::Zeroizing<String>), rcgen::Error> {
    let pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(private, &rcgen::PKCS_RSA_SHA256)?;
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()])?;
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress(Ipv4Addr::LOCALHOST.into()));
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::CommonName, "localhost");
    name.push(rcgen::DnType::OrganizationName, "rackside BMC simulator");
    params.distinguished_name = name;
    let now = std::time::SystemTime::now();
    params.not_before = (now - std::time::Duration::from_secs(24 * 3600)).into();
    params.not_after = (now + std::time::Duration::from_secs(2 * 365 * 24 * 3600)).into();
    let certificate = params.self_signed(&pair)?;
    Ok((
        certificate.pem(),
        zeroize::Zeroizing::new(pair.serialize_pem()),
    ))
}

/// Creates `path` with `bytes`, readable and writable by its owner only.
fn write_owner_only(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;

    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}

/// Returns the path of the control socket that presses the activation button: the link
/// socket's path with `.button` appended.
pub fn button_socket_path(link_socket: &Path) -> PathBuf {
    let mut path = link_socket.as_os_str().to_owned();
    path.push(".button");
    PathBuf::from(path)
}

/// Presses the button once for each connection and replies `activated`.
async fn serve_button(listener: tokio::net::UnixListener, service: LinkService) {
    use tokio::io::AsyncWriteExt;
    loop {
        let mut stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "accepting on the button socket failed; retrying");
                tokio::time::sleep(rackside_link::service::ACCEPT_RETRY_DELAY).await;
                continue;
            }
        };
        let reply: &[u8] = match service.press_button().await {
            Ok(()) => b"activated\n",
            Err(error) => {
                tracing::error!(%error, "button press failed");
                b"failed: the link service stopped\n"
            }
        };
        if let Err(error) = stream.write_all(reply).await {
            tracing::debug!(%error, "button reply not delivered");
        }
    }
}

struct StateAccounts(Arc<BmcState>);

impl Authenticator for StateAccounts {
    fn verify(&self, user: &str, password: &Password) -> bool {
        self.0
            .lock()
            .accounts
            .verify(user, password.expose())
            .is_some()
    }
}

struct RouterHandler(Arc<BmcState>);

/// The address log entries name for requests over the link, which has no IP address.
const LINK_ADDRESS: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

impl RequestHandler for RouterHandler {
    async fn handle(&self, request: Vec<u8>) -> Vec<u8> {
        match self.route(&request).await {
            Ok(response) => response,
            Err(detail) => {
                tracing::debug!(%detail, "bad request over the link");
                rackside_link::http::encode_response(
                    http::StatusCode::BAD_REQUEST,
                    &http::HeaderMap::new(),
                    detail.as_bytes(),
                )
            }
        }
    }
}

impl RouterHandler {
    async fn route(&self, request: &[u8]) -> Result<Vec<u8>, String> {
        let parsed =
            rackside_link::http::parse_request(request).map_err(|error| error.to_string())?;
        let mut builder = http::Request::builder()
            .method(parsed.method)
            .uri(parsed.path);
        if let Some(headers) = builder.headers_mut() {
            *headers = parsed.headers;
        }
        let mut request = builder
            .body(axum::body::Body::from(parsed.body))
            .map_err(|error| format!("invalid request: {error}"))?;
        request.extensions_mut().insert(ClientAddr(LINK_ADDRESS));

        let response = router(self.0.clone())
            .oneshot(request)
            .await
            .map_err(|error| format!("router failed: {error}"))?;
        let (parts, body) = response.into_parts();
        let body = http_body_util::Limited::new(body, MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|error| format!("response body failed: {error}"))?
            .to_bytes();
        Ok(rackside_link::http::encode_response(
            parts.status,
            &parts.headers,
            &body,
        ))
    }
}

struct LifecycleLog {
    state: Arc<BmcState>,
    lockout: LockoutFile,
}

impl EventSink for LifecycleLog {
    fn record(&self, event: &Event) {
        let log = |key: &str, message: &str, user: Option<&str>| {
            self.state.record_event(key, message, user, Some("link"));
        };
        match event {
            Event::FailedLoginsChanged { count } => {
                if let Err(error) = self.lockout.save(*count) {
                    tracing::error!(%error, count, "cannot persist the link's failed-login count");
                }
            }
            Event::Activated { cleared_lockout } => {
                let message = if *cleared_lockout {
                    "The at-the-server link was activated by the button and its lockout was cleared."
                } else {
                    "The at-the-server link was activated by the button."
                };
                log("LNK0001", message, None);
            }
            Event::Deactivated { reason } => {
                log(
                    "LNK0002",
                    &format!("The at-the-server link turned off: {reason}."),
                    None,
                );
            }
            Event::Connected { device } => {
                log(
                    "LNK0003",
                    &format!("Device {device} connected over the at-the-server link."),
                    None,
                );
            }
            Event::Refused { device, reason } => {
                log(
                    "LNK0004",
                    &format!("Device {device} was refused over the at-the-server link: {reason}."),
                    None,
                );
            }
            Event::LoginSucceeded {
                device,
                user,
                legacy,
            } => {
                let how = if *legacy {
                    " with the legacy default password"
                } else {
                    ""
                };
                log(
                    "LNK0005",
                    &format!(
                        "Login succeeded over the at-the-server link from device {device}{how}."
                    ),
                    Some(user),
                );
            }
            Event::LoginFailed {
                device,
                user,
                legacy,
                reason,
            } => {
                let how = if *legacy {
                    " with the legacy default password"
                } else {
                    ""
                };
                log("LNK0006", &format!("Login failed over the at-the-server link from device {device}{how}: {reason}."), Some(user));
            }
            Event::LockedOut { device } => {
                log("LNK0007", &format!("The at-the-server link locked after repeated failed logins; the last came from device {device}. Press the button to clear it."), None);
            }
            Event::Disconnected { device, reason } => {
                log(
                    "LNK0008",
                    &format!("Device {device} disconnected from the at-the-server link: {reason}."),
                    None,
                );
            }
            other => tracing::debug!(?other, "link event not logged"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rackside_link::{ClientSession, ClientSettings, LinkTransport};
    use rackside_redfish::Transport;

    use super::*;
    use crate::{BmcConfig, Secret};

    #[tokio::test]
    async fn paper_link_and_https_serve_one_rsa_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = paper_certificate(dir.path()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = paper_certificate(dir.path()).unwrap();
        assert_eq!(again, (cert.clone(), key.clone()));

        let mut config = BmcConfig::new(dir.path().to_path_buf());
        config.listen.set_port(0);
        config.first_user = Some(("root".into(), Secret::new("link-test-password")));
        config.tls = crate::TlsSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        };
        let running = crate::start(config).await.unwrap();
        let socket = dir.path().join("link.sock");
        let options = LinkOptions {
            socket: socket.clone(),
            cert,
            key,
            state_dir: dir.path().to_path_buf(),
            profile: Profile::Paper,
            mac: [2, 0, 0, 0, 0, 1],
            model: "PowerEdge R660".into(),
            legacy_default: None,
        };
        let service = serve_link(running.state(), options).await.unwrap();
        service.press_button().await.unwrap();

        let pipe = rackside_link::socket::connect(&socket).await.unwrap();
        let settings = ClientSettings {
            profile: Profile::Paper,
            ..ClientSettings::default()
        };
        // The paper profile's server rejects a key that is not RSA, so a handshake proves it.
        let session = ClientSession::connect(pipe, settings, Duration::from_secs(10))
            .await
            .unwrap();

        assert_eq!(session.peer_certificates()[0], running.certificate_der());
        session.close().await;
    }

    #[test]
    fn half_rsa_pair_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(RSA_CERT_FILE), "x").unwrap();

        let error = paper_certificate(dir.path()).unwrap_err();

        assert!(error.to_string().contains("remove both"), "{error}");
    }

    #[tokio::test]
    async fn redfish_root_is_served_over_link_socket() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = BmcConfig::new(dir.path().to_path_buf());
        config.listen.set_port(0);
        config.first_user = Some(("root".into(), Secret::new("link-test-password")));
        let running = crate::start(config).await.unwrap();

        let socket = dir.path().join("link.sock");
        let options = LinkOptions {
            socket: socket.clone(),
            cert: dir.path().join(crate::CERT_FILE),
            key: dir.path().join(crate::KEY_FILE),
            state_dir: dir.path().to_path_buf(),
            profile: Profile::Default,
            mac: [2, 0, 0, 0, 0, 1],
            model: "PowerEdge R660".into(),
            legacy_default: None,
        };
        let service = serve_link(running.state(), options).await.unwrap();
        service.press_button().await.unwrap();

        let pipe = rackside_link::socket::connect(&socket).await.unwrap();
        let mut session =
            ClientSession::connect(pipe, ClientSettings::default(), Duration::from_secs(10))
                .await
                .unwrap();
        assert_eq!(session.peer_certificates()[0], running.certificate_der());
        session.accept_certificate().unwrap();
        let info = session
            .login("root", &Password::new("link-test-password"), None)
            .await
            .unwrap();
        assert_eq!(info.service_tag, running.service_tag());

        let transport = LinkTransport::new(session);
        let response = transport
            .send(rackside_redfish::Request {
                method: http::Method::GET,
                path: "/redfish/v1".into(),
                headers: http::HeaderMap::new(),
                body: None,
            })
            .await
            .unwrap();
        assert_eq!(response.status, http::StatusCode::OK);
        assert!(String::from_utf8_lossy(&response.body).contains("ServiceRoot"));

        // The lifecycle log, read over the link itself, names the activation and the login.
        let entries_path = {
            let state = running.state();
            let inner = state.lock();
            let index = inner.lifecycle_log.unwrap();
            inner.logs[index].entries_path.clone()
        };
        let mut headers = http::HeaderMap::new();
        let basic = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "root:link-test-password",
        );
        headers.insert(
            http::header::AUTHORIZATION,
            format!("Basic {basic}").parse().unwrap(),
        );
        let response = transport
            .send(rackside_redfish::Request {
                method: http::Method::GET,
                path: entries_path,
                headers,
                body: None,
            })
            .await
            .unwrap();
        let body = String::from_utf8_lossy(&response.body).into_owned();
        assert_eq!(response.status, http::StatusCode::OK, "{body}");
        assert!(body.contains("link was activated by the button"), "{body}");
        assert!(
            body.contains("Login succeeded over the at-the-server link"),
            "{body}"
        );
        assert!(
            body.contains("connected over the at-the-server link"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn lockout_count_survives_link_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = BmcConfig::new(dir.path().to_path_buf());
        config.listen.set_port(0);
        config.first_user = Some(("root".into(), Secret::new("link-test-password")));
        let running = crate::start(config).await.unwrap();
        let options = |name: &str| LinkOptions {
            socket: dir.path().join(name),
            cert: dir.path().join(crate::CERT_FILE),
            key: dir.path().join(crate::KEY_FILE),
            state_dir: dir.path().to_path_buf(),
            profile: Profile::Default,
            mac: [2, 0, 0, 0, 0, 1],
            model: "PowerEdge R660".into(),
            legacy_default: None,
        };

        let first = serve_link(running.state(), options("a.sock"))
            .await
            .unwrap();
        first.press_button().await.unwrap();
        for _ in 0..3 {
            let pipe = rackside_link::socket::connect(&dir.path().join("a.sock"))
                .await
                .unwrap();
            let mut session =
                ClientSession::connect(pipe, ClientSettings::default(), Duration::from_secs(10))
                    .await
                    .unwrap();
            session.accept_certificate().unwrap();
            assert!(session
                .login("root", &Password::new("wrong"), None)
                .await
                .is_err());
        }
        assert!(first.status().await.unwrap().locked);

        // A second link service, as after a BMC restart, reads the count and stays locked.
        let second = serve_link(running.state(), options("b.sock"))
            .await
            .unwrap();
        let status = second.status().await.unwrap();
        assert!(status.locked);
        assert_eq!(status.failed_logins, 3);
    }
}
