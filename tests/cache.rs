//! The kernel keeps names and attributes of the tree between reads; every read after a change sees the
//! change all the same, in content and in `stat`'s size: changes made through the files, and those the
//! daemon makes on its own (an exit).

mod common;

use std::fs;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Bocker;

/// The PATH the busybox image gives its containers.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `rel`'s content, checked against the size `stat` gave just before (a stale cached size fails here).
/// For a value that nothing changes meanwhile.
fn value(b: &Bocker, rel: &str) -> String {
    let path = b.path(rel);
    let size = fs::metadata(&path).unwrap_or_else(|e| panic!("stat {rel}: {e}")).len();
    let content = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {rel}: {e}"));
    assert_eq!(size, content.len() as u64, "{rel}: stat said {size} bytes, a read gives {content:?}");
    content
}

/// Looks at every file of container `name` the way `cat` and `ls -l` do, so the kernel holds their names
/// and attributes (a read leaves the time of access to be asked for again; the `stat` after it caches all).
fn look(b: &Bocker, name: &str) {
    let dir = b.path(&format!("containers/{name}"));
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if fs::symlink_metadata(&path).unwrap().is_file() {
            let _ = fs::read(&path).unwrap();
        }
        fs::symlink_metadata(&path).unwrap();
    }
}

fn gone(path: &Path) -> bool {
    matches!(fs::symlink_metadata(path), Err(e) if e.raw_os_error() == Some(libc::ENOENT))
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

#[test]
fn status_exit_code_pid_and_times_follow_start_exit_and_start_again() {
    let b = Bocker::start("cache-exit");
    let img = b.import("");
    b.configure("c", &img, "sh -c 'sleep 1; exit 3'");
    look(&b, "c");
    assert_eq!(value(&b, "containers/c/status"), "created\n");
    assert_eq!(value(&b, "containers/c/exit_code"), "");
    assert_eq!(value(&b, "containers/c/pid"), "");
    assert_eq!(value(&b, "containers/c/ip"), "");

    for round in 0..2 {
        look(&b, "c");
        b.write("containers/c/ctl", "start").unwrap();
        // The start's own change, seen as soon as the write returned.
        assert_eq!(value(&b, "containers/c/status"), "running\n", "round {round}");
        assert_eq!(value(&b, "containers/c/exit_code"), "", "round {round}: the last run's code is gone");
        assert_eq!(value(&b, "containers/c/finished_at"), "", "round {round}");
        let pid = value(&b, "containers/c/pid");
        assert!(pid.trim_end().parse::<u32>().is_ok(), "round {round}: pid {pid:?}");
        assert!(value(&b, "containers/c/ip").starts_with(&b.subnet_prefix), "round {round}");
        assert!(!value(&b, "containers/c/started_at").is_empty());
        look(&b, "c");

        // The exit is the daemon's own change: the moment `status` shows it, every other file does too.
        let deadline = Instant::now() + Duration::from_secs(20);
        while b.read("containers/c/status") != "exited\n" {
            assert!(Instant::now() < deadline, "round {round}: never exited");
        }
        assert_eq!(value(&b, "containers/c/exit_code"), "3\n", "round {round}");
        assert_eq!(value(&b, "containers/c/pid"), "", "round {round}");
        assert!(!value(&b, "containers/c/finished_at").is_empty(), "round {round}");
    }
}

#[test]
fn a_removed_container_is_gone_at_once_and_so_is_what_a_failed_run_made() {
    let b = Bocker::start("cache-rm");
    let img = b.import("");
    fs::create_dir(b.path("containers/doomed")).unwrap();
    look(&b, "doomed");
    assert!(names(&b.path("containers")).contains(&"doomed".to_string()));
    fs::remove_dir(b.path("containers/doomed")).unwrap();
    assert!(gone(&b.path("containers/doomed")));
    assert!(gone(&b.path("containers/doomed/status")));
    assert!(!names(&b.path("containers")).contains(&"doomed".to_string()));

    // A run whose command is not in the image makes a container, fails to start it and removes it again.
    // Listings taken meanwhile (readdirplus) give the kernel its name and attributes; once the write has
    // failed, it is gone from all of them.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = {
        let (stop, dir) = (Arc::clone(&stop), b.path("containers"));
        std::thread::spawn(move || {
            let mut seen = std::collections::BTreeSet::new();
            while !stop.load(Ordering::Relaxed) {
                for entry in fs::read_dir(&dir).unwrap().flatten() {
                    if entry.metadata().is_ok() {
                        seen.insert(entry.file_name().into_string().unwrap());
                    }
                }
            }
            seen
        })
    };
    for _ in 0..20 {
        let e = b.submit("containers/run", &format!("{img} no-such-program")).unwrap_err();
        assert_eq!(Bocker::errno(&e), libc::ENOENT, "{e}: {}", b.read("errors"));
    }
    stop.store(true, Ordering::Relaxed);
    let seen = seen.join().unwrap();
    let made: Vec<&String> = seen.iter().filter(|n| n.starts_with("ps_")).collect();
    assert!(!made.is_empty(), "the listings never caught a failing run's container: {seen:?}");
    let listed = names(&b.path("containers"));
    for name in made {
        assert!(gone(&b.path(&format!("containers/{name}"))), "{name} still stats");
        assert!(gone(&b.path(&format!("containers/{name}/status"))), "{name}/status still stats");
        assert!(!listed.contains(name), "{name} still listed");
    }
    assert_eq!(listed, vec!["run".to_string()]);
}

