//! The resource tree: every static resource by URI, loaded from a mockup folder or from the
//! embedded sample server.
//!
//! A mockup's files are served byte for byte. Only a resource that the simulator changes (by a
//! PATCH or a power transition) is serialized again from its parsed JSON.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::error::BmcError;
use crate::logs::LogStore;

/// Media type of a stored resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Media {
    Json,
    Xml,
}

/// One stored resource.
#[derive(Debug, Clone)]
pub(crate) struct Resource {
    /// Body as served.
    pub(crate) bytes: Bytes,
    /// The parsed body, absent for XML and for files that are not valid JSON. Fleet members
    /// share it until one of them changes the resource.
    pub(crate) json: Option<Arc<Value>>,
    pub(crate) media: Media,
}

impl Resource {
    /// Creates a resource served exactly as `bytes`.
    pub(crate) fn from_file(bytes: Bytes, media: Media) -> Self {
        let json = match media {
            Media::Json => serde_json::from_slice(&bytes).ok().map(Arc::new),
            Media::Xml => None,
        };
        Self { bytes, json, media }
    }

    /// Creates a JSON resource serialized from `value`.
    pub(crate) fn from_value(value: Value) -> Self {
        Self {
            bytes: serialize(&value),
            json: Some(Arc::new(value)),
            media: Media::Json,
        }
    }
}

/// Serializes a JSON body the way this simulator serves the resources it builds.
pub(crate) fn serialize(value: &Value) -> Bytes {
    // Serializing a `Value` cannot fail because its map keys are strings.
    Bytes::from(serde_json::to_vec_pretty(value).unwrap_or_default())
}

/// Computes the strong entity tag of a body: the first 16 hex digits of its SHA-256.
pub(crate) fn etag_of(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    format!("\"{}\"", hex::encode(digest.get(..8).unwrap_or_default()))
}

/// Every resource by normalized URI path (a captured page keeps its query, `...?$skip=50`).
#[derive(Debug, Default, Clone)]
pub(crate) struct Tree {
    resources: HashMap<String, Resource>,
}

impl Tree {
    pub(crate) fn get(&self, path: &str) -> Option<&Resource> {
        self.resources.get(path)
    }

    pub(crate) fn json(&self, path: &str) -> Option<&Value> {
        self.resources.get(path)?.json.as_deref()
    }

    pub(crate) fn insert(&mut self, path: String, resource: Resource) {
        self.resources.insert(path, resource);
    }

    pub(crate) fn remove(&mut self, path: &str) -> Option<Resource> {
        self.resources.remove(path)
    }

    pub(crate) fn contains(&self, path: &str) -> bool {
        self.resources.contains_key(path)
    }

    /// Applies `change` to the parsed body at `path` and reserializes it.
    ///
    /// Returns false when there is no JSON resource at `path`.
    pub(crate) fn update(&mut self, path: &str, change: impl FnOnce(&mut Value)) -> bool {
        let Some(resource) = self.resources.get_mut(path) else {
            return false;
        };
        let Some(shared) = resource.json.as_mut() else {
            return false;
        };
        let value = Arc::make_mut(shared);
        change(value);
        resource.bytes = serialize(value);
        true
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &Resource)> {
        self.resources.iter()
    }

