//! The console's SQLite store. It contains alerts (de-duplicated by BMC and event identity),
//! events below the alert severity and mobile subscriptions. It also contains the BMC event
//! sources with the hash of each one's delivery secret, their event intake, and the latest
//! poll result of each BMC.
//! BMC accounts are not here but in the encrypted vault of [`crate::accounts`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::error::ConsoleError;

/// File name of the database inside the state directory.
pub const DATABASE_FILE: &str = "console.sqlite";
/// Most alerts one list request returns.
pub const MAX_PAGE: u32 = 500;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    bmc TEXT NOT NULL,
    dedup_key TEXT NOT NULL UNIQUE,
    event_id TEXT,
    message_id TEXT NOT NULL,
    severity TEXT NOT NULL,
    message TEXT NOT NULL,
    origin TEXT,
    timestamp TEXT,
    received INTEGER NOT NULL,
    acknowledged INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS alerts_by_bmc ON alerts (bmc, acknowledged, id);
CREATE TABLE IF NOT EXISTS subscriptions (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    relay_url TEXT NOT NULL,
    token TEXT NOT NULL,
    p256dh TEXT NOT NULL,
    auth TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    disabled_reason TEXT,
    UNIQUE (relay_url, token)
);
CREATE TABLE IF NOT EXISTS sources (
    bmc TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    secret_sha256 BLOB NOT NULL,
    certificate_sha256 BLOB NOT NULL,
    public_key_sha256 BLOB NOT NULL,
    added INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    bmc TEXT NOT NULL,
    dedup_key TEXT NOT NULL UNIQUE,
    message_id TEXT NOT NULL,
    severity TEXT NOT NULL,
    message TEXT NOT NULL,
    origin TEXT,
    timestamp TEXT,
    received INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS device_status (
    bmc TEXT PRIMARY KEY,
    health TEXT,
    problems TEXT NOT NULL,
    inventory TEXT NOT NULL,
    last_polled INTEGER NOT NULL,
    poll_error TEXT
);
CREATE TABLE IF NOT EXISTS log_marks (
    bmc TEXT NOT NULL,
    log TEXT NOT NULL,
    last_path TEXT NOT NULL,
    last_created TEXT,
    PRIMARY KEY (bmc, log)
);
";

/// Columns added to `sources` after its first version, with their definitions; a database
/// from an older version gets them at open.
const SOURCE_COLUMNS: [(&str, &str); 3] = [
    ("intake", "TEXT NOT NULL DEFAULT 'push'"),
    ("subscription", "TEXT"),
    ("sse_last_event_id", "TEXT"),
];

/// Most events one list request returns; older ones stay stored.
pub const MAX_EVENT_PAGE: u32 = 500;
/// Events kept in the event log; each insert deletes the ones beyond this count, oldest
/// first, because logins and state changes arrive without end.
pub const MAX_EVENTS_KEPT: i64 = 10_000;

/// Alerts kept per BMC by default. An insert beyond it removes acknowledged alerts first,
/// then the oldest.
pub const MAX_ALERTS_PER_BMC: u32 = 10_000;
/// Alerts kept over all BMCs by default, removed in the same order.
pub const MAX_ALERTS_KEPT: u32 = 100_000;
/// New alerts stored per BMC and minute by default; the rest are counted in one summary
/// alert per BMC and minute.
pub const MAX_NEW_ALERTS_PER_MINUTE: u32 = 120;
/// `MessageId` of the summary alert that counts suppressed events.
pub const SUPPRESSED_MESSAGE_ID: &str = "Rackside.1.0.AlertsSuppressed";

/// Limits on the alerts the store keeps and accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertLimits {
    /// Alerts kept per BMC.
    pub per_bmc: u32,
    /// Alerts kept in total.
    pub total: u32,
    /// New alerts stored per BMC in one clock minute.
    pub per_minute: u32,
}

impl Default for AlertLimits {
    /// Returns [`MAX_ALERTS_PER_BMC`], [`MAX_ALERTS_KEPT`] and [`MAX_NEW_ALERTS_PER_MINUTE`].
    fn default() -> Self {
        Self {
            per_bmc: MAX_ALERTS_PER_BMC,
            total: MAX_ALERTS_KEPT,
            per_minute: MAX_NEW_ALERTS_PER_MINUTE,
        }
    }
}

/// New alerts of one BMC in the current clock minute.
#[derive(Debug, Clone, Copy)]
struct MinuteCount {
    /// The minute, as Unix seconds divided by 60.
    minute: i64,
    stored: u32,
    suppressed: u32,
    /// The worst severity among the suppressed events.
    worst: Severity,
}

/// `MessageId` of the alerts a poll raises for a health change or a new failed component.
pub const HEALTH_CHANGED_MESSAGE_ID: &str = "Rackside.1.0.HealthChanged";

/// Severity as Redfish events carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    /// Informational.
    OK,
    /// Needs attention.
    Warning,
    /// Needs action now.
    Critical,
}

impl Severity {
    /// Parses a Redfish `Severity` or `MessageSeverity`; unknown values count as Warning so
    /// that a sloppy BMC never hides an alert.
    pub fn parse_lenient(text: &str) -> Self {
        match text.to_ascii_lowercase().as_str() {
            "ok" | "informational" | "info" => Self::OK,
            "critical" | "error" | "fatal" => Self::Critical,
            _ => Self::Warning,
        }
    }

    /// Returns the Redfish spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OK => "OK",
            Self::Warning => "Warning",
            Self::Critical => "Critical",
        }
    }
}

