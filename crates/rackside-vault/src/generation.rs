//! The header generation: a counter inside the authenticated header that
//! grows on every header rewrite, mirrored in the device key store, so that
//! an older `vault.header` put back in place is rejected.
//!
//! The key store entry contains two numbers: `committed`, the generation of
//! the newest header known to be on disk, and `reserved`, the highest
//! generation ever handed out. `Vault::open` rejects a header whose
//! generation is below `committed`. A rewrite from generation N runs three
//! writes in this order:
//!
//! 1. key store: `reserved = N + 1`, `committed` stays N;
//! 2. header file: generation N + 1 (temporary file, fsync, rename);
//! 3. key store: `committed = N + 1`.
//!
//! A crash before step 2 leaves header N with `committed = N`, so the old
//! password opens. A crash between steps 2 and 3 leaves header N + 1 with
//! `committed = N`, so the new password opens, and that open raises
//! `committed` to N + 1. After step 3, or after that open, header N is
//! rejected. Header N - 1 is rejected at every point. So no crash point
//! locks the user out. Header N is accepted again only if someone puts it
//! back after a crash between steps 2 and 3 and before the next open.
//!
//! `reserved` keeps every generation number to one header. After a crash
//! before step 2, a temporary file may still contain header N + 1, and the
//! next rewrite takes N + 2. Once that rewrite finishes, the stray N + 1
//! is rejected like any older header.
//!
//! A format 1 header counts as generation 0. It is accepted while the entry
//! is missing or `committed` is 0, and `Vault::open` rewrites it as
//! generation 1 with the steps above.
//!
//! A missing entry with a header of generation 1 or more is accepted, and
//! the entry is created at that generation. This happens when the key store
//! lost the entry but kept the device secret, for example a key folder
//! restored from an older backup. Rejecting the header there would lock the
//! user out, and accepting it gives an attacker nothing. With the file store,
//! and with OS key stores that do not control access per application, a
//! process that can delete the entry can also read the device secret. With
//! an old header and its password, it can then derive the data key without
//! rackside.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keystore::DeviceKeyStore;
use crate::secret::Secret;

/// The start of the key store entry name; the vault id follows.
const ENTRY_PREFIX: &str = "header-generation-";

/// The key store entry of one vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GenerationRecord {
    /// The generation of the newest header known to be on disk.
    pub committed: u64,
    /// The highest generation handed out to a header, written or not.
    pub reserved: u64,
}

impl GenerationRecord {
    /// Builds the entry for a header of `generation` that is on disk.
    pub fn at(generation: u64) -> Self {
        GenerationRecord {
            committed: generation,
            reserved: generation,
        }
    }
}

/// Returns the key store entry name that contains the header generation of
/// vault `vault_id` (the `vault_id` field of its header).
pub fn generation_entry(vault_id: &str) -> String {
    format!("{ENTRY_PREFIX}{vault_id}")
}

/// Reads the entry of vault `vault_id`; `None` when there is none.
///
/// # Errors
/// `InvalidGenerationEntry` when the entry does not parse or has `reserved`
/// below `committed`; the store's own errors.
pub(crate) fn load(store: &dyn DeviceKeyStore, vault_id: &str) -> Result<Option<GenerationRecord>> {
    let entry = generation_entry(vault_id);
    let Some(value) = store.get(&entry)? else {
        return Ok(None);
    };
    let record = serde_json::from_slice::<GenerationRecord>(value.expose())
        .ok()
        .filter(|record| record.reserved >= record.committed);
    match record {
        Some(record) => Ok(Some(record)),
        None => Err(Error::InvalidGenerationEntry {
            entry,
            store: store.describe(),
        }),
    }
}

/// Replaces the entry of vault `vault_id` with `record`.
///
/// # Errors
/// The store's own errors.
pub(crate) fn save(
    store: &dyn DeviceKeyStore,
    vault_id: &str,
    record: GenerationRecord,
) -> Result<()> {
    // serde_json fails only on maps with non-string keys or failing Serialize impls, so
    // this record of two integers always serializes.
    let text = serde_json::to_vec(&record).unwrap_or_default();
    store.set(&generation_entry(vault_id), &Secret::from_bytes(text))?;
    tracing::debug!(
        committed = record.committed,
        reserved = record.reserved,
        "stored the header generation"
    );
    Ok(())
}

