//! The writing end of a log: appends each chunk to the newest segment and its record to the segment's
//! index, begins a new segment at a line boundary when the two together would pass `max_size`, and deletes
//! the oldest beyond the limit, log and index together. Used by the monitor and the exec helper only.
//!
//! Order on disk, so that a reader (or a writer after a crash) never sees a record without its bytes: a
//! chunk's bytes go first, then its record; a new segment's index (its header written to a temporary file
//! renamed into place) goes before its log; a deleted segment's log goes before its index. A log reopened
//! after a crash has its torn or bad last records dropped and the bytes no record covers recorded as stdout;
//! segments of a log written before indexes get theirs (see [`super::index::legacy`]).

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::index::{index_path, legacy, mtime_ns, Record, SegIndex, Stream, LEGACY_PIECE, LOOK_BACK, RECORD};
use super::views::legacy_seq;
use super::{read_full, segment_name, segments, LogError, LogLimits, Segment};

/// The newest segment of a log, open for appending.
pub struct Writer {
    dir: PathBuf,
    limits: LogLimits,
    file: File,
    path: PathBuf,
    /// The logical offset of the segment's first byte, and its length.
    start: u64,
    len: u64,
    /// The segment's index, open for appending, and its length.
    idx: File,
    idx_len: u64,
    /// The number of the next chunk, and the stderr bytes written so far (stdout's are the rest).
    next_seq: u64,
    err_total: u64,
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
        if let Some(legacy) = existing.last().filter(|l| l.path.parent() != Some(dir)) {
            let to = dir.join(segment_name(0));
            std::fs::rename(&legacy.path, &to).map_err(|source| LogError::Open { path: to.clone(), source })?;
            let _ = std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600));
        }
        let existing = segments(dir)?;
        sweep_orphans(dir);
        index_legacy(&existing)?;
        let mut writer = match existing.last() {
            Some(_) => reopen(dir, limits, &existing)?,
            None => {
                let header = Record { time_ns: now_ns(), seq: 0, offset: 0, err_before: 0, len: 0, stream: None };
                let (file, path, len, idx, idx_len) = open_segment(dir, &header)?;
                Writer {
                    dir: dir.to_path_buf(),
                    limits,
                    file,
                    path,
                    start: 0,
                    len,
                    idx,
                    idx_len,
                    next_seq: 0,
                    err_total: 0,
                }
            }
        };
        // The limits may be lower than those the log was written with.
        writer.prune()?;
        Ok(writer)
    }

    /// Appends `data`, read from `stream`. A segment that would pass `max_size` (its log and index
    /// together) takes the chunk's lines that fit, and the rest goes to a new segment; a line longer than a
    /// whole segment is cut. Each part gets a record, all with the time of this call.
    pub fn write(&mut self, stream: Stream, mut data: &[u8]) -> Result<(), LogError> {
        let time_ns = now_ns();
        while !data.is_empty() {
            let used = self.len + self.idx_len + RECORD as u64;
            let mut room = self.limits.max_size.saturating_sub(used);
            if self.len == 0 {
                // However small the limit, a segment takes a byte.
                room = room.max(1);
            }
            let room = room.min(u64::from(u32::MAX));
            if data.len() as u64 <= room {
                return self.append(stream, data, time_ns);
            }
            let window = &data[..room as usize];
            let cut = match window.iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                // A line that fills a whole segment by itself: cut it there.
                None if self.len == 0 => window.len(),
                // The line begins the next segment.
                None => 0,
            };
            self.append(stream, &data[..cut], time_ns)?;
            data = &data[cut..];
            self.rotate(time_ns)?;
        }
        Ok(())
    }

    /// Appends one chunk and its record, all or nothing: a write that fails (a full disk) is taken back
    /// from both files, so every later record still names its own bytes.
    fn append(&mut self, stream: Stream, data: &[u8], time_ns: u64) -> Result<(), LogError> {
        if data.is_empty() {
            return Ok(());
        }
        if let Err(source) = self.file.write_all(data) {
            let _ = self.file.set_len(self.len);
            return Err(LogError::Write { path: self.path.clone(), source });
        }
        let len = data.len() as u32;
        let record = Record {
            time_ns,
            seq: self.next_seq,
            offset: self.start + self.len,
            err_before: self.err_total,
            len,
            stream: Some(stream),
        };
        if let Err(e) = self.append_record(&record) {
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += u64::from(len);
        self.next_seq += 1;
        if stream == Stream::Stderr {
            self.err_total += u64::from(len);
        }
        Ok(())
    }

    /// Appends `record` to the index; one that fails is taken back whole, so the next stays aligned.
    fn append_record(&mut self, record: &Record) -> Result<(), LogError> {
        let ipath = index_path(&self.path);
        if let Err(source) = self.idx.write_all(&record.encode()) {
            let _ = self.idx.set_len(self.idx_len);
            return Err(LogError::Write { path: ipath, source });
        }
        self.idx_len += RECORD as u64;
        Ok(())
    }

    /// Begins the next segment where this one ends on disk, then deletes the oldest beyond `max_files`.
    fn rotate(&mut self, time_ns: u64) -> Result<(), LogError> {
        let len = self.file.metadata().map(|m| m.len()).unwrap_or(self.len);
        let start = self.start + len;
        let header =
            Record { time_ns, seq: self.next_seq, offset: start, err_before: self.err_total, len: 0, stream: None };
        let (file, path, len, idx, idx_len) = open_segment(&self.dir, &header)?;
        (self.file, self.path, self.start, self.len, self.idx, self.idx_len) = (file, path, start, len, idx, idx_len);
        self.prune()
    }

    fn prune(&mut self) -> Result<(), LogError> {
        let segments = segments(&self.dir)?;
        let excess = segments.len().saturating_sub(self.limits.max_files as usize);
        for old in segments.iter().take(excess).filter(|s| s.start < self.start) {
            // The log first: a reader that finds a log finds its index.
            for path in [old.path.clone(), index_path(&old.path)] {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => return Err(LogError::Remove { path, source }),
                }
            }
        }
        Ok(())
    }
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// Opens the newest of `existing` to go on in it: its index cut to whole records and rid of bad or
/// impossible last ones (a new one if its header is bad), and the bytes past the last record recorded as
/// stdout, timed by the log's mtime.
fn reopen(dir: &Path, limits: LogLimits, existing: &[Segment]) -> Result<Writer, LogError> {
    let k = existing.len() - 1;
    let seg = &existing[k];
    let (file, path, len) = open_log(dir, seg.start)?;
    let meta = file.metadata().map_err(|source| LogError::Open { path: path.clone(), source })?;
    let ipath = index_path(&path);
    let mut idx = open_index(&ipath)?;
    let ilen = idx.metadata().map_err(|source| LogError::Open { path: ipath.clone(), source })?.len();
    let mut idx_len = ilen - ilen % RECORD as u64;
    let record_at = |f: &File, i: u64| {
        let mut b = [0u8; RECORD];
        read_full(f, &mut b, i * RECORD as u64).map(|n| if n == RECORD { Record::decode(&b) } else { None })
    };
    let read_err = |source| LogError::Read { path: ipath.clone(), source };
    let header = record_at(&idx, 0).map_err(read_err)?.filter(|h| h.stream.is_none() && h.offset == seg.start);
    let header = match header {
        Some(h) => h,
        None => {
            // Counters from the segment before, if it has any to give.
            let prev = match k.checked_sub(1) {
                Some(j) => SegIndex::open(&existing[j], || legacy_seq(existing, j))?,
                None => None,
            };
            let (seq, err_before) = match &prev {
                Some(p) => {
                    p.last(LOOK_BACK)?.map_or((p.header.seq, p.header.err_before), |r| (r.next_seq(), r.err_after()))
                }
                None => (0, 0),
            };
            let h = Record { time_ns: mtime_ns(&meta), seq, offset: seg.start, err_before, len: 0, stream: None };
            write_index(&ipath, &[h])?;
            idx = open_index(&ipath)?;
            idx_len = RECORD as u64;
            h
        }
    };
    // Drop bad last records, and any that claim bytes the log does not hold.
    let end = seg.start + len;
    let mut last = header;
    while idx_len > RECORD as u64 {
        let r = record_at(&idx, idx_len / RECORD as u64 - 1).map_err(read_err)?;
        if let Some(r) = r.filter(|r| r.stream.is_some() && r.offset >= seg.start && r.end() <= end) {
            last = r;
            break;
        }
        idx_len -= RECORD as u64;
    }
    if idx_len != ilen {
        idx.set_len(idx_len).map_err(|source| LogError::Write { path: ipath.clone(), source })?;
    }
    let mut w = Writer {
        dir: dir.to_path_buf(),
        limits,
        file,
        path,
        start: seg.start,
        len,
        idx,
        idx_len,
        next_seq: last.next_seq(),
        err_total: last.err_after(),
    };
    // Bytes written but not recorded (the writer died between the two): stdout.
    let mut covered = last.end();
    while covered < end {
        let n = (end - covered).min(LEGACY_PIECE) as u32;
        let r = Record {
            time_ns: mtime_ns(&meta),
            seq: w.next_seq,
            offset: covered,
            err_before: w.err_total,
            len: n,
            stream: Some(Stream::Stdout),
        };
        w.append_record(&r)?;
        w.next_seq += 1;
        covered += u64::from(n);
    }
    Ok(w)
}

