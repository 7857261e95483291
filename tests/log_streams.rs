//! Logs you can take apart: `stdout` and `stderr` beside `logs` (a container's and an exec's), `log_index`
//! giving each chunk's time and stream, all kept consistent across rotations, a log from before indexes
//! still read; and `bocker logs` with `--tail`, `--since`, `-t` and `-f` keeping the streams apart.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use common::{eventually, Bocker, TailFollower, BIN};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `log_index` of `dir` parsed: (time, stream, offset, length); each line 80 bytes.
fn index(b: &Bocker, dir: &str) -> Vec<(SystemTime, String, u64, u64)> {
    let raw = b.read(&format!("{dir}/log_index"));
    assert_eq!(raw.len() % 80, 0, "whole 80-byte lines: {raw:?}");
    raw.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!((f.len(), f[2].len(), f[3].len()), (4, 20, 20), "{l:?}");
            let t = humantime::parse_rfc3339(f[0]).unwrap_or_else(|e| panic!("{l:?}: {e}"));
            (t, f[1].to_string(), f[2].parse().unwrap(), f[3].parse().unwrap())
        })
        .collect()
}

/// `bocker logs ARGS` with its stdout and stderr into one pipe, as a terminal shows them.
fn merged(b: &Bocker, args: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{BIN} logs {args} 2>&1"))
        .env("BOCKER_MOUNT", &b.mount)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stdout));
    text(&out.stdout)
}

/// A daemon whose logs rotate at `max_size` bytes and keep `max_files` segments.
fn start_with_log_limits(tag: &str, max_size: u64, max_files: u32) -> Bocker {
    let (size, files) = (max_size.to_string(), max_files.to_string());
    Bocker::start_with_env(tag, &[("BOCKER_LOG_MAX_SIZE", &size), ("BOCKER_LOG_MAX_FILES", &files)])
}

const ALTERNATE: &str = "for i in 1 2 3 4 5; do echo out $i; sleep 0.1; echo err $i >&2; sleep 0.1; done";

