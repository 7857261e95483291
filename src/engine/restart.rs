//! Restart policies carried out (see [`RestartPolicy`]): the daemon, not the monitor, brings a container
//! back, since a start needs what only the daemon has (the network, the cgroups, the store). After an
//! exit the policy calls for, a thread waits Docker's back-off (100 ms, doubled at each restart in a
//! row, reset by a run of 10 s, at most 1 min), then starts it if nothing changed meanwhile: still exited
//! from that same exit, not stopped by a user, the same container. A user's `stop` or `kill` ends it for
//! good; a user's `start` clears that and the count. An exit while no daemon ran is seen when the next
//! one re-adopts its containers, and brings it back the same way; at the daemon's start, `always` ones
//! (and `unless-stopped` ones nobody stopped) that were not running are started too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{info, warn};

use super::Engine;
use crate::model::{next_delay, ContainerStatus};

/// The last wait before each container's restart, for the back-off.
#[derive(Default)]
pub(super) struct Restarts {
    delays: Mutex<HashMap<String, Duration>>,
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
    /// A user started (`ctl start`) or stopped (`stop`, `kill`) container `name`: a stop ends its policy's
    /// restarts until the next start; a start clears that and the count, as Docker's.
    pub(super) fn note_user(&self, name: &str, stopped: bool) {
        let result = self.update_record(name, |_, r| {
            r.stopped_by_user = stopped;
            if !stopped {
                r.restart_count = 0;
            }
            Ok(())
        });
        if !stopped {
            lock(&self.restarts.delays).remove(name);
        }
        if let Err(e) = result {
            warn!(container = %name, error = %e, "cannot record who stopped or started it");
        }
    }

    /// After container `name`'s exit was recorded: schedules its restart if its policy calls for one.
    pub(super) fn after_exit(self: &Arc<Self>, name: &str) {
        let Some((rec, writer)) = self.view().containers.get(name).map(|c| (c.record.clone(), Arc::clone(&c.writer)))
        else {
            return;
        };
        let code = rec.exit_code.unwrap_or(255);
        if rec.status != ContainerStatus::Exited
            || !rec.restart.restarts_after(code, rec.restart_count, rec.stopped_by_user)
        {
            return;
        }
        let delay = {
            let mut delays = lock(&self.restarts.delays);
            let ran = ran_for(rec.started_at.as_deref(), rec.finished_at.as_deref());
            let delay = next_delay(delays.get(name).copied(), ran);
            delays.insert(name.to_string(), delay);
            delay
        };
        info!(container = %name, exit_code = code, policy = %rec.restart, delay_ms = delay.as_millis() as u64, "restarting by its policy");
        let (engine, owned, finished) = (Arc::clone(self), name.to_string(), rec.finished_at.clone());
        let spawned = std::thread::Builder::new().name("restart".into()).spawn(move || {
            std::thread::sleep(delay);
            // Only if nothing changed since that exit: not started, stopped, removed or made anew.
            let due = engine.view().containers.get(&owned).is_some_and(|c| {
                Arc::ptr_eq(&c.writer, &writer)
                    && c.status() == ContainerStatus::Exited
                    && c.record.finished_at == finished
                    && !c.record.stopped_by_user
            });
            if due {
                engine.restart_by_policy(&owned);
            }
        });
        if let Err(e) = spawned {
            warn!(container = %name, error = %e, "cannot start a thread to restart it");
        }
    }

    /// Starts `name` again by its policy, counting it. A start that fails is an exit of its own for the
    /// policy: recorded in `error` and tried again after the next wait.
    fn restart_by_policy(self: &Arc<Self>, name: &str) {
        let counted = self.update_record(name, |_, r| {
            r.restart_count += 1;
            Ok(r.restart_count)
        });
        match counted {
            Ok(count) => self.container_event(name, "restart", &[("restart_count", &count.to_string())]),
            Err(e) => return warn!(container = %name, error = %e, "cannot count a restart"),
        }
        if let Err(e) = self.start(name) {
            warn!(container = %name, error = %e, "restart by its policy failed");
            self.set_error(name, &format!("restart by its policy failed: {e}"));
            self.after_exit(name);
        }
    }

    /// At the daemon's start: starts the containers that were not running and that their policy starts
    /// with the daemon (`names`: those exited before it started; the ones found dead at re-adoption went
    /// through [`Engine::after_exit`]). On a thread: the mount is served meanwhile.
    pub(super) fn restart_at_open(self: &Arc<Self>, names: Vec<String>) {
        let due: Vec<String> = names
            .into_iter()
            .filter(|n| {
                self.view().containers.get(n).is_some_and(|c| {
                    let r = &c.record;
                    r.status == ContainerStatus::Exited
                        && r.restart.starts_with_daemon(r.exit_code, r.restart_count, r.stopped_by_user)
                })
            })
            .collect();
        if due.is_empty() {
            return;
        }
        let engine = Arc::clone(self);
        let spawned = std::thread::Builder::new().name("restart-at-open".into()).spawn(move || {
            for name in due {
                info!(container = %name, "starting it with the daemon, by its restart policy");
                // `always` comes back even after a user's stop; the start clears that.
                engine.note_user(&name, false);
                if let Err(e) = engine.start(&name) {
                    warn!(container = %name, error = %e, "start by its restart policy failed");
                    engine.set_error(&name, &format!("start by its restart policy failed: {e}"));
                }
            }
        });
        if let Err(e) = spawned {
            warn!(error = %e, "cannot start a thread to start containers by their restart policies");
        }
    }
}
