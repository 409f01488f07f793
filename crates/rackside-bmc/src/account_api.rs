//! The accounts collection that the simulator serves from its own account list (when the data
//! brings none): GET of the collection and its members, POST to create an account, PATCH of
//! `UserName`, `Password`, `RoleId`, `Enabled` and `Locked`, and DELETE.
//!
//! Administrators manage every account; any user may change their own password. New passwords
//! follow `MinPasswordLength` and `MaxPasswordLength` of the account service. Each change goes
//! into the lifecycle log with the user and the client address, never with a password.
//!
//! NOTE: failed logins never lock an account here. `Locked` reads `false`, and a PATCH may
//! only set it to `false`, which is the one value the Redfish schema lets clients write.

use axum::response::Response;
use http::header::IF_MATCH;
use http::StatusCode;
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use crate::accounts::Slot;
use crate::config::{Role, Secret, UserAccount};
use crate::login::MAX_CREDENTIAL_BYTES;
use crate::logs::clip;
use crate::patch::schema_of;
use crate::read::paged_get;
use crate::reply::{self, msg, ErrorReply, Message};
use crate::service::{child_of, require_role, Principal, Req};
use crate::state::{BmcState, Inner};
use crate::tree::{self, etag_of};

/// Resolution of a change that would leave no enabled administrator.
const LAST_ADMIN_RESOLUTION: &str = "Cannot disable the last enabled administrator or remove its \
    Administrator role: enable another administrator account first.";

/// Methods the accounts collection supports.
pub(crate) const COLLECTION_ALLOW: &str = "GET, HEAD, POST";

/// Methods an account resource supports.
pub(crate) const ACCOUNT_ALLOW: &str = "GET, HEAD, PATCH, DELETE";

/// Maximum length of a user name in characters, as on iDRAC.
const MAX_USER_NAME_CHARS: usize = 16;

/// Password lengths used when the account service does not state its own.
const DEFAULT_PASSWORD_LENGTHS: (usize, usize) = (8, 64);

/// Serves the accounts collection and its members; `Ok(None)` for other paths.
pub(crate) fn get(
    state: &BmcState,
    inner: &mut Inner,
    req: &Req,
) -> Result<Option<Response>, ErrorReply> {
    let Some(accounts_path) = state.accounts_path.as_deref() else {
        return Ok(None);
    };
    let path = req.path.as_str();
    if path == accounts_path {
        let members: Vec<Value> = inner
            .accounts
            .iter()
            .map(|slot| json!({ "@odata.id": format!("{accounts_path}/{}", slot.id) }))
            .collect();
        let body = json!({
            "@odata.id": accounts_path,
            "@odata.type": "#ManagerAccountCollection.ManagerAccountCollection",
            "Name": "Accounts Collection",
            "Members@odata.count": members.len(),
            "Members": members,
        });
        return paged_get(body, req, COLLECTION_ALLOW).map(Some);
    }
    if child_of(path, accounts_path).is_some() {
        let slot = member(state, inner, path).ok_or_else(|| ErrorReply::not_found(path))?;
        return Ok(Some(account_response(
            StatusCode::OK,
            account_body(slot, path),
        )));
    }
    Ok(None)
}

/// Finds the account served at `path`.
pub(crate) fn member<'a>(state: &BmcState, inner: &'a Inner, path: &str) -> Option<&'a Slot> {
    let accounts_path = state.accounts_path.as_deref()?;
    let id = child_of(path, accounts_path)?.parse::<u32>().ok()?;
    inner.accounts.get(id)
}

/// Checks whether `path` is the served accounts collection.
pub(crate) fn is_collection(state: &BmcState, path: &str) -> bool {
    state.accounts_path.as_deref() == Some(path)
}

