//! Reaching a BMC: the certificate decision, then the HTTPS client and the Redfish session.
//!
//! The certificate is fetched by a handshake that is aborted before any application data, then
//! classified and checked against the pin. Only once the user (or a flag) accepts it is a second
//! connection made, with a verifier that admits that pinned key and nothing else.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use rackside_link::ClientSession;
use rackside_redfish::{
    AuthMode, Client, Credentials, Error as RedfishError, HttpsTransport, Limits, RetryPolicy,
    Secret,
};
use rackside_trust::{
    classify, client_config, compare_pin, fetch_chain, Classification, Color, Fingerprint, Pin,
    PinMatch, ServerPolicy, TrustAnchors, TrustEvent, VerifierLog,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use url::Url;
use zeroize::Zeroize;

use crate::cli::ClientOptions;
use crate::failure::{describe, ExitKind, Failure};
use crate::store::{PasswordSource, ServerEntry, Store};
use crate::via::{login_link, BmcTransport, ViaOptions};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What every client command shares: the store, the trust anchors, and how to ask the user.
pub struct Context {
    /// The server list and pins.
    pub store: Store,
    anchors: Arc<TrustAnchors>,
    accept_fingerprint: Option<Fingerprint>,
    password_stdin: bool,
    interactive: bool,
    stdin_password: Mutex<Option<Secret>>,
    via: ViaOptions,
}

impl Context {
    /// Opens the store (the vault; prompting for its password only in a terminal) and loads
    /// system CAs, installed CAs and `--trust-ca` files.
    pub fn new(options: &ClientOptions) -> anyhow::Result<Self> {
        let store = Store::open_with(
            options.service.config_dir.as_deref(),
            PasswordSource {
                interactive: is_interactive(options),
            },
        )?;
        Self::with_store(store, options)
    }

    /// Builds a context over a store the caller opened (the demo's throwaway one), with the trust
    /// anchors and prompting rules of `options`.
    ///
    /// # Errors
    /// An installed or `--trust-ca` CA file that fails to load, or an invalid
    /// `--accept-fingerprint`.
    pub fn with_store(store: Store, options: &ClientOptions) -> anyhow::Result<Self> {
        let interactive = is_interactive(options);
        let mut anchors = TrustAnchors::system();
        for file in store.ca_files()?.iter().chain(&options.service.trust_ca) {
            anchors.add_user_ca_file(file).map_err(|error| {
                Failure::usage(format!(
                    "failed to load CA file {}: {error}",
                    file.display()
                ))
            })?;
        }
        let accept_fingerprint = match &options.service.accept_fingerprint {
            Some(text) => Some(text.parse::<Fingerprint>().map_err(|_| {
                Failure::usage(format!(
                    "invalid --accept-fingerprint {text:?}; give the 64 hex digits of a SHA-256 \
                     fingerprint, with or without colons"
                ))
            })?),
            None => None,
        };
        Ok(Self {
            store,
            anchors: Arc::new(anchors),
            accept_fingerprint,
            password_stdin: options.service.password_stdin,
            interactive,
            stdin_password: Mutex::new(None),
            via: options.via.clone(),
        })
    }

    /// Fetches `entry`'s certificate and settles whether to trust it.
    ///
    /// With `redecide` the existing pin is ignored and the user decides again. Returns the pin
    /// to connect with; the caller saves it when it differs from the stored one.
    pub async fn decide_trust(
        &self,
        name: &str,
        entry: &ServerEntry,
        redecide: bool,
    ) -> anyhow::Result<Pin> {
        self.decide_peer_trust(Peer::Bmc, name, entry, redecide)
            .await
    }

    /// Like [`Context::decide_trust`], for a `peer` that may be a console or a relay: the
    /// prompt names where its fingerprint can be checked.
    pub async fn decide_peer_trust(
        &self,
        peer: Peer,
        name: &str,
        entry: &ServerEntry,
        redecide: bool,
    ) -> anyhow::Result<Pin> {
        let (host, port, server_name) = endpoint(&entry.url)?;
        let chain = fetch_chain(&host, port, server_name, HANDSHAKE_TIMEOUT)
            .await
            .map_err(|error| {
                Failure::new(
                    ExitKind::Unreachable,
                    format!("failed to reach {name} at {}: {error}", entry.url),
                )
            })?;
        self.judge_chain(peer, name, entry, &chain, redecide)
    }

    /// Settles whether to trust the chain `entry`'s BMC presented, over HTTPS or the link.
    fn judge_chain(
        &self,
        peer: Peer,
        name: &str,
        entry: &ServerEntry,
        chain: &[CertificateDer<'static>],
        redecide: bool,
    ) -> anyhow::Result<Pin> {
        let (_, _, server_name) = endpoint(&entry.url)?;
        let verdict = classify(chain, &server_name, &self.anchors, UnixTime::now());
        let now = chrono::Utc::now();

        if let (Some(pin), true) = (&entry.pin, redecide) {
            let unchanged = compare_pin(pin, &verdict.leaf) == PinMatch::Exact;
            if unchanged && !self.interactive && self.accept_fingerprint.is_none() {
                print_certificate(&mut std::io::stderr(), name, &entry.url, &verdict)?;
                eprintln!("{name}: the certificate is unchanged since it was pinned; pin kept");
                return Ok(pin.clone());
            }
        }
        if let (Some(pin), false) = (&entry.pin, redecide) {
            match compare_pin(pin, &verdict.leaf) {
                PinMatch::Exact => return Ok(pin.clone()),
                PinMatch::SameKeyNewCertificate if verdict.color != Color::Red => {
                    eprintln!(
                        "notice: {name} presents a new certificate with the same key as the \
                         pinned one (new certificate SHA-256 {}); the pin is updated",
                        verdict.leaf.certificate_sha256
                    );
                    return Ok(Pin::from_summary(&verdict.leaf, now));
                }
                PinMatch::SameKeyNewCertificate => return Err(red_failure(name, &verdict).into()),
                PinMatch::KeyChanged => {
                    return Err(key_changed(name, &pin.public_key_sha256, &verdict).into())
                }
            }
        }

        print_certificate(&mut std::io::stderr(), name, &entry.url, &verdict)?;
        match verdict.color {
            Color::Red => Err(red_failure(name, &verdict).into()),
            Color::Green => {
                eprintln!("{name}: green, the certificate chains to a trusted CA and matches");
                Ok(Pin::from_summary(&verdict.leaf, now))
            }
            Color::Yellow => {
                self.accept_yellow(peer, name, &verdict)?;
                Ok(Pin::from_summary(&verdict.leaf, now))
            }
        }
    }

    /// Decides trust for `name`, saving a new or updated pin, then logs in.
    pub async fn open(&mut self, name: &str) -> anyhow::Result<Connection> {
        let prepared = self.prepare(name).await?;
        self.connect(&prepared).await
    }

    /// Settles the certificate (saving a new or updated pin) and the password of `name`: the
    /// steps that may prompt, so fleet runs do them one server at a time.
    pub async fn prepare(&mut self, name: &str) -> anyhow::Result<Prepared> {
        let entry = self.store.server(name)?.clone();
        let link = self.via.open_link(name).await?;
        let pin = match &link {
            Some(session) => {
                self.judge_chain(Peer::Bmc, name, &entry, &session.peer_certificates(), false)?
            }
            None => self.decide_trust(name, &entry, false).await?,
        };
        if entry.pin.as_ref() != Some(&pin) {
            self.store.set_pin(name, Some(pin.clone()));
            self.store.save()?;
        }
        let (credentials, origin) = self.find_credentials(name, &entry.user)?;
        Ok(Prepared {
            name: name.to_owned(),
            entry,
            pin,
            credentials,
            origin,
            link: std::sync::Mutex::new(link),
        })
    }

    /// Logs in to a prepared server. A typed password that worked is stored in the vault. When
    /// the BMC rejects a stored password, the error says so and how to replace it.
    pub async fn connect(&self, prepared: &Prepared) -> anyhow::Result<Connection> {
        let name = &prepared.name;
        let link = prepared.link.lock().ok().and_then(|mut link| link.take());
        let result = match link {
            Some(session) => login_link(name, session, &prepared.credentials).await,
            None => {
                self.login(
                    name,
                    &prepared.entry,
                    prepared.pin.clone(),
                    &prepared.credentials,
                )
                .await
            }
        };
        match (&result, prepared.origin) {
            (Ok(_), PasswordOrigin::Typed) => {
                match self
                    .store
                    .put_credential(name, &prepared.credentials.password)
                {
                    Ok(()) => eprintln!(
                        "{name}: password stored in the vault; later commands use it without \
                         asking"
                    ),
                    Err(error) => eprintln!(
                        "warning: {name}: failed to store the password in the vault: {}",
                        describe(&error).1
                    ),
                }
            }
            (Err(error), PasswordOrigin::Stored) => {
                let (kind, message) = describe(error);
                if kind == ExitKind::AuthRejected {
                    return Err(Failure::new(
                        kind,
                        format!(
                            "{message}; the password stored in the vault for {name} was used: \
                             replace it with `rackside server passwd {name}`"
                        ),
                    )
                    .into());
                }
            }
            _ => {}
        }
        result
    }

    /// Builds a TLS configuration for another HTTPS service at `url` (a console) that accepts
    /// only the pinned key, under the same rules as BMC connections.
    pub fn pinned_tls(&self, url: &Url, pin: Pin) -> anyhow::Result<rustls::ClientConfig> {
        let (_, _, server_name) = endpoint(url)?;
        let policy = ServerPolicy {
            server_name,
            anchors: self.anchors.clone(),
            pin: Some(pin),
        };
        let (tls, _) = client_config(policy);
        Ok((*tls).clone())
    }

    /// Connects with an already decided pin and logs in.
    pub async fn login(
        &self,
        name: &str,
        entry: &ServerEntry,
        pin: Pin,
        credentials: &Credentials,
    ) -> anyhow::Result<Connection> {
        let (_, _, server_name) = endpoint(&entry.url)?;
        let policy = ServerPolicy {
            server_name,
            anchors: self.anchors.clone(),
            pin: Some(pin),
        };
        let (tls, log) = client_config(policy);
        let transport = HttpsTransport::new(&entry.url, tls, Limits::default())?;
        let mut client = Client::new(BmcTransport::Https(transport), RetryPolicy::default());

        if let Err(error) = client.connect().await {
            return Err(explain_tls(name, error, &log));
        }
        client
            .login(credentials, AuthMode::Session)
            .await
            .map_err(|error| explain_tls(name, error, &log))
            .with_context(|| format!("login to {name} as {} failed", credentials.username))?;
        Ok(Connection {
            name: name.to_owned(),
            client,
        })
    }

    /// Reads the password from `--password-stdin` or RACKSIDE_PASSWORD, if either is given.
    pub(crate) fn given_password(&self) -> anyhow::Result<Option<Secret>> {
        if self.password_stdin {
            return self.stdin_password().map(Some);
        }
        Ok(std::env::var("RACKSIDE_PASSWORD").ok().map(Secret::new))
    }

    /// Reads a BMC password to store in the vault: the first line of standard input with
    /// `--password-stdin`, else a prompt in a terminal. Returns `None` when neither is
    /// available and `required` is false.
    pub fn password_to_store(
        &self,
        name: &str,
        user: &str,
        required: bool,
    ) -> anyhow::Result<Option<Secret>> {
        if self.password_stdin {
            return self.stdin_password().map(Some);
        }
        if !required {
            return Ok(None);
        }
        if !self.interactive {
            return Err(Failure::usage(format!(
                "no password for {user} on {name}: pass it with --password-stdin, or run in a \
                 terminal to be prompted"
            ))
            .into());
        }
        let typed = rpassword::prompt_password(format!("Password for {user} on {name}: "))?;
        Ok(Some(Secret::new(typed)))
    }

    /// Reads the first line of standard input once; later calls return the same password.
    fn stdin_password(&self) -> anyhow::Result<Secret> {
        let mut cached = self.stdin_password.lock().map_err(|_| {
            Failure::new(ExitKind::Failure, "internal error: password cache poisoned")
        })?;
        if cached.is_none() {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            let trimmed = line.trim_end_matches(['\r', '\n']).to_owned();
            line.zeroize();
            if trimmed.is_empty() {
                return Err(Failure::usage(
                    "--password-stdin given but standard input had no password line",
                )
                .into());
            }
            *cached = Some(Secret::new(trimmed));
        }
        Ok(cached.clone().unwrap_or_else(|| Secret::new(String::new())))
    }

    /// Finds the password for `user` on `name`: standard input, RACKSIDE_PASSWORD, the vault,
    /// or a prompt, in that order. Returns it with where it came from.
    fn find_credentials(
        &self,
        name: &str,
        user: &str,
    ) -> anyhow::Result<(Credentials, PasswordOrigin)> {
        let (password, origin) = if let Some(password) = self.given_password()? {
            (password, PasswordOrigin::Given)
        } else if let Some(password) = self.store.credential(name)? {
            (password, PasswordOrigin::Stored)
        } else if self.interactive {
            let typed = rpassword::prompt_password(format!("Password for {user} on {name}: "))?;
            (Secret::new(typed), PasswordOrigin::Typed)
        } else {
            return Err(Failure::usage(format!(
                "no password for {user} on {name}: set RACKSIDE_PASSWORD, pass \
                 --password-stdin, store one with `rackside server passwd {name}`, or run in a \
                 terminal to be prompted"
            ))
            .into());
        };
        Ok((
            Credentials {
                username: user.to_owned(),
                password,
            },
            origin,
        ))
    }

    /// Asks the user (or checks `--accept-fingerprint`) whether to trust a yellow certificate.
    fn accept_yellow(
        &self,
        peer: Peer,
        name: &str,
        verdict: &Classification,
    ) -> anyhow::Result<()> {
        let leaf = &verdict.leaf;
        if let Some(expected) = &self.accept_fingerprint {
            if *expected == leaf.certificate_sha256 || *expected == leaf.public_key_sha256 {
                eprintln!("{name}: accepted by --accept-fingerprint");
                return Ok(());
            }
            return Err(Failure::new(
                ExitKind::NotTrusted,
                format!(
                    "{name} presents certificate SHA-256 {} (key SHA-256 {}), which does not \
                     match --accept-fingerprint {expected}; nothing was sent to {}",
                    leaf.certificate_sha256,
                    leaf.public_key_sha256,
                    peer.noun()
                ),
            )
            .into());
        }
        if !self.interactive {
            return Err(Failure::new(
                ExitKind::NotTrusted,
                format!(
                    "{name} presents a certificate that is not trusted yet (SHA-256 {}); compare \
                     it with {}, then rerun with --accept-fingerprint {} or install its CA with \
                     `rackside ca add`",
                    leaf.certificate_sha256,
                    peer.fingerprint_source(),
                    leaf.certificate_sha256
                ),
            )
            .into());
        }
        eprintln!(
            "Compare the SHA-256 above with {}.",
            peer.fingerprint_source()
        );
        eprint!("Trust this certificate for {name}? Type yes to accept: ");
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if answer.trim().eq_ignore_ascii_case("yes") {
            Ok(())
        } else {
            Err(Failure::new(
                ExitKind::NotTrusted,
                format!(
                    "certificate of {name} rejected; nothing was sent to {}",
                    peer.noun()
                ),
            )
            .into())
        }
    }
}

/// A server whose certificate is accepted and whose password is known.
pub struct Prepared {
    /// Server name from the list.
    pub name: String,
    entry: ServerEntry,
    pin: Pin,
    credentials: Credentials,
    origin: PasswordOrigin,
    /// Over `--via link`: the link whose certificate was judged, until the login takes it.
    link: std::sync::Mutex<Option<ClientSession>>,
}

/// The kind of server that presents a certificate for a trust decision. The prompt names
/// where to check the fingerprint of each kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A BMC, reached directly or over the link.
    Bmc,
    /// An alert console (`rackside console serve`).
    Console,
    /// A console's push relay (`rackside relay serve`).
    Relay,
}

impl Peer {
    /// Returns the peer as the object of "nothing was sent to".
    fn noun(self) -> &'static str {
        match self {
            Self::Bmc => "the BMC",
            Self::Console => "the console",
            Self::Relay => "the relay",
        }
    }

    /// Returns where the peer's owner finds the fingerprint to compare.
    fn fingerprint_source(self) -> &'static str {
        match self {
            Self::Bmc => "the one the BMC's own display or management page shows",
            Self::Console => {
                "the SHA-256 of tls-cert.pem in the console's state folder (`openssl x509 -in \
                 tls-cert.pem -noout -fingerprint -sha256` on the console's host)"
            }
            Self::Relay => {
                "the SHA-256 of tls-cert.pem in the relay's state folder (`openssl x509 -in \
                 tls-cert.pem -noout -fingerprint -sha256` on the relay's host)"
            }
        }
    }
}

