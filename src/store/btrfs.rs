//! The btrfs ioctls the store needs: create a subvolume, snapshot one (optionally read-only), delete one,
//! and flip the read-only flag. No crate wraps these well, so they are written here, at the syscall edge.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const BTRFS_IOCTL_MAGIC: u8 = 0x94;
const BTRFS_PATH_NAME_MAX: usize = 4087;
const BTRFS_SUBVOL_NAME_MAX: usize = 4039;
const BTRFS_SUBVOL_RDONLY: u64 = 1 << 1;

/// `struct btrfs_ioctl_vol_args` from `linux/btrfs.h`.
#[repr(C)]
struct VolArgs {
    fd: i64,
    name: [u8; BTRFS_PATH_NAME_MAX + 1],
}

/// `struct btrfs_ioctl_vol_args_v2` from `linux/btrfs.h`.
#[repr(C)]
struct VolArgsV2 {
    fd: i64,
    transid: u64,
    flags: u64,
    unused: [u64; 4],
    name: [u8; BTRFS_SUBVOL_NAME_MAX + 1],
}

/// `struct btrfs_ioctl_subvol_wait` from `linux/btrfs.h` (Linux 6.8 and later).
#[repr(C)]
struct SubvolWait {
    subvolid: u64,
    mode: u32,
    count: u32,
}

/// `BTRFS_SUBVOL_SYNC_WAIT_FOR_ONE`: wait until the given deleted subvolume is cleaned.
const SUBVOL_SYNC_WAIT_FOR_ONE: u32 = 0;

/// `struct btrfs_ioctl_ino_lookup_args` from `linux/btrfs.h`.
#[repr(C)]
struct InoLookup {
    treeid: u64,
    objectid: u64,
    name: [u8; 4080],
}

/// The inode number of every subvolume's root directory.
const BTRFS_FIRST_FREE_OBJECTID: u64 = 256;

nix::ioctl_none!(ioc_sync, BTRFS_IOCTL_MAGIC, 8);
nix::ioctl_write_ptr!(ioc_subvol_sync_wait, BTRFS_IOCTL_MAGIC, 65, SubvolWait);
nix::ioctl_readwrite!(ioc_ino_lookup, BTRFS_IOCTL_MAGIC, 18, InoLookup);
nix::ioctl_write_ptr!(ioc_subvol_create, BTRFS_IOCTL_MAGIC, 14, VolArgs);
nix::ioctl_write_ptr!(ioc_snap_destroy, BTRFS_IOCTL_MAGIC, 15, VolArgs);
nix::ioctl_write_ptr!(ioc_snap_create_v2, BTRFS_IOCTL_MAGIC, 23, VolArgsV2);
nix::ioctl_read!(ioc_subvol_getflags, BTRFS_IOCTL_MAGIC, 25, u64);
nix::ioctl_write_ptr!(ioc_subvol_setflags, BTRFS_IOCTL_MAGIC, 26, u64);

