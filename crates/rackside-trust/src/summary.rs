//! Certificate summaries: the facts a person needs to decide about a certificate.

use std::net::{Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, Utc};
use rustls_pki_types::CertificateDer;
use serde::Serialize;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_DSA, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519, OID_SIG_ED448,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use crate::error::TrustError;
use crate::fingerprint::Fingerprint;

/// The facts about one certificate that rackside shows before a trust decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateSummary {
    /// Subject distinguished name, such as `CN=idrac-7X2K9Q3, O=Dell Inc.`.
    pub subject: String,
    /// Issuer distinguished name, equal to `subject` for a self-signed certificate.
    pub issuer: String,
    /// Start of validity, `None` when outside the range chrono represents.
    pub not_before: Option<DateTime<Utc>>,
    /// End of validity, `None` when outside the range chrono represents.
    pub not_after: Option<DateTime<Utc>>,
    /// SHA-256 of the whole DER certificate.
    pub certificate_sha256: Fingerprint,
    /// SHA-256 of the DER SubjectPublicKeyInfo, all zero bytes when the certificate
    /// could not be parsed.
    pub public_key_sha256: Fingerprint,
    /// Whether the issuer name equals the subject name.
    pub self_signed: bool,
    /// Whether basicConstraints contains CA:TRUE.
    pub is_ca: bool,
    /// Key algorithm and size, such as `RSA 2048 bits` or `ECDSA P-256`.
    pub key_description: String,
    /// Subject alternative names as `DNS:name`, `IP:address`, `email:address` or `URI:uri`.
    pub subject_alt_names: Vec<String>,
}

impl CertificateSummary {
    /// Parses a DER certificate and summarizes it.
    ///
    /// # Errors
    ///
    /// [`TrustError::InvalidCertificate`] when the bytes are not one DER X.509 certificate.
    pub fn from_der(certificate: &CertificateDer<'_>) -> Result<Self, TrustError> {
        let parsed = parse_certificate(certificate)
            .map_err(|detail| TrustError::InvalidCertificate { detail })?;
        Ok(summarize(certificate, &parsed))
    }

    /// Builds the summary shown for bytes that do not parse as a certificate.
    pub(crate) fn unparsable(certificate: &[u8]) -> Self {
        Self {
            subject: "(unparsable certificate)".to_owned(),
            issuer: "(unparsable certificate)".to_owned(),
            not_before: None,
            not_after: None,
            certificate_sha256: Fingerprint::of(certificate),
            public_key_sha256: Fingerprint::from_bytes([0; 32]),
            self_signed: false,
            is_ca: false,
            key_description: "unknown".to_owned(),
            subject_alt_names: Vec::new(),
        }
    }
}

/// Parses exactly one DER certificate, rejecting trailing bytes.
pub(crate) fn parse_certificate<'a>(der: &'a [u8]) -> Result<X509Certificate<'a>, String> {
    match X509Certificate::from_der(der) {
        Ok(([], parsed)) => Ok(parsed),
        Ok((rest, _)) => Err(format!(
            "{} trailing bytes after the certificate",
            rest.len()
        )),
        Err(error) => Err(format!("invalid DER certificate: {error}")),
    }
}

/// Summarizes a certificate that `parse_certificate` accepted.
pub(crate) fn summarize(der: &[u8], parsed: &X509Certificate<'_>) -> CertificateSummary {
    let validity = parsed.validity();
    CertificateSummary {
        subject: parsed.subject().to_string(),
        issuer: parsed.issuer().to_string(),
        not_before: DateTime::from_timestamp(validity.not_before.timestamp(), 0),
        not_after: DateTime::from_timestamp(validity.not_after.timestamp(), 0),
        certificate_sha256: Fingerprint::of(der),
        public_key_sha256: Fingerprint::of(parsed.public_key().raw),
        self_signed: is_self_issued(parsed),
        is_ca: parsed.is_ca(),
        key_description: describe_key(parsed).text,
        subject_alt_names: subject_alt_names(parsed),
    }
}

/// Checks whether the issuer name is byte-for-byte the subject name.
pub(crate) fn is_self_issued(parsed: &X509Certificate<'_>) -> bool {
    parsed.issuer().as_raw() == parsed.subject().as_raw()
}

/// A key's algorithm and size.
pub(crate) struct KeyDescription {
    /// Human-readable form, such as `RSA 2048 bits`.
    pub(crate) text: String,
    /// Whether the key gives less than 112 bits of security (RSA or DSA below
    /// 2048 bits, elliptic curves below 224 bits).
    pub(crate) weak: bool,
}

