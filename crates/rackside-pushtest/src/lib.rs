//! Test servers that speak the Web Push, FCM HTTP v1 and APNs protocols on loopback and
//! check every request they receive, plus helpers to start a relay against them.
//!
//! A request that breaks a protocol rule gets 400 and adds a line to `violations`; tests
//! assert that list stays empty.
//!
//! These are the only stand-ins in the project, because Google's and Apple's services
//! cannot run here. Only tests and benchmarks use this crate.

#![allow(dead_code, clippy::unwrap_used, clippy::panic, clippy::type_complexity)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rackside_relay::ece::DeviceKeys;
use rackside_relay::jwt::Signer;
use rackside_relay::providers::apns::{ApnsConfig, DEFAULT_TOKEN_REFRESH};
use rackside_relay::providers::fcm::FcmConfig;
use rackside_relay::providers::ProviderConfig;
use ring::signature;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tower::ServiceExt as _;

/// The RSA key of the test FCM service account, generated for these tests only.
const FCM_TEST_KEY: &str = include_str!("../data/fcm-test-key.pem");

/// Test server behaviour for pushes to one device.
#[derive(Debug)]
pub enum Behaviour {
    /// Accept every push.
    Accept,
    /// Report the device gone (Web Push 410, FCM UNREGISTERED, APNs 410).
    Gone,
    /// Return 429 with `Retry-After: 0` this many times, then accept.
    BusyFirst(AtomicU32),
}

/// A push a test server accepted, decrypted with the device's key.
#[derive(Debug, Clone)]
pub struct Received {
    /// `webpush`, `fcm` or `apns`.
    pub provider: &'static str,
    /// The device the push was for.
    pub device: String,
    /// The body as the device receives it, still encrypted.
    pub ciphertext: Vec<u8>,
    /// The decrypted alert.
    pub plaintext: String,
    /// The clear-text count, where the protocol carries one.
    pub count: Option<u32>,
    /// When the test server accepted it.
    pub at: std::time::Instant,
}

/// What all test servers share: device keys, behaviours and what they saw.
#[derive(Default)]
pub struct Recorder {
    devices: Mutex<HashMap<String, (Arc<DeviceKeys>, Arc<Behaviour>)>>,
    /// Pushes accepted, in arrival order.
    pub received: Mutex<Vec<Received>>,
    /// Protocol rules broken by the relay.
    pub violations: Mutex<Vec<String>>,
    /// Number of 429 responses sent.
    pub busy_answers: AtomicU32,
}

impl Recorder {
    /// Makes a device known under `id` (Web Push subscription id, FCM or APNs token).
    pub fn add_device(&self, id: &str, keys: Arc<DeviceKeys>, behaviour: Behaviour) {
        self.devices
            .lock()
            .unwrap()
            .insert(id.to_owned(), (keys, Arc::new(behaviour)));
    }

    fn device(&self, id: &str) -> Option<(Arc<DeviceKeys>, Arc<Behaviour>)> {
        self.devices.lock().unwrap().get(id).cloned()
    }

    fn violation(&self, text: String) -> Response {
        self.violations.lock().unwrap().push(text.clone());
        (StatusCode::BAD_REQUEST, text).into_response()
    }

    /// Waits until `count` pushes arrived or `timeout` passed; returns what arrived.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let seen = self.received.lock().unwrap().clone();
            if seen.len() >= count || tokio::time::Instant::now() >= deadline {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Returns the protocol violations seen so far.
    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap().clone()
    }

    /// Applies the device's behaviour: `Some(response)` when the push must not be accepted.
    fn behave(&self, behaviour: &Behaviour, gone: Response) -> Option<Response> {
        match behaviour {
            Behaviour::Accept => None,
            Behaviour::Gone => Some(gone),
            Behaviour::BusyFirst(left) => {
                let busy = left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                busy.then(|| {
                    self.busy_answers.fetch_add(1, Ordering::SeqCst);
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", "0")],
                        "slow down",
                    )
                        .into_response()
                })
            }
        }
    }
}

