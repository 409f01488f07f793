//! Application messages inside the encrypted channel.
//!
//! Each message is a kind byte, a u32 big-endian body length and the body. Strings in bodies
//! are a u8 length and UTF-8 bytes.

use std::fmt;

use zeroize::Zeroizing;

use crate::Error;

/// The largest message body: an HTTP response with a Redfish log page or a large collection.
pub const MAX_BODY_SIZE: usize = 8 * 1024 * 1024;
/// Length of the TLS exporter value that binds a login to its channel.
pub const BINDING_LEN: usize = 32;
/// The TLS exporter label of the login binding (RFC 5705 and RFC 8446 section 7.5).
pub const BINDING_LABEL: &[u8] = b"EXPORTER-rackside-link-login";

const KIND_LOGIN: u8 = 1;
const KIND_LOGIN_RESULT: u8 = 2;
const KIND_HTTP_REQUEST: u8 = 3;
const KIND_HTTP_RESPONSE: u8 = 4;
const HEADER_LEN: usize = 5;

/// A password, wiped from memory on drop and never printed.
#[derive(Clone)]
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Self {
        Password(Zeroizing::new(password.into()))
    }

    /// Returns the password text. Callers only compare it or encode it into the channel.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// A login request, sent only inside the channel.
#[derive(Clone, Debug)]
pub struct Login {
    /// The BMC user name.
    pub user: String,
    /// The user's password.
    pub password: Password,
    /// The TLS exporter value of the client's channel, so a login relayed into another
    /// channel fails.
    pub binding: [u8; BINDING_LEN],
    /// The BMC's MAC address, given only for the legacy default password.
    pub mac: Option<[u8; 6]>,
}

/// The BMC's reply to a login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginResult {
    /// Logged in; the BMC describes itself.
    Accepted {
        /// The server's Service Tag.
        service_tag: String,
        /// The server's model.
        model: String,
    },
    /// Rejected without saying which part was wrong.
    Rejected {
        /// Attempts left before the lockout.
        remaining: u8,
    },
    /// Rejected and the link is now locked until the button is pressed.
    LockedOut,
}

/// One message in the channel.
#[derive(Clone, Debug)]
pub enum Message {
    /// Client to BMC: log in.
    Login(Login),
    /// BMC to client: the login's outcome.
    LoginResult(LoginResult),
    /// Client to BMC: one HTTP/1.1 request for the Redfish service.
    HttpRequest(Vec<u8>),
    /// BMC to client: the HTTP/1.1 response.
    HttpResponse(Vec<u8>),
}

impl Message {
    /// Encodes the message with its header. The buffer is wiped on drop because a login
    /// contains a password.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut body = Zeroizing::new(Vec::new());
        let kind = match self {
            Message::Login(login) => {
                put_string(&mut body, &login.user);
                put_string(&mut body, login.password.expose());
                body.extend_from_slice(&login.binding);
                match login.mac {
                    Some(mac) => {
                        body.push(1);
                        body.extend_from_slice(&mac);
                    }
                    None => body.push(0),
                }
                KIND_LOGIN
            }
            Message::LoginResult(result) => {
                match result {
                    LoginResult::Accepted { service_tag, model } => {
                        body.push(0);
                        put_string(&mut body, service_tag);
                        put_string(&mut body, model);
                    }
                    LoginResult::Rejected { remaining } => body.extend_from_slice(&[1, *remaining]),
                    LoginResult::LockedOut => body.push(2),
                }
                KIND_LOGIN_RESULT
            }
            Message::HttpRequest(bytes) => {
                body.extend_from_slice(bytes);
                KIND_HTTP_REQUEST
            }
            Message::HttpResponse(bytes) => {
                body.extend_from_slice(bytes);
                KIND_HTTP_RESPONSE
            }
        };

        let mut out = Zeroizing::new(Vec::with_capacity(HEADER_LEN + body.len()));
        out.push(kind);
        // Bodies are far below 4 GiB: HTTP messages are capped by MAX_BODY_SIZE at decode.
        out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Decodes the first complete message at the start of `buffer` and returns it with the
    /// number of bytes it used, or `None` while the message is incomplete.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidMessage`] for an unknown kind, a body over 8 MiB, or a body
    /// that does not match its kind.
    pub fn decode(buffer: &[u8]) -> Result<Option<(Message, usize)>, Error> {
        let Some((header, rest)) = buffer.split_first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let [kind, length @ ..] = *header;
        let length = usize::try_from(u32::from_be_bytes(length)).unwrap_or(usize::MAX);
        if length > MAX_BODY_SIZE {
            return Err(invalid(
                length,
                format!("body exceeds {MAX_BODY_SIZE} bytes"),
            ));
        }
        let Some(body) = rest.get(..length) else {
            return Ok(None);
        };

        let message = match kind {
            KIND_LOGIN => Message::Login(decode_login(body)?),
            KIND_LOGIN_RESULT => Message::LoginResult(decode_login_result(body)?),
            KIND_HTTP_REQUEST => Message::HttpRequest(body.to_vec()),
            KIND_HTTP_RESPONSE => Message::HttpResponse(body.to_vec()),
            other => return Err(invalid(length, format!("unknown message kind {other}"))),
        };
        Ok(Some((message, HEADER_LEN + length)))
    }

    /// Returns a short name of the message kind for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Login(_) => "login",
            Message::LoginResult(_) => "login result",
            Message::HttpRequest(_) => "HTTP request",
            Message::HttpResponse(_) => "HTTP response",
        }
    }
}

fn invalid(size: usize, detail: String) -> Error {
    Error::InvalidMessage { size, detail }
}

