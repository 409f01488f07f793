//! Requests the console sends to a BMC it added: the push subscription that points the
//! BMC's event service at the console's listener. Every connection is checked against the
//! pin accepted when the BMC was added, as the client's connections are.

use std::sync::Arc;
use std::time::Duration;

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

/// Creates the BMC's push subscription to `destination`, with `context` as its `Context` and
/// the delivery secret in `HttpHeaders`, and returns the subscription's URI.
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
) -> Result<String, String> {
    // 1. A client that trusts exactly the pinned identity.
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
    let http = reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("failed to build the HTTPS client for {bmc_url}: {e}"))?;

    // 2. The subscription, sent with Basic authentication so no session is left open.
    let collection = bmc_url
        .join("/redfish/v1/EventService/Subscriptions")
        .map_err(|e| format!("invalid BMC URL {bmc_url}: {e}"))?;
    let body = json!({
        "Destination": destination,
        "Protocol": "Redfish",
        "Context": context,
        "HttpHeaders": { EVENT_SECRET_HEADER: secret },
        "DeliveryRetryPolicy": "SuspendRetries",
    });
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