/// Describes the subject public key.
pub(crate) fn describe_key(parsed: &X509Certificate<'_>) -> KeyDescription {
    let spki = parsed.public_key();
    let algorithm = &spki.algorithm.algorithm;

    if *algorithm == OID_PKCS1_RSAENCRYPTION || *algorithm == OID_KEY_TYPE_DSA {
        let name = if *algorithm == OID_KEY_TYPE_DSA {
            "DSA"
        } else {
            "RSA"
        };
        let bits = match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => Some(integer_bits(rsa.modulus)),
            Ok(PublicKey::DSA(y)) => Some(integer_bits(y)),
            _ => None,
        };
        return match bits {
            Some(bits) => KeyDescription {
                text: format!("{name} {bits} bits"),
                weak: bits < 2048,
            },
            None => KeyDescription {
                text: format!("{name} key that cannot be parsed"),
                weak: true,
            },
        };
    }

    if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|parameters| parameters.as_oid().ok());
        let named = match &curve {
            Some(oid) if *oid == OID_EC_P256 => Some("ECDSA P-256"),
            Some(oid) if *oid == OID_NIST_EC_P384 => Some("ECDSA P-384"),
            Some(oid) if *oid == OID_NIST_EC_P521 => Some("ECDSA P-521"),
            _ => None,
        };
        if let Some(text) = named {
            return KeyDescription {
                text: text.to_owned(),
                weak: false,
            };
        }
        let bits = match spki.parsed() {
            Ok(PublicKey::EC(point)) => point.key_size(),
            _ => 0,
        };
        let curve_name = curve.map_or_else(|| "unnamed curve".to_owned(), |oid| oid.to_id_string());
        return KeyDescription {
            text: format!("EC {bits} bits on curve {curve_name}"),
            weak: bits < 224,
        };
    }

    let text = if *algorithm == OID_SIG_ED25519 {
        "Ed25519".to_owned()
    } else if *algorithm == OID_SIG_ED448 {
        "Ed448".to_owned()
    } else {
        format!("key algorithm {}", algorithm.to_id_string())
    };
    KeyDescription { text, weak: false }
}

/// Bit length of a big-endian unsigned integer, ignoring leading zero bytes and bits.
fn integer_bits(bytes: &[u8]) -> usize {
    let significant: &[u8] = match bytes.iter().position(|byte| *byte != 0) {
        Some(start) => bytes.get(start..).unwrap_or_default(),
        None => &[],
    };
    match significant.first() {
        Some(first) => significant.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

/// Lists the subject alternative names rackside can print; other name forms are skipped.
fn subject_alt_names(parsed: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(extension)) = parsed.subject_alternative_name() else {
        return Vec::new();
    };
    extension
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(format!("DNS:{dns}")),
            GeneralName::IPAddress(bytes) => Some(format!("IP:{}", format_ip(bytes))),
            GeneralName::RFC822Name(email) => Some(format!("email:{email}")),
            GeneralName::URI(uri) => Some(format!("URI:{uri}")),
            _ => None,
        })
        .collect()
}

/// Formats a SAN iPAddress octet string, falling back to hex for odd lengths.
fn format_ip(bytes: &[u8]) -> String {
    if let Ok(octets) = <[u8; 4]>::try_from(bytes) {
        Ipv4Addr::from(octets).to_string()
    } else if let Ok(octets) = <[u8; 16]>::try_from(bytes) {
        Ipv6Addr::from(octets).to_string()
    } else {
        hex::encode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_bits_ignores_leading_zeros() {
        assert_eq!(integer_bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(integer_bits(&[0x01, 0xFF]), 9);
        assert_eq!(integer_bits(&[0x00, 0x00]), 0);
        assert_eq!(integer_bits(&[]), 0);
    }

    #[test]
    fn summary_lists_names_and_key_of_rcgen_certificate() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["bmc.test".to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "bmc.test");
        let certificate = params.self_signed(&key).unwrap();

        let summary = CertificateSummary::from_der(certificate.der()).unwrap();

        assert_eq!(summary.subject, "CN=bmc.test");
        assert_eq!(summary.issuer, "CN=bmc.test");
        assert!(summary.self_signed);
        assert!(!summary.is_ca);
        assert_eq!(summary.key_description, "ECDSA P-256");
        assert_eq!(
            summary.subject_alt_names,
            vec!["DNS:bmc.test", "IP:127.0.0.1"]
        );
        assert_eq!(
            summary.public_key_sha256,
            Fingerprint::of(&key.public_key_der())
        );
        assert_eq!(
            summary.certificate_sha256,
            Fingerprint::of(certificate.der())
        );
        assert!(summary.not_before < summary.not_after);
    }

    #[test]
    fn from_der_rejects_trailing_bytes() {
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = rcgen::CertificateParams::new(vec!["bmc.test".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let mut bytes = certificate.der().to_vec();
        bytes.push(0);

        let result = CertificateSummary::from_der(&CertificateDer::from(bytes));

        assert!(matches!(result, Err(TrustError::InvalidCertificate { .. })));
    }
}
