//! `bocker logs [-f] [--tail N|all] [--since T] [-t] NAME`, through the mounted files only: `log_index`
//! says each chunk's time, stream, offset in `logs` and length, and `logs` holds the bytes. Each stream is
//! cut into lines of its own (a line's time is its first byte's), printed to the CLI's stdout or stderr as
//! the container wrote it, in the order the lines were completed, as `docker logs` does.
//!
//! `log_index`'s first line is the oldest chunk kept when it was opened, whose offset is where `logs`
//! begins for a reader that opened it at the same time: `log_index` is opened before and after `logs`,
//! and again until both opens show the same first line (no rotation came between), so that offset is
//! `logs`' base. `--tail` reads back from the end only as far as its lines and their beginnings go;
//! `--since` finds its first chunk by binary search (the lines are of one width).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;

use super::since::rfc3339;
use super::{copy_err, io_err, stdout_failed, Cli, CliError};
use crate::logs::{Stream, INDEX_LINE};

/// `bocker logs`' flags, as Docker spells them.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct LogsOptions {
    /// Follow the output until the container has exited.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Show only the last N lines (of both streams together), or all.
    #[arg(short = 'n', long, value_name = "N|all", value_parser = tail_arg)]
    pub tail: Option<Tail>,
    /// Show only the lines from T on: an RFC 3339 time (2026-12-01T17:00:00Z; no zone is UTC), a duration
    /// before now (10m, 1h30m, 42s) or Unix seconds.
    #[arg(long, value_name = "T", value_parser = super::since::since_arg)]
    pub since: Option<u64>,
    /// Put each line's time first, RFC 3339 to the ns (2026-12-01T17:00:00.123456789Z line).
    #[arg(short = 't', long)]
    pub timestamps: bool,
}

/// `--tail`'s value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    All,
    Last(u64),
}

fn tail_arg(s: &str) -> Result<Tail, String> {
    match s {
        "all" => Ok(Tail::All),
        n => n.parse().map(Tail::Last).map_err(|_| format!("'{n}' is not a number of lines (or all)")),
    }
}

/// One chunk, as a `log_index` line gives it.
#[derive(Debug, Clone, Copy)]
struct Rec {
    time_ns: u64,
    stream: Stream,
    offset: u64,
    len: u64,
}

fn parse_line(l: &[u8]) -> Option<Rec> {
    let l = std::str::from_utf8(l).ok()?;
    let mut f = l.strip_suffix('\n')?.split(' ');
    let time_ns = u64::try_from(rfc3339(f.next()?)?).ok()?;
    let stream = match f.next()? {
        "stdout" => Stream::Stdout,
        "stderr" => Stream::Stderr,
        _ => return None,
    };
    Some(Rec { time_ns, stream, offset: f.next()?.parse().ok()?, len: f.next()?.parse().ok()? })
}

fn slot(s: Stream) -> usize {
    usize::from(s == Stream::Stderr)
}

/// How many `log_index` lines a read takes at most.
const BLOCK: u64 = 1024;
/// The widest span of `logs` read in one go for a block of chunks.
const SPAN: u64 = 8 << 20;

/// The open `log_index` and `logs` of one container, and `logs`' base once known.
struct Reader {
    index: File,
    logs: File,
    base: Option<u64>,
}

fn gone(e: io::Error) -> CliError {
    match e.raw_os_error() {
        Some(libc::ENODATA) => {
            CliError::Failed("the log rotated past what was read: its output comes faster than it can be read".into())
        }
        _ => CliError::Io { what: "cannot read the logs".into(), source: e },
    }
}

