//! The limit and stat files beyond the first four, on this host's real cgroups (hybrid here, pure v2 in
//! the VM guest of tests/vm/): `memory.high`, `memory.swap.max` (Docker's default: as much swap as
//! memory), `io.weight`, `io.max` on the store's own loop device, `cpuset.cpus`/`cpuset.mems` (the
//! process really runs only there), and `memory.stat`, `memory.events`, `io.stat`, `cpu.stat` and the
//! pressure files; each a v1 translation or ENOTSUP where v1 has none, and `bocker run`'s flags for them.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;

use common::cgroup::{group, is_v1, kernel};
use common::{eventually, Bocker};

/// The store's loop device (`/dev/loopN`) and its `MAJ:MIN`: a whole disk of this host the daemon made.
fn store_device(b: &Bocker) -> (String, String) {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = b.root.to_string_lossy().into_owned();
    let dev = mountinfo
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let point = left.split(' ').nth(4)?;
            let mut r = right.split(' ');
            (r.next()? == "btrfs" && point.starts_with(&root)).then(|| r.next().map(String::from))?
        })
        .expect("the store's btrfs mount");
    let rdev = fs::metadata(&dev).unwrap().rdev();
    (dev, format!("{}:{}", libc::major(rdev), libc::minor(rdev)))
}

fn refused(b: &Bocker, name: &str, file: &str, value: &str, errno: i32, says: &str) {
    let before = b.read(&format!("containers/{name}/{file}"));
    let e = b.write(&format!("containers/{name}/{file}"), value).unwrap_err();
    assert_eq!(Bocker::errno(&e), errno, "{file} <- {value}: {e}");
    let error = b.read(&format!("containers/{name}/error"));
    assert!(error.contains(says), "{file} <- {value}: {error}");
    assert!(b.read("errors").contains(&format!("containers/{name}/{file} ")), "{file}: not in errors");
    assert_eq!(b.read(&format!("containers/{name}/{file}")), before, "{file} <- {value} changed it");
}

