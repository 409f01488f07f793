//! Scheduled polling of the BMCs the console has accounts for: health and a short inventory
//! through `rackside-redfish`. New log entries are read for BMCs whose intake is log
//! polling, and for SSE BMCs whose stream is not connected when the poll runs.
//!
//! A round polls every such BMC at once, but a semaphore lets at most
//! [`PollSettings::concurrency`] of them run, and each of their clients sends one request at
//! a time, so at most that many requests are in flight. Every request has a timeout and every
//! BMC a deadline, so one BMC that hangs holds one permit and never the others. Rounds do not
//! overlap.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rackside_redfish::{
    decode, health, inventory, logs, Client, HealthReport, HttpsTransport, Inventory, Limits,
    LogQuery, LogRecord,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;

use crate::accounts::{AccountStore, StoredAccount};
use crate::bmc_link::{one_line, redfish_client};
use crate::error::ConsoleError;
use crate::intake::{Intake, Sink};
use crate::store::{DeviceStatus, LogMark, NewAlert, Severity, Source};

/// Log entries read per BMC and poll, newest first over all its logs.
const LOG_READ_LIMIT: usize = 200;
/// Key of the mark that records that a BMC's logs were read once. Entries that exist
/// before that first read are history, not new alerts.
const BASELINE_MARK: &str = "";

/// Polling and event intake settings.
#[derive(Debug, Clone)]
pub struct PollSettings {
    /// Time between two polling rounds.
    pub interval: Duration,
    /// Minimum age of the stored inventory before a round reads it again. Inventory walks
    /// every component, about half of a poll's requests on the simulator, and changes rarely.
    pub inventory_interval: Duration,
    /// Most BMCs polled at once, and so most requests in flight.
    pub concurrency: usize,
    /// Time limit for connecting to a BMC, for each read and for each request.
    pub request_timeout: Duration,
    /// Time limit for polling one BMC, all its requests together.
    pub device_timeout: Duration,
    /// First wait before an SSE stream is opened again; it doubles up to `sse_retry_max`.
    pub sse_retry_min: Duration,
    /// Maximum wait before an SSE stream is opened again.
    pub sse_retry_max: Duration,
    /// Maximum silence on an open SSE stream, keep-alive comments included, before the
    /// console drops it and opens it again.
    pub sse_idle: Duration,
    /// `RegistryPrefixes` for push subscriptions and the SSE `$filter`; empty for all events.
    pub registry_prefixes: Vec<String>,
}

impl Default for PollSettings {
    /// Polls every 5 minutes and reads inventory every hour, 8 BMCs at once, with 30 s per
    /// request and 5 minutes per BMC.
    /// SSE reconnects after 1 s, backing off to 60 s, and after 5 minutes without a byte.
    /// No registry filter.
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5 * 60),
            inventory_interval: Duration::from_secs(60 * 60),
            concurrency: 8,
            request_timeout: Duration::from_secs(30),
            device_timeout: Duration::from_secs(5 * 60),
            sse_retry_min: Duration::from_secs(1),
            sse_retry_max: Duration::from_secs(60),
            sse_idle: Duration::from_secs(5 * 60),
            registry_prefixes: Vec::new(),
        }
    }
}

/// The result of polling one BMC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollOutcome {
    /// The BMC's name.
    pub bmc: String,
    /// The failure reason, as one line; `None` on success.
    pub error: Option<String>,
}

