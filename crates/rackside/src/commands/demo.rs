//! `rackside demo`: the whole story against an embedded BMC on a free loopback port.
//!
//! Nothing outside a temporary folder is touched: the demo keeps its server list in a vault of
//! its own, with the device secret in a file beside it (never the OS key store or the user's
//! vault and agent). The BMC's account gets a random password kept only in this process.

use std::process::ExitCode;
use std::time::Duration;

use rackside_bmc::BmcConfig;
use rackside_redfish::{health, inventory, logs, Credentials, LogQuery, Secret};
use rackside_trust::{classify, fetch_chain, Color, Pin, TrustAnchors};
use rand::distributions::{Alphanumeric, DistString};
use rustls::pki_types::UnixTime;
use sha2::{Digest, Sha256};

use crate::cli::{ClientOptions, ServiceClientOptions};
use crate::commands::bmc::colon_hex;
use crate::commands::{health as health_command, inventory as inventory_command};
use crate::connect::{endpoint, print_certificate, Context};
use crate::failure::{ExitKind, Failure};
use crate::output::{outln, Table};
use crate::store::{parse_url, ServerEntry, Store};
use crate::via::ViaOptions;

const SERVER: &str = "demo-r1u";
const USER: &str = "admin";
const NEWEST_ENTRIES: usize = 10;

/// Runs the demo and exits 0 when every step worked.
pub async fn run() -> anyhow::Result<ExitCode> {
    let folder = tempfile::tempdir()?;
    let password = Alphanumeric.sample_string(&mut rand::thread_rng(), 24);

    step(
        1,
        "Start a BMC simulator with the embedded sample server on a free loopback port",
    );
    let mut config = BmcConfig::new(folder.path().join("bmc"));
    config.listen = "127.0.0.1:0".parse()?;
    config.first_user = Some((USER.to_owned(), password.clone().into()));
    config.max_sessions_per_user = 4;
    config.session_idle_timeout = Duration::from_secs(600);
    let bmc = rackside_bmc::start(config).await?;
    let bmc_fingerprint = colon_hex(&Sha256::digest(bmc.certificate_der().as_ref()));
    let url = parse_url(&format!("https://{}", bmc.local_addr()))?;
    outln!("   BMC listening on {url}");
    outln!("   The BMC's own display shows certificate SHA-256 {bmc_fingerprint}");

    let outcome = walk(folder.path(), &url, &password, &bmc_fingerprint).await;
    bmc.shutdown().await;
    outcome?;
    outln!();
    outln!("Demo finished. Add a real BMC with `rackside server add NAME https://ADDRESS`.");
    Ok(ExitCode::SUCCESS)
}

async fn walk(
    folder: &std::path::Path,
    url: &url::Url,
    password: &str,
    bmc_fingerprint: &str,
) -> anyhow::Result<()> {
    let options = ClientOptions {
        service: ServiceClientOptions {
            config_dir: Some(folder.join("client")),
            trust_ca: Vec::new(),
            accept_fingerprint: None,
            password_stdin: false,
            non_interactive: true,
        },
        via: ViaOptions::default(),
    };
    // The demo's own vault and device secret, both inside its temporary folder.
    let store = Store::open_throwaway(&folder.join("client"))?;
    let mut context = Context::with_store(store, &options)?;

    step(
        2,
        "Fetch the BMC's certificate; no request is sent before it is accepted",
    );
    let (host, port, server_name) = endpoint(url)?;
    let chain = fetch_chain(&host, port, server_name.clone(), Duration::from_secs(10)).await?;
    let verdict = classify(
        &chain,
        &server_name,
        &TrustAnchors::system(),
        UnixTime::now(),
    );
    print_certificate(&mut std::io::stdout(), SERVER, url, &verdict)?;
    if verdict.color != Color::Yellow {
        return Err(Failure::new(
            ExitKind::Failure,
            format!(
                "expected a yellow self-signed certificate, got {}",
                verdict.color
            ),
        )
        .into());
    }

    step(
        3,
        "Accept it: the fingerprint matches the one on the BMC's display",
    );
    let presented = verdict.leaf.certificate_sha256.to_string();
    if presented != bmc_fingerprint {
        return Err(Failure::new(
            ExitKind::CertificateBlocked,
            format!("fingerprint mismatch: BMC shows {bmc_fingerprint}, connection presented {presented}"),
        )
        .into());
    }
    outln!("   {presented} matches; in a terminal you would type yes here");
    let pin = Pin::from_summary(&verdict.leaf, chrono::Utc::now());
    let entry = ServerEntry {
        url: url.clone(),
        user: USER.to_owned(),
        pin: Some(pin.clone()),
        groups: Vec::new(),
    };
    context.store.insert(SERVER, entry.clone());
    context.store.save()?;
    outln!("   pinned certificate and public key; saved as server {SERVER:?}");

    let credentials = Credentials {
        username: USER.to_owned(),
        password: Secret::new(password.to_owned()),
    };
    let connection = context.login(SERVER, &entry, pin, &credentials).await?;
    outln!("   logged in with a Redfish session (X-Auth-Token)");

    step(4, "Health: rolled-up status and every failing component");
    let report = health(&connection.client).await?;
    health_command::print_reports(&[(SERVER.to_owned(), report)]);

    step(5, "Inventory");
    let inventory = inventory(&connection.client).await?;
    inventory_command::print_inventory(&inventory);

    step(
        6,
        "The newest lifecycle log and SEL entries (your login is the newest)",
    );
    let query = LogQuery {
        limit: NEWEST_ENTRIES,
        min_severity: None,
        since: None,
    };
    let records = logs(&connection.client, &query).await?;
    let mut table = Table::new(["CREATED", "SEVERITY", "LOG", "MESSAGE"]);
    for record in &records {
        let created = record
            .created
            .map_or_else(|| "unknown".to_owned(), |t| t.to_rfc3339());
        table.row([
            created,
            record.severity.to_string(),
            record.log.clone(),
            record.message.clone(),
        ]);
    }
    table.print();

    step(7, "Log out: the session is deleted on the BMC");
    connection.close().await;
    outln!("   session deleted");
    Ok(())
}

fn step(number: u32, title: &str) {
    outln!();
    outln!("{number}. {title}");
}
