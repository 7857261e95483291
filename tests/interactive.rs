//! Interactive containers from the command line (issue 14). On a real terminal (tmux, see
//! interactive/tmux.rs): `bocker run -it` gives a prompt that answers, on a pts, whose size follows the
//! window, where Ctrl-C interrupts a command and not the shell; the detach keys leave it running (a lone
//! Ctrl-P still goes through) and `bocker attach` finds it again; `exit N` comes back as the CLI's code
//! and this terminal is sane after; `bocker exec -it` the same for an exec; a daemon SIGKILL in the
//! middle of a session changes nothing on the screen. Without a terminal: piped stdin with -i and none
//! without, EOF at the pipe's end, stdout and stderr apart, the exit codes, -dit, exec -i and -d, attach.

mod common;
#[path = "interactive/tmux.rs"]
mod tmux;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{eventually, Bocker, BIN};
use tmux::Tmux;

/// busybox sh's prompt (`/ # `) is on the screen.
fn container_prompt(screen: &str) -> bool {
    screen.lines().any(|l| l.trim_end().ends_with(" #"))
}

/// A line of the screen names a pts (`/dev/pts/3`).
fn names_a_pts(screen: &str) -> bool {
    screen.lines().any(|l| {
        l.trim_end().strip_prefix("/dev/pts/").is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
    })
}

/// The code an `echo code=$?` showed (anywhere on a line: after a detach the cursor was mid-line).
fn shown_code(screen: &str) -> Option<String> {
    screen.lines().find_map(|l| {
        let code = l.split_once("code=")?.1.trim_end();
        (!code.is_empty() && code.bytes().all(|c| c.is_ascii_digit())).then(|| code.to_string())
    })
}

/// After `bocker attach` was typed on a cleared screen: Enter, until the container's prompt answers (an
/// attach gets the output from its coming on, so the prompt printed before is not shown again).
fn attached(t: &Tmux) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !container_prompt(&t.screen()) {
        assert!(Instant::now() < deadline, "no prompt after attach:\n{}", t.screen());
        t.keys(&["Enter"]);
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// `stty -a` on the host shell shows a terminal in its usual cooked mode again.
fn assert_sane(t: &Tmux) {
    t.line("stty -a; echo stty-done");
    let screen = t.wait_line("stty-done", 1);
    let words: Vec<&str> = screen.split_whitespace().collect();
    for on in ["icanon", "echo", "isig", "icrnl", "opost"] {
        assert!(words.contains(&on), "{on} is not set again:\n{screen}");
    }
}

/// What a user checks of a shell on a terminal in tmux: it answers, `tty` names a pts, `stty size`
/// follows a resize of the window to `size` (columns, rows), and Ctrl-C reaches the command through the
/// container's terminal (sleep ends, the shell stays).
fn a_shell_answers_on_its_terminal(t: &Tmux, size: (u16, u16)) {
    t.line("echo $((6*7))");
    t.wait_line("42", 1);
    t.line("tty");
    t.wait_for("a pts", names_a_pts);
    t.line("stty size");
    t.wait_line("24 80", 1);
    t.resize(size.0, size.1);
    t.line("stty size");
    t.wait_line(&format!("{} {}", size.1, size.0), 1);
    t.line("echo sleeping; sleep 100");
    t.wait_line("sleeping", 1);
    std::thread::sleep(Duration::from_millis(300));
    t.keys(&["C-c"]);
    t.line("echo after-$((1+1))");
    t.wait_line("after-2", 1);
}

#[test]
fn run_it_a_prompt_that_answers_on_a_pts_following_the_window_and_ctrl_c() {
    let b = Bocker::start("it-run");
    let img = b.import("");
    let t = Tmux::start("it-run", &b.mount);
    t.line(&format!("{BIN} run -it --name box {img} sh; echo code=$?"));
    // The prompt, printed before the CLI came, is replayed to it.
    t.wait_for("the container's prompt", container_prompt);
    assert_eq!(b.read("containers/box/tty"), "true\n");
    assert_eq!(b.read("containers/box/interactive"), "true\n");
    a_shell_answers_on_its_terminal(&t, (100, 30));
    assert_eq!(b.status("box"), "running");
    t.line("exit 3");
    t.wait_line("code=3", 1);
    assert_sane(&t);
    // The monitor gives the code to its clients before the daemon records it.
    b.wait_status("box", "exited");
    assert_eq!(b.read("containers/box/exit_code"), "3\n");
}

#[test]
fn a_signal_to_the_cli_restores_the_terminal_and_ends_it_by_that_signal() {
    let b = Bocker::start("it-signal");
    let img = b.import("");
    let t = Tmux::start("it-signal", &b.mount);
    for (n, signal) in
        [nix::sys::signal::SIGTERM, nix::sys::signal::SIGHUP, nix::sys::signal::SIGINT].into_iter().enumerate()
    {
        t.clear();
        // No `; echo` after it: bash drops the rest of a line whose command died of SIGINT.
        t.line(&format!("{BIN} run -it --name s{n} {img} sh"));
        t.wait_for("the container's prompt", container_prompt);
        let cli = t.shell_children();
        assert_eq!(cli.len(), 1, "the CLI alone runs under the shell: {cli:?}");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(cli[0]), signal).expect("kill the CLI");
        // The shell's code for a command killed by a signal: 128 + its number.
        t.wait_for("the host's prompt again", |s| s.lines().filter(|l| l.starts_with(tmux::HOST_PROMPT)).count() >= 2);
        t.line("echo code=$?");
        t.wait_line(&format!("code={}", 128 + signal as i32), 1);
        assert_sane(&t);
        // The container is not the CLI: it runs on, as after a detach.
        assert_eq!(b.status(&format!("s{n}")), "running");
    }
}