/// The console's view of its BMCs: accounts, polling and the SSE streams.
pub struct Fleet {
    /// The destination of parsed events.
    pub sink: Sink,
    /// The encrypted BMC accounts.
    pub accounts: Arc<AccountStore>,
    /// Polling and intake settings.
    pub settings: PollSettings,
    permits: Arc<Semaphore>,
    round: tokio::sync::Mutex<()>,
    wake: Notify,
    pub(crate) streams: Mutex<HashMap<String, crate::sse::StreamHandle>>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// Creates the fleet; `shutdown` ends the SSE streams.
    pub fn new(
        sink: Sink,
        accounts: Arc<AccountStore>,
        settings: PollSettings,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            sink,
            accounts,
            permits: Arc::new(Semaphore::new(settings.concurrency.max(1))),
            settings,
            round: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            streams: Mutex::new(HashMap::new()),
            shutdown,
        }
    }

    /// Asks the scheduler to start a round now instead of at the end of the interval.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs rounds every [`PollSettings::interval`], and early after [`Fleet::wake`], until
    /// shutdown.
    pub async fn run_schedule(self: Arc<Self>) {
        let mut stop = self.shutdown.clone();
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                () = tokio::time::sleep(self.settings.interval) => {}
                () = self.wake.notified() => {}
            }
            let round = tokio::select! {
                _ = stop.changed() => break,
                round = self.poll_round() => round,
            };
            match round {
                Ok(outcomes) => {
                    let failed = outcomes.iter().filter(|o| o.error.is_some()).count();
                    tracing::info!(polled = outcomes.len(), failed, "poll round finished");
                }
                Err(error) => tracing::error!(%error, "poll round failed"),
            }
        }
    }

    /// Polls every BMC with an account and returns the outcomes in the order the polls
    /// finished.
    ///
    /// # Errors
    /// [`ConsoleError::Store`] when the list of BMCs cannot be read.
    pub async fn poll_round(self: &Arc<Self>) -> Result<Vec<PollOutcome>, ConsoleError> {
        let _round = self.round.lock().await;
        let sources = self.sink.store.source_list()?;
        let mut polls = JoinSet::new();
        for source in sources {
            let fleet = self.clone();
            polls.spawn(async move {
                let Ok(_permit) = fleet.permits.clone().acquire_owned().await else {
                    return None;
                };
                fleet.poll_device(&source).await
            });
        }
        let mut outcomes = Vec::new();
        while let Some(joined) = polls.join_next().await {
            match joined {
                Ok(Some(outcome)) => outcomes.push(outcome),
                Ok(None) => {}
                Err(error) => tracing::error!(%error, "poll task ended abnormally"),
            }
        }
        Ok(outcomes)
    }

    /// Polls one BMC and stores the result; `None` when the console has no account for it.
    async fn poll_device(&self, source: &Source) -> Option<PollOutcome> {
        let bmc = source.bmc.as_str();
        let account = match self.accounts.get(bmc) {
            Ok(Some(account)) => account,
            Ok(None) => return None,
            Err(error) => {
                tracing::error!(%bmc, %error, "failed to read the BMC account");
                return Some(self.record_failure(bmc, &error.to_string()));
            }
        };
        let intake = Intake::parse(&source.intake).unwrap_or(Intake::Push);
        let polled = tokio::time::timeout(
            self.settings.device_timeout,
            self.read_device(bmc, &account, intake),
        )
        .await;
        match polled {
            Ok(Ok((report, inventory))) => match self.record_success(bmc, &report, inventory) {
                Ok(()) => Some(PollOutcome {
                    bmc: bmc.to_owned(),
                    error: None,
                }),
                Err(error) => {
                    tracing::error!(%bmc, %error, "failed to store the poll result");
                    Some(PollOutcome {
                        bmc: bmc.to_owned(),
                        error: Some(one_line(&error)),
                    })
                }
            },
            Ok(Err(reason)) => Some(self.record_failure(bmc, &reason)),
            Err(_) => Some(self.record_failure(
                bmc,
                &format!(
                    "poll of {} timed out after {} s",
                    account.url,
                    self.settings.device_timeout.as_secs()
                ),
            )),
        }
    }

    /// Reads health, the inventory when the stored one is older than
    /// [`PollSettings::inventory_interval`] (else `None`), and new log entries for log
    /// polling.
    async fn read_device(
        &self,
        bmc: &str,
        account: &StoredAccount,
        intake: Intake,
    ) -> Result<(HealthReport, Option<Value>), String> {
        let limits = Limits {
            connect_timeout: self.settings.request_timeout,
            read_timeout: self.settings.request_timeout,
            request_timeout: self.settings.request_timeout,
            ..Limits::default()
        };
        let client = redfish_client(&account.url, &account.pin, &account.login, limits, 1).await?;
        match intake {
            Intake::LogPoll => self.read_new_log_entries(bmc, &client, true).await?,
            // The log covers for a stream that is down. While it is up, the marks only
            // follow the log, so entries the stream delivered are not raised again later.
            // NOTE: an event raised while the stream is down can arrive twice: as a log
            // entry here, and again when a BMC that honours `Last-Event-ID` replays it. The
            // two have different identities, so de-duplication does not join them.
            Intake::Sse => {
                let connected = self.stream_state(bmc).as_deref() == Some("connected");
                if !connected {
                    tracing::debug!(%bmc, "SSE stream not connected: reading the logs instead");
                }
                self.read_new_log_entries(bmc, &client, !connected).await?;
            }
            Intake::Push => {}
        }
        let report = health(&client).await.map_err(|e| one_line(&e))?;
        if !self.inventory_due(bmc) {
            return Ok((report, None));
        }
        let inventory = inventory(&client).await.map_err(|e| one_line(&e))?;
        let manager_firmware = manager_firmware(&client).await;
        Ok((
            report,
            Some(summarize(&inventory, manager_firmware, unix_now())),
        ))
    }

    /// Returns whether the stored inventory is missing or older than the inventory interval.
    fn inventory_due(&self, bmc: &str) -> bool {
        let read_at = self
            .sink
            .store
            .status(bmc)
            .ok()
            .flatten()
            .and_then(|status| status.inventory.get("read_at")?.as_i64());
        let interval =
            i64::try_from(self.settings.inventory_interval.as_secs()).unwrap_or(i64::MAX);
        read_at.is_none_or(|read_at| unix_now().saturating_sub(read_at) >= interval)
    }

    /// Turns log entries newer than the stored marks into events when `raise` is set. On a
    /// BMC's first read, and without `raise`, the entries only move the marks.
    async fn read_new_log_entries(
        &self,
        bmc: &str,
        client: &Client<HttpsTransport>,
        raise: bool,
    ) -> Result<(), String> {
        let store = &self.sink.store;
        let query = LogQuery {
            limit: LOG_READ_LIMIT,
            min_severity: None,
            since: None,
        };
        let records = logs(client, &query).await.map_err(|e| one_line(&e))?;
        let marks = store.log_marks(bmc).map_err(|e| one_line(&e))?;
        let first_read = !marks.contains_key(BASELINE_MARK);

        // Entries come newest first over all logs; each log keeps that order.
        let mut by_log: Vec<(String, Vec<&LogRecord>)> = Vec::new();
        for record in &records {
            let log = record
                .path
                .rsplit_once('/')
                .map_or(record.path.as_str(), |(collection, _)| collection);
            match by_log.iter_mut().find(|(name, _)| name == log) {
                Some((_, entries)) => entries.push(record),
                None => by_log.push((log.to_owned(), vec![record])),
            }
        }
        let now = unix_now();
        for (log, entries) in by_log {
            let fresh: Vec<&LogRecord> = if first_read || !raise {
                Vec::new()
            } else {
                new_entries(&entries, marks.get(&log))
            };
            let events = fresh
                .iter()
                .filter(|r| r.severity >= rackside_redfish::Severity::Warning)
                .map(|r| log_event(bmc, r))
                .collect();
            self.sink.accept(events, now).map_err(|e| one_line(&e))?;
            if let Some(newest) = entries.first() {
                let mark = LogMark {
                    last_path: newest.path.clone(),
                    last_created: newest.created_raw.clone(),
                };
                store
                    .put_log_mark(bmc, &log, &mark)
                    .map_err(|e| one_line(&e))?;
            }
        }
        if first_read {
            tracing::debug!(%bmc, entries = records.len(), "log entries before the first read kept as history");
            let baseline = LogMark {
                last_path: String::new(),
                last_created: None,
            };
            store
                .put_log_mark(bmc, BASELINE_MARK, &baseline)
                .map_err(|e| one_line(&e))?;
        }
        Ok(())
    }

    /// Stores a successful poll, with the previous inventory when `inventory` is `None`, and
    /// raises an alert for a health transition into Warning or Critical that no alert since
    /// the previous poll reported.
    fn record_success(
        &self,
        bmc: &str,
        report: &HealthReport,
        inventory: Option<Value>,
    ) -> Result<(), ConsoleError> {
        let store = &self.sink.store;
        let previous = store.status(bmc)?;
        let now = unix_now();
        let health = worst_health(report);
        let problems: Vec<Value> = report
            .systems
            .iter()
            .flat_map(|system| {
                system.problems.iter().map(|p| {
                    json!({"system": system.id, "kind": p.kind, "name": p.name, "path": p.path,
                        "health": p.health, "reason": p.reason})
                })
            })
            .collect();
        // The power state changes more often than the inventory is read, so health,
        // which reads it too, keeps it current.
        let mut inventory = inventory
            .or_else(|| previous.as_ref().map(|p| p.inventory.clone()))
            .unwrap_or(Value::Null);
        let power_state = report.systems.first().and_then(|s| s.power_state.clone());
        if let (Some(map), Some(power_state)) = (inventory.as_object_mut(), power_state) {
            map.insert("power_state".into(), json!(power_state));
        }
        store.put_status(
            bmc,
            &DeviceStatus {
                health,
                problems: Value::Array(problems.clone()),
                inventory,
                last_polled: now,
                poll_error: None,
            },
        )?;
        tracing::debug!(%bmc, ?health, "poll stored");

        let Some(current) = health.filter(|h| *h >= Severity::Warning) else {
            return Ok(());
        };

        // An alert is due when the health got worse, or when a component failed that the
        // previous poll did not list, as a second fan failing leaves the health Critical.
        let was = previous.as_ref().and_then(|p| p.health);
        let escalated = was.is_none_or(|was| was < current);
        let known: HashSet<String> = previous
            .as_ref()
            .and_then(|p| p.problems.as_array())
            .map(|listed| listed.iter().filter_map(problem_key).collect())
            .unwrap_or_default();
        let fresh: Vec<&Value> = problems
            .iter()
            .filter(|p| problem_key(p).is_some_and(|key| !known.contains(&key)))
            .collect();
        if !escalated && fresh.is_empty() {
            return Ok(());
        }
        let since = previous.map_or(0, |p| p.last_polled);
        let reported_from = if escalated {
            current
        } else {
            Severity::Warning
        };
        if store.has_alert_since(bmc, reported_from, since)? {
            return Ok(());
        }
        let listed: Vec<&Value> = if escalated {
            problems.iter().collect()
        } else {
            fresh
        };
        let reasons: Vec<String> = listed
            .iter()
            .filter_map(|p| {
                Some(format!(
                    "{}: {}",
                    p.get("name")?.as_str()?,
                    p.get("reason")?.as_str()?
                ))
            })
            .take(3)
            .collect();
        let lead = if escalated {
            format!("health of {bmc} changed to {}", current.as_str())
        } else {
            format!("new problem on {bmc} (health {})", current.as_str())
        };
        let message = if reasons.is_empty() {
            lead
        } else {
            format!("{lead}: {}", reasons.join("; "))
        };
        // The components are part of the key, so an alert for a new failure is not taken for
        // the one a poll raised earlier in the same second.
        let mut key_parts = vec![
            bmc.to_owned(),
            "health".to_owned(),
            current.as_str().to_owned(),
            now.to_string(),
        ];
        key_parts.extend(listed.iter().filter_map(|p| problem_key(p)));
        let key_refs: Vec<&str> = key_parts.iter().map(String::as_str).collect();
        let dedup_key = dedup_key(&key_refs);
        let alert = NewAlert {
            bmc: bmc.to_owned(),
            dedup_key,
            event_id: None,
            message_id: crate::store::HEALTH_CHANGED_MESSAGE_ID.to_owned(),
            severity: current,
            message,
            origin: listed
                .first()
                .and_then(|p| p.get("path")?.as_str().map(str::to_owned)),
            timestamp: chrono::DateTime::from_timestamp(now, 0)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        };
        self.sink.accept(vec![alert], now).map(|_| ())
    }

    /// Stores a failed poll, keeping the health and inventory of the last good one.
    fn record_failure(&self, bmc: &str, reason: &str) -> PollOutcome {
        let reason = one_line(&reason);
        tracing::warn!(%bmc, %reason, "poll failed");
        let store = &self.sink.store;
        let previous = store.status(bmc).ok().flatten();
        let status = DeviceStatus {
            health: previous.as_ref().and_then(|p| p.health),
            problems: previous
                .as_ref()
                .map_or(Value::Array(Vec::new()), |p| p.problems.clone()),
            inventory: previous.map_or(Value::Null, |p| p.inventory),
            last_polled: unix_now(),
            poll_error: Some(reason.clone()),
        };
        if let Err(error) = store.put_status(bmc, &status) {
            tracing::error!(%bmc, %error, "failed to store the poll failure");
        }
        PollOutcome {
            bmc: bmc.to_owned(),
            error: Some(reason),
        }
    }
}

