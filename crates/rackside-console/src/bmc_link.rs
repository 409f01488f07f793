//! Requests the console sends to a BMC it added: the push subscription that points the
//! BMC's event service at the console's listener, its removal, and the Redfish client that
//! polling uses. Every connection is checked against the pin accepted when the BMC was
//! added, as the client's connections are.

use std::sync::Arc;
use std::time::Duration;

use rackside_redfish::{
    AuthMode, Client, Credentials, HttpsTransport, Limits, RetryPolicy, Secret,
};
use rackside_trust::{client_config, Pin, ServerName, ServerPolicy, TrustAnchors};
use serde_json::json;
use zeroize::Zeroizing;

use crate::api::EVENT_SECRET_HEADER;

/// Time allowed for one request to a BMC.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Redfish account the console uses for one request to a BMC. The password is wiped on drop
/// and never printed.
pub struct BmcLogin {
    /// Account name.
    pub user: String,
    /// Account password.
    pub password: Zeroizing<String>,
}

impl std::fmt::Debug for BmcLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BmcLogin")
            .field("user", &self.user)
            .field("password", &"[REDACTED]")
            .finish()
    }
}

/// Builds a TLS configuration that accepts exactly the identity pinned for `bmc_url`.
///
/// # Errors
/// A one-line reason when the URL's host is not a valid server name.
pub fn pinned_tls(bmc_url: &url::Url, pin: &Pin) -> Result<Arc<rustls::ClientConfig>, String> {
    let host = bmc_url
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let server_name = ServerName::try_from(host.clone())
        .map_err(|_| format!("{host} in {bmc_url} is not a valid server name"))?;
    let (tls, _) = client_config(ServerPolicy {
        server_name,
        anchors: Arc::new(TrustAnchors::system()),
        pin: Some(pin.clone()),
    });
    Ok(tls)
}

/// Builds a Redfish client for the BMC with the pinned identity and logs in with Basic
/// authentication. Basic leaves no session open. The simulator logs every session login but
/// no successful Basic request, so polling does not flood its lifecycle log.
///
/// `max_in_flight` bounds the requests this client sends at once.
///
/// # Errors
/// A one-line reason naming the BMC URL: the pinned identity changed, the BMC could not be
/// reached or timed out, or it rejected the account.
pub async fn redfish_client(
    bmc_url: &url::Url,
    pin: &Pin,
    login: &BmcLogin,
    limits: Limits,
    max_in_flight: usize,
) -> Result<Client<HttpsTransport>, String> {
    let tls = pinned_tls(bmc_url, pin)?;
    let transport = HttpsTransport::new(bmc_url, tls, limits).map_err(|e| one_line(&e))?;
    let retry = RetryPolicy {
        max_attempts: 2,
        ..RetryPolicy::default()
    };
    let mut client = Client::new(transport, retry).with_max_in_flight(max_in_flight);
    let credentials = Credentials {
        username: login.user.clone(),
        password: Secret::new(login.password.as_str()),
    };
    client
        .login(&credentials, AuthMode::Basic)
        .await
        .map_err(|e| one_line(&e))?;
    Ok(client)
}

