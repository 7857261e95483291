//! A container's (or an exec's) output on disk: a directory of segments, bounded in size and count, each
//! with an index of the chunks in it, and reads of it at logical offsets: of `logs` (both streams as
//! written), and of the views beside it, `stdout`, `stderr` and `log_index` ([`views`]).
//!
//! The monitor that holds the container's stdout and stderr pipes appends what it reads to the newest
//! segment ([`Writer`]), and a record of each chunk (its time, its stream, where it is: [`index`]) to the
//! segment's index; a segment whose log and index together would grow past `max_size` is closed at a line
//! boundary and a new one begun, and the oldest are deleted, log and index, so that at most `max_files` are
//! kept. Each segment is named by the logical offset of its first byte (the count of bytes the container
//! had written before it, over all its runs), so `logs` needs no index: [`extent`] gives the oldest kept
//! byte and the end, [`read_at`] reads at a logical offset across segments. The index sits beside its
//! segment under the same number (`NNN.log`, `NNN.idx`).
//!
//! The directory is 0700 and segments and indexes 0600: only root reads them, and no container ever holds
//! one.

pub mod index;
mod views;
mod writer;

use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use index::Stream;
pub use views::{index_line, view_extent, view_read_at, LogView, INDEX_LINE};
pub use writer::Writer;

/// How much output is kept per container and per exec; Docker's `local` driver's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLimits {
    /// The size a segment may reach before the next one is begun.
    pub max_size: u64,
    /// How many segments are kept, the one written to included.
    pub max_files: u32,
}

impl Default for LogLimits {
    fn default() -> LogLimits {
        LogLimits { max_size: 20 << 20, max_files: 5 }
    }
}

/// The smallest `--log-max-size`: a segment holds at least a page of output.
pub const MIN_SEGMENT: u64 = 4096;

/// Why writing or reading a log failed; one variant per step.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot make the log directory {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot list the log segments in {}: {source}", path.display())]
    List { path: PathBuf, source: io::Error },
    #[error("cannot open the log segment {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot write the log segment {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot remove the old log segment {}: {source}", path.display())]
    Remove { path: PathBuf, source: io::Error },
    #[error("cannot read the log segment {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// The bytes asked for were in a segment deleted since: the reader fell too far behind.
    #[error("log bytes from offset {offset} were rotated away (the oldest kept is {oldest})")]
    Gone { offset: u64, oldest: u64 },
}

impl LogError {
    /// The errno a read that hit this error returns.
    pub fn errno(&self) -> i32 {
        match self {
            LogError::Gone { .. } => libc::ENODATA,
            LogError::List { source, .. }
            | LogError::Open { source, .. }
            | LogError::Read { source, .. }
            | LogError::CreateDir { source, .. }
            | LogError::Write { source, .. }
            | LogError::Remove { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
        }
    }
}

/// One segment: the logical offset of its first byte, and its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub start: u64,
    pub path: PathBuf,
}

/// The file name of the segment that begins at logical offset `start`.
pub fn segment_name(start: u64) -> String {
    format!("{start:020}.log")
}

fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok())?
}

/// The single `logs` file beside `dir` that daemons before segments wrote.
fn legacy_file(dir: &Path) -> PathBuf {
    dir.with_file_name("logs")
}

/// The segments of the log in `dir`, oldest first; none if it has none yet. A log written before segments
/// (a plain `logs` file beside `dir`) is one segment from offset 0.
pub fn segments(dir: &Path) -> Result<Vec<Segment>, LogError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let legacy = legacy_file(dir);
            return Ok(if legacy.is_file() { vec![Segment { start: 0, path: legacy }] } else { Vec::new() });
        }
        Err(source) => return Err(LogError::List { path: dir.to_path_buf(), source }),
    };
    let mut segments: Vec<Segment> = entries
        .filter_map(|e| {
            let e = e.ok()?;
            let start = parse_name(e.file_name().to_str()?)?;
            Some(Segment { start, path: e.path() })
        })
        .collect();
    segments.sort_by_key(|s| s.start);
    Ok(segments)
}

/// What a log keeps: the logical offsets of its oldest kept byte and of its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Extent {
    pub start: u64,
    pub end: u64,
}

impl Extent {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// When the log in `dir` was last written: its newest segment's mtime; `None` if it has none.
pub fn modified(dir: &Path) -> Option<std::time::SystemTime> {
    let newest = segments(dir).ok()?.pop()?;
    std::fs::metadata(newest.path).and_then(|m| m.modified()).ok()
}

/// How many times a read lists the segments again when one vanished under it (a rotation).
const RETRIES: usize = 8;

/// The extent of the log in `dir`; empty at 0 if it has no segment yet.
pub fn extent(dir: &Path) -> Result<Extent, LogError> {
    for _ in 0..RETRIES {
        let segments = segments(dir)?;
        let (Some(first), Some(last)) = (segments.first(), segments.last()) else { return Ok(Extent::default()) };
        match std::fs::metadata(&last.path) {
            Ok(m) => return Ok(Extent { start: first.start, end: last.start + m.len() }),
            // Deleted between the listing and the stat: only a rotation does that; list again.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(LogError::Read { path: last.path.clone(), source }),
        }
    }
    Err(LogError::List { path: dir.to_path_buf(), source: io::Error::from_raw_os_error(libc::EAGAIN) })
}

/// Up to `size` bytes of the log in `dir` from logical offset `offset`, across segments; fewer at its end.
/// [`LogError::Gone`] if `offset` is before the oldest kept byte.
pub fn read_at(dir: &Path, offset: u64, size: usize) -> Result<Vec<u8>, LogError> {
    'list: for _ in 0..RETRIES {
        let segments = segments(dir)?;
        let Some(first) = segments.first() else { return Ok(Vec::new()) };
        if offset < first.start {
            return Err(LogError::Gone { offset, oldest: first.start });
        }
        let mut buf = vec![0u8; size];
        let mut filled = 0;
        // The segment holding `offset`, then the ones after it while the buffer has room.
        let from = segments.partition_point(|s| s.start <= offset) - 1;
        for (i, seg) in segments.iter().enumerate().skip(from) {
            let at = offset + filled as u64;
            let limit = segments.get(i + 1).map(|next| next.start).unwrap_or(u64::MAX);
            let file = match std::fs::File::open(&seg.path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue 'list,
                Err(source) => return Err(LogError::Open { path: seg.path.clone(), source }),
            };
            let want = ((limit - at).min((size - filled) as u64)) as usize;
            let got = read_full(&file, &mut buf[filled..filled + want], at - seg.start)
                .map_err(|source| LogError::Read { path: seg.path.clone(), source })?;
            filled += got;
            if filled == size || got < want {
                break;
            }
        }
        buf.truncate(filled);
        return Ok(buf);
    }
    Err(LogError::List { path: dir.to_path_buf(), source: io::Error::from_raw_os_error(libc::EAGAIN) })
}

/// Reads into `buf` from `at` until it is full or the file ends (`read_at` may return less than asked
/// for); how much was read. The one such loop of the crate's readers of logs, indexes and `errors`.
pub fn read_full(file: &std::fs::File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], at + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests;
