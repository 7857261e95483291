//! The parsers, the v1 translations, layout detection, and the v2 layout against a cgroupfs-like tree in a
//! temporary directory (this machine can't mount cgroup2 with controllers).

use super::*;

fn parse_file(file: &str, text: &str) -> Result<Limit, LimitError> {
    parse_limit(LimitKind::from_file(file).unwrap(), text)
}

#[test]
fn limit_values() {
    assert_eq!(parse_file("cpu.weight", "100\n"), Ok(Limit::CpuWeight(100)));
    assert!(matches!(parse_file("cpu.weight", "0"), Err(LimitError::Range { .. })));
    assert!(matches!(parse_file("cpu.weight", "10001"), Err(LimitError::Range { .. })));
    assert!(matches!(parse_file("cpu.weight", "max"), Err(LimitError::Syntax { .. })));
    assert_eq!(parse_file("cpu.max", "50000 100000"), Ok(Limit::CpuMax(CpuMax { quota: Some(50000), period: 100000 })));
    assert_eq!(parse_file("cpu.max", "max"), Ok(Limit::CpuMax(CpuMax { quota: None, period: 100000 })));
    assert_eq!(parse_file("cpu.max", "20000"), Ok(Limit::CpuMax(CpuMax { quota: Some(20000), period: 100000 })));
    assert!(matches!(parse_file("cpu.max", "5 100000"), Err(LimitError::Range { .. })));
    assert!(matches!(parse_file("cpu.max", "1000 10"), Err(LimitError::Range { .. })));
    assert!(matches!(parse_file("cpu.max", "half"), Err(LimitError::Syntax { .. })));
    assert_eq!(parse_file("memory.max", "512M"), Ok(Limit::MemoryMax(Max(Some(512 << 20)))));
    assert_eq!(parse_file("memory.max", "1G"), Ok(Limit::MemoryMax(Max(Some(1 << 30)))));
    assert_eq!(parse_file("memory.max", "max"), Ok(Limit::MemoryMax(Max(None))));
    assert!(matches!(parse_file("memory.max", "10K"), Err(LimitError::Range { .. })));
    assert!(matches!(parse_file("memory.max", "-1"), Err(LimitError::Syntax { .. })));
    assert!(matches!(parse_file("memory.max", "12Q"), Err(LimitError::Syntax { .. })));
    assert!(matches!(parse_file("memory.max", "99999999999999G"), Err(LimitError::Syntax { .. })));
    assert_eq!(parse_file("pids.max", "64"), Ok(Limit::PidsMax(Max(Some(64)))));
    assert_eq!(parse_file("pids.max", "max"), Ok(Limit::PidsMax(Max(None))));
    assert!(matches!(parse_file("pids.max", "0"), Err(LimitError::Range { .. })));
}

#[test]
fn weights_and_shares_as_the_kernel_maps_them() {
    assert_eq!(limits::weight_to_shares(100), 1024);
    assert_eq!(limits::shares_to_weight(1024), 100);
    assert_eq!(limits::shares_to_weight(512), 50, "bocker's default share");
    for w in 1..=10000 {
        assert_eq!(limits::shares_to_weight(limits::weight_to_shares(w)), w, "weight {w}");
    }
}

#[test]
fn layouts_from_mountinfo() {
    let v2 = "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
    assert_eq!(Layout::from_mountinfo(v2), Some(Layout::V2 { root: "/sys/fs/cgroup".into() }));
    let hybrid = "\
25 24 0:22 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
31 25 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
32 25 0:29 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
33 25 0:30 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer
";
    let layout = Layout::from_mountinfo(hybrid).unwrap();
    assert_eq!(layout.name(), "hybrid");
    let Layout::V1 { cpu, cpuacct, memory, freezer, .. } = &layout else { panic!("{layout:?}") };
    assert_eq!(cpu, cpuacct, "a combined cpu,cpuacct hierarchy");
    assert_eq!(freezer.as_deref(), Some(Path::new("/sys/fs/cgroup/freezer")));
    assert_eq!(memory.as_deref(), Some(Path::new("/sys/fs/cgroup/memory")));
    let v1 = hybrid.replace("cgroup2 cgroup2", "tmpfs tmpfs");
    assert_eq!(Layout::from_mountinfo(&v1).unwrap().name(), "v1");
    assert_eq!(Layout::from_mountinfo("1 0 0:1 / / rw - ext4 /dev/vda rw\n"), None);
}

