//! Argon2id parameters, their calibration, key derivation and the password
//! policy.

use std::time::{Duration, Instant};

use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::secret::Secret;

/// The most memory calibration will ask of Argon2id, in KiB (64 MiB).
pub const MAX_MEMORY_KIB: u32 = 64 * 1024;

/// The maximum memory a stored or raised parameter set may ask for (1 GiB),
/// so that a hostile header or export cannot exhaust memory.
pub const MAX_STORED_MEMORY_KIB: u32 = 1024 * 1024;

/// The maximum number of passes a stored or raised parameter set may ask for.
pub const MAX_STORED_PASSES: u32 = 256;

/// The minimum memory calibration settles for, in KiB (19 MiB). OWASP's
/// Password Storage Cheat Sheet gives Argon2id minimums of 19 MiB with two
/// passes or 46 MiB with one pass.
const MIN_CALIBRATED_MEMORY_KIB: u32 = 19 * 1024;

/// Below this memory, in KiB (46 MiB), calibration uses at least two passes.
const ONE_PASS_MEMORY_KIB: u32 = 46 * 1024;

/// The shortest password the policy accepts, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// The lowest zxcvbn score the policy accepts (0 to 4).
pub const MIN_PASSWORD_SCORE: u8 = 3;

/// Argon2id cost parameters, stored in the header beside the wrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes over memory.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// Small parameters for tests and throwaway vaults: 1 MiB, one pass.
    pub const TEST: KdfParams = KdfParams {
        m_cost_kib: 1024,
        t_cost: 1,
        p_cost: 1,
    };

    /// Checks the parameters with Argon2's own limits.
    ///
    /// # Errors
    /// `InvalidParameters` naming the limit that failed.
    pub fn validate(&self) -> Result<()> {
        self.to_argon2().map(|_| ())
    }

    fn to_argon2(self) -> Result<argon2::Params> {
        if self.m_cost_kib > MAX_STORED_MEMORY_KIB || self.t_cost > MAX_STORED_PASSES {
            return Err(Error::InvalidParameters {
                detail: format!(
                    "m={} KiB t={} is above the limits of {MAX_STORED_MEMORY_KIB} KiB and {MAX_STORED_PASSES} passes",
                    self.m_cost_kib, self.t_cost
                ),
            });
        }
        argon2::Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(32)).map_err(|e| {
            Error::InvalidParameters {
                detail: format!(
                    "m={} KiB t={} p={}: {e}",
                    self.m_cost_kib, self.t_cost, self.p_cost
                ),
            }
        })
    }

    /// Whether every cost is at least the one in `other`.
    pub fn at_least(&self, other: &KdfParams) -> bool {
        self.m_cost_kib >= other.m_cost_kib
            && self.t_cost >= other.t_cost
            && self.p_cost >= other.p_cost
    }
}

/// How `Vault::create` picks Argon2id parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KdfChoice {
    /// Measure on this machine: the most passes whose time stays near
    /// `target`, at `max_memory_kib` (lowered when one pass is too slow).
    Calibrate {
        /// The time one derivation should take.
        target: Duration,
        /// The memory ceiling in KiB.
        max_memory_kib: u32,
    },
    /// Use these parameters as they are.
    Fixed(KdfParams),
}

impl Default for KdfChoice {
    /// About half a second, at most 64 MiB.
    fn default() -> Self {
        KdfChoice::Calibrate {
            target: Duration::from_millis(500),
            max_memory_kib: MAX_MEMORY_KIB,
        }
    }
}

impl KdfChoice {
    /// The parameters this choice gives on this machine.
    ///
    /// # Errors
    /// `InvalidParameters` for out-of-range fixed parameters.
    pub fn resolve(&self) -> Result<KdfParams> {
        match *self {
            KdfChoice::Fixed(params) => {
                params.validate()?;
                Ok(params)
            }
            KdfChoice::Calibrate {
                target,
                max_memory_kib,
            } => calibrate(target, max_memory_kib),
        }
    }
}

/// Finds Argon2id parameters that take about `target` here, with at most
/// `max_memory_kib` of memory and one lane.
///
/// # Errors
/// `InvalidParameters` when the memory ceiling is below Argon2's minimum.
pub fn calibrate(target: Duration, max_memory_kib: u32) -> Result<KdfParams> {
    let mut params = KdfParams {
        m_cost_kib: max_memory_kib,
        t_cost: 1,
        p_cost: 1,
    };
    params.validate()?;
    let secret = [0u8; 32];
    let salt = [0u8; 16];
    loop {
        // The first run pays for page faults on fresh memory, so the second
        // one is timed.
        derive_password_key(&secret, b"calibration", &salt, &params)?;
        let started = Instant::now();
        derive_password_key(&secret, b"calibration", &salt, &params)?;
        let one_pass = started.elapsed().max(Duration::from_micros(1));
        if one_pass > target && params.m_cost_kib / 2 >= MIN_CALIBRATED_MEMORY_KIB {
            params.m_cost_kib /= 2;
            continue;
        }
        let passes = (target.as_secs_f64() / one_pass.as_secs_f64()).round();
        let min_passes = if params.m_cost_kib >= ONE_PASS_MEMORY_KIB {
            1
        } else {
            2
        };
        params.t_cost = (passes as u32).clamp(min_passes, 64);
        tracing::debug!(?params, ?one_pass, "calibrated argon2id");
        return Ok(params);
    }
}

