//! What the kernel may cache of the tree, and how it learns that something it cached went stale.
//!
//! The kernel keeps names (entries) and attributes (size, mode) for [`CACHE_TTL`], so `cat` and `ls -l`
//! walk paths and `stat` without asking the daemon. Only what changes through the engine is cached that
//! way: the engine names each object it changes ([`Changed`], through [`Engine::on_change`]), and the
//! change is turned into invalidations here. Values that move without the engine (a running container's
//! cgroup counters, `events`, the limits as the kernel has them, `logs`, `errors`, `pulls`) keep their
//! attributes uncached ([`attrs_cached`]). File content is never cached by the kernel: every open takes the
//! value of the moment ([`open_flags`]).
//!
//! How "a read after a change sees the change" holds without a deadlock:
//!
//! - The engine's listener only counts the notice and queues it (it may be called with the engine's state
//!   lock held, so it neither blocks nor calls back).
//! - One thread of ours (`attrs`) drops the attributes of every inode the notice makes stale
//!   (`FUSE_NOTIFY_INVAL_INODE` without a page range), and retires the inode numbers of an object that is
//!   gone (see [`super::inodes`]). That takes no lock the kernel holds across a request, so it never waits
//!   for one (it waits only for the engine's state lock, to tell a removal from a change, and our inode
//!   table).
//! - Every reply that shows the engine's state (lookup, getattr, open, readdir, mkdir, rmdir; flush for
//!   writes) is sent only once every notice counted so far has been through `attrs` ([`KernelCache::settle`]).
//!   So nothing can learn of a change, from the daemon or from the writer's own return, while the kernel still
//!   holds attributes from before it; and a reply the kernel asked for before an invalidation is not cached
//!   by it (its `attr_version`).
//! - The names of the objects themselves (`containers/NAME`, `images/ID`, `volumes/NAME`, `execs/N`) are
//!   cached too where the kernel can be told, without taking any lock, that every name it keeps must be
//!   looked up again: `FUSE_NOTIFY_INC_EPOCH` (Linux 6.16), probed at mount. `attrs` sends it whenever an
//!   object is gone (removed by `rmdir`, or by the engine on its own: a failed `run`, the last name's
//!   `rmi`), before the notice counts as settled, so no reply after the removal lets a stale name be used:
//!   the kernel samples the epoch before it sends a lookup, so even a lookup answered just before the removal
//!   leaves a name that is looked up again. A listing's (readdirplus) names of objects are never kept: the
//!   kernel takes their epoch when it parses the reply, too late. Where the kernel lacks it, these names are not cached: the kernel
//!   asks for each at every path walk. Dropping each stale name with `FUSE_NOTIFY_INVAL_ENTRY` instead
//!   would need the parent directory's lock, which an rmdir in it holds until it is answered: a daemon
//!   killed then could never exit, its thread stuck in the kernel, and the mount would hang every process
//!   that touched it. The names under `images/by-name/` (a tag or untag moves them) are never cached. The
//!   fixed names of an object's files are: they go with their directory.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use fuser::{FopenFlags, INodeNo, Notifier};
use tracing::{debug, warn};

use super::inodes::Inodes;
use super::lock;
use super::render::ContainerField;
use super::tree::{ContainerFile, ExecFile, Node};
use crate::engine::{Changed, Engine};

/// How long the kernel may keep a name or the attributes of a node that change only through the engine.
/// Invalidations keep them right; the bound limits what a bug in them could cost, and how long the mount of
/// a daemon that died still answers `stat` from the cache (a listing or an open is ENOTCONN at once). A
/// path walked again after it costs one lookup per name.
pub(super) const CACHE_TTL: Duration = Duration::from_secs(10);

/// The longest a reply waits for invalidations before it is sent anyway (the thread that makes them is
/// gone, which is a bug, logged).
const SETTLE_LIMIT: Duration = Duration::from_secs(2);

/// Whether the attributes of `node` change only with a notice from the engine, so the kernel may keep
/// them. Not for values read live from the kernel or from disk, nor for `ip`, which a start shows before its
/// notice, nor for a container's `inspect.json`, which shows its `ip` (and its `volumes-from` container's
/// volumes, which change with that container's notices), nor for scratch files, which writes change in the
/// adapter's memory.
pub(super) fn attrs_cached(node: &Node) -> bool {
    !matches!(
        node,
        Node::Errors
            | Node::Events
            | Node::Pulls
            | Node::Scratch(_)
            | Node::ByName(_)
            | Node::NameLink(_)
            | Node::ContainerFile(_, ContainerFile::Log(_))
            | Node::ExecFile(_, _, ExecFile::Log(_))
            | Node::BuildFile(..)
            | Node::NetworkFile(..)
            | Node::ContainerFile(
                _,
                ContainerFile::Field(
                    ContainerField::MemoryCurrent
                        | ContainerField::MemoryPeak
                        | ContainerField::CpuUsage
                        | ContainerField::PidsCurrent
                        | ContainerField::Events
                        | ContainerField::Stat(_)
                        | ContainerField::Limit(_)
                        | ContainerField::Ip
                        | ContainerField::Networks
                        | ContainerField::Inspect
                )
            )
    )
}