#[test]
fn a_connection_lost_mid_session_restores_the_terminal() {
    let b = Bocker::start("it-lost");
    let img = b.import("");
    let t = Tmux::start("it-lost", &b.mount);
    t.line(&format!("{BIN} run -it --name box {img} sh; echo code=$?"));
    t.wait_for("the container's prompt", container_prompt);
    let record = std::fs::read_to_string(b.root.join("state/containers/box/record.json")).expect("record");
    let record: serde_json::Value = serde_json::from_str(&record).expect("record.json");
    let (monitor, pid) = (record["monitor_pid"].as_i64().unwrap(), record["pid"].as_i64().unwrap());
    // The monitor dies (its socket with it); then its container, which the harness would not find.
    let kill = |p: i64| nix::sys::signal::kill(nix::unistd::Pid::from_raw(p as i32), nix::sys::signal::SIGKILL);
    kill(monitor).expect("kill the monitor");
    // The CLI ends (with the code the daemon then records, or 1 and "lost the connection" while the
    // container still shows running), and leaves the terminal as it found it.
    let ended = t.wait_for("the CLI's end", |s| shown_code(s).is_some());
    let _ = kill(pid);
    let code = shown_code(&ended);
    let status = b.status("box");
    assert!(
        (status == "exited" && code.as_deref() == Some(b.read("containers/box/exit_code").trim_end()))
            || (ended.contains("lost the connection to the monitor of box") && code.as_deref() == Some("1")),
        "status {status}, code {code:?}:\n{ended}"
    );
    assert_sane(&t);
}

#[test]
fn detach_keys_leave_it_running_and_attach_finds_it_again() {
    let b = Bocker::start("it-detach");
    let img = b.import("");
    let t = Tmux::start("it-detach", &b.mount);
    t.line(&format!("{BIN} run -it --name box {img} sh; echo code=$?"));
    t.wait_for("the container's prompt", container_prompt);
    t.line("echo lone-$((2+3))");
    t.wait_line("lone-5", 1);
    // A lone Ctrl-P goes through once the next key is not Ctrl-Q: busybox sh takes it as "the line
    // before", and Enter runs that again.
    t.keys(&["C-p"]);
    t.keys(&["Enter"]);
    t.wait_line("lone-5", 2);
    t.keys(&["C-p", "C-q"]);
    // docker run's detach: no message (the host's shell goes on where the cursor was), 0.
    t.wait_for("code=0", |s| s.lines().any(|l| l.trim_end() == "/ # code=0"));
    assert_eq!(b.status("box"), "running");
    assert_sane(&t);

    // Attached again (with other keys): Enter gives a fresh prompt that answers.
    t.clear();
    t.line(&format!("{BIN} attach --detach-keys ctrl-x box; echo code=$?"));
    attached(&t);
    t.line("echo back-$((3*3))");
    t.wait_line("back-9", 1);
    t.keys(&["C-x"]);
    // docker attach's detach: its message, 1.
    let screen = t.wait_line("code=1", 1);
    assert!(screen.contains("read escape sequence"), "{screen}");
    assert_eq!(b.status("box"), "running");

    t.clear();
    t.line(&format!("{BIN} attach box; echo code=$?"));
    attached(&t);
    t.line("echo again-$((4*4))");
    t.wait_line("again-16", 1);
    t.line("exit 5");
    t.wait_line("code=5", 1);
    assert_sane(&t);
    b.wait_status("box", "exited");
    assert_eq!(b.read("containers/box/exit_code"), "5\n");
}

