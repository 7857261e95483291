//! Images and containers through the mount, as a shell user drives them: import, run, logs, status,
//! exit codes, argv quoting, mkdir/configure/start, stop and kill, rm and rmi.

mod common;

use std::fs;

use common::Bocker;

#[test]
fn import_makes_a_browsable_read_only_image() {
    let b = Bocker::start("import");
    let id = b.import("");
    let dir = format!("images/{id}");
    assert_eq!(b.read(&format!("{dir}/source")).trim_end(), b.rootfs().display().to_string());
    let size: u64 = b.read(&format!("{dir}/size")).trim().parse().unwrap();
    let busybox = fs::metadata(b.rootfs().join("bin/busybox")).unwrap().len();
    assert!(size >= busybox, "size {size} < busybox {busybox}");
    assert!(b.read(&format!("{dir}/created")).starts_with("20"));
    let config: serde_json::Value = serde_json::from_str(&b.read(&format!("{dir}/config.json"))).unwrap();
    assert_eq!(config["os"], "linux");
    assert!(config["config"]["Env"][0].as_str().unwrap().starts_with("PATH="));
    // rootfs is a symlink to the subvolume: dotfiles came along, and it is read-only.
    let rootfs = fs::read_link(b.path(&format!("{dir}/rootfs"))).unwrap();
    assert_eq!(fs::read_to_string(rootfs.join(".dotfile")).unwrap(), "dot\n");
    assert!(fs::symlink_metadata(rootfs.join("bin/sh")).unwrap().file_type().is_symlink());
    let err = fs::write(rootfs.join("new"), "x").unwrap_err();
    assert_eq!(Bocker::errno(&err), libc::EROFS);
    let listing: Vec<String> =
        fs::read_dir(b.path("images")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(listing.contains(&id) && listing.contains(&"import".to_string()), "{listing:?}");
}

#[test]
fn run_records_output_status_and_exit_code() {
    let b = Bocker::start("run");
    let img = b.import("");
    let id = b.run_to_exit(&format!("{img} sh -c 'echo out; echo err >&2; exit 3'"));
    assert!(id.starts_with("ps_"), "{id}");
    let dir = format!("containers/{id}");
    assert_eq!(b.read(&format!("{dir}/logs")), "out\nerr\n");
    assert_eq!(b.read(&format!("{dir}/exit_code")), "3\n");
    assert_eq!(b.read(&format!("{dir}/status")), "exited\n");
    assert_eq!(b.read(&format!("{dir}/image")), format!("{img}\n"));
    assert_eq!(b.read(&format!("{dir}/pid")), "");
    assert!(b.read(&format!("{dir}/started_at")).starts_with("20"));
    assert!(b.read(&format!("{dir}/finished_at")).starts_with("20"));
    assert_eq!(b.read(&format!("{dir}/error")), "");
    // The image can be named by its source, as bocker's users do.
    let by_source = b.run_to_exit(&format!("{} true", b.rootfs().display()));
    assert_eq!(b.read(&format!("containers/{by_source}/exit_code")), "0\n");
}

#[test]
fn argv_reaches_execve_exactly() {
    let b = Bocker::start("argv");
    let img = b.import("");
    // Shell-word quoting: the spaces inside quotes survive, nothing is flattened through sh -c.
    let id = b.run_to_exit(&format!(r#"{img} printf '[%s]\n' 'a   b' "c'd" '' e"#));
    assert_eq!(b.read(&format!("containers/{id}/logs")), "[a   b]\n[c'd]\n[]\n[e]\n");
    // A JSON array in cmd.
    fs::create_dir(b.path("containers/json")).unwrap();
    b.write("containers/json/image", &img).unwrap();
    b.write("containers/json/cmd", r#"["printf", "<%s>", "x  y", "$HOME", "*"]"#).unwrap();
    assert_eq!(b.read("containers/json/cmd"), "printf '<%s>' 'x  y' '$HOME' '*'\n");
    b.write("containers/json/ctl", "start").unwrap();
    b.wait_status("json", "exited");
    assert_eq!(b.read("containers/json/logs"), "<x  y><$HOME><*>");
}

#[test]
fn mkdir_configure_start_runs_in_its_own_namespaces() {
    let b = Bocker::start("mkdir");
    let img = b.import("");
    fs::create_dir(b.path("containers/web-1")).unwrap();
    assert_eq!(b.status("web-1"), "created");
    assert_eq!(b.read("containers/web-1/cmd"), "");
    // echo adds a newline; printf does not: both work.
    b.write("containers/web-1/image", &format!("{img}\n")).unwrap();
    b.write("containers/web-1/env", "GREETING=hello world\nEMPTY=\n").unwrap();
    let script = "echo pid=$$; hostname; echo $GREETING; ls /proc/1/ >/dev/null && echo proc; \
                  echo dev > /dev/null && echo devnull; ls /dev; grep -c . /proc/self/mounts >/dev/null; \
                  cat /proc/self/cgroup | tail -n 1; ip link 2>/dev/null | grep -o 'lo:.*UP' | head -n 1; \
                  ps -o pid,comm > /ps.out; wc -l < /ps.out; pwd";
    b.write("containers/web-1/cmd", &format!("sh -c '{script}'\n")).unwrap();
    b.write("containers/web-1/ctl", "start\n").unwrap();
    b.wait_status("web-1", "exited");
    let logs = b.read("containers/web-1/logs");
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(lines[0], "pid=1", "{logs}");
    assert_eq!(lines[1], "web-1", "{logs}");
    assert_eq!(lines[2], "hello world", "{logs}");
    assert_eq!(lines[3], "proc", "{logs}");
    assert_eq!(lines[4], "devnull", "{logs}");
    for dev in ["null", "zero", "full", "random", "urandom", "tty", "pts", "shm"] {
        assert!(lines.contains(&dev), "/dev/{dev} missing: {logs}");
    }
    // cgroup namespace: the container sees its own group as the root.
    assert!(lines.contains(&"0::/"), "{logs}");
    assert!(logs.contains("lo: <LOOPBACK,UP"), "loopback not up: {logs}");
    // A fresh pid namespace holds only sh and ps: a header line and the two. (Not `ps | wc -l`: whether
    // wc has been forked yet when ps reads /proc is a race.)
    assert!(lines.contains(&"3"), "{logs}");
    assert_eq!(lines.last(), Some(&"/"), "{logs}");
    // env shows the effective environment: the image's PATH and the container's own entries.
    let env = b.read("containers/web-1/env");
    assert!(env.starts_with("PATH=") && env.contains("GREETING=hello world\nEMPTY=\n"), "{env}");
}

#[test]
fn image_config_applies_env_workdir_entrypoint_and_cmd() {
    let b = Bocker::start("config");
    let img =
        b.import("WORKDIR /srv/app\nENV MODE=prod\nENTRYPOINT [\"sh\", \"-c\"]\nCMD [\"echo $MODE in $(pwd)\"]\n");
    let config: serde_json::Value = serde_json::from_str(&b.read(&format!("images/{img}/config.json"))).unwrap();
    assert_eq!(config["config"]["WorkingDir"], "/srv/app");
    let default = b.run_to_exit(&img);
    assert_eq!(b.read(&format!("containers/{default}/logs")), "prod in /srv/app\n");
    assert_eq!(b.read(&format!("containers/{default}/cmd")), "'echo $MODE in $(pwd)'\n");
    assert_eq!(b.read(&format!("containers/{default}/entrypoint")), "sh -c\n");
    // Arguments given at run replace the image's Cmd and follow its Entrypoint, as on Docker; Env still applies.
    let given = b.run_to_exit(&format!("{img} 'echo $MODE'"));
    assert_eq!(b.read(&format!("containers/{given}/logs")), "prod\n");
    assert_eq!(b.read(&format!("containers/{given}/entrypoint")), "sh -c\n");
    assert_eq!(b.read(&format!("containers/{given}/cmd")), "'echo $MODE'\n");
}

#[test]
fn stop_and_kill_end_a_running_container() {
    let b = Bocker::start("stop");
    let img = b.import("");
    fs::create_dir(b.path("containers/sleeper")).unwrap();
    b.write("containers/sleeper/image", &img).unwrap();
    // sh as pid 1 ignores SIGTERM without a trap: stop must fall back to SIGKILL after the grace period.
    b.write("containers/sleeper/cmd", "sleep 1000").unwrap();
    b.write("containers/sleeper/ctl", "start").unwrap();
    assert_eq!(b.status("sleeper"), "running");
    let pid: i32 = b.read("containers/sleeper/pid").trim().parse().unwrap();
    assert!(fs::metadata(format!("/proc/{pid}")).is_ok());
    b.write("containers/sleeper/ctl", "stop 1").unwrap();
    assert_eq!(b.status("sleeper"), "exited");
    assert_eq!(b.read("containers/sleeper/exit_code"), "137\n");
    // An exited container starts again; a trap makes SIGTERM a clean exit.
    b.write("containers/sleeper/cmd", "sh -c 'trap \"exit 0\" TERM; echo ready; while true; do sleep 0.1; done'")
        .unwrap();
    b.write("containers/sleeper/ctl", "start").unwrap();
    // pid 1 drops a signal it has no handler for yet: stop only once the trap is set.
    while !b.read("containers/sleeper/logs").contains("ready") {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    b.write("containers/sleeper/ctl", "stop").unwrap();
    assert_eq!(b.read("containers/sleeper/exit_code"), "0\n");
    b.write("containers/sleeper/cmd", "sleep 1000").unwrap();
    b.write("containers/sleeper/ctl", "start").unwrap();
    b.write("containers/sleeper/ctl", "kill TERM").unwrap();
    b.write("containers/sleeper/ctl", "kill").unwrap();
    b.wait_status("sleeper", "exited");
    // A death by signal reads as 128 + the signal, as in a shell.
    assert_eq!(b.read("containers/sleeper/exit_code"), "137\n");
    assert_eq!(
        b.read("containers/sleeper/ctl"),
        "start\nstop [SECONDS]\nrestart [SECONDS]\nkill [SIGNAL]\npause\nunpause\nremove\nclose-stdin\n"
    );
}

#[test]
fn rmdir_removes_containers_and_images_and_an_image_goes_while_its_containers_stay() {
    let b = Bocker::start("rm");
    let img = b.import("");
    b.configure("c1", &img, "sleep 1000");
    b.write("containers/c1/ctl", "start").unwrap();
    let rootfs = fs::read_link(b.path("containers/c1/rootfs")).unwrap();
    assert!(rootfs.join("bin/busybox").exists());
    let err = fs::remove_dir(b.path("containers/c1")).unwrap_err();
    assert_eq!(Bocker::errno(&err), libc::EBUSY);
    assert!(b.read("containers/c1/error").contains("running"));
    // The image goes while c1 runs (Docker's `rmi -f`, bocker's `rm IMG`): c1 keeps its rootfs and config.
    fs::remove_dir(b.path(&format!("images/{img}"))).unwrap();
    assert!(!b.path(&format!("images/{img}")).exists());
    assert_eq!(b.status("c1"), "running");
    b.write("containers/c1/ctl", "kill").unwrap();
    b.wait_status("c1", "exited");
    b.write("containers/c1/ctl", "start").unwrap();
    b.wait_status("c1", "running");
    assert_eq!(b.read("containers/c1/image"), format!("{img}\n"), "it still names the image it was made from");
    b.write("containers/c1/ctl", "kill").unwrap();
    b.wait_status("c1", "exited");
    fs::remove_dir(b.path("containers/c1")).unwrap();
    assert!(!b.path("containers/c1").exists());
    assert!(!rootfs.exists(), "the container's subvolume is gone");
    assert!(!b.root.join("state/containers/c1").exists());
    assert!(!b.root.join("store/images").join(&img).exists());
    assert_eq!(fs::read_dir(b.root.join("store/images")).unwrap().count(), 0);
}

#[test]
fn the_command_starts_with_clean_signals() {
    let b = Bocker::start("signals");
    let img = b.import("");
    // grep is pid 1 here: nothing of the daemon's blocked SIGTERM or the Rust runtime's ignored SIGPIPE.
    let id = b.run_to_exit(&format!("{img} grep -E '^Sig(Blk|Ign)' /proc/self/status"));
    assert_eq!(b.read(&format!("containers/{id}/logs")), "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
}

/// The monitor reads the command's executable ahead of its exec (`runtime::warm`); a command that is no
/// executable (a FIFO, a directory, one found along PATH, a symlink out of the root) fails its start as
/// execve says, at once, with nothing left waiting on it; the same image's real command runs.
#[test]
fn a_command_that_is_a_fifo_or_a_directory_fails_its_start_at_once() {
    let b = Bocker::start("warm");
    let root = b.rootfs();
    nix::unistd::mkfifo(&root.join("bin/fifo"), nix::sys::stat::Mode::from_bits_truncate(0o755)).unwrap();
    fs::create_dir(root.join("bin/dir")).unwrap();
    std::os::unix::fs::symlink("../../../../../../bin/fifo", root.join("bin/out")).unwrap();
    let img = b.import("");
    for (n, cmd) in ["/bin/fifo", "fifo", "/bin/dir", "/bin/out"].iter().enumerate() {
        let name = format!("c{n}");
        b.configure(&name, &img, cmd);
        let err = b.write(&format!("containers/{name}/ctl"), "start").unwrap_err();
        assert!([libc::EACCES, libc::ENOENT].contains(&Bocker::errno(&err)), "{cmd}: {err}");
        assert_ne!(b.status(&name), "running", "{cmd}");
        assert!(!b.read(&format!("containers/{name}/error")).is_empty(), "{cmd}");
    }
    let id = b.run_to_exit(&format!("{img} /bin/true"));
    assert_eq!(b.read(&format!("containers/{id}/exit_code")), "0\n");
}