#[test]
fn stdout_and_stderr_apart_logs_both_in_order_and_bocker_logs_keeps_them_apart() {
    let b = Bocker::start("streams");
    let img = b.import("");
    let before = SystemTime::now();
    let id = b.run_to_exit(&format!("{img} sh -c '{ALTERNATE}'"));
    let after = SystemTime::now();
    let dir = format!("containers/{id}");
    let outs: String = (1..=5).map(|i| format!("out {i}\n")).collect();
    let errs: String = (1..=5).map(|i| format!("err {i}\n")).collect();
    let both: String = (1..=5).map(|i| format!("out {i}\nerr {i}\n")).collect();
    assert_eq!(b.read(&format!("{dir}/stdout")), outs);
    assert_eq!(b.read(&format!("{dir}/stderr")), errs);
    assert_eq!(b.read(&format!("{dir}/logs")), both, "logs stays both streams as written");
    for (name, len) in [("stdout", outs.len()), ("stderr", errs.len()), ("logs", both.len())] {
        let meta = fs::metadata(b.path(&format!("{dir}/{name}"))).unwrap();
        assert_eq!((meta.len(), meta.permissions().mode() & 0o777), (len as u64, 0o444), "{name}");
    }

    // log_index: a line per chunk, in order, naming its stream and its bytes in logs, timed within the run.
    let lines = index(&b, &dir);
    assert_eq!(lines.len(), 10, "{lines:?}");
    let logs = b.read(&format!("{dir}/logs"));
    let mut at = 0;
    for (i, (t, stream, offset, len)) in lines.iter().enumerate() {
        assert_eq!(*offset, at);
        let bytes = &logs[*offset as usize..(*offset + *len) as usize];
        let want = if i % 2 == 0 { ("stdout", "out ") } else { ("stderr", "err ") };
        assert_eq!(stream, want.0);
        assert!(bytes.starts_with(want.1), "{bytes:?}");
        assert!(*t >= before && *t <= after, "{t:?} within the run");
        at += len;
    }
    assert!(lines.windows(2).all(|w| w[0].0 <= w[1].0), "in time order");

    // bocker logs: the container's stdout on its stdout, stderr on its stderr, and in order when merged.
    let out = b.cli(&["logs", &id]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!((text(&out.stdout), text(&out.stderr)), (outs.clone(), errs.clone()));
    assert_eq!(merged(&b, &id), both);
    // --tail N: the last N lines of the two together.
    let tail = b.cli(&["logs", "--tail", "3", &id]);
    assert_eq!((text(&tail.stdout), text(&tail.stderr)), ("out 5\n".into(), "err 4\nerr 5\n".into()));
    let tail = b.cli(&["logs", "--tail", "2", &id]);
    assert_eq!((text(&tail.stdout), text(&tail.stderr)), ("out 5\n".into(), "err 5\n".into()));
    assert_eq!(merged(&b, &format!("-n 1 {id}")), "err 5\n");
    assert_eq!(merged(&b, &format!("--tail 0 {id}")), "");
    assert_eq!(merged(&b, &format!("--tail 100 {id}")), both);
    assert_eq!(merged(&b, &format!("--tail all {id}")), both);
    // -t: each line after its time, Docker's format (RFC 3339, UTC, 9 digits), within the run.
    let stamped = merged(&b, &format!("-t {id}"));
    assert_eq!(stamped.lines().count(), 10);
    for (line, want) in stamped.lines().zip(both.lines()) {
        let (time, rest) = line.split_at(30);
        assert!(time.ends_with('Z') && time.as_bytes()[19] == b'.', "{line:?}");
        let t = humantime::parse_rfc3339(time).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert!(t >= before && t <= after, "{line:?} within the run");
        assert_eq!(rest, format!(" {want}"));
    }
    let stamped = b.cli(&["logs", "--timestamps", "--tail", "1", &id]);
    assert!(text(&stamped.stderr).ends_with("Z err 5\n") && stamped.stdout.is_empty(), "{stamped:?}");
}

#[test]
fn since_shows_only_what_came_after_and_follow_ends_with_the_container() {
    let b = Bocker::start("since");
    let img = b.import("");
    let start = SystemTime::now();
    b.configure("talk", &img, "sh -c 'echo a1; echo a2 >&2; sleep 3; echo b1; echo b2 >&2; printf b3'");
    b.write("containers/talk/ctl", "start").unwrap();
    // -f from the start: follows until the container has exited, each stream to its own.
    let follow = Command::new(BIN)
        .args(["logs", "-f", "talk"])
        .env("BOCKER_MOUNT", &b.mount)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(20), || "no first burst".into(), || b.read("containers/talk/logs").contains("a2"));
    std::thread::sleep(Duration::from_millis(700));
    let between = SystemTime::now();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(b.status("talk"), "running", "the second burst is still to come");
    b.wait_status("talk", "exited");
    let followed = follow.wait_with_output().unwrap();
    assert_eq!(followed.status.code(), Some(0));
    assert_eq!(text(&followed.stdout), "a1\nb1\nb3", "-f printed all of stdout and returned at the exit");
    assert_eq!(text(&followed.stderr), "a2\nb2\n");

    let rfc = humantime::format_rfc3339_nanos(between).to_string();
    let secs = between.duration_since(SystemTime::UNIX_EPOCH).unwrap();
    let unix = format!("{}.{:09}", secs.as_secs(), secs.subsec_nanos());
    let ago = format!("{}ms", SystemTime::now().duration_since(between).unwrap().as_millis());
    for since in [rfc.as_str(), unix.as_str(), ago.as_str()] {
        let out = b.cli(&["logs", "--since", since, "talk"]);
        assert_eq!(out.status.code(), Some(0), "{since}: {}", text(&out.stderr));
        assert_eq!((text(&out.stdout), text(&out.stderr)), ("b1\nb3".into(), "b2\n".into()), "--since {since}");
    }
    // The positive control: a time before both bursts shows both.
    let early = humantime::format_rfc3339_seconds(start - Duration::from_secs(2)).to_string();
    for since in [early.as_str(), "1h", "0"] {
        let out = b.cli(&["logs", "--since", since, "talk"]);
        assert_eq!((text(&out.stdout), text(&out.stderr)), ("a1\nb1\nb3".into(), "a2\nb2\n".into()), "{since}");
    }
    // With --tail, the last lines of those since.
    assert_eq!(merged(&b, &format!("--since {rfc} --tail 2 talk")), "b2\nb3");
    assert_eq!(merged(&b, "--tail 1 talk"), "b3", "a line without its newline is a line");

    // Bad flags: a clear message, and the CLI's usage error code.
    for (args, says) in [
        (vec!["logs", "--since", "soon", "talk"], "is not a time"),
        (vec!["logs", "--tail", "many", "talk"], "is not a number of lines"),
        (vec!["logs", "--bogus", "talk"], "--bogus"),
    ] {
        let out = b.cli(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(text(&out.stderr).contains(says), "{args:?}: {}", text(&out.stderr));
        assert!(out.stdout.is_empty());
    }
    let none = b.cli(&["logs", "nope"]);
    assert_eq!((none.status.code(), text(&none.stdout)), (Some(1), "No container named 'nope' exists\n".into()));
}

#[test]
fn an_execs_stdout_and_stderr_are_apart_too() {
    let b = Bocker::start("exec-streams");
    let img = b.import("");
    b.configure("box", &img, "sleep 1000");
    b.write("containers/box/ctl", "start").unwrap();
    let n = b.submit("containers/box/exec", "sh -c 'echo eo1; sleep 0.1; echo ee1 >&2; sleep 0.1; echo eo2'").unwrap();
    b.wait_exec("box", &n);
    let dir = format!("containers/box/execs/{n}");
    assert_eq!(b.read(&format!("{dir}/stdout")), "eo1\neo2\n");
    assert_eq!(b.read(&format!("{dir}/stderr")), "ee1\n");
    assert_eq!(b.read(&format!("{dir}/logs")), "eo1\nee1\neo2\n");
    let streams: Vec<String> = index(&b, &dir).into_iter().map(|l| l.1).collect();
    assert_eq!(streams, ["stdout", "stderr", "stdout"]);
    let listing: Vec<String> =
        fs::read_dir(b.path(&dir)).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    for f in ["logs", "stdout", "stderr", "log_index"] {
        assert!(listing.iter().any(|l| l == f), "{f} in {listing:?}");
    }
    assert_eq!(b.read("containers/box/stdout"), "", "the container's own are apart");
    b.write("containers/box/ctl", "kill").unwrap();
    b.wait_status("box", "exited");
}

/// The directory of segments behind `containers/NAME/logs`.
fn segment_dir(b: &Bocker, name: &str) -> PathBuf {
    b.root.join("state/containers").join(name).join("log")
}

/// Asserts `lines` are `PREFIX N` for consecutive N ending at `last`; returns the first N.
fn consecutive(lines: &str, prefix: &str, last: u32) -> u32 {
    let numbers: Vec<u32> = lines
        .lines()
        .map(|l| l.strip_prefix(prefix).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{prefix}: {l:?}")))
        .collect();
    let first = numbers[0];
    assert_eq!(numbers, (first..=last).collect::<Vec<_>>(), "consecutive {prefix} lines");
    first
}

#[test]
fn rotation_keeps_the_index_and_the_views_consistent_and_tail_f_follows_a_stream() {
    let b = start_with_log_limits("streams-rotate", 16 * 1024, 3);
    let img = b.import("");
    let last = 6000;
    b.configure(
        "talker",
        &img,
        &format!(
            "sh -c 'i=0; while [ $i -lt {last} ]; do i=$((i+1)); echo out $i; echo err $i >&2; \
             [ $((i % 100)) = 0 ] && sleep 0.05; done; true'"
        ),
    );
    // tail -f on stderr from before the start, polling, across rotations.
    let mut tail = TailFollower::start(&b.path("containers/talker/stderr"), &format!("err {last}"));
    b.write("containers/talker/ctl", "start").unwrap();
    b.wait_status("talker", "exited");
    let (seen, _) = tail.lines();
    let want: Vec<String> = (1..=last).map(|i| format!("err {i}")).collect();
    assert!(
        seen == want,
        "tail -f stderr saw {} lines; first wrong: {:?}",
        seen.len(),
        seen.iter().zip(&want).find(|(a, b)| a != b)
    );

    // It rotated, and every segment has its index, both 0600, within the bound together.
    let dir = segment_dir(&b, "talker");
    let mut names: Vec<String> =
        fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name().into_string().unwrap()).collect();
    names.sort();
    let logs: Vec<&String> = names.iter().filter(|n| n.ends_with(".log")).collect();
    assert!(logs.len() <= 3 && !names.iter().any(|n| n.starts_with("00000000000000000000")), "{names:?}");
    for log in &logs {
        let idx = log.replace(".log", ".idx");
        assert!(names.contains(&idx), "{idx} beside {log}: {names:?}");
        let size = |n: &str| fs::metadata(dir.join(n)).unwrap().len();
        assert!(size(log) + size(&idx) <= 16 * 1024, "{log}");
        assert_eq!(fs::metadata(dir.join(&idx)).unwrap().permissions().mode() & 0o7777, 0o600);
    }
    assert_eq!(names.len(), 2 * logs.len(), "nothing else: {names:?}");

    // The views: exactly the lines of each stream that logs keeps.
    let all = b.read("containers/talker/logs");
    let out = b.read("containers/talker/stdout");
    let err = b.read("containers/talker/stderr");
    let of = |p: &str| all.lines().filter(|l| l.starts_with(p)).map(|l| format!("{l}\n")).collect::<String>();
    assert_eq!(out, of("out "), "stdout after rotations = exactly the stdout lines kept");
    assert_eq!(err, of("err "));
    assert_eq!(out.len() + err.len(), all.len());
    assert!(consecutive(&out, "out ", last) > 1 && consecutive(&err, "err ", last) > 1);
    // log_index covers logs exactly, chunk after chunk, each of one stream.
    let lines = index(&b, "containers/talker");
    let base = lines[0].2;
    let mut at = base;
    for (_, stream, offset, len) in &lines {
        assert_eq!(*offset, at);
        let bytes = &all[(offset - base) as usize..(offset - base + len) as usize];
        let prefix = if stream == "stdout" { "out " } else { "err " };
        assert!(bytes.lines().all(|l| l.starts_with(prefix)), "{stream}: {bytes:?}");
        at += len;
    }
    assert_eq!(at - base, all.len() as u64);
    // And bocker logs gives each stream whole.
    let cli = b.cli(&["logs", "talker"]);
    assert_eq!((text(&cli.stdout), text(&cli.stderr)), (out, err.clone()));
    // --tail: the last lines of logs, each on its stream.
    let tail = b.cli(&["logs", "--tail", "4", "talker"]);
    let four: Vec<&str> = all.lines().rev().take(4).collect();
    let four: String = four.iter().rev().map(|l| format!("{l}\n")).collect();
    assert_eq!(text(&tail.stdout) + &text(&tail.stderr), of_pairs(&four));
}

/// The stdout lines of `s`, then its stderr lines: what `bocker logs` prints on each, joined.
fn of_pairs(s: &str) -> String {
    let pick = |p: &str| s.lines().filter(|l| l.starts_with(p)).map(|l| format!("{l}\n")).collect::<String>();
    pick("out ") + &pick("err ")
}

#[test]
fn a_log_from_before_indexes_reads_as_stdout() {
    let b = Bocker::start("streams-legacy");
    let img = b.import("");
    let id = b.run_to_exit(&format!("{img} sh -c 'echo one; echo two >&2; echo three'"));
    // As a daemon before indexes left it: segments without `.idx`.
    let dir = segment_dir(&b, &id);
    for e in fs::read_dir(&dir).unwrap().flatten() {
        if e.file_name().to_string_lossy().ends_with(".idx") {
            fs::remove_file(e.path()).unwrap();
        }
    }
    let c = format!("containers/{id}");
    let logs = b.read(&format!("{c}/logs"));
    assert_eq!(logs.lines().count(), 3);
    assert_eq!(b.read(&format!("{c}/stdout")), logs, "all of it counts as stdout");
    assert_eq!(b.read(&format!("{c}/stderr")), "");
    let lines = index(&b, &c);
    assert_eq!(lines.len(), 1, "one chunk per segment: {lines:?}");
    assert_eq!((lines[0].1.as_str(), lines[0].2, lines[0].3), ("stdout", 0, logs.len() as u64));
    let cli = b.cli(&["logs", "-t", &id]);
    assert_eq!(text(&cli.stdout).lines().count(), 3, "{}", text(&cli.stdout));
    assert!(cli.stderr.is_empty());
    // Started again: the writer gives the old segment an index that says the same, and goes on apart.
    b.write(&format!("{c}/cmd"), "sh -c 'echo four >&2'").unwrap();
    b.write(&format!("{c}/ctl"), "start").unwrap();
    b.wait_status(&id, "exited");
    assert_eq!(b.read(&format!("{c}/stdout")), logs);
    assert_eq!(b.read(&format!("{c}/stderr")), "four\n");
    assert_eq!(index(&b, &c).len(), 2);
}

#[test]
fn a_terminals_output_is_all_stdout() {
    let b = Bocker::start("streams-tty");
    let img = b.import("");
    b.configure("term", &img, "sh -c 'echo to-out; echo to-err >&2; tty'");
    b.write("containers/term/tty", "true").unwrap();
    b.write("containers/term/ctl", "start").unwrap();
    b.wait_status("term", "exited");
    let logs = b.read("containers/term/logs");
    assert!(logs.contains("to-out") && logs.contains("to-err") && logs.contains("/dev/pts/"), "{logs:?}");
    assert_eq!(b.read("containers/term/stdout"), logs, "one output, the terminal's: stdout");
    assert_eq!(b.read("containers/term/stderr"), "");
    assert!(index(&b, "containers/term").iter().all(|l| l.1 == "stdout"));
    let cli = b.cli(&["logs", "term"]);
    assert_eq!((text(&cli.stdout), text(&cli.stderr)), (logs, String::new()));
}
