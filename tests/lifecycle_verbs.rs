//! The `ctl` verbs of a container's life beyond start, stop and kill, on a real daemon and this machine's
//! real cgroups: `pause` freezes (a busy loop's `cpu.usage_usec` stands still) and `unpause` thaws, also
//! across a daemon restart; `restart` makes a new run; `remove` leaves nothing; `stop` of a container that
//! doesn't run changes nothing while `kill` is ESRCH; a paused container still stops within its grace; the
//! `created` file; and the command line's restart, pause, unpause and rm -f.

mod common;

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{cgroup_roots, eventually, Bocker};

/// A busy loop that ignores SIGTERM (pid 1 without a handler).
const BUSY: &str = "sh -c 'while :; do :; done'";

fn usage(b: &Bocker, name: &str) -> u64 {
    let text = b.read(&format!("containers/{name}/cpu.usage_usec"));
    text.trim().parse().unwrap_or_else(|_| panic!("cpu.usage_usec of {name}: {text:?}"))
}

/// Waits until the container's CPU time has grown by 20 ms at least: it runs.
fn uses_cpu(b: &Bocker, name: &str) {
    let from = usage(b, name);
    eventually(
        Duration::from_secs(20),
        || format!("{name} used no CPU from {from}"),
        || usage(b, name) > from + 20_000,
    );
}

fn errno_of(r: std::io::Result<()>) -> i32 {
    Bocker::errno(&r.expect_err("the write should fail"))
}

/// `verb` to `name`'s ctl fails with `errno`, and its error file says `message`.
fn refused(b: &Bocker, name: &str, verb: &str, errno: i32, message: &str) {
    let got = errno_of(b.write(&format!("containers/{name}/ctl"), verb));
    assert_eq!(got, errno, "{verb} on {name}: errno {got}, wanted {errno}");
    let error = b.read(&format!("containers/{name}/error"));
    assert!(error.contains(message), "{verb} on {name}: error file {error:?} lacks {message:?}");
}

/// The kernel's freezer state of `name`'s group: v1's `freezer.state`, else cgroup2's `cgroup.freeze`.
fn freezer_state(b: &Bocker, name: &str) -> String {
    let roots = cgroup_roots();
    let group = |root: &PathBuf| root.join(&b.cgroup_parent).join(format!("ctr-{name}"));
    let file = match roots.iter().find(|r| r.ends_with("freezer")) {
        Some(root) => group(root).join("freezer.state"),
        None => group(roots.iter().last().expect("a cgroup hierarchy")).join("cgroup.freeze"),
    };
    fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display())).trim().to_string()
}

fn inspect(b: &Bocker, name: &str) -> serde_json::Value {
    serde_json::from_str(&b.read(&format!("containers/{name}/inspect.json"))).unwrap()
}

/// Asserts the CPU time of `name` stands still over a second: paused.
fn stands_still(b: &Bocker, name: &str) {
    let before = usage(b, name);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(usage(b, name), before, "{name} used CPU while paused");
}

#[test]
fn pause_stops_cpu_use_and_unpause_resumes_it() {
    let b = Bocker::start("pause");
    let img = b.import("");
    b.configure("busy", &img, BUSY);
    b.write("containers/busy/ctl", "start").unwrap();
    let pid = b.read("containers/busy/pid");
    uses_cpu(&b, "busy");

    b.write("containers/busy/ctl", "pause").unwrap();
    assert_eq!(b.status("busy"), "paused");
    assert!(matches!(freezer_state(&b, "busy").as_str(), "FROZEN" | "1"), "{}", freezer_state(&b, "busy"));
    stands_still(&b, "busy");
    assert_eq!(b.read("containers/busy/pid"), pid, "the same process, alive");
    let state = &inspect(&b, "busy")["State"];
    assert_eq!(
        (state["Status"].as_str(), state["Running"].as_bool(), state["Paused"].as_bool()),
        (Some("paused"), Some(true), Some(true))
    );

    // What a paused container refuses, as Docker does, and says why.
    refused(&b, "busy", "pause", libc::EBUSY, "is already paused");
    refused(&b, "busy", "start", libc::EBUSY, "is paused: unpause it instead");
    assert_eq!(errno_of(b.write("containers/busy/exec", "true")), libc::EBUSY);
    assert!(b.read("containers/busy/error").contains("unpause it before exec"));
    assert_eq!(Bocker::errno(&fs::remove_dir(b.path("containers/busy")).unwrap_err()), libc::EBUSY);
    assert_eq!(errno_of(b.write("containers/busy/cmd", "true")), libc::EBUSY);
    // Limits go to the frozen group as to a running one.
    b.write("containers/busy/pids.max", "77").unwrap();
    assert_eq!(b.read("containers/busy/pids.max"), "77\n");
    assert_eq!(b.status("busy"), "paused");
    stands_still(&b, "busy");

    b.write("containers/busy/ctl", "unpause").unwrap();
    assert_eq!(b.status("busy"), "running");
    assert!(matches!(freezer_state(&b, "busy").as_str(), "THAWED" | "0"), "{}", freezer_state(&b, "busy"));
    assert_eq!(inspect(&b, "busy")["State"]["Paused"], false);
    uses_cpu(&b, "busy");
    refused(&b, "busy", "unpause", libc::EBUSY, "is not paused");
    b.write("containers/busy/ctl", "kill").unwrap();
    b.wait_status("busy", "exited");
}

