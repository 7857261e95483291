//! The writing side of a copy: destination directories made (`mkdir -p`, each step resolved with
//! `openat2(RESOLVE_IN_ROOT)` beneath the rootfs, so a symlink in the image never leads out of it), and
//! the entries a walk hands over written by name inside a directory descriptor, with `O_NOFOLLOW` /
//! `O_EXCL` after removing what was there. A directory already in the image is merged into, also when
//! it is reached through a symlink, which is then resolved inside the rootfs as Docker resolves it.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Stat, Timespec, Timestamps, Uid};
use rustix::io::Errno;

use super::walk::Sink;
use super::{open_in, CopyError};

/// A destination directory: its descriptor and its path in the rootfs (no `..`, symlinks unresolved).
pub(super) struct DstDir {
    fd: OwnedFd,
    rel: Vec<u8>,
}

impl DstDir {
    pub(super) fn fd(&self) -> &OwnedFd {
        &self.fd
    }
}

/// A file written with more than one link in the source: where its copy is, and which inode that is.
struct Link {
    parent: Vec<u8>,
    name: Vec<u8>,
    made: (u64, u64),
}

/// Writes what a walk hands it beneath one rootfs, owned by one uid and gid.
pub(super) struct Writer {
    root: OwnedFd,
    uid: Uid,
    gid: Gid,
    chmod: Option<u32>,
    bytes: u64,
    links: HashMap<(u64, u64), Link>,
}

fn join(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    if prefix.is_empty() {
        name.to_vec()
    } else {
        [prefix, b"/", name].concat()
    }
}

fn times(st: &Stat) -> Timestamps {
    Timestamps {
        last_access: Timespec { tv_sec: st.st_atime, tv_nsec: st.st_atime_nsec as _ },
        last_modification: Timespec { tv_sec: st.st_mtime, tv_nsec: st.st_mtime_nsec as _ },
    }
}

const DIR: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::CLOEXEC);

impl Writer {
    pub(super) fn new(root: OwnedFd, (uid, gid): (u32, u32), chmod: Option<u32>) -> Writer {
        let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
        Writer { root, uid, gid, chmod, bytes: 0, links: HashMap::new() }
    }

    /// Bytes of file content written so far.
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(super) fn add_bytes(&mut self, bytes: u64) {
        self.bytes += bytes;
    }

    fn err(&self, rel: &[u8], e: impl Into<io::Error>) -> CopyError {
        CopyError::Dest { path: format!("/{}", String::from_utf8_lossy(rel)), source: e.into() }
    }

    /// Whether the rootfs has a directory at `parts`, symlinks resolved inside it.
    pub(super) fn is_dir(&self, parts: &[Vec<u8>]) -> bool {
        open_in(&self.root, &parts.join(&b'/'), OFlags::PATH | OFlags::DIRECTORY).is_ok()
    }

    /// The directory at `parts`, made with its missing parents (0755, owned as the copy is); and
    /// whether the last one was made now.
    pub(super) fn dest_dir(&self, parts: &[Vec<u8>]) -> Result<(DstDir, bool), CopyError> {
        let mut made = false;
        for i in 0..parts.len() {
            let path = parts[..=i].join(&b'/');
            match open_in(&self.root, &path, OFlags::PATH | OFlags::DIRECTORY) {
                Ok(_) => made = false,
                Err(Errno::NOENT) => {
                    let parent_path = parts[..i].join(&b'/');
                    let parent = open_in(&self.root, &parent_path, DIR).map_err(|e| self.err(&parent_path, e))?;
                    let name = OsStr::from_bytes(&parts[i]);
                    match rustix::fs::mkdirat(&parent, name, Mode::from_bits_truncate(0o700)) {
                        Ok(()) => {
                            let dir = rustix::fs::openat(&parent, name, DIR | OFlags::NOFOLLOW, Mode::empty())
                                .map_err(|e| self.err(&path, e))?;
                            rustix::fs::fchown(&dir, Some(self.uid), Some(self.gid)).map_err(|e| self.err(&path, e))?;
                            rustix::fs::fchmod(&dir, Mode::from_bits_truncate(0o755))
                                .map_err(|e| self.err(&path, e))?;
                            made = true;
                        }
                        // Made meanwhile; opened (and checked to be a directory) below.
                        Err(Errno::EXIST) => made = false,
                        Err(e) => return Err(self.err(&path, e)),
                    }
                }
                Err(e) => return Err(self.err(&path, e)),
            }
        }
        let rel = parts.join(&b'/');
        let fd = open_in(&self.root, &rel, DIR).map_err(|e| self.err(&rel, e))?;
        Ok((DstDir { fd, rel }, made))
    }

