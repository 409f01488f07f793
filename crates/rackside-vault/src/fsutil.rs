//! Private folders and atomic, durable file writes.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::{Error, Result};

/// Creates `dir` (and parents) with mode 0700, or checks that an existing
/// one is owned by this user and closed to other users.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<()> {
    match fs::metadata(dir) {
        Ok(meta) => check_private(dir, &meta),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent() {
                fs::create_dir_all(parent).map_err(|e| Error::io("create folder", parent, e))?;
            }
            match fs::DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => Ok(()),
                // Another process made it in between; its mode is checked like any other.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let meta = fs::metadata(dir).map_err(|e| Error::io("inspect", dir, e))?;
                    check_private(dir, &meta)
                }
                Err(e) => Err(Error::io("create folder", dir, e)),
            }
        }
        Err(err) => Err(Error::io("inspect", dir, err)),
    }
}

/// Refuses a file or folder that another user owns or may read.
pub(crate) fn check_private(path: &Path, meta: &fs::Metadata) -> Result<()> {
    let uid = rustix::process::getuid().as_raw();
    let mode = meta.permissions().mode() & 0o7777;
    if meta.uid() != uid || mode & 0o077 != 0 {
        return Err(Error::UnsafePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically and durably: a 0600 temporary file in
/// the same folder, fsync, rename over `path`, fsync the folder.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(name);

    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io("create", &tmp, e))?;
        file.write_all(bytes)
            .map_err(|e| Error::io("write", &tmp, e))?;
        file.sync_all().map_err(|e| Error::io("sync", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| Error::io("replace", path, e))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `path` only when no file is there yet, durably and
/// without a window in which `path` is partly written: a 0600 temporary
/// file is synced, then hard-linked to `path`. Returns `false`, writing
/// nothing, when `path` already exists, so concurrent callers agree on one
/// winner.
pub(crate) fn write_new(path: &Path, bytes: &[u8]) -> Result<bool> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    let unique: u64 = rand::random();
    name.push(format!(".new-{}-{unique:016x}", std::process::id()));
    let tmp = dir.join(name);

    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io("create", &tmp, e))?;
        file.write_all(bytes)
            .map_err(|e| Error::io("write", &tmp, e))?;
        file.sync_all().map_err(|e| Error::io("sync", &tmp, e))?;
        match fs::hard_link(&tmp, path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(err) => return Err(Error::io("create", path, err)),
        }
        sync_dir(dir)?;
        Ok(true)
    })();
    let _ = fs::remove_file(&tmp);
    result
}

/// Flushes a folder's entries (renames, creations) to disk.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync folder", dir, e))
}
