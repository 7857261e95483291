//! The monitor's side of interactive use, driven as a client would through the tree's `attach` symlink
//! (the attach protocol of src/attach.rs) and through `stdin` and `ctl`: a terminal made in the
//! container's devpts, its size, piped stdin, closing it, an exec with a terminal, and a session that a
//! daemon crash leaves untouched. The command line's side, on real terminals, is tests/interactive.rs.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use bockerfs::attach::{Connection, Message, REPLAY, WANT_OUTPUT};
use common::{eventually, Bocker};

/// Reads output from `conn` until `pred` holds for all of it so far (or the exit comes); what was read,
/// and the exit code if it came.
fn read_until(conn: &Connection, pred: impl Fn(&str) -> bool) -> (String, Option<i32>) {
    conn.set_timeout(Duration::from_secs(20)).expect("timeout");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let message = match conn.recv() {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("recv: {e}"),
        };
        match message {
            Some(Message::Stdout(b) | Message::Stderr(b)) => seen.extend(b),
            Some(Message::Exit(code)) => return (String::from_utf8_lossy(&seen).into_owned(), Some(code)),
            Some(_) => {}
            None => break,
        }
        if pred(&String::from_utf8_lossy(&seen)) {
            break;
        }
    }
    (String::from_utf8_lossy(&seen).into_owned(), None)
}

fn attach(b: &Bocker, rel: &str, flags: u8) -> Connection {
    Connection::connect(&b.path(rel), flags).unwrap_or_else(|e| panic!("connect {rel}: {e}"))
}

fn typed(conn: &Connection, text: &str) {
    conn.send_stdin(text.as_bytes()).expect("send");
}

fn start_with(b: &Bocker, name: &str, img: &str, cmd: &str, files: &[(&str, &str)]) {
    b.configure(name, img, cmd);
    for (file, value) in files {
        b.write(&format!("containers/{name}/{file}"), value).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    b.write(&format!("containers/{name}/ctl"), "start").expect("start");
}

#[test]
fn a_terminal_of_the_containers_own_answers_and_takes_its_size() {
    let b = Bocker::start("attach-tty");
    let img = b.import("");
    start_with(&b, "t", &img, "sh", &[("tty", "true"), ("interactive", "true")]);
    assert_eq!(b.read("containers/t/tty"), "true\n");
    let link = std::fs::read_link(b.path("containers/t/attach")).expect("attach is a symlink");
    assert!(link.ends_with("attach.sock"), "{link:?}");

    let conn = attach(&b, "containers/t/attach", WANT_OUTPUT | REPLAY);
    conn.send(&Message::Resize { rows: 30, cols: 100 }).expect("resize");
    typed(&conn, "tty; stty size; echo $((6*7))\n");
    let (out, _) = read_until(&conn, |o| o.contains("42\r\n"));
    assert!(out.contains("/dev/pts/0\r\n"), "tty names the container's own pts: {out:?}");
    assert!(out.contains("30 100\r\n"), "the size sent at attach: {out:?}");
    // A resize reaches the command (the terminal's size changes under it).
    conn.send(&Message::Resize { rows: 41, cols: 120 }).expect("resize");
    typed(&conn, "stty size\n");
    let (out, _) = read_until(&conn, |o| o.contains("41 120\r\n"));
    assert!(out.contains("41 120\r\n"), "{out:?}");
    // Ctrl-C reaches the command through the terminal's line discipline: sleep ends, the shell stays.
    typed(&conn, "sleep 100; echo after=$?\n");
    std::thread::sleep(Duration::from_millis(500));
    typed(&conn, "\x03");
    typed(&conn, "echo still-here\n");
    let (out, _) = read_until(&conn, |o| o.contains("still-here\r\n"));
    assert!(out.contains("still-here\r\n"), "the shell answers within the read's 20 s, not sleep's 100: {out:?}");
    assert!(!out.contains("after=0"), "sleep was interrupted: {out:?}");
    typed(&conn, "exit 3\n");
    let (_, code) = read_until(&conn, |_| false);
    assert_eq!(code, Some(3), "the exit code comes back on the socket");
    b.wait_status("t", "exited");
    assert_eq!(b.read("containers/t/exit_code"), "3\n");
    // What the terminal showed is in the logs too, as Docker keeps it.
    assert!(b.read("containers/t/logs").contains("/dev/pts/0"));
    // Gone with its monitor: nothing listens any more.
    assert!(Connection::connect(&b.path("containers/t/attach"), WANT_OUTPUT).is_err());

    // Positive control: the same probe without a terminal says so.
    let plain = b.run_to_exit(&format!("{img} sh -c 'tty; true'"));
    assert_eq!(b.read(&format!("containers/{plain}/logs")), "not a tty\n");
}

#[test]
fn stdin_takes_bytes_and_close_ends_the_input() {
    let b = Bocker::start("attach-stdin");
    let img = b.import("");
    start_with(&b, "cat", &img, "cat", &[("interactive", "true")]);
    b.write("containers/cat/stdin", "hello\n").expect("stdin");
    b.write("containers/cat/stdin", "world\n").expect("stdin");
    eventually(
        Duration::from_secs(10),
        || b.read("containers/cat/logs"),
        || b.read("containers/cat/logs") == "hello\nworld\n",
    );
    assert_eq!(b.status("cat"), "running", "cat waits for more");
    b.write("containers/cat/ctl", "close-stdin").expect("close");
    b.wait_status("cat", "exited");
    assert_eq!(b.read("containers/cat/exit_code"), "0\n");
    // Its stdin has no reader now: EPIPE, and the message says why.
    let e = b.write("containers/cat/stdin", "late\n").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EPIPE);
    assert!(b.read("containers/cat/error").contains("not running"));

    // Not interactive: stdin is the end of input at once (`cat` exits with no output) and a write is EBADF.
    start_with(&b, "plain", &img, "sh -c 'cat; echo done; sleep 100'", &[]);
    eventually(
        Duration::from_secs(10),
        || b.read("containers/plain/logs"),
        || b.read("containers/plain/logs") == "done\n",
    );
    let e = b.write("containers/plain/stdin", "x\n").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EBADF);
    assert!(b.read("containers/plain/error").contains("not interactive"), "{}", b.read("containers/plain/error"));
    b.write("containers/plain/ctl", "kill").expect("kill");
}

