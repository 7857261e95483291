//! Containers' and execs' output: stdout and stderr are pipes the monitor copies, never a host file (a
//! container's chmod of its fds reaches no host file), logs are bounded by `--log-max-size` x
//! `--log-max-files`, `logs` shows what is kept from a line boundary, a real `tail -f` follows it across
//! rotations, and a daemon SIGKILL while a container writes loses no byte.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{eventually, Bocker, TailFollower};

const KIB: u64 = 1024;

/// A daemon whose logs rotate at `max_size` bytes and keep `max_files` segments (the options' env forms,
/// given to a restarted daemon, as the harness starts one with its defaults).
fn start_with_log_limits(tag: &str, max_size: u64, max_files: u32) -> Bocker {
    let (size, files) = (max_size.to_string(), max_files.to_string());
    Bocker::start_with_env(tag, &[("BOCKER_LOG_MAX_SIZE", &size), ("BOCKER_LOG_MAX_FILES", &files)])
}

/// The directory of segments behind `containers/NAME/logs` (or an exec's, with `exec`).
fn segment_dir(b: &Bocker, name: &str, exec: Option<u32>) -> PathBuf {
    let dir = b.root.join("state/containers").join(name);
    match exec {
        Some(n) => dir.join("execs").join(n.to_string()).join("log"),
        None => dir.join("log"),
    }
}

/// The segments on disk, oldest first: (logical start, size, mode). Their indexes (`NNN.idx`) are not
/// counted.
fn segments(dir: &Path) -> Vec<(u64, u64, u32)> {
    let mut v: Vec<(u64, u64, u32)> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        // The segments only: not their indexes, nor an index being made (renamed into place as a whole).
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| {
            let name = e.file_name().into_string().unwrap();
            let start = name.strip_suffix(".log").and_then(|d| d.parse().ok()).unwrap_or_else(|| panic!("{name}"));
            let m = e.metadata().unwrap();
            (start, m.len(), m.permissions().mode())
        })
        .collect();
    v.sort();
    v
}

/// Every file under `dir` (not following links, not crossing into /proc) with a set-uid or set-gid bit.
fn set_id_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let Ok(m) = fs::symlink_metadata(e.path()) else { continue };
        if m.is_dir() {
            set_id_files(&e.path(), found);
        } else if m.permissions().mode() & 0o6000 != 0 {
            found.push(e.path());
        }
    }
}

/// Asserts that `logs` holds a consecutive run of the numbered lines `prefix N` ending at `last`, starting
/// at a whole line; returns the first number kept.
fn assert_tail_of_numbered(logs: &str, prefix: &str, last: u32) -> u32 {
    assert!(logs.ends_with(&format!("{prefix}{last}\n")), "logs end with the last line: ...{:?}", tail(logs));
    let numbers: Vec<u32> = logs
        .lines()
        .map(|l| {
            l.strip_prefix(prefix)
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("not a whole numbered line: {l:?} (logs begin {:?})", &logs[..40]))
        })
        .collect();
    let first = numbers[0];
    assert_eq!(numbers, (first..=last).collect::<Vec<_>>(), "a consecutive run of lines");
    first
}

fn tail(s: &str) -> &str {
    &s[s.len().saturating_sub(60)..]
}

#[test]
fn a_chmod_of_the_containers_stdout_and_stderr_reaches_no_host_file() {
    let b = Bocker::start("logs-chmod");
    let img = b.import("");
    // The attack of the finding, on both fds, from the container's pid 1 and from an exec; the positive
    // control: the same chmod of a file of the container's own rootfs works.
    // fd 0 only to its own mode: were it still the host's /dev/null, a harmless change.
    let attack = "chmod 4755 /proc/self/fd/1 /proc/self/fd/2; chmod 2755 /proc/self/fd/1; chmod 666 /proc/self/fd/0";
    b.configure(
        "box",
        &img,
        &format!("sh -c '{attack}; touch /owned; chmod 4755 /owned; ls -l /owned; echo done; sleep 1000'"),
    );
    let logs_mode = || fs::metadata(b.path("containers/box/logs")).unwrap().permissions().mode();
    let before = logs_mode();
    let null_before = fs::metadata("/dev/null").unwrap();
    b.write("containers/box/ctl", "start").unwrap();
    eventually(
        Duration::from_secs(20),
        || b.read("containers/box/logs"),
        || b.read("containers/box/logs").contains("done"),
    );
    let n = b.submit("containers/box/exec", &format!("sh -c '{attack}; echo exec done'")).unwrap();
    b.wait_exec("box", &n);
    assert!(b.read("containers/box/execs/1/logs").contains("exec done"));
    b.write("containers/box/ctl", "kill").unwrap();
    b.wait_status("box", "exited");

    let logs = b.read("containers/box/logs");
    assert!(logs.contains("-rwsr-xr-x"), "the positive control: chmod 4755 works inside: {logs}");
    let rootfs = fs::read_link(b.path("containers/box/rootfs")).unwrap();
    let mut found = Vec::new();
    set_id_files(&b.root, &mut found);
    assert_eq!(found, [rootfs.join("owned")], "the only set-id file under the daemon's root is the container's own");
    assert_eq!(logs_mode(), before, "the logs file keeps its mode");
    let null_after = fs::metadata("/dev/null").unwrap();
    assert_eq!(
        (null_after.ctime(), null_after.ctime_nsec()),
        (null_before.ctime(), null_before.ctime_nsec()),
        "the host's /dev/null was not chmod'ed through fd 0"
    );
    for dir in [segment_dir(&b, "box", None), segment_dir(&b, "box", Some(1))] {
        assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o7777, 0o700, "{}", dir.display());
        for (_, _, mode) in segments(&dir) {
            assert_eq!(mode & 0o7777, 0o600, "a segment of {} keeps its mode", dir.display());
        }
    }
}

