//! `rackside nearby`: the at-the-server link from this device to a BMC's simulated radio.
//!
//! The radio is the Unix socket that `rackside bmc --link-socket PATH` serves; the device's
//! distance travels in every frame, so `--distance` decides what the BMC hears.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use rackside_link::{ClientSession, ClientSettings, LinkTransport, Password, Profile};
use rackside_redfish::{AuthMode, Client, Credentials, Indicator, RetryPolicy, Secret};
use rackside_trust::{classify, Color, Fingerprint, ServerName, TrustAnchors, UnixTime};
use tokio::io::AsyncReadExt;

use crate::failure::{ExitKind, Failure};
use crate::output::outln;

/// Time to wait for each reply from the BMC over the link.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// `rackside nearby ...`
#[derive(Debug, Args)]
pub struct NearbyArgs {
    #[command(subcommand)]
    pub command: NearbyCommand,
}

/// `rackside nearby` subcommands.
#[derive(Debug, Subcommand)]
pub enum NearbyCommand {
    /// List activated BMCs in range, with Service Tag, model and link profile
    Scan(RadioOptions),

    /// Log in over the link, show the certificate decision and the Service Tag, and optionally
    /// blink the ID LED or read health
    Connect(ConnectArgs),
}

/// The simulated radio's socket and this device's position.
#[derive(Debug, Args)]
pub struct RadioOptions {
    /// The BMC's link socket (`rackside bmc --link-socket`)
    #[arg(long, env = "RACKSIDE_LINK_SOCKET", value_name = "PATH")]
    pub socket: PathBuf,

    /// This device's distance from the server in metres (about 1 m reaches an unauthenticated
    /// BMC, about 5 m a logged-in one)
    #[arg(long, default_value_t = 0.5, value_name = "METERS")]
    pub distance: f64,

    /// Channel profile: default (TLS 1.3, X25519) or paper (TLS 1.2, FFDHE); it must match the
    /// BMC's
    #[arg(long, default_value = "default", value_name = "PROFILE")]
    pub profile: Profile,

    /// Segment size in bytes, 20 to 244 (the BLE ATT payload range)
    #[arg(long, default_value_t = 244, value_name = "BYTES")]
    pub segment_size: usize,
}

/// `rackside nearby connect`
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The Service Tag of the server you stand at; the link fails if another one replies
    pub target: String,

    #[command(flatten)]
    pub radio: RadioOptions,

    /// BMC user name
    #[arg(
        long,
        env = "RACKSIDE_LINK_USER",
        default_value = "root",
        value_name = "NAME"
    )]
    pub user: String,

    /// File whose first line is the password; without it the password comes from
    /// RACKSIDE_LINK_PASSWORD or a prompt
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// Log in with the legacy default password, which the BMC accepts only in legacy mode and
    /// only with its MAC address (printed on the server's label). It opens the link only:
    /// --blink and --health still log in to Redfish and need a BMC account
    #[arg(long, value_name = "MAC")]
    pub legacy_mac: Option<String>,

    /// SHA-256 of the BMC certificate, as shown on the server's screen, to accept a
    /// self-signed (yellow) certificate
    #[arg(long, value_name = "SHA256")]
    pub pin: Option<Fingerprint>,

    /// Blink the ID LED after login so you can see which server replied
    #[arg(long)]
    pub blink: bool,

    /// Read and print health over the link after login
    #[arg(long)]
    pub health: bool,
}

/// Runs a `rackside nearby` subcommand.
pub async fn run(args: NearbyArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        NearbyCommand::Scan(radio) => scan(radio).await,
        NearbyCommand::Connect(connect_args) => connect(connect_args).await,
    }
}

fn settings(radio: &RadioOptions) -> anyhow::Result<ClientSettings> {
    let centimetres = radio.distance * 100.0;
    if !centimetres.is_finite() || !(0.0..=f64::from(u16::MAX)).contains(&centimetres) {
        bail!(
            "invalid --distance {}: give metres from 0 to 655",
            radio.distance
        );
    }
    Ok(ClientSettings {
        profile: radio.profile,
        segment_size: radio.segment_size,
        window: 4,
        device: std::process::id(),
        // The range check above keeps the value inside u16.
        distance_cm: centimetres.round() as u16,
    })
}

