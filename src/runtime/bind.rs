//! A container's volumes, bind-mounted into its rootfs by its pid 1 before `pivot_root`: the source as
//! the engine checked it, its submounts too, `nosuid` (and `nodev` unless the container is privileged)
//! all the way down, and read-only all the way down for a `:ro` volume (runc's `rro`, Docker 25's
//! default), so a mount under the source can't stay writable or keep its devices inside.
//!
//! The tree is cloned with `open_tree(OPEN_TREE_CLONE | AT_RECURSIVE)`, its flags set with
//! `mount_setattr(AT_RECURSIVE)` while it is still detached, and only then moved onto the target with
//! `move_mount`: no moment exists in which the container could see it writable. The source is opened
//! without following any symlink (the engine resolved it when it checked it: a symlink swapped in since
//! fails the start), and the target is resolved with `openat2(RESOLVE_IN_ROOT)`, so a symlink in the
//! image can't point the mount outside the rootfs, nor (unless privileged) into `/proc`, `/sys` or `/dev`.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags, CWD};
use rustix::io::Errno;
use rustix::mount::{MoveMountFlags, OpenTreeFlags};

use super::init::SetupError;
use super::spec::BindMount;

/// Directories of the container (under its rootfs) a volume may cover only when it is privileged.
const KERNEL_DIRS: [&str; 3] = ["proc", "sys", "dev"];

/// Bind-mounts `bind.source` onto its target inside `rootfs`, made if missing (a file or a directory, as
/// the source is).
pub(super) fn bind_into(rootfs: &Path, bind: &BindMount, privileged: bool) -> Result<(), SetupError> {
    let at = |what: &'static str| {
        move |e: Errno| SetupError {
            errno: e.raw_os_error(),
            message: format!("volume {}: {what}: {}", bind.target, std::io::Error::from(e)),
        }
    };
    let source = rustix::fs::openat2(
        CWD,
        &bind.source,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| SetupError {
        errno: e.raw_os_error(),
        message: match e {
            Errno::LOOP => format!("volume source {} became a symlink after it was checked", bind.source.display()),
            e => format!("volume source {}: {}", bind.source.display(), std::io::Error::from(e)),
        },
    })?;
    let is_dir = rustix::fs::fstat(&source).map_err(at("stat the source"))?.st_mode & libc::S_IFMT == libc::S_IFDIR;
    let target = open_target(rootfs, &bind.target, is_dir, privileged)?;
    let flags = OpenTreeFlags::OPEN_TREE_CLONE
        | OpenTreeFlags::OPEN_TREE_CLOEXEC
        | OpenTreeFlags::AT_EMPTY_PATH
        | OpenTreeFlags::AT_RECURSIVE;
    let tree = rustix::mount::open_tree(&source, "", flags).map_err(at("clone the source's mounts"))?;
    let mut set = libc::MOUNT_ATTR_NOSUID;
    if !privileged {
        set |= libc::MOUNT_ATTR_NODEV;
    }
    if bind.readonly {
        set |= libc::MOUNT_ATTR_RDONLY;
    }
    set_attributes(&tree, set).map_err(at("set nosuid, nodev and read-only on every mount of it"))?;
    let flags = MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH;
    rustix::mount::move_mount(&tree, "", &target, "", flags).map_err(at("mount"))?;
    Ok(())
}

/// `mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE)` setting `set` on the tree and every mount in it.
fn set_attributes(tree: &OwnedFd, set: u64) -> Result<(), Errno> {
    let attr = libc::mount_attr { attr_set: set, attr_clr: 0, propagation: 0, userns_fd: 0 };
    // SAFETY: mount_setattr reads `attr` (size given) and the empty C string; both outlive the call, and
    // the fd is open.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_fd().as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO))
    }
}

