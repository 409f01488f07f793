//! Resets and power state: the reset types a system offers, the reset action, and waiting
//! for `PowerState` to follow.
//!
//! A BMC returns 204 for a reset before anything happens, and `PowerState` changes seconds
//! later (`PoweringOn`, then `On`). So a 204 alone never counts as success here:
//! [`Client::reset_and_wait`] polls until the system reaches the expected state.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::client::request_path;
use crate::transport::Transport;
use crate::write::ActionOutcome;
use crate::{decode, Client, Error};

/// A `ResetType` of the Redfish `ComputerSystem.Reset` action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum ResetType {
    /// Turn the unit on.
    On,
    /// Turn the unit off at once.
    ForceOff,
    /// Shut down the operating system, then turn off.
    GracefulShutdown,
    /// Shut down the operating system, then restart.
    GracefulRestart,
    /// Restart at once.
    ForceRestart,
    /// Send a non-maskable interrupt.
    Nmi,
    /// Turn the unit on at once.
    ForceOn,
    /// Simulate a press of the power button.
    PushPowerButton,
    /// Turn off, then on.
    PowerCycle,
    /// Write memory to disk and turn off.
    Suspend,
    /// Pause execution.
    Pause,
    /// Resume from pause or suspend.
    Resume,
    /// Turn off with auxiliary power too, then on.
    FullPowerCycle,
}

impl ResetType {
    /// Every reset type, in the order of the Redfish schema.
    pub const ALL: [ResetType; 13] = [
        ResetType::On,
        ResetType::ForceOff,
        ResetType::GracefulShutdown,
        ResetType::GracefulRestart,
        ResetType::ForceRestart,
        ResetType::Nmi,
        ResetType::ForceOn,
        ResetType::PushPowerButton,
        ResetType::PowerCycle,
        ResetType::Suspend,
        ResetType::Pause,
        ResetType::Resume,
        ResetType::FullPowerCycle,
    ];

    /// Returns the Redfish name, such as `GracefulRestart`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResetType::On => "On",
            ResetType::ForceOff => "ForceOff",
            ResetType::GracefulShutdown => "GracefulShutdown",
            ResetType::GracefulRestart => "GracefulRestart",
            ResetType::ForceRestart => "ForceRestart",
            ResetType::Nmi => "Nmi",
            ResetType::ForceOn => "ForceOn",
            ResetType::PushPowerButton => "PushPowerButton",
            ResetType::PowerCycle => "PowerCycle",
            ResetType::Suspend => "Suspend",
            ResetType::Pause => "Pause",
            ResetType::Resume => "Resume",
            ResetType::FullPowerCycle => "FullPowerCycle",
        }
    }

    /// Returns whether the reset turns the system off and on again, so that the system
    /// ends in the state it started in.
    fn cycles_power(self) -> bool {
        matches!(
            self,
            ResetType::GracefulRestart
                | ResetType::ForceRestart
                | ResetType::PowerCycle
                | ResetType::FullPowerCycle
        )
    }

    /// Returns the power state the reset leads to from `current`, or `None` when the
    /// reset does not change the power state (such as `Nmi`).
    fn expected_state(self, current: Option<PowerState>) -> Option<PowerState> {
        match self {
            ResetType::On
            | ResetType::ForceOn
            | ResetType::GracefulRestart
            | ResetType::ForceRestart
            | ResetType::PowerCycle
            | ResetType::FullPowerCycle
            | ResetType::Resume => Some(PowerState::On),
            ResetType::ForceOff | ResetType::GracefulShutdown | ResetType::Suspend => {
                Some(PowerState::Off)
            }
            ResetType::PushPowerButton => match current {
                Some(PowerState::Off | PowerState::PoweringOff) => Some(PowerState::On),
                Some(_) => Some(PowerState::Off),
                None => None,
            },
            ResetType::Pause => Some(PowerState::Paused),
            ResetType::Nmi => None,
        }
    }
}

