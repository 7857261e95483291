//! The index beside each log segment (`NNN.idx` beside `NNN.log`): fixed-size binary records, a header
//! and then one per chunk the monitor read, saying when it was read, from which stream, where its bytes
//! are and how many bytes of each stream came before it, so the stream views and `log_index` map an
//! offset to a record by binary search or arithmetic.
//!
//! A record is [`RECORD`] bytes, little-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | time the chunk was read, ns since the Unix epoch (the header: when the segment was begun) |
//! | 8..16 | `seq`: the chunk's number over the log's life (the header: the first chunk's of the segment) |
//! | 16..24 | `offset`: its first byte's logical offset in `logs` (the header: the segment's start) |
//! | 24..32 | `err_before`: stderr bytes before it over the log's life; stdout's are `offset - err_before` |
//! | 32..36 | `len`: its bytes (the header: 0) |
//! | 36 | kind: 0 header, 1 stdout, 2 stderr |
//! | 37 | version: 1 |
//! | 38..40 | check: FNV-1a of bytes 0..38, folded to 16 bits |
//!
//! Read leniently: a torn last record (the file's length not a multiple of [`RECORD`]) is not there, and a
//! record that fails its check is `None`, never a panic. A segment with no index (one written before
//! indexes existed) reads as one stdout chunk per GiB of it, timed by the segment's mtime ([`legacy`]).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::{read_full, LogError, Segment};

/// The size of one record.
pub const RECORD: usize = 40;

/// How many records back from a segment's end its last readable one is looked for (by a reader, and by
/// a writer that reopens the segment).
pub(super) const LOOK_BACK: u64 = 4096;
const VERSION: u8 = 1;

/// The most bytes a record of a legacy segment stands for.
pub(super) const LEGACY_PIECE: u64 = 1 << 30;

/// Which of the process's outputs a chunk came from. A terminal's output is stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    /// The stream of what the monitor read from its source `i`: 1 is the stderr pipe; 0, the stdout pipe,
    /// and any other (a terminal's master, 2) are stdout.
    pub fn from_pipe(i: usize) -> Stream {
        if i == 1 {
            Stream::Stderr
        } else {
            Stream::Stdout
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// A header (`stream` None, `len` 0) or a chunk's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub time_ns: u64,
    pub seq: u64,
    pub offset: u64,
    pub err_before: u64,
    pub len: u32,
    pub stream: Option<Stream>,
}

impl Record {
    pub fn encode(&self) -> [u8; RECORD] {
        let mut b = [0u8; RECORD];
        b[0..8].copy_from_slice(&self.time_ns.to_le_bytes());
        b[8..16].copy_from_slice(&self.seq.to_le_bytes());
        b[16..24].copy_from_slice(&self.offset.to_le_bytes());
        b[24..32].copy_from_slice(&self.err_before.to_le_bytes());
        b[32..36].copy_from_slice(&self.len.to_le_bytes());
        b[36] = match self.stream {
            None => 0,
            Some(Stream::Stdout) => 1,
            Some(Stream::Stderr) => 2,
        };
        b[37] = VERSION;
        let check = check(&b[..38]);
        b[38..40].copy_from_slice(&check.to_le_bytes());
        b
    }

    /// The record in `b`, if it is one: right length, version, kind and check, and fields that agree.
    pub fn decode(b: &[u8]) -> Option<Record> {
        if b.len() != RECORD || b[37] != VERSION || u16::from_le_bytes([b[38], b[39]]) != check(&b[..38]) {
            return None;
        }
        let u64_at = |i: usize| b.get(i..i + 8).and_then(|s| s.try_into().ok()).map(u64::from_le_bytes);
        let len = u32::from_le_bytes(b.get(32..36)?.try_into().ok()?);
        let stream = match b[36] {
            0 if len == 0 => None,
            1 if len > 0 => Some(Stream::Stdout),
            2 if len > 0 => Some(Stream::Stderr),
            _ => return None,
        };
        let r =
            Record { time_ns: u64_at(0)?, seq: u64_at(8)?, offset: u64_at(16)?, err_before: u64_at(24)?, len, stream };
        (r.err_before <= r.offset && r.offset.checked_add(u64::from(len)).is_some() && r.seq <= u64::MAX / 128)
            .then_some(r)
    }

    /// The logical offset just past its bytes.
    pub fn end(&self) -> u64 {
        self.offset + u64::from(self.len)
    }

    /// Stdout bytes before it.
    pub fn out_before(&self) -> u64 {
        self.offset - self.err_before
    }

    /// Stderr bytes up to its end.
    pub fn err_after(&self) -> u64 {
        self.err_before + if self.stream == Some(Stream::Stderr) { u64::from(self.len) } else { 0 }
    }

    /// The number of the chunk after it.
    pub fn next_seq(&self) -> u64 {
        self.seq + u64::from(self.stream.is_some())
    }
}

/// FNV-1a, 32 bits, xor-folded to 16.
fn check(b: &[u8]) -> u16 {
    let h = b.iter().fold(0x811c_9dc5u32, |h, &x| (h ^ u32::from(x)).wrapping_mul(0x0100_0193));
    ((h >> 16) ^ (h & 0xffff)) as u16
}

/// The index file of the segment whose log is at `log`.
pub fn index_path(log: &Path) -> PathBuf {
    log.with_extension("idx")
}

/// The records of a legacy segment (no index): a header at its start and stdout chunks of at most
/// [`LEGACY_PIECE`] bytes, numbered from `seq`, timed by its mtime; every byte before it counted as stdout.
pub fn legacy(start: u64, len: u64, time_ns: u64, seq: u64) -> (Record, impl Iterator<Item = Record>) {
    let header = Record { time_ns, seq, offset: start, err_before: 0, len: 0, stream: None };
    let pieces = len.div_ceil(LEGACY_PIECE);
    let chunks = (0..pieces).map(move |i| {
        let at = i * LEGACY_PIECE;
        let len = (len - at).min(LEGACY_PIECE) as u32;
        Record { time_ns, seq: seq + i, offset: start + at, err_before: 0, len, stream: Some(Stream::Stdout) }
    });
    (header, chunks)
}

/// A file's mtime in ns since the epoch (0 if it has none to give).
pub fn mtime_ns(meta: &std::fs::Metadata) -> u64 {
    meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos() as u64)
}

