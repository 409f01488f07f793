//! End-to-end payload encryption for push messages: RFC 8291 (Message Encryption for Web
//! Push) over the RFC 8188 `aes128gcm` content coding.
//!
//! The console encrypts each alert to the device's P-256 key and 16-byte authentication
//! secret. The relay and the push services carry the result but cannot read it.
//! The same body travels inside FCM and APNs data, so every provider gets only ciphertext.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hkdf::Hkdf;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use rand::rngs::OsRng;
use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::error::RelayError;

/// Record size written into every header: one record of at most 4096 bytes, the size every
/// push service must accept (RFC 8030 section 7.2).
pub const RECORD_SIZE: u32 = 4096;
/// Length of the `aes128gcm` header: salt (16), record size (4), key id length (1), key id (65).
pub const HEADER_LEN: usize = 16 + 4 + 1 + PUBLIC_KEY_LEN;
/// Largest plaintext that fits in one record: the record size less header, padding delimiter
/// and GCM tag. RFC 8291 section 4 gives the same 3993.
pub const MAX_PLAINTEXT: usize = RECORD_SIZE as usize - HEADER_LEN - 1 - TAG_LEN;

const PUBLIC_KEY_LEN: usize = 65;
const AUTH_SECRET_LEN: usize = 16;
const TAG_LEN: usize = 16;
const LAST_RECORD_DELIMITER: u8 = 0x02;

/// A device's public keys as a push subscription carries them: the uncompressed P-256 point
/// (`p256dh`) and the authentication secret (`auth`).
#[derive(Clone, PartialEq, Eq)]
pub struct RecipientKeys {
    public: PublicKey,
    auth: [u8; AUTH_SECRET_LEN],
}

impl fmt::Debug for RecipientKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Anyone with the auth secret who also captures traffic can check guesses, so Debug omits it.
        f.debug_struct("RecipientKeys")
            .field("p256dh", &self.p256dh())
            .field("auth", &"[REDACTED]")
            .finish()
    }
}

impl RecipientKeys {
    /// Parses the base64url `p256dh` and `auth` values of a push subscription.
    ///
    /// # Errors
    /// [`RelayError::InvalidKey`] when either value is not base64url, `p256dh` is not an
    /// uncompressed point on P-256, or `auth` is not 16 bytes.
    pub fn from_base64url(p256dh: &str, auth: &str) -> Result<Self, RelayError> {
        let point = URL_SAFE_NO_PAD
            .decode(p256dh.trim_end_matches('='))
            .map_err(|e| invalid("p256dh", format!("not base64url ({e})")))?;
        if point.len() != PUBLIC_KEY_LEN || point.first() != Some(&0x04) {
            return Err(invalid(
                "p256dh",
                format!(
                    "expected a 65-byte uncompressed point, got {} bytes",
                    point.len()
                ),
            ));
        }
        let public = PublicKey::from_sec1_bytes(&point)
            .map_err(|_| invalid("p256dh", "not a point on P-256".to_owned()))?;
        let secret = URL_SAFE_NO_PAD
            .decode(auth.trim_end_matches('='))
            .map_err(|e| invalid("auth", format!("not base64url ({e})")))?;
        let auth: [u8; AUTH_SECRET_LEN] = secret
            .as_slice()
            .try_into()
            .map_err(|_| invalid("auth", format!("expected 16 bytes, got {}", secret.len())))?;
        Ok(Self { public, auth })
    }

    /// Returns the public key as base64url of the uncompressed point.
    pub fn p256dh(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.public.to_encoded_point(false).as_bytes())
    }

    /// Returns the authentication secret as base64url.
    pub fn auth(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.auth)
    }
}

/// A device's private key pair and authentication secret: what a receiver keeps to decrypt.
///
/// `Debug` prints no key bytes; the secret scalar zeroizes itself on drop.
pub struct DeviceKeys {
    secret: SecretKey,
    auth: Zeroizing<[u8; AUTH_SECRET_LEN]>,
}