#[test]
fn swap_io_and_cpusets_reach_the_kernel_before_start_and_live() {
    let v1 = is_v1();
    let b = Bocker::start("cgfiles");
    let img = b.import("");
    let (_, dev) = store_device(&b);
    b.configure("c", &img, "sh -c 'grep Cpus_allowed_list /proc/self/status; exec sleep 1000'");
    // Docker's default swap: as much as memory, following memory.max.
    assert_eq!(b.read("containers/c/memory.swap.max"), format!("{}\n", 512u64 << 20));
    b.write("containers/c/memory.max", "64M").unwrap();
    assert_eq!(b.read("containers/c/memory.swap.max"), format!("{}\n", 64u64 << 20));
    b.write("containers/c/memory.swap.max", "32M").unwrap();
    assert_eq!(b.read("containers/c/memory.swap.max"), format!("{}\n", 32u64 << 20));
    b.write("containers/c/io.max", &format!("{dev} rbps=1M riops=500\n")).unwrap();
    assert_eq!(b.read("containers/c/io.max"), format!("{dev} rbps=1048576 wbps=max riops=500 wiops=max\n"));
    b.write("containers/c/cpuset.cpus", "0").unwrap();
    b.write("containers/c/cpuset.mems", "0").unwrap();
    assert_eq!(b.read("containers/c/cpuset.cpus"), "0\n");

    // Refused with the errno and a message, and nothing changes.
    refused(&b, "c", "cpuset.cpus", "4000", libc::EINVAL, "not online here");
    refused(&b, "c", "cpuset.cpus", "1-0", libc::EINVAL, "backwards");
    refused(&b, "c", "io.max", "4095:4095 rbps=1", libc::ENODEV, "no block device");
    refused(&b, "c", "io.max", &format!("{dev} speed=1"), libc::EINVAL, "rbps, wbps, riops, wiops");
    refused(&b, "c", "memory.swap.max", "lots", libc::EINVAL, "memory.swap.max");
    if let Some(part) = fs::read_dir("/sys/class/block")
        .unwrap()
        .flatten()
        .find(|e| e.path().join("partition").exists())
        .and_then(|e| fs::read_to_string(e.path().join("dev")).ok())
    {
        refused(&b, "c", "io.max", &format!("{} rbps=1", part.trim()), libc::ENODEV, "partition");
    }
    // memory.high: v2 has it; v1 has no such file.
    if v1 {
        refused(&b, "c", "memory.high", "100M", libc::ENOTSUP, "cgroup v1 has no memory.high");
    } else {
        b.write("containers/c/memory.high", "100M").unwrap();
    }

    b.write("containers/c/ctl", "start").unwrap();
    b.wait_status("c", "running");
    // The process runs only on CPU 0: the kernel's word, from inside.
    eventually(
        std::time::Duration::from_secs(10),
        || b.read("containers/c/logs"),
        || b.read("containers/c/logs").contains("Cpus_allowed_list:\t0\n"),
    );
    if v1 {
        assert_eq!(kernel(&b, "memory", "c", "memory.limit_in_bytes"), (64u64 << 20).to_string());
        assert_eq!(kernel(&b, "memory", "c", "memory.memsw.limit_in_bytes"), (96u64 << 20).to_string());
        assert_eq!(kernel(&b, "blkio", "c", "blkio.throttle.read_bps_device"), format!("{dev} 1048576"));
        assert_eq!(kernel(&b, "blkio", "c", "blkio.throttle.read_iops_device"), format!("{dev} 500"));
        assert_eq!(kernel(&b, "cpuset", "c", "cpuset.cpus"), "0");
    } else {
        assert_eq!(kernel(&b, "", "c", "memory.swap.max"), (32u64 << 20).to_string());
        assert_eq!(kernel(&b, "", "c", "memory.high"), (100u64 << 20).to_string());
        assert_eq!(kernel(&b, "", "c", "io.max"), format!("{dev} rbps=1048576 wbps=max riops=500 wiops=max"));
        assert_eq!(kernel(&b, "", "c", "cpuset.cpus"), "0");
    }
    // The files read the kernel's values while it runs.
    assert_eq!(b.read("containers/c/memory.swap.max"), format!("{}\n", 32u64 << 20));
    assert_eq!(b.read("containers/c/io.max"), format!("{dev} rbps=1048576 wbps=max riops=500 wiops=max\n"));

    // Live: a new io.max replaces the old (its rbps and riops go), swap follows a new memory.max only
    // when it was not set, a cpuset moves.
    b.write("containers/c/io.max", &format!("{dev} wbps=2M")).unwrap();
    assert_eq!(b.read("containers/c/io.max"), format!("{dev} rbps=max wbps=2097152 riops=max wiops=max\n"));
    if v1 {
        assert_eq!(kernel(&b, "blkio", "c", "blkio.throttle.read_bps_device"), "");
        assert_eq!(kernel(&b, "blkio", "c", "blkio.throttle.write_bps_device"), format!("{dev} 2097152"));
    } else {
        assert_eq!(kernel(&b, "", "c", "io.max"), format!("{dev} rbps=max wbps=2097152 riops=max wiops=max"));
    }
    b.write("containers/c/memory.max", "128M").unwrap();
    assert_eq!(b.read("containers/c/memory.swap.max"), format!("{}\n", 32u64 << 20), "set: it stays");
    if v1 {
        assert_eq!(kernel(&b, "memory", "c", "memory.memsw.limit_in_bytes"), (160u64 << 20).to_string());
    }
    // Blank: back to the default, as much swap as memory again, in the kernel too.
    b.write("containers/c/memory.swap.max", "\n").unwrap();
    assert_eq!(b.read("containers/c/memory.swap.max"), format!("{}\n", 128u64 << 20), "cleared: it follows");
    if v1 {
        assert_eq!(kernel(&b, "memory", "c", "memory.memsw.limit_in_bytes"), (256u64 << 20).to_string());
    } else {
        assert_eq!(kernel(&b, "", "c", "memory.swap.max"), (128u64 << 20).to_string());
    }
    b.write("containers/c/io.max", "\n").unwrap();
    assert_eq!(b.read("containers/c/io.max"), "");
    let online = fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    if online.trim() != "0" {
        b.write("containers/c/cpuset.cpus", "1").unwrap();
        let cpus = if v1 { kernel(&b, "cpuset", "c", "cpuset.cpus") } else { kernel(&b, "", "c", "cpuset.cpus") };
        assert_eq!(cpus, "1");
        // Empty: all its parent has again.
        b.write("containers/c/cpuset.cpus", "\n").unwrap();
        let cpus =
            if v1 { kernel(&b, "cpuset", "c", "cpuset.cpus") } else { kernel(&b, "", "c", "cpuset.cpus.effective") };
        assert_eq!(cpus, online.trim());
    }

    // io.weight where the host has a weight file; ENOTSUP and a message where it has none.
    let weight_file = if v1 {
        let blkio = group(&b, "blkio", "c");
        ["blkio.weight", "blkio.bfq.weight"].into_iter().find(|f| blkio.join(f).exists())
    } else {
        let g = group(&b, "", "c");
        ["io.weight", "io.bfq.weight"].into_iter().find(|f| g.join(f).exists())
    };
    match weight_file {
        Some(file) => {
            b.write("containers/c/io.weight", "4950").unwrap();
            let controller = if v1 { "blkio" } else { "" };
            let kernel_says = kernel(&b, controller, "c", file);
            let want = if file == "io.weight" { "default 4950" } else { "default 500" };
            assert!(kernel_says.starts_with(want) || kernel_says == "500", "{file}: {kernel_says}");
            assert_eq!(b.read("containers/c/io.weight"), "4950\n");
        }
        None => refused(&b, "c", "io.weight", "4950", libc::ENOTSUP, "io.weight"),
    }

    b.write("containers/c/ctl", "kill").unwrap();
    b.wait_status("c", "exited");
    fs::remove_dir(b.path("containers/c")).unwrap();
    for c in ["blkio", "cpuset", "memory"] {
        assert!(!group(&b, c, "c").exists(), "{c} group left after rm");
    }
}

