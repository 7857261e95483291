//! Value files: how the shell's and the editors' ordinary ways of writing a file become requests (see
//! docs/filesystem.md, "Writing"; save by rename is [`super::scratch`]).
//!
//! A value file's open file keeps what was written on it ([`Buffer`]): the value is the writes so far, in
//! order (after the current value when opened with `O_APPEND`), applied whole at each write, so each write
//! returns the errno of the value it leaves. A write that fails is not part of the value; one that fails
//! after a line without its newline breaks the open file until an `ftruncate(fd, 0)`. A value whose
//! complete lines parse but whose last line, with no newline yet, makes it wrong is held for the next write
//! or the close; a value still wrong at close is refused then: `close(2)` (the kernel's `flush`) returns
//! its errno, the message goes where every failure's goes. An `ftruncate(fd, 0)` no write follows applies
//! the empty value at the close.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use fuser::{Errno, FileHandle, INodeNo, Request as FuseRequest};

use super::scratch::Scratches;
use super::tree::{Kind, Node};
use super::{errno, lock, render, ControlFs};
use crate::caller::Caller;
use crate::engine::Engine;
use crate::error::Error;
use crate::request::{ParseError, Request, WriteKind, WriteTarget, MAX_WRITE};

/// Work for the pool: a write to the engine, answered with its errno.
pub(super) type Job = Box<dyn FnOnce() -> Result<(), Errno> + Send + 'static>;

/// The value files' open files and the scratch files.
#[derive(Default)]
pub(super) struct Values {
    open: Mutex<HashMap<u64, Buffer>>,
    pub(super) scratch: Mutex<Scratches>,
    /// Scratch files renamed onto a value file, and when: the kernel's name of that file points at the
    /// scratch file's inode after the rename (its cached entry outlives the reply), so that inode reads as
    /// the file it was renamed onto for as long as such an entry may live.
    renamed: Mutex<Vec<(u64, Node, std::time::Instant)>>,
}

/// How long a renamed scratch file's inode stands for its target: longer than any entry the kernel caches.
const RENAMED_FOR: std::time::Duration = std::time::Duration::from_secs(120);

impl Values {
    /// What scratch file `id` became if it was renamed onto a value file.
    pub(super) fn renamed_to(&self, id: u64) -> Option<Node> {
        lock(&self.renamed).iter().find(|(i, ..)| *i == id).map(|(_, node, _)| node.clone())
    }

    pub(super) fn note_renamed(&self, id: u64, node: Node) {
        let mut renamed = lock(&self.renamed);
        renamed.retain(|(_, _, at)| at.elapsed() < RENAMED_FOR);
        renamed.push((id, node, std::time::Instant::now()));
    }
}

/// What was written on one open file of a value file.
struct Buffer {
    /// The writes taken so far, in order (after the value at the first write, with `O_APPEND`).
    data: Vec<u8>,
    /// `data` ends in a line that doesn't parse yet: it waits for the next write or the close.
    held: bool,
    /// An `ftruncate(fd, 0)` no write was taken after: the close applies the empty value.
    truncated: bool,
    /// A write failed after a line without its newline: the next write's first line would join that line
    /// into one nobody wrote, so writes are refused until an `ftruncate(fd, 0)`.
    broken: bool,
    /// The errno a close already reported for `data` (recorded once, returned by every close after it).
    reported: Option<Errno>,
    /// Counts the changes to this buffer: a close's job records its result only on the buffer it read.
    generation: u64,
    node: Node,
    target: WriteTarget,
    writer: Caller,
}

impl Buffer {
    fn new(node: Node, target: WriteTarget, writer: Caller, generation: u64) -> Buffer {
        let (held, truncated, broken, reported) = (false, false, false, None);
        Buffer { data: Vec::new(), held, truncated, broken, reported, generation, node, target, writer }
    }
}

/// What a write on an open file whose buffer is broken gets (EINVAL).
const BROKEN: &str = "a write on this open file failed after a line without its newline, which the next write would \
                      have joined into a line nobody wrote: this open file takes no more writes until \
                      ftruncate(fd, 0) (or a new open)";

