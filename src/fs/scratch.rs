//! Scratch files: what `open(O_CREAT)` makes in a container's directory or the root, for save by rename
//! (see docs/filesystem.md, "Writing"). Bytes in the daemon's memory, found by name but never listed, gone
//! [`SCRATCH_GRACE`] after their last close unless renamed onto a value file first, which is one whole
//! write of their content (`sed -i`, Python's `tempfile` and `os.replace`, editors that save through a
//! temporary file). One that had bytes and goes unrenamed is recorded in `errors` (a misspelt name).
//!
//! Their inode numbers are their ids with [`SCRATCH_BIT`] set, decoded where an inode number becomes a
//! node: the inode table never holds them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use fuser::{Errno, FileAttr, FopenFlags, INodeNo, OpenFlags, RenameFlags, Request as FuseRequest};

use super::tree::Node;
use super::values::{Job, Values};
use super::{errno, lock, parse_write, ControlFs, OpenFile};
use crate::engine::Engine;
use crate::error::Error;
use crate::request::{ParseError, WriteKind, MAX_WRITE};

/// The most scratch files alive at once (named or still open); past it `create` is ENOSPC.
const MAX_SCRATCH: usize = 256;

/// How long a scratch file keeps its name after its last close, for the rename that follows it (`sed -i`
/// and Python's `os.replace` close the file first); then it is gone.
pub const SCRATCH_GRACE: Duration = Duration::from_secs(30);

/// How often the scratch files past their grace are dropped (and the ones with bytes recorded).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Set in the inode number of every scratch file, and in no other node's (those count up from 1).
const SCRATCH_BIT: u64 = 1 << 62;

/// The inode number of scratch file `id`.
pub(super) fn ino(id: u64) -> u64 {
    SCRATCH_BIT | id
}

/// The scratch file whose inode number `ino` is, if it is one's.
pub(super) fn of_ino(ino: u64) -> Option<u64> {
    (ino & SCRATCH_BIT != 0).then_some(ino & !SCRATCH_BIT)
}

#[derive(Default)]
pub(super) struct Scratches {
    next: u64,
    files: HashMap<u64, Scratch>,
    /// Whether the thread that drops expired files runs (started with the first scratch file).
    sweeping: bool,
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

impl Values {
    /// The scratch file `name` in `dir`, if there is one (and it is within its grace).
    fn named(&self, dir: &Node, name: &str) -> Option<u64> {
        let now = Instant::now();
        let scratch = lock(&self.scratch);
        scratch
            .files
            .iter()
            .find(|(_, s)| s.alive(now) && s.name.as_ref().is_some_and(|(d, n)| d == dir && n == name))
            .map(|(id, _)| *id)
    }

    /// Drops the scratch files past their grace; records in `errors` each that had bytes (written, never
    /// renamed onto a file of the tree: most likely a misspelt name, `memory_max` for `memory.max`).
    fn expire(&self, engine: &Engine) {
        let now = Instant::now();
        let mut dropped = Vec::new();
        lock(&self.scratch).files.retain(|_, s| {
            let alive = s.alive(now);
            if let (false, Some((dir, name))) = (alive, &s.name) {
                if !s.content.is_empty() {
                    dropped.push(path_in(dir, name));
                }
            }
            alive
        });
        for path in dropped {
            let why = format!("{path}: a file written here was never renamed onto a file of the tree: dropped");
            engine.reject(&path, None, Error::NotPermitted(why));
        }
    }

    /// Container `dir` was removed: its scratch files lose their names (those still open live on until
    /// their last close), so none shows in a new container of the same name.
    pub(super) fn forget_dir(&self, dir: &Node) {
        let mut scratch = lock(&self.scratch);
        scratch.files.retain(|_, s| !(s.name.as_ref().is_some_and(|(d, _)| d == dir) && s.closed_at.is_some()));
        for s in scratch.files.values_mut() {
            if s.name.as_ref().is_some_and(|(d, _)| d == dir) {
                s.name = None;
            }
        }
    }

    pub(super) fn has_scratch(&self, id: u64) -> bool {
        lock(&self.scratch).files.get(&id).is_some_and(|s| s.alive(Instant::now()))
    }

    /// An open of scratch file `id`: it is kept while open.
    pub(super) fn opened_scratch(&self, id: u64) {
        if let Some(file) = lock(&self.scratch).files.get_mut(&id) {
            file.closed_at = None;
        }
    }