impl fmt::Display for ResetType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ResetType {
    type Err = Error;

    /// Parses a Redfish reset type name, ignoring case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let requested = s.trim();
        ResetType::ALL
            .into_iter()
            .find(|reset| reset.as_str().eq_ignore_ascii_case(requested))
            .ok_or_else(|| Error::UnknownName {
                kind: "reset type",
                name: s.to_owned(),
                expected: ResetType::ALL.map(ResetType::as_str).join(", "),
            })
    }
}

/// A Redfish `PowerState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum PowerState {
    /// Powered on.
    On,
    /// Powered off.
    Off,
    /// Turning on.
    PoweringOn,
    /// Turning off.
    PoweringOff,
    /// Paused.
    Paused,
}

impl PowerState {
    /// Returns the Redfish name, such as `PoweringOn`.
    pub fn as_str(self) -> &'static str {
        match self {
            PowerState::On => "On",
            PowerState::Off => "Off",
            PowerState::PoweringOn => "PoweringOn",
            PowerState::PoweringOff => "PoweringOff",
            PowerState::Paused => "Paused",
        }
    }

    /// Parses a Redfish power state, ignoring case; unknown names give `None`.
    pub fn parse(raw: &str) -> Option<PowerState> {
        [
            PowerState::On,
            PowerState::Off,
            PowerState::PoweringOn,
            PowerState::PoweringOff,
            PowerState::Paused,
        ]
        .into_iter()
        .find(|state| state.as_str().eq_ignore_ascii_case(raw.trim()))
    }
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change of `PowerState` seen while waiting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PowerObservation {
    /// The `PowerState` text as read, or `"unknown"` when the property was missing.
    pub state: String,
    /// Time since the wait started.
    pub after: Duration,
}

/// The result of a wait for a power state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PowerWait {
    /// The system.
    pub system: String,
    /// The state reached.
    pub state: PowerState,
    /// Every distinct state seen, in order, the first read included.
    pub seen: Vec<PowerObservation>,
    /// Time from the start of the wait to the final state.
    pub elapsed: Duration,
}

impl PowerWait {
    /// Returns whether a transitional state (`PoweringOn` or `PoweringOff`) was seen.
    pub fn saw_transition(&self) -> bool {
        self.seen.iter().any(|seen| {
            matches!(
                PowerState::parse(&seen.state),
                Some(PowerState::PoweringOn | PowerState::PoweringOff)
            )
        })
    }
}

impl<T: Transport> Client<T> {
    /// Reads the reset types a system offers, from `ResetType@Redfish.AllowableValues` of
    /// its reset action or, when that is missing, from the `@Redfish.ActionInfo` resource
    /// it links. Returns `None` when the system lists no values; names that are not
    /// Redfish reset types are left out.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] when the system has no `#ComputerSystem.Reset` action; read
    /// errors as they occur.
    pub async fn reset_types(&self, system: &str) -> Result<Option<Vec<ResetType>>, Error> {
        let system = self.get(system).await?;
        let (_, action) = reset_action(&system.path, &system.body)?;
        Ok(self
            .allowable_values(&action, "ResetType")
            .await?
            .map(|names| {
                names
                    .iter()
                    .filter_map(|name| match name.parse::<ResetType>() {
                        Ok(reset) => Some(reset),
                        Err(error) => {
                            tracing::debug!(%error, "reset type left out");
                            None
                        }
                    })
                    .collect()
            }))
    }