/// Builds the `ManagerAccount` body of an account.
fn account_body(slot: &Slot, path: &str) -> Value {
    let role = slot.account.role.role_id();
    json!({
        "@odata.id": path,
        "@odata.type": "#ManagerAccount.v1_10_0.ManagerAccount",
        "Id": slot.id.to_string(),
        "Name": "User Account",
        "Description": "User Account",
        "UserName": slot.account.name,
        "RoleId": role,
        "Enabled": slot.enabled,
        "Locked": false,
        "PasswordChangeRequired": false,
        "Password": null,
        "AccountTypes": ["Redfish"],
        "Links": { "Role": { "@odata.id": format!("/redfish/v1/AccountService/Roles/{role}") } },
    })
}

/// Builds the response for an account body, which carries its entity tag as `@odata.etag`
/// too. The tag is that of the body without it, which is what `If-Match` is checked against.
fn account_response(status: StatusCode, mut body: Value) -> Response {
    let etag = etag_of(&tree::serialize(&body));
    if let Some(map) = body.as_object_mut() {
        map.insert("@odata.etag".into(), Value::String(etag.clone()));
    }
    let mut response = reply::resource_response(
        tree::serialize(&body),
        reply::JSON_TYPE,
        &etag,
        ACCOUNT_ALLOW,
    );
    *response.status_mut() = status;
    response
}

/// Creates an account from `UserName`, `Password`, `RoleId` and optionally `Enabled`, and
/// responds with 201, the new resource and its `Location`.
pub(crate) fn create(
    state: &BmcState,
    inner: &mut Inner,
    req: &Req,
    principal: &Principal,
) -> Result<Response, ErrorReply> {
    require_role(state, principal, Role::Administrator)?;
    let (name, password, role, enabled) = parse_new_account(inner, &req.body)?;
    if inner.accounts.name_taken(&name, None) {
        return Err(ErrorReply::new(
            StatusCode::CONFLICT,
            msg::resource_already_exists("ManagerAccount", "UserName", &clip(&name)),
        ));
    }

    let id = inner.accounts.create(
        UserAccount {
            name: name.clone(),
            password,
            role,
        },
        enabled,
    );
    let accounts_path = state.accounts_path.clone().unwrap_or_default();
    let path = format!("{accounts_path}/{id}");
    inner.log_change_from(
        &principal.user,
        &req.client,
        format!(
            "Account {} created at {path} with role {}{}",
            clip(&name),
            role.role_id(),
            if enabled { "" } else { ", disabled" }
        ),
    );
    let body = inner
        .accounts
        .get(id)
        .map(|slot| account_body(slot, &path))
        .unwrap_or_default();
    let response = account_response(StatusCode::CREATED, body);
    Ok(reply::with_location(response, &path))
}

/// Parses and checks the body of a POST that creates an account: `UserName`, `Password`,
/// `RoleId` and optionally `Enabled` and `AccountTypes`.
fn parse_new_account(
    inner: &Inner,
    body: &[u8],
) -> Result<(String, Secret, Role, bool), ErrorReply> {
    let request = parse_object(body)?;
    let mut errors = Vec::new();
    for name in request.keys().filter(|n| !n.starts_with('@')) {
        match name.as_str() {
            "UserName" | "Password" | "RoleId" | "Enabled" | "AccountTypes" => {}
            "Locked" | "PasswordChangeRequired" | "Id" => {
                errors.push(msg::property_not_writable(name))
            }
            _ => errors.push(msg::property_unknown(name)),
        }
    }
    let name = match request.get("UserName") {
        None => Err(msg::property_missing("UserName")),
        Some(value) => user_name(value),
    };
    let password = match request.get("Password") {
        None => Err(msg::property_missing("Password")),
        Some(value) => new_password(inner, value),
    };
    let role = match request.get("RoleId") {
        None => Err(msg::property_missing("RoleId")),
        Some(value) => role_id(value),
    };
    let enabled = match request.get("Enabled") {
        None => Ok(true),
        Some(value) => flag(value, "Enabled"),
    };
    if let Some(types) = request.get("AccountTypes") {
        let redfish_only = types
            .as_array()
            .is_some_and(|t| t.iter().all(|v| v.as_str() == Some("Redfish")));
        if !redfish_only {
            errors.push(msg::property_value_not_in_list(
                &clip(&types.to_string()),
                "AccountTypes",
            ));
        }
    }
    match (name, password, role, enabled) {
        (Ok(name), Ok(password), Ok(role), Ok(enabled)) if errors.is_empty() => {
            Ok((name, password, role, enabled))
        }
        (name, password, role, enabled) => {
            errors.extend(name.err());
            errors.extend(password.err());
            errors.extend(role.err());
            errors.extend(enabled.err());
            Err(ErrorReply::many(StatusCode::BAD_REQUEST, errors))
        }
    }
}

