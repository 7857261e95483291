//! The trust boundary around the tree and the daemon's own files, tried as an attacker on the host would: an
//! unprivileged user (`setpriv` to nobody) trying every write, mkdir, rmdir and read; the daemon's root, store
//! and records as nobody finds them; a set-uid binary a container leaves in its rootfs; absurd values, hundreds
//! of large bad writes, container names that are cgroupfs's own files, a flood of slow writes. Each refusal has
//! its positive control beside it: root, or a member of `--group`, doing the same thing successfully.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{eventually, probe, Bocker};

const NOBODY: u32 = 65534;
const NOGROUP: u32 = 65534;
/// Debian's `users` group: the `--group` of these tests (no group is added to the machine).
const USERS: u32 = 100;

/// Runs `sh -c script` as nobody with primary group `gid` and supplementary `groups`; (success, output).
fn as_nobody(gid: u32, groups: &[u32], script: &str) -> (bool, String) {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={NOBODY}")).arg(format!("--regid={gid}"));
    if groups.is_empty() {
        cmd.arg("--clear-groups");
    } else {
        let list: Vec<String> = groups.iter().map(u32::to_string).collect();
        cmd.arg(format!("--groups={}", list.join(",")));
    }
    let out = cmd.args(["--", "sh", "-c", script]).output().expect("setpriv (util-linux)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Every regular file of the tree below the mount, by path relative to it (as root sees them).
fn files(b: &Bocker) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![String::new()];
    while let Some(dir) = dirs.pop() {
        for e in fs::read_dir(b.path(&dir)).unwrap().flatten() {
            let rel = format!("{dir}{}", e.file_name().to_string_lossy());
            let t = e.file_type().unwrap();
            if t.is_dir() {
                dirs.push(format!("{rel}/"));
            } else if t.is_file() {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

/// What a user can see of the configuration: names, images, and each container's settings.
fn state(b: &Bocker) -> Vec<String> {
    let mut out: Vec<String> = ["containers", "images", "volumes"]
        .iter()
        .map(|d| {
            let mut names: Vec<String> =
                fs::read_dir(b.path(d)).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into()).collect();
            names.sort();
            names.join(" ")
        })
        .collect();
    for f in ["image", "cmd", "env", "volumes", "privileged", "cap_add", "ports", "status"] {
        out.push(b.read(&format!("containers/c/{f}")));
    }
    out
}

/// A writable file gets one `printf` per value; mkdir and rmdir of each kind; a read of each readable file.
fn attempts(b: &Bocker, img: &str) -> Vec<(String, String)> {
    let m = b.mount.display().to_string();
    let mut out: Vec<(String, String)> = files(b)
        .into_iter()
        .filter(|f| fs::metadata(b.path(f)).unwrap().permissions().mode() & 0o200 != 0)
        .map(|f| (format!("write {f}"), format!("printf 'x\\n' > '{m}/{f}'")))
        .collect();
    out.push(("mkdir containers".into(), format!("mkdir '{m}/containers/evil'")));
    out.push(("mkdir volumes".into(), format!("mkdir '{m}/volumes/evil'")));
    out.push(("rmdir a container".into(), format!("rmdir '{m}/containers/c'")));
    out.push(("rmdir an image".into(), format!("rmdir '{m}/images/{img}'")));
    out.push(("read README".into(), format!("cat '{m}/README'")));
    out.push(("list containers".into(), format!("ls '{m}/containers'")));
    out
}

#[test]
fn by_default_only_root_may_use_the_tree() {
    let b = Bocker::start("trust-root-only");
    let img = b.import("");
    b.configure("c", &img, "true");
    let before = state(&b);
    let tries = attempts(&b, &img);
    assert!(tries.len() > 25, "{tries:?}");
    // The attack of the issue: a privileged container with the host's / inside, made by nobody.
    let m = b.mount.display();
    let escape = format!(
        "mkdir {m}/containers/x && echo {img} > {m}/containers/x/image && echo true > {m}/containers/x/privileged \
         && echo /:/host > {m}/containers/x/volumes && echo 'cat /host/etc/shadow' > {m}/containers/x/cmd"
    );
    for (what, script) in tries.iter().chain([("privileged escape".to_string(), escape)].iter()) {
        let (ok, out) = as_nobody(NOGROUP, &[], script);
        assert!(!ok, "nobody could {what}: {out}");
        assert!(out.contains("Permission denied"), "{what}: {out}");
    }
    assert_eq!(state(&b), before, "nobody's attempts changed nothing");

    // Positive control: root does the same through the same paths.
    for (what, script) in &tries {
        if what.starts_with("write") {
            continue; // root's writes of "x" are the catalogue's business (tests/errors.rs)
        }
        let out = Command::new("sh").args(["-c", script]).output().unwrap();
        assert!(out.status.success(), "root could not {what}: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(b.path("containers/evil").is_dir() && !b.path("containers/c").exists());
}

#[test]
fn with_group_its_members_drive_the_tree_and_no_one_else_does() {
    let b = Bocker::start_with_env("trust-group", &[("BOCKER_GROUP", "users")]);
    let img = b.import("");
    b.configure("c", &img, "true");

    // The modes the kernel enforces (default_permissions): root:users, nothing for others.
    let meta = |rel: &str| fs::metadata(b.path(rel)).unwrap();
    for (rel, mode) in [
        // The root and a container's directory take scratch files (save by rename): writable to the group.
        ("", 0o770),
        ("containers", 0o770),
        ("images", 0o770),
        ("volumes", 0o770),
        ("README", 0o440),
        ("images/pull", 0o660),
        ("containers/c/cmd", 0o660),
        ("containers/c/status", 0o440),
        ("containers/c", 0o770),
    ] {
        let m = meta(rel);
        assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (mode, 0, USERS), "{rel}");
    }

    let before = state(&b);
    let tries = attempts(&b, &img);
    for (what, script) in &tries {
        let (ok, out) = as_nobody(NOGROUP, &[], script);
        assert!(!ok && out.contains("Permission denied"), "a non-member could {what}: {out}");
    }
    assert_eq!(state(&b), before);

    // A member, by a supplementary group: the whole life of a container, as root would.
    let m = b.mount.display();
    let (ok, out) = as_nobody(
        NOGROUP,
        &[USERS],
        &format!(
            "set -e; cat {m}/README >/dev/null; mkdir {m}/containers/mine; echo {img} > {m}/containers/mine/image; \
             echo 'echo from-a-member' > {m}/containers/mine/cmd; echo A=1 > {m}/containers/mine/env; \
             sed -i s/A=1/A=2/ {m}/containers/mine/env; echo start > {m}/containers/mine/ctl; \
             while [ \"$(cat {m}/containers/mine/status)\" != exited ]; do sleep 0.05; done; \
             cat {m}/containers/mine/logs {m}/containers/mine/env; rmdir {m}/containers/mine; mkdir {m}/volumes/v; rmdir {m}/volumes/v"
        ),
    );
    assert!(ok, "a member could not drive the tree: {out}");
    assert!(out.contains("from-a-member"), "{out}");
    assert!(out.contains("\nA=2\n") && !out.contains("sed:"), "sed -i by a member saves, quietly: {out}");
    // And by its primary group.
    let (ok, out) = as_nobody(USERS, &[], &format!("mkdir {m}/containers/primary && rmdir {m}/containers/primary"));
    assert!(ok, "{out}");
}

#[test]
fn the_daemons_files_are_its_own_and_the_store_honours_no_set_id_bit() {
    let b = Bocker::start("trust-files");
    probe::install("euid", &b.rootfs());
    let img = b.import("");
    // A container leaves a set-uid-root binary in its rootfs, and a 0600 secret.
    b.configure(
        "c",
        &img,
        "sh -c 'cp /bin/euid /suid && chmod 4755 /suid && echo s3cret > /secret && chmod 600 /secret'",
    );
    b.write("containers/c/ctl", "start").unwrap();
    b.wait_status("c", "exited");
    assert_eq!(b.read("containers/c/exit_code"), "0\n", "{}", b.read("containers/c/logs"));
    let rootfs = fs::read_link(b.path("containers/c/rootfs")).unwrap();
    let suid = rootfs.join("suid");
    assert_eq!(fs::metadata(&suid).unwrap().mode() & 0o7777, 0o4755, "the binary is there, set-uid root");
    assert_eq!(fs::metadata(&suid).unwrap().uid(), 0);

    let mode = |p: &Path| fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).mode() & 0o7777;
    let state = b.root.join("state");
    assert_eq!(mode(&b.root), 0o700);
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&b.root.join("store.img")), 0o600);
    assert_eq!(mode(&b.root.join("store")), 0o700);
    for rec in ["containers/c/record.json", "containers/c/launch.json", &format!("images/{img}/record.json")] {
        assert_eq!(mode(&state.join(rec)), 0o600, "{rec}");
    }
    b.write("containers/c/ctl", "bogus").unwrap_err();
    assert_eq!(mode(&state.join("errors")), 0o600);

    // Nobody on the host reaches none of it: not the binary, not the secret, not the image file's blocks.
    for path in [&suid, &rootfs.join("secret"), &b.root.join("store.img"), &state.join("containers/c/record.json")] {
        let (ok, out) = as_nobody(NOGROUP, &[], &format!("cat '{}' > /dev/null", path.display()));
        assert!(!ok && out.contains("Permission denied"), "nobody read {}: {out}", path.display());
    }
    let (ok, out) = as_nobody(NOGROUP, &[], &format!("'{}'", suid.display()));
    assert!(!ok, "nobody ran the container's set-uid binary: {out}");

    // Even handed the binary itself (an open fd, so no directory stands in the way), it runs as nobody: the
    // store is mounted nosuid.
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let store = b.root.join("store").display().to_string();
    let line = mountinfo.lines().find(|l| l.split(' ').nth(4) == Some(store.as_str())).expect("store mounted");
    let opts = line.split(' ').nth(5).unwrap();
    assert!(opts.split(',').any(|o| o == "nosuid") && opts.split(',').any(|o| o == "nodev"), "{line}");
    let run_fd = |binary: &Path| {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "exec 3< '{}'; setpriv --reuid={NOBODY} --regid={NOGROUP} --clear-groups /proc/self/fd/3",
                binary.display()
            ))
            .output()
            .unwrap();
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };
    assert_eq!(run_fd(&suid).trim(), format!("uid={NOBODY} euid={NOBODY}"));
    // Positive control: the same binary, set-uid root on a filesystem without nosuid, gives euid 0.
    let control = b.dir.join("suid-control");
    fs::copy(&suid, &control).unwrap();
    fs::set_permissions(&control, fs::Permissions::from_mode(0o4755)).unwrap();
    let host_opts = Command::new("findmnt").args(["-no", "OPTIONS", "-T"]).arg(&b.dir).output().unwrap();
    if String::from_utf8_lossy(&host_opts.stdout).split(',').any(|o| o.trim() == "nosuid") {
        eprintln!("the test directory's filesystem is nosuid itself: no positive control here");
    } else {
        assert_eq!(run_fd(&control).trim(), format!("uid={NOBODY} euid=0"), "the probe works");
    }
}

