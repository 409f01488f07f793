//! The shared state of one simulated BMC: the resource tree, logs, sessions, power plans and
//! tasks behind one lock, plus the settings that do not change at run time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;

use crate::accounts::{Accounts, Sessions};
use crate::config::{BmcConfig, DataSource};
use crate::error::BmcError;
use crate::events::{EventService, NewEvent};
use crate::fault::{Fault, FaultControl};
use crate::logs::{clip, LogMessage, LogStore, Severity};
use crate::power::PowerPlan;
use crate::tasks::Task;
use crate::tree::{self, LoadedData, Media, Tree};

/// Sessions URI of old services, served instead of the root's `Links.Sessions` under
/// [`Fault::OldSessionUri`].
pub(crate) const OLD_SESSIONS_PATH: &str = "/redfish/v1/Sessions";

/// The state behind [`crate::router`]: build it with [`BmcState::new`].
#[derive(Debug)]
pub struct BmcState {
    pub(crate) faults: FaultControl,
    pub(crate) basic_auth: bool,
    pub(crate) max_sessions_per_user: usize,
    pub(crate) power_delay: Duration,
    /// Time allowed for a request body to arrive.
    pub(crate) body_read_timeout: Duration,
    /// Sessions URI from the service root's `Links.Sessions`.
    pub(crate) sessions_path: String,
    /// Accounts collection served from the configured accounts, when the data has none.
    pub(crate) accounts_path: Option<String>,
    pub(crate) metadata: Bytes,
    pub(crate) host_label: String,
    /// `SKU` or `SerialNumber` of the first system, empty when it has neither.
    pub(crate) service_tag: String,
    pub(crate) inner: Mutex<Inner>,
}

/// Everything that requests change.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) tree: Tree,
    pub(crate) accounts: Accounts,
    pub(crate) logs: Vec<LogStore>,
    pub(crate) lifecycle_log: Option<usize>,
    pub(crate) sessions: Sessions,
    pub(crate) idle_timeout: Duration,
    pub(crate) power: HashMap<String, PowerPlan>,
    /// Boot mode changes waiting for the next power-on, by system URI.
    pub(crate) pending_boot_mode: HashMap<String, String>,
    pub(crate) tasks: Vec<Task>,
    pub(crate) manager_path: Option<String>,
    /// Action target URI to (resource URI, action name such as `#ComputerSystem.Reset`).
    pub(crate) actions: HashMap<String, (String, String)>,
    /// Subscriptions and SSE clients; every lifecycle log entry is raised here as an event.
    pub(crate) events: Arc<EventService>,
}

impl BmcState {
    /// Loads the data source and accounts of `config`.
    ///
    /// # Errors
    ///
    /// [`BmcError::NoUser`] without a first user, [`BmcError::InvalidAccount`] for an empty
    /// name or password, [`BmcError::InvalidMockup`] or [`BmcError::Io`] for an unreadable
    /// mockup folder.
    pub fn new(config: &BmcConfig) -> Result<Self, BmcError> {
        Self::with_data(config, load_data(config)?)
    }

    /// Builds the state from data loaded before, giving a fleet member its own identity.
    pub(crate) fn with_data(config: &BmcConfig, mut data: LoadedData) -> Result<Self, BmcError> {
        let accounts = Accounts::new(config.first_user.as_ref(), &config.extra_users)?;
        if let Some(index) = config.fleet_index {
            let embedded = config.data == DataSource::Embedded;
            crate::fleet::personalize(&mut data, index, embedded);
        }
        let service_tag = crate::fleet::service_tag(&data).unwrap_or_default();
        let events = EventService::new(config.events.clone()).map_err(BmcError::EventService)?;
        crate::event_routes::enable_event_service(&mut data.tree, &config.events);
        let mut state = Self::from_data(data, accounts, config, events);
        state.service_tag = service_tag;
        Ok(state)
    }

