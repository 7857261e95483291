//! What a container may do, checked from inside as a user would: `/proc/self/status` (capabilities,
//! NoNewPrivs, Seccomp), the masked and read-only paths, `ls /proc/self/fd`, `mknod` and devices,
//! `/proc/self/exe` and the working directory, the refused syscalls, the default pids.max; and the
//! options that relax it (`privileged`, `cap_add`), off by default. The same holds for `exec`. The
//! seccomp allow list is probed with `tests/probes/syscalls.c`, which tries each call and prints its errno.

mod common;

use std::collections::BTreeMap;

use common::{probe, Bocker};

/// Runs a shell line in a container configured by `setup` (file, value pairs) and returns its output.
fn inside(b: &Bocker, name: &str, img: &str, setup: &[(&str, &str)], line: &str) -> String {
    b.configure(name, img, &format!("sh -c '{line}'"));
    for (file, value) in setup {
        b.write(&format!("containers/{name}/{file}"), value).expect(file);
    }
    b.write(&format!("containers/{name}/ctl"), "start").expect("start");
    b.wait_status(name, "exited");
    b.read(&format!("containers/{name}/logs"))
}

fn status_field(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("{key} not in {out}"))
        .trim()
        .to_string()
}

/// What `ls /proc/self/fd` prints run as the command itself (no shell: a shell's pipelines hold fds of
/// their own for a moment): 0, 1 and 2, and 3, the directory `ls` itself is reading.
fn assert_only_stdio(listing: &str) {
    assert_eq!(listing, "0\n1\n2\n3\n");
}

/// Docker's default 14 capabilities as /proc/self/status shows them.
const DOCKER_CAPS: &str = "00000000a80425fb";

#[test]
fn a_container_has_dockers_capabilities_no_new_privs_and_a_seccomp_filter() {
    let b = Bocker::start("hard-caps");
    let img = b.import("");
    let out = inside(&b, "c", &img, &[], "cat /proc/self/status");
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(status_field(&out, set), DOCKER_CAPS, "{set}");
    }
    assert_eq!(status_field(&out, "CapInh"), "0000000000000000");
    assert_eq!(status_field(&out, "CapAmb"), "0000000000000000");
    assert_eq!(status_field(&out, "NoNewPrivs"), "1");
    assert_eq!(status_field(&out, "Seccomp"), "2");
    assert_eq!(status_field(&out, "Seccomp_filters"), "1", "the whole profile is one program");

    // The filter at work: no mounts, no new namespaces, no clock setting, no module loading.
    let out = inside(
        &b,
        "d",
        &img,
        &[],
        "mkdir -p /m; mount -t tmpfs x /m 2>&1 || echo mount-refused; unshare -n true 2>&1 || echo unshare-refused; \
         echo ok",
    );
    for refused in ["mount-refused", "unshare-refused"] {
        assert!(out.contains(refused), "{refused}: {out}");
    }
    // Threads still start (clone3 answers ENOSYS, the C library falls back to clone).
    assert!(out.ends_with("ok\n"), "{out}");
}

#[test]
fn masked_and_read_only_paths_devices_and_fds() {
    let b = Bocker::start("hard-paths");
    let img = b.import("");
    let out = inside(
        &b,
        "c",
        &img,
        &[],
        "for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug; do \
           [ -e $f ] && echo \"$f=$(head -c 16 $f | wc -c)\"; done; \
         echo firmware=$(ls /sys/firmware | wc -l); \
         echo 1 > /proc/sys/kernel/panic 2>/dev/null || echo proc-sys-ro; \
         echo 1 > /proc/sys/vm/drop_caches 2>/dev/null || echo drop-caches-ro; \
         touch /sys/x 2>/dev/null || echo sys-ro; \
         mkdir -p /tmp; mknod /tmp/sda b 8 0 2>&1 || echo mknod-block-refused; \
         mknod /tmp/fuse c 10 229 2>&1 || echo mknod-char-refused; \
         [ -e /dev/fuse ] || echo no-dev-fuse; \
         mkfifo /tmp/fifo && echo fifo-ok; \
         echo zero=$(head -c 4 /dev/zero | wc -c); \
         ls /dev | tr \"\\n\" \" \"; echo; \
         echo cwd=$(readlink /proc/$$/cwd) exe=$(readlink /proc/$$/exe)",
    );
    // Masked: they read as empty (those this kernel has at all).
    for masked in ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug"] {
        if std::path::Path::new(masked).exists() {
            assert!(out.lines().any(|l| l == format!("{masked}=0")), "{masked}: {out}");
        }
    }
    for line in [
        "firmware=0",
        "proc-sys-ro",
        "drop-caches-ro",
        "sys-ro",
        "mknod-block-refused",
        "mknod-char-refused",
        "no-dev-fuse",
        "fifo-ok",
        "zero=4",
        "cwd=/ exe=/bin/busybox",
    ] {
        assert!(out.lines().any(|l| l == line), "{line}: {out}");
    }
    assert_eq!(out.matches("Operation not permitted").count(), 2, "mknod refused by the filter: {out}");
    let dev = out.lines().find(|l| l.contains("null") && l.contains("urandom")).expect("ls /dev");
    let mut names: Vec<&str> = dev.split_whitespace().collect();
    names.sort();
    assert_eq!(
        names,
        ["fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero"]
    );
    // Only 0, 1 and 2: nothing of the daemon's or the monitor's reaches the command.
    b.configure("fds", &img, "ls /proc/self/fd");
    b.write("containers/fds/ctl", "start").expect("start");
    b.wait_status("fds", "exited");
    assert_only_stdio(&b.read("containers/fds/logs"));
    // The default pids.max is in force.
    assert_eq!(b.read("containers/c/pids.max"), "2048\n");
}

