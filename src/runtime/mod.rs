//! Starting and watching container processes.
//!
//! The daemon is multi-threaded, so it never forks to run container code. [`launch`] re-executes the
//! daemon's own binary as `bocker __monitor STATE_DIR` (youki's pattern). That helper ([`monitor`]) forks
//! once more so it is nobody's child but init's, starts a session of its own, and then:
//! unshares a pid namespace, forks the container's pid 1 ([`init`]) with pipes for its stdout and stderr,
//! reports `ok PID MONITOR_PID` (or `err ERRNO MESSAGE`) on its stdout, copies the pipes into the log
//! ([`crate::logs`]) until the container has ended, and writes the exit record. It outlives the
//! daemon, as Podman's conmon does, so no exit is lost while the daemon is down. The daemon learns of the
//! monitor's end through a pidfd, which [`watcher`] follows with every other in one epoll set.
//!
//! A start with bridge networking may instead claim a monitor started ahead ([`spare`]), whose
//! namespaces are made already and, on v1, whose container process waits in its groups ([`prefork`]).
//! Either kind reads the command's executable ahead while the daemon attaches the network ([`warm`]).

mod bind;
pub mod exec;
pub mod init;
pub mod monitor;
mod output;
pub mod pid1;
mod prefork;
pub mod seccomp;
pub mod security;
mod server;
pub mod spare;
pub mod spawn;
pub mod spec;
mod terminal;
pub mod user;
mod warm;
pub mod watcher;

use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::sys::signal::Signal;

/// Why starting or signalling a container failed; one variant per step.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot write the launch spec: {0}")]
    WriteSpec(io::Error),
    #[error("cannot start the monitor: {0}")]
    SpawnMonitor(io::Error),
    #[error("the monitor said nothing it should: {0:?}")]
    MonitorProtocol(String),
    /// The container's setup or exec failed inside its namespaces.
    #[error("{message}")]
    Container { errno: i32, message: String },
    #[error("cannot signal process {pid}: {source}")]
    Signal { pid: i32, source: nix::Error },
    #[error("cannot make the watcher's epoll set: {0}")]
    WatcherSet(io::Error),
    #[error("cannot start the watcher's thread: {0}")]
    WatcherThread(io::Error),
}

impl RuntimeError {
    /// The errno a write that hit this error returns.
    pub fn errno(&self) -> i32 {
        match self {
            RuntimeError::Container { errno, .. } => *errno,
            RuntimeError::Signal { source: nix::Error::ESRCH, .. } => libc::ESRCH,
            _ => libc::EIO,
        }
    }
}

/// A container that started: its pid and its monitor's.
#[derive(Debug, Clone, Copy)]
pub struct Launched {
    pub pid: i32,
    /// The container's (or exec's) start time, to signal it through a pidfd; `None` if it has exited already.
    pub pid_start: Option<u64>,
    pub monitor_pid: i32,
    pub monitor_start: u64,
}

/// Starts the container whose `launch.json` is in `state_dir`; returns once it has exec'd its command or
/// failed to. The monitor's own messages go to `state_dir/monitor.log`. With a `spare` (bridge networking
/// only), that monitor is claimed for it; one that is gone is passed over for a monitor of its own.
///
/// With `network: bridge` the monitor makes the container's network namespace first and says `net PID`;
/// `attach(PID)` then connects that namespace (`/proc/PID/ns/net`) and the command runs only after it
/// succeeded. If it fails, the monitor is told nothing, ends, and the namespace goes with it.
pub fn launch<E: From<RuntimeError>>(
    state_dir: &Path,
    spare: Option<spare::Spare>,
    attach: impl FnOnce(i32) -> Result<(), E>,
) -> Result<Launched, E> {
    match spare.and_then(|s| s.claim(state_dir)) {
        Some(spare::Spare { stdin, stdout, pid }) => {
            tracing::debug!(spare = pid, dir = %state_dir.display(), "claimed a spare monitor");
            converse(Some(stdin), stdout, attach)
        }
        None => run_helper("__monitor", state_dir, attach),
    }
}