impl Reader {
    /// Opens `DIR/log_index` and `DIR/logs` at one base; `None` if the daemon has no `log_index`.
    fn open(cli: &Cli, dir: &str) -> Result<Option<Reader>, CliError> {
        let open = |name: &str| File::open(cli.path(&format!("{dir}/{name}")));
        for _ in 0..100 {
            let index = match open("log_index") {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound && cli.path(dir).is_dir() => return Ok(None),
                Err(e) => return Err(io_err("cannot open log_index")(e)),
            };
            let logs = open("logs").map_err(io_err("cannot open the logs"))?;
            let again = open("log_index").map_err(io_err("cannot open log_index"))?;
            let first = |f: &File| -> io::Result<Vec<u8>> {
                let mut b = vec![0u8; INDEX_LINE as usize];
                let n = f.read_at(&mut b, 0)?;
                b.truncate(n);
                Ok(b)
            };
            match (first(&index), first(&again)) {
                (Ok(a), Ok(b)) if a == b => {
                    let base = parse_line(&a).filter(|r| r.len > 0).map(|r| r.offset);
                    return Ok(Some(Reader { index, logs, base }));
                }
                // A rotation came between the opens.
                _ => continue,
            }
        }
        Err(CliError::Failed("the log rotates faster than it can be opened".into()))
    }

    /// `log_index` lines `from..from + n` (fewer at its end), parsed.
    fn records(&mut self, from: u64, n: u64) -> Result<Vec<Rec>, CliError> {
        let mut buf = vec![0u8; (n * INDEX_LINE) as usize];
        let got = crate::logs::read_full(&self.index, &mut buf, from * INDEX_LINE).map_err(gone)?;
        // A line that does not parse stands for nothing (length 0), so lines and records stay one to one.
        let nothing = Rec { time_ns: 0, stream: Stream::Stdout, offset: 0, len: 0 };
        let recs: Vec<Rec> = buf[..got - got % INDEX_LINE as usize]
            .chunks(INDEX_LINE as usize)
            .map(|l| parse_line(l).unwrap_or(nothing))
            .collect();
        if from == 0 && self.base.is_none() {
            self.base = recs.first().filter(|r| r.len > 0).map(|r| r.offset);
        }
        Ok(recs)
    }

    /// How many lines `log_index` has now, through this open file.
    fn count(&mut self) -> Result<u64, CliError> {
        use std::io::Seek;
        let end = self.index.seek(io::SeekFrom::End(0)).map_err(gone)? / INDEX_LINE;
        if end > 0 && self.base.is_none() {
            self.records(0, 1)?;
        }
        Ok(end)
    }

    /// Hands the bytes of each of `recs` (by its index) to `f`, from `logs`, in order, in parts of at most
    /// [`SPAN`]; a block's chunks are read in one go when they lie close enough.
    fn for_bytes(&self, recs: &[Rec], mut f: impl FnMut(usize, &[u8])) -> Result<(), CliError> {
        let base = self.base.unwrap_or(0);
        let at = |r: &Rec| r.offset.saturating_sub(base);
        let read = |at: u64, len: u64| -> Result<Vec<u8>, CliError> {
            let mut b = vec![0u8; len.min(SPAN) as usize];
            let got = crate::logs::read_full(&self.logs, &mut b, at).map_err(gone)?;
            b.truncate(got);
            Ok(b)
        };
        let some = || recs.iter().filter(|r| r.len > 0);
        let (Some(first), Some(last)) = (some().next(), some().next_back()) else { return Ok(()) };
        let (lo, hi) = (at(first), at(last).saturating_add(last.len));
        if hi >= lo && hi - lo <= SPAN && some().all(|r| at(r) >= lo) {
            let span = read(lo, hi - lo)?;
            for (i, r) in recs.iter().enumerate().filter(|(_, r)| r.len > 0) {
                let from = (at(r) - lo).min(span.len() as u64) as usize;
                f(i, &span[from..from.saturating_add(r.len as usize).min(span.len())]);
            }
            return Ok(());
        }
        for (i, r) in recs.iter().enumerate().filter(|(_, r)| r.len > 0) {
            let mut done = 0;
            while done < r.len {
                let part = read(at(r).saturating_add(done), r.len - done)?;
                if part.is_empty() {
                    break;
                }
                done += part.len() as u64;
                f(i, &part);
            }
        }
        Ok(())
    }

