//! `containers/<name>/exec`, `execs/<n>/` and `bocker exec`, in real running containers: output and exit
//! code through files and through the command line without a terminal, the container's Env and WorkingDir,
//! its namespaces, cgroup and filesystem only (never the host's), and ESRCH for a container that is not
//! running.

mod common;

use std::process::Stdio;

use common::Bocker;

/// Writes `cmd` to the container's `exec` file and reads the exec's number back on the same open file.
fn exec(b: &Bocker, name: &str, cmd: &str) -> std::io::Result<String> {
    b.submit(&format!("containers/{name}/exec"), cmd)
}

#[test]
fn exec_output_and_exit_code_through_the_files() {
    let b = Bocker::start("exec-files");
    let img = b.import("ENV GREETING=hello\nWORKDIR /work");
    b.configure("box", &img, "sh -c 'echo inside > /made-by-pid1; sleep 1000'");
    b.write("containers/box/ctl", "start").expect("start");

    let n = exec(&b, "box", "sh -c 'echo $GREETING from $(pwd) on $(hostname); echo oops >&2; exit 3'").expect("exec");
    assert_eq!(n, "1");
    b.wait_exec("box", &n);
    assert_eq!(b.read("containers/box/execs/1/logs"), "hello from /work on box\noops\n");
    assert_eq!(b.read("containers/box/execs/1/exit_code"), "3\n");
    assert_eq!(
        b.read("containers/box/execs/1/cmd"),
        "sh -c 'echo $GREETING from $(pwd) on $(hostname); echo oops >&2; exit 3'\n"
    );
    assert_eq!(b.read("containers/box/execs/1/pid"), "");
    let listed: Vec<String> = std::fs::read_dir(b.path("containers/box/execs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(listed, ["1"]);

    // A second one gets the next number; the container's own output is untouched by execs.
    let n = exec(&b, "box", "[\"cat\", \"/made-by-pid1\"]").expect("exec");
    assert_eq!(n, "2");
    b.wait_exec("box", &n);
    assert_eq!(b.read("containers/box/execs/2/logs"), "inside\n");
    assert_eq!(b.read("containers/box/execs/2/exit_code"), "0\n");
    assert_eq!(b.read("containers/box/logs"), "");

    // A command that is not there: ENOENT, and nothing half-made is listed.
    let e = exec(&b, "box", "no-such-program").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::ENOENT);
    assert!(b.read("containers/box/error").contains("no-such-program"));
    assert!(!b.path("containers/box/execs/3").exists());
}

#[test]
fn exec_sees_the_containers_filesystem_processes_and_cgroup_only() {
    let b = Bocker::start("exec-view");
    let img = b.import("");
    b.configure("box", &img, "sleep 1000");
    b.write("containers/box/ctl", "start").expect("start");
    let host_marker = b.dir.join("host-only-marker");
    std::fs::write(&host_marker, "host").unwrap();

    let n = exec(
        &b,
        "box",
        &format!(
            "sh -c 'ps -o pid,comm; echo self=$$; cat /proc/1/cmdline | tr \"\\0\" \" \"; echo; \
             ls {} 2>&1 || echo no-host-file; ls /.dotfile; cat /proc/self/cgroup | head -1; readlink /proc/1/ns/net; \
             readlink /proc/self/ns/net; readlink /proc/self/root'",
            host_marker.display()
        ),
    )
    .expect("exec");
    b.wait_exec("box", &n);
    let out = b.read(&format!("containers/box/execs/{n}/logs"));
    // Processes: the container's pid 1 (sleep) and the exec's own, with low pids; nothing of the host.
    let pids: Vec<&str> = out.lines().skip(1).take_while(|l| !l.starts_with("self=")).collect();
    assert!(pids.iter().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "sleep"]), "{out}");
    assert!(pids.len() <= 4, "only the container's processes: {out}");
    let self_pid: u32 = out.lines().find_map(|l| l.strip_prefix("self=")).unwrap().parse().unwrap();
    assert!(self_pid < 10, "a low pid inside the container's pid namespace: {self_pid}");
    assert!(out.contains("sleep 1000 \n"), "{out}");
    // Files: the container's rootfs, not the host's.
    assert!(out.contains("no-host-file"), "{out}");
    assert!(out.contains("/.dotfile\n"), "{out}");
    // Its cgroup namespace (rooted at the container's group) and its network namespace.
    assert!(out.lines().any(|l| l.ends_with(":/")), "{out}");
    let net: Vec<&str> = out.lines().filter(|l| l.starts_with("net:[")).collect();
    assert_eq!(net.len(), 2, "{out}");
    assert_eq!(net[0], net[1], "the exec is in the container's network namespace");
    assert_ne!(net[0], std::fs::read_link("/proc/self/ns/net").unwrap().to_string_lossy());
    assert!(out.trim_end().ends_with('/'), "root is the container's /: {out}");
    // And it counts in the container's cgroup while it runs.
    let n = exec(&b, "box", "sleep 2").expect("exec");
    let pid: i32 = loop {
        let p = b.read(&format!("containers/box/execs/{n}/pid"));
        if let Ok(p) = p.trim().parse() {
            break p;
        }
    };
    let procs = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(procs.contains(&format!("{}/ctr-box", b.cgroup_parent)), "{procs}");
}