/// Starts the command whose `exec.json` is in `exec_dir` inside a running container (see [`exec`]);
/// returns once it has exec'd or failed to. `Launched::monitor_pid` is then the exec helper's pid.
pub fn launch_exec(exec_dir: &Path) -> Result<Launched, RuntimeError> {
    run_helper("__exec", exec_dir, |_| Ok::<(), RuntimeError>(()))
}

/// Re-executes the daemon's binary as the hidden helper `verb` on `dir`, and reads its report.
fn run_helper<E: From<RuntimeError>>(
    verb: &str,
    dir: &Path,
    attach: impl FnOnce(i32) -> Result<(), E>,
) -> Result<Launched, E> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(dir.join("monitor.log"))
        .map_err(RuntimeError::SpawnMonitor)?;
    let mut child = Command::new("/proc/self/exe")
        .arg(verb)
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(RuntimeError::SpawnMonitor)?;
    // Taken before the wait, which would close it. The first process exits as soon as it has forked the
    // real monitor.
    let go = child.stdin.take();
    let _ = child.wait();
    let out = BufReader::new(child.stdout.take().ok_or(RuntimeError::MonitorProtocol(String::new()))?);
    converse(go, out, attach)
}

/// Reads a helper's report on `out`: after `net PID`, `attach` and the go on `go`, then its outcome.
fn converse<E: From<RuntimeError>>(
    mut go: Option<std::process::ChildStdin>,
    mut out: impl BufRead,
    attach: impl FnOnce(i32) -> Result<(), E>,
) -> Result<Launched, E> {
    let mut line = read_line(&mut out)?;
    if let Some(pid) = line.strip_prefix("net ") {
        let pid = pid.parse().map_err(|_| RuntimeError::MonitorProtocol(line.clone()))?;
        // On failure `go` is dropped unwritten: the monitor reads EOF and ends without starting anything.
        attach(pid)?;
        let told = go.as_mut().map(|w| w.write_all(b"go\n"));
        if !matches!(told, Some(Ok(()))) {
            return Err(
                RuntimeError::MonitorProtocol("the monitor went away before its network was ready".into()).into()
            );
        }
        line = read_line(&mut out)?;
    }
    drop(go);
    Ok(parse_report(&line)?)
}

fn read_line(out: &mut impl BufRead) -> Result<String, RuntimeError> {
    let mut line = String::new();
    out.read_line(&mut line).map_err(RuntimeError::SpawnMonitor)?;
    Ok(line.trim_end().to_string())
}

fn parse_report(line: &str) -> Result<Launched, RuntimeError> {
    let bad = || RuntimeError::MonitorProtocol(line.to_string());
    let mut words = line.splitn(3, ' ');
    match words.next() {
        Some("ok") => {
            let pid = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
            let monitor_pid: i32 = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
            let monitor_start = start_time(monitor_pid).ok_or_else(bad)?;
            Ok(Launched { pid, pid_start: start_time(pid), monitor_pid, monitor_start })
        }
        Some("err") => {
            let errno = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
            Err(RuntimeError::Container { errno, message: words.next().unwrap_or("").to_string() })
        }
        _ => Err(bad()),
    }
}

/// A process's start time in clock ticks since boot (field 22 of `/proc/PID/stat`).
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The parent of process `pid` (field 4 of `/proc/PID/stat`).
pub fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].split_whitespace().nth(1)?.parse().ok()
}

/// A handle on a process that is not our child, immune to pid reuse once opened.
pub struct ProcessHandle {
    fd: OwnedFd,
    pid: i32,
}

