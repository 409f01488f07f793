use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;

use super::*;
use crate::testing::{json, raw, redfish_error, service_root, with_header, Scripted};

const SESSIONS: &str = "/redfish/v1/SessionService/Sessions";
const SESSION: &str = "/redfish/v1/SessionService/Sessions/17";

fn creds() -> Credentials {
    Credentials {
        username: "root".into(),
        password: Secret::new("calvin-secret"),
    }
}

fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(10),
    }
}

fn session_created(token: &str, location: &str) -> Response {
    let response = json(
        StatusCode::CREATED,
        &json!({"@odata.id": location, "Id": "17"}),
    );
    let response = with_header(response, "x-auth-token", token);
    with_header(response, "location", location)
}

fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request
        .headers
        .get(name)
        .and_then(|value| value.to_str().ok())
}

async fn logged_in(transport: Scripted) -> Client<Scripted> {
    let mut client = Client::new(transport, quick_retry());
    client.connect().await.expect("connect");
    client
        .login(&creds(), AuthMode::Session)
        .await
        .expect("login");
    client
}

fn session_transport() -> Scripted {
    Scripted::new()
        .serve(SERVICE_ROOT, service_root(SESSIONS))
        .expect(Method::POST, SESSIONS, session_created("tok-1", SESSION))
}