/// A test server on loopback with its own self-signed certificate.
pub struct TestServer {
    /// Bound address.
    pub addr: SocketAddr,
    /// Its certificate, for the relay's provider trust anchors.
    pub cert: CertificateDer<'static>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// Returns `https://localhost:PORT/`.
    pub fn base_url(&self) -> url::Url {
        url::Url::parse(&format!("https://localhost:{}/", self.addr.port())).unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `router` over TLS on a free loopback port; HTTP/2 only when `h2_only`.
pub async fn serve_tls(router: Router, h2_only: bool) -> TestServer {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let cert_der = cert.der().clone();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert_der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    config.alpn_protocols = if h2_only {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let router = router.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = TowerToHyperService::new(router.map_request(
                    |r: axum::extract::Request<hyper::body::Incoming>| r.map(axum::body::Body::new),
                ));
                if h2_only {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                }
            });
        }
    });
    TestServer {
        addr,
        cert: cert_der,
        task,
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Verifies a compact JWS with `algorithm` and returns its header and claims.
fn verify_jwt(
    token: &str,
    algorithm: &'static dyn signature::VerificationAlgorithm,
    public_key: &[u8],
) -> Result<(serde_json::Value, serde_json::Value), String> {
    let (signed, sig) = token.rsplit_once('.').ok_or("JWT has no signature")?;
    let (header, claims) = signed.split_once('.').ok_or("JWT has no claims")?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| "JWT signature is not base64url")?;
    signature::UnparsedPublicKey::new(algorithm, public_key)
        .verify(signed.as_bytes(), &sig)
        .map_err(|_| "JWT signature does not verify")?;
    let decode = |part: &str| -> Result<serde_json::Value, String> {
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| "JWT part is not base64url")?;
        serde_json::from_slice(&bytes).map_err(|e| format!("JWT part is not JSON: {e}"))
    };
    Ok((decode(header)?, decode(claims)?))
}

// ---------------------------------------------------------------- Web Push

/// Starts a Web Push service: `POST /push/{subscription}`.
pub async fn start_webpush(recorder: Arc<Recorder>) -> TestServer {
    let router = Router::new()
        .route("/push/{id}", post(webpush_receive))
        .with_state(recorder);
    serve_tls(router, false).await
}

async fn webpush_receive(
    State(recorder): State<Arc<Recorder>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };

    // RFC 8292: "vapid t=JWT, k=KEY", signed by k, aud = this origin, exp within 24 h.
    let Some(rest) = header("authorization").strip_prefix("vapid ") else {
        return recorder.violation("webpush: Authorization is not a vapid credential".into());
    };
    let mut params = HashMap::new();
    for part in rest.split(',') {
        if let Some((k, v)) = part.trim().split_once('=') {
            params.insert(k.to_owned(), v.to_owned());
        }
    }
    let (Some(token), Some(key)) = (params.get("t"), params.get("k")) else {
        return recorder.violation("webpush: vapid credential lacks t or k".into());
    };
    let Ok(public_key) = URL_SAFE_NO_PAD.decode(key) else {
        return recorder.violation("webpush: vapid k is not base64url".into());
    };
    let claims = match verify_jwt(token, &signature::ECDSA_P256_SHA256_FIXED, &public_key) {
        Ok((header, claims)) if header["alg"] == "ES256" => claims,
        Ok(_) => return recorder.violation("webpush: VAPID alg is not ES256".into()),
        Err(e) => return recorder.violation(format!("webpush: {e}")),
    };
    let host = header("host");
    let aud = claims["aud"].as_str().unwrap_or("");
    if !aud.starts_with("https://") || (!host.is_empty() && !aud.ends_with(host)) {
        return recorder.violation(format!(
            "webpush: VAPID aud {aud} is not this origin ({host})"
        ));
    }
    let exp = claims["exp"].as_u64().unwrap_or(0);
    if exp <= now() || exp > now() + 24 * 3600 {
        return recorder.violation("webpush: VAPID exp is not within the next 24 hours".into());
    }
    let sub = claims["sub"].as_str().unwrap_or("");
    if !(sub.starts_with("mailto:") || sub.starts_with("https:")) {
        return recorder.violation("webpush: VAPID sub is not a mailto: or https: URI".into());
    }

    // RFC 8030: TTL required; RFC 8291: aes128gcm, at most 4096 bytes.
    if header("ttl").parse::<u64>().is_err() {
        return recorder.violation("webpush: TTL header missing or not a number".into());
    }
    if header("content-encoding") != "aes128gcm" {
        return recorder.violation("webpush: Content-Encoding is not aes128gcm".into());
    }
    if body.len() > 4096 {
        return recorder.violation(format!(
            "webpush: body of {} bytes exceeds 4096",
            body.len()
        ));
    }

    let Some((keys, behaviour)) = recorder.device(&id) else {
        return (StatusCode::NOT_FOUND, "no such subscription").into_response();
    };
    if let Some(response) =
        recorder.behave(&behaviour, (StatusCode::GONE, "expired").into_response())
    {
        return response;
    }
    let Ok(plain) = keys.decrypt(&body) else {
        return recorder.violation("webpush: body does not decrypt with the device key".into());
    };
    recorder.received.lock().unwrap().push(Received {
        provider: "webpush",
        device: id,
        ciphertext: body.to_vec(),
        plaintext: String::from_utf8_lossy(&plain).into_owned(),
        count: None,
        at: std::time::Instant::now(),
    });
    StatusCode::CREATED.into_response()
}

