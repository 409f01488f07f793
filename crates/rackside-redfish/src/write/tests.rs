//! Unit tests of PATCH, actions and task following against a scripted transport.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;

use super::*;
use crate::testing::{json, redfish_error, with_header, Scripted};
use crate::{Indicator, ResetType, RetryPolicy};

const SYSTEM: &str = "/redfish/v1/Systems/1";

fn client(transport: Scripted) -> Client<Scripted> {
    let retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(5),
    };
    Client::new(transport, retry).with_poll_interval(Duration::from_secs(1))
}

fn system_with_tag(tag: &str) -> Response {
    with_header(
        json(
            StatusCode::OK,
            &json!({"@odata.id": SYSTEM, "AssetTag": ""}),
        ),
        "etag",
        tag,
    )
}

fn if_match_sent(transport: &Scripted) -> Vec<Option<String>> {
    transport
        .requests_to(&Method::PATCH, SYSTEM)
        .iter()
        .map(|request| {
            request
                .headers
                .get("if-match")
                .map(|value| value.to_str().unwrap().to_owned())
        })
        .collect()
}

#[test]
fn candidates_put_strong_spelling_first() {
    let tags = EntityTags {
        header: Some("W/\"abc\"".into()),
        body: Some("W/\"def\"".into()),
    };
    assert_eq!(
        tags.if_match_candidates(),
        ["\"abc\"", "W/\"abc\"", "\"def\"", "W/\"def\""]
    );
}

#[test]
fn candidates_quote_numeric_tag() {
    let tags = EntityTags {
        header: None,
        body: Some("87422082150".into()),
    };
    assert_eq!(
        tags.if_match_candidates(),
        ["\"87422082150\"", "87422082150", "W/\"87422082150\""]
    );
}

#[test]
fn candidates_are_bounded() {
    let tags = EntityTags {
        header: Some("\"a\"".into()),
        body: Some("17".into()),
    };
    let candidates = tags.if_match_candidates();
    assert_eq!(candidates.len(), MAX_TAG_ATTEMPTS);
    assert_eq!(candidates[0], "\"a\"");
    assert_eq!(candidates[2], "\"17\"");
}

#[test]
fn task_id_comes_from_uri() {
    assert_eq!(
        task_id_from_uri("/redfish/v1/TaskService/Tasks/JID_123"),
        "JID_123"
    );
    assert_eq!(
        task_id_from_uri("/redfish/v1/TaskService/Tasks/7/Monitor"),
        "7"
    );
}

#[tokio::test]
async fn patch_without_tag_retries_428_with_star() {
    let transport = Scripted::new()
        .serve(SYSTEM, json!({"@odata.id": SYSTEM, "AssetTag": ""}))
        .expect(
            Method::PATCH,
            SYSTEM,
            redfish_error(
                StatusCode::PRECONDITION_REQUIRED,
                "Base.1.12.PreconditionRequired",
                "needs If-Match",
            ),
        )
        .expect(
            Method::PATCH,
            SYSTEM,
            json(StatusCode::NO_CONTENT, &json!(null)),
        );
    let client = client(transport);
    let outcome = client
        .patch(SYSTEM, &json!({"AssetTag": "a"}))
        .await
        .unwrap();

    assert_eq!(
        if_match_sent(client.transport()),
        [None, Some("*".to_owned())]
    );
    assert!(
        outcome.notes.iter().any(|note| note.contains("If-Match *")),
        "{:?}",
        outcome.notes
    );
    client.transport().assert_done();
}

#[tokio::test]
async fn patch_lists_every_rejected_form() {
    let failed = || {
        redfish_error(
            StatusCode::PRECONDITION_FAILED,
            "Base.1.12.PreconditionFailed",
            "wrong tag",
        )
    };
    let required = redfish_error(
        StatusCode::PRECONDITION_REQUIRED,
        "Base.1.12.PreconditionRequired",
        "needs If-Match",
    );
    let transport = Scripted::new()
        .expect(Method::GET, SYSTEM, system_with_tag("W/\"x\""))
        .expect(Method::PATCH, SYSTEM, failed())
        .expect(Method::PATCH, SYSTEM, failed())
        .expect(Method::PATCH, SYSTEM, required)
        .expect(Method::PATCH, SYSTEM, failed());
    let client = client(transport);
    let error = client
        .patch(SYSTEM, &json!({"AssetTag": "a"}))
        .await
        .unwrap_err();

    assert_eq!(
        if_match_sent(client.transport()),
        [
            Some("\"x\"".to_owned()),
            Some("W/\"x\"".to_owned()),
            None,
            Some("*".to_owned())
        ]
    );
    let Error::PreconditionFailed { tried, .. } = &error else {
        panic!("expected PreconditionFailed, got {error:?}");
    };
    assert!(tried.contains("If-Match W/\"x\" got 412"), "{tried}");
    assert!(tried.contains("no If-Match got 428"), "{tried}");
    client.transport().assert_done();
}

