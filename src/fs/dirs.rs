//! Directory listings. A listing is taken once per open directory, when it is read from the start (and
//! again on `rewinddir`), and later reads of the same open directory continue from it, so a listing of
//! 1,000 containers asks the engine for names once rather than once per reply buffer. With readdirplus
//! each entry carries its attributes too, so `ls -l` asks nothing more of the daemon per entry.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use fuser::{Errno, FileAttr, FileHandle, FileType, INodeNo};

use super::tree::{Kind, Node};
use super::{lock, ControlFs};

/// One name of a listing.
pub(super) struct DirEntry {
    pub ino: u64,
    pub kind: FileType,
    pub name: String,
    pub node: Node,
}

/// The listings of open directories, by file handle.
pub(super) type Listings = std::sync::Mutex<HashMap<u64, Arc<Vec<DirEntry>>>>;

fn file_type(node: &Node) -> FileType {
    match node.kind() {
        Kind::Dir => FileType::Directory,
        Kind::Symlink => FileType::Symlink,
        Kind::File { .. } => FileType::RegularFile,
    }
}

impl ControlFs {
    /// An open directory: ENOENT if it is gone, ENOTDIR for a file.
    pub(super) fn open_dir(&self, ino: INodeNo) -> Result<u64, Errno> {
        if self.node(ino)?.kind() != Kind::Dir {
            return Err(Errno::ENOTDIR);
        }
        Ok(self.next_fh.fetch_add(1, Ordering::Relaxed))
    }

    pub(super) fn release_dir(&self, fh: FileHandle) {
        lock(&self.listings).remove(&fh.0);
    }

    /// The listing of open directory `fh` for a read at `offset`: taken now when the read starts the
    /// directory over, else the one taken then.
    pub(super) fn listing(&self, ino: INodeNo, fh: FileHandle, offset: u64) -> Result<Arc<Vec<DirEntry>>, Errno> {
        if offset > 0 {
            if let Some(listing) = lock(&self.listings).get(&fh.0) {
                return Ok(Arc::clone(listing));
            }
        }
        let listing = Arc::new(self.entries(ino)?);
        if fh.0 != 0 {
            lock(&self.listings).insert(fh.0, Arc::clone(&listing));
        }
        Ok(listing)
    }

    /// The attributes of `entry` for a readdirplus reply, and how long the kernel may keep them (and the
    /// name: one time for both). `None` for a node gone since the listing was taken.
    pub(super) fn entry_attr(&self, entry: &DirEntry) -> Option<(FileAttr, std::time::Duration)> {
        let attr = self.attr(entry.ino, &entry.node).ok()?;
        Some((attr, self.cache.entry_attr_ttl(&entry.node)))
    }

    /// `.`, `..` and the names in directory `ino`.
    fn entries(&self, ino: INodeNo) -> Result<Vec<DirEntry>, Errno> {
        let node = self.node(ino)?;
        if node.kind() != Kind::Dir {
            return Err(Errno::ENOTDIR);
        }
        // Fixed names exist with their directory, but for a container's `rootfs` (only once it has an image).
        let mut names: Vec<(String, Node)> = node
            .fixed_children()
            .into_iter()
            .filter(|(_, n)| self.exists(n))
            .map(|(n, node)| (n.to_string(), node))
            .collect();
        // The engine's own names exist as it lists them.
        match &node {
            Node::Images => names.extend(self.engine.image_ids().into_iter().map(|id| (id.clone(), Node::Image(id)))),
            Node::Containers => {
                names.extend(self.engine.container_names().into_iter().map(|n| (n.clone(), Node::Container(n))))
            }
            Node::Volumes => names.extend(self.engine.volume_names().into_iter().map(|n| (n.clone(), Node::Volume(n)))),
            Node::Networks => {
                names.extend(self.engine.network_names().into_iter().map(|n| (n.clone(), Node::Network(n))))
            }
            Node::Builds => {
                names.extend(self.engine.build_numbers().into_iter().map(|n| (n.to_string(), Node::BuildDir(n))))
            }
            Node::Execs(c) => {
                names.extend(self.engine.exec_ids(c).into_iter().map(|n| (n.to_string(), Node::Exec(c.clone(), n))))
            }
            Node::ByName(dir) => names.extend(
                self.engine
                    .name_entries(dir)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|(entry, _)| Some((entry.clone(), node.child(&entry)?))),
            ),
            _ => {}
        }
        let mut inodes = lock(&self.inodes);
        let mut out = Vec::with_capacity(names.len() + 2);
        out.push(DirEntry { ino: ino.0, kind: FileType::Directory, name: ".".into(), node: node.clone() });
        out.push(DirEntry { ino: 1, kind: FileType::Directory, name: "..".into(), node: Node::Root });
        for (name, child) in names {
            out.push(DirEntry { ino: inodes.ino(&child), kind: file_type(&child), name, node: child });
        }
        Ok(out)
    }
}
