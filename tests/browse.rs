//! Reading the tree as a file manager or a curious shell does changes nothing, and what it reads is
//! whole and current: sizes match contents, a growing log can be followed.

mod common;

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Bocker;

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Every record and the whole state directory, byte for byte.
fn state(b: &Bocker) -> String {
    sh(&format!("cd {} && find state -type f | sort | xargs md5sum", b.root.display()))
}

#[test]
fn ls_find_stat_and_cat_of_every_file_change_nothing() {
    let b = Bocker::start("browse");
    let img = b.import("");
    b.run_to_exit(&format!("{img} echo done"));
    fs::create_dir(b.path("containers/configured")).unwrap();
    b.write("containers/configured/image", &img).unwrap();
    let mnt = b.mount.display().to_string();
    let before = state(&b);
    let tree_before = sh(&format!("cd {mnt} && find . | sort"));

    sh(&format!("ls -laR {mnt} > /dev/null"));
    let found = sh(&format!("find {mnt} -type f"));
    sh(&format!("find {mnt} -print0 | xargs -0 stat > /dev/null"));
    // The top-level command files report a page, as sysfs's do (their writes are served in parallel only
    // within the size the kernel knows); what a read of one gives is its open's own answer.
    let requests = ["images/import", "images/build", "images/pull", "images/push", "images/tag", "images/untag"]
        .into_iter()
        .chain(["containers/run"])
        .map(|f| format!("{mnt}/{f}"))
        .collect::<Vec<_>>();
    for file in found.lines() {
        // Every other file reads whole, and as many bytes as stat says.
        let content = fs::read(file).unwrap();
        let size = fs::metadata(file).unwrap().len();
        match requests.iter().any(|r| r == file) {
            true => assert_eq!((content.len(), size), (0, 4096), "{file}"),
            false => assert_eq!(content.len() as u64, size, "{file}"),
        }
    }
    for r in &requests {
        assert!(found.lines().any(|f| f == r), "{r} is listed");
    }
    sh(&format!("find {mnt} -type f -exec cat {{}} + > /dev/null"));
    // Opening the write files for reading starts nothing.
    assert_eq!(fs::read_to_string(b.path("containers/run")).unwrap(), "");
    assert_eq!(fs::read_to_string(b.path("images/import")).unwrap(), "");

    assert_eq!(state(&b), before, "reads changed the records");
    assert_eq!(sh(&format!("cd {mnt} && find . | sort")), tree_before);
    assert_eq!(b.status("configured"), "created");
    assert_eq!(b.read("errors"), "", "no read produced an error");
}

#[test]
fn a_growing_log_is_followed_and_never_stale() {
    let b = Bocker::start("follow");
    let img = b.import("");
    let id = b
        .submit("containers/run", &format!("{img} sh -c 'for i in 1 2 3 4 5; do echo tick $i; sleep 0.2; done'"))
        .unwrap();
    let logs = b.path(&format!("containers/{id}/logs"));
    // tail -f sees every line as it comes.
    let mut tail =
        Command::new("tail").arg("-f").arg("-s").arg("0.05").arg(&logs).stdout(Stdio::piped()).spawn().unwrap();
    let mut out = tail.stdout.take().unwrap();
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 256];
    while !seen.contains("tick 5\n") && Instant::now() < deadline {
        let n = out.read(&mut buf).unwrap();
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let _ = tail.kill();
    let _ = tail.wait();
    assert_eq!(seen, "tick 1\ntick 2\ntick 3\ntick 4\ntick 5\n");
    // A file held open sees growth at its offset; status read again is current, never cached.
    b.wait_status(&id, "exited");
    let mut f = fs::File::open(&logs).unwrap();
    f.seek(SeekFrom::Start(7)).unwrap();
    let mut rest = String::new();
    f.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "tick 2\ntick 3\ntick 4\ntick 5\n");
    assert_eq!(fs::metadata(&logs).unwrap().len(), 35);
}

#[test]
fn an_open_status_file_reads_one_consistent_snapshot() {
    let b = Bocker::start("snapshot");
    let img = b.import("");
    b.configure("s", &img, "sleep 1000");
    let mut f = fs::File::open(b.path("containers/s/status")).unwrap();
    let mut first = [0u8; 3];
    f.read_exact(&mut first).unwrap();
    b.write("containers/s/ctl", "start").unwrap();
    // The rest of this open file is the rest of what it was at open: never a mix of two values.
    let mut rest = String::new();
    f.read_to_string(&mut rest).unwrap();
    assert_eq!(format!("{}{rest}", String::from_utf8_lossy(&first)), "created\n");
    assert_eq!(b.status("s"), "running", "a new open sees the new value");
    b.write("containers/s/ctl", "kill").unwrap();
    b.wait_status("s", "exited");
}