#[test]
fn absurd_numbers_are_refused_and_nothing_panics() {
    let b = Bocker::start("trust-absurd");
    let img = b.import("");
    b.configure("c", &img, "sleep 1000");
    b.write("containers/c/ctl", "start").unwrap();
    b.wait_status("c", "running");
    for (file, value, errno) in [
        ("ctl", "stop 18446744073709551615", libc::ERANGE),
        ("ctl", "stop 184467440737095516150", libc::EINVAL),
        ("ctl", "stop 99999999999", libc::ERANGE),
        ("ctl", "kill 99999999999", libc::EINVAL),
        ("ctl", "kill -1", libc::EINVAL),
        ("memory.max", "99999999999999999999", libc::EINVAL),
        ("memory.max", "9000000000G", libc::ERANGE),
        ("cpu.max", "18446744073709551615 100000", libc::ERANGE),
        ("cpu.max", "max 18446744073709551615", libc::ERANGE),
        ("cpu.max", "max 18446744073709551616", libc::EINVAL),
        ("pids.max", "18446744073709551615", libc::ERANGE),
        ("cpu.weight", "18446744073709551616", libc::EINVAL),
        ("ports", "99999:80", libc::EINVAL),
    ] {
        let e = b.write(&format!("containers/c/{file}"), value).expect_err(value);
        assert_eq!(Bocker::errno(&e), errno, "{file} <- {value}: {e}");
        assert!(!b.read("containers/c/error").is_empty(), "{file} <- {value}: a message");
        assert_eq!(b.status("c"), "running", "{file} <- {value}");
    }
    // The daemon is whole: a sane stop still works.
    b.write("containers/c/ctl", "stop 1").unwrap();
    assert_eq!(b.status("c"), "exited");
    assert!(!b.daemon_log().contains("panicked"), "{}", b.daemon_log());
}

