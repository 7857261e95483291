//! Value files and scratch files: how the shell's and the editors' ordinary ways of writing a file become
//! requests (see docs/filesystem.md, "Writing").
//!
//! - **A value file's open file** keeps what was written on it ([`Buffer`]): the value is the writes so far,
//!   in order (after the current value when opened with `O_APPEND`), applied whole at each write, so each
//!   write returns the errno of the value it leaves. A write that fails is not part of the value. A value
//!   that doesn't parse because of its last line, which has no newline yet and doesn't parse alone, after
//!   complete lines that do, is held for the next write or the close; a value still wrong at close is
//!   refused then: `close(2)` (the kernel's `flush`) returns its errno, the message goes where every
//!   failure's goes.
//! - **A scratch file** ([`Scratch`]) is what `open(O_CREAT)` makes in a container's directory or the
//!   root: bytes in the daemon's memory, found by name but never listed, gone [`SCRATCH_GRACE`] after its
//!   last close unless renamed onto a value file first, which is one whole write of its content (`sed -i`,
//!   Python's `tempfile` and `os.replace`, editors that save through a temporary file).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fuser::{Errno, FileAttr, FileHandle, FopenFlags, INodeNo, OpenFlags, RenameFlags, Request as FuseRequest};

use super::tree::{Kind, Node};
use super::{errno, lock, parse_write, render, ControlFs, OpenFile};
use crate::caller::Caller;
use crate::engine::Engine;
use crate::error::Error;
use crate::request::{ParseError, Request, WriteKind, WriteTarget, MAX_WRITE};

/// The most scratch files alive at once (named or still open); past it `create` is ENOSPC.
const MAX_SCRATCH: usize = 256;

/// How long a scratch file keeps its name after its last close, for the rename that follows it (`sed -i`
/// and Python's `os.replace` close the file first); then it is gone.
pub const SCRATCH_GRACE: Duration = Duration::from_secs(30);

/// Work for the pool: a write to the engine, answered with its errno.
pub(super) type Job = Box<dyn FnOnce() -> Result<(), Errno> + Send + 'static>;

/// The value files' open files and the scratch files.
#[derive(Default)]
pub(super) struct Values {
    open: Mutex<HashMap<u64, Buffer>>,
    scratch: Mutex<Scratches>,
    /// Scratch files renamed onto a value file, and when: the kernel's name of that file points at the
    /// scratch file's inode after the rename (its cached entry outlives the reply), so that inode reads as
    /// the file it was renamed onto for as long as such an entry may live.
    renamed: Mutex<Vec<(u64, Node, Instant)>>,
}

/// How long a renamed scratch file's inode stands for its target: longer than any entry the kernel caches.
const RENAMED_FOR: Duration = Duration::from_secs(120);

impl Values {
    /// What scratch file `id` became if it was renamed onto a value file.
    pub(super) fn renamed_to(&self, id: u64) -> Option<Node> {
        lock(&self.renamed).iter().find(|(i, ..)| *i == id).map(|(_, node, _)| node.clone())
    }

    fn note_renamed(&self, id: u64, node: Node) {
        let mut renamed = lock(&self.renamed);
        renamed.retain(|(_, _, at)| at.elapsed() < RENAMED_FOR);
        renamed.push((id, node, Instant::now()));
    }
}

/// What was written on one open file of a value file.
struct Buffer {
    /// The writes taken so far, in order (after the value at the first write, with `O_APPEND`).
    data: Vec<u8>,
    /// `data` ends in a line that doesn't parse yet: it waits for the next write or the close.
    held: bool,
    /// The errno a close already reported for `data` (recorded once, returned by every close after it).
    reported: Option<Errno>,
    node: Node,
    target: WriteTarget,
    writer: Caller,
}

#[derive(Default)]
struct Scratches {
    next: u64,
    files: HashMap<u64, Scratch>,
}

