//! Collections and resources the simulator builds at run time: sessions, accounts, log
//! entries, tasks and jobs. Each serving function returns `Ok(None)` when the path is not its
//! own. The accounts built from the configuration also take a `Password` change by PATCH.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::response::Response;
use http::header::IF_MATCH;
use http::StatusCode;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::config::{Role, Secret};

use crate::fault::Fault;
use crate::login::{session_body, MAX_CREDENTIAL_BYTES};
use crate::read::{collection_template, json_get, paged_get, parse_paging, serve_tree};
use crate::reply::{msg, ErrorReply};
use crate::service::{child_of, is_inactive_sessions_path, require_role, Principal, Req};
use crate::state::{BmcState, Inner};
use crate::tree::{self, etag_of};

/// Serves the sessions collection and its members.
pub(crate) fn sessions(
    state: &BmcState,
    inner: &mut Inner,
    req: &Req,
    sessions_path: &str,
) -> Result<Option<Response>, ErrorReply> {
    let path = req.path.as_str();
    // Sessions.
    if path == sessions_path {
        let members: Vec<Value> = inner
            .sessions
            .iter()
            .map(|s| json!({ "@odata.id": format!("{sessions_path}/{}", s.id) }))
            .collect();
        let mut body = collection_template(
            inner,
            &state.sessions_path,
            sessions_path,
            "#SessionCollection.SessionCollection",
            "Session Collection",
        );
        body.insert("Members@odata.count".into(), json!(members.len()));
        body.insert("Members".into(), Value::Array(members));
        return paged_get(Value::Object(body), req, "GET, HEAD, POST").map(Some);
    }
    if let Some(id) = child_of(path, sessions_path) {
        let session = inner
            .sessions
            .get(id)
            .ok_or_else(|| ErrorReply::not_found(path))?;
        return Ok(Some(json_get(
            &session_body(session, path),
            "GET, HEAD, DELETE",
        )));
    }
    if is_inactive_sessions_path(state, path) {
        return Err(ErrorReply::not_found(path));
    }
    Ok(None)
}

/// Serves the accounts collection built from the configured accounts, when the data has none.
pub(crate) fn accounts(
    state: &BmcState,
    inner: &mut Inner,
    req: &Req,
) -> Result<Option<Response>, ErrorReply> {
    let path = req.path.as_str();
    // Accounts, when the data brings none.
    if let Some(accounts_path) = state.accounts_path.as_deref() {
        if path == accounts_path {
            let members: Vec<Value> = inner
                .accounts
                .iter()
                .enumerate()
                .map(|(i, _)| json!({ "@odata.id": format!("{accounts_path}/{}", i + 1) }))
                .collect();
            let body = json!({
                "@odata.id": accounts_path,
                "@odata.type": "#ManagerAccountCollection.ManagerAccountCollection",
                "Name": "Accounts Collection",
                "Members@odata.count": members.len(),
                "Members": members,
            });
            return paged_get(body, req, "GET, HEAD").map(Some);
        }
        if child_of(path, accounts_path).is_some() {
            let (index, id) =
                account_member(state, inner, path).ok_or_else(|| ErrorReply::not_found(path))?;
            let body = account_body(inner, path, index, &id);
            return Ok(Some(json_get(&body, ACCOUNT_ALLOW)));
        }
    }
    Ok(None)
}

/// Methods an account resource built from the configured accounts supports.
pub(crate) const ACCOUNT_ALLOW: &str = "GET, HEAD, PATCH";

/// Finds the configured account served at `path`: its index and its `Id`.
pub(crate) fn account_member(
    state: &BmcState,
    inner: &Inner,
    path: &str,
) -> Option<(usize, String)> {
    let accounts_path = state.accounts_path.as_deref()?;
    let id = child_of(path, accounts_path)?;
    let index = id.parse::<usize>().ok()?.checked_sub(1)?;
    inner.accounts.iter().nth(index)?;
    Some((index, id.to_owned()))
}

/// Builds the `ManagerAccount` body of the configured account at `index`.
fn account_body(inner: &Inner, path: &str, index: usize, id: &str) -> Value {
    let Some(account) = inner.accounts.iter().nth(index) else {
        return Value::Null;
    };
    let role = account.role.role_id();
    json!({
        "@odata.id": path,
        "@odata.type": "#ManagerAccount.v1_10_0.ManagerAccount",
        "Id": id,
        "Name": "User Account",
        "Description": "User Account",
        "UserName": account.name,
        "RoleId": role,
        "Enabled": true,
        "Locked": false,
        "Password": null,
        "AccountTypes": ["Redfish"],
        "Links": { "Role": { "@odata.id": format!("/redfish/v1/AccountService/Roles/{role}") } },
    })
}

/// The only property of [`account_body`] that PATCH changes.
#[derive(Deserialize)]
struct PasswordChange {
    #[serde(rename = "Password")]
    password: Option<Zeroizing<String>>,
}

