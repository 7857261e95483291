//! On-disk JSON records of images and containers, and the exit record a container's monitor leaves.
//! Every record is written atomically (temp file, fsync, rename), so a crash leaves the old or the new one.

use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::ContainerStatus;
use crate::logs::LogLimits;
use crate::network::{NetworkMode, PortMap};
use crate::request::VolumeSpec;

/// An image, as stored in `<state>/images/<id>/record.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRecord {
    pub id: String,
    /// What the image was made from, as written (a directory, later a reference).
    pub source: String,
    /// RFC 3339 time of creation.
    pub created: String,
    /// Bytes of file content (imported) or of the layers as stored in the registry (pulled).
    pub size: u64,
    /// The manifest digest of a pulled image.
    #[serde(default)]
    pub digest: Option<String>,
    /// The layer digests of a pulled image, as in its manifest.
    #[serde(default)]
    pub layers: Vec<String>,
    /// The chain ids of the layer subvolumes a pulled image stands on.
    #[serde(default)]
    pub chain: Vec<String>,
}

/// A container, as stored in `<state>/containers/<name>/record.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub name: String,
    pub image: Option<String>,
    /// The argv; `None` means the image's Entrypoint and Cmd.
    pub cmd: Option<Vec<String>>,
    /// `KEY=VALUE` entries laid over the image's Env.
    pub env: Vec<String>,
    pub status: ContainerStatus,
    pub created: String,
    pub pid: Option<i32>,
    /// The start time of `pid` (clock ticks since boot): signals go through a pidfd opened against it.
    #[serde(default)]
    pub pid_start: Option<u64>,
    pub monitor_pid: Option<i32>,
    /// The monitor's start time in clock ticks since boot, to tell it from a reused pid.
    pub monitor_start: Option<u64>,
    pub exit_code: Option<i32>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// The last error of a write to this container; empty after a write that succeeded.
    #[serde(default)]
    pub error: String,
    /// Limits written to this container; what is not set takes the daemon's defaults.
    #[serde(default)]
    pub limits: crate::cgroups::Limits,
    /// Whether the last run ended by the kernel's OOM killer.
    #[serde(default)]
    pub oom_killed: bool,
    /// How the container is networked.
    #[serde(default)]
    pub network: NetworkMode,
    /// Host ports forwarded to the container while it runs.
    #[serde(default)]
    pub ports: Vec<PortMap>,
    /// Its address on the bridge: given at its first start in bridge mode, kept until `rm`.
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
    /// Bind mounts of host paths and named volumes.
    #[serde(default)]
    pub volumes: Vec<VolumeSpec>,
    /// A container whose volumes are mounted here too, at the same targets.
    #[serde(default)]
    pub volumes_from: Option<String>,
    #[serde(default)]
    pub security: Security,
}

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
    /// The directory of the log's segments (see [`crate::logs`]).
    pub log: PathBuf,
    #[serde(default)]
    pub log_limits: LogLimits,
    pub exit_file: PathBuf,
    /// The `cgroup.procs` files the container's process joins before it unshares its cgroup namespace.
    #[serde(default)]
    pub cgroup_procs: Vec<PathBuf>,
    /// `bridge`: the monitor makes the network namespace and waits for the daemon to attach it before
    /// the command runs. `none`: the container makes its own. `host`: none is made.
    #[serde(default)]
    pub network: NetworkMode,
    /// Files and directories bind-mounted into the rootfs before `pivot_root`.
    #[serde(default)]
    pub binds: Vec<BindMount>,
    #[serde(default)]
    pub security: Security,
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
    /// The directory of the output's segments (see [`crate::logs`]).
    pub log: PathBuf,
    #[serde(default)]
    pub log_limits: LogLimits,
    pub exit_file: PathBuf,
    /// The container's `cgroup.procs` files, joined before its cgroup namespace is entered.
    pub cgroup_procs: Vec<PathBuf>,
    /// The container's, applied to the command as to the container's own.
    #[serde(default)]
    pub security: Security,
}

/// A command run in a running container, as stored in `<container>/execs/<n>/record.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecRecord {
    pub id: u32,
    pub argv: Vec<String>,
    /// `running` or `exited`.
    pub status: ContainerStatus,
    pub pid: Option<i32>,
    pub helper_pid: Option<i32>,
    pub helper_start: Option<u64>,
    pub exit_code: Option<i32>,
    pub started_at: String,
    pub finished_at: Option<String>,
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

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// Writes `bytes` to `path` as a file only its owner (the daemon, root) can read: for what is read once and
/// worthless after a crash (launch and exec specs), so neither atomic nor synced.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(bytes)
}

/// Serialises `value` as JSON and writes it atomically to `path`.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    write_atomic(path, &bytes)
}

/// Reads a JSON record; `Ok(None)` when the file does not exist.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map(Some).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The current time in RFC 3339, UTC, to the second.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// A fresh random id: `prefix` and twelve hex digits.
pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 6];
    // getrandom only fails when the kernel has no entropy source at all; fall back to time and pid then.
    if getrandom::fill(&mut bytes).is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let v = t.as_nanos() as u64 ^ u64::from(std::process::id()) << 32;
        bytes.copy_from_slice(&v.to_le_bytes()[..6]);
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}
