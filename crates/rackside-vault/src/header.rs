//! The header file: format version, Argon2id parameters, salt and the
//! wrapped data keys, authenticated as a whole.
//!
//! Layout: `RSVHDR01`, a 4-byte big-endian body length, the body (compact
//! JSON), then an HMAC-SHA256 over everything before it. The HMAC key comes
//! from the data key, so the tag is checked right after the unwrap. The
//! wrap's AEAD also binds the fields that the unwrap key depends on. A byte
//! changed anywhere makes the parse, the unwrap or the tag fail.
//!
//! Format 2 adds the header generation (see `generation.rs`). Format 1
//! headers have none; `Vault::open` still reads them and rewrites them as
//! format 2.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::kdf::{self, KdfParams};

/// The header format this build writes.
pub(crate) const VERSION: u32 = 2;

/// The older header format this build still reads: no generation.
pub(crate) const LEGACY_VERSION: u32 = 1;

/// The format number inside the main wrap's associated data. It stays 1 in
/// format 2, so rewriting a format 1 header as format 2 keeps its wrap and
/// needs neither the password nor a new Argon2id run. The header tag covers
/// the real format number.
const WRAP_AAD_VERSION: u32 = 1;

const MAGIC: &[u8; 8] = b"RSVHDR01";
const MAC_LEN: usize = 32;
const MAX_BODY: usize = 64 * 1024;

/// A data key: 32 random bytes that key the database.
pub(crate) type DataKey = Zeroizing<[u8; 32]>;

/// The parsed header body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HeaderBody {
    pub version: u32,
    /// The header generation: 1 at create and higher on every rewrite.
    /// Absent in format 1 headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    pub vault_id: String,
    pub kdf: KdfParams,
    pub salt: String,
    pub password_set: bool,
    pub wrap: WrapBlob,
    /// The quick-unlock wrap; its key sits in the device key store.
    pub quick: Option<WrapBlob>,
}

/// A data key sealed with XChaCha20-Poly1305.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WrapBlob {
    pub nonce: String,
    pub ciphertext: String,
}

/// A header read from disk whose tag is not yet checked.
pub(crate) struct Unverified {
    pub body: HeaderBody,
    signed: Vec<u8>,
    mac: [u8; MAC_LEN],
}

impl HeaderBody {
    /// The key store entry for this vault's quick-unlock key.
    pub fn quick_entry(&self) -> String {
        format!("quick-unlock-{}", self.vault_id)
    }

    /// Whether the fields have the shapes this build writes: a 16-byte salt
    /// and id, Argon2id parameters within limits, and a generation exactly
    /// when the format has one.
    pub fn is_well_formed(&self) -> bool {
        let hex_len = |text: &str| hex::decode(text).map(|b| b.len()).ok();
        let generation_fits = match self.version {
            LEGACY_VERSION => self.generation.is_none(),
            _ => self.generation.is_some(),
        };
        hex_len(&self.salt) == Some(16)
            && hex_len(&self.vault_id) == Some(16)
            && self.kdf.validate().is_ok()
            && generation_fits
    }

    /// Returns the header generation, with a format 1 header counting as 0.
    pub fn generation_or_zero(&self) -> u64 {
        self.generation.unwrap_or(0)
    }

    /// The salt as bytes; an unparsable salt gives an empty one, which the
    /// unwrap then fails on.
    pub fn salt_bytes(&self) -> Vec<u8> {
        hex::decode(&self.salt).unwrap_or_default()
    }

    /// Associated data for the main wrap: every field the unwrap key uses.
    pub fn main_aad(&self) -> Vec<u8> {
        let mut aad = b"rackside-vault/wrap/v1\0".to_vec();
        aad.extend_from_slice(&WRAP_AAD_VERSION.to_be_bytes());
        aad.extend_from_slice(self.vault_id.as_bytes());
        aad.push(0);
        aad.push(u8::from(self.password_set));
        aad.extend_from_slice(&self.kdf.m_cost_kib.to_be_bytes());
        aad.extend_from_slice(&self.kdf.t_cost.to_be_bytes());
        aad.extend_from_slice(&self.kdf.p_cost.to_be_bytes());
        aad.extend_from_slice(self.salt.as_bytes());
        aad
    }

    /// Associated data for the quick-unlock wrap.
    pub fn quick_aad(&self) -> Vec<u8> {
        let mut aad = b"rackside-vault/quick/v1\0".to_vec();
        aad.extend_from_slice(self.vault_id.as_bytes());
        aad
    }

    /// The key that wraps the data key, from the device secret and the
    /// password when one is set.
    pub fn main_wrap_key(
        &self,
        device_secret: &[u8],
        password: Option<&[u8]>,
    ) -> crate::Result<Zeroizing<[u8; 32]>> {
        match password {
            Some(password) => {
                kdf::derive_password_key(device_secret, password, &self.salt_bytes(), &self.kdf)
            }
            None => Ok(kdf::hkdf(
                device_secret,
                &self.salt_bytes(),
                format!("rackside-vault/device-wrap/v1/{}", self.vault_id).as_bytes(),
            )),
        }
    }
}

/// The key that wraps the quick-unlock copy of the data key.
pub(crate) fn quick_wrap_key(device_secret: &[u8], quick_key: &[u8]) -> Zeroizing<[u8; 32]> {
    kdf::hkdf(quick_key, device_secret, b"rackside-vault/quick-wrap/v1")
}

