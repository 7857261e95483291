//! Writes to one of the top-level command files from several opens are served at once
//! (FOPEN_PARALLEL_DIRECT_WRITES): a write that takes long (a start that pulls first) holds up no other
//! write to the same file. Without it the kernel serves them one after the other, each under the file's
//! lock for as long as its command runs.

mod common;

use std::fs;
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use common::Bocker;

/// Runs `write` on a thread; its result, or `None` if it has not returned within `within`.
fn within<T: Send + 'static>(within: Duration, write: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(write());
    });
    rx.recv_timeout(within).ok()
}

/// The running kernel's (major, minor) version.
fn kernel_version() -> (u32, u32) {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[test]
fn a_run_is_served_while_another_waits_for_its_pull() {
    if kernel_version() < (6, 2) {
        // FOPEN_PARALLEL_DIRECT_WRITES came with Linux 6.2: before it the kernel serves one write to a file
        // at a time, as docs/filesystem.md says (the pure-v2 guest runs Debian 12's 6.1).
        return eprintln!("skipped: kernel {:?} serves writes to one file one at a time", kernel_version());
    }
    let b = std::sync::Arc::new(Bocker::start("par-run"));
    let img = b.import("");
    // A registry that takes the connection and never answers: the first run's pull waits on it.
    let registry = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = registry.local_addr().unwrap().port();
    let waiting = {
        let b = b.clone();
        std::thread::spawn(move || b.submit("containers/run", &format!("127.0.0.1:{port}/stalls:1 true")))
    };
    let (held, registry) =
        within(Duration::from_secs(60), move || (registry.accept(), registry)).expect("the first run's pull connects");
    let held = held.expect("accept");
    // The second write to the same file is served meanwhile.
    let second = {
        let (b, img) = (b.clone(), img.clone());
        within(Duration::from_secs(60), move || b.submit("containers/run", &format!("{img} echo beside")))
    };
    // Let the first go either way: its registry hangs up.
    drop(held);
    drop(registry);
    let id = second.expect("the second run waited for the first").expect("second run");
    b.wait_status(&id, "exited");
    assert_eq!(b.read(&format!("containers/{id}/logs")), "beside\n");
    let first = waiting.join().unwrap();
    assert!(first.is_err(), "the pull from a registry that hung up fails: {first:?}");
}