/// Where a value's last line starts, when it has no newline yet and complete lines come before it.
fn cut_last_line(value: &[u8]) -> Option<usize> {
    if value.ends_with(b"\n") {
        return None;
    }
    value.iter().rposition(|b| *b == b'\n').map(|p| p + 1)
}

/// Applies `value` to `target`: `Ok(false)` when applied, `Ok(true)` when held (it doesn't parse, but its
/// complete lines do and its last line has no newline yet: a line cut short, or one whose end is still to
/// come, `b:/d` of `b:/dz`), else the errno, the failure recorded.
fn apply(
    engine: &Arc<Engine>,
    path: &str,
    node: &Node,
    target: &WriteTarget,
    value: &[u8],
    writer: &Caller,
) -> Result<bool, Errno> {
    if value.len() > MAX_WRITE {
        return Err(errno(&engine.reject(path, node.container(), ParseError::TooLong(value.len()).into())));
    }
    match Request::from_write_by(target.clone(), value, writer.clone()) {
        Ok(request) => engine.handle(path, request).map(|_| false).map_err(|e| errno(&e)),
        Err(e) => {
            // Held when the complete lines parse: whether the last line is wrong is known only once it is
            // whole (alone it may parse and yet clash with an earlier line, or be wrong and then completed).
            let parses = |bytes: &[u8]| Request::from_write_by(target.clone(), bytes, writer.clone()).is_ok();
            if cut_last_line(value).is_some_and(|cut| parses(&value[..cut])) {
                Ok(true)
            } else {
                Err(errno(&engine.reject(path, node.container(), e.into())))
            }
        }
    }
}

impl ControlFs {
    /// The write of `data` to value file `node` through open file `fh`, to run on the pool.
    pub(super) fn value_write(
        &self,
        fh: FileHandle,
        node: Node,
        target: WriteTarget,
        data: &[u8],
        append: bool,
        writer: Caller,
    ) -> Job {
        let (engine, values, data) = (Arc::clone(&self.engine), Arc::clone(&self.values), data.to_vec());
        Box::new(move || {
            let path = node.path();
            let taken = lock(&values.open).get(&fh.0).map(|b| (b.data.clone(), b.broken, b.generation));
            let (mut value, generation) = match taken {
                Some((_, true, _)) => {
                    return Err(errno(&engine.reject(&path, node.container(), Error::Invalid(BROKEN.into()))));
                }
                Some((taken, false, generation)) => (taken, generation + 1),
                None if append => {
                    let mut current = render::content(&engine, &node)?;
                    if !current.is_empty() && !current.ends_with(b"\n") {
                        current.push(b'\n');
                    }
                    (current, 0)
                }
                None => (Vec::new(), 0),
            };
            let kept_cut = !value.is_empty() && !value.ends_with(b"\n");
            value.extend_from_slice(&data);
            match apply(&engine, &path, &node, &target, &value, &writer) {
                Ok(held) => {
                    let mut buffer = Buffer::new(node, target, writer, generation);
                    (buffer.data, buffer.held) = (value, held);
                    lock(&values.open).insert(fh.0, buffer);
                    Ok(())
                }
                Err(e) => {
                    if kept_cut {
                        if let Some(b) = lock(&values.open).get_mut(&fh.0) {
                            b.broken = true;
                            b.generation += 1;
                        }
                    }
                    Err(e)
                }
            }
        })
    }