#[test]
fn stat_files_show_the_kernels_numbers_and_pressure_where_it_has_some() {
    let v1 = is_v1();
    let b = Bocker::start("cgstats");
    let img = b.import("");
    b.configure("s", &img, "sleep 1000");
    let stats = ["memory.stat", "memory.events", "io.stat", "cpu.stat", "cpu.pressure", "memory.pressure"];
    for f in stats {
        assert_eq!(b.read(&format!("containers/s/{f}")), "", "{f} before it has a cgroup");
    }
    b.write("containers/s/ctl", "start").unwrap();
    b.wait_status("s", "running");
    let memory_stat = b.read("containers/s/memory.stat");
    let key = if v1 { "rss " } else { "anon " };
    assert!(memory_stat.lines().any(|l| l.starts_with(key)), "{memory_stat}");
    let events = b.read("containers/s/memory.events");
    assert!(events.lines().any(|l| l == "oom_kill 0"), "{events}");
    let cpu = b.read("containers/s/cpu.stat");
    assert!(cpu.lines().any(|l| l.starts_with("usage_usec ")), "{cpu}");
    assert!(cpu.lines().any(|l| l.starts_with("nr_throttled ")), "{cpu}");
    let _ = b.read("containers/s/io.stat");
    let pressure_here = !v1 && group(&b, "", "s").join("cpu.pressure").exists();
    for f in ["cpu.pressure", "memory.pressure", "io.pressure"] {
        let path = b.path(&format!("containers/s/{f}"));
        // Listed and readable either way, so a file manager shows the directory whole: the kernel's
        // numbers where it keeps them per group, empty where it doesn't.
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(fs::metadata(&path).unwrap().len(), text.len() as u64, "{f}");
        if pressure_here {
            assert!(text.starts_with("some avg10="), "{f}: {text}");
        } else {
            assert_eq!(text, "", "{f} on a host without per-group PSI");
        }
    }
    b.write("containers/s/ctl", "kill").unwrap();
    b.wait_status("s", "exited");
}

