//! SHA-256 fingerprints as people read and type them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// A SHA-256 digest of a certificate or of a SubjectPublicKeyInfo.
///
/// Displays as uppercase hex pairs joined by `:`, the form browsers and
/// `openssl x509 -fingerprint -sha256` print, and serializes as that string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// Computes the SHA-256 fingerprint of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self(Sha256::digest(data).into())
    }

    /// Wraps a digest computed elsewhere.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Returns the 32 digest bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// The error for a string that is not a SHA-256 fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SHA-256 fingerprint {input:?}: expected 64 hex digits, optionally in ':'-separated pairs and prefixed with \"SHA256:\"")]
pub struct ParseFingerprintError {
    input: String,
}

impl FromStr for Fingerprint {
    type Err = ParseFingerprintError;

    /// Parses 64 hex digits in any case, with or without `:` between the
    /// pairs, with an optional `SHA256:` prefix in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let error = || ParseFingerprintError {
            input: s.to_owned(),
        };
        let trimmed = s.trim();
        let body = match trimmed.get(..7) {
            Some(prefix) if prefix.eq_ignore_ascii_case("sha256:") => {
                trimmed.get(7..).unwrap_or("")
            }
            _ => trimmed,
        };

        let digits: String = if body.contains(':') {
            let pairs: Vec<&str> = body.split(':').collect();
            if pairs.len() != 32 || pairs.iter().any(|pair| pair.len() != 2) {
                return Err(error());
            }
            pairs.concat()
        } else {
            body.to_owned()
        };

        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&digits, &mut bytes).map_err(|_| error())?;
        Ok(Self(bytes))
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST_OF_ABC: &str =
        "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD";

    #[test]
    fn display_is_uppercase_colon_pairs() {
        assert_eq!(Fingerprint::of(b"abc").to_string(), DIGEST_OF_ABC);
    }

    #[test]
    fn from_str_accepts_every_documented_form() {
        let expected = Fingerprint::of(b"abc");
        let plain = DIGEST_OF_ABC.replace(':', "");
        let forms = [
            DIGEST_OF_ABC.to_owned(),
            DIGEST_OF_ABC.to_lowercase(),
            plain.clone(),
            plain.to_lowercase(),
            format!("SHA256:{DIGEST_OF_ABC}"),
            format!("sha256:{plain}"),
            format!("  {DIGEST_OF_ABC}\n"),
        ];
        for form in forms {
            assert_eq!(form.parse::<Fingerprint>(), Ok(expected), "form {form:?}");
        }
    }

    #[test]
    fn from_str_rejects_wrong_lengths_and_digits() {
        let plain = DIGEST_OF_ABC.replace(':', "");
        let bad = [
            String::new(),
            "SHA256:".to_owned(),
            plain[..62].to_owned(),
            format!("{plain}00"),
            plain.replacen('B', "G", 1),
            DIGEST_OF_ABC.replacen(':', "", 1),
            format!("SHA1:{plain}"),
        ];
        for input in bad {
            assert!(input.parse::<Fingerprint>().is_err(), "accepted {input:?}");
        }
    }

    #[test]
    fn serde_round_trips_as_display_string() {
        let fingerprint = Fingerprint::of(b"abc");
        let json = serde_json::to_string(&fingerprint).unwrap();
        assert_eq!(json, format!("\"{DIGEST_OF_ABC}\""));
        assert_eq!(
            serde_json::from_str::<Fingerprint>(&json).unwrap(),
            fingerprint
        );
    }
}
