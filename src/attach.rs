//! The attach protocol: how a client (`bocker run -it`, `bocker attach`, the daemon's `stdin` file) talks
//! to the monitor that holds a container's terminal or stdin, on the unix socket the tree's `attach`
//! symlink points at (see docs/attach.md).
//!
//! The socket is `SOCK_SEQPACKET`: every message is one packet, its first byte the message's kind, so no
//! framing is needed and a packet is never split or joined. Up to [`MAX_PACKET`] bytes.
//!
//! Client to monitor: [`HELLO`] first (its flags: whether to send this client the output, whether to
//! replay the output nobody has seen yet, whether input that doesn't fit is refused), then any of [`STDIN`] (bytes for the command's stdin),
//! [`RESIZE`] (rows and columns, little-endian `u16`s: set on the terminal, so the command gets
//! SIGWINCH), [`CLOSE_STDIN`] (the end of the input), [`SYNC`] (answered with [`SYNC`] and an errno once
//! everything this client sent before it was taken: 0, or for the first input or close since the last
//! sync that was refused, `EBADF` when stdin is not open to writes (`interactive` false) or `EPIPE` when
//! it had been closed).
//!
//! Monitor to client: [`STDOUT`] and [`STDERR`] (the output as it comes; a terminal's is all
//! [`STDOUT`]), [`SYNC`], and [`EXIT`] with the exit code (little-endian `i32`) when the command has
//! ended and all its output was sent; then the monitor closes the connection.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};

/// Bytes for the command's stdin.
pub const STDIN: u8 = b'i';
/// The command's stdout (or its terminal's output).
pub const STDOUT: u8 = b'o';
/// The command's stderr.
pub const STDERR: u8 = b'e';
/// The client's terminal size: rows, columns (`u16` each, little-endian).
pub const RESIZE: u8 = b'w';
/// The end of the input: the command's stdin is closed (on a terminal, the terminal's EOF character).
pub const CLOSE_STDIN: u8 = b'c';
/// A request for an answer once everything sent before it was taken, and that answer (an `i32` errno).
pub const SYNC: u8 = b's';
/// The command ended: its exit code (`i32`, little-endian), the last message.
pub const EXIT: u8 = b'x';
/// The first message of a client: one byte of flags ([`WANT_OUTPUT`], [`REPLAY`]).
pub const HELLO: u8 = b'h';

/// In [`HELLO`]: send this client the output.
pub const WANT_OUTPUT: u8 = 1;
/// In [`HELLO`]: first send the output written while no client took output (at most [`REPLAY_MAX`]
/// bytes: a `run -it` attaches just after the start, and the prompt may come before it).
pub const REPLAY: u8 = 2;

/// In [`HELLO`]: input that doesn't fit in the monitor's queue (1 MiB) is refused whole, the next
/// [`SYNC`] answering `EAGAIN`, instead of this client waiting until the command reads (the daemon's
/// `stdin` file: a write is all taken or none of it).
pub const REFUSE_WHEN_FULL: u8 = 4;

/// The largest packet, kind byte included: a whole write to `stdin` (64 KiB) fits in one.
pub const MAX_PACKET: usize = 64 * 1024 + 1;
/// The most output kept for [`REPLAY`].
pub const REPLAY_MAX: usize = 64 * 1024;

/// The socket's name in a container's state directory or an exec's directory.
pub const SOCKET_NAME: &str = "attach.sock";

/// A message, parsed; what a peer sent that doesn't parse is [`Message::Unknown`] (ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Hello {
        flags: u8,
    },
    Stdin(Vec<u8>),
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Resize {
        rows: u16,
        cols: u16,
    },
    CloseStdin,
    /// A [`SYNC`]: from a client, empty; from the monitor, the errno (0 for none).
    Sync(i32),
    Exit(i32),
    Unknown,
}

impl Message {
    /// The packet for this message.
    pub fn encode(&self) -> Vec<u8> {
        let with = |kind: u8, body: &[u8]| {
            let mut p = Vec::with_capacity(body.len() + 1);
            p.push(kind);
            p.extend_from_slice(body);
            p
        };
        match self {
            Message::Hello { flags } => vec![HELLO, *flags],
            Message::Stdin(b) => with(STDIN, b),
            Message::Stdout(b) => with(STDOUT, b),
            Message::Stderr(b) => with(STDERR, b),
            Message::Resize { rows, cols } => {
                let mut p = vec![RESIZE];
                p.extend_from_slice(&rows.to_le_bytes());
                p.extend_from_slice(&cols.to_le_bytes());
                p
            }
            Message::CloseStdin => vec![CLOSE_STDIN],
            Message::Sync(e) => with(SYNC, &e.to_le_bytes()),
            Message::Exit(code) => with(EXIT, &code.to_le_bytes()),
            Message::Unknown => Vec::new(),
        }
    }

