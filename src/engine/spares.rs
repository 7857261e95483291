//! The pool of spare monitors (`runtime::spare`): kept ready by a thread of its own, taken by starts with
//! bridge networking. On v1 each spare's container process waits in a spare group of its own
//! (`cgroups::spares`), which a take renames to the container's.
//!
//! Each spare's `eth0` is made ahead too (`Network::prepare`), for the start's attach to claim.
//!
//! The thread makes one spare at a time, back up to the number asked for after each take. One that can't
//! be made is said in the daemon's log, and the next try waits, doubling up to a minute: starts meanwhile
//! start monitors of their own, as without a pool. A spare whose group can't be adopted is ended and its
//! groups removed by the thread. [`Spares::stop`] ends every spare, waits for the thread and removes the
//! spares' groups once their processes are gone.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{debug, warn};

use crate::cgroups::Cgroups;
use crate::network::Network;
use crate::runtime::spare::Spare;

/// A spare ready, with the name of its groups if its process waits in some (v1).
struct Ready {
    spare: Spare,
    group: Option<String>,
}

/// The pool: spares ready, and the thread that makes them.
#[derive(Default)]
pub(super) struct Spares {
    inner: Arc<Pool>,
    maker: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct Pool {
    state: Mutex<PoolState>,
    /// Wakes the maker: one was taken, one is to be thrown away, or the pool stops.
    wake: Condvar,
}

#[derive(Default)]
struct PoolState {
    ready: VecDeque<Ready>,
    /// How many to keep ready.
    target: usize,
    stopped: bool,
    /// Groups of spares ended unused, to remove once their processes are gone.
    doomed: Vec<String>,
    /// Numbers the spare groups of this daemon.
    made: u64,
}

/// How long the maker waits after a spare could not be made, at first and at most.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl Spares {
    /// Keeps `target` spares ready for the daemon whose state directory is `tag`, its groups in
    /// `cgroups`, until [`Spares::stop`]. Nothing with 0.
    pub(super) fn start(&self, target: usize, tag: PathBuf, cgroups: Cgroups, network: Arc<Network>) {
        // What spares of a daemon that died left, whether this one keeps any or not.
        cgroups.sweep_spares();
        if target == 0 {
            return;
        }
        {
            let mut st = self.inner.lock();
            if st.stopped {
                return;
            }
            st.target = target;
        }
        let pool = Arc::clone(&self.inner);
        match std::thread::Builder::new().name("spares".into()).spawn(move || make(&pool, &tag, &cgroups, &network)) {
            Ok(handle) => *self.maker.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle),
            Err(e) => warn!(error = %e, "cannot start the spare monitors' thread: every start starts its own monitor"),
        }
    }

    /// A spare for container (or build step) group `name`, if one is ready; on v1 its groups are `name`'s
    /// from now on (`name` must have none). `record(pid)` runs first, before its process (waiting in its
    /// groups on v1) is in `name`'s groups: a start records the spare as its monitor there, so a daemon
    /// that dies from then on finds it; if `record` fails the spare is ended. The maker makes another.
    pub(super) fn take_for(&self, name: &str, cgroups: &Cgroups, record: impl FnOnce(i32) -> bool) -> Option<Spare> {
        let taken = self.inner.lock().ready.pop_front();
        self.inner.wake.notify_all();
        let Ready { spare, group } = taken?;
        if !record(spare.pid) {
            drop(spare);
            let mut st = self.inner.lock();
            st.doomed.extend(group);
            drop(st);
            self.inner.wake.notify_all();
            return None;
        }
        let Some(group) = group else { return Some(spare) };
        match cgroups.adopt_spare(&group, name) {
            Ok(()) => Some(spare),
            Err(e) => {
                warn!(group = %group, container = name, error = %e, "cannot give a spare monitor's groups to a container: it starts its own");
                drop(spare);
                self.inner.lock().doomed.push(group);
                self.inner.wake.notify_all();
                None
            }
        }
    }

    /// Ends every spare, makes no more, and removes their groups once they are gone.
    pub(super) fn stop(&self, cgroups: &Cgroups) {
        let ready = {
            let mut st = self.inner.lock();
            st.stopped = true;
            std::mem::take(&mut st.ready)
        };
        self.inner.wake.notify_all();
        if let Some(handle) = self.maker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = handle.join();
        }
        let mut groups: Vec<String> = std::mem::take(&mut self.inner.lock().doomed);
        // Their stdin closes: each reads the end of input and exits, and its process with it.
        for Ready { spare, group } in ready {
            drop(spare);
            groups.extend(group);
        }
        remove_groups(cgroups, groups);
    }
}

