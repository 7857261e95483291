//! Copies a directory tree into a subvolume the way `cp -ax` does: modes, owners, timestamps, symlinks,
//! hardlinks, device nodes and fifos, dotfiles included, on one mount only. Used by `images/import`
//! (bocker's `init`); and the size of a tree, for a committed image's record.
//!
//! The source is walked by file descriptors: each entry is opened from its parent directory's descriptor,
//! one name at a time, with `O_NOFOLLOW`, and what is copied is what that descriptor shows. A directory
//! swapped for a symlink between the listing and the open is not followed (the open fails; the entry is
//! skipped); no path is looked up twice. Every look-up and open in the source runs with the caller's
//! filesystem identity ([`Caller::access`]), so the copy holds only what the caller can read; the
//! destination is written as the daemon. A directory on another mount (by `statx`'s mount id) is copied as
//! an empty directory and not entered, and meeting the daemon's own root refuses the whole import.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, StatxFlags, Timespec, Timestamps};
use rustix::io::Errno;
use tracing::warn;

use crate::caller::{Caller, CallerError};

/// How deep a source tree may go. Real root filesystems stay far below; each level holds two descriptors.
pub const MAX_DEPTH: usize = 256;

/// Why a copy failed; the path is the one in the source (or the destination, for a write).
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("no directory '{}'", .0.display())]
    NotFound(PathBuf),
    #[error("'{}' is not a directory", .0.display())]
    NotDirectory(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write the copy of {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("refused to import {path}: {why}")]
    Refused { path: PathBuf, why: String },
    #[error("{path} is more than {MAX_DEPTH} directories deep")]
    TooDeep { path: PathBuf },
    #[error(transparent)]
    Identity(#[from] CallerError),
    #[error("the copy stopped on an internal error (see the daemon log)")]
    Aborted,
}

impl CopyError {
    /// The errno of a failed import: the caller's EACCES and ENOENT, ENOSPC of the store, EPERM for what
    /// is refused; the rest EIO.
    pub fn errno(&self) -> i32 {
        match self {
            CopyError::Read { source, .. } => match source.raw_os_error() {
                Some(e @ (libc::EACCES | libc::ENOENT | libc::EPERM)) => e,
                Some(libc::ENOTDIR) => libc::EINVAL,
                _ => libc::EIO,
            },
            CopyError::Write { source, .. } => match source.raw_os_error() {
                Some(e @ (libc::ENOSPC | libc::EDQUOT)) => e,
                _ => libc::EIO,
            },
            CopyError::Refused { .. } => libc::EPERM,
            CopyError::NotFound(_) => libc::ENOENT,
            CopyError::NotDirectory(_) => libc::EINVAL,
            CopyError::TooDeep { .. } => libc::EINVAL,
            CopyError::Identity(_) | CopyError::Aborted => libc::EIO,
        }
    }
}

/// What a copy produced.
#[derive(Debug, Default)]
pub struct CopyStats {
    /// Bytes of regular file content, each inode counted once.
    pub bytes: u64,
}

/// An opened source: the directory, the mount it is on, and the (dev, ino) the walk must never meet.
pub struct Source {
    pub fd: OwnedFd,
    pub path: PathBuf,
    pub mnt_id: u64,
    pub forbidden: Vec<(u64, u64)>,
}

/// Whether an entry of the source is copied (see [`copy_tree_filtered`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    Copy,
    Skip,
    /// A directory left out, but walked for what is taken beneath it: kept only if something is.
    Descend,
}

/// Says, for an entry's path relative to the source (`/`-separated) and whether it is a directory, if it is
/// copied.
pub type Filter<'a> = &'a (dyn Fn(&[u8], bool) -> Pass + Sync);

/// Copies the contents of `src` into the existing, empty directory `dst`, and `src`'s own mode, owner
/// and times onto `dst`, reading as `caller`.
pub fn copy_tree(src: &Source, dst: &Path, caller: &Caller) -> Result<CopyStats, CopyError> {
    copy_tree_filtered(src, dst, caller, None)
}

/// [`copy_tree`] of only what `filter` passes (a build context without what `.dockerignore` leaves out).
pub fn copy_tree_filtered(
    src: &Source,
    dst: &Path,
    caller: &Caller,
    filter: Option<Filter<'_>>,
) -> Result<CopyStats, CopyError> {
    let write_err = |source: Errno| CopyError::Write { path: dst.to_path_buf(), source: source.into() };
    let dst_fd = rustix::fs::open(dst, OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(write_err)?;
    let mut c = Copier { caller, src, links: HashMap::new(), stats: CopyStats::default(), dst_root: dst_fd, filter };
    let dst_root = rustix::io::fcntl_dupfd_cloexec(&c.dst_root, 0).map_err(write_err)?;
    c.copy_dir(&src.fd, &src.path, &dst_root, Vec::new(), 0)?;
    let st = rustix::fs::fstat(&src.fd).map_err(|e| c.read_err(&src.path, e))?;
    apply_meta_fd(&dst_root, &st).map_err(write_err)?;
    Ok(c.stats)
}

struct Copier<'a> {
    caller: &'a Caller,
    src: &'a Source,
    /// (dev, ino) of multiply-linked files already copied, and where in the copy they are.
    links: HashMap<(u64, u64), Vec<u8>>,
    stats: CopyStats,
    dst_root: OwnedFd,
    filter: Option<Filter<'a>>,
}

