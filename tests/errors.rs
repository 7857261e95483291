//! Every errno of the contract with a wrong write: the right errno (what `echo` prints), a human message in
//! the object's `error` file, in `errors` and in the daemon log, and nothing changed.

mod common;

use std::fs;
use std::io;
use std::ops::Not;

use common::Bocker;

fn errno_of<T: std::fmt::Debug>(r: io::Result<T>) -> i32 {
    Bocker::errno(&r.expect_err("the write should fail"))
}

/// Everything a user could look at for container `name`.
fn snapshot(b: &Bocker, name: &str) -> Vec<String> {
    let mut out: Vec<String> = ["image", "cmd", "env", "status", "exit_code", "pid"]
        .iter()
        .map(|f| b.read(&format!("containers/{name}/{f}")))
        .collect();
    out.push(listing(b, "containers"));
    out.push(listing(b, "images"));
    out
}

fn listing(b: &Bocker, dir: &str) -> String {
    let mut names: Vec<String> =
        fs::read_dir(b.path(dir)).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names.join(" ")
}

/// The write fails with `errno`, the message reaches all three places, and nothing changed.
fn refused(b: &Bocker, name: &str, file: &str, data: &str, errno: i32, message: &str) {
    let before = snapshot(b, name);
    let got = errno_of(b.write(&format!("containers/{name}/{file}"), data));
    assert_eq!(got, errno, "{file} <- {data:?}: errno {got}, wanted {errno}");
    assert!(b.read(&format!("containers/{name}/error")).contains(message), "error file lacks {message:?}");
    let name_of = format!("{:?}", nix::errno::Errno::from_raw(errno));
    let tagged = format!("containers/{name}/{file} {name_of} ");
    let errors = b.read("errors");
    let line = errors.lines().rev().find(|l| l.contains(&tagged)).unwrap_or_else(|| panic!("{tagged} not in errors"));
    assert!(line.contains(message), "{line}");
    assert!(b.daemon_log().contains(message), "daemon log lacks {message:?}");
    assert_eq!(snapshot(b, name), before, "a failed write changed something");
}

#[test]
fn container_writes_fail_with_the_right_errno_and_change_nothing() {
    let b = Bocker::start("errno");
    let img = b.import("");
    fs::create_dir(b.path("containers/c")).unwrap();

    refused(&b, "c", "ctl", "start", libc::EINVAL, "has no image");
    refused(&b, "c", "image", "img_doesnotexist", libc::ENOENT, "no image named 'img_doesnotexist'");
    refused(&b, "c", "image", "two words", libc::EINVAL, "expected one word");
    b.write("containers/c/image", &img).unwrap();
    assert_eq!(b.read("containers/c/error"), "", "a good write clears the error");
    refused(&b, "c", "ctl", "bogus", libc::EINVAL, "unknown verb 'bogus'");
    refused(&b, "c", "ctl", "stop now", libc::EINVAL, "bad timeout 'now'");
    refused(&b, "c", "ctl", "kill SIGNOPE", libc::EINVAL, "unknown signal 'SIGNOPE'");
    refused(&b, "c", "ctl", "st\0art", libc::EINVAL, "NUL byte");
    refused(&b, "c", "ctl", "kill", libc::ESRCH, "is not running");
    refused(&b, "c", "ctl", "pause", libc::ESRCH, "is not running");
    refused(&b, "c", "cmd", "echo 'unterminated", libc::EINVAL, "bad command line");
    refused(&b, "c", "cmd", "[1, 2]", libc::EINVAL, "not a JSON array of strings");
    refused(&b, "c", "env", "NOEQUALS", libc::EINVAL, "expected KEY=VALUE");

    b.write("containers/c/cmd", "no-such-program").unwrap();
    refused(&b, "c", "ctl", "start", libc::ENOENT, "executable 'no-such-program' not found");
    assert_eq!(b.status("c"), "created", "a failed start leaves the container as it was");

    b.write("containers/c/cmd", "sleep 1000").unwrap();
    b.write("containers/c/ctl", "start").unwrap();
    refused(&b, "c", "ctl", "start", libc::EBUSY, "already running");
    refused(&b, "c", "image", &img, libc::EBUSY, "can't change once it has started");
    refused(&b, "c", "cmd", "true", libc::EBUSY, "is running");
    refused(&b, "c", "env", "A=1", libc::EBUSY, "is running");
    assert_eq!(errno_of(fs::remove_dir(b.path("containers/c"))), libc::EBUSY);
    b.write("containers/c/ctl", "kill").unwrap();
    b.wait_status("c", "exited");
    refused(&b, "c", "image", &img, libc::EBUSY, "can't change once it has started");
    refused(&b, "c", "ctl", "kill", libc::ESRCH, "is not running");
}