/// Changes the password of the configured account at `path`: the account's own user or an
/// administrator may do so. The new password is logged as a change, never as a value.
pub(crate) fn patch_account(
    state: &BmcState,
    inner: &mut Inner,
    req: &Req,
    principal: &Principal,
) -> Result<Response, ErrorReply> {
    let path = req.path.as_str();
    let (index, id) =
        account_member(state, inner, path).ok_or_else(|| ErrorReply::not_found(path))?;
    let body = account_body(inner, path, index, &id);
    let own = body.get("UserName").and_then(Value::as_str) == Some(principal.user.as_str());
    if !own {
        require_role(state, principal, Role::Administrator)?;
    }
    if let Some(if_match) = req.headers.get(IF_MATCH).and_then(|v| v.to_str().ok()) {
        let current = etag_of(&tree::serialize(&body));
        let matches = if_match
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag == current);
        if !matches {
            return Err(ErrorReply::new(
                StatusCode::PRECONDITION_FAILED,
                msg::precondition_failed(),
            ));
        }
    }

    let request = Zeroizing::new(req.body.to_vec());
    let malformed = || ErrorReply::new(StatusCode::BAD_REQUEST, msg::malformed_json());
    let names = serde_json::from_slice::<BTreeMap<String, IgnoredAny>>(&request)
        .map_err(|_| malformed())?;
    if let Some(name) = names.keys().find(|name| *name != "Password") {
        let message = if body.get(name.as_str()).is_some() {
            msg::property_not_writable(name)
        } else {
            msg::property_unknown(name)
        };
        return Err(ErrorReply::new(StatusCode::BAD_REQUEST, message));
    }
    let change = serde_json::from_slice::<PasswordChange>(&request).map_err(|_| {
        ErrorReply::new(
            StatusCode::BAD_REQUEST,
            msg::property_value_format_error("[REDACTED]", "Password"),
        )
    })?;
    let Some(password) = change.password else {
        return Err(ErrorReply::new(
            StatusCode::BAD_REQUEST,
            msg::property_missing("Password"),
        ));
    };
    let usable = !password.is_empty()
        && password.len() <= MAX_CREDENTIAL_BYTES
        && !password.chars().any(char::is_control);
    if !usable {
        return Err(ErrorReply::new(
            StatusCode::BAD_REQUEST,
            msg::property_value_format_error("[REDACTED]", "Password"),
        ));
    }
    inner
        .accounts
        .set_password(index, Secret::new(password.as_str()));
    inner.log_change(&principal.user, format!("Password of {path} changed"));
    Ok(json_get(&body, ACCOUNT_ALLOW))
}

/// Serves the Entries collections of the log services and their entries.
pub(crate) fn logs(
    state: &BmcState,
    inner: &mut Inner,
    req: &Req,
    principal: &Principal,
    sessions_path: &str,
) -> Result<Option<Response>, ErrorReply> {
    let path = req.path.as_str();
    // Logs.
    if let Some(index) = inner.logs.iter().position(|s| s.entries_path == path) {
        if state.faults.is_enabled(Fault::LogShiftsWhilePaging) {
            let user = principal.user.clone();
            inner.log_login(&user, "192.0.2.10");
        }
        let paging = parse_paging(&req.query)?;
        let store = inner
            .logs
            .get(index)
            .ok_or_else(|| ErrorReply::not_found(path))?;
        let mut body = store.page(paging.skip, paging.top);
        crate::quirks::rewrite(path, &mut body, &state.faults.enabled(), sessions_path);
        return Ok(Some(json_get(&body, "GET, HEAD")));
    }
    if let Some(store) = inner
        .logs
        .iter()
        .find(|s| child_of(path, &s.entries_path).is_some())
    {
        if store.is_base_entry(path) && inner.tree.contains(path) {
            return serve_tree(state, inner, req).map(Some);
        }
        let mut entry = store
            .find(path)
            .cloned()
            .ok_or_else(|| ErrorReply::not_found(path))?;
        crate::quirks::rewrite(path, &mut entry, &state.faults.enabled(), sessions_path);
        return Ok(Some(json_get(&entry, "GET, HEAD")));
    }
    Ok(None)
}

/// Serves the task collection while tasks run, the tasks and their jobs.
pub(crate) fn tasks(inner: &mut Inner, req: &Req) -> Result<Option<Response>, ErrorReply> {
    let path = req.path.as_str();
    let now = Instant::now();
    // Tasks and their jobs.
    // The task collection of the data is served as it is until a task runs.
    let live_tasks = inner.tasks.iter().any(|t| t.task_body(now).is_some());
    if path == crate::tasks::TASKS_PATH && live_tasks && inner.tree.contains(path) {
        let mut body = collection_template(
            inner,
            path,
            path,
            "#TaskCollection.TaskCollection",
            "Task Collection",
        );
        let mut members: Vec<Value> = inner
            .tree
            .member_paths(path)
            .into_iter()
            .map(|p| json!({ "@odata.id": p }))
            .collect();
        for task in inner.tasks.iter().filter(|t| t.task_body(now).is_some()) {
            members.push(json!({ "@odata.id": task.task_path }));
        }
        body.insert("Members@odata.count".into(), json!(members.len()));
        body.insert("Members".into(), Value::Array(members));
        return paged_get(Value::Object(body), req, "GET, HEAD").map(Some);
    }
    if let Some(task) = inner.tasks.iter().find(|t| t.task_path == path) {
        let body = task
            .task_body(now)
            .ok_or_else(|| ErrorReply::not_found(path))?;
        return Ok(Some(json_get(&body, "GET, HEAD")));
    }
    if let Some(body) = inner
        .tasks
        .iter()
        .find(|t| t.job_path.as_deref() == Some(path))
        .and_then(|t| t.job_body(now))
    {
        return Ok(Some(json_get(&body, "GET, HEAD")));
    }
    Ok(None)
}