/// Checks whether `path` is an accounts collection of the data that takes POST: one without
/// empty slots. A service with fixed slots, as iDRAC has, responds with 405 and is filled by
/// PATCH.
pub(crate) fn is_open_tree_collection(inner: &Inner, path: &str) -> bool {
    let is_collection = inner
        .tree
        .json(path)
        .is_some_and(|body| schema_of(body) == "ManagerAccountCollection");
    is_collection
        && inner.tree.member_paths(path).iter().all(|member| {
            inner
                .tree
                .json(member)
                .and_then(|m| m.get("UserName"))
                .and_then(Value::as_str)
                .is_some_and(|name| !name.is_empty())
        })
}

/// Checks whether `path` is an account of the data in a collection that takes POST and DELETE.
pub(crate) fn is_tree_member(inner: &Inner, path: &str) -> bool {
    let parent = path.rsplit_once('/').map(|(parent, _)| parent);
    inner
        .tree
        .json(path)
        .is_some_and(|body| schema_of(body) == "ManagerAccount")
        && parent.is_some_and(|parent| is_open_tree_collection(inner, parent))
}

/// Creates an account resource in an accounts collection of the data, which then logs in like
/// an account filled by PATCH.
pub(crate) fn create_in_tree(
    state: &BmcState,
    inner: &mut Inner,
    req: &Req,
    principal: &Principal,
    collection: &str,
) -> Result<Response, ErrorReply> {
    require_role(state, principal, Role::Administrator)?;
    let (name, password, role, enabled) = parse_new_account(inner, &req.body)?;
    let members = inner.tree.member_paths(collection);
    let name_in_tree = members.iter().any(|member| {
        inner
            .tree
            .json(member)
            .and_then(|m| m.get("UserName"))
            .and_then(Value::as_str)
            == Some(name.as_str())
    });
    if name_in_tree || inner.accounts.name_taken(&name, None) {
        return Err(ErrorReply::new(
            StatusCode::CONFLICT,
            msg::resource_already_exists("ManagerAccount", "UserName", &clip(&name)),
        ));
    }

    let id = members
        .iter()
        .filter_map(|m| m.rsplit('/').next()?.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
        + 1;
    let path = format!("{collection}/{id}");
    let kind = members
        .iter()
        .find_map(|m| {
            inner
                .tree
                .json(m)?
                .get("@odata.type")?
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "#ManagerAccount.v1_10_0.ManagerAccount".to_owned());
    let body = json!({
        "@odata.id": path,
        "@odata.type": kind,
        "Id": id.to_string(),
        "Name": "User Account",
        "UserName": name,
        "RoleId": role.role_id(),
        "Enabled": enabled,
        "Locked": false,
        "Password": null,
        "Links": { "Role": { "@odata.id": format!("/redfish/v1/AccountService/Roles/{}", role.role_id()) } },
    });
    inner
        .tree
        .insert(path.clone(), tree::Resource::from_value(body.clone()));
    inner.tree.update(collection, |list| {
        let Some(map) = list.as_object_mut() else {
            return;
        };
        if let Some(items) = map.get_mut("Members").and_then(Value::as_array_mut) {
            items.push(json!({ "@odata.id": path }));
            let count = items.len();
            map.insert("Members@odata.count".into(), json!(count));
        }
    });
    inner.accounts.set_patched_password(&path, password.clone());
    let login = enabled.then(|| UserAccount {
        name: name.clone(),
        password,
        role,
    });
    inner.accounts.set_patched(&path, login);
    inner.log_change_from(
        &principal.user,
        &req.client,
        format!(
            "Account {} created at {path} with role {}",
            clip(&name),
            role.role_id()
        ),
    );
    let response = reply::json_response(StatusCode::CREATED, tree::serialize(&body));
    Ok(reply::with_location(response, &path))
}

/// Deletes an account resource of the data and closes its sessions.
pub(crate) fn delete_in_tree(
    state: &BmcState,
    inner: &mut Inner,
    req: &Req,
    principal: &Principal,
) -> Result<Response, ErrorReply> {
    require_role(state, principal, Role::Administrator)?;
    let path = req.path.as_str();
    let name = inner
        .tree
        .json(path)
        .and_then(|m| m.get("UserName"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let collection = path.rsplit_once('/').map(|(parent, _)| parent.to_owned());
    inner.tree.remove(path);
    if let Some(collection) = collection {
        inner.tree.update(&collection, |list| {
            let Some(map) = list.as_object_mut() else {
                return;
            };
            if let Some(items) = map.get_mut("Members").and_then(Value::as_array_mut) {
                items.retain(|m| {
                    m.get("@odata.id")
                        .and_then(Value::as_str)
                        .map(tree::normalize_path)
                        .as_deref()
                        != Some(path)
                });
                let count = items.len();
                map.insert("Members@odata.count".into(), json!(count));
            }
        });
    }
    inner.accounts.set_patched(path, None);
    inner.log_change_from(
        &principal.user,
        &req.client,
        format!("Account {} at {path} deleted", clip(&name)),
    );
    for session in inner.sessions.remove_user(&name) {
        inner.log_logout(&session.user, &session.origin);
    }
    Ok(reply::no_content())
}

/// Changes an account. The account's own user may change the password only; administrators
/// may change everything. Either every property of the request applies or none does.
pub(crate) fn patch(
    state: &BmcState,
    inner: &mut Inner,
    req: &Req,
    principal: &Principal,
) -> Result<Response, ErrorReply> {
    let path = req.path.as_str();
    let slot = member(state, inner, path)
        .cloned()
        .ok_or_else(|| ErrorReply::not_found(path))?;
    let body = account_body(&slot, path);
    check_if_match(req, &body)?;
    let own = slot.account.name == principal.user;

    // 1. Parse and check every property before changing anything.
    let request = parse_object(&req.body)?;
    let names: Vec<&String> = request.keys().filter(|n| !n.starts_with('@')).collect();
    if names.is_empty() {
        // An empty object and one with annotations only get different Base messages.
        let message = if request.is_empty() {
            msg::empty_json()
        } else {
            msg::no_operation()
        };
        return Err(ErrorReply::new(StatusCode::BAD_REQUEST, message));
    }
    let only_password = names.iter().all(|n| n.as_str() == "Password");
    if !(own && only_password) {
        require_role(state, principal, Role::Administrator)?;
    }
    let mut errors = Vec::new();
    let mut change = slot.clone();
    let mut new_secret = None;
    for name in names {
        let Some(value) = request.get(name) else {
            continue;
        };
        let result = match name.as_str() {
            "UserName" => user_name(value).and_then(|new| {
                if inner.accounts.name_taken(&new, Some(slot.id)) {
                    Err(msg::property_value_conflict("UserName", "UserName"))
                } else {
                    change.account.name = new;
                    Ok(())
                }
            }),
            "Password" => new_password(inner, value).map(|secret| new_secret = Some(secret)),
            "RoleId" => role_id(value).map(|role| change.account.role = role),
            "Enabled" => flag(value, "Enabled").map(|enabled| change.enabled = enabled),
            "Locked" => match value.as_bool() {
                Some(false) => Ok(()),
                Some(true) => Err(msg::property_value_not_in_list("true", "Locked")),
                None => Err(msg::property_value_type_error(
                    &clip(&value.to_string()),
                    name,
                )),
            },
            other if body.get(other).is_some() => Err(msg::property_not_writable(other)),
            other => Err(msg::property_unknown(other)),
        };
        if let Err(message) = result {
            errors.push(message);
        }
    }
    // The last enabled administrator may be neither disabled nor demoted. The message names
    // the property the request set, not a pair of properties that conflict with each other.
    let last_admin = slot.account.role == Role::Administrator
        && slot.enabled
        && inner.accounts.other_enabled_administrators(slot.id) == 0;
    if last_admin {
        let collection = path.rsplit_once('/').map_or(path, |(parent, _)| parent);
        if !change.enabled {
            errors.push(msg::property_value_resource_conflict(
                "Enabled",
                "false",
                collection,
                LAST_ADMIN_RESOLUTION,
            ));
        }
        if change.account.role != Role::Administrator {
            errors.push(msg::property_value_resource_conflict(
                "RoleId",
                change.account.role.role_id(),
                collection,
                LAST_ADMIN_RESOLUTION,
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ErrorReply::many(StatusCode::BAD_REQUEST, errors));
    }

    // 2. Apply, log, and close the sessions of an account that can no longer log in as it did.
    let mut summary = Vec::new();
    if change.account.name != slot.account.name {
        summary.push(format!("user name set to {}", clip(&change.account.name)));
    }
    if new_secret.is_some() {
        summary.push("password changed".to_owned());
    }
    if change.account.role != slot.account.role {
        summary.push(format!("role set to {}", change.account.role.role_id()));
    }
    if change.enabled != slot.enabled {
        summary.push(
            if change.enabled {
                "enabled"
            } else {
                "disabled"
            }
            .to_owned(),
        );
    }
    let ends_sessions = change.account.name != slot.account.name
        || change.account.role != slot.account.role
        || !change.enabled;
    if let Some(stored) = inner.accounts.get_mut(slot.id) {
        stored.account.name = change.account.name.clone();
        stored.account.role = change.account.role;
        stored.enabled = change.enabled;
        if let Some(secret) = new_secret {
            stored.account.password = secret;
        }
    }
    if !summary.is_empty() {
        inner.log_change_from(
            &principal.user,
            &req.client,
            format!(
                "Account {} at {path}: {}",
                clip(&slot.account.name),
                summary.join(", ")
            ),
        );
    }
    if ends_sessions {
        for session in inner.sessions.remove_user(&slot.account.name) {
            inner.log_logout(&session.user, &session.origin);
        }
    }
    let body = inner
        .accounts
        .get(slot.id)
        .map(|slot| account_body(slot, path))
        .unwrap_or_default();
    Ok(account_response(StatusCode::OK, body))
}

/// Deletes an account and closes its sessions; the last enabled administrator stays.
pub(crate) fn delete(
    state: &BmcState,
    inner: &mut Inner,
    req: &Req,
    principal: &Principal,
) -> Result<Response, ErrorReply> {
    let path = req.path.as_str();
    require_role(state, principal, Role::Administrator)?;
    let slot = member(state, inner, path)
        .cloned()
        .ok_or_else(|| ErrorReply::not_found(path))?;
    let is_last_admin = slot.account.role == Role::Administrator
        && slot.enabled
        && inner.accounts.other_enabled_administrators(slot.id) == 0;
    if is_last_admin {
        return Err(ErrorReply::new(
            StatusCode::BAD_REQUEST,
            msg::resource_cannot_be_deleted(),
        ));
    }
    inner.accounts.remove(slot.id);
    inner.log_change_from(
        &principal.user,
        &req.client,
        format!("Account {} at {path} deleted", clip(&slot.account.name)),
    );
    for session in inner.sessions.remove_user(&slot.account.name) {
        inner.log_logout(&session.user, &session.origin);
    }
    Ok(reply::no_content())
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ErrorReply> {
    // The body contains a password; the parsed copy is dropped with the map, the raw copy here.
    let raw = Zeroizing::new(body.to_vec());
    match serde_json::from_slice::<Value>(&raw) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ErrorReply::new(
            StatusCode::BAD_REQUEST,
            msg::malformed_json(),
        )),
    }
}

fn check_if_match(req: &Req, body: &Value) -> Result<(), ErrorReply> {
    let Some(if_match) = req.headers.get(IF_MATCH).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let current = etag_of(&tree::serialize(body));
    let matches = if_match
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag == current);
    if matches {
        Ok(())
    } else {
        Err(ErrorReply::new(
            StatusCode::PRECONDITION_FAILED,
            msg::precondition_failed(),
        ))
    }
}

/// Parses a user name: 1 to 16 letters, digits, `.`, `_` or `-`, not starting with `-`.
fn user_name(value: &Value) -> Result<String, Message> {
    let echoed = || clip(&value_text(value));
    let text = value
        .as_str()
        .ok_or_else(|| msg::property_value_type_error(&echoed(), "UserName"))?;
    let valid = !text.is_empty()
        && text.chars().count() <= MAX_USER_NAME_CHARS
        && !text.starts_with('-')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(text.to_owned())
    } else {
        Err(msg::property_value_format_error(&echoed(), "UserName"))
    }
}

/// Parses a password within the account service's length limits, without control characters. The
/// value never appears in an error.
fn new_password(inner: &Inner, value: &Value) -> Result<Secret, Message> {
    let invalid = || msg::property_value_format_error("[REDACTED]", "Password");
    let text = value.as_str().ok_or_else(invalid)?;
    let (min, max) = password_lengths(inner);
    let length = text.chars().count();
    let usable = (min..=max).contains(&length)
        && text.len() <= MAX_CREDENTIAL_BYTES
        && !text.chars().any(char::is_control);
    if usable {
        Ok(Secret::new(text))
    } else {
        Err(invalid())
    }
}

/// Returns `MinPasswordLength` and `MaxPasswordLength` of the account service.
pub(crate) fn password_lengths(inner: &Inner) -> (usize, usize) {
    let service = inner.tree.json("/redfish/v1/AccountService");
    let read = |key: &str| {
        service
            .and_then(|s| s.get(key))
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
    };
    let (default_min, default_max) = DEFAULT_PASSWORD_LENGTHS;
    let min = read("MinPasswordLength").unwrap_or(default_min).max(1);
    let max = read("MaxPasswordLength").unwrap_or(default_max).max(min);
    (min, max)
}

fn role_id(value: &Value) -> Result<Role, Message> {
    match value.as_str() {
        Some("Administrator") => Ok(Role::Administrator),
        Some("Operator") => Ok(Role::Operator),
        Some("ReadOnly") => Ok(Role::ReadOnly),
        Some(other) => Err(msg::property_value_not_in_list(&clip(other), "RoleId")),
        None => Err(msg::property_value_type_error(
            &clip(&value_text(value)),
            "RoleId",
        )),
    }
}

fn flag(value: &Value, name: &str) -> Result<bool, Message> {
    value
        .as_bool()
        .ok_or_else(|| msg::property_value_type_error(&clip(&value_text(value)), name))
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_follow_the_bmc_rules() {
        assert_eq!(user_name(&json!("ops.admin_1")).unwrap(), "ops.admin_1");
        for bad in [
            json!(""),
            json!("-x"),
            json!("a b"),
            json!("x".repeat(17)),
            json!(5),
        ] {
            assert!(user_name(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn role_ids_outside_the_standard_roles_are_rejected() {
        assert_eq!(role_id(&json!("Operator")).unwrap(), Role::Operator);
        assert!(role_id(&json!("Root")).is_err());
    }
}
