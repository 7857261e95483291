//! The daemon's life: clean stop, crash, restart. Records survive, running containers are re-adopted,
//! exits while the daemon is down are recorded, no log byte is lost, one daemon per root; and a crash with
//! starts, stops and removals in flight leaves nothing half-done in sight.

mod common;

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Bocker;

fn mounted(path: &std::path::Path) -> bool {
    let p = path.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo").unwrap().lines().any(|l| l.split(' ').nth(4) == Some(p.as_str()))
}

fn listing(b: &Bocker, dir: &str) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(b.path(dir)).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

#[test]
fn a_restart_keeps_images_and_containers_and_re_adopts_running_ones() {
    let mut b = Bocker::start("restart");
    let img = b.import("ENV KEPT=yes");
    fs::create_dir(b.path("containers/fresh")).unwrap();
    b.write("containers/fresh/image", &img).unwrap();
    b.write("containers/fresh/cmd", "echo 'a  b'").unwrap();
    b.write("containers/fresh/env", "X=1").unwrap();
    let done = b.run_to_exit(&format!("{img} sh -c 'echo bye; exit 4'"));
    fs::create_dir(b.path("containers/live")).unwrap();
    b.write("containers/live/image", &img).unwrap();
    b.write("containers/live/cmd", "sh -c 'echo up; while true; do sleep 0.1; done'").unwrap();
    b.write("containers/live/ctl", "start").unwrap();
    let pid = b.read("containers/live/pid");
    let fields = ["image", "cmd", "env", "status", "exit_code", "started_at", "finished_at", "logs"];
    let before: Vec<String> = ["fresh", done.as_str()]
        .iter()
        .flat_map(|c| fields.iter().map(move |f| format!("containers/{c}/{f}")))
        .map(|p| b.read(&p))
        .collect();
    let images = listing(&b, "images");
    let containers = listing(&b, "containers");

    let status = b.stop_daemon().unwrap();
    assert!(status.success(), "SIGTERM is a clean stop: {status}");
    assert!(!mounted(&b.mount), "the control filesystem is unmounted");
    assert!(mounted(&b.root.join("store")), "the store stays while a container runs in it");
    assert!(fs::metadata(format!("/proc/{}", pid.trim())).is_ok(), "the container outlives the daemon");

    b.spawn_daemon();
    assert_eq!(listing(&b, "images"), images);
    assert_eq!(listing(&b, "containers"), containers);
    let after: Vec<String> = ["fresh", done.as_str()]
        .iter()
        .flat_map(|c| fields.iter().map(move |f| format!("containers/{c}/{f}")))
        .map(|p| b.read(&p))
        .collect();
    assert_eq!(after, before);
    assert_eq!(b.status("live"), "running");
    assert_eq!(b.read("containers/live/pid"), pid, "re-adopted with its pid");
    // The re-adopted container is fully under control again.
    b.write("containers/live/ctl", "kill").unwrap();
    b.wait_status("live", "exited");
    assert_eq!(b.read("containers/live/exit_code"), "137\n");
    assert!(b.read("containers/live/logs").starts_with("up\n"));
    // And an image made before the restart still runs with its config.
    let again = b.run_to_exit(&format!("{img} sh -c 'echo $KEPT'"));
    assert_eq!(b.read(&format!("containers/{again}/logs")), "yes\n");

    b.stop_daemon();
    assert!(!mounted(&b.root.join("store")), "nothing runs: the store is unmounted too");
}

