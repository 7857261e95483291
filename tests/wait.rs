//! `containers/NAME/wait` and `execs/N/wait`: a read waits until the process has ended and gives its code,
//! at once when it is not running, EAGAIN when opened non-blocking; a stat and a preview never hang on it;
//! a reader killed while it waits (`timeout 1 cat wait`, SIGINT) returns at once and the daemon goes on.
//! `poll()` on an open `status` or `wait` wakes at the exit and not before. And the times `stat` shows: a
//! container's directory and `status` move with its status, `logs` with its output.

mod common;

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::{eventually, Bocker};

/// Runs `script` with python3 (its arguments after), and returns its stdout; fails on a failed script.
fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3").arg("-c").arg(script).args(args).output().expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "python: {text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

/// A read of `path` opened `O_NONBLOCK`, as a file manager's preview reads (`head -c 100`): its bytes, or
/// the errno's name; and how long it took.
const NONBLOCKING_READ: &str = r#"
import errno, os, sys, time
t = time.monotonic()
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
try:
    got = os.read(fd, 100).decode()
except OSError as e:
    got = errno.errorcode[e.errno]
print(repr(got), round(time.monotonic() - t, 3))
"#;

fn nonblocking_read(b: &Bocker, rel: &str) -> (String, f64) {
    let out = python(NONBLOCKING_READ, &[b.path(rel).to_str().unwrap()]);
    let (got, secs) = out.trim().rsplit_once(' ').unwrap();
    (got.to_string(), secs.parse().unwrap())
}

fn cat(b: &Bocker, rel: &str) -> (String, Duration) {
    let t = Instant::now();
    let out = Command::new("cat").arg(b.path(rel)).output().unwrap();
    assert!(out.status.success(), "cat {rel}: {}", String::from_utf8_lossy(&out.stderr));
    (String::from_utf8_lossy(&out.stdout).into_owned(), t.elapsed())
}

#[test]
fn cat_wait_gives_the_code_after_the_exit_and_not_before() {
    let b = Bocker::start("waitcat");
    let img = b.import("");
    b.configure("c", &img, "sh -c 'sleep 1; exit 3'");
    b.write("containers/c/ctl", "start").unwrap();
    let (code, took) = cat(&b, "containers/c/wait");
    assert_eq!(code, "3\n");
    assert!(took >= Duration::from_millis(700), "it waited for the exit: {took:?}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert_eq!(b.status("c"), "exited", "the answer came after the exit was shown");
    assert_eq!(b.read("containers/c/exit_code"), "3\n");

    // Not running: at once, as often as asked.
    let (code, took) = cat(&b, "containers/c/wait");
    assert_eq!(code, "3\n");
    assert!(took < Duration::from_secs(2), "{took:?}");
    // Never started: 0 at once, as docker wait answers for a created container.
    b.configure("fresh", &img, "true");
    assert_eq!(cat(&b, "containers/fresh/wait").0, "0\n");
    assert!(b.path("containers/nope/wait").metadata().is_err());
}

#[test]
fn a_preview_never_hangs_and_a_nonblocking_read_is_eagain_while_it_runs() {
    let b = Bocker::start("waitnb");
    let img = b.import("");
    b.configure("c", &img, "sleep 1000");
    b.write("containers/c/ctl", "start").unwrap();
    let t = Instant::now();
    let meta = b.path("containers/c/wait").metadata().unwrap();
    assert_eq!(meta.len(), 0, "size 0: a preview reads nothing");
    assert!(t.elapsed() < Duration::from_secs(2));
    let (got, secs) = nonblocking_read(&b, "containers/c/wait");
    assert_eq!(got, "'EAGAIN'");
    assert!(secs < 2.0, "{secs}");
    b.write("containers/c/ctl", "kill").unwrap();
    b.wait_status("c", "exited");
    // The positive control: once it has exited, the same read gives the code.
    let (got, secs) = nonblocking_read(&b, "containers/c/wait");
    assert_eq!(got, "'137\\n'");
    assert!(secs < 2.0, "{secs}");
}

#[test]
fn a_reader_killed_while_it_waits_returns_at_once_and_the_daemon_goes_on() {
    let b = Bocker::start("waitint");
    let img = b.import("");
    b.configure("c", &img, "sleep 1000");
    b.write("containers/c/ctl", "start").unwrap();
    let wait = b.path("containers/c/wait");

    let t = Instant::now();
    let out = Command::new("timeout").arg("1").arg("cat").arg(&wait).output().unwrap();
    let took = t.elapsed();
    assert_eq!(out.status.code(), Some(124), "timeout ended it: {out:?}");
    assert!(took < Duration::from_secs(4), "the kernel got its answer promptly: {took:?}");

    // SIGINT, as Ctrl-C sends it, to a reader that dies of it.
    let mut reader = Command::new("cat").arg(&wait).stdout(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(reader.try_wait().unwrap().is_none(), "it waits");
    let t = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(reader.id() as i32), nix::sys::signal::SIGINT).unwrap();
    let status = reader.wait().unwrap();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(!status.success());

    // A reader that handles the signal sees EINTR and may read again; the second read still waits.
    let handled = r#"
import os, signal, sys, threading, time
def handler(*_):
    raise InterruptedError()
signal.signal(signal.SIGUSR1, handler)
threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGUSR1)).start()
fd = os.open(sys.argv[1], os.O_RDONLY)
t = time.monotonic()
try:
    os.read(fd, 100)
    print("read")
except InterruptedError:
    print("EINTR", round(time.monotonic() - t, 1))
"#;
    let out = python(handled, &[wait.to_str().unwrap()]);
    assert!(out.starts_with("EINTR"), "{out}");

    // The daemon answers as before, and a reader still gets the code at the exit.
    assert_eq!(b.status("c"), "running");
    let reader = Command::new("cat").arg(&wait).stdout(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    b.write("containers/c/ctl", "kill").unwrap();
    let out = reader.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "137\n");
    assert!(b.daemon_log().contains("signalled: EINTR"), "the daemon saw the readers go");
}

