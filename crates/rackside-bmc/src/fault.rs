//! Switchable reproductions of real BMC misbehaviour.
//!
//! Each [`Fault`] reproduces one case that real BMCs (mostly Dell iDRAC, also HPE iLO and Lenovo
//! XCC) show, so that a client test can prove it copes. A fault is off unless enabled in
//! [`crate::BmcConfig::faults`], through [`FaultControl`], or with `POST /rackside/faults`.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

/// One behaviour case that the simulator can reproduce on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// A POST to an action target that carries `If-Match` gets 412 `PreconditionFailed`.
    IfMatchOnAction412,
    /// The `ETag` header is weak (`W/"..."`), the body's `@odata.etag` differs from it, a PATCH
    /// without `If-Match` gets 428 and one with the strong spelling of the tag gets 412.
    WeakEtag,
    /// `GET /redfish/v1/AccountService` carries `@odata.etag` as a JSON number.
    NumericEtag,
    /// Every request for a log's Entries collection first writes a new login entry, so the
    /// newest page shifts while a client pages.
    LogShiftsWhilePaging,
    /// Every session login gets 503 with `RAC0218`, as if stale sessions used up the limit.
    SessionExhaustion,
    /// Every request with Basic authentication gets 401 `AccessDenied`.
    BasicAuthDisabled,
    /// A read-only account gets 401 instead of 403 on requests its role does not allow.
    RoleProblem401,
    /// A task URI returned with 202 returns 404 once the task completed, while the job URI stays.
    VanishingTaskMonitor,
    /// The systems advertise a short `ResetType@Redfish.AllowableValues` without
    /// `GracefulRestart` and `PowerCycle`, and reject the values left out.
    StrictResetTypes,
    /// Dates come malformed: non-padded months, `00:00:00Z`, all-zero dates, `-0600` offsets.
    MalformedDates,
    /// Arrays come as objects (`StorageControllers: {}`), `MemberId` as a number and
    /// `MaxSpeedMHz` as an empty string.
    WrongContainerTypes,
    /// The first requests to thermal and power resources get 503 with `Retry-After` or 500
    /// with `SYS518`, and so do the first writes (PATCH, and POST other than a login). Job
    /// collections are empty for a while.
    // NOTE: the read time-outs that real BMCs also show on these resources are not reproduced.
    TransientErrors,
    /// The sessions collection lives at the old `/redfish/v1/Sessions`.
    OldSessionUri,
    /// A request carrying a header outside the standard set gets 500 `InternalError`.
    RejectUnusualHeaders,
    /// Systems, chassis and drives expose only `IndicatorLED`, not `LocationIndicatorActive`.
    LegacyIndicatorLed,
    /// A boot mode change (`BootSourceOverrideMode`) waits for the next power-on, as an iDRAC
    /// configuration job does. Without this fault it applies at once. A one-time boot override
    /// goes back to `Disabled` after the next boot either way.
    BootOverrideOnce,
    /// After a reset returns 204, `PowerState` keeps its old value for a while before the
    /// transition starts.
    DelayedPowerState,
    /// A fan fails: the first fan reports `Critical` health and the BMC raises an event.
    FanFailure,
    /// A power supply fails: the first one reports `Critical` health and the BMC raises an
    /// event.
    PsuFailure,
}

impl Fault {
    /// Every fault, in the order of the behaviour cases.
    pub const ALL: [Fault; 19] = [
        Fault::IfMatchOnAction412,
        Fault::WeakEtag,
        Fault::NumericEtag,
        Fault::LogShiftsWhilePaging,
        Fault::SessionExhaustion,
        Fault::BasicAuthDisabled,
        Fault::RoleProblem401,
        Fault::VanishingTaskMonitor,
        Fault::StrictResetTypes,
        Fault::MalformedDates,
        Fault::WrongContainerTypes,
        Fault::TransientErrors,
        Fault::OldSessionUri,
        Fault::RejectUnusualHeaders,
        Fault::LegacyIndicatorLed,
        Fault::BootOverrideOnce,
        Fault::DelayedPowerState,
        Fault::FanFailure,
        Fault::PsuFailure,
    ];

