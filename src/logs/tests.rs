//! The segmented log: writing, rotation within its bounds, extents and reads at logical offsets, the
//! stream views and `log_index` over the indexes, logs from before indexes, and indexes torn or full of
//! garbage, in a scratch directory.
use super::index::{index_path, Record, RECORD};
use super::*;

/// A scratch directory, removed when dropped (also when the test fails).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir(tag: &str) -> Scratch {
    let d = std::env::temp_dir().join(format!("bocker-logs-unit-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Scratch(d)
}

fn lines(from: u32, to: u32) -> Vec<u8> {
    (from..=to).map(|i| format!("line {i:05}\n")).collect::<String>().into_bytes()
}

fn size_of(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

fn view(log: &Path, v: LogView) -> Vec<u8> {
    let ext = view_extent(log, v).unwrap();
    let got = view_read_at(log, v, ext.start, 1 << 24).unwrap();
    assert_eq!(got.len() as u64, ext.len(), "{v:?}: a read gives what the extent says");
    got
}

/// The `log_index` lines of `log`, parsed: (time, stream, offset, length).
fn index(log: &Path) -> Vec<(String, String, u64, u64)> {
    let text = String::from_utf8(view(log, LogView::Index)).unwrap();
    text.lines()
        .map(|l| {
            assert_eq!(l.len() as u64 + 1, INDEX_LINE, "{l:?}");
            let f: Vec<&str> = l.split(' ').collect();
            (f[0].to_string(), f[1].to_string(), f[2].parse().unwrap(), f[3].parse().unwrap())
        })
        .collect()
}

#[test]
fn rotates_at_line_boundaries_and_keeps_at_most_the_limit() {
    let root = dir("rotate");
    let log = root.0.join("log");
    let limits = LogLimits { max_size: 400, max_files: 3 };
    let mut w = Writer::open(&log, limits).unwrap();
    // 11-byte lines, written in uneven chunks of whole lines.
    let all = lines(1, 200);
    let mut rest: &[u8] = &all;
    for n in (1..=5).cycle() {
        let (chunk, more) = rest.split_at((11 * n).min(rest.len()));
        w.write(Stream::Stdout, chunk).unwrap();
        rest = more;
        if rest.is_empty() {
            break;
        }
    }
    let segs = segments(&log).unwrap();
    assert_eq!(segs.len(), 3);
    let mut kept = Vec::new();
    for s in &segs {
        let bytes = std::fs::read(&s.path).unwrap();
        assert!(bytes.len() as u64 + size_of(&index_path(&s.path)) <= limits.max_size, "log and index in the bound");
        assert!(bytes.starts_with(b"line "), "a segment begins at a line: {:?}", String::from_utf8_lossy(&bytes));
        kept.extend(bytes);
    }
    let ext = extent(&log).unwrap();
    assert_eq!(ext.end, all.len() as u64);
    assert_eq!(ext.len(), kept.len() as u64);
    assert!(all.ends_with(&kept));
    // Reads across segment boundaries at any offset and size.
    for (off, size) in [(0u64, 7usize), (95, 30), (5, 500), (150, 1)] {
        let got = read_at(&log, ext.start + off, size).unwrap();
        let from = (off as usize).min(kept.len());
        assert_eq!(got, &kept[from..(from + size).min(kept.len())]);
    }
    assert!(matches!(read_at(&log, ext.start - 1, 10), Err(LogError::Gone { .. })));
    assert_eq!(read_at(&log, ext.end, 10).unwrap(), b"");
    assert_eq!(view(&log, LogView::Stdout), kept, "all of it was stdout");
    assert_eq!(view(&log, LogView::Stderr), b"");
    // Reopened with a lower limit: goes on at the end and drops the excess, indexes with their logs.
    drop(w);
    let mut w = Writer::open(&log, LogLimits { max_size: 400, max_files: 1 }).unwrap();
    w.write(Stream::Stderr, b"more\n").unwrap();
    assert_eq!(segments(&log).unwrap().len(), 1);
    assert_eq!(std::fs::read_dir(&log).unwrap().count(), 2, "one log and its index");
    assert_eq!(extent(&log).unwrap().end, all.len() as u64 + 5);
    assert_eq!(view(&log, LogView::Stderr), b"more\n");
    for p in [segments(&log).unwrap()[0].path.clone(), index_path(&segments(&log).unwrap()[0].path)] {
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&p).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "{}", p.display());
    }
}

