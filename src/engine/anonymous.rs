//! The anonymous volumes an image's `Volumes` give a container, as Docker makes them: at its first start,
//! each path the image declares that no volume of the container's own (or of its `volumes-from`) covers
//! gets a new volume (`anon_<12 hex>`, listed in `volumes/`), filled with what the container's rootfs holds
//! at that path, then mounted there at every start. They go with the container (`rmdir`), and only then.
//!
//! The copy reads the rootfs of an image nobody vetted: the path is resolved beneath the rootfs with
//! `openat2(RESOLVE_IN_ROOT)`, and the tree under it is walked by file descriptors without following any
//! symlink (symlinks are copied as symlinks), each file opened non-blocking and checked on its descriptor;
//! device nodes, FIFOs and sockets are left out, the depth is bounded, and a copy that fails fails the
//! start with nothing left. Paths with `..`, under the kernel's directories, or that are files, and past
//! 64 of them, get no volume (logged). A start plans first, so one that can't succeed makes none.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::unistd::{Gid, Uid};
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags};
use tracing::{info, warn};

use super::records::ContainerRecord;
use super::Engine;
use crate::error::Error;
use crate::ids;

/// How deep a seeded tree may go (each level holds two directory descriptors while below it).
const MAX_DEPTH: usize = 64;

/// How many anonymous volumes one image may ask for.
const MAX_VOLUMES: usize = 64;

/// Which paths of an image's `Volumes` get a volume: absolute, no `..`, not under the kernel's
/// directories, at most [`MAX_VOLUMES`]; the others are left out (logged).
fn wanted_paths(name: &str, paths: Vec<String>) -> Vec<String> {
    let mut wanted = Vec::new();
    for path in paths {
        let clean = path.starts_with('/')
            && !path.split('/').any(|part| part == "..")
            && super::volumes::check_target(&path, false).is_ok();
        if !clean || wanted.len() == MAX_VOLUMES {
            warn!(container = %name, path = %path, "an image volume left out (not a plain path, or too many)");
            continue;
        }
        wanted.push(path);
    }
    wanted
}

impl Engine {
    /// Makes the anonymous volumes container `name` still lacks (see the module's comment), before a start
    /// plans its mounts; the start is planned first (so a start that can't succeed makes none). Outside the
    /// state lock; the volumes are recorded under its record lock, and dropped again if the container was
    /// started or given them by another request meanwhile.
    pub(super) fn ensure_anonymous_volumes(&self, name: &str) -> Result<(), Error> {
        let missing = {
            let st = self.lock();
            self.plan_start(&st, name)?;
            let c = st.container(name)?;
            let from = c.record.volumes_from.as_deref().and_then(|f| st.containers.get(f));
            // What a start mounts already: its own volumes, its `volumes-from` container's, its anonymous ones.
            let mounted = c.record.mounted_volumes(from.map(|f| &f.record));
            let covered =
                |path: &str| mounted.iter().any(|v| v.target.trim_end_matches('/') == path.trim_end_matches('/'));
            let declared = c.record.image_defaults().volumes.into_iter().filter(|p| !covered(p)).collect();
            wanted_paths(name, declared)
        };
        if missing.is_empty() {
            return Ok(());
        }
        let rootfs = self.store.container_path(name);
        let mut made: Vec<(String, String)> = Vec::new();
        let undo = |made: &[(String, String)]| {
            for (volume, _) in made {
                let _ = self.remove_volume(volume);
            }
        };
        for path in &missing {
            match probe(&rootfs, path) {
                Ok(Some(false)) => {
                    warn!(container = %name, path = %path, "an image volume on a path that is not a directory: left out");
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    undo(&made);
                    return Err(Error::Invalid(format!("the image's volume {path} of '{name}': {e}")));
                }
            }
            let volume = ids::new_id("anon_");
            if let Err(e) = self.create_volume(&volume) {
                undo(&made);
                return Err(e);
            }
            made.push((volume.clone(), path.clone()));
            if let Err(e) = seed(&rootfs, path, &self.store.volume_path(&volume)) {
                undo(&made);
                return Err(Error::Invalid(format!("cannot fill the image's volume {path} of '{name}': {e}")));
            }
            info!(container = %name, volume = %volume, path = %path, "made an anonymous volume");
        }
        let recorded = self.update_record(name, |c, r| {
            c.gate(crate::model::Op::Start)?;
            let taken = |path: &str| r.anonymous_volumes.iter().any(|(_, t)| t == path);
            if made.iter().any(|(_, path)| taken(path)) {
                return Err(Error::Changing { what: format!("container '{name}'"), doing: "being started" });
            }
            r.anonymous_volumes.extend(made.iter().cloned());
            Ok(())
        });
        if recorded.is_err() {
            undo(&made);
        }
        recorded
    }

