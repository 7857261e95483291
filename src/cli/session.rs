//! One attached session over a monitor's socket (see `crate::attach`): the output to stdout and stderr,
//! stdin (when forwarded) to the command, the window's size at the start and on every SIGWINCH, until the
//! command's EXIT, the detach keys, a signal to the client, or the connection's end. The local terminal
//! is raw only while the session runs: its guard is restored before [`run`] returns, however it returns.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;

use super::keys::{DetachKeys, Matcher};
use super::terminal::{self, RawMode, Signals};
use crate::attach::{Connection, Message, MAX_PACKET};

/// What a session does.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Forward stdin to the command (`-i`; an attach to an `interactive` container).
    pub stdin: bool,
    /// The command has a terminal (`-t`; the container's `tty`): the window's size is sent, and with
    /// `stdin` the local terminal is raw and the detach keys are watched (as Docker: only then).
    pub tty: bool,
    pub keys: DetachKeys,
    /// A re-attach: the size is first sent one row and column larger, so the command redraws (Docker's
    /// trick for a prompt that was printed before this client came).
    pub nudge: bool,
    /// The end of this client's stdin closes the command's (`run -i`, `exec -i`: Docker's StdinOnce); an
    /// attach's leaves it open for the next client.
    pub close_at_eof: bool,
}

/// How a session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The command ended with this code, after all its output.
    Exit(i32),
    /// The detach keys were typed: the command runs on.
    Detached,
    /// The monitor closed the connection without an exit code.
    Closed,
    /// The client got a signal that ends it (SIGINT, SIGTERM, SIGHUP, SIGQUIT).
    Signalled(Signal),
    /// stdout was closed (its reader gone): the client ends quietly, as on any closed pipe.
    StdoutClosed,
}

/// A session's end, and whether any output came.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub ended: Ended,
    /// Some output (stdout or stderr) came: the monitor took this client's hello, so it had all the output
    /// it asked for. None at all may also mean that the command ended before the monitor read the hello
    /// (then it sent no replay); a caller that has the logs can copy them instead.
    pub saw_output: bool,
}

/// Why a session failed (the terminal is restored by then).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot set up the terminal: {0}")]
    Terminal(io::Error),
    #[error("the connection to the container's monitor failed: {0}")]
    Connection(io::Error),
    #[error("cannot write the output: {0}")]
    Output(io::Error),
}

/// How many messages are taken from the socket before stdin gets its turn again.
const BATCH: usize = 64;

/// Runs the session on `conn` (a connection that said hello already) until it ends.
pub fn run(conn: &Connection, plan: &Plan) -> Result<Outcome, SessionError> {
    // The signals first and the raw mode second, so the drops restore the terminal before any signal
    // blocked meanwhile can end the process.
    let signals = Signals::catch().map_err(SessionError::Terminal)?;
    let raw = if plan.stdin && plan.tty { RawMode::enter().map_err(SessionError::Terminal)? } else { None };
    let outcome =
        Session::new(conn, plan).and_then(|mut s| Ok(Outcome { ended: s.pump(&signals)?, saw_output: s.saw_output }));
    drop(raw);
    drop(signals);
    outcome
}

struct Session<'a> {
    conn: &'a Connection,
    /// Messages not yet taken by the socket (it is non-blocking: a monitor that is slow to read never
    /// stops the output from coming).
    outbox: VecDeque<Message>,
    /// Some while stdin is read.
    stdin: Option<Option<Matcher>>,
    close_at_eof: bool,
    /// The window's size is sent (a terminal with a size at both ends).
    resize: bool,
    /// The monitor is gone for writes: nothing more is sent.
    peer_gone: bool,
    saw_output: bool,
}

