//! `bocker run` with Docker's everyday flags: what each sets is what the container's files show and what
//! its process sees; `-d` returns at once; `--rm` gives the exit code and the whole output and leaves
//! nothing; a bad flag leaves no container; an image that is not here is pulled, its progress on stderr.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::{eventually, Bocker};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The containers listed, by name.
fn containers(b: &Bocker) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(b.path("containers"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn each_flag_is_the_containers_file_and_what_its_process_sees() {
    let b = Bocker::start("runflags");
    let img = b.import("");
    let env_file = b.dir.join("env.list");
    fs::write(&env_file, "# settings\n\nFROM_FILE=file value\nFROM_SHELL_TOO\nOVERRIDDEN=file\n").unwrap();
    let port = free_port().to_string();
    let publish = format!("{port}:8080");
    let out = b.cli_with(
        &[
            "run",
            "--name",
            "web-1",
            "-e",
            "A=1",
            "--env",
            "FROM_SHELL",
            "-e",
            "NOT_IN_SHELL",
            "--env-file",
            env_file.to_str().unwrap(),
            "-e",
            "OVERRIDDEN=flag",
            "--memory",
            "64m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "100",
            "--cap-add",
            "NET_ADMIN",
            "--cap-add",
            "sys_time",
            "-p",
            &publish,
            "--network",
            "bridge",
            &img,
            "sh",
            "-c",
            "echo \"$A|$FROM_SHELL|$FROM_FILE|$FROM_SHELL_TOO|$OVERRIDDEN|${NOT_IN_SHELL-unset}\"; exit 4",
        ],
        &[("FROM_SHELL", "shell value"), ("FROM_SHELL_TOO", "too")],
    );
    assert_eq!(stdout(&out), "1|shell value|file value|too|flag|unset\n", "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(4), "the container's exit code");
    assert_eq!(containers(&b), ["web-1"], "named as --name says");
    let file = |f: &str| b.read(&format!("containers/web-1/{f}"));
    assert_eq!(file("memory.max"), "67108864\n");
    assert_eq!(file("cpu.max"), "50000 100000\n", "--cpus 0.5: half of each 100 ms period");
    assert_eq!(file("pids.max"), "100\n");
    assert_eq!(file("cap_add"), "CAP_NET_ADMIN\nCAP_SYS_TIME\n");
    assert_eq!(file("ports"), format!("{port}:8080/tcp\n"));
    assert_eq!(file("network"), "bridge\n");
    assert_eq!(file("auto_remove"), "false\n", "kept without --rm");
    assert!(file("env").contains("A=1\n") && !file("env").contains("NOT_IN_SHELL"), "{}", file("env"));
}

#[test]
fn privileged_no_network_and_bockers_variables() {
    let b = Bocker::start("runpriv");
    let img = b.import("");
    // bocker's variables still count; a flag overrides the variable it shares a file with.
    let env = [("BOCKER_NETWORK", "host"), ("BOCKER_MEM_LIMIT", "100")];
    let out = b.cli_with(
        &["run", "--name", "p", "--privileged", "--network", "none", "-e", "X=1", &img, "ls /sys/class/net"],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "lo\n", "only lo: no network");
    assert_eq!(b.read("containers/p/privileged"), "true\n");
    assert_eq!(b.read("containers/p/network"), "none\n");
    assert_eq!(b.read("containers/p/memory.max"), format!("{}\n", 100 << 20), "BOCKER_MEM_LIMIT");
    let out = b.cli_with(&["run", "--name", "q", &img, "true"], &[("BOCKER_NETWORK", "none")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(b.read("containers/q/network"), "none\n", "BOCKER_NETWORK alone");
}

#[test]
fn detach_prints_the_name_and_returns_while_it_runs() {
    let b = Bocker::start("rundetach");
    let img = b.import("");
    let t0 = Instant::now();
    let out = b.cli(&["run", "-d", "--name", "bg", &img, "sleep", "30"]);
    assert!(t0.elapsed() < Duration::from_secs(10), "-d returns at once");
    assert_eq!(stdout(&out), "bg\n", "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(b.status("bg"), "running");
    let out = b.cli(&["run", "-d", &img, "sleep", "30"]);
    let name = stdout(&out).trim_end().to_string();
    assert!(name.starts_with("ps_") && b.status(&name) == "running", "{name}");
    for c in ["bg", name.as_str()] {
        b.write(&format!("containers/{c}/ctl"), "kill").unwrap();
    }
}

#[test]
fn rm_in_the_foreground_gives_the_code_and_every_line_then_leaves_nothing() {
    let b = Bocker::start("runrm");
    let img = b.import("");
    let out = b.cli(&["run", "--rm", "--name", "once", &img, "sh", "-c", "seq 1 20000; exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 20000, "every line, though it is removed as it exits");
    assert!(text.ends_with("19999\n20000\n"));
    eventually(Duration::from_secs(10), || format!("{:?}", containers(&b)), || containers(&b).is_empty());
    assert!(!b.root.join("store/containers/once").exists(), "its rootfs went with it");
    assert!(!b.root.join("state/containers/once").exists(), "and its record");
    // A command that ends at once, many times: the code is never lost to the removal.
    for code in 0..5 {
        let out = b.cli(&["run", "--rm", &img, "sh", "-c", &format!("exit {code}")]);
        assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
    }
    eventually(Duration::from_secs(10), || format!("{:?}", containers(&b)), || containers(&b).is_empty());
}

#[test]
fn detach_rm_goes_once_it_exits() {
    let b = Bocker::start("rundrm");
    let img = b.import("");
    let out = b.cli(&["run", "-d", "--rm", "--name", "short", &img, "sleep", "1"]);
    assert_eq!(stdout(&out), "short\n", "{}", stderr(&out));
    assert_eq!(b.read("containers/short/auto_remove"), "true\n");
    eventually(Duration::from_secs(20), || format!("{:?}", containers(&b)), || containers(&b).is_empty());
    assert!(!b.root.join("store/containers/short").exists());
    assert!(
        common::cgroup_roots().iter().all(|r| !r.join(&b.cgroup_parent).join("ctr-short").exists()),
        "its cgroup went with it"
    );
    assert!(b.daemon_log().contains("auto_remove"), "the removal is logged");
}

#[test]
fn a_bad_flag_leaves_no_container_and_says_which() {
    let b = Bocker::start("runbad");
    let img = b.import("");
    let cases: [(&[&str], &str); 7] = [
        (&["--memory", "12Q"], "--memory 12Q"),
        (&["--cpus", "lots"], "--cpus: 'lots'"),
        (&["--cap-add", "CAP_BOGUS"], "unknown capability 'CAP_BOGUS'"),
        (&["-p", "99999:80"], "--publish"),
        (&["--network", "wifi"], "--network wifi"),
        (&["--pids-limit", "many"], "--pids-limit many"),
        (&["--env-file", "/nonexistent/env"], "--env-file /nonexistent/env"),
    ];
    for (flags, message) in cases {
        let mut args = vec!["run"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[&img, "true"]);
        let out = b.cli(&args);
        assert_eq!(out.status.code(), Some(1), "{flags:?}");
        assert!(stderr(&out).contains(message), "{flags:?}: {}", stderr(&out));
        assert!(containers(&b).is_empty(), "{flags:?} left a container");
    }
    let ok = b.cli(&["run", "--name", "taken", &img, "true"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let again = b.cli(&["run", "--name", "taken", &img, "true"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("'taken' is already in use"), "{}", stderr(&again));
    let bad = b.cli(&["run", "--name", "no/slash", &img, "true"]);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(containers(&b), ["taken"]);
}

#[test]
fn an_image_not_here_is_pulled_with_its_progress_on_stderr() {
    let b = Bocker::start("runpull");
    let reg = common::registry::TestRegistry::start(&b.dir);
    let img = b.import("");
    let reference = reg.reference("run/app:v1");
    let push = b.cli(&["push", &img, &reference]);
    assert!(push.status.success(), "{}", stderr(&push));
    fs::remove_dir(b.path(&format!("images/{img}"))).unwrap();
    let out = b.cli(&["run", "--rm", &reference, "echo", "pulled and ran"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "pulled and ran\n", "only the container's output on stdout");
    let progress = stderr(&out);
    assert!(progress.contains(&format!("Unable to find image '{reference}' locally")), "{progress}");
    assert!(progress.lines().any(|l| l.ends_with(": done")), "a line per layer state: {progress}");
    // Here now: run again without a pull.
    let out = b.cli(&["run", &reference, "echo", "again"]);
    assert_eq!(stdout(&out), "again\n");
    assert!(!stderr(&out).contains("Unable to find"), "{}", stderr(&out));
    // A reference no registry has: the pull's message, and nothing left.
    let images = fs::read_dir(b.path("images")).unwrap().count();
    let out = b.cli(&["run", &reg.reference("run/none:v1"), "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("run/none:v1"), "{}", stderr(&out));
    assert_eq!(fs::read_dir(b.path("images")).unwrap().count(), images);
    // An id is never pulled.
    let out = b.cli(&["run", "img_0000", "true"]);
    assert_eq!(stdout(&out), "No image named 'img_0000' exists\n", "{}", stderr(&out));
}

/// Runs `flags` then `sh -c script` and returns its output, asserting it succeeded.
fn run_out(b: &Bocker, img: &str, flags: &[&str], script: &str) -> String {
    let mut args = vec!["run"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[img, "sh", "-c", script]);
    let out = b.cli(&args);
    assert_eq!(out.status.code(), Some(0), "{flags:?}: {}", stderr(&out));
    stdout(&out)
}

#[test]
fn workdir_flag() {
    let b = Bocker::start("runworkdir");
    let img = b.import("");
    assert_eq!(run_out(&b, &img, &["-w", "/tmp", "--name", "w"], "pwd"), "/tmp\n");
    assert_eq!(b.read("containers/w/workdir"), "/tmp\n");
    let out = b.cli(&["run", "-w", "relative", &img, "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--workdir relative"), "{}", stderr(&out));
}

#[test]
fn user_flag() {
    let b = Bocker::start("runuser");
    let img = b.import("");
    assert_eq!(run_out(&b, &img, &["-u", "1234:5678"], "id -u; id -g"), "1234\n5678\n");
    assert_eq!(run_out(&b, &img, &["--user", "0"], "id -u"), "0\n");
}

#[test]
fn entrypoint_flag() {
    let b = Bocker::start("runentry");
    let img = b.import("ENTRYPOINT [\"echo\", \"from the image\"]\nCMD [\"cmd\"]");
    let out = b.cli(&["run", "--entrypoint", "printf", &img, "%s|", "a b", "c"]);
    assert_eq!(stdout(&out), "a b|c|", "the command's words are the entrypoint's arguments: {}", stderr(&out));
    let out = b.cli(&["run", &img, "args"]);
    assert_eq!(stdout(&out), "from the image args\n", "{}", stderr(&out));
}

#[test]
fn hostname_flag() {
    let b = Bocker::start("runhost");
    let img = b.import("");
    assert_eq!(run_out(&b, &img, &["-h", "box.example", "--name", "h"], "hostname"), "box.example\n");
    assert_eq!(b.read("containers/h/hostname"), "box.example\n");
}

#[test]
fn label_flag() {
    let b = Bocker::start("runlabel");
    let img = b.import("");
    run_out(&b, &img, &["-l", "team=web", "--label", "tier=front end", "-l", "bare", "--name", "l"], "true");
    let labels = b.read("containers/l/labels");
    for want in ["team=web\n", "tier=front end\n", "bare=\n"] {
        assert!(labels.contains(want), "{want:?} in {labels:?}");
    }
}
