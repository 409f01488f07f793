//! Settings written with PATCH: the identify LED and the boot source override.
//!
//! Older BMCs expose the identify LED only as `IndicatorLED` (`Lit`, `Blinking`, `Off`),
//! newer ones as the boolean `LocationIndicatorActive`, and some both. The boot override
//! offers the targets in `BootSourceOverrideTarget@Redfish.AllowableValues`; after a
//! one-time override and a reset the BMC sets it back to `Disabled`.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::transport::Transport;
use crate::write::WriteOutcome;
use crate::{decode, Client, Error};

/// A setting of the identify LED.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Indicator {
    /// Lit steadily.
    On,
    /// Off.
    Off,
    /// Blinking; needs `IndicatorLED`, because the boolean cannot express it.
    Blink,
}

impl Indicator {
    fn led_value(self) -> &'static str {
        match self {
            Indicator::On => "Lit",
            Indicator::Off => "Off",
            Indicator::Blink => "Blinking",
        }
    }
}

impl fmt::Display for Indicator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Indicator::On => "on",
            Indicator::Off => "off",
            Indicator::Blink => "blink",
        })
    }
}

/// A `BootSourceOverrideEnabled` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum BootOverrideEnabled {
    /// No override: the normal boot order applies.
    Disabled,
    /// Override the next boot only.
    Once,
    /// Override every boot until changed.
    Continuous,
}

impl BootOverrideEnabled {
    /// Returns the Redfish name.
    pub fn as_str(self) -> &'static str {
        match self {
            BootOverrideEnabled::Disabled => "Disabled",
            BootOverrideEnabled::Once => "Once",
            BootOverrideEnabled::Continuous => "Continuous",
        }
    }
}

impl fmt::Display for BootOverrideEnabled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BootOverrideEnabled {
    type Err = Error;

    /// Parses `Disabled`, `Once` or `Continuous`, ignoring case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            BootOverrideEnabled::Disabled,
            BootOverrideEnabled::Once,
            BootOverrideEnabled::Continuous,
        ]
        .into_iter()
        .find(|value| value.as_str().eq_ignore_ascii_case(s.trim()))
        .ok_or_else(|| Error::UnknownName {
            kind: "boot override setting",
            name: s.to_owned(),
            expected: "Disabled, Once, Continuous".into(),
        })
    }
}

/// A `BootSourceOverrideMode` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum BootMode {
    /// UEFI boot.
    Uefi,
    /// Legacy BIOS boot.
    Legacy,
}

impl BootMode {
    /// Returns the Redfish name: `UEFI` or `Legacy`.
    pub fn as_str(self) -> &'static str {
        match self {
            BootMode::Uefi => "UEFI",
            BootMode::Legacy => "Legacy",
        }
    }
}

impl fmt::Display for BootMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The boot source override of a system as read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BootOverride {
    /// The system.
    pub system: String,
    /// `BootSourceOverrideTarget`, such as `Pxe` or `None`.
    pub target: Option<String>,
    /// `BootSourceOverrideEnabled` as read, such as `Once`.
    pub enabled: Option<String>,
    /// `BootSourceOverrideMode`, such as `UEFI`.
    pub mode: Option<String>,
    /// `BootSourceOverrideTarget@Redfish.AllowableValues`, when the system lists them.
    pub allowed_targets: Option<Vec<String>>,
}

impl<T: Transport> Client<T> {
    /// Reads the identify LED of a system, chassis or drive: `LocationIndicatorActive` when
    /// the resource has it, else `IndicatorLED`. Returns `None` when it has neither.
    ///
    /// # Errors
    ///
    /// The errors of [`Client::get`].
    pub async fn indicator(&self, path: &str) -> Result<Option<Indicator>, Error> {
        let resource = self.get(path).await?;
        let active = decode::boolean(&resource.body, "LocationIndicatorActive");
        let led = decode::text(&resource.body, "IndicatorLED");
        Ok(match (active, led.as_deref()) {
            (_, Some("Blinking")) => Some(Indicator::Blink),
            (Some(true), _) => Some(Indicator::On),
            (Some(false), _) => Some(Indicator::Off),
            (None, Some("Lit")) => Some(Indicator::On),
            (None, Some("Off")) => Some(Indicator::Off),
            (None, _) => None,
        })
    }

    /// Sets the identify LED of a system, chassis or drive. Uses `LocationIndicatorActive`
    /// when the resource has it (a `null` value counts as absent), else `IndicatorLED`;
    /// blinking always needs `IndicatorLED`.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] when the resource has neither property, or only the boolean
    /// and `Blink` was requested; the errors of [`Client::patch`].
    pub async fn set_indicator(
        &self,
        path: &str,
        setting: Indicator,
    ) -> Result<WriteOutcome, Error> {
        let resource = self.get(path).await?;
        let has_active = resource
            .body
            .get("LocationIndicatorActive")
            .is_some_and(Value::is_boolean);
        let has_led = decode::text(&resource.body, "IndicatorLED").is_some();

        let body = match setting {
            Indicator::Blink if has_led => json!({ "IndicatorLED": "Blinking" }),
            Indicator::Blink if has_active => {
                return Err(Error::Unsupported {
                    path: resource.path,
                    detail: "a blinking identify LED (it has only LocationIndicatorActive, which is on or off)".into(),
                });
            }
            Indicator::On | Indicator::Off if has_active => {
                json!({ "LocationIndicatorActive": setting == Indicator::On })
            }
            _ if has_led => json!({ "IndicatorLED": setting.led_value() }),
            _ => {
                return Err(Error::Unsupported {
                    path: resource.path,
                    detail: "an identify LED (neither LocationIndicatorActive nor IndicatorLED)"
                        .into(),
                });
            }
        };
        tracing::debug!(path = %resource.path, %setting, "identify LED change requested");
        self.patch(&resource.path, &body).await
    }