/// Argon2id over `password` with the device secret as its secret input.
pub(crate) fn derive_password_key(
    device_secret: &[u8],
    password: &[u8],
    salt: &[u8],
    params: &KdfParams,
) -> Result<Zeroizing<[u8; 32]>> {
    let argon = argon2::Argon2::new_with_secret(
        device_secret,
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        params.to_argon2()?,
    )
    .map_err(|e| Error::InvalidParameters {
        detail: format!("argon2 refused the device secret: {e}"),
    })?;
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(password, salt, out.as_mut())
        .map_err(|e| Error::InvalidParameters {
            detail: format!("argon2 failed: {e}"),
        })?;
    Ok(out)
}

/// Argon2id over a passphrase alone, for exports that move between devices.
pub(crate) fn derive_passphrase_key(
    passphrase: &[u8],
    salt: &[u8],
    params: &KdfParams,
) -> Result<Zeroizing<[u8; 32]>> {
    let argon = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        params.to_argon2()?,
    );
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase, salt, out.as_mut())
        .map_err(|e| Error::InvalidParameters {
            detail: format!("argon2 failed: {e}"),
        })?;
    Ok(out)
}

/// HKDF-SHA256 of `ikm` with `salt` for the purpose named by `info`.
pub(crate) fn hkdf(ikm: &[u8], salt: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    // A 32-byte output is far below HKDF-SHA256's limit of 8160 bytes.
    let _ = Hkdf::<Sha256>::new(Some(salt), ikm).expand(info, out.as_mut());
    out
}

/// Applies the password policy: at least 12 characters and a zxcvbn score
/// of 3 or more.
///
/// # Errors
/// `WeakPassword` with the reason (zxcvbn's warning and suggestions).
pub fn check_password(password: &Secret) -> Result<()> {
    let Some(text) = password.expose_str() else {
        return Err(Error::WeakPassword {
            reason: "it is not valid UTF-8 text".into(),
        });
    };
    let chars = text.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(Error::WeakPassword {
            reason: format!("it has {chars} characters, at least {MIN_PASSWORD_CHARS} are needed"),
        });
    }
    let estimate = zxcvbn::zxcvbn(text, &["rackside", "vault"]);
    let score = u8::from(estimate.score());
    if score >= MIN_PASSWORD_SCORE {
        return Ok(());
    }
    let mut reason = format!("strength score {score} of 4 is below {MIN_PASSWORD_SCORE}");
    if let Some(feedback) = estimate.feedback() {
        // zxcvbn's feedback sentences end in a period, which reads badly before "; ".
        if let Some(warning) = feedback.warning() {
            reason.push_str(&format!("; {}", warning.to_string().trim_end_matches('.')));
        }
        for suggestion in feedback.suggestions() {
            reason.push_str(&format!(
                "; {}",
                suggestion.to_string().trim_end_matches('.')
            ));
        }
    }
    Err(Error::WeakPassword { reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_on_slow_machine_keeps_owasp_floor() {
        // A target of 1 µs acts like a machine too slow for any setting.
        let params = calibrate(Duration::from_micros(1), MAX_MEMORY_KIB).unwrap();
        assert!(params.m_cost_kib >= MIN_CALIBRATED_MEMORY_KIB, "{params:?}");
        if params.m_cost_kib < ONE_PASS_MEMORY_KIB {
            assert!(params.t_cost >= 2, "{params:?}");
        }
    }

    #[test]
    fn short_password_is_refused_with_its_length() {
        let err = check_password(&Secret::new("Tr0ub4dor&3")).unwrap_err();
        assert!(err.to_string().contains("11 characters"), "{err}");
    }

    #[test]
    fn long_but_guessable_password_is_refused_with_feedback() {
        let err = check_password(&Secret::new("password1234")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("strength score"), "{text}");
        assert!(!text.contains(".;"), "{text}");
        assert!(!text.contains("password1234"), "{text}");
    }

    #[test]
    fn long_random_passphrase_is_accepted() {
        check_password(&Secret::new("copper kettle orbit 91 lantern")).unwrap();
    }

    #[test]
    fn calibration_respects_the_memory_ceiling() {
        let params = calibrate(Duration::from_millis(5), 8 * 1024).unwrap();
        assert!(params.m_cost_kib <= 8 * 1024);
        assert!(params.t_cost >= 1);
    }

    #[test]
    fn password_key_depends_on_device_secret_and_password() {
        let p = KdfParams::TEST;
        let a = derive_password_key(&[1; 32], b"pw", &[0; 16], &p).unwrap();
        let b = derive_password_key(&[2; 32], b"pw", &[0; 16], &p).unwrap();
        let c = derive_password_key(&[1; 32], b"px", &[0; 16], &p).unwrap();
        assert_ne!(*a, *b);
        assert_ne!(*a, *c);
    }
}
