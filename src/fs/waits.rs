//! Reads that wait and polls that wake: a container's (or an exec's) `wait`, and `poll()`, `select()` and
//! epoll on the tree's open files.
//!
//! **A read of `wait` while the process runs** is parked: its reply (fuser's reply objects are `Send`) is
//! kept here, and the thread that answers the kernel goes on at once. The `bocker-waits` thread answers it
//! when a change notice of its object says it no longer runs (after the kernel's caches were dropped for
//! that change, see [`super::cache`]); the run's [`ExitSlot`] tells the code even if the container is gone
//! by then. Opened `O_NONBLOCK`, such a read is EAGAIN instead; a read that need not wait is answered at
//! once.
//!
//! **A reader killed while parked** (Ctrl-C on `cat wait`, `timeout 1 cat wait`): the kernel waits for the
//! reply to a request the daemon has read without letting any signal end the wait (a fatal one only marks
//! the reader), and fuser 0.18 answers the kernel's `FUSE_INTERRUPT` itself with ENOSYS, which makes the
//! kernel send no more of them. So this thread looks, every [`TICK`], at each parked reader's pending
//! signals (`/proc/TID/status`: `SigPnd` and `ShdPnd`, less `SigBlk`; a fatal signal shows as SIGKILL) and
//! answers a reader with a deliverable signal EINTR: it dies, or runs its handler (the read returns EINTR;
//! `cat` and Rust's `read_to_end` read again). A reader whose thread the daemon can't see (no pid in the
//! request) waits for the exit.
//!
//! **Polls** follow sysfs's convention: an open file is ready (POLLIN, POLLRDNORM and POLLPRI) when a read
//! at offset 0 would give something else than what it last read: a value file's content than its snapshot
//! (once polled, such a read renders it afresh; an open file nobody polls keeps the value it was opened
//! with), `wait` an exit it hasn't read, `events` lines past its last read. The
//! kernel's notify handle is kept with the open file and used when a notice of its object makes it ready.
//! Files whose content moves without notices (`logs`, the cgroup counters) and those that take writes are
//! always ready, as a regular file is. A watched file whose object is gone is ready with POLLERR and
//! POLLHUP, so a poll loop on it ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use fuser::{Errno, FileHandle, PollEvents, PollFlags, PollNotifier, ReplyData};
use tracing::{debug, warn};

use super::cache::attrs_cached;
use super::tree::{ContainerFile, ExecFile, Kind, Node};
use super::{lock, render, ControlFs, OpenFile};
use crate::engine::{Changed, Engine, ExitSlot, Wait};

/// How often the parked readers' pending signals are looked at.
const TICK: Duration = Duration::from_millis(100);

/// What a poll answers a file that isn't watched: always ready, as a regular file.
const ALWAYS: PollEvents =
    PollEvents::POLLIN.union(PollEvents::POLLRDNORM).union(PollEvents::POLLOUT).union(PollEvents::POLLWRNORM);

/// What a poll answers a watched file that is ready: readable, and (as sysfs says a change) POLLPRI.
const READY: PollEvents = PollEvents::POLLIN.union(PollEvents::POLLRDNORM).union(PollEvents::POLLPRI);

/// What an open file keeps for its polls and waits.
#[derive(Default)]
pub(super) struct Watch {
    /// The kernel's handle to wake this open file's pollers, while one waits.
    poll: Option<PollNotifier>,
    /// For `wait`: the end (its finish time) whose code this open file last read.
    run: Option<String>,
    /// For `events`: where its last read ended.
    read_end: u64,
    /// It was polled: from then on a read at offset 0 renders it afresh (an open file that nobody polls
    /// keeps the value it was opened with, as `less` holds it).
    polled: bool,
}

/// Whose `wait` a file is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Container(String),
    Exec(String, u32),
}

impl Target {
    fn of(node: &Node) -> Option<Target> {
        match node {
            Node::ContainerFile(name, ContainerFile::Wait) => Some(Target::Container(name.clone())),
            Node::ExecFile(name, n, ExecFile::Wait) => Some(Target::Exec(name.clone(), *n)),
            _ => None,
        }
    }

    fn container(&self) -> &str {
        match self {
            Target::Container(name) | Target::Exec(name, _) => name,
        }
    }

    fn state(&self, engine: &Engine) -> Option<Wait> {
        match self {
            Target::Container(name) => engine.container_wait(name),
            Target::Exec(name, n) => engine.exec_wait(name, *n),
        }
    }
}

