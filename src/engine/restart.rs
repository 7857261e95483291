//! Restart policies carried out (see [`RestartPolicy`]): the daemon, not the monitor, brings a container
//! back, since a start needs what only the daemon has (the network, the cgroups, the store). After an
//! exit the policy calls for, a thread waits Docker's back-off (100 ms, doubled at each restart in a
//! row, reset by a run of 10 s, at most 1 min; a start that fails counts as a run of none), then starts
//! it through [`StartBy::Policy`], which checks under the record lock that nothing changed meanwhile: the
//! same run's exit (its exit slot), not stopped by a user, the policy still calling for it. A user's
//! `stop`, `kill`, `restart` or `remove` ends it for good; a user's start clears that and the count, in the
//! write that marks the run. Exits seen while the daemon opens (re-adoption) wait for it to be ready
//! (`start_by_policies`); at that point `always` ones (and `unless-stopped` ones nobody stopped) that
//! were not running are started too. A daemon shutting down starts nothing more.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{info, warn};

use super::exits::ExitSlot;
use super::records::ContainerRecord;
use super::state::Container;
use super::Engine;
use crate::model::{next_delay, ContainerStatus};

/// The back-off of restarts by policy, and whether they may run.
#[derive(Default)]
pub(super) struct Restarts {
    /// The last wait before each container's restart.
    delays: Mutex<HashMap<String, Duration>>,
    /// The daemon is ready to start containers (set by `start_by_policies`); until then, exits that
    /// call for a restart wait in `deferred`.
    ready: AtomicBool,
    deferred: Mutex<Vec<String>>,
    /// The daemon is shutting down: nothing more is started.
    closing: AtomicBool,
}

/// Who asks for a start, and so what it checks and marks in the record.
pub(super) enum StartBy {
    /// A user (`ctl start`, `restart`): always due; clears a user's stop and the restart count.
    User,
    /// The restart policy, after the run whose exit slot this is: due only while that run is the last,
    /// exited, nobody stopped it and its policy still restarts it; counted.
    Policy(ExitSlot),
    /// The daemon's start: due while exited and its policy starts it with the daemon; clears a user's
    /// stop (an `always` one comes back even so), keeps the count.
    Daemon,
}

impl StartBy {
    pub(super) fn due(&self, c: &Container) -> bool {
        let r = &c.record;
        let exited = c.status() == ContainerStatus::Exited;
        match self {
            StartBy::User => true,
            StartBy::Policy(slot) => {
                exited
                    && c.exit == *slot
                    && r.restart.restarts_after(r.exit_code.unwrap_or(255), r.restart_count, r.stopped_by_user)
            }
            StartBy::Daemon => exited && r.restart.starts_with_daemon(r.exit_code, r.restart_count, r.stopped_by_user),
        }
    }

