//! The FUSE adapter: translates kernel requests on the mount into engine queries and [`Request`]s, and
//! engine results into replies. No container logic lives here.
//!
//! Reads have no side effects and hold no thread: a file's content is taken once at open and served from
//! that snapshot with direct I/O, so `cat` never sees stale or cut content; `logs` (and `stdout`, `stderr`,
//! `log_index`, the root's `events`) is read from its segments at the offset asked, so `tail -f` follows it
//! across rotations ([`logs`]); a read of a running container's `wait` is parked and answered at its exit,
//! and polls are woken by the engine's notices ([`waits`]). The kernel keeps names and attributes, dropped
//! on the engine's change notices ([`cache`]); [`times`] says what `stat`'s times are. Writes, mkdir and
//! rmdir run on a thread of their own, so a slow request never stalls `ls`.

pub mod access;
mod cache;
mod dirs;
mod inodes;
mod inspect;
mod logs;
mod ops;
mod pool;
mod readme;
mod render;
mod scratch;
mod times;
mod tree;
mod values;
mod waits;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, FopenFlags, INodeNo, OpenAccMode, OpenFlags, Request as FuseRequest,
};

use crate::engine::Engine;
use crate::error::Error;
use crate::request::{Request, WriteTarget};
use access::{Access, Caller};
pub use cache::Invalidator;
use cache::KernelCache;
use inodes::Inodes;
use logs::read_at;
use pool::Pool;
use tree::{ContainerFile, ExecFile, ImageFile, Kind, Node};
pub use waits::Waits;

/// The time-to-live of attributes a setattr answers with: none (the next stat asks again).
const TTL: Duration = Duration::ZERO;

/// One open file.
struct OpenFile {
    node: Node,
    /// The content at open time, for files other than `logs`, `errors` and scratch files (for `wait`, its
    /// last answer; once polled, a read at offset 0 takes it afresh: see [`waits`]).
    snapshot: Arc<Vec<u8>>,
    /// The id a write to `run` or `import` produced, served to reads on the same open file.
    answer: Option<Vec<u8>>,
    answer_pos: usize,
    /// After a `start` written to this open `ctl`: that run's exit code, served to reads once it has
    /// ended (nothing before), also once the container is gone.
    exit: Option<crate::engine::ExitSlot>,
    /// For a container's `logs` (or another view of its log): its hold, which keeps an exited
    /// `auto_remove` container until the close.
    _hold: Option<crate::engine::LogHold>,
    /// For `logs` and the other views of a log: the view's logical offset (see [`crate::logs`]) of this
    /// open file's offset 0.
    log_base: u64,
    /// What its polls and waits keep ([`waits`]).
    watch: waits::Watch,
}

/// The control filesystem.
pub struct ControlFs {
    engine: Arc<Engine>,
    inodes: Arc<Mutex<Inodes>>,
    open_files: Arc<Mutex<HashMap<u64, OpenFile>>>,
    /// The listings of open directories ([`dirs`]).
    listings: dirs::Listings,
    /// What the kernel caches, and the threads that drop it on the engine's notices.
    cache: KernelCache,
    next_fh: AtomicU64,
    mounted_at: SystemTime,
    access: Access,
    /// Where writes, mkdir and rmdir run.
    pool: Pool,
    /// What was written on the value files' open files, and the scratch files (see [`values`]).
    values: Arc<values::Values>,
    /// Where reads of `logs` and `errors` run ([`logs`]).
    disk: Pool,
    /// The reads of `wait` that wait, and the polls ([`waits`]).
    waits: waits::Waits,
}

