//! The kernel's requests on the mount, each answered by one of [`ControlFs`]'s helpers: lookups,
//! attributes, directory listings, opens, reads (a `wait`'s parked until its exit: see [`super::waits`]),
//! polls, writes, mkdir and rmdir (these three on the pool), the
//! scratch files' create, rename (onto a value file: on the pool) and unlink, a close's refusal of a value
//! still held (see [`super::values`]), and the refusals of what the tree doesn't offer. Methods only reply;
//! every reply that shows the engine's state waits for the invalidations the changes it shows call for
//! (`settle`, see [`super::cache`]).

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::SystemTime;

use fuser::{
    Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags,
    PollEvents, PollFlags, PollNotifier, RenameFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyDirectoryPlus,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyPoll, ReplyWrite, Request as FuseRequest, TimeOrNow, WriteFlags,
};

use super::cache::attr_ttl;
use super::tree::Node;
use super::{errno, lock, parse_write, ControlFs, TTL};
use crate::engine::Response;
use crate::request::{Request, WriteKind};

impl Filesystem for ControlFs {
    /// Listings carry attributes (readdirplus: `ls -l` of 1,000 containers is a few requests), and lookups
    /// and listings in one directory may run in parallel. A kernel without one of them gets the rest.
    fn init(&mut self, _req: &FuseRequest, config: &mut KernelConfig) -> std::io::Result<()> {
        for wanted in
            [InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO, InitFlags::FUSE_PARALLEL_DIROPS]
        {
            if let Err(missing) = config.add_capabilities(wanted) {
                tracing::info!(?missing, "kernel lacks a FUSE capability");
            }
        }
        Ok(())
    }

