//! The log against real files in a temporary directory: what a reopen replays, after a clean end, a torn
//! tail, a full log and garbage.

use super::*;

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("bocker-wal-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn log(&self) -> PathBuf {
        self.0.join("records.wal")
    }
    /// Record `name`'s file.
    fn file(&self, name: &str) -> PathBuf {
        self.0.join(format!("{name}.json"))
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn put(name: &str, bytes: &str) -> Entry {
    Entry::Put { name: name.to_string(), bytes: bytes.as_bytes().to_vec() }
}

/// Opens the log at `path` (of `size` bytes) and returns what it replayed.
fn reopen(path: &Path, size: u64) -> (Wal, Vec<Entry>) {
    let mut seen = Vec::new();
    let wal = Wal::open_sized(path, size, |e| {
        seen = e;
        Ok(())
    })
    .unwrap();
    (wal, seen)
}

#[test]
fn a_reopen_replays_every_append_in_order_then_starts_empty() {
    let d = Dir::new("order");
    let (wal, seen) = reopen(&d.log(), LOG_SIZE);
    assert!(seen.is_empty());
    wal.put("a", b"{\"v\":1}", &d.file("a")).unwrap();
    wal.put("b", b"{}", &d.file("b")).unwrap();
    wal.remove("a", &d.file("a")).unwrap();
    wal.put("a", b"{\"v\":2}", &d.file("a")).unwrap();
    drop(wal);
    let (_wal, seen) = reopen(&d.log(), LOG_SIZE);
    assert_eq!(
        seen,
        vec![put("a", "{\"v\":1}"), put("b", "{}"), Entry::Remove { name: "a".into() }, put("a", "{\"v\":2}")]
    );
    assert_eq!(seen[2].name(), "a");
    // Replayed once: the next open finds a fresh log.
    let (_wal, seen) = reopen(&d.log(), LOG_SIZE);
    assert!(seen.is_empty(), "{seen:?}");
}

#[test]
fn a_log_is_zero_filled_to_its_size_so_appends_change_no_metadata() {
    use std::os::unix::fs::MetadataExt;
    let d = Dir::new("zeros");
    let (wal, _) = reopen(&d.log(), LOG_SIZE);
    let before = std::fs::metadata(d.log()).unwrap();
    assert_eq!(before.len(), LOG_SIZE);
    // Every block written (not a hole, not an unwritten extent's worth of sparse space).
    assert!(before.blocks() * 512 >= LOG_SIZE, "{} blocks", before.blocks());
    wal.put("c", &[b'x'; 1000], &d.file("c")).unwrap();
    let after = std::fs::metadata(d.log()).unwrap();
    assert_eq!((after.len(), after.blocks(), after.ino()), (before.len(), before.blocks(), before.ino()));
}

#[test]
fn a_torn_or_corrupt_entry_ends_the_replay_before_it() {
    let d = Dir::new("torn");
    let (wal, _) = reopen(&d.log(), LOG_SIZE);
    for i in 0..3 {
        let name = format!("c{i}");
        wal.put(&name, format!("record {i}").as_bytes(), &d.file(&name)).unwrap();
    }
    drop(wal);
    let whole = std::fs::read(d.log()).unwrap();
    let entry = HEADER + 3 + 2 + "record 0".len();
    // The third entry cut short: the first two are replayed.
    let mut torn = whole.clone();
    torn.truncate(entry * 2 + HEADER + 1);
    std::fs::write(d.log(), &torn).unwrap();
    let (_w, seen) = reopen(&d.log(), LOG_SIZE);
    assert_eq!(seen, vec![put("c0", "record 0"), put("c1", "record 1")]);
    // A byte of the second's record flipped: only the first.
    let mut flipped = whole.clone();
    flipped[entry + HEADER + 6] ^= 1;
    std::fs::write(d.log(), &flipped).unwrap();
    let (_w, seen) = reopen(&d.log(), LOG_SIZE);
    assert_eq!(seen, vec![put("c0", "record 0")]);
    // The first entry's sequence number wrong: nothing.
    let mut reseq = whole;
    reseq[8] = 7;
    std::fs::write(d.log(), &reseq).unwrap();
    let (_w, seen) = reopen(&d.log(), LOG_SIZE);
    assert!(seen.is_empty(), "{seen:?}");
}

#[test]
fn garbage_and_empty_files_replay_nothing() {
    let d = Dir::new("garbage");
    for bytes in [Vec::new(), vec![0xff; 100], vec![0; 64], b"BKWL\x10\0\0\0".to_vec()] {
        std::fs::write(d.log(), &bytes).unwrap();
        let (_w, seen) = reopen(&d.log(), 4096);
        assert!(seen.is_empty(), "{bytes:?}: {seen:?}");
    }
}

#[test]
fn a_full_log_starts_afresh_and_keeps_only_what_came_after() {
    let d = Dir::new("full");
    let (wal, _) = reopen(&d.log(), 256);
    let record = [b'r'; 60];
    // Each entry is 20 + 3 + 2 + 60 = 85 bytes: three fit in 256, the fourth begins a fresh log.
    for i in 0..4 {
        let name = format!("n{i}");
        wal.put(&name, &record, &d.file(&name)).unwrap();
    }
    // One too big for any log, of a name the log has an older entry of: its file written, the filesystem
    // synced, and the log begun afresh, so that replay can't put the older one back over it.
    wal.put("n3", &[b'b'; 300], &d.file("n3")).unwrap();
    wal.put("n4", &record, &d.file("n4")).unwrap();
    drop(wal);
    for name in ["n0", "n4"] {
        assert_eq!(std::fs::read(d.file(name)).unwrap(), record, "{name}");
    }
    assert_eq!(std::fs::read(d.file("n3")).unwrap(), [b'b'; 300]);
    let (_w, seen) = reopen(&d.log(), 256);
    let names: Vec<&str> = seen.iter().map(Entry::name).collect();
    assert_eq!(names, ["n4"]);
}

#[test]
fn files_follow_their_entries_and_a_failed_save_logs_nothing() {
    let d = Dir::new("files");
    let (wal, _) = reopen(&d.log(), LOG_SIZE);
    wal.put("a", b"one", &d.file("a")).unwrap();
    wal.put("a", b"two", &d.file("a")).unwrap();
    assert_eq!(std::fs::read(d.file("a")).unwrap(), b"two");
    assert!(!d.0.join("a.json.tmp").exists(), "the temp file was left");
    wal.remove("a", &d.file("a")).unwrap();
    assert!(!d.file("a").exists());
    // Removing what has no file is no error.
    wal.remove("a", &d.file("a")).unwrap();
    // A save whose temp file can't be written (a directory in its place) fails before its entry.
    std::fs::create_dir(d.0.join("b.json.tmp")).unwrap();
    assert!(wal.put("b", b"never", &d.file("b")).is_err());
    assert!(!d.file("b").exists());
    drop(wal);
    let (_w, seen) = reopen(&d.log(), LOG_SIZE);
    assert!(seen.iter().all(|e| e.name() == "a"), "{seen:?}");
}

#[test]
fn saves_from_many_threads_through_many_resets_keep_each_records_last_version() {
    let d = Dir::new("resets");
    // A log of about eight entries: the saves below fill it dozens of times.
    let (wal, _) = reopen(&d.log(), 8 * (HEADER + 3 + 2 + 4) as u64);
    std::thread::scope(|s| {
        for t in 0..4 {
            let (wal, d) = (&wal, &d);
            s.spawn(move || {
                for v in 0..40 {
                    let name = format!("t{t}");
                    wal.put(&name, format!("{v:04}").as_bytes(), &d.file(&name)).unwrap();
                }
            });
        }
    });
    drop(wal);
    let (_w, seen) = reopen(&d.log(), 8 * (HEADER + 3 + 2 + 4) as u64);
    for t in 0..4 {
        let name = format!("t{t}");
        assert_eq!(std::fs::read(d.file(&name)).unwrap(), b"0039", "{name}");
        // What the log still holds of it is its last version too: replay can't put an older one back.
        if let Some(Entry::Put { bytes, .. }) = seen.iter().rev().find(|e| e.name() == name) {
            assert_eq!(bytes, b"0039", "{name}");
        }
    }
}

#[test]
fn appends_from_many_threads_all_replay() {
    let d = Dir::new("threads");
    let (wal, _) = reopen(&d.log(), LOG_SIZE);
    std::thread::scope(|s| {
        for t in 0..8 {
            let (wal, d) = (&wal, &d);
            s.spawn(move || {
                for i in 0..50 {
                    let name = format!("t{t}-{i}");
                    wal.put(&name, b"{}", &d.file(&name)).unwrap();
                }
            });
        }
    });
    drop(wal);
    let (_w, seen) = reopen(&d.log(), LOG_SIZE);
    assert_eq!(seen.len(), 400);
    let mut names: Vec<&str> = seen.iter().map(Entry::name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 400);
}
