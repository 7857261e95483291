//! A spare monitor's container process forked ahead (v1 cgroups): in the spare's pid and network
//! namespaces, it writes itself into the spare's groups (`cgroup.procs` of each v1 hierarchy) long before
//! any container is asked for, so the v1 migration (and the kernel's rcu_sync wait on its lock, 10 ms on
//! a quiet host) is off the start path. The daemon renames those groups to the container's when it claims
//! the spare (v1 allows a rename; the process stays in the same group).
//!
//! Once the monitor has the claim, and the daemon's go, it hands the child what [`super::init::enter`] takes
//! on a socket pair: the state directory as the message, the container's stdio ends, its error pipe and,
//! as they apply, its terminal's socket and the sealed init, as `SCM_RIGHTS`. The child then reads its
//! `launch.json` and goes on as a child forked then would. A monitor that ends first ends it (its
//! parent-death signal, and the socket's end of input).

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::sys::socket::{self, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType};
use nix::unistd::{ForkResult, Pid};

use super::spawn::Born;

/// What the child says once it is in its groups.
const JOINED: &[u8] = b"joined";
/// Which of the optional descriptors a claim carries, in the message's first byte.
const HAS_CONSOLE: u8 = 1;
const HAS_INIT: u8 = 2;

/// The monitor's hold on its child forked ahead.
pub(super) struct Preforked {
    pub(super) child: Pid,
    socket: OwnedFd,
    /// Held by the monitor alone: the child sees it hang up if the monitor is gone (as a child forked at
    /// the start does).
    pub(super) alive: OwnedFd,
}

/// What the child gets at the claim.
pub(super) struct Handed<'a> {
    pub(super) state_dir: &'a Path,
    pub(super) stdio: [RawFd; 3],
    pub(super) err_pipe: RawFd,
    pub(super) console: Option<RawFd>,
    pub(super) init: Option<RawFd>,
}

/// Forks the child, which joins the groups whose `cgroup.procs` files are `procs`; returns once it has.
/// Only from the single-threaded monitor.
pub(super) fn fork_ahead(procs: &[PathBuf]) -> Result<Preforked, String> {
    let (ours, theirs) = socket::socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
        .map_err(|e| format!("socketpair: {e}"))?;
    let (alive_r, alive_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let (forked, _) = super::spawn::fork_into(None).map_err(|e| format!("fork: {e}"))?;
    match forked {
        ForkResult::Child => {
            drop(ours);
            drop(alive_w);
            child(procs, theirs, alive_r)
        }
        ForkResult::Parent { child } => {
            drop(theirs);
            drop(alive_r);
            let mut buf = [0u8; 512];
            let said = socket::recv(ours.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(|e| format!("recv: {e}"))?;
            if &buf[..said] != JOINED {
                let _ = nix::sys::wait::waitpid(child, None);
                return Err(String::from_utf8_lossy(&buf[..said]).into_owned());
            }
            Ok(Preforked { child, socket: ours, alive: alive_w })
        }
    }
}

impl Preforked {
    /// Hands the child its container; it sets it up and execs (or reports on the error pipe).
    pub(super) fn hand(&self, handed: &Handed<'_>) -> Result<(), String> {
        let mut fds = vec![handed.stdio[0], handed.stdio[1], handed.stdio[2], handed.err_pipe];
        let mut which = 0u8;
        if let Some(fd) = handed.console {
            fds.push(fd);
            which |= HAS_CONSOLE;
        }
        if let Some(fd) = handed.init {
            fds.push(fd);
            which |= HAS_INIT;
        }
        let mut message = vec![which];
        message.extend_from_slice(handed.state_dir.as_os_str().as_bytes());
        let iov = [IoSlice::new(&message)];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        socket::sendmsg::<()>(self.socket.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)
            .map(drop)
            .map_err(|e| format!("hand the container to its process: {e}"))
    }
}

/// The child: joins, says so, waits for its container and enters it. Never returns.
fn child(procs: &[PathBuf], socket: OwnedFd, alive: OwnedFd) -> ! {
    super::monitor::die_with_monitor(alive);
    for file in procs {
        if let Err(e) = std::fs::write(file, "0") {
            let msg = format!("join cgroup {}: {e}", file.display());
            let _ = socket::send(socket.as_raw_fd(), msg.as_bytes(), MsgFlags::MSG_NOSIGNAL);
            // SAFETY: _exit ends this forked child at once.
            unsafe { libc::_exit(1) }
        }
    }
    if socket::send(socket.as_raw_fd(), JOINED, MsgFlags::MSG_NOSIGNAL).is_err() {
        // SAFETY: as above.
        unsafe { libc::_exit(1) }
    }
    let Some((dir, fds, which)) = receive(&socket) else {
        // The monitor ended without a claim.
        // SAFETY: as above.
        unsafe { libc::_exit(0) }
    };
    drop(socket);
    if fds.len() < 4 {
        // SAFETY: as above.
        unsafe { libc::_exit(1) }
    }
    let mut fds = fds;
    let mut optional = fds.split_off(4).into_iter();
    let console = (which & HAS_CONSOLE != 0).then(|| optional.next()).flatten();
    let init = (which & HAS_INIT != 0).then(|| optional.next()).flatten();
    let err_pipe = fds.remove(3);
    let stdio = [fds[0].as_raw_fd(), fds[1].as_raw_fd(), fds[2].as_raw_fd()];
    let mut spec = match super::monitor::read_spec(&dir) {
        Ok(spec) => spec,
        Err(message) => {
            let _ = nix::unistd::write(&err_pipe, format!("{} {message}", libc::EIO).as_bytes());
            // SAFETY: as above.
            unsafe { libc::_exit(127) }
        }
    };
    // In its groups already: they were renamed to the container's.
    spec.cgroup = None;
    spec.cgroup_procs.clear();
    // Open until the exec closes them (close-on-exec), as a child forked at the start holds its own.
    let _kept = (fds, &console, &init);
    let (console, init) = (console.as_ref().map(AsRawFd::as_raw_fd), init.as_ref().map(AsRawFd::as_raw_fd));
    super::init::enter(&spec, Born::InGroup, stdio, console, init, err_pipe)
}

/// The claim: the state directory, the descriptors in order, and which optional ones came.
fn receive(socket: &OwnedFd) -> Option<(PathBuf, Vec<OwnedFd>, u8)> {
    let mut buf = vec![0u8; 4096 + 1];
    let mut fds = Vec::new();
    let n = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 6]);
        let msg = loop {
            let flags = MsgFlags::MSG_CMSG_CLOEXEC;
            match socket::recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(&mut space), flags) {
                Err(nix::Error::EINTR) => continue,
                other => break other.ok()?,
            }
        };
        for cmsg in msg.cmsgs().ok()? {
            if let ControlMessageOwned::ScmRights(received) = cmsg {
                // SAFETY: SCM_RIGHTS gave this process new descriptors that nothing else owns.
                fds.extend(received.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
            }
        }
        msg.bytes
    };
    let (&which, dir) = buf.get(..n)?.split_first()?;
    Some((PathBuf::from(std::ffi::OsStr::from_bytes(dir)), fds, which))
}
