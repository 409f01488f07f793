//! The power state machine of computer systems: a reset is validated, returns at once, and
//! `PowerState` then moves through `PoweringOn` or `PoweringOff` to its final value.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::state::Inner;
use crate::tree::{normalize_path, Tree};

/// Reset types that a system advertises under [`crate::Fault::StrictResetTypes`]:
/// `GracefulRestart` and `PowerCycle` are left out, as some iDRAC firmware does.
pub(crate) const STRICT_RESET_TYPES: [&str; 6] = [
    "On",
    "ForceOff",
    "GracefulShutdown",
    "ForceRestart",
    "PushPowerButton",
    "Nmi",
];

/// Reset types accepted from a system that advertises none.
const STANDARD_RESET_TYPES: [&str; 8] = [
    "On",
    "ForceOff",
    "GracefulShutdown",
    "GracefulRestart",
    "ForceRestart",
    "Nmi",
    "ForceOn",
    "PushPowerButton",
];

/// Scheduled `PowerState` values of one system.
#[derive(Debug, Clone)]
pub(crate) struct PowerPlan {
    steps: VecDeque<(Instant, &'static str)>,
    /// Whether the plan passes through `PoweringOn`, so that the host boots when it ends `On`.
    boots: bool,
}

impl PowerPlan {
    fn final_state(&self) -> Option<&'static str> {
        self.steps.back().map(|(_, state)| *state)
    }
}

/// Lists the reset types a system accepts, from `ResetType@Redfish.AllowableValues` of its reset
/// action or from the `@Redfish.ActionInfo` resource it links.
pub(crate) fn allowed_reset_types(system: &Value, tree: &Tree, strict: bool) -> Vec<String> {
    let action = system.pointer("/Actions/#ComputerSystem.Reset");
    let listed = action
        .and_then(|a| a.get("ResetType@Redfish.AllowableValues"))
        .and_then(Value::as_array)
        .cloned()
        .or_else(|| {
            let info_path = action?.get("@Redfish.ActionInfo")?.as_str()?;
            let info = tree.json(&normalize_path(info_path))?;
            info.get("Parameters")?
                .as_array()?
                .iter()
                .find(|p| p.get("Name").and_then(Value::as_str) == Some("ResetType"))?
                .get("AllowableValues")?
                .as_array()
                .cloned()
        });
    let all: Vec<String> = match listed {
        Some(values) => values
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        None => STANDARD_RESET_TYPES
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
    };
    if strict {
        all.into_iter()
            .filter(|t| STRICT_RESET_TYPES.contains(&t.as_str()))
            .collect()
    } else {
        all
    }
}

/// The effect of a reset on a system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResetEffect {
    /// `PowerState` moves through the listed transition.
    Transition,
    /// A diagnostic interrupt reaches the running host; the power state stays.
    Interrupt,
    /// The system is already in the requested state.
    NoChange,
}