impl ProcessHandle {
    /// Opens process `pid` if it is alive and started at `start` (clock ticks since boot).
    pub fn open(pid: i32, start: u64) -> Option<ProcessHandle> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no memory is passed.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return None;
        }
        // SAFETY: the syscall returned a fresh fd that nothing else owns.
        let handle = ProcessHandle { fd: unsafe { OwnedFd::from_raw_fd(fd as i32) }, pid };
        // Opened after the check could be a new process with the old pid: compare start times.
        (start_time(pid) == Some(start)).then_some(handle)
    }

    /// Opens process `pid` if it is alive and the child of the live process `parent` that started at
    /// `parent_start` (a container's pid 1 is its monitor's child): for records without `pid`'s own start.
    pub fn open_child(pid: i32, parent: i32, parent_start: u64) -> Option<ProcessHandle> {
        let handle = ProcessHandle::open(pid, start_time(pid)?)?;
        // Checked with the pidfd held: the process can't be swapped for another from here on.
        let ours = parent_of(pid) == Some(parent) && start_time(parent) == Some(parent_start);
        ours.then_some(handle)
    }

    /// Sends `signal` through the pidfd: never to another process that took the pid since.
    pub fn signal(&self, signal: Signal) -> Result<(), RuntimeError> {
        // SAFETY: pidfd_send_signal takes our pidfd, a signal number, a null siginfo and no flags.
        let rc = unsafe {
            libc::syscall(libc::SYS_pidfd_send_signal, self.fd.as_raw_fd(), signal as i32, std::ptr::null::<u8>(), 0)
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(RuntimeError::Signal { pid: self.pid, source: nix::Error::last() })
        }
    }

    /// Moves the calling thread into the process's network namespace (setns(2) on the pidfd): that
    /// process's, or ESRCH once it has exited.
    pub fn enter_netns(&self) -> Result<(), nix::Error> {
        nix::sched::setns(&self.fd, nix::sched::CloneFlags::CLONE_NEWNET)
    }

    /// Blocks until the process has exited: for one the [`watcher`]'s set refused.
    pub fn wait_for_exit(&self) {
        loop {
            let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: `pfd` is one valid pollfd for the duration of the call.
            let rc = unsafe { libc::poll(&mut pfd, 1, -1) };
            if rc > 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return;
            }
        }
    }
}

/// The pidfd: readable once the process has exited.
impl AsFd for ProcessHandle {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Sends `signal` to the process a launch started, through a pidfd: nothing if it is gone already.
pub fn signal_launched(launched: &Launched, signal: Signal) {
    if let Some(handle) = launched.pid_start.and_then(|start| ProcessHandle::open(launched.pid, start)) {
        let _ = handle.signal(signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_go_through_a_pidfd_to_that_process_only() {
        use std::os::unix::process::ExitStatusExt;
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id() as i32;
        let start = start_time(pid).unwrap();
        assert!(ProcessHandle::open(pid, start + 1).is_none(), "another start time is another process");
        let handle = ProcessHandle::open(pid, start).unwrap();
        handle.signal(Signal::SIGTERM).unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGTERM));
        // Reaped: the pidfd still names that process, and nothing else.
        let err = handle.signal(Signal::SIGTERM).unwrap_err();
        assert_eq!(err.errno(), libc::ESRCH);
        assert!(ProcessHandle::open(pid, start).is_none());
    }

    #[test]
    fn reports() {
        let err = parse_report("err 2 executable 'nope' not found").unwrap_err();
        assert_eq!(err.errno(), libc::ENOENT);
        assert_eq!(err.to_string(), "executable 'nope' not found");
        assert!(matches!(parse_report(""), Err(RuntimeError::MonitorProtocol(_))));
        assert!(matches!(parse_report("ok x"), Err(RuntimeError::MonitorProtocol(_))));
        let me = std::process::id() as i32;
        let ok = parse_report(&format!("ok 42 {me}")).unwrap();
        assert_eq!((ok.pid, ok.monitor_pid), (42, me));
        assert_eq!(Some(ok.monitor_start), start_time(me));
    }
}