#[test]
fn piped_input_runs_a_shell_and_its_exit_code_comes_back() {
    let b = Bocker::start("attach-pipe");
    let img = b.import("");
    start_with(&b, "sh", &img, "sh", &[("interactive", "true")]);
    let conn = attach(&b, "containers/sh/attach", WANT_OUTPUT | REPLAY);
    typed(&conn, "echo hi\necho err >&2\nexit 4\n");
    conn.send(&Message::CloseStdin).expect("close");
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = loop {
        match conn.recv().expect("recv") {
            Some(Message::Stdout(b)) => out.extend(b),
            Some(Message::Stderr(b)) => err.extend(b),
            Some(Message::Exit(code)) => break Some(code),
            Some(_) => {}
            None => break None,
        }
    };
    assert_eq!((String::from_utf8_lossy(&out).as_ref(), String::from_utf8_lossy(&err).as_ref()), ("hi\n", "err\n"));
    assert_eq!(code, Some(4));
}

#[test]
fn an_exec_gets_a_terminal_of_its_own() {
    let b = Bocker::start("attach-exec");
    let img = b.import("");
    start_with(&b, "box", &img, "sleep 1000", &[]);
    let n = b.submit("containers/box/exec", "-it sh").expect("exec -it");
    let conn = attach(&b, &format!("containers/box/execs/{n}/attach"), WANT_OUTPUT | REPLAY);
    conn.send(&Message::Resize { rows: 20, cols: 70 }).expect("resize");
    typed(&conn, "tty; stty size; echo $((2+3))\n");
    let (out, _) = read_until(&conn, |o| o.contains("5\r\n"));
    assert!(out.contains("/dev/pts/") && out.contains("20 70\r\n"), "{out:?}");
    typed(&conn, "exit 2\n");
    let (_, code) = read_until(&conn, |_| false);
    assert_eq!(code, Some(2));
    b.wait_exec("box", &n);
    assert_eq!(b.read(&format!("containers/box/execs/{n}/exit_code")), "2\n");
    // Unknown options are refused, with the reason.
    let e = b.submit("containers/box/exec", "-x sh").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EINVAL);
    assert!(b.read("containers/box/error").contains("exec option"));
    b.write("containers/box/ctl", "kill").expect("kill");
}

#[test]
fn a_daemon_crash_leaves_an_attached_session_as_it_was() {
    let mut b = Bocker::start("attach-crash");
    let img = b.import("");
    start_with(&b, "t", &img, "sh", &[("tty", "true"), ("interactive", "true")]);
    // Connected through the state directory's socket itself, which the crash leaves in place.
    let socket = std::fs::read_link(b.path("containers/t/attach")).expect("link");
    let conn = Connection::connect(Path::new(&socket), WANT_OUTPUT | REPLAY).expect("connect");
    typed(&conn, "echo one\n");
    read_until(&conn, |o| o.contains("one\r\n"));
    b.crash_daemon();
    typed(&conn, "echo two\n");
    let (out, _) = read_until(&conn, |o| o.contains("two\r\n"));
    assert!(out.contains("two\r\n"), "the session goes on with the daemon dead: {out:?}");
    b.spawn_daemon();
    typed(&conn, "echo three\n");
    let (out, _) = read_until(&conn, |o| o.contains("three\r\n"));
    assert!(out.contains("three\r\n"), "{out:?}");
    typed(&conn, "exit 5\n");
    let (_, code) = read_until(&conn, |_| false);
    assert_eq!(code, Some(5));
    b.wait_status("t", "exited");
    assert_eq!(b.read("containers/t/exit_code"), "5\n");
}

