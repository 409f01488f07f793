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
    remove_stale_temporaries(path);
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

/// Creates `path` empty with mode 0600 unless it exists, and removes group and other access
/// from an existing one. A database opened there next is then private from its first page.
pub(crate) fn create_private_file(path: &Path) -> Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io("create", path, e))?;
    restrict_to_owner(&file, path)
}

/// Removes group and other access from the open file `file` at `path`.
pub(crate) fn restrict_to_owner(file: &File, path: &Path) -> Result<()> {
    let meta = file.metadata().map_err(|e| Error::io("inspect", path, e))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        tracing::debug!(path = %path.display(), mode = format!("{mode:o}"), "closing the file to other users");
        file.set_permissions(fs::Permissions::from_mode(mode & 0o700))
            .map_err(|e| Error::io("restrict permissions of", path, e))?;
    }
    Ok(())
}

/// Removes the temporary files that writers of `path` left beside it when they were killed
/// mid-write: `NAME.tmp-PID` of [`write_atomic`] and `NAME.new-PID-HEX` of [`write_new`],
/// whose process no longer runs. Failures are logged and skipped: a leftover only takes
/// space.
///
/// NOTE: whether a writer runs is read from this machine's process table. In a folder shared
/// with another machine, a writer there can lose its temporary file, so its write fails with
/// an error and `path` stays as it was.
pub(crate) fn remove_stale_temporaries(path: &Path) {
    let dir = path.parent().unwrap_or(Path::new("."));
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return;
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|other| other.strip_prefix(name))
            .and_then(temporary_writer)
        else {
            continue;
        };
        if pid == std::process::id() || process_runs(pid) {
            continue;
        }
        let victim = entry.path();
        match fs::remove_file(&victim) {
            Ok(()) => {
                tracing::debug!(path = %victim.display(), pid, "removed a temporary file of a killed writer")
            }
            Err(e) => {
                tracing::debug!(path = %victim.display(), error = %e, "failed to remove a stale temporary file")
            }
        }
    }
}

/// Returns the writer's process id from what follows the target's name in a temporary
/// file's name: `.tmp-PID` or `.new-PID-HEX`.
fn temporary_writer(suffix: &str) -> Option<u32> {
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if let Some(pid) = suffix.strip_prefix(".tmp-") {
        return digits(pid).then(|| pid.parse().ok()).flatten();
    }
    let (pid, unique) = suffix.strip_prefix(".new-")?.split_once('-')?;
    let unique_ok = unique.len() == 16 && unique.bytes().all(|b| b.is_ascii_hexdigit());
    (digits(pid) && unique_ok)
        .then(|| pid.parse().ok())
        .flatten()
}

/// Returns true unless the process table has no process `pid`. A process of another user
/// counts as running.
fn process_runs(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return true;
    };
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

/// Flushes a folder's entries (renames, creations) to disk.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync folder", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns the id of a process that has exited and been reaped.
    fn exited_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn temporary_name_gives_writer_pid() {
        assert_eq!(temporary_writer(".tmp-4256"), Some(4256));
        assert_eq!(temporary_writer(".new-77-00000000deadbeef"), Some(77));
        for other in [
            "",
            ".tmp-",
            ".tmp-12a",
            ".new-77",
            ".new-77-xyz",
            "-journal",
            ".tmp-9x",
        ] {
            assert_eq!(temporary_writer(other), None, "{other:?}");
        }
    }

    #[test]
    fn exited_writer_temporaries_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.header");
        fs::write(&path, b"current").unwrap();
        let dead = exited_pid();
        let stale = [
            dir.path().join(format!("vault.header.tmp-{dead}")),
            dir.path()
                .join(format!("vault.header.new-{dead}-0123456789abcdef")),
        ];
        let kept = [
            // Process 1 always runs.
            dir.path().join("vault.header.tmp-1"),
            dir.path().join(format!("other.tmp-{dead}")),
            dir.path().join(format!("vault.header.tmp-{dead}x")),
        ];
        for file in stale.iter().chain(&kept) {
            fs::write(file, b"partial").unwrap();
        }

        write_atomic(&path, b"next").unwrap();

        for file in &stale {
            assert!(!file.exists(), "{} is still there", file.display());
        }
        for file in &kept {
            assert!(file.exists(), "{} was removed", file.display());
        }
        assert_eq!(fs::read(&path).unwrap(), b"next");
    }

    #[test]
    fn private_file_mode_is_0600() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh.db");
        create_private_file(&fresh).unwrap();
        let loose = dir.path().join("loose.db");
        fs::write(&loose, b"data").unwrap();
        fs::set_permissions(&loose, fs::Permissions::from_mode(0o644)).unwrap();
        create_private_file(&loose).unwrap();
        for file in [&fresh, &loose] {
            let mode = fs::metadata(file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", file.display());
        }
        assert_eq!(fs::read(&loose).unwrap(), b"data");
    }
}
