//! Integration tests: the client against real Redfish data and real servers.
//!
//! - every mockup and vendor capture under `$RACKSIDE_TEST_DATA/redfish/mockups`, served
//!   from disk through an in-memory transport;
//! - `HttpsTransport` against a small TLS server on loopback (body cap, redirects,
//!   headers, TLS failure);
//! - `sushy-emulator --fake` from the workspace's Python virtual environment, over HTTPS
//!   with Basic authentication.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use rackside_redfish::{
    health, inventory, logs, AuthMode, Client, Credentials, Error, HttpsTransport, Limits, LogQuery, Request,
    Response, RetryPolicy, Secret, Severity, Transport,
};

const STANDARD_HEADERS: [&str; 6] = [
    "accept",
    "content-type",
    "odata-version",
    "if-match",
    "x-auth-token",
    "authorization",
];

/// Returns the shared test data folder, or `None` after printing why the test is skipped.
fn test_data() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("RACKSIDE_TEST_DATA") {
        return Some(PathBuf::from(dir));
    }
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    if default.is_dir() {
        return Some(default);
    }
    println!("skipped: RACKSIDE_TEST_DATA not set and ../shared not found");
    None
}

// ---------------------------------------------------------------------------------------
// Mockups served from disk
// ---------------------------------------------------------------------------------------

/// Serves a DMTF-format mockup folder (short form, or long form with `redfish/v1/`) the way
/// a mockup server does: `GET /redfish/v1/X` returns `X/index.json`. Queries are ignored.
struct MockupTransport {
    /// The folder that corresponds to `/redfish/v1`.
    service_dir: PathBuf,
    requests: Mutex<Vec<String>>,
    violations: Mutex<Vec<String>>,
}

impl MockupTransport {
    fn new(mockup: &Path) -> Self {
        let long_form = mockup.join("redfish/v1");
        let service_dir = if long_form.join("index.json").is_file() {
            long_form
        } else {
            mockup.to_path_buf()
        };
        MockupTransport {
            service_dir,
            requests: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
        }
    }

    fn file_for(&self, path: &str) -> Option<PathBuf> {
        let path = path.split('?').next()?;
        let rest = path.strip_prefix("/redfish/v1")?.trim_matches('/');
        let rest = rest.replace("%20", " ");
        if rest.split('/').any(|segment| segment == "..") {
            return None;
        }
        let file = self.service_dir.join(rest).join("index.json");
        file.is_file().then_some(file)
    }
}

