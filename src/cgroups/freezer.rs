//! The cgroup freezer, behind `pause` and `unpause`: a container's processes stay alive but are given no
//! CPU until thawed, and cannot tell (unlike SIGSTOP).
//!
//! - cgroup v2 (and a hybrid host whose v1 hierarchies lack the freezer): `cgroup.freeze` in the group's
//!   cgroup2 directory, 1 to freeze, 0 to thaw; frozen once `cgroup.events` says `frozen 1`.
//! - cgroup v1: `freezer.state` in the freezer hierarchy, `FROZEN` to freeze (it reads `FREEZING` until
//!   every task is), `THAWED` to thaw.
//!
//! A freeze waits until the kernel says the whole group is frozen; one that doesn't get there within its
//! time (a task stuck in uninterruptible sleep on v1) is thawed again and fails, so `paused` always means
//! frozen.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Cgroups, Layout};

/// Why a freeze or a thaw failed; one variant per step.
#[derive(Debug, thiserror::Error)]
pub enum FreezeError {
    #[error("this host has no cgroup freezer (neither a v1 freezer hierarchy nor cgroup2)")]
    NoFreezer,
    #[error(
        "container '{name}' has no freezer group ({path}): it was started by an older daemon; restart it to pause it"
    )]
    NoGroup { name: String, path: PathBuf },
    #[error("cannot freeze {file}: {source}")]
    Freeze { file: PathBuf, source: io::Error },
    #[error("cannot read {file}: {source}")]
    ReadState { file: PathBuf, source: io::Error },
    #[error("{file} did not say frozen within {} ms (a process in uninterruptible sleep?): thawed again", .waited.as_millis())]
    NotFrozen { file: PathBuf, waited: Duration },
    #[error("cannot thaw {file}: {source}")]
    Thaw { file: PathBuf, source: io::Error },
}

impl FreezeError {
    pub fn errno(&self) -> i32 {
        match self {
            FreezeError::NoFreezer | FreezeError::NoGroup { .. } => libc::EOPNOTSUPP,
            FreezeError::NotFrozen { .. } => libc::ETIMEDOUT,
            FreezeError::Freeze { .. } | FreezeError::ReadState { .. } | FreezeError::Thaw { .. } => libc::EIO,
        }
    }
}

/// Which interface freezes a container's group, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Freezer {
    /// `cgroup.freeze` and `cgroup.events` in this cgroup2 directory.
    V2(PathBuf),
    /// `freezer.state` in this v1 freezer directory.
    V1(PathBuf),
}

/// How often a freeze looks whether the kernel has got there.
const POLL: Duration = Duration::from_millis(5);

impl Cgroups {
    /// The freezer of container `name`'s group: v1's freezer hierarchy where there is one, else cgroup2.
    fn freezer(&self, name: &str) -> Result<Freezer, FreezeError> {
        let (dir, v1) = match &self.layout {
            Layout::V2 { root } => (self.group(root, name), false),
            Layout::V1 { freezer: Some(root), .. } => (self.group(root, name), true),
            Layout::V1 { unified: Some(root), .. } => (self.group(root, name), false),
            Layout::V1 { .. } => return Err(FreezeError::NoFreezer),
        };
        if !dir.is_dir() {
            return Err(FreezeError::NoGroup { name: name.to_string(), path: dir });
        }
        Ok(if v1 { Freezer::V1(dir) } else { Freezer::V2(dir) })
    }

    /// Freezes container `name`'s group and waits, up to `timeout`, until every process in it is frozen;
    /// one that isn't by then is thawed again and the freeze fails.
    pub fn freeze(&self, name: &str, timeout: Duration) -> Result<(), FreezeError> {
        let freezer = self.freezer(name)?;
        let (file, value) = match &freezer {
            Freezer::V2(dir) => (dir.join("cgroup.freeze"), "1"),
            Freezer::V1(dir) => (dir.join("freezer.state"), "FROZEN"),
        };
        std::fs::write(&file, value).map_err(|source| FreezeError::Freeze { file: file.clone(), source })?;
        let start = Instant::now();
        loop {
            let frozen = match is_frozen(&freezer) {
                Ok(frozen) => frozen,
                Err(e) => {
                    let _ = self.thaw(name);
                    return Err(e);
                }
            };
            if frozen {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                let _ = self.thaw(name);
                let file = match &freezer {
                    Freezer::V2(dir) => dir.join("cgroup.events"),
                    Freezer::V1(_) => file,
                };
                return Err(FreezeError::NotFrozen { file, waited: start.elapsed() });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Thaws container `name`'s group (at once; a thawed group stays thawed).
    pub fn thaw(&self, name: &str) -> Result<(), FreezeError> {
        let (file, value) = match self.freezer(name)? {
            Freezer::V2(dir) => (dir.join("cgroup.freeze"), "0"),
            Freezer::V1(dir) => (dir.join("freezer.state"), "THAWED"),
        };
        std::fs::write(&file, value).map_err(|source| FreezeError::Thaw { file, source })
    }

    /// Whether container `name`'s group is asked to be frozen (frozen, or on its way: what a pause left,
    /// whatever became of the daemon since); `None` without a freezer group.
    pub fn freeze_requested(&self, name: &str) -> Option<bool> {
        match self.freezer(name).ok()? {
            Freezer::V2(dir) => Some(read_trimmed(&dir.join("cgroup.freeze")).ok()? == "1"),
            Freezer::V1(dir) => Some(read_trimmed(&dir.join("freezer.state")).ok()? != "THAWED"),
        }
    }
}

fn read_trimmed(file: &Path) -> io::Result<String> {
    std::fs::read_to_string(file).map(|s| s.trim().to_string())
}

/// Whether the kernel says the whole group is frozen now.
fn is_frozen(freezer: &Freezer) -> Result<bool, FreezeError> {
    let read = |file: PathBuf| read_trimmed(&file).map_err(|source| FreezeError::ReadState { file, source });
    Ok(match freezer {
        Freezer::V2(dir) => read(dir.join("cgroup.events"))?.lines().any(|l| l.trim() == "frozen 1"),
        Freezer::V1(dir) => read(dir.join("freezer.state"))? == "FROZEN",
    })
}