#[test]
fn a_line_longer_than_a_segment_is_cut_and_a_legacy_file_is_the_first_segment() {
    let root = dir("long");
    std::fs::write(root.0.join("logs"), b"old\n").unwrap();
    let log = root.0.join("log");
    assert_eq!(extent(&log).unwrap(), Extent { start: 0, end: 4 });
    assert_eq!(view(&log, LogView::Stdout), b"old\n", "a log from before indexes is all stdout");
    // Room for a header, one record and 10 bytes.
    let mut w = Writer::open(&log, LogLimits { max_size: 10 + 2 * RECORD as u64, max_files: 10 }).unwrap();
    assert!(!root.0.join("logs").exists());
    w.write(Stream::Stdout, &[b'x'; 25]).unwrap();
    w.write(Stream::Stdout, b"\n").unwrap();
    let sizes: Vec<u64> = segments(&log).unwrap().iter().map(|s| size_of(&s.path)).collect();
    assert_eq!(sizes, [4, 10, 10, 5, 1]);
    let mut want = b"old\n".to_vec();
    want.extend([b'x'; 25]);
    want.push(b'\n');
    assert_eq!(read_at(&log, 0, 100).unwrap(), want);
    assert_eq!(view(&log, LogView::Stdout), want);
    let offsets: Vec<(u64, u64)> = index(&log).iter().map(|l| (l.2, l.3)).collect();
    assert_eq!(offsets, [(0, 4), (4, 10), (14, 10), (24, 5), (29, 1)]);
}

/// Writes `n` lines alternating stdout and stderr, each in its own write; returns the lines in order.
fn alternate(w: &mut Writer, from: u32, n: u32) -> Vec<(Stream, Vec<u8>)> {
    (from..from + n)
        .map(|i| {
            let (stream, tag) = if i % 2 == 0 { (Stream::Stdout, "out") } else { (Stream::Stderr, "err") };
            let line = format!("{tag} {i}\n").into_bytes();
            w.write(stream, &line).unwrap();
            (stream, line)
        })
        .collect()
}

/// The bytes of `stream` among `written`, the last `kept` bytes of the log being kept.
fn expected(written: &[(Stream, Vec<u8>)], kept: u64, stream: Option<Stream>) -> Vec<u8> {
    let total: u64 = written.iter().map(|(_, l)| l.len() as u64).sum();
    let mut at = 0u64;
    let mut out = Vec::new();
    for (s, line) in written {
        if at >= total - kept && stream.is_none_or(|want| want == *s) {
            out.extend(line);
        }
        at += line.len() as u64;
    }
    out
}