/// Returns the entries of one log that are newer than `mark`, newest first: those above the
/// marked entry, or, when the marked entry is gone (the log was cleared or wrapped), those
/// created after it. Without a mark every entry is new.
fn new_entries<'a>(entries: &[&'a LogRecord], mark: Option<&LogMark>) -> Vec<&'a LogRecord> {
    let Some(mark) = mark else {
        return entries.to_vec();
    };
    if let Some(position) = entries.iter().position(|r| r.path == mark.last_path) {
        return entries.iter().take(position).copied().collect();
    }
    let marked = mark
        .last_created
        .as_deref()
        .and_then(rackside_redfish::parse_timestamp);
    entries
        .iter()
        .filter(|r| match (marked, r.created) {
            (Some(marked), Some(created)) => created > marked,
            _ => true,
        })
        .copied()
        .collect()
}

/// Builds the event for one log entry; the entry's path identifies it for de-duplication.
fn log_event(bmc: &str, record: &LogRecord) -> NewAlert {
    let message_id = record
        .message_id
        .clone()
        .unwrap_or_else(|| "Rackside.1.0.LogEntry".to_owned());
    let severity = match record.severity {
        rackside_redfish::Severity::Ok => Severity::OK,
        rackside_redfish::Severity::Warning => Severity::Warning,
        rackside_redfish::Severity::Critical => Severity::Critical,
    };
    let created = record.created_raw.clone().unwrap_or_default();
    NewAlert {
        bmc: bmc.to_owned(),
        dedup_key: dedup_key(&[bmc, "log", &record.path, &created, &message_id]),
        event_id: Some(record.path.chars().take(256).collect()),
        message_id: message_id.chars().take(256).collect(),
        severity,
        message: record
            .message
            .chars()
            .filter(|c| !c.is_control())
            .take(crate::events::MAX_MESSAGE_CHARS)
            .collect(),
        origin: None,
        timestamp: record
            .created_raw
            .as_ref()
            .map(|t| t.chars().take(64).collect()),
    }
}