/// Refuses (EPERM) `fd`, a directory or the target on the way to `target`, when it is in the container's
/// `/proc`, `/sys` or `/dev`: only a symlink in the image leads there from a target the engine accepted.
fn outside_kernel_dirs(rootfs: &Path, target: &str, fd: &OwnedFd) -> Result<(), SetupError> {
    let resolved = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|e| SetupError { errno: libc::EIO, message: format!("volume {target}: {e}") })?;
    match KERNEL_DIRS.iter().find(|d| resolved.starts_with(rootfs.join(d))) {
        Some(dir) => Err(SetupError {
            errno: libc::EPERM,
            message: format!(
                "volume {target} resolves into /{dir} (through a symlink in the image): only a privileged \
                 container may mount there"
            ),
        }),
        None => Ok(()),
    }
}

/// Opens (making what is missing) the target `target` beneath `rootfs`, every step resolved inside it
/// and, unless `privileged`, outside its `/proc`, `/sys` and `/dev`.
fn open_target(rootfs: &Path, target: &str, is_dir: bool, privileged: bool) -> Result<OwnedFd, SetupError> {
    let err = |e: Errno| SetupError {
        errno: e.raw_os_error(),
        message: format!("volume {target}: mount point: {}", std::io::Error::from(e)),
    };
    // The kernel names an fd's path with every symlink resolved: compare it with the rootfs resolved too.
    let real_root = std::fs::canonicalize(rootfs).unwrap_or_else(|_| rootfs.to_path_buf());
    let check = |fd: &OwnedFd| if privileged { Ok(()) } else { outside_kernel_dirs(&real_root, target, fd) };
    let root =
        rustix::fs::open(rootfs, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).map_err(err)?;
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let parts: Vec<&str> = target.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if parts.is_empty() {
        return Err(err(Errno::INVAL));
    }
    // Every missing directory on the way is made, and the target itself when it is one.
    let dir_flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let dirs = if is_dir { parts.len() } else { parts.len() - 1 };
    for i in 0..dirs {
        match rustix::fs::openat2(&root, parts[..=i].join("/"), dir_flags, Mode::empty(), resolve) {
            Ok(dir) => check(&dir)?,
            Err(Errno::NOENT) => {
                let parent = if i == 0 { ".".to_string() } else { parts[..i].join("/") };
                let parent = rustix::fs::openat2(&root, &parent, dir_flags, Mode::empty(), resolve).map_err(err)?;
                check(&parent)?;
                match rustix::fs::mkdirat(&parent, parts[i], Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(err(e)),
                }
            }
            Err(e) => return Err(err(e)),
        }
    }
    let path = parts.join("/");
    let opened = if is_dir {
        rustix::fs::openat2(&root, &path, dir_flags, Mode::empty(), resolve)
    } else {
        // Never opened for reading: a FIFO (or a device) left at the target would block the start, or do
        // worse. An O_PATH fd, made only when missing (non-blocking, exclusive), and a regular file only.
        let path_flags = OFlags::PATH | OFlags::CLOEXEC;
        let made = OFlags::CREATE | OFlags::EXCL | OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
        match rustix::fs::openat2(&root, &path, path_flags, Mode::empty(), resolve) {
            Err(Errno::NOENT) => {
                match rustix::fs::openat2(&root, &path, made, Mode::from_bits_truncate(0o644), resolve) {
                    Err(Errno::EXIST) => rustix::fs::openat2(&root, &path, path_flags, Mode::empty(), resolve),
                    other => other,
                }
            }
            other => other,
        }
    }
    .map_err(err)?;
    if !is_dir {
        let kind = rustix::fs::fstat(&opened).map(|st| rustix::fs::FileType::from_raw_mode(st.st_mode)).map_err(err)?;
        if kind != rustix::fs::FileType::RegularFile {
            return Err(SetupError {
                errno: libc::EINVAL,
                message: format!("volume {target}: the image has a {kind:?} there, and a file mounts only over a file"),
            });
        }
    }
    check(&opened)?;
    Ok(opened)
}
