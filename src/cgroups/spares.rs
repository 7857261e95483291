//! The groups of spare monitors (v1): a spare's container process waits in groups of its own, one per v1
//! hierarchy, named `spare-DAEMONPID-N` below the daemon's parent (never a container's `ctr-` name), and
//! they become the container's by a rename when it starts. v1 allows renaming a group, which keeps its
//! processes; cgroup2 does not, and needs none of this: a process is born in its group there.

use std::path::{Path, PathBuf};

use super::{mkdir, remove_group, CgroupError, Cgroups, Layout};

/// The first part of every spare's group name.
const PREFIX: &str = "spare-";

impl Cgroups {
    /// Whether a container's process can wait ahead in groups that become its own: on v1, where the freezer
    /// is v1's too (or there is no cgroup2 mount). The process then stays in the daemon's cgroup2 group on a
    /// hybrid host, where cgroup2 has no controllers, and nothing of the container's is looked for there.
    pub fn can_join_ahead(&self) -> bool {
        matches!(&self.layout, Layout::V1 { freezer, unified, .. } if freezer.is_some() || unified.is_none())
    }

    /// The name of this daemon's spare group number `n`.
    pub fn spare_group(n: u64) -> String {
        format!("{PREFIX}{}-{n}", std::process::id())
    }

    /// Makes the spare group `id` in each v1 hierarchy, ready to take a process, and returns their
    /// `cgroup.procs` files.
    pub fn make_spare(&self, id: &str) -> Result<Vec<PathBuf>, CgroupError> {
        self.make_parents()?;
        let mut procs = Vec::new();
        for root in self.v1_roots() {
            let group = root.join(&self.parent).join(id);
            mkdir(&group)?;
            procs.push(group.join("cgroup.procs"));
        }
        if let Layout::V1 { cpuset: Some(root), .. } = &self.layout {
            self.inherit_cpusets(root, &root.join(&self.parent).join(id))?;
        }
        Ok(procs)
    }

    /// Makes the spare group `id` container `name`'s in every v1 hierarchy, by a rename (its process stays
    /// in it), and makes its cgroup2 group on a hybrid host (its execs are born there). Any older group of
    /// `name` must be gone. On failure the renames done are undone.
    pub fn adopt_spare(&self, id: &str, name: &str) -> Result<(), CgroupError> {
        let mut done: Vec<(PathBuf, PathBuf)> = Vec::new();
        for root in self.v1_roots() {
            let parent = root.join(&self.parent);
            let (from, to) = (parent.join(id), parent.join(super::group_name(name)));
            if let Err(source) = std::fs::rename(&from, &to) {
                for (from, to) in done.iter().rev() {
                    let _ = std::fs::rename(to, from);
                }
                return Err(CgroupError::Rename { from, to, source });
            }
            done.push((from, to));
        }
        if let Layout::V1 { unified: Some(root), .. } = &self.layout {
            mkdir(&root.join(&self.parent).join(super::group_name(name)))?;
        }
        Ok(())
    }

    /// Removes the spare group `id` once its process has ended.
    pub fn remove_spare(&self, id: &str) -> Result<(), CgroupError> {
        for root in self.v1_roots() {
            remove_group(&root.join(&self.parent).join(id))?;
        }
        Ok(())
    }

    /// Removes the empty spare groups that daemons no longer running left (a daemon killed outright leaves
    /// its spares' groups; their processes end with it), this daemon's pid's earlier ones included.
    pub fn sweep_spares(&self) {
        let me = std::process::id();
        for root in self.v1_roots() {
            let Ok(entries) = std::fs::read_dir(root.join(&self.parent)) else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(owner) = spare_owner(&name) else { continue };
                if owner == me || !Path::new(&format!("/proc/{owner}")).exists() {
                    // A group still holding a process (EBUSY) stays.
                    let _ = std::fs::remove_dir(entry.path());
                }
            }
        }
    }
}

/// The daemon pid in a spare group's name.
fn spare_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (pid, n) = rest.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spare_group_names_its_daemon_and_never_a_container() {
        let id = Cgroups::spare_group(7);
        assert_eq!(spare_owner(&id), Some(std::process::id()));
        assert!(!id.starts_with("ctr-"));
        assert_eq!(spare_owner("spare-12-x"), None);
        assert_eq!(spare_owner("ctr-spare-12-3"), None);
        assert_eq!(spare_owner("spare-12-3"), Some(12));
    }

    #[test]
    fn only_v1_with_its_freezer_joins_ahead() {
        let v2 = Cgroups::new(Layout::V2 { root: "/sys/fs/cgroup".into() }, "bocker");
        assert!(!v2.can_join_ahead());
        assert!(v2.v1_roots().is_empty());
        let v1 = |freezer: Option<&str>, unified: Option<&str>| Layout::V1 {
            cpu: Some("/c/cpu".into()),
            cpuacct: None,
            memory: Some("/c/memory".into()),
            pids: None,
            freezer: freezer.map(PathBuf::from),
            blkio: None,
            cpuset: None,
            unified: unified.map(PathBuf::from),
        };
        assert!(Cgroups::new(v1(Some("/c/freezer"), Some("/c/unified")), "bocker").can_join_ahead());
        assert!(Cgroups::new(v1(None, None), "bocker").can_join_ahead());
        // A hybrid host freezing in cgroup2 would look for the process in a group it is not in.
        assert!(!Cgroups::new(v1(None, Some("/c/unified")), "bocker").can_join_ahead());
        let hybrid = Cgroups::new(v1(Some("/c/freezer"), Some("/c/unified")), "bocker");
        let roots: Vec<&Path> = hybrid.v1_roots();
        assert_eq!(roots, [Path::new("/c/cpu"), Path::new("/c/memory"), Path::new("/c/freezer")]);
    }
}