    /// Owner, then mode (chown clears set-id bits), then times, through the copy's own descriptor.
    fn meta_fd(&self, fd: &OwnedFd, rel: &[u8], mode: u32, st: Option<&Stat>) -> Result<(), CopyError> {
        rustix::fs::fchown(fd, Some(self.uid), Some(self.gid)).map_err(|e| self.err(rel, e))?;
        let mode = self.chmod.unwrap_or(mode & 0o7777);
        rustix::fs::fchmod(fd, Mode::from_bits_truncate(mode)).map_err(|e| self.err(rel, e))?;
        if let Some(st) = st {
            rustix::fs::futimens(fd, &times(st)).map_err(|e| self.err(rel, e))?;
        }
        Ok(())
    }

    /// Removes what is at `name` in `dir` (an empty directory included, never following a symlink), so
    /// that something else can be made there. A directory with entries stays: that is an error.
    fn clear(&self, dir: &DstDir, name: &[u8]) -> Result<(), CopyError> {
        let name_os = OsStr::from_bytes(name);
        let flags = match rustix::fs::statat(&dir.fd, name_os, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => AtFlags::REMOVEDIR,
            Ok(_) => AtFlags::empty(),
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(self.err(&join(&dir.rel, name), e)),
        };
        rustix::fs::unlinkat(&dir.fd, name_os, flags).map_err(|e| self.err(&join(&dir.rel, name), e))
    }

    /// A new regular file `name` in `dir`, empty, only the daemon able to use it yet.
    fn create(&self, dir: &DstDir, name: &[u8]) -> Result<File, CopyError> {
        self.clear(dir, name)?;
        let flags = OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        rustix::fs::openat(&dir.fd, OsStr::from_bytes(name), flags, Mode::from_bits_truncate(0o600))
            .map(File::from)
            .map_err(|e| self.err(&join(&dir.rel, name), e))
    }

    /// Links `name` in `dir` to the copy of an inode already copied; false when there is none (still).
    fn link_again(&self, st: &Stat, dir: &DstDir, name: &[u8]) -> Result<bool, CopyError> {
        let Some(link) = self.links.get(&(st.st_dev, st.st_ino)) else { return Ok(false) };
        let Ok(first_dir) = open_in(&self.root, &link.parent, OFlags::PATH | OFlags::DIRECTORY) else {
            return Ok(false);
        };
        let first = OsStr::from_bytes(&link.name);
        match rustix::fs::statat(&first_dir, first, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(now) if (now.st_dev, now.st_ino) == link.made => {}
            _ => return Ok(false),
        }
        self.clear(dir, name)?;
        rustix::fs::linkat(&first_dir, first, &dir.fd, OsStr::from_bytes(name), AtFlags::empty())
            .map_err(|e| self.err(&join(&dir.rel, name), e))?;
        Ok(true)
    }

    /// A heredoc's file: `body`, mode 0644 unless `--chmod`, the time it is written at.
    pub(super) fn write_bytes(&mut self, dir: &DstDir, name: &[u8], body: &[u8]) -> Result<(), CopyError> {
        let rel = join(&dir.rel, name);
        let mut out = self.create(dir, name)?;
        out.write_all(body).map_err(|e| self.err(&rel, e))?;
        self.meta_fd(&OwnedFd::from(out), &rel, 0o644, None)?;
        self.bytes += body.len() as u64;
        Ok(())
    }

