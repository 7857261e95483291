//! Who may drive the tree. Whoever can write it is root on the host (a privileged container with `/:/host`
//! is one `mkdir` away), so by default only root may use it: the mount has no `allow_other`, and the kernel
//! refuses every other user. `--group NAME` opens it to that group, as Docker's `docker` group: the mount gets
//! `allow_other` and `default_permissions`, the tree is `root:NAME` with modes the kernel enforces, and every
//! write, mkdir and rmdir is checked here once more against the caller's uid and groups.

use fuser::{Errno, Request as FuseRequest};

/// The tree's access policy: root, and the members of one group if the daemon was given `--group`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Access {
    /// The gid of `--group`.
    pub group: Option<u32>,
}

pub use crate::caller::Caller;

impl Caller {
    /// The caller of `req`: its uid, gid and pid, and the supplementary groups of that pid (checked to
    /// still be its, see [`Caller::of_request`]). The process is blocked in the request until it is
    /// answered.
    pub fn of(req: &FuseRequest) -> Caller {
        Caller::of_request(req.uid(), req.gid(), req.pid())
    }

    fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

impl Access {
    /// Whether `caller` may change the tree (write, mkdir, rmdir): EACCES if not.
    pub fn check(&self, caller: &Caller) -> Result<(), Errno> {
        let allowed = caller.uid == 0 || self.group.is_some_and(|g| caller.in_group(g));
        if allowed {
            Ok(())
        } else {
            Err(Errno::EACCES)
        }
    }

    /// The group that owns every node.
    pub fn gid(&self) -> u32 {
        self.group.unwrap_or(0)
    }

    /// The mode shown for a node whose root-only mode is `mode`: with a group, the group may read (and
    /// search) what the owner may; it may write files the owner may write, and directories that take mkdir,
    /// rmdir or scratch files (`dir_writable`); others get nothing.
    pub fn mode(&self, mode: u16, is_dir: bool, dir_writable: bool) -> u16 {
        if self.group.is_none() {
            return mode;
        }
        let owner = mode & 0o700;
        let mut group = (owner >> 3) & 0o050;
        if (!is_dir && owner & 0o200 != 0) || (is_dir && dir_writable) {
            group |= 0o020;
        }
        owner | group
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(uid: u32, gid: u32, groups: &[u32]) -> Caller {
        Caller { uid, gid, groups: groups.to_vec(), pid: 0 }
    }

    #[test]
    fn root_only_by_default() {
        let access = Access::default();
        assert_eq!(access.check(&caller(0, 0, &[])), Ok(()));
        assert_eq!(access.check(&caller(65534, 65534, &[])), Err(Errno::EACCES));
        assert_eq!(access.check(&caller(1000, 0, &[0])), Err(Errno::EACCES), "gid 0 alone is not root");
    }

    #[test]
    fn the_group_by_primary_or_supplementary_gid() {
        let access = Access { group: Some(990) };
        assert_eq!(access.check(&caller(1000, 990, &[])), Ok(()));
        assert_eq!(access.check(&caller(1000, 1000, &[4, 990])), Ok(()));
        assert_eq!(access.check(&caller(1000, 1000, &[4])), Err(Errno::EACCES));
        assert_eq!(access.check(&caller(0, 0, &[])), Ok(()));
    }

    #[test]
    fn modes() {
        let root = Access::default();
        assert_eq!(root.mode(0o644, false, false), 0o644);
        let group = Access { group: Some(990) };
        assert_eq!(group.mode(0o755, true, false), 0o750);
        assert_eq!(group.mode(0o755, true, true), 0o770);
        assert_eq!(group.mode(0o644, false, false), 0o660);
        assert_eq!(group.mode(0o600, false, false), 0o660);
        assert_eq!(group.mode(0o444, false, false), 0o440);
        assert_eq!(group.mode(0o777, false, false), 0o770, "a symlink");
    }
}
