//! Container cgroups on every layout Linux ships: pure cgroup v2, hybrid (v1 controllers beside a cgroup2
//! mount with few or no controllers) and pure v1, detected at start-up from `/proc/self/mountinfo`.
//!
//! Each container gets a group `ctr-NAME` under the daemon's parent (`bocker`) in each hierarchy: the prefix
//! keeps a container named `cgroup.procs`, `tasks` or `memory.max` from meaning one of cgroupfs's own files.
//! Limits use cgroup v2's names and units (`cpu.weight`, `cpu.max`, `memory.max`, `pids.max`); on v1 they
//! are translated (`cpu.shares`, `cpu.cfs_quota_us`/`cpu.cfs_period_us`, `memory.limit_in_bytes`,
//! `pids.max`). Stats come back in v2's terms too. The freezer (`pause`) is in `freezer`.

mod freezer;
mod limits;

use std::io;
use std::path::{Path, PathBuf};

pub use freezer::FreezeError;
pub use limits::{parse_limit, shares_to_weight, weight_to_shares, CpuMax, Limit, LimitError, Limits, Max};

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
}

impl CgroupError {
    pub fn errno(&self) -> i32 {
        let source = match self {
            CgroupError::Create { source, .. }
            | CgroupError::Enable { source, .. }
            | CgroupError::Write { source, .. }
            | CgroupError::Remove { source, .. } => source,
        };
        match source.raw_os_error() {
            // The kernel refuses a limit below current use (memory.max on v1) with EBUSY; out of range EINVAL.
            Some(e @ (libc::EBUSY | libc::EINVAL | libc::ERANGE)) => e,
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
        unified: Option<PathBuf>,
    },
}

impl Layout {
    /// Reads the layout from a mountinfo text.
    pub fn from_mountinfo(mountinfo: &str) -> Option<Layout> {
        let mut v2: Option<PathBuf> = None;
        let (mut cpu, mut cpuacct, mut memory, mut pids, mut freezer) = (None, None, None, None, None);
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
        Some(Layout::V1 { cpu, cpuacct, memory, pids, freezer, unified: v2 })
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

/// The live numbers of a container's group, in cgroup v2's terms.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub memory_current: Option<u64>,
    pub memory_peak: Option<u64>,
    pub cpu_usage_usec: Option<u64>,
    pub pids_current: Option<u64>,
    pub oom_kill: Option<u64>,
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
            Layout::V1 { cpu, cpuacct, memory, pids, freezer, unified } => {
                // Controllers mounted together (cpu,cpuacct) share one hierarchy: each once.
                let mut v: Vec<&Path> = Vec::new();
                for root in [cpu, cpuacct, memory, pids, freezer, unified].into_iter().flatten() {
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

    /// The `cgroup.procs` files a container's process writes itself into before it unshares its cgroup
    /// namespace, one per hierarchy.
    pub fn procs_files(&self, name: &str) -> Vec<PathBuf> {
        self.roots().into_iter().map(|r| self.group(r, name).join("cgroup.procs")).collect()
    }

    /// Makes the group of container `name` in every hierarchy (idempotent) and applies `limits`.
    pub fn create(&self, name: &str, limits: &Limits) -> Result<(), CgroupError> {
        if let Layout::V2 { root } = &self.layout {
            // Each level down to the parent must hand the controllers to its children.
            let mut dir = root.clone();
            enable_controllers(&dir)?;
            for part in self.parent.components() {
                dir.push(part);
                mkdir(&dir)?;
                enable_controllers(&dir)?;
            }
        }
        for root in self.roots() {
            let group = self.group(root, name);
            std::fs::create_dir_all(&group).map_err(|source| CgroupError::Create { path: group.clone(), source })?;
        }
        self.apply(name, limits)
    }

    /// Writes each limit that is set to the kernel.
    pub fn apply(&self, name: &str, limits: &Limits) -> Result<(), CgroupError> {
        for limit in limits.set() {
            self.apply_one(name, &limit)?;
        }
        Ok(())
    }

    /// Writes one limit to the kernel, translated for v1.
    pub fn apply_one(&self, name: &str, limit: &Limit) -> Result<(), CgroupError> {
        match (&self.layout, limit) {
            (Layout::V2 { root }, l) => write(self.group(root, name).join(l.file_name()), &l.v2_value()),
            (Layout::V1 { cpu: Some(cpu), .. }, Limit::CpuWeight(w)) => {
                write(self.group(cpu, name).join("cpu.shares"), &limits::weight_to_shares(*w).to_string())
            }
            (Layout::V1 { cpu: Some(cpu), .. }, Limit::CpuMax(m)) => {
                let g = self.group(cpu, name);
                write(g.join("cpu.cfs_period_us"), &m.period.to_string())?;
                write(g.join("cpu.cfs_quota_us"), &m.quota.map_or("-1".to_string(), |q| q.to_string()))
            }
            (Layout::V1 { memory: Some(mem), .. }, Limit::MemoryMax(m)) => write(
                self.group(mem, name).join("memory.limit_in_bytes"),
                &m.0.map_or("-1".to_string(), |b| b.to_string()),
            ),
            (Layout::V1 { pids: Some(pids), .. }, Limit::PidsMax(m)) => {
                write(self.group(pids, name).join("pids.max"), &m.0.map_or("max".to_string(), |n| n.to_string()))
            }
            // The host lacks that controller: nothing to write it to.
            (Layout::V1 { .. }, _) => Ok(()),
        }
    }

    /// What the kernel has for `limit`'s kind in the group of `name`, in v2's syntax.
    pub fn read_limit(&self, name: &str, kind: &Limit) -> Option<String> {
        match (&self.layout, kind) {
            (Layout::V2 { root }, l) => {
                std::fs::read_to_string(self.group(root, name).join(l.file_name())).ok().map(|s| s.trim().to_string())
            }
            (Layout::V1 { cpu: Some(cpu), .. }, Limit::CpuWeight(_)) => {
                read_u64(&self.group(cpu, name).join("cpu.shares")).map(|s| limits::shares_to_weight(s).to_string())
            }
            (Layout::V1 { cpu: Some(cpu), .. }, Limit::CpuMax(_)) => {
                let g = self.group(cpu, name);
                let period = read_u64(&g.join("cpu.cfs_period_us"))?;
                let quota = std::fs::read_to_string(g.join("cpu.cfs_quota_us")).ok()?;
                let quota = quota.trim();
                Some(if quota.starts_with('-') { format!("max {period}") } else { format!("{quota} {period}") })
            }
            (Layout::V1 { memory: Some(mem), .. }, Limit::MemoryMax(_)) => {
                let bytes = read_u64(&self.group(mem, name).join("memory.limit_in_bytes"))?;
                // v1 reports "no limit" as the largest page-aligned value.
                Some(if bytes >= 1 << 62 { "max".into() } else { bytes.to_string() })
            }
            (Layout::V1 { pids: Some(pids), .. }, Limit::PidsMax(_)) => {
                std::fs::read_to_string(self.group(pids, name).join("pids.max")).ok().map(|s| s.trim().to_string())
            }
            (Layout::V1 { .. }, _) => None,
        }
    }

    /// The live numbers of the group of `name`.
    pub fn stats(&self, name: &str) -> Stats {
        match &self.layout {
            Layout::V2 { root } => {
                let g = self.group(root, name);
                Stats {
                    memory_current: read_u64(&g.join("memory.current")),
                    memory_peak: read_u64(&g.join("memory.peak")),
                    cpu_usage_usec: keyed(&g.join("cpu.stat"), "usage_usec"),
                    pids_current: read_u64(&g.join("pids.current")),
                    oom_kill: keyed(&g.join("memory.events"), "oom_kill"),
                }
            }
            Layout::V1 { cpuacct, memory, pids, .. } => {
                let at = |root: &Option<PathBuf>, file: &str| root.as_ref().map(|r| self.group(r, name).join(file));
                Stats {
                    memory_current: at(memory, "memory.usage_in_bytes").and_then(|p| read_u64(&p)),
                    memory_peak: at(memory, "memory.max_usage_in_bytes").and_then(|p| read_u64(&p)),
                    cpu_usage_usec: at(cpuacct, "cpuacct.usage").and_then(|p| read_u64(&p)).map(|ns| ns / 1000),
                    pids_current: at(pids, "pids.current").and_then(|p| read_u64(&p)),
                    oom_kill: at(memory, "memory.oom_control").and_then(|p| keyed(&p, "oom_kill")),
                }
            }
        }
    }

    /// Removes the group of `name` from every hierarchy; its processes must have ended.
    pub fn remove(&self, name: &str) -> Result<(), CgroupError> {
        for root in self.roots() {
            let group = self.group(root, name);
            // An exiting process can hold its group for a moment after the container is reaped.
            let mut tries = 0;
            loop {
                match std::fs::remove_dir(&group) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 50 => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    Err(source) => return Err(CgroupError::Remove { path: group, source }),
                }
            }
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

fn mkdir(dir: &Path) -> Result<(), CgroupError> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(CgroupError::Create { path: dir.to_path_buf(), source }),
    }
}

/// Lets the children of the v2 group `dir` use the cpu, memory and pids controllers it has.
fn enable_controllers(dir: &Path) -> Result<(), CgroupError> {
    let available = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let enabled = std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
    let wanted: Vec<String> = ["cpu", "memory", "pids"]
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
