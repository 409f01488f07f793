//! Compact JSON Web Tokens signed with ES256 (VAPID, APNs provider tokens) or RS256 (the
//! OAuth 2.0 JWT bearer grant of a Google service account).

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;

use crate::error::RelayError;

/// A private signing key for one JWT algorithm. `Debug` prints only the algorithm.
pub enum Signer {
    /// ECDSA on P-256 with SHA-256, signature as the fixed 64-byte `r || s` JWS expects.
    Es256(EcdsaKeyPair),
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256(RsaKeyPair),
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.algorithm())
    }
}

impl Signer {
    /// Loads an ES256 key from PKCS#8 DER.
    ///
    /// # Errors
    /// [`RelayError::InvalidKey`] when the bytes are not a PKCS#8 P-256 key.
    pub fn es256_from_pkcs8(what: &'static str, der: &[u8]) -> Result<Self, RelayError> {
        EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            der,
            &SystemRandom::new(),
        )
        .map(Self::Es256)
        .map_err(|e| RelayError::InvalidKey {
            what,
            reason: format!("not a PKCS#8 P-256 key ({e})"),
        })
    }

    /// Loads a key from a PEM `PRIVATE KEY` block: P-256 gives ES256, RSA gives RS256.
    ///
    /// # Errors
    /// [`RelayError::InvalidKey`] when no PKCS#8 block is found or the key is of another type.
    pub fn from_pem(what: &'static str, pem: &[u8]) -> Result<Self, RelayError> {
        let der = match PrivateKeyDer::from_pem_slice(pem) {
            Ok(PrivateKeyDer::Pkcs8(der)) => der,
            Ok(_) => {
                return Err(RelayError::InvalidKey {
                    what,
                    reason: "expected a PKCS#8 'PRIVATE KEY' PEM block".to_owned(),
                })
            }
            Err(e) => {
                return Err(RelayError::InvalidKey {
                    what,
                    reason: format!("no PEM private key found ({e})"),
                })
            }
        };
        if let Ok(signer) = Self::es256_from_pkcs8(what, der.secret_pkcs8_der()) {
            return Ok(signer);
        }
        RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
            .map(Self::Rs256)
            .map_err(|e| RelayError::InvalidKey {
                what,
                reason: format!("neither a P-256 nor an RSA key ({e})"),
            })
    }

    /// Generates a new P-256 key and returns it with its PKCS#8 DER for storage.
    ///
    /// # Errors
    /// [`RelayError::Crypto`] if the system random source fails.
    pub fn generate_es256() -> Result<(Self, zeroize::Zeroizing<Vec<u8>>), RelayError> {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &SystemRandom::new(),
        )
        .map_err(|_| RelayError::Crypto("P-256 key generation"))?;
        let der = zeroize::Zeroizing::new(pkcs8.as_ref().to_vec());
        Ok((Self::es256_from_pkcs8("generated key", &der)?, der))
    }

    /// Returns the JWS `alg` value.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Self::Es256(_) => "ES256",
            Self::Rs256(_) => "RS256",
        }
    }

    /// Returns the public key bytes: the uncompressed point for ES256, the PKCS#1
    /// `RSAPublicKey` DER for RS256.
    pub fn public_key(&self) -> Vec<u8> {
        match self {
            Self::Es256(pair) => pair.public_key().as_ref().to_vec(),
            Self::Rs256(pair) => pair.public_key().as_ref().to_vec(),
        }
    }

    /// Signs a token with header `{"typ":"JWT","alg":..}` plus `extra_header` fields and the
    /// given claims.
    ///
    /// # Errors
    /// [`RelayError::Crypto`] if signing fails.
    pub fn sign(
        &self,
        extra_header: serde_json::Map<String, serde_json::Value>,
        claims: &serde_json::Value,
    ) -> Result<String, RelayError> {
        let mut header = serde_json::Map::new();
        header.insert("typ".into(), "JWT".into());
        header.insert("alg".into(), self.algorithm().into());
        header.extend(extra_header);
        let mut token = URL_SAFE_NO_PAD.encode(serde_json::Value::Object(header).to_string());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));

        let rng = SystemRandom::new();
        let signature = match self {
            Self::Es256(pair) => pair
                .sign(&rng, token.as_bytes())
                .map_err(|_| RelayError::Crypto("ES256 signing"))?
                .as_ref()
                .to_vec(),
            Self::Rs256(pair) => {
                let mut out = vec![0u8; pair.public().modulus_len()];
                pair.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    token.as_bytes(),
                    &mut out,
                )
                .map_err(|_| RelayError::Crypto("RS256 signing"))?;
                out
            }
        };
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(token)
    }
}

/// Returns the current Unix time in seconds.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn es256_token_verifies_with_public_key() {
        let (signer, _) = Signer::generate_es256().unwrap();
        let token = signer
            .sign(
                serde_json::Map::new(),
                &serde_json::json!({"aud": "https://push.example"}),
            )
            .unwrap();
        let (signed, sig) = token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        assert_eq!(sig.len(), 64);
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, signer.public_key())
            .verify(signed.as_bytes(), &sig)
            .unwrap();
        let header = URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&header).unwrap()["alg"],
            "ES256"
        );
    }

    #[test]
    fn pem_without_key_is_rejected() {
        assert!(matches!(
            Signer::from_pem("test key", b"not a pem"),
            Err(RelayError::InvalidKey { .. })
        ));
    }
}