/// An alert before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlert {
    /// The BMC that raised it.
    pub bmc: String,
    /// Key under which two deliveries of one event count as the same alert.
    pub dedup_key: String,
    /// The Redfish `EventId`, when the BMC sent one.
    pub event_id: Option<String>,
    /// The Redfish `MessageId`.
    pub message_id: String,
    /// The severity.
    pub severity: Severity,
    /// The message text.
    pub message: String,
    /// `OriginOfCondition`, as a URI.
    pub origin: Option<String>,
    /// `EventTimestamp` as the BMC sent it.
    pub timestamp: Option<String>,
}

/// A stored alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// The console's id for it.
    pub id: i64,
    /// The BMC that raised it.
    pub bmc: String,
    /// The Redfish `EventId`.
    pub event_id: Option<String>,
    /// The Redfish `MessageId`.
    pub message_id: String,
    /// The severity.
    pub severity: Severity,
    /// The message text.
    pub message: String,
    /// `OriginOfCondition`.
    pub origin: Option<String>,
    /// `EventTimestamp` as the BMC sent it.
    pub timestamp: Option<String>,
    /// When the console received it, Unix seconds.
    pub received: i64,
    /// Whether a user acknowledged it.
    pub acknowledged: bool,
}

/// An event below the alert severity, kept in the event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// The console's id for it.
    pub id: i64,
    /// The BMC that raised it.
    pub bmc: String,
    /// The Redfish `MessageId`.
    pub message_id: String,
    /// The severity.
    pub severity: Severity,
    /// The message text.
    pub message: String,
    /// `OriginOfCondition`.
    pub origin: Option<String>,
    /// `EventTimestamp` as the BMC sent it.
    pub timestamp: Option<String>,
    /// When the console received it, Unix seconds.
    pub received: i64,
}

/// Filters for listing alerts; all optional.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AlertFilter {
    /// Only alerts of this BMC.
    pub bmc: Option<String>,
    /// Only alerts of at least this severity.
    pub min_severity: Option<Severity>,
    /// Only alerts not yet acknowledged.
    #[serde(default)]
    pub unacknowledged: bool,
    /// Only alerts with a larger id.
    pub after_id: Option<i64>,
    /// At most this many, newest first ([`MAX_PAGE`] when absent or larger).
    pub limit: Option<u32>,
}

/// A device that receives pushes for this console through a relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// The console's id for it.
    pub id: i64,
    /// The device's own id.
    pub device: String,
    /// The relay's base URL.
    pub relay_url: String,
    /// The registration token the relay gave the device for this console.
    #[serde(skip_serializing)]
    pub token: String,
    /// The device's P-256 public key, base64url.
    pub p256dh: String,
    /// The device's authentication secret, base64url.
    #[serde(skip_serializing)]
    pub auth: String,
    /// Whether alerts are still forwarded.
    pub enabled: bool,
    /// Reason forwarding stopped.
    pub disabled_reason: Option<String>,
}

/// The health of one BMC in the roll-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthRollup {
    /// The BMC's name.
    pub bmc: String,
    /// The worst of the polled health and the open alerts.
    pub health: Severity,
    /// Number of unacknowledged alerts.
    pub open_alerts: u32,
    /// Health from the latest successful poll, if any.
    pub polled_health: Option<Severity>,
}

/// A BMC the console receives events from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    /// The console's name for it.
    pub bmc: String,
    /// The BMC's base URL.
    pub url: String,
    /// The event intake: `push`, `sse` or `log-poll`.
    pub intake: String,
    /// URI of the push subscription the console created on the BMC, if any.
    pub subscription: Option<String>,
    /// `id` of the last Server-Sent Event read, sent as `Last-Event-ID` on reconnect.
    pub sse_last_event_id: Option<String>,
}

/// The latest poll result of one BMC.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceStatus {
    /// The worst health over its systems from the last successful poll; `None` before one.
    pub health: Option<Severity>,
    /// Components whose health is Warning or Critical, as `rackside-redfish` reports them.
    pub problems: serde_json::Value,
    /// Model, service tag, serial number, BIOS and BMC firmware versions, power state.
    pub inventory: serde_json::Value,
    /// The end of the last poll attempt, in Unix seconds.
    pub last_polled: i64,
    /// The failure reason of the last poll, as one line.
    pub poll_error: Option<String>,
}

/// The newest entry the console has read from one BMC log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogMark {
    /// The entry's resource path.
    pub last_path: String,
    /// The entry's `Created` as the BMC sent it.
    pub last_created: Option<String>,
}

/// The store. Calls hold a lock for one short statement at a time.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    connection: Mutex<Connection>,
    limits: AlertLimits,
    minutes: Mutex<HashMap<String, MinuteCount>>,
}

