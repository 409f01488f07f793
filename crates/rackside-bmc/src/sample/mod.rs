//! The embedded sample server: a made-up 1U two-socket rack server, the "Rackside R1U-2S"
//! with service tag `RKS1U01`, written for this project as a Redfish resource tree.
//!
//! [`sample_server`] returns every static resource as a `(path, body)` pair plus the two logs
//! as lists of `LogEntry` bodies. The HTTP core serves the parts that change at run time
//! itself: the log `Entries` collections (paging, newest first), the session collection
//! ([`SESSIONS_PATH`]), the account collection and its members ([`ACCOUNTS_PATH`]) and
//! `$metadata`. The task collection in the tree is empty, so a core that runs tasks serves its
//! own list at that URI. Every lifecycle `MessageId` resolves in the `RacksideEvent` message
//! registry the tree serves below `/redfish/v1/Registries`.
//!
//! The bodies use schema versions of DMTF release 2025.4: a unit test checks that
//! each `@odata.type` exists in the CSDL, and DMTF's `rf_service_validator` reports no failure
//! on the tree.
//!
//! The hardware carries two faults so that health reporting has something to report: fan 4
//! is `Critical` (speed below its lower critical threshold) and the drive in bay 5 is
//! `Warning` (predictive failure). Both appear in `Status.Conditions` of the component and
//! of the system, and as the two newest lifecycle log entries.
//!
//! Everything is computed from constants and a seeded generator, so two calls return equal
//! trees.

mod chassis;
mod logs;
mod manager;
mod registry;
mod services;
mod system;
#[cfg(test)]
mod tests;

use serde_json::{json, Map, Value};

pub use registry::{lifecycle_message, MESSAGE_REGISTRY};

/// Service tag of the sample server, as `SKU` and `SerialNumber` of the system and chassis.
pub const SERVICE_TAG: &str = "RKS1U01";

/// URI of the session collection, which the core serves from its live sessions.
pub const SESSIONS_PATH: &str = "/redfish/v1/SessionService/Sessions";

/// URI of the account collection, which the core serves from its live accounts.
pub const ACCOUNTS_PATH: &str = "/redfish/v1/AccountService/Accounts";

const ROOT: &str = "/redfish/v1";
const SYSTEM: &str = "/redfish/v1/Systems/1";
const CHASSIS: &str = "/redfish/v1/Chassis/1";
const MANAGER: &str = "/redfish/v1/Managers/1";
const LIFECYCLE_LOG: &str = "/redfish/v1/Managers/1/LogServices/Lclog/Entries";
const SEL: &str = "/redfish/v1/Managers/1/LogServices/Sel/Entries";

/// Product name shown in the service root and as the system model.
const PRODUCT: &str = "Rackside R1U-2S";
const MANUFACTURER: &str = "Rackside";

/// The embedded sample server: static resources and the two logs.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleServer {
    /// Every static resource as URI path and GET body, including `/redfish/v1` and the
    /// collections. The log entries, sessions, accounts and `$metadata` are not in here.
    pub resources: Vec<(String, Value)>,
    /// Lifecycle log entries, oldest first, with `Id` values `1`, `2`, ... in order.
    pub lifecycle_log: Vec<Value>,
    /// System event log (SEL) entries, oldest first, with `Id` values `1`, `2`, ... in order.
    pub sel: Vec<Value>,
    /// URI of the lifecycle log `Entries` collection.
    pub lifecycle_log_path: String,
    /// URI of the SEL `Entries` collection.
    pub sel_path: String,
    /// URI of the computer system, whose reset action the core implements.
    pub system_path: String,
    /// URI of the BMC manager.
    pub manager_path: String,
    /// Service tag, as in the system's `SKU`.
    pub service_tag: String,
}

/// Builds the embedded sample server. The result is the same on every call.
pub fn sample_server() -> SampleServer {
    let logs = logs::build();
    let mut tree = Tree::default();

    services::add(&mut tree);
    registry::add(&mut tree);
    system::add(&mut tree, &logs.faults);
    chassis::add(&mut tree, &logs.faults);
    manager::add(&mut tree, &logs);

    SampleServer {
        resources: tree.resources,
        lifecycle_log: logs.lifecycle,
        sel: logs.sel,
        lifecycle_log_path: LIFECYCLE_LOG.to_owned(),
        sel_path: SEL.to_owned(),
        system_path: SYSTEM.to_owned(),
        manager_path: MANAGER.to_owned(),
        service_tag: SERVICE_TAG.to_owned(),
    }
}

/// The resources built so far, in insertion order.
#[derive(Default)]
struct Tree {
    resources: Vec<(String, Value)>,
}

impl Tree {
    /// Adds a resource, putting `@odata.id` first so that bodies read like a real service.
    fn add(&mut self, path: &str, body: Value) {
        let mut with_id = Map::new();
        with_id.insert("@odata.id".to_owned(), Value::from(path));
        if let Value::Object(fields) = body {
            with_id.extend(fields);
        }
        self.resources
            .push((path.to_owned(), Value::Object(with_id)));
    }

    /// Adds a resource collection of `kind` (for example `ProcessorCollection`) whose members
    /// are `members`.
    fn add_collection(&mut self, path: &str, kind: &str, name: &str, members: &[String]) {
        let links: Vec<Value> = members.iter().map(|member| link(member)).collect();
        self.add(
            path,
            json!({
                "@odata.type": format!("#{kind}.{kind}"),
                "Name": name,
                "Members@odata.count": links.len(),
                "Members": links,
            }),
        );
    }
}

/// Builds the reference object `{"@odata.id": path}`.
fn link(path: &str) -> Value {
    json!({ "@odata.id": path })
}

/// Builds the `Status` object of an enabled, healthy component.
fn status_ok() -> Value {
    json!({ "State": "Enabled", "Health": "OK" })
}

/// A fault of the sample hardware: the component, its health, the reason and the lifecycle
/// log entry that reported it.
#[derive(Debug, Clone)]
struct Fault {
    /// URI of the failing component.
    origin: String,
    /// `Warning` or `Critical`.
    severity: String,
    message_id: String,
    message: String,
    message_args: Vec<String>,
    /// RFC 3339 time of the lifecycle entry that reported the fault.
    timestamp: String,
    /// URI of that lifecycle entry.
    log_entry: String,
}

impl Fault {
    /// Converts the fault to a `Resource.Condition` object for `Status.Conditions`.
    fn condition(&self) -> Value {
        json!({
            "MessageId": self.message_id,
            "Message": self.message,
            "MessageArgs": self.message_args,
            "Severity": self.severity,
            "Timestamp": self.timestamp,
            "OriginOfCondition": link(&self.origin),
            "LogEntry": link(&self.log_entry),
        })
    }
}

/// The faults of the sample hardware, as reported by the newest lifecycle entries.
#[derive(Debug, Clone)]
struct Faults {
    /// Fan 4 turns below its lower critical threshold.
    fan: Fault,
    /// The drive in bay 5 reports a predictive failure.
    drive: Fault,
}