/// Returns the worst of every system's health, rollup and failing components; `None` when
/// the BMC reports no system health at all.
fn worst_health(report: &HealthReport) -> Option<Severity> {
    report
        .systems
        .iter()
        .flat_map(|system| {
            let own = [system.health.as_deref(), system.health_rollup.as_deref()];
            own.into_iter()
                .flatten()
                .chain(system.problems.iter().map(|p| p.health.as_str()))
                .map(Severity::parse_lenient)
                .collect::<Vec<_>>()
        })
        .max()
}

/// Builds the short inventory of the first system, with the BMC's firmware version and the
/// time it was read (`read_at`, Unix seconds).
fn summarize(inventory: &Inventory, manager_firmware: Option<String>, read_at: i64) -> Value {
    let Some(first) = inventory.systems.first() else {
        return json!({ "systems": 0, "bmc_firmware": manager_firmware, "read_at": read_at });
    };
    let system = &first.system;
    json!({
        "systems": inventory.systems.len(),
        "manufacturer": system.manufacturer,
        "model": system.model,
        "service_tag": system.service_tag,
        "serial_number": system.serial_number,
        "bios_version": system.bios_version,
        "bmc_firmware": manager_firmware,
        "power_state": system.power_state,
        "read_at": read_at,
    })
}

