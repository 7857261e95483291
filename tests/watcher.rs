//! One watcher for the whole daemon: running containers and execs cost no thread each, at start and after
//! a restart re-adopts them, and every exit is still recorded.

mod common;

use std::fs;

use common::Bocker;

/// The `Threads:` line of `/proc/PID/status`.
fn threads(pid: i32) -> usize {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Threads:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

const CONTAINERS: usize = 30;
const EXECS: usize = 10;
/// What a daemon may grow by besides its watcher: a worker of the write pool or two.
const SLACK: usize = 3;

#[test]
fn many_running_containers_and_execs_add_no_threads() {
    let mut b = Bocker::start("threads");
    let fresh = threads(b.daemon_pid().unwrap());
    let img = b.import("");
    // A first run to its end, so what a first start makes (a pool worker) exists already.
    b.run_to_exit(&format!("{img} true"));
    let idle = threads(b.daemon_pid().unwrap());
    let names: Vec<String> = (0..CONTAINERS).map(|i| format!("sleeper{i}")).collect();
    for n in &names {
        b.configure(n, &img, "sleep 1000");
        b.write(&format!("containers/{n}/ctl"), "start").expect("start");
    }
    for n in &names[..EXECS] {
        assert_eq!(b.submit(&format!("containers/{n}/exec"), "sleep 1000").expect("exec"), "1");
    }
    for n in &names {
        assert_eq!(b.status(n), "running");
    }
    let busy = threads(b.daemon_pid().unwrap());
    eprintln!("threads: fresh {fresh}, idle {idle}, with {CONTAINERS} containers and {EXECS} execs {busy}");
    assert!(busy <= idle + SLACK, "{busy} threads with {CONTAINERS} running containers, {idle} with none");

    // Re-adopted after a restart through the same watcher.
    b.stop_daemon();
    b.spawn_daemon();
    let adopted = threads(b.daemon_pid().unwrap());
    eprintln!("threads after a restart re-adopting them: {adopted} (a fresh daemon: {fresh})");
    assert!(adopted <= fresh + SLACK, "{adopted} threads re-adopting {CONTAINERS} containers, {fresh} fresh");

    // The positive control: each exit is still seen and recorded, the containers' and the execs'.
    for n in &names {
        assert_eq!(b.status(n), "running");
        b.write(&format!("containers/{n}/ctl"), "kill").expect("kill");
    }
    for n in &names {
        b.wait_status(n, "exited");
        assert_eq!(b.read(&format!("containers/{n}/exit_code")), "137\n", "{n}");
    }
    for n in &names[..EXECS] {
        b.wait_exec(n, "1");
    }
}
