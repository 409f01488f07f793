//! BMC identity for the console, under the client's rules: the console fetches the BMC's
//! certificate chain before any request, classifies it with `rackside-trust`, never accepts
//! red, accepts green, and accepts yellow only when the user confirms the certificate's
//! SHA-256 fingerprint. The accepted identity is kept as a pin.

use std::str::FromStr;
use std::time::Duration;

use rackside_trust::{
    classify, fetch_chain, Color, Fingerprint, Pin, ServerName, TrustAnchors, UnixTime,
};
use serde_json::{json, Value};

/// Time allowed for the TCP connection and again for the handshake.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The console's decision on a BMC's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Green, or yellow with a matching confirmation: pin this identity.
    Accept(Pin),
    /// Yellow without a matching confirmation: show the summary and ask the user.
    Confirm(Value),
    /// Red, or unreachable: the reason, naming the certificate or the address.
    Reject(String),
}

/// Fetches and classifies the certificate of the BMC at `url`. `confirmed_sha256` is the
/// certificate fingerprint the user accepted after seeing the summary.
pub async fn check_identity(url: &url::Url, confirmed_sha256: Option<&str>) -> Decision {
    // 1. The chain, without sending any request or credential.
    let Some(host) = url.host_str() else {
        return Decision::Reject("BMC URL has no host".to_owned());
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let Ok(server_name) = ServerName::try_from(host.clone()) else {
        return Decision::Reject(format!("{host} is not a valid server name"));
    };
    let chain = match fetch_chain(&host, port, server_name.clone(), FETCH_TIMEOUT).await {
        Ok(chain) => chain,
        Err(error) => {
            return Decision::Reject(format!(
                "failed to read the certificate of {host}:{port}: {error}"
            ))
        }
    };

    // 2. The verdict.
    let verdict = classify(
        &chain,
        &server_name,
        &TrustAnchors::system(),
        UnixTime::now(),
    );
    let pin = Pin::from_summary(&verdict.leaf, chrono::Utc::now());
    match verdict.color {
        Color::Red => Decision::Reject(format!(
            "certificate of {host} is red and cannot be accepted: {}",
            verdict.why
        )),
        Color::Green => Decision::Accept(pin),
        Color::Yellow => {
            let confirmed = confirmed_sha256.and_then(|text| Fingerprint::from_str(text).ok());
            if confirmed == Some(verdict.leaf.certificate_sha256) {
                return Decision::Accept(pin);
            }
            Decision::Confirm(json!({
                "color": "yellow",
                "why": verdict.why,
                "subject": verdict.leaf.subject,
                "issuer": verdict.leaf.issuer,
                "not_before": verdict.leaf.not_before,
                "not_after": verdict.leaf.not_after,
                "certificate_sha256": verdict.leaf.certificate_sha256.to_string(),
                "public_key_sha256": verdict.leaf.public_key_sha256.to_string(),
            }))
        }
    }
}