#[tokio::test]
async fn connect_rejects_html_page() {
    let transport = Scripted::new().expect(
        Method::GET,
        SERVICE_ROOT,
        raw(
            StatusCode::OK,
            "text/html",
            "<html><head><title>Router login</title></head></html>",
        ),
    );
    let mut client = Client::new(transport, quick_retry());
    let error = client.connect().await.expect_err("html is not Redfish");
    assert!(matches!(error, Error::NotRedfish { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("an HTML page titled \"Router login\""),
        "{message}"
    );
    client.transport().assert_done();
}

#[tokio::test]
async fn connect_rejects_json_without_redfish_version() {
    let transport = Scripted::new().expect(
        Method::GET,
        SERVICE_ROOT,
        json(StatusCode::OK, &json!({"status": "ok"})),
    );
    let mut client = Client::new(transport, quick_retry());
    let error = client
        .connect()
        .await
        .expect_err("plain JSON is not Redfish");
    assert!(
        error.to_string().contains("JSON without RedfishVersion"),
        "{error}"
    );
}

#[tokio::test]
async fn connect_rejects_non_json() {
    let transport = Scripted::new().expect(
        Method::GET,
        SERVICE_ROOT,
        raw(StatusCode::OK, "text/plain", "hello"),
    );
    let mut client = Client::new(transport, quick_retry());
    let error = client.connect().await.expect_err("text is not Redfish");
    assert!(matches!(error, Error::NotRedfish { .. }), "{error:?}");
    assert!(error.to_string().contains("not JSON"), "{error}");
}

#[tokio::test]
async fn connect_sends_no_credentials() {
    let mut client = Client::new(
        Scripted::new().serve(SERVICE_ROOT, service_root(SESSIONS)),
        quick_retry(),
    );
    let root = client.connect().await.expect("connect");
    assert_eq!(root["RedfishVersion"], "1.13.1");
    let requests = client.transport().requests();
    assert_eq!(requests.len(), 1);
    assert!(header(&requests[0], "authorization").is_none());
    assert!(header(&requests[0], "x-auth-token").is_none());
    assert_eq!(header(&requests[0], "odata-version"), Some("4.0"));
    assert_eq!(header(&requests[0], "accept"), Some("application/json"));
}

#[tokio::test]
async fn session_login_and_logout_use_linked_uri() {
    // Case 13: the sessions collection comes from Links.Sessions, here the old location.
    let transport = Scripted::new()
        .serve(SERVICE_ROOT, service_root("/redfish/v1/Sessions"))
        .expect(
            Method::POST,
            "/redfish/v1/Sessions",
            session_created("tok-1", "/redfish/v1/Sessions/9"),
        )
        .expect(
            Method::GET,
            "/redfish/v1/Systems",
            json(StatusCode::OK, &json!({"Members": []})),
        )
        .expect(
            Method::DELETE,
            "/redfish/v1/Sessions/9",
            raw(StatusCode::NO_CONTENT, "text/plain", ""),
        );
    let mut client = logged_in(transport).await;
    client.get("/redfish/v1/Systems").await.expect("get");
    client.logout().await.expect("logout");

    let transport = client.transport();
    transport.assert_done();
    let post = &transport.requests_to(&Method::POST, "/redfish/v1/Sessions")[0];
    let body: Value = serde_json::from_slice(post.body.as_ref().expect("body")).expect("json");
    assert_eq!(
        body,
        json!({"UserName": "root", "Password": "calvin-secret"})
    );
    assert_eq!(header(post, "content-type"), Some("application/json"));
    assert!(header(post, "x-auth-token").is_none());

    let get = &transport.requests_to(&Method::GET, "/redfish/v1/Systems")[0];
    assert_eq!(header(get, "x-auth-token"), Some("tok-1"));
    assert!(header(get, "authorization").is_none());
    let delete = &transport.requests_to(&Method::DELETE, "/redfish/v1/Sessions/9")[0];
    assert_eq!(header(delete, "x-auth-token"), Some("tok-1"));
    assert!(!client.is_authenticated());
}

#[tokio::test]
async fn login_tries_fallback_sessions_paths() {
    let mut root = service_root(SESSIONS);
    root.as_object_mut().expect("object").remove("Links");
    let transport = Scripted::new()
        .serve(SERVICE_ROOT, root)
        .expect(
            Method::POST,
            SESSIONS,
            redfish_error(
                StatusCode::NOT_FOUND,
                "Base.1.0.ResourceMissingAtURI",
                "missing",
            ),
        )
        .expect(
            Method::POST,
            "/redfish/v1/Sessions",
            session_created("tok-2", "https://bmc.example/redfish/v1/Sessions/3"),
        )
        .expect(
            Method::DELETE,
            "/redfish/v1/Sessions/3",
            raw(StatusCode::OK, "text/plain", ""),
        );
    let mut client = logged_in(transport).await;
    client.logout().await.expect("logout");
    client.transport().assert_done();
}

#[tokio::test]
async fn login_without_session_service_uses_basic() {
    let root = json!({"@odata.id": "/redfish/v1", "RedfishVersion": "1.5.0", "Systems": {"@odata.id": "/redfish/v1/Systems"}});
    let transport = Scripted::new().serve(SERVICE_ROOT, root).expect(
        Method::GET,
        "/redfish/v1/Systems",
        json(StatusCode::OK, &json!({"Members": []})),
    );
    let mut client = logged_in(transport).await;
    let requests = client
        .transport()
        .requests_to(&Method::GET, "/redfish/v1/Systems");
    assert_eq!(
        header(&requests[0], "authorization"),
        Some("Basic cm9vdDpjYWx2aW4tc2VjcmV0")
    );
    client
        .logout()
        .await
        .expect("basic logout has nothing to delete");
    client.transport().assert_done();
}

#[tokio::test]
async fn session_login_works_when_basic_is_disabled() {
    // Case 6: the BMC rejects every Basic request; the default session login never sends one.
    let transport = session_transport()
        .expect(
            Method::GET,
            "/redfish/v1/Systems",
            json(StatusCode::OK, &json!({"Members": []})),
        )
        .expect(
            Method::DELETE,
            SESSION,
            raw(StatusCode::NO_CONTENT, "text/plain", ""),
        );
    let mut client = logged_in(transport).await;
    client
        .get("/redfish/v1/Systems")
        .await
        .expect("get with token");
    client.logout().await.expect("logout");
    let transport = client.transport();
    transport.assert_done();
    assert!(transport
        .requests()
        .iter()
        .all(|request| header(request, "authorization").is_none()));
}

#[tokio::test]
async fn basic_login_rejection_suggests_sessions() {
    let transport = Scripted::new()
        .serve(SERVICE_ROOT, service_root(SESSIONS))
        .expect(
            Method::GET,
            "/redfish/v1/Systems",
            redfish_error(
                StatusCode::UNAUTHORIZED,
                "Base.1.12.AccessDenied",
                "Basic authentication is disabled.",
            ),
        );
    let mut client = Client::new(transport, quick_retry());
    let error = client
        .login(&creds(), AuthMode::Basic)
        .await
        .expect_err("basic disabled");
    assert!(matches!(error, Error::Unauthorized { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("Basic authentication is disabled"),
        "{error}"
    );
    assert!(!client.is_authenticated());
}

#[tokio::test]
async fn session_limit_is_reported_and_not_retried() {
    // Case 5.
    let transport = Scripted::new()
        .serve(SERVICE_ROOT, service_root(SESSIONS))
        .expect(
            Method::POST,
            SESSIONS,
            redfish_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "IDRAC.2.8.RAC0218",
                "The maximum number of user sessions is reached.",
            ),
        );
    let mut client = Client::new(transport, quick_retry());
    let error = client
        .login(&creds(), AuthMode::Session)
        .await
        .expect_err("limit");
    assert!(matches!(error, Error::SessionLimit { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("delete them on the BMC"), "{message}");
    assert!(!message.contains("calvin"), "{message}");
    assert_eq!(
        client
            .transport()
            .requests_to(&Method::POST, SESSIONS)
            .len(),
        1
    );
}

#[tokio::test]
async fn session_limit_recognised_by_message_alone() {
    let transport = Scripted::new()
        .serve(SERVICE_ROOT, service_root(SESSIONS))
        .expect(
            Method::POST,
            SESSIONS,
            redfish_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Vendor.1.0.Busy",
                "Maximum number of user sessions exceeded",
            ),
        );
    let mut client = Client::new(transport, quick_retry());
    let error = client
        .login(&creds(), AuthMode::Session)
        .await
        .expect_err("limit");
    assert!(matches!(error, Error::SessionLimit { .. }), "{error:?}");
}

#[tokio::test]
async fn unauthorized_is_not_called_wrong_password() {
    // Case 7: a 401 may come from the account's role.
    let transport = Scripted::new()
        .serve(SERVICE_ROOT, service_root(SESSIONS))
        .expect(
            Method::POST,
            SESSIONS,
            redfish_error(
                StatusCode::UNAUTHORIZED,
                "Base.1.12.InsufficientPrivilege",
                "Insufficient privilege.",
            ),
        );
    let mut client = Client::new(transport, quick_retry());
    let error = client
        .login(&creds(), AuthMode::Session)
        .await
        .expect_err("401");
    let message = error.to_string();
    assert!(
        message.contains("the BMC rejected the credentials or the account's role"),
        "{message}"
    );
    assert!(
        !message.to_lowercase().contains("wrong password"),
        "{message}"
    );
}

#[tokio::test]
async fn login_without_token_is_a_session_error() {
    let transport = Scripted::new()
        .serve(SERVICE_ROOT, service_root(SESSIONS))
        .expect(
            Method::POST,
            SESSIONS,
            json(StatusCode::CREATED, &json!({})),
        );
    let mut client = Client::new(transport, quick_retry());
    let error = client
        .login(&creds(), AuthMode::Session)
        .await
        .expect_err("no token");
    assert!(error.to_string().contains("no X-Auth-Token"), "{error}");
}

#[tokio::test]
async fn second_login_deletes_first_session() {
    let transport = session_transport()
        .expect(
            Method::DELETE,
            SESSION,
            raw(StatusCode::NO_CONTENT, "text/plain", ""),
        )
        .expect(
            Method::POST,
            SESSIONS,
            session_created("tok-2", "/redfish/v1/SessionService/Sessions/18"),
        );
    let mut client = logged_in(transport).await;
    client
        .login(&creds(), AuthMode::Session)
        .await
        .expect("second login");
    client.transport().assert_done();
    let delete = &client.transport().requests_to(&Method::DELETE, SESSION)[0];
    assert_eq!(header(delete, "x-auth-token"), Some("tok-1"));
}

#[tokio::test]
async fn logout_without_session_uri_is_reported() {
    let created = with_header(
        json(StatusCode::CREATED, &json!({})),
        "x-auth-token",
        "tok-3",
    );
    let transport = Scripted::new()
        .serve(SERVICE_ROOT, service_root(SESSIONS))
        .expect(Method::POST, SESSIONS, created);
    let mut client = logged_in(transport).await;
    let error = client.logout().await.expect_err("no session URI");
    assert!(
        matches!(error, Error::SessionNotDeleted { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("idle time-out"), "{error}");
}

#[tokio::test]
async fn logout_failure_is_reported_and_forgets_token() {
    let transport = session_transport().expect(
        Method::DELETE,
        SESSION,
        redfish_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Base.1.0.InternalError",
            "oops",
        ),
    );
    let mut client = logged_in(transport).await;
    let error = client.logout().await.expect_err("delete failed");
    assert!(error.to_string().contains(SESSION), "{error}");
    assert!(!client.is_authenticated());
    assert_eq!(
        client
            .transport()
            .requests_to(&Method::DELETE, SESSION)
            .len(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn get_retries_500_honouring_retry_after_seconds() {
    // Case 12: iDRAC returns SYS518 while its data sources reload.
    let busy = redfish_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "IDRAC.2.8.SYS518",
        "iDRAC is currently unable to display any information because data sources are unavailable.",
    );
    let transport = session_transport()
        .expect(
            Method::GET,
            "/redfish/v1/Chassis/1/Thermal",
            with_header(busy, "retry-after", "3"),
        )
        .expect(
            Method::GET,
            "/redfish/v1/Chassis/1/Thermal",
            json(StatusCode::OK, &json!({"Fans": []})),
        );
    let client = logged_in(transport).await;
    let started = tokio::time::Instant::now();
    let resource = client
        .get("/redfish/v1/Chassis/1/Thermal")
        .await
        .expect("retried");
    assert_eq!(resource.body, json!({"Fans": []}));
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    client.transport().assert_done();
}

#[tokio::test(start_paused = true)]
async fn get_retries_503_honouring_retry_after_date() {
    let date = (chrono::Utc::now() + chrono::Duration::seconds(60)).to_rfc2822();
    let unavailable = redfish_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "Base.1.0.ServiceTemporarilyUnavailable",
        "busy",
    );
    let transport = session_transport()
        .expect(
            Method::GET,
            "/redfish/v1/Chassis/1/Power",
            with_header(unavailable, "retry-after", &date),
        )
        .expect(
            Method::GET,
            "/redfish/v1/Chassis/1/Power",
            json(StatusCode::OK, &json!({})),
        );
    let client = logged_in(transport).await;
    let started = tokio::time::Instant::now();
    client
        .get("/redfish/v1/Chassis/1/Power")
        .await
        .expect("retried");
    // A 60 s Retry-After is capped at the policy's 10 s maximum delay.
    assert_eq!(started.elapsed(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn retries_exhausted_names_attempt_count() {
    let mut transport = session_transport();
    for _ in 0..4 {
        transport = transport.expect(
            Method::GET,
            "/redfish/v1/Chassis/1/Power",
            redfish_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Base.1.0.ServiceTemporarilyUnavailable",
                "busy",
            ),
        );
    }
    let client = logged_in(transport).await;
    let started = tokio::time::Instant::now();
    let error = client
        .get("/redfish/v1/Chassis/1/Power")
        .await
        .expect_err("always 503");
    assert!(
        matches!(error, Error::RetriesExhausted { attempts: 4, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("after 4 attempts"), "{error}");
    // Exponential back-off: 1 s, 2 s, 4 s.
    assert_eq!(started.elapsed(), Duration::from_secs(7));
    client.transport().assert_done();
}

#[tokio::test(start_paused = true)]
async fn read_timeout_on_get_is_retried() {
    let transport = session_transport()
        .expect_error(Method::GET, "/redfish/v1/Chassis/1/Thermal", || {
            Error::Timeout {
                what: "reading GET /redfish/v1/Chassis/1/Thermal".into(),
            }
        })
        .expect(
            Method::GET,
            "/redfish/v1/Chassis/1/Thermal",
            json(StatusCode::OK, &json!({"Id": "Thermal"})),
        );
    let client = logged_in(transport).await;
    let resource = client
        .get("/redfish/v1/Chassis/1/Thermal")
        .await
        .expect("retried");
    assert_eq!(resource.body["Id"], "Thermal");
}

#[tokio::test]
async fn not_found_is_not_retried() {
    let transport = session_transport().expect(
        Method::GET,
        "/redfish/v1/Missing",
        redfish_error(
            StatusCode::NOT_FOUND,
            "Base.1.0.ResourceMissingAtURI",
            "The resource at the URI was not found.",
        ),
    );
    let client = logged_in(transport).await;
    let error = client.get("/redfish/v1/Missing").await.expect_err("404");
    assert!(
        matches!(&error, Error::Status { status, message_id: Some(id), .. } if *status == StatusCode::NOT_FOUND && id.contains("ResourceMissingAtURI")),
        "{error:?}"
    );
    assert_eq!(
        client
            .transport()
            .requests_to(&Method::GET, "/redfish/v1/Missing")
            .len(),
        1
    );
}

#[tokio::test]
async fn invalid_json_is_reported_with_path() {
    let transport = session_transport().expect(
        Method::GET,
        "/redfish/v1/Systems/1",
        raw(StatusCode::OK, "application/json", "{\"Id\": \"1\", "),
    );
    let client = logged_in(transport).await;
    let error = client
        .get("/redfish/v1/Systems/1")
        .await
        .expect_err("invalid");
    assert!(matches!(error, Error::InvalidJson { .. }), "{error:?}");
    assert!(
        error.to_string().contains("/redfish/v1/Systems/1"),
        "{error}"
    );
}

#[tokio::test]
async fn too_large_error_from_transport_is_returned() {
    let transport = session_transport().expect_error(Method::GET, "/redfish/v1/Systems/1", || {
        Error::TooLarge { limit: 1024 }
    });
    let client = logged_in(transport).await;
    let error = client
        .get("/redfish/v1/Systems/1")
        .await
        .expect_err("too large");
    assert!(
        matches!(error, Error::TooLarge { limit: 1024 }),
        "{error:?}"
    );
    assert_eq!(
        client
            .transport()
            .requests_to(&Method::GET, "/redfish/v1/Systems/1")
            .len(),
        1
    );
}

#[tokio::test]
async fn numeric_etag_is_read_as_text() {
    // Case 3.
    let transport = session_transport().expect(
        Method::GET,
        "/redfish/v1/AccountService",
        json(
            StatusCode::OK,
            &json!({"@odata.etag": 87422082150_u64, "Id": "AccountService"}),
        ),
    );
    let client = logged_in(transport).await;
    let resource = client.get("/redfish/v1/AccountService").await.expect("get");
    assert_eq!(resource.etag.as_deref(), Some("87422082150"));
}

#[tokio::test]
async fn etag_header_wins_over_body() {
    let response = with_header(
        json(StatusCode::OK, &json!({"@odata.etag": "W/\"body\""})),
        "etag",
        "\"header\"",
    );
    let transport = session_transport().expect(Method::GET, "/redfish/v1/Systems/1", response);
    let client = logged_in(transport).await;
    let resource = client.get("/redfish/v1/Systems/1").await.expect("get");
    assert_eq!(resource.etag.as_deref(), Some("\"header\""));
}

#[tokio::test]
async fn members_follow_next_link_and_drop_duplicates() {
    let transport = session_transport()
        .serve("/redfish/v1/Systems", json!({
            "Members": [{"@odata.id": "/redfish/v1/Systems/1"}, {"@odata.id": "/redfish/v1/Systems/2"}],
            "Members@odata.count": 3,
            "Members@odata.nextLink": "/redfish/v1/Systems?$skip=2"
        }))
        .serve("/redfish/v1/Systems?$skip=2", json!({
            "Members": [{"@odata.id": "/redfish/v1/Systems/2"}, {"@odata.id": "/redfish/v1/Systems/3"}],
            "Members@odata.count": 3
        }))
        .serve("/redfish/v1/Systems/1", json!({"Id": "1"}))
        .serve("/redfish/v1/Systems/2", json!({"Id": "2"}))
        .serve("/redfish/v1/Systems/3", json!({"Id": "3"}));
    let client = logged_in(transport).await;
    let members = client
        .members("/redfish/v1/Systems")
        .await
        .expect("members");
    let ids: Vec<&str> = members
        .iter()
        .map(|m| m.body["Id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ids, ["1", "2", "3"]);
    client.transport().assert_done();
}

#[tokio::test]
async fn members_stop_on_looping_next_link() {
    let transport = session_transport()
        .serve(
            "/redfish/v1/Systems",
            json!({
                "Members": [{"@odata.id": "/redfish/v1/Systems/1"}],
                "Members@odata.nextLink": "/redfish/v1/Systems?page=2"
            }),
        )
        .serve(
            "/redfish/v1/Systems?page=2",
            json!({
                "Members": [{"@odata.id": "/redfish/v1/Systems/1"}],
                "Members@odata.nextLink": "/redfish/v1/Systems"
            }),
        )
        .serve("/redfish/v1/Systems/1", json!({"Id": "1"}));
    let client = logged_in(transport).await;
    let members = client
        .members("/redfish/v1/Systems")
        .await
        .expect("members");
    assert_eq!(members.len(), 1);
    assert_eq!(
        client
            .transport()
            .requests_to(&Method::GET, "/redfish/v1/Systems")
            .len(),
        1
    );
}

#[tokio::test]
async fn members_use_skip_when_count_exceeds_page() {
    let transport = session_transport()
        .serve(
            "/redfish/v1/Chassis",
            json!({
                "Members": [{"@odata.id": "/redfish/v1/Chassis/1"}],
                "Members@odata.count": 2
            }),
        )
        .serve(
            "/redfish/v1/Chassis?$skip=1",
            json!({
                "Members": [{"@odata.id": "/redfish/v1/Chassis/2"}],
                "Members@odata.count": 2
            }),
        )
        .serve("/redfish/v1/Chassis/1", json!({"Id": "1"}))
        .serve("/redfish/v1/Chassis/2", json!({"Id": "2"}));
    let client = logged_in(transport).await;
    let members = client
        .members("/redfish/v1/Chassis")
        .await
        .expect("members");
    assert_eq!(members.len(), 2);
    client.transport().assert_done();
}

#[tokio::test]
async fn members_use_expanded_entries_without_reading_them() {
    let transport = session_transport().serve("/redfish/v1/Systems/1/Memory", json!({
        "Members": [{"@odata.id": "/redfish/v1/Systems/1/Memory/A1", "Id": "A1", "CapacityMiB": 32768}]
    }));
    let client = logged_in(transport).await;
    let members = client
        .members("/redfish/v1/Systems/1/Memory")
        .await
        .expect("members");
    assert_eq!(members[0].body["CapacityMiB"], 32768);
    assert!(client
        .transport()
        .requests_to(&Method::GET, "/redfish/v1/Systems/1/Memory/A1")
        .is_empty());
}

#[test]
fn request_path_drops_host_and_fragment() {
    assert_eq!(
        request_path("https://evil.example/redfish/v1/Systems?$skip=5").unwrap(),
        "/redfish/v1/Systems?$skip=5"
    );
    assert_eq!(
        request_path("/redfish/v1/Chassis/1/Power#/PowerSupplies/0").unwrap(),
        "/redfish/v1/Chassis/1/Power"
    );
    assert!(request_path("redfish/v1").is_err());
    assert!(request_path("//evil.example/x").is_err());
}

#[test]
fn with_skip_replaces_existing_skip() {
    assert_eq!(
        with_skip("/a?$top=50&$skip=50", 100),
        "/a?$top=50&$skip=100"
    );
    assert_eq!(with_skip("/a", 3), "/a?$skip=3");
}

#[test]
fn retry_delay_doubles_and_is_capped() {
    let policy = quick_retry();
    assert_eq!(retry_delay(&policy, 1, None), Duration::from_secs(1));
    assert_eq!(retry_delay(&policy, 3, None), Duration::from_secs(4));
    assert_eq!(retry_delay(&policy, 10, None), Duration::from_secs(10));
    assert_eq!(
        retry_delay(&policy, 1, Some(Duration::from_secs(600))),
        Duration::from_secs(10)
    );
}
