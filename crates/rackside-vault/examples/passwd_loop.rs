//! Test helper for the password change crash test: changes the password of
//! an existing vault again and again and prints `changed N` after each change
//! that returned.
//!
//! Usage: `passwd_loop VAULT_DIR KEYS_DIR NUMBER`. The vault must open with
//! the password numbered NUMBER; change N sets the password numbered N. Runs
//! until killed (or 100000 changes).

use std::io::Write;
use std::path::PathBuf;

use rackside_vault::{FileKeyStore, Secret, Unlock, Vault};

/// Builds the password numbered `n`, as the crash test does.
fn password(n: u64) -> Secret {
    Secret::new(format!("copper kettle orbit {n} lantern"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(keys), Some(first)) = (args.next(), args.next(), args.next()) else {
        return Err("usage: passwd_loop VAULT_DIR KEYS_DIR NUMBER".into());
    };
    let dir = PathBuf::from(dir);
    let store = FileKeyStore::new(keys);
    let first: u64 = first.parse()?;
    let mut vault = Vault::open(&dir, Unlock::with_password(password(first)), &store)?;
    let stdout = std::io::stdout();
    for n in first..first + 100_000 {
        vault.change_password(Some(&password(n)), Some(&password(n + 1)), &store)?;
        let mut out = stdout.lock();
        writeln!(out, "changed {}", n + 1)?;
        out.flush()?;
    }
    Ok(())
}