/// Rejects a header of `generation` that is older than `record` allows.
///
/// # Errors
/// `HeaderRolledBack` when `generation` is below `record.committed`.
pub(crate) fn check(
    record: Option<GenerationRecord>,
    generation: u64,
    header_path: &std::path::Path,
) -> Result<()> {
    match record {
        Some(record) if generation < record.committed => {
            tracing::debug!(
                generation,
                committed = record.committed,
                "rejected an older vault header"
            );
            Err(Error::HeaderRolledBack {
                path: header_path.to_path_buf(),
                found: generation,
                expected: record.committed,
            })
        }
        _ => Ok(()),
    }
}

/// Returns the entry to write before a header rewrite (step 1) and the new
/// header's generation. `current` is the generation of the header being
/// replaced, and `record` the entry as stored now.
pub(crate) fn reserve_next(
    current: u64,
    record: Option<GenerationRecord>,
) -> (GenerationRecord, u64) {
    let record = record.unwrap_or(GenerationRecord::at(current));
    // At one rewrite per microsecond, 2^64 rewrites take over 500,000 years,
    // so the saturation is not reached in practice.
    let next = record.reserved.max(current).saturating_add(1);
    let reserved = GenerationRecord {
        committed: record.committed,
        reserved: next,
    };
    (reserved, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keystore::MemoryKeyStore;

    const ID: &str = "00112233445566778899aabbccddeeff";

    #[test]
    fn entry_round_trips_through_the_store() {
        let store = MemoryKeyStore::new();
        assert_eq!(load(&store, ID).unwrap(), None);
        let record = GenerationRecord {
            committed: 4,
            reserved: 5,
        };
        save(&store, ID, record).unwrap();
        assert_eq!(load(&store, ID).unwrap(), Some(record));
    }

    #[test]
    fn unparsable_entry_is_invalid() {
        let store = MemoryKeyStore::new();
        let entry = generation_entry(ID);
        for text in [
            "7",
            "{\"committed\":3}",
            "{\"committed\":3,\"reserved\":2}",
            "{\"committed\":-1,\"reserved\":2}",
        ] {
            store.set(&entry, &Secret::new(text)).unwrap();
            let error = load(&store, ID).unwrap_err();
            assert!(
                matches!(error, Error::InvalidGenerationEntry { .. }),
                "{text}: {error}"
            );
            assert!(error.to_string().contains(&entry), "{error}");
        }
    }

    #[test]
    fn older_generation_is_rejected() {
        let path = std::path::Path::new("vault.header");
        let record = Some(GenerationRecord {
            committed: 3,
            reserved: 4,
        });
        assert!(matches!(
            check(record, 2, path),
            Err(Error::HeaderRolledBack {
                found: 2,
                expected: 3,
                ..
            })
        ));
        assert!(check(record, 3, path).is_ok());
        assert!(check(record, 4, path).is_ok());
        assert!(check(None, 0, path).is_ok());
    }

    #[test]
    fn reserved_number_is_never_reused() {
        // A rewrite that stopped after step 1 reserved 4 but left header 3.
        let stalled = GenerationRecord {
            committed: 3,
            reserved: 4,
        };
        let (entry, next) = reserve_next(3, Some(stalled));
        assert_eq!(next, 5);
        assert_eq!(
            entry,
            GenerationRecord {
                committed: 3,
                reserved: 5
            }
        );
        assert_eq!(reserve_next(3, Some(GenerationRecord::at(3))).1, 4);
        assert_eq!(reserve_next(0, None).1, 1);
        assert_eq!(
            reserve_next(7, None).0,
            GenerationRecord {
                committed: 7,
                reserved: 8
            }
        );
    }
}
