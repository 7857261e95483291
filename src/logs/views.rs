//! The views of a log beside `logs` itself, read through the segments' indexes ([`super::index`]): `stdout`
//! and `stderr`, one stream's bytes each in the order written, and `log_index`, a fixed-width text line per
//! chunk. Each view has its own logical offsets over the log's life, as `logs` has (a stream view's are the
//! stream's bytes before, `log_index`'s the chunk's number times [`INDEX_LINE`]), so a reader's base and
//! its reads across rotations work as for `logs`. A reader binary-searches the segments by their headers,
//! then the records of one segment; `log_index` needs no search within a segment at all.

use std::fs::File;
use std::io;

use super::index::{Record, SegIndex, Stream, LEGACY_PIECE, LOOK_BACK};
use super::{extent, read_at, read_full, segments, Extent, LogError, Segment, RETRIES};

/// What a log file of the tree shows of a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogView {
    /// Both streams as written: the segments' bytes.
    Logs,
    Stdout,
    Stderr,
    /// `TIME STREAM OFFSET LENGTH\n`, [`INDEX_LINE`] bytes, a line per chunk.
    Index,
}

/// The length of a `log_index` line: a 30-byte time, a 6-byte stream, two 20-digit numbers, 3 spaces and
/// the newline.
pub const INDEX_LINE: u64 = 80;

/// The widest span of a segment read in one go to pick a stream's pieces out of it.
const SPAN: u64 = 1 << 20;

impl LogView {
    fn stream(self) -> Option<Stream> {
        match self {
            LogView::Stdout => Some(Stream::Stdout),
            LogView::Stderr => Some(Stream::Stderr),
            LogView::Logs | LogView::Index => None,
        }
    }

    /// The view's offset at record `r` (a header's, or a chunk's first byte).
    fn before(self, r: &Record) -> u64 {
        match self {
            LogView::Logs => r.offset,
            LogView::Stdout => r.out_before(),
            LogView::Stderr => r.err_before,
            LogView::Index => r.seq.saturating_mul(INDEX_LINE),
        }
    }

    /// How many bytes of the view chunk `r` is.
    fn len_of(self, r: &Record) -> u64 {
        match self {
            LogView::Logs => u64::from(r.len),
            LogView::Index => INDEX_LINE * u64::from(r.stream.is_some()),
            stream if r.stream == stream.stream() => u64::from(r.len),
            _ => 0,
        }
    }

    fn after(self, r: &Record) -> u64 {
        self.before(r).saturating_add(self.len_of(r))
    }
}

/// The number a legacy segment's first chunk takes: one per [`LEGACY_PIECE`] of every segment before it,
/// as the writer numbers them when it gives them indexes.
pub(super) fn legacy_seq(segs: &[Segment], k: usize) -> u64 {
    let len = |s: &Segment| std::fs::metadata(&s.path).map_or(0, |m| m.len());
    segs.iter().take(k).map(|s| len(s).div_ceil(LEGACY_PIECE)).sum()
}

fn open(segs: &[Segment], k: usize) -> Result<Option<SegIndex>, LogError> {
    match segs.get(k) {
        Some(seg) => SegIndex::open(seg, || legacy_seq(segs, k)),
        None => Ok(None),
    }
}

fn again(dir: &std::path::Path) -> LogError {
    LogError::List { path: dir.to_path_buf(), source: io::Error::from_raw_os_error(libc::EAGAIN) }
}

/// The extent of `view` of the log in `dir`; empty at 0 if it has no segment yet.
pub fn view_extent(dir: &std::path::Path, view: LogView) -> Result<Extent, LogError> {
    if view == LogView::Logs {
        return extent(dir);
    }
    'list: for _ in 0..RETRIES {
        let segs = segments(dir)?;
        if segs.is_empty() {
            return Ok(Extent::default());
        }
        let Some(first) = open(&segs, 0)? else { continue 'list };
        let Some(last) = open(&segs, segs.len() - 1)? else { continue 'list };
        let start = view.before(&first.header);
        let end = match view {
            LogView::Index => last.header.seq.saturating_add(last.count).saturating_mul(INDEX_LINE),
            _ => last.last(LOOK_BACK)?.map_or(view.before(&last.header), |r| view.after(&r)),
        };
        return Ok(Extent { start, end: end.max(start) });
    }
    Err(again(dir))
}

/// Up to `size` bytes of `view` of the log in `dir` from its logical offset `offset`; fewer at its end.
/// [`LogError::Gone`] if `offset` is before what is kept.
pub fn view_read_at(dir: &std::path::Path, view: LogView, offset: u64, size: usize) -> Result<Vec<u8>, LogError> {
    if view == LogView::Logs {
        return read_at(dir, offset, size);
    }
    'list: for _ in 0..RETRIES {
        let segs = segments(dir)?;
        let Some(first) = open(&segs, 0)? else {
            if segs.is_empty() {
                return Ok(Vec::new());
            }
            continue 'list;
        };
        let oldest = view.before(&first.header);
        if offset < oldest {
            return Err(LogError::Gone { offset, oldest });
        }
        // The last segment whose header is at or before `offset`.
        let (mut lo, mut hi) = (0usize, segs.len());
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            match open(&segs, mid)? {
                Some(ix) if view.before(&ix.header) <= offset => lo = mid,
                Some(_) => hi = mid,
                None => continue 'list,
            }
        }
        let mut out = Vec::with_capacity(size.min(1 << 20));
        let mut pos = offset;
        for k in lo..segs.len() {
            let Some(ix) = open(&segs, k)? else { continue 'list };
            let done = match view {
                LogView::Index => index_lines(&ix, &mut pos, size, &mut out)?,
                _ => stream_bytes(&ix, view, &mut pos, size, &mut out)?,
            };
            if done || out.len() >= size {
                break;
            }
        }
        return Ok(out);
    }
    Err(again(dir))
}

