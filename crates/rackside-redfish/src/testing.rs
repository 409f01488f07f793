//! A scripted in-memory transport for unit tests.
//!
//! Expected requests get their scripted responses in order per method and path, and
//! fixed routes serve GETs any number of times. Every request is recorded and checked: only standard headers, no
//! `If-Match` on GET.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde_json::Value;

use crate::transport::{Request, Response, Transport};
use crate::Error;

/// Request headers the client may send (case-insensitive, as `http` stores them).
pub const STANDARD_HEADERS: [&str; 6] = [
    "accept",
    "content-type",
    "odata-version",
    "if-match",
    "x-auth-token",
    "authorization",
];

type ErrorFactory = Box<dyn Fn() -> Error + Send>;

enum Reply {
    Response(Response),
    Error(ErrorFactory),
}

struct Step {
    method: Method,
    path: String,
    reply: Reply,
    used: bool,
}

#[derive(Default)]
struct Inner {
    steps: Vec<Step>,
    routes: HashMap<String, Response>,
    requests: Vec<Request>,
    violations: Vec<String>,
}

/// The scripted transport.
#[derive(Default)]
pub struct Scripted {
    inner: Mutex<Inner>,
}

impl Scripted {
    pub fn new() -> Self {
        Self::default()
    }

    /// Scripts `response` for the next `method path` request, once.
    pub fn expect(self, method: Method, path: &str, response: Response) -> Self {
        self.push(method, path, Reply::Response(response));
        self
    }

    /// Scripts an error for the next `method path` request, once.
    pub fn expect_error(
        self,
        method: Method,
        path: &str,
        error: impl Fn() -> Error + Send + 'static,
    ) -> Self {
        self.push(method, path, Reply::Error(Box::new(error)));
        self
    }

    /// Serves `body` with status 200 to every GET of `path` once the expected steps are used.
    pub fn serve(self, path: &str, body: Value) -> Self {
        self.inner
            .lock()
            .unwrap()
            .routes
            .insert(path.to_owned(), json(StatusCode::OK, &body));
        self
    }

    fn push(&self, method: Method, path: &str, reply: Reply) {
        self.inner.lock().unwrap().steps.push(Step {
            method,
            path: path.to_owned(),
            reply,
            used: false,
        });
    }

    /// Returns every request received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// Returns the requests with this method and path.
    pub fn requests_to(&self, method: &Method, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|request| request.method == *method && request.path == path)
            .collect()
    }

    /// Asserts that every expected step was used and no request broke a header rule or
    /// went unanswered.
    pub fn assert_done(&self) {
        let inner = self.inner.lock().unwrap();
        let unused: Vec<String> = inner
            .steps
            .iter()
            .filter(|step| !step.used)
            .map(|step| format!("{} {}", step.method, step.path))
            .collect();
        assert!(
            unused.is_empty(),
            "expected requests never sent: {unused:?}"
        );
        assert!(
            inner.violations.is_empty(),
            "request violations: {:?}",
            inner.violations
        );
    }
}

impl Transport for Scripted {
    async fn send(&self, request: Request) -> Result<Response, Error> {
        let mut inner = self.inner.lock().unwrap();
        for name in request.headers.keys() {
            if !STANDARD_HEADERS.contains(&name.as_str()) {
                inner.violations.push(format!(
                    "{} {} sent non-standard header {name}",
                    request.method, request.path
                ));
            }
        }
        if request.method == Method::GET && request.headers.contains_key("if-match") {
            inner
                .violations
                .push(format!("GET {} sent If-Match", request.path));
        }
        inner.requests.push(request.clone());

        let step = inner
            .steps
            .iter_mut()
            .find(|step| !step.used && step.method == request.method && step.path == request.path);
        if let Some(step) = step {
            step.used = true;
            return match &step.reply {
                Reply::Response(response) => Ok(response.clone()),
                Reply::Error(factory) => Err(factory()),
            };
        }
        if request.method == Method::GET {
            if let Some(response) = inner.routes.get(&request.path) {
                return Ok(response.clone());
            }
        }
        inner.violations.push(format!(
            "unexpected request {} {}",
            request.method, request.path
        ));
        Ok(json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"error": {"code": "Base.1.0.ResourceMissingAtURI", "message": "not scripted"}}),
        ))
    }
}

/// Builds a JSON response.
pub fn json(status: StatusCode, body: &Value) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    Response {
        status,
        headers,
        body: Bytes::from(body.to_string()),
    }
}

/// Builds a response with a raw body and content type.
pub fn raw(status: StatusCode, content_type: &'static str, body: &str) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static(content_type));
    Response {
        status,
        headers,
        body: Bytes::from(body.to_owned()),
    }
}

/// Adds a header to a response.
pub fn with_header(mut response: Response, name: &'static str, value: &str) -> Response {
    response.headers.insert(
        HeaderName::from_static(name),
        HeaderValue::from_str(value).unwrap(),
    );
    response
}

/// Builds a Redfish error body with one extended-info message.
pub fn redfish_error(status: StatusCode, message_id: &str, message: &str) -> Response {
    json(
        status,
        &serde_json::json!({"error": {
            "code": "Base.1.12.GeneralError",
            "message": "A general error has occurred. See ExtendedInfo for more information.",
            "@Message.ExtendedInfo": [{"MessageId": message_id, "Message": message}]
        }}),
    )
}

/// Builds a service root with a session service linked as `sessions`.
pub fn service_root(sessions: &str) -> Value {
    serde_json::json!({
        "@odata.id": "/redfish/v1",
        "RedfishVersion": "1.13.1",
        "Systems": {"@odata.id": "/redfish/v1/Systems"},
        "Chassis": {"@odata.id": "/redfish/v1/Chassis"},
        "Managers": {"@odata.id": "/redfish/v1/Managers"},
        "SessionService": {"@odata.id": "/redfish/v1/SessionService"},
        "Links": {"Sessions": {"@odata.id": sessions}}
    })
}