    /// A close of open file `fh`: nothing to do, the errno a close already reported, or a job for the pool:
    /// the refusal of a value still held (whose last line never made it right), or the empty value of an
    /// `ftruncate(fd, 0)` no write followed. The buffer is marked done before the job runs, so a second
    /// close (of a copy of the descriptor) doesn't do it again.
    pub(super) fn value_flush(&self, fh: FileHandle) -> Result<Option<Job>, Errno> {
        let mut open = lock(&self.values.open);
        let Some(buffer) = open.get_mut(&fh.0) else { return Ok(None) };
        if let Some(e) = buffer.reported {
            return Err(e);
        }
        if !buffer.held && !buffer.truncated {
            return Ok(None);
        }
        (buffer.held, buffer.truncated) = (false, false);
        let generation = buffer.generation;
        let (engine, values) = (Arc::clone(&self.engine), Arc::clone(&self.values));
        let (node, target, data) = (buffer.node.clone(), buffer.target.clone(), buffer.data.clone());
        let writer = buffer.writer.clone();
        drop(open);
        Ok(Some(Box::new(move || {
            // A write through another copy of the descriptor since: that write's value stands.
            let current = |b: &Buffer| b.generation == generation;
            if lock(&values.open).get(&fh.0).is_some_and(|b| !current(b)) {
                return Ok(());
            }
            let path = node.path();
            let result = match Request::from_write_by(target, &data, writer) {
                Ok(request) => engine.handle(&path, request).map(|_| ()).map_err(|e| errno(&e)),
                Err(e) => Err(errno(&engine.reject(&path, node.container(), e.into()))),
            };
            if let Some(b) = lock(&values.open).get_mut(&fh.0).filter(|b| current(b)) {
                b.reported = result.err();
            }
            result
        })))
    }

    /// The last close of open file `fh` (on `node`).
    pub(super) fn released(&self, fh: FileHandle, node: Option<Node>) {
        lock(&self.values.open).remove(&fh.0);
        if let Some(Node::Scratch(id)) = node {
            self.drop_if_unused(id);
        }
    }

    /// `ftruncate(fd, 0)` on a value file's open file starts its value afresh, empty until a write (vim's
    /// in-place save; Python's `truncate(0)`; before the first write of an `O_APPEND` open file it drops the
    /// current value the writes would be added to). The truncation `open(O_TRUNC)` makes reaches the daemon
    /// without an open file, and changes nothing.
    fn truncated(&self, fh: Option<FileHandle>, node: &Node, writer: Caller) {
        let Some(fh) = fh else { return };
        let Some(target) = node.write_target().filter(|t| t.kind() == WriteKind::Value) else { return };
        let mut open = lock(&self.values.open);
        let generation = open.get(&fh.0).map_or(0, |b| b.generation + 1);
        let mut buffer = Buffer::new(node.clone(), target, writer, generation);
        buffer.truncated = true;
        open.insert(fh.0, buffer);
    }

    /// What `setattr` may change: a scratch file's size (its mode, owner and times are taken and change
    /// nothing); on the tree's files a mode, owner or group they already have (vim's `fchmod` after a save),
    /// and a size on writable files (see [`ControlFs::truncated`]). A size is a write: the caller is checked.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn set_attr(
        &self,
        req: &FuseRequest,
        ino: INodeNo,
        node: &Node,
        mode: Option<u32>,
        owner: (Option<u32>, Option<u32>),
        size: Option<u64>,
        fh: Option<FileHandle>,
    ) -> Result<(), Errno> {
        if let Node::Scratch(id) = node {
            if let Some(size) = size {
                self.allowed(req, &self.values.scratch_path(*id))?;
                self.values.resize_scratch(*id, size)?;
            }
            return Ok(());
        }
        let attr = self.attr(ino.0, node)?;
        let (uid, gid) = owner;
        let same = mode.is_none_or(|m| m & 0o7777 == u32::from(attr.perm))
            && uid.is_none_or(|u| u == attr.uid)
            && gid.is_none_or(|g| g == attr.gid);
        if !same {
            return Err(Errno::EPERM);
        }
        if let Some(size) = size {
            if !matches!(node.kind(), Kind::File { writable: true, .. }) {
                return Err(Errno::EACCES);
            }
            let writer = self.allowed(req, &node.path())?;
            if size == 0 {
                self.truncated(fh, node, writer);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_cut() {
        assert_eq!(cut_last_line(b"A=1\nB=2\n"), None);
        assert_eq!(cut_last_line(b"A=1"), None, "one line without a newline is taken as it is");
        assert_eq!(cut_last_line(b"A=1\nKE"), Some(4));
        assert_eq!(cut_last_line(b""), None);
    }
}