// ---------------------------------------------------------------- FCM

/// A service account the FCM test server accepts.
pub struct FcmAccount {
    /// The service-account JSON the relay reads.
    pub json: String,
    /// The RSA public key (PKCS#1 DER) the token endpoint verifies with.
    pub public_key: Vec<u8>,
    /// When set, the token endpoint answers `invalid_grant`, as for an expired key.
    pub key_expired: bool,
}

struct FcmState {
    recorder: Arc<Recorder>,
    account: FcmAccount,
    token_uri: String,
    issued: Mutex<Vec<String>>,
}

/// Starts an FCM service with its OAuth token endpoint at `/token`. The service-account JSON
/// it returns names that endpoint, so the relay finds it from the JSON alone.
pub async fn start_fcm(recorder: Arc<Recorder>, key_expired: bool) -> (TestServer, Arc<String>) {
    let pem = FCM_TEST_KEY;
    let public_key = match Signer::from_pem("test", pem.as_bytes()).unwrap() {
        signer @ Signer::Rs256(_) => signer.public_key(),
        _ => panic!("the FCM test key is not RSA"),
    };
    // The port is known only after binding, so the state is filled in through a cell.
    let cell: Arc<OnceLock<Arc<FcmState>>> = Arc::new(OnceLock::new());
    let router = Router::new()
        .route("/token", post(fcm_token))
        .route("/v1/projects/{project}/messages:send", post(fcm_send))
        .with_state(cell.clone());
    let server = serve_tls(router, false).await;
    let token_uri = format!("{}token", server.base_url());
    let json = serde_json::json!({
        "type": "service_account",
        "project_id": "rackside-test",
        "private_key_id": "test",
        "private_key": pem,
        "client_email": "relay@rackside-test.iam.gserviceaccount.com",
        "token_uri": token_uri,
    })
    .to_string();
    let state = Arc::new(FcmState {
        recorder,
        account: FcmAccount {
            json: json.clone(),
            public_key,
            key_expired,
        },
        token_uri,
        issued: Mutex::new(Vec::new()),
    });
    let _ = cell.set(state);
    (server, Arc::new(json))
}

