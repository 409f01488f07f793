//! The encrypted channel: a rustls connection whose TLS bytes travel as segmented messages.

use std::io::{self, Read, Write};

use rustls::pki_types::CertificateDer;

use crate::message::{Message, BINDING_LABEL, BINDING_LEN, MAX_BODY_SIZE};
use crate::segment::{Segment, Segmenter, MAX_MESSAGE_SIZE};
use crate::Error;

/// A TLS connection over a [`Segmenter`]. Decrypted bytes are decoded into [`Message`]s.
#[derive(Debug)]
pub(crate) struct Channel {
    tls: rustls::Connection,
    segmenter: Segmenter,
    plaintext: Vec<u8>,
    /// Set when the peer's close_notify arrived; messages before it are still delivered.
    peer_closed: bool,
}

impl Channel {
    pub(crate) fn new(tls: rustls::Connection, segmenter: Segmenter) -> Self {
        Channel {
            tls,
            segmenter,
            plaintext: Vec::new(),
            peer_closed: false,
        }
    }

    pub(crate) fn is_handshaking(&self) -> bool {
        self.tls.is_handshaking()
    }

    pub(crate) fn segment_size(&self) -> usize {
        self.segmenter.segment_size()
    }

    /// Processes one segment from the peer and returns the messages it completed.
    ///
    /// On an error the TLS layer may have queued an alert; the caller sends what
    /// [`Channel::poll_segment`] still yields and then ends the link.
    pub(crate) fn receive(
        &mut self,
        raw_len: usize,
        segment: Segment,
    ) -> Result<Vec<Message>, Error> {
        // 1. Enforce the negotiated size before anything else reads the segment.
        if raw_len > self.segmenter.segment_size() {
            return Err(Error::segment(format!(
                "segment of {raw_len} bytes exceeds the negotiated {}",
                self.segmenter.segment_size()
            )));
        }

        if self.peer_closed {
            return Err(Error::Closed);
        }

        // 2. Reassemble; most segments complete nothing yet.
        let Some(tls_bytes) = self.segmenter.receive(segment)? else {
            return Ok(Vec::new());
        };

        // 3. Feed the TLS bytes; a failed record authentication ends the channel here.
        let mut input = tls_bytes.as_slice();
        while !input.is_empty() {
            self.tls.read_tls(&mut input).map_err(|error| Error::Io {
                what: "buffering TLS records".into(),
                source: error,
            })?;
            self.tls.process_new_packets()?;
        }

        // 4. Collect plaintext and decode whole messages.
        self.read_plaintext()?;
        let mut messages = Vec::new();
        while let Some((message, used)) = Message::decode(&self.plaintext)? {
            self.plaintext.drain(..used);
            messages.push(message);
        }
        if self.peer_closed && messages.is_empty() {
            return Err(Error::Closed);
        }
        Ok(messages)
    }

    fn read_plaintext(&mut self) -> Result<(), Error> {
        let mut buffer = [0u8; 4096];
        loop {
            match self.tls.reader().read(&mut buffer) {
                Ok(0) => {
                    self.peer_closed = true;
                    return Ok(());
                }
                Ok(count) => {
                    self.plaintext
                        .extend_from_slice(buffer.get(..count).unwrap_or_default());
                    if self.plaintext.len() > MAX_BODY_SIZE + 5 {
                        return Err(Error::InvalidMessage {
                            size: self.plaintext.len(),
                            detail: "undecoded data exceeds the largest message".into(),
                        });
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(error) => {
                    return Err(Error::Io {
                        what: "reading decrypted data".into(),
                        source: error,
                    })
                }
            }
        }
    }

    /// Encrypts one message for the peer.
    pub(crate) fn send(&mut self, message: &Message) -> Result<(), Error> {
        self.tls
            .writer()
            .write_all(&message.encode())
            .map_err(|error| Error::Io {
                what: format!("encrypting a {}", message.name()),
                source: error,
            })
    }

    /// Returns the next segment to transmit, moving pending TLS bytes into the segmenter.
    pub(crate) fn poll_segment(&mut self) -> Result<Option<Vec<u8>>, Error> {
        self.move_tls_output()?;
        Ok(self.segmenter.poll_segment())
    }

    /// Returns whether output waits for the peer's acknowledgements.
    pub(crate) fn has_pending(&self) -> bool {
        self.segmenter.has_pending() || self.tls.wants_write()
    }

    fn move_tls_output(&mut self) -> Result<(), Error> {
        while self.tls.wants_write() {
            let mut output = Vec::new();
            self.tls.write_tls(&mut output).map_err(|error| Error::Io {
                what: "writing TLS records".into(),
                source: error,
            })?;
            for chunk in output.chunks(MAX_MESSAGE_SIZE) {
                self.segmenter.queue(chunk.to_vec())?;
            }
        }
        Ok(())
    }

    /// Queues a TLS close_notify alert.
    pub(crate) fn close(&mut self) {
        self.tls.send_close_notify();
    }

    /// Derives the login binding from the TLS exporter (RFC 5705, RFC 8446 section 7.5).
    pub(crate) fn binding(&self) -> Result<[u8; BINDING_LEN], Error> {
        let mut binding = [0u8; BINDING_LEN];
        self.tls
            .export_keying_material(&mut binding, BINDING_LABEL, None)?;
        Ok(binding)
    }

    pub(crate) fn peer_certificates(&self) -> Vec<CertificateDer<'static>> {
        self.tls
            .peer_certificates()
            .map(|chain| chain.iter().map(|cert| cert.clone().into_owned()).collect())
            .unwrap_or_default()
    }

    pub(crate) fn negotiated(&self) -> Option<(rustls::ProtocolVersion, rustls::CipherSuite)> {
        let version = self.tls.protocol_version()?;
        let suite = self.tls.negotiated_cipher_suite()?.suite();
        Some((version, suite))
    }

    #[cfg(test)]
    pub(crate) fn into_tls(self) -> rustls::Connection {
        self.tls
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, OnceLock};

    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

    use super::*;
    use crate::Profile;

    /// Returns one RSA key shared by the paper profile's tests, because generating one takes a
    /// while.
    fn rsa_key() -> PrivatePkcs8KeyDer<'static> {
        static KEY: OnceLock<PrivatePkcs8KeyDer<'static>> = OnceLock::new();
        KEY.get_or_init(|| crate::generate_rsa_key().unwrap())
            .clone_key()
    }

