//! The transport abstraction and its HTTPS implementation.
//!
//! The client speaks plain HTTP requests to a [`Transport`], so the same code runs over
//! HTTPS and over any other channel that carries HTTP requests.

use std::error::Error as _;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, StatusCode};
use url::Url;

use crate::Error;

/// One HTTP request to the service. Its `Debug` output omits the body, which may hold a
/// password, and `http` hides header values marked sensitive.
#[derive(Clone)]
pub struct Request {
    /// The request method.
    pub method: Method,
    /// Absolute path with optional query, such as `/redfish/v1/Systems?$skip=50`.
    pub path: String,
    /// Request headers. The client sets only standard ones.
    pub headers: HeaderMap,
    /// Request body, for POST and PATCH.
    pub body: Option<Bytes>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("headers", &self.headers)
            .field("body_bytes", &self.body.as_ref().map(Bytes::len))
            .finish()
    }
}

/// One HTTP response from the service.
#[derive(Clone, Debug)]
pub struct Response {
    /// The response status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The complete response body.
    pub body: Bytes,
}

/// A channel that carries HTTP requests to one Redfish service.
pub trait Transport: Send + Sync {
    /// Sends one request and returns the complete response, or a transport error.
    fn send(&self, request: Request) -> impl Future<Output = Result<Response, Error>> + Send;

    /// Returns the service's base URL for messages, when the transport has one.
    fn base_url(&self) -> Option<String> {
        None
    }
}

/// Time-outs and size limits of a transport.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Maximum time to open the TCP connection and finish the TLS handshake.
    pub connect_timeout: Duration,
    /// Maximum time between two reads from the connection.
    pub read_timeout: Duration,
    /// Maximum time for a whole request, from sending it to the last byte of the body, so a
    /// BMC that trickles bytes cannot hold a command forever.
    pub request_timeout: Duration,
    /// Maximum response body size in bytes.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            max_body_bytes: 32 * 1024 * 1024,
        }
    }
}

/// HTTPS to one BMC through reqwest, using the caller's rustls configuration.
///
/// Redirects are not followed and no proxy is used, so requests reach only the host in
/// the base URL.
#[derive(Clone, Debug)]
pub struct HttpsTransport {
    http: reqwest::Client,
    base: Url,
    limits: Limits,
}

impl HttpsTransport {
    /// Builds a transport for the service at `base` (scheme, host and port are used).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`] when `base` is not an `https` URL with a host, and
    /// [`Error::Transport`] when the HTTP client cannot be built.
    pub fn new(base: &Url, tls: Arc<rustls::ClientConfig>, limits: Limits) -> Result<Self, Error> {
        if base.scheme() != "https" {
            return Err(Error::InvalidUrl {
                url: base.to_string(),
                detail: format!("scheme {:?} is not https", base.scheme()),
            });
        }
        if base.host_str().is_none_or(str::is_empty) {
            return Err(Error::InvalidUrl {
                url: base.to_string(),
                detail: "no host".into(),
            });
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(Error::InvalidUrl {
                url: redact_userinfo(base),
                detail: "the URL contains a user name or password; pass credentials separately"
                    .into(),
            });
        }
        let mut origin = base.clone();
        origin.set_path("/");
        origin.set_query(None);
        origin.set_fragment(None);

        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(limits.connect_timeout)
            .read_timeout(limits.read_timeout)
            .timeout(limits.request_timeout)
            .build()
            .map_err(|error| Error::Transport {
                what: "building the HTTPS client".into(),
                detail: error_chain(&error),
            })?;
        Ok(HttpsTransport {
            http,
            base: origin,
            limits,
        })
    }

    /// Resolves a request path against the base URL, rejecting anything that would leave
    /// the base's scheme, host or port.
    fn url_for(&self, path: &str) -> Result<Url, Error> {
        let invalid = |detail: &str| Error::InvalidUrl {
            url: path.to_owned(),
            detail: detail.to_owned(),
        };
        if !path.starts_with('/') || path.starts_with("//") {
            return Err(invalid("a request path must start with a single '/'"));
        }
        let url = self
            .base
            .join(path)
            .map_err(|error| invalid(&error.to_string()))?;
        if url.origin() != self.base.origin() {
            return Err(invalid("the path points to another host"));
        }
        Ok(url)
    }
}