/// A file made by `create`, in the daemon's memory only.
struct Scratch {
    /// Its directory and name; `None` once renamed onto a value file or unlinked (it lives on while open).
    name: Option<(Node, String)>,
    content: Vec<u8>,
    /// When its last open file was closed; `None` while one is open.
    closed_at: Option<Instant>,
    /// Who made it: its owner, so that a member of `--group` may `chmod` what it made (`sed -i` does).
    owner: u32,
}

impl Scratch {
    fn alive(&self, now: Instant) -> bool {
        self.closed_at.is_none_or(|t| now.duration_since(t) < SCRATCH_GRACE)
    }
}

/// vim's swap files (`.NAME.swp`, `.swo`, ... and its `.swpx` probe): refused, so vim keeps them in its
/// next 'directory' (`~/tmp`, `/var/tmp`, `/tmp`), where they survive a crash and can recover the edit, as
/// a scratch file, gone at vim's last close, could not.
fn is_swap_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('.') else { return false };
    let ext = rest.rsplit_once('.').map_or("", |(_, e)| e);
    ext == "swpx" || (ext.len() == 3 && ext.starts_with("sw") && matches!(ext.as_bytes()[2], b'a'..=b'p'))
}

/// Where a value's last line starts, when it has no newline yet and complete lines come before it.
fn cut_last_line(value: &[u8]) -> Option<usize> {
    if value.ends_with(b"\n") {
        return None;
    }
    value.iter().rposition(|b| *b == b'\n').map(|p| p + 1)
}

/// Applies `value` to `target`: `Ok(false)` when applied, `Ok(true)` when held (it doesn't parse, but only
/// because of a last line without its newline that doesn't parse alone, after complete lines that do), else
/// the errno, the failure recorded.
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
            // Held only when the complete lines parse and the last one, alone, does not: a line cut short.
            // (A last line that is whole but clashes with another, a target twice, is refused now.)
            let parses = |bytes: &[u8]| Request::from_write_by(target.clone(), bytes, writer.clone()).is_ok();
            let held = cut_last_line(value).is_some_and(|cut| parses(&value[..cut]) && !parses(&value[cut..]));
            if held {
                Ok(true)
            } else {
                Err(errno(&engine.reject(path, node.container(), e.into())))
            }
        }
    }
}

impl Values {
    /// The scratch file `name` in `dir`, if there is one; the ones past their grace go first.
    fn named(&self, dir: &Node, name: &str) -> Option<u64> {
        let now = Instant::now();
        let mut scratch = lock(&self.scratch);
        scratch.files.retain(|_, s| s.alive(now));
        scratch
            .files
            .iter()
            .find(|(_, s)| s.name.as_ref().is_some_and(|(d, n)| d == dir && n == name))
            .map(|(id, _)| *id)
    }

    pub(super) fn has_scratch(&self, id: u64) -> bool {
        lock(&self.scratch).files.get(&id).is_some_and(|s| s.alive(Instant::now()))
    }

    /// The content of scratch file `id`, for an open of it (which keeps it while open).
    pub(super) fn opened_scratch(&self, id: u64) -> Vec<u8> {
        let mut scratch = lock(&self.scratch);
        let Some(file) = scratch.files.get_mut(&id) else { return Vec::new() };
        file.closed_at = None;
        file.content.clone()
    }

    /// The owner scratch file `id` shows (root's when it is gone).
    pub(super) fn scratch_owner(&self, id: u64) -> u32 {
        lock(&self.scratch).files.get(&id).map_or(0, |s| s.owner)
    }

    fn scratch_content(&self, id: u64) -> Vec<u8> {
        lock(&self.scratch).files.get(&id).map(|s| s.content.clone()).unwrap_or_default()
    }

    pub(super) fn scratch_len(&self, id: u64) -> u64 {
        lock(&self.scratch).files.get(&id).map_or(0, |s| s.content.len() as u64)
    }

    /// The path of scratch file `id` below the mount, for messages.
    fn scratch_path(&self, id: u64) -> String {
        match lock(&self.scratch).files.get(&id).and_then(|s| s.name.clone()) {
            Some((dir, name)) => path_in(&dir, &name),
            None => Node::Scratch(id).path(),
        }
    }
}