    /// What the start writes into the record with the run.
    pub(super) fn mark(&self, r: &mut ContainerRecord) {
        match self {
            StartBy::User => (r.stopped_by_user, r.restart_count) = (false, 0),
            StartBy::Policy(_) => r.restart_count += 1,
            StartBy::Daemon => r.stopped_by_user = false,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long a run lasted, from its record's times (to the second).
fn ran_for(started_at: Option<&str>, finished_at: Option<&str>) -> Duration {
    let parse = |t: Option<&str>| t.and_then(|t| humantime::parse_rfc3339(t).ok());
    match (parse(started_at), parse(finished_at)) {
        (Some(start), Some(end)) => end.duration_since(start).unwrap_or_default(),
        _ => Duration::ZERO,
    }
}

impl Engine {
    /// A user stopped container `name` (`stop`, `kill`, `restart`, `remove`): its policy brings it back no
    /// more until a user starts it.
    pub(super) fn note_user_stop(&self, name: &str) {
        if let Err(e) = self.update_record(name, |_, r| {
            r.stopped_by_user = true;
            Ok(())
        }) {
            warn!(container = %name, error = %e, "cannot record a user's stop");
        }
    }

    /// After container `name`'s exit was recorded: schedules its restart if its policy calls for one.
    pub(super) fn after_exit(self: &Arc<Self>, name: &str) {
        let Some(c) = self.view().containers.get(name).cloned() else { return };
        let ran = ran_for(c.record.started_at.as_deref(), c.record.finished_at.as_deref());
        self.schedule_restart(name, &c, ran);
    }

    /// Schedules a restart of `c` (as it is now) after the back-off for a run of `ran`, if it is due.
    fn schedule_restart(self: &Arc<Self>, name: &str, c: &Container, ran: Duration) {
        let by = StartBy::Policy(c.exit.clone());
        if !by.due(c) || self.restarts.closing.load(Ordering::SeqCst) {
            return;
        }
        if !self.restarts.ready.load(Ordering::SeqCst) {
            return lock(&self.restarts.deferred).push(name.to_string());
        }
        let delay = {
            let mut delays = lock(&self.restarts.delays);
            let delay = next_delay(delays.get(name).copied(), ran);
            delays.insert(name.to_string(), delay);
            delay
        };
        let r = &c.record;
        info!(container = %name, exit_code = r.exit_code, policy = %r.restart, delay_ms = delay.as_millis() as u64, "restarting by its policy");
        let (engine, owned) = (Arc::clone(self), name.to_string());
        let spawned = std::thread::Builder::new().name("restart".into()).spawn(move || {
            std::thread::sleep(delay);
            if !engine.restarts.closing.load(Ordering::SeqCst) {
                engine.restart_by_policy(&owned, by);
            }
        });
        if let Err(e) = spawned {
            warn!(container = %name, error = %e, "cannot start a thread to restart it");
        }
    }

    /// Starts `name` again by its policy if it is still due. A start that fails is recorded in `error`
    /// and tried again after the next wait (as after a run of no time).
    fn restart_by_policy(self: &Arc<Self>, name: &str, by: StartBy) {
        match self.start_by(name, by) {
            Ok(_) => {}
            Err(e) => {
                warn!(container = %name, error = %e, "restart by its policy failed");
                self.set_error(name, &format!("restart by its policy failed: {e}"));
                if let Some(c) = self.view().containers.get(name).cloned() {
                    self.schedule_restart(name, &c, Duration::ZERO);
                }
            }
        }
    }

    /// The daemon is ready to start containers: the restarts deferred while it opened are scheduled,
    /// and those not running that their policy starts with the daemon (`names`) are started, on a thread
    /// (the mount is served meanwhile). One that fails is recorded in `error`, not tried again.
    pub(super) fn restart_at_open(self: &Arc<Self>, names: Vec<String>) {
        self.restarts.ready.store(true, Ordering::SeqCst);
        for name in std::mem::take(&mut *lock(&self.restarts.deferred)) {
            self.after_exit(&name);
        }
        let due: Vec<String> = names
            .into_iter()
            .filter(|n| self.view().containers.get(n).is_some_and(|c| StartBy::Daemon.due(c)))
            .collect();
        if due.is_empty() {
            return;
        }
        let engine = Arc::clone(self);
        let spawned = std::thread::Builder::new().name("restart-at-open".into()).spawn(move || {
            for name in due {
                if engine.restarts.closing.load(Ordering::SeqCst) {
                    return;
                }
                match engine.start_by(&name, StartBy::Daemon) {
                    Ok(Some(_)) => info!(container = %name, "started with the daemon, by its restart policy"),
                    Ok(None) => {}
                    Err(e) => {
                        warn!(container = %name, error = %e, "start by its restart policy failed");
                        engine.set_error(&name, &format!("start by its restart policy failed: {e}"));
                    }
                }
            }
        });
        if let Err(e) = spawned {
            warn!(error = %e, "cannot start a thread to start containers by their restart policies");
        }
    }

    /// The daemon is shutting down: no restart starts from now on.
    pub(super) fn stop_restarts(&self) {
        self.restarts.closing.store(true, Ordering::SeqCst);
    }

    /// Container `name` is gone (removed): its back-off goes with it.
    pub(super) fn forget_restarts(&self, name: &str) {
        lock(&self.restarts.delays).remove(name);
    }
}
