//! Limits and stats on this machine's real cgroups (hybrid: v1 controllers beside a cgroup2 mount; the
//! v2 layout is tested on a fake tree in the unit tests): what a limit file says is what the kernel has,
//! before start and live; an OOM kill is recorded; a fork bomb stops at pids.max; cpu.weight shifts CPU;
//! nothing is left after rm.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::cgroup::{group, is_v1, kernel};
use common::{cgroup_roots, Bocker};

/// What the kernel holds for a limit: the v1 file of its controller, or the v2 file of the same name.
fn kernel_limit(b: &Bocker, name: &str, v2_file: &str) -> String {
    if !is_v1() {
        return kernel(b, "", name, v2_file);
    }
    match v2_file {
        "cpu.weight" => kernel(b, "cpu", name, "cpu.shares"),
        "cpu.max" => {
            format!("{} {}", kernel(b, "cpu", name, "cpu.cfs_quota_us"), kernel(b, "cpu", name, "cpu.cfs_period_us"))
        }
        "memory.max" => kernel(b, "memory", name, "memory.limit_in_bytes"),
        other => kernel(b, "pids", name, other),
    }
}

#[test]
fn limits_apply_before_start_and_live_and_read_back_as_the_kernel_has_them() {
    let v1 = is_v1();
    let b = Bocker::start("limits");
    let img = b.import("");
    b.configure("lim", &img, "sleep 1000");
    // Before start: the container's files show what will apply (defaults where nothing was written).
    assert_eq!(b.read("containers/lim/memory.max"), format!("{}\n", 512u64 << 20), "bocker's default 512 MB");
    assert_eq!(b.read("containers/lim/cpu.weight"), "50\n", "bocker's default share 512");
    b.write("containers/lim/cpu.weight", "300").unwrap();
    b.write("containers/lim/cpu.max", "50000 100000").unwrap();
    b.write("containers/lim/memory.max", "64M").unwrap();
    b.write("containers/lim/pids.max", "50").unwrap();
    b.write("containers/lim/ctl", "start").unwrap();
    // On v1, weight 300 is 3072 shares, as the kernel maps it.
    assert_eq!(kernel_limit(&b, "lim", "cpu.weight"), if v1 { "3072" } else { "300" });
    assert_eq!(kernel_limit(&b, "lim", "cpu.max"), "50000 100000");
    assert_eq!(kernel_limit(&b, "lim", "memory.max"), (64u64 << 20).to_string());
    assert_eq!(kernel_limit(&b, "lim", "pids.max"), "50");
    assert_eq!(b.read("containers/lim/cpu.weight"), "300\n");
    assert_eq!(b.read("containers/lim/cpu.max"), "50000 100000\n");
    assert_eq!(b.read("containers/lim/memory.max"), format!("{}\n", 64u64 << 20));
    // The process is in its groups, and sees them as its roots.
    let pid = b.read("containers/lim/pid").trim().to_string();
    let host_view = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let own = format!(":/{}/ctr-lim", b.cgroup_parent);
    assert!(host_view.lines().any(|l| l.ends_with(&own) && (!v1 || l.contains(":memory:"))), "{host_view}");
    // Live changes go to the kernel at once.
    b.write("containers/lim/memory.max", "128M\n").unwrap();
    b.write("containers/lim/pids.max", "max").unwrap();
    b.write("containers/lim/cpu.weight", "100").unwrap();
    b.write("containers/lim/cpu.max", "max").unwrap();
    assert_eq!(kernel_limit(&b, "lim", "memory.max"), (128u64 << 20).to_string());
    assert_eq!(kernel_limit(&b, "lim", "pids.max"), "max");
    assert_eq!(kernel_limit(&b, "lim", "cpu.weight"), if v1 { "1024" } else { "100" });
    assert_eq!(kernel_limit(&b, "lim", "cpu.max"), if v1 { "-1 100000" } else { "max 100000" });
    assert_eq!(b.read("containers/lim/cpu.max"), "max 100000\n");
    assert_eq!(b.read("containers/lim/memory.max"), format!("{}\n", 128u64 << 20));
    // Bad values: ERANGE or EINVAL, a message, and nothing changed in the kernel.
    for (file, value, errno) in [
        ("cpu.weight", "0", libc::ERANGE),
        ("cpu.weight", "20000", libc::ERANGE),
        ("cpu.max", "10 100000", libc::ERANGE),
        ("memory.max", "12 bananas", libc::EINVAL),
        ("pids.max", "-3", libc::EINVAL),
        ("memory.max", "1K", libc::ERANGE),
    ] {
        let err = b.write(&format!("containers/lim/{file}"), value).unwrap_err();
        assert_eq!(Bocker::errno(&err), errno, "{file} {value}");
        assert!(b.read("containers/lim/error").contains(file), "{}", b.read("containers/lim/error"));
    }
    assert_eq!(kernel_limit(&b, "lim", "cpu.weight"), if v1 { "1024" } else { "100" });
    assert_eq!(kernel_limit(&b, "lim", "memory.max"), (128u64 << 20).to_string());
    // Stats.
    assert!(b.read("containers/lim/memory.current").trim().parse::<u64>().unwrap() > 0);
    assert!(b.read("containers/lim/memory.peak").trim().parse::<u64>().unwrap() > 0);
    assert!(b.read("containers/lim/cpu.usage_usec").trim().parse::<u64>().is_ok());
    assert_eq!(b.read("containers/lim/pids.current"), "1\n");
    assert_eq!(b.read("containers/lim/events"), "oom_kill 0\n");
    b.write("containers/lim/ctl", "kill").unwrap();
    b.wait_status("lim", "exited");
    fs::remove_dir(b.path("containers/lim")).unwrap();
    for c in ["cpu", "cpuacct", "memory", "pids"] {
        assert!(!group(&b, c, "lim").exists(), "{c} group left after rm");
    }
}

