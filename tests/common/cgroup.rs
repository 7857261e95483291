//! The daemon's cgroups as the kernel has them: the hierarchies of this machine (v1 controllers, the
//! cgroup2 mount, or both) and a container's group and files in them.

use std::fs;
use std::path::{Path, PathBuf};

use super::Bocker;

/// The cgroup hierarchies of this machine the daemon makes groups in (a v1 controller each, the freezer's,
/// blkio's and cpuset's among them, the cgroup2 mount, or both).
pub fn cgroup_roots() -> Vec<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut roots: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fstype = right.split(' ').next()?;
            let opts = right.split(' ').nth(2).unwrap_or("");
            let wanted = fstype == "cgroup2"
                || (fstype == "cgroup"
                    && opts
                        .split(',')
                        .any(|o| ["cpu", "cpuacct", "memory", "pids", "freezer", "blkio", "cpuset"].contains(&o)));
            left.split(" ").nth(4).filter(|_| wanted).map(PathBuf::from)
        })
        .collect();
    roots.dedup();
    roots
}

/// Whether `path` is a cgroup2 hierarchy.
pub fn is_cgroup2(path: &Path) -> bool {
    path.join("cgroup.controllers").exists()
}

/// Whether the memory controller is v1's here (a hybrid or v1 host).
pub fn is_v1() -> bool {
    cgroup_roots().iter().any(|r| r.ends_with("memory"))
}

/// Container `name`'s group in the v1 hierarchy of `controller`, or the cgroup2 one where there is none.
pub fn group(b: &Bocker, controller: &str, name: &str) -> PathBuf {
    let roots = cgroup_roots();
    let root = roots
        .iter()
        .find(|r| r.file_name().is_some_and(|f| f.to_string_lossy().split(',').any(|c| c == controller)))
        .or_else(|| roots.iter().find(|r| is_cgroup2(r)))
        .expect("no cgroup hierarchy for the controller")
        .clone();
    root.join(&b.cgroup_parent).join(format!("ctr-{name}"))
}

/// What the kernel's `file` of container `name`'s group in `controller`'s hierarchy says, trimmed.
pub fn kernel(b: &Bocker, controller: &str, name: &str, file: &str) -> String {
    fs::read_to_string(group(b, controller, name).join(file)).unwrap_or_else(|e| panic!("{file}: {e}")).trim().into()
}