/// Where a BMC password came from, which decides whether it is stored after a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PasswordOrigin {
    /// `--password-stdin` or RACKSIDE_PASSWORD: used as given, never stored.
    Given,
    /// The vault.
    Stored,
    /// Typed at the prompt: stored once a login with it succeeds.
    Typed,
}

/// A logged-in Redfish session with one BMC.
pub struct Connection {
    /// Server name from the list.
    pub name: String,
    /// The Redfish client holding the session.
    pub client: Client<BmcTransport>,
}

impl Connection {
    /// Deletes the session; a failure is reported as a warning because the work is done.
    pub async fn close(mut self) {
        if let Err(error) = self.client.logout().await {
            eprintln!(
                "warning: failed to delete the session on {}: {error}; it expires on the BMC \
                 after its idle timeout",
                self.name
            );
        }
    }
}

/// Checks whether prompts may be shown: not under `--non-interactive`, and only in a terminal.
fn is_interactive(options: &ClientOptions) -> bool {
    !options.service.non_interactive
        && std::io::stdin().is_terminal()
        && std::io::stderr().is_terminal()
}

/// Host, port and TLS server name of a BMC URL.
pub fn endpoint(url: &Url) -> Result<(String, u16, ServerName<'static>), Failure> {
    let host = url
        .host_str()
        .ok_or_else(|| Failure::usage(format!("invalid BMC URL {url}: no host name")))?;
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let server_name = ServerName::try_from(bare.clone())
        .map_err(|_| Failure::usage(format!("invalid host name {host:?} in {url}")))?;
    let port = url.port_or_known_default().unwrap_or(443);
    Ok((bare, port, server_name))
}

