//! Device registrations: one per (device, console) pair, each with its own registration
//! token. The token itself is never stored: `registrations.json` keys each entry by the
//! token's SHA-256, so a copy of the state directory cannot be used to push.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::apikeys::{write_private_atomic, ConsoleName};
use crate::error::{io_error, RelayError};

/// File name of the registration table inside the state directory.
pub const REGISTRATIONS_FILE: &str = "registrations.json";
const TOKEN_PREFIX: &str = "rrt_";
const MAX_DEVICE_ID: usize = 128;
const MAX_PROVIDER_TOKEN: usize = 4096;
/// Longest Web Push endpoint URL accepted, in bytes.
pub const MAX_ENDPOINT: usize = 1024;

/// Delivery target of one device: its provider and address there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "lowercase")]
pub enum Target {
    /// A Web Push subscription: the push service's endpoint URL (https only).
    Webpush {
        /// The subscription endpoint.
        endpoint: String,
    },
    /// A Firebase Cloud Messaging registration token.
    Fcm {
        /// The FCM registration token.
        token: String,
    },
    /// An APNs device token (hexadecimal).
    Apns {
        /// The device token.
        device_token: String,
    },
}

impl Target {
    /// Checks the target's fields so that providers only ever see well-formed values.
    ///
    /// # Errors
    /// [`RelayError::Config`] naming the field and the rule it breaks.
    pub fn validate(&self) -> Result<(), RelayError> {
        match self {
            Self::Webpush { endpoint } => {
                if endpoint.len() > MAX_ENDPOINT {
                    return Err(RelayError::Config(format!(
                        "invalid Web Push endpoint: {} bytes is longer than {MAX_ENDPOINT}",
                        endpoint.len()
                    )));
                }
                let url = url::Url::parse(endpoint)
                    .map_err(|e| RelayError::Config(format!("invalid Web Push endpoint: {e}")))?;
                if url.scheme() != "https" || url.host_str().is_none() {
                    return Err(RelayError::Config(
                        "invalid Web Push endpoint: use an https URL with a host".to_owned(),
                    ));
                }
            }
            Self::Fcm { token } => {
                if token.is_empty()
                    || token.len() > MAX_PROVIDER_TOKEN
                    || !token.chars().all(|c| c.is_ascii_graphic())
                {
                    return Err(RelayError::Config(
                        "invalid FCM token: use 1 to 4096 printable ASCII characters".to_owned(),
                    ));
                }
            }
            Self::Apns { device_token } => {
                if device_token.len() < 32
                    || device_token.len() > 200
                    || !device_token.chars().all(|c| c.is_ascii_hexdigit())
                {
                    return Err(RelayError::Config(
                        "invalid APNs device token: use 32 to 200 hexadecimal digits".to_owned(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Returns the provider's name for logs: `webpush`, `fcm` or `apns`.
    pub fn provider(&self) -> &'static str {
        match self {
            Self::Webpush { .. } => "webpush",
            Self::Fcm { .. } => "fcm",
            Self::Apns { .. } => "apns",
        }
    }
}

/// A registration token in clear text, as handed to the device once. `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistrationToken(Zeroizing<String>);

impl fmt::Debug for RegistrationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RegistrationToken([REDACTED])")
    }
}

impl RegistrationToken {
    /// Wraps a token received in a request.
    pub fn new(token: String) -> Self {
        Self(Zeroizing::new(token))
    }

    /// Generates a random token.
    pub fn generate() -> Self {
        let mut raw = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(raw.as_mut());
        Self::new(format!(
            "{TOKEN_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(raw.as_ref())
        ))
    }

    /// Returns the token text.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Returns the registration id: the first 12 hex digits of the token's SHA-256, safe to log.
    pub fn id(&self) -> String {
        registration_id(&self.hash())
    }

    fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

/// One stored registration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The console allowed to push to it.
    pub console: ConsoleName,
    /// The device's own identifier, chosen by the device.
    pub device: String,
    /// How to reach the device.
    pub target: Target,
}

#[derive(Default, Serialize, Deserialize)]
struct Table {
    /// Registrations by hex SHA-256 of their token.
    registrations: HashMap<String, Registration>,
}

/// Caps on the number of registrations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistryLimits {
    /// Maximum number of registrations of one console.
    pub per_console: usize,
    /// Maximum number of registrations in the table.
    pub total: usize,
}

impl Default for RegistryLimits {
    fn default() -> Self {
        Self {
            per_console: 10_000,
            total: 100_000,
        }
    }
}

/// The registration table, in memory and mirrored to `registrations.json`.
///
/// NOTE: every change rewrites the whole file, so a change costs time linear in the table
/// size; [`RegistryLimits`] bounds that cost.
#[derive(Debug)]
pub struct Registry {
    path: PathBuf,
    entries: RwLock<HashMap<[u8; 32], Registration>>,
    limits: RegistryLimits,
}

impl Registry {
    /// Loads the table from `state_dir`; a missing file is an empty table.
    ///
    /// # Errors
    /// I/O errors, and [`RelayError::InvalidStateFile`] when the file does not parse.
    pub fn open(state_dir: &Path) -> Result<Self, RelayError> {
        let path = state_dir.join(REGISTRATIONS_FILE);
        let table: Table = match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| RelayError::InvalidStateFile {
                    path: path.clone(),
                    reason: e.to_string(),
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Table::default(),
            Err(e) => return Err(io_error("read", &path, e)),
        };
        let mut entries = HashMap::with_capacity(table.registrations.len());
        for (hex, registration) in table.registrations {
            let key = hex_decode_32(&hex).ok_or_else(|| RelayError::InvalidStateFile {
                path: path.clone(),
                reason: format!("registration key {hex:?} is not 64 hex digits"),
            })?;
            entries.insert(key, registration);
        }
        Ok(Self {
            path,
            entries: RwLock::new(entries),
            limits: RegistryLimits::default(),
        })
    }

    /// Replaces the default caps on the number of registrations.
    #[must_use]
    pub fn with_limits(mut self, limits: RegistryLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Registers `device` for `console` and returns a new token. An earlier registration of
    /// the same pair is replaced only when `current` is its token, so each pair has exactly
    /// one token and nobody else can cancel it. Returns `None` when the pair exists and
    /// `current` is missing or wrong.
    ///
    /// # Errors
    /// [`RelayError::Config`] for a malformed target or device id,
    /// [`RelayError::RegistryFull`] when a limit is reached, and I/O errors.
    pub fn register(
        &self,
        console: ConsoleName,
        device: String,
        target: Target,
        current: Option<&RegistrationToken>,
    ) -> Result<Option<RegistrationToken>, RelayError> {
        // 1. Check the input.
        target.validate()?;
        if device.is_empty() || device.len() > MAX_DEVICE_ID || device.chars().any(char::is_control)
        {
            return Err(RelayError::Config(
                "invalid device id: use 1 to 128 characters without control characters".to_owned(),
            ));
        }

        // 2. An existing pair needs its current token; a new one needs room.
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let existing = entries
            .iter()
            .find(|(_, r)| r.console == console && r.device == device)
            .map(|(key, _)| *key);
        match existing {
            Some(key) => {
                if current.map(RegistrationToken::hash) != Some(key) {
                    return Ok(None);
                }
                entries.remove(&key);
            }
            None => {
                if entries.len() >= self.limits.total {
                    return Err(RelayError::RegistryFull(self.limits.total));
                }
                let of_console = entries.values().filter(|r| r.console == console).count();
                if of_console >= self.limits.per_console {
                    return Err(RelayError::RegistryFull(self.limits.per_console));
                }
            }
        }

        // 3. Store the new token's hash.
        let token = RegistrationToken::generate();
        entries.insert(
            token.hash(),
            Registration {
                console,
                device,
                target,
            },
        );
        self.save(&entries)?;
        Ok(Some(token))
    }

    /// Returns the registration behind `token`, if any.
    pub fn lookup(&self, token: &RegistrationToken) -> Option<Registration> {
        let entries = self
            .entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.get(&token.hash()).cloned()
    }

    /// Removes the registration behind `token`; returns whether one existed.
    ///
    /// # Errors
    /// I/O errors writing the table.
    pub fn remove(&self, token: &RegistrationToken) -> Result<bool, RelayError> {
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let existed = entries.remove(&token.hash()).is_some();
        if existed {
            self.save(&entries)?;
        }
        Ok(existed)
    }

    /// Returns the number of registrations.
    pub fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Returns whether there are no registrations.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn save(&self, entries: &HashMap<[u8; 32], Registration>) -> Result<(), RelayError> {
        let table = Table {
            registrations: entries
                .iter()
                .map(|(k, v)| (hex_encode(k), v.clone()))
                .collect(),
        };
        let json = serde_json::to_vec(&table).map_err(|e| RelayError::InvalidStateFile {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        write_private_atomic(&self.path, &json)
    }
}

fn registration_id(hash: &[u8; 32]) -> String {
    hex_encode(hash.get(..6).unwrap_or_default())
}

pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn hex_decode_32(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (slot, pair) in out.iter_mut().zip(text.as_bytes().chunks(2)) {
        *slot = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webpush() -> Target {
        Target::Webpush {
            endpoint: "https://push.test/sub/1".to_owned(),
        }
    }

    #[test]
    fn registration_survives_reopen_without_token_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let console = ConsoleName::parse("ome-1").unwrap();
        let token = Registry::open(dir.path())
            .unwrap()
            .register(console.clone(), "phone".into(), webpush(), None)
            .unwrap()
            .unwrap();
        let text = fs::read_to_string(dir.path().join(REGISTRATIONS_FILE)).unwrap();
        assert!(!text.contains(token.expose()));
        let reopened = Registry::open(dir.path()).unwrap();
        assert_eq!(reopened.lookup(&token).unwrap().console, console);
    }

    #[test]
    fn reregistering_pair_needs_current_token() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        let console = ConsoleName::parse("ome-1").unwrap();
        let first = registry
            .register(console.clone(), "phone".into(), webpush(), None)
            .unwrap()
            .unwrap();

        let stranger = RegistrationToken::generate();
        for current in [None, Some(&stranger)] {
            let replaced = registry
                .register(console.clone(), "phone".into(), webpush(), current)
                .unwrap();
            assert!(replaced.is_none());
            assert!(registry.lookup(&first).is_some());
        }

        let second = registry
            .register(console, "phone".into(), webpush(), Some(&first))
            .unwrap()
            .unwrap();
        assert!(registry.lookup(&first).is_none());
        assert!(registry.lookup(&second).is_some());
        assert_eq!(registry.len(), 1);
    }

    #[test]
    fn registrations_past_limits_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let limits = RegistryLimits {
            per_console: 2,
            total: 3,
        };
        let registry = Registry::open(dir.path()).unwrap().with_limits(limits);
        let first = ConsoleName::parse("ome-1").unwrap();
        let second = ConsoleName::parse("ome-2").unwrap();
        for device in ["a", "b"] {
            let token = registry.register(first.clone(), device.into(), webpush(), None);
            assert!(token.unwrap().is_some());
        }
        let per_console = registry.register(first, "c".into(), webpush(), None);
        assert!(matches!(per_console, Err(RelayError::RegistryFull(2))));

        let third = registry.register(second.clone(), "a".into(), webpush(), None);
        assert!(third.unwrap().is_some());
        let total = registry.register(second, "b".into(), webpush(), None);
        assert!(matches!(total, Err(RelayError::RegistryFull(3))));
    }

    #[test]
    fn long_webpush_endpoint_is_rejected() {
        let endpoint = format!("https://push.test/{}", "a".repeat(MAX_ENDPOINT));
        assert!(Target::Webpush { endpoint }.validate().is_err());
    }

    #[test]
    fn malformed_targets_are_rejected() {
        let bad = [
            Target::Webpush {
                endpoint: "http://push.test/x".into(),
            },
            Target::Webpush {
                endpoint: "not a url".into(),
            },
            Target::Fcm {
                token: String::new(),
            },
            Target::Fcm {
                token: "a b".into(),
            },
            Target::Apns {
                device_token: "zz".repeat(32),
            },
            Target::Apns {
                device_token: "ab".into(),
            },
        ];
        for target in bad {
            assert!(target.validate().is_err(), "{target:?}");
        }
    }

    #[test]
    fn removed_registration_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        let token = registry
            .register(
                ConsoleName::parse("c").unwrap(),
                "d".into(),
                webpush(),
                None,
            )
            .unwrap()
            .unwrap();
        assert!(registry.remove(&token).unwrap());
        assert!(!registry.remove(&token).unwrap());
        assert!(registry.lookup(&token).is_none());
    }
}
