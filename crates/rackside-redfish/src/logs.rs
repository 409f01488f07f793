//! Logs: entries of every log service under the managers and systems, newest first.
//!
//! Log collections are paged (an iDRAC lifecycle log returns 50 entries per page, newest
//! first) and new entries appear at the top while a client pages, which pushes older
//! entries to later pages. Paging by `$skip` therefore never skips an entry, but can show
//! one twice, so entries are de-duplicated by `@odata.id` (else `Id`).

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset};
use futures_util::future::join_all;
use serde::Serialize;
use serde_json::Value;

use crate::client::{request_path, with_skip, MAX_PAGES};
use crate::crawl::{service_root, Unreadable};
use crate::decode;
use crate::transport::Transport;
use crate::{Client, Error};

/// Pages in a row that add no new entry before paging stops, for services that ignore
/// `$skip` and return the same page again.
const MAX_PAGES_WITHOUT_NEW_ENTRIES: usize = 2;

/// Severity of a log entry, ordered OK < Warning < Critical.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Severity {
    /// Informational (`OK`); also used for entries without a known severity.
    #[serde(rename = "OK")]
    Ok,
    /// `Warning`.
    Warning,
    /// `Critical`.
    Critical,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Ok => "OK",
            Severity::Warning => "Warning",
            Severity::Critical => "Critical",
        })
    }
}

impl FromStr for Severity {
    type Err = String;

    /// Parses `ok`, `warning` or `critical` in any case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "ok" | "info" | "informational" => Ok(Severity::Ok),
            "warning" | "warn" => Ok(Severity::Warning),
            "critical" => Ok(Severity::Critical),
            other => Err(format!(
                "unknown severity {other:?}; use ok, warning or critical"
            )),
        }
    }
}

/// Filters and limit for reading log entries.
#[derive(Clone, Debug)]
pub struct LogQuery {
    /// Maximum number of entries returned over all logs; 0 means no limit.
    pub limit: usize,
    /// Lowest severity returned, if any.
    pub min_severity: Option<Severity>,
    /// Only entries created at or after this instant; entries with an unreadable date are
    /// kept.
    pub since: Option<DateTime<FixedOffset>>,
}