/// Writes what the user needs to decide about a certificate.
pub fn print_certificate(
    out: &mut dyn Write,
    name: &str,
    url: &Url,
    verdict: &Classification,
) -> std::io::Result<()> {
    let leaf = &verdict.leaf;
    let date = |value: Option<chrono::DateTime<chrono::Utc>>| {
        value.map_or_else(|| "unknown".to_owned(), |time| time.to_rfc3339())
    };
    writeln!(
        out,
        "Certificate of {name} ({url}): {} ({})",
        verdict.color, verdict.why
    )?;
    writeln!(out, "  subject:        {}", leaf.subject)?;
    writeln!(out, "  issuer:         {}", leaf.issuer)?;
    writeln!(out, "  valid from:     {}", date(leaf.not_before))?;
    writeln!(out, "  valid until:    {}", date(leaf.not_after))?;
    writeln!(out, "  key:            {}", leaf.key_description)?;
    writeln!(out, "  SHA-256 cert:   {}", leaf.certificate_sha256)?;
    writeln!(out, "  SHA-256 key:    {}", leaf.public_key_sha256)
}

fn red_failure(name: &str, verdict: &Classification) -> Failure {
    Failure::new(
        ExitKind::CertificateBlocked,
        format!(
            "certificate of {name} cannot be accepted: {}; nothing was sent to the BMC. Replace \
             the BMC's certificate or correct the address",
            verdict.why
        ),
    )
}