/// Reads `FirmwareVersion` of the first manager; `None` when the BMC does not show one.
async fn manager_firmware(client: &Client<HttpsTransport>) -> Option<String> {
    let managers = client
        .root()
        .and_then(|root| decode::link(root, "Managers"))?;
    let members = client.members(&managers).await.ok()?;
    members
        .first()
        .and_then(|m| decode::text(&m.body, "FirmwareVersion"))
}

/// Names a polled problem by its system, resource path and component name, so two polls
/// can be compared. The name is part of it because fans and sensors can share one resource.
fn problem_key(problem: &Value) -> Option<String> {
    let text = |field: &str| {
        problem
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let key = format!("{}|{}|{}", text("system"), text("path"), text("name"));
    (key != "||").then_some(key)
}

fn dedup_key(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(path: &str, created: &str) -> LogRecord {
        LogRecord {
            log: "Lifecycle Log".into(),
            id: path.rsplit('/').next().unwrap().into(),
            path: path.into(),
            created: rackside_redfish::parse_timestamp(created),
            created_raw: Some(created.into()),
            severity: rackside_redfish::Severity::Critical,
            message: "Fan 1 failed".into(),
            message_id: Some("IDRAC.2.9.FAN0002".into()),
        }
    }

    #[test]
    fn entries_above_the_mark_are_new() {
        let three = record("/l/Entries/3", "2026-12-04T10:03:00Z");
        let two = record("/l/Entries/2", "2026-12-04T10:02:00Z");
        let one = record("/l/Entries/1", "2026-12-04T10:01:00Z");
        let entries = [&three, &two, &one];
        let mark = LogMark {
            last_path: "/l/Entries/2".into(),
            last_created: Some("2026-12-04T10:02:00Z".into()),
        };
        let fresh = new_entries(&entries, Some(&mark));
        assert_eq!(fresh.len(), 1);
        assert_eq!(fresh[0].path, "/l/Entries/3");
    }

    #[test]
    fn cleared_log_falls_back_to_creation_time() {
        let late = record("/l/Entries/1", "2026-12-04T11:00:00Z");
        let early = record("/l/Entries/0", "2026-12-04T09:00:00Z");
        let mark = LogMark {
            last_path: "/l/Entries/9".into(),
            last_created: Some("2026-12-04T10:00:00Z".into()),
        };
        let fresh = new_entries(&[&late, &early], Some(&mark));
        assert_eq!(fresh.len(), 1);
        assert_eq!(fresh[0].path, "/l/Entries/1");
    }

    #[test]
    fn same_log_entry_gives_same_key() {
        let entry = record("/l/Entries/3", "2026-12-04T10:03:00Z");
        assert_eq!(
            log_event("b", &entry).dedup_key,
            log_event("b", &entry).dedup_key
        );
        assert_ne!(
            log_event("b", &entry).dedup_key,
            log_event("c", &entry).dedup_key
        );
    }
}
