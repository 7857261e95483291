//! Watchers and exit bookkeeping: the engine's one [`Watcher`](crate::runtime::watcher::Watcher) follows the
//! pidfd of every running container's monitor and every running exec's helper; when one ends, the exit
//! record the helper left becomes the container's or exec's, and the firewall drops its forwards.
//!
//! The bookkeeping runs on the watcher's thread. It reads the exit record and the cgroup's OOM count
//! outside every lock, and under the container's record lock installs the exited record in the state (so
//! `status` and a waiting stop see the exit at once); then it queues the container's name for the one
//! `exit-saver` thread, which takes the record lock again for each and saves the record as it is then (a
//! change made in between was saved whole by its writer already; saving the current record again is
//! harmless). So a disk slow to fsync (a busy machine) delays neither the exits behind it nor any other
//! writer for longer than one fsync. `shutdown` drains the queue. A crash before the save is recovered
//! from the exit record the monitor left (`recovery`). An exec's exit is saved on the watcher's thread.
//! The firewall's rewrite takes the forwards lock, which nobody holds across anything but an nft write.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{info, warn};

use super::state::{Container, RecordLock};
use super::{Changed, Engine};
use crate::model::{ContainerStatus, ExecStatus};
use crate::network::NetworkMode;
use crate::runtime::spec::ExitRecord;
use crate::runtime::ProcessHandle;
use crate::{json, times};

/// Whose end the watcher reports.
pub(super) enum Exited {
    /// The monitor of container `name`, as its record names it.
    Monitor { name: String, monitor_pid: Option<i32> },
    /// The helper of exec `n` of container `name`.
    Exec { name: String, n: u32 },
}

/// The exit code of one run of a container, filled when that run's exit is recorded. A `start` answers it
/// (read back on the open `ctl` it was written to), so whoever started a run learns how it ended even once
/// the container is gone (`auto_remove`), without racing its removal.
#[derive(Debug, Clone, Default)]
pub struct ExitSlot(Arc<OnceLock<i32>>);

impl ExitSlot {
    /// The run's exit code, once it has ended.
    pub fn code(&self) -> Option<i32> {
        self.0.get().copied()
    }

    fn fill(&self, code: i32) {
        let _ = self.0.set(code);
    }
}