    /// The kebab-case name used on the command line and by the control endpoint.
    pub fn name(self) -> &'static str {
        match self {
            Fault::IfMatchOnAction412 => "if-match-on-action-412",
            Fault::WeakEtag => "weak-etag",
            Fault::NumericEtag => "numeric-etag",
            Fault::LogShiftsWhilePaging => "log-shifts-while-paging",
            Fault::SessionExhaustion => "session-exhaustion",
            Fault::BasicAuthDisabled => "basic-auth-disabled",
            Fault::RoleProblem401 => "role-problem-401",
            Fault::VanishingTaskMonitor => "vanishing-task-monitor",
            Fault::StrictResetTypes => "strict-reset-types",
            Fault::MalformedDates => "malformed-dates",
            Fault::WrongContainerTypes => "wrong-container-types",
            Fault::TransientErrors => "transient-errors",
            Fault::OldSessionUri => "old-session-uri",
            Fault::RejectUnusualHeaders => "reject-unusual-headers",
            Fault::LegacyIndicatorLed => "legacy-indicator-led",
            Fault::BootOverrideOnce => "boot-override-once",
            Fault::DelayedPowerState => "delayed-power-state",
            Fault::FanFailure => "fan-failure",
            Fault::PsuFailure => "psu-failure",
        }
    }
}

impl Fault {
    /// Returns one line on what the fault makes the simulator do, for `rackside bmc --list-faults`.
    pub fn description(self) -> &'static str {
        match self {
            Fault::IfMatchOnAction412 => "an action POST carrying If-Match gets 412",
            Fault::WeakEtag => {
                "weak ETag headers; PATCH needs If-Match (428) in the weak form (412)"
            }
            Fault::NumericEtag => "AccountService carries @odata.etag as a JSON number",
            Fault::LogShiftsWhilePaging => "each log page request first adds a new login entry",
            Fault::SessionExhaustion => {
                "every session login gets 503 RAC0218, session limit reached"
            }
            Fault::BasicAuthDisabled => "every Basic-auth request gets 401 AccessDenied",
            Fault::RoleProblem401 => "a read-only account gets 401 (not 403) on writes",
            Fault::VanishingTaskMonitor => {
                "a finished task's monitor answers 404; the job URI stays"
            }
            Fault::StrictResetTypes => "fewer ResetType values advertised; the others get 400",
            Fault::MalformedDates => "unpadded months, 00:00:00Z, all-zero dates, -0600 offsets",
            Fault::WrongContainerTypes => {
                "objects where arrays belong, numbers and \"\" for strings"
            }
            Fault::TransientErrors => {
                "thermal, power and writes first get 503/500 SYS518; jobs empty a while"
            }
            Fault::OldSessionUri => "the sessions collection is /redfish/v1/Sessions",
            Fault::RejectUnusualHeaders => "a non-standard request header gets 500 InternalError",
            Fault::LegacyIndicatorLed => "only IndicatorLED, no LocationIndicatorActive",
            Fault::BootOverrideOnce => "a boot mode change waits for the next power-on as a job",
            Fault::DelayedPowerState => "PowerState keeps its old value for a while after a reset",
            Fault::FanFailure => "the first fan fails and reports Critical health",
            Fault::PsuFailure => "the first power supply fails and reports Critical health",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error for a fault name that [`Fault::from_str`] does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault {name:?}: expected one of {}", Fault::ALL.map(Fault::name).join(", "))]
pub struct UnknownFault {
    /// The name as given.
    pub name: String,
}

impl FromStr for Fault {
    type Err = UnknownFault;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('_', "-");
        Fault::ALL
            .into_iter()
            .find(|fault| fault.name() == wanted)
            .ok_or_else(|| UnknownFault { name: s.to_owned() })
    }
}

/// A set of enabled faults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults(BTreeSet<Fault>);

impl Faults {
    /// Whether `fault` is in the set.
    pub fn contains(&self, fault: Fault) -> bool {
        self.0.contains(&fault)
    }