#[test]
fn a_name_made_again_shows_the_new_containers_values() {
    let b = Bocker::start("cache-again");
    let img = b.import("");
    b.configure("again", &img, "sh -c 'exit 7'");
    b.write("containers/again/ctl", "start").unwrap();
    b.wait_status("again", "exited");
    look(&b, "again");
    assert_eq!(value(&b, "containers/again/exit_code"), "7\n");
    // A directory held open across the removal and the new mkdir, as a shell's working directory is.
    let held = fs::File::open(b.path("containers/again")).unwrap();
    fs::remove_dir(b.path("containers/again")).unwrap();
    fs::create_dir(b.path("containers/again")).unwrap();
    assert_eq!(value(&b, "containers/again/status"), "created\n");
    for empty in ["exit_code", "image", "cmd", "pid", "started_at", "finished_at", "error"] {
        assert_eq!(value(&b, &format!("containers/again/{empty}")), "", "{empty} of the new container");
    }
    assert!(gone(&b.path("containers/again/rootfs")), "no image, no rootfs");
    drop(held);
    b.write("containers/again/image", &img).unwrap();
    assert_eq!(value(&b, "containers/again/image"), format!("{img}\n"));
    assert!(fs::symlink_metadata(b.path("containers/again/rootfs")).is_ok());
}

#[test]
fn writes_and_their_errors_show_at_once() {
    let b = Bocker::start("cache-write");
    let img = b.import("");
    fs::create_dir(b.path("containers/w")).unwrap();
    look(&b, "w");
    for (file, data, shown) in [
        ("image", img.as_str(), format!("{img}\n")),
        ("cmd", "sleep 1000", "sleep 1000\n".to_string()),
        ("env", "A=1\nB=two", format!("PATH={PATH}\nA=1\nB=two\n")),
        ("ports", "8080:80", "8080:80/tcp\n".to_string()),
        ("privileged", "true", "true\n".to_string()),
    ] {
        b.write(&format!("containers/w/{file}"), data).unwrap();
        assert_eq!(value(&b, &format!("containers/w/{file}")), shown, "{file}");
    }
    let e = b.write("containers/w/ctl", "bogus").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EINVAL);
    assert!(value(&b, "containers/w/error").contains("unknown verb 'bogus'"));
    // The next write that succeeds clears it.
    b.write("containers/w/cmd", "sleep 1").unwrap();
    assert_eq!(value(&b, "containers/w/error"), "");
}