/// A cgroup2 tree like the kernel's: each group has cgroup.controllers (what its parent enabled) and
/// cgroup.subtree_control; the test plays the kernel's part in creating the files of new groups.
fn fake_v2(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("cgroup.controllers"), "cpuset cpu io memory pids\n").unwrap();
    std::fs::write(dir.join("cgroup.subtree_control"), "memory\n").unwrap();
}

#[test]
fn the_v2_layout_on_a_fake_tree() {
    let root = std::env::temp_dir().join(format!("bocker-fake-cgroup2-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    fake_v2(&root);
    let cg = Cgroups::new(Layout::V2 { root: root.clone() }, "bocker/daemon1");
    let limits = Limits {
        cpu_weight: Some(50),
        cpu_max: Some(CpuMax { quota: Some(20000), period: 100000 }),
        memory_max: Some(Max(Some(512 << 20))),
        pids_max: Some(Max(None)),
        ..Limits::default()
    };
    // The kernel gives each new group its controllers file; stand in for it once the parents exist.
    std::fs::create_dir_all(root.join("bocker/daemon1")).unwrap();
    std::fs::write(root.join("bocker/cgroup.controllers"), "cpu memory pids\n").unwrap();
    std::fs::write(root.join("bocker/daemon1/cgroup.controllers"), "cpu memory pids\n").unwrap();
    cg.create("web", &limits).unwrap();
    // Controllers enabled at every level down to the parent, only those not yet enabled at the root.
    assert_eq!(std::fs::read_to_string(root.join("cgroup.subtree_control")).unwrap(), "+cpuset +cpu +io +pids");
    assert_eq!(std::fs::read_to_string(root.join("bocker/cgroup.subtree_control")).unwrap(), "+cpu +memory +pids");
    assert_eq!(
        std::fs::read_to_string(root.join("bocker/daemon1/cgroup.subtree_control")).unwrap(),
        "+cpu +memory +pids"
    );
    let g = root.join("bocker/daemon1/ctr-web");
    assert_eq!(std::fs::read_to_string(g.join("cpu.weight")).unwrap(), "50");
    assert_eq!(std::fs::read_to_string(g.join("cpu.max")).unwrap(), "20000 100000");
    assert_eq!(std::fs::read_to_string(g.join("memory.max")).unwrap(), (512u64 << 20).to_string());
    assert_eq!(std::fs::read_to_string(g.join("pids.max")).unwrap(), "max");
    // Born in its group (clone3), so nothing to write itself into.
    assert_eq!(cg.birth_group("web"), Some(g.clone()));
    assert_eq!(cg.procs_files("web"), Vec::<PathBuf>::new());
    assert_eq!(cg.read_limit("web", LimitKind::CpuWeight).as_deref(), Some("50"));
    // Stats in v2's files.
    std::fs::write(g.join("memory.current"), "4096\n").unwrap();
    std::fs::write(g.join("memory.peak"), "8192\n").unwrap();
    std::fs::write(g.join("cpu.stat"), "usage_usec 1500\nuser_usec 1000\n").unwrap();
    std::fs::write(g.join("pids.current"), "3\n").unwrap();
    std::fs::write(g.join("memory.events"), "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n").unwrap();
    let stats = cg.stats("web");
    assert_eq!(
        stats,
        Stats {
            memory_current: Some(4096),
            memory_peak: Some(8192),
            cpu_usage_usec: Some(1500),
            pids_current: Some(3),
            oom_kill: Some(1)
        }
    );
    // The kernel removes a group's files itself; here they go first.
    for f in std::fs::read_dir(&g).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    cg.remove("web").unwrap();
    assert!(!g.exists());
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn limits_of_max_survive_the_record() {
    // `echo max > memory.max` is a limit the container set, not "the daemon's default": it must load back
    // as written, or a restarted daemon would give the container 512M (and pids.max 2048) again.
    let written = Limits {
        cpu_weight: Some(100),
        cpu_max: Some(CpuMax { quota: None, period: 100000 }),
        memory_max: Some(Max(None)),
        pids_max: Some(Max(None)),
        ..Limits::default()
    };
    let json = serde_json::to_string(&written).unwrap();
    assert_eq!(serde_json::from_str::<Limits>(&json).unwrap(), written, "{json}");
    let numbers = Limits { memory_max: Some(Max(Some(64 << 20))), pids_max: Some(Max(Some(64))), ..Limits::default() };
    let json = serde_json::to_string(&numbers).unwrap();
    assert_eq!(serde_json::from_str::<Limits>(&json).unwrap(), numbers, "{json}");
    assert_eq!(
        serde_json::from_str::<Limits>(&serde_json::to_string(&Limits::default()).unwrap()).unwrap(),
        Limits::default()
    );
    // Records written before: a number, or null for a limit not set (and, alas, for `max`: it reads as unset).
    let old: Limits =
        serde_json::from_str(r#"{"cpu_weight":null,"cpu_max":null,"memory_max":1048576,"pids_max":null}"#).unwrap();
    assert_eq!(old, Limits { memory_max: Some(Max(Some(1 << 20))), ..Limits::default() });
    assert!(serde_json::from_str::<Limits>(r#"{"memory_max":"lots"}"#).is_err());
    assert!(serde_json::from_str::<Limits>(r#"{"memory_max":-1}"#).is_err());
}

/// A temporary directory of a test's own, removed when dropped.
struct FakeRoot(PathBuf);

impl FakeRoot {
    fn new(tag: &str) -> FakeRoot {
        let root = std::env::temp_dir().join(format!("bocker-fake-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        FakeRoot(root)
    }
}

impl Drop for FakeRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A v2 group of container `web` below `bocker`, with the freezer's files as the kernel makes them.
fn fake_v2_group(root: &Path) -> (Cgroups, PathBuf) {
    let g = root.join("bocker/ctr-web");
    std::fs::create_dir_all(&g).unwrap();
    std::fs::write(g.join("cgroup.freeze"), "0\n").unwrap();
    std::fs::write(g.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
    (Cgroups::new(Layout::V2 { root: root.to_path_buf() }, "bocker"), g)
}

#[test]
fn a_v2_freeze_waits_for_the_kernel_to_say_frozen() {
    let root = FakeRoot::new("freeze-v2");
    let (cg, g) = fake_v2_group(&root.0);
    assert_eq!(cg.freeze_requested("web"), Some(false));
    // The kernel's part: `frozen 1` in cgroup.events a while after cgroup.freeze says 1.
    let events = g.clone();
    let kernel = std::thread::spawn(move || {
        while std::fs::read_to_string(events.join("cgroup.freeze")).unwrap().trim() != "1" {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        // The moment before it says so: a freeze that saw `frozen 1` returned after it, however late this
        // thread runs again after its write (under emulation, long after).
        let at = std::time::Instant::now();
        std::fs::write(events.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        at
    });
    cg.freeze("web", std::time::Duration::from_secs(10)).unwrap();
    let returned = std::time::Instant::now();
    let frozen_at = kernel.join().unwrap();
    assert!(returned >= frozen_at, "the freeze returned before the kernel said frozen");
    assert_eq!(std::fs::read_to_string(g.join("cgroup.freeze")).unwrap(), "1");
    assert_eq!(cg.freeze_requested("web"), Some(true));
    cg.thaw("web").unwrap();
    assert_eq!(std::fs::read_to_string(g.join("cgroup.freeze")).unwrap(), "0");
    assert_eq!(cg.freeze_requested("web"), Some(false));
}

#[test]
fn a_v2_freeze_the_kernel_never_finishes_is_thawed_and_fails() {
    let root = FakeRoot::new("freeze-v2-stuck");
    let (cg, g) = fake_v2_group(&root.0);
    let e = cg.freeze("web", std::time::Duration::from_millis(50)).unwrap_err();
    assert!(matches!(e, FreezeError::NotFrozen { .. }), "{e}");
    assert_eq!(e.errno(), libc::ETIMEDOUT);
    assert!(e.to_string().contains("cgroup.events"), "{e}");
    assert_eq!(std::fs::read_to_string(g.join("cgroup.freeze")).unwrap(), "0", "thawed again");
}

#[test]
fn a_freeze_without_a_group_or_a_freezer_says_why() {
    let root = FakeRoot::new("freeze-none");
    let cg = Cgroups::new(Layout::V2 { root: root.0.clone() }, "bocker");
    let e = cg.freeze("old", std::time::Duration::from_millis(10)).unwrap_err();
    assert!(matches!(e, FreezeError::NoGroup { .. }) && e.errno() == libc::EOPNOTSUPP, "{e}");
    assert!(e.to_string().contains("restart it"), "{e}");
    assert_eq!(cg.freeze_requested("old"), None);
    let bare = Layout::V1 {
        cpu: Some(root.0.clone()),
        cpuacct: None,
        memory: None,
        pids: None,
        freezer: None,
        blkio: None,
        cpuset: None,
        unified: None,
    };
    let e = Cgroups::new(bare, "bocker").thaw("old").unwrap_err();
    assert!(matches!(e, FreezeError::NoFreezer) && e.errno() == libc::EOPNOTSUPP, "{e}");
}

#[test]
fn a_hybrid_host_freezes_with_its_v1_freezer_and_makes_the_group_there() {
    let root = FakeRoot::new("freeze-v1");
    let (freezer, unified, memory) = (root.0.join("freezer"), root.0.join("unified"), root.0.join("memory"));
    let layout = Layout::V1 {
        cpu: None,
        cpuacct: None,
        memory: Some(memory.clone()),
        pids: None,
        freezer: Some(freezer.clone()),
        blkio: None,
        cpuset: None,
        unified: Some(unified.clone()),
    };
    let cg = Cgroups::new(layout, "bocker");
    cg.create("web", &Limits::default()).unwrap();
    let g = freezer.join("bocker/ctr-web");
    assert!(g.is_dir() && unified.join("bocker/ctr-web").is_dir() && memory.join("bocker/ctr-web").is_dir());
    assert!(cg.procs_files("web").contains(&g.join("cgroup.procs")), "the process joins the freezer's group");
    // The kernel reads back FROZEN once every task is; the fake file says so at once.
    std::fs::write(g.join("freezer.state"), "THAWED\n").unwrap();
    cg.freeze("web", std::time::Duration::from_secs(1)).unwrap();
    assert_eq!(std::fs::read_to_string(g.join("freezer.state")).unwrap(), "FROZEN");
    assert_eq!(cg.freeze_requested("web"), Some(true));
    assert!(!unified.join("bocker/ctr-web/cgroup.freeze").exists(), "v1's freezer, not cgroup2's");
    // FREEZING (a task not frozen yet) is a freeze asked for, not done.
    std::fs::write(g.join("freezer.state"), "FREEZING\n").unwrap();
    assert_eq!(cg.freeze_requested("web"), Some(true));
    cg.thaw("web").unwrap();
    assert_eq!(std::fs::read_to_string(g.join("freezer.state")).unwrap(), "THAWED");
    assert_eq!(cg.freeze_requested("web"), Some(false));
    // Without a v1 freezer, a hybrid host's cgroup2 group freezes.
    let no_v1 = Layout::V1 {
        cpu: None,
        cpuacct: None,
        memory: Some(memory),
        pids: None,
        freezer: None,
        blkio: None,
        cpuset: None,
        unified: Some(unified.clone()),
    };
    let ug = unified.join("bocker/ctr-web");
    std::fs::write(ug.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
    Cgroups::new(no_v1, "bocker").freeze("web", std::time::Duration::from_secs(1)).unwrap();
    assert_eq!(std::fs::read_to_string(ug.join("cgroup.freeze")).unwrap(), "1");
}

#[test]
fn the_v2_files_of_the_newer_limits_on_a_fake_tree() {
    let root = FakeRoot::new("v2-more");
    fake_v2(&root.0);
    let cg = Cgroups::new(Layout::V2 { root: root.0.clone() }, "bocker");
    std::fs::create_dir_all(root.0.join("bocker")).unwrap();
    std::fs::write(root.0.join("bocker/cgroup.controllers"), "cpuset cpu io memory pids\n").unwrap();
    // The kernel's files of a group with swap accounting and iocost.
    let g = root.0.join("bocker/ctr-web");
    std::fs::create_dir_all(&g).unwrap();
    for f in ["memory.swap.max", "io.weight", "io.max"] {
        std::fs::write(g.join(f), "").unwrap();
    }
    let limits = Limits {
        memory_max: Some(Max(Some(64 << 20))),
        memory_high: Some(Max(Some(48 << 20))),
        io_weight: Some(300),
        cpuset_cpus: Some(CpuList::parse("0").unwrap()),
        ..Limits::default()
    };
    cg.create("web", &limits).unwrap();
    let read = |f: &str| std::fs::read_to_string(g.join(f)).unwrap();
    assert_eq!(read("memory.swap.max"), (64u64 << 20).to_string(), "Docker's default: as much swap as memory");
    assert_eq!(read("memory.high"), (48u64 << 20).to_string());
    assert_eq!(read("io.weight"), "default 300");
    assert_eq!(read("cpuset.cpus"), "0\n");
    std::fs::write(g.join("io.weight"), "default 300\n8:0 50\n").unwrap();
    assert_eq!(cg.read_limit("web", LimitKind::IoWeight).as_deref(), Some("300"));
    // A swap limit written stays when memory.max changes; one not written follows it.
    let mut all = limits.clone();
    all.put(Limit::MemoryMax(Max(Some(128 << 20))));
    cg.apply_one("web", &Limit::MemoryMax(Max(Some(128 << 20))), &all).unwrap();
    assert_eq!(read("memory.swap.max"), (128u64 << 20).to_string());
    all.put(Limit::MemorySwapMax(Max(Some(0))));
    cg.apply_one("web", &Limit::MemorySwapMax(Max(Some(0))), &all).unwrap();
    cg.apply_one("web", &Limit::MemoryMax(Max(Some(256 << 20))), &all).unwrap();
    assert_eq!(read("memory.swap.max"), "0");
    // io.max: the new lines first, then a device the new value leaves out set to max (each write is a
    // line; the fake file keeps the last).
    std::fs::write(g.join("io.max"), "7:1 rbps=10 wbps=max riops=max wiops=max\n").unwrap();
    let m = values::parse_io_max("8:0 wbps=1M").unwrap();
    cg.apply_one("web", &Limit::IoMax(m), &all).unwrap();
    assert_eq!(read("io.max"), "7:1 rbps=max wbps=max riops=max wiops=max", "the dropped device, last");
    // Stat files: the kernel's text; pressure missing is ENOTSUP; no group, nothing.
    std::fs::write(g.join("cpu.stat"), "usage_usec 5\n").unwrap();
    assert_eq!(cg.stat_file("web", StatFile::CpuStat).unwrap().as_deref(), Some("usage_usec 5\n"));
    let e = cg.stat_file("web", StatFile::CpuPressure).unwrap_err();
    assert_eq!(e.errno(), libc::ENOTSUP, "{e}");
    assert_eq!(cg.stat_file("nobody", StatFile::CpuPressure).unwrap(), None);
    // A controller the host's root lacks is refused before anything is recorded.
    std::fs::write(root.0.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
    let e = cg.check(&Limit::IoWeight(100)).unwrap_err();
    assert!(e.errno() == libc::ENOTSUP && e.to_string().contains("no io controller"), "{e}");
    std::fs::write(root.0.join("bocker/memory.high"), "max\n").unwrap();
    assert!(cg.check(&Limit::MemoryHigh(Max(None))).is_ok(), "the parent has the file");
    let e = cg.check(&Limit::MemorySwapMax(Max(None))).unwrap_err();
    assert!(e.errno() == libc::ENOTSUP && e.to_string().contains("swap accounting"), "{e}");
    assert!(!cg.swap_accounting());
}

#[test]
fn a_v1_host_translates_swap_io_and_cpusets_and_refuses_memory_high() {
    let root = FakeRoot::new("v1-more");
    let (memory, blkio, cpuset) = (root.0.join("memory"), root.0.join("blkio"), root.0.join("cpuset"));
    for d in [&memory, &blkio, &cpuset] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(memory.join("memory.memsw.limit_in_bytes"), "9223372036854771712\n").unwrap();
    std::fs::write(cpuset.join("cpuset.cpus"), "0-1\n").unwrap();
    std::fs::write(cpuset.join("cpuset.mems"), "0\n").unwrap();
    let layout = Layout::V1 {
        cpu: None,
        cpuacct: None,
        memory: Some(memory.clone()),
        pids: None,
        freezer: None,
        blkio: Some(blkio.clone()),
        cpuset: Some(cpuset.clone()),
        unified: None,
    };
    let cg = Cgroups::new(layout, "bocker");
    let g = memory.join("bocker/ctr-web");
    std::fs::create_dir_all(&g).unwrap();
    std::fs::write(g.join("memory.memsw.limit_in_bytes"), "9223372036854771712\n").unwrap();
    let limits = Limits { memory_max: Some(Max(Some(64 << 20))), ..Limits::default() };
    cg.create("web", &limits).unwrap();
    let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
    assert_eq!(read(g.join("memory.limit_in_bytes")), (64u64 << 20).to_string());
    assert_eq!(read(g.join("memory.memsw.limit_in_bytes")), (128u64 << 20).to_string(), "memory + as much swap");
    assert_eq!(cg.read_limit("web", LimitKind::MemorySwapMax).as_deref(), Some(&*(64u64 << 20).to_string()));
    // Each cpuset level takes its parent's lists, as v1 needs before it takes a process.
    assert_eq!(read(cpuset.join("bocker/cpuset.cpus")), "0-1");
    assert_eq!(read(cpuset.join("bocker/ctr-web/cpuset.mems")), "0");
    assert!(cg.procs_files("web").contains(&cpuset.join("bocker/ctr-web/cgroup.procs")));
    assert_eq!(cg.birth_group("web"), None, "no cgroup2 here");
    // io.max in the four throttle files; 0 removes a device.
    let m = values::parse_io_max("8:0 rbps=1M wiops=7").unwrap();
    cg.apply_one("web", &Limit::IoMax(m), &limits).unwrap();
    let b = blkio.join("bocker/ctr-web");
    assert_eq!(read(b.join("blkio.throttle.read_bps_device")), "8:0 1048576");
    assert_eq!(read(b.join("blkio.throttle.write_iops_device")), "8:0 7");
    assert_eq!(read(b.join("blkio.throttle.write_bps_device")), "8:0 0");
    // What v1 has no file for is refused; memsw where the host has it is not.
    let e = cg.check(&Limit::MemoryHigh(Max(Some(1 << 30)))).unwrap_err();
    assert!(e.errno() == libc::ENOTSUP && e.to_string().contains("cgroup v1 has no memory.high"), "{e}");
    let e = cg.check(&Limit::IoWeight(100)).unwrap_err();
    assert_eq!(e.errno(), libc::ENOTSUP, "{e}");
    std::fs::write(memory.join("bocker/memory.memsw.limit_in_bytes"), "9223372036854771712\n").unwrap();
    assert!(cg.check(&Limit::MemorySwapMax(Max(None))).is_ok(), "the parent has memsw");
    let e = cg.check(&Limit::CpusetCpus(CpuList::parse("8000").unwrap())).unwrap_err();
    assert!(e.errno() == libc::EINVAL && e.to_string().contains("online"), "{e}");
    let e = cg.stat_file("web", StatFile::MemoryPressure).unwrap_err();
    assert_eq!(e.errno(), libc::ENOTSUP);
    std::fs::write(g.join("memory.failcnt"), "3\n").unwrap();
    std::fs::write(g.join("memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n").unwrap();
    assert_eq!(cg.stat_file("web", StatFile::MemoryEvents).unwrap().as_deref(), Some("max 3\noom_kill 1\n"));
}

#[test]
fn the_kernels_reasons_reach_the_writer_and_the_rest_is_eio() {
    let write = |errno| CgroupError::Write { file: "f".into(), source: io::Error::from_raw_os_error(errno) };
    for errno in [libc::EBUSY, libc::EINVAL, libc::ENOSPC, libc::ENODEV, libc::EOPNOTSUPP, libc::EAGAIN] {
        assert_eq!(write(errno).errno(), errno);
    }
    assert_eq!(write(libc::EXDEV).errno(), libc::EIO);
    assert_eq!(CgroupError::Remove { path: "p".into(), source: io::Error::other("odd") }.errno(), libc::EIO);
}