/// Removes the groups of spares that have ended (each once its process is gone), saying which can't be.
fn remove_groups(cgroups: &Cgroups, groups: Vec<String>) {
    for group in groups {
        if let Err(e) = cgroups.remove_spare(&group) {
            warn!(group = %group, error = %e, "cannot remove a spare monitor's cgroups");
        }
    }
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The nice value spares start at: the start-up of one (the exec of the daemon's binary, its loader and
/// arguments) takes the CPU that idle starts leave, not theirs; each is back at the daemon's own as soon
/// as it runs (see `runtime::spare`).
const MAKING_NICE: i32 = 19;

/// The maker's loop: removes the groups of spares thrown away, and makes one spare at a time while fewer
/// than the target are ready, until stopped.
fn make(pool: &Pool, tag: &std::path::Path, cgroups: &Cgroups, network: &Network) {
    // Nice values are per thread on Linux: this one's, which its children start with.
    let me = rustix::thread::gettid();
    let nice = rustix::process::getpriority_process(Some(me)).unwrap_or(0);
    let _ = rustix::process::setpriority_process(Some(me), MAKING_NICE);
    let mut backoff = FIRST_BACKOFF;
    loop {
        let (doomed, n) = {
            let mut st = pool.lock();
            while !st.stopped && st.doomed.is_empty() && st.ready.len() >= st.target {
                st = pool.wake.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            if st.stopped {
                return;
            }
            st.made += 1;
            (std::mem::take(&mut st.doomed), st.made)
        };
        remove_groups(cgroups, doomed);
        let full = {
            let st = pool.lock();
            st.ready.len() >= st.target
        };
        if full {
            continue;
        }
        match make_one(tag, cgroups, n, nice) {
            Ok(ready) => {
                backoff = FIRST_BACKOFF;
                // Its `eth0` made ahead too; without it a start makes its own, as without a spare.
                if let Err(e) = network.prepare(ready.spare.pid) {
                    warn!(pid = ready.spare.pid, error = %e, "cannot make a spare monitor's veth ahead");
                }
                debug!(pid = ready.spare.pid, group = ready.group.as_deref().unwrap_or(""), "spare monitor ready");
                let mut st = pool.lock();
                if st.stopped {
                    // Ended here; `stop` removes its groups.
                    st.doomed.extend(ready.group);
                    return;
                }
                st.ready.push_back(ready);
            }
            Err(e) => {
                warn!(error = %e, retry_in_s = backoff.as_secs(), "cannot make a spare monitor");
                let st = pool.lock();
                let (st, _) =
                    pool.wake.wait_timeout_while(st, backoff, |st| !st.stopped).unwrap_or_else(|e| e.into_inner());
                if st.stopped {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// One spare: on v1 its groups first, then the monitor, its process forked into them.
fn make_one(tag: &std::path::Path, cgroups: &Cgroups, n: u64, nice: i32) -> Result<Ready, String> {
    if !cgroups.can_join_ahead() {
        return Spare::start(tag, &[], nice).map(|spare| Ready { spare, group: None }).map_err(|e| e.to_string());
    }
    let group = Cgroups::spare_group(n);
    let procs = cgroups.make_spare(&group).map_err(|e| e.to_string())?;
    match Spare::start(tag, &procs, nice) {
        Ok(spare) => Ok(Ready { spare, group: Some(group) }),
        Err(e) => {
            let _ = cgroups.remove_spare(&group);
            Err(e.to_string())
        }
    }
}