#[test]
fn an_exit_while_the_daemon_is_dead_is_recorded_and_no_output_is_lost() {
    let mut b = Bocker::start("crash");
    let img = b.import("");
    // Heavy output across the crash: every numbered line must be in the log.
    let id = b
        .submit(
            "containers/run",
            &format!("{img} sh -c 'i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo line $i; done; sleep 1; exit 5'"),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    b.crash_daemon();
    let err = fs::metadata(&b.mount).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN), "a crashed daemon leaves a dead mount");
    std::thread::sleep(Duration::from_millis(1500));

    // The new daemon clears the dead mount by itself and finds the exit.
    b.spawn_daemon();
    b.wait_status(&id, "exited");
    assert_eq!(b.read(&format!("containers/{id}/exit_code")), "5\n");
    assert!(b.read(&format!("containers/{id}/finished_at")).starts_with("20"));
    let logs = b.read(&format!("containers/{id}/logs"));
    let expected: String = (1..=3000).map(|i| format!("line {i}\n")).collect();
    assert_eq!(logs, expected);
    assert!(b.daemon_log().contains("clearing the dead mount"));
}

#[test]
fn a_clean_stop_right_after_removals_leaves_nothing_mounted() {
    let mut b = Bocker::start("cleanstop");
    let img = b.import("");
    let id = b.run_to_exit(&format!("{img} true"));
    // rm and rmi start background work on the store (space reclaim, spare snapshots): stop at once.
    assert!(b.cli(&["rm", &id]).status.success());
    assert!(b.cli(&["rmi", &img]).status.success());
    let status = b.stop_daemon().unwrap();
    assert!(status.success(), "{status}");
    assert!(!mounted(&b.mount), "control filesystem still mounted");
    assert!(!mounted(&b.root.join("store")), "store still mounted:\n{}", b.daemon_log());
    let loops = fs::read_dir("/sys/block").unwrap().flatten().any(|e| {
        fs::read_to_string(e.path().join("loop/backing_file"))
            .is_ok_and(|f| f.trim_end() == b.root.join("store.img").to_str().unwrap())
    });
    assert!(!loops, "the loop device was not released");
}

#[test]
fn one_daemon_per_root_and_per_mount_point() {
    let b = Bocker::start("lock");
    let other_mount = b.dir.join("mnt2");
    let out = Command::new(common::BIN)
        .args(["daemon", "--store-size", "1G", "--root"])
        .arg(&b.root)
        .arg("--mount")
        .arg(&other_mount)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let msg = String::from_utf8_lossy(&out.stderr);
    let pid = b.daemon_pid().unwrap();
    assert!(msg.contains(&format!("another bocker daemon (pid {pid}) already serves")), "{msg}");
    assert!(!mounted(&other_mount));

    let other_root = b.dir.join("root2");
    let out = Command::new(common::BIN)
        .args(["daemon", "--store-size", "1G", "--root"])
        .arg(&other_root)
        .arg("--mount")
        .arg(&b.mount)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(msg.contains("already a mount point in use"), "{msg}");
    assert!(!other_root.join("store.img").exists(), "a refused daemon made nothing");
}

#[test]
fn leftovers_of_interrupted_requests_are_swept_at_start() {
    let mut b = Bocker::start("sweep");
    let img = b.import("");
    // What a daemon killed in the middle of an import, a create or an rm leaves behind.
    let btrfs = |args: &[&str]| {
        let st = Command::new("btrfs").args(args).output().unwrap();
        assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    };
    let staging = b.root.join("store/images/.tmp-img_interrupted");
    btrfs(&["subvolume", "create", staging.to_str().unwrap()]);
    let orphan = b.root.join("store/containers/ps_orphan");
    btrfs(&["subvolume", "create", orphan.to_str().unwrap()]);
    fs::create_dir_all(b.root.join("state/images/img_half")).unwrap();
    fs::create_dir_all(b.root.join("state/containers/half")).unwrap();
    // And what a pull cut by a crash leaves: a layer being applied, a finished layer no image stands on,
    // a half-downloaded blob.
    let layer_staging = b.root.join("store/layers/.tmp-0123abcd-x");
    btrfs(&["subvolume", "create", layer_staging.to_str().unwrap()]);
    let lone_layer = b.root.join("store/layers").join("ab".repeat(32));
    btrfs(&["subvolume", "create", lone_layer.to_str().unwrap()]);
    let blob = b.root.join("store/blobs/0123456789abcdef-x");
    fs::write(&blob, "half a layer").unwrap();
    b.stop_daemon();
    b.spawn_daemon();
    assert!(!layer_staging.exists() && !lone_layer.exists() && !blob.exists());
    assert_eq!(
        listing(&b, "images"),
        vec![
            "build".into(),
            "by-name".into(),
            img.clone(),
            "import".into(),
            "pull".into(),
            "pulls".into(),
            "push".into(),
            "tag".into(),
            "untag".into()
        ]
    );
    assert_eq!(listing(&b, "containers"), vec!["run".to_string()]);
    assert!(!staging.exists() && !orphan.exists());
    assert!(!b.root.join("state/images/img_half").exists());
    assert!(!b.root.join("state/containers/half").exists());
    // The image itself is intact and runs.
    let t = Instant::now();
    let id = b.run_to_exit(&format!("{img} true"));
    assert_eq!(b.read(&format!("containers/{id}/exit_code")), "0\n", "after {:?}", t.elapsed());
}