#[test]
fn tree_level_mistakes_fail_cleanly() {
    let b = Bocker::start("tree");
    let img = b.import("");
    let images = listing(&b, "images");

    // Bad names and taken names on mkdir.
    for bad in ["-dash", ".hidden", "a b", &"x".repeat(65)] {
        assert_eq!(errno_of(fs::create_dir(b.path(&format!("containers/{bad}")))), libc::EINVAL, "{bad}");
    }
    assert!(b.read("errors").contains("invalid name '-dash'"));
    fs::create_dir(b.path("containers/taken")).unwrap();
    // The kernel answers this one from its lookup: the daemon never sees the mkdir.
    assert_eq!(errno_of(fs::create_dir(b.path("containers/taken"))), libc::EEXIST);
    assert_eq!(listing(&b, "containers"), "run taken");
    // mkdir elsewhere is not how images or files are made.
    assert_eq!(errno_of(fs::create_dir(b.path("images/img_new"))), libc::EPERM);
    assert_eq!(errno_of(fs::create_dir(b.path("containers/taken/sub"))), libc::EPERM);

    // Read-only files refuse writes; unknown objects are ENOENT.
    assert_eq!(errno_of(b.write("containers/taken/status", "running")), libc::EACCES);
    assert_eq!(errno_of(b.write("README", "x")), libc::EACCES);
    assert_eq!(errno_of(b.write("containers/ghost/ctl", "start")), libc::ENOENT);
    assert_eq!(errno_of(fs::remove_dir(b.path("containers/ghost"))), libc::ENOENT);
    assert_eq!(errno_of(fs::remove_dir(b.path("images/img_ghost"))), libc::ENOENT);
    assert_eq!(errno_of(fs::remove_file(b.path("containers/taken/cmd"))), libc::EPERM);
    assert_eq!(errno_of(fs::write(b.path("containers/newfile"), "x")), libc::EPERM, "O_CREAT makes no files");
    assert_eq!(errno_of(fs::write(b.path("images/newfile"), "x")), libc::EPERM);
    // (In a container's directory O_CREAT makes a scratch file for save-by-rename: tests/values.rs.)
    assert_eq!(errno_of(fs::rename(b.path("containers/taken"), b.path("containers/other"))), libc::EPERM);

    // run and import: bad input leaves no container or image behind.
    assert_eq!(errno_of(b.submit("containers/run", "img_ghost true")), libc::ENOENT);
    // (A zero-byte write never reaches the daemon; a blank line does.)
    assert_eq!(errno_of(b.submit("containers/run", "\n")), libc::EINVAL);
    assert_eq!(errno_of(b.submit("containers/run", &format!("{img} no-such-program"))), libc::ENOENT);
    assert!(b.read("errors").contains("containers/run ENOENT executable 'no-such-program' not found"));
    assert_eq!(listing(&b, "containers"), "run taken");
    assert_eq!(errno_of(b.submit("images/import", "relative/dir")), libc::EINVAL);
    assert_eq!(errno_of(b.submit("images/import", "/no/such/dir")), libc::ENOENT);
    assert_eq!(errno_of(b.submit("images/import", "/etc/hostname")), libc::EINVAL);
    assert_eq!(errno_of(b.submit("images/import", &format!("{}\nFROM scratch", b.rootfs().display()))), libc::EINVAL);
    assert!(b.read("errors").contains("images/import ENOENT no directory '/no/such/dir'"));
    assert_eq!(listing(&b, "images"), images);
}