#[test]
fn pause_and_unpause_of_a_container_that_does_not_run_are_esrch() {
    let b = Bocker::start("pause-stopped");
    let img = b.import("");
    b.configure("idle", &img, "true");
    for verb in ["pause", "unpause"] {
        refused(&b, "idle", verb, libc::ESRCH, "is not running");
    }
    b.write("containers/idle/ctl", "start").unwrap();
    b.wait_status("idle", "exited");
    for verb in ["pause", "unpause"] {
        refused(&b, "idle", verb, libc::ESRCH, "is not running");
    }
    assert_eq!(b.status("idle"), "exited");
    assert!(b.read("errors").contains("containers/idle/ctl ESRCH container 'idle' is not running"));
}

#[test]
fn restart_makes_a_new_run_and_starts_one_that_does_not_run() {
    let b = Bocker::start("restart-verb");
    let img = b.import("");
    // It ignores SIGTERM, so the restart's grace of 1 s runs out: the new start is a second later at least.
    b.configure("svc", &img, "sh -c 'echo up; while :; do sleep 0.1; done'");
    b.write("containers/svc/ctl", "start").unwrap();
    let (pid, started) = (b.read("containers/svc/pid"), b.read("containers/svc/started_at"));
    let t0 = Instant::now();
    b.write("containers/svc/ctl", "restart 1").unwrap();
    assert!(t0.elapsed() >= Duration::from_secs(1), "the grace period was waited");
    assert_eq!(b.status("svc"), "running");
    assert_ne!(b.read("containers/svc/pid"), pid, "a new process");
    assert_ne!(b.read("containers/svc/started_at"), started);
    assert_eq!(b.read("containers/svc/exit_code"), "", "running: no exit code");
    let pid = b.read("containers/svc/pid");
    assert!(fs::metadata(format!("/proc/{}", pid.trim())).is_ok());

    // An exited one is just started; a created one too.
    b.write("containers/svc/ctl", "kill").unwrap();
    b.wait_status("svc", "exited");
    b.write("containers/svc/ctl", "restart").unwrap();
    assert_eq!(b.status("svc"), "running");
    // Running is its process started; its first line comes when the shell gets to it.
    eventually(
        Duration::from_secs(10),
        || b.read("containers/svc/logs"),
        || b.read("containers/svc/logs") == "up\nup\nup\n",
    );
    b.configure("fresh", &img, "sh -c 'exit 5'");
    b.write("containers/fresh/ctl", "restart").unwrap();
    b.wait_status("fresh", "exited");
    assert_eq!(b.read("containers/fresh/exit_code"), "5\n");
    refused(&b, "fresh", "restart soon", libc::EINVAL, "bad timeout 'soon'");
    b.write("containers/svc/ctl", "kill").unwrap();
    b.wait_status("svc", "exited");

    // The exit a restart makes doesn't remove an auto_remove container (Docker's restart); its next does.
    b.configure("job", &img, BUSY);
    b.write("containers/job/auto_remove", "true").unwrap();
    b.write("containers/job/ctl", "start").unwrap();
    b.write("containers/job/ctl", "restart 0").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(b.status("job"), "running");
    b.write("containers/job/ctl", "kill").unwrap();
    eventually(Duration::from_secs(10), || "job stayed".into(), || !b.path("containers/job").exists());
}

/// Whether anything of container `name` is left: its directory on the mount, its record, any cgroup.
fn leftovers(b: &Bocker, name: &str) -> Vec<String> {
    let mut left: Vec<String> = cgroup_roots()
        .iter()
        .map(|r| r.join(&b.cgroup_parent).join(format!("ctr-{name}")))
        .filter(|g| g.exists())
        .map(|g| g.display().to_string())
        .collect();
    for p in [b.path(&format!("containers/{name}")), b.root.join(format!("state/containers/{name}"))] {
        if p.exists() {
            left.push(p.display().to_string());
        }
    }
    left
}