#[test]
fn an_exec_has_a_wait_too_and_bocker_wait_prints_each_code() {
    let b = Bocker::start("waitexec");
    let img = b.import("");
    b.configure("c", &img, "sleep 1000");
    b.write("containers/c/ctl", "start").unwrap();
    let n = b.submit("containers/c/exec", "sh -c 'sleep 0.5; exit 4'").unwrap();
    let (code, took) = cat(&b, &format!("containers/c/execs/{n}/wait"));
    assert_eq!(code, "4\n");
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert_eq!(b.read(&format!("containers/c/execs/{n}/status")), "exited\n");

    b.configure("d", &img, "sh -c 'sleep 0.5; exit 5'");
    b.write("containers/d/ctl", "start").unwrap();
    let killer = {
        let path = b.path("containers/c/ctl");
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(800));
            std::fs::write(path, "kill").unwrap();
        })
    };
    let out = b.cli(&["wait", "d", "c", "nope"]);
    killer.join().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "5\n137\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "Error: No such container: nope\n");
    assert_eq!(out.status.code(), Some(1));
    let help = b.cli(&["wait", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("exit code"));
}

/// Opens `argv[1]` and reads it, then polls it: first with a timeout while it runs (nothing), then until
/// woken; prints what each poll gave, how long the second took, and what a read at 0 gives then.
const POLL: &str = r#"
import os, select, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | (os.O_NONBLOCK if sys.argv[2] == "nb" else 0))
try:
    first = os.read(fd, 100).decode()
except BlockingIOError:
    first = "EAGAIN"
p = select.poll()
p.register(fd, select.POLLIN | select.POLLPRI)
early = p.poll(300)
open(sys.argv[3], "w").close()
t = time.monotonic()
woken = p.poll(20000)
took = time.monotonic() - t
os.lseek(fd, 0, os.SEEK_SET)
print(repr(first), early, [bool(ev & select.POLLIN) for _, ev in woken], round(took, 2), repr(os.read(fd, 100).decode()))
"#;

/// Starts the POLL script on `rel`, waits until it polls past its first timeout, and returns it.
fn poller(b: &Bocker, rel: &str, nonblocking: bool) -> (std::process::Child, std::path::PathBuf) {
    let mark = b.dir.join(format!("polling-{}", rel.replace('/', "-")));
    let child = Command::new("python3")
        .arg("-c")
        .arg(POLL)
        .arg(b.path(rel))
        .arg(if nonblocking { "nb" } else { "b" })
        .arg(&mark)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, mark)
}