    /// Returns the `@odata.id` links of the `Members` of the collection at `path`.
    pub(crate) fn member_paths(&self, path: &str) -> Vec<String> {
        self.json(path)
            .and_then(|body| body.get("Members"))
            .and_then(Value::as_array)
            .map(|members| {
                members
                    .iter()
                    .filter_map(|m| m.get("@odata.id").and_then(Value::as_str))
                    .map(normalize_path)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Removes a trailing slash (except from `/`) and a `#fragment`.
pub(crate) fn normalize_path(path: &str) -> String {
    let path = path.split('#').next().unwrap_or_default();
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Everything a data source provides.
#[derive(Debug, Clone)]
pub(crate) struct LoadedData {
    pub(crate) tree: Tree,
    pub(crate) logs: Vec<LogStore>,
    /// Index into `logs` of the log that logins and changes are written to.
    pub(crate) lifecycle_log: Option<usize>,
    pub(crate) system_paths: Vec<String>,
    pub(crate) manager_path: Option<String>,
    /// A short label for the host name in the generated certificate.
    pub(crate) host_label: String,
}

/// Loads a DMTF mockup folder, short or long form.
pub(crate) fn load_mockup(dir: &Path) -> Result<LoadedData, BmcError> {
    let invalid = |reason: &str| BmcError::InvalidMockup {
        path: dir.to_path_buf(),
        reason: reason.to_owned(),
    };
    let long_form = dir.join("redfish").join("v1");
    let root = if long_form.join("index.json").is_file() {
        long_form
    } else if dir.join("index.json").is_file() {
        dir.to_path_buf()
    } else if dir.is_dir() {
        return Err(invalid(
            "neither index.json nor redfish/v1/index.json found; pass the folder that is /redfish/v1 or holds redfish/v1",
        ));
    } else {
        return Err(invalid("not a folder"));
    };

    let mut tree = Tree::default();
    walk(&root, "/redfish/v1", &mut tree)?;
    if tree.json("/redfish/v1").is_none() {
        return Err(invalid("the service root index.json is not valid JSON"));
    }
    Ok(finish_loading(tree, None))
}

fn walk(dir: &Path, uri: &str, tree: &mut Tree) -> Result<(), BmcError> {
    let read_error = |source| BmcError::Io {
        action: "read",
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(read_error)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            tracing::debug!(path = %path.display(), "skipped a file name that is not UTF-8");
            continue;
        };
        if path.is_dir() {
            walk(&path, &format!("{uri}/{name}"), tree)?;
            continue;
        }
        let media = match name.as_str() {
            "index.json" => Media::Json,
            "index.xml" => Media::Xml,
            _ => {
                tracing::debug!(path = %path.display(), "skipped a file that is not index.json or index.xml");
                continue;
            }
        };
        let bytes = fs::read(&path).map_err(|source| BmcError::Io {
            action: "read",
            path: path.clone(),
            source,
        })?;
        let resource = Resource::from_file(Bytes::from(bytes), media);
        if media == Media::Json && resource.json.is_none() {
            tracing::debug!(path = %path.display(), "file is not valid JSON; it is served unparsed");
        }
        tree.insert(uri.to_owned(), resource);
    }
    Ok(())
}

/// Loads the embedded sample server.
pub(crate) fn load_sample(sample: crate::sample::SampleServer) -> LoadedData {
    let mut tree = Tree::default();
    for (path, body) in sample.resources {
        tree.insert(normalize_path(&path), Resource::from_value(body));
    }
    let mut logs = Vec::new();
    let mut lifecycle_log = None;
    for (entries_path, entries) in [
        (sample.lifecycle_log_path, sample.lifecycle_log),
        (sample.sel_path, sample.sel),
    ] {
        let entries_path = normalize_path(&entries_path);
        if entries_path == "/" {
            continue;
        }
        let template = tree
            .json(&entries_path)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_else(|| default_entries_template(&entries_path));
        for entry in &entries {
            if let Some(uri) = entry.get("@odata.id").and_then(Value::as_str) {
                tree.insert(normalize_path(uri), Resource::from_value(entry.clone()));
            }
        }
        let newest_first = entries.into_iter().rev().collect();
        let service = entries_path.strip_suffix("/Entries").map(str::to_owned);
        if lifecycle_log.is_none() {
            lifecycle_log = Some(logs.len());
        }
        logs.push(LogStore::new(
            service,
            entries_path,
            template,
            newest_first,
            true,
        ));
    }
    let mut data = finish_loading(tree, Some(logs));
    data.lifecycle_log = lifecycle_log.or(data.lifecycle_log);
    if !sample.system_path.is_empty() {
        let system = normalize_path(&sample.system_path);
        data.system_paths.retain(|p| p != &system);
        data.system_paths.insert(0, system);
    }
    if !sample.manager_path.is_empty() {
        data.manager_path = Some(normalize_path(&sample.manager_path));
    }
    if !sample.service_tag.is_empty() {
        data.host_label = host_label(&sample.service_tag);
    }
    data
}

fn default_entries_template(entries_path: &str) -> Map<String, Value> {
    let value = json!({
        "@odata.id": entries_path,
        "@odata.type": "#LogEntryCollection.LogEntryCollection",
        "Name": "Log Entry Collection",
    });
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Finds systems, the first manager, the log services and a host label in a loaded tree.
fn finish_loading(tree: Tree, logs: Option<Vec<LogStore>>) -> LoadedData {
    let system_paths = tree.member_paths("/redfish/v1/Systems");
    let manager_path = tree.member_paths("/redfish/v1/Managers").into_iter().next();
    let label = system_paths
        .first()
        .and_then(|path| tree.json(path))
        .and_then(|system| {
            ["SKU", "SerialNumber", "Id"].iter().find_map(|key| {
                system
                    .get(*key)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
            })
        })
        .map(host_label)
        .unwrap_or_else(|| "mockup".to_owned());

    let (logs, lifecycle_log) = match logs {
        Some(logs) => (logs, None),
        None => mockup_logs(&tree),
    };
    LoadedData {
        tree,
        logs,
        lifecycle_log,
        system_paths,
        manager_path,
        host_label: label,
    }
}

/// Makes every log service of a mockup whose Entries collection was captured dynamic, and picks
/// the one that plays the lifecycle log.
fn mockup_logs(tree: &Tree) -> (Vec<LogStore>, Option<usize>) {
    let mut services: Vec<(&String, &Value)> = tree
        .iter()
        .filter_map(|(path, resource)| Some((path, resource.json.as_deref()?)))
        .filter(|(_, body)| {
            body.get("@odata.type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.starts_with("#LogService."))
        })
        .collect();
    services.sort_by(|a, b| a.0.cmp(b.0));

    let mut logs = Vec::new();
    for (service_path, body) in services {
        let Some(entries_path) = body
            .pointer("/Entries/@odata.id")
            .and_then(Value::as_str)
            .map(normalize_path)
        else {
            continue;
        };
        let Some(collection) = tree.json(&entries_path).and_then(Value::as_object) else {
            continue;
        };
        let members = collection
            .get("Members")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let expanded = members
            .iter()
            .any(|m| m.as_object().is_some_and(|o| o.len() > 1));
        let entries = members
            .iter()
            .map(|member| {
                let linked = member
                    .get("@odata.id")
                    .and_then(Value::as_str)
                    .and_then(|uri| tree.json(&normalize_path(uri)));
                match (expanded, linked) {
                    (false, Some(entry)) => entry.clone(),
                    _ => member.clone(),
                }
            })
            .collect();
        logs.push(LogStore::new(
            Some(service_path.clone()),
            entries_path,
            collection.clone(),
            entries,
            expanded,
        ));
    }

    // The audit log of the first manager plays the lifecycle log: Dell "Lclog", HPE "IEL",
    // Lenovo "AuditLog", DMTF mockups "Log".
    let rank = |log: &LogStore| {
        let service = log.service_path.as_deref().unwrap_or_default();
        let id = service
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let by_id = ["lclog", "auditlog", "iel", "log"]
            .iter()
            .position(|p| *p == id)
            .unwrap_or(9);
        let on_manager = if service.starts_with("/redfish/v1/Managers/") {
            0
        } else {
            1
        };
        (by_id, on_manager, service.to_owned())
    };
    let lifecycle = (0..logs.len()).min_by_key(|i| logs.get(*i).map(rank));
    (logs, lifecycle)
}

/// Turns a service tag or serial number into a DNS label: lowercase letters, digits, hyphens.
pub(crate) fn host_label(raw: &str) -> String {
    let label: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let label = label.trim_matches('-').to_owned();
    if label.is_empty() {
        "bmc".to_owned()
    } else {
        label
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_path_strips_trailing_slash_and_fragment() {
        assert_eq!(normalize_path("/redfish/v1/"), "/redfish/v1");
        assert_eq!(
            normalize_path("/redfish/v1/Chassis/1/Power#/PowerControl/0"),
            "/redfish/v1/Chassis/1/Power"
        );
        assert_eq!(normalize_path("/"), "/");
    }

    #[test]
    fn host_label_is_a_dns_label() {
        assert_eq!(host_label("TSTAG01"), "tstag01");
        assert_eq!(host_label("  a b/c "), "a-b-c");
        assert_eq!(host_label("///"), "bmc");
    }

    #[test]
    fn missing_mockup_folder_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let error = load_mockup(dir.path()).err().unwrap();
        assert!(error.to_string().contains("redfish/v1"), "{error}");
    }
}
