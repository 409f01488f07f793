//! Secrets: bytes that zeroize on drop and never print.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A password, passphrase, credential or key.
///
/// `Debug` prints `[REDACTED]`, the bytes are wiped on drop, and the only way
/// to read them is [`Secret::expose`] or [`Secret::expose_str`].
#[derive(Clone, Zeroize, ZeroizeOnDrop, Default)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Takes ownership of a text secret without copying it.
    pub fn new(text: impl Into<String>) -> Self {
        Secret(text.into().into_bytes())
    }

    /// Takes ownership of a binary secret without copying it.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Secret(bytes)
    }

    /// A new secret of `len` random bytes from the OS generator.
    pub fn random(len: usize) -> Self {
        let mut bytes = vec![0u8; len];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        Secret(bytes)
    }

    /// The bytes. Each caller says why it needs them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The bytes as text, or `None` when they are not UTF-8.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Secret {}

/// Serialized as a string, so that the agent protocol can carry passwords and
/// credentials; a non-UTF-8 secret refuses to serialize.
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.expose_str() {
            Some(text) => serializer.serialize_str(text),
            None => Err(serde::ser::Error::custom("secret is not text")),
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // NOTE: serde_json may hold a transient copy while unescaping; the
        // owned String is moved into the Secret without a further copy.
        String::deserialize(deserializer).map(Secret::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_is_redacted() {
        let secret = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{secret:?}"), "[REDACTED]");
        assert_eq!(format!("{:?}", Some(secret)), "Some([REDACTED])");
    }

    #[test]
    fn equal_secrets_compare_equal_and_others_do_not() {
        assert_eq!(Secret::new("abc"), Secret::new("abc"));
        assert_ne!(Secret::new("abc"), Secret::new("abd"));
        assert_ne!(Secret::new("abc"), Secret::new("abcd"));
    }

    #[test]
    fn secret_round_trips_through_json_as_a_string() {
        let json = serde_json::to_string(&Secret::new("pa\"ss")).unwrap();
        assert_eq!(json, "\"pa\\\"ss\"");
        let back: Secret = serde_json::from_str(&json).unwrap();
        assert_eq!(back.expose_str(), Some("pa\"ss"));
    }
}
