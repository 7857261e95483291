//! The engine under concurrency, on the real daemon: reads of one container answer while twenty others are
//! stopped through their grace period and twenty more removed; a hundred concurrent mixed writes leave
//! records (in memory, and on disk as a restarted daemon loads them) that agree with what every write
//! returned. (Recovery from a SIGKILL with starts, stops and removals in flight is in restart.rs.)

mod common;
#[path = "concurrency/mixed.rs"]
mod mixed;

use std::fs;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use common::Bocker;

/// A command whose pid 1 ignores `stop`'s SIGTERM, so each stop runs through its whole grace period.
const STUBBORN: &str = r#"sh -c 'trap "" TERM; while :; do sleep 1; done'"#;

/// The grace period of the stops, in seconds.
const GRACE: u64 = 3;

/// How long a process outlives its container in the container's cgroup, counted from the writes' start, so
/// `rmdir` must wait for the group (what the cgroup removal's retries are for: an exiting process can hold
/// its group for a moment). Well below the second the daemon retries for: the kill and the exit take their
/// time too under emulation.
const LINGER: Duration = Duration::from_millis(500);

/// The longest a read of the other container's files (or a listing) may take while the writes run: half
/// the grace period, so a read that waited for a stop fails it. A read that waited for a held group is
/// caught by the first round's check (it would end after the first write did); a fixed bound tighter than
/// this measured the machine, not the daemon: under emulation (the VM guest) with 40 writes on two cores a
/// read now and then takes a third of a second with nothing to wait for.
const READ_BOUND: Duration = Duration::from_millis(GRACE * 1000 / 2);

/// The median read's bound: reads that routinely waited for a write (a lock over a removal's or a stop's
/// work) would pull it up to a removal's length. Far above the milliseconds a read takes even under
/// emulation.
const MEDIAN_BOUND: Duration = Duration::from_millis(100);

fn listing(b: &Bocker, dir: &str) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(b.path(dir)).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

/// `sleep`s held in containers' groups until let go, or until dropped (a failed test leaves none).
struct Lingering(Vec<Child>);