#[test]
fn run_flags_set_the_files_as_docker_means_them() {
    let b = Bocker::start("cgflags");
    let img = b.import("");
    let (loopdev, dev) = store_device(&b);
    let out = b.cli(&[
        "run",
        "--name",
        "flags",
        "--memory",
        "64m",
        "--memory-swap",
        "96m",
        "--cpuset-cpus",
        "0",
        "--device-read-bps",
        &format!("{loopdev}:1mb"),
        "--device-write-iops",
        &format!("{loopdev}:100"),
        &img,
        "grep",
        "Cpus_allowed_list",
        "/proc/self/status",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Cpus_allowed_list:\t0\n");
    assert_eq!(b.read("containers/flags/memory.max"), format!("{}\n", 64u64 << 20));
    assert_eq!(b.read("containers/flags/memory.swap.max"), format!("{}\n", 32u64 << 20), "96m total: 32m swap");
    assert_eq!(b.read("containers/flags/io.max"), format!("{dev} rbps=1048576 wbps=max riops=max wiops=100\n"));
    let inspect: serde_json::Value = serde_json::from_str(&b.read("containers/flags/inspect.json")).unwrap();
    let host = &inspect["HostConfig"];
    assert_eq!(host["MemorySwap"], 96u64 << 20);
    assert_eq!(host["CpusetCpus"], "0");
    assert_eq!(host["BlkioDeviceReadBps"][0]["Rate"], 1 << 20);
    // As Docker: --memory-swap without --memory, or below it, is refused before anything is made.
    for args in [vec!["--memory-swap", "1g"], vec!["--memory", "1g", "--memory-swap", "512m"]] {
        let mut argv = vec!["run", "--name", "no"];
        argv.extend(args.iter().copied());
        argv.extend([img.as_str(), "true"]);
        let out = b.cli(&argv);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("--memory-swap"));
        assert!(!b.path("containers/no").exists());
    }
}

/// A live limit whose record can't be written is undone in the kernel: the file and the kernel keep the
/// old values (the memory limit and the swap limit derived from it). The record is kept from being
/// written by a directory where its temp file goes; with that gone, the same write goes through.
#[test]
fn a_live_limit_whose_record_cant_be_saved_is_undone_in_the_kernel() {
    let b = Bocker::start("cg-undo");
    let img = b.import("");
    b.configure("c", &img, "sleep 1000");
    b.write("containers/c/memory.max", "64M").unwrap();
    b.write("containers/c/ctl", "start").unwrap();
    b.wait_status("c", "running");
    let files: Vec<&str> = if is_v1() {
        vec!["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
    } else {
        vec!["memory.max", "memory.swap.max"]
    };
    let files: Vec<&str> = files.into_iter().filter(|f| group(&b, "memory", "c").join(f).exists()).collect();
    let in_kernel = || files.iter().map(|f| kernel(&b, "memory", "c", f)).collect::<Vec<_>>();
    let before = in_kernel();
    assert_eq!(before[0], (64u64 << 20).to_string());
    let shown = b.read("containers/c/memory.max");

    let blocker = b.root.join("state/containers/c/record.json.tmp");
    fs::create_dir(&blocker).unwrap();
    let e = b.write("containers/c/memory.max", "128M").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    assert_eq!(in_kernel(), before, "the kernel kept the refused limit");
    assert_eq!(b.read("containers/c/memory.max"), shown);
    assert!(b.read("containers/c/error").contains("record"), "{}", b.read("containers/c/error"));

    fs::remove_dir(&blocker).unwrap();
    b.write("containers/c/memory.max", "128M").unwrap();
    assert_eq!(in_kernel()[0], (128u64 << 20).to_string());
    assert_ne!(b.read("containers/c/memory.max"), shown);
}
