//! `bocker __monitor STATE_DIR`: the small per-container process that starts the container, reports its
//! pid to the daemon, copies its stdout and stderr pipes into its log ([`super::output`]), waits for it and
//! records its exit code and time, after the last byte of output. It is single-threaded, so forking here and
//! running setup code in the child is safe.
//!
//! `bocker __monitor --spare DIR` is one started ahead of any container ([`super::spare`]): it detaches and
//! makes its pid and network namespaces, says `spare PID`, and waits for `claim STATE_DIR`; from there it is
//! that container's monitor, as if started for it (bridge networking only: the namespaces are made). The
//! daemon closing its stdin instead ends it. `DIR` only names the daemon it belongs to (its state
//! directory), for whoever reads `ps`.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

use super::output::{self, Drain, Ends, Output};
use super::spec::{ExitRecord, LaunchSpec};
use crate::network::NetworkMode;
use crate::{json, times};

/// Runs the monitor; never returns.
pub fn main(state_dir: &Path) -> ! {
    helper_main("monitor", || run(state_dir).map_err(|msg| (libc::EIO, msg)))
}

/// Runs a spare monitor whose container process, forked ahead, joins the groups of `procs` (v1), or is
/// forked at its start when there are none; never returns.
pub fn spare_main(procs: &[PathBuf], nice: i32) -> ! {
    // Started at a low priority, so that its start-up took only idle CPU: its container's processes run at
    // the daemon's.
    let _ = rustix::process::setpriority_process(None, nice);
    helper_main("monitor", || spare(procs).map_err(|msg| (libc::EIO, msg)))
}

/// The frame of a helper the daemon re-executes (the monitor, the exec helper): nothing of the daemon's
/// stays open (a /dev/fuse fd would keep a dead mount alive), the daemon's blocked signals are unblocked
/// (a helper must be killable), and a failure is reported as `err ERRNO MESSAGE`. Never returns.
pub(super) fn helper_main(tag: &str, run: impl FnOnce() -> Result<(), (i32, String)>) -> ! {
    // SAFETY: close_range only closes descriptors; 0, 1 and 2 stay.
    unsafe { libc::close_range(3, u32::MAX, 0) };
    let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
    let code = match run() {
        Ok(()) => 0,
        Err((errno, msg)) => {
            report(&format!("err {errno} {msg}"));
            eprintln!("bocker {tag}: {msg}");
            1
        }
    };
    std::process::exit(code)
}

pub(super) fn report(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn run(state_dir: &Path) -> Result<(), String> {
    let spec = read_spec(state_dir)?;
    detach()?;
    let (output, ends) = output::open(&spec.log, spec.log_limits, stdio_mode(&spec.stdio), &spec.stdio.socket)?;
    // The network namespace (bridge mode) is made here, so the daemon can attach it before the command
    // runs; in every mode the daemon records this monitor before it says go, so a daemon that dies in
    // between leaves a start it can find and undo.
    if let Some(target) = spec.netns {
        // `container:NAME`: that container's pid 1, checked against its start time, so a pid reused since
        // is never joined; this monitor and all it forks are in that namespace from here on.
        let joined = super::ProcessHandle::open(target.pid, target.start).ok_or(nix::Error::ESRCH);
        if let Err(e) = joined.and_then(|p| p.enter_netns()) {
            let name = spec.network.joined().unwrap_or("");
            report(&format!("err {} cannot join the network of '{name}': {}", e as i32, e.desc()));
            return Ok(());
        }
    }
    let flags = match spec.network {
        NetworkMode::Bridge => CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNET,
        _ => CloneFlags::CLONE_NEWPID,
    };
    nix::sched::unshare(flags).map_err(|e| format!("unshare the pid (and network) namespace: {e}"))?;
    start(&spec, output, ends, None)
}

/// A spare: what [`run`] does up to its namespaces, ahead of any container; then, once claimed, the rest
/// for the container whose state directory the claim names.
fn spare(procs: &[PathBuf]) -> Result<(), String> {
    detach()?;
    let flags = CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNET;
    nix::sched::unshare(flags).map_err(|e| format!("unshare the pid and network namespaces: {e}"))?;
    // Before the fork ahead, so its child has them: most containers keep the default capabilities.
    super::security::precompile(&super::spec::Security::default());
    let ahead = match procs.is_empty() {
        true => None,
        false => Some(super::prefork::fork_ahead(procs)?),
    };
    report(&format!("spare {}", std::process::id()));
    let mut claim = String::new();
    let _ = std::io::stdin().read_line(&mut claim);
    // Anything else (the daemon closed the pipe: it ended, or needs no more spares) ends it quietly.
    let Some(state_dir) = claim.strip_suffix('\n').and_then(|l| l.strip_prefix("claim ")) else { return Ok(()) };
    let state_dir = Path::new(state_dir);
    // Its messages go where a monitor started for this container writes its own.
    if let Ok(log) = std::fs::OpenOptions::new().create(true).append(true).open(state_dir.join("monitor.log")) {
        let _ = nix::unistd::dup2_stderr(log);
    }
    let spec = read_spec(state_dir)?;
    if spec.network != NetworkMode::Bridge || spec.netns.is_some() {
        return Err("a spare monitor starts containers with bridge networking only".into());
    }
    let (output, ends) = output::open(&spec.log, spec.log_limits, stdio_mode(&spec.stdio), &spec.stdio.socket)?;
    start(&spec, output, ends, ahead.map(|a| (a, state_dir)))
}

/// The `launch.json` in `state_dir`.
pub(super) fn read_spec(state_dir: &Path) -> Result<LaunchSpec, String> {
    json::read_json(&state_dir.join("launch.json"))
        .map_err(|e| format!("cannot read launch.json: {e}"))?
        .ok_or_else(|| "launch.json is missing".into())
}

/// The first process exits at once, so the monitor belongs to init, not to the daemon; and starts a
/// session of its own.
fn detach() -> Result<(), String> {
    // SAFETY: single-threaded process; the child runs ordinary code before exec or exit.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Parent { .. } => std::process::exit(0),
        ForkResult::Child => {}
    }
    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    Ok(())
}