    /// `size` bytes of scratch file `id` from `offset`, as it is now.
    pub(super) fn scratch_read(&self, id: u64, offset: u64, size: u32) -> Vec<u8> {
        let scratch = lock(&self.scratch);
        let Some(file) = scratch.files.get(&id) else { return Vec::new() };
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(file.content.len());
        let end = start.saturating_add(size as usize).min(file.content.len());
        file.content[start..end].to_vec()
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
    pub(super) fn scratch_path(&self, id: u64) -> String {
        match lock(&self.scratch).files.get(&id).and_then(|s| s.name.clone()) {
            Some((dir, name)) => path_in(&dir, &name),
            None => Node::Scratch(id).path(),
        }
    }

    /// Sets the size of scratch file `id` (at most [`MAX_WRITE`]).
    pub(super) fn resize_scratch(&self, id: u64, size: u64) -> Result<(), Errno> {
        let size = usize::try_from(size).ok().filter(|s| *s <= MAX_WRITE).ok_or(Errno::EFBIG)?;
        let mut scratch = lock(&self.scratch);
        let file = scratch.files.get_mut(&id).ok_or(Errno::ENOENT)?;
        file.content.resize(size, 0);
        Ok(())
    }

    /// Takes scratch file `id`'s name away (renamed onto a value file, unlinked, or replaced by a rename).
    fn unname(&self, id: u64) {
        if let Some(s) = lock(&self.scratch).files.get_mut(&id) {
            s.name = None;
        }
    }
}

/// When no open file is left on scratch file `id`: without a name it goes now, with one after its grace.
pub(super) fn drop_if_unused(open_files: &Mutex<HashMap<u64, OpenFile>>, values: &Values, id: u64) {
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

/// Starts the thread that drops expired scratch files each [`SWEEP_EVERY`], until the daemon's engine or
/// its scratch files are gone.
fn start_sweeper(engine: &Arc<Engine>, values: &Arc<Values>) {
    let (engine, values): (Weak<Engine>, Weak<Values>) = (Arc::downgrade(engine), Arc::downgrade(values));
    let spawned = std::thread::Builder::new().name("scratch-sweeper".into()).spawn(move || loop {
        std::thread::sleep(SWEEP_EVERY);
        let (Some(engine), Some(values)) = (engine.upgrade(), values.upgrade()) else { return };
        values.expire(&engine);
    });
    if let Err(e) = spawned {
        // Expired files still go at the next create; only their record waits for it.
        tracing::warn!(error = %e, "cannot start the scratch files' sweeper");
    }
}

impl ControlFs {
    /// `lookup` of `name` in `dir` when it is no node of the tree: a scratch file made there.
    pub(super) fn scratch_named(&self, dir: &Node, name: &str) -> Option<Node> {
        self.values.named(dir, name).map(Node::Scratch)
    }

    pub(super) fn drop_if_unused(&self, id: u64) {
        drop_if_unused(&self.open_files, &self.values, id);
    }

    /// A write to scratch file `id` at `offset`, by a caller who may change the tree: bytes in memory, at
    /// most [`MAX_WRITE`] of them.
    pub(super) fn scratch_write(&self, req: &FuseRequest, id: u64, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        let path = self.values.scratch_path(id);
        self.allowed(req, &path)?;
        let end = usize::try_from(offset).ok().and_then(|o| o.checked_add(data.len()));
        let Some(end) = end.filter(|e| *e <= MAX_WRITE) else {
            let too_long = ParseError::TooLong(MAX_WRITE.saturating_add(1).max(data.len()));
            return Err(errno(&self.engine.reject(&path, None, too_long.into())));
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
        self.values.expire(&self.engine);
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
        let (id, sweeping) = {
            let mut scratch = lock(&self.values.scratch);
            if scratch.files.len() >= MAX_SCRATCH {
                (None, true)
            } else {
                scratch.next += 1;
                let id = scratch.next;
                let file = Scratch { name: Some((dir, name.to_string())), content: Vec::new(), closed_at: None, owner };
                scratch.files.insert(id, file);
                (Some(id), std::mem::replace(&mut scratch.sweeping, true))
            }
        };
        let Some(id) = id else {
            let what = format!("scratch file {path} ({MAX_SCRATCH} are already open or named: close or rename some)");
            let full = Error::Record { what, source: std::io::Error::from_raw_os_error(libc::ENOSPC) };
            return Err(errno(&self.engine.reject(&path, None, full)));
        };
        if !sweeping {
            start_sweeper(&self.engine, &self.values);
        }
        let node = Node::Scratch(id);
        let ino = ino(id);
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
        self.values.unname(id);
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
        let child = newdir.child(newname);
        if child.as_ref().is_some_and(|n| !self.exists(n)) {
            // A name of the tree's is never a scratch file's, even while its node is absent (`rootfs`).
            return Err(Errno::EPERM);
        }
        let target_path = child.as_ref().map_or_else(|| path_in(&newdir, newname), Node::path);
        let caller = self.allowed(req, &target_path)?;
        let Some(node) = child else {
            if !newdir.takes_scratch() {
                return Err(Errno::EPERM);
            }
            if let Some(other) = self.values.named(&newdir, newname).filter(|other| *other != id) {
                if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                    return Err(Errno::EEXIST);
                }
                self.values.unname(other);
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
            values.unname(id);
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
    fn inode_numbers() {
        assert_eq!(of_ino(ino(7)), Some(7));
        assert_eq!(of_ino(1), None);
        assert_eq!(of_ino(u64::from(u32::MAX)), None);
    }
}