impl Transport for HttpsTransport {
    async fn send(&self, request: Request) -> Result<Response, Error> {
        let url = self.url_for(&request.path)?;
        let what = format!("{} {}", request.method, request.path);
        tracing::trace!(%what, "sending request");

        let mut builder = self
            .http
            .request(request.method.clone(), url.clone())
            .headers(request.headers);
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let mut response = builder
            .send()
            .await
            .map_err(|error| map_reqwest_error(&error, &url, &what))?;

        let status = response.status();
        let headers = response.headers().clone();
        let limit = self.limits.max_body_bytes;
        if response
            .content_length()
            .is_some_and(|length| length > limit as u64)
        {
            return Err(Error::TooLarge { limit });
        }

        let mut body = BytesMut::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| map_reqwest_error(&error, &url, &what))?
        {
            if body.len().saturating_add(chunk.len()) > limit {
                return Err(Error::TooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        tracing::trace!(%what, %status, bytes = body.len(), "received response");
        Ok(Response {
            status,
            headers,
            body: body.freeze(),
        })
    }

    fn base_url(&self) -> Option<String> {
        Some(self.base.as_str().trim_end_matches('/').to_owned())
    }
}

/// Returns the URL without its user name and password, for messages.
fn redact_userinfo(url: &Url) -> String {
    let mut redacted = url.clone();
    let _ = redacted.set_username("");
    let _ = redacted.set_password(None);
    redacted.to_string()
}

/// Sorts a reqwest failure into TLS, time-out, connect or other transport errors.
fn map_reqwest_error(error: &reqwest::Error, url: &Url, what: &str) -> Error {
    if let Some(tls) = tls_cause(error) {
        return Error::Tls { detail: tls };
    }
    let detail = error_chain(error);
    if error.is_timeout() {
        let phase = if error.is_connect() {
            "connecting to"
        } else {
            "reading"
        };
        return Error::Timeout {
            what: format!("{phase} {what}"),
        };
    }
    if error.is_connect() {
        return Error::Connect {
            url: url.to_string(),
            detail,
        };
    }
    Error::Transport {
        what: what.to_owned(),
        detail,
    }
}

/// Returns the text of the rustls error among the causes, if there is one. An `io::Error`
/// hides the error it wraps from `source()`, and tokio-rustls errors arrive as an
/// `io::Error` inside another, so nested `io::Error`s are opened with `get_ref`.
fn tls_cause(error: &reqwest::Error) -> Option<String> {
    let mut source = error.source();
    while let Some(cause) = source {
        let mut inner: &(dyn std::error::Error + 'static) = cause;
        loop {
            if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
                return Some(tls.to_string());
            }
            match inner
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                Some(wrapped) => inner = wrapped,
                None => break,
            }
        }
        source = cause.source();
    }
    None
}

/// Joins an error and its causes into one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transport() -> HttpsTransport {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let base = Url::parse("https://bmc.example:8443/ignored").expect("url");
        HttpsTransport::new(&base, Arc::new(config), Limits::default()).expect("transport")
    }

    #[test]
    fn request_debug_hides_body_and_token() {
        let mut headers = HeaderMap::new();
        let mut token = http::HeaderValue::from_static("token-value");
        token.set_sensitive(true);
        headers.insert("x-auth-token", token);
        let request = Request {
            method: Method::POST,
            path: "/redfish/v1/SessionService/Sessions".into(),
            headers,
            body: Some(Bytes::from_static(b"{\"Password\":\"hunter2\"}")),
        };
        let printed = format!("{request:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("token-value"), "{printed}");
    }

    #[test]
    fn https_transport_rejects_http_base() {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let base = Url::parse("http://bmc.example").expect("url");
        let result = HttpsTransport::new(&base, Arc::new(config), Limits::default());
        assert!(matches!(result, Err(Error::InvalidUrl { .. })));
    }

    #[test]
    fn https_transport_rejects_credentials_in_url() {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let base = Url::parse("https://root:calvin@bmc.example").expect("url");
        let error =
            HttpsTransport::new(&base, Arc::new(config), Limits::default()).expect_err("userinfo");
        let message = error.to_string();
        assert!(message.contains("https://bmc.example/"), "{message}");
        assert!(!message.contains("calvin"), "{message}");
    }

    #[test]
    fn url_for_keeps_path_and_query() {
        let url = transport()
            .url_for("/redfish/v1/Systems?$skip=50")
            .expect("url");
        assert_eq!(
            url.as_str(),
            "https://bmc.example:8443/redfish/v1/Systems?$skip=50"
        );
    }

    #[test]
    fn url_for_rejects_other_hosts() {
        let transport = transport();
        assert!(transport.url_for("//evil.example/redfish/v1").is_err());
        assert!(transport
            .url_for("https://evil.example/redfish/v1")
            .is_err());
        assert!(transport.url_for("redfish/v1").is_err());
    }
}