/// A read of `wait` waiting for its process's end.
struct Parked {
    fh: u64,
    target: Target,
    /// The run it waits for, once known: its code answers it even once the container is gone.
    slot: Option<ExitSlot>,
    reply: ReplyData,
    size: u32,
    /// The reader's thread, as the request names it (0: unknown).
    pid: u32,
}

type OpenFiles = Arc<Mutex<HashMap<u64, OpenFile>>>;

/// The parked reads, and what answers them and wakes the polls.
#[derive(Clone)]
pub struct Waits {
    parked: Arc<Mutex<Vec<Parked>>>,
    engine: Weak<Engine>,
    files: OpenFiles,
    /// Reads may be parked: the thread that answers them runs, and the daemon is not stopping.
    parking: Arc<AtomicBool>,
}

impl Waits {
    /// Starts the `bocker-waits` thread, which hears each change notice once the kernel's caches were
    /// dropped for it (`notices`), and ends when they end (the engine is gone).
    pub(super) fn start(engine: &Arc<Engine>, files: OpenFiles, notices: Receiver<Changed>) -> Waits {
        let parking = Arc::new(AtomicBool::new(true));
        let waits = Waits { parked: Arc::default(), engine: Arc::downgrade(engine), files, parking };
        let run = waits.clone();
        if let Err(e) = std::thread::Builder::new().name("bocker-waits".into()).spawn(move || run.run(notices)) {
            // Nothing would answer a parked read.
            warn!(error = %e, "cannot start the bocker-waits thread: reads of wait that would wait are ENOTCONN");
            waits.parking.store(false, Ordering::SeqCst);
        }
        waits
    }

    /// The daemon is stopping: every parked read is answered ENOTCONN (as the kernel answers what a
    /// daemon that went away had not), and no more are parked, so no reader keeps the mount busy.
    pub fn stop(&self) {
        self.parking.store(false, Ordering::SeqCst);
        for p in std::mem::take(&mut *lock(&self.parked)) {
            p.reply.error(Errno::ENOTCONN);
        }
    }

    fn run(&self, notices: Receiver<Changed>) {
        let mut checked = Instant::now();
        loop {
            match notices.recv_timeout(TICK) {
                Ok(what) => self.changed(&what),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if checked.elapsed() >= TICK {
                checked = Instant::now();
                self.interrupted();
            }
        }
        // The mount is gone: what is parked is answered by its drop (EIO), as any reply never sent.
        lock(&self.parked).clear();
    }

    /// After a notice: answers the parked reads it may end, wakes the polls it may make ready.
    fn changed(&self, what: &Changed) {
        let Some(engine) = self.engine.upgrade() else { return };
        let concerns = |t: &Target| match what {
            Changed::Container(name) => t.container() == name,
            Changed::Exec(name, n) => *t == Target::Exec(name.clone(), *n),
            _ => false,
        };
        self.answer_where(&engine, concerns);
        self.wake(&engine, |node| match what {
            Changed::Container(name) => node_container(node) == Some(name),
            Changed::Exec(name, n) => matches!(node, Node::ExecFile(c, x, _) if c == name && x == n),
            Changed::Image(id) => matches!(node, Node::ImageFile(i, _) if i == id),
            Changed::Events => *node == Node::Events,
            Changed::Build(n) => matches!(node, Node::BuildFile(x, _) if x == n),
            Changed::Volume(_) | Changed::Network(_) => false,
        });
    }

    /// Answers every parked read `concerns` picks whose process has ended.
    fn answer_where(&self, engine: &Engine, concerns: impl Fn(&Target) -> bool) {
        let mut done = Vec::new();
        {
            let mut parked = lock(&self.parked);
            let mut i = 0;
            while i < parked.len() {
                if !concerns(&parked[i].target) {
                    i += 1;
                    continue;
                }
                match ended(engine, &mut parked[i]) {
                    Some(answer) => done.push((parked.swap_remove(i), answer)),
                    None => i += 1,
                }
            }
        }
        for (p, answer) in done {
            self.reply(p, answer);
        }
    }

    fn reply(&self, p: Parked, answer: Result<(i32, Option<String>), Errno>) {
        match answer {
            Ok((code, run)) => {
                let content = format!("{code}\n").into_bytes();
                let data = content[..content.len().min(p.size as usize)].to_vec();
                if let Some(file) = lock(&self.files).get_mut(&p.fh) {
                    file.snapshot = Arc::new(content);
                    file.watch.run = run;
                }
                p.reply.data(&data);
            }
            Err(e) => p.reply.error(e),
        }
    }

    /// Answers EINTR each parked read whose reader has a signal to take (see the module's comment).
    fn interrupted(&self) {
        let mut gone = Vec::new();
        {
            let mut parked = lock(&self.parked);
            let mut i = 0;
            while i < parked.len() {
                if parked[i].pid != 0 && signalled(parked[i].pid) {
                    gone.push(parked.swap_remove(i));
                } else {
                    i += 1;
                }
            }
        }
        for p in gone {
            debug!(pid = p.pid, target = ?p.target, "a reader of wait was signalled: EINTR");
            p.reply.error(Errno::EINTR);
        }
    }

    /// Wakes the pollers of each open file `concerns` picks that is ready now.
    fn wake(&self, engine: &Engine, concerns: impl Fn(&Node) -> bool) {
        let polled: Vec<u64> = lock(&self.files)
            .iter()
            .filter(|(_, f)| f.watch.poll.is_some() && concerns(&f.node))
            .map(|(fh, _)| *fh)
            .collect();
        for fh in polled {
            if !ready(engine, &self.files, fh).is_empty() {
                let notifier = lock(&self.files).get_mut(&fh).and_then(|f| f.watch.poll.take());
                if let Some(Err(e)) = notifier.map(PollNotifier::notify) {
                    debug!(fh, error = %e, "poll notification");
                }
            }
        }
    }
}

/// The container a node of the tree belongs to.
fn node_container(node: &Node) -> Option<&String> {
    match node {
        Node::ContainerFile(name, _) | Node::ExecFile(name, _, _) => Some(name),
        _ => None,
    }
}

/// The answer of parked read `p` if its process has ended: its code (and the run it read), or ENOENT for
/// an object gone without telling one.
fn ended(engine: &Engine, p: &mut Parked) -> Option<Result<(i32, Option<String>), Errno>> {
    if let Some(code) = p.slot.as_ref().and_then(ExitSlot::code) {
        let run = match p.target.state(engine) {
            Some(Wait::Ended { run, .. }) => Some(run),
            _ => None,
        };
        return Some(Ok((code, run)));
    }
    match p.target.state(engine) {
        None => Some(Err(Errno::ENOENT)),
        Some(Wait::Ended { code, run }) => Some(Ok((code, Some(run)))),
        Some(Wait::Running(slot)) => {
            if slot.is_some() {
                p.slot = slot;
            }
            None
        }
    }
}

/// Whether the thread `tid` has a signal pending that it doesn't block (a fatal one shows as SIGKILL), or
/// is gone.
fn signalled(tid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{tid}/status")) else { return true };
    let mask = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0)
    };
    (mask("SigPnd:") | mask("ShdPnd:")) & !mask("SigBlk:") != 0
}