/// Splits `path` into its parent directory (opened) and its final name, checked to fit `max` bytes.
fn parent_and_name(path: &Path, max: usize) -> io::Result<(File, Vec<u8>)> {
    let parent = path.parent().ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    let name = path.file_name().ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    let name = name.as_bytes().to_vec();
    if name.len() > max {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    Ok((File::open(parent)?, name))
}

/// The parent directory of `path` and the `btrfs_ioctl_vol_args` naming its last component.
fn vol_args(path: &Path) -> io::Result<(File, VolArgs)> {
    let (dir, name) = parent_and_name(path, BTRFS_PATH_NAME_MAX)?;
    let mut args = VolArgs { fd: 0, name: [0; BTRFS_PATH_NAME_MAX + 1] };
    args.name[..name.len()].copy_from_slice(&name);
    Ok((dir, args))
}

/// Creates an empty subvolume at `path`.
pub fn create_subvolume(path: &Path) -> io::Result<()> {
    let (dir, args) = vol_args(path)?;
    // SAFETY: `args` is a fully initialised `btrfs_ioctl_vol_args` that outlives the call, and `dir` is an open
    // directory on the btrfs filesystem.
    unsafe { ioc_subvol_create(dir.as_raw_fd(), &args) }?;
    Ok(())
}

/// Snapshots the subvolume at `source` to `dest`, read-only when `read_only` is set.
pub fn snapshot(source: &Path, dest: &Path, read_only: bool) -> io::Result<()> {
    let src = File::open(source)?;
    let (dir, name) = parent_and_name(dest, BTRFS_SUBVOL_NAME_MAX)?;
    let mut args = VolArgsV2 {
        fd: i64::from(src.as_raw_fd()),
        transid: 0,
        flags: if read_only { BTRFS_SUBVOL_RDONLY } else { 0 },
        unused: [0; 4],
        name: [0; BTRFS_SUBVOL_NAME_MAX + 1],
    };
    args.name[..name.len()].copy_from_slice(&name);
    // SAFETY: `args` is a fully initialised `btrfs_ioctl_vol_args_v2` that outlives the call; both fds are open.
    unsafe { ioc_snap_create_v2(dir.as_raw_fd(), &args) }?;
    Ok(())
}

/// Deletes the subvolume at `path` (read-only ones too; the caller is root).
pub fn delete_subvolume(path: &Path) -> io::Result<()> {
    let (dir, args) = vol_args(path)?;
    // SAFETY: as in `create_subvolume`.
    unsafe { ioc_snap_destroy(dir.as_raw_fd(), &args) }?;
    Ok(())
}

/// Marks the subvolume at `path` read-only, or writable again.
pub fn set_read_only(path: &Path, read_only: bool) -> io::Result<()> {
    let subvol = File::open(path)?;
    let mut flags: u64 = 0;
    // SAFETY: `flags` is a valid u64 the kernel writes into; `subvol` is open.
    unsafe { ioc_subvol_getflags(subvol.as_raw_fd(), &mut flags) }?;
    flags = if read_only { flags | BTRFS_SUBVOL_RDONLY } else { flags & !BTRFS_SUBVOL_RDONLY };
    // SAFETY: `flags` is a valid u64 the kernel reads; `subvol` is open.
    unsafe { ioc_subvol_setflags(subvol.as_raw_fd(), &flags) }?;
    Ok(())
}

/// Commits the current transaction and wakes the cleaner, which frees deleted subvolumes' space.
pub fn sync(path: &Path) -> io::Result<()> {
    let dir = File::open(path)?;
    // SAFETY: BTRFS_IOC_SYNC takes no argument; `dir` is open on the filesystem.
    unsafe { ioc_sync(dir.as_raw_fd()) }?;
    Ok(())
}

/// The id of the subvolume whose root is `path`.
pub fn subvolume_id(path: &Path) -> io::Result<u64> {
    let dir = File::open(path)?;
    let mut args = InoLookup { treeid: 0, objectid: BTRFS_FIRST_FREE_OBJECTID, name: [0; 4080] };
    // SAFETY: `args` is a valid btrfs_ioctl_ino_lookup_args the kernel reads and fills; `dir` is open.
    unsafe { ioc_ino_lookup(dir.as_raw_fd(), &mut args) }?;
    Ok(args.treeid)
}

/// Waits until the cleaner has dropped deleted subvolume `id` (on the filesystem of `path`). `Ok(false)`
/// when the kernel is older than 6.8 and has no such wait.
pub fn wait_deleted(path: &Path, id: u64) -> io::Result<bool> {
    let dir = File::open(path)?;
    let args = SubvolWait { subvolid: id, mode: SUBVOL_SYNC_WAIT_FOR_ONE, count: 0 };
    // SAFETY: `args` is a valid btrfs_ioctl_subvol_wait the kernel reads; `dir` is open on the filesystem.
    match unsafe { ioc_subvol_sync_wait(dir.as_raw_fd(), &args) } {
        // ENOENT: it is gone already.
        Ok(_) | Err(nix::Error::ENOENT) => Ok(true),
        Err(nix::Error::ENOTTY | nix::Error::EINVAL | nix::Error::EOPNOTSUPP) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether `path` lies on a btrfs filesystem.
pub fn is_btrfs(path: &Path) -> io::Result<bool> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: an all-zero `statfs` is a valid value for the kernel to overwrite.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a writable statfs buffer, both live for the call.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type == libc::BTRFS_SUPER_MAGIC)
}
