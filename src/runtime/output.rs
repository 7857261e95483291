//! A container's (or an exec's) stdio: stdout and stderr are two pipes whose write ends are the process's
//! fds 1 and 2, and whose read ends its monitor holds and copies into the log (conmon's pattern); stdin is
//! the read end of a pipe with no writer, which reads as `/dev/null` does (EOF). No host file is ever in
//! the container (the host's `/dev/null` as fd 0 could be chmod'ed through `/proc/self/fd/0`), and the copy
//! runs in the monitor, which outlives the daemon, so a daemon crash loses no byte.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::Pid;

use crate::logs::{LogLimits, Writer};

/// How long copying goes on after the process has ended, at most, while its pipes still give output (an
/// exec's background children may hold them).
const AFTER_EXIT: Duration = Duration::from_secs(2);

/// The process's ends of the pipes, for its fds 0, 1 and 2.
pub(super) struct Ends {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// The monitor's side: the read ends and the log they go to.
pub(super) struct Output {
    stdout: OwnedFd,
    stderr: OwnedFd,
    log: Writer,
}

/// Opens the log in `dir` and makes the two pipes, close-on-exec (the process's fds 1 and 2 are dup'd
/// from them, and the dups are not).
pub(super) fn open(dir: &std::path::Path, limits: LogLimits) -> Result<(Output, Ends), String> {
    let log = Writer::open(dir, limits).map_err(|e| e.to_string())?;
    let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"));
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    // Its write end is closed at once: reads of stdin see the end of input.
    let (in_r, _) = pipe()?;
    for r in [&out_r, &err_r] {
        fcntl(r, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(|e| format!("fcntl O_NONBLOCK: {e}"))?;
    }
    Ok((Output { stdout: out_r, stderr: err_r, log }, Ends { stdin: in_r, stdout: out_w, stderr: err_w }))
}

/// When to stop copying once the process has ended.
#[derive(Clone, Copy)]
pub(super) enum Drain {
    /// The container's pid 1: its pid namespace is gone with it, and every writer with it, so the pipes
    /// hold only what is left to read.
    Namespace,
    /// An exec's command: go on while output keeps coming within `idle` of the last, up to [`AFTER_EXIT`].
    Linger { idle: Duration },
}

impl Output {
    /// Copies both pipes into the log, in the order the output arrives as far as two pipes tell it, until
    /// both are closed, or `child` (our child, not yet reaped) has ended and `drain` says stop.
    pub(super) fn copy(mut self, child: Pid, drain: Drain) {
        let exited = pidfd(child);
        let mut open = [true, true];
        let mut ended: Option<Instant> = None;
        let mut last_data = Instant::now();
        let mut buf = vec![0u8; 64 * 1024];
        let mut failed = false;
        while open[0] || open[1] {
            let timeout = match (ended, drain) {
                (None, _) => PollTimeout::NONE,
                (Some(end), _) if end.elapsed() >= AFTER_EXIT => break,
                (Some(_), Drain::Namespace) => PollTimeout::ZERO,
                (Some(end), Drain::Linger { idle }) => {
                    let left = idle.saturating_sub(last_data.max(end).elapsed());
                    PollTimeout::try_from(left).unwrap_or(PollTimeout::ZERO)
                }
            };
            let fds = [&self.stdout, &self.stderr];
            let mut polled: Vec<PollFd> = Vec::with_capacity(3);
            let mut which = Vec::with_capacity(3);
            for (i, fd) in fds.iter().enumerate().filter(|(i, _)| open[*i]) {
                polled.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                which.push(i);
            }
            if let (None, Some(pidfd)) = (ended, &exited) {
                polled.push(PollFd::new(pidfd.as_fd(), PollFlags::POLLIN));
                which.push(2);
            }
            match poll(&mut polled, timeout) {
                Ok(0) if ended.is_some() => break,
                Ok(_) => {}
                Err(nix::Error::EINTR) => continue,
                Err(e) => {
                    eprintln!("bocker: poll on the output pipes: {e}");
                    break;
                }
            }
            let ready: Vec<usize> =
                polled.iter().zip(&which).filter(|(p, _)| p.any().unwrap_or(false)).map(|(_, i)| *i).collect();
            // Without a pidfd (a kernel before 5.3) the end of the output is the end.
            for i in ready {
                if i == 2 {
                    ended = Some(Instant::now());
                    continue;
                }
                match nix::unistd::read(fds[i], &mut buf) {
                    Ok(0) => open[i] = false,
                    Ok(n) => {
                        last_data = Instant::now();
                        if let Err(e) = self.log.write(&buf[..n]) {
                            // Output is dropped rather than the container blocked on a full pipe.
                            if !failed {
                                eprintln!("bocker: {e}: dropping output");
                                failed = true;
                            }
                        }
                    }
                    Err(nix::Error::EAGAIN | nix::Error::EINTR) => {}
                    Err(e) => {
                        eprintln!("bocker: read the output pipe: {e}");
                        open[i] = false;
                    }
                }
            }
        }
    }
}

/// A pidfd of `pid`, readable once it has ended; `None` if the kernel has none.
fn pidfd(pid: Pid) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    // SAFETY: the syscall returned a fresh fd that nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

impl Ends {
    /// The raw fds, for the forked child that dups them onto 0, 1 and 2.
    pub(super) fn raw(&self) -> [i32; 3] {
        [self.stdin.as_raw_fd(), self.stdout.as_raw_fd(), self.stderr.as_raw_fd()]
    }
}