    fn from_data(
        data: LoadedData,
        accounts: Accounts,
        config: &BmcConfig,
        events: Arc<EventService>,
    ) -> Self {
        let LoadedData {
            tree,
            logs,
            lifecycle_log,
            manager_path,
            host_label,
            ..
        } = data;
        let root = tree.json("/redfish/v1");
        let sessions_path = root
            .and_then(|r| r.pointer("/Links/Sessions/@odata.id"))
            .and_then(Value::as_str)
            .map(tree::normalize_path)
            .unwrap_or_else(|| "/redfish/v1/SessionService/Sessions".to_owned());
        let accounts_path = tree
            .json("/redfish/v1/AccountService")
            .and_then(|a| a.pointer("/Accounts/@odata.id"))
            .and_then(Value::as_str)
            .map(tree::normalize_path)
            .filter(|path| !tree.contains(path));
        let metadata = match tree.get("/redfish/v1/$metadata") {
            Some(resource) if resource.media == Media::Xml => resource.bytes.clone(),
            _ => crate::metadata::csdl(&tree),
        };
        let actions = crate::actions::index_targets(&tree);

        Self {
            faults: FaultControl::new(config.faults.clone()),
            basic_auth: config.basic_auth,
            max_sessions_per_user: config.max_sessions_per_user,
            power_delay: config.power_delay,
            body_read_timeout: config.body_read_timeout,
            sessions_path,
            accounts_path,
            metadata,
            host_label,
            service_tag: String::new(),
            inner: Mutex::new(Inner {
                tree,
                accounts,
                logs,
                lifecycle_log,
                sessions: Sessions::default(),
                idle_timeout: config.session_idle_timeout,
                power: HashMap::new(),
                pending_boot_mode: HashMap::new(),
                tasks: Vec::new(),
                manager_path,
                actions,
                events,
            }),
        }
    }

    /// Returns the service tag (`SKU` or `SerialNumber` of the first system), empty when the
    /// data has none.
    pub fn service_tag(&self) -> &str {
        &self.service_tag
    }

    /// Returns the run-time fault switch.
    pub fn faults(&self) -> FaultControl {
        self.faults.clone()
    }

    /// Returns the sessions URI that the service root names now.
    pub(crate) fn active_sessions_path(&self) -> &str {
        if self.faults.is_enabled(Fault::OldSessionUri) {
            OLD_SESSIONS_PATH
        } else {
            &self.sessions_path
        }
    }

    /// Appends an entry to the lifecycle log: `key` is a Dell-style message key such as
    /// `SYS1003` (prefixed like the log's other entries), `message` a sentence, and `user` and
    /// `source` (a client address) are named in the entry when given. Long text is clipped.
    /// Data without a lifecycle log records nothing.
    pub fn record_event(&self, key: &str, message: &str, user: Option<&str>, source: Option<&str>) {
        self.lock().log_event(key, message, user, source);
    }

    /// Returns the event service: subscriptions, `SubmitTestEvent` and the SSE stream.
    pub fn events(&self) -> Arc<EventService> {
        self.lock().events.clone()
    }

    /// Locks the mutable state and brings power transitions, tasks and sessions up to now.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.advance(Instant::now());
        inner
    }
}

/// Loads the resource tree and logs that `config` names.
///
/// # Errors
///
/// [`BmcError::InvalidMockup`] or [`BmcError::Io`] for an unreadable mockup folder.
pub(crate) fn load_data(config: &BmcConfig) -> Result<LoadedData, BmcError> {
    match &config.data {
        DataSource::Embedded => Ok(tree::load_sample(crate::sample::sample_server())),
        DataSource::Mockup(dir) => tree::load_mockup(dir),
    }
}

impl Inner {
    /// Applies every power step and task completion that is due, and expires idle sessions.
    fn advance(&mut self, now: Instant) {
        crate::power::advance(self, now);
        let idle = self.idle_timeout;
        for session in self.sessions.expire(idle, now) {
            tracing::debug!(session = %session.id, user = %session.user, "session expired");
        }
    }

    /// Writes an entry into the lifecycle log, if the data has one, and raises it as an event.
    pub(crate) fn log(&mut self, message: LogMessage) {
        self.log_about(message, None);
    }

    /// Writes an entry as [`Inner::log`] does, raising the event with `origin`, the URI of the
    /// resource it concerns, as `OriginOfCondition`.
    pub(crate) fn log_about(&mut self, message: LogMessage, origin: Option<String>) {
        self.events.raise(NewEvent {
            message_id: message.message_id.clone(),
            severity: message.severity.as_str().to_owned(),
            message: message.message.clone(),
            message_args: message.args.clone(),
            origin,
        });
        let Some(index) = self.lifecycle_log else {
            tracing::debug!(message_id = %message.message_id, "no lifecycle log to write to");
            return;
        };
        if let Some(store) = self.logs.get_mut(index) {
            store.append(message);
        }
    }