fn key_changed(name: &str, pinned: &Fingerprint, verdict: &Classification) -> Failure {
    Failure::new(
        ExitKind::CertificateBlocked,
        format!(
            "ALARM: the key of {name}'s certificate changed (pinned key SHA-256 {pinned}, now {}); \
             nothing was sent. Someone may be impersonating the BMC. If it was re-keyed on \
             purpose, check the new fingerprint at the BMC and run `rackside server trust {name}`",
            verdict.leaf.public_key_sha256
        ),
    )
}

/// Turns a failed handshake caused by our verifier into the trust failure it really is.
fn explain_tls(name: &str, error: RedfishError, log: &VerifierLog) -> anyhow::Error {
    for event in log.events() {
        match event {
            TrustEvent::KeyChanged { pinned, presented } => {
                return Failure::new(
                    ExitKind::CertificateBlocked,
                    format!(
                        "ALARM: the key of {name}'s certificate changed during the connection \
                         (pinned key SHA-256 {pinned}, now {presented}); nothing was sent. Run \
                         `rackside server trust {name}` only after checking the BMC"
                    ),
                )
                .into()
            }
            TrustEvent::Red(verdict) => return red_failure(name, &verdict).into(),
            TrustEvent::NotTrusted(verdict) => {
                return Failure::new(
                    ExitKind::NotTrusted,
                    format!(
                        "{name} changed its certificate during the connection to one that is not \
                         trusted (SHA-256 {}); run `rackside server trust {name}`",
                        verdict.leaf.certificate_sha256
                    ),
                )
                .into()
            }
            _ => {}
        }
    }
    error.into()
}