/// Schedules the power transitions of `reset_type` for the system at `path`.
///
/// Under `delayed`, `PowerState` keeps its old value for one `delay` before the transition
/// starts. A restart of a system that is off starts it, as `PowerCycle` does. When the system
/// is on again after passing through `PoweringOn`, the host has booted: a one-time boot
/// override is used up and goes back to `Disabled` (see [`advance`]).
pub(crate) fn reset(
    inner: &mut Inner,
    path: &str,
    reset_type: &str,
    delay: Duration,
    delayed: bool,
) -> ResetEffect {
    let now = Instant::now();
    let current = inner
        .power
        .get(path)
        .and_then(PowerPlan::final_state)
        .map(str::to_owned)
        .or_else(|| {
            inner
                .tree
                .json(path)?
                .get("PowerState")?
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "On".to_owned());
    let is_on = current != "Off";

    let targets: &[&'static str] = match (reset_type, is_on) {
        ("Nmi", true) => return ResetEffect::Interrupt,
        ("On" | "ForceOn", false) => &["PoweringOn", "On"],
        ("ForceOff" | "GracefulShutdown", true) => &["PoweringOff", "Off"],
        ("PushPowerButton", true) => &["PoweringOff", "Off"],
        ("PushPowerButton", false) => &["PoweringOn", "On"],
        ("ForceRestart" | "GracefulRestart" | "PowerCycle" | "FullPowerCycle", true) => {
            &["PoweringOff", "PoweringOn", "On"]
        }
        ("ForceRestart" | "GracefulRestart" | "PowerCycle" | "FullPowerCycle", false) => {
            &["PoweringOn", "On"]
        }
        _ => &[],
    };
    if targets.is_empty() {
        return ResetEffect::NoChange;
    }

    let start = if delayed { now + delay } else { now };
    let last = targets.len().saturating_sub(1).max(1) as u32;
    let steps = targets
        .iter()
        .enumerate()
        .map(|(i, state)| {
            // Transitional states come first; the final state arrives one `delay` after start.
            let at = if i + 1 == targets.len() {
                start + delay
            } else {
                start + delay * i as u32 / last
            };
            (at, *state)
        })
        .collect();
    inner.power.insert(
        path.to_owned(),
        PowerPlan {
            steps,
            boots: targets.contains(&"PoweringOn"),
        },
    );
    advance(inner, now);
    ResetEffect::Transition
}

/// Applies every scheduled power step that is due at `now`.
pub(crate) fn advance(inner: &mut Inner, now: Instant) {
    let mut finished = Vec::new();
    for (path, plan) in inner.power.iter_mut() {
        while let Some((at, state)) = plan.steps.front().copied() {
            if at > now {
                break;
            }
            plan.steps.pop_front();
            inner
                .tree
                .update(path, |system| set_string(system, "PowerState", state));
        }
        if plan.steps.is_empty() {
            finished.push((path.clone(), plan.boots));
        }
    }
    for (path, boots) in finished {
        inner.power.remove(&path);
        let system = inner.tree.json(&path);
        let power_state = system
            .and_then(|s| s.get("PowerState"))
            .and_then(Value::as_str)
            .unwrap_or("On")
            .to_owned();
        inner.log_power(&path, &power_state);
        let is_on = power_state == "On";
        if !is_on || !boots {
            continue;
        }
        boot(inner, &path);
    }
}

/// Records that the host at `path` booted: a one-time override is used up, and a boot mode
/// change that waited for this boot applies. Both go into the lifecycle log.
fn boot(inner: &mut Inner, path: &str) {
    let boot = inner
        .tree
        .json(path)
        .and_then(|s| s.get("Boot"))
        .cloned()
        .unwrap_or_default();
    let text = |key: &str| boot.get(key).and_then(Value::as_str).map(str::to_owned);
    let once = text("BootSourceOverrideEnabled").as_deref() == Some("Once");
    let target = text("BootSourceOverrideTarget").unwrap_or_else(|| "None".to_owned());
    let pending_mode = inner.pending_boot_mode.remove(path);
    inner.tree.update(path, |system| {
        let Some(boot) = system.get_mut("Boot").and_then(Value::as_object_mut) else {
            return;
        };
        if once {
            boot.insert("BootSourceOverrideEnabled".into(), "Disabled".into());
            if boot.contains_key("BootSourceOverrideTarget") {
                boot.insert("BootSourceOverrideTarget".into(), "None".into());
            }
        }
        if let Some(mode) = &pending_mode {
            boot.insert("BootSourceOverrideMode".into(), mode.as_str().into());
        }
    });
    if once {
        inner.log_system_change(format!(
            "Host of {path} booted from {target} once; the boot override is Disabled again"
        ));
    }
    if let Some(mode) = pending_mode {
        inner.log_system_change(format!(
            "Boot mode of {path} changed to {mode} by a configuration job at power-on"
        ));
    }
}

fn set_string(body: &mut Value, key: &str, value: &str) {
    if let Some(map) = body.as_object_mut() {
        map.insert(key.to_owned(), Value::String(value.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn allowed_types_come_from_the_action() {
        let system = json!({"Actions": {"#ComputerSystem.Reset": {
            "ResetType@Redfish.AllowableValues": ["On", "GracefulRestart"]}}});
        let tree = Tree::default();
        assert_eq!(
            allowed_reset_types(&system, &tree, false),
            ["On", "GracefulRestart"]
        );
        assert_eq!(allowed_reset_types(&system, &tree, true), ["On"]);
    }

    #[test]
    fn system_without_list_accepts_standard_types() {
        let allowed = allowed_reset_types(&json!({}), &Tree::default(), false);
        assert!(allowed.iter().any(|t| t == "GracefulRestart"));
    }
}
