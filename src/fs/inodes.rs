//! Inode numbers: one per node of one object's life, handed out the first time the kernel is told of the
//! node. When an image, container or volume goes away its numbers are retired (the kernel's requests for
//! them are ENOENT from then on), so a name made again gets new ones: a directory of the old object that a
//! process still holds open (a shell's working directory) is never taken for the new one. Beside the
//! numbers, which of them belong to which object, so a change notice names the inodes whose cached
//! attributes it makes stale (see [`super::cache`]).

use std::collections::HashMap;

use super::cache::attrs_cached;
use super::render::ContainerField;
use super::tree::{ContainerFile, Node};
use crate::engine::Changed;

/// An object of the engine's that nodes belong to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Object {
    /// A container: its directory, files, `execs/` and every exec in it.
    Container(String),
    Exec(String, u32),
    Image(String),
    Volume(String),
    Network(String),
    Build(u32),
}

impl Object {
    /// The object `what` is about; none for the `events` file (its attributes are never cached).
    fn of(what: &Changed) -> Option<Object> {
        Some(match what {
            Changed::Container(c) => Object::Container(c.clone()),
            Changed::Exec(c, n) => Object::Exec(c.clone(), *n),
            Changed::Image(id) => Object::Image(id.clone()),
            Changed::Volume(v) => Object::Volume(v.clone()),
            Changed::Network(n) => Object::Network(n.clone()),
            Changed::Build(n) => Object::Build(*n),
            Changed::Events => return None,
        })
    }

    /// The objects `node` belongs to (an exec's nodes belong to its container too).
    fn owning(node: &Node) -> [Option<Object>; 2] {
        match node {
            Node::Container(c) | Node::ContainerFile(c, _) | Node::Execs(c) => {
                [Some(Object::Container(c.clone())), None]
            }
            Node::Exec(c, n) | Node::ExecFile(c, n, _) => {
                [Some(Object::Container(c.clone())), Some(Object::Exec(c.clone(), *n))]
            }
            Node::Image(id) | Node::ImageFile(id, _) => [Some(Object::Image(id.clone())), None],
            Node::Volume(v) | Node::VolumeData(v) => [Some(Object::Volume(v.clone())), None],
            Node::Network(n) | Node::NetworkFile(n, _) => [Some(Object::Network(n.clone())), None],
            Node::BuildDir(n) | Node::BuildFile(n, _) => [Some(Object::Build(*n)), None],
            _ => [None, None],
        }
    }
}

pub(super) struct Inodes {
    by_node: HashMap<Node, u64>,
    nodes: HashMap<u64, Node>,
    next: u64,
    objects: HashMap<Object, Vec<u64>>,
}

impl Default for Inodes {
    fn default() -> Inodes {
        Inodes { by_node: HashMap::new(), nodes: HashMap::new(), next: 1, objects: HashMap::new() }
    }
}

/// A container's files that show what it takes from its image: an image replaced in place changes them.
fn from_image(node: &Node) -> bool {
    matches!(node, Node::ContainerFile(_, ContainerFile::Field(ContainerField::Cmd | ContainerField::Env)))
}

impl Inodes {
    pub(super) fn ino(&mut self, node: &Node) -> u64 {
        if let Some(ino) = self.by_node.get(node) {
            return *ino;
        }
        let ino = self.next;
        self.next += 1;
        self.nodes.insert(ino, node.clone());
        self.by_node.insert(node.clone(), ino);
        for object in Object::owning(node).into_iter().flatten() {
            self.objects.entry(object).or_default().push(ino);
        }
        ino
    }

    /// The node behind `ino`; `None` for a number never given or retired.
    pub(super) fn node(&self, ino: u64) -> Option<Node> {
        self.nodes.get(&ino).cloned()
    }

    /// The number of `node` if the kernel was told of it in this object's life.
    #[cfg(test)]
    pub(super) fn known(&self, node: &Node) -> Option<u64> {
        self.by_node.get(node).copied()
    }

