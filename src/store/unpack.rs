//! Applies one image layer (a tar stream) onto a root directory, as the OCI image-spec says: whiteouts
//! (`.wh.NAME`, and `.wh..wh..opq` wherever it stands in the tar), hardlinks, symlinks, device nodes,
//! fifos, modes, owners, xattrs and timestamps.
//!
//! No entry may write outside the root. Every parent directory is opened with `openat2(RESOLVE_BENEATH)`
//! from the root, so `..` names, absolute names, symlinks planted by an earlier entry or layer and then
//! written through, and hardlinks to paths outside are refused by the kernel, not by string checks
//! alone; the final component is created with `O_NOFOLLOW`/`O_EXCL` after removing what was there.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::Timespec;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timestamps};

/// Why a layer could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The layer tries to reach outside the root: the pull must fail.
    #[error("entry '{entry}' {why}")]
    Unsafe { entry: String, why: &'static str },
    #[error("bad tar stream: {0}")]
    Tar(io::Error),
    #[error("cannot apply '{entry}': {source}")]
    Apply { entry: String, source: io::Error },
}

impl UnpackError {
    pub fn io(&self) -> Option<&io::Error> {
        match self {
            UnpackError::Tar(e) | UnpackError::Apply { source: e, .. } => Some(e),
            UnpackError::Unsafe { .. } => None,
        }
    }
}

const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

/// Applies the tar stream `layer` onto `root`; returns the bytes of regular file content written.
pub fn apply_layer(root: &Path, layer: impl Read) -> Result<u64, UnpackError> {
    let root_fd = rustix::fs::open(root, OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| UnpackError::Apply { entry: "/".into(), source: e.into() })?;
    let mut archive = tar::Archive::new(layer);
    let mut layer = Layer { root: root_fd, added: HashSet::new(), dirs: Vec::new(), bytes: 0 };
    for entry in archive.entries().map_err(UnpackError::Tar)? {
        let mut entry = entry.map_err(UnpackError::Tar)?;
        layer.apply(&mut entry)?;
    }
    // Directory times last: adding entries inside a directory changes its mtime. A later entry may have
    // replaced a directory (or one above it) by a symlink: each is opened again beneath the root, no symlink
    // followed, and one that is no longer a directory there keeps the times it has.
    for (path, times) in std::mem::take(&mut layer.dirs) {
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        if let Ok(dir) = rustix::fs::openat2(&layer.root, OsStr::from_bytes(&path), flags, Mode::empty(), resolve) {
            let _ = rustix::fs::futimens(&dir, &times);
        }
    }
    Ok(layer.bytes)
}

struct Layer {
    root: OwnedFd,
    /// Paths this layer has created, which an opaque marker must keep.
    added: HashSet<Vec<u8>>,
    dirs: Vec<(Vec<u8>, Timestamps)>,
    bytes: u64,
}

/// The components of an entry name, refusing `..` and absolute names. Empty for the root itself.
fn components(raw: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    if raw.starts_with(b"/") {
        return Err("is an absolute name");
    }
    let mut out = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err("has a '..' component"),
            p => out.push(p),
        }
    }
    Ok(out)
}

fn join(parts: &[&[u8]]) -> Vec<u8> {
    parts.join(&b'/')
}

impl Layer {
    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let unsafe_entry = |why| UnpackError::Unsafe { entry: shown.clone(), why };
        let parts = components(&raw).map_err(unsafe_entry)?;
        let Some((name, parents)) = parts.split_last() else { return Ok(()) };
        let apply_err = |e: io::Error| UnpackError::Apply { entry: shown.clone(), source: e };

        if *name == OPAQUE {
            let dir = self.open_dir(parents, false).map_err(|e| self.resolve_err(&shown, e))?;
            return self.make_opaque(&dir, &join(parents)).map_err(apply_err);
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT) {
            // `.wh.`, `.wh..` and `.wh...` would name nothing, the directory itself or its parent.
            if matches!(hidden, b"" | b"." | b"..") {
                return Err(unsafe_entry("is a whiteout of nothing, '.' or '..'"));
            }
            let dir = match self.open_dir(parents, false) {
                Ok(d) => d,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(self.resolve_err(&shown, e)),
            };
            return remove_all(&dir, hidden).map_err(apply_err);
        }