/// In its namespaces: says `net PID`, waits for the daemon's go, forks the container's pid 1 (or hands its
/// container to the one forked `ahead`), reports it and follows it to its end.
fn start(
    spec: &LaunchSpec,
    output: Output,
    ends: Ends,
    ahead: Option<(super::prefork::Preforked, &Path)>,
) -> Result<(), String> {
    let mut output = output;
    report(&format!("net {}", std::process::id()));
    // While the daemon attaches the network: the command's files read ahead of its exec, and its seccomp
    // filters compiled for a child forked after the go (one forked ahead has the default's).
    super::warm::command(spec);
    super::security::precompile(&spec.security);
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    if answer.trim_end() != "go" {
        return Err("the daemon did not say go (it ended, or the network could not be connected): not starting".into());
    }
    let init = spec.init.as_deref().map(super::pid1::sealed_init).transpose()?;
    let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let init_fd = init.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
    // Kept until this monitor ends (see the child's `monitor_gone`).
    let (child, _alive) = match ahead {
        Some((ahead, state_dir)) => {
            use std::os::fd::AsRawFd;
            let handed = super::prefork::Handed {
                state_dir,
                stdio: ends.raw(),
                err_pipe: err_w.as_raw_fd(),
                console: ends.console(),
                init: init_fd,
            };
            ahead.hand(&handed)?;
            (ahead.child, ahead.alive)
        }
        None => {
            // Held open by this monitor alone: the child sees it hang up if the monitor is gone.
            let (alive_r, alive_w) =
                nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
            // Single-threaded process; the child, born in the container's cgroup, sets up the container and
            // execs or _exits.
            let (forked, born) = super::spawn::fork_into(spec.cgroup.as_deref()).map_err(|e| format!("fork: {e}"))?;
            match forked {
                ForkResult::Child => {
                    drop(err_r);
                    // The container ends with its monitor: nobody else could follow or stop it. (Its parent
                    // is outside its pid namespace, so getppid() can't tell whether the monitor died before
                    // the prctl: the pipe only the monitor holds open can.)
                    drop(alive_w);
                    die_with_monitor(alive_r);
                    super::init::enter(spec, born, ends.raw(), ends.console(), init_fd, err_w)
                }
                ForkResult::Parent { child } => (child, alive_w),
            }
        }
    };
    drop(err_w);
    // Only the container holds the write ends now: the output ends when it (and all it forked) does.
    drop(ends);
    if let Some((errno, message)) = read_setup_error(err_r) {
        let _ = waitpid(child, None);
        report(&format!("err {errno} {message}"));
        return Ok(());
    }
    output.take_terminal();
    report(&format!("ok {} {}", child.as_raw(), std::process::id()));
    wait_and_record(child, &spec.exit_file, output, Drain::Namespace)
}

/// The output's mode for `stdio`.
pub(super) fn stdio_mode(stdio: &super::spec::Stdio) -> output::StdioMode {
    output::StdioMode { tty: stdio.tty, interactive: stdio.interactive }
}

/// In a child of the monitor: it gets SIGKILL when the monitor ends, and ends at once if the monitor has
/// ended already (`alive`, the read end of a pipe only the monitor holds open, has hung up).
pub(super) fn die_with_monitor(alive: OwnedFd) {
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    if monitor_gone(alive) {
        // SAFETY: _exit ends this forked child at once, without the parent's exit handlers.
        unsafe { libc::_exit(1) }
    }
}

/// Whether the read end's only writer, the monitor, has closed it: it has ended.
fn monitor_gone(alive: OwnedFd) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(alive.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(_) => fds[0].revents().is_some_and(|r| r.contains(PollFlags::POLLHUP)),
        Err(_) => false,
    }
}

/// Copies `child`'s output into its log (and to attached clients) until it has ended and `drain` says the
/// output has too, then reaps it, writes its exit record and gives the exit code to attached clients:
/// whoever sees the exit sees all the output. The daemon has had its answer: stdout goes quiet first, so
/// a dead daemon's pipe can't hurt us.
pub(super) fn wait_and_record(
    child: nix::unistd::Pid,
    exit_file: &Path,
    output: Output,
    drain: Drain,
) -> Result<(), String> {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdout(null);
    }
    let server = output.copy(child, drain);
    let exit_code = loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => break code,
            Ok(WaitStatus::Signaled(_, sig, _)) => break 128 + sig as i32,
            Ok(_) | Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(format!("waitpid: {e}")),
        }
    };
    let exit = ExitRecord { exit_code, finished_at: times::now_rfc3339() };
    let written = json::write_json(exit_file, &exit).map_err(|e| format!("cannot write exit record: {e}"));
    server.finish(exit_code);
    written
}

/// What the container's setup wrote on the error pipe: `ERRNO MESSAGE`, or nothing once it exec'd.
pub(super) fn read_setup_error(pipe: OwnedFd) -> Option<(i32, String)> {
    let mut buf = String::new();
    let _ = std::fs::File::from(pipe).read_to_string(&mut buf);
    if buf.is_empty() {
        return None;
    }
    let (errno, message) = buf.split_once(' ').unwrap_or((buf.as_str(), ""));
    Some((errno.parse().unwrap_or(libc::EIO), message.to_string()))
}
