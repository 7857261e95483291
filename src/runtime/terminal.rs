//! A container's (or an exec's) terminal, as runc's console socket makes it: the process, once `/` is the
//! container's root, opens a pseudo-terminal of the container's own devpts instance (so `tty` names
//! `/dev/pts/N` as the container sees it), makes it its controlling terminal and its fds 0, 1 and 2, and
//! sends the master to its monitor over a socket pair before it execs. The monitor holds the master from
//! then on (see [`super::server`]); the container never holds a descriptor of the host's.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{self, ControlMessage, ControlMessageOwned, MsgFlags};

/// The pair the master goes through: the monitor keeps one end, the child the other.
pub(super) fn console_pair() -> Result<(OwnedFd, OwnedFd), String> {
    socket::socketpair(socket::AddressFamily::Unix, socket::SockType::SeqPacket, None, socket::SockFlag::SOCK_CLOEXEC)
        .map_err(|e| format!("socketpair for the terminal: {e}"))
}

/// In the container's mount namespace (its `/dev/pts` mounted): a new terminal owned by `uid`:`gid`,
/// made the calling process's controlling terminal and its stdin, stdout and stderr; the master is sent
/// on `console` and closed here.
pub(super) fn attach_new_terminal(console: RawFd, uid: u32, gid: u32) -> Result<(), (i32, String)> {
    let fail = |what: &'static str| move |e: nix::Error| (e as i32, format!("{what}: {}", e.desc()));
    let flags = nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY | nix::fcntl::OFlag::O_CLOEXEC;
    let master = nix::fcntl::open("/dev/pts/ptmx", flags, nix::sys::stat::Mode::empty())
        .map_err(fail("open the container's /dev/pts/ptmx"))?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from the pointer, which lives across the call.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } < 0 {
        return Err(fail("unlock the terminal")(nix::Error::last()));
    }
    // The peer opened from the master itself (Linux 4.13): no path is looked up that the image could
    // have put something else at.
    let peer_flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes the open flags by value and returns a new descriptor or -1.
    let slave = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, peer_flags) };
    if slave < 0 {
        return Err(fail("open the terminal's peer")(nix::Error::last()));
    }
    // SAFETY: the ioctl returned a fresh descriptor that nothing else owns.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    nix::unistd::fchown(&slave, Some(uid.into()), Some(gid.into())).map_err(fail("chown the terminal"))?;
    nix::unistd::setsid().map_err(fail("setsid"))?;
    // SAFETY: TIOCSCTTY takes an int argument by value (0: don't steal a terminal another session has).
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(fail("make the terminal controlling")(nix::Error::last()));
    }
    nix::unistd::dup2_stdin(&slave).map_err(fail("dup2 the terminal"))?;
    nix::unistd::dup2_stdout(&slave).map_err(fail("dup2 the terminal"))?;
    nix::unistd::dup2_stderr(&slave).map_err(fail("dup2 the terminal"))?;
    // SAFETY: the monitor keeps its end open; this end stays open until the exec closes it (CLOEXEC).
    let console = unsafe { BorrowedFd::borrow_raw(console) };
    send_fd(console, master.as_fd()).map_err(fail("send the terminal to the monitor"))
}

fn send_fd(socket: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> nix::Result<()> {
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(b"t")];
    socket::sendmsg::<()>(socket.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None).map(drop)
}

/// The master the child sent on `console`, once it has exec'd (or `None` if it sent none: it failed).
pub(super) fn receive_master(console: &OwnedFd) -> Option<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC;
    let msg = socket::recvmsg::<()>(console.as_raw_fd(), &mut iov, Some(&mut space), flags).ok()?;
    let mut received = None;
    for cmsg in msg.cmsgs().ok()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                // SAFETY: SCM_RIGHTS gave this process new descriptors that nothing else owns.
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                received.get_or_insert(owned);
            }
        }
    }
    received
}

/// Sets the terminal's size (the command gets SIGWINCH).
pub(super) fn set_size(master: BorrowedFd<'_>, rows: u16, cols: u16) {
    let size = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads a winsize from the pointer, which lives across the call.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
}

/// The terminal's end-of-file character (`stty eof`, ^D by default), which a `close-stdin` writes.
pub(super) fn eof_char(master: BorrowedFd<'_>) -> u8 {
    nix::sys::termios::tcgetattr(master)
        .map(|t| t.control_chars[nix::sys::termios::SpecialCharacterIndices::VEOF as usize])
        .unwrap_or(4)
}
