//! The local terminal during an attach: raw mode, restored by a guard whatever ends the session (its
//! drop runs on every return, error and unwind); the window's size; and the signals that resize or end
//! a session, taken through a signalfd so that they are handled in the session's poll loop and never
//! end the process with the terminal left raw.

use std::io;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, SetArg, Termios};

/// Whether stdin is a terminal.
pub fn stdin_is_terminal() -> bool {
    nix::unistd::isatty(io::stdin()).unwrap_or(false)
}

/// stdin in raw mode (no echo, no line editing, no signals from keys: every byte typed goes to the
/// container's terminal, whose own line discipline does all that); the settings it had come back when
/// this is dropped.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Puts stdin in raw mode; `None` when it is not a terminal.
    pub fn enter() -> io::Result<Option<RawMode>> {
        if !stdin_is_terminal() {
            return Ok(None);
        }
        let saved = termios::tcgetattr(io::stdin())?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(io::stdin(), SetArg::TCSANOW, &raw)?;
        Ok(Some(RawMode { saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // TCSADRAIN: what was written in raw mode is out before the settings change under it.
        if termios::tcsetattr(io::stdin(), SetArg::TCSADRAIN, &self.saved).is_err() {
            let _ = termios::tcsetattr(io::stdin(), SetArg::TCSANOW, &self.saved);
        }
    }
}

/// The window's size, rows and columns, from stdout's terminal or else stdin's; `None` without one (or
/// with a size of 0: a terminal that never had one set).
pub fn size() -> Option<(u16, u16)> {
    for fd in [libc::STDOUT_FILENO, libc::STDIN_FILENO] {
        let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCGWINSZ writes one `winsize` into the struct passed, which lives for the call; a
        // descriptor that is not a terminal (or is closed) only makes it fail.
        let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
        if r == 0 && ws.ws_row > 0 && ws.ws_col > 0 {
            return Some((ws.ws_row, ws.ws_col));
        }
    }
    None
}

/// The signals a session takes: SIGWINCH (the window changed), and those that end the client
/// (SIGINT, SIGTERM, SIGHUP, SIGQUIT), which end the session first, so the terminal is restored.
pub const ENDING: [Signal; 4] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT];

/// The session's signals, blocked and readable on a descriptor; the mask of before comes back on drop.
pub struct Signals {
    fd: SignalFd,
    old: SigSet,
}

impl Signals {
    /// Blocks SIGWINCH and the [`ENDING`] signals in this thread (the CLI has no other while attached)
    /// and opens a signalfd for them.
    pub fn catch() -> io::Result<Signals> {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGWINCH);
        for s in ENDING {
            mask.add(s);
        }
        let mut old = SigSet::empty();
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&mask), Some(&mut old))?;
        match SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC) {
            Ok(fd) => Ok(Signals { fd, old }),
            Err(e) => {
                let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
                Err(e.into())
            }
        }
    }

    /// The next signal taken, if one is pending.
    pub fn next(&self) -> Option<Signal> {
        loop {
            match self.fd.read_signal() {
                Ok(Some(info)) => match Signal::try_from(info.ssi_signo as i32) {
                    Ok(s) => return Some(s),
                    Err(_) => continue,
                },
                Ok(None) => return None,
                Err(nix::Error::EINTR) => continue,
                Err(_) => return None,
            }
        }
    }

    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&self.old), None);
    }
}

/// Ends the process by `signal` as its default action would (the shell then sees the signal, as after
/// any interrupted command), once the terminal is restored; 128 + its number if that returns.
pub fn die_of(signal: Signal) -> i32 {
    let mut one = SigSet::empty();
    one.add(signal);
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&one), None);
    let _ = nix::sys::signal::raise(signal);
    128 + signal as i32
}