    /// Each stream's last chunk before line `line` and that chunk's last byte, if the stream wrote any:
    /// back over `log_index` until both are found.
    fn last_bytes_before(&mut self, line: u64) -> Result<[Option<(u64, u8)>; 2], CliError> {
        let mut last: [Option<(u64, Rec)>; 2] = [None, None];
        let mut end = line;
        while end > 0 && last.iter().any(Option::is_none) {
            let from = end.saturating_sub(BLOCK);
            let recs = self.records(from, end - from)?;
            for (i, r) in recs.iter().enumerate().rev().filter(|(_, r)| r.len > 0) {
                let s = slot(r.stream);
                if last[s].is_none() {
                    last[s] = Some((from + i as u64, *r));
                }
            }
            end = from;
        }
        let mut bytes = [None, None];
        for (s, found) in last.iter().enumerate() {
            if let Some((at, r)) = found {
                let one = Rec { offset: r.offset.saturating_add(r.len - 1), len: 1, ..*r };
                self.for_bytes(&[one], |_, b| bytes[s] = b.first().map(|b| (*at, *b)))?;
            }
        }
        Ok(bytes)
    }

    /// The first line whose chunk is from `since` on (chunks are in time order), and for each stream
    /// whether its first line from there began before (to be left out).
    fn since_start(&mut self, since: u64, end: u64) -> Result<(u64, [bool; 2]), CliError> {
        let (mut lo, mut hi) = (0, end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.records(mid, 1)?.first() {
                Some(r) if r.time_ns >= since => hi = mid,
                _ => lo = mid + 1,
            }
        }
        let before = self.last_bytes_before(lo)?;
        Ok((lo, before.map(|b| b.is_some_and(|(_, b)| b != b'\n'))))
    }

    /// A line from which reading on holds the last `n` lines whole. The lines in the order they are
    /// printed: those ended by a newline as they end, then the streams' last lines without one, in the
    /// order of their last bytes. So back from the end: those last lines first, then newline by newline
    /// until `n` lines have ended, then on until each stream among them shows where its first one began.
    fn tail_start(&mut self, n: u64, end: u64) -> Result<u64, CliError> {
        let (mut ended, mut involved, mut found) = (0u64, [false; 2], [false; 2]);
        let mut unended: Vec<(u64, usize)> = self
            .last_bytes_before(end)?
            .iter()
            .enumerate()
            .filter_map(|(s, b)| b.filter(|(_, b)| *b != b'\n').map(|(at, _)| (at, s)))
            .collect();
        unended.sort_by(|a, b| b.cmp(a));
        for (_, s) in unended.iter().take(n as usize) {
            involved[*s] = true;
            ended += 1;
        }
        let mut to = end;
        while to > 0 {
            let from = to.saturating_sub(BLOCK);
            let recs = self.records(from, to - from)?;
            let mut newlines = vec![0u64; recs.len()];
            self.for_bytes(&recs, |i, b| newlines[i] += b.iter().filter(|&&c| c == b'\n').count() as u64)?;
            for (i, r) in recs.iter().enumerate().rev() {
                let s = slot(r.stream);
                // Back from the chunk's end: its newlines end lines to keep while fewer than `n` have
                // ended; past that, one ends the line before the first of this stream's kept.
                let keep = newlines[i].min(n - ended);
                ended += keep;
                involved[s] |= keep > 0;
                found[s] |= involved[s] && newlines[i] > keep;
                if ended >= n && (0..2).all(|k| !involved[k] || found[k]) {
                    return Ok(from + i as u64);
                }
            }
            to = from;
        }
        Ok(0)
    }
}

/// A line of one stream, with its first byte's time.
struct Line {
    time_ns: u64,
    stream: Stream,
    bytes: Vec<u8>,
}