    /// Builds the `MessageId` of a Dell-style key in the lifecycle log.
    fn lifecycle_id(&self, key: &str) -> String {
        let store = self.lifecycle_log.and_then(|index| self.logs.get(index));
        store
            .map(|s| s.message_id(key))
            .unwrap_or_else(|| key.to_owned())
    }

    /// Writes a login entry (`USR0030`).
    pub(crate) fn log_login(&mut self, user: &str, client: &str) {
        let user = &clip(user);
        self.log(LogMessage {
            message_id: self.lifecycle_id("USR0030"),
            message: format!("User {user} logged in from {client} using Redfish."),
            args: vec![user.into(), client.into(), "Redfish".into()],
            severity: Severity::Ok,
        });
    }

    /// Writes a failed login entry (`USR0031`).
    pub(crate) fn log_failed_login(&mut self, user: &str, client: &str) {
        let user = &clip(user);
        self.log(LogMessage {
            message_id: self.lifecycle_id("USR0031"),
            message: format!(
                "Login failed for user {user} from {client} using Redfish: invalid credentials."
            ),
            args: vec![user.into(), client.into(), "Redfish".into()],
            severity: Severity::Warning,
        });
    }

    /// Writes a logout entry (`USR0032`).
    pub(crate) fn log_logout(&mut self, user: &str, client: &str) {
        let user = &clip(user);
        self.log(LogMessage {
            message_id: self.lifecycle_id("USR0032"),
            message: format!("Session of user {user} from {client} using Redfish closed."),
            args: vec![user.into(), client.into(), "Redfish".into()],
            severity: Severity::Ok,
        });
    }

    /// Writes an entry for a change the BMC made on its own, such as the end of a one-time
    /// boot override. `change` contains no client-supplied text longer than [`clip`] allows.
    pub(crate) fn log_system_change(&mut self, change: String) {
        self.log(LogMessage {
            message_id: "Rackside.1.0.ConfigurationChanged".into(),
            message: format!("{change}."),
            args: vec![change],
            severity: Severity::Ok,
        });
    }

    /// Writes an entry for a change made through the API from the client address `source`:
    /// the message names both, and `MessageArgs` ends with the user and the source.
    /// Callers clip client-supplied values in `change` with [`clip`]; `user` is clipped here.
    pub(crate) fn log_change_from(&mut self, user: &str, source: &str, change: String) {
        let user = clip(user);
        self.log(LogMessage {
            message_id: "Rackside.1.0.ConfigurationChanged".into(),
            message: format!("{change} by {user} from {source}."),
            args: vec![change, user, source.to_owned()],
            severity: Severity::Ok,
        });
    }

    /// Writes the end of a power transition of the system at `path` as
    /// `Rackside.1.0.PowerStateChanged`, whose arguments are the system URI and the new state.
    pub(crate) fn log_power(&mut self, path: &str, power_state: &str) {
        let message = LogMessage {
            message_id: "Rackside.1.0.PowerStateChanged".into(),
            message: format!("Power state of {path} changed to {power_state}."),
            args: vec![path.to_owned(), power_state.to_owned()],
            severity: Severity::Ok,
        };
        self.log_about(message, Some(path.to_owned()));
    }

    /// Writes a hardware fault such as a failed fan: `key` is its Dell-style message key and
    /// `origin` the URI of the resource that reports it.
    pub(crate) fn log_hardware(
        &mut self,
        key: &str,
        message: String,
        args: Vec<String>,
        severity: Severity,
        origin: Option<String>,
    ) {
        let message = LogMessage {
            message_id: self.lifecycle_id(key),
            message,
            args,
            severity,
        };
        self.log_about(message, origin);
    }

    /// Writes an entry with a Dell-style `key` such as `SYS1003`, naming the user and the
    /// source address when they are known. `message` is clipped here.
    pub(crate) fn log_event(
        &mut self,
        key: &str,
        message: &str,
        user: Option<&str>,
        source: Option<&str>,
    ) {
        let mut text = clip(message).trim_end_matches('.').to_owned();
        let mut args = vec![text.clone()];
        if let Some(user) = user {
            let user = clip(user);
            text.push_str(&format!(" by {user}"));
            args.push(user);
        }
        if let Some(source) = source {
            let source = clip(source);
            text.push_str(&format!(" from {source}"));
            args.push(source);
        }
        text.push('.');
        self.log(LogMessage {
            message_id: self.lifecycle_id(key),
            message: text,
            args,
            severity: Severity::Ok,
        });
    }
}
