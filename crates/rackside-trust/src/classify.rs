//! Green, yellow and red: the colour of a presented certificate chain.

use std::fmt;

use rustls::client::danger::ServerCertVerifier;
use rustls::{CertificateError, Error as TlsError};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde::Serialize;
use x509_parser::certificate::X509Certificate;
use x509_parser::error::X509Error;

use crate::anchors::TrustAnchors;
use crate::summary::{self, is_self_issued, CertificateSummary};

/// The verdict on a certificate chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    /// Chains to a system or user-installed CA and matches the server name.
    Green,
    /// Not faulty but not vouched for, typically self-signed or from an unknown CA;
    /// the user may accept it by pinning.
    Yellow,
    /// Faulty; it cannot be accepted.
    Red,
}

impl fmt::Display for Color {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Green => "green",
            Self::Yellow => "yellow",
            Self::Red => "red",
        })
    }
}

/// The reason a chain is red.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RedReason {
    /// A certificate's validity period has ended.
    Expired,
    /// A certificate's validity period has not started.
    NotYetValid,
    /// A signature in the chain does not verify.
    BadSignature,
    /// A key is too short: RSA or DSA below 2048 bits, or an elliptic curve below 224 bits.
    WeakKey,
    /// A certificate is signed with MD2, MD4, MD5 or SHA-1.
    WeakSignatureAlgorithm,
    /// The chain verifies to a trusted CA but the certificate is for another name.
    NameMismatch,
    /// A certificate cannot be parsed, or the chain is empty.
    Malformed,
}

impl fmt::Display for RedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Expired => "certificate has expired",
            Self::NotYetValid => "certificate is not valid yet",
            Self::BadSignature => "certificate signature does not verify",
            Self::WeakKey => "certificate key is too weak",
            Self::WeakSignatureAlgorithm => "certificate is signed with a broken hash algorithm",
            Self::NameMismatch => "CA-issued certificate is for another name",
            Self::Malformed => "certificate is malformed",
        })
    }
}

/// The colour of a chain with the reason and the leaf certificate's summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Classification {
    /// The verdict.
    pub color: Color,
    /// Set exactly when `color` is [`Color::Red`].
    pub red_reason: Option<RedReason>,
    /// One-line explanation for the user, naming the certificate or name involved.
    pub why: String,
    /// Summary of the leaf (first) certificate.
    pub leaf: CertificateSummary,
}