    fn channels(profile: Profile) -> (Channel, Channel) {
        let (der, algorithm) = match profile {
            Profile::Default => (
                PrivatePkcs8KeyDer::from(rcgen::KeyPair::generate().unwrap().serialize_der()),
                &rcgen::PKCS_ECDSA_P256_SHA256,
            ),
            Profile::Paper => (rsa_key(), &rcgen::PKCS_RSA_SHA256),
        };
        let key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, algorithm).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["bmc.example".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let key = PrivateKeyDer::Pkcs8(der);
        let mut server_config = (*profile
            .server_config(vec![cert.der().clone()], key)
            .unwrap())
        .clone();
        server_config.enable_secret_extraction = true;
        let mut client_config = (*profile.client_config().unwrap()).clone();
        client_config.enable_secret_extraction = true;

        let name = ServerName::try_from("bmc.example").unwrap();
        let client = rustls::ClientConnection::new(Arc::new(client_config), name).unwrap();
        let server = rustls::ServerConnection::new(Arc::new(server_config)).unwrap();
        let mut client = Channel::new(client.into(), Segmenter::new(60, 4).unwrap());
        let mut server = Channel::new(server.into(), Segmenter::new(60, 4).unwrap());
        pump(&mut client, &mut server);
        assert!(!client.is_handshaking() && !server.is_handshaking());
        (client, server)
    }

    fn pump(a: &mut Channel, b: &mut Channel) -> Vec<Message> {
        let mut received = Vec::new();
        loop {
            let mut moved = false;
            while let Some(bytes) = a.poll_segment().unwrap() {
                moved = true;
                received.extend(
                    b.receive(bytes.len(), Segment::decode(&bytes).unwrap())
                        .unwrap(),
                );
            }
            while let Some(bytes) = b.poll_segment().unwrap() {
                moved = true;
                received.extend(
                    a.receive(bytes.len(), Segment::decode(&bytes).unwrap())
                        .unwrap(),
                );
            }
            if !moved {
                return received;
            }
        }
    }

    #[test]
    fn nonces_never_repeat_across_directions() {
        for profile in [Profile::Default, Profile::Paper] {
            let (client, server) = channels(profile);
            let client = client.into_tls().dangerous_extract_secrets().unwrap();
            let server = server.into_tls().dangerous_extract_secrets().unwrap();
            let iv_and_key = |secrets: &rustls::ConnectionTrafficSecrets| match secrets {
                rustls::ConnectionTrafficSecrets::Aes128Gcm { key, iv } => {
                    (key.as_ref().to_vec(), iv.as_ref().to_vec())
                }
                _ => panic!("{profile}: AEAD is not AES-128-GCM"),
            };
            let (client_tx_key, client_tx_iv) = iv_and_key(&client.tx.1);
            let (client_rx_key, client_rx_iv) = iv_and_key(&client.rx.1);
            // Each direction has its own key and IV, so equal sequence numbers never give
            // the same (key, nonce) pair.
            assert_ne!(client_tx_iv, client_rx_iv, "{profile}");
            assert_ne!(client_tx_key, client_rx_key, "{profile}");
            assert_eq!(
                (client_tx_key, client_tx_iv),
                iv_and_key(&server.rx.1),
                "{profile}"
            );
            assert_eq!(
                (client_rx_key, client_rx_iv),
                iv_and_key(&server.tx.1),
                "{profile}"
            );
        }
    }

    #[test]
    fn replayed_record_is_rejected() {
        for profile in [Profile::Default, Profile::Paper] {
            let (mut client, mut server) = channels(profile);
            client
                .send(&Message::HttpRequest(b"GET / HTTP/1.1\r\n\r\n".to_vec()))
                .unwrap();
            let mut record = Vec::new();
            client.tls.write_tls(&mut record).unwrap();

            // The first copy decrypts; the same record again fails its sequence number.
            let mut input = record.as_slice();
            server.tls.read_tls(&mut input).unwrap();
            server.tls.process_new_packets().unwrap();
            let mut input = record.as_slice();
            server.tls.read_tls(&mut input).unwrap();
            assert!(server.tls.process_new_packets().is_err(), "{profile}");
        }
    }

    #[test]
    fn messages_cross_in_both_directions() {
        let (mut client, mut server) = channels(Profile::Paper);
        client
            .send(&Message::HttpRequest(vec![b'x'; 3000]))
            .unwrap();
        let received = pump(&mut client, &mut server);
        assert!(matches!(received.as_slice(), [Message::HttpRequest(body)] if body.len() == 3000));
    }
}