/// When no open file is left on scratch file `id`: without a name it goes now, with one after its grace.
fn drop_if_unused(open_files: &Mutex<HashMap<u64, OpenFile>>, values: &Values, id: u64) {
    if lock(open_files).values().any(|f| f.node == Node::Scratch(id)) {
        return;
    }
    let mut scratch = lock(&values.scratch);
    match scratch.files.get_mut(&id) {
        Some(s) if s.name.is_none() => {
            scratch.files.remove(&id);
        }
        Some(s) => s.closed_at = s.closed_at.or(Some(Instant::now())),
        None => {}
    }
}

/// `name` in directory `dir`, as a path below the mount.
fn path_in(dir: &Node, name: &str) -> String {
    match dir {
        Node::Root => name.to_string(),
        d => format!("{}/{name}", d.path()),
    }
}

/// The container whose directory `dir` is: a refusal there goes to its `error` too.
fn container_of(dir: &Node) -> Option<&str> {
    match dir {
        Node::Container(c) => Some(c),
        _ => None,
    }
}

impl ControlFs {
    /// `lookup` of `name` in `dir` when it is no node of the tree: a scratch file made there.
    pub(super) fn scratch_named(&self, dir: &Node, name: &str) -> Option<Node> {
        self.values.named(dir, name).map(Node::Scratch)
    }