#[test]
fn errors_stays_bounded_however_many_large_bad_writes_come() {
    let b = Bocker::start("trust-errors");
    let junk = format!("/no/such/dir{}", "x".repeat(45_000));
    for _ in 0..200 {
        let e = b.submit("images/import", &format!("{junk}\nBOGUS {}", "y".repeat(1000))).unwrap_err();
        assert!(matches!(Bocker::errno(&e), libc::EINVAL | libc::ENOENT), "{e}");
    }
    let errors = b.read("errors");
    assert_eq!(errors.lines().count(), 200);
    let longest_quote = |line: &str| {
        line.as_bytes()
            .chunk_by(|a, b| a == b)
            .filter(|run| matches!(run[0], b'x' | b'y' | b'z'))
            .map(|r| r.len())
            .max()
    };
    for line in errors.lines() {
        assert!(line.len() < 1400, "an errors line of {} bytes", line.len());
        assert!(longest_quote(line).unwrap_or(0) <= 200, "a line quotes more than 200 bytes of its input: {line}");
    }
    // Past its bound the file starts afresh; a reader always sees at most the bound (plus one line). Each
    // line quotes at most 1 KiB of its input: 4 KB of it per write is as good as 60 (and 15 times less to
    // move through FUSE under emulation, in the VM guest).
    let long = "z".repeat(4_000);
    for _ in 0..1200 {
        let _ = b.write("containers/run", &long);
    }
    let len = fs::metadata(b.path("errors")).unwrap().len();
    assert!(len <= (1 << 20) + 1400, "errors is {len} bytes");
    for line in b.read("errors").lines() {
        assert!(line.contains(" containers/run ") || line.contains(" images/import "), "{line}");
        assert!(longest_quote(line).unwrap_or(0) <= 1100, "{line}");
    }
    // The newest failure is always there, read at the offset asked.
    b.write("containers/run", "no-such-image true").unwrap_err();
    assert!(b.read("errors").lines().last().unwrap().contains("no-such-image"));
}