#[tokio::test(start_paused = true)]
async fn patch_with_tag_retries_503() {
    let transport = Scripted::new()
        .expect(Method::GET, SYSTEM, system_with_tag("\"x\""))
        .expect(
            Method::PATCH,
            SYSTEM,
            redfish_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "SYS518",
                "data sources are unavailable",
            ),
        )
        .expect(
            Method::PATCH,
            SYSTEM,
            json(StatusCode::OK, &json!({"AssetTag": "a"})),
        );
    let client = client(transport);
    let outcome = client
        .patch(SYSTEM, &json!({"AssetTag": "a"}))
        .await
        .unwrap();

    // The retry of a transient failure is not a new form, so one attempt is reported.
    assert_eq!(outcome.attempts.len(), 1);
    assert_eq!(outcome.body, Some(json!({"AssetTag": "a"})));
    assert_eq!(if_match_sent(client.transport()).len(), 2);
    client.transport().assert_done();
}

#[tokio::test]
async fn action_is_not_retried_on_503() {
    let target = "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate";
    let transport = Scripted::new().expect(
        Method::POST,
        target,
        redfish_error(StatusCode::SERVICE_UNAVAILABLE, "SYS518", "busy"),
    );
    let client = client(transport);
    let error = client
        .action(target, &json!({"ImageURI": "https://x.example/fw"}))
        .await
        .unwrap_err();

    assert!(matches!(error, Error::Status { .. }), "{error:?}");
    assert_eq!(
        client.transport().requests_to(&Method::POST, target).len(),
        1
    );
    client.transport().assert_done();
}

#[tokio::test(start_paused = true)]
async fn vanished_task_without_job_is_lost() {
    let task = "/redfish/v1/TaskService/Tasks/JID_9";
    let running = json(
        StatusCode::OK,
        &json!({"Id": "JID_9", "TaskState": "Running"}),
    );
    let missing = || json(StatusCode::NOT_FOUND, &json!({}));
    let transport = Scripted::new()
        .expect(Method::GET, task, running)
        .expect(Method::GET, task, missing())
        .serve(
            "/redfish/v1/Managers",
            json!({"Members": [{"@odata.id": "/redfish/v1/Managers/1"}]}),
        )
        .expect(Method::GET, "/redfish/v1/Managers/1/Jobs/JID_9", missing())
        .expect(
            Method::GET,
            "/redfish/v1/Managers/1/Oem/Dell/Jobs/JID_9",
            missing(),
        );
    let client = client(transport);
    let error = client
        .follow_task(task, Duration::from_secs(60))
        .await
        .unwrap_err();

    let Error::TaskLost { detail, .. } = &error else {
        panic!("expected TaskLost, got {error:?}");
    };
    assert!(detail.contains("after it was seen running"), "{detail}");
    client.transport().assert_done();
}

#[tokio::test(start_paused = true)]
async fn failed_task_is_an_error() {
    let task = "/redfish/v1/TaskService/Tasks/4";
    let transport = Scripted::new().expect(
        Method::GET,
        task,
        json(
            StatusCode::OK,
            &json!({"Id": "4", "TaskState": "Exception",
                "Messages": [{"Message": "Image file is corrupt."}]}),
        ),
    );
    let client = client(transport);
    let error = client
        .follow_task(task, Duration::from_secs(60))
        .await
        .unwrap_err();

    let Error::TaskFailed { state, message, .. } = &error else {
        panic!("expected TaskFailed, got {error:?}");
    };
    assert_eq!(state, "Exception");
    assert_eq!(message, "Image file is corrupt.");
}

#[tokio::test(start_paused = true)]
async fn task_monitor_202_then_result() {
    let monitor = "/redfish/v1/TaskService/Tasks/4/Monitor";
    let transport = Scripted::new()
        .expect(Method::GET, monitor, json(StatusCode::ACCEPTED, &json!({})))
        .expect(
            Method::GET,
            monitor,
            json(StatusCode::OK, &json!({"Result": "ok"})),
        );
    let client = client(transport);
    let outcome = client
        .follow_task(monitor, Duration::from_secs(60))
        .await
        .unwrap();

    assert_eq!(outcome.state, "Completed");
    assert_eq!(outcome.reported_by, monitor);
    client.transport().assert_done();
}

