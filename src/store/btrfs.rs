//! The btrfs ioctls the store needs: create a subvolume, snapshot one (optionally read-only), delete one,
//! and flip the read-only flag; and find and delete the subvolumes nested in one (a container may make
//! them: `BTRFS_IOC_SUBVOL_CREATE` needs no capability). No crate wraps these well, so they are written
//! here, at the syscall edge.

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

/// `struct btrfs_ioctl_search_key` from `linux/btrfs.h`.
#[repr(C)]
struct SearchKey {
    tree_id: u64,
    min_objectid: u64,
    max_objectid: u64,
    min_offset: u64,
    max_offset: u64,
    min_transid: u64,
    max_transid: u64,
    min_type: u32,
    max_type: u32,
    nr_items: u32,
    unused: u32,
    unused1: [u64; 4],
}

/// `BTRFS_SEARCH_ARGS_BUFSIZE`: what is left of 4096 bytes after the key.
const SEARCH_BUF: usize = 4096 - std::mem::size_of::<SearchKey>();

/// `struct btrfs_ioctl_search_args` from `linux/btrfs.h`.
#[repr(C)]
struct SearchArgs {
    key: SearchKey,
    buf: [u8; SEARCH_BUF],
}

/// `struct btrfs_ioctl_search_header` from `linux/btrfs.h`, as it lies (unaligned) in the buffer.
const SEARCH_HEADER_LEN: usize = 32;
/// The tree of tree roots, where subvolumes' ROOT_REF items are.
const BTRFS_ROOT_TREE_OBJECTID: u64 = 1;
/// `BTRFS_ROOT_REF_KEY`: an item (parent id, ROOT_REF, child id) per subvolume nested in another.
const BTRFS_ROOT_REF_KEY: u32 = 156;
/// `BTRFS_SUBVOL_SPEC_BY_ID`: `SNAP_DESTROY_V2` names the subvolume by id, not by a name.
const BTRFS_SUBVOL_SPEC_BY_ID: u64 = 1 << 4;

nix::ioctl_none!(ioc_sync, BTRFS_IOCTL_MAGIC, 8);
nix::ioctl_write_ptr!(ioc_subvol_sync_wait, BTRFS_IOCTL_MAGIC, 65, SubvolWait);
nix::ioctl_readwrite!(ioc_ino_lookup, BTRFS_IOCTL_MAGIC, 18, InoLookup);
nix::ioctl_write_ptr!(ioc_subvol_create, BTRFS_IOCTL_MAGIC, 14, VolArgs);
nix::ioctl_write_ptr!(ioc_snap_destroy, BTRFS_IOCTL_MAGIC, 15, VolArgs);
nix::ioctl_readwrite!(ioc_tree_search, BTRFS_IOCTL_MAGIC, 17, SearchArgs);
nix::ioctl_write_ptr!(ioc_snap_destroy_v2, BTRFS_IOCTL_MAGIC, 63, VolArgsV2);
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

/// The ids of the subvolumes directly nested in subvolume `parent` (on the filesystem of `fs`), from the
/// root tree's ROOT_REF items. Needs CAP_SYS_ADMIN, which the daemon has.
fn children(fs: &File, parent: u64) -> io::Result<Vec<u64>> {
    let mut out = Vec::new();
    let mut min_offset = 0;
    loop {
        let mut args = SearchArgs {
            key: SearchKey {
                tree_id: BTRFS_ROOT_TREE_OBJECTID,
                min_objectid: parent,
                max_objectid: parent,
                min_offset,
                max_offset: u64::MAX,
                min_transid: 0,
                max_transid: u64::MAX,
                min_type: BTRFS_ROOT_REF_KEY,
                max_type: BTRFS_ROOT_REF_KEY,
                nr_items: 4096,
                unused: 0,
                unused1: [0; 4],
            },
            buf: [0; SEARCH_BUF],
        };
        // SAFETY: `args` is a valid btrfs_ioctl_search_args the kernel reads and fills; `fs` is open.
        unsafe { ioc_tree_search(fs.as_raw_fd(), &mut args) }?;
        let found = args.key.nr_items as usize;
        if found == 0 {
            return Ok(out);
        }
        let mut at = 0;
        let field = |buf: &[u8], at: usize| u64::from_ne_bytes(buf[at..at + 8].try_into().unwrap_or([0; 8]));
        for _ in 0..found {
            if at + SEARCH_HEADER_LEN > SEARCH_BUF {
                break;
            }
            let (objectid, offset) = (field(&args.buf, at + 8), field(&args.buf, at + 16));
            let kind = u32::from_ne_bytes(args.buf[at + 24..at + 28].try_into().unwrap_or([0; 4]));
            let len = u32::from_ne_bytes(args.buf[at + 28..at + 32].try_into().unwrap_or([0; 4])) as usize;
            if objectid == parent && kind == BTRFS_ROOT_REF_KEY {
                out.push(offset);
            }
            min_offset = offset.saturating_add(1);
            at += SEARCH_HEADER_LEN + len;
        }
        if min_offset == u64::MAX || min_offset == 0 {
            return Ok(out);
        }
    }
}

/// Deletes subvolume `id` by its id, `fs` being any open file on its filesystem (Linux 5.7 and later).
fn delete_by_id(fs: &File, id: u64) -> io::Result<()> {
    let mut args = VolArgsV2 {
        fd: 0,
        transid: 0,
        flags: BTRFS_SUBVOL_SPEC_BY_ID,
        unused: [0; 4],
        name: [0; BTRFS_SUBVOL_NAME_MAX + 1],
    };
    // The name is a union with the subvolume id.
    args.name[..8].copy_from_slice(&id.to_ne_bytes());
    // SAFETY: `args` is a fully initialised `btrfs_ioctl_vol_args_v2` that outlives the call; `fs` is open.
    unsafe { ioc_snap_destroy_v2(fs.as_raw_fd(), &args) }?;
    Ok(())
}

/// Deletes the subvolume at `path` with every subvolume nested in it, the deepest first, as moby's btrfs
/// driver does (it finds them by walking the tree; the root tree's ROOT_REF items name them without a walk).
/// Returns how many nested ones there were.
pub fn delete_subvolume_tree(path: &Path) -> io::Result<usize> {
    let fs = File::open(path)?;
    let top = subvolume_id(path)?;
    // Depth first, without recursion: a container may nest them as deep as it likes.
    let mut order = Vec::new();
    let mut pending = vec![top];
    while let Some(id) = pending.pop() {
        let kids = children(&fs, id)?;
        order.extend(kids.iter().copied());
        pending.extend(kids);
    }
    // Each child was found after its parent: deleting in reverse deletes children first.
    for id in order.iter().rev() {
        match delete_by_id(&fs, *id) {
            Ok(()) => {}
            // Deleted meanwhile.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    drop(fs);
    delete_subvolume(path)?;
    Ok(order.len())
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