#[test]
fn containers_may_be_named_as_cgroupfs_files() {
    let b = Bocker::start("trust-names");
    let img = b.import("");
    for name in ["cgroup.procs", "tasks", "memory.max", "cgroup.subtree_control", "notify_on_release", "plain"] {
        b.configure(name, &img, "echo hello");
        b.write(&format!("containers/{name}/ctl"), "start").unwrap_or_else(|e| panic!("{name}: {e}"));
        b.wait_status(name, "exited");
        assert_eq!(b.read(&format!("containers/{name}/logs")), "hello\n", "{name}");
        fs::remove_dir(b.path(&format!("containers/{name}"))).unwrap_or_else(|e| panic!("rmdir {name}: {e}"));
        assert!(!b.path(&format!("containers/{name}")).exists());
    }
}

#[test]
fn a_flood_of_slow_writes_runs_on_a_bounded_pool() {
    let b = Bocker::start("trust-pool");
    let img = b.import("");
    // A hundred containers whose pid 1 ignores SIGTERM: each `stop 60` waits out its grace period.
    let names: Vec<String> =
        (0..100).map(|_| b.submit("containers/run", &format!("{img} sleep 1000")).unwrap()).collect();
    for n in &names {
        b.wait_status(n, "running");
    }
    let pid = b.daemon_pid().unwrap();
    let threads = || {
        fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("Threads:").map(|n| n.trim().parse::<usize>().unwrap()))
            .unwrap()
    };
    let base = threads();
    let writers: Vec<_> = names
        .iter()
        .map(|n| {
            let path = b.path(&format!("containers/{n}/ctl"));
            std::thread::spawn(move || {
                let mut f = fs::OpenOptions::new().write(true).open(path).unwrap();
                f.write_all(b"stop 60").map_err(|e| e.raw_os_error())
            })
        })
        .collect();
    eventually(Duration::from_secs(30), || format!("{} threads (from {base})", threads()), || threads() >= base + 60);
    std::thread::sleep(Duration::from_millis(500));
    let busy = threads();
    assert!(busy <= base + 64 + 4, "{busy} threads with 100 stops waiting (from {base})");
    // Reads and the tree stay answerable while every worker waits.
    let mut readme = String::new();
    fs::File::open(b.path("README")).unwrap().read_to_string(&mut readme).unwrap();
    assert!(readme.contains("containers"));
    assert_eq!(fs::read_dir(b.path("containers")).unwrap().count(), 101);
    // Its stop is waiting for a worker or waiting out its grace period: either way it answers at once.
    let status = b.status(&names[99]);
    assert!(status == "running" || status == "stopping", "{status}");
    // The containers die: every stop ends, the queued ones after, none refused by the pool.
    for n in &names {
        let pid: i32 = b.read(&format!("containers/{n}/pid")).trim().parse().unwrap();
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
    }
    for w in writers {
        let r = w.join().unwrap();
        assert!(matches!(r, Ok(()) | Err(Some(libc::ESRCH))), "{r:?}");
    }
    for n in &names {
        assert_eq!(b.status(n), "exited");
    }
}