        let parent = self.open_dir(parents, true).map_err(|e| self.resolve_err(&shown, e))?;
        let header = entry.header().clone();
        let kind = header.entry_type();
        let mode = Mode::from_bits_truncate(header.mode().map_err(UnpackError::Tar)? & 0o7777);
        let name_os = OsStr::from_bytes(name);
        let existing = rustix::fs::statat(&parent, name_os, AtFlags::SYMLINK_NOFOLLOW).ok();
        let keep_dir = kind.is_dir() && existing.is_some_and(|st| FileType::from_raw_mode(st.st_mode).is_dir());
        if existing.is_some() && !keep_dir {
            remove_all(&parent, name).map_err(apply_err)?;
        }
        match kind {
            tar::EntryType::Directory => {
                if !keep_dir {
                    rustix::fs::mkdirat(&parent, name_os, mode).map_err(|e| apply_err(e.into()))?;
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let fd = rustix::fs::openat(
                    &parent,
                    name_os,
                    OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    mode,
                )
                .map_err(|e| apply_err(e.into()))?;
                let mut file = std::fs::File::from(fd);
                self.bytes += io::copy(entry, &mut file).map_err(apply_err)?;
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().ok_or_else(|| apply_err(io::ErrorKind::InvalidData.into()))?;
                rustix::fs::symlinkat(OsStr::from_bytes(&target), &parent, name_os).map_err(|e| apply_err(e.into()))?;
            }
            tar::EntryType::Link => {
                let target = entry.link_name_bytes().ok_or_else(|| apply_err(io::ErrorKind::InvalidData.into()))?;
                let target_parts = components(&target).map_err(|_| unsafe_entry("links to a path outside the root"))?;
                let Some((target_name, target_parents)) = target_parts.split_last() else {
                    return Err(unsafe_entry("links to the root itself"));
                };
                let target_dir = self.open_dir(target_parents, false).map_err(|e| self.resolve_err(&shown, e))?;
                rustix::fs::linkat(&target_dir, OsStr::from_bytes(target_name), &parent, name_os, AtFlags::empty())
                    .map_err(|e| apply_err(e.into()))?;
                self.added.insert(join(&parts));
                // A hardlink shares its target's metadata.
                return Ok(());
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let file_type = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                let dev = rustix::fs::makedev(major, minor);
                rustix::fs::mknodat(&parent, name_os, file_type, mode, dev).map_err(|e| apply_err(e.into()))?;
            }
            // pax and GNU long-name headers are consumed by the tar reader; anything else is skipped.
            _ => return Ok(()),
        }
        self.added.insert(join(&parts));
        self.set_metadata(&parent, name, entry, kind, mode).map_err(apply_err)?;
        if kind.is_dir() {
            let mtime = header.mtime().unwrap_or(0) as i64;
            let ts = Timespec { tv_sec: mtime, tv_nsec: 0 };
            self.dirs.push((join(&parts), Timestamps { last_access: ts, last_modification: ts }));
        }
        Ok(())
    }