#[test]
fn remove_kills_a_running_or_paused_container_and_leaves_nothing() {
    let b = Bocker::start("remove");
    let img = b.import("");
    for name in ["live", "frozen"] {
        b.configure(name, &img, BUSY);
        b.write(&format!("containers/{name}/ctl"), "start").unwrap();
    }
    b.write("containers/frozen/ctl", "pause").unwrap();
    for name in ["live", "frozen"] {
        let pid = b.read(&format!("containers/{name}/pid")).trim().to_string();
        b.write(&format!("containers/{name}/ctl"), "remove").unwrap();
        assert_eq!(leftovers(&b, name), Vec::<String>::new(), "{name}");
        eventually(
            Duration::from_secs(5),
            || format!("{name}'s process {pid} lives"),
            || fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z ")),
        );
    }
    // One that doesn't run is just removed.
    b.configure("idle", &img, "true");
    b.write("containers/idle/ctl", "remove").unwrap();
    assert_eq!(leftovers(&b, "idle"), Vec::<String>::new());
    let names: Vec<String> =
        fs::read_dir(b.path("containers")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names, ["run"]);
}

#[test]
fn stop_of_a_stopped_container_succeeds_and_changes_nothing_but_kill_is_esrch() {
    let b = Bocker::start("stop-stopped");
    let img = b.import("");
    let id = b.run_to_exit(&format!("{img} sh -c 'exit 3'"));
    let files = ["status", "exit_code", "started_at", "finished_at", "pid", "logs"];
    let seen = |b: &Bocker| files.map(|f| b.read(&format!("containers/{id}/{f}")));
    let before = seen(&b);
    b.write(&format!("containers/{id}/ctl"), "stop").unwrap();
    b.write(&format!("containers/{id}/ctl"), "stop 0").unwrap();
    assert_eq!(seen(&b), before);
    assert_eq!(before[1], "3\n");
    refused(&b, &id, "kill", libc::ESRCH, "is not running");
    assert_eq!(seen(&b), before);
    // A container never started: stop is done, it stays created.
    fs::create_dir(b.path("containers/new")).unwrap();
    b.write("containers/new/ctl", "stop").unwrap();
    assert_eq!(b.status("new"), "created");
    assert_eq!(b.read("containers/new/error"), "");
}

#[test]
fn a_paused_container_stops_within_its_grace_and_takes_its_signals() {
    let b = Bocker::start("stop-paused");
    let img = b.import("");
    // It takes TERM: once thawed it ends at once with its own code.
    b.configure("polite", &img, "sh -c 'trap \"exit 7\" TERM; echo ready; while :; do sleep 0.1; done'");
    // It ignores TERM: the grace runs out, then SIGKILL.
    b.configure("deaf", &img, "sh -c 'echo ready; while :; do :; done'");
    // It prints what it got.
    b.configure("ears", &img, "sh -c 'trap \"echo got USR1\" USR1; echo ready; while :; do sleep 0.1; done'");
    for name in ["polite", "deaf", "ears"] {
        b.write(&format!("containers/{name}/ctl"), "start").unwrap();
        // Its trap set before it is frozen.
        let logs = format!("containers/{name}/logs");
        eventually(Duration::from_secs(10), || b.read(&logs), || b.read(&logs).starts_with("ready\n"));
        b.write(&format!("containers/{name}/ctl"), "pause").unwrap();
        assert_eq!(b.status(name), "paused");
    }
    let t0 = Instant::now();
    b.write("containers/polite/ctl", "stop 20").unwrap();
    assert!(t0.elapsed() < Duration::from_secs(10), "stopped in {:?}: its TERM waited for the grace", t0.elapsed());
    assert_eq!((b.status("polite"), b.read("containers/polite/exit_code")), ("exited".into(), "7\n".into()));

    let t0 = Instant::now();
    b.write("containers/deaf/ctl", "stop 1").unwrap();
    let took = t0.elapsed();
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(10), "stopped in {took:?}");
    assert_eq!((b.status("deaf"), b.read("containers/deaf/exit_code")), ("exited".into(), "137\n".into()));

    // A signal to a paused one thaws it, as Docker's kill: it runs and handles it.
    b.write("containers/ears/ctl", "kill USR1").unwrap();
    assert_eq!(b.status("ears"), "running");
    eventually(
        Duration::from_secs(10),
        || b.read("containers/ears/logs"),
        || b.read("containers/ears/logs").contains("got USR1"),
    );
    b.write("containers/ears/ctl", "pause").unwrap();
    b.write("containers/ears/ctl", "kill").unwrap();
    b.wait_status("ears", "exited");
    assert_eq!(b.read("containers/ears/exit_code"), "137\n");
}

