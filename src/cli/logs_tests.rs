//! `bocker logs`' reading of `log_index` and `logs`, on plain files: `--tail` reading back only so far and
//! `--since`'s binary search give what reading all of it forward gives, for random streams of chunks with
//! lines cut anywhere and lines left without a newline.
use std::path::PathBuf;

use super::*;
use crate::logs::index::Record;

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Chunks: (stream, bytes); chunk i is timed 1000 + 10 i.
type Chunks = Vec<(Stream, Vec<u8>)>;

fn files(tag: &str, chunks: &Chunks, base: u64) -> (Scratch, Reader) {
    let dir = std::env::temp_dir().join(format!("bocker-cli-logs-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (mut logs, mut index, mut err) = (Vec::new(), Vec::new(), 0u64);
    for (i, (stream, bytes)) in chunks.iter().enumerate() {
        let offset = base + logs.len() as u64;
        let r = Record {
            time_ns: 1000 + 10 * i as u64,
            seq: i as u64,
            offset,
            err_before: err,
            len: bytes.len() as u32,
            stream: Some(*stream),
        };
        index.extend(crate::logs::index_line(Some(&r)));
        logs.extend(bytes);
        if *stream == Stream::Stderr {
            err += bytes.len() as u64;
        }
    }
    std::fs::write(dir.join("log_index"), index).unwrap();
    std::fs::write(dir.join("logs"), logs).unwrap();
    let open = |n: &str| File::open(dir.join(n)).unwrap();
    let reader = Reader { index: open("log_index"), logs: open("logs"), base: None };
    (Scratch(dir), reader)
}

fn read(tag: &str, chunks: &Chunks, opts: &LogsOptions) -> Vec<(Stream, u64, Vec<u8>)> {
    let (_dir, mut r) = files(tag, chunks, 5000);
    let mut got = Vec::new();
    initial(&mut r, opts, &mut Lines::default(), &mut |l| got.push((l.stream, l.time_ns, l.bytes))).unwrap();
    got
}

/// What the options mean, the long way: every line from the start, those from `since`, the last `tail`.
fn by_hand(chunks: &Chunks, since: u64, tail: Option<u64>) -> Vec<(Stream, u64, Vec<u8>)> {
    let mut all = Vec::new();
    let mut lines = Lines::default();
    for (i, (stream, bytes)) in chunks.iter().enumerate() {
        let r = Rec { time_ns: 1000 + 10 * i as u64, stream: *stream, offset: 0, len: bytes.len() as u64 };
        lines.feed(&r, bytes, &mut |l| all.push((l.stream, l.time_ns, l.bytes)));
    }
    lines.finish(&mut |l| all.push((l.stream, l.time_ns, l.bytes)));
    all.retain(|l| l.1 >= since);
    let skip = tail.map_or(0, |n| all.len().saturating_sub(n as usize));
    all.split_off(skip)
}

/// A small deterministic generator (xorshift).
struct Gen(u64);

impl Gen {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below.max(1)
    }
}

fn chunks(g: &mut Gen) -> Chunks {
    let n = g.next(40);
    // Sometimes one stream is rare, so its line begins far back.
    let rare = g.next(4);
    (0..n)
        .map(|_| {
            let stream = if g.next(10) < rare { Stream::Stderr } else { Stream::Stdout };
            let len = 1 + g.next(7) as usize;
            let bytes = (0..len).map(|_| [b'a', b'b', b'\n'][g.next(3) as usize]).collect();
            (stream, bytes)
        })
        .collect()
}

#[test]
fn tail_and_since_give_what_reading_everything_gives() {
    let mut g = Gen(0x9e37_79b9_7f4a_7c15);
    for case in 0..400 {
        let c = chunks(&mut g);
        let tail = [None, Some(0), Some(1), Some(2), Some(3), Some(5), Some(8), Some(100)][g.next(8) as usize];
        let since = if g.next(2) == 0 { None } else { Some(1000 + g.next(10 * c.len() as u64 + 20)) };
        let opts = LogsOptions { tail: tail.map(Tail::Last), since, ..Default::default() };
        let got = read("cases", &c, &opts);
        let want = by_hand(&c, since.unwrap_or(0), tail);
        assert_eq!(got, want, "case {case}: tail {tail:?} since {since:?} over {c:?}");
    }
}

#[test]
fn a_line_begun_long_before_is_whole_in_the_tail() {
    let mut c: Chunks = vec![(Stream::Stdout, b"abc".to_vec())];
    c.extend((0..50).map(|i| (Stream::Stderr, format!("e{i}\n").into_bytes())));
    c.push((Stream::Stdout, b"def\n".to_vec()));
    let last = |n| read("begun", &c, &LogsOptions { tail: Some(Tail::Last(n)), ..Default::default() });
    assert_eq!(last(1), [(Stream::Stdout, 1000, b"abcdef\n".to_vec())], "its time is its first byte's");
    assert_eq!(last(2).iter().map(|l| l.2.clone()).collect::<Vec<_>>(), [b"e49\n".to_vec(), b"abcdef\n".to_vec()]);
    // --since after its first byte leaves it out; the stderr lines after stay.
    let since = read("begun", &c, &LogsOptions { since: Some(1005), ..Default::default() });
    assert_eq!(since.len(), 50);
    assert!(since.iter().all(|l| l.0 == Stream::Stderr));
    // Empty: nothing, whatever the options.
    assert_eq!(read("empty", &Vec::new(), &LogsOptions { tail: Some(Tail::Last(3)), ..Default::default() }), []);
}

#[test]
fn index_lines_parse_back_and_bad_ones_are_skipped() {
    let r = Record {
        time_ns: 1_796_144_400_123_456_789,
        seq: 9,
        offset: 77,
        err_before: 3,
        len: 12,
        stream: Some(Stream::Stderr),
    };
    let line = crate::logs::index_line(Some(&r));
    let got = parse_line(&line).unwrap();
    assert_eq!((got.time_ns, got.stream, got.offset, got.len), (r.time_ns, Stream::Stderr, 77, 12));
    for bad in [&b""[..], b"x\n", &line[..79], b"2026-12-01T17:00:00.000000000Z stdin 0 0\n"] {
        assert!(parse_line(bad).is_none(), "{bad:?}");
    }
    assert!(tail_arg("all").is_ok() && tail_arg("7") == Ok(Tail::Last(7)) && tail_arg("-1").is_err());
}

#[test]
fn a_chunk_wider_than_a_read_is_read_in_parts() {
    let line = [vec![b'x'; 999], vec![b'\n']].concat();
    let big: Vec<u8> = line.iter().copied().cycle().take(9 << 20).collect();
    let c: Chunks = vec![(Stream::Stderr, big.clone()), (Stream::Stdout, b"end\n".to_vec())];
    let all = read("wide", &c, &LogsOptions::default());
    let joined: Vec<u8> = all.iter().filter(|l| l.0 == Stream::Stderr).flat_map(|l| l.2.clone()).collect();
    assert_eq!(joined, big);
    assert_eq!(all.len(), big.len().div_ceil(1000) + 1);
    let last = read("wide", &c, &LogsOptions { tail: Some(Tail::Last(2)), ..Default::default() });
    assert_eq!(last, by_hand(&c, 0, Some(2)));
}