#[test]
fn an_image_removed_is_gone_at_once_and_an_exec_appears_at_once() {
    let b = Bocker::start("cache-img");
    let img = b.import("");
    let spare = b.import("");
    let image = |id: &str, f: &str| b.path(&format!("images/{id}/{f}"));
    assert!(!value(&b, &format!("images/{spare}/source")).is_empty());
    assert!(fs::symlink_metadata(image(&spare, "rootfs")).is_ok());
    fs::remove_dir(b.path(&format!("images/{spare}"))).unwrap();
    assert!(gone(&b.path(&format!("images/{spare}"))));
    assert!(gone(&image(&spare, "source")));
    assert!(!names(&b.path("images")).contains(&spare));

    b.configure("box", &img, "sleep 1000");
    b.write("containers/box/ctl", "start").unwrap();
    assert_eq!(names(&b.path("containers/box/execs")), Vec::<String>::new());
    assert!(gone(&b.path("containers/box/execs/1")));
    let n = b.submit("containers/box/exec", "sh -c 'sleep 1; exit 5'").unwrap();
    assert_eq!(n, "1");
    assert_eq!(names(&b.path("containers/box/execs")), vec!["1".to_string()]);
    assert_eq!(value(&b, "containers/box/execs/1/status"), "running\n");
    assert_eq!(value(&b, "containers/box/execs/1/exit_code"), "");
    for f in ["exit_code", "pid", "finished_at"] {
        fs::metadata(b.path(&format!("containers/box/execs/1/{f}"))).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while b.read("containers/box/execs/1/status") != "exited\n" {
        assert!(Instant::now() < deadline, "the exec never exited");
    }
    assert_eq!(value(&b, "containers/box/execs/1/exit_code"), "5\n");
    assert_eq!(value(&b, "containers/box/execs/1/pid"), "");
    b.write("containers/box/ctl", "kill").unwrap();
    b.wait_status("box", "exited");
}

#[test]
fn a_value_read_while_it_changes_is_always_one_whole_value() {
    let b = Bocker::start("cache-whole");
    let img = b.import("");
    b.configure("flip", &img, "sleep 1000");
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (stop, path) = (Arc::clone(&stop), b.path("containers/flip/status"));
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let mut s = String::new();
                    fs::File::open(&path).unwrap().read_to_string(&mut s).unwrap();
                    // Whole words only: a settled status, or the start or kill under way.
                    let whole = ["created\n", "starting\n", "running\n", "stopping\n", "exited\n"];
                    assert!(whole.contains(&s.as_str()), "read {s:?}");
                    let size = fs::metadata(&path).unwrap().len();
                    assert!(whole.iter().any(|w| w.len() as u64 == size), "stat gave {size}");
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for _ in 0..5 {
        b.write("containers/flip/ctl", "start").unwrap();
        b.write("containers/flip/ctl", "kill").unwrap();
        b.wait_status("flip", "exited");
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
}

#[test]
fn an_open_file_keeps_the_value_it_opened_with_and_the_next_open_sees_the_change() {
    let b = Bocker::start("cache-held");
    let img = b.import("");
    b.configure("p", &img, "sleep 1000");
    let status = b.path("containers/p/status");
    let read = |path: &Path| fs::read_to_string(path).unwrap();
    // Held open across a change, as `less` or a file manager's preview holds it.
    let mut held = fs::File::open(&status).unwrap();
    let mut first = String::new();
    held.read_to_string(&mut first).unwrap();
    assert_eq!(first, "created\n");
    b.write("containers/p/ctl", "start").unwrap();
    b.wait_status("p", "running");
    assert_eq!(read(&status), "running\n");
    assert_eq!(fs::metadata(&status).unwrap().len(), "running\n".len() as u64);
    let mut again = String::new();
    std::io::Seek::seek(&mut held, std::io::SeekFrom::Start(0)).unwrap();
    held.read_to_string(&mut again).unwrap();
    assert_eq!(again, "created\n", "an open file's value changed under it");
    drop(held);
    b.write("containers/p/ctl", "kill").unwrap();
    b.wait_status("p", "exited");
    assert_eq!(read(&status), "exited\n");
}

#[test]
fn object_names_are_cached_where_the_kernel_can_be_told_to_forget_them() {
    // fuser's debug lines: a line per request.
    let b = Bocker::start_with_env("cache-names", &[("RUST_LOG", "debug")]);
    let img = b.import("");
    b.configure("named-once", &img, "true");
    b.write("images/tag", &format!("{img} cached/probe:1")).unwrap();
    // The daemon logs each request it gets; a name's lookups are counted there.
    let lookups = |name: &str| b.daemon_log().matches(&format!("LOOKUP name {name:?}")).count();
    let walk = |rel: &str| {
        for _ in 0..20 {
            fs::symlink_metadata(b.path(rel)).unwrap();
        }
    };
    // Positive control: names under images/by-name/ are never cached, and each walk is counted.
    let before = lookups("probe:1");
    walk("images/by-name/docker.io/cached/probe:1");
    assert!(lookups("probe:1") >= before + 20, "by-name lookups are not counted: the probe is broken");
    let before = lookups("named-once");
    walk("containers/named-once/status");
    let asked = lookups("named-once") - before;
    if b.daemon_log().contains("no FUSE_NOTIFY_INC_EPOCH") {
        assert!(asked >= 20, "{asked} lookups: a kernel that can't be told to forget caches no object name");
    } else {
        assert!(asked <= 1, "{asked} lookups of a cached name in 20 walks");
    }
}