#[test]
fn a_full_store_is_enospc_and_leaves_nothing() {
    // btrfs needs about 110 MiB of its own; a 256 MiB store can't take a 300 MiB tree.
    let b = Bocker::start_sized("enospc", "256M");
    let img = b.import("");
    let big = b.dir.join("big");
    fs::create_dir_all(&big).unwrap();
    let chunk = vec![0x5au8; 1 << 20];
    let mut f = fs::File::create(big.join("blob")).unwrap();
    for _ in 0..300 {
        io::Write::write_all(&mut f, &chunk).unwrap();
    }
    drop(f);
    let got = errno_of(b.submit("images/import", &big.display().to_string()));
    assert_eq!(got, libc::ENOSPC);
    assert!(b.read("errors").contains("images/import ENOSPC"), "{}", b.read("errors"));
    assert_eq!(listing(&b, "images"), format!("build by-name {img} import pull pulls push tag untag"));
    let store: Vec<_> = fs::read_dir(b.root.join("store/images")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(store, vec![std::ffi::OsString::from(&img)], "no half-made subvolume is left");
    assert_eq!(fs::read_dir(b.root.join("state/images")).unwrap().count(), 1);
    // The space comes back at once: the failed import's subvolume is gone and its extents freed.
    let t = std::time::Instant::now();
    loop {
        match b.submit("images/import", &b.rootfs().display().to_string()) {
            Ok(id) => {
                assert!(id.starts_with("img_"));
                break;
            }
            Err(e) if Bocker::errno(&e) == libc::ENOSPC && t.elapsed().as_secs() < 5 => {
                std::thread::sleep(std::time::Duration::from_millis(200))
            }
            Err(e) => panic!("import after ENOSPC: {e}"),
        }
    }
    eprintln!("space came back after {:?}", t.elapsed());
}

/// Every readable file of the tree that a failed write must leave as it was (not the logs, errors, the `error`
/// files and `State.Error` of `inspect.json`, which say what failed, nor counters that move by themselves),
/// by path.
fn whole_tree(b: &Bocker) -> Vec<(String, String)> {
    tree_below(b, "")
}

/// [`whole_tree`] of one directory: `containers/NAME`, or `images` or `containers` for their command
/// files.
fn object_tree(b: &Bocker, dir: &str) -> Vec<(String, String)> {
    tree_below(b, dir)
}

fn tree_below(b: &Bocker, top: &str) -> Vec<(String, String)> {
    let moving = [
        "logs",
        "stdout",
        "stderr",
        "log_index",
        "error",
        "errors",
        "pulls",
        "memory.current",
        "memory.peak",
        "cpu.usage_usec",
        "pids.current",
        "memory.stat",
        "memory.events",
        "io.stat",
        "cpu.stat",
        "cpu.pressure",
        "memory.pressure",
        "io.pressure",
        // A read waits for the running container's end.
        "wait",
    ];
    let mut out = Vec::new();
    let mut dirs = vec![top.to_string()];
    while let Some(dir) = dirs.pop() {
        let mut entries: Vec<_> = fs::read_dir(b.path(&dir)).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = if dir.is_empty() { name.clone() } else { format!("{dir}/{name}") };
            let t = e.file_type().unwrap();
            if t.is_symlink() {
                out.push((rel.clone(), fs::read_link(e.path()).unwrap().display().to_string()));
            } else if t.is_dir() {
                out.push((rel.clone(), "<dir>".into()));
                dirs.push(rel);
            } else if !moving.contains(&name.as_str()) {
                let mut text = fs::read_to_string(e.path()).unwrap_or_else(|e| format!("<{e}>"));
                // A container's inspect.json holds its `error` as State.Error: all of it but that.
                if name == "inspect.json" && rel.starts_with("containers/") {
                    let mut doc: serde_json::Value = serde_json::from_str(&text).expect("inspect.json is JSON");
                    doc["State"]["Error"] = serde_json::Value::Null;
                    text = doc.to_string();
                }
                out.push((rel.clone(), text));
            }
        }
    }
    out
}