async fn fcm_token(State(cell): State<Arc<OnceLock<Arc<FcmState>>>>, body: String) -> Response {
    let state = cell.get().unwrap();
    let recorder = &state.recorder;
    let form: HashMap<String, String> = body
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.replace("%3A", ":")))
        .collect();
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return recorder.violation("fcm token: grant_type is not jwt-bearer".into());
    }
    let Some(assertion) = form.get("assertion") else {
        return recorder.violation("fcm token: assertion missing".into());
    };
    let claims = match verify_jwt(
        assertion,
        &signature::RSA_PKCS1_2048_8192_SHA256,
        &state.account.public_key,
    ) {
        Ok((header, claims)) if header["alg"] == "RS256" => claims,
        Ok(_) => return recorder.violation("fcm token: alg is not RS256".into()),
        Err(e) => return recorder.violation(format!("fcm token: {e}")),
    };
    if claims["aud"] != state.token_uri.as_str()
        || claims["scope"] != "https://www.googleapis.com/auth/firebase.messaging"
        || claims["iss"] != "relay@rackside-test.iam.gserviceaccount.com"
    {
        return recorder.violation(format!("fcm token: wrong aud, scope or iss in {claims}"));
    }
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap_or(0),
        claims["exp"].as_u64().unwrap_or(0),
    );
    if iat > now() + 60 || iat + 300 < now() || exp <= iat || exp - iat > 3600 {
        return recorder.violation("fcm token: iat or exp out of range".into());
    }
    if state.account.key_expired {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    let token = format!(
        "ya29.test-{}",
        URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>())
    );
    state.issued.lock().unwrap().push(token.clone());
    Json(serde_json::json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}))
        .into_response()
}

