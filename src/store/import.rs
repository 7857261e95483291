//! The source of an `images/import`: opened as the caller, and refused when it is no root filesystem a
//! caller should hand over: procfs, sysfs and the other kernel filesystems, a FUSE mount (the control
//! mount itself among them), the daemon's own root or anything inside it.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::copy::{mount_id, CopyError, Source};
use crate::caller::Caller;

/// Filesystems an import refuses as its source, by `statfs` magic: the kernel's views (their files are
/// the host's state, not a tree), FUSE (any user may mount one, and the control mount is one). The casts
/// are needed where `c_long` is not 64 bits.
#[allow(clippy::unnecessary_cast)]
const REFUSED: &[(i64, &str)] = &[
    (libc::PROC_SUPER_MAGIC as i64, "procfs"),
    (libc::SYSFS_MAGIC as i64, "sysfs"),
    (libc::FUSE_SUPER_MAGIC as i64, "a FUSE filesystem"),
    (libc::CGROUP_SUPER_MAGIC as i64, "cgroupfs"),
    (libc::CGROUP2_SUPER_MAGIC as i64, "cgroupfs"),
    (libc::DEBUGFS_MAGIC as i64, "debugfs"),
    (libc::TRACEFS_MAGIC as i64, "tracefs"),
    (libc::SECURITYFS_MAGIC as i64, "securityfs"),
    (libc::BPF_FS_MAGIC as i64, "bpffs"),
    (libc::DEVPTS_SUPER_MAGIC as i64, "devpts"),
    (libc::NSFS_MAGIC as i64, "nsfs"),
    (0x6e61_6d65, "efivarfs"),
    (0x6265_6e64, "configfs"),
];

/// Opens `path` as `caller` and checks it may be imported; `daemon_root` is the daemon's own root.
pub fn open_source(path: &Path, caller: &Caller, daemon_root: &Path) -> Result<Source, CopyError> {
    let read_err = |p: &Path, e: Errno| CopyError::Read { path: p.to_path_buf(), source: e.into() };
    let refused = |why: String| CopyError::Refused { path: path.to_path_buf(), why };
    let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
    // The path is resolved once, with the caller's own rights (symlinks in it included, as their shell
    // would, but no /proc magic link: `/proc/self/...` would be the daemon's); everything after goes from
    // this descriptor.
    let resolve = ResolveFlags::NO_MAGICLINKS;
    let fd =
        caller.access(|| rustix::fs::openat2(rustix::fs::CWD, path, flags, Mode::empty(), resolve))?.map_err(|e| {
            match e {
                Errno::NOENT => CopyError::NotFound(path.to_path_buf()),
                Errno::NOTDIR => CopyError::NotDirectory(path.to_path_buf()),
                Errno::LOOP => refused("the path goes through a /proc magic link (or loops through symlinks)".into()),
                e => read_err(path, e),
            }
        })?;
    let fs = rustix::fs::fstatfs(&fd).map_err(|e| read_err(path, e))?;
    #[allow(clippy::unnecessary_cast)]
    let f_type = fs.f_type as i64;
    if let Some((_, name)) = REFUSED.iter().find(|(magic, _)| *magic == f_type) {
        return Err(refused(format!("it is on {name}, not a directory tree of files")));
    }
    let root = rustix::fs::stat(daemon_root).map_err(|e| read_err(daemon_root, e))?;
    let forbidden = vec![(root.st_dev, root.st_ino)];
    if within(&fd, &forbidden).map_err(|e| read_err(path, e))? {
        return Err(refused(format!("it is the daemon's root {} or inside it", daemon_root.display())));
    }
    let mnt_id = mount_id(&fd).map_err(|e| read_err(path, e))?;
    Ok(Source { fd, path: PathBuf::from(path), mnt_id, forbidden })
}

/// Whether `dir` or one of its ancestors is one of `forbidden` (dev, ino): walks `..` from the descriptor
/// up to `/`, by descriptors (O_PATH: no content is read, so it runs as the daemon).
fn within(dir: &OwnedFd, forbidden: &[(u64, u64)]) -> rustix::io::Result<bool> {
    let mut cur = rustix::io::fcntl_dupfd_cloexec(dir, 0)?;
    // Deeper than this there is no real path: a loop guard, not a limit anyone meets.
    for _ in 0..4096 {
        let st = rustix::fs::fstat(&cur)?;
        if forbidden.contains(&(st.st_dev, st.st_ino)) {
            return Ok(true);
        }
        let parent = rustix::fs::openat(&cur, "..", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        let pst = rustix::fs::fstat(&parent)?;
        if (pst.st_dev, pst.st_ino) == (st.st_dev, st.st_ino) {
            return Ok(false);
        }
        cur = parent;
    }
    Ok(false)
}
