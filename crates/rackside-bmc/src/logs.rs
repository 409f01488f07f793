//! Log services whose Entries collections change while the simulator runs: the lifecycle log
//! (logins, logouts, changes, resets) and the SEL.
//!
//! Entries are served newest first in pages of [`PAGE_SIZE`]. Entries that came with the data
//! keep their order and content, and new entries go in front of them. A log keeps at most
//! [`MAX_ENTRIES`] entries and drops the oldest first.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Map, Value};

/// Members per page of an Entries collection when the request has no `$top`.
pub const PAGE_SIZE: usize = 50;

/// Maximum number of entries in one log. A new entry beyond this drops the oldest, like a
/// ring buffer.
pub const MAX_ENTRIES: usize = 10_000;

/// Maximum number of characters of client-supplied text (user names, property values) copied into an entry.
const MAX_TEXT_CHARS: usize = 64;

/// Shortens client-supplied `text` to [`MAX_TEXT_CHARS`] characters, marking a cut with `…`.
pub(crate) fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_TEXT_CHARS) {
        Some((end, _)) => format!("{}…", text.get(..end).unwrap_or_default()),
        None => text.to_owned(),
    }
}

/// Severity of a new log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    Ok,
    Warning,
    Critical,
}

impl Severity {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Severity::Ok => "OK",
            Severity::Warning => "Warning",
            Severity::Critical => "Critical",
        }
    }
}

/// A message written into a log.
pub(crate) struct LogMessage {
    pub(crate) message_id: String,
    pub(crate) message: String,
    pub(crate) args: Vec<String>,
    pub(crate) severity: Severity,
}

/// One log service's Entries collection.
#[derive(Debug, Clone)]
pub(crate) struct LogStore {
    /// URI of the LogService resource.
    pub(crate) service_path: Option<String>,
    /// URI of its Entries collection.
    pub(crate) entries_path: String,
    /// Collection body without `Members`, `Members@odata.count` and `Members@odata.nextLink`.
    template: Map<String, Value>,
    /// Entries that came with the data, in the order they are served (newest first). Fleet
    /// members share them until one of them drops or clears entries.
    base: Arc<Vec<Value>>,
    /// Entries written since start, oldest first.
    added: VecDeque<Value>,
    /// Whether members are whole entries (as iDRAC serves them) or only `@odata.id` links.
    expanded: bool,
    entry_type: String,
    /// Registry prefix for Dell-style message keys such as `USR0030`, taken from the newest
    /// entry with such a key (`IDRAC.2.7` in an iDRAC capture).
    key_prefix: String,
    next_id: u64,
}

impl LogStore {
    /// Creates a store from a collection template and its entries in served order.
    pub(crate) fn new(
        service_path: Option<String>,
        entries_path: String,
        mut template: Map<String, Value>,
        base: Vec<Value>,
        expanded: bool,
    ) -> Self {
        template.remove("Members");
        template.remove("Members@odata.count");
        template.remove("Members@odata.nextLink");
        template.insert("@odata.id".into(), Value::String(entries_path.clone()));
        let entry_type = base
            .iter()
            .find_map(|entry| entry.get("@odata.type").and_then(Value::as_str))
            .filter(|kind| kind.starts_with("#LogEntry."))
            .unwrap_or("#LogEntry.v1_9_0.LogEntry")
            .to_owned();
        let key_prefix = base
            .iter()
            .filter_map(|entry| entry.get("MessageId").and_then(Value::as_str))
            .find_map(|id| {
                let (prefix, key) = id.rsplit_once('.')?;
                is_dell_style_key(key).then(|| prefix.to_owned())
            })
            .unwrap_or_else(|| DEFAULT_KEY_PREFIX.to_owned());
        let next_id = base
            .iter()
            .filter_map(|entry| entry.get("Id").and_then(Value::as_str)?.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        Self {
            service_path,
            entries_path,
            template,
            base: Arc::new(base),
            added: VecDeque::new(),
            expanded,
            entry_type,
            key_prefix,
            next_id,
        }
    }

    /// The `MessageId` for a Dell-style message key in this log.
    pub(crate) fn message_id(&self, key: &str) -> String {
        format!("{}.{key}", self.key_prefix)
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.base.len() + self.added.len()
    }

    /// Writes a new entry and returns its URI.
    pub(crate) fn append(&mut self, message: LogMessage) -> String {
        let mut id = self.next_id;
        // Ids of added entries only grow, so only entries that came with the data can clash.
        while self.is_base_entry(&format!("{}/{id}", self.entries_path)) {
            id += 1;
        }
        self.next_id = id + 1;
        let uri = format!("{}/{id}", self.entries_path);
        let entry = json!({
            "@odata.id": uri,
            "@odata.type": self.entry_type,
            "Id": id.to_string(),
            "Name": format!("Log Entry {id}"),
            "Created": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, false),
            "EntryType": "Event",
            "Severity": message.severity.as_str(),
            "Message": message.message,
            "MessageId": message.message_id,
            "MessageArgs": message.args,
        });
        self.added.push_back(entry);
        // The oldest entries are the last of `base`, then the first of `added`.
        while self.len() > MAX_ENTRIES {
            if Arc::make_mut(&mut self.base).pop().is_none() {
                self.added.pop_front();
            }
        }
        uri
    }

    /// Removes every entry.
    pub(crate) fn clear(&mut self) {
        self.base = Arc::new(Vec::new());
        self.added.clear();
    }

    /// Checks whether `uri` is an entry that came with the data.
    pub(crate) fn is_base_entry(&self, uri: &str) -> bool {
        self.base.iter().any(|entry| entry_uri(entry) == Some(uri))
    }

