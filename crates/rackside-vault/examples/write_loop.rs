//! Test helper for the crash test: writes numbered servers and credentials
//! into a vault and prints `committed N` after each record's commits.
//!
//! Usage: `write_loop VAULT_DIR KEYS_DIR FIRST_NUMBER`. Runs until killed
//! (or 100000 records). Uses small Argon2id parameters.

use std::io::Write;
use std::path::PathBuf;

use rackside_vault::{
    CreateOptions, FileKeyStore, KdfChoice, KdfParams, Secret, ServerRecord, Unlock, Vault,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(keys), Some(first)) = (args.next(), args.next(), args.next()) else {
        return Err("usage: write_loop VAULT_DIR KEYS_DIR FIRST_NUMBER".into());
    };
    let dir = PathBuf::from(dir);
    let store = FileKeyStore::new(keys);
    let first: u64 = first.parse()?;
    let vault = if dir.join(rackside_vault::HEADER_FILE).exists() {
        Vault::open(&dir, Unlock::without_password(), &store)?
    } else {
        let options = CreateOptions {
            password: None,
            kdf: KdfChoice::Fixed(KdfParams::TEST),
        };
        Vault::create(&dir, options, &store)?
    };
    let stdout = std::io::stdout();
    for n in first..first + 100_000 {
        let name = format!("srv-{n}");
        vault.put_server(&ServerRecord {
            name: name.clone(),
            url: format!("https://plainmarker-{n}.example"),
            user: Some("root".into()),
            pin: Some(serde_json::json!({ "sha256": format!("pinmarker-{n}") })),
            groups: Vec::new(),
        })?;
        vault.put_credential(&name, &Secret::new(format!("credmarker-{n}")))?;
        let mut out = stdout.lock();
        writeln!(out, "committed {n}")?;
        out.flush()?;
    }
    Ok(())
}