/// A container's record file is written unsynced; its durable copy is the records' log. What a power cut
/// can leave of such files (a new record empty, a removed one back) is put right from the log at start.
#[test]
fn records_a_power_cut_lost_come_back_from_the_log() {
    let mut b = Bocker::start("wal");
    let img = b.import("");
    b.configure("kept", &img, "echo kept");
    b.write("containers/kept/env", "A=1").unwrap();
    fs::create_dir(b.path("containers/gone")).unwrap();
    fs::remove_dir(b.path("containers/gone")).unwrap();
    let state = b.root.join("state/containers");
    let record = fs::read_to_string(state.join("kept/record.json")).unwrap();
    b.crash_daemon();
    // As the disk may hold them: kept's record never written back (delayed allocation leaves it empty),
    // gone's unlink and rmdir never reached the disk.
    fs::write(state.join("kept/record.json"), "").unwrap();
    fs::create_dir(state.join("gone")).unwrap();
    fs::write(state.join("gone/record.json"), record.replace("\"kept\"", "\"gone\"")).unwrap();
    b.spawn_daemon();
    assert_eq!(listing(&b, "containers"), vec!["kept".to_string(), "run".to_string()]);
    assert!(!state.join("gone").exists(), "gone's directory is back");
    assert_eq!(fs::read_to_string(state.join("kept/record.json")).unwrap(), record);
    assert!(b.read("containers/kept/env").contains("A=1\n"), "{}", b.read("containers/kept/env"));
    b.write("containers/kept/ctl", "start").unwrap();
    b.wait_status("kept", "exited");
    assert_eq!(b.read("containers/kept/exit_code"), "0\n");
    assert_eq!(b.read("containers/kept/logs"), "kept\n");
    // Replayed once, and made durable: the log starts afresh, and a second start finds the same.
    assert!(b.daemon_log().contains("replaying the container records' log"), "{}", b.daemon_log());
    b.stop_daemon();
    b.spawn_daemon();
    assert_eq!(listing(&b, "containers"), vec!["kept".to_string(), "run".to_string()]);
    assert_eq!(b.status("kept"), "exited");
}

#[test]
fn a_container_whose_monitor_died_too_is_marked_exited_on_restart() {
    let mut b = Bocker::start("monitordead");
    let img = b.import("");
    b.configure("gone", &img, "sleep 1000");
    b.write("containers/gone/ctl", "start").unwrap();
    let pid: i32 = b.read("containers/gone/pid").trim().parse().unwrap();
    let record: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(b.root.join("state/containers/gone/record.json")).unwrap()).unwrap();
    let monitor = record["monitor_pid"].as_i64().unwrap() as i32;
    b.stop_daemon();
    // Both die while no daemon watches, so no exit record is written: the code can't be known.
    for p in [monitor, pid] {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), nix::sys::signal::SIGKILL).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while [monitor, pid].iter().any(|p| bockerfs::runtime::start_time(*p).is_some()) {
        assert!(Instant::now() < deadline, "processes did not die");
        std::thread::sleep(Duration::from_millis(10));
    }
    b.spawn_daemon();
    assert_eq!(b.status("gone"), "exited");
    assert_eq!(b.read("containers/gone/exit_code"), "255\n");
    assert_eq!(b.read("containers/gone/pid"), "");
    assert!(b.read("containers/gone/error").contains("monitor ended without recording an exit code"));
    fs::remove_dir(b.path("containers/gone")).unwrap();
}