async fn fcm_send(
    State(cell): State<Arc<OnceLock<Arc<FcmState>>>>,
    Path(project): Path<String>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> Response {
    let state = cell.get().unwrap();
    let recorder = &state.recorder;
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !state.issued.lock().unwrap().iter().any(|t| t == bearer) {
        return recorder.violation("fcm send: bearer is not an issued access token".into());
    }
    if project != "rackside-test" {
        return recorder.violation(format!("fcm send: wrong project {project}"));
    }
    let message = &body["message"];
    if message.get("notification").is_some() {
        return recorder.violation("fcm send: message is not data-only".into());
    }
    let Some(data) = message["data"].as_object() else {
        return recorder.violation("fcm send: data missing".into());
    };
    if data.values().any(|v| !v.is_string()) {
        return recorder.violation("fcm send: data values must be strings".into());
    }
    if serde_json::to_string(data).unwrap().len() > 4096 {
        return recorder.violation("fcm send: data exceeds 4096 bytes".into());
    }
    let device = message["token"].as_str().unwrap_or("").to_owned();
    let Some((keys, behaviour)) = recorder.device(&device) else {
        return recorder.violation(format!("fcm send: unknown token {device}"));
    };
    let unregistered = (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({"error": {"code": 404, "status": "NOT_FOUND",
            "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}})),
    )
        .into_response();
    if let Some(response) = recorder.behave(&behaviour, unregistered) {
        return response;
    }
    let Ok(ciphertext) =
        URL_SAFE_NO_PAD.decode(data.get("payload").and_then(|v| v.as_str()).unwrap_or(""))
    else {
        return recorder.violation("fcm send: payload is not base64url".into());
    };
    let Ok(plain) = keys.decrypt(&ciphertext) else {
        return recorder.violation("fcm send: payload does not decrypt with the device key".into());
    };
    recorder.received.lock().unwrap().push(Received {
        provider: "fcm",
        device,
        ciphertext,
        plaintext: String::from_utf8_lossy(&plain).into_owned(),
        count: data
            .get("count")
            .and_then(|v| v.as_str())
            .and_then(|v| v.parse().ok()),
        at: std::time::Instant::now(),
    });
    Json(serde_json::json!({"name": "projects/rackside-test/messages/1"})).into_response()
}

// ---------------------------------------------------------------- APNs

/// The APNs signing key and ids the test server expects.
pub struct ApnsAccount {
    /// Path of the `.p8` file written for the relay.
    pub key_file: std::path::PathBuf,
    /// The key id.
    pub key_id: String,
    /// The team id.
    pub team_id: String,
    /// The bundle id.
    pub topic: String,
    public_key: Vec<u8>,
}

/// Writes a fresh `.p8` key into `dir` and returns the account that uses it.
pub fn apns_account(dir: &std::path::Path) -> ApnsAccount {
    let (signer, der) = Signer::generate_es256().unwrap();
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    let encoded = STANDARD.encode(der.as_slice());
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    let key_file = dir.join("AuthKey_TEST123456.p8");
    std::fs::write(&key_file, pem).unwrap();
    ApnsAccount {
        key_file,
        key_id: "TEST123456".into(),
        team_id: "TEAM123456".into(),
        topic: "org.rackside.app".into(),
        public_key: signer.public_key(),
    }
}

struct ApnsState {
    recorder: Arc<Recorder>,
    key_id: String,
    team_id: String,
    topic: String,
    public_key: Vec<u8>,
}

/// Starts an APNs service: HTTP/2 only, `POST /3/device/{token}`.
pub async fn start_apns(recorder: Arc<Recorder>, account: &ApnsAccount) -> TestServer {
    let state = Arc::new(ApnsState {
        recorder,
        key_id: account.key_id.clone(),
        team_id: account.team_id.clone(),
        topic: account.topic.clone(),
        public_key: account.public_key.clone(),
    });
    let router = Router::new()
        .route("/3/device/{token}", post(apns_receive))
        .with_state(state);
    serve_tls(router, true).await
}

async fn apns_receive(
    State(state): State<Arc<ApnsState>>,
    Path(device): Path<String>,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let recorder = &state.recorder;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    if version != Version::HTTP_2 {
        return recorder.violation(format!("apns: request over {version:?}, not HTTP/2"));
    }
    let Some(token) = header("authorization").strip_prefix("bearer ") else {
        return recorder.violation("apns: authorization is not a bearer token".into());
    };
    let (jwt_header, claims) = match verify_jwt(
        token,
        &signature::ECDSA_P256_SHA256_FIXED,
        &state.public_key,
    ) {
        Ok(parts) => parts,
        Err(e) => return recorder.violation(format!("apns: {e}")),
    };
    if jwt_header["alg"] != "ES256"
        || jwt_header["kid"] != state.key_id.as_str()
        || claims["iss"] != state.team_id.as_str()
    {
        return recorder.violation("apns: wrong alg, kid or iss".into());
    }
    // Apple rejects provider tokens older than one hour.
    let iat = claims["iat"].as_u64().unwrap_or(0);
    if iat > now() + 60 || iat + 3600 < now() {
        return (
            StatusCode::FORBIDDEN,
            Json(serde_json::json!({"reason": "ExpiredProviderToken"})),
        )
            .into_response();
    }
    if !matches!(header("apns-push-type"), "alert" | "background") {
        return recorder.violation("apns: apns-push-type missing".into());
    }
    if header("apns-topic") != state.topic {
        return recorder.violation("apns: wrong apns-topic".into());
    }
    if header("apns-collapse-id").len() > 64 {
        return recorder.violation("apns: apns-collapse-id longer than 64 bytes".into());
    }
    if body.len() > 4096 {
        return recorder.violation(format!(
            "apns: payload of {} bytes exceeds 4096",
            body.len()
        ));
    }
    let Some((keys, behaviour)) = recorder.device(&device) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"reason": "BadDeviceToken"})),
        )
            .into_response();
    };
    let gone = (
        StatusCode::GONE,
        Json(serde_json::json!({"reason": "Unregistered", "timestamp": now() * 1000})),
    )
        .into_response();
    if let Some(response) = recorder.behave(&behaviour, gone) {
        return response;
    }
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return recorder.violation("apns: payload is not JSON".into());
    };
    let Ok(ciphertext) = URL_SAFE_NO_PAD.decode(payload["payload"].as_str().unwrap_or("")) else {
        return recorder.violation("apns: payload field is not base64url".into());
    };
    let Ok(plain) = keys.decrypt(&ciphertext) else {
        return recorder.violation("apns: payload does not decrypt with the device key".into());
    };
    recorder.received.lock().unwrap().push(Received {
        provider: "apns",
        device,
        ciphertext,
        plaintext: String::from_utf8_lossy(&plain).into_owned(),
        count: payload["aps"]["badge"].as_u64().map(|n| n as u32),
        at: std::time::Instant::now(),
    });
    StatusCode::OK.into_response()
}