    /// Finds the entry at `uri`.
    pub(crate) fn find(&self, uri: &str) -> Option<&Value> {
        self.added
            .iter()
            .chain(self.base.iter())
            .find(|entry| entry_uri(entry) == Some(uri))
    }

    /// Builds the collection page that starts at `skip` with at most `top` members.
    pub(crate) fn page(&self, skip: usize, top: Option<usize>) -> Value {
        let total = self.len();
        let limit = top.unwrap_or(PAGE_SIZE);
        let members: Vec<Value> = self
            .added
            .iter()
            .rev()
            .chain(self.base.iter())
            .skip(skip)
            .take(limit)
            .map(|entry| {
                if self.expanded {
                    entry.clone()
                } else {
                    json!({ "@odata.id": entry_uri(entry).unwrap_or_default() })
                }
            })
            .collect();

        let mut body = self.template.clone();
        let shown = members.len();
        body.insert("Members".into(), Value::Array(members));
        body.insert("Members@odata.count".into(), json!(total));
        // `$top=0` gets no next link, which would point back at the same empty page.
        if shown > 0 && skip + shown < total {
            let mut next = format!("{}?$skip={}", self.entries_path, skip + shown);
            if let Some(top) = top {
                next.push_str(&format!("&$top={top}"));
            }
            body.insert("Members@odata.nextLink".into(), Value::String(next));
        }
        Value::Object(body)
    }
}

/// Registry prefix of new Dell-style entries when the log has none: iDRAC 9 firmware 6.x.
const DEFAULT_KEY_PREFIX: &str = "IDRAC.2.9";

/// Whether `key` looks like an iDRAC message key: three capital letters and three or four
/// digits (`LOG007`, `USR0030`).
fn is_dell_style_key(key: &str) -> bool {
    (6..=7).contains(&key.len())
        && key.chars().take(3).all(|c| c.is_ascii_uppercase())
        && key.chars().skip(3).all(|c| c.is_ascii_digit())
}

fn entry_uri(entry: &Value) -> Option<&str> {
    entry.get("@odata.id").and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(count: usize) -> LogStore {
        let base = (0..count)
            .rev()
            .map(|i| json!({"@odata.id": format!("/log/Entries/{i}"), "Id": i.to_string()}))
            .collect();
        LogStore::new(None, "/log/Entries".into(), Map::new(), base, true)
    }

    fn message() -> LogMessage {
        LogMessage {
            message_id: "IDRAC.2.9.USR0030".into(),
            message: "m".into(),
            args: vec![],
            severity: Severity::Ok,
        }
    }

    #[test]
    fn first_page_has_fifty_newest_and_next_link() {
        let store = store_with(120);
        let page = store.page(0, None);
        assert_eq!(page["Members"].as_array().unwrap().len(), 50);
        assert_eq!(page["Members"][0]["Id"], "119");
        assert_eq!(page["Members@odata.count"], 120);
        assert_eq!(page["Members@odata.nextLink"], "/log/Entries?$skip=50");
    }

    #[test]
    fn empty_page_has_no_next_link() {
        let page = store_with(10).page(0, Some(0));
        assert!(page.get("Members@odata.nextLink").is_none());
    }

    #[test]
    fn last_page_has_no_next_link() {
        let page = store_with(120).page(100, None);
        assert_eq!(page["Members"].as_array().unwrap().len(), 20);
        assert!(page.get("Members@odata.nextLink").is_none());
    }

    #[test]
    fn message_id_uses_prefix_of_existing_entries() {
        let base = vec![json!({"@odata.id": "/l/1", "Id": "1", "MessageId": "IDRAC.2.7.LOG007"})];
        let store = LogStore::new(None, "/l".into(), Map::new(), base, true);
        assert_eq!(store.message_id("USR0030"), "IDRAC.2.7.USR0030");
        assert_eq!(store_with(1).message_id("USR0030"), "IDRAC.2.9.USR0030");
    }

    #[test]
    fn appended_entry_is_served_first_with_next_id() {
        let mut store = store_with(3);
        let uri = store.append(message());
        assert_eq!(uri, "/log/Entries/3");
        assert_eq!(store.page(0, None)["Members"][0]["Id"], "3");
        assert!(store.find("/log/Entries/3").is_some());
    }

    #[test]
    fn full_log_drops_oldest_entries() {
        let mut store = store_with(5);
        for _ in 0..MAX_ENTRIES {
            store.append(message());
        }
        assert_eq!(store.len(), MAX_ENTRIES);
        assert!(store.find("/log/Entries/4").is_none());
        let newest = store.append(message());
        assert_eq!(store.len(), MAX_ENTRIES);
        assert!(store.find("/log/Entries/5").is_none());
        let last = store.page(MAX_ENTRIES - 1, None);
        assert_eq!(last["Members@odata.count"], MAX_ENTRIES);
        assert_eq!(last["Members"][0]["Id"], "6");
        assert_eq!(store.page(0, Some(1))["Members"][0]["@odata.id"], newest);
    }

    #[test]
    fn clip_shortens_long_text_with_ellipsis() {
        assert_eq!(clip("root"), "root");
        let long = "N".repeat(900);
        let clipped = clip(&long);
        assert_eq!(clipped.chars().count(), MAX_TEXT_CHARS + 1);
        assert!(clipped.ends_with('…'));
        assert_eq!(clip(&"é".repeat(70)).chars().count(), MAX_TEXT_CHARS + 1);
    }
}