#[test]
fn a_catalogue_of_bad_input_to_every_writable_file_is_refused_and_changes_nothing() {
    let b = Bocker::start("catalogue");
    let img = b.import("");
    b.configure("idle", &img, "true");
    b.configure("busy", &img, "sleep 1000");
    b.write("containers/busy/ctl", "start").unwrap();
    let writable: Vec<String> = ["images/import", "images/pull", "images/push", "containers/run"]
        .into_iter()
        .map(String::from)
        .chain(["idle", "busy"].iter().flat_map(|c| {
            fs::read_dir(b.path(&format!("containers/{c}")))
                .unwrap()
                .flatten()
                .filter(|e| e.file_type().unwrap().is_file() && e.metadata().unwrap().permissions().readonly().not())
                .map(|e| format!("containers/{c}/{}", e.file_name().to_string_lossy()))
                .collect::<Vec<_>>()
        }))
        .collect();
    assert!(writable.len() > 30, "{writable:?}");

    let huge = "a".repeat(1 << 20);
    let catalogue: [(&str, &[u8]); 5] = [
        ("huge", huge.as_bytes()),
        ("NUL bytes", b"img\0 start"),
        ("not UTF-8", b"\xff\xfe start"),
        ("unknown verb", b"frobnicate --now"),
        ("traversal", b"../../../../etc/passwd"),
    ];
    // Each failed write leaves the file written as it was; each file's five leave its object's directory
    // as they were, and all of them the whole tree. (Reading the whole tree around every write, 800 times,
    // took most of the suite's time under emulation, in the VM guest: a FUSE round trip is slow there.)
    let mut tree_before = whole_tree(&b);
    for file in &writable {
        let object = file.rsplit_once('/').map_or("", |(dir, _)| dir).to_string();
        let mut before = object_tree(&b, &object);
        let own = |b: &Bocker| fs::read(b.path(file)).map_err(|e| e.kind());
        for (what, data) in catalogue {
            let own_before = own(&b);
            let result = fs::OpenOptions::new().write(true).open(b.path(file)).and_then(|mut f| {
                use std::io::Write;
                f.write_all(data)
            });
            let Err(e) = result else {
                // Words any command line may hold (`cmd`, `exec`): accepted, as they should be.
                assert!(
                    matches!(what, "unknown verb" | "traversal")
                        && (file.ends_with("/cmd") || file.ends_with("/entrypoint"))
                        || file.ends_with("/exec"),
                    "{file} accepted {what}"
                );
                tree_before = whole_tree(&b);
                before = object_tree(&b, &object);
                continue;
            };
            let errno = Bocker::errno(&e);
            let expected: &[i32] = match what {
                "huge" => &[libc::EFBIG],
                // stdin takes any bytes: refused here because these containers' stdin is not open.
                _ if file.ends_with("/stdin") => &[libc::EBADF, libc::EPIPE],
                "NUL bytes" | "not UTF-8" => &[libc::EINVAL],
                _ => &[libc::EINVAL, libc::ENOENT, libc::EBUSY, libc::ECONNREFUSED, libc::EPERM, libc::ESRCH],
            };
            assert!(expected.contains(&errno), "{file} <- {what}: {e}");
            let name_of = format!("{:?}", nix::errno::Errno::from_raw(errno));
            let errors = b.read("errors");
            assert!(
                errors.lines().any(|l| l.contains(&format!(" {file} {name_of} "))),
                "{file} <- {what}: not in errors"
            );
            if let Some(c) = file.strip_prefix("containers/").and_then(|r| r.split_once('/')).map(|(c, _)| c) {
                if c != "run" {
                    assert!(!b.read(&format!("containers/{c}/error")).is_empty(), "{file} <- {what}: no message");
                }
            }
            let moving = ["logs", "stdout", "stderr", "log_index", "error", "errors", "pulls", "wait"];
            if !moving.iter().any(|m| file.ends_with(&format!("/{m}"))) {
                assert_eq!(own(&b), own_before, "{file} <- {what} changed it");
            }
        }
        assert_eq!(object_tree(&b, &object), before, "{file}'s bad writes changed its object");
    }
    assert_eq!(whole_tree(&b), tree_before, "the bad writes changed something");

    // Wrong state: configuration of a running container, start of a running one, kill of a stopped one.
    for (file, value, errno) in [
        ("containers/busy/image", img.as_str(), libc::EBUSY),
        ("containers/busy/cmd", "true", libc::EBUSY),
        ("containers/busy/env", "A=1", libc::EBUSY),
        ("containers/busy/network", "none", libc::EBUSY),
        ("containers/busy/volumes-from", "idle", libc::EBUSY),
        ("containers/busy/privileged", "true", libc::EBUSY),
        ("containers/busy/ctl", "start", libc::EBUSY),
        ("containers/idle/ctl", "kill", libc::ESRCH),
        ("containers/idle/ctl", "unpause", libc::ESRCH),
        ("containers/busy/ctl", "unpause", libc::EBUSY),
        ("containers/idle/exec", "true", libc::ESRCH),
    ] {
        let before = whole_tree(&b);
        assert_eq!(Bocker::errno(&b.write(file, value).unwrap_err()), errno, "{file} <- {value}");
        assert_eq!(whole_tree(&b), before, "{file} <- {value} changed something");
    }

    // Names: hidden, leading dash, spaces, too long, in the wrong place.
    let before = whole_tree(&b);
    for name in [".hidden", "-dash", "a b", &"x".repeat(100)] {
        for dir in ["containers", "volumes"] {
            let e = fs::create_dir(b.path(&format!("{dir}/{name}"))).unwrap_err();
            assert_eq!(Bocker::errno(&e), libc::EINVAL, "{dir}/{name}");
        }
    }
    assert_eq!(Bocker::errno(&fs::create_dir(b.path("images/x")).unwrap_err()), libc::EPERM);
    assert_eq!(Bocker::errno(&fs::create_dir(b.path("containers/idle/x")).unwrap_err()), libc::EPERM);
    assert_eq!(whole_tree(&b), before);
}