    /// Removes the anonymous volumes of a container that is gone, but those another container still
    /// mounts through `volumes-from` (kept, as Docker keeps a volume still referenced).
    pub(super) fn remove_anonymous_volumes(&self, record: &ContainerRecord) {
        let users: Vec<String> = self
            .view()
            .containers
            .values()
            .filter(|c| c.record.volumes_from.as_deref() == Some(record.name.as_str()))
            .map(|c| c.record.name.clone())
            .collect();
        for (volume, _) in &record.anonymous_volumes {
            if !users.is_empty() {
                warn!(container = %record.name, volume = %volume, users = ?users, "anonymous volume kept: mounted through volumes-from");
                continue;
            }
            match self.remove_volume(volume) {
                Ok(()) | Err(Error::NoSuchVolume(_)) => {}
                Err(e) => {
                    warn!(container = %record.name, volume = %volume, error = %e, "cannot remove an anonymous volume")
                }
            }
        }
    }
}

/// `path` opened with `flags`, resolved beneath `rootfs` as the container would see it (its symlinks
/// stay inside it), no magic link, no other filesystem.
fn beneath(rootfs: &Path, path: &str, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let root = rustix::fs::open(rootfs, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV;
    rustix::fs::openat2(&root, path.trim_start_matches('/'), flags | OFlags::CLOEXEC, Mode::empty(), how)
}

/// What `rootfs` has at `path`: `None` nothing, `Some(true)` a directory, `Some(false)` something else.
fn probe(rootfs: &Path, path: &str) -> io::Result<Option<bool>> {
    match beneath(rootfs, path, OFlags::PATH) {
        Ok(fd) => Ok(Some(FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode) == FileType::Directory)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Copies what `rootfs` holds at `path` into the directory `dest`. Nothing there: nothing to copy.
fn seed(rootfs: &Path, path: &str, dest: &Path) -> io::Result<()> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY;
    let src = match beneath(rootfs, path, flags) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let dst = rustix::fs::open(dest, flags | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?;
    // The volume's own root takes the mode and owner of the directory it stands for.
    let st = rustix::fs::fstat(&src)?;
    own(&dst, &st)?;
    rustix::fs::fchmod(&dst, Mode::from_raw_mode(st.st_mode & 0o7777))?;
    copy_dir(&src, &dst, 0)
}

/// Gives `fd` the owner of `st`'s file.
fn own(fd: impl AsFd, st: &rustix::fs::Stat) -> io::Result<()> {
    nix::unistd::fchown(fd, Some(Uid::from_raw(st.st_uid)), Some(Gid::from_raw(st.st_gid)))?;
    Ok(())
}

fn copy_dir(src: &OwnedFd, dst: &OwnedFd, depth: usize) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(io::Error::other(format!("the tree is deeper than {MAX_DEPTH} directories")));
    }
    let nofollow = OFlags::NOFOLLOW | OFlags::CLOEXEC;
    // The names first, and the listing closed before going down: one level holds two descriptors.
    let mut names = Vec::new();
    for entry in Dir::read_from(src)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            names.push(name.to_owned());
        }
    }
    for name in names {
        let name = name.as_c_str();
        let st = rustix::fs::statat(src, name, AtFlags::SYMLINK_NOFOLLOW)?;
        let mode = Mode::from_raw_mode(st.st_mode & 0o7777);
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                rustix::fs::mkdirat(dst, name, Mode::from_raw_mode(0o700))?;
                let from = rustix::fs::openat(src, name, OFlags::RDONLY | OFlags::DIRECTORY | nofollow, Mode::empty())?;
                let to = rustix::fs::openat(dst, name, OFlags::RDONLY | OFlags::DIRECTORY | nofollow, Mode::empty())?;
                copy_dir(&from, &to, depth + 1)?;
                own(&to, &st)?;
                rustix::fs::fchmod(&to, mode)?;
            }
            FileType::RegularFile => {
                // Non-blocking, and checked on the descriptor: never a FIFO put in its place since the stat.
                let from = rustix::fs::openat(src, name, OFlags::RDONLY | OFlags::NONBLOCK | nofollow, Mode::empty())?;
                if FileType::from_raw_mode(rustix::fs::fstat(&from)?.st_mode) != FileType::RegularFile {
                    continue;
                }
                let to = rustix::fs::openat(
                    dst,
                    name,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | nofollow,
                    Mode::from_raw_mode(0o600),
                )?;
                let (mut from, mut to) = (std::fs::File::from(from), std::fs::File::from(to));
                io::copy(&mut from, &mut to)?;
                own(&to, &st)?;
                rustix::fs::fchmod(&to, mode)?;
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(src, name, Vec::new())?;
                rustix::fs::symlinkat(&target, dst, name)?;
                let (owner, group) = (Some(Uid::from_raw(st.st_uid)), Some(Gid::from_raw(st.st_gid)));
                nix::unistd::fchownat(dst, name, owner, group, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)?;
            }
            // Device nodes, FIFOs and sockets are not content.
            _ => {}
        }
    }
    Ok(())
}
