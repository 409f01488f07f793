//! This device's push identity and its per-console subscriptions, kept in the vault.
//!
//! The identity is created once: a random device id, the RFC 8291 key pair that consoles
//! encrypt alerts to, and the TLS identity of the loopback push receiver. The private halves
//! are vault credentials and never touch a file. The receiver's certificate is public, so a
//! copy is also written to `receiver.pem` in the config folder for the relay operator.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rackside_redfish::Secret;
use rackside_relay::ece::DeviceKeys;
use rackside_trust::Pin;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use url::Url;
use zeroize::Zeroizing;

use super::{write_atomic, Store};
use crate::failure::{ExitKind, Failure};

/// File in the config folder that contains a copy of the receiver's certificate (PEM).
const RECEIVER_CERT_FILE: &str = "receiver.pem";
/// Vault credential key of the device keys: base64url of the 48 bytes of
/// [`DeviceKeys::to_bytes`].
const DEVICE_KEYS_KEY: &str = "device/keys";
/// Vault credential key of the receiver's TLS private key (PKCS#8 PEM).
const RECEIVER_KEY_KEY: &str = "device/receiver-key";
/// Vault setting key of the public part of the identity, as JSON.
const DEVICE_KEY: &str = "device";
/// Vault credential key prefix of a console's relay registration token.
const RELAY_TOKEN_PREFIX: &str = "relay-token/";

/// The public part of this device's push identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceIdentity {
    /// Random id that the relay and the consoles know this device by; not a secret.
    pub id: String,
    /// Loopback address that `rackside alerts watch` listens on for pushes.
    pub receiver: SocketAddr,
    /// The receiver's self-signed certificate, PEM.
    pub certificate_pem: String,
}

/// One console's subscription: where the relay is, how it was trusted, and what to remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleSubscription {
    /// The relay the console forwards to, as the console names it.
    pub relay_url: Url,
    /// The console's name at the relay, which every pushed alert carries.
    pub relay_console_name: String,
    /// The relay certificate the user accepted.
    pub relay_pin: Pin,
    /// The relay's VAPID public key, base64url; the receiver accepts pushes signed by it only.
    pub vapid_key: String,
    /// Id of the receiver's push subscription for this console, the last path segment of
    /// the endpoint registered with the relay.
    pub push_id: String,
    /// Id of the device's subscription on the console, while it exists there.
    pub console_subscription_id: Option<i64>,
    /// Whether the relay registration exists; its token is a vault credential.
    pub relay_registered: bool,
}

impl ConsoleSubscription {
    /// Returns true once both the console subscription and the relay registration are removed.
    pub fn is_removed(&self) -> bool {
        self.console_subscription_id.is_none() && !self.relay_registered
    }
}

impl Store {
    /// Returns the config folder, which contains `receiver.pem` and the installed CAs.
    pub fn config_dir(&self) -> PathBuf {
        self.location.config_dir.clone()
    }

    /// Reads the device's push identity, if one was created.
    ///
    /// # Errors
    /// Vault errors; a stored identity that is not valid JSON.
    pub fn device_identity(&self) -> anyhow::Result<Option<DeviceIdentity>> {
        let Some(text) = self.backend()?.setting(DEVICE_KEY)? else {
            return Ok(None);
        };
        let identity = serde_json::from_str(&text)
            .context("invalid device identity in the vault; restore the vault from an export")?;
        Ok(Some(identity))
    }

    /// Creates the push identity for a receiver on `receiver`, keeping the device id of an
    /// earlier identity, stores it and writes the certificate to `receiver.pem`. Returns the
    /// identity and the path of `receiver.pem`.
    ///
    /// # Errors
    /// Certificate generation, vault and file errors.
    pub fn create_device_identity(
        &self,
        receiver: SocketAddr,
    ) -> anyhow::Result<(DeviceIdentity, PathBuf)> {
        // 1. Keys: the RFC 8291 pair and the receiver's TLS key and certificate.
        let keys = DeviceKeys::generate();
        let (certificate_pem, key_pem) = generate_receiver_certificate(receiver.ip())?;
        let id = match self.device_identity()? {
            Some(earlier) => earlier.id,
            None => {
                let mut raw = [0u8; 12];
                rand::rngs::OsRng.fill_bytes(&mut raw);
                format!("rackside-{}", hex::encode(raw))
            }
        };
        let identity = DeviceIdentity {
            id,
            receiver,
            certificate_pem,
        };

        // 2. Secrets to the vault first, then the public part that refers to them.
        let encoded_keys = Zeroizing::new(URL_SAFE_NO_PAD.encode(keys.to_bytes().as_slice()));
        self.put_credential(DEVICE_KEYS_KEY, &Secret::new(encoded_keys.as_str()))?;
        self.put_credential(RECEIVER_KEY_KEY, &Secret::new(key_pem.as_str()))?;
        self.backend()?
            .put_setting(DEVICE_KEY, &serde_json::to_string(&identity)?)?;

        // 3. The certificate is public: a copy for `relay serve --provider-ca`.
        let dir = self.config_dir();
        write_atomic(
            &dir,
            RECEIVER_CERT_FILE,
            identity.certificate_pem.as_bytes(),
        )?;
        Ok((identity, dir.join(RECEIVER_CERT_FILE)))
    }