/// Returns an error's message on one line, with line breaks replaced by spaces.
pub fn one_line(error: &dyn std::fmt::Display) -> String {
    error
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Creates the BMC's push subscription to `destination`, with `context` as its `Context`, the
/// delivery secret in `HttpHeaders` and, when `registry_prefixes` is not empty, a
/// `RegistryPrefixes` filter. Returns the subscription's URI.
///
/// # Errors
/// A one-line reason naming the BMC URL: the pinned identity changed, the BMC could not be
/// reached, or it rejected the request (with its status).
pub async fn create_subscription(
    bmc_url: &url::Url,
    pin: &Pin,
    login: &BmcLogin,
    destination: &str,
    context: &str,
    secret: &str,
    registry_prefixes: &[String],
) -> Result<String, String> {
    // 1. A client that trusts exactly the pinned identity.
    let http = pinned_http(bmc_url, pin)?;

    // 2. The subscription, sent with Basic authentication so no session is left open.
    let collection = bmc_url
        .join("/redfish/v1/EventService/Subscriptions")
        .map_err(|e| format!("invalid BMC URL {bmc_url}: {e}"))?;
    let mut body = json!({
        "Destination": destination,
        "Protocol": "Redfish",
        "Context": context,
        "HttpHeaders": { EVENT_SECRET_HEADER: secret },
        "DeliveryRetryPolicy": "SuspendRetries",
    });
    if let (false, Some(map)) = (registry_prefixes.is_empty(), body.as_object_mut()) {
        map.insert("RegistryPrefixes".into(), json!(registry_prefixes));
    }
    let response = http
        .post(collection)
        .basic_auth(&login.user, Some(login.password.as_str()))
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("failed to reach {bmc_url}: {}", e.without_url()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!(
            "{bmc_url} rejected the event subscription with {status}: check the account's role"
        ));
    }
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let fallback = response
        .json::<serde_json::Value>()
        .await
        .ok()
        .and_then(|b| b.get("@odata.id")?.as_str().map(str::to_owned));
    location
        .or(fallback)
        .ok_or_else(|| format!("{bmc_url} created a subscription but did not name its URI"))
}

/// Reads the BMC's EventService resource; `None` when the BMC has none (404).
///
/// # Errors
/// A one-line reason naming the BMC URL: the pinned identity changed, the BMC could not be
/// reached, or it rejected the account (with its status).
pub async fn read_event_service(
    bmc_url: &url::Url,
    pin: &Pin,
    login: &BmcLogin,
) -> Result<Option<serde_json::Value>, String> {
    let http = pinned_http(bmc_url, pin)?;
    let target = bmc_url
        .join("/redfish/v1/EventService")
        .map_err(|e| format!("invalid BMC URL {bmc_url}: {e}"))?;
    let response = http
        .get(target)
        .basic_auth(&login.user, Some(login.password.as_str()))
        .send()
        .await
        .map_err(|e| format!("failed to reach {bmc_url}: {}", e.without_url()))?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(format!(
            "{bmc_url} rejected reading its EventService with {status}: check the account"
        ));
    }
    response
        .json()
        .await
        .map(Some)
        .map_err(|e| format!("{bmc_url} sent an EventService that is not JSON: {e}"))
}

/// Deletes the push subscription at `uri` on the BMC. A subscription the BMC no longer has
/// (404) counts as deleted.
///
/// # Errors
/// A one-line reason naming the BMC URL and the status or transport error.
pub async fn delete_subscription(
    bmc_url: &url::Url,
    pin: &Pin,
    login: &BmcLogin,
    uri: &str,
) -> Result<(), String> {
    let http = pinned_http(bmc_url, pin)?;
    let target = bmc_url
        .join(uri)
        .map_err(|e| format!("invalid subscription URI {uri}: {e}"))?;
    if target.origin() != bmc_url.origin() {
        return Err(format!("subscription URI {uri} points away from {bmc_url}"));
    }
    let response = http
        .delete(target)
        .basic_auth(&login.user, Some(login.password.as_str()))
        .send()
        .await
        .map_err(|e| format!("failed to reach {bmc_url}: {}", e.without_url()))?;
    let status = response.status();
    if status.is_success() || status == reqwest::StatusCode::NOT_FOUND {
        Ok(())
    } else {
        Err(format!("{bmc_url} rejected deleting {uri} with {status}"))
    }
}

/// Builds an HTTPS client that trusts exactly the pinned identity.
pub(crate) fn pinned_http(bmc_url: &url::Url, pin: &Pin) -> Result<reqwest::Client, String> {
    let tls = pinned_tls(bmc_url, pin)?;
    reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .map_err(|e| format!("failed to build the HTTPS client for {bmc_url}: {e}"))
}