impl Copier<'_> {
    fn read_err(&self, path: &Path, e: Errno) -> CopyError {
        CopyError::Read { path: path.to_path_buf(), source: e.into() }
    }

    /// Runs a look-up or open in the source as the caller.
    fn as_caller<T>(&self, f: impl FnOnce() -> rustix::io::Result<T>) -> Result<rustix::io::Result<T>, CopyError> {
        Ok(self.caller.access(f)?)
    }

    fn copy_dir(
        &mut self,
        src: &OwnedFd,
        path: &Path,
        dst: &OwnedFd,
        rel: Vec<u8>,
        depth: usize,
    ) -> Result<(), CopyError> {
        if depth >= MAX_DEPTH {
            return Err(CopyError::TooDeep { path: path.to_path_buf() });
        }
        // The directory was opened as the caller (read permission checked then); its entries are listed
        // through a duplicate of that descriptor, not by opening "." again.
        let names = rustix::io::fcntl_dupfd_cloexec(src, 0).and_then(list).map_err(|e| self.read_err(path, e))?;
        for name in names {
            let from = path.join(OsStr::from_bytes(&name));
            let to_rel = if rel.is_empty() { name.clone() } else { [&rel[..], b"/", &name].concat() };
            self.copy_entry(src, dst, &name, &from, to_rel, depth)?;
        }
        Ok(())
    }

    fn copy_entry(
        &mut self,
        src: &OwnedFd,
        dst: &OwnedFd,
        name: &[u8],
        from: &Path,
        rel: Vec<u8>,
        depth: usize,
    ) -> Result<(), CopyError> {
        let name_os = OsStr::from_bytes(name);
        let write_err = |e: Errno| CopyError::Write { path: from.to_path_buf(), source: e.into() };
        let st = match self.as_caller(|| rustix::fs::statat(src, name_os, AtFlags::SYMLINK_NOFOLLOW))? {
            Ok(st) => st,
            // Removed since the listing.
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(self.read_err(from, e)),
        };
        let kind = FileType::from_raw_mode(st.st_mode);
        let pass = self.filter.map_or(Pass::Copy, |f| f(&rel, kind == FileType::Directory));
        if pass == Pass::Skip || (pass == Pass::Descend && kind != FileType::Directory) {
            return Ok(());
        }
        let changed = |what: &str| {
            warn!(path = %from.display(), what, "changed while it was imported: skipped");
            Ok(())
        };
        match kind {
            FileType::Directory => {
                let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let sub = match self.as_caller(|| rustix::fs::openat(src, name_os, flags, Mode::empty()))? {
                    Ok(fd) => fd,
                    Err(Errno::LOOP | Errno::NOTDIR | Errno::NOENT) => return changed("directory"),
                    Err(e) => return Err(self.read_err(from, e)),
                };
                let sst = rustix::fs::fstat(&sub).map_err(|e| self.read_err(from, e))?;
                if self.src.forbidden.contains(&(sst.st_dev, sst.st_ino)) {
                    return Err(CopyError::Refused {
                        path: from.to_path_buf(),
                        why: "it is the daemon's own root".into(),
                    });
                }
                rustix::fs::mkdirat(dst, name_os, Mode::from_bits_truncate(0o700)).map_err(write_err)?;
                let dsub = rustix::fs::openat(dst, name_os, flags, Mode::empty()).map_err(write_err)?;
                // Another mount inside the source: its mount point stays, empty, as with `cp -ax`.
                if mount_id(&sub).map_err(|e| self.read_err(from, e))? == self.src.mnt_id {
                    self.copy_dir(&sub, from, &dsub, rel, depth + 1)?;
                }
                if pass == Pass::Descend
                    && rustix::io::fcntl_dupfd_cloexec(&dsub, 0).and_then(list).map_err(write_err)?.is_empty()
                {
                    // Left out, and nothing beneath it was taken.
                    return rustix::fs::unlinkat(dst, name_os, AtFlags::REMOVEDIR).map_err(write_err);
                }
                apply_meta_fd(&dsub, &sst).map_err(write_err)
            }
            FileType::RegularFile => {
                if st.st_nlink > 1 && self.link_again(&st, dst, name_os).map_err(write_err)? {
                    return Ok(());
                }
                let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC;
                let file = match self.as_caller(|| rustix::fs::openat(src, name_os, flags, Mode::empty()))? {
                    Ok(fd) => fd,
                    Err(Errno::LOOP | Errno::NOENT | Errno::NXIO) => return changed("file"),
                    Err(e) => return Err(self.read_err(from, e)),
                };
                let fst = rustix::fs::fstat(&file).map_err(|e| self.read_err(from, e))?;
                if FileType::from_raw_mode(fst.st_mode) != FileType::RegularFile {
                    return changed("file");
                }
                let out = rustix::fs::openat(
                    dst,
                    name_os,
                    OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(write_err)?;
                let (mut reader, mut writer) = (std::fs::File::from(file), std::fs::File::from(out));
                io::copy(&mut reader, &mut writer).map_err(|e| match e.raw_os_error() {
                    Some(libc::ENOSPC | libc::EDQUOT) => CopyError::Write { path: from.to_path_buf(), source: e },
                    _ => CopyError::Read { path: from.to_path_buf(), source: e },
                })?;
                self.stats.bytes += fst.st_size as u64;
                if fst.st_nlink > 1 {
                    self.links.insert((fst.st_dev, fst.st_ino), rel);
                }
                apply_meta_fd(&writer, &fst).map_err(write_err)
            }
            FileType::Symlink => {
                let target = match self.as_caller(|| rustix::fs::readlinkat(src, name_os, Vec::new()))? {
                    Ok(t) => t,
                    Err(Errno::INVAL | Errno::NOENT) => return changed("symlink"),
                    Err(e) => return Err(self.read_err(from, e)),
                };
                rustix::fs::symlinkat(OsString::from_vec(target.into_bytes()), dst, name_os).map_err(write_err)?;
                apply_meta_at(dst, name_os, &st).map_err(write_err)
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                if st.st_nlink > 1 && self.link_again(&st, dst, name_os).map_err(write_err)? {
                    return Ok(());
                }
                let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
                rustix::fs::mknodat(dst, name_os, kind, mode, st.st_rdev).map_err(write_err)?;
                if st.st_nlink > 1 {
                    self.links.insert((st.st_dev, st.st_ino), rel);
                }
                apply_meta_at(dst, name_os, &st).map_err(write_err)
            }
            // Sockets belong to a running process, not to an image.
            _ => Ok(()),
        }
    }

    /// Links `name` in `dst` to the copy of an inode already copied; false when it is the first.
    fn link_again(&self, st: &Stat, dst: &OwnedFd, name: &OsStr) -> rustix::io::Result<bool> {
        let Some(first) = self.links.get(&(st.st_dev, st.st_ino)) else { return Ok(false) };
        rustix::fs::linkat(&self.dst_root, OsStr::from_bytes(first), dst, name, AtFlags::empty())?;
        Ok(true)
    }
}