#[test]
fn a_memory_hog_is_oom_killed_and_that_is_recorded() {
    let b = Bocker::start("oom");
    let img = b.import("");
    b.configure("hog", &img, "sh -c 'a=xxxxxxxxxxxxxxxx; while true; do a=$a$a; done'");
    b.write("containers/hog/memory.max", "32M").unwrap();
    b.write("containers/hog/ctl", "start").unwrap();
    b.wait_status("hog", "exited");
    assert_eq!(b.read("containers/hog/exit_code"), "137\n");
    assert_eq!(b.read("containers/hog/events"), "oom_kill 1\n");
    assert!(b.read("containers/hog/error").contains("OOM killer"), "{}", b.read("containers/hog/error"));
    // The root's events tell it: oom, then die.
    let events = b.read("events");
    let tail: Vec<&str> =
        events.lines().filter(|l| l.contains(" container hog ")).map(|l| l.split_once(' ').unwrap().1).collect();
    assert_eq!(tail[tail.len() - 2..], ["container hog oom", "container hog die exit=137"], "{events}");
}

#[test]
fn a_fork_bomb_stops_at_pids_max_and_the_host_is_fine() {
    let b = Bocker::start("forkbomb");
    let img = b.import("");
    b.configure("bomb", &img, "sh -c 'while true; do sleep 60 & done'");
    b.write("containers/bomb/pids.max", "20").unwrap();
    b.write("containers/bomb/ctl", "start").unwrap();
    // Watch it run: the count never passes the limit, and forks start failing.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut highest = 0u64;
    while !b.read("containers/bomb/logs").contains("can't fork") {
        assert!(Instant::now() < deadline, "no fork failed: {}", b.read("containers/bomb/logs"));
        highest = highest.max(b.read("containers/bomb/pids.current").trim().parse().unwrap_or(0));
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(highest <= 20, "{highest} processes");
    // pids.events counts the forks the kernel refused, on v1 and v2 alike.
    let events = fs::read_to_string(group(&b, "pids", "bomb").join("pids.events")).unwrap();
    let refused: u64 = events.lines().find_map(|l| l.strip_prefix("max ")).unwrap().trim().parse().unwrap();
    assert!(refused > 0, "the kernel refused no fork: {events}");
    // The host still starts processes.
    assert!(std::process::Command::new("true").status().unwrap().success());
    let _ = b.write("containers/bomb/ctl", "kill");
    b.wait_status("bomb", "exited");
}

#[test]
fn cpu_weight_shifts_cpu_between_busy_containers() {
    let b = Bocker::start("weight");
    let img = b.import("");
    let busy = "sh -c 'for i in 1 2 3; do (while true; do :; done) & done; wait'";
    b.configure("light", &img, busy);
    b.configure("heavy", &img, busy);
    b.write("containers/light/cpu.weight", "50").unwrap();
    b.write("containers/heavy/cpu.weight", "1000").unwrap();
    b.write("containers/light/ctl", "start").unwrap();
    b.write("containers/heavy/ctl", "start").unwrap();
    let usage = |c: &str| b.read(&format!("containers/{c}/cpu.usage_usec")).trim().parse::<u64>().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (l0, h0) = (usage("light"), usage("heavy"));
    std::thread::sleep(Duration::from_secs(2));
    let (l1, h1) = (usage("light"), usage("heavy"));
    let (light, heavy) = (l1 - l0, h1 - h0);
    for c in ["light", "heavy"] {
        b.write(&format!("containers/{c}/ctl"), "kill").unwrap();
        b.wait_status(c, "exited");
    }
    assert!(heavy > 2 * light, "heavy {heavy} us vs light {light} us");
}

#[test]
fn a_restarted_daemon_finds_the_groups_and_rm_leaves_none() {
    let mut b = Bocker::start("cgrestart");
    let img = b.import("");
    b.configure("kept", &img, "sleep 1000");
    b.write("containers/kept/ctl", "start").unwrap();
    b.stop_daemon();
    b.spawn_daemon();
    b.write("containers/kept/pids.max", "33").unwrap();
    assert_eq!(b.read("containers/kept/pids.max"), "33\n");
    assert_eq!(kernel_limit(&b, "kept", "pids.max"), "33");
    b.write("containers/kept/ctl", "kill").unwrap();
    b.wait_status("kept", "exited");
    fs::remove_dir(b.path("containers/kept")).unwrap();
    for root in cgroup_roots() {
        assert!(!root.join(&b.cgroup_parent).join("ctr-kept").exists(), "left in {}", root.display());
    }
}

#[test]
fn the_command_line_honours_bockers_limit_variables() {
    let b = Bocker::start("clilimits");
    let img = b.import("");
    let out = std::process::Command::new(common::BIN)
        .args(["run", &img, "cat", "/proc/self/cgroup"])
        .env("BOCKER_MOUNT", &b.mount)
        .env("BOCKER_CPU_SHARE", "1024")
        .env("BOCKER_MEM_LIMIT", "64")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Inside, every hierarchy shows the container's own group as its root (cgroup namespace).
    let inside = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!inside.is_empty() && inside.lines().all(|l| l.ends_with(":/")), "{inside}");
    let ps = String::from_utf8_lossy(&b.cli(&["ps"]).stdout).into_owned();
    let id = ps.lines().nth(1).unwrap().split('\t').next().unwrap().to_string();
    assert_eq!(b.read(&format!("containers/{id}/cpu.weight")), "100\n");
    assert_eq!(b.read(&format!("containers/{id}/memory.max")), format!("{}\n", 64u64 << 20));
}
