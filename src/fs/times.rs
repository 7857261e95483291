//! The times `stat` shows, so `ls -lt`, `find -newer` and a file manager's Modified column mean something:
//! a container's directory, `status` and `wait` the last change of its status, its `created` its creation;
//! a view of a log (`logs`, `stdout`, ...), `events` and `errors` their last write; an exec's directory,
//! `status` and `wait` its exit, else its start; an image's directory and files its creation. Everything
//! else shows the instant the tree was mounted. The times that change with the engine's notices are in
//! attributes the kernel keeps only until the notice drops them ([`super::cache`]); the others are never
//! kept.

use std::time::SystemTime;

use super::render::{ContainerField, ExecField};
use super::tree::{ContainerFile, ExecFile, Node};
use super::ControlFs;

impl ControlFs {
    /// The mtime (and ctime) of `node`.
    pub(super) fn mtime(&self, node: &Node) -> SystemTime {
        let status =
            |f: &ContainerFile| matches!(f, ContainerFile::Field(ContainerField::Status) | ContainerFile::Wait);
        let exec_status = |f: &ExecFile| matches!(f, ExecFile::Field(ExecField::Status) | ExecFile::Wait);
        let time = match node {
            Node::Container(name) => self.engine.container_changed_at(name),
            Node::ContainerFile(name, f) if status(f) => self.engine.container_changed_at(name),
            Node::ContainerFile(name, ContainerFile::Field(ContainerField::Created)) => {
                self.engine.container_created_at(name)
            }
            Node::Exec(name, n) => self.engine.exec_changed_at(name, *n),
            Node::ExecFile(name, n, f) if exec_status(f) => self.engine.exec_changed_at(name, *n),
            Node::Image(id) | Node::ImageFile(id, _) => self.engine.image_created_at(id),
            n if n.log_view().is_some() => self.growing_file(n).and_then(|dir| crate::logs::modified(&dir)),
            Node::Errors => self.growing_file(node).and_then(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok()),
            _ => None,
        };
        time.unwrap_or(self.mounted_at)
    }
}