fn put_string(out: &mut Vec<u8>, value: &str) {
    // Longer strings are cut at 255 bytes; user names and tags are far shorter.
    let bytes = value.as_bytes();
    let length = bytes.len().min(usize::from(u8::MAX));
    out.push(u8::try_from(length).unwrap_or(u8::MAX));
    out.extend_from_slice(bytes.get(..length).unwrap_or_default());
}

/// A cursor over a message body whose reads fail on truncation instead of panicking.
struct Body<'a> {
    rest: &'a [u8],
    size: usize,
}

impl<'a> Body<'a> {
    fn new(body: &'a [u8]) -> Self {
        Body {
            rest: body,
            size: body.len(),
        }
    }

    fn bytes(&mut self, count: usize, what: &str) -> Result<&'a [u8], Error> {
        if self.rest.len() < count {
            return Err(invalid(self.size, format!("truncated in the {what}")));
        }
        let (taken, rest) = self.rest.split_at(count);
        self.rest = rest;
        Ok(taken)
    }

    fn byte(&mut self, what: &str) -> Result<u8, Error> {
        let bytes = self.bytes(1, what)?;
        bytes
            .first()
            .copied()
            .ok_or_else(|| invalid(self.size, format!("truncated in the {what}")))
    }

    fn string(&mut self, what: &str) -> Result<String, Error> {
        let length = self.byte(what)?;
        let bytes = self.bytes(usize::from(length), what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| invalid(self.size, format!("the {what} is not UTF-8")))
    }

    fn finish(self) -> Result<(), Error> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(invalid(
                self.size,
                format!("{} bytes left over", self.rest.len()),
            ))
        }
    }
}

fn decode_login(body: &[u8]) -> Result<Login, Error> {
    let mut body = Body::new(body);
    let user = body.string("user name")?;
    let password = Password::new(body.string("password")?);
    let mut binding = [0; BINDING_LEN];
    binding.copy_from_slice(body.bytes(BINDING_LEN, "channel binding")?);
    let mac = match body.byte("MAC flag")? {
        0 => None,
        1 => {
            let mut mac = [0; 6];
            mac.copy_from_slice(body.bytes(6, "MAC address")?);
            Some(mac)
        }
        other => {
            return Err(invalid(
                body.size,
                format!("MAC flag {other} is not 0 or 1"),
            ))
        }
    };
    body.finish()?;
    Ok(Login {
        user,
        password,
        binding,
        mac,
    })
}

fn decode_login_result(body: &[u8]) -> Result<LoginResult, Error> {
    let mut body = Body::new(body);
    let result = match body.byte("status")? {
        0 => LoginResult::Accepted {
            service_tag: body.string("Service Tag")?,
            model: body.string("model")?,
        },
        1 => LoginResult::Rejected {
            remaining: body.byte("remaining attempts")?,
        },
        2 => LoginResult::LockedOut,
        other => return Err(invalid(body.size, format!("unknown login status {other}"))),
    };
    body.finish()?;
    Ok(result)
}

/// Parses a MAC address such as `00:1a:2b:3c:4d:5e` (also with `-` separators).
///
/// # Errors
///
/// [`Error::State`] when the text is not six hexadecimal bytes.
pub fn parse_mac(text: &str) -> Result<[u8; 6], Error> {
    let invalid = || Error::State {
        detail: format!("invalid MAC address {text:?}; write it like 00:1a:2b:3c:4d:5e"),
    };
    let mut mac = [0; 6];
    let mut parts = text.split([':', '-']);
    for byte in &mut mac {
        let part = parts.next().ok_or_else(invalid)?;
        if part.len() != 2 {
            return Err(invalid());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| invalid())?;
    }
    if parts.next().is_some() {
        return Err(invalid());
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_round_trips_without_printing_password() {
        let login = Login {
            user: "root".into(),
            password: Password::new("calvin"),
            binding: [9; BINDING_LEN],
            mac: Some([1, 2, 3, 4, 5, 6]),
        };
        let bytes = Message::Login(login).encode();
        let (decoded, used) = Message::decode(&bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        let Message::Login(decoded) = decoded else {
            panic!("decoded {decoded:?}")
        };
        assert_eq!(decoded.user, "root");
        assert_eq!(decoded.password.expose(), "calvin");
        assert_eq!(decoded.mac, Some([1, 2, 3, 4, 5, 6]));
        assert!(!format!("{decoded:?}").contains("calvin"));
    }

    #[test]
    fn incomplete_message_waits_for_more() {
        let bytes = Message::HttpRequest(b"GET / HTTP/1.1\r\n\r\n".to_vec()).encode();
        for cut in 0..bytes.len() {
            assert!(Message::decode(&bytes[..cut]).unwrap().is_none());
        }
    }

    #[test]
    fn unknown_kind_is_rejected() {
        assert!(Message::decode(&[99, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn oversized_body_is_rejected() {
        assert!(Message::decode(&[3, 0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn truncated_login_is_rejected() {
        let bytes = [KIND_LOGIN, 0, 0, 0, 3, 4, b'r', b'o'];
        assert!(Message::decode(&bytes).is_err());
    }

    #[test]
    fn mac_parses_both_separators() {
        assert_eq!(
            parse_mac("00:1a:2B:3c:4d:5e").unwrap(),
            [0, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e]
        );
        assert_eq!(
            parse_mac("00-1a-2b-3c-4d-5e").unwrap(),
            [0, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e]
        );
        assert!(parse_mac("00:1a:2b:3c:4d").is_err());
        assert!(parse_mac("00:1a:2b:3c:4d:5e:6f").is_err());
    }
}
