//! The segmented log: writing, rotation within its bounds, extents and reads at logical offsets, in a scratch
//! directory.
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

#[test]
fn rotates_at_line_boundaries_and_keeps_at_most_the_limit() {
    let root = dir("rotate");
    let log = root.0.join("log");
    let limits = LogLimits { max_size: 100, max_files: 3 };
    let mut w = Writer::open(&log, limits).unwrap();
    // 11-byte lines, written in uneven chunks.
    let all = lines(1, 200);
    for chunk in all.chunks(37) {
        w.write(chunk).unwrap();
    }
    let segs = segments(&log).unwrap();
    assert_eq!(segs.len(), 3);
    let mut kept = Vec::new();
    for s in &segs {
        let bytes = std::fs::read(&s.path).unwrap();
        assert!(bytes.len() as u64 <= limits.max_size);
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
    // Reopened with a lower limit: goes on at the end and drops the excess.
    drop(w);
    let mut w = Writer::open(&log, LogLimits { max_size: 100, max_files: 1 }).unwrap();
    w.write(b"more\n").unwrap();
    assert_eq!(segments(&log).unwrap().len(), 1);
    assert_eq!(extent(&log).unwrap().end, all.len() as u64 + 5);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&segments(&log).unwrap()[0].path).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_line_longer_than_a_segment_is_cut_and_a_legacy_file_is_the_first_segment() {
    let root = dir("long");
    std::fs::write(root.0.join("logs"), b"old\n").unwrap();
    let log = root.0.join("log");
    assert_eq!(extent(&log).unwrap(), Extent { start: 0, end: 4 });
    let mut w = Writer::open(&log, LogLimits { max_size: 10, max_files: 10 }).unwrap();
    assert!(!root.0.join("logs").exists());
    w.write(&[b'x'; 25]).unwrap();
    w.write(b"\n").unwrap();
    let sizes: Vec<u64> = segments(&log).unwrap().iter().map(|s| std::fs::metadata(&s.path).unwrap().len()).collect();
    assert_eq!(sizes, [4, 10, 10, 6]);
    let mut want = b"old\n".to_vec();
    want.extend([b'x'; 25]);
    want.push(b'\n');
    assert_eq!(read_at(&log, 0, 100).unwrap(), want);
}
