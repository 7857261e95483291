//! The kernel's requests on the mount, each answered by one of [`ControlFs`]'s helpers: lookups,
//! attributes, directory listings, opens, reads, writes, mkdir and rmdir (these three on the pool), and
//! the refusals of what the tree doesn't offer. Methods only reply.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::SystemTime;

use fuser::{
    Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags, RenameFlags, ReplyAttr,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, Request as FuseRequest, TimeOrNow,
    WriteFlags,
};

use super::tree::{Kind, Node};
use super::{errno, lock, parse_write, ControlFs, TTL};
use crate::engine::Response;
use crate::request::Request;

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
        _req: &FuseRequest,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let result = self.node(ino).and_then(|node| {
            if mode.is_some() || uid.is_some() || gid.is_some() {
                return Err(Errno::EPERM);
            }
            // O_TRUNC of a control file (`echo x > file`) is accepted: each write replaces the value anyway.
            if size.is_some() && !matches!(node.kind(), Kind::File { writable: true, .. }) {
                return Err(Errno::EACCES);
            }
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
        let engine = Arc::clone(&self.engine);
        self.submit(&path.clone(), move |slot| match slot.map(|()| engine.handle(&path, request)) {
            Err(e) => reply.error(e),
            Ok(Ok(_)) => reply.ok(),
            Ok(Err(e)) => reply.error(errno(&e)),
        });
    }

    fn unlink(&self, _req: &FuseRequest, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EPERM);
    }

    /// Files are made by the daemon, never by `open(O_CREAT)`: `echo x > containers/newfile` is EPERM.
    fn create(
        &self,
        _req: &FuseRequest,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: fuser::ReplyCreate,
    ) {
        reply.error(Errno::EPERM);
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

    fn rename(
        &self,
        _req: &FuseRequest,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EPERM);
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
        _offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let node = match self.node(ino) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let Some(target) = node.write_target() else { return reply.error(Errno::EACCES) };
        let path = node.path();
        // The writer, checked; an import reads its directory with this identity.
        let writer = match self.allowed(req, &path) {
            Ok(caller) => caller,
            Err(e) => return reply.error(e),
        };
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

    fn flush(&self, _req: &FuseRequest, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        reply.ok();
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
        lock(&self.open_files).remove(&fh.0);
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