#[test]
fn a_restarted_daemon_shows_a_paused_container_paused_and_unpause_works_after() {
    let mut b = Bocker::start("pause-restart");
    let img = b.import("");
    b.configure("busy", &img, BUSY);
    b.write("containers/busy/ctl", "start").unwrap();
    uses_cpu(&b, "busy");
    b.write("containers/busy/ctl", "pause").unwrap();
    let pid = b.read("containers/busy/pid");

    assert!(b.stop_daemon().is_some_and(|s| s.success()));
    b.spawn_daemon();
    assert_eq!(b.status("busy"), "paused");
    assert_eq!(b.read("containers/busy/pid"), pid, "re-adopted, paused");
    stands_still(&b, "busy");
    b.write("containers/busy/ctl", "unpause").unwrap();
    assert_eq!(b.status("busy"), "running");
    uses_cpu(&b, "busy");

    // A daemon that dies between a freeze and its record: the kernel's freezer is believed.
    b.crash_daemon();
    let group = match cgroup_roots().into_iter().find(|r| r.ends_with("freezer")) {
        Some(root) => (root.join(&b.cgroup_parent).join("ctr-busy/freezer.state"), "FROZEN"),
        None => (cgroup_roots().last().unwrap().join(&b.cgroup_parent).join("ctr-busy/cgroup.freeze"), "1"),
    };
    fs::write(&group.0, group.1).unwrap();
    b.spawn_daemon();
    assert_eq!(b.status("busy"), "paused");
    b.write("containers/busy/ctl", "stop 1").unwrap();
    assert_eq!(b.status("busy"), "exited");
}

#[test]
fn created_is_set_at_mkdir_and_stays() {
    let mut b = Bocker::start("created");
    let img = b.import("");
    fs::create_dir(b.path("containers/c")).unwrap();
    let created = b.read("containers/c/created");
    assert!(created.starts_with("20") && created.ends_with("Z\n") && created.contains('T'), "{created:?}");
    assert_eq!(inspect(&b, "c")["Created"].as_str(), Some(created.trim_end()));
    b.write("containers/c/image", &img).unwrap();
    b.write("containers/c/cmd", "true").unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    b.write("containers/c/ctl", "start").unwrap();
    b.wait_status("c", "exited");
    assert_ne!(b.read("containers/c/started_at"), created, "a start is another time");
    assert_eq!(b.read("containers/c/created"), created);
    b.stop_daemon();
    b.spawn_daemon();
    assert_eq!(b.read("containers/c/created"), created);
    // `run` makes one too.
    let id = b.run_to_exit(&format!("{img} true"));
    assert!(b.read(&format!("containers/{id}/created")).starts_with("20"));
}

#[test]
fn the_command_line_restarts_pauses_unpauses_and_force_removes() {
    let b = Bocker::start("cli-life");
    let img = b.import("");
    b.configure("web", &img, BUSY);
    b.write("containers/web/ctl", "start").unwrap();
    let out = |args: &[&str]| {
        let o = b.cli(args);
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    assert_eq!(out(&["pause", "web"]), (Some(0), "web\n".into(), String::new()));
    assert_eq!(b.status("web"), "paused");
    let (code, _, err) = out(&["pause", "web"]);
    assert!(code == Some(1) && err.contains("already paused"), "{err}");
    assert_eq!(out(&["unpause", "web"]), (Some(0), "web\n".into(), String::new()));
    assert_eq!(b.status("web"), "running");
    let pid = b.read("containers/web/pid");
    let t0 = Instant::now();
    assert_eq!(out(&["restart", "-t", "1", "web"]), (Some(0), "web\n".into(), String::new()));
    assert!(t0.elapsed() >= Duration::from_secs(1));
    assert_ne!(b.read("containers/web/pid"), pid);
    let (code, _, err) = out(&["rm", "web"]);
    assert!(code == Some(1) && err.contains("stop it first"), "{err}");
    assert_eq!(out(&["rm", "-f", "web"]), (Some(0), "Removed: web\n".into(), String::new()));
    assert_eq!(leftovers(&b, "web"), Vec::<String>::new());
    assert_eq!(out(&["pause", "web"]).1, "No container named 'web' exists\n");
    b.configure("idle", &img, "true");
    assert_eq!(out(&["unpause", "idle"]).1, "Container 'idle' exists but is not running\n");
    let help = out(&["--help"]).1;
    for verb in ["restart", "pause", "unpause"] {
        assert!(help.contains(verb), "--help lacks {verb}");
    }
    assert!(out(&["rm", "--help"]).1.contains("--force"));
}