#[test]
fn the_stream_views_and_log_index_follow_the_log_across_rotations() {
    let root = dir("views");
    let log = root.0.join("log");
    let mut w = Writer::open(&log, LogLimits { max_size: 1000, max_files: 3 }).unwrap();
    let before = std::time::SystemTime::now();
    let written = alternate(&mut w, 0, 400);
    let logs = view(&log, LogView::Logs);
    let kept = logs.len() as u64;
    assert!(extent(&log).unwrap().start > 0, "it rotated");
    assert_eq!(logs, expected(&written, kept, None));
    let out = view(&log, LogView::Stdout);
    let err = view(&log, LogView::Stderr);
    assert_eq!(out, expected(&written, kept, Some(Stream::Stdout)), "stdout: exactly the stdout lines kept");
    assert_eq!(err, expected(&written, kept, Some(Stream::Stderr)));
    // Every offset and size of each view reads what the whole read gave.
    for (v, whole) in [(LogView::Stdout, &out), (LogView::Stderr, &err)] {
        let ext = view_extent(&log, v).unwrap();
        for off in (0..whole.len()).step_by(7) {
            for size in [1usize, 5, 13, 200] {
                let got = view_read_at(&log, v, ext.start + off as u64, size).unwrap();
                assert_eq!(got, &whole[off..(off + size).min(whole.len())], "{v:?} at {off} size {size}");
            }
        }
        assert!(matches!(view_read_at(&log, v, ext.start.wrapping_sub(1), 1), Err(LogError::Gone { .. })));
    }
    // log_index: a line per chunk, in order, each naming its bytes in `logs`.
    let ext = extent(&log).unwrap();
    let lines = index(&log);
    let mut at = ext.start;
    for (time, stream, offset, len) in &lines {
        assert_eq!(*offset, at);
        let bytes = read_at(&log, *offset, *len as usize).unwrap();
        assert!(bytes.starts_with(if stream == "stdout" { b"out " } else { b"err " }), "{stream} {bytes:?}");
        let t = humantime::parse_rfc3339(time).unwrap();
        assert!(t >= before - std::time::Duration::from_secs(1) && t <= std::time::SystemTime::now());
        at += len;
    }
    assert_eq!(at, ext.end);
    // A line read in parts, from any offset.
    let iext = view_extent(&log, LogView::Index).unwrap();
    let whole = view(&log, LogView::Index);
    let part = view_read_at(&log, LogView::Index, iext.start + 85, 100).unwrap();
    assert_eq!(part, &whole[85..185]);
}

#[test]
fn a_log_from_before_indexes_reads_as_stdout_and_keeps_its_numbers_once_reopened() {
    let root = dir("legacy");
    let log = root.0.join("log");
    std::fs::create_dir_all(&log).unwrap();
    std::fs::write(log.join(segment_name(100)), b"a\nb\n").unwrap();
    std::fs::write(log.join(segment_name(104)), b"c\n").unwrap();
    let (out, idx) = (view(&log, LogView::Stdout), view(&log, LogView::Index));
    assert_eq!(out, b"a\nb\nc\n");
    assert_eq!(view(&log, LogView::Stderr), b"");
    let offsets: Vec<(u64, u64)> = index(&log).iter().map(|l| (l.2, l.3)).collect();
    assert_eq!(offsets, [(100, 4), (104, 2)]);
    // The writer gives them indexes that say the same, and goes on.
    let mut w = Writer::open(&log, LogLimits::default()).unwrap();
    assert!(index_path(&log.join(segment_name(100))).exists());
    assert_eq!((view(&log, LogView::Stdout), view(&log, LogView::Index)), (out.clone(), idx.clone()));
    w.write(Stream::Stderr, b"d\n").unwrap();
    assert_eq!(view(&log, LogView::Stderr), b"d\n");
    assert_eq!(view_extent(&log, LogView::Stderr).unwrap(), Extent { start: 0, end: 2 });
    assert_eq!(view_extent(&log, LogView::Stdout).unwrap(), Extent { start: 100, end: 106 });
    assert!(view(&log, LogView::Index).starts_with(&idx));
}

