//! The daemon's life: clean stop, crash, restart. Records survive, running containers are re-adopted,
//! exits while the daemon is down are recorded, no log byte is lost, one daemon per root.

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