    /// Owner, then mode (chown clears set-id bits), xattrs, then times, without following a symlink.
    fn set_metadata<R: Read>(
        &self,
        parent: &OwnedFd,
        name: &[u8],
        entry: &mut tar::Entry<'_, R>,
        kind: tar::EntryType,
        mode: Mode,
    ) -> io::Result<()> {
        let header = entry.header();
        let name_os = OsStr::from_bytes(name);
        let uid = header.uid().ok().and_then(|u| u32::try_from(u).ok());
        let gid = header.gid().ok().and_then(|g| u32::try_from(g).ok());
        let (uid, gid) = (uid.map(rustix::fs::Uid::from_raw), gid.map(rustix::fs::Gid::from_raw));
        rustix::fs::chownat(parent, name_os, uid, gid, AtFlags::SYMLINK_NOFOLLOW)?;
        if !kind.is_symlink() {
            rustix::fs::chmodat(parent, name_os, mode, AtFlags::empty())?;
        }
        if kind.is_file() || kind.is_dir() {
            if let Ok(Some(exts)) = entry.pax_extensions() {
                let fd = rustix::fs::openat(
                    parent,
                    name_os,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                for ext in exts.flatten() {
                    if let Some(attr) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                        rustix::fs::fsetxattr(
                            &fd,
                            OsStr::from_bytes(attr),
                            ext.value_bytes(),
                            rustix::fs::XattrFlags::empty(),
                        )?;
                    }
                }
            }
        }
        let mtime = entry.header().mtime().unwrap_or(0) as i64;
        let ts = Timespec { tv_sec: mtime, tv_nsec: 0 };
        rustix::fs::utimensat(
            parent,
            name_os,
            &Timestamps { last_access: ts, last_modification: ts },
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
        Ok(())
    }

    /// Opens the directory `parts` below the root, never leaving it; creates missing ones when `create`.
    fn open_dir(&self, parts: &[&[u8]], create: bool) -> io::Result<OwnedFd> {
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
        let path = if parts.is_empty() { b".".to_vec() } else { join(parts) };
        match rustix::fs::openat2(&self.root, OsStr::from_bytes(&path), flags, Mode::empty(), resolve) {
            Ok(fd) => return Ok(fd),
            Err(e) if e == rustix::io::Errno::NOENT && create => {}
            Err(e) => return Err(e.into()),
        }
        // mkdir -p, one component at a time, each resolved beneath the root.
        let mut dir = rustix::fs::openat2(&self.root, ".", flags, Mode::empty(), resolve)?;
        for part in parts {
            let part = OsStr::from_bytes(part);
            match rustix::fs::mkdirat(&dir, part, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            dir = rustix::fs::openat2(&dir, part, flags, Mode::empty(), resolve)?;
        }
        Ok(dir)
    }

    fn resolve_err(&self, entry: &str, e: io::Error) -> UnpackError {
        match e.raw_os_error() {
            // RESOLVE_BENEATH answers EXDEV for a path that would leave the root, ELOOP for magic links.
            Some(libc::EXDEV) | Some(libc::ELOOP) => {
                UnpackError::Unsafe { entry: entry.into(), why: "resolves outside the root through a symlink" }
            }
            _ => UnpackError::Apply { entry: entry.into(), source: e },
        }
    }

    /// Hides everything under `dir` that lower layers put there, keeping what this layer added.
    fn make_opaque(&self, dir: &OwnedFd, path: &[u8]) -> io::Result<()> {
        for name in list(dir)? {
            let child: Vec<u8> = if path.is_empty() { name.clone() } else { [path, b"/", &name].concat() };
            if !self.added.contains(&child) {
                remove_all(dir, &name)?;
                continue;
            }
            let st = rustix::fs::statat(dir, OsStr::from_bytes(&name), AtFlags::SYMLINK_NOFOLLOW)?;
            if FileType::from_raw_mode(st.st_mode).is_dir() {
                let sub = rustix::fs::openat(
                    dir,
                    OsStr::from_bytes(&name),
                    OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                self.make_opaque(&sub, &child)?;
            }
        }
        Ok(())
    }
}

/// The names in directory `dir`, without `.` and `..` (through `dir` itself: no look-up by path).
pub fn list(dir: &OwnedFd) -> io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir.as_fd())? {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(name);
        }
    }
    Ok(names)
}