impl fmt::Debug for DeviceKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceKeys([REDACTED])")
    }
}

impl DeviceKeys {
    /// Generates a fresh key pair and authentication secret.
    pub fn generate() -> Self {
        let mut auth = Zeroizing::new([0u8; AUTH_SECRET_LEN]);
        OsRng.fill_bytes(auth.as_mut());
        Self {
            secret: SecretKey::random(&mut OsRng),
            auth,
        }
    }

    /// Rebuilds keys from [`DeviceKeys::to_bytes`] output.
    ///
    /// # Errors
    /// [`RelayError::InvalidKey`] when the input is not 48 bytes or the scalar is out of range.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RelayError> {
        let (scalar, auth) = bytes
            .split_at_checked(32)
            .filter(|(_, auth)| auth.len() == AUTH_SECRET_LEN)
            .ok_or_else(|| {
                invalid(
                    "device keys",
                    format!("expected 48 bytes, got {}", bytes.len()),
                )
            })?;
        let secret = SecretKey::from_slice(scalar)
            .map_err(|_| invalid("device keys", "scalar out of range".to_owned()))?;
        let mut fixed = Zeroizing::new([0u8; AUTH_SECRET_LEN]);
        fixed.copy_from_slice(auth);
        Ok(Self {
            secret,
            auth: fixed,
        })
    }

    /// Exports the private scalar and the authentication secret, 48 bytes, for the caller's
    /// encrypted store. This is the only way key bytes leave the type.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(32 + AUTH_SECRET_LEN));
        out.extend_from_slice(&self.secret.to_bytes());
        out.extend_from_slice(self.auth.as_ref());
        out
    }

    /// Returns the public half that a sender encrypts to.
    pub fn recipient(&self) -> RecipientKeys {
        RecipientKeys {
            public: self.secret.public_key(),
            auth: *self.auth,
        }
    }

    /// Decrypts one `aes128gcm` push message body.
    ///
    /// # Errors
    /// [`RelayError::Decrypt`] for any malformed, truncated, multi-record, wrongly keyed or
    /// tampered body; the reason goes to the trace log only.
    pub fn decrypt(&self, body: &[u8]) -> Result<Zeroizing<Vec<u8>>, RelayError> {
        // 1. Parse the header: salt, record size, sender key.
        let fail = |why: &'static str| {
            tracing::trace!(reason = why, "push message rejected");
            RelayError::Decrypt
        };
        let (header, ciphertext) = body
            .split_at_checked(HEADER_LEN)
            .ok_or_else(|| fail("short header"))?;
        let (salt, rest) = header.split_at(16);
        let (size, rest) = rest.split_at(4);
        let (id_len, key_id) = rest.split_at(1);
        let record_size = u32::from_be_bytes(size.try_into().map_err(|_| fail("record size"))?);
        if id_len != [PUBLIC_KEY_LEN as u8] {
            return Err(fail("key id is not a 65-byte point"));
        }
        if ciphertext.len() < TAG_LEN + 1 || ciphertext.len() > record_size as usize {
            return Err(fail("body is not exactly one record"));
        }
        let sender = PublicKey::from_sec1_bytes(key_id).map_err(|_| fail("sender key"))?;

        // 2. Derive the content key and nonce as the sender did.
        let shared =
            p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), sender.as_affine());
        let recipient = self.secret.public_key();
        let (key, nonce) = derive(
            shared.raw_secret_bytes(),
            &self.auth,
            &recipient,
            &sender,
            salt,
        )?;

        // 3. Open the record and strip the padding down to the last-record delimiter.
        let mut buffer = Zeroizing::new(ciphertext.to_vec());
        let opening =
            LessSafeKey::new(UnboundKey::new(&AES_128_GCM, key.as_ref()).map_err(|_| fail("key"))?);
        let plain_len = opening
            .open_in_place(
                Nonce::assume_unique_for_key(*nonce),
                Aad::empty(),
                &mut buffer,
            )
            .map_err(|_| fail("authentication tag"))?
            .len();
        buffer.truncate(plain_len);
        let end = buffer
            .iter()
            .rposition(|&b| b != 0)
            .ok_or_else(|| fail("no delimiter"))?;
        if buffer.get(end) != Some(&LAST_RECORD_DELIMITER) {
            return Err(fail("delimiter is not the last-record marker"));
        }
        buffer.truncate(end);
        Ok(buffer)
    }
}