    /// Reads the device keys from the vault.
    ///
    /// # Errors
    /// Vault errors; keys that are missing or damaged.
    pub fn device_keys(&self) -> anyhow::Result<DeviceKeys> {
        let damaged = || {
            Failure::new(
                ExitKind::Failure,
                "the device keys in the vault are missing or damaged; unsubscribe every console \
                 and subscribe again to create new ones",
            )
        };
        let encoded = self.credential(DEVICE_KEYS_KEY)?.ok_or_else(damaged)?;
        let bytes = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(encoded.expose())
                .map_err(|_| damaged())?,
        );
        DeviceKeys::from_bytes(&bytes).map_err(|_| damaged().into())
    }

    /// Reads the receiver's TLS private key (PEM) from the vault.
    ///
    /// # Errors
    /// Vault errors; a missing key.
    pub fn receiver_key(&self) -> anyhow::Result<Secret> {
        self.credential(RECEIVER_KEY_KEY)?.ok_or_else(|| {
            Failure::new(
                ExitKind::Failure,
                "the receiver's TLS key is missing from the vault; unsubscribe every console and \
                 subscribe again to create a new one",
            )
            .into()
        })
    }

    /// Reads console `name`'s relay registration token.
    ///
    /// # Errors
    /// Vault errors.
    pub fn relay_token(&self, name: &str) -> anyhow::Result<Option<Secret>> {
        let token = self.credential(&format!("{RELAY_TOKEN_PREFIX}{name}"))?;
        Ok(token.filter(|token| !token.expose().is_empty()))
    }

    /// Stores console `name`'s relay registration token. An empty token marks it removed,
    /// because the vault agent cannot delete credentials.
    ///
    /// # Errors
    /// Vault errors.
    pub fn put_relay_token(&self, name: &str, token: &Secret) -> anyhow::Result<()> {
        self.put_credential(&format!("{RELAY_TOKEN_PREFIX}{name}"), token)
    }
}

/// Generates a self-signed ECDSA P-256 certificate for `localhost`, 127.0.0.1, ::1 and `ip`.
/// Returns the certificate and private key, both PEM.
fn generate_receiver_certificate(ip: IpAddr) -> anyhow::Result<(String, Zeroizing<String>)> {
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

    let mut params = CertificateParams::new(vec!["localhost".to_owned()])
        .context("failed to prepare the receiver certificate")?;
    let mut addresses = vec![
        IpAddr::from(std::net::Ipv4Addr::LOCALHOST),
        IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    ];
    if !addresses.contains(&ip) {
        addresses.push(ip);
    }
    params
        .subject_alt_names
        .extend(addresses.into_iter().map(SanType::IpAddress));
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "rackside push receiver");
    params.distinguished_name = name;
    let key = KeyPair::generate().context("failed to generate the receiver key")?;
    let certificate = params
        .self_signed(&key)
        .context("failed to sign the receiver certificate")?;
    Ok((certificate.pem(), Zeroizing::new(key.serialize_pem())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Location, PasswordSource};

    fn open_test(dir: &std::path::Path) -> Store {
        let keystore = rackside_vault::FileKeyStore::new(dir.join("keys"));
        let location = Location::resolve(Some(dir)).unwrap();
        Store::open_at(location, &keystore, PasswordSource { interactive: false }).unwrap()
    }

    #[test]
    fn identity_round_trips_and_keeps_its_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_test(dir.path());
        assert!(store.device_identity().unwrap().is_none());

        let receiver: SocketAddr = "127.0.0.1:8446".parse().unwrap();
        let (identity, pem_path) = store.create_device_identity(receiver).unwrap();
        assert_eq!(store.device_identity().unwrap(), Some(identity.clone()));
        assert_eq!(
            std::fs::read_to_string(&pem_path).unwrap(),
            identity.certificate_pem
        );
        let public = store.device_keys().unwrap().recipient();
        assert!(store
            .receiver_key()
            .unwrap()
            .expose()
            .contains("PRIVATE KEY"));

        let moved: SocketAddr = "127.0.0.2:9446".parse().unwrap();
        let (again, _) = store.create_device_identity(moved).unwrap();
        assert_eq!(again.id, identity.id);
        assert_eq!(again.receiver, moved);
        assert_ne!(store.device_keys().unwrap().recipient(), public);
    }

    #[test]
    fn removed_relay_token_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_test(dir.path());
        assert!(store.relay_token("ops").unwrap().is_none());
        store
            .put_relay_token("ops", &Secret::new("token-1".to_owned()))
            .unwrap();
        assert_eq!(
            store.relay_token("ops").unwrap().unwrap().expose(),
            "token-1"
        );
        store
            .put_relay_token("ops", &Secret::new(String::new()))
            .unwrap();
        assert!(store.relay_token("ops").unwrap().is_none());
    }
}
