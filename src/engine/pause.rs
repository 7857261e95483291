//! Pausing and unpausing a container with the cgroup freezer (`ctl` pause, unpause), and the thaw that
//! follows a signal to a paused one (stop, kill, remove), as Docker's: a frozen process takes a signal only
//! once thawed.
//!
//! `paused` is a settled status, stored in the record: a restarted daemon shows it, and takes the kernel's
//! word over the record's where a daemon that died between the freeze and the record left them apart
//! ([`Engine::reconcile_freezer`]). A pause is reserve (the gate, then `pausing`), perform (the freeze,
//! waited for outside every lock), commit (the record, under the record lock): the watcher records an exit
//! meanwhile as ever, and the pause then fails with "not running", its group thawed again.

use std::time::Duration;

use tracing::{info, warn};

use super::{Changed, Engine};
use crate::error::Error;
use crate::model::{ContainerStatus, Op};

/// How long a pause waits for the kernel to say every process of the container is frozen.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(10);

impl Engine {
    /// `ctl` pause: its cgroup frozen, then `paused` recorded. Refused unless it is running (ESRCH if no
    /// process runs, EBUSY if it is paused already or a request is under way).
    pub(super) fn pause(&self, name: &str) -> Result<(), Error> {
        let monitor = {
            let mut st = self.lock();
            let c = st.container_mut(name)?;
            c.gate(Op::Pause)?;
            c.transition = Some(ContainerStatus::Pausing);
            let monitor = c.record.monitor_pid;
            st.notify(Changed::Container(name.to_string()));
            monitor
        };
        let paused = self.cgroups.freeze(name, FREEZE_TIMEOUT).map_err(Error::from).and_then(|()| {
            let held = self.writing(name)?;
            let mark = |_: &super::state::Container, r: &mut super::ContainerRecord| {
                // Its exit may have been recorded while it froze: a group of nobody is no pause.
                if r.status != ContainerStatus::Running || r.monitor_pid != monitor {
                    return Err(Error::WrongState { name: name.to_string(), status: r.status, op: Op::Pause });
                }
                r.status = ContainerStatus::Paused;
                Ok(())
            };
            self.commit_record(&held, name, mark, |c| {
                if c.transition == Some(ContainerStatus::Pausing) {
                    c.transition = None;
                }
            })
        });
        if let Err(e) = &paused {
            if !matches!(e, Error::Freeze(_)) {
                // Frozen, but not recorded: thawed again, so that nothing changed.
                if let Err(thaw) = self.cgroups.thaw(name) {
                    warn!(container = %name, error = %thaw, "cannot thaw a container whose pause failed");
                }
            }
            let mut st = self.lock();
            if let Ok(c) = st.container_mut(name) {
                if c.transition == Some(ContainerStatus::Pausing) {
                    c.transition = None;
                }
            }
            st.notify(Changed::Container(name.to_string()));
            return paused;
        }
        info!(container = %name, "paused container");
        self.container_event(name, "pause", &[]);
        self.changed.notify_all();
        Ok(())
    }

    /// `ctl` unpause: its cgroup thawed, then `running` recorded. Refused unless it is paused.
    pub(super) fn unpause(&self, name: &str) -> Result<(), Error> {
        let held = self.writing(name)?;
        self.lock().container(name)?.gate(Op::Unpause)?;
        self.thaw_recorded(&held, name)?;
        info!(container = %name, "unpaused container");
        self.container_event(name, "unpause", &[]);
        Ok(())
    }

    /// Thaws `name` if it is paused, so that a signal just sent is taken (as Docker's stop and kill do);
    /// nothing if it isn't.
    pub(super) fn thaw_if_paused(&self, name: &str) -> Result<(), Error> {
        let held = self.writing(name)?;
        let paused = self.lock().container(name).is_ok_and(|c| c.record.status == ContainerStatus::Paused);
        if !paused {
            return Ok(());
        }
        self.thaw_recorded(&held, name)?;
        info!(container = %name, "thawed a paused container so that it takes its signal");
        self.container_event(name, "unpause", &[]);
        Ok(())
    }

    /// Thaws the group of `name` (whose record lock is `held`) and records it `running`; frozen again if
    /// the record can't be written, so nothing changed.
    fn thaw_recorded(&self, held: &super::state::Writing, name: &str) -> Result<(), Error> {
        self.cgroups.thaw(name)?;
        let running = |_: &super::state::Container, r: &mut super::ContainerRecord| {
            if r.status == ContainerStatus::Paused {
                r.status = ContainerStatus::Running;
            }
            Ok(())
        };
        let saved = self.commit_record(held, name, running, |_| {});
        if saved.is_err() {
            if let Err(e) = self.cgroups.freeze(name, Duration::from_secs(1)) {
                warn!(container = %name, error = %e, "cannot freeze again a container whose thaw was not recorded");
            }
        }
        self.changed.notify_all();
        saved
    }

    /// At open, for a container re-adopted running or paused: the freezer's state is the truth (a daemon
    /// may have died between a freeze or a thaw and its record), so the record follows it.
    pub(super) fn reconcile_freezer(&self, name: &str) {
        let Some(frozen) = self.cgroups.freeze_requested(name) else { return };
        let follows = |status| match (status, frozen) {
            (ContainerStatus::Running, true) => ContainerStatus::Paused,
            (ContainerStatus::Paused, false) => ContainerStatus::Running,
            (status, _) => status,
        };
        let Some(recorded) = self.view().containers.get(name).map(|c| c.record.status) else { return };
        if follows(recorded) == recorded {
            return;
        }
        info!(container = %name, recorded = recorded.as_str(), frozen, "the record follows the freezer");
        let fixed = self.update_record(name, |_, r| {
            r.status = follows(r.status);
            Ok(())
        });
        if let Err(e) = fixed {
            warn!(container = %name, error = %e, "cannot record the freezer's state of a re-adopted container");
        }
    }
}
