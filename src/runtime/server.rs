//! The monitor's attach socket (see [`crate::attach`] for the protocol, docs/attach.md for the whole): it
//! serves the container's terminal or stdin to clients (`bocker run -it`, `bocker attach`, the daemon's
//! `stdin` file), from the monitor, which outlives the daemon, so a daemon crash or restart never ends an
//! attached session.
//!
//! Everything here runs on the monitor's one thread, driven by its epoll loop ([`super::output`]): no
//! call blocks. Input from clients is queued for the command's stdin (at most [`STDIN_QUEUED`] bytes;
//! past that, clients are not read until the command takes some); output is sent to every client that
//! asked for it, queued per client while its socket is full (a client more than [`CLIENT_QUEUED`] bytes
//! behind is dropped: a stuck client never stalls the container).

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};

use crate::attach::{self, Message};

/// The most input held for the command's stdin.
const STDIN_QUEUED: usize = 1 << 20;
/// The most output held for one client.
const CLIENT_QUEUED: usize = 4 << 20;
/// The most clients at once; more are refused (closed at once).
const MAX_CLIENTS: usize = 64;
/// How long the end waits for clients to take what is left and the exit code.
const FINISH_WITHIN: Duration = Duration::from_secs(2);

/// The epoll keys: the listener, stdin (the pipe or the master's duplicate), and clients from [`FIRST_CLIENT`] on (the output loop
/// uses the keys below [`LISTENER`]).
pub(super) const LISTENER: u64 = 8;
const STDIN_PIPE: u64 = 9;
const FIRST_CLIENT: u64 = 16;

/// Where the command's stdin comes from.
pub(super) enum Stdin {
    /// Not interactive: stdin is a pipe with no writer; input is refused (`EBADF`).
    Closed,
    /// The write end of the command's stdin pipe.
    Pipe(OwnedFd),
    /// A terminal's master: input is typed into it.
    Terminal(OwnedFd),
    /// It was open and has been closed (asked for, or the command closed its end): input is refused
    /// (`EPIPE`).
    Ended,
}

struct Client {
    fd: OwnedFd,
    flags: u8,
    /// Packets not yet taken by its socket.
    queued: VecDeque<Vec<u8>>,
    queued_bytes: usize,
    /// Whether its socket is watched for room (it has packets queued).
    watching_out: bool,
    /// The errno of its first input or close since its last [`attach::SYNC`] that was not taken.
    refused: i32,
    /// Its hello was read (until then it is read even while input is paused, to learn its flags).
    greeted: bool,
    /// Out of the epoll set while input is paused: it hung up, which epoll would report for ever (what
    /// it sent before is still to be read, once input resumes).
    parked: bool,
}

impl Client {
    fn new(fd: OwnedFd) -> Client {
        Client {
            fd,
            flags: 0,
            queued: VecDeque::new(),
            queued_bytes: 0,
            watching_out: false,
            refused: 0,
            greeted: false,
            parked: false,
        }
    }

    /// Whether it is read while input is paused: before its hello, and a client that has its input
    /// refused when it doesn't fit rather than waiting ([`attach::REFUSE_WHEN_FULL`], the daemon's).
    fn never_paused(&self) -> bool {
        !self.greeted || self.flags & attach::REFUSE_WHEN_FULL != 0
    }
}

pub(super) struct Server {
    listener: OwnedFd,
    path: PathBuf,
    clients: HashMap<u64, Client>,
    next_key: u64,
    stdin: Stdin,
    /// Input not yet written to stdin.
    pending_in: VecDeque<u8>,
    /// Whether the stdin pipe's write end is watched for room.
    watching_in: bool,
    /// A close was asked for: once `pending_in` is written, stdin is closed.
    close_after: bool,
    /// Clients are not read while the stdin queue is full.
    reading_paused: bool,
    /// Output written while no client took output (stderr or not, bytes), for the first that asks for
    /// a replay; `unseen_bytes` is their size.
    unseen: VecDeque<(bool, Vec<u8>)>,
    unseen_bytes: usize,
    /// The terminal, for its size.
    terminal: Option<OwnedFd>,
}

