//! What the daemon hands the helpers it re-executes, and what they leave it: the launch spec a monitor
//! starts a container from, the exec spec of one command run in a running container, the security and
//! bind mounts both apply, and the exit record each writes when its process ends. The code that runs in a
//! container's namespaces depends on these and on the small leaf modules only.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::logs::LogLimits;
use crate::network::NetworkMode;

/// What a container's monitor records when the container's process ends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExitRecord {
    /// The exit status, or 128 + the signal number for a process killed by a signal.
    pub exit_code: i32,
    pub finished_at: String,
}

/// Everything a monitor needs to start a container; written by the daemon, read by `bocker __monitor`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaunchSpec {
    pub name: String,
    pub rootfs: PathBuf,
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub hostname: String,
    /// Who the command runs as: `NAME`, `UID`, `NAME:GROUP`, `UID:GID`, resolved in the container's
    /// `/etc/passwd` and `/etc/group` (see [`super::user`]); empty is root.
    #[serde(default)]
    pub user: String,
    /// The directory of the log's segments (see [`crate::logs`]).
    pub log: PathBuf,
    #[serde(default)]
    pub log_limits: LogLimits,
    pub exit_file: PathBuf,
    /// The container's cgroup2 group: its process is born in it (see [`super::spawn`]).
    #[serde(default)]
    pub cgroup: Option<PathBuf>,
    /// The `cgroup.procs` files (v1's) the container's process joins before it unshares its cgroup
    /// namespace.
    #[serde(default)]
    pub cgroup_procs: Vec<PathBuf>,
    /// `bridge`: the monitor makes the network namespace and waits for the daemon to attach it before
    /// the command runs. `none`: the container makes its own. `host`: none is made. `container:NAME`:
    /// the monitor joins [`LaunchSpec::netns`]'s.
    #[serde(default)]
    pub network: NetworkMode,
    /// `container:NAME`: the process (that container's pid 1) whose network namespace the monitor joins
    /// before anything runs, through a pidfd opened against its start time.
    #[serde(default)]
    pub netns: Option<ProcessRef>,
    /// Files and directories bind-mounted into the rootfs before `pivot_root`.
    #[serde(default)]
    pub binds: Vec<BindMount>,
    #[serde(default)]
    pub security: Security,
    #[serde(default)]
    pub stdio: Stdio,
    /// Pid 1 is the init binary at this path, which runs the command (see [`super::pid1`]).
    #[serde(default)]
    pub init: Option<PathBuf>,
}

/// A process named so that a reused pid is never taken for it: its pid and start time (clock ticks since
/// boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRef {
    pub pid: i32,
    pub start: u64,
}

/// How a process's stdio is made and served: on the attach socket at `socket` (see [`crate::attach`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stdio {
    /// A terminal (`docker run -t`).
    #[serde(default)]
    pub tty: bool,
    /// Stdin stays open to writes through the socket (`docker run -i`).
    #[serde(default)]
    pub interactive: bool,
    /// The attach socket's path.
    #[serde(default)]
    pub socket: PathBuf,
}

/// Everything the exec helper needs to run one command inside a running container; written by the daemon
/// to `execs/<n>/exec.json`, read by `bocker __exec`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecSpec {
    /// The container's pid 1 (host pid) and its start time, whose namespaces the command joins.
    pub target_pid: i32,
    pub target_start: u64,
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    /// Who the command runs as, as in [`LaunchSpec::user`]: the container's.
    #[serde(default)]
    pub user: String,
    /// The directory of the output's segments (see [`crate::logs`]).
    pub log: PathBuf,
    #[serde(default)]
    pub log_limits: LogLimits,
    pub exit_file: PathBuf,
    /// The container's cgroup2 group: the command is born in it (see [`super::spawn`]).
    #[serde(default)]
    pub cgroup: Option<PathBuf>,
    /// The container's v1 `cgroup.procs` files, joined before its cgroup namespace is entered.
    pub cgroup_procs: Vec<PathBuf>,
    /// The container's, applied to the command as to the container's own.
    #[serde(default)]
    pub security: Security,
    #[serde(default)]
    pub stdio: Stdio,
}

/// How much a container's processes may do beyond the defaults (see `runtime::security`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Security {
    /// Every capability, no seccomp filter, no masked or read-only paths, device nodes usable.
    #[serde(default)]
    pub privileged: bool,
    /// Capabilities added to Docker's default 14, canonical names (`CAP_NET_ADMIN`).
    #[serde(default)]
    pub cap_add: Vec<String>,
}

/// A bind mount into a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BindMount {
    /// A path on the host.
    pub source: PathBuf,
    /// An absolute path inside the container, resolved inside its rootfs.
    pub target: String,
    pub readonly: bool,
}