/// Encrypts `plaintext` to `recipient` as one `aes128gcm` record with a fresh sender key and
/// salt, so two encryptions of one alert never look alike.
///
/// # Errors
/// [`RelayError::PayloadTooLarge`] above [`MAX_PLAINTEXT`] bytes; [`RelayError::Crypto`] if
/// the cipher cannot be keyed.
pub fn encrypt(recipient: &RecipientKeys, plaintext: &[u8]) -> Result<Vec<u8>, RelayError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(RelayError::PayloadTooLarge {
            size: plaintext.len(),
            max: MAX_PLAINTEXT,
        });
    }

    // 1. A fresh sender key pair and salt per message.
    let ephemeral = p256::ecdh::EphemeralSecret::random(&mut OsRng);
    let sender = ephemeral.public_key();
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);

    // 2. Key derivation (RFC 8291 section 3.4).
    let shared = ephemeral.diffie_hellman(&recipient.public);
    let (key, nonce) = derive(
        shared.raw_secret_bytes(),
        &recipient.auth,
        &recipient.public,
        &sender,
        &salt,
    )?;

    // 3. Header, then the single record: plaintext, delimiter, tag.
    let mut body = Vec::with_capacity(HEADER_LEN + plaintext.len() + 1 + TAG_LEN);
    body.extend_from_slice(&salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(PUBLIC_KEY_LEN as u8);
    body.extend_from_slice(sender.to_encoded_point(false).as_bytes());
    let mut record = Zeroizing::new(Vec::with_capacity(plaintext.len() + 1 + TAG_LEN));
    record.extend_from_slice(plaintext);
    record.push(LAST_RECORD_DELIMITER);
    let sealing = LessSafeKey::new(
        UnboundKey::new(&AES_128_GCM, key.as_ref())
            .map_err(|_| RelayError::Crypto("AES-128-GCM key"))?,
    );
    sealing
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(*nonce),
            Aad::empty(),
            &mut *record,
        )
        .map_err(|_| RelayError::Crypto("AES-128-GCM seal"))?;
    body.extend_from_slice(&record);
    Ok(body)
}

/// A content-encryption key and its nonce.
type ContentKey = (Zeroizing<[u8; 16]>, Zeroizing<[u8; 12]>);

/// Derives the content-encryption key and nonce from the ECDH secret (RFC 8291 section 3.4,
/// then RFC 8188 section 2.2 and 2.3).
fn derive(
    ecdh_secret: &[u8],
    auth: &[u8; AUTH_SECRET_LEN],
    recipient: &PublicKey,
    sender: &PublicKey,
    salt: &[u8],
) -> Result<ContentKey, RelayError> {
    let expand_failed = |_| RelayError::Crypto("HKDF expand");
    let mut key_info = Vec::with_capacity(14 + 2 * PUBLIC_KEY_LEN);
    key_info.extend_from_slice(b"WebPush: info\0");
    key_info.extend_from_slice(recipient.to_encoded_point(false).as_bytes());
    key_info.extend_from_slice(sender.to_encoded_point(false).as_bytes());
    let mut ikm = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(auth), ecdh_secret)
        .expand(&key_info, ikm.as_mut())
        .map_err(expand_failed)?;

    let content = Hkdf::<Sha256>::new(Some(salt), ikm.as_ref());
    let mut key = Zeroizing::new([0u8; 16]);
    content
        .expand(b"Content-Encoding: aes128gcm\0", key.as_mut())
        .map_err(expand_failed)?;
    let mut nonce = Zeroizing::new([0u8; 12]);
    content
        .expand(b"Content-Encoding: nonce\0", nonce.as_mut())
        .map_err(expand_failed)?;
    ikm.zeroize();
    Ok((key, nonce))
}