/// Appends the `log_index` lines of `ix` from byte `pos` on; true if the view ends here (a gap).
fn index_lines(ix: &SegIndex, pos: &mut u64, size: usize, out: &mut Vec<u8>) -> Result<bool, LogError> {
    let line = *pos / INDEX_LINE;
    let Some(mut i) = line.checked_sub(ix.header.seq) else { return Ok(true) };
    while i < ix.count && out.len() < size {
        let batch = ix.chunks(i)?;
        if batch.is_empty() {
            break;
        }
        for r in &batch {
            let text = index_line(r.as_ref());
            let skip = (*pos % INDEX_LINE) as usize;
            let take = (text.len() - skip).min(size - out.len());
            out.extend_from_slice(&text[skip..skip + take]);
            *pos += take as u64;
            if out.len() >= size {
                return Ok(false);
            }
        }
        i += batch.len() as u64;
    }
    Ok(false)
}

/// The `log_index` line of a chunk; one that can't be read shows the epoch, stdout, offset 0, length 0.
pub fn index_line(r: Option<&Record>) -> Vec<u8> {
    let (time, stream, offset, len) = match r {
        Some(r) => (r.time_ns, r.stream.unwrap_or(Stream::Stdout), r.offset, r.len),
        None => (0, Stream::Stdout, 0, 0),
    };
    format!("{} {} {offset:020} {len:020}\n", crate::times::rfc3339_nanos(time), stream.name()).into_bytes()
}

/// Appends the bytes of `view`'s stream in `ix` from the view's offset `pos` on, moving `pos`; true if the
/// view ends here (its bytes are not all on disk yet).
fn stream_bytes(ix: &SegIndex, view: LogView, pos: &mut u64, size: usize, out: &mut Vec<u8>) -> Result<bool, LogError> {
    // The first chunk that ends past `pos`; one that can't be read counts as before it.
    let (mut lo, mut hi) = (0u64, ix.count);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match ix.chunk(mid)? {
            Some(r) if view.after(&r) > *pos => hi = mid,
            _ => lo = mid + 1,
        }
    }
    let mut i = lo;
    while i < ix.count && out.len() < size {
        let batch = ix.chunks(i)?;
        if batch.is_empty() {
            break;
        }
        i += batch.len() as u64;
        // Where in the segment file each piece is, and how long.
        let mut pieces: Vec<(u64, usize)> = Vec::new();
        let mut want = size - out.len();
        let mut gap = false;
        for r in batch.iter().flatten() {
            if view.len_of(r) == 0 || view.after(r) <= *pos {
                continue;
            }
            // Bytes of this stream no record names (a damaged one): what came before goes alone, so no
            // byte is served at two offsets; at the gap itself, it reads as NUL bytes, as long as it is.
            if view.before(r) > *pos {
                if pieces.is_empty() && out.is_empty() {
                    let fill = (view.before(r) - *pos).min(want as u64) as usize;
                    out.resize(out.len() + fill, 0);
                    *pos += fill as u64;
                }
                gap = true;
                break;
            }
            let skip = pos.saturating_sub(view.before(r));
            let take = (view.len_of(r) - skip).min(want as u64) as usize;
            let Some(at) = (r.offset + skip).checked_sub(ix.seg.start) else { continue };
            pieces.push((at, take));
            *pos = view.before(r) + skip + take as u64;
            want -= take;
            if want == 0 {
                break;
            }
        }
        if !read_pieces(&ix.log, &pieces, out).map_err(|source| LogError::Read { path: ix.seg.path.clone(), source })? {
            return Ok(true);
        }
        if gap {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Appends the pieces of `file`, in one read of their span when it is narrow enough; false if the file
/// ended before the last.
fn read_pieces(file: &File, pieces: &[(u64, usize)], out: &mut Vec<u8>) -> io::Result<bool> {
    let (Some(first), Some(last)) = (pieces.first(), pieces.last()) else { return Ok(true) };
    let span_end = last.0.saturating_add(last.1 as u64);
    let ordered = pieces.windows(2).all(|w| w[0].0.saturating_add(w[0].1 as u64) <= w[1].0);
    if ordered && span_end >= first.0 && span_end - first.0 <= SPAN {
        let mut buf = vec![0u8; (span_end - first.0) as usize];
        let got = read_full(file, &mut buf, first.0)?;
        for &(at, len) in pieces {
            let from = at.saturating_sub(first.0) as usize;
            let Some(bytes) = buf.get(from..(from + len).min(got)) else { return Ok(false) };
            out.extend_from_slice(bytes);
            if bytes.len() < len {
                return Ok(false);
            }
        }
        return Ok(true);
    }
    for &(at, len) in pieces {
        let mut buf = vec![0u8; len];
        let got = read_full(file, &mut buf, at)?;
        out.extend_from_slice(&buf[..got]);
        if got < len {
            return Ok(false);
        }
    }
    Ok(true)
}
