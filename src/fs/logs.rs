//! How the tree serves the views of a log (a container's or an exec's `logs`, `stdout`, `stderr` and
//! `log_index`) from its segments and their indexes on disk (see [`crate::logs`]): each open file reads at
//! its own base, the view's logical offset of the oldest byte kept when it was opened, so rotations move
//! nothing under a reader; the size counts from the oldest base of the opens of that file under way, so it
//! never shrinks under one. `errors` is read at the offset asked, as it grows ([`read_at`]). These reads go
//! to the disk, so they are done on workers of their own ([`DiskRead`]), never on the thread that answers
//! the kernel.

use std::path::{Path, PathBuf};

use fuser::{Errno, FileHandle};

use super::tree::Node;
use super::{lock, ControlFs};
use crate::logs::{Extent, LogView};

/// A read of a log's view or of `errors`, taken on the thread that answers the kernel and done on a worker.
pub(super) struct DiskRead {
    path: PathBuf,
    at: u64,
    /// The view of the log (segments at a logical offset), or `None` for `errors` (one file).
    view: Option<LogView>,
}

impl DiskRead {
    pub(super) fn run(&self, size: u32) -> Result<Vec<u8>, Errno> {
        let Some(view) = self.view else { return read_at(&self.path, self.at, size) };
        crate::logs::view_read_at(&self.path, view, self.at, size as usize).map_err(|e| {
            tracing::debug!(dir = %self.path.display(), ?view, error = %e, "log read");
            Errno::from_i32(e.errno())
        })
    }
}

impl ControlFs {
    pub(super) fn log_extent(&self, node: &Node) -> Result<Extent, Errno> {
        let dir = self.growing_file(node).ok_or(Errno::ENOENT)?;
        let view = node.log_view().ok_or(Errno::ENOENT)?;
        crate::logs::view_extent(&dir, view).map_err(|e| Errno::from_i32(e.errno()))
    }

    /// The size of a log's view (`logs`, `stdout`, ...): through open file `fh` when the kernel names one (an `lseek(SEEK_END)`),
    /// that file's own; otherwise counted from the oldest base of its open files, so a reader's size never
    /// shrinks (GNU tail polls fstat, which the kernel sends without the file handle, and starts over on a
    /// shrink), and with none open, what is kept.
    pub(super) fn log_size(&self, node: &Node, fh: Option<FileHandle>) -> Result<u64, Errno> {
        let extent = self.log_extent(node)?;
        let files = lock(&self.open_files);
        if let Some(file) = fh.and_then(|fh| files.get(&fh.0)).filter(|f| &f.node == node) {
            return Ok(extent.end.saturating_sub(file.log_base));
        }
        let bases = files.values().filter(|f| &f.node == node).map(|f| f.log_base).min();
        Ok(extent.end - bases.map_or(extent.start, |b| b.min(extent.start)))
    }

    /// The disk read a read of open file `fh` at `offset` is, for a log's view and `errors`; `None` for the
    /// others (served from their snapshot) and for a handle that is not open (answered EBADF as any read).
    pub(super) fn disk_read(&self, fh: FileHandle, offset: u64) -> Option<Result<DiskRead, Errno>> {
        let (node, base) = {
            let files = lock(&self.open_files);
            let file = files.get(&fh.0).filter(|f| f.answer.is_none())?;
            (file.node.clone(), file.log_base)
        };
        let view = match (&node, node.log_view()) {
            (_, Some(view)) => Some(view),
            (Node::Errors, None) => None,
            _ => return None,
        };
        let at = if view.is_some() { base.saturating_add(offset) } else { offset };
        Some(self.growing_file(&node).ok_or(Errno::ENOENT).map(|path| DiskRead { path, at, view }))
    }

    /// Up to `size` bytes of a log's view from its logical offset `at`; ENODATA for bytes rotated away.
    pub(super) fn read_log(&self, node: &Node, at: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let dir = self.growing_file(node).ok_or(Errno::ENOENT)?;
        let view = node.log_view().ok_or(Errno::ENOENT)?;
        crate::logs::view_read_at(&dir, view, at, size as usize).map_err(|e| {
            tracing::debug!(dir = %dir.display(), ?view, error = %e, "log read");
            Errno::from_i32(e.errno())
        })
    }
}

/// Up to `size` bytes of the file at `path` from `offset`, as it is now (for `errors`, which grows).
pub(super) fn read_at(path: &Path, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut buf = vec![0u8; size as usize];
    let filled = crate::logs::read_full(&file, &mut buf, offset)?;
    buf.truncate(filled);
    Ok(buf)
}