/// Whether a poll watches `node` (see the module's comment).
fn watched(node: &Node) -> bool {
    match node {
        Node::Events => true,
        n if Target::of(n).is_some() => true,
        Node::ContainerFile(_, ContainerFile::Field(_))
        | Node::ExecFile(_, _, ExecFile::Field(_))
        | Node::ImageFile(..) => matches!(node.kind(), Kind::File { writable: false, .. }) && attrs_cached(node),
        _ => false,
    }
}

/// What a poll of an open file answers now: whether a read at offset 0 would give something else than it
/// last read; for a file whose object is gone, POLLERR and POLLHUP too, so a poll loop ends.
fn ready(engine: &Engine, files: &Mutex<HashMap<u64, OpenFile>>, fh: u64) -> PollEvents {
    let gone = READY | PollEvents::POLLERR | PollEvents::POLLHUP;
    let Some((node, snapshot, run, base, read_end)) = lock(files)
        .get(&fh)
        .map(|f| (f.node.clone(), Arc::clone(&f.snapshot), f.watch.run.clone(), f.log_base, f.watch.read_end))
    else {
        return gone;
    };
    let changed = if let Some(target) = Target::of(&node) {
        match target.state(engine) {
            Some(Wait::Ended { run: now, .. }) => run.as_ref() != Some(&now),
            Some(Wait::Running(_)) => false,
            None => return gone,
        }
    } else if node == Node::Events {
        let end = crate::logs::extent(&engine.events_path()).map_or(0, |e| e.end);
        end.saturating_sub(base) > read_end
    } else {
        match render::content(engine, &node) {
            Ok(now) => now != *snapshot,
            Err(_) => return gone,
        }
    };
    if changed {
        READY
    } else {
        PollEvents::empty()
    }
}