#[test]
fn exec_runs_under_the_same_restrictions() {
    let b = Bocker::start("hard-exec");
    let img = b.import("");
    b.configure("c", &img, "sleep 1000");
    b.write("containers/c/ctl", "start").expect("start");
    let n = b.submit("containers/c/exec", "cat /proc/self/status").unwrap();
    b.wait_exec("c", &n);
    let out = b.read(&format!("containers/c/execs/{n}/logs"));
    assert_eq!(status_field(&out, "CapEff"), DOCKER_CAPS);
    assert_eq!(status_field(&out, "NoNewPrivs"), "1");
    assert_eq!(status_field(&out, "Seccomp"), "2");
    let n = b.submit("containers/c/exec", "ls /proc/self/fd").unwrap();
    b.wait_exec("c", &n);
    assert_only_stdio(&b.read(&format!("containers/c/execs/{n}/logs")));
}

#[test]
fn privileged_and_cap_add_relax_it_and_are_off_by_default() {
    let b = Bocker::start("hard-relax");
    let img = b.import("");
    b.configure("plain", &img, "true");
    assert_eq!(b.read("containers/plain/privileged"), "false\n");
    assert_eq!(b.read("containers/plain/cap_add"), "");

    let out = inside(&b, "net", &img, &[("cap_add", "NET_ADMIN\ncap_sys_time")], "cat /proc/self/status");
    let eff = u64::from_str_radix(&status_field(&out, "CapEff"), 16).unwrap();
    assert_eq!(eff, 0xa80425fb | (1 << 12) | (1 << 25), "NET_ADMIN (12) and SYS_TIME (25) added");
    assert_eq!(status_field(&out, "Seccomp"), "2");
    assert_eq!(b.read("containers/net/cap_add"), "CAP_NET_ADMIN\nCAP_SYS_TIME\n");

    let out = inside(
        &b,
        "priv",
        &img,
        &[("privileged", "true")],
        "cat /proc/self/status; mkdir -p /m; mount -t tmpfs x /m && echo mount-ok; head -c 1 /proc/timer_list | wc -c",
    );
    assert_eq!(status_field(&out, "Seccomp"), "0");
    assert_eq!(status_field(&out, "NoNewPrivs"), "0");
    let eff = u64::from_str_radix(&status_field(&out, "CapEff"), 16).unwrap();
    assert!(eff & (1 << 21) != 0, "CAP_SYS_ADMIN: {eff:x}");
    assert!(out.contains("mount-ok"), "{out}");
    assert!(out.ends_with("1\n"), "/proc/timer_list readable: {out}");

    for (file, value) in [("privileged", "maybe"), ("cap_add", "CAP_BOGUS")] {
        let e = b.write(&format!("containers/plain/{file}"), value).unwrap_err();
        assert_eq!(Bocker::errno(&e), libc::EINVAL, "{file}");
    }
    assert_eq!(b.read("containers/plain/privileged"), "false\n");
}

/// What the probe tries: each refused call beside the allowed one that shows the probe works.
const PROBES: &str = "personality-rie personality-linux personality-query vsock vsock-high inet unix lsm-list nr1000 \
                      getpid x32-getpid clone3 fork kcmp unshare-uts clone-uts";

/// An image of the busybox rootfs with the syscall probe as `/bin/syscalls`.
fn probe_image(b: &Bocker) -> String {
    probe::install("syscalls", &b.rootfs());
    b.import("")
}