/// Cuts each stream into lines.
#[derive(Default)]
struct Lines {
    partial: [Vec<u8>; 2],
    started: [u64; 2],
    /// When each stream was last fed, counted in feeds.
    fed: [u64; 2],
    feeds: u64,
    /// The first line of the stream began before what is read: it is left out.
    cut: [bool; 2],
}

impl Lines {
    fn feed(&mut self, r: &Rec, mut bytes: &[u8], emit: &mut impl FnMut(Line)) {
        let s = slot(r.stream);
        self.feeds += 1;
        self.fed[s] = self.feeds;
        while !bytes.is_empty() {
            if self.partial[s].is_empty() {
                self.started[s] = r.time_ns;
            }
            let n = bytes.iter().position(|&b| b == b'\n').map_or(bytes.len(), |i| i + 1);
            self.partial[s].extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.partial[s].ends_with(b"\n") {
                let line =
                    Line { time_ns: self.started[s], stream: r.stream, bytes: std::mem::take(&mut self.partial[s]) };
                if !std::mem::take(&mut self.cut[s]) {
                    emit(line);
                }
            }
        }
    }

    /// The lines left without their newline: the streams' last, in the order they were last written to.
    fn finish(&mut self, emit: &mut impl FnMut(Line)) {
        let mut order = [Stream::Stdout, Stream::Stderr];
        order.sort_by_key(|s| self.fed[slot(*s)]);
        for s in order {
            let bytes = std::mem::take(&mut self.partial[slot(s)]);
            if !bytes.is_empty() && !std::mem::take(&mut self.cut[slot(s)]) {
                emit(Line { time_ns: self.started[slot(s)], stream: s, bytes });
            }
        }
    }
}

/// Where lines go: the CLI's stdout or stderr, as their stream, flushed at each change of stream.
struct Sink {
    timestamps: bool,
    out: BufWriter<io::Stdout>,
    err: BufWriter<io::Stderr>,
    last: Option<Stream>,
}

impl Sink {
    fn put_since(&mut self, line: &Line, since: u64) {
        if line.time_ns >= since {
            self.put(line);
        }
    }

    fn put(&mut self, line: &Line) {
        if self.last.is_some_and(|l| l != line.stream) {
            self.flush();
        }
        self.last = Some(line.stream);
        let stamp =
            if self.timestamps { format!("{} ", crate::times::rfc3339_nanos(line.time_ns)) } else { String::new() };
        let wrote = match line.stream {
            Stream::Stdout => self.out.write_all(stamp.as_bytes()).and_then(|()| self.out.write_all(&line.bytes)),
            Stream::Stderr => self.err.write_all(stamp.as_bytes()).and_then(|()| self.err.write_all(&line.bytes)),
        };
        if let Err(e) = wrote {
            self.failed(line.stream, &e);
        }
    }

    fn flush(&mut self) {
        if let Err(e) = self.out.flush() {
            self.failed(Stream::Stdout, &e);
        }
        let _ = self.err.flush();
    }

    fn failed(&self, stream: Stream, e: &io::Error) {
        // A closed stdout ends the command, as any Unix tool's; a closed stderr is left alone.
        if stream == Stream::Stdout {
            stdout_failed(e);
        }
    }
}

