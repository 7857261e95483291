//! A spare monitor's handle in the daemon: `bocker __monitor --spare` started ahead of any container,
//! detached with its pid and network namespaces made (and on v1 its container's process forked and in the
//! spare's groups: [`super::prefork`]), waiting for a claim (see [`super::monitor`]). A start with bridge
//! networking that claims one ([`super::launch`]) skips the monitor's exec, its start-up, the namespaces'
//! making and (v1) the cgroup migration. Dropping a spare unclaimed closes its stdin: it reads the end of
//! input and exits, and its process with it. The pool that keeps them is the engine's (`engine::spares`).

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use super::RuntimeError;

/// A monitor started ahead, waiting for its claim.
pub struct Spare {
    /// Its first process, reaped: only the pipes are left of it.
    pub(super) stdin: ChildStdin,
    pub(super) stdout: BufReader<ChildStdout>,
    pub pid: i32,
}

impl Spare {
    /// Starts one for the daemon whose state directory is `tag`, its process forked ahead into the groups
    /// of the `cgroup.procs` files `join` if there are any, and waits until it says it is ready. It sets
    /// its nice value to `nice` first thing (the daemon's: it may be started at a lower priority).
    pub fn start(tag: &Path, join: &[PathBuf], nice: i32) -> Result<Spare, RuntimeError> {
        let mut command = Command::new("/proc/self/exe");
        command.arg("__monitor").arg("--spare").arg(format!("--nice={nice}"));
        for procs in join {
            command.arg("--join").arg(procs);
        }
        let mut child: Child = command
            .arg(tag)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(RuntimeError::SpawnMonitor)?;
        let stdin = child.stdin.take().ok_or_else(|| RuntimeError::MonitorProtocol(String::new()))?;
        // The first process exits as soon as it has forked the real monitor.
        let _ = child.wait();
        let stdout = child.stdout.take().ok_or_else(|| RuntimeError::MonitorProtocol(String::new()))?;
        let mut stdout = BufReader::new(stdout);
        let line = super::read_line(&mut stdout)?;
        let pid = match line.strip_prefix("spare ").map(str::parse) {
            Some(Ok(pid)) => pid,
            _ => return Err(RuntimeError::MonitorProtocol(line)),
        };
        Ok(Spare { stdin, stdout, pid })
    }

    /// Hands it the container whose `launch.json` is in `state_dir`; `None` if it is gone (nothing of the
    /// container was touched then: start one of its own).
    pub(super) fn claim(mut self, state_dir: &Path) -> Option<Spare> {
        let mut line = b"claim ".to_vec();
        line.extend_from_slice(std::os::unix::ffi::OsStrExt::as_bytes(state_dir.as_os_str()));
        line.push(b'\n');
        self.stdin.write_all(&line).ok().map(|()| self)
    }
}