impl Default for LogQuery {
    fn default() -> Self {
        LogQuery {
            limit: 50,
            min_severity: None,
            since: None,
        }
    }
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LogRecord {
    /// The log's name, such as "Lifecycle Log" or "SEL".
    pub log: String,
    /// The entry's `Id`.
    pub id: String,
    /// The entry's resource path.
    pub path: String,
    /// `Created`, when it names a date.
    pub created: Option<DateTime<FixedOffset>>,
    /// `Created` as the service sent it.
    pub created_raw: Option<String>,
    /// `Severity`.
    pub severity: Severity,
    /// `Message`, else the `MessageId` when the entry has no text.
    pub message: String,
    /// `MessageId`, such as "IDRAC.2.7.USR0030".
    pub message_id: Option<String>,
}

/// Reads entries of every log service under the managers and the systems, newest first.
///
/// # Errors
///
/// Errors that end the walk (connect, TLS, 401, session limit). A log service that cannot
/// be read is skipped; [`logs_with_gaps`] also returns which ones were skipped and why.
pub async fn logs<T: Transport>(
    client: &Client<T>,
    query: &LogQuery,
) -> Result<Vec<LogRecord>, Error> {
    Ok(logs_with_gaps(client, query).await?.records)
}

/// Log entries and the log services or collections that could not be read.
#[derive(Clone, Debug, Serialize)]
pub struct LogReport {
    /// Entries, newest first, at most `limit`.
    pub records: Vec<LogRecord>,
    /// Log services or collections skipped because they could not be read.
    pub unreadable: Vec<Unreadable>,
}

/// Reads entries like [`logs`] and also reports every log that could not be read, so a
/// caller can tell an empty log from one it never saw.
///
/// # Errors
///
/// Errors that end the walk (connect, TLS, 401, session limit).
pub async fn logs_with_gaps<T: Transport>(
    client: &Client<T>,
    query: &LogQuery,
) -> Result<LogReport, Error> {
    let (services, mut unreadable) = log_services(client).await?;
    let mut records = Vec::new();
    for service in services {
        let Some(entries_path) = decode::link(&service, "Entries") else {
            continue;
        };
        let name = log_name(&service);
        match read_log(client, &name, &entries_path, query).await {
            Ok(entries) => records.extend(entries),
            Err(error) if error.is_fatal() => return Err(error),
            Err(error) => {
                tracing::debug!(%entries_path, %error, "log unreadable, skipping");
                unreadable.push(Unreadable {
                    path: entries_path,
                    error: error.to_string(),
                });
            }
        }
    }
    sort_newest_first(&mut records);
    if query.limit > 0 {
        records.truncate(query.limit);
    }
    Ok(LogReport {
        records,
        unreadable,
    })
}

/// Finds the log services of every manager and system, each once.
async fn log_services<T: Transport>(
    client: &Client<T>,
) -> Result<(Vec<Value>, Vec<Unreadable>), Error> {
    let root = service_root(client).await?;
    let mut unreadable = Vec::new();
    let mut owners = Vec::new();
    for key in ["Managers", "Systems"] {
        let Some(path) = decode::link(&root, key) else {
            continue;
        };
        match client.members_partial(&path).await {
            Ok((members, _)) => owners.extend(members),
            Err(error) if error.is_fatal() => return Err(error),
            Err(error) => {
                tracing::debug!(%path, %error, "collection unreadable, skipping");
                unreadable.push(Unreadable {
                    path,
                    error: error.to_string(),
                });
            }
        }
    }

    let collections: Vec<String> = owners
        .iter()
        .filter_map(|owner| decode::link(&owner.body, "LogServices"))
        .collect();
    let read = join_all(collections.iter().map(|path| client.members_partial(path))).await;

    let mut seen = HashSet::new();
    let mut services = Vec::new();
    for (path, result) in collections.iter().zip(read) {
        match result {
            Ok((members, _)) => {
                for service in members {
                    if seen.insert(service.path.clone()) {
                        services.push(service.body);
                    }
                }
            }
            Err(error) if error.is_fatal() => return Err(error),
            Err(error) => {
                tracing::debug!(%path, %error, "log services unreadable, skipping");
                unreadable.push(Unreadable {
                    path: path.clone(),
                    error: error.to_string(),
                });
            }
        }
    }
    Ok((services, unreadable))
}

/// Names a log the way administrators know it.
fn log_name(service: &Value) -> String {
    let id = decode::text(service, "Id").unwrap_or_default();
    if id.eq_ignore_ascii_case("lclog") {
        return "Lifecycle Log".to_owned();
    }
    if id.eq_ignore_ascii_case("sel")
        || decode::text(service, "LogEntryType").as_deref() == Some("SEL")
    {
        return "SEL".to_owned();
    }
    match decode::text(service, "Name") {
        // Some services name every log service "LogService"; the Id is more telling.
        Some(name) if !name.replace(' ', "").eq_ignore_ascii_case("logservice") => name,
        _ => id,
    }
}

/// Pages through one log's entries.
///
/// A log served newest first stops as soon as `limit` matching entries are read or an
/// entry is older than `since`. A log served oldest first is read to the end (up to
/// [`MAX_PAGES`]) and sorted.
async fn read_log<T: Transport>(
    client: &Client<T>,
    log: &str,
    entries_path: &str,
    query: &LogQuery,
) -> Result<Vec<LogRecord>, Error> {
    let first_path = request_path(entries_path)?;
    let mut seen = HashSet::new();
    let mut visited = HashSet::new();
    let mut records = Vec::new();
    let mut received = 0_usize;
    let mut pages_without_new = 0;
    let mut oldest_first: Option<bool> = None;
    let mut next = Some(first_path.clone());

    while let Some(page_path) = next.take() {
        if visited.len() >= MAX_PAGES || !visited.insert(page_path.clone()) {
            tracing::debug!(%page_path, "stopping: page limit reached or page seen before");
            break;
        }
        let page = client.get(&page_path).await?;
        let members = decode::array(&page.body, "Members");
        received += members.len();
        let entries = expand_entries(client, members).await?;

        let mut new_entries = 0;
        let mut reached_since = false;
        let page_records: Vec<LogRecord> =
            entries.iter().map(|entry| log_record(log, entry)).collect();
        if oldest_first.is_none() {
            oldest_first = detect_oldest_first(&page_records);
        }
        for record in page_records {
            let key = if record.path.is_empty() {
                record.id.clone()
            } else {
                record.path.clone()
            };
            if !seen.insert(key) {
                continue;
            }
            new_entries += 1;
            if let (Some(since), Some(created)) = (query.since, record.created) {
                if created < since {
                    reached_since = true;
                    continue;
                }
            }
            if query.min_severity.is_some_and(|min| record.severity < min) {
                continue;
            }
            records.push(record);
        }

        pages_without_new = if new_entries == 0 {
            pages_without_new + 1
        } else {
            0
        };
        let newest_first = oldest_first != Some(true);
        let enough = query.limit > 0 && records.len() >= query.limit;
        if newest_first && (enough || reached_since) {
            tracing::debug!(%log, entries = records.len(), "stopping early: limit or since reached");
            break;
        }
        if pages_without_new >= MAX_PAGES_WITHOUT_NEW_ENTRIES {
            tracing::debug!(%log, "stopping: pages repeat without new entries");
            break;
        }

        let count = decode::unsigned(&page.body, "Members@odata.count").map(|count| count as usize);
        next = match decode::text(&page.body, "Members@odata.nextLink") {
            Some(link) => Some(with_skip_of(&request_path(&link)?, &first_path, received)),
            None if !members.is_empty() && count.is_some_and(|count| received < count) => {
                Some(with_skip(&first_path, received))
            }
            None => None,
        };
    }

    if oldest_first == Some(true) {
        sort_newest_first(&mut records);
    }
    Ok(records)
}

/// Returns the next page to read. A `nextLink` that pages the same collection by `$skip`
/// is rebuilt with the number of entries actually received, because that is the offset
/// the service means. Any other `nextLink` is followed as it is.
fn with_skip_of(next_link: &str, first_path: &str, received: usize) -> String {
    let (link_base, link_query) = next_link.split_once('?').unwrap_or((next_link, ""));
    let (first_base, _) = first_path.split_once('?').unwrap_or((first_path, ""));
    let pages_by_skip = link_query
        .split('&')
        .any(|part| part.starts_with("$skip=") || part.starts_with("%24skip="));
    if pages_by_skip && link_base.trim_end_matches('/') == first_base.trim_end_matches('/') {
        with_skip(first_path, received)
    } else {
        next_link.to_owned()
    }
}

/// Returns log entry bodies, reading those that the page lists only as links.
async fn expand_entries<T: Transport>(
    client: &Client<T>,
    members: &[Value],
) -> Result<Vec<Value>, Error> {
    let reads = join_all(members.iter().map(|member| async move {
        let is_link = member
            .as_object()
            .is_some_and(|object| object.keys().all(|key| key.starts_with("@odata.")));
        match (is_link, decode::odata_id(member)) {
            (true, Some(path)) => client.get(&path).await.map(|resource| Some(resource.body)),
            (true, None) => Ok(None),
            (false, _) => Ok(Some(member.clone())),
        }
    }))
    .await;
    let mut entries = Vec::new();
    for read in reads {
        match read {
            Ok(Some(entry)) => entries.push(entry),
            Ok(None) => {}
            Err(error) if error.is_fatal() => return Err(error),
            Err(error) => tracing::debug!(%error, "log entry unreadable, skipping"),
        }
    }
    Ok(entries)
}

fn log_record(log: &str, entry: &Value) -> LogRecord {
    let created_raw = decode::text(entry, "Created");
    LogRecord {
        log: log.to_owned(),
        id: decode::identifier(entry),
        path: decode::odata_id(entry).unwrap_or_default(),
        created: created_raw.as_deref().and_then(decode::parse_timestamp),
        created_raw,
        severity: decode::text(entry, "Severity")
            .and_then(|text| text.parse().ok())
            .unwrap_or(Severity::Ok),
        message: decode::text(entry, "Message")
            .or_else(|| decode::text(entry, "MessageId"))
            .unwrap_or_default(),
        message_id: decode::text(entry, "MessageId"),
    }
}

/// Returns `Some(true)` when a page's dated entries run from old to new.
fn detect_oldest_first(records: &[LogRecord]) -> Option<bool> {
    let mut dates = records.iter().filter_map(|record| record.created);
    let first = dates.next()?;
    let last = dates.next_back()?;
    if first == last {
        return None;
    }
    Some(first < last)
}

/// Sorts by `Created`, newest first; entries without a readable date keep their relative
/// order after the dated ones.
fn sort_newest_first(records: &mut [LogRecord]) {
    records.sort_by(|left, right| match (left.created, right.created) {
        (Some(left), Some(right)) => right.cmp(&left),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn severity_orders_ok_warning_critical() {
        assert!(Severity::Ok < Severity::Warning);
        assert!(Severity::Warning < Severity::Critical);
        assert_eq!("WARNING".parse::<Severity>(), Ok(Severity::Warning));
        assert!("loud".parse::<Severity>().is_err());
    }

    #[test]
    fn log_name_recognises_dell_logs() {
        assert_eq!(
            log_name(&json!({"Id": "Lclog", "Name": "LC Logs"})),
            "Lifecycle Log"
        );
        assert_eq!(log_name(&json!({"Id": "Sel", "Name": "SEL Log"})), "SEL");
        assert_eq!(
            log_name(&json!({"Id": "Log", "Name": "Manager Log"})),
            "Manager Log"
        );
    }

    #[test]
    fn next_link_with_skip_is_recomputed_from_received() {
        let base = "/redfish/v1/Managers/1/LogServices/Lclog/Entries";
        assert_eq!(
            with_skip_of(&format!("{base}?$skip=50"), base, 50),
            format!("{base}?$skip=50")
        );
        assert_eq!(with_skip_of("/other?page=2", base, 50), "/other?page=2");
    }

    #[test]
    fn sort_puts_undated_entries_last() {
        let record = |id: &str, created: Option<&str>| LogRecord {
            log: "SEL".into(),
            id: id.into(),
            path: String::new(),
            created: created.and_then(decode::parse_timestamp),
            created_raw: created.map(str::to_owned),
            severity: Severity::Ok,
            message: String::new(),
            message_id: None,
        };
        let mut records = vec![
            record("a", Some("2024-01-01T00:00:00Z")),
            record("b", None),
            record("c", Some("2024-02-01T00:00:00Z")),
        ];
        sort_newest_first(&mut records);
        let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["c", "a", "b"]);
    }

    /// A BMC whose lifecycle log gains `shift` new entries before every page is served,
    /// as an iDRAC does when each login writes an entry (case: the newest page shifts).
    struct ShiftingLog {
        state: std::sync::Mutex<LogState>,
        shift: usize,
        page_size: usize,
        oldest_first: bool,
    }

    struct LogState {
        /// Entry numbers, newest first.
        entries: Vec<u64>,
        page_requests: usize,
    }

    const ENTRIES: &str = "/redfish/v1/Managers/iDRAC.Embedded.1/LogServices/Lclog/Entries";

    impl ShiftingLog {
        fn new(initial: u64, shift: usize, oldest_first: bool) -> Self {
            ShiftingLog {
                state: std::sync::Mutex::new(LogState {
                    entries: (1..=initial).rev().collect(),
                    page_requests: 0,
                }),
                shift,
                page_size: 50,
                oldest_first,
            }
        }

        fn page_requests(&self) -> usize {
            self.state.lock().unwrap().page_requests
        }

        fn entry(number: u64) -> Value {
            let severity = ["OK", "Warning", "Critical"][(number % 3) as usize];
            let created = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00-06:00")
                .unwrap()
                + chrono::Duration::minutes(number as i64);
            json!({
                "@odata.id": format!("{ENTRIES}/{number}"),
                "Id": number.to_string(),
                "Created": created.format("%Y-%m-%dT%H:%M:%S%z").to_string(),
                "Severity": severity,
                "Message": format!("Successfully logged in using root, from 192.0.2.{} and REDFISH.", number % 250),
                "MessageId": "IDRAC.2.8.USR0030"
            })
        }

        fn page(&self, skip: usize) -> Value {
            let mut state = self.state.lock().unwrap();
            state.page_requests += 1;
            for _ in 0..self.shift {
                let newest = state.entries.first().copied().unwrap_or(0) + 1;
                state.entries.insert(0, newest);
            }
            let mut ordered = state.entries.clone();
            if self.oldest_first {
                ordered.reverse();
            }
            let members: Vec<Value> = ordered
                .iter()
                .skip(skip)
                .take(self.page_size)
                .map(|n| Self::entry(*n))
                .collect();
            let mut body = json!({
                "@odata.id": ENTRIES,
                "Members": members,
                "Members@odata.count": ordered.len(),
            });
            if skip + self.page_size < ordered.len() {
                body["Members@odata.nextLink"] =
                    json!(format!("{ENTRIES}?$skip={}", skip + self.page_size));
            }
            body
        }
    }

    impl Transport for ShiftingLog {
        async fn send(&self, request: crate::Request) -> Result<crate::Response, Error> {
            assert_eq!(request.method, http::Method::GET);
            assert!(!request.headers.contains_key("if-match"));
            let manager = "/redfish/v1/Managers/iDRAC.Embedded.1";
            let body = match request.path.as_str() {
                "/redfish/v1" => json!({"@odata.id": "/redfish/v1", "RedfishVersion": "1.13.1",
                    "Managers": {"@odata.id": "/redfish/v1/Managers"}}),
                "/redfish/v1/Managers" => json!({"Members": [{"@odata.id": manager}]}),
                path if path == manager => json!({"Id": "iDRAC.Embedded.1",
                    "LogServices": {"@odata.id": format!("{manager}/LogServices")}}),
                path if path == format!("{manager}/LogServices") => json!({"Members": [
                    {"@odata.id": format!("{manager}/LogServices/Lclog")}]}),
                path if path == format!("{manager}/LogServices/Lclog") => json!({"Id": "Lclog",
                    "Name": "LC Logs", "Entries": {"@odata.id": ENTRIES}}),
                path if path == ENTRIES => self.page(0),
                path => {
                    let skip = path
                        .strip_prefix(&format!("{ENTRIES}?$skip="))
                        .and_then(|skip| skip.parse().ok())
                        .unwrap_or_else(|| panic!("unexpected path {path}"));
                    self.page(skip)
                }
            };
            Ok(crate::testing::json(http::StatusCode::OK, &body))
        }
    }

    fn numbers(records: &[LogRecord]) -> Vec<u64> {
        records
            .iter()
            .map(|record| record.id.parse().unwrap())
            .collect()
    }

    fn client(log: ShiftingLog) -> Client<ShiftingLog> {
        Client::new(log, crate::RetryPolicy::default())
    }

    #[tokio::test]
    async fn shifting_log_pages_without_duplicates_or_gaps() {
        let client = client(ShiftingLog::new(120, 3, false));
        let query = LogQuery {
            limit: 0,
            ..LogQuery::default()
        };
        let records = logs(&client, &query).await.expect("logs");
        let numbers = numbers(&records);

        let unique: HashSet<u64> = numbers.iter().copied().collect();
        assert_eq!(unique.len(), numbers.len(), "an entry was shown twice");
        for original in 1..=120 {
            assert!(unique.contains(&original), "entry {original} was skipped");
        }
        assert!(
            numbers.windows(2).all(|pair| pair[0] > pair[1]),
            "not newest first"
        );
        assert!(records.iter().all(|record| record.log == "Lifecycle Log"));
    }

    #[tokio::test]
    async fn shifting_log_stops_at_limit() {
        let client = client(ShiftingLog::new(500, 3, false));
        let query = LogQuery {
            limit: 60,
            ..LogQuery::default()
        };
        let records = logs(&client, &query).await.expect("logs");
        let numbers = numbers(&records);
        // The first page is read after 3 logins, so its newest entry is 503. Three more
        // logins shift the second page, so its first 3 entries repeat and are dropped.
        let expected: Vec<u64> = (444..=503).rev().collect();
        assert_eq!(numbers, expected);
        assert_eq!(client.transport().page_requests(), 2);
    }

    #[tokio::test]
    async fn since_stops_paging_early() {
        let client = client(ShiftingLog::new(500, 0, false));
        // Entry n is created n minutes after 2024-01-01T06:00Z.
        let base = decode::parse_timestamp("2024-01-01T06:00:00Z").unwrap();
        let query = LogQuery {
            limit: 0,
            since: Some(base + chrono::Duration::minutes(450)),
            ..LogQuery::default()
        };
        let records = logs(&client, &query).await.expect("logs");
        assert_eq!(numbers(&records), (450..=500).rev().collect::<Vec<u64>>());
        assert_eq!(
            client.transport().page_requests(),
            2,
            "paging stopped at the first older entry"
        );
    }

    #[tokio::test]
    async fn severity_filter_keeps_warning_and_above() {
        let client = client(ShiftingLog::new(90, 0, false));
        let query = LogQuery {
            limit: 10,
            min_severity: Some(Severity::Warning),
            since: None,
        };
        let records = logs(&client, &query).await.expect("logs");
        assert_eq!(records.len(), 10);
        assert!(records
            .iter()
            .all(|record| record.severity >= Severity::Warning));
        assert_eq!(numbers(&records), [89, 88, 86, 85, 83, 82, 80, 79, 77, 76]);
    }

    #[tokio::test]
    async fn oldest_first_log_is_sorted_newest_first() {
        let client = client(ShiftingLog::new(120, 0, true));
        let query = LogQuery {
            limit: 5,
            ..LogQuery::default()
        };
        let records = logs(&client, &query).await.expect("logs");
        assert_eq!(numbers(&records), [120, 119, 118, 117, 116]);
        assert_eq!(
            client.transport().page_requests(),
            3,
            "an oldest-first log is read to the end"
        );
        assert_eq!(
            records[0].created_raw.as_deref(),
            Some("2024-01-01T02:00:00-0600")
        );
    }
}