impl Transport for MockupTransport {
    async fn send(&self, request: Request) -> Result<Response, Error> {
        for name in request.headers.keys() {
            if !STANDARD_HEADERS.contains(&name.as_str()) {
                self.violations.lock().unwrap().push(format!("non-standard header {name}"));
            }
        }
        if request.method == Method::GET && request.headers.contains_key("if-match") {
            self.violations.lock().unwrap().push(format!("If-Match on GET {}", request.path));
        }
        self.requests.lock().unwrap().push(request.path.clone());

        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let (status, body) = match (request.method == Method::GET, self.file_for(&request.path)) {
            (true, Some(file)) => (StatusCode::OK, Bytes::from(std::fs::read(file).unwrap())),
            (true, None) => (
                StatusCode::NOT_FOUND,
                Bytes::from_static(br#"{"error":{"code":"Base.1.0.ResourceMissingAtURI","message":"not in mockup"}}"#),
            ),
            (false, _) => (
                StatusCode::METHOD_NOT_ALLOWED,
                Bytes::from_static(br#"{"error":{"code":"Base.1.0.OperationNotAllowed","message":"read-only mockup"}}"#),
            ),
        };
        Ok(Response { status, headers, body })
    }
}

fn mockup_dirs(data: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for group in ["mockups/dmtf", "mockups/vendor-captures"] {
        let group = data.join("redfish").join(group);
        let Ok(entries) = std::fs::read_dir(&group) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.path().is_dir() {
                dirs.push(entry.path());
            }
        }
    }
    dirs.sort();
    dirs
}

fn mockup_client(mockup: &Path) -> Client<MockupTransport> {
    let retry = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    Client::new(MockupTransport::new(mockup), retry)
}

#[tokio::test]
async fn every_mockup_gives_health_inventory_and_logs() {
    let Some(data) = test_data() else { return };
    let mockups = mockup_dirs(&data);
    assert!(mockups.len() >= 7, "expected the DMTF mockups and vendor captures, found {mockups:?}");

    for mockup in mockups {
        let name = mockup.file_name().unwrap().to_string_lossy().into_owned();
        let mut client = mockup_client(&mockup);
        client.connect().await.unwrap_or_else(|e| panic!("{name}: connect: {e}"));

        let report = health(&client).await.unwrap_or_else(|e| panic!("{name}: health: {e}"));
        assert!(!report.systems.is_empty(), "{name}: no systems in health report");
        for system in &report.systems {
            assert!(!system.id.is_empty(), "{name}: system without id");
        }

        let inventory = inventory(&client).await.unwrap_or_else(|e| panic!("{name}: inventory: {e}"));
        assert_eq!(inventory.systems.len(), report.systems.len(), "{name}");
        let processors: usize = inventory.systems.iter().map(|s| s.processors.len()).sum();
        assert!(processors > 0, "{name}: no processors found");

        let records = logs(&client, &LogQuery { limit: 20, ..LogQuery::default() })
            .await
            .unwrap_or_else(|e| panic!("{name}: logs: {e}"));
        let ids: HashSet<(&str, &str)> = records.iter().map(|r| (r.log.as_str(), r.path.as_str())).collect();
        assert_eq!(ids.len(), records.len(), "{name}: duplicate log entries");
        assert!(records.len() <= 20, "{name}: limit ignored");

        check_known_values(&name, &report, &inventory, &records);

        let violations = client.transport().violations.lock().unwrap().clone();
        assert!(violations.is_empty(), "{name}: {violations:?}");
        println!(
            "{name}: {} systems, {} problems, {} processors, {} firmware, {} log entries, {} requests",
            report.systems.len(),
            report.systems.iter().map(|s| s.problems.len()).sum::<usize>(),
            processors,
            inventory.systems.iter().map(|s| s.firmware.len()).sum::<usize>(),
            records.len(),
            client.transport().requests.lock().unwrap().len(),
        );
    }
}

/// Checks values known from the mockups' files.
fn check_known_values(
    name: &str,
    report: &rackside_redfish::HealthReport,
    inventory: &rackside_redfish::Inventory,
    records: &[rackside_redfish::LogRecord],
) {
    match name {
        "dell" => {
            let system = &inventory.systems[0];
            assert_eq!(system.system.service_tag.as_deref(), Some("TSTAG01"));
            assert_eq!(report.systems[0].service_tag.as_deref(), Some("TSTAG01"));
            assert_eq!(system.system.model.as_deref(), Some("PowerEdge R750"));
            assert_eq!(system.system.bios_version.as_deref(), Some("1.8.2"));
            assert_eq!(system.power_supplies.len(), 2);
            // Case 10: iDRAC sends "00:00:00Z" as a firmware release date.
            let bare_time = system
                .firmware
                .iter()
                .find(|f| f.release_date_raw.as_deref() == Some("00:00:00Z"))
                .expect("firmware with a bare-time release date");
            assert_eq!(bare_time.release_date, None);
            let lifecycle: Vec<_> = records.iter().filter(|r| r.log == "Lifecycle Log").collect();
            let sel: Vec<_> = records.iter().filter(|r| r.log == "SEL").collect();
            assert_eq!(lifecycle.len(), 5, "{records:#?}");
            assert_eq!(sel.len(), 5, "{records:#?}");
            assert_eq!(lifecycle[0].id, "83434");
            assert!(lifecycle[0].message.starts_with("Successfully logged in using root"));
            assert_eq!(lifecycle[0].message_id.as_deref(), Some("IDRAC.2.7.USR0030"));
            assert!(lifecycle.iter().any(|r| r.severity == Severity::Critical));
        }
        "public-rackmount1" => {
            let problem = report.systems[0]
                .problems
                .iter()
                .find(|p| p.path.ends_with("PowerSupplies/Bay1"))
                .expect("power supply bay 1 problem");
            assert!(problem.reason.contains("predicted failure"), "{}", problem.reason);
            assert_eq!(report.systems[0].health_rollup.as_deref(), Some("Warning"));
        }
        "public-bladed" => {
            assert_eq!(report.systems.len(), 4);
            let reasons: Vec<&str> = report
                .systems
                .iter()
                .flat_map(|s| s.problems.iter().map(|p| p.reason.as_str()))
                .collect();
            assert!(reasons.contains(&"reading 77 °C above upper caution 75 °C"), "{reasons:?}");
        }
        "hpe" => {
            assert!(records.iter().any(|r| r.log == "Integrated Management Log"), "{records:#?}");
            // iLO writes "0000-00-00T00:00:00Z" for some security log entries.
            assert!(records.iter().any(|r| r.created.is_none() && r.created_raw.is_some()));
        }
        "lenovo" => {
            assert!(inventory.systems[0].firmware.len() > 10);
            assert!(records.iter().any(|r| r.log == "PlatformLog"), "{records:#?}");
        }
        _ => {}
    }
}