/// How long the kernel may keep the attributes of `node`.
pub(super) fn attr_ttl(node: &Node) -> Duration {
    if attrs_cached(node) {
        CACHE_TTL
    } else {
        Duration::ZERO
    }
}

/// How long the kernel may keep the name of `node`: an object's own name only if `names_cached` (the
/// kernel can be told to look every name up again: see the module's comment), never the names under
/// `images/by-name/` (a tag or untag moves them); the fixed names of an object's files exist while it does.
pub(super) fn entry_ttl(node: &Node, names_cached: bool) -> Duration {
    match node {
        Node::Container(_)
        | Node::Image(_)
        | Node::Volume(_)
        | Node::Network(_)
        | Node::Exec(..)
        | Node::BuildDir(_)
            if !names_cached =>
        {
            Duration::ZERO
        }
        Node::ByName(_) | Node::NameLink(_) => Duration::ZERO,
        _ => CACHE_TTL,
    }
}

/// `FUSE_NOTIFY_INC_EPOCH` of the kernel's FUSE protocol (7.44, Linux 6.16): every name the kernel keeps
/// from before it is looked up again at its next use. It takes no lock.
const FUSE_NOTIFY_INC_EPOCH: i32 = 8;

/// Sends `FUSE_NOTIFY_INC_EPOCH` on the session's device: a bare `fuse_out_header` whose `unique` is 0 (a
/// notification) and whose `error` is the notification's code. EINVAL from a kernel without it.
fn inc_epoch(device: BorrowedFd<'_>) -> nix::Result<()> {
    let mut header = [0u8; 16];
    header[0..4].copy_from_slice(&16u32.to_ne_bytes());
    header[4..8].copy_from_slice(&FUSE_NOTIFY_INC_EPOCH.to_ne_bytes());
    nix::unistd::write(device, &header).map(drop)
}

/// How an open is served: every read asks the daemon (direct I/O), which answers from the snapshot taken
/// at open, so content is never cut in two, never out of step with its own end, and never older than the
/// open. (Kept in the kernel's page cache instead, a value read while it changes could come with the size of
/// the next one: one size per inode serves every open.) An open only for reading has nothing to report at
/// close, so it gets no flush. Writes to a file that takes them `parallel` are not made to wait for one
/// another by the kernel (FOPEN_PARALLEL_DIRECT_WRITES): 100 writes to `containers/run` start 100
/// containers at once, not one after the other, each holding the file's lock while it starts.
pub(super) fn open_flags(writing: bool, parallel: bool) -> FopenFlags {
    match (writing, parallel) {
        (true, true) => FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_PARALLEL_DIRECT_WRITES,
        (true, false) => FopenFlags::FOPEN_DIRECT_IO,
        (false, _) => FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_NOFLUSH,
    }
}

/// The kernel's caches of one mount, kept right by the engine's change notices.
#[derive(Clone)]
pub(super) struct KernelCache {
    shared: Arc<Shared>,
}

/// Hands the kernel connection to the invalidating threads once the session is mounted.
pub struct Invalidator(Arc<Shared>);

struct Shared {
    notifier: OnceLock<Notifier>,
    /// The session's device, if its kernel takes `FUSE_NOTIFY_INC_EPOCH` (then object names are cached);
    /// closed when the session ends, so it keeps no connection alive.
    epochs: Mutex<Option<OwnedFd>>,
    /// Whether object names are cached (set once, at attach).
    names_cached: std::sync::atomic::AtomicBool,
    /// Notices heard from the engine, and how many of them have had their attributes dropped.
    heard: AtomicU64,
    settled: AtomicU64,
    settled_lock: Mutex<()>,
    settled_cond: Condvar,
}

impl KernelCache {
    /// Listens to `engine`'s changes and starts the thread that turns them into invalidations, which then
    /// hands each notice on to `after` (the waits and polls of [`super::waits`]).
    pub(super) fn start(engine: &Arc<Engine>, inodes: Arc<Mutex<Inodes>>, after: Sender<Changed>) -> KernelCache {
        let shared = Arc::new(Shared {
            notifier: OnceLock::new(),
            epochs: Mutex::new(None),
            names_cached: std::sync::atomic::AtomicBool::new(false),
            heard: AtomicU64::new(0),
            settled: AtomicU64::new(0),
            settled_lock: Mutex::new(()),
            settled_cond: Condvar::new(),
        });
        let (attrs_tx, attrs_rx) = mpsc::channel::<(u64, Changed)>();
        // The count and the queue move together, so notices are numbered in the order they are processed.
        let queue = Mutex::new(attrs_tx);
        let heard = Arc::clone(&shared);
        engine.on_change(Box::new(move |what| {
            let tx = lock(&queue);
            let n = heard.heard.fetch_add(1, Ordering::SeqCst) + 1;
            let _ = tx.send((n, what));
        }));
        let attrs = Attrs { shared: Arc::clone(&shared), engine: Arc::downgrade(engine), inodes, after };
        spawn("bocker-inval-attrs", move || attrs.run(attrs_rx));
        KernelCache { shared }
    }

