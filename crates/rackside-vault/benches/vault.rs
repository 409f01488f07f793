//! Vault benchmark (not a timed test): unlock time at the calibrated
//! Argon2id parameters, and record write and read throughput against plain
//! SQLite on the same machine.
//!
//! Two plain baselines: the same bundled SQLCipher build opened without a
//! key (SQLite with the codec off, same version and pragmas), and Python's
//! `sqlite3` module over the system libsqlite3 (`benches/plain_sqlite.py`).
//! Run with `cargo bench -p rackside-vault`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rackside_vault::{
    CreateOptions, KdfChoice, MemoryKeyStore, Secret, ServerRecord, Unlock, Vault,
};

const RECORDS: usize = 1000;
const UNLOCKS: u32 = 5;
const PASSWORD: &str = "copper kettle orbit 91 lantern";

fn record(n: usize) -> ServerRecord {
    ServerRecord {
        name: format!("srv-{n:05}"),
        url: format!("https://bmc-{n}.example.net"),
        user: Some("root".into()),
        pin: Some(serde_json::json!({ "sha256": format!("{:064x}", n) })),
        groups: Vec::new(),
    }
}

fn per_second(count: usize, took: Duration) -> f64 {
    count as f64 / took.as_secs_f64()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let store = MemoryKeyStore::new();

    // 1. Calibrate as `rackside vault init` does, then time unlocks.
    let started = Instant::now();
    let params = KdfChoice::default().resolve()?;
    let calibration = started.elapsed();
    let dir = tmp.path().join("vault");
    let options = CreateOptions {
        password: Some(Secret::new(PASSWORD)),
        kdf: KdfChoice::Fixed(params),
    };
    Vault::create(&dir, options, &store)?.close()?;
    let mut unlock_total = Duration::ZERO;
    for _ in 0..UNLOCKS {
        let started = Instant::now();
        let vault = Vault::open(&dir, Unlock::with_password(Secret::new(PASSWORD)), &store)?;
        unlock_total += started.elapsed();
        vault.close()?;
    }
    let unlock = unlock_total / UNLOCKS;

    // 2. Vault writes and reads, one record per transaction.
    let vault = Vault::open(&dir, Unlock::with_password(Secret::new(PASSWORD)), &store)?;
    let started = Instant::now();
    for n in 0..RECORDS {
        vault.put_server(&record(n))?;
    }
    let vault_write = per_second(RECORDS, started.elapsed());
    let started = Instant::now();
    for n in 0..RECORDS {
        let name = format!("srv-{n:05}");
        if vault.server(&name)?.is_none() {
            return Err(format!("{name} missing").into());
        }
    }
    let vault_read = per_second(RECORDS, started.elapsed());
    vault.close()?;

    // 3. The same statements on plain SQLite (same build, no key).
    let (plain_write, plain_read) = plain_same_build(&tmp.path().join("plain.db"))?;

    // 4. The same statements through Python's sqlite3 module.
    let python = python_sqlite(&tmp.path().join("python.db"));

    println!("## vault benchmark ({RECORDS} records, one transaction each)");
    println!(
        "calibrated argon2id: m={} KiB t={} p={} (calibration took {:.2} s)",
        params.m_cost_kib,
        params.t_cost,
        params.p_cost,
        calibration.as_secs_f64()
    );
    println!("unlock (mean of {UNLOCKS}): {:.3} s", unlock.as_secs_f64());
    println!("| store | writes/s | reads/s |");
    println!("|---|---|---|");
    println!("| vault (SQLCipher, keyed) | {vault_write:.0} | {vault_read:.0} |");
    println!("| plain SQLite, same build, no key | {plain_write:.0} | {plain_read:.0} |");
    match &python {
        Some((w, r)) => println!("| plain SQLite, Python sqlite3 | {w:.0} | {r:.0} |"),
        None => println!("| plain SQLite, Python sqlite3 | not run (python3 missing) | |"),
    }
    println!(
        "ratio vault / plain same build: writes {:.2}, reads {:.2}",
        vault_write / plain_write,
        vault_read / plain_read
    );
    if let Some((w, r)) = python {
        println!(
            "ratio vault / Python sqlite3: writes {:.2}, reads {:.2}",
            vault_write / w,
            vault_read / r
        );
    }
    Ok(())
}

/// Writes and reads per second on an unkeyed connection of the same build,
/// with the vault's pragmas and statements.
fn plain_same_build(path: &Path) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY;
         CREATE TABLE servers (name TEXT PRIMARY KEY NOT NULL, url TEXT NOT NULL, user TEXT, pin TEXT);",
    )?;
    let started = Instant::now();
    for n in 0..RECORDS {
        let r = record(n);
        conn.execute(
            "INSERT INTO servers (name, url, user, pin) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(name) DO UPDATE SET url = ?2, user = ?3, pin = ?4",
            rusqlite::params![r.name, r.url, r.user, r.pin.map(|p| p.to_string())],
        )?;
    }
    let write = per_second(RECORDS, started.elapsed());
    let started = Instant::now();
    for n in 0..RECORDS {
        let name = format!("srv-{n:05}");
        let _row: (String, String, Option<String>, Option<String>) = conn.query_row(
            "SELECT name, url, user, pin FROM servers WHERE name = ?1",
            [&name],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
    }
    let read = per_second(RECORDS, started.elapsed());
    Ok((write, read))
}

/// Writes and reads per second from `benches/plain_sqlite.py`, or `None`
/// when python3 is not there.
fn python_sqlite(path: &Path) -> Option<(f64, f64)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/plain_sqlite.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(path)
        .arg(RECORDS.to_string())
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let mut parts = text.split_whitespace().map(str::parse::<f64>);
    Some((parts.next()?.ok()?, parts.next()?.ok()?))
}