/// Seals `data_key` under `kek`.
pub(crate) fn wrap(kek: &[u8; 32], data_key: &[u8; 32], aad: &[u8]) -> WrapBlob {
    let cipher = XChaCha20Poly1305::new(kek.into());
    let mut nonce = [0u8; 24];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    // Encryption only fails for plaintexts beyond the cipher's length limit.
    let ciphertext = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: data_key, aad })
        .unwrap_or_default();
    WrapBlob {
        nonce: hex::encode(nonce),
        ciphertext: hex::encode(ciphertext),
    }
}

/// Opens a wrap; `None` on any failure (wrong key, changed byte).
pub(crate) fn unwrap(kek: &[u8; 32], blob: &WrapBlob, aad: &[u8]) -> Option<DataKey> {
    let nonce = hex::decode(&blob.nonce).ok()?;
    let ciphertext = hex::decode(&blob.ciphertext).ok()?;
    if nonce.len() != 24 {
        return None;
    }
    let cipher = XChaCha20Poly1305::new(kek.into());
    let plain = Zeroizing::new(
        cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad,
                },
            )
            .ok()?,
    );
    let mut key = Zeroizing::new([0u8; 32]);
    if plain.len() != 32 {
        return None;
    }
    key.copy_from_slice(&plain);
    Some(key)
}

/// The header file bytes for `body`, tagged under `data_key`.
pub(crate) fn encode(body: &HeaderBody, data_key: &[u8; 32]) -> Vec<u8> {
    // Serializing plain strings, numbers and booleans cannot fail.
    let json = serde_json::to_vec(body).unwrap_or_default();
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    let tag = mac(data_key, &out);
    out.extend_from_slice(&tag);
    out
}

/// Parses header bytes; `None` when they are not a well-formed header.
pub(crate) fn decode(bytes: &[u8]) -> Option<Unverified> {
    let magic = bytes.get(..8)?;
    if magic != MAGIC {
        return None;
    }
    let len = u32::from_be_bytes(bytes.get(8..12)?.try_into().ok()?) as usize;
    if len > MAX_BODY || bytes.len() != 12 + len + MAC_LEN {
        return None;
    }
    let json = bytes.get(12..12 + len)?;
    let body: HeaderBody = serde_json::from_slice(json).ok()?;
    let mac: [u8; MAC_LEN] = bytes.get(12 + len..)?.try_into().ok()?;
    Some(Unverified {
        body,
        signed: bytes.get(..12 + len)?.to_vec(),
        mac,
    })
}

impl Unverified {
    /// Whether the tag matches under `data_key` (constant time).
    pub fn verify(&self, data_key: &[u8; 32]) -> bool {
        let Ok(mut check) = <Hmac<Sha256> as Mac>::new_from_slice(mac_key(data_key).as_ref())
        else {
            return false;
        };
        check.update(&self.signed);
        check.verify_slice(&self.mac).is_ok()
    }
}

fn mac_key(data_key: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    kdf::hkdf(data_key, b"", b"rackside-vault/header-mac/v1")
}

fn mac(data_key: &[u8; 32], bytes: &[u8]) -> [u8; MAC_LEN] {
    let mut out = [0u8; MAC_LEN];
    if let Ok(mut m) = <Hmac<Sha256> as Mac>::new_from_slice(mac_key(data_key).as_ref()) {
        m.update(bytes);
        out.copy_from_slice(&m.finalize().into_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> HeaderBody {
        HeaderBody {
            version: VERSION,
            generation: Some(1),
            vault_id: "00112233445566778899aabbccddeeff".into(),
            kdf: KdfParams::TEST,
            salt: hex::encode([7u8; 16]),
            password_set: false,
            wrap: WrapBlob {
                nonce: String::new(),
                ciphertext: String::new(),
            },
            quick: None,
        }
    }

    #[test]
    fn wrap_opens_with_the_same_key_and_aad_only() {
        let kek = [1u8; 32];
        let dk = [9u8; 32];
        let blob = wrap(&kek, &dk, b"aad");
        assert_eq!(*unwrap(&kek, &blob, b"aad").unwrap(), dk);
        assert!(unwrap(&[2u8; 32], &blob, b"aad").is_none());
        assert!(unwrap(&kek, &blob, b"aae").is_none());
    }

    #[test]
    fn format_1_and_2_share_the_wrap_aad() {
        let current = body();
        let legacy = HeaderBody {
            version: LEGACY_VERSION,
            generation: None,
            ..body()
        };
        assert_eq!(current.main_aad(), legacy.main_aad());
        assert!(current
            .main_aad()
            .starts_with(b"rackside-vault/wrap/v1\0\0\0\0\x01"));
    }

    #[test]
    fn header_tag_fails_under_another_data_key() {
        let bytes = encode(&body(), &[3u8; 32]);
        let parsed = decode(&bytes).unwrap();
        assert!(parsed.verify(&[3u8; 32]));
        assert!(!parsed.verify(&[4u8; 32]));
    }

    #[test]
    fn truncated_header_does_not_parse() {
        let bytes = encode(&body(), &[3u8; 32]);
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_none(), "length {len}");
        }
    }
}