/// `NAME=RESULT` lines of the probe's output.
fn results(out: &str) -> BTreeMap<String, String> {
    out.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Runs the probe in a container configured by `setup` and returns its results.
fn probe_in(b: &Bocker, name: &str, img: &str, setup: &[(&str, &str)]) -> BTreeMap<String, String> {
    b.configure(name, img, &format!("syscalls {PROBES}"));
    for (file, value) in setup {
        b.write(&format!("containers/{name}/{file}"), value).expect(file);
    }
    b.write(&format!("containers/{name}/ctl"), "start").expect("start");
    b.wait_status(name, "exited");
    let r = results(&b.read(&format!("containers/{name}/logs")));
    assert_eq!(r.len(), PROBES.split_whitespace().count(), "{name}: {r:?}");
    r
}

fn assert_results(r: &BTreeMap<String, String>, want: &[(&str, &str)], what: &str) {
    for (call, result) in want {
        assert_eq!(r.get(*call).map(String::as_str), Some(*result), "{what}: {call} in {r:?}");
    }
}

/// What a default container gets: Docker's default profile as an allow list.
const DEFAULT_RESULTS: [(&str, &str); 16] = [
    // personality: only the values Docker lists; READ_IMPLIES_EXEC is refused.
    ("personality-rie", "EPERM"),
    ("personality-linux", "ok"),
    ("personality-query", "ok"),
    // socket: every family but AF_VSOCK, also when the family hides above the 32 bits the kernel reads.
    ("vsock", "EPERM"),
    ("vsock-high", "EPERM"),
    ("inet", "ok"),
    ("unix", "ok"),
    // A syscall of this kernel the list leaves out; a number past every syscall (ENOSYS, runc's rule).
    ("lsm-list", "EPERM"),
    ("nr1000", "ENOSYS"),
    // getpid through the x32 ABI is not on the list; the native one is.
    ("getpid", "ok"),
    ("x32-getpid", "EPERM"),
    // clone3 is ENOSYS (its flags can't be checked), fork (clone) works.
    ("clone3", "ENOSYS"),
    ("fork", "ok"),
    // Capability-gated entries: CAP_SYS_PTRACE (kcmp), CAP_SYS_ADMIN (unshare).
    ("kcmp", "EPERM"),
    ("unshare-uts", "EPERM"),
    // clone with a namespace flag: the profile's check of clone's flags (why clone3 must be ENOSYS).
    ("clone-uts", "EPERM"),
];

/// What this kernel answers the probe's `lsm_list_modules` when no filter stands in between: E2BIG (its
/// buffer is too small) from Linux 6.8 on, ENOSYS before.
fn kernel_lsm_list() -> &'static str {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) >= (6, 8) {
        "E2BIG"
    } else {
        "ENOSYS"
    }
}

#[test]
fn seccomp_is_dockers_allow_list_and_follows_cap_add_and_privileged() {
    let b = Bocker::start("hard-seccomp");
    let img = probe_image(&b);
    let plain = probe_in(&b, "plain", &img, &[]);
    assert_results(&plain, &DEFAULT_RESULTS, "default");

    // The same filter for a command run by exec.
    b.configure("svc", &img, "sleep 1000");
    b.write("containers/svc/ctl", "start").expect("start");
    let n = b.submit("containers/svc/exec", &format!("syscalls {PROBES}")).unwrap();
    b.wait_exec("svc", &n);
    assert_results(&results(&b.read(&format!("containers/svc/execs/{n}/logs"))), &DEFAULT_RESULTS, "exec");

    // cap_add opens the entries gated on what it adds, and nothing else.
    let ptrace = probe_in(&b, "ptrace", &img, &[("cap_add", "SYS_PTRACE")]);
    assert_results(&ptrace, &[("kcmp", "ok"), ("unshare-uts", "EPERM"), ("clone3", "ENOSYS")], "SYS_PTRACE");
    assert_results(&ptrace, &DEFAULT_RESULTS[..12], "SYS_PTRACE");
    // lsm_list_modules(2) came with Linux 6.8: before it, the kernel's own answer is ENOSYS.
    let lsm = kernel_lsm_list();
    let admin = probe_in(&b, "admin", &img, &[("cap_add", "SYS_ADMIN")]);
    assert_results(
        &admin,
        &[("unshare-uts", "ok"), ("clone-uts", "ok"), ("clone3", "EINVAL"), ("lsm-list", lsm), ("kcmp", "EPERM")],
        "SYS_ADMIN",
    );
    assert_results(&admin, &[("personality-rie", "EPERM"), ("vsock", "EPERM"), ("x32-getpid", "EPERM")], "SYS_ADMIN");

    // Privileged: no filter at all; what is left is the kernel's own answer.
    let privileged = probe_in(&b, "priv", &img, &[("privileged", "true")]);
    assert_results(
        &privileged,
        &[
            ("personality-rie", "ok"),
            ("kcmp", "ok"),
            ("unshare-uts", "ok"),
            ("clone3", "EINVAL"),
            ("lsm-list", lsm),
            ("getpid", "ok"),
            ("fork", "ok"),
        ],
        "privileged",
    );
    for call in ["vsock", "vsock-high", "x32-getpid"] {
        assert_ne!(privileged[call], "EPERM", "privileged: {call} in {privileged:?}");
    }
}