fn err(what: &str) -> impl Fn(nix::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

impl Server {
    /// Listens at `path` (any old socket there is replaced), 0600, for the command whose stdin is `stdin`.
    pub(super) fn bind(path: &Path, stdin: Stdin) -> Result<Server, String> {
        let _ = std::fs::remove_file(path);
        let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
        let listener =
            socket::socket(AddressFamily::Unix, SockType::SeqPacket, flags, None).map_err(err("the attach socket"))?;
        // Through its directory's descriptor: a state directory's path may be longer than an address.
        let (_dir, addr) = attach::address(path).map_err(|e| format!("the attach socket's address: {e}"))?;
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
        let bound = socket::bind(listener.as_raw_fd(), &addr);
        nix::sys::stat::umask(old);
        bound.map_err(err("bind the attach socket"))?;
        socket::listen(&listener, socket::Backlog::new(16).unwrap_or(socket::Backlog::MAXCONN))
            .map_err(err("listen on the attach socket"))?;
        if let Stdin::Pipe(fd) = &stdin {
            let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK));
        }
        Ok(Server {
            listener,
            path: path.to_path_buf(),
            clients: HashMap::new(),
            next_key: FIRST_CLIENT,
            stdin,
            pending_in: VecDeque::new(),
            watching_in: false,
            close_after: false,
            reading_paused: false,
            unseen: VecDeque::new(),
            unseen_bytes: 0,
            terminal: None,
        })
    }

    /// Adds the listener to the loop's `epoll` set.
    pub(super) fn register(&self, epoll: &Epoll) -> Result<(), String> {
        epoll.add(&self.listener, EpollEvent::new(EpollFlags::EPOLLIN, LISTENER)).map_err(err("epoll_ctl"))
    }

    /// The terminal's master has come (after the command's exec): input goes to it from now on, if the
    /// command is interactive (`keep_input`), and resizes reach it.
    pub(super) fn set_terminal(&mut self, master: &OwnedFd, keep_input: bool) {
        self.terminal = master.try_clone().ok();
        if keep_input {
            if let Ok(fd) = master.try_clone() {
                self.stdin = Stdin::Terminal(fd);
            }
        }
    }

    /// Whether `key` is one of this server's.
    pub(super) fn owns(key: u64) -> bool {
        key >= LISTENER
    }

    /// Handles an event of the loop for `key`.
    pub(super) fn event(&mut self, epoll: &Epoll, key: u64, flags: EpollFlags) {
        match key {
            LISTENER => self.accept(epoll),
            STDIN_PIPE => self.write_stdin(epoll),
            k => {
                if flags.intersects(EpollFlags::EPOLLOUT) {
                    self.flush(epoll, k);
                }
                if flags.intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR) {
                    self.read_client(epoll, k);
                }
                let paused = self.reading_paused;
                let hung_up = flags.intersects(EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR);
                if let Some(c) = self.clients.get_mut(&k).filter(|c| paused && hung_up && !c.never_paused()) {
                    let _ = epoll.delete(&c.fd);
                    c.parked = true;
                }
            }
        }
    }

    fn accept(&mut self, epoll: &Epoll) {
        loop {
            let fd = match socket::accept4(self.listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK)
            {
                // SAFETY: accept4 returned a fresh descriptor that nothing else owns.
                Ok(fd) => unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) },
                Err(nix::Error::EINTR) => continue,
                Err(_) => return,
            };
            if self.clients.len() >= MAX_CLIENTS {
                continue;
            }
            let key = self.next_key;
            self.next_key += 1;
            // Read until its hello, paused or not.
            if epoll.add(&fd, EpollEvent::new(EpollFlags::EPOLLIN, key)).is_ok() {
                self.clients.insert(key, Client::new(fd));
            }
        }
    }

    fn read_client(&mut self, epoll: &Epoll, key: u64) {
        let mut buf = vec![0u8; attach::MAX_PACKET];
        loop {
            let Some(client) = self.clients.get(&key) else { return };
            if self.reading_paused && !client.never_paused() {
                return;
            }
            let n = match socket::recv(client.fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(0) => return self.drop_client(epoll, key),
                Ok(n) => n,
                Err(nix::Error::EINTR) => continue,
                Err(nix::Error::EAGAIN) => return,
                Err(_) => return self.drop_client(epoll, key),
            };
            self.take(epoll, key, Message::decode(&buf[..n]));
        }
    }

    /// What a client's message asks.
    fn take(&mut self, epoll: &Epoll, key: u64, message: Message) {
        match message {
            Message::Hello { flags } => {
                let paused = self.reading_paused;
                if let Some(c) = self.clients.get_mut(&key) {
                    (c.flags, c.greeted) = (flags, true);
                    let _ = epoll.modify(&c.fd, &mut EpollEvent::new(interest(c, paused), key));
                }
                if flags & attach::WANT_OUTPUT != 0 {
                    // Replayed to this one if it asks, and to no later one either way.
                    let unseen = std::mem::take(&mut self.unseen);
                    self.unseen_bytes = 0;
                    for (stderr, bytes) in unseen.into_iter().filter(|_| flags & attach::REPLAY != 0) {
                        self.send(epoll, key, output_packet(stderr, &bytes));
                    }
                }
            }
            Message::Stdin(bytes) if self.takes_input() && self.refuses(key, bytes.len()) => {
                if let Some(c) = self.clients.get_mut(&key).filter(|c| c.refused == 0) {
                    c.refused = libc::EAGAIN;
                }
            }
            Message::Stdin(bytes) if self.takes_input() => {
                self.pending_in.extend(bytes);
                self.write_stdin(epoll);
            }
            Message::CloseStdin if self.takes_input() => self.close_stdin(epoll),
            Message::Stdin(_) | Message::CloseStdin => {
                let errno = self.refusal();
                if let Some(c) = self.clients.get_mut(&key).filter(|c| c.refused == 0) {
                    c.refused = errno;
                }
            }
            Message::Resize { rows, cols } => {
                if let Some(t) = &self.terminal {
                    super::terminal::set_size(t.as_fd(), rows, cols);
                }
            }
            Message::Sync(_) => {
                let errno = self.clients.get_mut(&key).map_or(0, |c| std::mem::take(&mut c.refused));
                self.send(epoll, key, Message::Sync(errno).encode());
            }
            // Not a client's to send.
            _ => {}
        }
    }

    /// Writes what input is queued, as far as stdin takes it now; closes stdin when that was asked and
    /// nothing is left.
    fn write_stdin(&mut self, epoll: &Epoll) {
        loop {
            if self.pending_in.is_empty() {
                break;
            }
            let fd = match &self.stdin {
                Stdin::Pipe(fd) | Stdin::Terminal(fd) => fd,
                Stdin::Closed | Stdin::Ended => return self.pending_in.clear(),
            };
            let (front, _) = self.pending_in.as_slices();
            match nix::unistd::write(fd, front) {
                Ok(n) => drop(self.pending_in.drain(..n)),
                Err(nix::Error::EINTR) => continue,
                Err(nix::Error::EAGAIN) => break,
                // The command closed its end (EPIPE), or the terminal is gone (EIO).
                Err(_) => {
                    self.pending_in.clear();
                    self.end_stdin(epoll);
                    break;
                }
            }
        }
        if self.pending_in.is_empty() && self.close_after {
            self.close_after = false;
            self.finish_close(epoll);
        }
        self.watch_stdin(epoll);
        self.pace_clients(epoll);
    }

    /// Whether input is taken: stdin is open and no close was asked for.
    fn takes_input(&self) -> bool {
        matches!(self.stdin, Stdin::Pipe(_) | Stdin::Terminal(_)) && !self.close_after
    }

    /// Why input is not taken now: never open to writes (`EBADF`), or closed (`EPIPE`).
    fn refusal(&self) -> i32 {
        match self.stdin {
            Stdin::Closed => libc::EBADF,
            _ => libc::EPIPE,
        }
    }

    /// Whether client `key`'s `len` bytes of input are refused rather than queued: it asked for that
    /// ([`attach::REFUSE_WHEN_FULL`]) and they don't fit in the queue.
    fn refuses(&self, key: u64, len: usize) -> bool {
        let asked = self.clients.get(&key).is_some_and(|c| c.flags & attach::REFUSE_WHEN_FULL != 0);
        asked && self.pending_in.len() + len > STDIN_QUEUED
    }

    fn close_stdin(&mut self, epoll: &Epoll) {
        // On a terminal, the end of input is its EOF character, typed after what waits.
        if let Stdin::Terminal(fd) = &self.stdin {
            self.pending_in.push_back(super::terminal::eof_char(fd.as_fd()));
        }
        self.close_after = true;
        self.write_stdin(epoll);
    }

    /// Closes stdin: a pipe's write end is closed (the command reads the end of input); on a terminal,
    /// its end-of-file character is typed (^D: a shell at its prompt ends, `cat` sees the end).
    fn finish_close(&mut self, epoll: &Epoll) {
        self.end_stdin(epoll);
    }

    /// Stdin is at its end from now on. Its descriptor leaves the epoll set before it is closed: the set
    /// would keep a duplicate of the master (whose original the output loop holds) and report it for ever.
    fn end_stdin(&mut self, epoll: &Epoll) {
        if let Stdin::Pipe(fd) | Stdin::Terminal(fd) = &self.stdin {
            if self.watching_in {
                let _ = epoll.delete(fd);
                self.watching_in = false;
            }
        }
        self.stdin = Stdin::Ended;
    }

    /// Watches stdin (the pipe, or this server's own duplicate of the terminal's master) for room while
    /// input waits for it.
    fn watch_stdin(&mut self, epoll: &Epoll) {
        let (Stdin::Pipe(fd) | Stdin::Terminal(fd)) = &self.stdin else { return };
        let want = !self.pending_in.is_empty();
        if want != self.watching_in {
            let result = match want {
                true => epoll.add(fd, EpollEvent::new(EpollFlags::EPOLLOUT, STDIN_PIPE)),
                false => epoll.delete(fd),
            };
            if result.is_ok() {
                self.watching_in = want;
            }
        }
    }

    /// Stops reading clients while the stdin queue is full, and starts again once it has room.
    fn pace_clients(&mut self, epoll: &Epoll) {
        let pause = self.pending_in.len() >= STDIN_QUEUED;
        if pause == self.reading_paused {
            return;
        }
        self.reading_paused = pause;
        for (key, c) in self.clients.iter_mut() {
            let event = EpollEvent::new(interest(c, pause), *key);
            let _ = match std::mem::take(&mut c.parked) {
                true => epoll.add(&c.fd, event),
                false => epoll.modify(&c.fd, &mut { event }),
            };
        }
    }

    /// Output of the command (`stderr` or not) for the clients that take it, or kept for a replay.
    pub(super) fn output(&mut self, epoll: &Epoll, stderr: bool, bytes: &[u8]) {
        let takers: Vec<u64> =
            self.clients.iter().filter(|(_, c)| c.flags & attach::WANT_OUTPUT != 0).map(|(k, _)| *k).collect();
        if takers.is_empty() {
            self.unseen.push_back((stderr, bytes.to_vec()));
            self.unseen_bytes += bytes.len();
            while self.unseen_bytes > attach::REPLAY_MAX {
                let Some((_, old)) = self.unseen.pop_front() else { break };
                self.unseen_bytes -= old.len();
            }
            return;
        }
        let packet = output_packet(stderr, bytes);
        for key in &takers {
            self.send(epoll, *key, packet.clone());
        }
    }

    /// Sends `packet` to client `key`, or queues it behind what is queued.
    fn send(&mut self, epoll: &Epoll, key: u64, packet: Vec<u8>) {
        let Some(c) = self.clients.get_mut(&key) else { return };
        if c.queued.is_empty() {
            match socket::send(c.fd.as_raw_fd(), &packet, MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL) {
                Ok(_) => return,
                Err(nix::Error::EAGAIN) => {}
                Err(_) => return self.drop_client(epoll, key),
            }
        }
        c.queued_bytes += packet.len();
        c.queued.push_back(packet);
        if c.queued_bytes > CLIENT_QUEUED {
            return self.drop_client(epoll, key);
        }
        if !c.watching_out {
            c.watching_out = true;
            let _ = epoll.modify(&c.fd, &mut EpollEvent::new(interest(c, self.reading_paused), key));
        }
    }

    /// Sends what client `key` has queued, as far as its socket takes it.
    fn flush(&mut self, epoll: &Epoll, key: u64) {
        let Some(c) = self.clients.get_mut(&key) else { return };
        while let Some(packet) = c.queued.front() {
            match socket::send(c.fd.as_raw_fd(), packet, MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL) {
                Ok(_) => {
                    c.queued_bytes -= packet.len();
                    c.queued.pop_front();
                }
                Err(nix::Error::EAGAIN) => break,
                Err(_) => return self.drop_client(epoll, key),
            }
        }
        if c.queued.is_empty() && c.watching_out {
            c.watching_out = false;
            let _ = epoll.modify(&c.fd, &mut EpollEvent::new(interest(c, self.reading_paused), key));
        }
    }

    fn drop_client(&mut self, epoll: &Epoll, key: u64) {
        if let Some(c) = self.clients.remove(&key) {
            let _ = epoll.delete(&c.fd);
        }
    }

    /// The command has ended with `exit_code` and all its output was given: stops listening, sends each
    /// client what it has queued and the exit code (within [`FINISH_WITHIN`] in all), and closes them.
    pub(super) fn finish(mut self, exit_code: i32) {
        let _ = std::fs::remove_file(&self.path);
        // Those still in the listener's backlog get the exit code too.
        while let Ok(fd) = socket::accept4(self.listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK)
        {
            // SAFETY: accept4 returned a fresh descriptor that nothing else owns.
            let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            let key = self.next_key;
            self.next_key += 1;
            self.clients.insert(key, Client::new(fd));
        }
        let deadline = Instant::now() + FINISH_WITHIN;
        let exit = Message::Exit(exit_code).encode();
        let mut unseen = std::mem::take(&mut self.unseen);
        for (_, mut c) in self.clients.drain() {
            // What each sent that wasn't read yet is read now, before its socket is closed: a socket closed
            // with packets unread resets its peer's, whose next read fails (ECONNRESET) before it gets the
            // packets queued for it. A hello may ask for the output it came for (a quick command can end
            // before its client's hello is read); a sync is answered; input comes too late (EPIPE).
            let mut buf = vec![0u8; attach::MAX_PACKET];
            while let Ok(n @ 1..) = socket::recv(c.fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                match Message::decode(&buf[..n]) {
                    Message::Hello { flags } if !c.greeted => {
                        (c.flags, c.greeted) = (flags, true);
                        let replay = flags & attach::REPLAY != 0 && flags & attach::WANT_OUTPUT != 0;
                        for (stderr, bytes) in std::mem::take(&mut unseen).into_iter().filter(|_| replay) {
                            c.queued.push_back(output_packet(stderr, &bytes));
                        }
                    }
                    Message::Stdin(_) if c.refused == 0 => c.refused = libc::EPIPE,
                    Message::Sync(_) => c.queued.push_back(Message::Sync(std::mem::take(&mut c.refused)).encode()),
                    _ => {}
                }
            }
            c.queued.push_back(exit.clone());
            while let Some(packet) = c.queued.pop_front() {
                if !send_by(c.fd.as_fd(), &packet, deadline) {
                    break;
                }
            }
        }
    }
}

