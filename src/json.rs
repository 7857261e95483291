//! Atomic JSON files: records written whole (temp file, fsync, rename) so a crash leaves the old or the
//! new one, or whole and unsynced where a log holds their durable copy; private files for what is read
//! once, and reading a record that may not exist.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// `path` with `.tmp` appended: where a whole write of it is staged before its rename.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    PathBuf::from(tmp)
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_path(path);
    create_private(&tmp, bytes)?.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Writes `bytes` to `path` whole (temp file, rename), unsynced: for a record whose durable copy is a log's
/// entry (see src/wal.rs), synced with its filesystem when the log starts afresh.
pub fn write_unsynced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_path(path);
    create_private(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Writes `bytes` to `path` as a file only its owner (the daemon, root) can read: for what is read once and
/// worthless after a crash (launch and exec specs), so neither atomic nor synced.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    create_private(path, bytes).map(drop)
}

fn create_private(path: &Path, bytes: &[u8]) -> io::Result<std::fs::File> {
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(bytes)?;
    Ok(f)
}

/// Serialises `value` as JSON and writes it atomically to `path`.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    write_atomic(path, &bytes)
}

/// Reads a JSON record; `Ok(None)` when the file does not exist.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map(Some).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