    /// Sends `ComputerSystem.Reset` with `reset_type` to a system. Checks the reset types the
    /// system offers first and does not send a type that is not offered.
    ///
    /// The BMC's 204 only means that it accepted the request: `PowerState` changes later.
    /// Use [`Client::reset_and_wait`] to know that the reset took effect.
    ///
    /// # Errors
    ///
    /// [`Error::NotOffered`] listing the offered types when `reset_type` is not one of them;
    /// [`Error::Unsupported`] without a reset action; the errors of [`Client::action`].
    pub async fn reset(&self, system: &str, reset_type: ResetType) -> Result<ActionOutcome, Error> {
        let system = self.get(system).await?;
        let (target, action) = reset_action(&system.path, &system.body)?;
        if let Some(allowed) = self.allowable_values(&action, "ResetType").await? {
            if !allowed.iter().any(|name| name == reset_type.as_str()) {
                return Err(Error::NotOffered {
                    path: system.path,
                    name: "ResetType".into(),
                    value: reset_type.to_string(),
                    allowed: allowed.join(", "),
                });
            }
        }
        tracing::debug!(system = %system.path, %reset_type, "reset requested");
        self.action(&target, &json!({ "ResetType": reset_type.as_str() }))
            .await
    }

    /// Resets a system and waits until `PowerState` shows the reset took effect.
    ///
    /// The expected final state follows from the reset type and the state before the reset.
    /// When the reset cycles power (restart, power cycle) and so ends where it started, the
    /// wait first requires a state other than the starting one, so that a BMC that still
    /// shows the old state does not count as done. `Nmi`, which leaves the power state as it
    /// is, and `PushPowerButton` from an unknown state read `PowerState` once.
    ///
    /// # Errors
    ///
    /// The errors of [`Client::reset`] and [`Client::wait_for_power_state`];
    /// [`Error::WaitExpired`] when a power cycle showed no change before the deadline.
    pub async fn reset_and_wait(
        &self,
        system: &str,
        reset_type: ResetType,
        deadline: Duration,
    ) -> Result<PowerWait, Error> {
        let started = Instant::now();
        let before = self.get(system).await?;
        let raw_before = decode::text(&before.body, "PowerState");
        let state_before = raw_before.as_deref().and_then(PowerState::parse);
        self.reset(&before.path, reset_type).await?;

        let Some(expected) = reset_type.expected_state(state_before) else {
            return self.current_power(&before.path, started).await;
        };
        let must_leave =
            (reset_type.cycles_power() && state_before == Some(expected)).then_some(expected);
        self.wait_power(&before.path, expected, must_leave, started, deadline)
            .await
    }

    /// Polls a system's `PowerState` until it is `expected` or `deadline` passes, and records
    /// every state seen on the way (such as `PoweringOn`).
    ///
    /// # Errors
    ///
    /// [`Error::WaitExpired`] naming the last state seen; read errors as they occur.
    pub async fn wait_for_power_state(
        &self,
        system: &str,
        expected: PowerState,
        deadline: Duration,
    ) -> Result<PowerWait, Error> {
        let path = request_path(system)?;
        self.wait_power(&path, expected, None, Instant::now(), deadline)
            .await
    }

    /// Reads `PowerState` once, for a reset whose effect on it is not known in advance.
    async fn current_power(&self, system: &str, started: Instant) -> Result<PowerWait, Error> {
        let resource = self.get(system).await?;
        let raw = decode::text(&resource.body, "PowerState");
        let Some(state) = raw.as_deref().and_then(PowerState::parse) else {
            return Err(Error::Unsupported {
                path: resource.path,
                detail: "a readable PowerState, so the reset was sent but its effect is unknown"
                    .into(),
            });
        };
        Ok(PowerWait {
            system: resource.path,
            state,
            seen: vec![PowerObservation {
                state: state.to_string(),
                after: started.elapsed(),
            }],
            elapsed: started.elapsed(),
        })
    }