#[test]
fn stdin_stdout_and_stderr_are_pipes_and_both_outputs_reach_logs() {
    let b = Bocker::start("logs-pipes");
    let img = b.import("");
    // fd 3, a file of the container's own, is the positive control: the listing shows where fds lead.
    let probe = "ls -l /proc/self/fd/ 3</etc/hostname; echo to-stdout; echo to-stderr >&2";
    // Whoever sees the container exited sees its output, from both streams.
    let id = b.run_to_exit(&format!("{img} sh -c '{probe}'"));
    let logs = b.read(&format!("containers/{id}/logs"));
    for line in [" 3 -> /etc/hostname", " 0 -> pipe:[", " 1 -> pipe:[", " 2 -> pipe:["] {
        assert!(logs.contains(line), "{line:?} in:\n{logs}");
    }
    assert!(logs.contains("to-stdout\n") && logs.contains("to-stderr\n"), "{logs}");

    // The same for an exec.
    b.configure("box", &img, "sleep 1000");
    b.write("containers/box/ctl", "start").unwrap();
    let n = b.submit("containers/box/exec", &format!("sh -c '{probe}'")).unwrap();
    b.wait_exec("box", &n);
    let logs = b.read(&format!("containers/box/execs/{n}/logs"));
    for line in [" 3 -> /etc/hostname", " 0 -> pipe:[", " 1 -> pipe:[", " 2 -> pipe:[", "to-stdout", "to-stderr"] {
        assert!(logs.contains(line), "{line:?} in the exec's:\n{logs}");
    }
    b.write("containers/box/ctl", "kill").unwrap();
    b.wait_status("box", "exited");
}

#[test]
fn a_chatty_container_keeps_at_most_max_size_times_max_files() {
    let (max_size, max_files) = (16 * KIB, 3u32);
    let b = start_with_log_limits("logs-bound", max_size, max_files);
    let img = b.import("");
    // About 390 KiB, eight times what is kept, in seq's 4 KiB writes that cut lines anywhere.
    let id = b.run_to_exit(&format!("{img} sh -c 'seq 1 70000 | sed s/^/n/'"));
    let dir = segment_dir(&b, &id, None);
    let segs = segments(&dir);
    assert!(segs.len() <= max_files as usize, "{segs:?}");
    assert!(segs.iter().all(|(_, size, _)| *size <= max_size), "{segs:?}");
    let on_disk: u64 = segs.iter().map(|(_, size, _)| size).sum();
    assert!(on_disk <= max_size * u64::from(max_files), "{on_disk} bytes kept");
    assert!(segs[0].0 > 0, "old segments were deleted: {segs:?}");

    let logs = b.read(&format!("containers/{id}/logs"));
    assert_eq!(logs.len() as u64, on_disk, "logs shows what is kept");
    let first = assert_tail_of_numbered(&logs, "n", 70000);
    assert!(first > 1);
    // The size `ls -l` shows is what `cat` reads; the positive control of the bound: most of a segment each.
    assert_eq!(fs::metadata(b.path(&format!("containers/{id}/logs"))).unwrap().len(), on_disk);
    assert!(on_disk > max_size * u64::from(max_files - 1), "{on_disk} bytes: the segments are full");
}