/// One segment's records as a reader sees them: from its index file, or made up for a legacy segment.
pub(super) struct SegIndex {
    pub seg: Segment,
    pub header: Record,
    /// Chunk records, the header not counted.
    pub count: u64,
    /// The log file, open, and its length when this was made.
    pub log: File,
    pub log_len: u64,
    source: Source,
}

enum Source {
    File(File),
    Legacy,
}

/// How many records a batch read takes.
const BATCH: u64 = 102;

impl SegIndex {
    /// The index of `seg`; `legacy_seq` numbers its chunks if it has no index. `None` if the segment was
    /// deleted meanwhile (a rotation: list again).
    pub fn open(seg: &Segment, legacy_seq: impl FnOnce() -> u64) -> Result<Option<SegIndex>, LogError> {
        let log = match File::open(&seg.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(LogError::Open { path: seg.path.clone(), source }),
        };
        let meta = log.metadata().map_err(|source| LogError::Read { path: seg.path.clone(), source })?;
        let path = index_path(&seg.path);
        let found = match File::open(&path) {
            Ok(f) => Some(f),
            // Pruned after the listing (its log goes first) or never made: the log tells which.
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => return Err(LogError::Open { path, source }),
        };
        let from_file = match found {
            Some(f) => {
                let len = f.metadata().map_err(|source| LogError::Read { path: path.clone(), source })?.len();
                let header = read_record(&f, 0).map_err(|source| LogError::Read { path: path.clone(), source })?;
                header.filter(|h| h.stream.is_none() && h.offset == seg.start).map(|h| (f, h, len))
            }
            None if !seg.path.exists() => return Ok(None),
            None => None,
        };
        let ix = match from_file {
            Some((f, header, len)) => {
                let count = (len / RECORD as u64).saturating_sub(1);
                SegIndex { seg: seg.clone(), header, count, log, log_len: meta.len(), source: Source::File(f) }
            }
            // No index, or one whose header can't be read: the whole segment as stdout.
            None => {
                let (header, _) = legacy(seg.start, meta.len(), mtime_ns(&meta), legacy_seq());
                let count = meta.len().div_ceil(LEGACY_PIECE);
                SegIndex { seg: seg.clone(), header, count, log, log_len: meta.len(), source: Source::Legacy }
            }
        };
        Ok(Some(ix))
    }

    /// Chunk records `from..` (at most [`BATCH`], fewer at the end), each `None` if it can't be read.
    pub fn chunks(&self, from: u64) -> Result<Vec<Option<Record>>, LogError> {
        let n = self.count.saturating_sub(from).min(BATCH);
        match &self.source {
            Source::Legacy => {
                let (_, all) = legacy(self.seg.start, self.log_len, self.header.time_ns, self.header.seq);
                Ok(all.skip(from as usize).take(n as usize).map(Some).collect())
            }
            Source::File(f) => {
                let mut buf = vec![0u8; n as usize * RECORD];
                let got = read_full(f, &mut buf, (from + 1) * RECORD as u64)
                    .map_err(|source| LogError::Read { path: index_path(&self.seg.path), source })?;
                Ok(buf[..got - got % RECORD].chunks(RECORD).map(Record::decode).collect())
            }
        }
    }

    /// Chunk record `i`, if it can be read.
    pub fn chunk(&self, i: u64) -> Result<Option<Record>, LogError> {
        if i >= self.count {
            return Ok(None);
        }
        Ok(self.chunks(i)?.into_iter().next().flatten())
    }

    /// The last chunk record that can be read, looking back at most `look` records; `None` if none.
    pub fn last(&self, look: u64) -> Result<Option<Record>, LogError> {
        let from = self.count.saturating_sub(look);
        let mut at = self.count;
        while at > from {
            let batch_from = at.saturating_sub(BATCH).max(from);
            let batch = self.chunks(batch_from)?;
            let upto = (at - batch_from) as usize;
            if let Some(r) = batch.iter().take(upto).rev().flatten().next() {
                return Ok(Some(*r));
            }
            at = batch_from;
        }
        Ok(None)
    }
}

fn read_record(f: &File, i: u64) -> io::Result<Option<Record>> {
    let mut b = [0u8; RECORD];
    let got = read_full(f, &mut b, i * RECORD as u64)?;
    Ok(if got == RECORD { Record::decode(&b) } else { None })
}