/// A small deterministic generator of bytes (xorshift), for garbage.
fn garbage(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn read_everything(log: &Path) {
    for v in [LogView::Logs, LogView::Stdout, LogView::Stderr, LogView::Index] {
        let Ok(ext) = view_extent(log, v) else { continue };
        for off in [0, 1, 39, 40, 81, 1000, u64::MAX / 2, u64::MAX] {
            let _ = view_read_at(log, v, ext.start.saturating_add(off), 300);
        }
    }
}

#[test]
fn a_torn_or_garbage_index_never_panics_and_a_reopened_writer_repairs_it() {
    let root = dir("torn");
    let log = root.0.join("log");
    let mut w = Writer::open(&log, LogLimits::default()).unwrap();
    let written = alternate(&mut w, 0, 10);
    drop(w);
    let seg = segments(&log).unwrap()[0].path.clone();
    let idx = index_path(&seg);
    let whole = std::fs::read(&idx).unwrap();
    let out = view(&log, LogView::Stdout);

    // A torn last record (a crash in the middle of its write) is not there; nor are bytes no record names.
    let mut torn = whole.clone();
    torn.extend(&Record::decode(&whole[RECORD..2 * RECORD]).unwrap().encode()[..17]);
    std::fs::write(&idx, &torn).unwrap();
    assert_eq!(view(&log, LogView::Stdout), out);
    assert_eq!(index(&log).len(), 10);
    std::fs::write(&seg, [std::fs::read(&seg).unwrap(), b"late\n".to_vec()].concat()).unwrap();
    assert_eq!(view(&log, LogView::Stdout), out, "bytes without a record are in no view yet");
    // Reopened: the torn record goes, the bytes without one are stdout.
    let mut w = Writer::open(&log, LogLimits::default()).unwrap();
    assert_eq!(view(&log, LogView::Stdout), [out.clone(), b"late\n".to_vec()].concat());
    w.write(Stream::Stderr, b"after\n").unwrap();
    assert!(view(&log, LogView::Stderr).ends_with(b"after\n"));
    drop(w);
    assert_eq!(written.len(), 10);

    // Garbage in every shape: the reads return what they can (or an error), never panic.
    for seed in 1..40u64 {
        let mut bad = std::fs::read(&idx).unwrap();
        match seed % 4 {
            0 => bad = garbage(seed, (seed * 13) as usize),
            1 => bad.truncate((seed * 7) as usize % bad.len().max(1)),
            2 => {
                let g = garbage(seed, RECORD);
                let at = (seed as usize * RECORD) % bad.len().max(1);
                let end = (at + RECORD).min(bad.len());
                bad[at..end].copy_from_slice(&g[..end - at]);
            }
            _ => bad.extend(garbage(seed, 3 * RECORD + seed as usize)),
        }
        std::fs::write(&idx, &bad).unwrap();
        read_everything(&log);
        // A writer opened on it goes on, and what it writes next is read back.
        let mut w = Writer::open(&log, LogLimits::default()).unwrap();
        w.write(Stream::Stdout, format!("seed {seed}\n").as_bytes()).unwrap();
        drop(w);
        // What a damaged record stood for reads as NUL bytes; the extent still counts it. Read as a
        // reader reads, until the end (a read stops short at a damaged record's place).
        let ext = view_extent(&log, LogView::Stdout).unwrap();
        let mut out = Vec::new();
        while (out.len() as u64) < ext.end - ext.start {
            let got = view_read_at(&log, LogView::Stdout, ext.start + out.len() as u64, 1 << 20).unwrap();
            if got.is_empty() {
                break;
            }
            out.extend(got);
        }
        assert!(out.ends_with(format!("seed {seed}\n").as_bytes()), "seed {seed}");
        read_everything(&log);
    }
}

#[test]
fn a_record_round_trips_and_random_bytes_decode_to_nothing_or_a_sound_record() {
    let r = Record { time_ns: 7, seq: 3, offset: 100, err_before: 40, len: 9, stream: Some(Stream::Stderr) };
    assert_eq!(Record::decode(&r.encode()), Some(r));
    let mut b = r.encode();
    b[5] ^= 1;
    assert_eq!(Record::decode(&b), None, "the check catches a flipped bit");
    for seed in 1..20_000u64 {
        let g = garbage(seed, RECORD);
        if let Some(r) = Record::decode(&g) {
            assert!(r.err_before <= r.offset && r.offset.checked_add(u64::from(r.len)).is_some());
        }
    }
    assert_eq!(Record::decode(&[]), None);
    assert_eq!(index_line(None).len() as u64, INDEX_LINE);
    assert_eq!(index_line(Some(&r)).len() as u64, INDEX_LINE);
}