/// Reads what `log_index` has now, from where `opts` say, into `emit`: from `--since` on, only the last
/// `--tail` lines (kept until the end); without `-f` the streams' last lines without a newline too. Returns
/// the line of `log_index` to go on from.
fn initial(
    r: &mut Reader,
    opts: &LogsOptions,
    lines: &mut Lines,
    emit: &mut impl FnMut(Line),
) -> Result<u64, CliError> {
    let end = r.count()?;
    let mut at = match (opts.since, opts.tail) {
        (Some(t), _) => {
            let (line, cut) = r.since_start(t, end)?;
            lines.cut = cut;
            line
        }
        (None, Some(Tail::Last(0))) => end,
        (None, Some(Tail::Last(n))) => r.tail_start(n, end)?,
        _ => 0,
    };
    let since = opts.since.unwrap_or(0);
    let keep = match opts.tail {
        Some(Tail::Last(n)) => Some(n),
        _ => None,
    };
    let mut ring: VecDeque<Line> = VecDeque::new();
    let mut take = |l: Line| match keep {
        _ if l.time_ns < since => {}
        None => emit(l),
        Some(0) => {}
        Some(n) => {
            if ring.len() as u64 == n {
                ring.pop_front();
            }
            ring.push_back(l);
        }
    };
    while at < end {
        let recs = r.records(at, BLOCK.min(end - at))?;
        if recs.is_empty() {
            break;
        }
        r.for_bytes(&recs, |i, b| lines.feed(&recs[i], b, &mut take))?;
        at += recs.len() as u64;
    }
    if !opts.follow {
        lines.finish(&mut take);
    }
    ring.into_iter().for_each(emit);
    Ok(at)
}

impl Cli {
    /// `bocker logs [-f] [--tail N|all] [--since T] [-t] NAME`.
    pub fn logs(&self, id: &str, opts: &LogsOptions) -> Result<i32, CliError> {
        let dir = format!("containers/{id}");
        if id.is_empty() || id.contains('/') || !self.path(&dir).is_dir() {
            return Err(CliError::NoContainer(id.to_string()));
        }
        let Some(mut r) = Reader::open(self, &dir)? else { return self.logs_without_index(&dir, opts) };
        let mut sink = Sink {
            timestamps: opts.timestamps,
            out: BufWriter::new(io::stdout()),
            err: BufWriter::new(io::stderr()),
            last: None,
        };
        let since = opts.since.unwrap_or(0);
        let mut lines = Lines::default();
        let at = initial(&mut r, opts, &mut lines, &mut |l| sink.put(&l))?;
        sink.flush();
        if opts.follow {
            self.follow_index(&dir, &mut r, at, &mut lines, &mut sink, since)?;
        }
        Ok(0)
    }

    /// Goes on reading `log_index` from line `at` until `DIR/status` says the container has exited (as
    /// `copy_logs` does for `logs`), printing each line as it is completed.
    fn follow_index(
        &self,
        dir: &str,
        r: &mut Reader,
        mut at: u64,
        lines: &mut Lines,
        sink: &mut Sink,
        since: u64,
    ) -> Result<(), CliError> {
        self.until_ended(dir, || {
            loop {
                let recs = r.records(at, BLOCK)?;
                if recs.is_empty() {
                    break;
                }
                r.for_bytes(&recs, |i, b| lines.feed(&recs[i], b, &mut |l| sink.put_since(&l, since)))?;
                at += recs.len() as u64;
            }
            sink.flush();
            Ok(())
        })?;
        lines.finish(&mut |l| sink.put_since(&l, since));
        sink.flush();
        Ok(())
    }

    /// A daemon without `log_index`: `logs` as it is, to stdout, and no flag but `-f`.
    fn logs_without_index(&self, dir: &str, opts: &LogsOptions) -> Result<i32, CliError> {
        if opts.tail.is_some() || opts.since.is_some() || opts.timestamps {
            return Err(CliError::Failed(
                "this daemon has no 'log_index' file: --tail, --since and -t need one".into(),
            ));
        }
        let logs = self.open_logs(dir)?;
        if opts.follow {
            self.copy_logs(dir, logs)?;
            return Ok(0);
        }
        let mut out = io::stdout().lock();
        io::copy(&mut &logs, &mut out).and_then(|_| out.flush()).map_err(copy_err("cannot read the logs"))?;
        Ok(0)
    }
}

#[cfg(test)]
#[path = "logs_tests.rs"]
mod tests;