/// Removes `name` in `dir`, recursively for a directory, never following a symlink. Missing is fine.
fn remove_all(dir: &OwnedFd, name: &[u8]) -> io::Result<()> {
    let name_os = OsStr::from_bytes(name);
    let st = match rustix::fs::statat(dir, name_os, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if FileType::from_raw_mode(st.st_mode).is_dir() {
        let sub = rustix::fs::openat(
            dir,
            name_os,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        for child in list(&sub)? {
            remove_all(&sub, &child)?;
        }
        rustix::fs::unlinkat(dir, name_os, AtFlags::REMOVEDIR)?;
    } else {
        rustix::fs::unlinkat(dir, name_os, AtFlags::empty())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// Builds a tar in memory from (name, kind, data-or-link-target) triples.
    fn tar(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
            h.set_uid(1000);
            h.set_gid(1000);
            h.set_mtime(1_000_000);
            // Write the name raw, so the tests can hand in names the builder would refuse.
            let bytes = name.as_bytes();
            h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
                h.set_link_name(data).unwrap();
                h.set_size(0);
                h.set_cksum();
                b.append(&h, io::empty()).unwrap();
            } else {
                h.set_size(data.len() as u64);
                h.set_cksum();
                b.append(&h, data.as_bytes()).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    fn scratch(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("bocker-unpack-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("root")).unwrap();
        d
    }

    use tar::EntryType::{Directory as D, Link as L, Regular as F, Symlink as S};

    #[test]
    fn files_links_modes_owners_and_whiteouts() {
        let d = scratch("basic");
        let root = d.join("root");
        let lower = tar(&[
            ("etc/", D, ""),
            ("etc/passwd", F, "root"),
            ("etc/gone", F, "x"),
            ("etc/hard", L, "etc/passwd"),
            ("opq/", D, ""),
            ("opq/lower", F, "l"),
            ("opq/sub/", D, ""),
            ("opq/sub/deep", F, "d"),
            ("bin/sh", S, "busybox"),
        ]);
        apply_layer(&root, lower.as_slice()).unwrap();
        assert_eq!(fs::read_to_string(root.join("etc/hard")).unwrap(), "root");
        assert_eq!(
            fs::metadata(root.join("etc/hard")).unwrap().ino(),
            fs::metadata(root.join("etc/passwd")).unwrap().ino()
        );
        assert_eq!(fs::read_link(root.join("bin/sh")).unwrap(), Path::new("busybox"));
        let m = fs::metadata(root.join("etc/passwd")).unwrap();
        assert_eq!((m.uid(), m.gid(), m.permissions().mode() & 0o777, m.mtime()), (1000, 1000, 0o644, 1_000_000));
        // The opaque marker comes after this layer's own entry of that directory: that entry stays.
        let upper = tar(&[
            ("etc/.wh.gone", F, ""),
            ("opq/new", F, "n"),
            ("opq/.wh..wh..opq", F, ""),
            ("etc/passwd", F, "changed"),
        ]);
        apply_layer(&root, upper.as_slice()).unwrap();
        assert!(!root.join("etc/gone").exists());
        assert_eq!(fs::read_to_string(root.join("etc/passwd")).unwrap(), "changed");
        assert_eq!(fs::read_to_string(root.join("etc/hard")).unwrap(), "root", "replacing breaks the old link");
        let mut opq: Vec<_> = fs::read_dir(root.join("opq")).unwrap().map(|e| e.unwrap().file_name()).collect();
        opq.sort();
        assert_eq!(opq, vec!["new"]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn nothing_escapes_the_root() {
        let d = scratch("escape");
        let root = d.join("root");
        let outside = d.join("outside");
        fs::create_dir_all(&outside).unwrap();
        let cases: Vec<Vec<u8>> = vec![
            tar(&[("../outside/x", F, "evil")]),
            tar(&[("/abs", F, "evil")]),
            tar(&[("a/../../outside/x", F, "evil")]),
            tar(&[("link", S, "../outside"), ("link/x", F, "evil")]),
            tar(&[("abs", S, "/"), ("abs/x", F, "evil")]),
            tar(&[("h", L, "../outside/target")]),
        ];
        for (i, layer) in cases.iter().enumerate() {
            let err = apply_layer(&root, layer.as_slice()).unwrap_err();
            assert!(matches!(err, UnpackError::Unsafe { .. }), "case {i}: {err}");
        }
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "nothing was written outside");
        // A symlink planted by an earlier layer is refused the same way.
        apply_layer(&root, tar(&[("planted", S, "/tmp")]).as_slice()).unwrap();
        let err = apply_layer(&root, tar(&[("planted/x", F, "evil")]).as_slice()).unwrap_err();
        assert!(matches!(err, UnpackError::Unsafe { .. }), "{err}");
        // A symlink that stays inside is fine to write through.
        apply_layer(&root, tar(&[("real/", D, ""), ("alias", S, "real"), ("alias/f", F, "ok")]).as_slice()).unwrap();
        assert_eq!(fs::read_to_string(root.join("real/f")).unwrap(), "ok");
        fs::remove_dir_all(&d).unwrap();
    }

    /// `.wh.`, `.wh..` and `.wh...` are refused, naming the entry; the layer's siblings and its own
    /// content stay. An ordinary whiteout beside them works.
    #[test]
    fn whiteouts_of_nothing_dot_and_dotdot_are_refused() {
        let d = scratch("whiteout-dots");
        let root = d.join("root");
        fs::write(d.join("sibling"), "other pull").unwrap();
        apply_layer(&root, tar(&[("a/", D, ""), ("a/f", F, "x"), ("gone", F, "g")]).as_slice()).unwrap();
        for name in [".wh.", ".wh..", ".wh...", "a/.wh...", "a/.wh.."] {
            let err = apply_layer(&root, tar(&[(name, F, "")]).as_slice()).unwrap_err();
            match &err {
                UnpackError::Unsafe { entry, .. } => assert_eq!(entry, name),
                other => panic!("{name}: {other}"),
            }
            assert!(err.to_string().contains(name), "{err}");
        }
        assert_eq!(fs::read_to_string(d.join("sibling")).unwrap(), "other pull");
        assert_eq!(fs::read_to_string(root.join("a/f")).unwrap(), "x");
        apply_layer(&root, tar(&[(".wh.gone", F, "")]).as_slice()).unwrap();
        assert!(!root.join("gone").exists(), "an ordinary whiteout still works");
        fs::remove_dir_all(&d).unwrap();
    }

    /// `d/`, `d/x/`, then `d -> outside`: the directory times set at the end of the layer must not reach
    /// through the symlink to `outside/x`.
    #[test]
    fn directory_times_do_not_follow_a_later_symlink() {
        let d = scratch("dir-times");
        let root = d.join("root");
        let outside = d.join("outside");
        fs::create_dir_all(outside.join("x")).unwrap();
        let before = fs::metadata(outside.join("x")).unwrap();
        let target = outside.to_str().unwrap();
        apply_layer(&root, tar(&[("d/", D, ""), ("d/x/", D, ""), ("d", S, target)]).as_slice()).unwrap();
        let after = fs::metadata(outside.join("x")).unwrap();
        assert_eq!((after.mtime(), after.mtime_nsec()), (before.mtime(), before.mtime_nsec()));
        assert_eq!((after.atime(), after.atime_nsec()), (before.atime(), before.atime_nsec()));
        assert_ne!(after.mtime(), 1_000_000);
        // Control: without the symlink, the layer's directory times are set.
        apply_layer(&root, tar(&[("e/", D, ""), ("e/x/", D, "")]).as_slice()).unwrap();
        assert_eq!(fs::metadata(root.join("e/x")).unwrap().mtime(), 1_000_000);
        assert_eq!(fs::metadata(root.join("e")).unwrap().mtime(), 1_000_000);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn devices_fifos_and_xattrs() {
        let d = scratch("special");
        let root = d.join("root");
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, major, minor) in
            [("dev/null", tar::EntryType::Char, 1, 3), ("pipe", tar::EntryType::Fifo, 0, 0)]
        {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(kind);
            h.set_mode(0o666);
            h.set_device_major(major).unwrap();
            h.set_device_minor(minor).unwrap();
            h.set_size(0);
            b.append_data(&mut h, name, io::empty()).unwrap();
        }
        b.append_pax_extensions([("SCHILY.xattr.user.origin", b"layer".as_slice())]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o4755);
        h.set_size(2);
        b.append_data(&mut h, "suid", b"ok".as_slice()).unwrap();
        apply_layer(&root, b.into_inner().unwrap().as_slice()).unwrap();
        use std::os::unix::fs::FileTypeExt;
        let null = fs::symlink_metadata(root.join("dev/null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
        assert!(fs::symlink_metadata(root.join("pipe")).unwrap().file_type().is_fifo());
        assert_eq!(
            fs::metadata(root.join("suid")).unwrap().permissions().mode() & 0o7777,
            0o4755,
            "set-id bits survive chown"
        );
        let value = rustix::fs::getxattr(root.join("suid").as_path(), "user.origin", &mut [0u8; 16][..]).unwrap();
        assert_eq!(value, 5);
        fs::remove_dir_all(&d).unwrap();
    }

    /// Valid layers with random bytes flipped (names, sizes, types, checksums): each applies or fails, never
    /// panics, and never writes outside the root. (fuzz/ has the open-ended version.)
    #[test]
    fn mutated_layers_never_panic_nor_escape() {
        let good = tar(&[
            ("a/", tar::EntryType::Directory, ""),
            ("a/f", tar::EntryType::Regular, "content"),
            ("a/l", tar::EntryType::Symlink, "../../etc"),
            ("a/h", tar::EntryType::Link, "a/f"),
            ("a/.wh.x", tar::EntryType::Regular, ""),
            ("b/.wh..wh..opq", tar::EntryType::Regular, ""),
        ]);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let d = scratch("mutated");
        for _ in 0..300 {
            let mut bytes = good.clone();
            for _ in 0..(1 + next() % 8) {
                let at = (next() % bytes.len() as u64) as usize;
                bytes[at] = next() as u8;
            }
            let root = d.join("root");
            let _ = apply_layer(&root, bytes.as_slice());
            let outside: Vec<_> = fs::read_dir(&d).unwrap().flatten().map(|e| e.file_name()).collect();
            assert_eq!(outside, [std::ffi::OsString::from("root")], "a layer wrote outside its root");
            fs::remove_dir_all(&root).unwrap();
            fs::create_dir(&root).unwrap();
        }
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn bad_names_in_components() {
        assert_eq!(components(b"./a//b/").unwrap(), vec![b"a" as &[u8], b"b"]);
        assert!(components(b"a/../b").is_err());
        assert!(components(b"/etc").is_err());
        assert!(components(b"./").unwrap().is_empty());
    }
}
