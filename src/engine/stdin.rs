//! A running container's stdin from the tree: the bytes written to `stdin`, and `close-stdin` on `ctl`,
//! given to its monitor on the attach socket as any client gives them (see docs/attach.md). The write
//! returns once the monitor has taken them (queued for the command), with its errno.

use std::path::PathBuf;
use std::time::Duration;

use super::Engine;
use crate::attach::{Connection, Message, REFUSE_WHEN_FULL, SOCKET_NAME};
use crate::error::Error;

/// How long a write waits for the monitor's answer (it answers at once: a write that doesn't fit in the
/// 1 MiB it holds for the command is refused, EAGAIN, not waited for).
const TAKEN_WITHIN: Duration = Duration::from_secs(10);

impl Engine {
    /// Gives `bytes` to the stdin of running container `name`.
    pub(super) fn write_stdin(&self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        let socket = self.stdin_socket(name)?;
        self.to_monitor(name, socket, |conn| conn.send_stdin(bytes))
    }

    /// Closes the stdin of running container `name` (on a terminal, types its end-of-file character).
    pub(super) fn close_stdin(&self, name: &str) -> Result<(), Error> {
        let socket = self.stdin_socket(name)?;
        self.to_monitor(name, socket, |conn| conn.send(&Message::CloseStdin))
    }

    /// The attach socket of `name`, if it runs and is interactive.
    fn stdin_socket(&self, name: &str) -> Result<PathBuf, Error> {
        let st = self.lock();
        let c = st.container(name)?;
        if !c.record.interactive {
            let message = format!("{name} is not interactive: write true to its interactive file before it starts");
            return Err(Error::Stdin { errno: libc::EBADF, message });
        }
        if !c.record.status.has_process() {
            let message = format!("{name} is not running: its stdin has no reader");
            return Err(Error::Stdin { errno: libc::EPIPE, message });
        }
        Ok(self.container_dir(name).join(SOCKET_NAME))
    }

    fn to_monitor(
        &self,
        name: &str,
        socket: PathBuf,
        send: impl FnOnce(&Connection) -> std::io::Result<()>,
    ) -> Result<(), Error> {
        let failed = |e: std::io::Error| {
            let errno = match e.raw_os_error() {
                Some(libc::EAGAIN) => libc::EAGAIN,
                _ => libc::EPIPE,
            };
            Error::Stdin { errno, message: format!("cannot give {name} its input: {e}") }
        };
        let conn = Connection::connect_within(&socket, REFUSE_WHEN_FULL, Some(TAKEN_WITHIN)).map_err(failed)?;
        send(&conn).map_err(failed)?;
        match conn.sync().map_err(failed)? {
            0 => Ok(()),
            libc::EAGAIN => Err(Error::Stdin {
                errno: libc::EAGAIN,
                message: format!("{name}'s stdin holds 1 MiB its command hasn't read: nothing of this write was taken"),
            }),
            libc::EBADF => {
                Err(Error::Stdin { errno: libc::EBADF, message: format!("{name}'s stdin is not open to writes") })
            }
            errno => Err(Error::Stdin { errno, message: format!("{name}'s stdin is closed") }),
        }
    }
}