#[test]
fn exec_it_a_shell_in_the_running_container() {
    let b = Bocker::start("it-exec");
    let img = b.import("");
    let out = b.cli(&["run", "-d", "--name", "box", &img, "sleep", "1000"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "box\n");
    let t = Tmux::start("it-exec", &b.mount);
    t.line(&format!("{BIN} exec -it box sh; echo code=$?"));
    t.wait_for("the exec's prompt", container_prompt);
    a_shell_answers_on_its_terminal(&t, (90, 20));
    t.line("exit 3");
    t.wait_line("code=3", 1);
    assert_sane(&t);
    b.wait_exec("box", "1");
    assert_eq!(b.read("containers/box/execs/1/exit_code"), "3\n");

    // A second one, left with the detach keys: docker exec's message and 1; it runs on.
    t.clear();
    t.line(&format!("{BIN} exec -ti box sh; echo code=$?"));
    t.wait_for("the exec's prompt", container_prompt);
    t.line("echo second-$((5+5))");
    t.wait_line("second-10", 1);
    t.keys(&["C-p", "C-q"]);
    let screen = t.wait_line("code=1", 1);
    assert!(screen.contains("read escape sequence"), "{screen}");
    assert_eq!(b.read("containers/box/execs/2/status"), "running\n");
    assert_sane(&t);
}

#[test]
fn a_daemon_sigkill_mid_session_changes_nothing_on_the_screen() {
    let mut b = Bocker::start("it-crash");
    let img = b.import("");
    let t = Tmux::start("it-crash", &b.mount);
    t.line(&format!("{BIN} run -it --name box {img} sh; echo code=$?"));
    t.wait_for("the container's prompt", container_prompt);
    t.line("echo before-$((1+1))");
    t.wait_line("before-2", 1);
    b.crash_daemon();
    t.line("echo after-$((2+2))");
    let screen = t.wait_line("after-4", 1);
    for bad in ["rror", "lost", "ransport endpoint", "bocker"] {
        let shown: Vec<&str> = screen.lines().filter(|l| l.contains(bad) && !l.contains(" run -it ")).collect();
        assert!(shown.is_empty(), "the crash showed on the screen: {shown:?}\n{screen}");
    }
    t.line("exit 7");
    t.wait_line("code=7", 1);
    assert_sane(&t);
    // The next daemon finds the exit the monitor recorded.
    b.spawn_daemon();
    b.wait_status("box", "exited");
    assert_eq!(b.read("containers/box/exit_code"), "7\n");
}

/// Runs the CLI with `input` on a pipe as its stdin (closed after it), within 60 s.
fn cli_fed(b: &Bocker, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env("BOCKER_MOUNT", &b.mount)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the CLI");
    let mut stdin = child.stdin.take().expect("stdin");
    // A command that exits without reading all of it closes the pipe: that is not the test's failure.
    let _ = stdin.write_all(input);
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!("bocker {args:?} did not end: {}", String::from_utf8_lossy(&out.stdout));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn containers(b: &Bocker) -> usize {
    std::fs::read_dir(b.path("containers")).unwrap().flatten().filter(|e| e.path().is_dir()).count()
}

#[test]
fn without_a_terminal_piped_stdin_with_i_none_without_and_the_exit_codes() {
    let b = Bocker::start("it-pipes");
    let img = b.import("");
    let out = cli_fed(&b, &["run", "-i", &img, "sh"], b"echo hi\nexit 4\n");
    assert_eq!((text(&out.stdout).as_str(), out.status.code()), ("hi\n", Some(4)), "{}", text(&out.stderr));
    // Without -i the pipe is not read: cat sees /dev/null and ends at once.
    let started = Instant::now();
    let out = cli_fed(&b, &["run", &img, "cat"], b"not for cat\n");
    assert_eq!((text(&out.stdout).as_str(), out.status.code()), ("", Some(0)));
    assert!(started.elapsed() < Duration::from_secs(30));
    // The end of the pipe is the command's EOF; stdout and stderr stay apart.
    let out = cli_fed(&b, &["run", "-i", &img, "sh", "-c", "cat; echo done >&2; exit 2"], b"a\nb\n");
    assert_eq!(text(&out.stdout), "a\nb\n");
    assert_eq!(text(&out.stderr), "done\n");
    assert_eq!(out.status.code(), Some(2));
    // -it needs a terminal, as Docker's: refused before anything is made.
    let before = containers(&b);
    let out = cli_fed(&b, &["run", "-it", &img, "sh"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("the input device is not a TTY"), "{}", text(&out.stderr));
    assert_eq!(containers(&b), before);
    // -t alone: a terminal inside (its output in the terminal's line endings), nothing read from here.
    let out = cli_fed(&b, &["run", "-t", &img, "sh", "-c", "tty; exit 3"], b"");
    assert!(text(&out.stdout).starts_with("/dev/pts/"), "{}", text(&out.stdout));
    assert!(text(&out.stdout).ends_with("\r\n"), "{:?}", text(&out.stdout));
    assert_eq!(out.status.code(), Some(3));
    // --rm -i: the code, and then nothing left.
    let out = cli_fed(&b, &["run", "--rm", "-i", "--name", "gone", &img, "sh"], b"exit 6\n");
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    eventually(Duration::from_secs(20), || "gone is removed".into(), || !b.path("containers/gone").exists());
}

#[test]
fn dit_exec_i_exec_d_and_attach_without_a_terminal() {
    let b = Bocker::start("it-attach");
    let img = b.import("");
    // -dit: started and named, not attached; its terminal and stdin kept for later.
    let out = cli_fed(&b, &["run", "-dit", "--name", "bg", &img, "sh"], b"");
    assert_eq!((text(&out.stdout).as_str(), out.status.code()), ("bg\n", Some(0)), "{}", text(&out.stderr));
    assert_eq!(b.status("bg"), "running");
    assert_eq!(b.read("containers/bg/tty"), "true\n");
    assert_eq!(b.read("containers/bg/interactive"), "true\n");
    let out = cli_fed(&b, &["exec", "-i", "bg", "sh"], b"echo in-exec\nexit 8\n");
    assert_eq!((text(&out.stdout).as_str(), out.status.code()), ("in-exec\n", Some(8)), "{}", text(&out.stderr));
    // exec -d: returns at once, quietly; the command runs.
    let out = cli_fed(&b, &["exec", "-d", "bg", "sh", "-c", "sleep 0.2; echo made > /made"], b"");
    assert_eq!((text(&out.stdout).as_str(), out.status.code()), ("", Some(0)));
    eventually(
        Duration::from_secs(20),
        || "the detached exec's file".into(),
        || b.cli(&["exec", "bg", "cat", "/made"]).stdout == b"made\n",
    );
    // A terminal's container wants a terminal to attach from.
    let out = cli_fed(&b, &["attach", "bg"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("the input device is not a TTY"));

    // A container run -d -i (no terminal) takes a pipe: its output from now on, its exit code.
    let out = cli_fed(&b, &["run", "-d", "-i", "--name", "piped", &img, "sh"], b"");
    assert_eq!(text(&out.stdout), "piped\n");
    let out = cli_fed(&b, &["attach", "piped"], b"echo via-attach\nexit 9\n");
    assert_eq!((text(&out.stdout).as_str(), out.status.code()), ("via-attach\n", Some(9)), "{}", text(&out.stderr));
    b.wait_status("piped", "exited");
    let out = cli_fed(&b, &["attach", "piped"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot attach to a stopped container"), "{}", text(&out.stderr));
    let out = cli_fed(&b, &["attach", "nope"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("No container named 'nope' exists"));
}