#[test]
fn input_larger_than_the_buffers_all_arrives_on_a_pipe_and_on_a_terminal() {
    let b = Bocker::start("attach-bulk");
    let img = b.import("");
    // A pipe: 3 MiB through the tree's stdin in 64 KiB writes, past the monitor's 1 MiB queue and the
    // pipe's buffer; each write returns once the monitor has it, or EAGAIN (none of it taken) while the
    // queue is full because the command reads slower than it is fed: then it is written again.
    start_with(&b, "wc", &img, "wc -c", &[("interactive", "true")]);
    let chunk = "y".repeat(64 * 1024);
    for _ in 0..48 {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match b.write("containers/wc/stdin", &chunk) {
                Ok(()) => break,
                Err(e) if Bocker::errno(&e) == libc::EAGAIN && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                Err(e) => panic!("stdin: {e}"),
            }
        }
    }
    b.write("containers/wc/ctl", "close-stdin").expect("close");
    b.wait_status("wc", "exited");
    assert_eq!(b.read("containers/wc/logs").trim(), (48 * 64 * 1024).to_string());

    // A terminal with its echo off: nothing comes back to wake the monitor, so what the terminal's
    // buffer can't take at once must still be written as it drains.
    start_with(
        &b,
        "raw",
        &img,
        "sh -c 'stty raw -echo; head -c 300000 | wc -c'",
        &[("tty", "true"), ("interactive", "true")],
    );
    let conn = attach(&b, "containers/raw/attach", WANT_OUTPUT | REPLAY);
    std::thread::sleep(Duration::from_millis(300));
    conn.send_stdin(&vec![b'z'; 300_000]).expect("send");
    let (out, code) = read_until(&conn, |_| false);
    assert!(out.contains("300000"), "{out:?}");
    assert_eq!(code, Some(0));
}

/// The CPU time (user + system, in clock ticks) of the monitor of container `name`: its process's parent.
fn monitor_ticks(b: &Bocker, name: &str) -> u64 {
    let pid = b.read(&format!("containers/{name}/pid"));
    let fields = |pid: &str| -> Vec<String> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
        stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("").split_whitespace().map(String::from).collect()
    };
    let monitor = fields(&pid).get(1).cloned().unwrap_or_else(|| panic!("no process {pid} for {name}"));
    let fields = fields(&monitor);
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn input_nobody_reads_is_refused_at_once_and_a_client_gone_meanwhile_costs_nothing() {
    let b = Bocker::start("attach-full");
    let img = b.import("");
    start_with(&b, "deaf", &img, "sleep 1000", &[("interactive", "true")]);
    // The command never reads: the pipe and then the monitor's 1 MiB fill, and the next write is EAGAIN
    // at once, nothing of it taken.
    let chunk = "n".repeat(64 * 1024);
    let mut taken = 0;
    let refused = loop {
        let t0 = Instant::now();
        match b.write("containers/deaf/stdin", &chunk) {
            Ok(()) => taken += 1,
            Err(e) => break (Bocker::errno(&e), t0.elapsed()),
        }
        assert!(taken < 40, "1 MiB + a pipe's buffer took more than 40 writes of 64 KiB");
    };
    assert_eq!(refused.0, libc::EAGAIN);
    assert!(refused.1 < Duration::from_secs(5), "refused after {:?}", refused.1);
    assert!(taken >= 16, "only {taken} writes of 64 KiB were taken");
    assert!(b.read("containers/deaf/error").contains("nothing of this write was taken"));

    // A client that streams input (it waits when the queue is full) and goes away while it waits: the
    // monitor neither spins on its hang-up nor loses what it sent.
    let conn = attach(&b, "containers/deaf/attach", 0);
    conn.set_timeout(Duration::from_millis(500)).expect("timeout");
    while conn.send_stdin(&[b'q'; 4096]).is_ok() {}
    drop(conn);
    let before = monitor_ticks(&b, "deaf");
    std::thread::sleep(Duration::from_secs(2));
    let spent = monitor_ticks(&b, "deaf") - before;
    assert!(spent < 20, "the monitor used {spent} ticks in 2 s with nothing to do");
    b.write("containers/deaf/ctl", "kill").expect("kill");
    b.wait_status("deaf", "exited");
}

#[test]
fn a_command_that_closed_its_output_still_gets_its_input() {
    let b = Bocker::start("attach-closed-out");
    let img = b.import("");
    start_with(&b, "quiet", &img, "sh -c 'exec >/dev/null 2>&1; cat > /got; sleep 1000'", &[("interactive", "true")]);
    std::thread::sleep(Duration::from_millis(300));
    b.write("containers/quiet/stdin", "hello\n").expect("stdin");
    b.write("containers/quiet/ctl", "close-stdin").expect("close");
    let got = b.path("containers/quiet/rootfs/got");
    eventually(
        Duration::from_secs(10),
        || std::fs::read_to_string(&got).unwrap_or_default(),
        || std::fs::read_to_string(&got).is_ok_and(|s| s == "hello\n"),
    );
    b.write("containers/quiet/ctl", "kill").expect("kill");
    b.wait_status("quiet", "exited");
}