impl ControlFs {
    /// A read of open file `fh` if it is a `wait`: answered now or parked (see the module's comment);
    /// `reply` back if it is another file.
    pub(super) fn read_wait(
        &self,
        fh: FileHandle,
        offset: u64,
        size: u32,
        nonblocking: bool,
        pid: u32,
        reply: ReplyData,
    ) -> Option<ReplyData> {
        let found =
            lock(&self.open_files).get(&fh.0).and_then(|f| Some((Target::of(&f.node)?, Arc::clone(&f.snapshot))));
        let Some((target, snapshot)) = found else { return Some(reply) };
        if offset > 0 {
            // The rest of what its last read at 0 gave.
            let start = usize::try_from(offset).unwrap_or(usize::MAX).min(snapshot.len());
            reply.data(&snapshot[start..snapshot.len().min(start.saturating_add(size as usize))]);
            return None;
        }
        let slot = match target.state(&self.engine) {
            None => {
                reply.error(Errno::ENOENT);
                return None;
            }
            Some(Wait::Ended { code, run }) => {
                let p = Parked { fh: fh.0, target, slot: None, reply, size, pid };
                self.waits.reply(p, Ok((code, Some(run))));
                return None;
            }
            Some(Wait::Running(_)) if nonblocking => {
                reply.error(Errno::EAGAIN);
                return None;
            }
            Some(Wait::Running(_)) if !self.waits.parking.load(Ordering::SeqCst) => {
                reply.error(Errno::ENOTCONN);
                return None;
            }
            Some(Wait::Running(slot)) => slot,
        };
        lock(&self.waits.parked).push(Parked { fh: fh.0, target: target.clone(), slot, reply, size, pid });
        // Its end may have been told between the look above and the parking: look again.
        self.waits.answer_where(&self.engine, |t| *t == target);
        None
    }

    /// A poll of open file `fh`: what is ready now; with `FUSE_POLL_SCHEDULE_NOTIFY`, the kernel is told
    /// when that changes (registered before the look, so no change falls between the two).
    pub(super) fn poll_file(
        &self,
        fh: FileHandle,
        notifier: PollNotifier,
        flags: PollFlags,
    ) -> Result<PollEvents, Errno> {
        {
            let mut files = lock(&self.open_files);
            let file = files.get_mut(&fh.0).ok_or(Errno::EBADF)?;
            if !watched(&file.node) {
                return Ok(ALWAYS);
            }
            file.watch.polled = true;
            if flags.contains(PollFlags::FUSE_POLL_SCHEDULE_NOTIFY) {
                file.watch.poll = Some(notifier);
            }
        }
        Ok(ready(&self.engine, &self.open_files, fh.0))
    }

    /// A read at offset 0 of a watched file that was polled renders it afresh (sysfs's convention: after a
    /// poll, `lseek(0)` and read); the content served to the reads after it.
    pub(super) fn refreshed(&self, file: &mut OpenFile, offset: u64) {
        let value_file = Target::of(&file.node).is_none() && file.node != Node::Events;
        if offset == 0 && file.watch.polled && value_file && watched(&file.node) {
            if let Ok(now) = render::content(&self.engine, &file.node) {
                file.snapshot = Arc::new(now);
            }
        }
    }

    /// An open `events` file has read up to `end`: its polls wait for more.
    pub(super) fn read_up_to(files: &Mutex<HashMap<u64, OpenFile>>, fh: u64, end: u64) {
        if let Some(file) = lock(files).get_mut(&fh).filter(|f| f.node == Node::Events) {
            file.watch.read_end = file.watch.read_end.max(end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::render::{ContainerField, ExecField, ImageField};

    #[test]
    fn polls_watch_what_changes_with_notices_and_nothing_else() {
        let field = |f| Node::ContainerFile("web".into(), ContainerFile::Field(f));
        for yes in [
            Node::Events,
            Node::ContainerFile("web".into(), ContainerFile::Wait),
            Node::ExecFile("web".into(), 1, ExecFile::Wait),
            Node::ExecFile("web".into(), 1, ExecFile::Field(ExecField::Status)),
            Node::ImageFile("img_1".into(), crate::fs::tree::ImageFile::Field(ImageField::Names)),
            field(ContainerField::Status),
            field(ContainerField::ExitCode),
        ] {
            assert!(watched(&yes), "{yes:?}");
        }
        for no in [
            field(ContainerField::Cmd),
            field(ContainerField::MemoryCurrent),
            field(ContainerField::Inspect),
            Node::ContainerFile("web".into(), ContainerFile::Ctl),
            Node::ContainerFile("web".into(), ContainerFile::Log(crate::logs::LogView::Logs)),
            Node::Errors,
            Node::Readme,
        ] {
            assert!(!watched(&no), "{no:?}");
        }
    }

    #[test]
    fn a_signal_pending_for_this_thread_counts_unless_blocked() {
        // Our own thread has none pending.
        assert!(!signalled(std::process::id()));
        assert!(signalled(u32::MAX), "a thread that is gone is answered");
    }
}
