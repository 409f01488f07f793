//! Session login: `POST` to the sessions collection.

use axum::response::Response;
use http::header::HeaderValue;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::fault::Fault;
use crate::reply::{self, msg, ErrorReply};
use crate::service::Req;
use crate::state::{BmcState, Inner};
use crate::tree;

/// Longest user name or password, in bytes, that a login may carry.
pub(crate) const MAX_CREDENTIAL_BYTES: usize = 256;

#[derive(Deserialize)]
pub(crate) struct LoginRequest {
    #[serde(rename = "UserName")]
    user_name: String,
    #[serde(rename = "Password")]
    password: Zeroizing<String>,
}

// NOTE: the request body that carries the password stays in hyper's buffer until it is freed;
// only the copies made here are wiped.
pub(crate) fn login(
    state: &BmcState,
    inner: &mut Inner,
    req: &Req,
    sessions_path: &str,
) -> Result<Response, ErrorReply> {
    let body = Zeroizing::new(req.body.to_vec());
    let Ok(login) = serde_json::from_slice::<LoginRequest>(&body) else {
        return Err(ErrorReply::new(
            StatusCode::BAD_REQUEST,
            msg::malformed_json(),
        ));
    };
    // Overlong credentials are refused before they reach the account check or the log; the
    // value is not echoed.
    for (property, value) in [
        ("UserName", login.user_name.as_str()),
        ("Password", login.password.as_str()),
    ] {
        if value.len() > MAX_CREDENTIAL_BYTES {
            return Err(ErrorReply::new(
                StatusCode::BAD_REQUEST,
                msg::property_value_format_error("(too long)", property),
            ));
        }
    }
    if state.faults.is_enabled(Fault::SessionExhaustion) {
        return Err(ErrorReply::new(
            StatusCode::SERVICE_UNAVAILABLE,
            msg::session_limit_rac0218(),
        ));
    }
    let Some(role) = inner.accounts.verify(&login.user_name, &login.password) else {
        inner.log_failed_login(&login.user_name, &req.client);
        return Err(ErrorReply::new(
            StatusCode::UNAUTHORIZED,
            msg::resource_at_uri_unauthorized(sessions_path, "Unauthorized"),
        ));
    };
    let limit = state.max_sessions_per_user;
    let Some(new) = inner
        .sessions
        .open(&login.user_name, role, &req.client, limit)
    else {
        tracing::debug!(user = %login.user_name, limit, "session limit reached");
        return Err(ErrorReply::new(
            StatusCode::SERVICE_UNAVAILABLE,
            msg::session_limit_rac0218(),
        ));
    };
    inner.log_login(&login.user_name, &req.client);
    let location = format!("{sessions_path}/{}", new.session.id);
    let body = session_body(&new.session, &location);
    let mut response = reply::json_response(StatusCode::CREATED, tree::serialize(&body));
    response = reply::with_location(response, &location);
    if let Ok(value) = HeaderValue::from_str(&new.token) {
        response.headers_mut().insert("X-Auth-Token", value);
    }
    Ok(response)
}

pub(crate) fn session_body(session: &crate::accounts::Session, uri: &str) -> Value {
    json!({
        "@odata.id": uri,
        "@odata.type": "#Session.v1_7_0.Session",
        "Id": session.id,
        "Name": "User Session",
        "Description": "Manager User Session",
        "UserName": session.user,
        "ClientOriginIPAddress": session.origin,
        "CreatedTime": session.created,
        "SessionType": "Redfish",
    })
}
