//! Faults, on the real daemon: SIGKILL in the middle of a commit and of an rm (nothing half-made listed,
//! nothing leaked, the rest intact after restart), a full store from inside a container (clear error, space
//! back after rm), 100 containers started at once by parallel writes, thousands of mixed reads and writes
//! (no deadlock, no lost update, the daemon's memory back where it was), and a pull stuck on a silent
//! registry that never stalls `ls` or `cat`. (SIGKILL during a pull and a run, and under heavy output, are in
//! pull.rs and restart.rs.)

mod common;

use std::fs;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::Bocker;

fn names(b: &Bocker, dir: &str) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(b.path(dir)).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v.retain(|n| !["run", "import", "build", "pull", "push", "pulls", "tag", "untag", "by-name"].contains(&n.as_str()));
    v
}

/// Subvolumes in the store's `kind` directory, staging ones included.
fn store_entries(b: &Bocker, kind: &str) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(b.root.join("store").join(kind))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".warm-"))
        .collect();
    v.sort();
    v
}

fn rss_kib(pid: i32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn sigkill_during_commits_and_removals_leaves_nothing_half_done() {
    let mut b = Bocker::start("fault-kill");
    let img = b.import("");
    // A container with some files to commit, so a commit takes a moment.
    let src = b.run_to_exit(&format!("{img} sh -c 'for i in $(seq 300); do echo $i > /f$i; done'"));
    for round in 0..6u64 {
        let delay = Duration::from_millis(round * 3);
        let target = format!("snap{round}");
        let victim = b.run_to_exit(&format!("{img} true"));
        std::thread::scope(|s| {
            let b = &b;
            s.spawn(|| {
                let _ = b.submit(&format!("containers/{src}/commit"), &target);
            });
            s.spawn(|| {
                let _ = fs::remove_dir(b.path(&format!("containers/{victim}")));
            });
            std::thread::sleep(delay);
        });
        // The requests may have finished or not: the daemon dies either way.
        b.crash_daemon();
        b.spawn_daemon();

        // The commit happened whole or not at all: an image named snapN runs and has all 300 files.
        let images = names(&b, "images");
        let committed: Vec<&String> =
            images.iter().filter(|id| b.read(&format!("images/{id}/source")) == format!("{target}\n")).collect();
        assert!(committed.len() <= 1, "{images:?}");
        if let Some(id) = committed.first() {
            let out = b.run_to_exit(&format!("{id} sh -c 'ls / | grep -c ^f'"));
            assert_eq!(b.read(&format!("containers/{out}/logs")), "300\n");
            fs::remove_dir(b.path(&format!("containers/{out}"))).unwrap();
        }
        // The removal happened whole or not at all: listed and startable, or gone with its rootfs.
        if b.path(&format!("containers/{victim}")).exists() {
            b.write(&format!("containers/{victim}/ctl"), "start").expect("a kept container still starts");
            b.wait_status(&victim, "exited");
            fs::remove_dir(b.path(&format!("containers/{victim}"))).unwrap();
        }
        // Nothing leaked in the store: no staging subvolume, no rootfs without a container, no image without a record.
        let listed_images = names(&b, "images");
        assert_eq!(store_entries(&b, "images"), listed_images, "round {round}");
        assert_eq!(store_entries(&b, "containers"), names(&b, "containers"), "round {round}");
        // No cgroup of a removed container, no mount but the tree and the store, no link but the bridge.
        for root in common::cgroup_roots() {
            let dir = root.join(&b.cgroup_parent);
            let groups: Vec<String> = fs::read_dir(&dir)
                .map(|d| {
                    d.flatten()
                        .filter(|e| e.path().is_dir())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            // The groups of the daemon's spare monitors are its own (docs/filesystem.md, "Spare monitors").
            for g in groups.into_iter().filter(|g| !g.starts_with("spare-")) {
                let name = g.strip_prefix("ctr-").unwrap_or_else(|| panic!("a group {g} not named ctr-NAME"));
                assert!(
                    b.path(&format!("containers/{name}")).exists(),
                    "round {round}: cgroup {g} left in {}",
                    dir.display()
                );
            }
        }
        let ours = b.dir.to_string_lossy().into_owned();
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert_eq!(mounts.lines().filter(|l| l.contains(&ours)).count(), 2, "round {round}: {mounts}");
        // Exited containers' veths go with their network namespaces, which the kernel frees in the background.
        let links = || {
            let out = std::process::Command::new("ip").args(["-o", "link"]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        common::eventually(
            Duration::from_secs(10),
            || format!("round {round}: a veth left: {}", links()),
            || !links().contains(&format!("master {}", b.bridge)),
        );
    }
}

#[test]
fn a_full_store_inside_a_container_is_a_clear_error_and_rm_gives_the_space_back() {
    let b = Bocker::start_sized("fault-full", "400M");
    let img = b.import("");
    let free = || nix::sys::statvfs::statvfs(&b.root.join("store")).unwrap().blocks_available();
    let before = free();
    let id = b.run_to_exit(&format!("{img} sh -c 'dd if=/dev/zero of=/fill bs=1M 2>&1; echo dd-exit=$?'"));
    let out = b.read(&format!("containers/{id}/logs"));
    assert!(out.contains("No space left on device"), "{out}");
    assert!(!out.contains("dd-exit=0"), "{out}");
    assert!(free() < before / 4, "the store filled up");
    // Meanwhile the daemon still answers and refuses what needs space with ENOSPC, not EIO.
    let e = b.submit("containers/run", &format!("{img} true"));
    if let Err(e) = e {
        assert!([libc::ENOSPC].contains(&Bocker::errno(&e)), "{e}");
    }
    fs::remove_dir(b.path(&format!("containers/{id}"))).expect("rm");
    common::eventually(
        Duration::from_secs(20),
        || format!("space not given back: {} of {before}", free()),
        || free() >= before * 9 / 10,
    );
    let again = b.run_to_exit(&format!("{img} sh -c 'dd if=/dev/zero of=/f bs=1M count=10 2>/dev/null && echo ok'"));
    assert_eq!(b.read(&format!("containers/{again}/logs")), "ok\n");
}

#[test]
fn a_hundred_containers_at_once_and_thousands_of_mixed_requests() {
    let b = Bocker::start_sized("fault-many", "2G");
    let img = b.import("");
    let daemon = b.daemon_pid().unwrap();
    // Warm up the paths once, then measure the daemon's memory.
    let warm = b.run_to_exit(&format!("{img} true"));
    fs::remove_dir(b.path(&format!("containers/{warm}"))).unwrap();
    let rss_before = rss_kib(daemon);

    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..100)
            .map(|i| {
                let (b, img) = (&b, &img);
                s.spawn(move || b.submit("containers/run", &format!("{img} sh -c 'echo c{i}; sleep 2'")).expect("run"))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 100);

    // Thousands of mixed requests from several threads: reads of every kind, env writes read back.
    std::thread::scope(|s| {
        for t in 0..8 {
            let (b, ids) = (&b, &ids);
            s.spawn(move || {
                for k in 0..300 {
                    let id = &ids[(t * 13 + k) % ids.len()];
                    let _ = b.read(&format!("containers/{id}/status"));
                    let _ = b.read(&format!("containers/{id}/ip"));
                    let _ = fs::read_dir(b.path("containers")).unwrap().count();
                    let _ = b.read("errors");
                }
            });
        }
        for t in 0..4 {
            let b = &b;
            s.spawn(move || {
                let name = format!("mixed{t}");
                fs::create_dir(b.path(&format!("containers/{name}"))).unwrap();
                for k in 0..300 {
                    let value = format!("K=v{k}");
                    b.write(&format!("containers/{name}/env"), &value).unwrap();
                    assert_eq!(b.read(&format!("containers/{name}/env")), format!("{value}\n"), "a lost update");
                }
            });
        }
    });

    for id in &ids {
        b.wait_status(id, "exited");
        assert!(b.read(&format!("containers/{id}/logs")).starts_with('c'));
    }
    for id in ids.iter().cloned().chain((0..4).map(|t| format!("mixed{t}"))) {
        fs::remove_dir(b.path(&format!("containers/{id}"))).expect("rm");
    }
    assert_eq!(names(&b, "containers"), Vec::<String>::new());
    let rss_after = rss_kib(daemon);
    assert!(rss_after < rss_before + 32 * 1024, "the daemon grew from {rss_before} KiB to {rss_after} KiB");
}

#[test]
fn a_pull_stuck_on_a_silent_registry_never_stalls_the_tree() {
    let b = Bocker::start("fault-stuck");
    b.import("");
    // A "registry" on loopback that accepts connections and never answers, until told to hang up.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let hang_up = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let (b, hang_up) = (&b, &hang_up);
        // The listener goes with the thread: after the hang-up a retry finds nobody listening.
        s.spawn(move || {
            let mut conns = Vec::new();
            silent.set_nonblocking(true).unwrap();
            while !hang_up.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok((c, _)) = silent.accept() {
                    conns.push(c);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let pull = s.spawn(move || b.write("images/pull", &format!("127.0.0.1:{port}/stuck:1")));
        std::thread::sleep(Duration::from_millis(300));
        // The pull waits on the silent registry for as long as it is held: the tree answers all the same.
        // (A liveness check, not a speed one: a tree stalled behind the pull would not answer at all.)
        for _ in 0..20 {
            let t = Instant::now();
            let _ = names(b, "images");
            let _ = b.read("images/pulls");
            let _ = b.read("README");
            fs::create_dir(b.path("containers/probe")).unwrap();
            fs::remove_dir(b.path("containers/probe")).unwrap();
            assert!(t.elapsed() < Duration::from_secs(10), "the tree stalled for {:?} behind a pull", t.elapsed());
        }
        assert!(!pull.is_finished(), "the pull was still waiting on the registry");
        hang_up.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(pull.join().unwrap().is_err(), "a registry that hangs up fails the pull");
    });
}
