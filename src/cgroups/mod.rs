//! Container cgroups on every layout Linux ships: pure cgroup v2, hybrid (v1 controllers beside a cgroup2
//! mount with few or no controllers) and pure v1, detected at start-up from `/proc/self/mountinfo`.
//!
//! Each container gets a group `ctr-NAME` under the daemon's parent (`bocker`) in each hierarchy: the prefix
//! keeps a container named `cgroup.procs`, `tasks` or `memory.max` from meaning one of cgroupfs's own files.
//! Limits use cgroup v2's names and units (`cpu.weight`, `memory.max`, `io.max`, ...) and are written in
//! `apply`, translated for v1 where v1 has a file for them; stats (`stats`) come back in v2's terms too. The
//! freezer (`pause`) is in `freezer`.

mod apply;
mod freezer;
mod limits;
mod spares;
mod stats;
mod values;

use std::io;
use std::path::{Path, PathBuf};

pub use freezer::FreezeError;
pub use limits::{
    blkio_weight_to_io_weight, io_weight_to_blkio_weight, parse_limit, shares_to_weight, weight_to_shares, CpuMax,
    Limit, LimitError, LimitKind, Limits, Max,
};
pub use stats::{StatFile, Stats};
pub use values::{CpuList, IoDevice, IoMax};

/// Why a cgroup operation failed; one variant per step.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot create cgroup {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot enable controllers in {path}: {source}")]
    Enable { path: PathBuf, source: io::Error },
    #[error("cannot set {file}: {source}")]
    Write { file: PathBuf, source: io::Error },
    #[error("cannot remove cgroup {path}: {source}")]
    Remove { path: PathBuf, source: io::Error },
    #[error("cannot rename cgroup {from} to {to}: {source}")]
    Rename { from: PathBuf, to: PathBuf, source: io::Error },
    /// The host's cgroups have no file for it (ENOTSUP).
    #[error("{file}: {why}")]
    Unsupported { file: &'static str, why: String },
    /// A device `io.max` names is not a whole disk of this host (ENODEV).
    #[error("io.max: {why}")]
    NoDevice { why: String },
    /// A CPU or memory node the host doesn't have (EINVAL).
    #[error("{file}: {why}")]
    Outside { file: &'static str, why: String },
}

impl CgroupError {
    pub fn errno(&self) -> i32 {
        let source = match self {
            CgroupError::Create { source, .. }
            | CgroupError::Enable { source, .. }
            | CgroupError::Write { source, .. }
            | CgroupError::Remove { source, .. }
            | CgroupError::Rename { source, .. } => source,
            CgroupError::Unsupported { .. } => return libc::ENOTSUP,
            CgroupError::NoDevice { .. } => return libc::ENODEV,
            CgroupError::Outside { .. } => return libc::EINVAL,
        };
        match source.raw_os_error() {
            // The kernel's own reasons, passed on: a limit below current use (memory.max on v1) is EBUSY,
            // out of range EINVAL or ERANGE, a cpuset without CPUs or a hierarchy out of ids ENOSPC, a
            // controller the group can't have ENODEV or EOPNOTSUPP, a fork limit EAGAIN.
            Some(
                e @ (libc::EBUSY
                | libc::EINVAL
                | libc::ERANGE
                | libc::ENOSPC
                | libc::ENODEV
                | libc::EOPNOTSUPP
                | libc::EAGAIN
                | libc::ENOMEM),
            ) => e,
            _ => libc::EIO,
        }
    }
}

/// Which cgroup layout the host has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// One cgroup2 hierarchy with the controllers.
    V2 { root: PathBuf },
    /// v1 hierarchies per controller; `unified` is a cgroup2 mount without them (hybrid), if any.
    V1 {
        cpu: Option<PathBuf>,
        cpuacct: Option<PathBuf>,
        memory: Option<PathBuf>,
        pids: Option<PathBuf>,
        freezer: Option<PathBuf>,
        blkio: Option<PathBuf>,
        cpuset: Option<PathBuf>,
        unified: Option<PathBuf>,
    },
}