    /// Adds `fault`.
    pub fn insert(&mut self, fault: Fault) {
        self.0.insert(fault);
    }

    /// Removes `fault`.
    pub fn remove(&mut self, fault: Fault) {
        self.0.remove(&fault);
    }

    /// The enabled faults in case order.
    pub fn iter(&self) -> impl Iterator<Item = Fault> + '_ {
        self.0.iter().copied()
    }
}

impl FromIterator<Fault> for Faults {
    fn from_iter<I: IntoIterator<Item = Fault>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// Shared run-time switch for the faults of one running BMC.
///
/// Clones share the same state. Enabling [`Fault::TransientErrors`] restarts its request
/// counters and its empty-collection window.
#[derive(Debug, Clone)]
pub struct FaultControl {
    inner: Arc<FaultState>,
}

#[derive(Debug)]
struct FaultState {
    enabled: RwLock<Faults>,
    transient_requests: AtomicU64,
    transient_writes: AtomicU64,
    transient_since: RwLock<Instant>,
}

impl FaultControl {
    /// Creates a switch with `initial` enabled.
    pub fn new(initial: Faults) -> Self {
        Self {
            inner: Arc::new(FaultState {
                enabled: RwLock::new(initial),
                transient_requests: AtomicU64::new(0),
                transient_writes: AtomicU64::new(0),
                transient_since: RwLock::new(Instant::now()),
            }),
        }
    }

    /// Turns `fault` on.
    pub fn enable(&self, fault: Fault) {
        let mut enabled = self
            .inner
            .enabled
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if fault == Fault::TransientErrors && !enabled.contains(fault) {
            self.inner.transient_requests.store(0, Ordering::SeqCst);
            self.inner.transient_writes.store(0, Ordering::SeqCst);
            *self
                .inner
                .transient_since
                .write()
                .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        }
        enabled.insert(fault);
        tracing::debug!(%fault, "fault enabled");
    }

    /// Turns `fault` off.
    pub fn disable(&self, fault: Fault) {
        self.inner
            .enabled
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(fault);
        tracing::debug!(%fault, "fault disabled");
    }

    /// Whether `fault` is on.
    pub fn is_enabled(&self, fault: Fault) -> bool {
        self.inner
            .enabled
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(fault)
    }

    /// The faults that are on.
    pub fn enabled(&self) -> Faults {
        self.inner
            .enabled
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Counts one request to a thermal or power resource and returns its 1-based number since
    /// [`Fault::TransientErrors`] was enabled.
    pub(crate) fn next_transient_request(&self) -> u64 {
        self.inner.transient_requests.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Counts one write and returns its 1-based number since [`Fault::TransientErrors`] was
    /// enabled.
    pub(crate) fn next_transient_write(&self) -> u64 {
        self.inner.transient_writes.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// When [`Fault::TransientErrors`] was last enabled (or the switch created).
    pub(crate) fn transient_since(&self) -> Instant {
        *self
            .inner
            .transient_since
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_names_round_trip() {
        for fault in Fault::ALL {
            assert_eq!(fault.name().parse::<Fault>(), Ok(fault));
            assert_eq!(fault.to_string(), fault.name());
        }
    }

    #[test]
    fn fault_name_parse_ignores_case_and_underscores() {
        assert_eq!("Weak_Etag".parse::<Fault>(), Ok(Fault::WeakEtag));
    }

    #[test]
    fn unknown_fault_name_lists_known_names() {
        let error = "no-such-fault".parse::<Fault>().unwrap_err();
        assert!(error.to_string().contains("weak-etag"));
    }

    #[test]
    fn fault_control_enables_and_disables() {
        let control = FaultControl::new(Faults::default());
        control.enable(Fault::NumericEtag);
        assert!(control.is_enabled(Fault::NumericEtag));
        control.disable(Fault::NumericEtag);
        assert!(!control.is_enabled(Fault::NumericEtag));
    }
}