impl Drop for Server {
    /// The socket goes with its server, whichever way the monitor ends (a failed setup too).
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The packet of a piece of output (at most [`attach::MAX_PACKET`]: output is read in pieces that fit).
fn output_packet(stderr: bool, bytes: &[u8]) -> Vec<u8> {
    let bytes = bytes[..bytes.len().min(attach::MAX_PACKET - 1)].to_vec();
    match stderr {
        true => Message::Stderr(bytes),
        false => Message::Stdout(bytes),
    }
    .encode()
}

/// What to watch a client's socket for.
fn interest(c: &Client, paused: bool) -> EpollFlags {
    let mut flags = EpollFlags::empty();
    if !paused || c.never_paused() {
        flags |= EpollFlags::EPOLLIN;
    }
    if c.watching_out {
        flags |= EpollFlags::EPOLLOUT;
    }
    flags
}

/// Sends `packet` on a non-blocking socket, waiting for room until `deadline`.
fn send_by(fd: BorrowedFd<'_>, packet: &[u8], deadline: Instant) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    loop {
        match socket::send(fd.as_raw_fd(), packet, MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL) {
            Ok(_) => return true,
            Err(nix::Error::EAGAIN) | Err(nix::Error::EINTR) => {}
            Err(_) => return false,
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
        let _ = poll(&mut fds, PollTimeout::try_from(left).unwrap_or(PollTimeout::ZERO));
    }
}