#[test]
fn poll_on_status_and_wait_wakes_at_the_exit_and_not_before() {
    let b = Bocker::start("waitpoll");
    let img = b.import("");
    b.configure("c", &img, "sleep 1000");
    b.write("containers/c/ctl", "start").unwrap();
    let (status, mark_s) = poller(&b, "containers/c/status", false);
    let (wait, mark_w) = poller(&b, "containers/c/wait", true);
    eventually(
        Duration::from_secs(20),
        || "the pollers to pass their first poll".into(),
        || mark_s.exists() && mark_w.exists(),
    );
    std::thread::sleep(Duration::from_millis(500));
    b.write("containers/c/ctl", "kill").unwrap();
    for (child, first) in [(status, "'running\\n'"), (wait, "'EAGAIN'")] {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        let (head, rest) = text.trim().split_once(" [] ").unwrap_or_else(|| panic!("a poll while it ran: {text}"));
        assert_eq!(head, first);
        let (woken, rest) = rest.split_once("] ").unwrap();
        assert_eq!(woken, "[True", "{text}");
        let (took, now) = rest.split_once(' ').unwrap();
        assert!(took.parse::<f64>().unwrap() >= 0.3, "woken by the exit, not before: {text}");
        assert!(now == "'exited\\n'" || now == "'137\\n'", "{text}");
    }
    // Read since: a poll waits for the next change (content as last read).
    let unchanged = r#"
import os, select, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.read(fd, 100)
p = select.poll(); p.register(fd, select.POLLIN)
print(p.poll(300))
"#;
    assert_eq!(python(unchanged, &[b.path("containers/c/status").to_str().unwrap()]).trim(), "[]");
    assert_eq!(python(unchanged, &[b.path("containers/c/wait").to_str().unwrap()]).trim(), "[]");
    // Files whose content moves without the engine's notices are always ready, as a regular file.
    let always = python(unchanged, &[b.path("containers/c/logs").to_str().unwrap()]);
    assert_ne!(always.trim(), "[]");

    // A poll of a file whose container goes away ends, with POLLHUP (after `removing`, read).
    let hangup = r#"
import os, select, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.read(fd, 100)
p = select.poll(); p.register(fd, select.POLLIN)
open(sys.argv[2], "w").close()
while True:
    ev = p.poll(20000)
    if not ev or ev[0][1] & select.POLLHUP:
        break
    os.lseek(fd, 0, os.SEEK_SET)
    os.read(fd, 100)  # removing: read it, then wait on
print(bool(ev))
"#;
    let mark = b.dir.join("polling-hangup");
    let child = Command::new("python3")
        .args(["-c", hangup])
        .arg(b.path("containers/c/status"))
        .arg(&mark)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(20), || "the poller".into(), || mark.exists());
    std::fs::remove_dir(b.path("containers/c")).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "True\n");
}

fn mtime(b: &Bocker, rel: &str) -> SystemTime {
    b.path(rel).metadata().unwrap().modified().unwrap()
}

#[test]
fn a_containers_times_move_with_its_status_and_its_output() {
    let b = Bocker::start("waittimes");
    let img = b.import("");
    let image_time = mtime(&b, &format!("images/{img}"));
    // `two` waits for the test to put /go in its rootfs: the test sees `one` alone however slow it is.
    b.configure("c", &img, "sh -c 'echo one; until [ -e /go ]; do sleep 0.05; done; echo two'");
    let made = mtime(&b, "containers/c");
    b.write("containers/c/labels", "a=b").unwrap();
    assert_eq!(mtime(&b, "containers/c"), made, "a setting is no change of its status");
    assert!(made >= image_time, "made after its image");
    assert_eq!(mtime(&b, "containers/c/status"), made);
    std::thread::sleep(Duration::from_millis(50));
    b.write("containers/c/ctl", "start").unwrap();
    let started = mtime(&b, "containers/c");
    assert!(started > made, "a start moves it at once: {started:?} {made:?}");
    assert_eq!(mtime(&b, "containers/c/status"), started);
    let newer = Command::new("find")
        .arg(b.path("containers"))
        .args(["-maxdepth", "1", "-newer"])
        .arg(b.path(&format!("images/{img}")))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&newer.stdout).contains("containers/c"), "find -newer sees it");

    eventually(Duration::from_secs(10), || b.read("containers/c/logs"), || b.read("containers/c/logs") == "one\n");
    let first = mtime(&b, "containers/c/logs");
    std::thread::sleep(Duration::from_millis(20));
    fs::write(b.path("containers/c/rootfs/go"), "").unwrap();
    b.wait_status("c", "exited");
    assert_eq!(b.read("containers/c/logs"), "one\ntwo\n");
    assert!(mtime(&b, "containers/c/logs") > first, "logs moves with its output");
    assert!(mtime(&b, "containers/c") > started, "and the directory with the exit");
    // An image's time is its creation, whatever happens since.
    assert_eq!(mtime(&b, &format!("images/{img}")), image_time);
    let ls = Command::new("ls").arg("-t").arg(b.path("containers")).output().unwrap();
    assert!(String::from_utf8_lossy(&ls.stdout).starts_with("c\n"), "ls -t: the container changed last");
}

#[test]
fn a_stopping_daemon_answers_its_waiting_readers_and_stops() {
    let mut b = Bocker::start("waitstop");
    let img = b.import("");
    b.configure("c", &img, "sleep 1000");
    b.write("containers/c/ctl", "start").unwrap();
    let reader = Command::new("cat").arg(b.path("containers/c/wait")).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let stopped = b.stop_daemon().expect("it ran");
    assert!(stopped.success(), "{stopped:?}");
    assert!(t.elapsed() < Duration::from_secs(10), "the waiting reader kept it: {:?}", t.elapsed());
    let out = reader.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not connected"), "{}", String::from_utf8_lossy(&out.stderr));
    // The container runs on, and the next daemon waits for it again.
    b.spawn_daemon();
    assert_eq!(b.status("c"), "running");
    let (got, _) = nonblocking_read(&b, "containers/c/wait");
    assert_eq!(got, "'EAGAIN'");
}