    /// Polls `PowerState` until it is `expected`. With `must_leave`, the state must first
    /// be seen to differ from that value once.
    async fn wait_power(
        &self,
        system: &str,
        expected: PowerState,
        must_leave: Option<PowerState>,
        started: Instant,
        deadline: Duration,
    ) -> Result<PowerWait, Error> {
        let mut seen: Vec<PowerObservation> = Vec::new();
        let mut left = must_leave.is_none();
        loop {
            let resource = self.get(system).await?;
            let raw =
                decode::text(&resource.body, "PowerState").unwrap_or_else(|| "unknown".into());
            let state = PowerState::parse(&raw);
            if seen.last().is_none_or(|last| last.state != raw) {
                tracing::debug!(%system, state = %raw, "power state read");
                seen.push(PowerObservation {
                    state: raw.clone(),
                    after: started.elapsed(),
                });
            }
            if state != must_leave {
                left = true;
            }
            if left && state == Some(expected) {
                return Ok(PowerWait {
                    system: resource.path,
                    state: expected,
                    seen,
                    elapsed: started.elapsed(),
                });
            }
            if started.elapsed() >= deadline {
                let detail = if left {
                    format!("last state {raw}")
                } else {
                    format!("the BMC accepted the reset but PowerState stayed {raw}")
                };
                return Err(Error::WaitExpired {
                    what: format!("power state {expected} of {system}"),
                    seconds: deadline.as_secs(),
                    detail,
                });
            }
            tokio::time::sleep(self.poll_interval()).await;
        }
    }

    /// Reads the allowable values of an action parameter, from the action object or from its
    /// `@Redfish.ActionInfo` resource.
    pub(crate) async fn allowable_values(
        &self,
        action: &Value,
        parameter: &str,
    ) -> Result<Option<Vec<String>>, Error> {
        let listed = action
            .get(format!("{parameter}@Redfish.AllowableValues"))
            .and_then(Value::as_array);
        if let Some(values) = listed {
            return Ok(Some(strings(values)));
        }
        let Some(info_path) = decode::text(action, "@Redfish.ActionInfo") else {
            return Ok(None);
        };
        let info = self.get(&info_path).await?;
        let values = decode::array(&info.body, "Parameters")
            .iter()
            .find(|entry| decode::text(entry, "Name").as_deref() == Some(parameter))
            .and_then(|entry| entry.get("AllowableValues"))
            .and_then(Value::as_array)
            .map(|values| strings(values));
        Ok(values)
    }
}

/// Returns the reset action's target and object from a system body.
fn reset_action(path: &str, system: &Value) -> Result<(String, Value), Error> {
    let action = system
        .get("Actions")
        .and_then(|actions| actions.get("#ComputerSystem.Reset"))
        .filter(|action| action.is_object())
        .ok_or_else(|| Error::Unsupported {
            path: path.to_owned(),
            detail: "the ComputerSystem.Reset action".into(),
        })?;
    let target = decode::text(action, "target")
        .unwrap_or_else(|| format!("{path}/Actions/ComputerSystem.Reset"));
    Ok((target, action.clone()))
}

fn strings(values: &[Value]) -> Vec<String> {
    values
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_type_parses_any_case() {
        let parsed: ResetType = "gracefulrestart".parse().unwrap();
        assert_eq!(parsed, ResetType::GracefulRestart);
    }

    #[test]
    fn unknown_reset_type_lists_known() {
        let error = "Reboot".parse::<ResetType>().unwrap_err();
        assert!(error.to_string().contains("\"Reboot\""), "{error}");
        assert!(error.to_string().contains("ForceRestart"), "{error}");
    }

    #[test]
    fn restart_expects_on_and_cycles() {
        let restart = ResetType::ForceRestart;
        assert_eq!(
            restart.expected_state(Some(PowerState::On)),
            Some(PowerState::On)
        );
        assert!(restart.cycles_power());
    }

    #[test]
    fn power_button_toggles_state() {
        let button = ResetType::PushPowerButton;
        assert_eq!(
            button.expected_state(Some(PowerState::On)),
            Some(PowerState::Off)
        );
        assert_eq!(
            button.expected_state(Some(PowerState::Off)),
            Some(PowerState::On)
        );
    }
}