#[test]
fn a_containers_dev_nodes_are_its_own_and_a_chmod_inside_changes_no_host_node() {
    let b = Bocker::start("trust-dev");
    let img = b.import("");
    let host_ctime = |name: &str| {
        let m = fs::metadata(format!("/dev/{name}")).unwrap();
        (m.ctime(), m.ctime_nsec())
    };
    let before: Vec<(i64, i64)> = ["null", "zero", "tty"].iter().map(|n| host_ctime(n)).collect();
    // A chmod to the mode each node has already: it changes the ctime, and harms nothing if it did land on
    // the host's node.
    b.configure(
        "c",
        &img,
        "sh -c 'a=$(stat -c %Z.%z /dev/null); sleep 1.1; chmod 666 /dev/null /dev/zero /dev/tty; \
         b=$(stat -c %Z.%z /dev/null); [ \"$a\" != \"$b\" ] && echo inside-changed; \
         stat -c \"%F %t,%T %a\" /dev/null /dev/zero; echo x > /dev/null && head -c 3 /dev/zero | wc -c'",
    );
    b.write("containers/c/ctl", "start").unwrap();
    b.wait_status("c", "exited");
    let out = b.read("containers/c/logs");
    // Positive control: the chmod happened, on working nodes.
    assert!(out.contains("inside-changed"), "{out}");
    assert!(out.contains("character special file 1,3 666") && out.contains("character special file 1,5 666"), "{out}");
    assert!(out.trim_end().ends_with('3'), "{out}");
    let after: Vec<(i64, i64)> = ["null", "zero", "tty"].iter().map(|n| host_ctime(n)).collect();
    assert_eq!(before, after, "a host node's ctime moved: {out}");
}