#[test]
fn a_failed_start_leaves_no_address_behind() {
    // A start that fails changes nothing: not the status, and not `ip` either (an address is the container's
    // from its first start that succeeded until rm), whether the start failed on a forwarded port a host
    // process holds or on a command the image doesn't have.
    let b = Bocker::start("failed-start-ip");
    let img = b.import("");
    let held = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = held.local_addr().unwrap().port();
    b.configure("clash", &img, "true");
    b.write("containers/clash/ports", &format!("{port}:80")).unwrap();
    b.configure("nocmd", &img, "no-such-program");
    for (name, errno) in [("nocmd", libc::ENOENT), ("clash", libc::EADDRINUSE)] {
        let before = (snapshot(&b, name), b.read(&format!("containers/{name}/ip")));
        assert_eq!(errno_of(b.write(&format!("containers/{name}/ctl"), "start")), errno, "{name}");
        assert_eq!(snapshot(&b, name), before.0, "{name}");
        assert_eq!(b.read(&format!("containers/{name}/ip")), before.1, "a failed start of {name} took an address");
    }
    // The address the failed starts did not take is the next container's.
    drop(held);
    b.configure("next", &img, "sleep 1000");
    b.write("containers/next/ctl", "start").unwrap();
    assert_eq!(b.read("containers/next/ip"), format!("{}.2\n", b.subnet_prefix));
    b.write("containers/next/ctl", "kill").unwrap();
}