    /// The inodes whose cached attributes `what` may have made stale: the object's, and for an image the
    /// files of containers that show what they take from images.
    pub(super) fn stale_after(&self, what: &Changed) -> Vec<u64> {
        let cached = |ino: &&u64| self.nodes.get(ino).is_some_and(attrs_cached);
        let object = Object::of(what);
        let mut stale: Vec<u64> =
            object.and_then(|o| self.objects.get(&o)).into_iter().flatten().filter(cached).copied().collect();
        if let Changed::Image(_) = what {
            let containers = self.objects.iter().filter(|(o, _)| matches!(o, Object::Container(_)));
            let derived =
                containers.flat_map(|(_, inos)| inos).filter(|ino| self.nodes.get(ino).is_some_and(from_image));
            stale.extend(derived);
        }
        stale
    }

    /// Forgets the numbers of `what`, which is gone (for a container, its execs' too).
    pub(super) fn retire(&mut self, what: &Changed) {
        let Some(object) = Object::of(what) else { return };
        for ino in self.objects.remove(&object).unwrap_or_default() {
            if let Some(node) = self.nodes.remove(&ino) {
                self.by_node.remove(&node);
            }
        }
        if let Object::Container(c) = object {
            self.objects.retain(|o, _| !matches!(o, Object::Exec(x, _) if *x == c));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::render::ExecField;
    use crate::fs::tree::ExecFile;

    fn file(c: &str, f: ContainerField) -> Node {
        Node::ContainerFile(c.into(), ContainerFile::Field(f))
    }

    #[test]
    fn notices_name_the_cached_inodes_of_their_object() {
        let mut inodes = Inodes::default();
        assert_eq!(inodes.ino(&Node::Root), 1);
        let (status, memory, cmd) = (
            file("web", ContainerField::Status),
            file("web", ContainerField::MemoryCurrent),
            file("web", ContainerField::Cmd),
        );
        let exec_status = Node::ExecFile("web".into(), 1, ExecFile::Field(ExecField::Status));
        let dir = inodes.ino(&Node::Container("web".into()));
        let (s, m, c, e) = (inodes.ino(&status), inodes.ino(&memory), inodes.ino(&cmd), inodes.ino(&exec_status));
        let other = inodes.ino(&Node::Container("db".into()));
        let image = inodes.ino(&Node::Image("img_1".into()));
        assert_eq!(inodes.ino(&status), s, "a node keeps its number");
        assert_eq!(inodes.node(s), Some(status.clone()));
        assert_eq!(inodes.node(0), None);
        assert_eq!(inodes.known(&status), Some(s));

        let stale = inodes.stale_after(&Changed::Container("web".into()));
        assert_eq!(stale, vec![dir, s, c, e], "live values have nothing cached to drop");
        assert!(!stale.contains(&m) && !stale.contains(&other));
        assert_eq!(inodes.stale_after(&Changed::Exec("web".into(), 1)), vec![e]);
        assert_eq!(inodes.stale_after(&Changed::Image("img_1".into())), vec![image, c]);
        assert_eq!(inodes.stale_after(&Changed::Volume("v".into())), Vec::<u64>::new());
    }

    #[test]
    fn a_name_made_again_gets_new_numbers_and_the_old_ones_lead_nowhere() {
        let mut inodes = Inodes::default();
        let status = file("web", ContainerField::Status);
        let exec = Node::Exec("web".into(), 1);
        let (dir, s, x) = (inodes.ino(&Node::Container("web".into())), inodes.ino(&status), inodes.ino(&exec));
        let kept = inodes.ino(&file("db", ContainerField::Status));
        inodes.retire(&Changed::Container("web".into()));
        for old in [dir, s, x] {
            assert_eq!(inodes.node(old), None);
        }
        assert_eq!(inodes.known(&status), None);
        assert!(inodes.stale_after(&Changed::Exec("web".into(), 1)).is_empty(), "its execs went with it");
        let again = inodes.ino(&status);
        assert!(![dir, s, x, kept].contains(&again));
        assert_eq!(inodes.node(kept), Some(file("db", ContainerField::Status)), "other containers keep theirs");
    }
}
