//! The CAs whose certificates are green: system roots plus user-installed CAs.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_parser::x509::X509Version;

use crate::classify::standalone_problem;
use crate::error::TrustError;
use crate::summary::parse_certificate;
use crate::tls::provider;

/// Trust anchors for green classification.
#[derive(Clone)]
pub struct TrustAnchors {
    roots: RootCertStore,
    system_count: usize,
    user_cas: Vec<CertificateDer<'static>>,
    verifier: Option<Arc<WebPkiServerVerifier>>,
}

impl TrustAnchors {
    /// Loads the operating system's root certificates through rustls-native-certs.
    ///
    /// Certificates or stores that fail to load are logged at debug level and
    /// skipped, so the result may hold fewer roots, or none.
    pub fn system() -> Self {
        let loaded = rustls_native_certs::load_native_certs();
        for error in &loaded.errors {
            tracing::debug!(%error, "failed to load part of the system root certificates");
        }
        let mut roots = RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
        if ignored > 0 {
            tracing::debug!(
                ignored,
                "skipped system root certificates that webpki cannot use"
            );
        }
        tracing::debug!(added, "loaded system root certificates");

        let mut anchors = Self {
            roots,
            system_count: added,
            user_cas: Vec::new(),
            verifier: None,
        };
        anchors.rebuild_verifier();
        anchors
    }

    /// Creates a set with no anchors, under which nothing is green.
    pub fn empty() -> Self {
        Self {
            roots: RootCertStore::empty(),
            system_count: 0,
            user_cas: Vec::new(),
            verifier: None,
        }
    }

    /// Adds the CA certificates in PEM text and returns how many were new.
    ///
    /// Every certificate must be a CA: basicConstraints CA:TRUE, or a version 1
    /// certificate, which has no extensions. It must also not be red on its own,
    /// which means a weak key or hash, a validity period that excludes now, or a
    /// self-signature that does not verify. Nothing is added unless all pass. Certificates already present are
    /// skipped and not counted.
    ///
    /// # Errors
    ///
    /// [`TrustError::InvalidPem`] when the text holds no CERTIFICATE block or a block
    /// is not valid base64, [`TrustError::InvalidCertificate`] when a block is not a
    /// certificate webpki can use as an anchor, [`TrustError::NotACa`] and
    /// [`TrustError::RedCa`] as described above.
    pub fn add_user_ca_pem(&mut self, pem: &[u8]) -> Result<usize, TrustError> {
        let certificates = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| TrustError::InvalidPem {
                detail: error.to_string(),
            })?;
        if certificates.is_empty() {
            return Err(TrustError::InvalidPem {
                detail: "no \"BEGIN CERTIFICATE\" block found".to_owned(),
            });
        }

        let now = UnixTime::now();
        for certificate in &certificates {
            check_user_ca(certificate, now)?;
        }

        let mut roots = self.roots.clone();
        let mut user_cas = self.user_cas.clone();
        let mut added = 0;
        for certificate in certificates {
            if user_cas.contains(&certificate) {
                continue;
            }
            roots
                .add(certificate.clone())
                .map_err(|error| TrustError::InvalidCertificate {
                    detail: format!("webpki cannot use it as a trust anchor: {error}"),
                })?;
            user_cas.push(certificate);
            added += 1;
        }
        self.roots = roots;
        self.user_cas = user_cas;
        self.rebuild_verifier();
        tracing::debug!(added, "added user CA certificates");
        Ok(added)
    }

    /// Reads a PEM file and adds its CA certificates like [`Self::add_user_ca_pem`].
    ///
    /// # Errors
    ///
    /// [`TrustError::Io`] when the file cannot be read, otherwise as
    /// [`Self::add_user_ca_pem`].
    pub fn add_user_ca_file(&mut self, path: &Path) -> Result<usize, TrustError> {
        let pem = std::fs::read(path).map_err(|source| TrustError::Io {
            path: path.to_owned(),
            source,
        })?;
        self.add_user_ca_pem(&pem)
    }

    /// Returns the user-installed CA certificates, in the order they were added.
    pub fn user_cas(&self) -> &[CertificateDer<'static>] {
        &self.user_cas
    }

    /// Returns the number of system roots loaded.
    pub fn system_root_count(&self) -> usize {
        self.system_count
    }

    /// Returns the webpki verifier over these anchors, or `None` when there are no anchors.
    pub(crate) fn webpki_verifier(&self) -> Option<&Arc<WebPkiServerVerifier>> {
        self.verifier.as_ref()
    }

    fn rebuild_verifier(&mut self) {
        if self.roots.is_empty() {
            self.verifier = None;
            return;
        }
        let built =
            WebPkiServerVerifier::builder_with_provider(Arc::new(self.roots.clone()), provider())
                .build();
        match built {
            Ok(verifier) => self.verifier = Some(verifier),
            Err(error) => {
                // Only an empty store makes the builder fail, and that case returns early above.
                tracing::debug!(%error, "failed to build the webpki verifier");
                self.verifier = None;
            }
        }
    }
}

impl fmt::Debug for TrustAnchors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustAnchors")
            .field("system_roots", &self.system_count)
            .field("user_cas", &self.user_cas.len())
            .finish()
    }
}

/// Rejects a would-be user CA that is not a CA or is red on its own.
fn check_user_ca(certificate: &CertificateDer<'_>, now: UnixTime) -> Result<(), TrustError> {
    let parsed = parse_certificate(certificate)
        .map_err(|detail| TrustError::InvalidCertificate { detail })?;
    let subject = parsed.subject().to_string();

    let is_ca = match parsed.basic_constraints() {
        Ok(Some(constraints)) => constraints.value.ca,
        Ok(None) => parsed.version() == X509Version::V1,
        Err(error) => {
            return Err(TrustError::InvalidCertificate {
                detail: format!("basicConstraints of {subject:?}: {error}"),
            })
        }
    };
    if !is_ca {
        return Err(TrustError::NotACa { subject });
    }

    if let Some((reason, why)) = standalone_problem(&parsed, now) {
        return Err(TrustError::RedCa {
            subject,
            reason: format!("{reason} ({why})"),
        });
    }
    Ok(())
}