impl Layout {
    /// Reads the layout from a mountinfo text.
    pub fn from_mountinfo(mountinfo: &str) -> Option<Layout> {
        let mut v2: Option<PathBuf> = None;
        let (mut cpu, mut cpuacct, mut memory, mut pids, mut freezer) = (None, None, None, None, None);
        let (mut blkio, mut cpuset) = (None, None);
        for line in mountinfo.lines() {
            // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
            let Some((left, right)) = line.split_once(" - ") else { continue };
            let mountpoint = left.split(' ').nth(4).unwrap_or("");
            let mut right = right.split(' ');
            let fstype = right.next().unwrap_or("");
            let superopts = right.nth(1).unwrap_or("");
            match fstype {
                "cgroup2" => v2 = Some(PathBuf::from(mountpoint)),
                "cgroup" => {
                    for opt in superopts.split(',') {
                        let slot = match opt {
                            "cpu" => &mut cpu,
                            "cpuacct" => &mut cpuacct,
                            "memory" => &mut memory,
                            "pids" => &mut pids,
                            "freezer" => &mut freezer,
                            "blkio" => &mut blkio,
                            "cpuset" => &mut cpuset,
                            _ => continue,
                        };
                        slot.get_or_insert_with(|| PathBuf::from(mountpoint));
                    }
                }
                _ => {}
            }
        }
        if cpu.is_none() && memory.is_none() && pids.is_none() {
            return v2.map(|root| Layout::V2 { root });
        }
        Some(Layout::V1 { cpu, cpuacct, memory, pids, freezer, blkio, cpuset, unified: v2 })
    }

    /// This host's layout.
    pub fn detect() -> io::Result<Layout> {
        let text = std::fs::read_to_string("/proc/self/mountinfo")?;
        Layout::from_mountinfo(&text).ok_or_else(|| io::Error::other("no cgroup filesystem is mounted"))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Layout::V2 { .. } => "v2",
            Layout::V1 { unified: Some(_), .. } => "hybrid",
            Layout::V1 { .. } => "v1",
        }
    }
}

/// The cgroups of one daemon: its layout and its parent group's path below each hierarchy's root.
#[derive(Debug, Clone)]
pub struct Cgroups {
    layout: Layout,
    parent: PathBuf,
}

