//! `init` (Docker's `--init`): pid 1 is tini (tini-static, exec'd from a sealed memfd), which runs the
//! command, forwards it every signal, reaps orphans and exits as it did; `/proc/1/exe` inside is a sealed
//! copy, no host file. Each point beside the same probe without init, where pid 1 is the command itself.

mod common;

use std::time::{Duration, Instant};

use common::{eventually, Bocker};

fn start(b: &Bocker, name: &str, img: &str, cmd: &str, init: bool, privileged: bool) {
    b.configure(name, img, cmd);
    b.write(&format!("containers/{name}/init"), if init { "true" } else { "false" }).expect("init");
    if privileged {
        b.write(&format!("containers/{name}/privileged"), "true").expect("privileged");
    }
    b.write(&format!("containers/{name}/ctl"), "start").expect("start");
}

fn exec_out(b: &Bocker, name: &str, cmd: &str) -> String {
    let n = b.submit(&format!("containers/{name}/exec"), cmd).expect("exec");
    b.wait_exec(name, &n);
    b.read(&format!("containers/{name}/execs/{n}/logs"))
}

#[test]
fn a_plain_sleep_stops_at_once_on_sigterm_with_init_and_not_without() {
    let b = Bocker::start("init-stop");
    let img = b.import("");
    start(&b, "with", &img, "sleep 1000", true, false);
    start(&b, "without", &img, "sleep 1000", false, false);
    let t0 = Instant::now();
    b.write("containers/with/ctl", "stop 5").expect("stop");
    assert!(t0.elapsed() < Duration::from_secs(3), "took {:?}", t0.elapsed());
    assert_eq!(b.read("containers/with/exit_code"), "143\n", "sleep ended by the forwarded SIGTERM");
    // Without init, sleep as pid 1 ignores SIGTERM: the grace runs out and KILL ends it.
    let t0 = Instant::now();
    b.write("containers/without/ctl", "stop 2").expect("stop");
    assert!(t0.elapsed() >= Duration::from_secs(2));
    assert_eq!(b.read("containers/without/exit_code"), "137\n");

    // Every other signal reaches the command too, and its exit code is the container's.
    let trap = "sh -c 'trap \"echo got-hup; exit 7\" HUP; echo ready; while true; do sleep 0.1; done'";
    start(&b, "hup", &img, trap, true, false);
    eventually(
        Duration::from_secs(10),
        || b.read("containers/hup/logs"),
        || b.read("containers/hup/logs") == "ready\n",
    );
    b.write("containers/hup/ctl", "kill HUP").expect("kill");
    b.wait_status("hup", "exited");
    assert_eq!(b.read("containers/hup/logs"), "ready\ngot-hup\n");
    assert_eq!(b.read("containers/hup/exit_code"), "7\n");
}

#[test]
fn orphans_are_reaped_and_proc_1_exe_is_a_sealed_copy() {
    let b = Bocker::start("init-reap");
    let img = b.import("");
    // The inner shell leaves a `sleep 0.1` orphan, which ends at once; pid 1 then is init or `sleep 1000`.
    let cmd = "sh -c 'sh -c \"sleep 0.1 &\"; exec sleep 1000'";
    start(&b, "with", &img, cmd, true, true);
    start(&b, "without", &img, cmd, false, true);
    let zombies = "sh -c 'grep -l \"^State:.*Z\" /proc/[0-9]*/status 2>/dev/null | wc -l'";
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(exec_out(&b, "with", zombies).trim(), "0", "init reaped the orphan");
    eventually(
        Duration::from_secs(5),
        || exec_out(&b, "without", zombies),
        || exec_out(&b, "without", zombies).trim() == "1",
    );

    // Inside, pid 1's binary is the sealed memfd, and even a privileged container (CAP_SYS_PTRACE: it may
    // open /proc/1/exe) can't write it; the same write to a file of its own works.
    let exe = exec_out(&b, "with", "readlink /proc/1/exe");
    assert!(exe.contains("memfd:tini"), "{exe:?}");
    let probe = "sh -c 'cat /proc/1/exe > /copy && echo read; echo x >> /proc/1/exe && echo wrote-exe; \
                 echo x >> /copy && echo wrote-copy'";
    let out = exec_out(&b, "with", probe);
    assert!(out.contains("read") && out.contains("wrote-copy"), "{out:?}");
    assert!(!out.contains("wrote-exe"), "{out:?}");
    // From the host: pid 1's binary is sealed against writes (what stops a writer once nothing runs it);
    // the same probe on the container without init finds no seals (it is a plain file).
    let seals = |name: &str| {
        let pid = b.read(&format!("containers/{name}/pid"));
        let exe = std::fs::File::open(format!("/proc/{}/exe", pid.trim())).expect("open pid 1's exe");
        // SAFETY: F_GET_SEALS takes no argument and returns the seals or -1.
        unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&exe), libc::F_GET_SEALS) }
    };
    let sealed = seals("with");
    assert!(sealed >= 0 && sealed & libc::F_SEAL_WRITE != 0 && sealed & libc::F_SEAL_SEAL != 0, "seals {sealed:#x}");
    assert_eq!(seals("without"), -1, "a file of the rootfs has no seals");
    // Without init, pid 1 is the image's own sleep: nothing of bocker's either.
    assert!(exec_out(&b, "without", "readlink /proc/1/exe").contains("busybox"));
    for name in ["with", "without"] {
        b.write(&format!("containers/{name}/ctl"), "kill").expect("kill");
    }
}