/// The processes in container `name`'s group, in every hierarchy.
fn group_procs(b: &Bocker, name: &str) -> Vec<i32> {
    procs_in(&b.cgroup_parent, name)
}

fn procs_in(cgroup_parent: &str, name: &str) -> Vec<i32> {
    let mut pids: Vec<i32> = common::cgroup_roots()
        .iter()
        .map(|root| root.join(cgroup_parent).join(format!("ctr-{name}")).join("cgroup.procs"))
        .filter_map(|f| fs::read_to_string(f).ok())
        .flat_map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect::<Vec<i32>>())
        .collect();
    pids.sort();
    pids.dedup();
    pids
}

/// Kills, by pid, what is left in the groups of the test daemon's containers (a container orphaned by a
/// start the crash cut short is in no record, so the harness would not find it), before the harness cleans up.
struct Orphans(String, Vec<String>);

impl Drop for Orphans {
    fn drop(&mut self) {
        for name in &self.1 {
            for pid in procs_in(&self.0, name) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
            }
        }
    }
}

/// What the disk held for a container when the daemon died.
#[derive(Debug)]
struct AtCrash {
    record: Option<String>,
    state_dir: bool,
    rootfs: bool,
    procs: Vec<i32>,
}

fn at_crash(b: &Bocker, name: &str) -> AtCrash {
    let dir = b.root.join("state/containers").join(name);
    let record = fs::read_to_string(dir.join("record.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .map(|r| r["status"].as_str().unwrap_or("").to_string());
    AtCrash {
        record,
        state_dir: dir.exists(),
        rootfs: b.root.join("store/containers").join(name).exists(),
        procs: group_procs(b, name),
    }
}

#[test]
fn a_crash_with_starts_stops_and_removals_in_flight_leaves_nothing_half_done() {
    let mut b = Bocker::start_sized("crash-inflight", "2G");
    let img = b.import("");
    let mut everyone = Vec::new();
    // What was left half-done and visible, for the end (so one round's finding doesn't hide the rest).
    let mut half_done: Vec<String> = Vec::new();
    // Crashes early in the requests, in the middle, and late (the stops' grace period outlasts them all); the
    // starts take turns at their launch, so each round catches one or two of them under way.
    for (round, delay) in [10u64, 25, 45, 70, 250].into_iter().enumerate() {
        let starting: Vec<String> = (0..4).map(|i| format!("start{round}-{i}")).collect();
        let stopping: Vec<String> = (0..4).map(|i| format!("stop{round}-{i}")).collect();
        let removing: Vec<String> = (0..4).map(|i| format!("rm{round}-{i}")).collect();
        everyone.extend(starting.iter().chain(&stopping).chain(&removing).cloned());
        let _orphans = Orphans(b.cgroup_parent.clone(), everyone.clone());
        for (i, n) in starting.iter().enumerate() {
            b.configure(n, &img, "sleep 1000");
            if i % 2 == 1 {
                b.write(&format!("containers/{n}/network"), "none").unwrap();
            }
        }
        for n in &stopping {
            b.configure(n, &img, r#"sh -c 'trap "" TERM; while :; do sleep 1; done'"#);
            b.write(&format!("containers/{n}/ctl"), "start").unwrap();
        }
        for n in &removing {
            b.configure(n, &img, "true");
            b.write(&format!("containers/{n}/ctl"), "start").unwrap();
            b.wait_status(n, "exited");
            // Files to delete, so a removal takes a moment.
            let rootfs = fs::read_link(b.path(&format!("containers/{n}/rootfs"))).unwrap();
            for k in 0..1500 {
                fs::write(rootfs.join(format!("f{k}")), "x").unwrap();
            }
        }
        let barrier = std::sync::Barrier::new(13);
        std::thread::scope(|s| {
            let (b_ref, barrier) = (&b, &barrier);
            for n in &starting {
                s.spawn(move || {
                    barrier.wait();
                    let _ = b_ref.write(&format!("containers/{n}/ctl"), "start");
                });
            }
            for n in &stopping {
                s.spawn(move || {
                    barrier.wait();
                    let _ = b_ref.write(&format!("containers/{n}/ctl"), "stop 30");
                });
            }
            for n in &removing {
                s.spawn(move || {
                    barrier.wait();
                    let _ = fs::remove_dir(b_ref.path(&format!("containers/{n}")));
                });
            }
            barrier.wait();
            std::thread::sleep(Duration::from_millis(delay));
            // The requests under way fail with the connection (ENOTCONN) and their threads end.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(b_ref.daemon_pid().unwrap()),
                nix::sys::signal::SIGKILL,
            );
        });
        b.crash_daemon();
        let crash: Vec<(String, AtCrash)> =
            starting.iter().chain(&stopping).chain(&removing).map(|n| (n.clone(), at_crash(&b, n))).collect();
        let log_from = b.daemon_log().len();
        b.spawn_daemon();
        let log = b.daemon_log()[log_from..].to_string();
        let says = |name: &str| log.lines().any(|l| l.contains(name));
        let listed = listing(&b, "containers");
        let show = |n: &str| {
            format!(
                "round {round} (crash after {delay} ms), {n}: at the crash {:?}",
                crash.iter().find(|c| c.0 == n).unwrap().1
            )
        };

        let half = |c: &AtCrash| c.record.is_none() && (c.state_dir || c.rootfs);
        eprintln!(
            "round {round}, crash after {delay} ms: removals whole {}, cut {}, not begun {}; starts recorded {}; \
             stops cut {}",
            crash.iter().filter(|c| removing.contains(&c.0) && !c.1.state_dir && !c.1.rootfs).count(),
            crash.iter().filter(|c| removing.contains(&c.0) && half(&c.1)).count(),
            crash.iter().filter(|c| removing.contains(&c.0) && c.1.record.is_some()).count(),
            crash.iter().filter(|c| starting.contains(&c.0) && c.1.record.as_deref() == Some("running")).count(),
            crash.iter().filter(|c| stopping.contains(&c.0) && c.1.record.as_deref() == Some("running")).count(),
        );
        // Every container listed is whole: a final status, its record, its rootfs; the store and the state hold
        // exactly the listed ones.
        for n in listed.iter().filter(|n| *n != "run") {
            let status = b.status(n);
            assert!(["created", "running", "exited"].contains(&status.as_str()), "{}: status {status}", show(n));
            assert!(b.root.join("state/containers").join(n).join("record.json").is_file(), "{}", show(n));
            let rootfs = fs::read_link(b.path(&format!("containers/{n}/rootfs"))).unwrap();
            assert!(rootfs.join("bin/busybox").is_file(), "{}: no rootfs", show(n));
        }
        let mut store: Vec<String> = fs::read_dir(b.root.join("store/containers"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with(".warm-"))
            .collect();
        store.sort();
        let mut state: Vec<String> = fs::read_dir(b.root.join("state/containers"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        state.sort();
        let without_run: Vec<String> = listed.iter().filter(|n| *n != "run").cloned().collect();
        assert_eq!(store, without_run, "round {round}: the store's rootfs against the listed containers");
        assert_eq!(state, without_run, "round {round}: the records against the listed containers");

        // A removal happened whole or not at all; what a cut one left, the new daemon dropped and said so.
        for n in &removing {
            let at = &crash.iter().find(|c| &c.0 == n).unwrap().1;
            if listed.contains(n) {
                assert_eq!(b.status(n), "exited", "{}", show(n));
                fs::remove_dir(b.path(&format!("containers/{n}"))).unwrap_or_else(|e| panic!("{}: rm {e}", show(n)));
            } else if half(at) {
                assert!(says(n), "{}: its leftovers went without a word in the log:\n{log}", show(n));
            }
            assert!(
                !b.root.join("state/containers").join(n).exists() && !b.root.join("store/containers").join(n).exists()
            );
        }
        // A start happened (re-adopted, running) or left nothing: no process runs in a container whose record
        // says it doesn't. (Noted, and the orphan ended, so the rest is checked too; failed at the end.)
        for n in &starting {
            let status = b.status(n);
            assert!(["created", "running"].contains(&status.as_str()), "{}: {status}", show(n));
            if status == "running" {
                continue;
            }
            let deadline = Instant::now() + Duration::from_millis(1500);
            while !group_procs(&b, n).is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let orphans = group_procs(&b, n);
            if !orphans.is_empty() {
                half_done.push(format!("{}: processes {orphans:?} run in a container shown {status}", show(n)));
                for pid in orphans {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
                }
                common::eventually(
                    Duration::from_secs(5),
                    || format!("{n}'s orphan lives"),
                    || group_procs(&b, n).is_empty(),
                );
            } else if !crash.iter().find(|c| &c.0 == n).unwrap().1.procs.is_empty() && !says(n) {
                half_done.push(format!("{}: its orphaned process ended without a word in the log", show(n)));
            }
        }
        // A stop cut short left its container running, re-adopted, and the log says so.
        for n in &stopping {
            assert_eq!(b.status(n), "running", "{}", show(n));
            assert!(says(n), "{}: not a word of it in the log:\n{log}", show(n));
        }
        // Everything running is under control again: a stop ends it, and a start of what didn't start works.
        let listed = listing(&b, "containers");
        let running: Vec<String> = listed.iter().filter(|n| *n != "run" && b.status(n) == "running").cloned().collect();
        std::thread::scope(|s| {
            for n in &running {
                let b = &b;
                s.spawn(move || b.write(&format!("containers/{n}/ctl"), "stop 1").unwrap());
            }
        });
        for n in &running {
            assert_eq!(b.status(n), "exited", "round {round}: {n}");
            assert_eq!(b.read(&format!("containers/{n}/exit_code")), "137\n", "round {round}: {n}");
        }
        for n in starting.iter().filter(|n| b.status(n) == "created") {
            b.write(&format!("containers/{n}/ctl"), "start").unwrap_or_else(|e| panic!("{}: start {e}", show(n)));
            b.write(&format!("containers/{n}/ctl"), "kill").unwrap();
            b.wait_status(n, "exited");
        }
        for n in starting.iter().chain(&stopping) {
            assert_eq!(group_procs(&b, n), Vec::<i32>::new(), "round {round}: {n} still has processes");
        }
        // No group of a container that is gone.
        for root in common::cgroup_roots() {
            let Ok(groups) = fs::read_dir(root.join(&b.cgroup_parent)) else { continue };
            for g in groups.flatten().filter(|g| g.path().is_dir()) {
                let g = g.file_name().to_string_lossy().into_owned();
                if g.starts_with("spare-") {
                    continue; // The daemon's spare monitors' (docs/filesystem.md, "Spare monitors").
                }
                let name = g.strip_prefix("ctr-").unwrap_or(&g).to_string();
                assert!(listed.contains(&name), "round {round}: group {g} of no container in {}", root.display());
            }
        }
    }
    assert!(half_done.is_empty(), "left half-done by the crashes:\n{}", half_done.join("\n"));
}