#[test]
fn an_execs_output_is_bounded_the_same_way() {
    let (max_size, max_files) = (8 * KIB, 2u32);
    let b = start_with_log_limits("logs-exec-bound", max_size, max_files);
    let img = b.import("");
    b.configure("box", &img, "sleep 1000");
    b.write("containers/box/ctl", "start").unwrap();
    let n = b.submit("containers/box/exec", "sh -c 'seq 1 30000 | sed s/^/e/ >&2'").unwrap();
    b.wait_exec("box", &n);
    let segs = segments(&segment_dir(&b, "box", Some(n.parse().unwrap())));
    assert!(segs.len() <= max_files as usize && segs.iter().all(|(_, size, _)| *size <= max_size), "{segs:?}");
    assert!(segs[0].0 > 0, "old segments were deleted: {segs:?}");
    let logs = b.read(&format!("containers/box/execs/{n}/logs"));
    assert_eq!(logs.len() as u64, segs.iter().map(|(_, size, _)| size).sum::<u64>());
    assert!(assert_tail_of_numbered(&logs, "e", 30000) > 1);
    assert_eq!(b.read("containers/box/logs"), "", "the container's own log is apart");
    b.write("containers/box/ctl", "kill").unwrap();
    b.wait_status("box", "exited");
}

/// Kills the process this test started, by pid, when dropped (also on failure).
#[test]
fn tail_f_follows_logs_across_rotations() {
    let (max_size, max_files) = (16 * KIB, 4u32);
    let b = start_with_log_limits("logs-tail", max_size, max_files);
    let img = b.import("");
    let last = 16000;
    b.configure(
        "talker",
        &img,
        &format!(
            "sh -c 'i=0; while [ $i -lt {last} ]; do i=$((i+1)); echo line $i; \
             [ $((i % 200)) = 0 ] && sleep 0.05; done; true'"
        ),
    );
    // GNU tail, started before there is any output.
    let mut tail = TailFollower::start(&b.path("containers/talker/logs"), &format!("line {last}"));
    b.write("containers/talker/ctl", "start").unwrap();
    b.wait_status("talker", "exited");
    let (seen, stderr) = tail.lines();

    let want: Vec<String> = (1..=last).map(|i| format!("line {i}")).collect();
    assert!(
        seen == want,
        "tail saw {} lines, first wrong one: {:?}; stderr: {stderr}",
        seen.len(),
        seen.iter().zip(&want).find(|(a, b)| a != b)
    );
    assert!(!stderr.contains("truncated"), "{stderr}");
    // It followed across rotations: old segments went while it read, and the newest began past three of them.
    let segs = segments(&segment_dir(&b, "talker", None));
    assert!(segs[0].0 > 0, "segments were deleted while tail followed: {segs:?}");
    assert!(segs.last().unwrap().0 > 3 * max_size, "at least three rotations: {segs:?}");
}

