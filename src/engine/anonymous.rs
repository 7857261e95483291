//! The anonymous volumes an image's `Volumes` give a container, as Docker makes them: at its first start,
//! each path the image declares that no volume of the container's own (or of its `volumes-from`) covers
//! gets a new volume (`anon_<12 hex>`, listed in `volumes/`), filled with what the container's rootfs holds
//! at that path, then mounted there at every start. They go with the container (`rmdir`), and only then.
//!
//! The copy reads the rootfs of an image nobody vetted: the path is resolved beneath the rootfs with
//! `openat2(RESOLVE_IN_ROOT)`, and the tree under it is walked by file descriptors without following any
//! symlink (symlinks are copied as symlinks); device nodes, FIFOs and sockets are left out.

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
use crate::model::VolumeSpec;

/// How deep a seeded tree may go.
const MAX_DEPTH: usize = 256;

impl Engine {
    /// Makes the anonymous volumes container `name` still lacks (see the module's comment), before a start
    /// plans its mounts. Outside the state lock; the volumes are recorded under its record lock.
    pub(super) fn ensure_anonymous_volumes(&self, name: &str) -> Result<(), Error> {
        let missing = {
            let st = self.view();
            let c = st.container(name)?;
            let from = c.record.volumes_from.as_deref().and_then(|f| st.containers.get(f));
            // Its own volumes, its own anonymous ones, and those of its `volumes-from` container.
            let mut targets: Vec<&str> = c.record.volumes.iter().map(|v: &VolumeSpec| v.target.as_str()).collect();
            targets.extend(c.record.anonymous_volumes.iter().map(|(_, t)| t.as_str()));
            if let Some(f) = from {
                targets.extend(f.record.volumes.iter().map(|v| v.target.as_str()));
                targets.extend(f.record.anonymous_volumes.iter().map(|(_, t)| t.as_str()));
            }
            let covered = |path: &str| targets.iter().any(|t| t.trim_end_matches('/') == path.trim_end_matches('/'));
            c.record
                .image_defaults()
                .volumes
                .into_iter()
                .filter(|p| p.starts_with('/') && !covered(p))
                .collect::<Vec<_>>()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let rootfs = self.store.container_path(name);
        let mut made = Vec::new();
        for path in &missing {
            let volume = ids::new_id("anon_");
            self.create_volume(&volume)?;
            if let Err(e) = seed(&rootfs, path, &self.store.volume_path(&volume)) {
                warn!(container = %name, path = %path, error = %e, "cannot fill an anonymous volume from the image");
            }
            info!(container = %name, volume = %volume, path = %path, "made an anonymous volume");
            made.push((volume, path.clone()));
        }
        let recorded = self.update_record(name, |_, r| {
            r.anonymous_volumes.extend(made.iter().cloned());
            Ok(())
        });
        if recorded.is_err() {
            for (volume, _) in &made {
                let _ = self.remove_volume(volume);
            }
        }
        recorded
    }

    /// Removes the anonymous volumes of a container that is gone.
    pub(super) fn remove_anonymous_volumes(&self, record: &ContainerRecord) {
        for (volume, _) in &record.anonymous_volumes {
            match self.remove_volume(volume) {
                Ok(()) | Err(Error::NoSuchVolume(_)) => {}
                Err(e) => {
                    warn!(container = %record.name, volume = %volume, error = %e, "cannot remove an anonymous volume")
                }
            }
        }
    }
}

/// Copies what `rootfs` holds at `path` (resolved beneath it) into the directory `dest`. Nothing there, or
/// not a directory: nothing to copy.
fn seed(rootfs: &Path, path: &str, dest: &Path) -> io::Result<()> {
    let root = rustix::fs::open(rootfs, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let src = match rustix::fs::openat2(&root, path.trim_start_matches('/'), flags, Mode::empty(), how) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let dst = rustix::fs::open(dest, flags | OFlags::NOFOLLOW, Mode::empty())?;
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
        return Err(io::Error::other("the tree is deeper than 256 directories"));
    }
    let nofollow = OFlags::NOFOLLOW | OFlags::CLOEXEC;
    for entry in Dir::read_from(src)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
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
                let from = rustix::fs::openat(src, name, OFlags::RDONLY | nofollow, Mode::empty())?;
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
