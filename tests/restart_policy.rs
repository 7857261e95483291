//! Restart policies (`restart`, `restart_count`), as Docker's `--restart`: on-failure's count, always
//! bringing back a clean exit, a user's stop ending it, the back-off, and which containers a restarted
//! daemon brings back.

mod common;

use std::time::{Duration, Instant};

use common::{eventually, Bocker};

fn make(b: &Bocker, name: &str, img: &str, cmd: &str, restart: &str) {
    b.configure(name, img, cmd);
    b.write(&format!("containers/{name}/restart"), restart).expect("restart");
}

fn count(b: &Bocker, name: &str) -> u32 {
    b.read(&format!("containers/{name}/restart_count")).trim().parse().expect("restart_count")
}

fn runs(b: &Bocker, name: &str) -> usize {
    b.read(&format!("containers/{name}/logs")).lines().filter(|l| *l == "run").count()
}

/// Waits until `name` has exited and stayed so (no restart came) for `quiet`.
fn settled(b: &Bocker, name: &str, quiet: Duration) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut since = Instant::now();
    let mut last = (b.status(name), count(b, name));
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let now = (b.status(name), count(b, name));
        if now != last {
            (last, since) = (now, Instant::now());
        } else if last.0 == "exited" && since.elapsed() >= quiet {
            return;
        }
    }
    panic!("{name} did not settle: {last:?}");
}

#[test]
fn on_failure_restarts_failures_at_most_max_times_and_not_a_clean_exit() {
    let b = Bocker::start("policy-onfail");
    let img = b.import("");
    make(&b, "fails", &img, "sh -c 'echo run; exit 3'", "on-failure:2");
    assert_eq!(b.read("containers/fails/restart"), "on-failure:2\n");
    b.write("containers/fails/ctl", "start").expect("start");
    settled(&b, "fails", Duration::from_secs(2));
    assert_eq!(count(&b, "fails"), 2, "restarted exactly twice");
    assert_eq!(runs(&b, "fails"), 3, "ran three times in all");
    assert_eq!(b.read("containers/fails/exit_code"), "3\n");
    // A user's start clears the count: two more restarts again.
    b.write("containers/fails/ctl", "start").expect("start");
    settled(&b, "fails", Duration::from_secs(2));
    assert_eq!((count(&b, "fails"), runs(&b, "fails")), (2, 6));

    // Positive control beside it: a clean exit is not a failure.
    make(&b, "clean", &img, "sh -c 'echo run; exit 0'", "on-failure");
    b.write("containers/clean/ctl", "start").expect("start");
    settled(&b, "clean", Duration::from_secs(2));
    assert_eq!((count(&b, "clean"), runs(&b, "clean")), (0, 1));

    // Bad values change nothing; auto_remove and a policy don't go together (as --rm and --restart).
    let e = b.write("containers/clean/restart", "sometimes").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EINVAL);
    assert!(b.read("containers/clean/error").contains("on-failure[:MAX]"));
    assert_eq!(b.read("containers/clean/restart"), "on-failure\n");
    let e = b.write("containers/clean/auto_remove", "true").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EINVAL);
    assert_eq!(b.read("containers/clean/auto_remove"), "false\n");
}

#[test]
fn always_restarts_a_clean_exit_with_a_back_off_until_a_user_stops_it() {
    let b = Bocker::start("policy-always");
    let img = b.import("");
    make(&b, "loop", &img, "sh -c 'echo run; exit 0'", "always");
    b.write("containers/loop/ctl", "start").expect("start");
    // Waits of 100, 200, 400, 800, 1600 ms...: a handful in 3 s, not one per run's few ms (fewer on a
    // loaded machine, whose starts are slower).
    std::thread::sleep(Duration::from_secs(3));
    let n = count(&b, "loop");
    assert!((2..=7).contains(&n), "{n} restarts in 3 s");
    // A user's stop (of a container between runs, too) ends it for good.
    let _ = b.write("containers/loop/ctl", "stop 1");
    settled(&b, "loop", Duration::from_secs(3));
    let after = count(&b, "loop");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count(&b, "loop"), after);
    assert_eq!(b.status("loop"), "exited");
}

#[test]
fn a_restarted_daemon_brings_back_the_ones_their_policy_says() {
    let mut b = Bocker::start("policy-daemon");
    let img = b.import("");
    // Stopped by a user: `always` comes back with the daemon anyway, `unless-stopped` doesn't.
    for (name, policy) in [("always", "always"), ("stopped", "unless-stopped")] {
        make(&b, name, &img, "sleep 1000", policy);
        b.write(&format!("containers/{name}/ctl"), "start").expect("start");
        b.write(&format!("containers/{name}/ctl"), "stop 1").expect("stop");
    }
    // Ending while no daemon runs: `unless-stopped` is restarted when the next daemon finds it; with no
    // policy (the control) it stays exited. It runs long enough to outlive the daemon's stop even on a
    // loaded machine (one that ended before would be started by the next daemon, which is no restart
    // by its policy: its restart_count stays 0), and ends well before the next daemon comes.
    for (name, policy) in [("ends", "unless-stopped"), ("plain", "no")] {
        make(&b, name, &img, "sh -c 'echo run; sleep 4'", policy);
        b.write(&format!("containers/{name}/ctl"), "start").expect("start");
    }
    assert!(b.stop_daemon().is_some_and(|s| s.success()));
    std::thread::sleep(Duration::from_secs(6));
    b.spawn_daemon();
    eventually(
        Duration::from_secs(20),
        || format!("{} {}", b.status("always"), b.status("ends")),
        || b.status("always") == "running" && runs(&b, "ends") == 2,
    );
    assert_eq!(b.status("stopped"), "exited");
    assert_eq!(b.status("plain"), "exited");
    assert_eq!(runs(&b, "plain"), 1);
    assert!(count(&b, "ends") >= 1);
    for name in ["always", "ends"] {
        b.write(&format!("containers/{name}/ctl"), "kill").expect("kill");
    }
}

#[test]
fn a_policy_changed_during_a_back_off_is_heeded() {
    let b = Bocker::start("policy-change");
    let img = b.import("");
    make(&b, "flap", &img, "sh -c 'echo run; exit 0'", "always");
    b.write("containers/flap/ctl", "start").expect("start");
    // Once the waits are long (800 ms and more), between two runs: the policy is cleared while one waits.
    eventually(Duration::from_secs(20), || count(&b, "flap").to_string(), || count(&b, "flap") >= 4);
    eventually(Duration::from_secs(10), || b.status("flap"), || b.write("containers/flap/restart", "no").is_ok());
    let after = count(&b, "flap");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!((b.status("flap"), count(&b, "flap")), ("exited".to_string(), after), "the waiting restart was dropped");
}
