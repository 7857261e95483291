//! A container's (or an exec's) stdio: stdout and stderr are two pipes whose write ends are the process's
//! fds 1 and 2, and whose read ends its monitor holds and copies into the log (conmon's pattern); stdin is
//! the read end of a pipe with no writer, which reads as `/dev/null` does (EOF), or with `interactive` one
//! whose write end the monitor holds. With `tty` all three are a terminal the process makes in its own
//! devpts ([`super::terminal`]) and whose master the monitor reads instead. No host file is ever in the
//! container (the host's `/dev/null` as fd 0 could be chmod'ed through `/proc/self/fd/0`), and the copy
//! runs in the monitor, which outlives the daemon, so a daemon crash loses no byte. The same loop serves
//! the attach socket ([`super::server`]).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::unistd::Pid;

use super::server::{Server, Stdin};
use crate::logs::{LogLimits, Writer};

/// How long copying goes on after the process has ended, at most, while its pipes still give output (an
/// exec's background children may hold them).
const AFTER_EXIT: Duration = Duration::from_secs(2);

/// The keys of the epoll events: which pipe, the terminal, or the process's end (the attach socket's
/// are [`super::server::LISTENER`] and up).
const OUT: u64 = 0;
const ERR: u64 = 1;
const EXITED: u64 = 2;
const TERMINAL: u64 = 3;

/// How the process's stdio is made (its `tty` and `interactive`).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct StdioMode {
    pub tty: bool,
    pub interactive: bool,
}

/// The process's ends: of the pipes, for its fds 0, 1 and 2, and with `tty` the socket its terminal's
/// master is sent on.
pub(super) struct Ends {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub console: Option<OwnedFd>,
}

/// The monitor's side: the read ends and the log they go to.
pub(super) struct Output {
    stdout: OwnedFd,
    stderr: OwnedFd,
    /// Watches both, from before the process exists, so even its first writes are seen in their order.
    epoll: Epoll,
    log: Writer,
    /// A write to the log failed once already (said once on the monitor's stderr).
    failed: bool,
    mode: StdioMode,
    /// With `tty`: the monitor's end of the socket the master comes on, and then the master.
    console: Option<OwnedFd>,
    terminal: Option<OwnedFd>,
    server: Server,
}

