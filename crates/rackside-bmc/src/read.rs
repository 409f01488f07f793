//! Reading resources of the tree: body changes of faults, entity tags and `$top`/`$skip`.

use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Map, Value};

use crate::fault::Fault;
use crate::reply::{self, msg, ErrorReply};
use crate::service::{allow_for, Req, TRANSIENT_EMPTY_WINDOW};
use crate::state::{BmcState, Inner};
use crate::tree::{self, etag_of, Media};

/// Serves a resource of the tree, with the body changes of enabled faults and `$top`/`$skip`.
pub(crate) fn serve_tree(
    state: &BmcState,
    inner: &mut Inner,
    req: &Req,
) -> Result<Response, ErrorReply> {
    let path = req.path.as_str();
    let captured_page = format!("{path}?{}", req.raw_query);
    let (resource, exact_page) = match inner.tree.get(&captured_page) {
        Some(resource) if !req.raw_query.is_empty() => (resource, true),
        _ => (
            inner
                .tree
                .get(path)
                .ok_or_else(|| ErrorReply::not_found(path))?,
            false,
        ),
    };
    let bytes = resource.bytes.clone();
    let media = resource.media;
    let is_json = resource.json.is_some();
    let paging = if exact_page {
        Paging::default()
    } else {
        parse_paging(&req.query)?
    };

    if media == Media::Xml {
        let etag = etag_of(&bytes);
        return Ok(reply::resource_response(
            bytes,
            "application/xml",
            &etag,
            "GET, HEAD",
        ));
    }
    if !is_json {
        // A file that is not valid JSON is served as the BMC returned it.
        let etag = etag_of(&bytes);
        return Ok(reply::resource_response(
            bytes,
            reply::JSON_TYPE,
            &etag,
            "GET, HEAD",
        ));
    }

    // Unchanged resources are served as stored, byte for byte, without copying the parsed body.
    let faults = state.faults.enabled();
    let empty_jobs = state.faults.is_enabled(Fault::TransientErrors)
        && path.ends_with("/Jobs")
        && state.faults.transient_since().elapsed() < TRANSIENT_EMPTY_WINDOW;
    let etag_fault = faults.contains(Fault::WeakEtag)
        || (faults.contains(Fault::NumericEtag) && path == "/redfish/v1/AccountService");
    let rewrites = crate::quirks::rewrites_bodies(&faults);
    let tree_path = if exact_page {
        captured_page.as_str()
    } else {
        path
    };
    let allow = allow_for(
        inner,
        path,
        inner.tree.json(tree_path).unwrap_or(&Value::Null),
    );
    if !rewrites && !empty_jobs && !etag_fault && !paging.requested() {
        let etag = etag_of(&bytes);
        return Ok(reply::resource_response(
            bytes,
            reply::JSON_TYPE,
            &etag,
            &allow,
        ));
    }
    let mut body = inner.tree.json(tree_path).cloned().unwrap_or_default();
    let mut changed = rewrites;
    if rewrites {
        crate::quirks::rewrite(path, &mut body, &faults, state.active_sessions_path());
    }
    if empty_jobs {
        if let Some(map) = body.as_object_mut() {
            map.insert("Members".into(), json!([]));
            map.insert("Members@odata.count".into(), json!(0));
            changed = true;
        }
    }
    if paging.requested() {
        page_members(&mut body, path, &paging);
        changed = true;
    }
    if !changed && !etag_fault {
        let etag = etag_of(&bytes);
        return Ok(reply::resource_response(
            bytes,
            reply::JSON_TYPE,
            &etag,
            &allow,
        ));
    }
    Ok(json_get_with(state, path, body, &allow))
}

/// Serializes `body` and adds the entity tag, applying the ETag faults.
pub(crate) fn json_get_with(
    state: &BmcState,
    path: &str,
    mut body: Value,
    allow: &str,
) -> Response {
    let bytes = tree::serialize(&body);
    let strong = etag_of(&bytes);
    let mut header = strong.clone();
    let mut rebuilt = false;
    if state.faults.is_enabled(Fault::WeakEtag) {
        header = format!("W/{strong}");
        if let Some(map) = body.as_object_mut() {
            // The body's tag differs from the header, as on the BMCs that compute them apart.
            let other = etag_of(strong.as_bytes());
            map.insert("@odata.etag".into(), Value::String(format!("W/{other}")));
            rebuilt = true;
        }
    }
    if state.faults.is_enabled(Fault::NumericEtag) && path == "/redfish/v1/AccountService" {
        if let Some(map) = body.as_object_mut() {
            let digits: String = strong
                .chars()
                .filter(char::is_ascii_hexdigit)
                .take(9)
                .collect();
            let number = u64::from_str_radix(&digits, 16).unwrap_or(87_422_082_150);
            map.insert("@odata.etag".into(), json!(number));
            rebuilt = true;
        }
    }
    let bytes = if rebuilt {
        tree::serialize(&body)
    } else {
        bytes
    };
    reply::resource_response(bytes, reply::JSON_TYPE, &header, allow)
}