#[test]
fn a_daemon_sigkill_while_a_container_writes_loses_no_byte() {
    let b0 = start_with_log_limits("logs-crash", 16 * KIB, 1000);
    let mut b = b0;
    let img = b.import("");
    // It writes until the test says stop (a file in its root), so it is still writing across the crash
    // however fast or slow the machine is; then it says how many it wrote.
    let id = b
        .submit(
            "containers/run",
            &format!(
                "{img} sh -c 'i=0; while [ ! -e /stop ]; do i=$((i+1)); echo out $i; echo err $i >&2; done; echo last $i; exit 7'"
            ),
        )
        .unwrap();
    // Killed while the container writes: its log is still growing.
    eventually(
        Duration::from_secs(20),
        || "no output".into(),
        || b.read(&format!("containers/{id}/logs")).len() > 1000,
    );
    b.crash_daemon();
    let dir = segment_dir(&b, &id, None);
    let grown = || segments(&dir).iter().map(|(start, size, _)| start + size).max().unwrap_or(0);
    let at_crash = grown();
    eventually(Duration::from_secs(30), || "the monitor stopped writing".into(), || grown() > at_crash);

    eventually(
        Duration::from_secs(30),
        || "no rotations while the daemon was down".into(),
        || segments(&dir).len() > 10,
    );
    fs::write(b.root.join(format!("store/containers/{id}/stop")), "").unwrap();
    b.spawn_daemon();
    b.wait_status(&id, "exited");
    assert_eq!(b.read(&format!("containers/{id}/exit_code")), "7\n");
    let logs = b.read(&format!("containers/{id}/logs"));
    let last: u32 = logs
        .lines()
        .find_map(|l| l.strip_prefix("last "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no last line in {} bytes of logs", logs.len()));
    for stream in ["out ", "err "] {
        let lines: Vec<&str> = logs.lines().filter(|l| l.starts_with(stream)).collect();
        let want: Vec<String> = (1..=last).map(|i| format!("{stream}{i}")).collect();
        assert!(lines == want, "{stream}: {} of {last} lines, in order", lines.len());
    }
    assert_eq!(logs.lines().count(), 2 * last as usize + 1, "nothing else and nothing twice");
    assert!(segments(&dir).len() > 10, "it rotated across the crash");
}

#[test]
fn bocker_run_prints_every_line_across_rotations() {
    // 120 KB at some 20 KB/s into 6 segments of 16 KiB: the oldest go while it runs, and the CLI may fall
    // up to 80 KB (some 4 s on a loaded machine) behind before a line it has not printed is gone.
    let (max_size, max_files) = (16 * KIB, 6u32);
    let b = start_with_log_limits("logs-run", max_size, max_files);
    let img = b.import("");
    let last = 12000;
    let cmd = format!(
        "i=0; while [ $i -lt {last} ]; do i=$((i+1)); echo line $i; [ $((i % 100)) = 0 ] && sleep 0.05; done; exit 3"
    );
    let out = b.cli(&["run", &img, &cmd]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let want: String = (1..=last).map(|i| format!("line {i}\n")).collect();
    assert!(
        String::from_utf8_lossy(&out.stdout) == want,
        "bocker run printed {} bytes of {}",
        out.stdout.len(),
        want.len()
    );
    let segs: Vec<_> = fs::read_dir(b.root.join("state/containers"))
        .unwrap()
        .flatten()
        .map(|c| segments(&c.path().join("log")))
        .collect();
    assert!(segs.iter().any(|s| s[0].0 > 0), "it rotated under bocker run: {segs:?}");
}

#[test]
fn output_keeps_its_order_across_stdout_and_stderr() {
    let b = Bocker::start("logs-order");
    let img = b.import("");
    // Back to back, once each way: the monitor reads the pipes in the order they were written to.
    for (script, want) in [
        ("echo first >&2; echo second", "first\nsecond\n"),
        ("echo first; echo second >&2", "first\nsecond\n"),
        ("echo one; echo two >&2; sleep 1; echo three >&2; echo four", "one\ntwo\nthree\nfour\n"),
    ] {
        let id = b.run_to_exit(&format!("{img} sh -c '{script}'"));
        assert_eq!(b.read(&format!("containers/{id}/logs")), want, "{script}");
    }
}

#[test]
fn a_reader_opened_before_a_rotation_keeps_its_offsets_and_a_new_one_sees_what_is_kept() {
    let (max_size, max_files) = (16 * KIB, 3u32);
    let b = start_with_log_limits("logs-readers", max_size, max_files);
    let img = b.import("");
    b.configure("talker", &img, "sh -c 'seq 1 40000 | sed s/^/n/'");
    let path = b.path("containers/talker/logs");
    // Opened while the log is empty: its offset 0 is the container's first byte.
    let old = fs::File::open(&path).unwrap();
    b.write("containers/talker/ctl", "start").unwrap();
    b.wait_status("talker", "exited");
    let written: u64 = (1..=40000u32).map(|i| format!("n{i}\n").len() as u64).sum();
    let segs = segments(&segment_dir(&b, "talker", None));
    let kept: u64 = segs.iter().map(|(_, size, _)| size).sum();
    assert!(segs[0].0 > 0, "{segs:?}");

    // The old reader: its size counts from its base, and what was rotated away is ENODATA.
    assert_eq!(old.metadata().unwrap().len(), written);
    let mut buf = [0u8; 16];
    let e = std::os::unix::fs::FileExt::read_at(&old, &mut buf, 0).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENODATA));
    let n = std::os::unix::fs::FileExt::read_at(&old, &mut buf, written - 7).unwrap();
    assert_eq!(&buf[..n], b"n40000\n", "its offsets still lead to the same bytes");

    // A new reader meanwhile: `cat` and `tail` see what is kept, and its end through lseek(SEEK_END).
    let logs = b.read("containers/talker/logs");
    assert_eq!(logs.len() as u64, kept);
    assert_tail_of_numbered(&logs, "n", 40000);
    let out = Command::new("tail").args(["-n", "2"]).arg(&path).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "n39999\nn40000\n", "{}", String::from_utf8_lossy(&out.stderr));
    drop(old);
    // The kernel sends the close's release to the daemon after close(2) returns: wait for it.
    common::eventually(
        std::time::Duration::from_secs(10),
        || format!("with no reader open, the size is what is kept: {}", fs::metadata(&path).unwrap().len()),
        || fs::metadata(&path).unwrap().len() == kept,
    );
    let out = Command::new("tail").args(["-n", "2"]).arg(&path).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "n39999\nn40000\n");
}
