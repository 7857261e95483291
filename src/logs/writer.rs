//! The writing end of a log: appends to the newest segment, begins a new one at a line boundary when it is
//! full, and deletes the oldest beyond the limit. Used by the monitor and the exec helper only.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{segment_name, segments, LogError, LogLimits};

/// The newest segment of a log, open for appending.
pub struct Writer {
    dir: PathBuf,
    limits: LogLimits,
    file: File,
    path: PathBuf,
    /// The logical offset of the segment's first byte, and its length.
    start: u64,
    len: u64,
}

impl Writer {
    /// Opens the log in `dir` (made 0700 if missing) to go on where it ended, in its newest segment; a
    /// `logs` file of an older daemon beside it becomes its first segment.
    pub fn open(dir: &Path, limits: LogLimits) -> Result<Writer, LogError> {
        let limits = LogLimits { max_size: limits.max_size.max(1), max_files: limits.max_files.max(1) };
        let existing = segments(dir)?;
        if !dir.is_dir() {
            DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .map_err(|source| LogError::CreateDir { path: dir.to_path_buf(), source })?;
        }
        let start = match existing.last() {
            Some(legacy) if legacy.path.parent() != Some(dir) => {
                let to = dir.join(segment_name(0));
                std::fs::rename(&legacy.path, &to).map_err(|source| LogError::Open { path: to.clone(), source })?;
                let _ = std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600));
                0
            }
            Some(last) => last.start,
            None => 0,
        };
        let (file, path, len) = open_segment(dir, start)?;
        let mut writer = Writer { dir: dir.to_path_buf(), limits, file, path, start, len };
        // The limits may be lower than those the log was written with.
        writer.prune()?;
        Ok(writer)
    }

    /// Appends `data`. A segment that would pass `max_size` takes the chunk's lines that fit, and the rest
    /// goes to a new segment; a line longer than a whole segment is cut.
    pub fn write(&mut self, mut data: &[u8]) -> Result<(), LogError> {
        while !data.is_empty() {
            let room = self.limits.max_size.saturating_sub(self.len);
            if data.len() as u64 <= room {
                return self.append(data);
            }
            let window = &data[..room as usize];
            let cut = match window.iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                // A line that fills a whole segment by itself: cut it there.
                None if self.len == 0 => window.len(),
                // The line begins the next segment.
                None => 0,
            };
            self.append(&data[..cut])?;
            data = &data[cut..];
            self.rotate()?;
        }
        Ok(())
    }

    fn append(&mut self, data: &[u8]) -> Result<(), LogError> {
        if data.is_empty() {
            return Ok(());
        }
        self.file.write_all(data).map_err(|source| LogError::Write { path: self.path.clone(), source })?;
        self.len += data.len() as u64;
        Ok(())
    }

    /// Begins the next segment where this one ends on disk, then deletes the oldest beyond `max_files`.
    fn rotate(&mut self) -> Result<(), LogError> {
        let len = self.file.metadata().map(|m| m.len()).unwrap_or(self.len);
        let start = self.start + len;
        let (file, path, len) = open_segment(&self.dir, start)?;
        (self.file, self.path, self.start, self.len) = (file, path, start, len);
        self.prune()
    }

    fn prune(&mut self) -> Result<(), LogError> {
        let segments = segments(&self.dir)?;
        let excess = segments.len().saturating_sub(self.limits.max_files as usize);
        for old in segments.iter().take(excess).filter(|s| s.start < self.start) {
            match std::fs::remove_file(&old.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(LogError::Remove { path: old.path.clone(), source }),
            }
        }
        Ok(())
    }
}

/// Opens (made 0600 if missing) the segment of `dir` that begins at `start`, for appending; with its length.
fn open_segment(dir: &Path, start: u64) -> Result<(File, PathBuf, u64), LogError> {
    let path = dir.join(segment_name(start));
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .map_err(|source| LogError::Open { path: path.clone(), source })?;
    let len = file.metadata().map_err(|source| LogError::Open { path: path.clone(), source })?.len();
    Ok((file, path, len))
}