/// The group of container `name`: never the name of a cgroupfs interface file, whatever the container's name.
pub fn group_name(name: &str) -> String {
    format!("ctr-{name}")
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The value of `key` in a flat keyed file (`key value` lines).
fn keyed(path: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

fn write(file: PathBuf, value: &str) -> Result<(), CgroupError> {
    std::fs::write(&file, value).map_err(|source| CgroupError::Write { file, source })
}

/// Gives the v1 cpuset group `dir` its parent's `file` (`cpuset.cpus`, `cpuset.mems`) if it has none.
fn inherit_cpuset(dir: &Path, file: &str) -> Result<(), CgroupError> {
    let own = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
    if !own.trim().is_empty() {
        return Ok(());
    }
    let parent = dir.parent().map(|p| std::fs::read_to_string(p.join(file)).unwrap_or_default()).unwrap_or_default();
    write(dir.join(file), parent.trim())
}

impl Cgroups {
    /// `parent` is relative to each hierarchy's root (`bocker`, or `bocker/something`).
    pub fn new(layout: Layout, parent: &str) -> Cgroups {
        Cgroups { layout, parent: PathBuf::from(parent.trim_matches('/')) }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The hierarchies a container's group lives in, with the roots of each.
    fn roots(&self) -> Vec<&Path> {
        match &self.layout {
            Layout::V2 { root } => vec![root],
            Layout::V1 { cpu, cpuacct, memory, pids, freezer, blkio, cpuset, unified } => {
                // Controllers mounted together (cpu,cpuacct) share one hierarchy: each once.
                let mut v: Vec<&Path> = Vec::new();
                for root in [cpu, cpuacct, memory, pids, freezer, blkio, cpuset, unified].into_iter().flatten() {
                    if !v.contains(&root.as_path()) {
                        v.push(root);
                    }
                }
                v
            }
        }
    }

    fn group(&self, root: &Path, name: &str) -> PathBuf {
        let parent = root.join(&self.parent);
        let group = parent.join(group_name(name));
        if !group.exists() {
            // Made by a daemon from before the prefix, for a container still running since: its stats and
            // limits are there, and it goes at the next start or rm.
            let legacy = parent.join(name);
            if legacy.is_dir() {
                return legacy;
            }
        }
        group
    }

    /// The group of container `name` in the cgroup2 hierarchy (pure v2's, or a hybrid host's unified
    /// one): its process is born there (`clone3` with `CLONE_INTO_CGROUP`, see [`crate::runtime`]).
    pub fn birth_group(&self, name: &str) -> Option<PathBuf> {
        match &self.layout {
            Layout::V2 { root } | Layout::V1 { unified: Some(root), .. } => Some(self.group(root, name)),
            Layout::V1 { .. } => None,
        }
    }

    /// The `cgroup.procs` files a container's process writes itself into before it unshares its cgroup
    /// namespace: one per v1 hierarchy (the cgroup2 one is [`Cgroups::birth_group`]'s).
    pub fn procs_files(&self, name: &str) -> Vec<PathBuf> {
        self.v1_roots().into_iter().map(|r| self.group(r, name).join("cgroup.procs")).collect()
    }

    /// The v1 hierarchies: every one but the cgroup2 one (pure v2's, or a hybrid host's unified mount).
    fn v1_roots(&self) -> Vec<&Path> {
        let unified = match &self.layout {
            Layout::V2 { root } | Layout::V1 { unified: Some(root), .. } => Some(root.as_path()),
            Layout::V1 { .. } => None,
        };
        self.roots().into_iter().filter(|r| Some(*r) != unified).collect()
    }

    /// Makes the group of container `name` in every hierarchy (idempotent) and applies `limits`.
    pub fn create(&self, name: &str, limits: &Limits) -> Result<(), CgroupError> {
        self.make_parents()?;
        for root in self.roots() {
            let group = self.group(root, name);
            std::fs::create_dir_all(&group).map_err(|source| CgroupError::Create { path: group.clone(), source })?;
        }
        if let Layout::V1 { cpuset: Some(root), .. } = &self.layout {
            self.inherit_cpusets(root, &self.group(root, name))?;
        }
        self.apply(name, limits)
    }

    /// Gives the v1 cpuset group `group` below `root`, and each level above it down from the root, CPUs and
    /// memory nodes: a v1 cpuset group starts with none, and takes no process until it has some.
    fn inherit_cpusets(&self, root: &Path, group: &Path) -> Result<(), CgroupError> {
        let mut dirs = Vec::new();
        let mut dir = root.to_path_buf();
        for part in self.parent.components() {
            dir.push(part);
            dirs.push(dir.clone());
        }
        dirs.push(group.to_path_buf());
        for dir in dirs {
            for file in ["cpuset.cpus", "cpuset.mems"] {
                inherit_cpuset(&dir, file)?;
            }
        }
        Ok(())
    }

    /// Makes the daemon's parent groups (idempotent); on v2, each level down to the parent hands the
    /// controllers to its children.
    fn make_parents(&self) -> Result<(), CgroupError> {
        if let Layout::V2 { root } = &self.layout {
            let mut dir = root.clone();
            enable_controllers(&dir)?;
            for part in self.parent.components() {
                dir.push(part);
                mkdir(&dir)?;
                enable_controllers(&dir)?;
            }
            return Ok(());
        }
        for root in self.roots() {
            let dir = root.join(&self.parent);
            std::fs::create_dir_all(&dir).map_err(|source| CgroupError::Create { path: dir.clone(), source })?;
        }
        Ok(())
    }

    /// Makes the daemon's parent groups at its start: [`Cgroups::check`] probes the files a container's
    /// group will have in them.
    pub fn prepare(&self) -> Result<(), CgroupError> {
        self.make_parents()
    }

    /// Removes the group of `name` from every hierarchy; its processes must have ended.
    pub fn remove(&self, name: &str) -> Result<(), CgroupError> {
        for root in self.roots() {
            remove_group(&self.group(root, name))?;
        }
        Ok(())
    }

    /// Removes the daemon's parent groups where they are empty (at shutdown); ones still used stay.
    pub fn remove_parent(&self) {
        for root in self.roots() {
            let mut dir = root.join(&self.parent);
            while dir != root && std::fs::remove_dir(&dir).is_ok() {
                dir.pop();
            }
        }
    }
}

/// Removes the group `group` if it is there; an exiting process can hold it for a moment after it was
/// reaped, so EBUSY is tried again for a second.
fn remove_group(group: &Path) -> Result<(), CgroupError> {
    let mut tries = 0;
    loop {
        match std::fs::remove_dir(group) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(source) => return Err(CgroupError::Remove { path: group.to_path_buf(), source }),
        }
    }
}

fn mkdir(dir: &Path) -> Result<(), CgroupError> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(CgroupError::Create { path: dir.to_path_buf(), source }),
    }
}

/// The v2 controllers a container's group gets, where the host has them.
const CONTROLLERS: [&str; 5] = ["cpuset", "cpu", "io", "memory", "pids"];

/// Lets the children of the v2 group `dir` use the controllers of [`CONTROLLERS`] it has.
fn enable_controllers(dir: &Path) -> Result<(), CgroupError> {
    let available = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let enabled = std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
    let wanted: Vec<String> = CONTROLLERS
        .iter()
        .filter(|c| available.split_whitespace().any(|a| a == **c) && !enabled.split_whitespace().any(|e| e == **c))
        .map(|c| format!("+{c}"))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    std::fs::write(dir.join("cgroup.subtree_control"), wanted.join(" "))
        .map_err(|source| CgroupError::Enable { path: dir.to_path_buf(), source })
}

#[cfg(test)]
mod tests;