/// Classifies a chain (leaf first) presented by the server `server_name` at time `now`.
///
/// Checks run in this order and the first failure decides:
/// 1. parsing ([`RedReason::Malformed`]);
/// 2. key sizes and signature hash algorithms of every presented certificate, except
///    that self-signed roots in the chain skip the hash check because path
///    validation does not use a root's self-signature;
/// 3. the leaf's validity period;
/// 4. path validation with webpki against `anchors`: a chain that reaches an anchor
///    is green if the name matches and red otherwise;
/// 5. for a chain that reaches no anchor, the signature and validity period of each
///    presented issuer, then the leaf's self-signature when it is self-signed
///    ([`RedReason::BadSignature`]). Anything that passes is yellow.
pub fn classify(
    chain: &[CertificateDer<'static>],
    server_name: &ServerName<'static>,
    anchors: &TrustAnchors,
    now: UnixTime,
) -> Classification {
    let Some(leaf_der) = chain.first() else {
        return Classification {
            color: Color::Red,
            red_reason: Some(RedReason::Malformed),
            why: "the server presented no certificate".to_owned(),
            leaf: CertificateSummary::unparsable(&[]),
        };
    };

    // 1. Parse everything; a chain with an unparsable member is malformed.
    let mut parsed = Vec::with_capacity(chain.len());
    for (position, der) in chain.iter().enumerate() {
        match summary::parse_certificate(der) {
            Ok(certificate) => parsed.push(certificate),
            Err(detail) => {
                let leaf = match parsed.first() {
                    Some(leaf) => summary::summarize(leaf_der, leaf),
                    None => CertificateSummary::unparsable(leaf_der),
                };
                return red(
                    RedReason::Malformed,
                    format!("{} is malformed: {detail}", describe_position(position)),
                    leaf,
                );
            }
        }
    }
    let Some(leaf) = parsed.first() else {
        return red(
            RedReason::Malformed,
            "the server presented no certificate".to_owned(),
            CertificateSummary::unparsable(leaf_der),
        );
    };
    let leaf_summary = summary::summarize(leaf_der, leaf);

    // 2. Weak keys and hash algorithms anywhere in the presented chain.
    for (position, certificate) in parsed.iter().enumerate() {
        if let Some((reason, why)) = weakness(certificate, position == 0) {
            return red(reason, why, leaf_summary);
        }
    }

    // 3. The leaf's validity period.
    if let Some((reason, why)) = validity_problem(leaf, now) {
        return red(reason, why, leaf_summary);
    }

    // 4. Path validation to a system or user-installed CA.
    let name = display_server_name(server_name);
    let anchored = match anchors.webpki_verifier() {
        Some(verifier) => {
            let intermediates = chain.get(1..).unwrap_or_default();
            let result =
                verifier.verify_server_cert(leaf_der, intermediates, server_name, &[], now);
            tracing::trace!(?result, server = %name, "webpki path validation");
            result
        }
        None => Err(TlsError::InvalidCertificate(
            CertificateError::UnknownIssuer,
        )),
    };
    let unanchored_note = match anchored {
        Ok(_) => {
            return Classification {
                color: Color::Green,
                red_reason: None,
                why: format!(
                    "issued by \"{}\", which chains to a trusted CA, for {name}",
                    leaf_summary.issuer
                ),
                leaf: leaf_summary,
            };
        }
        Err(TlsError::InvalidCertificate(error)) => match anchored_failure(&error, &name) {
            AnchoredFailure::Red(reason, why) => return red(reason, why, leaf_summary),
            AnchoredFailure::Unanchored(note) => note,
        },
        Err(other) => Some(format!("path validation failed: {other}")),
    };

    // 5. No trusted CA: check the links the chain presents, then it is yellow.
    if let Some((reason, why)) = linked_chain_problem(&parsed, now) {
        return red(reason, why, leaf_summary);
    }
    unanchored(
        &parsed,
        leaf_der,
        server_name,
        &name,
        unanchored_note,
        leaf_summary,
    )
}

/// Checks one certificate on its own, without a chain: key size, hash algorithm,
/// validity at `now` and, for a self-issued certificate, its own signature.
pub(crate) fn standalone_problem(
    certificate: &X509Certificate<'_>,
    now: UnixTime,
) -> Option<(RedReason, String)> {
    if let Some(problem) = weakness(certificate, true) {
        return Some(problem);
    }
    if let Some(problem) = validity_problem(certificate, now) {
        return Some(problem);
    }
    if is_self_issued(certificate) {
        if let Err(X509Error::SignatureVerificationError) = certificate.verify_signature(None) {
            return Some((
                RedReason::BadSignature,
                format!(
                    "self-signed certificate \"{}\" does not verify with its own key",
                    certificate.subject()
                ),
            ));
        }
    }
    None
}

/// Signature algorithm OIDs that use MD2, MD4, MD5 or SHA-1, with their names.
const WEAK_SIGNATURE_ALGORITHMS: [(&str, &str); 8] = [
    ("1.2.840.113549.1.1.2", "md2WithRSAEncryption"),
    ("1.2.840.113549.1.1.3", "md4WithRSAEncryption"),
    ("1.2.840.113549.1.1.4", "md5WithRSAEncryption"),
    ("1.2.840.113549.1.1.5", "sha1WithRSAEncryption"),
    ("1.3.14.3.2.25", "md5WithRSASignature"),
    ("1.3.14.3.2.29", "sha1WithRSASignature"),
    ("1.2.840.10045.4.1", "ecdsa-with-SHA1"),
    ("1.2.840.10040.4.3", "dsa-with-sha1"),
];

/// Finds a weak key or, unless the certificate is a self-signed non-leaf, a weak hash.
fn weakness(certificate: &X509Certificate<'_>, is_leaf: bool) -> Option<(RedReason, String)> {
    let subject = certificate.subject();
    let key = summary::describe_key(certificate);
    if key.weak {
        return Some((
            RedReason::WeakKey,
            format!("certificate \"{subject}\" has a weak key: {}", key.text),
        ));
    }

    // NOTE: RSASSA-PSS parameters naming SHA-1 are not inspected, so such a
    // certificate is not reported as weak here.
    if !is_leaf && is_self_issued(certificate) {
        return None;
    }
    let algorithm = certificate.signature_algorithm.algorithm.to_id_string();
    WEAK_SIGNATURE_ALGORITHMS
        .iter()
        .find(|(oid, _)| *oid == algorithm)
        .map(|(_, name)| {
            (
                RedReason::WeakSignatureAlgorithm,
                format!("certificate \"{subject}\" is signed with {name}"),
            )
        })
}

/// Compares the validity period with `now`.
fn validity_problem(
    certificate: &X509Certificate<'_>,
    now: UnixTime,
) -> Option<(RedReason, String)> {
    let now_seconds = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let validity = certificate.validity();
    let subject = certificate.subject();
    if now_seconds < validity.not_before.timestamp() {
        return Some((
            RedReason::NotYetValid,
            format!(
                "certificate \"{subject}\" is not valid before {}",
                format_time(validity.not_before.timestamp())
            ),
        ));
    }
    if now_seconds > validity.not_after.timestamp() {
        return Some((
            RedReason::Expired,
            format!(
                "certificate \"{subject}\" expired at {}",
                format_time(validity.not_after.timestamp())
            ),
        ));
    }
    None
}

/// The effect of a webpki failure on the colour.
enum AnchoredFailure {
    /// The chain reaches a trusted CA, or claims to, and is faulty.
    Red(RedReason, String),
    /// The chain does not reach a trusted CA. The optional note gives the cause.
    Unanchored(Option<String>),
}

/// Maps a webpki error (through rustls) to red or to the no-trusted-CA path.
fn anchored_failure(error: &CertificateError, name: &str) -> AnchoredFailure {
    match error {
        // webpki checks the name only after the chain verified to an anchor.
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            AnchoredFailure::Red(
                RedReason::NameMismatch,
                format!("the certificate is issued by a trusted CA but not for {name}"),
            )
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            AnchoredFailure::Red(
                RedReason::Expired,
                "a certificate in the chain has expired".to_owned(),
            )
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            AnchoredFailure::Red(
                RedReason::NotYetValid,
                "a certificate in the chain is not valid yet".to_owned(),
            )
        }
        CertificateError::BadSignature => AnchoredFailure::Red(
            RedReason::BadSignature,
            "the chain names a trusted CA but a signature in it does not verify".to_owned(),
        ),
        CertificateError::BadEncoding => AnchoredFailure::Red(
            RedReason::Malformed,
            "a certificate in the chain is not valid DER".to_owned(),
        ),
        CertificateError::UnknownIssuer => AnchoredFailure::Unanchored(None),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            AnchoredFailure::Unanchored(Some(
                "it chains to a trusted CA but is not issued for TLS server authentication"
                    .to_owned(),
            ))
        }
        // Typically webpki's CaUsedAsEndEntity for a self-signed CA:TRUE leaf, which
        // the self-signed check handles; the detail only goes to the debug log.
        other => {
            tracing::debug!(error = ?other, "path validation failed");
            AnchoredFailure::Unanchored(None)
        }
    }
}