fn invalid(what: &'static str, reason: String) -> RelayError {
    RelayError::InvalidKey { what, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test vector from RFC 8291 appendix A: the receiver's keys and the encrypted message.
    #[test]
    fn rfc8291_vector_decrypts() {
        let private = URL_SAFE_NO_PAD
            .decode("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94")
            .unwrap();
        let auth = URL_SAFE_NO_PAD.decode("BTBZMqHH6r4Tts7J_aSIgg").unwrap();
        let mut bytes = private.clone();
        bytes.extend_from_slice(&auth);
        let keys = DeviceKeys::from_bytes(&bytes).unwrap();
        assert_eq!(
            keys.recipient().p256dh(),
            "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
        );
        let body = URL_SAFE_NO_PAD
            .decode(
                "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN",
            )
            .unwrap();
        let plain = keys.decrypt(&body).unwrap();
        assert_eq!(
            plain.as_slice(),
            b"When I grow up, I want to be a watermelon"
        );
    }

    #[test]
    fn encrypted_alert_round_trips() {
        let keys = DeviceKeys::generate();
        let body = encrypt(&keys.recipient(), b"fan 2 failed").unwrap();
        assert_eq!(body.len(), HEADER_LEN + 12 + 1 + TAG_LEN);
        assert_eq!(keys.decrypt(&body).unwrap().as_slice(), b"fan 2 failed");
    }

    #[test]
    fn tampered_body_is_rejected() {
        let keys = DeviceKeys::generate();
        let mut body = encrypt(&keys.recipient(), b"psu 1 lost input").unwrap();
        let last = body.len() - 1;
        body[last] ^= 1;
        assert!(matches!(keys.decrypt(&body), Err(RelayError::Decrypt)));
    }

    #[test]
    fn other_device_cannot_decrypt() {
        let keys = DeviceKeys::generate();
        let body = encrypt(&keys.recipient(), b"temperature high").unwrap();
        assert!(matches!(
            DeviceKeys::generate().decrypt(&body),
            Err(RelayError::Decrypt)
        ));
    }

    #[test]
    fn truncated_body_is_rejected() {
        let keys = DeviceKeys::generate();
        let body = encrypt(&keys.recipient(), b"x").unwrap();
        for len in [0, 10, HEADER_LEN, HEADER_LEN + 5] {
            assert!(
                matches!(keys.decrypt(&body[..len]), Err(RelayError::Decrypt)),
                "len {len}"
            );
        }
    }

    #[test]
    fn oversized_plaintext_is_rejected() {
        let keys = DeviceKeys::generate();
        let fits = encrypt(&keys.recipient(), &vec![b'a'; MAX_PLAINTEXT]).unwrap();
        assert_eq!(fits.len(), RECORD_SIZE as usize);
        let too_big = encrypt(&keys.recipient(), &vec![b'a'; MAX_PLAINTEXT + 1]);
        assert!(matches!(too_big, Err(RelayError::PayloadTooLarge { .. })));
    }

    #[test]
    fn recipient_keys_parse_and_reject_bad_input() {
        let recipient = DeviceKeys::generate().recipient();
        let parsed = RecipientKeys::from_base64url(&recipient.p256dh(), &recipient.auth()).unwrap();
        assert_eq!(parsed, recipient);
        assert!(RecipientKeys::from_base64url("AAAA", &recipient.auth()).is_err());
        assert!(RecipientKeys::from_base64url(&recipient.p256dh(), "AAAA").is_err());
        assert!(RecipientKeys::from_base64url("!!", &recipient.auth()).is_err());
        assert!(!format!("{parsed:?}").contains(&recipient.auth()));
    }
}
