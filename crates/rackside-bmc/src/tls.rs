//! The server certificate: generated and kept in the state directory, or loaded from the
//! user's PEM files, and the rustls configuration built from it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{Datelike, Duration as ChronoDuration, Utc};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsSource;
use crate::error::BmcError;

/// File name of the generated certificate inside the state directory.
pub const CERT_FILE: &str = "bmc-cert.pem";
/// File name of the generated private key inside the state directory.
pub const KEY_FILE: &str = "bmc-key.pem";

/// A certificate chain (leaf first) with its private key.
pub(crate) struct Identity {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
}

/// Loads the identity that `source` names, generating one on first start.
///
/// `host_label` becomes part of the generated certificate's DNS name, `bmc-<label>.local`.
pub(crate) fn load_identity(
    source: &TlsSource,
    state_dir: &Path,
    host_label: &str,
) -> Result<Identity, BmcError> {
    match source {
        TlsSource::Files { cert, key } => load_files(cert, key),
        TlsSource::Generated => {
            let cert = state_dir.join(CERT_FILE);
            let key = state_dir.join(KEY_FILE);
            match (cert.exists(), key.exists()) {
                (true, true) => load_files(&cert, &key),
                (false, false) => {
                    generate(state_dir, host_label)?;
                    load_files(&cert, &key)
                }
                (true, false) => Err(half_pair(&key, &cert)),
                (false, true) => Err(half_pair(&cert, &key)),
            }
        }
    }
}

/// Builds the rustls server configuration: ring provider, TLS 1.2 and 1.3, ALPN http/1.1.
pub(crate) fn server_config(identity: &Identity) -> Result<Arc<ServerConfig>, BmcError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| BmcError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(|e| BmcError::Tls(format!("certificate and key do not fit together: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn half_pair(missing: &Path, present: &Path) -> BmcError {
    BmcError::InvalidTlsFile {
        path: missing.to_path_buf(),
        reason: format!(
            "file is missing while {} exists; remove both to generate a new pair",
            present.display()
        ),
    }
}

fn load_files(cert: &Path, key: &Path) -> Result<Identity, BmcError> {
    let invalid = |path: &Path, reason: String| BmcError::InvalidTlsFile {
        path: path.to_path_buf(),
        reason,
    };
    let cert_pem = fs::read(cert).map_err(|source| io_error("read", cert, source))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(cert, format!("not a PEM certificate file ({e})")))?;
    if chain.is_empty() {
        return Err(invalid(
            cert,
            "no CERTIFICATE block found; pass a PEM certificate".into(),
        ));
    }

    let key_pem =
        zeroize::Zeroizing::new(fs::read(key).map_err(|source| io_error("read", key, source))?);
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        invalid(
            key,
            format!("no usable PEM private key found ({e}); pass a PKCS#8, PKCS#1 or SEC1 key"),
        )
    })?;
    Ok(Identity {
        chain,
        key: private_key,
    })
}

fn generate(state_dir: &Path, host_label: &str) -> Result<(), BmcError> {
    fs::create_dir_all(state_dir).map_err(|source| io_error("create", state_dir, source))?;
    let host = format!("bmc-{host_label}.local");
    let gen_error = |e: rcgen::Error| BmcError::CertificateGeneration(e.to_string());

    let mut params =
        CertificateParams::new(vec!["localhost".to_owned(), host.clone()]).map_err(gen_error)?;
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, host.as_str());
    name.push(DnType::OrganizationName, "rackside BMC simulator");
    params.distinguished_name = name;
    let yesterday = Utc::now() - ChronoDuration::days(1);
    let (year, month, day) = (
        yesterday.year(),
        yesterday.month() as u8,
        yesterday.day() as u8,
    );
    params.not_before = rcgen::date_time_ymd(year, month, day);
    // Two years, the order of magnitude of the certificates BMCs generate for themselves.
    params.not_after = rcgen::date_time_ymd(year + 2, month, day.min(28));

    let key_pair = KeyPair::generate().map_err(gen_error)?;
    let certificate = params.self_signed(&key_pair).map_err(gen_error)?;
    let key_pem = zeroize::Zeroizing::new(key_pair.serialize_pem());

    write_private(&state_dir.join(KEY_FILE), key_pem.as_bytes())?;
    let cert_path = state_dir.join(CERT_FILE);
    fs::write(&cert_path, certificate.pem())
        .map_err(|source| io_error("write", &cert_path, source))?;
    tracing::debug!(path = %cert_path.display(), %host, "generated a self-signed certificate");
    Ok(())
}

/// Writes `bytes` to a new file readable by its owner only.
fn write_private(path: &PathBuf, bytes: &[u8]) -> Result<(), BmcError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|source| io_error("create", path, source))?;
    file.write_all(bytes)
        .map_err(|source| io_error("write", path, source))
}

fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> BmcError {
    BmcError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_identity_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_identity(&TlsSource::Generated, dir.path(), "tag1").unwrap();
        let second = load_identity(&TlsSource::Generated, dir.path(), "tag1").unwrap();
        assert_eq!(first.chain, second.chain);
    }

    #[cfg(unix)]
    #[test]
    fn generated_key_file_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        load_identity(&TlsSource::Generated, dir.path(), "tag1").unwrap();
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn bad_certificate_file_is_rejected_with_path() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        fs::write(&cert, "not a certificate").unwrap();
        fs::write(&key, "not a key").unwrap();
        let error = load_identity(
            &TlsSource::Files {
                cert: cert.clone(),
                key,
            },
            dir.path(),
            "x",
        )
        .err()
        .unwrap();
        assert!(error.to_string().contains("cert.pem"), "{error}");
    }

    #[test]
    fn lone_certificate_without_key_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        load_identity(&TlsSource::Generated, dir.path(), "tag1").unwrap();
        fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        let error = load_identity(&TlsSource::Generated, dir.path(), "tag1")
            .err()
            .unwrap();
        assert!(error.to_string().contains("remove both"), "{error}");
    }
}