/// Checks each presented certificate against the next one when the next one names
/// itself as its issuer: the signature must verify and the issuer must be within its
/// validity period. webpki makes these checks when it runs, but it does not run
/// without anchors, and the verdict should not depend on that.
fn linked_chain_problem(
    parsed: &[X509Certificate<'_>],
    now: UnixTime,
) -> Option<(RedReason, String)> {
    for (position, pair) in parsed.windows(2).enumerate() {
        let [subject, issuer] = pair else { continue };
        if subject.issuer().as_raw() != issuer.subject().as_raw() {
            continue;
        }
        if let Err(X509Error::SignatureVerificationError) =
            subject.verify_signature(Some(issuer.public_key()))
        {
            return Some((
                RedReason::BadSignature,
                format!(
                    "{} (\"{}\") is not validly signed by the certificate after it",
                    describe_position(position),
                    subject.subject()
                ),
            ));
        }
        if let Some(problem) = validity_problem(issuer, now) {
            return Some(problem);
        }
    }
    None
}

/// Classifies a chain that reaches no trusted CA: red on a failing self-signature,
/// else yellow.
fn unanchored(
    parsed: &[X509Certificate<'_>],
    leaf_der: &CertificateDer<'static>,
    server_name: &ServerName<'static>,
    name: &str,
    note: Option<String>,
    leaf_summary: CertificateSummary,
) -> Classification {
    let mut parts = Vec::new();
    let leaf = parsed.first();
    match leaf.filter(|leaf| is_self_issued(leaf)) {
        Some(leaf) => match leaf.verify_signature(None) {
            Ok(()) => parts.push("self-signed certificate, not issued by a trusted CA".to_owned()),
            Err(X509Error::SignatureVerificationError) => {
                return red(
                    RedReason::BadSignature,
                    "self-signed certificate does not verify with its own key".to_owned(),
                    leaf_summary,
                );
            }
            // NOTE: x509-parser 0.16 checks only PKCS#1 RSA, ECDSA P-256/P-384 and
            // Ed25519 signatures, so other self-signatures stay unchecked.
            Err(other) => parts.push(format!(
                "self-signed certificate whose signature could not be checked ({other})"
            )),
        },
        None => parts.push(format!(
            "issued by \"{}\", a CA that is not trusted",
            leaf_summary.issuer
        )),
    }
    if let Some(note) = note {
        parts.push(note);
    }
    if !name_matches(leaf_der, server_name) {
        parts.push(format!("it does not name {name}"));
    }

    Classification {
        color: Color::Yellow,
        red_reason: None,
        why: parts.join("; "),
        leaf: leaf_summary,
    }
}

/// Checks with webpki whether the leaf's subject alternative names cover `server_name`.
fn name_matches(leaf_der: &CertificateDer<'static>, server_name: &ServerName<'static>) -> bool {
    webpki::EndEntityCert::try_from(leaf_der)
        .and_then(|leaf| leaf.verify_is_valid_for_subject_name(server_name))
        .is_ok()
}

/// Formats a server name for messages: the DNS name or the IP address.
pub(crate) fn display_server_name(server_name: &ServerName<'_>) -> String {
    match server_name {
        ServerName::DnsName(dns) => dns.as_ref().to_owned(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}

/// Names a chain position for messages; the leaf is position 0.
fn describe_position(position: usize) -> String {
    match position {
        0 => "the server certificate".to_owned(),
        n => format!("chain certificate {n} (after the server certificate)"),
    }
}

/// Formats Unix seconds as `2020-01-01 00:00:00 UTC`.
fn format_time(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0).map_or_else(
        || format!("{seconds} seconds after 1970"),
        |time| time.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// Builds a red classification.
fn red(reason: RedReason, why: String, leaf: CertificateSummary) -> Classification {
    Classification {
        color: Color::Red,
        red_reason: Some(reason),
        why,
        leaf,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn red_reason(error: CertificateError) -> Option<RedReason> {
        match anchored_failure(&error, "bmc.test") {
            AnchoredFailure::Red(reason, _) => Some(reason),
            AnchoredFailure::Unanchored(_) => None,
        }
    }

    #[test]
    fn anchored_failure_maps_faults_to_red() {
        assert_eq!(
            red_reason(CertificateError::NotValidForName),
            Some(RedReason::NameMismatch)
        );
        assert_eq!(
            red_reason(CertificateError::Expired),
            Some(RedReason::Expired)
        );
        assert_eq!(
            red_reason(CertificateError::NotValidYet),
            Some(RedReason::NotYetValid)
        );
        assert_eq!(
            red_reason(CertificateError::BadSignature),
            Some(RedReason::BadSignature)
        );
        assert_eq!(
            red_reason(CertificateError::BadEncoding),
            Some(RedReason::Malformed)
        );
    }

    #[test]
    fn anchored_failure_leaves_unknown_issuer_and_purpose_unanchored() {
        assert_eq!(red_reason(CertificateError::UnknownIssuer), None);
        assert_eq!(red_reason(CertificateError::InvalidPurpose), None);
        assert!(matches!(
            anchored_failure(&CertificateError::InvalidPurpose, "bmc.test"),
            AnchoredFailure::Unanchored(Some(note)) if note.contains("server authentication")
        ));
    }

    #[test]
    fn format_time_prints_utc_calendar_time() {
        assert_eq!(format_time(1_577_836_800), "2020-01-01 00:00:00 UTC");
    }

    #[test]
    fn color_and_reason_display_as_documented() {
        assert_eq!(Color::Green.to_string(), "green");
        assert_eq!(Color::Yellow.to_string(), "yellow");
        assert_eq!(Color::Red.to_string(), "red");
        assert_eq!(RedReason::Expired.to_string(), "certificate has expired");
        assert_eq!(serde_json::to_string(&Color::Yellow).unwrap(), "\"yellow\"");
    }
}
