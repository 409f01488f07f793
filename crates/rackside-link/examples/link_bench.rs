//! Measures the link per profile and segment size: handshake bytes, frames and flights, the
//! time each side spends in the core, and an estimate of the time to the first health reading
//! over BLE.
//!
//! Run: `cargo run -p rackside-link --example link_bench`. The BLE estimate models the 1M PHY
//! as 1 Mbit/s plus 10 bytes of link-layer overhead per frame. Each change of direction (a
//! flight) costs one 30 ms connection interval, and retransmissions are not modelled.

use std::time::{Duration, Instant};

use rackside_link::{
    Authenticator, BmcIdentity, ClientSettings, LinkClient, LinkServer, Password, Profile,
    ServerSettings,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

const CONNECTION_INTERVAL: Duration = Duration::from_millis(30);
const PHY_BITS_PER_SECOND: f64 = 1_000_000.0;
const LINK_LAYER_OVERHEAD: usize = 10;
/// Size of the health response body, about what a system resource with its status is.
const HEALTH_BODY: usize = 2_000;
const RUNS: u32 = 5;

struct OneUser;

impl Authenticator for OneUser {
    fn verify(&self, user: &str, password: &Password) -> bool {
        user == "root" && password.expose() == "bench-password"
    }
}

#[derive(Default)]
struct Tally {
    bytes: usize,
    frames: usize,
    flights: usize,
    client_time: Duration,
    server_time: Duration,
}

/// Moves frames until both sides are idle, counting each direction change as a flight.
fn pump(server: &mut LinkServer, client: &mut LinkClient, tally: &mut Tally, now: Instant) {
    loop {
        let mut moved = false;
        for to_server in [true, false] {
            let mut any = false;
            loop {
                let started = Instant::now();
                let frame = if to_server {
                    client.poll_frame()
                } else {
                    server.poll_frame()
                };
                let poll_time = started.elapsed();
                if to_server {
                    tally.client_time += poll_time;
                } else {
                    tally.server_time += poll_time;
                }
                let Some(frame) = frame else { break };
                any = true;
                tally.frames += 1;
                tally.bytes += frame.segment.len();
                let started = Instant::now();
                if to_server {
                    server.receive_frame(&frame, now);
                    tally.server_time += started.elapsed();
                } else {
                    let _ = client.receive_frame(&frame);
                    tally.client_time += started.elapsed();
                }
            }
            if any {
                tally.flights += 1;
                moved = true;
            }
        }
        if !moved {
            return;
        }
    }
}

fn ble_time(tally: &Tally) -> Duration {
    let bits = ((tally.bytes + tally.frames * LINK_LAYER_OVERHEAD) * 8) as f64;
    let airtime = Duration::from_secs_f64(bits / PHY_BITS_PER_SECOND);
    CONNECTION_INTERVAL * u32::try_from(tally.flights).unwrap_or(u32::MAX) + airtime
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // An ECDSA P-256 certificate for the default profile and an RSA-2048 one for the paper
    // profile, whose only suite signs with RSA.
    let ecdsa = rcgen::KeyPair::generate()?.serialize_der();
    let rsa = rackside_link::generate_rsa_key()?
        .secret_pkcs8_der()
        .to_vec();
    println!("| profile | segment | handshake bytes | frames | flights | client ms | BMC ms | first health reading (BLE model) |");
    println!("|---|---|---|---|---|---|---|---|");
    for profile in [Profile::Default, Profile::Paper] {
        let (der, algorithm) = match profile {
            Profile::Default => (&ecdsa, &rcgen::PKCS_ECDSA_P256_SHA256),
            Profile::Paper => (&rsa, &rcgen::PKCS_RSA_SHA256),
        };
        let pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(der.as_slice()),
            algorithm,
        )?;
        let cert = rcgen::CertificateParams::new(vec!["bmc.example".into()])?.self_signed(&pair)?;
        for segment_size in [20usize, 244] {
            let mut handshake = Tally::default();
            let mut total = Tally::default();
            for _ in 0..RUNS {
                let now = Instant::now();
                let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der.clone()));
                let tls = profile.server_config(vec![cert.der().clone()], private)?;
                let identity = BmcIdentity {
                    service_tag: "BENCH01".into(),
                    model: "bench".into(),
                    mac: [2, 0, 0, 0, 0, 1],
                };
                let settings = ServerSettings {
                    profile,
                    ..ServerSettings::default()
                };
                let mut server = LinkServer::new(settings, identity, tls, Box::new(OneUser), 0);
                server.press_button(now);
                let mut client = LinkClient::new(ClientSettings {
                    profile,
                    segment_size,
                    ..ClientSettings::default()
                })?;

                let mut run = Tally::default();
                client.connect()?;
                pump(&mut server, &mut client, &mut run, now);
                handshake.bytes += run.bytes;
                handshake.frames += run.frames;
                handshake.flights += run.flights;
                handshake.client_time += run.client_time;
                handshake.server_time += run.server_time;

                client.accept_certificate()?;
                client.login("root", &Password::new("bench-password"), None)?;
                pump(&mut server, &mut client, &mut run, now);
                client.send_request(
                    b"GET /redfish/v1/Systems/1 HTTP/1.1\r\nContent-Length: 0\r\n\r\n".to_vec(),
                )?;
                pump(&mut server, &mut client, &mut run, now);
                let request = server.poll_request().ok_or("no request arrived")?;
                assert!(request.starts_with(b"GET "));
                let body = vec![b' '; HEALTH_BODY];
                let mut response =
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {HEALTH_BODY}\r\n\r\n")
                        .into_bytes();
                response.extend_from_slice(&body);
                server.send_response(response)?;
                pump(&mut server, &mut client, &mut run, now);
                total.bytes += run.bytes;
                total.frames += run.frames;
                total.flights += run.flights;
            }
            let runs = RUNS as usize;
            let per_run = Tally {
                bytes: total.bytes / runs,
                frames: total.frames / runs,
                flights: total.flights / runs,
                ..Tally::default()
            };
            println!(
                "| {profile} | {segment_size} | {} | {} | {} | {:.1} | {:.1} | {:.2} s |",
                handshake.bytes / runs,
                handshake.frames / runs,
                handshake.flights / runs,
                handshake.client_time.as_secs_f64() * 1000.0 / f64::from(RUNS),
                handshake.server_time.as_secs_f64() * 1000.0 / f64::from(RUNS),
                ble_time(&per_run).as_secs_f64(),
            );
        }
    }
    Ok(())
}