#[tokio::test]
async fn blink_needs_indicator_led() {
    let drive = "/redfish/v1/Chassis/1/Drives/0";
    let transport = Scripted::new().serve(
        drive,
        json!({"@odata.id": drive, "LocationIndicatorActive": false}),
    );
    let client = client(transport);
    let error = client
        .set_indicator(drive, Indicator::Blink)
        .await
        .unwrap_err();

    assert!(matches!(error, Error::Unsupported { .. }), "{error:?}");
    assert!(error.to_string().contains("blinking"), "{error}");
    assert!(client
        .transport()
        .requests_to(&Method::PATCH, drive)
        .is_empty());
}

#[tokio::test]
async fn null_boolean_falls_back_to_led() {
    // iDRAC sends `"LocationIndicatorActive": null` beside a working `IndicatorLED`.
    let transport = Scripted::new()
        .serve(
            SYSTEM,
            json!({"@odata.id": SYSTEM, "LocationIndicatorActive": null, "IndicatorLED": "Off"}),
        )
        .expect(
            Method::PATCH,
            SYSTEM,
            json(StatusCode::NO_CONTENT, &json!(null)),
        );
    let client = client(transport);
    client.set_indicator(SYSTEM, Indicator::On).await.unwrap();

    let patch = client.transport().requests_to(&Method::PATCH, SYSTEM);
    let body: serde_json::Value = serde_json::from_slice(patch[0].body.as_ref().unwrap()).unwrap();
    assert_eq!(body, json!({"IndicatorLED": "Lit"}));
    client.transport().assert_done();
}

#[tokio::test]
async fn reset_types_come_from_action_info() {
    let info = "/redfish/v1/Systems/1/ResetActionInfo";
    let transport = Scripted::new()
        .serve(
            SYSTEM,
            json!({"@odata.id": SYSTEM, "Actions": {"#ComputerSystem.Reset": {
                "target": "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
                "@Redfish.ActionInfo": info}}}),
        )
        .serve(
            info,
            json!({"Parameters": [{"Name": "ResetType",
                "AllowableValues": ["On", "ForceOff", "OemReset"]}]}),
        );
    let client = client(transport);
    let offered = client.reset_types(SYSTEM).await.unwrap();
    assert_eq!(offered, Some(vec![ResetType::On, ResetType::ForceOff]));

    let error = client
        .reset(SYSTEM, ResetType::ForceRestart)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("On, ForceOff, OemReset"),
        "{error}"
    );
    client.transport().assert_done();
}

#[tokio::test]
async fn numeric_body_tag_is_sent_bare() {
    let failed = redfish_error(
        StatusCode::PRECONDITION_FAILED,
        "Base.1.12.PreconditionFailed",
        "wrong tag",
    );
    let transport = Scripted::new()
        .serve(
            SYSTEM,
            json!({"@odata.id": SYSTEM, "@odata.etag": 87422082150_u64, "AssetTag": ""}),
        )
        .expect(Method::PATCH, SYSTEM, failed)
        .expect(
            Method::PATCH,
            SYSTEM,
            json(StatusCode::NO_CONTENT, &json!(null)),
        );
    let client = client(transport);
    let outcome = client
        .patch(SYSTEM, &json!({"AssetTag": "a"}))
        .await
        .unwrap();

    assert_eq!(
        if_match_sent(client.transport()),
        [
            Some("\"87422082150\"".to_owned()),
            Some("87422082150".to_owned())
        ]
    );
    assert_eq!(outcome.attempts.len(), 2);
    assert!(outcome.notes[0].contains("got 412"), "{:?}", outcome.notes);
    client.transport().assert_done();
}

#[tokio::test]
async fn nmi_reports_current_state() {
    let target = "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset";
    let transport = Scripted::new()
        .serve(
            SYSTEM,
            json!({"@odata.id": SYSTEM, "PowerState": "On", "Actions": {"#ComputerSystem.Reset": {
                "target": target, "ResetType@Redfish.AllowableValues": ["On", "Nmi"]}}}),
        )
        .expect(
            Method::POST,
            target,
            json(StatusCode::NO_CONTENT, &json!(null)),
        );
    let client = client(transport);
    let wait = client
        .reset_and_wait(SYSTEM, ResetType::Nmi, Duration::from_secs(5))
        .await
        .unwrap();

    assert_eq!(wait.state, crate::PowerState::On);
    assert_eq!(wait.seen.len(), 1);
    client.transport().assert_done();
}
