//! The failed-login count on disk, so a restart does not clear a lockout.

use std::path::{Path, PathBuf};

use crate::Error;

/// A small JSON file holding the failed-login count.
#[derive(Clone, Debug)]
pub struct LockoutFile {
    path: PathBuf,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    failed_logins: u32,
}

impl LockoutFile {
    /// Uses the file at `path`; it need not exist yet.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        LockoutFile { path: path.into() }
    }

    /// Returns the file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the count; a missing file means 0.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read or is not the expected JSON. The caller
    /// must not treat that as 0, or a damaged file would clear a lockout.
    pub fn load(&self) -> Result<u32, Error> {
        let text = match std::fs::read(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(source) => {
                return Err(Error::Io {
                    what: format!("reading {}", self.path.display()),
                    source,
                })
            }
        };
        let stored: Stored = serde_json::from_slice(&text).map_err(|error| Error::Io {
            what: format!(
                "parsing {}; remove it only after checking why it is damaged",
                self.path.display()
            ),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, error),
        })?;
        Ok(stored.failed_logins)
    }

    /// Writes the count through a temporary file and a rename, so a crash leaves the old or
    /// the new count.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when writing or renaming fails.
    pub fn save(&self, failed_logins: u32) -> Result<(), Error> {
        let temporary = self.path.with_extension("tmp");
        let io_error = |what: String| move |source| Error::Io { what, source };
        let json = serde_json::to_vec(&Stored { failed_logins }).unwrap_or_default();
        std::fs::write(&temporary, json)
            .map_err(io_error(format!("writing {}", temporary.display())))?;
        std::fs::rename(&temporary, &self.path)
            .map_err(io_error(format!("renaming to {}", self.path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lockout.json");
        assert_eq!(LockoutFile::new(&path).load().unwrap(), 0);
        LockoutFile::new(&path).save(3).unwrap();
        assert_eq!(LockoutFile::new(&path).load().unwrap(), 3);
    }

    #[test]
    fn damaged_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lockout.json");
        std::fs::write(&path, b"{").unwrap();
        assert!(LockoutFile::new(&path).load().is_err());
    }
}
