//! The kernel's requests on the mount, each answered by one of [`ControlFs`]'s helpers: lookups,
//! attributes, directory listings, opens, reads, writes, mkdir and rmdir (these three on the pool), the
//! scratch files' create, rename (onto a value file: on the pool) and unlink, a close's refusal of a value
//! still held (see [`super::values`]), and the refusals of what the tree doesn't offer. Methods only reply.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::SystemTime;

use fuser::{
    Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags, RenameFlags, ReplyAttr,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, Request as FuseRequest, TimeOrNow,
    WriteFlags,
};

use super::tree::Node;
use super::{errno, lock, parse_write, ControlFs, TTL};
use crate::engine::Response;
use crate::request::{Request, WriteKind};

impl Filesystem for ControlFs {
    fn lookup(&self, _req: &FuseRequest, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.lookup_child(parent, name).and_then(|(node, ino)| self.attr(ino, &node)) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &FuseRequest, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.node(ino).and_then(|node| self.attr_through(ino.0, &node, fh)) {
            Ok(attr) => reply.attr(&TTL, &attr),
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
            _ => return reply.error(Errno::EPERM),
        };
        if let Err(e) = self.allowed(req, &path) {
            return reply.error(e);
        }
        let request = match request {
            Ok(r) => r,
            Err(e) => return reply.error(errno(&self.engine.reject(&path, None, e.into()))),
        };
        let engine = Arc::clone(&self.engine);
        let ino = lock(&self.inodes).ino(&node);
        let attr = self.attr(ino, &node);
        self.submit(&path.clone(), move |slot| match slot.map(|()| (engine.handle(&path, request), attr)) {
            Err(e) => reply.error(e),
            Ok((Ok(_), Ok(attr))) => reply.entry(&TTL, &attr, Generation(0)),
            Ok((Err(e), _)) => reply.error(errno(&e)),
            Ok((_, Err(e))) => reply.error(e),
        });
    }

    fn rmdir(&self, req: &FuseRequest, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.to_string_lossy().into_owned();
        let (path, request) = match self.node(parent) {
            Ok(Node::Containers) => (format!("containers/{name}"), Request::RemoveContainer { name }),
            Ok(Node::Images) => (format!("images/{name}"), Request::RemoveImage { id: name }),
            Ok(Node::Volumes) => (format!("volumes/{name}"), Request::RemoveVolume { name }),
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
        let (engine, values) = (Arc::clone(&self.engine), Arc::clone(&self.values));
        self.submit(&path.clone(), move |slot| match slot.map(|()| engine.handle(&path, request)) {
            Err(e) => reply.error(e),
            Ok(Ok(_)) => {
                if let Some(dir) = &dir {
                    values.forget_dir(dir);
                }
                reply.ok()
            }
            Ok(Err(e)) => reply.error(errno(&e)),
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
            Ok((attr, fh)) => reply.created(&TTL, &attr, Generation(0), FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO),
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
        match self.open_file(ino, flags) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &FuseRequest,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.read_file(fh, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
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
            return self.submit(&path, move |slot| match slot.and_then(|()| job()) {
                Ok(()) => reply.written(u32::try_from(len).unwrap_or(u32::MAX)),
                Err(e) => reply.error(e),
            });
        }
        if data.len() > crate::request::MAX_WRITE {
            // Refused as it is (EFBIG) before its bytes are copied to wait for a worker.
            let refused = parse_write(&self.engine, &node, target, data, writer).err();
            return reply.error(refused.map_or(Errno::EFBIG, |e| errno(&e)));
        }
        let (engine, files, data) = (Arc::clone(&self.engine), Arc::clone(&self.open_files), data.to_vec());
        self.submit(&path.clone(), move |slot| {
            let parsed = slot.map(|()| parse_write(&engine, &node, target, &data, writer));
            match parsed.map(|request| request.and_then(|request| engine.handle(&path, request))) {
                Err(e) => reply.error(e),
                Ok(Ok(response)) => {
                    if let (Response::Created(id), Some(file)) = (response, lock(&files).get_mut(&fh.0)) {
                        file.answer = Some(format!("{id}\n").into_bytes());
                        file.answer_pos = 0;
                    }
                    reply.written(u32::try_from(data.len()).unwrap_or(u32::MAX));
                }
                Ok(Err(e)) => reply.error(errno(&e)),
            }
        });
    }

    /// A close: a value file's value still held (a last line that never parsed) is refused here, and
    /// close(2) returns its errno.
    fn flush(&self, _req: &FuseRequest, ino: INodeNo, fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        match self.value_flush(fh) {
            Ok(None) => reply.ok(),
            Ok(Some(job)) => {
                let path = self.node(ino).map(|n| n.path()).unwrap_or_default();
                self.submit(&path, move |slot| match slot.and_then(|()| job()) {
                    Ok(()) => reply.ok(),
                    Err(e) => reply.error(e),
                })
            }
            Err(e) => reply.error(e),
        }
    }

    fn fsync(&self, _req: &FuseRequest, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        reply.ok();
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
        let node = lock(&self.open_files).remove(&fh.0).map(|f| f.node);
        self.released(fh, node);
        reply.ok();
    }

    fn readdir(&self, _req: &FuseRequest, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        match self.entries(ino) {
            Ok(entries) => {
                for (i, (child, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
                    if reply.add(INodeNo(child), (i + 1) as u64, kind, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }
}