#[test]
fn bocker_exec_without_a_terminal_and_on_a_stopped_container() {
    let b = Bocker::start("exec-cli");
    let img = b.import("");
    b.configure("box", &img, "sleep 1000");
    b.write("containers/box/ctl", "start").expect("start");
    let out = std::process::Command::new(common::BIN)
        .args(["exec", "box", "sh", "-c", "echo out; echo err >&2; exit 5"])
        .env("BOCKER_MOUNT", &b.mount)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\nerr\n");
    let out = b.cli(&["exec", "box", "hostname; echo $$"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.starts_with("box\n"), "{text}");
    // With a terminal too: util-linux `script` runs it on a pty and passes its exit code on.
    let line = format!(
        "BOCKER_MOUNT={} {} exec box sh -c 'test -t 1 || echo no-tty-inside; exit 6'",
        b.mount.display(),
        common::BIN
    );
    let out =
        std::process::Command::new("script").args(["-qec", &line, "/dev/null"]).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no-tty-inside"));

    b.write("containers/box/ctl", "kill").expect("kill");
    b.wait_status("box", "exited");
    let e = exec(&b, "box", "true").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::ESRCH);
    assert!(b.read("containers/box/error").contains("is not running"));
    let out = b.cli(&["exec", "box", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Container 'box' exists but is not running"));
    let out = b.cli(&["exec", "nope", "true"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("No container named 'nope' exists"));
    // An empty command is refused.
    b.configure("other", &img, "sleep 1000");
    b.write("containers/other/ctl", "start").expect("start");
    assert_eq!(Bocker::errno(&exec(&b, "other", " \n").unwrap_err()), libc::EINVAL);
}

#[test]
fn an_exec_running_across_a_daemon_crash_is_found_again_with_its_exit_code() {
    let mut b = Bocker::start("exec-restart");
    let img = b.import("");
    b.configure("box", &img, "sleep 1000");
    b.write("containers/box/ctl", "start").expect("start");
    let n = exec(&b, "box", "sh -c 'sleep 1; echo finished; exit 4'").expect("exec");
    b.crash_daemon();
    b.spawn_daemon();
    b.wait_exec("box", &n);
    assert_eq!(b.read(&format!("containers/box/execs/{n}/exit_code")), "4\n");
    assert_eq!(b.read(&format!("containers/box/execs/{n}/logs")), "finished\n");
    // The next exec after the restart takes the next number.
    assert_eq!(exec(&b, "box", "true").expect("exec"), "2");
}
