//! Pins: the certificate and key a user accepted for a server.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::fingerprint::Fingerprint;
use crate::summary::CertificateSummary;

/// The identity a user accepted for one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    /// SHA-256 of the accepted DER certificate.
    pub certificate_sha256: Fingerprint,
    /// SHA-256 of the accepted certificate's DER SubjectPublicKeyInfo.
    pub public_key_sha256: Fingerprint,
    /// When the user accepted it.
    pub accepted_at: DateTime<Utc>,
}

impl Pin {
    /// Pins the certificate `summary` describes, accepted at `now`.
    pub fn from_summary(summary: &CertificateSummary, now: DateTime<Utc>) -> Self {
        Self {
            certificate_sha256: summary.certificate_sha256,
            public_key_sha256: summary.public_key_sha256,
            accepted_at: now,
        }
    }
}

/// The relation between a presented leaf certificate and a pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PinMatch {
    /// The same certificate.
    Exact,
    /// A different certificate for the same public key, as after a renewal that
    /// kept the key: a notice, not an alarm.
    SameKeyNewCertificate,
    /// A different public key: possibly another machine impersonating the server.
    KeyChanged,
}

/// Compares the presented leaf with a pin; the key decides first.
pub fn compare_pin(pin: &Pin, leaf: &CertificateSummary) -> PinMatch {
    if pin.public_key_sha256 != leaf.public_key_sha256 {
        PinMatch::KeyChanged
    } else if pin.certificate_sha256 != leaf.certificate_sha256 {
        PinMatch::SameKeyNewCertificate
    } else {
        PinMatch::Exact
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(certificate: &[u8], key: &[u8]) -> CertificateSummary {
        let mut summary = CertificateSummary::unparsable(certificate);
        summary.public_key_sha256 = Fingerprint::of(key);
        summary
    }

    #[test]
    fn compare_pin_reports_exact_match() {
        let leaf = summary(b"certificate one", b"key one");
        let pin = Pin::from_summary(&leaf, Utc::now());
        assert_eq!(compare_pin(&pin, &leaf), PinMatch::Exact);
    }

    #[test]
    fn compare_pin_reports_new_certificate_for_same_key() {
        let pin = Pin::from_summary(&summary(b"certificate one", b"key one"), Utc::now());
        let renewed = summary(b"certificate two", b"key one");
        assert_eq!(compare_pin(&pin, &renewed), PinMatch::SameKeyNewCertificate);
    }

    #[test]
    fn compare_pin_reports_changed_key() {
        let pin = Pin::from_summary(&summary(b"certificate one", b"key one"), Utc::now());
        let replaced = summary(b"certificate two", b"key two");
        assert_eq!(compare_pin(&pin, &replaced), PinMatch::KeyChanged);
    }

    #[test]
    fn compare_pin_checks_key_first() {
        let pin = Pin::from_summary(&summary(b"certificate one", b"key one"), Utc::now());
        let same_bytes_other_key = summary(b"certificate one", b"key two");
        assert_eq!(
            compare_pin(&pin, &same_bytes_other_key),
            PinMatch::KeyChanged
        );
    }

    #[test]
    fn pin_serde_round_trips() {
        let pin = Pin::from_summary(&summary(b"certificate", b"key"), Utc::now());
        let json = serde_json::to_string(&pin).unwrap();
        assert_eq!(serde_json::from_str::<Pin>(&json).unwrap(), pin);
    }
}