    fn drop_if_unused(&self, id: u64) {
        drop_if_unused(&self.open_files, &self.values, id);
    }

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
            let taken = lock(&values.open).get(&fh.0).map(|b| b.data.clone());
            let mut value = match taken {
                Some(taken) => taken,
                None if append => {
                    let mut current = render::content(&engine, &node)?;
                    if !current.is_empty() && !current.ends_with(b"\n") {
                        current.push(b'\n');
                    }
                    current
                }
                None => Vec::new(),
            };
            value.extend_from_slice(&data);
            let held = apply(&engine, &path, &node, &target, &value, &writer)?;
            lock(&values.open).insert(fh.0, Buffer { data: value, held, reported: None, node, target, writer });
            Ok(())
        })
    }

    /// A close of open file `fh`: nothing to do, the errno a close already reported, or the refusal of a
    /// value still held (a last line that never parsed), to record on the pool.
    pub(super) fn value_flush(&self, fh: FileHandle) -> Result<Option<Job>, Errno> {
        let open = lock(&self.values.open);
        let Some(buffer) = open.get(&fh.0) else { return Ok(None) };
        if let Some(e) = buffer.reported {
            return Err(e);
        }
        if !buffer.held {
            return Ok(None);
        }
        let (engine, values) = (Arc::clone(&self.engine), Arc::clone(&self.values));
        let (node, target, data) = (buffer.node.clone(), buffer.target.clone(), buffer.data.clone());
        let writer = buffer.writer.clone();
        Ok(Some(Box::new(move || {
            let path = node.path();
            let result = match Request::from_write_by(target, &data, writer) {
                Ok(request) => engine.handle(&path, request).map(|_| ()).map_err(|e| errno(&e)),
                Err(e) => Err(errno(&engine.reject(&path, node.container(), e.into()))),
            };
            if let Some(b) = lock(&values.open).get_mut(&fh.0) {
                b.held = false;
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

    /// `ftruncate(fd, 0)` on a value file's open file starts its value afresh (vim's in-place save); the
    /// truncation `open(O_TRUNC)` makes reaches the daemon without an open file, and changes nothing.
    fn truncated(&self, fh: Option<FileHandle>) {
        let Some(fh) = fh else { return };
        if let Some(b) = lock(&self.values.open).get_mut(&fh.0) {
            b.data.clear();
            b.held = false;
            b.reported = None;
        }
    }

    /// What `setattr` may change: a scratch file's size (its mode, owner and times are taken and change
    /// nothing); on the tree's files a mode, owner or group they already have (vim's `fchmod` after a save),
    /// and a size on writable files (see [`ControlFs::truncated`]).
    pub(super) fn set_attr(
        &self,
        ino: INodeNo,
        node: &Node,
        mode: Option<u32>,
        owner: (Option<u32>, Option<u32>),
        size: Option<u64>,
        fh: Option<FileHandle>,
    ) -> Result<(), Errno> {
        if let Node::Scratch(id) = node {
            if let Some(size) = size {
                let size = usize::try_from(size).ok().filter(|s| *s <= MAX_WRITE).ok_or(Errno::EFBIG)?;
                let mut scratch = lock(&self.values.scratch);
                let file = scratch.files.get_mut(id).ok_or(Errno::ENOENT)?;
                file.content.resize(size, 0);
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
            if size == 0 {
                self.truncated(fh);
            }
        }
        Ok(())
    }

    /// A write to scratch file `id` at `offset`: bytes in memory, at most [`MAX_WRITE`] of them.
    pub(super) fn scratch_write(&self, id: u64, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        let end = usize::try_from(offset).ok().and_then(|o| o.checked_add(data.len()));
        let Some(end) = end.filter(|e| *e <= MAX_WRITE) else {
            let too_long = ParseError::TooLong(MAX_WRITE.saturating_add(1).max(data.len()));
            return Err(errno(&self.engine.reject(&self.values.scratch_path(id), None, too_long.into())));
        };
        let mut scratch = lock(&self.values.scratch);
        let file = scratch.files.get_mut(&id).ok_or(Errno::ENOENT)?;
        if file.content.len() < end {
            file.content.resize(end, 0);
        }
        let start = end - data.len();
        file.content[start..end].copy_from_slice(data);
        Ok(u32::try_from(data.len()).unwrap_or(u32::MAX))
    }

    /// `open(O_CREAT)` of `name` in `parent`: a new scratch file and its first open file.
    pub(super) fn create_scratch(
        &self,
        req: &FuseRequest,
        parent: INodeNo,
        name: &str,
        flags: i32,
    ) -> Result<(FileAttr, u64, FopenFlags), Errno> {
        let dir = self.node(parent)?;
        if !dir.takes_scratch() {
            return Err(Errno::EPERM);
        }
        if let Some(node) = dir.child(name) {
            // A name of the tree's is never a scratch file's, even while its node is absent (`rootfs`).
            return Err(if self.exists(&node) { Errno::EEXIST } else { Errno::EPERM });
        }
        if self.values.named(&dir, name).is_some() {
            return Err(Errno::EEXIST);
        }
        if is_swap_name(name) {
            tracing::debug!(
                "{}/{name}: a swap file is refused (EPERM), to be made where it outlives a crash",
                dir.path()
            );
            return Err(Errno::EPERM);
        }
        let path = path_in(&dir, name);
        let owner = self.allowed(req, &path)?.uid;
        let id = {
            let mut scratch = lock(&self.values.scratch);
            if scratch.files.len() >= MAX_SCRATCH {
                let what =
                    format!("scratch file {path} ({MAX_SCRATCH} are already open or named: close or rename some)");
                let full = Error::Record { what, source: std::io::Error::from_raw_os_error(libc::ENOSPC) };
                return Err(errno(&self.engine.reject(&path, None, full)));
            }
            scratch.next += 1;
            let id = scratch.next;
            let file = Scratch { name: Some((dir, name.to_string())), content: Vec::new(), closed_at: None, owner };
            scratch.files.insert(id, file);
            id
        };
        let node = Node::Scratch(id);
        let ino = lock(&self.inodes).ino(&node);
        let opened = self.attr(ino, &node).and_then(|attr| {
            let (fh, open_flags) = self.open_file(INodeNo(ino), OpenFlags(flags))?;
            Ok((attr, fh, open_flags))
        });
        if opened.is_err() {
            lock(&self.values.scratch).files.remove(&id);
        }
        opened
    }

    /// `unlink` of `name` in `parent`: only a scratch file's name goes (its bytes with its last close).
    pub(super) fn unlink_scratch(&self, req: &FuseRequest, parent: INodeNo, name: &str) -> Result<(), Errno> {
        let dir = self.node(parent)?;
        let id = self.values.named(&dir, name).ok_or(Errno::EPERM)?;
        self.allowed(req, &self.values.scratch_path(id))?;
        if let Some(s) = lock(&self.values.scratch).files.get_mut(&id) {
            s.name = None;
        }
        self.drop_if_unused(id);
        Ok(())
    }

    /// `rename` of `name` in `parent` to `newname` in `newparent`: only a scratch file moves. Onto a value
    /// file it is one whole write of its content, to run on the pool (`Some`: the path, the job); onto a free
    /// name where scratch files may be, or onto another scratch file, it takes that name (`None`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn rename_scratch(
        &self,
        req: &FuseRequest,
        parent: INodeNo,
        name: &str,
        newparent: INodeNo,
        newname: &str,
        flags: RenameFlags,
    ) -> Result<Option<(String, Job)>, Errno> {
        let (dir, newdir) = (self.node(parent)?, self.node(newparent)?);
        let Some(id) = self.values.named(&dir, name) else {
            let why = format!(
                "{} can't be renamed: the tree's files are the daemon's; only a file made by open(O_CREAT) in a \
                 container's directory is, onto a value file (save by rename)",
                path_in(&dir, name)
            );
            return Err(errno(&self.engine.reject(&path_in(&dir, name), container_of(&dir), Error::NotPermitted(why))));
        };
        if flags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT) {
            return Err(Errno::EINVAL);
        }
        let target = newdir.child(newname).filter(|n| self.exists(n));
        let target_path = target.as_ref().map_or_else(|| path_in(&newdir, newname), Node::path);
        let caller = self.allowed(req, &target_path)?;
        let Some(node) = target else {
            if !newdir.takes_scratch() {
                return Err(Errno::EPERM);
            }
            if let Some(other) = self.values.named(&newdir, newname).filter(|other| *other != id) {
                if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                    return Err(Errno::EEXIST);
                }
                if let Some(s) = lock(&self.values.scratch).files.get_mut(&other) {
                    s.name = None;
                }
                self.drop_if_unused(other);
            }
            if let Some(s) = lock(&self.values.scratch).files.get_mut(&id) {
                s.name = Some((newdir, newname.to_string()));
            }
            return Ok(None);
        };
        let Some(write) = node.write_target().filter(|t| t.kind() == WriteKind::Value) else {
            let why = format!(
                "{target_path} takes no file renamed onto it: only value files do (a command file takes one \
                 command a write; a read-only file none)"
            );
            return Err(errno(&self.engine.reject(&target_path, node.container(), Error::NotPermitted(why))));
        };
        if flags.contains(RenameFlags::RENAME_NOREPLACE) {
            return Err(Errno::EEXIST);
        }
        let content = self.values.scratch_content(id);
        let (engine, values, open_files) =
            (Arc::clone(&self.engine), Arc::clone(&self.values), Arc::clone(&self.open_files));
        let path = target_path.clone();
        let job: Job = Box::new(move || {
            let request = parse_write(&engine, &node, write, &content, caller).map_err(|e| errno(&e))?;
            engine.handle(&path, request).map_err(|e| errno(&e))?;
            values.note_renamed(id, node.clone());
            // Taken: the scratch file's name is gone, as a renamed file's is.
            if let Some(s) = lock(&values.scratch).files.get_mut(&id) {
                s.name = None;
            }
            drop_if_unused(&open_files, &values, id);
            Ok(())
        });
        Ok(Some((target_path, job)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_names() {
        for swap in [".env.swp", ".env.swo", ".env.swa", ".env.swpx", "..hidden.swp"] {
            assert!(is_swap_name(swap), "{swap}");
        }
        for other in ["env.swp", ".env.swq", "4913", "env~", "sedAb12Cd", ".env", ".swp", "tmpx.swp"] {
            assert!(!is_swap_name(other), "{other}");
        }
    }

    #[test]
    fn last_lines_cut() {
        assert_eq!(cut_last_line(b"A=1\nB=2\n"), None);
        assert_eq!(cut_last_line(b"A=1"), None, "one line without a newline is taken as it is");
        assert_eq!(cut_last_line(b"A=1\nKE"), Some(4));
        assert_eq!(cut_last_line(b""), None);
    }
}