impl Lingering {
    fn let_go(&self) {
        for c in &self.0 {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::SIGKILL);
        }
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Puts a fresh `sleep` into every hierarchy's group of container `name`, held until let go.
fn linger_in_group(b: &Bocker, name: &str) -> Child {
    let child: Child = Command::new("sleep").arg("1000").stdout(Stdio::null()).spawn().expect("spawn sleep");
    let mut joined = 0;
    for root in common::cgroup_roots() {
        let group = root.join(&b.cgroup_parent).join(format!("ctr-{name}"));
        if group.is_dir() {
            fs::write(group.join("cgroup.procs"), child.id().to_string()).expect("move into the container's group");
            joined += 1;
        }
    }
    assert!(joined > 0, "container {name} has no cgroup to linger in");
    child
}

/// How one of the writes went.
struct Ended {
    what: String,
    at: Instant,
    took: Duration,
    result: std::io::Result<()>,
}

/// One read of the reader: when, how long, and the bytes it got.
type Read = (Timed, Vec<u8>);

/// What one timed operation of the reader saw.
struct Timed {
    what: &'static str,
    start: Instant,
    took: Duration,
}

#[test]
fn reads_answer_while_twenty_containers_stop_and_twenty_are_removed() {
    let b = Bocker::start_sized("conc-reads", "2G");
    let img = b.import("ENV WATCHED=yes");
    b.configure("watched", &img, "sleep 1000");
    b.write("containers/watched/env", "A=1").unwrap();
    b.write("containers/watched/ctl", "start").unwrap();
    let stopping: Vec<String> = (0..20).map(|i| format!("stop{i}")).collect();
    let removing: Vec<String> = (0..20).map(|i| format!("rm{i}")).collect();
    for n in &stopping {
        b.configure(n, &img, STUBBORN);
        b.write(&format!("containers/{n}/ctl"), "start").unwrap();
    }
    for n in &removing {
        b.configure(n, &img, "true");
        b.write(&format!("containers/{n}/ctl"), "start").unwrap();
    }
    for n in &removing {
        b.wait_status(n, "exited");
    }
    for n in &stopping {
        assert_eq!(b.status(n), "running", "{n}");
    }
    let expected = [
        ("status", b.read("containers/watched/status")),
        ("cmd", b.read("containers/watched/cmd")),
        ("env", b.read("containers/watched/env")),
    ];
    assert_eq!(expected[0].1, "running\n");
    assert!(expected[2].1.contains("WATCHED=yes\nA=1\n"), "{}", expected[2].1);

    // Each removed container's group is held by a process for a moment, so each removal takes that long.
    // They are let go LINGER after the writes are issued (counted from then, not from their start: under
    // emulation the set-up between takes longer than LINGER).
    let lingering = Lingering(removing.iter().map(|n| linger_in_group(&b, n)).collect());

    let writes = stopping.len() + removing.len();
    let barrier = Barrier::new(writes + 2);
    let issued = AtomicUsize::new(0);
    let writing = AtomicBool::new(true);
    let ends: Mutex<Vec<Ended>> = Mutex::new(Vec::new());
    let reads: Vec<Read> = std::thread::scope(|s| {
        let (b, barrier, issued, ends) = (&b, &barrier, &issued, &ends);
        let mut handles = Vec::new();
        for n in &stopping {
            handles.push(s.spawn(move || {
                barrier.wait();
                issued.fetch_add(1, Ordering::SeqCst);
                let t = Instant::now();
                let result = b.write(&format!("containers/{n}/ctl"), &format!("stop {GRACE}"));
                lock(ends).push(Ended { what: format!("stop {n}"), at: Instant::now(), took: t.elapsed(), result });
            }));
        }
        for n in &removing {
            handles.push(s.spawn(move || {
                barrier.wait();
                issued.fetch_add(1, Ordering::SeqCst);
                let t = Instant::now();
                let result = fs::remove_dir(b.path(&format!("containers/{n}")));
                lock(ends).push(Ended { what: format!("rmdir {n}"), at: Instant::now(), took: t.elapsed(), result });
            }));
        }
        let lingering = &lingering;
        s.spawn(move || {
            barrier.wait();
            std::thread::sleep(LINGER);
            lingering.let_go();
        });
        let reader = s.spawn(|| {
            barrier.wait();
            while issued.load(Ordering::SeqCst) < writes {
                std::thread::yield_now();
            }
            // Every thread is at its syscall: give the requests a moment to reach the daemon.
            std::thread::sleep(Duration::from_millis(50));
            let mut seen = Vec::new();
            while writing.load(Ordering::SeqCst) {
                for (what, file) in [
                    ("status", "containers/watched/status"),
                    ("cmd", "containers/watched/cmd"),
                    ("env", "containers/watched/env"),
                ] {
                    let start = Instant::now();
                    let bytes = fs::read(b.path(file)).unwrap_or_else(|e| panic!("read {file}: {e}"));
                    seen.push((Timed { what, start, took: start.elapsed() }, bytes));
                }
                let start = Instant::now();
                let names = listing(b, "containers");
                seen.push((Timed { what: "ls", start, took: start.elapsed() }, names.join("\n").into_bytes()));
            }
            seen
        });
        for h in handles {
            h.join().unwrap();
        }
        writing.store(false, Ordering::SeqCst);
        reader.join().unwrap()
    });

    let ends = ends.into_inner().unwrap();
    let failed: Vec<String> =
        ends.iter().filter_map(|e| e.result.as_ref().err().map(|err| format!("{}: {err}", e.what))).collect();
    assert!(failed.is_empty(), "writes failed: {failed:?}");
    let took_by = |kind: &'static str| ends.iter().filter(move |e| e.what.starts_with(kind)).map(|e| e.took);
    let (shortest_rm, longest_rm) = (took_by("rmdir").min().unwrap(), took_by("rmdir").max().unwrap());
    let shortest_stop = took_by("stop").min().unwrap();
    let first_end = ends.iter().map(|e| e.at).min().unwrap();
    let last_rm_end = ends.iter().filter(|e| e.what.starts_with("rmdir")).map(|e| e.at).max().unwrap();
    let (files, lists): (Vec<&Read>, Vec<&Read>) = reads.iter().partition(|r| r.0.what != "ls");
    let slowest = |rs: &[&Read]| rs.iter().map(|r| (r.0.took, r.0.what)).max().unwrap();
    let mut took: Vec<Duration> = files.iter().map(|r| r.0.took).collect();
    took.sort();
    let slowest_ls_after_rm = lists.iter().filter(|r| r.0.start > last_rm_end).map(|r| r.0.took).max();
    eprintln!(
        "{} reads of the container's files during the writes: median {:?}, p99 {:?}, slowest {:?}; {} listings, \
         slowest {:?} (once the removals had ended {slowest_ls_after_rm:?}); removals took {shortest_rm:?} to \
         {longest_rm:?}, stops from {shortest_stop:?}",
        files.len(),
        took[took.len() / 2],
        took[took.len() * 99 / 100],
        slowest(&files),
        lists.len(),
        slowest(&lists).0,
    );
    // The test tests something: every removal waited for its group, every stop for its grace period.
    assert!(shortest_rm >= LINGER / 2, "a removal took only {shortest_rm:?}: its group was not held");
    assert!(shortest_stop >= Duration::from_secs(GRACE), "a stop took only {shortest_stop:?}");

    // The first reads of the container's files, made once every write was under way, answered before any
    // write ended.
    assert!(files.len() >= 3, "the reader made no round");
    let first_round_end = files.iter().take(3).map(|r| r.0.start + r.0.took).max().unwrap();
    assert!(
        first_round_end < first_end,
        "the first reads ended {:?} after the first write did: they waited for it",
        first_round_end - first_end
    );
    // No read of the container's files waited for a write: the typical one took far less than a removal,
    // the slowest far less than a stop.
    let median = took[took.len() / 2];
    assert!(median < MEDIAN_BOUND, "the median read took {median:?} while containers were stopped and removed");
    let (took, what) = slowest(&files);
    assert!(took < READ_BOUND, "a read of {what} took {took:?} while containers were stopped and removed");
    // A listing of containers/ waits for no stop and no exit. It does wait for the rmdirs in it: the kernel
    // holds a directory's lock from an rmdir in it until the daemon answers, and a readdir takes that lock
    // (so the rmdirs of one directory also take turns). Until rmdir answers before its slow work, a listing
    // may end up to READ_BOUND after the last rmdir; any other takes less than READ_BOUND.
    for (t, _) in &lists {
        let end = t.start + t.took;
        if t.start < last_rm_end {
            assert!(end < last_rm_end + READ_BOUND, "a listing ended {:?} after the last rmdir", end - last_rm_end);
        } else {
            assert!(t.took < READ_BOUND, "a listing took {:?} with no rmdir under way", t.took);
        }
    }
    // And each showed what the container holds.
    for (t, bytes) in &reads {
        let text = String::from_utf8_lossy(bytes);
        match expected.iter().find(|e| e.0 == t.what) {
            Some((_, want)) => assert_eq!(&text, want, "{}", t.what),
            None => assert!(text.lines().any(|l| l == "watched"), "ls: {text}"),
        }
    }

    // The end state: the stopped ones exited (killed after the grace period), the removed ones gone, from
    // the tree, the daemon's records and the store.
    for n in &stopping {
        assert_eq!(b.status(n), "exited", "{n}");
        assert_eq!(b.read(&format!("containers/{n}/exit_code")), "137\n", "{n}");
    }
    let names = listing(&b, "containers");
    for n in &removing {
        assert!(!names.contains(n), "{n} still listed");
        assert!(!b.root.join("state/containers").join(n).exists(), "{n} still has a state directory");
        assert!(!b.root.join("store/containers").join(n).exists(), "{n} still has a rootfs");
    }
    for n in &stopping {
        assert!(names.contains(n), "{n} is gone");
    }
    assert_eq!(b.status("watched"), "running");
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