// ---------------------------------------------------------------- clients

/// Returns the certificates in `pem`.
pub fn certificates(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(Result::unwrap)
        .collect()
}

/// Builds an HTTPS client that trusts exactly `anchors`, as the services here and the
/// relay, console and BMC under test use self-signed certificates.
pub fn client_trusting(anchors: &[CertificateDer<'static>]) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for anchor in anchors {
        roots.add(anchor.clone()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .unwrap()
}

// ---------------------------------------------------------------- all three at once

/// The three test services, started together, with the relay configuration that uses them.
pub struct Providers {
    /// The record of pushes and violations all three services share.
    pub recorder: Arc<Recorder>,
    /// The Web Push service.
    pub webpush: TestServer,
    /// The FCM service.
    pub fcm: TestServer,
    /// The APNs service.
    pub apns: TestServer,
    service_account: std::path::PathBuf,
    apns_account: ApnsAccount,
}

impl Providers {
    /// Starts the three services. The FCM service-account JSON and the APNs key are written
    /// into `secrets_dir`. With `fcm_key_expired` the FCM token endpoint rejects the key.
    pub async fn start(secrets_dir: &std::path::Path, fcm_key_expired: bool) -> Self {
        let recorder = Arc::new(Recorder::default());
        let webpush = start_webpush(recorder.clone()).await;
        let (fcm, fcm_json) = start_fcm(recorder.clone(), fcm_key_expired).await;
        std::fs::create_dir_all(secrets_dir).unwrap();
        let service_account = secrets_dir.join("service-account.json");
        std::fs::write(&service_account, fcm_json.as_bytes()).unwrap();
        let apns_account = apns_account(secrets_dir);
        let apns = start_apns(recorder.clone(), &apns_account).await;
        Self {
            recorder,
            webpush,
            fcm,
            apns,
            service_account,
            apns_account,
        }
    }

    /// Returns a relay provider configuration that sends to these services and trusts
    /// their certificates.
    pub fn config(&self) -> ProviderConfig {
        ProviderConfig {
            webpush_subject: Some("mailto:ops@rackside.test".into()),
            fcm: Some(FcmConfig {
                service_account: self.service_account.clone(),
                base_url: self.fcm.base_url(),
            }),
            apns: Some(ApnsConfig {
                key_file: self.apns_account.key_file.clone(),
                key_id: self.apns_account.key_id.clone(),
                team_id: self.apns_account.team_id.clone(),
                topic: self.apns_account.topic.clone(),
                base_url: self.apns.base_url(),
                token_refresh: DEFAULT_TOKEN_REFRESH,
            }),
            extra_roots: vec![
                self.webpush.cert.clone(),
                self.fcm.cert.clone(),
                self.apns.cert.clone(),
            ],
            request_timeout: Duration::from_secs(5),
        }
    }

    /// Makes `device` known to the `provider` service (`webpush`, `fcm` or `apns`) and
    /// returns the relay registration target for it.
    pub fn add_device(
        &self,
        provider: &str,
        device: &str,
        keys: Arc<DeviceKeys>,
        behaviour: Behaviour,
    ) -> serde_json::Value {
        let (id, target) = match provider {
            "webpush" => (
                device.to_owned(),
                serde_json::json!({"provider": "webpush",
                    "endpoint": format!("{}push/{device}", self.webpush.base_url())}),
            ),
            "fcm" => (
                format!("fcm-{device}"),
                serde_json::json!({"provider": "fcm", "token": format!("fcm-{device}")}),
            ),
            "apns" => {
                let hex: String = device.bytes().map(|b| format!("{b:02x}")).collect();
                let token = format!("{hex:0>64}");
                (
                    token.clone(),
                    serde_json::json!({"provider": "apns", "device_token": token}),
                )
            }
            other => panic!("unknown provider {other}"),
        };
        self.recorder.add_device(&id, keys, behaviour);
        target
    }
}