/// Opens the log in `dir`, makes the pipes (close-on-exec: the process's fds 0, 1 and 2 are dup'd from
/// them, and the dups are not) and listens on the attach socket at `socket`.
pub(super) fn open(
    dir: &std::path::Path,
    limits: LogLimits,
    mode: StdioMode,
    socket: &std::path::Path,
) -> Result<(Output, Ends), String> {
    let log = Writer::open(dir, limits).map_err(|e| e.to_string())?;
    let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"));
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    // Unless interactive (and not a terminal's), its write end is closed at once: reads of stdin see the
    // end of input.
    let (in_r, in_w) = pipe()?;
    let stdin = match (mode.interactive, mode.tty) {
        (true, false) => Stdin::Pipe(in_w),
        _ => Stdin::Closed,
    };
    let (console, child_console) = match mode.tty {
        true => super::terminal::console_pair().map(|(a, b)| (Some(a), Some(b)))?,
        false => (None, None),
    };
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(|e| format!("epoll: {e}"))?;
    for (r, key) in [(&out_r, OUT), (&err_r, ERR)] {
        fcntl(r, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(|e| format!("fcntl O_NONBLOCK: {e}"))?;
        // Edge-triggered: each write to an emptied pipe queues it anew, behind what was written before.
        let edge = EpollFlags::EPOLLIN | EpollFlags::EPOLLET;
        epoll.add(r, EpollEvent::new(edge, key)).map_err(|e| format!("epoll_ctl: {e}"))?;
    }
    let server = Server::bind(socket, stdin)?;
    server.register(&epoll)?;
    let output =
        Output { stdout: out_r, stderr: err_r, epoll, log, failed: false, mode, console, terminal: None, server };
    Ok((output, Ends { stdin: in_r, stdout: out_w, stderr: err_w, console: child_console }))
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
    /// With `tty`, once the process has exec'd: takes the terminal's master it sent, and reads it from
    /// now on.
    pub(super) fn take_terminal(&mut self) {
        let Some(master) = self.console.take().and_then(|c| super::terminal::receive_master(&c)) else { return };
        let _ = fcntl(&master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
        let edge = EpollFlags::EPOLLIN | EpollFlags::EPOLLET;
        if let Err(e) = self.epoll.add(&master, EpollEvent::new(edge, TERMINAL)) {
            eprintln!("bocker: epoll_ctl on the terminal: {e}");
            return;
        }
        self.server.set_terminal(&master, self.mode.interactive);
        self.terminal = Some(master);
    }

    /// Copies the output into the log and to the attached clients until it has all been read (the pipes
    /// and the terminal closed) and `child` (our child, not yet reaped) has ended, or it has ended and
    /// `drain` says stop; then gives back the attach server, to send the exit code.
    ///
    /// The order of the output across the two pipes is kept as far as they tell it: the pipes are watched
    /// edge-triggered by epoll, whose ready list is in the order the pipes were first written to since
    /// they were last read, and they are read in that order (`echo a; echo b >&2` and `echo a >&2; echo b`
    /// both keep theirs). Writes that alternate faster than the monitor reads are grouped per stream.
    pub(super) fn copy(mut self, child: Pid, drain: Drain) -> Server {
        // Without a pidfd (a kernel before 5.3) the end of the output is the end.
        let exited = pidfd(child);
        if let Some(fd) = &exited {
            if let Err(e) = self.epoll.add(fd, EpollEvent::new(EpollFlags::EPOLLIN, EXITED)) {
                eprintln!("bocker: epoll_ctl on the pidfd: {e}");
            }
        }
        let mut open = [true, true, self.terminal.is_some()];
        let mut ended: Option<Instant> = None;
        let mut last_data = Instant::now();
        let mut buf = vec![0u8; 32 * 1024];
        let mut events = [EpollEvent::empty(); 16];
        // Until the output has ended and, where a pidfd tells it, the process too: one that closed its
        // stdout and stderr still has its stdin and its clients served.
        while open.iter().any(|o| *o) || (exited.is_some() && ended.is_none()) {
            let timeout = match (ended, drain) {
                (None, _) => EpollTimeout::NONE,
                (Some(end), _) if end.elapsed() >= AFTER_EXIT => break,
                // Every write end is closed with the namespace: what is ready now is all there is (the
                // pipes' last data and their hangups), taken in the order it came.
                (Some(_), Drain::Namespace) => EpollTimeout::ZERO,
                (Some(end), Drain::Linger { idle }) => {
                    let left = idle.saturating_sub(last_data.max(end).elapsed());
                    EpollTimeout::try_from(left).unwrap_or(EpollTimeout::ZERO)
                }
            };
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(0) if ended.is_some() => break,
                Ok(n) => n,
                Err(nix::Error::EINTR) => continue,
                Err(e) => {
                    eprintln!("bocker: epoll_wait on the output pipes: {e}");
                    break;
                }
            };
            for event in &events[..n] {
                let i = event.data();
                if Server::owns(i) {
                    self.server.event(&self.epoll, i, event.events());
                    continue;
                }
                if i == EXITED {
                    ended = Some(Instant::now());
                    if let Some(fd) = &exited {
                        let _ = self.epoll.delete(fd);
                    }
                    continue;
                }
                let (i, source) = match (i, &self.terminal) {
                    (OUT, _) => (0, &self.stdout),
                    (ERR, _) => (1, &self.stderr),
                    (TERMINAL, Some(t)) => (2, t),
                    _ => continue,
                };
                // Edge-triggered: read until the pipe is empty (or closed).
                while open[i] {
                    match nix::unistd::read(source, &mut buf) {
                        Ok(0) => open[i] = false,
                        Ok(n) => {
                            last_data = Instant::now();
                            self.server.output(&self.epoll, i == 1, &buf[..n]);
                            if let Err(e) = self.log.write(crate::logs::Stream::from_pipe(i), &buf[..n]) {
                                // Output is dropped rather than the container blocked on a full pipe.
                                if !self.failed {
                                    eprintln!("bocker: {e}: dropping output");
                                    self.failed = true;
                                }
                            }
                        }
                        Err(nix::Error::EINTR) => {}
                        Err(nix::Error::EAGAIN) => break,
                        // A terminal whose every peer is closed reads EIO: its end.
                        Err(nix::Error::EIO) if i == 2 => open[i] = false,
                        Err(e) => {
                            eprintln!("bocker: read the output pipe: {e}");
                            open[i] = false;
                        }
                    }
                }
            }
        }
        self.server
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

    /// The raw fd of the socket the terminal's master goes on, with `tty`.
    pub(super) fn console(&self) -> Option<i32> {
        self.console.as_ref().map(|c| c.as_raw_fd())
    }
}
