//! Collections and resources the simulator builds at run time: sessions, log entries, tasks
//! and jobs. Each serving function returns `Ok(None)` when the path is not its own. The
//! accounts are served by [`crate::account_api`].

use std::time::Instant;

use axum::response::Response;
use serde_json::{json, Value};

use crate::fault::Fault;
use crate::login::session_body;
use crate::read::{collection_template, json_get, paged_get, parse_paging, serve_tree};
use crate::reply::ErrorReply;
use crate::service::{child_of, is_inactive_sessions_path, Principal, Req};
use crate::state::{BmcState, Inner};

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