/// The names in directory `dir` (a descriptor of its own), without `.` and `..`.
fn list(dir: OwnedFd) -> rustix::io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::new(dir)? {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(name);
        }
    }
    Ok(names)
}

/// The id of the mount `fd` is on (Linux 5.8 and later).
pub fn mount_id(fd: &OwnedFd) -> rustix::io::Result<u64> {
    let stx = rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)?;
    Ok(stx.stx_mnt_id)
}

fn times(st: &Stat) -> Timestamps {
    Timestamps {
        last_access: Timespec { tv_sec: st.st_atime, tv_nsec: st.st_atime_nsec as _ },
        last_modification: Timespec { tv_sec: st.st_mtime, tv_nsec: st.st_mtime_nsec as _ },
    }
}

/// Owner, then mode (chown clears set-id bits), then times, through the copy's own descriptor.
fn apply_meta_fd(fd: &impl AsFd, st: &Stat) -> rustix::io::Result<()> {
    rustix::fs::fchown(fd, Some(rustix::fs::Uid::from_raw(st.st_uid)), Some(rustix::fs::Gid::from_raw(st.st_gid)))?;
    rustix::fs::fchmod(fd, Mode::from_bits_truncate(st.st_mode & 0o7777))?;
    rustix::fs::futimens(fd, &times(st))
}

/// The same for `name` in `dir`, never following a symlink there (a symlink keeps its mode).
fn apply_meta_at(dir: &OwnedFd, name: &OsStr, st: &Stat) -> rustix::io::Result<()> {
    let (uid, gid) = (rustix::fs::Uid::from_raw(st.st_uid), rustix::fs::Gid::from_raw(st.st_gid));
    rustix::fs::chownat(dir, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
        // Not a symlink: the name was just made by this copy in a directory only the daemon writes.
        rustix::fs::chmodat(dir, name, Mode::from_bits_truncate(st.st_mode & 0o7777), AtFlags::empty())?;
    }
    rustix::fs::utimensat(dir, name, &times(st), AtFlags::SYMLINK_NOFOLLOW)
}

/// Bytes of regular-file content under `root`, not following symlinks nor crossing into other mounts.
pub fn tree_size(root: &Path) -> u64 {
    let Ok(top) = std::fs::symlink_metadata(root) else { return 0 };
    let mut total = 0;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() && meta.dev() == top.dev() {
                dirs.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}