    fn lookup(&self, _req: &FuseRequest, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = self.lookup_child(parent, name).and_then(|(node, ino)| Ok((self.attr(ino, &node)?, node)));
        self.cache.settle();
        match found {
            Ok((attr, node)) => {
                reply.entry_with_ttls(&attr_ttl(&node), &self.cache.entry_ttl(&node), &attr, Generation(0))
            }
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &FuseRequest, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let found = self.node(ino).and_then(|node| Ok((self.attr_through(ino.0, &node, fh)?, node)));
        self.cache.settle();
        match found {
            Ok((attr, node)) => reply.attr(&attr_ttl(&node), &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        req: &FuseRequest,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let result = self.node(ino).and_then(|node| {
            self.set_attr(req, ino, &node, mode, (uid, gid), size, fh)?;
            self.attr(ino.0, &node)
        });
        match result {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &FuseRequest, ino: INodeNo, reply: ReplyData) {
        match self.node(ino).and_then(|node| self.link_target(&node)) {
            Ok(target) => reply.data(target.as_os_str().as_encoded_bytes()),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(&self, req: &FuseRequest, parent: INodeNo, name: &OsStr, _mode: u32, _umask: u32, reply: ReplyEntry) {
        let parent_node = match self.node(parent) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let name = name.to_string_lossy().into_owned();
        let (path, request, node) = match parent_node {
            Node::Containers => (format!("containers/{name}"), Request::create_container(&name), Node::Container(name)),
            Node::Volumes => (format!("volumes/{name}"), Request::create_volume(&name), Node::Volume(name)),
            Node::Networks => (format!("networks/{name}"), Request::create_network(&name), Node::Network(name)),
            _ => return reply.error(Errno::EPERM),
        };
        if let Err(e) = self.allowed(req, &path) {
            return reply.error(e);
        }
        let request = match request {
            Ok(r) => r,
            Err(e) => return reply.error(errno(&self.engine.reject(&path, None, e.into()))),
        };
        let (engine, cache, inodes) = (Arc::clone(&self.engine), self.cache.clone(), Arc::clone(&self.inodes));
        // A directory's attributes; its number is given once it exists, after the notices of what went
        // before it (a removal of the same name retires the old numbers).
        let attr = self.attr(0, &node);
        let ttls = (attr_ttl(&node), self.cache.entry_ttl(&node));
        self.submit(&path.clone(), move |slot| {
            let done = slot.map(|()| (engine.handle(&path, request), attr));
            cache.settle();
            match done {
                Err(e) => reply.error(e),
                Ok((Ok(_), Ok(mut attr))) => {
                    attr.ino = INodeNo(lock(&inodes).ino(&node));
                    reply.entry_with_ttls(&ttls.0, &ttls.1, &attr, Generation(0))
                }
                Ok((Err(e), _)) => reply.error(errno(&e)),
                Ok((_, Err(e))) => reply.error(e),
            }
        });
    }

    fn rmdir(&self, req: &FuseRequest, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.to_string_lossy().into_owned();
        let (path, request) = match self.node(parent) {
            Ok(Node::Containers) => (format!("containers/{name}"), Request::RemoveContainer { name }),
            Ok(Node::Images) => (format!("images/{name}"), Request::RemoveImage { id: name }),
            Ok(Node::Volumes) => (format!("volumes/{name}"), Request::RemoveVolume { name }),
            Ok(Node::Networks) => (format!("networks/{name}"), Request::RemoveNetwork { name }),
            Ok(Node::Builds) => match Node::Builds.child(&name) {
                Some(Node::BuildDir(n)) => (format!("builds/{n}"), Request::RemoveBuild { n }),
                _ => return reply.error(Errno::ENOENT),
            },
            Ok(_) => return reply.error(Errno::EPERM),
            Err(e) => return reply.error(e),
        };
        if let Err(e) = self.allowed(req, &path) {
            return reply.error(e);
        }
        // A removed container's scratch files go with it: none shows in a new one of its name.
        let dir = match &request {
            Request::RemoveContainer { name } => Some(Node::Container(name.clone())),
            _ => None,
        };
        let (engine, cache, values) = (Arc::clone(&self.engine), self.cache.clone(), Arc::clone(&self.values));
        self.submit(&path.clone(), move |slot| {
            let done = slot.map(|()| engine.handle(&path, request));
            cache.settle();
            match done {
                Err(e) => reply.error(e),
                Ok(Ok(_)) => {
                    if let Some(dir) = &dir {
                        values.forget_dir(dir);
                    }
                    reply.ok()
                }
                Ok(Err(e)) => reply.error(errno(&e)),
            }
        });
    }

    /// Only a scratch file's name goes; the tree's files are EPERM.
    fn unlink(&self, req: &FuseRequest, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.unlink_scratch(req, parent, &name.to_string_lossy()) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    /// The tree's files are made by the daemon; `open(O_CREAT)` in a container's directory or the root makes
    /// a scratch file (see [`super::values`]); elsewhere (`echo x > containers/newfile`) it is EPERM.
    fn create(
        &self,
        req: &FuseRequest,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        flags: i32,
        reply: fuser::ReplyCreate,
    ) {
        let Some(name) = name.to_str() else { return reply.error(Errno::EPERM) };
        match self.create_scratch(req, parent, name, flags) {
            Ok((attr, fh, flags)) => reply.created(&TTL, &attr, Generation(0), FileHandle(fh), flags),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        _req: &FuseRequest,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EPERM);
    }

    /// Only a scratch file moves: onto a value file, as one whole write of its content (rename(2) returns
    /// that write's errno), or to another name where scratch files may be.
    fn rename(
        &self,
        req: &FuseRequest,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (name, newname) = (name.to_string_lossy(), newname.to_string_lossy());
        match self.rename_scratch(req, parent, &name, newparent, &newname, flags) {
            Ok(None) => reply.ok(),
            Ok(Some((path, job))) => self.submit(&path, move |slot| match slot.and_then(|()| job()) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(e),
            }),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &FuseRequest, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let opened = self.open_file(ino, flags);
        self.cache.settle();
        match opened {
            Ok((fh, how)) => reply.opened(FileHandle(fh), how),
            Err(e) => reply.error(e),
        }
    }

    /// A read of `wait` may be parked until its process ends ([`super::waits`]); one of a log's view or
    /// `errors` is done on a worker; the others are served from the open file's snapshot.
    fn read(
        &self,
        req: &FuseRequest,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let nonblocking = flags.0 & libc::O_NONBLOCK != 0;
        let Some(reply) = self.read_wait(fh, offset, size, nonblocking, req.pid(), reply) else { return };
        let answer = |read: Result<Vec<u8>, Errno>, reply: ReplyData| match read {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        };
        match self.disk_read(fh, offset) {
            // On a worker, so a cold read of the disk holds up no other request (or here, if all are busy).
            Some(Ok(read)) => {
                let files = Arc::clone(&self.open_files);
                self.disk.submit(move |_| {
                    let read = read.run(size);
                    if let Ok(data) = &read {
                        ControlFs::read_up_to(&files, fh.0, offset.saturating_add(data.len() as u64));
                    }
                    answer(read, reply)
                })
            }
            Some(Err(e)) => reply.error(e),
            None => answer(self.read_file(fh, offset, size), reply),
        }
    }

    fn write(
        &self,
        req: &FuseRequest,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let node = match self.node(ino) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        if let Node::Scratch(id) = node {
            return match self.scratch_write(req, id, offset, data) {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(e),
            };
        }
        let Some(target) = node.write_target() else { return reply.error(Errno::EACCES) };
        let path = node.path();
        // The writer, checked; an import reads its directory with this identity.
        let writer = match self.allowed(req, &path) {
            Ok(caller) => caller,
            Err(e) => return reply.error(e),
        };
        if target.kind() == WriteKind::Value && data.len() <= crate::request::MAX_WRITE {
            // The value is all this open file has written (see [`super::values`]).
            let (len, append) = (data.len(), flags.0 & libc::O_APPEND != 0);
            let job = self.value_write(fh, node, target, data, append, writer);
            let cache = self.cache.clone();
            return self.submit(&path, move |slot| {
                let done = slot.and_then(|()| job());
                cache.settle();
                match done {
                    Ok(()) => reply.written(u32::try_from(len).unwrap_or(u32::MAX)),
                    Err(e) => reply.error(e),
                }
            });
        }
        if data.len() > crate::request::MAX_WRITE {
            // Refused as it is (EFBIG) before its bytes are copied to wait for a worker.
            let refused = parse_write(&self.engine, &node, target, data, writer).err();
            return reply.error(refused.map_or(Errno::EFBIG, |e| errno(&e)));
        }
        let (engine, files, data) = (Arc::clone(&self.engine), Arc::clone(&self.open_files), data.to_vec());
        let cache = self.cache.clone();
        self.submit(&path.clone(), move |slot| {
            let parsed = slot.map(|()| parse_write(&engine, &node, target, &data, writer));
            let handled = parsed.map(|request| request.and_then(|request| engine.handle(&path, request)));
            // What the write changed (a failed `run` removes what it made) is dropped before it returns.
            cache.settle();
            match handled {
                Err(e) => reply.error(e),
                Ok(Ok(response)) => {
                    if let Some(file) = lock(&files).get_mut(&fh.0) {
                        match response {
                            Response::Created(id) => {
                                file.answer = Some(format!("{id}\n").into_bytes());
                                file.answer_pos = 0;
                            }
                            Response::Started(slot) => {
                                file.answer = None;
                                file.exit = Some(slot);
                            }
                            Response::Done => {}
                        }
                    }
                    reply.written(u32::try_from(data.len()).unwrap_or(u32::MAX));
                }
                Ok(Err(e)) => reply.error(errno(&e)),
            }
        });
    }

    /// A close (only opens for writing get one): a value file's value still held (a last line that never
    /// parsed) is refused here, and close(2) returns its errno. It returns once what the writes changed is
    /// dropped from the kernel's caches.
    fn flush(&self, _req: &FuseRequest, ino: INodeNo, fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        match self.value_flush(fh) {
            Ok(None) => {
                self.cache.settle();
                reply.ok()
            }
            Ok(Some(job)) => {
                let path = self.node(ino).map(|n| n.path()).unwrap_or_default();
                let cache = self.cache.clone();
                self.submit(&path, move |slot| {
                    let done = slot.and_then(|()| job());
                    cache.settle();
                    match done {
                        Ok(()) => reply.ok(),
                        Err(e) => reply.error(e),
                    }
                })
            }
            Err(e) => reply.error(e),
        }
    }

    fn fsync(&self, _req: &FuseRequest, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        reply.ok();
    }

    /// `poll()`, `select()`, epoll: ready when a read would give something new ([`super::waits`]).
    fn poll(
        &self,
        _req: &FuseRequest,
        _ino: INodeNo,
        fh: FileHandle,
        notifier: PollNotifier,
        _events: PollEvents,
        flags: PollFlags,
        reply: ReplyPoll,
    ) {
        match self.poll_file(fh, notifier, flags) {
            Ok(events) => reply.poll(events),
            Err(e) => reply.error(e),
        }
    }

    fn release(
        &self,
        _req: &FuseRequest,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // Dropped outside the lock: a container's `logs` hold may remove it (see `engine::LogHold`).
        let file = lock(&self.open_files).remove(&fh.0);
        self.released(fh, file.as_ref().map(|f| f.node.clone()));
        drop(file);
        reply.ok();
    }

    fn opendir(&self, _req: &FuseRequest, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let opened = self.open_dir(ino);
        self.cache.settle();
        match opened {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn releasedir(&self, _req: &FuseRequest, _ino: INodeNo, fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        self.release_dir(fh);
        reply.ok();
    }

    fn readdir(&self, _req: &FuseRequest, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let listing = self.listing(ino, fh, offset);
        self.cache.settle();
        match listing {
            Ok(entries) => {
                for (i, e) in entries.iter().enumerate().skip(offset as usize) {
                    if reply.add(INodeNo(e.ino), (i + 1) as u64, e.kind, &e.name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn readdirplus(
        &self,
        _req: &FuseRequest,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let listing = match self.listing(ino, fh, offset) {
            Ok(entries) => entries,
            Err(e) => {
                self.cache.settle();
                return reply.error(e);
            }
        };
        for (i, e) in listing.iter().enumerate().skip(offset as usize) {
            // A name gone since the listing was taken is left out.
            let Some((attr, ttl)) = self.entry_attr(e) else { continue };
            if reply.add(INodeNo(e.ino), (i + 1) as u64, &e.name, &ttl, &attr, Generation(0)) {
                break;
            }
        }
        // Nothing is sent before this: the attributes taken are settled as a whole.
        self.cache.settle();
        reply.ok();
    }
}