    /// The message a packet holds; never panics on any bytes.
    pub fn decode(packet: &[u8]) -> Message {
        let Some((&kind, body)) = packet.split_first() else { return Message::Unknown };
        let int = |b: &[u8]| <[u8; 4]>::try_from(b).ok().map(i32::from_le_bytes);
        match kind {
            HELLO if body.len() == 1 => Message::Hello { flags: body[0] },
            STDIN => Message::Stdin(body.to_vec()),
            STDOUT => Message::Stdout(body.to_vec()),
            STDERR => Message::Stderr(body.to_vec()),
            RESIZE if body.len() == 4 => Message::Resize {
                rows: u16::from_le_bytes([body[0], body[1]]),
                cols: u16::from_le_bytes([body[2], body[3]]),
            },
            CLOSE_STDIN if body.is_empty() => Message::CloseStdin,
            SYNC if body.is_empty() => Message::Sync(0),
            SYNC => int(body).map_or(Message::Unknown, Message::Sync),
            EXIT => int(body).map_or(Message::Unknown, Message::Exit),
            _ => Message::Unknown,
        }
    }
}

/// The address of the socket at `path`, through its directory's descriptor (`/proc/self/fd/N/NAME`,
/// valid while the returned directory is open): a path may be longer than a socket address allows.
pub fn address(path: &Path) -> io::Result<(std::fs::File, UnixAddr)> {
    let dir = std::fs::File::open(path.parent().unwrap_or(Path::new("/")))?;
    let name = path.file_name().ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    let short = Path::new("/proc/self/fd").join(dir.as_raw_fd().to_string()).join(name);
    let addr = UnixAddr::new(&short)?;
    Ok((dir, addr))
}

/// A client's connection to a monitor's socket.
pub struct Connection {
    fd: OwnedFd,
}

impl Connection {
    /// Connects to the socket at `path` (through the tree's `attach` symlink, or the state directory) and
    /// says hello with `flags`. A path longer than a socket address may be is reached through its
    /// directory's descriptor.
    pub fn connect(path: &Path, flags: u8) -> io::Result<Connection> {
        Connection::connect_within(path, flags, None)
    }

    /// [`Connection::connect`], every wait bounded by `timeout` from the start (a connect waits while
    /// the listener's backlog is full; then sends and receives).
    pub fn connect_within(path: &Path, flags: u8, timeout: Option<std::time::Duration>) -> io::Result<Connection> {
        let fd = socket::socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None)?;
        let conn = Connection { fd };
        if let Some(t) = timeout {
            conn.set_timeout(t)?;
        }
        let (_dir, addr) = address(path)?;
        socket::connect(conn.fd.as_raw_fd(), &addr)?;
        conn.send(&Message::Hello { flags })?;
        Ok(conn)
    }

    /// Sends one message (blocking).
    pub fn send(&self, message: &Message) -> io::Result<()> {
        let packet = message.encode();
        socket::send(self.fd.as_raw_fd(), &packet, MsgFlags::MSG_NOSIGNAL)?;
        Ok(())
    }

    /// Sends `bytes` as stdin, in packets of at most [`MAX_PACKET`].
    pub fn send_stdin(&self, bytes: &[u8]) -> io::Result<()> {
        for chunk in bytes.chunks(MAX_PACKET - 1) {
            self.send(&Message::Stdin(chunk.to_vec()))?;
        }
        Ok(())
    }

    /// The next message; `None` once the monitor has closed the connection.
    pub fn recv(&self) -> io::Result<Option<Message>> {
        let mut buf = vec![0u8; MAX_PACKET];
        loop {
            match socket::recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(0) => return Ok(None),
                Ok(n) => return Ok(Some(Message::decode(&buf[..n]))),
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Asks for and waits for the answer to a [`SYNC`] (the output that comes before it is dropped: the
    /// clients that sync say hello without [`WANT_OUTPUT`]); the errno it carries, or `EPIPE` when the
    /// monitor closed first.
    pub fn sync(&self) -> io::Result<i32> {
        self.send(&Message::Sync(0))?;
        loop {
            match self.recv()? {
                Some(Message::Sync(e)) => return Ok(e),
                Some(_) => continue,
                None => return Ok(libc::EPIPE),
            }
        }
    }

    /// Bounds the wait of [`Connection::recv`] (and so of [`Connection::sync`]).
    pub fn set_timeout(&self, timeout: std::time::Duration) -> io::Result<()> {
        let tv = nix::sys::time::TimeVal::new(
            timeout.as_secs() as nix::libc::time_t,
            timeout.subsec_micros() as nix::libc::suseconds_t,
        );
        socket::setsockopt(&self.fd, socket::sockopt::ReceiveTimeout, &tv)?;
        socket::setsockopt(&self.fd, socket::sockopt::SendTimeout, &tv)?;
        Ok(())
    }
}

impl AsFd for Connection {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_round_trips() {
        let all = [
            Message::Hello { flags: WANT_OUTPUT | REPLAY },
            Message::Stdin(b"echo hi\n".to_vec()),
            Message::Stdout(b"hi\r\n".to_vec()),
            Message::Stderr(Vec::new()),
            Message::Resize { rows: 40, cols: 132 },
            Message::CloseStdin,
            Message::Sync(libc::EPIPE),
            Message::Exit(-1),
        ];
        for m in all {
            assert_eq!(Message::decode(&m.encode()), m);
        }
    }

    #[test]
    fn garbage_is_unknown() {
        for p in [&b""[..], b"w\x01", b"x12", b"h", b"h\x01\x02", b"c!", b"\xff"] {
            assert_eq!(Message::decode(p), Message::Unknown, "{p:?}");
        }
    }
}