async fn scan(radio: RadioOptions) -> anyhow::Result<ExitCode> {
    let settings = settings(&radio)?;
    let mut pipe = rackside_link::socket::connect(&radio.socket).await?;
    let found = rackside_link::scan(&mut pipe, &settings, Duration::from_millis(500)).await?;
    if found.is_empty() {
        outln!(
            "no activated BMC in range at {} m; press the activation button and stand within about 1 m",
            radio.distance
        );
        return Ok(ExitCode::from(1));
    }
    for advertisement in found {
        let busy = if advertisement.busy { " (busy)" } else { "" };
        outln!(
            "{}  {}  profile {}{busy}",
            advertisement.service_tag,
            advertisement.model,
            advertisement.profile
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn connect(args: ConnectArgs) -> anyhow::Result<ExitCode> {
    // 1. Open the link and finish the handshake; no credential has left this device yet.
    let settings = settings(&args.radio)?;
    let pipe = rackside_link::socket::connect(&args.radio.socket).await?;
    let mut session = ClientSession::connect(pipe, settings, ANSWER_TIMEOUT).await?;

    // 2. Judge the certificate before the login.
    let chain = session.peer_certificates();
    let leaf = chain.first().context("the BMC presented no certificate")?;
    let fingerprint = Fingerprint::of(leaf.as_ref());
    // NOTE: the link has no host name, so the Service Tag is used as the name: a CA-issued BMC
    // certificate for a DNS name classifies red here as "issued for another name".
    let name = ServerName::try_from(args.target.to_ascii_lowercase())
        .or_else(|_| ServerName::try_from("bmc.link.invalid".to_owned()))
        .context("cannot form a server name for the certificate check")?;
    let verdict = classify(&chain, &name, &TrustAnchors::system(), UnixTime::now());
    outln!("certificate {}: {}", verdict.color, verdict.why);
    outln!("certificate SHA-256 {fingerprint}");
    let accepted = match verdict.color {
        Color::Red => false,
        Color::Green => true,
        _ => args.pin.as_ref() == Some(&fingerprint),
    };
    if !accepted {
        session.close().await;
        if verdict.color == Color::Red {
            return Err(Failure::new(
                ExitKind::CertificateBlocked,
                format!(
                    "certificate rejected ({}); do not log in to this BMC",
                    verdict.why
                ),
            )
            .into());
        }
        return Err(Failure::new(
            ExitKind::NotTrusted,
            format!(
                "certificate not accepted: compare its SHA-256 with the server's screen, then \
                 pass --pin {fingerprint}"
            ),
        )
        .into());
    }
    session.accept_certificate()?;
    outln!("certificate accepted");

    // 3. Log in inside the channel.
    let mac = args
        .legacy_mac
        .as_deref()
        .map(rackside_link::parse_mac)
        .transpose()?;
    let password = read_password(&args)?;
    let info = session.login(&args.user, &password, mac).await?;
    outln!(
        "Service Tag {}  model {}  {} {}",
        info.service_tag,
        info.model,
        info.version,
        info.suite
    );
    if !info.service_tag.eq_ignore_ascii_case(&args.target) {
        session.close().await;
        bail!(
            "reached Service Tag {}, not {}; move closer to the right server",
            info.service_tag,
            args.target
        );
    }

    // 4. The same Redfish client as over HTTPS, on the link transport.
    if args.blink || args.health {
        let mut client = Client::new(LinkTransport::new(session), RetryPolicy::default());
        client.connect().await?;
        let credentials = Credentials {
            username: args.user.clone(),
            password: Secret::new(password.expose()),
        };
        client.login(&credentials, AuthMode::Session).await?;
        if args.blink {
            let systems = client.members("/redfish/v1/Systems").await?;
            let system = systems
                .first()
                .context("the BMC lists no computer system")?;
            client.set_indicator(&system.path, Indicator::Blink).await?;
            outln!("ID LED blinking on {}", system.path);
        }
        if args.health {
            let report = rackside_redfish::health(&client).await?;
            for system in report.systems {
                outln!(
                    "{}  health {}  rollup {}  power {}  {} problem(s)",
                    system.path,
                    system.health.as_deref().unwrap_or("unknown"),
                    system.health_rollup.as_deref().unwrap_or("unknown"),
                    system.power_state.as_deref().unwrap_or("unknown"),
                    system.problems.len()
                );
            }
        }
        let _ = client.logout().await;
    } else {
        session.close().await;
    }
    Ok(ExitCode::SUCCESS)
}

fn read_password(args: &ConnectArgs) -> anyhow::Result<Password> {
    if let Some(path) = &args.password_file {
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot open --password-file {}", path.display()))?;
        let mut line = String::new();
        std::io::BufReader::new(file)
            .read_line(&mut line)
            .with_context(|| format!("cannot read --password-file {}", path.display()))?;
        return Ok(Password::new(line.trim_end_matches(['\r', '\n'])));
    }
    if let Ok(password) = std::env::var("RACKSIDE_LINK_PASSWORD") {
        return Ok(Password::new(password));
    }
    if !std::io::stdin().is_terminal() {
        bail!("no password: pass --password-file or set RACKSIDE_LINK_PASSWORD");
    }
    let password = rpassword::prompt_password(format!("password for {}: ", args.user))
        .context("cannot read the password from the terminal")?;
    Ok(Password::new(password))
}

/// Presses the simulated BMC's activation button through the control socket beside its link
/// socket (`rackside bmc button`) and prints the BMC's reply.
///
/// # Errors
/// A control socket that cannot be reached or read.
pub async fn press_button(socket: PathBuf) -> anyhow::Result<ExitCode> {
    let path = rackside_bmc::link::button_socket_path(&socket);
    let mut stream = tokio::net::UnixStream::connect(&path)
        .await
        .with_context(|| {
            format!(
                "cannot reach the button socket {} (is `rackside bmc --link-socket` running?)",
                path.display()
            )
        })?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .await
        .with_context(|| format!("reading the reply from {}", path.display()))?;
    outln!("{}", reply.trim());
    Ok(if reply.starts_with("activated") {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The link settings of `rackside bmc`, before the state folder is known.
#[derive(Debug)]
pub struct BmcLinkSettings {
    socket: PathBuf,
    profile: Profile,
    mac: [u8; 6],
    legacy_default: bool,
}

/// Reads the `--link-*` options of `rackside bmc`; `None` without `--link-socket`.
pub fn bmc_link_settings(args: &crate::cli::BmcArgs) -> anyhow::Result<Option<BmcLinkSettings>> {
    let Some(socket) = args.link_socket.clone() else {
        return Ok(None);
    };
    let mac = rackside_link::parse_mac(&args.link_mac)
        .map_err(|error| Failure::usage(format!("--link-mac: {error}")))?;
    Ok(Some(BmcLinkSettings {
        socket,
        profile: args.link_profile,
        mac,
        legacy_default: args.link_legacy_default,
    }))
}

impl BmcLinkSettings {
    /// Switches a generated certificate to the RSA-2048 one of the paper profile, so HTTPS
    /// and the link present the same RSA certificate. A certificate given with --cert stays.
    ///
    /// # Errors
    /// The RSA certificate cannot be generated or stored in the state folder.
    pub fn prepare_certificate(&self, config: &mut rackside_bmc::BmcConfig) -> anyhow::Result<()> {
        if self.profile != Profile::Paper
            || !matches!(config.tls, rackside_bmc::TlsSource::Generated)
        {
            return Ok(());
        }
        let (cert, key) = rackside_bmc::link::paper_certificate(&config.state_dir)?;
        config.tls = rackside_bmc::TlsSource::Files { cert, key };
        Ok(())
    }

    /// Completes the settings with the certificate and state folder of the BMC's configuration.
    pub fn into_options(self, config: &rackside_bmc::BmcConfig) -> rackside_bmc::link::LinkOptions {
        let (cert, key) = match &config.tls {
            rackside_bmc::TlsSource::Files { cert, key } => (cert.clone(), key.clone()),
            _ => (
                config.state_dir.join(rackside_bmc::CERT_FILE),
                config.state_dir.join(rackside_bmc::KEY_FILE),
            ),
        };
        let legacy_default = self.legacy_default.then(|| rackside_link::LegacyDefault {
            user: "root".into(),
            password: Password::new("calvin"),
        });
        rackside_bmc::link::LinkOptions {
            socket: self.socket,
            cert,
            key,
            state_dir: config.state_dir.clone(),
            profile: self.profile,
            mac: self.mac,
            // NOTE: a fixed model text; the simulator does not expose the served system's Model.
            model: "rackside simulated server".into(),
            legacy_default,
        }
    }
}