impl PartialEq for ExitSlot {
    fn eq(&self, other: &ExitSlot) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ExitSlot {}

/// A reader's hold on a container's `logs`, taken by the tree at each open of it and dropped at its close:
/// while any is held, an exited `auto_remove` container stays, so that its reader (`bocker run --rm`
/// following the output) gets every byte; the last hold dropped removes it.
pub struct LogHold {
    engine: Weak<Engine>,
    name: String,
    writer: Arc<RecordLock>,
    readers: Arc<AtomicUsize>,
}

impl Drop for LogHold {
    fn drop(&mut self) {
        if self.readers.fetch_sub(1, Ordering::SeqCst) != 1 {
            return;
        }
        let Some(engine) = self.engine.upgrade() else { return };
        let due = engine.view().containers.get(&self.name).is_some_and(|c| Arc::ptr_eq(&c.writer, &self.writer));
        if due {
            engine.remove_exited(&self.name, Arc::clone(&self.writer));
        }
    }
}

/// What is left to do once an exit is recorded.
#[derive(Default)]
struct AfterExit {
    /// Its forwards are to be dropped from the firewall.
    forwards: bool,
    /// It is to be removed (`auto_remove`): this container's, and no container of the same name made since.
    remove: Option<Arc<RecordLock>>,
    /// An exit was recorded (its restart policy is to be asked).
    recorded: bool,
}

type SaveQueue = Sender<(String, Arc<RecordLock>)>;

/// The containers whose exited record waits for its save, each with the record lock it was installed
/// under (a container made again under the name has another). Without the saver thread (it could not be
/// started), records are saved on the watcher's thread.
#[derive(Default)]
pub(super) struct ExitSaves {
    queue: Mutex<Option<SaveQueue>>,
    saver: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Engine {
    /// Starts the engine's watcher thread and the thread that saves exited records: both hold the engine
    /// weakly, so they keep nothing alive.
    pub(super) fn start_watcher(self: &Arc<Self>) -> Result<(), crate::error::Error> {
        let (tx, rx) = mpsc::channel::<(String, Arc<RecordLock>)>();
        let saver: Weak<Engine> = Arc::downgrade(self);
        let spawned = std::thread::Builder::new().name("exit-saver".into()).spawn(move || {
            while let Ok((name, writer)) = rx.recv() {
                let Some(engine) = saver.upgrade() else { continue };
                let _held = writer.acquire();
                engine.save_exited(&name, &writer);
            }
        });
        match spawned {
            Ok(handle) => {
                *lock(&self.exit_saves.queue) = Some(tx);
                *lock(&self.exit_saves.saver) = Some(handle);
            }
            Err(e) => warn!(error = %e, "cannot start the exit-saver thread: exits are saved on the watcher's"),
        }
        let engine = Arc::downgrade(self);
        self.watcher.start(move |exited| {
            if let Some(engine) = engine.upgrade() {
                engine.exited(exited);
            }
        })?;
        Ok(())
    }

    /// Follows the monitor of `name` until it exits (at once if it is gone).
    pub(super) fn watch(self: &Arc<Self>, name: &str, monitor_pid: i32, monitor_start: u64) {
        match ProcessHandle::open(monitor_pid, monitor_start) {
            Some(handle) => self.watch_handle(name, Some(monitor_pid), handle),
            None => self.monitor_exited(name, Some(monitor_pid)),
        }
    }

    pub(super) fn watch_handle(self: &Arc<Self>, name: &str, monitor_pid: Option<i32>, handle: ProcessHandle) {
        self.follow(handle, Exited::Monitor { name: name.to_string(), monitor_pid });
    }

    /// Follows the helper of exec `n` of `name` until it exits (at once if it is gone).
    pub(super) fn watch_exec(self: &Arc<Self>, name: &str, n: u32, helper: Option<ProcessHandle>) {
        match helper {
            Some(helper) => self.follow(helper, Exited::Exec { name: name.to_string(), n }),
            None => self.exec_exited(name, n),
        }
    }

    fn follow(self: &Arc<Self>, process: ProcessHandle, exited: Exited) {
        let Err((process, exited, e)) = self.watcher.watch(process, exited) else { return };
        // No exit may go unrecorded: this one process gets a thread of its own, as before the watcher.
        warn!(error = %e, "the watcher's epoll set refused a process: following it on a thread of its own");
        let engine = Arc::clone(self);
        std::thread::spawn(move || {
            process.wait_for_exit();
            engine.exited(exited);
        });
    }

    /// The bookkeeping of an exit the watcher saw, on its thread (see the module's comment).
    fn exited(self: &Arc<Self>, exited: Exited) {
        match exited {
            Exited::Exec { name, n } => self.exec_exited(&name, n),
            Exited::Monitor { name, monitor_pid } => self.monitor_exited(&name, monitor_pid),
        }
    }

    /// Records the end of a container from its monitor's exit record, removes its forwards, and with
    /// `auto_remove` the container itself.
    pub(super) fn monitor_exited(self: &Arc<Self>, name: &str, monitor_pid: Option<i32>) {
        let after = self.record_monitor_exit(name, monitor_pid);
        if after.forwards {
            if let Err(e) = self.sync_forwards(&self.lock_forwards(), None) {
                warn!(container = %name, error = %e, "cannot remove the forwards of an exited container");
            }
        }
        match after.remove {
            Some(writer) => self.remove_exited(name, writer),
            None if after.recorded => self.after_exit(name),
            None => {}
        }
    }

    /// A hold on `name`'s `logs` for one open of it (see [`LogHold`]); `None` if there is no such container.
    pub fn hold_logs(self: &Arc<Self>, name: &str) -> Option<LogHold> {
        let view = self.view();
        let c = view.containers.get(name)?;
        c.log_readers.fetch_add(1, Ordering::SeqCst);
        Some(LogHold {
            engine: Arc::downgrade(self),
            name: name.to_string(),
            writer: Arc::clone(&c.writer),
            readers: Arc::clone(&c.log_readers),
        })
    }

    /// Removes an exited `auto_remove` container on a thread of its own: a removal (cgroup, record, btrfs)
    /// must not hold up the exits behind it on the watcher's thread. It takes the record lock like any
    /// removal; the exit-saver skips a record whose removal is under way.
    pub(super) fn remove_exited(self: &Arc<Self>, name: &str, writer: Arc<RecordLock>) {
        let (engine, owned, lock) = (Arc::clone(self), name.to_string(), Arc::clone(&writer));
        let spawned =
            std::thread::Builder::new().name("auto-remove".into()).spawn(move || engine.auto_remove(&owned, &lock));
        if let Err(e) = spawned {
            warn!(container = %name, error = %e, "cannot start a thread to remove it: removing it here");
            self.auto_remove(name, &writer);
        }
    }

    /// Removes `name` as `rmdir` would, if it is still the exited `auto_remove` container `writer` locks
    /// (not started again, not removed and made anew, `auto_remove` not cleared since), no reader holds
    /// its `logs` (the last to close calls this again) and no restart is under way (its end calls this
    /// again). A commit under way is waited for.
    fn auto_remove(&self, name: &str, writer: &Arc<RecordLock>) {
        let ours = |c: &Container| {
            Arc::ptr_eq(&c.writer, writer)
                && c.record.auto_remove
                && c.record.status == ContainerStatus::Exited
                && c.log_readers.load(Ordering::SeqCst) == 0
                && c.restarts == 0
        };
        loop {
            match self.remove_container_if(name, ours) {
                Ok(true) => return info!(container = %name, "removed the exited container (auto_remove)"),
                Ok(false) | Err(crate::error::Error::NoSuchContainer(_)) => return,
                // A transition (a commit of its rootfs) ends by itself.
                Err(e) if e.errno() == libc::EBUSY => std::thread::sleep(Duration::from_millis(100)),
                Err(e) => {
                    return warn!(container = %name, error = %e, "cannot remove the exited container (auto_remove)")
                }
            }
        }
    }

    /// Records the end of a container from its monitor's exit record; says what is left to do.
    fn record_monitor_exit(&self, name: &str, monitor_pid: Option<i32>) -> AfterExit {
        let Ok(held) = self.writing(name) else { return AfterExit::default() };
        let Some(mut rec) = self.view().containers.get(name).map(|c| c.record.clone()) else {
            return AfterExit::default();
        };
        if !rec.status.has_process() || rec.monitor_pid != monitor_pid {
            return AfterExit::default();
        }
        match json::read_json::<ExitRecord>(&self.container_dir(name).join("exit.json")) {
            Ok(Some(exit)) => {
                rec.exit_code = Some(exit.exit_code);
                rec.finished_at = Some(exit.finished_at);
            }
            _ => {
                rec.exit_code = Some(255);
                rec.finished_at = Some(times::now_rfc3339());
                rec.error = "the container's monitor ended without recording an exit code".into();
            }
        }
        rec.status = ContainerStatus::Exited;
        rec.pid = None;
        rec.pid_start = None;
        rec.monitor_pid = None;
        rec.monitor_start = None;
        // The group is made afresh at each start, so any OOM kill it counts is this run's.
        rec.oom_killed = self.cgroups.stats(name).oom_kill.is_some_and(|n| n > 0);
        if rec.oom_killed {
            rec.error = "killed by the kernel's OOM killer: the container reached its memory.max".into();
        }
        info!(container = %name, exit_code = rec.exit_code, oom_killed = rec.oom_killed, "container exited");
        let forwards = rec.network == NetworkMode::Bridge && !rec.ports.is_empty();
        // Shown before it is saved, and even if it can't be: the process is gone whatever the disk says, and
        // a stop waiting for it (or `status`) should not wait for an fsync behind a busy disk. A crash before
        // the save is recovered from the exit record the monitor left; the exit-saver saves it (see the
        // module's comment).
        let remove = {
            let mut st = self.lock();
            let Ok(c) = st.container_mut(name) else { return AfterExit::default() };
            c.record = rec.clone();
            c.exit.fill(rec.exit_code.unwrap_or(255));
            // Its exit ends a stop; a commit under way ends on its own.
            if c.transition == Some(ContainerStatus::Stopping) {
                c.transition = None;
            }
            let remove = rec.auto_remove.then(|| Arc::clone(&c.writer));
            st.notify(Changed::Container(name.to_string()));
            remove
        };
        // Written before a stop waiting for this exit is woken, so `die` comes before its `stop`.
        if rec.oom_killed {
            self.container_event(name, "oom", &[]);
        }
        self.container_event(name, "die", &[("exit", &rec.exit_code.unwrap_or(255).to_string())]);
        self.changed.notify_all();
        let writer = self.lock().container(name).map(|c| Arc::clone(&c.writer));
        if let Ok(writer) = writer {
            let queue = lock(&self.exit_saves.queue);
            let queued = queue.as_ref().is_some_and(|tx| tx.send((name.to_string(), Arc::clone(&writer))).is_ok());
            drop(queue);
            if !queued {
                self.save_exited(name, &writer);
            }
        }
        drop(held);
        AfterExit { forwards, remove, recorded: true }
    }

    /// Saves container `name`'s record as it is now, if it is still the container whose record lock is
    /// `writer` (held by the caller): the exit is shown already.
    fn save_exited(&self, name: &str, writer: &Arc<RecordLock>) {
        // Not once its removal is under way (an `auto_remove` may have taken the record lock first): the
        // removal deletes the record, and a save now would put it back.
        let rec = self
            .view()
            .containers
            .get(name)
            .filter(|c| Arc::ptr_eq(&c.writer, writer) && c.transition != Some(ContainerStatus::Removing))
            .map(|c| c.record.clone());
        if let Some(rec) = rec {
            if let Err(e) = self.save(&rec) {
                warn!(container = %name, error = %e, "cannot write record");
            }
        }
    }

    /// Saves every exited record still queued, then ends the saver (at the daemon's exit).
    pub(super) fn drain_exit_saves(&self) {
        lock(&self.exit_saves.queue).take();
        if let Some(saver) = lock(&self.exit_saves.saver).take() {
            let _ = saver.join();
        }
    }

    /// Records the end of an exec from the exit record its helper left.
    pub(super) fn exec_exited(&self, name: &str, n: u32) {
        let view = self.view();
        let Some(mut rec) = view.containers.get(name).and_then(|c| c.execs.get(&n)).cloned() else { return };
        let exit = json::read_json::<ExitRecord>(&self.exec_dir(name, n).join("exit.json")).ok().flatten();
        rec.exit_code = Some(exit.as_ref().map_or(255, |x| x.exit_code));
        rec.finished_at = Some(exit.map_or_else(times::now_rfc3339, |x| x.finished_at));
        rec.status = ExecStatus::Exited;
        rec.pid = None;
        rec.helper_pid = None;
        rec.helper_start = None;
        if let Err(e) = json::write_json(&self.exec_dir(name, n).join("record.json"), &rec) {
            warn!(container = %name, exec = n, error = %e, "cannot write exec record");
        }
        info!(container = %name, exec = n, exit_code = rec.exit_code, "exec exited");
        let mut st = self.lock();
        if let Some(e) = st.container_mut(name).ok().and_then(|c| c.execs.get_mut(&n)) {
            *e = rec;
            st.notify(Changed::Exec(name.to_string(), n));
        }
        drop(st);
        self.changed.notify_all();
    }
}