impl Store {
    /// Opens or creates the database in `state_dir`.
    ///
    /// # Errors
    /// [`ConsoleError::Store`] when SQLite cannot open or migrate the file.
    pub fn open(state_dir: &Path) -> Result<Self, ConsoleError> {
        // 1. Only the owner may read the state, whatever the umask. SQLite creates the
        // -wal and -shm files with the mode of the database file.
        set_mode(state_dir, 0o700)?;
        let path = state_dir.join(DATABASE_FILE);
        create_private(&path)?;
        set_mode(&path, 0o600)?;

        // 2. The connection, in WAL mode.
        let connection = Connection::open(&path).map_err(|source| ConsoleError::Store {
            path: path.clone(),
            source,
        })?;
        connection
            .execute_batch(&format!(
                "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000; {SCHEMA}"
            ))
            .and_then(|()| add_missing_columns(&connection))
            .map_err(|source| ConsoleError::Store {
                path: path.clone(),
                source,
            })?;

        // 3. Files left by an older version with a wider mode are narrowed.
        for suffix in ["-wal", "-shm"] {
            let mut side = path.clone().into_os_string();
            side.push(suffix);
            let side = PathBuf::from(side);
            if side.exists() {
                set_mode(&side, 0o600)?;
            }
        }
        Ok(Self {
            path,
            connection: Mutex::new(connection),
            limits: AlertLimits::default(),
            minutes: Mutex::new(HashMap::new()),
        })
    }

    /// Replaces the default [`AlertLimits`].
    #[must_use]
    pub fn with_alert_limits(mut self, limits: AlertLimits) -> Self {
        self.limits = limits;
        self
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, ConsoleError> {
        let connection = self
            .connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&connection).map_err(|source| ConsoleError::Store {
            path: self.path.clone(),
            source,
        })
    }

