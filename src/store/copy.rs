//! Copies a directory tree into a subvolume the way `cp -a` does: modes, owners, timestamps, symlinks,
//! hardlinks, device nodes and fifos, dotfiles included. Used by `images/import` (bocker's `init`); and
//! the size of a tree, for a committed image's record.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;

/// What a copy produced.
#[derive(Debug, Default)]
pub struct CopyStats {
    /// Bytes of regular file content, each inode counted once.
    pub bytes: u64,
}

/// Copies the contents of `src` into the existing directory `dst`, and `src`'s own mode, owner and times
/// onto `dst`. Errors carry the path they happened on.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<CopyStats, (PathBuf, io::Error)> {
    let mut c = Copier { links: HashMap::new(), stats: CopyStats::default() };
    c.copy_dir_contents(src, dst)?;
    let meta = fs::symlink_metadata(src).map_err(|e| (src.to_path_buf(), e))?;
    apply_meta(dst, &meta).map_err(|e| (dst.to_path_buf(), e))?;
    Ok(c.stats)
}

struct Copier {
    /// (dev, ino) of multiply-linked files already copied, to recreate hardlinks.
    links: HashMap<(u64, u64), PathBuf>,
    stats: CopyStats,
}

impl Copier {
    fn copy_dir_contents(&mut self, src: &Path, dst: &Path) -> Result<(), (PathBuf, io::Error)> {
        let entries = fs::read_dir(src).map_err(|e| (src.to_path_buf(), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| (src.to_path_buf(), e))?;
            let from = entry.path();
            let to = dst.join(entry.file_name());
            self.copy_entry(&from, &to).map_err(|e| (from.clone(), e))?;
        }
        Ok(())
    }

    fn copy_entry(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        let meta = fs::symlink_metadata(from)?;
        let ft = meta.file_type();
        if ft.is_dir() {
            fs::create_dir(to)?;
            self.copy_dir_contents(from, to).map_err(|(_, e)| e)?;
            return apply_meta(to, &meta);
        }
        if meta.nlink() > 1 && !ft.is_symlink() {
            if let Some(first) = self.links.get(&(meta.dev(), meta.ino())) {
                return fs::hard_link(first, to);
            }
            self.links.insert((meta.dev(), meta.ino()), to.to_path_buf());
        }
        if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(from)?, to)?;
        } else if ft.is_file() {
            fs::copy(from, to)?;
            self.stats.bytes += meta.len();
        } else if ft.is_block_device() || ft.is_char_device() || ft.is_fifo() {
            let kind = if ft.is_block_device() {
                SFlag::S_IFBLK
            } else if ft.is_char_device() {
                SFlag::S_IFCHR
            } else {
                SFlag::S_IFIFO
            };
            nix::sys::stat::mknod(to, kind, Mode::from_bits_truncate(meta.mode()), meta.rdev())?;
        } else {
            // Sockets belong to a running process, not to an image.
            return Ok(());
        }
        apply_meta(to, &meta)
    }
}

/// Sets owner, then mode (chown clears set-id bits), then times of `path` from `meta`, without following
/// a symlink at `path`.
fn apply_meta(path: &Path, meta: &fs::Metadata) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(meta.uid()), Some(meta.gid()))?;
    if !meta.file_type().is_symlink() {
        fs::set_permissions(path, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    let atime = TimeSpec::new(meta.atime(), meta.atime_nsec());
    let mtime = TimeSpec::new(meta.mtime(), meta.mtime_nsec());
    utimensat(nix::fcntl::AT_FDCWD, path, &atime, &mtime, UtimensatFlags::NoFollowSymlink)?;
    Ok(())
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