    /// Owner, mode and times of a name made by this copy that has no descriptor of its own.
    fn meta_at(&self, dir: &DstDir, name: &[u8], st: &Stat) -> Result<(), CopyError> {
        let (rel, name_os) = (join(&dir.rel, name), OsStr::from_bytes(name));
        let nofollow = AtFlags::SYMLINK_NOFOLLOW;
        rustix::fs::chownat(&dir.fd, name_os, Some(self.uid), Some(self.gid), nofollow)
            .map_err(|e| self.err(&rel, e))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
            // Not a symlink: the name was just made by this copy, in a directory no process uses.
            let mode = Mode::from_bits_truncate(self.chmod.unwrap_or(st.st_mode & 0o7777));
            rustix::fs::chmodat(&dir.fd, name_os, mode, AtFlags::empty()).map_err(|e| self.err(&rel, e))?;
        }
        rustix::fs::utimensat(&dir.fd, name_os, &times(st), nofollow).map_err(|e| self.err(&rel, e))
    }
}

impl Sink for Writer {
    type Dir = DstDir;

    fn enter_dir(&mut self, parent: &DstDir, name: &[u8], _: &str, _: &Stat) -> Result<DstDir, CopyError> {
        let (rel, name_os) = (join(&parent.rel, name), OsStr::from_bytes(name));
        match rustix::fs::statat(&parent.fd, name_os, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                let fd = rustix::fs::openat(&parent.fd, name_os, DIR | OFlags::NOFOLLOW, Mode::empty())
                    .map_err(|e| self.err(&rel, e))?;
                return Ok(DstDir { fd, rel });
            }
            // A symlink to a directory (as `/lib -> usr/lib`): merged into, resolved inside the rootfs.
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                if let Ok(fd) = open_in(&self.root, &rel, DIR) {
                    return Ok(DstDir { fd, rel });
                }
                self.clear(parent, name)?;
            }
            Ok(_) => self.clear(parent, name)?,
            Err(Errno::NOENT) => {}
            Err(e) => return Err(self.err(&rel, e)),
        }
        rustix::fs::mkdirat(&parent.fd, name_os, Mode::from_bits_truncate(0o700)).map_err(|e| self.err(&rel, e))?;
        let fd = rustix::fs::openat(&parent.fd, name_os, DIR | OFlags::NOFOLLOW, Mode::empty())
            .map_err(|e| self.err(&rel, e))?;
        Ok(DstDir { fd, rel })
    }

    fn finish_dir(&mut self, dir: DstDir, st: &Stat) -> Result<(), CopyError> {
        self.meta_fd(&dir.fd, &dir.rel, st.st_mode, Some(st))
    }

    fn file(&mut self, parent: &DstDir, name: &[u8], shown: &str, st: &Stat, mut file: File) -> Result<(), CopyError> {
        if st.st_nlink > 1 && self.link_again(st, parent, name)? {
            return Ok(());
        }
        let rel = join(&parent.rel, name);
        let mut out = self.create(parent, name)?;
        let copied = io::copy(&mut file, &mut out).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG | libc::EROFS) => self.err(&rel, e),
            _ => CopyError::Source { path: shown.to_string(), source: e },
        })?;
        let out = OwnedFd::from(out);
        self.meta_fd(&out, &rel, st.st_mode, Some(st))?;
        self.bytes += copied;
        if st.st_nlink > 1 {
            let made = rustix::fs::fstat(&out).map_err(|e| self.err(&rel, e))?;
            let link = Link { parent: parent.rel.clone(), name: name.to_vec(), made: (made.st_dev, made.st_ino) };
            self.links.insert((st.st_dev, st.st_ino), link);
        }
        Ok(())
    }

    fn symlink(&mut self, parent: &DstDir, name: &[u8], _: &str, st: &Stat, target: &[u8]) -> Result<(), CopyError> {
        self.clear(parent, name)?;
        rustix::fs::symlinkat(OsStr::from_bytes(target), &parent.fd, OsStr::from_bytes(name))
            .map_err(|e| self.err(&join(&parent.rel, name), e))?;
        self.meta_at(parent, name, st)
    }

    fn special(&mut self, parent: &DstDir, name: &[u8], _: &str, st: &Stat) -> Result<(), CopyError> {
        self.clear(parent, name)?;
        let kind = FileType::from_raw_mode(st.st_mode);
        let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
        rustix::fs::mknodat(&parent.fd, OsStr::from_bytes(name), kind, mode, st.st_rdev)
            .map_err(|e| self.err(&join(&parent.rel, name), e))?;
        self.meta_at(parent, name, st)
    }
}