impl<'a> Session<'a> {
    fn new(conn: &'a Connection, plan: &Plan) -> Result<Session<'a>, SessionError> {
        let flags = fcntl(conn.as_fd(), FcntlArg::F_GETFL).map_err(|e| SessionError::Connection(e.into()))?;
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        fcntl(conn.as_fd(), FcntlArg::F_SETFL(flags)).map_err(|e| SessionError::Connection(e.into()))?;
        let matcher = (plan.tty && plan.stdin).then(|| Matcher::new(&plan.keys));
        let mut s = Session {
            conn,
            outbox: VecDeque::new(),
            stdin: plan.stdin.then_some(matcher),
            close_at_eof: plan.close_at_eof,
            resize: plan.tty && terminal::size().is_some(),
            peer_gone: false,
            saw_output: false,
        };
        if s.resize {
            if let (true, Some((rows, cols))) = (plan.nudge, terminal::size()) {
                s.outbox.push_back(Message::Resize { rows: rows.saturating_add(1), cols: cols.saturating_add(1) });
            }
            s.queue_size();
        }
        Ok(s)
    }

    fn queue_size(&mut self) {
        if let Some((rows, cols)) = terminal::size() {
            self.outbox.push_back(Message::Resize { rows, cols });
        }
    }

    fn pump(&mut self, signals: &Signals) -> Result<Ended, SessionError> {
        let mut buf = vec![0u8; MAX_PACKET - 1];
        loop {
            self.flush()?;
            // stdin waits while the monitor has not taken what was sent: the pipe's pressure reaches
            // the writer, and memory stays bounded.
            let read_stdin = self.stdin.is_some() && self.outbox.is_empty() && !self.peer_gone;
            let mut conn_events = PollFlags::POLLIN;
            if !self.outbox.is_empty() {
                conn_events |= PollFlags::POLLOUT;
            }
            let stdin = io::stdin();
            let mut fds =
                vec![PollFd::new(self.conn.as_fd(), conn_events), PollFd::new(signals.fd(), PollFlags::POLLIN)];
            if read_stdin {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(SessionError::Connection(e.into())),
            }
            let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
            let (conn_ready, signal_ready) = (ready(&fds[0]), ready(&fds[1]));
            let stdin_ready = read_stdin && ready(&fds[2]);
            drop(fds);
            if signal_ready {
                while let Some(signal) = signals.next() {
                    if signal == Signal::SIGWINCH {
                        if self.resize {
                            self.queue_size();
                        }
                    } else {
                        return Ok(Ended::Signalled(signal));
                    }
                }
            }
            if conn_ready {
                if let Some(ended) = self.take_output()? {
                    return Ok(ended);
                }
            }
            if stdin_ready {
                if let Some(ended) = self.take_input(&mut buf)? {
                    return Ok(ended);
                }
            }
        }
    }

    /// Sends what the outbox holds, as far as the socket takes it now.
    fn flush(&mut self) -> Result<(), SessionError> {
        while let Some(m) = self.outbox.front() {
            match self.conn.send(m) {
                Ok(()) => {
                    self.outbox.pop_front();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // The monitor closed its end: what it still sent is read, then the close.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET | libc::ENOTCONN)) => {
                    self.outbox.clear();
                    self.peer_gone = true;
                }
                Err(e) => return Err(SessionError::Connection(e)),
            }
        }
        Ok(())
    }

    /// Takes the messages the socket holds (up to [`BATCH`]); the session's end if one says so.
    fn take_output(&mut self) -> Result<Option<Ended>, SessionError> {
        for _ in 0..BATCH {
            let message = match self.conn.recv() {
                Ok(Some(m)) => m,
                Ok(None) => return Ok(Some(Ended::Closed)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => return Ok(Some(Ended::Closed)),
                Err(e) => return Err(SessionError::Connection(e)),
            };
            if matches!(message, Message::Stdout(_) | Message::Stderr(_)) {
                self.saw_output = true;
            }
            match message {
                Message::Stdout(bytes) => match write_all(io::stdout().as_fd(), &bytes) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(Some(Ended::StdoutClosed)),
                    Err(e) => return Err(SessionError::Output(e)),
                },
                // A closed or failing stderr loses that stream only.
                Message::Stderr(bytes) => {
                    let _ = write_all(io::stderr().as_fd(), &bytes);
                }
                Message::Exit(code) => return Ok(Some(Ended::Exit(code))),
                _ => {}
            }
        }
        Ok(None)
    }

    /// Reads stdin once: its bytes (less the detach keys) to the outbox, or its end.
    fn take_input(&mut self, buf: &mut [u8]) -> Result<Option<Ended>, SessionError> {
        let Some(matcher) = self.stdin.as_mut() else { return Ok(None) };
        let n = match nix::unistd::read(io::stdin(), buf) {
            Ok(n) => n,
            Err(nix::Error::EINTR | nix::Error::EAGAIN) => return Ok(None),
            // A terminal hung up, a closed descriptor: the end of the input, as an EOF.
            Err(_) => 0,
        };
        if n == 0 {
            // A Ctrl-P held as the start of the detach keys was typed: it goes on.
            let held = matcher.as_mut().map(Matcher::take_held).unwrap_or_default();
            if !held.is_empty() {
                self.outbox.push_back(Message::Stdin(held));
            }
            // A raw terminal (the matcher watches only those) reads 0 or fails only once it has hung up
            // (ssh dropped): the client ends as on SIGHUP, and the command's input is left open.
            if matcher.is_some() {
                self.stdin = None;
                return Ok(Some(Ended::Signalled(nix::sys::signal::Signal::SIGHUP)));
            }
            self.stdin = None;
            if self.close_at_eof {
                self.outbox.push_back(Message::CloseStdin);
            }
            return Ok(None);
        }
        let (forward, detach) = match matcher {
            Some(m) => {
                let fed = m.feed(&buf[..n]);
                (fed.forward, fed.detach)
            }
            None => (buf[..n].to_vec(), false),
        };
        for chunk in forward.chunks(MAX_PACKET - 1) {
            self.outbox.push_back(Message::Stdin(chunk.to_vec()));
        }
        if detach {
            // What was typed before the keys still goes, if the monitor takes it soon.
            let deadline = Instant::now() + Duration::from_secs(1);
            while !self.outbox.is_empty() && !self.peer_gone && Instant::now() < deadline {
                self.flush()?;
                let mut fds = [PollFd::new(self.conn.as_fd(), PollFlags::POLLOUT)];
                let _ = poll(&mut fds, PollTimeout::from(100u8));
            }
            return Ok(Some(Ended::Detached));
        }
        Ok(None)
    }
}

/// Writes all of `bytes` to `fd`, waiting while it is full (a terminal shared with a non-blocking
/// reader may be non-blocking).
fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(nix::Error::EINTR) => {}
            Err(nix::Error::EAGAIN) => {
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                let _ = poll(&mut fds, PollTimeout::NONE);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