    pub(super) fn invalidator(&self) -> Invalidator {
        Invalidator(Arc::clone(&self.shared))
    }

    /// How long the kernel may keep the name of `node` on this mount (see [`entry_ttl`]).
    pub(super) fn entry_ttl(&self, node: &Node) -> Duration {
        entry_ttl(node, self.shared.names_cached.load(Ordering::Relaxed))
    }

    /// The one time a readdirplus reply gives for both the name and the attributes of `node`: never a
    /// time for an object's own name, even where lookups cache it. The kernel takes the epoch of a listed
    /// name when it parses the reply, not when it asked, so a name removed between the listing and the
    /// reply would be kept with the new epoch; a lookup (which samples it before asking) caches it instead.
    pub(super) fn entry_attr_ttl(&self, node: &Node) -> Duration {
        attr_ttl(node).min(entry_ttl(node, false))
    }

    /// Returns once the attributes made stale by every notice heard so far are dropped from the kernel's
    /// cache. Called after a reply's content is taken from the engine and before it is sent, outside every
    /// lock of ours.
    pub(super) fn settle(&self) {
        let s = &self.shared;
        let target = s.heard.load(Ordering::SeqCst);
        if s.settled.load(Ordering::SeqCst) >= target {
            return;
        }
        let deadline = Instant::now() + SETTLE_LIMIT;
        let mut guard = lock(&s.settled_lock);
        while s.settled.load(Ordering::SeqCst) < target {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                warn!(target, "kernel cache invalidations are late; replying anyway");
                return;
            };
            guard = s.settled_cond.wait_timeout(guard, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}

impl Invalidator {
    /// The session's notifier and device: from here on, notices reach the kernel. Before it, nothing was
    /// served, so nothing was cached. Probes `FUSE_NOTIFY_INC_EPOCH` on the device (harmless now: no name
    /// is cached yet); object names are cached from here on only if the kernel took it.
    pub fn attach(&self, notifier: Notifier, device: BorrowedFd<'_>) {
        let _ = self.0.notifier.set(notifier);
        let probed = inc_epoch(device).map_err(std::io::Error::from);
        match probed.and_then(|()| device.try_clone_to_owned()) {
            Ok(dup) => {
                *lock(&self.0.epochs) = Some(dup);
                self.0.names_cached.store(true, Ordering::Relaxed);
                debug!("the kernel takes FUSE_NOTIFY_INC_EPOCH: object names are cached");
            }
            Err(e) => debug!(error = %e, "no FUSE_NOTIFY_INC_EPOCH: object names are looked up at each path walk"),
        }
    }

    /// The session has ended: the device is closed (a kept copy would keep the connection from being
    /// aborted), and no notice is sent any more.
    pub fn detach(&self) {
        lock(&self.0.epochs).take();
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) {
    if let Err(e) = std::thread::Builder::new().name(name.into()).spawn(f) {
        // Without it replies would wait for invalidations that never come; the daemon can't serve safely.
        panic!("cannot start the {name} thread: {e}");
    }
}

/// The `attrs` thread: drops the attributes each notice makes stale and, for an object that is gone,
/// retires its inode numbers (its name is not cached: see `entry_ttl`); then counts the notice settled and
/// hands it on. It
/// waits for nothing a request holds: only for the engine's state lock and our inode table, never held
/// across a wait for a request.
struct Attrs {
    shared: Arc<Shared>,
    engine: Weak<Engine>,
    inodes: Arc<Mutex<Inodes>>,
    /// Where each notice goes once settled.
    after: Sender<Changed>,
}

impl Attrs {
    fn run(&self, rx: Receiver<(u64, Changed)>) {
        while let Ok((n, what)) = rx.recv() {
            let gone = self.engine.upgrade().and_then(|engine| gone(&engine, &what));
            // Every cached name is looked up again, so the one that is gone is gone at its next use. A
            // failure is not expected (the probe passed); then the name may be used until its TTL ends.
            if gone.is_some() {
                if let Some(device) = lock(&self.shared.epochs).as_ref() {
                    if let Err(e) = inc_epoch(device.as_fd()) {
                        warn!(error = %e, "cannot send FUSE_NOTIFY_INC_EPOCH: a removed name may resolve for 10 s");
                    }
                }
            }
            let stale = {
                let mut inodes = lock(&self.inodes);
                let stale = inodes.stale_after(&what);
                if gone.is_some() {
                    inodes.retire(&what);
                }
                stale
            };
            if let Some(notifier) = self.shared.notifier.get() {
                for ino in stale {
                    // Offset -1: attributes only, no pages (none are cached), so no page lock.
                    if let Err(e) = notifier.inval_inode(INodeNo(ino), -1, 0) {
                        debug!(ino, error = %e, "attribute invalidation");
                    }
                }
            }
            {
                let _guard = lock(&self.shared.settled_lock);
                self.shared.settled.store(n, Ordering::SeqCst);
                self.shared.settled_cond.notify_all();
            }
            // A reader woken by it (a `wait`, a poll) finds the kernel's caches right.
            let _ = self.after.send(what);
        }
    }
}

/// The parent, node and name of what `what` is about, if it is gone now.
fn gone(engine: &Engine, what: &Changed) -> Option<(Node, Node, String)> {
    match what {
        Changed::Container(c) if !engine.has_container(c) => {
            Some((Node::Containers, Node::Container(c.clone()), c.clone()))
        }
        Changed::Exec(c, n) if !engine.has_exec(c, *n) => {
            Some((Node::Execs(c.clone()), Node::Exec(c.clone(), *n), n.to_string()))
        }
        Changed::Image(id) if !engine.has_image(id) => Some((Node::Images, Node::Image(id.clone()), id.clone())),
        Changed::Volume(v) if !engine.has_volume(v) => Some((Node::Volumes, Node::Volume(v.clone()), v.clone())),
        Changed::Network(n) if !engine.has_network(n) => Some((Node::Networks, Node::Network(n.clone()), n.clone())),
        Changed::Build(n) if engine.build_record(*n).is_none() => {
            Some((Node::Builds, Node::BuildDir(*n), n.to_string()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::{LimitKind, StatFile};
    use crate::fs::render::ImageField;

    #[test]
    fn live_values_are_never_cached_and_the_rest_is() {
        let file = |f| Node::ContainerFile("web".into(), ContainerFile::Field(f));
        for live in [
            file(ContainerField::MemoryCurrent),
            file(ContainerField::CpuUsage),
            file(ContainerField::Events),
            file(ContainerField::Stat(StatFile::CpuPressure)),
            file(ContainerField::Limit(LimitKind::MemoryMax)),
            file(ContainerField::Ip),
            file(ContainerField::Inspect),
            Node::ContainerFile("web".into(), ContainerFile::Log(crate::logs::LogView::Logs)),
            Node::ContainerFile("web".into(), ContainerFile::Log(crate::logs::LogView::Stderr)),
            Node::ExecFile("web".into(), 1, ExecFile::Log(crate::logs::LogView::Index)),
            Node::Errors,
            Node::Pulls,
        ] {
            assert_eq!(attr_ttl(&live), Duration::ZERO, "{live:?}");
            assert_eq!(entry_ttl(&live, false), CACHE_TTL, "its name lives as long as its container");
        }
        let image_inspect = Node::ImageFile("img_1".into(), crate::fs::tree::ImageFile::Field(ImageField::Inspect));
        for cached in
            [file(ContainerField::Status), file(ContainerField::ExitCode), Node::Container("web".into()), image_inspect]
        {
            assert_eq!(attr_ttl(&cached), CACHE_TTL, "{cached:?}");
        }
    }

    #[test]
    fn object_names_are_cached_only_where_the_kernel_can_be_told_to_drop_them() {
        let objects = [
            Node::Container("web".into()),
            Node::Image("img_1".into()),
            Node::Volume("data".into()),
            Node::Exec("web".into(), 1),
        ];
        for object in &objects {
            assert_eq!(entry_ttl(object, true), CACHE_TTL, "{object:?}");
            assert_eq!(entry_ttl(object, false), Duration::ZERO, "{object:?}");
        }
        for moved_by_tags in [Node::ByName("alpine".into()), Node::NameLink("alpine".into())] {
            assert_eq!(entry_ttl(&moved_by_tags, true), Duration::ZERO, "{moved_by_tags:?}");
        }
    }

    #[test]
    fn reads_ask_the_daemon_and_only_writers_get_a_flush() {
        assert_eq!(open_flags(false, false), FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_NOFLUSH);
        assert_eq!(open_flags(false, true), FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_NOFLUSH);
        assert_eq!(open_flags(true, false), FopenFlags::FOPEN_DIRECT_IO);
        assert_eq!(open_flags(true, true), FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_PARALLEL_DIRECT_WRITES);
    }
}