/// Gives each segment of `existing` without an index one (see [`legacy`]), numbered as readers number it.
fn index_legacy(existing: &[Segment]) -> Result<(), LogError> {
    for (k, seg) in existing.iter().enumerate() {
        if index_path(&seg.path).exists() {
            continue;
        }
        let meta = std::fs::metadata(&seg.path).map_err(|source| LogError::Open { path: seg.path.clone(), source })?;
        let (header, chunks) = legacy(seg.start, meta.len(), mtime_ns(&meta), legacy_seq(existing, k));
        let records: Vec<Record> = std::iter::once(header).chain(chunks).collect();
        write_index(&index_path(&seg.path), &records)?;
    }
    Ok(())
}

/// Removes the indexes (and their temporary files) of segments whose log is gone: what a writer that died
/// between the two steps of a new segment or of a deletion left.
fn sweep_orphans(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".idx").or_else(|| name.strip_suffix(".idx.tmp")) else { continue };
        if !dir.join(format!("{stem}.log")).exists() || name.ends_with(".tmp") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Writes `records` as the whole index at `path`, through a temporary file renamed into place (0600).
fn write_index(path: &Path, records: &[Record]) -> Result<(), LogError> {
    let tmp = path.with_extension("idx.tmp");
    let bytes: Vec<u8> = records.iter().flat_map(|r| r.encode()).collect();
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(&bytes)?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        LogError::Write { path: path.to_path_buf(), source }
    })
}

fn open_index(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| LogError::Open { path: path.to_path_buf(), source })
}

/// Opens (made 0600 if missing) the log of the segment that begins at `start`, for appending; with its length.
fn open_log(dir: &Path, start: u64) -> Result<(File, PathBuf, u64), LogError> {
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

/// Begins the segment whose header is `header`: its index first, then its log.
fn open_segment(dir: &Path, header: &Record) -> Result<(File, PathBuf, u64, File, u64), LogError> {
    let ipath = index_path(&dir.join(segment_name(header.offset)));
    write_index(&ipath, &[*header])?;
    let idx = open_index(&ipath)?;
    let (file, path, len) = open_log(dir, header.offset)?;
    Ok((file, path, len, idx, RECORD as u64))
}