/// The entity tag a client must send in `If-Match` for the resource at `path` now.
pub(crate) fn current_etag(state: &BmcState, inner: &mut Inner, path: &str) -> Option<String> {
    let req = Req {
        method: Method::GET,
        path: path.to_owned(),
        query: Vec::new(),
        raw_query: String::new(),
        headers: HeaderMap::new(),
        body: Bytes::new(),
        client: String::new(),
    };
    let response = serve_tree(state, inner, &req).ok()?;
    response
        .headers()
        .get(http::header::ETAG)?
        .to_str()
        .ok()
        .map(str::to_owned)
}

pub(crate) fn json_get(body: &Value, allow: &str) -> Response {
    let bytes = tree::serialize(body);
    let etag = etag_of(&bytes);
    reply::resource_response(bytes, reply::JSON_TYPE, &etag, allow)
}

pub(crate) fn paged_get(mut body: Value, req: &Req, allow: &str) -> Result<Response, ErrorReply> {
    let paging = parse_paging(&req.query)?;
    if paging.requested() {
        page_members(&mut body, &req.path, &paging);
    }
    Ok(json_get(&body, allow))
}

#[derive(Debug, Default)]
pub(crate) struct Paging {
    pub(crate) skip: usize,
    pub(crate) top: Option<usize>,
    given: bool,
}

impl Paging {
    /// Paging given by the request as `$skip` and `$top`.
    pub(crate) fn new(skip: usize, top: Option<usize>) -> Self {
        Self {
            skip,
            top,
            given: true,
        }
    }

    fn requested(&self) -> bool {
        self.given
    }
}

pub(crate) fn parse_paging(query: &[(String, String)]) -> Result<Paging, ErrorReply> {
    let mut paging = Paging::default();
    for (name, value) in query {
        let number = || {
            value.parse::<usize>().map_err(|_| {
                ErrorReply::new(
                    StatusCode::BAD_REQUEST,
                    msg::query_parameter_value_type_error(value, name),
                )
            })
        };
        match name.as_str() {
            "$skip" => {
                paging.skip = number()?;
                paging.given = true;
            }
            "$top" => {
                paging.top = Some(number()?);
                paging.given = true;
            }
            // `excerpt` takes no value; `only` is handled in `crate::query`.
            "excerpt" if !value.is_empty() => {
                return Err(ErrorReply::new(
                    StatusCode::BAD_REQUEST,
                    msg::query_parameter_value_type_error(value, name),
                ));
            }
            // `$expand`, `$select` and `$filter` are taken out before this point (see
            // `crate::query`); other `$` parameters such as `$apply` are not implemented.
            other if other.starts_with('$') => {
                return Err(ErrorReply::new(
                    StatusCode::NOT_IMPLEMENTED,
                    msg::query_parameter_unsupported(other),
                ));
            }
            // Parameters without `$` that the service does not know are ignored.
            _ => {}
        }
    }
    Ok(paging)
}

/// Cuts `Members` of a collection body to the requested page and adds the next link.
pub(crate) fn page_members(body: &mut Value, path: &str, paging: &Paging) {
    let Some(map) = body.as_object_mut() else {
        return;
    };
    let Some(members) = map.get("Members").and_then(Value::as_array).cloned() else {
        return;
    };
    let total = members.len();
    let page: Vec<Value> = members
        .into_iter()
        .skip(paging.skip)
        .take(paging.top.unwrap_or(usize::MAX))
        .collect();
    let shown = page.len();
    map.insert("Members".into(), Value::Array(page));
    map.insert("Members@odata.count".into(), json!(total));
    map.remove("Members@odata.nextLink");
    // `$top=0` gets no next link, which would point back at the same empty page.
    if shown > 0 && paging.skip + shown < total {
        let mut next = format!("{path}?$skip={}", paging.skip + shown);
        if let Some(top) = paging.top {
            next.push_str(&format!("&$top={top}"));
        }
        map.insert("Members@odata.nextLink".into(), Value::String(next));
    }
}

pub(crate) fn collection_template(
    inner: &Inner,
    data_path: &str,
    served_path: &str,
    kind: &str,
    name: &str,
) -> Map<String, Value> {
    let mut body = inner
        .tree
        .json(data_path)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_else(|| {
            let mut map = Map::new();
            map.insert("@odata.type".into(), kind.into());
            map.insert("Name".into(), name.into());
            map
        });
    body.insert("@odata.id".into(), served_path.into());
    body.remove("Members@odata.nextLink");
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paging_rejects_non_numbers_and_unknown_dollar_parameters() {
        assert!(parse_paging(&[("$top".into(), "x".into())]).is_err());
        assert!(parse_paging(&[("$expand".into(), ".".into())]).is_err());
        assert!(parse_paging(&[("excerpt".into(), "".into())]).is_ok());
    }

    #[test]
    fn page_members_adds_next_link() {
        let mut body = json!({"Members": [1, 2, 3]});
        page_members(
            &mut body,
            "/c",
            &Paging {
                skip: 0,
                top: Some(2),
                given: true,
            },
        );
        assert_eq!(body["Members"], json!([1, 2]));
        assert_eq!(body["Members@odata.nextLink"], "/c?$skip=2&$top=2");
        assert_eq!(body["Members@odata.count"], 3);
    }
}