    /// Stores an alert unless one with the same de-duplication key exists, and returns the
    /// new alert, or `None` for a duplicate. Past [`AlertLimits::per_minute`] new alerts of
    /// one BMC in a clock minute, the alert is not stored but counted in that minute's
    /// summary alert: the first suppressed event returns the new summary, later ones update
    /// its count and return `None`. Each stored alert removes those beyond the retention
    /// limits, acknowledged ones first, then the oldest.
    ///
    /// # Errors
    /// [`ConsoleError::Store`] on database failure.
    pub fn insert_alert(&self, alert: &NewAlert, now: i64) -> Result<Option<Alert>, ConsoleError> {
        // 1. Duplicates take no share of the rate.
        let known: bool = self.with(|c| {
            c.query_row(
                "SELECT EXISTS (SELECT 1 FROM alerts WHERE dedup_key = ?1)",
                [&alert.dedup_key],
                |r| r.get(0),
            )
        })?;
        if known {
            return Ok(None);
        }

        // 2. Over the rate, the event only counts in the summary.
        if let Some(count) = self.count_new_alert(alert, now) {
            return self.put_suppressed_summary(&alert.bmc, count);
        }

        // 3. The alert, then the retention limits.
        let inserted = self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO alerts
                 (bmc, dedup_key, event_id, message_id, severity, message, origin, timestamp, received)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    alert.bmc,
                    alert.dedup_key,
                    alert.event_id,
                    alert.message_id,
                    alert.severity.as_str(),
                    alert.message,
                    alert.origin,
                    alert.timestamp,
                    now
                ],
            )
            .map(|rows| (rows == 1).then(|| c.last_insert_rowid()))
        })?;
        match inserted {
            Some(id) => {
                self.remove_beyond_limits(&alert.bmc)?;
                self.alert(id)
            }
            None => Ok(None),
        }
    }

    /// Counts a new alert of its BMC in the current minute. Returns the minute's count when
    /// the alert is over [`AlertLimits::per_minute`], so it must not be stored.
    fn count_new_alert(&self, alert: &NewAlert, now: i64) -> Option<MinuteCount> {
        let minute = now.div_euclid(60);
        let mut minutes = self
            .minutes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = minutes.entry(alert.bmc.clone()).or_insert(MinuteCount {
            minute,
            stored: 0,
            suppressed: 0,
            worst: Severity::OK,
        });
        if count.minute != minute {
            *count = MinuteCount {
                minute,
                stored: 0,
                suppressed: 0,
                worst: Severity::OK,
            };
        }
        if count.stored < self.limits.per_minute {
            count.stored += 1;
            return None;
        }
        count.suppressed += 1;
        count.worst = count.worst.max(alert.severity);
        if count.suppressed == 1 {
            tracing::warn!(
                bmc = %alert.bmc,
                limit = self.limits.per_minute,
                "alert rate limit of the BMC reached: further events this minute are counted in one summary alert"
            );
        }
        Some(*count)
    }

    /// Stores or updates the summary alert of one BMC and minute; returns it when new.
    fn put_suppressed_summary(
        &self,
        bmc: &str,
        count: MinuteCount,
    ) -> Result<Option<Alert>, ConsoleError> {
        let events = if count.suppressed == 1 {
            "1 event".to_owned()
        } else {
            format!("{} events", count.suppressed)
        };
        let message = format!(
            "{events} from BMC {bmc} suppressed: more than {} new alerts in one minute; \
             check the BMC's event log for what they were",
            self.limits.per_minute
        );
        // BMC names contain no `/`, and other keys are hex digests, so the key is unique.
        let dedup_key = format!("suppressed/{bmc}/{}", count.minute);
        let window_start = count.minute.saturating_mul(60);
        let timestamp = chrono::DateTime::from_timestamp(window_start, 0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        let inserted = self.with(|c| {
            let rows = c.execute(
                "INSERT OR IGNORE INTO alerts
                 (bmc, dedup_key, event_id, message_id, severity, message, origin, timestamp, received)
                 VALUES (?1, ?2, NULL, ?3, ?4, ?5, NULL, ?6, ?7)",
                params![
                    bmc,
                    dedup_key,
                    SUPPRESSED_MESSAGE_ID,
                    count.worst.as_str(),
                    message,
                    timestamp,
                    window_start
                ],
            )?;
            if rows == 1 {
                return Ok(Some(c.last_insert_rowid()));
            }
            c.execute(
                "UPDATE alerts SET message = ?2, severity = ?3 WHERE dedup_key = ?1",
                params![dedup_key, message, count.worst.as_str()],
            )?;
            Ok(None)
        })?;
        match inserted {
            Some(id) => {
                self.remove_beyond_limits(bmc)?;
                self.alert(id)
            }
            None => Ok(None),
        }
    }

    /// Removes the alerts of `bmc` beyond [`AlertLimits::per_bmc`], then all alerts beyond
    /// [`AlertLimits::total`]: acknowledged ones first, then the oldest.
    fn remove_beyond_limits(&self, bmc: &str) -> Result<(), ConsoleError> {
        let removed = self.with(|c| {
            let of_bmc = c.execute(
                "DELETE FROM alerts WHERE id IN (
                   SELECT id FROM alerts WHERE bmc = ?1 ORDER BY acknowledged DESC, id ASC
                   LIMIT max(0, (SELECT COUNT(*) FROM alerts WHERE bmc = ?1) - ?2))",
                params![bmc, self.limits.per_bmc],
            )?;
            let overall = c.execute(
                "DELETE FROM alerts WHERE id IN (
                   SELECT id FROM alerts ORDER BY acknowledged DESC, id ASC
                   LIMIT max(0, (SELECT COUNT(*) FROM alerts) - ?1))",
                [self.limits.total],
            )?;
            Ok(of_bmc + overall)
        })?;
        if removed > 0 {
            tracing::debug!(%bmc, removed, "alerts beyond the retention limits removed");
        }
        Ok(())
    }

    /// Returns one alert.
    ///
    /// # Errors
    /// [`ConsoleError::Store`] on database failure.
    pub fn alert(&self, id: i64) -> Result<Option<Alert>, ConsoleError> {
        self.with(|c| {
            c.query_row(&format!("{SELECT_ALERT} WHERE id = ?1"), [id], row_to_alert)
                .optional()
        })
    }

    /// Lists alerts newest first under `filter`.
    ///
    /// # Errors
    /// [`ConsoleError::Store`] on database failure.
    pub fn alerts(&self, filter: &AlertFilter) -> Result<Vec<Alert>, ConsoleError> {
        let min_rank = filter.min_severity.map_or(0, severity_rank);
        let limit = filter.limit.unwrap_or(MAX_PAGE).min(MAX_PAGE);
        self.with(|c| {
            let mut statement = c.prepare(&format!(
                "{SELECT_ALERT}
                 WHERE (?1 IS NULL OR bmc = ?1)
                   AND (CASE severity WHEN 'Critical' THEN 2 WHEN 'Warning' THEN 1 ELSE 0 END) >= ?2
                   AND (?3 = 0 OR acknowledged = 0)
                   AND id > ?4
                 ORDER BY id DESC LIMIT ?5"
            ))?;
            let rows = statement.query_map(
                params![
                    filter.bmc,
                    min_rank,
                    filter.unacknowledged,
                    filter.after_id.unwrap_or(0),
                    limit
                ],
                row_to_alert,
            )?;
            rows.collect()
        })
    }

    /// Marks an alert acknowledged; returns whether it exists.
    ///
    /// # Errors
    /// [`ConsoleError::Store`] on database failure.
    pub fn acknowledge(&self, id: i64) -> Result<bool, ConsoleError> {
        self.with(|c| c.execute("UPDATE alerts SET acknowledged = 1 WHERE id = ?1", [id]))
            .map(|rows| rows == 1)
    }

    /// Returns the number of unacknowledged alerts.
    ///
    /// # Errors
    /// [`ConsoleError::Store`] on database failure.
    pub fn unread_count(&self) -> Result<u32, ConsoleError> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM alerts WHERE acknowledged = 0",
                [],
                |r| r.get(0),
            )
        })
    }

    /// Returns per BMC the worst severity among its unacknowledged alerts and its polled
    /// health, with the number of those alerts.
    ///
    /// # Errors
    /// [`ConsoleError::Store`] on database failure.
    pub fn rollup(&self) -> Result<Vec<HealthRollup>, ConsoleError> {
        self.with(|c| {
            let mut statement = c.prepare(
                "SELECT s.bmc,
                        COALESCE(MAX(CASE a.severity WHEN 'Critical' THEN 2 WHEN 'Warning' THEN 1 ELSE 0 END), 0),
                        COUNT(a.id),
                        d.health
                 FROM sources s
                 LEFT JOIN alerts a ON a.bmc = s.bmc AND a.acknowledged = 0
                 LEFT JOIN device_status d ON d.bmc = s.bmc
                 GROUP BY s.bmc ORDER BY s.bmc",
            )?;
            let rows = statement.query_map([], |r| {
                let rank: i64 = r.get(1)?;
                let polled: Option<String> = r.get(3)?;
                let polled = polled.as_deref().map(Severity::parse_lenient);
                let from_alerts = rank_severity(rank);
                Ok(HealthRollup {
                    bmc: r.get(0)?,
                    health: polled.map_or(from_alerts, |p| p.max(from_alerts)),
                    open_alerts: r.get(2)?,
                    polled_health: polled,
                })
            })?;
            rows.collect()
        })
    }

    /// Adds or replaces a BMC event source with the SHA-256 of its delivery secret and the pin
    /// of its accepted certificate.
    ///
    /// # Errors
    /// [`ConsoleError::Store`] on database failure.
    pub fn put_source(
        &self,
        bmc: &str,
        url: &str,
        secret_sha256: &[u8; 32],
        pin: &rackside_trust::Pin,
        now: i64,
    ) -> Result<(), ConsoleError> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO sources
                 (bmc, url, secret_sha256, certificate_sha256, public_key_sha256, added)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    bmc,
                    url,
                    secret_sha256.as_slice(),
                    pin.certificate_sha256.as_bytes().as_slice(),
                    pin.public_key_sha256.as_bytes().as_slice(),
                    now
                ],
            )
        })
        .map(|_| ())
    }

    /// Returns the hash of a source's delivery secret, or `None` for an unknown BMC.
    ///
    /// # Errors
    /// [`ConsoleError::Store`] on database failure.
    pub fn source_secret(&self, bmc: &str) -> Result<Option<Vec<u8>>, ConsoleError> {
        self.with(|c| {
            c.query_row(
                "SELECT secret_sha256 FROM sources WHERE bmc = ?1",
                [bmc],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// Lists the BMC event sources: name and URL.
    ///
    /// # Errors
    /// [`ConsoleError::Store`] on database failure.
    pub fn sources(&self) -> Result<Vec<(String, String)>, ConsoleError> {
        self.with(|c| {
            let mut statement = c.prepare("SELECT bmc, url FROM sources ORDER BY bmc")?;
            let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    /// Adds a subscription, or re-enables the existing one with the same relay and token.
    ///
    /// # Errors
    /// [`ConsoleError::Store`] on database failure.
    pub fn add_subscription(
        &self,
        device: &str,
        relay_url: &str,
        token: &str,
        p256dh: &str,
        auth: &str,
    ) -> Result<i64, ConsoleError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO subscriptions (device, relay_url, token, p256dh, auth) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (relay_url, token) DO UPDATE SET
                   device = excluded.device, p256dh = excluded.p256dh, auth = excluded.auth,
                   enabled = 1, disabled_reason = NULL",
                params![device, relay_url, token, p256dh, auth],
            )?;
            c.query_row(
                "SELECT id FROM subscriptions WHERE relay_url = ?1 AND token = ?2",
                params![relay_url, token],
                |r| r.get(0),
            )
        })
    }

    /// Deletes a subscription; returns whether it existed.
    ///
    /// # Errors
    /// [`ConsoleError::Store`] on database failure.
    pub fn remove_subscription(&self, id: i64) -> Result<bool, ConsoleError> {
        self.with(|c| c.execute("DELETE FROM subscriptions WHERE id = ?1", [id]))
            .map(|rows| rows == 1)
    }

    /// Lists subscriptions, enabled ones only when `enabled_only`.
    ///
    /// # Errors
    /// [`ConsoleError::Store`] on database failure.
    pub fn subscriptions(&self, enabled_only: bool) -> Result<Vec<Subscription>, ConsoleError> {
        self.with(|c| {
            let mut statement = c.prepare(
                "SELECT id, device, relay_url, token, p256dh, auth, enabled, disabled_reason
                 FROM subscriptions WHERE (?1 = 0 OR enabled = 1) ORDER BY id",
            )?;
            let rows = statement.query_map([enabled_only], |r| {
                Ok(Subscription {
                    id: r.get(0)?,
                    device: r.get(1)?,
                    relay_url: r.get(2)?,
                    token: r.get(3)?,
                    p256dh: r.get(4)?,
                    auth: r.get(5)?,
                    enabled: r.get(6)?,
                    disabled_reason: r.get(7)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Disables the subscription with this relay and token; returns whether one changed.
    ///
    /// # Errors
    /// [`ConsoleError::Store`] on database failure.
    pub fn disable_subscription(
        &self,
        relay_url: &str,
        token: &str,
        reason: &str,
    ) -> Result<bool, ConsoleError> {
        self.with(|c| {
            c.execute(
                "UPDATE subscriptions SET enabled = 0, disabled_reason = ?3
                 WHERE relay_url = ?1 AND token = ?2 AND enabled = 1",
                params![relay_url, token, reason],
            )
        })
        .map(|rows| rows == 1)
    }

    /// Stores an event below the alert severity in the event log unless it is stored
    /// already; returns whether it was new.
    ///
    /// # Errors
    /// [`ConsoleError::Store`] on database failure.
    pub fn insert_event(&self, event: &NewAlert, now: i64) -> Result<bool, ConsoleError> {
        self.with(|c| {
            let inserted = c.execute(
                "INSERT OR IGNORE INTO events
                 (bmc, dedup_key, message_id, severity, message, origin, timestamp, received)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    event.bmc,
                    event.dedup_key,
                    event.message_id,
                    event.severity.as_str(),
                    event.message,
                    event.origin,
                    event.timestamp,
                    now
                ],
            )?;
            c.execute(
                "DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?1",
                [MAX_EVENTS_KEPT],
            )?;
            Ok(inserted == 1)
        })
    }

    /// Lists the event log newest first, of one BMC when `bmc` is given, at most `limit`
    /// entries (capped at [`MAX_EVENT_PAGE`]).
    ///
    /// # Errors
    /// [`ConsoleError::Store`] on database failure.
    pub fn events(&self, bmc: Option<&str>, limit: u32) -> Result<Vec<Event>, ConsoleError> {
        self.with(|c| {
            let mut statement = c.prepare(
                "SELECT id, bmc, message_id, severity, message, origin, timestamp, received
                 FROM events WHERE (?1 IS NULL OR bmc = ?1) ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = statement.query_map(params![bmc, limit.min(MAX_EVENT_PAGE)], |row| {
                let severity: String = row.get(3)?;
                Ok(Event {
                    id: row.get(0)?,
                    bmc: row.get(1)?,
                    message_id: row.get(2)?,
                    severity: Severity::parse_lenient(&severity),
                    message: row.get(4)?,
                    origin: row.get(5)?,
                    timestamp: row.get(6)?,
                    received: row.get(7)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Returns whether the BMC has an unacknowledged alert from an event (not one that a poll
    /// raised, with [`HEALTH_CHANGED_MESSAGE_ID`]) of at least `severity`, received at or after
    /// `since` (Unix seconds).
    ///
    /// # Errors
    /// [`ConsoleError::Store`] on database failure.
    pub fn has_alert_since(
        &self,
        bmc: &str,
        severity: Severity,
        since: i64,
    ) -> Result<bool, ConsoleError> {
        self.with(|c| {
            c.query_row(
                "SELECT EXISTS (SELECT 1 FROM alerts WHERE bmc = ?1 AND acknowledged = 0
                   AND (CASE severity WHEN 'Critical' THEN 2 WHEN 'Warning' THEN 1 ELSE 0 END) >= ?2
                   AND received >= ?3 AND message_id != ?4)",
                params![
                    bmc,
                    severity_rank(severity),
                    since,
                    HEALTH_CHANGED_MESSAGE_ID
                ],
                |r| r.get(0),
            )
        })
    }

    /// Returns one event source.
    ///
    /// # Errors
    /// [`ConsoleError::Store`] on database failure.
    pub fn source(&self, bmc: &str) -> Result<Option<Source>, ConsoleError> {
        self.with(|c| {
            c.query_row(
                &format!("{SELECT_SOURCE} WHERE bmc = ?1"),
                [bmc],
                row_to_source,
            )
            .optional()
        })
    }

    /// Lists every event source by name, with its intake and subscription.
    ///
    /// # Errors
    /// [`ConsoleError::Store`] on database failure.
    pub fn source_list(&self) -> Result<Vec<Source>, ConsoleError> {
        self.with(|c| {
            let mut statement = c.prepare(&format!("{SELECT_SOURCE} ORDER BY bmc"))?;
            let rows = statement.query_map([], row_to_source)?;
            rows.collect()
        })
    }

    /// Records how a source's events arrive and the URI of its push subscription.
    ///
    /// # Errors
    /// [`ConsoleError::Store`] on database failure.
    pub fn set_intake(
        &self,
        bmc: &str,
        intake: &str,
        subscription: Option<&str>,
    ) -> Result<(), ConsoleError> {
        self.with(|c| {
            c.execute(
                "UPDATE sources SET intake = ?2, subscription = ?3 WHERE bmc = ?1",
                params![bmc, intake, subscription],
            )
        })
        .map(|_| ())
    }

    /// Records the `id` of the last Server-Sent Event read from a source.
    ///
    /// # Errors
    /// [`ConsoleError::Store`] on database failure.
    pub fn set_sse_last_event_id(&self, bmc: &str, id: &str) -> Result<(), ConsoleError> {
        self.with(|c| {
            c.execute(
                "UPDATE sources SET sse_last_event_id = ?2 WHERE bmc = ?1",
                params![bmc, id],
            )
        })
        .map(|_| ())
    }

    /// Deletes a source with its poll status and log marks; its alerts and events stay.
    /// Returns whether it existed.
    ///
    /// # Errors
    /// [`ConsoleError::Store`] on database failure.
    pub fn remove_source(&self, bmc: &str) -> Result<bool, ConsoleError> {
        self.with(|c| {
            c.execute("DELETE FROM device_status WHERE bmc = ?1", [bmc])?;
            c.execute("DELETE FROM log_marks WHERE bmc = ?1", [bmc])?;
            c.execute("DELETE FROM sources WHERE bmc = ?1", [bmc])
        })
        .map(|rows| rows == 1)
    }

    /// Replaces the poll status of a BMC.
    ///
    /// # Errors
    /// [`ConsoleError::Store`] on database failure.
    pub fn put_status(&self, bmc: &str, status: &DeviceStatus) -> Result<(), ConsoleError> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO device_status
                 (bmc, health, problems, inventory, last_polled, poll_error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    bmc,
                    status.health.map(Severity::as_str),
                    status.problems.to_string(),
                    status.inventory.to_string(),
                    status.last_polled,
                    status.poll_error
                ],
            )
        })
        .map(|_| ())
    }

    /// Returns the poll status of a BMC, `None` before its first poll.
    ///
    /// # Errors
    /// [`ConsoleError::Store`] on database failure.
    pub fn status(&self, bmc: &str) -> Result<Option<DeviceStatus>, ConsoleError> {
        self.with(|c| {
            c.query_row(
                "SELECT health, problems, inventory, last_polled, poll_error
                 FROM device_status WHERE bmc = ?1",
                [bmc],
                |r| {
                    let health: Option<String> = r.get(0)?;
                    let problems: String = r.get(1)?;
                    let inventory: String = r.get(2)?;
                    Ok(DeviceStatus {
                        health: health.as_deref().map(Severity::parse_lenient),
                        problems: serde_json::from_str(&problems)
                            .unwrap_or(serde_json::Value::Null),
                        inventory: serde_json::from_str(&inventory)
                            .unwrap_or(serde_json::Value::Null),
                        last_polled: r.get(3)?,
                        poll_error: r.get(4)?,
                    })
                },
            )
            .optional()
        })
    }

    /// Returns the newest entry read from each log of a BMC, by log collection path.
    ///
    /// # Errors
    /// [`ConsoleError::Store`] on database failure.
    pub fn log_marks(
        &self,
        bmc: &str,
    ) -> Result<std::collections::HashMap<String, LogMark>, ConsoleError> {
        self.with(|c| {
            let mut statement =
                c.prepare("SELECT log, last_path, last_created FROM log_marks WHERE bmc = ?1")?;
            let rows = statement.query_map([bmc], |r| {
                Ok((
                    r.get(0)?,
                    LogMark {
                        last_path: r.get(1)?,
                        last_created: r.get(2)?,
                    },
                ))
            })?;
            rows.collect()
        })
    }

    /// Records the newest entry read from one log of a BMC.
    ///
    /// # Errors
    /// [`ConsoleError::Store`] on database failure.
    pub fn put_log_mark(&self, bmc: &str, log: &str, mark: &LogMark) -> Result<(), ConsoleError> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO log_marks (bmc, log, last_path, last_created)
                 VALUES (?1, ?2, ?3, ?4)",
                params![bmc, log, mark.last_path, mark.last_created],
            )
        })
        .map(|_| ())
    }
}

const SELECT_ALERT: &str =
    "SELECT id, bmc, event_id, message_id, severity, message, origin, timestamp,
    received, acknowledged FROM alerts";

const SELECT_SOURCE: &str = "SELECT bmc, url, intake, subscription, sse_last_event_id FROM sources";

fn row_to_source(row: &rusqlite::Row<'_>) -> rusqlite::Result<Source> {
    Ok(Source {
        bmc: row.get(0)?,
        url: row.get(1)?,
        intake: row.get(2)?,
        subscription: row.get(3)?,
        sse_last_event_id: row.get(4)?,
    })
}

/// Adds the [`SOURCE_COLUMNS`] that a database from an older version lacks.
fn add_missing_columns(connection: &Connection) -> rusqlite::Result<()> {
    let mut statement = connection.prepare("SELECT name FROM pragma_table_info('sources')")?;
    let present = statement
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for (name, definition) in SOURCE_COLUMNS {
        if !present.iter().any(|p| p == name) {
            connection.execute_batch(&format!(
                "ALTER TABLE sources ADD COLUMN {name} {definition}"
            ))?;
        }
    }
    Ok(())
}

fn row_to_alert(row: &rusqlite::Row<'_>) -> rusqlite::Result<Alert> {
    let severity: String = row.get(4)?;
    Ok(Alert {
        id: row.get(0)?,
        bmc: row.get(1)?,
        event_id: row.get(2)?,
        message_id: row.get(3)?,
        severity: Severity::parse_lenient(&severity),
        message: row.get(5)?,
        origin: row.get(6)?,
        timestamp: row.get(7)?,
        received: row.get(8)?,
        acknowledged: row.get(9)?,
    })
}

fn severity_rank(severity: Severity) -> i64 {
    match severity {
        Severity::OK => 0,
        Severity::Warning => 1,
        Severity::Critical => 2,
    }
}

fn rank_severity(rank: i64) -> Severity {
    match rank {
        2 => Severity::Critical,
        1 => Severity::Warning,
        _ => Severity::OK,
    }
}

/// Sets the Unix permission bits of `path`.
fn set_mode(path: &Path, mode: u32) -> Result<(), ConsoleError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
        ConsoleError::Io {
            action: "set permissions of",
            path: path.to_owned(),
            source,
        }
    })
}

/// Creates an empty file at `path` with mode 0600 unless it exists.
fn create_private(path: &Path) -> Result<(), ConsoleError> {
    use std::os::unix::fs::OpenOptionsExt;
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(ConsoleError::Io {
            action: "create",
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(key: &str, severity: Severity) -> NewAlert {
        NewAlert {
            bmc: "bmc-1".into(),
            dedup_key: key.into(),
            event_id: Some(key.into()),
            message_id: "Fan.1.0.FanFailed".into(),
            severity,
            message: "Fan 2 failed".into(),
            origin: None,
            timestamp: None,
        }
    }

    #[test]
    fn duplicate_event_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store
            .insert_alert(&alert("e1", Severity::Critical), 1)
            .unwrap()
            .is_some());
        assert!(store
            .insert_alert(&alert("e1", Severity::Critical), 2)
            .unwrap()
            .is_none());
        assert_eq!(store.alerts(&AlertFilter::default()).unwrap().len(), 1);
    }

    fn alert_of(bmc: &str, key: &str) -> NewAlert {
        NewAlert {
            bmc: bmc.into(),
            ..alert(key, Severity::Critical)
        }
    }

    fn ids_of(store: &Store, bmc: &str) -> Vec<i64> {
        let filter = AlertFilter {
            bmc: Some(bmc.into()),
            ..AlertFilter::default()
        };
        let mut ids: Vec<i64> = store
            .alerts(&filter)
            .unwrap()
            .iter()
            .map(|a| a.id)
            .collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn alert_burst_stores_rate_limit_and_one_summary() {
        let dir = tempfile::tempdir().unwrap();
        let limits = AlertLimits {
            per_minute: 5,
            ..AlertLimits::default()
        };
        let store = Store::open(dir.path()).unwrap().with_alert_limits(limits);
        let minute = 1_800_000_000 / 60 * 60;

        // 1. A duplicate takes no share of the rate.
        assert!(store
            .insert_alert(&alert("e0", Severity::Warning), minute)
            .unwrap()
            .is_some());
        assert!(store
            .insert_alert(&alert("e0", Severity::Warning), minute)
            .unwrap()
            .is_none());

        // 2. Twelve more in the same minute: four stored, the first suppressed one returns
        //    the summary, the later ones only count in it.
        let mut returned = Vec::new();
        for index in 1..=12 {
            let key = format!("e{index}");
            returned.push(
                store
                    .insert_alert(&alert(&key, Severity::Critical), minute + 59)
                    .unwrap(),
            );
        }
        assert!(returned[..4].iter().all(Option::is_some));
        let summary = returned[4]
            .clone()
            .expect("the first suppressed event raises the summary");
        assert_eq!(summary.message_id, SUPPRESSED_MESSAGE_ID);
        assert!(returned[5..].iter().all(Option::is_none));

        let stored = store.alerts(&AlertFilter::default()).unwrap();
        assert_eq!(stored.len(), 5 + 1);
        let summary = stored.iter().find(|a| a.id == summary.id).unwrap();
        assert!(
            summary
                .message
                .starts_with("8 events from BMC bmc-1 suppressed: more than 5 "),
            "{}",
            summary.message
        );
        assert_eq!(summary.severity, Severity::Critical);

        // 3. The next minute stores again, and another BMC has its own count.
        assert!(store
            .insert_alert(&alert("e13", Severity::Critical), minute + 60)
            .unwrap()
            .is_some());
        assert!(store
            .insert_alert(&alert_of("bmc-2", "f1"), minute + 59)
            .unwrap()
            .is_some());
    }

    #[test]
    fn retention_removes_acknowledged_then_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let limits = AlertLimits {
            per_bmc: 4,
            total: 6,
            ..AlertLimits::default()
        };
        let store = Store::open(dir.path()).unwrap().with_alert_limits(limits);
        let mut ids = Vec::new();
        for index in 0..4 {
            let stored = store
                .insert_alert(&alert_of("bmc-1", &format!("a{index}")), 1)
                .unwrap();
            ids.push(stored.unwrap().id);
        }
        assert!(store.acknowledge(ids[2]).unwrap());

        // 1. Past the limit per BMC, the acknowledged alert goes first, then the oldest.
        let fifth = store
            .insert_alert(&alert_of("bmc-1", "a4"), 1)
            .unwrap()
            .unwrap()
            .id;
        assert_eq!(ids_of(&store, "bmc-1"), vec![ids[0], ids[1], ids[3], fifth]);
        let sixth = store
            .insert_alert(&alert_of("bmc-1", "a5"), 1)
            .unwrap()
            .unwrap()
            .id;
        assert_eq!(ids_of(&store, "bmc-1"), vec![ids[1], ids[3], fifth, sixth]);

        // 2. Past the total, the oldest alert of any BMC goes.
        for index in 0..3 {
            store
                .insert_alert(&alert_of("bmc-2", &format!("b{index}")), 1)
                .unwrap()
                .unwrap();
        }
        assert_eq!(store.alerts(&AlertFilter::default()).unwrap().len(), 6);
        assert_eq!(ids_of(&store, "bmc-1"), vec![ids[3], fifth, sixth]);
        assert_eq!(ids_of(&store, "bmc-2").len(), 3);
    }

    #[test]
    fn filters_and_acknowledge_work() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let first = store
            .insert_alert(&alert("e1", Severity::OK), 1)
            .unwrap()
            .unwrap();
        store
            .insert_alert(&alert("e2", Severity::Critical), 1)
            .unwrap();
        let critical = AlertFilter {
            min_severity: Some(Severity::Warning),
            ..AlertFilter::default()
        };
        assert_eq!(store.alerts(&critical).unwrap().len(), 1);
        assert_eq!(store.unread_count().unwrap(), 2);
        assert!(store.acknowledge(first.id).unwrap());
        assert!(!store.acknowledge(999).unwrap());
        let unread = AlertFilter {
            unacknowledged: true,
            ..AlertFilter::default()
        };
        assert_eq!(store.alerts(&unread).unwrap().len(), 1);
        assert_eq!(store.unread_count().unwrap(), 1);
    }

    #[test]
    fn disabled_subscription_is_not_listed_as_enabled() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .add_subscription("phone", "https://relay", "rrt_1", "k", "a")
            .unwrap();
        assert!(store
            .disable_subscription("https://relay", "rrt_1", "device gone")
            .unwrap());
        assert!(store.subscriptions(true).unwrap().is_empty());
        assert_eq!(
            store.subscriptions(false).unwrap()[0]
                .disabled_reason
                .as_deref(),
            Some("device gone")
        );
    }

    #[test]
    fn state_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;

        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("console");
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
        let store = Store::open(&state).unwrap();
        assert!(store
            .insert_alert(&alert("e1", Severity::Critical), 1)
            .unwrap()
            .is_some());

        let mode = |name: &str| {
            let path = if name.is_empty() {
                state.clone()
            } else {
                state.join(name)
            };
            std::fs::metadata(path).unwrap().permissions().mode() & 0o777
        };
        assert_eq!(mode(""), 0o700);
        assert_eq!(mode(DATABASE_FILE), 0o600);
        assert_eq!(mode(&format!("{DATABASE_FILE}-wal")), 0o600);
        assert_eq!(mode(&format!("{DATABASE_FILE}-shm")), 0o600);
    }
}