/// Workers for writes, mkdir and rmdir, and how many more may wait for one.
const POOL_WORKERS: usize = 64;
const POOL_QUEUE: usize = 1024;
/// Workers for reads of `logs` and `errors`; past the queue's bound a read is done where it arrived.
const DISK_WORKERS: usize = 4;
const DISK_QUEUE: usize = 256;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ControlFs {
    pub fn new(engine: Arc<Engine>, access: Access) -> ControlFs {
        let mut inodes = Inodes::default();
        inodes.ino(&Node::Root);
        let inodes = Arc::new(Mutex::new(inodes));
        let (settled, notices) = std::sync::mpsc::channel();
        let cache = KernelCache::start(&engine, Arc::clone(&inodes), settled);
        let open_files = Arc::new(Mutex::new(HashMap::new()));
        let waits = waits::Waits::start(&engine, Arc::clone(&open_files), notices);
        ControlFs {
            engine,
            inodes,
            open_files,
            listings: Default::default(),
            cache,
            next_fh: AtomicU64::new(1),
            mounted_at: SystemTime::now(),
            access,
            pool: Pool::new(POOL_WORKERS, POOL_QUEUE),
            values: Arc::default(),
            disk: Pool::new(DISK_WORKERS, DISK_QUEUE),
            waits,
        }
    }

    /// What answers the parked reads of `wait`: told when the daemon stops ([`waits::Waits::stop`]).
    pub fn waits(&self) -> Waits {
        self.waits.clone()
    }

    /// Hands the mounted session's notifier to the threads that keep the kernel's caches right.
    pub fn invalidator(&self) -> Invalidator {
        self.cache.invalidator()
    }

    /// The node behind `ino`, if it still exists.
    fn node(&self, ino: INodeNo) -> Result<Node, Errno> {
        let mut node = match scratch::of_ino(ino.0) {
            Some(id) => Node::Scratch(id),
            None => lock(&self.inodes).node(ino.0).ok_or(Errno::ENOENT)?,
        };
        if let Node::Scratch(id) = node {
            // Renamed onto a value file: the kernel may still reach that file through this inode.
            node = self.values.renamed_to(id).unwrap_or(node);
        }
        if self.exists(&node) {
            Ok(node)
        } else {
            Err(Errno::ENOENT)
        }
    }

    fn exists(&self, node: &Node) -> bool {
        match node {
            Node::Image(id) | Node::ImageFile(id, _) => self.engine.has_image(id),
            Node::ContainerFile(name, ContainerFile::Rootfs) => self.engine.container_rootfs(name).is_some(),
            Node::Container(name) | Node::ContainerFile(name, _) => self.engine.has_container(name),
            Node::Volume(name) | Node::VolumeData(name) => self.engine.has_volume(name),
            Node::Network(name) | Node::NetworkFile(name, _) => self.engine.has_network(name),
            Node::BuildDir(n) | Node::BuildFile(n, _) => self.engine.build_record(*n).is_some(),
            Node::Execs(name) => self.engine.has_container(name),
            Node::Exec(name, n) | Node::ExecFile(name, n, _) => self.engine.has_exec(name, *n),
            Node::Scratch(id) => self.values.has_scratch(*id),
            Node::ByName(dir) => self.engine.name_entries(dir).is_some(),
            Node::NameLink(name) => self.engine.image_of_name(name).is_some(),
            _ => true,
        }
    }

    fn lookup_child(&self, parent: INodeNo, name: &OsStr) -> Result<(Node, u64), Errno> {
        let parent = self.node(parent)?;
        if parent.kind() != Kind::Dir {
            return Err(Errno::ENOTDIR);
        }
        let name = name.to_str().ok_or(Errno::ENOENT)?;
        let node = parent
            .child(name)
            .filter(|n| self.exists(n))
            .or_else(|| self.scratch_named(&parent, name))
            .ok_or(Errno::ENOENT)?;
        let ino = match &node {
            Node::Scratch(id) => scratch::ino(*id),
            n => lock(&self.inodes).ino(n),
        };
        Ok((node, ino))
    }

    /// The size of `node`; for a log's view, as seen through open file `fh` when the kernel names one (an
    /// `lseek(SEEK_END)`).
    fn size(&self, node: &Node, fh: Option<FileHandle>) -> Result<u64, Errno> {
        match node {
            n if n.log_view().is_some() => self.log_size(node, fh),
            Node::Scratch(id) => Ok(self.values.scratch_len(*id)),
            Node::Errors => {
                let path = self.growing_file(node).ok_or(Errno::ENOENT)?;
                Ok(std::fs::metadata(path).map(|m| m.len()).unwrap_or(0))
            }
            Node::ImageFile(..) | Node::ContainerFile(..) | Node::VolumeData(_) | Node::NameLink(_)
                if node.kind() == Kind::Symlink =>
            {
                Ok(self.link_target(node)?.as_os_str().len() as u64)
            }
            n if n.kind() == Kind::Dir => Ok(0),
            n if n.is_request() => Ok(tree::REQUEST_FILE_SIZE),
            n => match render::content(&self.engine, n) {
                Ok(bytes) => Ok(bytes.len() as u64),
                // A stat file the host has no numbers for is listed, 0 bytes; reading it says why not.
                Err(e) if e == Errno::ENOTSUP => Ok(0),
                Err(e) => Err(e),
            },
        }
    }

    /// The file on disk behind `errors`, or the directory of segments behind a view of a log (`logs`,
    /// `stdout`, ...): read as it grows at the offset asked rather than from a snapshot (never copied whole
    /// per open).
    fn growing_file(&self, node: &Node) -> Option<std::path::PathBuf> {
        match node {
            Node::Errors => Some(self.engine.errors_path()),
            Node::Events => Some(self.engine.events_path()),
            Node::ContainerFile(name, ContainerFile::Log(_)) => self.engine.logs_path(name),
            Node::ExecFile(name, n, ExecFile::Log(_)) => self.engine.exec_logs_path(name, *n),
            Node::BuildFile(n, tree::BuildFile::Logs) => self.engine.build_logs_path(*n),
            _ => None,
        }
    }

    fn link_target(&self, node: &Node) -> Result<std::path::PathBuf, Errno> {
        match node {
            Node::ImageFile(id, ImageFile::Rootfs) => self.engine.image_rootfs(id).ok_or(Errno::ENOENT),
            Node::ContainerFile(name, ContainerFile::Rootfs) => self.engine.container_rootfs(name).ok_or(Errno::ENOENT),
            Node::VolumeData(name) => self.engine.volume_path(name).ok_or(Errno::ENOENT),
            Node::ContainerFile(name, ContainerFile::Attach) => {
                self.engine.attach_socket(name, None).ok_or(Errno::ENOENT)
            }
            Node::ExecFile(name, n, ExecFile::Attach) => self.engine.attach_socket(name, Some(*n)).ok_or(Errno::ENOENT),
            // Relative, from the link's directory up to images/: `../../../img_...` for `docker.io/library/x:1`.
            Node::NameLink(name) => {
                let id = self.engine.image_of_name(name).ok_or(Errno::ENOENT)?;
                Ok(format!("{}{id}", "../".repeat(name.split('/').count())).into())
            }
            _ => Err(Errno::EINVAL),
        }
    }

    fn attr(&self, ino: u64, node: &Node) -> Result<FileAttr, Errno> {
        self.attr_through(ino, node, None)
    }

    /// The attributes of `node`, as seen through open file `fh` if the kernel names one.
    fn attr_through(&self, ino: u64, node: &Node, fh: Option<FileHandle>) -> Result<FileAttr, Errno> {
        let kind = match node.kind() {
            Kind::Dir => FileType::Directory,
            Kind::Symlink => FileType::Symlink,
            Kind::File { .. } => FileType::RegularFile,
        };
        let size = self.size(node, fh)?;
        let mtime = self.mtime(node);
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: mtime,
            mtime,
            ctime: mtime,
            crtime: mtime.min(self.mounted_at),
            kind,
            perm: self.access.mode(
                node.perm(),
                kind == FileType::Directory,
                // A container's directory and the root take scratch files (see [`values`]).
                matches!(
                    node,
                    Node::Images | Node::Containers | Node::Volumes | Node::Networks | Node::Container(_) | Node::Root
                ),
            ),
            nlink: if kind == FileType::Directory { 2 } else { 1 },
            uid: if let Node::Scratch(id) = node { self.values.scratch_owner(*id) } else { 0 },
            gid: self.access.gid(),
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    /// A new open file of `ino`, and how the kernel is to serve it ([`cache::open_flags`]).
    fn open_file(&self, ino: INodeNo, flags: OpenFlags) -> Result<(u64, FopenFlags), Errno> {
        let node = self.node(ino)?;
        let Kind::File { writable, .. } = node.kind() else { return Err(Errno::EISDIR) };
        let wants_write = matches!(flags.acc_mode(), OpenAccMode::O_WRONLY | OpenAccMode::O_RDWR);
        if wants_write && !writable {
            return Err(Errno::EACCES);
        }
        let (snapshot, log_base) = match node {
            ref n if n.log_view().is_some() => (Vec::new(), self.log_extent(n)?.start),
            Node::Errors => (Vec::new(), 0),
            Node::Scratch(id) => {
                self.values.opened_scratch(id);
                (Vec::new(), 0)
            }
            _ => (render::content(&self.engine, &node)?, 0),
        };
        let hold = match &node {
            Node::ContainerFile(name, ContainerFile::Log(_)) => self.engine.hold_logs(name),
            _ => None,
        };
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        // A reader of a log's view counts in its size (see `logs`) until its release: its close waits for a
        // flush, so a stat after it no longer counts it.
        let growing = node.log_view().is_some();
        let how = cache::open_flags(wants_write || growing, wants_write && node.is_request());
        let file = OpenFile {
            node,
            snapshot: Arc::new(snapshot),
            answer: None,
            answer_pos: 0,
            exit: None,
            _hold: hold,
            log_base,
            watch: Default::default(),
        };
        lock(&self.open_files).insert(fh, file);
        Ok((fh, how))
    }

    fn read_file(&self, fh: FileHandle, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let mut files = lock(&self.open_files);
        let file = files.get_mut(&fh.0).ok_or(Errno::EBADF)?;
        if let Some(slot) = &file.exit {
            // The exit code of the run this open file started: once known, it is the answer.
            match slot.code() {
                Some(code) => {
                    file.answer = Some(format!("{code}\n").into_bytes());
                    file.answer_pos = 0;
                    file.exit = None;
                }
                None => return Ok(Vec::new()),
            }
        }
        if let Some(answer) = &file.answer {
            // The id of what this open file's write made, whatever the offset.
            let start = file.answer_pos.min(answer.len());
            let end = (start + size as usize).min(answer.len());
            file.answer_pos = end;
            return Ok(answer[start..end].to_vec());
        }
        if file.node.log_view().is_some() {
            let (node, at) = (file.node.clone(), file.log_base.saturating_add(offset));
            drop(files);
            return self.read_log(&node, at, size);
        }
        if matches!(file.node, Node::Errors) {
            let path = self.growing_file(&file.node).ok_or(Errno::ENOENT)?;
            drop(files);
            return read_at(&path, offset, size);
        }
        if let Node::Scratch(id) = file.node {
            // Read as it is now, as its size shows: another open file may have written it since.
            drop(files);
            return Ok(self.values.scratch_read(id, offset, size));
        }
        self.refreshed(file, offset);
        let snapshot = Arc::clone(&file.snapshot);
        drop(files);
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(snapshot.len());
        let end = start.saturating_add(size as usize).min(snapshot.len());
        Ok(snapshot[start..end].to_vec())
    }
}

impl ControlFs {
    /// EACCES, recorded in `errors`, for a caller who may not change the tree (see [`access`]); the caller
    /// when it may.
    fn allowed(&self, req: &FuseRequest, path: &str) -> Result<Caller, Errno> {
        let caller = Caller::of(req);
        self.access.check(&caller).map(|()| caller.clone()).inspect_err(|_| {
            let who = format!("uid {} (gid {}, groups {:?})", caller.uid, caller.gid, caller.groups);
            let why = match self.access.group {
                Some(g) => format!("{who} is neither root nor in the daemon's group (gid {g})"),
                None => format!("{who} is not root, and the daemon was started without --group"),
            };
            self.engine.reject(path, None, Error::AccessDenied(why));
        })
    }

    /// Runs a write, mkdir or rmdir on the pool. When its queue is full, `job` gets EAGAIN (recorded in
    /// `errors`) at once instead.
    fn submit(&self, path: &str, job: impl FnOnce(Result<(), Errno>) + Send + 'static) {
        let (engine, path) = (Arc::clone(&self.engine), path.to_string());
        self.pool.submit(move |slot| match slot {
            Ok(()) => job(Ok(())),
            Err(pool::Full) => {
                let why = format!("{POOL_QUEUE} requests already wait for one of {POOL_WORKERS} workers: try again");
                engine.reject(&path, None, Error::Overloaded(why));
                job(Err(Errno::EAGAIN))
            }
        });
    }
}

fn errno(e: &crate::error::Error) -> Errno {
    Errno::from_i32(e.errno())
}

/// The bytes of one write to `node`, parsed here at the boundary into the request the engine gets. A parse
/// error is recorded as any failure is (the container's `error`, `errors`, the daemon log).
fn parse_write(
    engine: &Engine,
    node: &Node,
    target: WriteTarget,
    data: &[u8],
    writer: Caller,
) -> Result<Request, Error> {
    Request::from_write_by(target, data, writer).map_err(|e| engine.reject(&node.path(), node.container(), e.into()))
}