    /// Reads the boot source override of a system.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] when the system has no `Boot` object; read errors as they
    /// occur.
    pub async fn boot_override(&self, system: &str) -> Result<BootOverride, Error> {
        let resource = self.get(system).await?;
        boot_override_of(&resource.path, &resource.body)
    }

    /// Sets the boot source override of a system: `target` (such as `Pxe`, matched without
    /// regard to case against the values the system lists), whether it applies once or
    /// continuously, and optionally the boot mode.
    ///
    /// A `Once` override applies to the next boot, after which the BMC sets it back to
    /// `Disabled`. Some BMCs (iDRAC) turn a mode change into a configuration job applied at
    /// the next power change, so a mode read back at once may still show the old value.
    ///
    /// # Errors
    ///
    /// [`Error::NotOffered`] when the system lists its targets and `target` is not among
    /// them, or lists its modes and `mode` is not among them; [`Error::Unsupported`] without
    /// a `Boot` object; the errors of [`Client::patch`].
    pub async fn set_boot_override(
        &self,
        system: &str,
        target: &str,
        enabled: BootOverrideEnabled,
        mode: Option<BootMode>,
    ) -> Result<WriteOutcome, Error> {
        let resource = self.get(system).await?;
        let current = boot_override_of(&resource.path, &resource.body)?;
        let boot = boot_object(&resource.path, &resource.body)?;

        let target = match &current.allowed_targets {
            Some(allowed) => allowed
                .iter()
                .find(|value| value.eq_ignore_ascii_case(target.trim()))
                .cloned()
                .ok_or_else(|| Error::NotOffered {
                    path: current.system.clone(),
                    name: "BootSourceOverrideTarget".into(),
                    value: target.to_owned(),
                    allowed: allowed.join(", "),
                })?,
            None => target.trim().to_owned(),
        };

        let mut settings = Map::new();
        settings.insert("BootSourceOverrideTarget".into(), target.clone().into());
        settings.insert("BootSourceOverrideEnabled".into(), enabled.as_str().into());
        if let Some(mode) = mode {
            let allowed_modes = boot
                .get("BootSourceOverrideMode@Redfish.AllowableValues")
                .and_then(Value::as_array);
            if let Some(allowed) = allowed_modes {
                if !allowed
                    .iter()
                    .any(|value| value.as_str() == Some(mode.as_str()))
                {
                    return Err(Error::NotOffered {
                        path: current.system,
                        name: "BootSourceOverrideMode".into(),
                        value: mode.to_string(),
                        allowed: allowed
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
            }
            settings.insert("BootSourceOverrideMode".into(), mode.as_str().into());
        }
        tracing::debug!(system = %current.system, %enabled, "boot override change requested");
        let mut outcome = self
            .patch(&current.system, &json!({ "Boot": settings }))
            .await?;

        // Some services accept the PATCH but keep another value (sushy-emulator's system
        // template always reports `Continuous`), so the outcome says what was read back.
        let after = self.boot_override(&current.system).await?;
        if after.target.as_deref() != Some(target.as_str()) {
            outcome.notes.push(format!(
                "the BMC reports BootSourceOverrideTarget {} after the change, not {target}",
                after.target.as_deref().unwrap_or("unset")
            ));
        }
        if after.enabled.as_deref() != Some(enabled.as_str()) {
            outcome.notes.push(format!(
                "the BMC reports BootSourceOverrideEnabled {} after the change, not {enabled}",
                after.enabled.as_deref().unwrap_or("unset")
            ));
        }
        Ok(outcome)
    }
}

fn boot_override_of(path: &str, system: &Value) -> Result<BootOverride, Error> {
    let boot = boot_object(path, system)?;
    let allowed_targets = boot
        .get("BootSourceOverrideTarget@Redfish.AllowableValues")
        .and_then(Value::as_array)
        .map(|values| {
            values
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        });
    Ok(BootOverride {
        system: path.to_owned(),
        target: decode::text(boot, "BootSourceOverrideTarget"),
        enabled: decode::text(boot, "BootSourceOverrideEnabled"),
        mode: decode::text(boot, "BootSourceOverrideMode"),
        allowed_targets,
    })
}

fn boot_object<'a>(path: &str, system: &'a Value) -> Result<&'a Value, Error> {
    system
        .get("Boot")
        .filter(|boot| boot.is_object())
        .ok_or_else(|| Error::Unsupported {
            path: path.to_owned(),
            detail: "a boot source override (the resource has no Boot object)".into(),
        })
}
