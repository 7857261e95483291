//! What a reader of `wait` waits for, and when objects last changed (the times the tree shows as mtimes):
//! queries of the state as last published, as every view is (see `views`). The waiting itself is the FUSE
//! side's: it asks again at each change notice of the object.

use std::time::SystemTime;

use super::exits::ExitSlot;
use super::Engine;
use crate::model::{ContainerStatus, ExecStatus};

/// What a read of a container's or an exec's `wait` answers now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// Its process runs (or a start is under way): a read waits. The slot, while it runs, is its run's,
    /// filled at its exit: it still tells the code once the container is gone (`auto_remove`).
    Running(Option<ExitSlot>),
    /// It is not running: a read gives `code`. `run` tells one end from another (its finish time), so a
    /// poll on an open `wait` can tell a new exit from the one it read.
    Ended { code: i32, run: String },
}

/// The code `docker wait` gives for a container that never ran: 0, at once (its `not-running` condition
/// is met by a created container).
const NEVER_RAN: i32 = 0;

impl Engine {
    /// What a read of container `name`'s `wait` answers now; `None` if there is no such container. It waits
    /// while its process runs (paused too), while it is being started and while it is stopping; otherwise it gives its
    /// last exit code (0 if it never ran, as `docker wait` does).
    pub fn container_wait(&self, name: &str) -> Option<Wait> {
        let st = self.view();
        let c = st.containers.get(name)?;
        // Paused is running still, as for docker wait.
        if matches!(c.record.status, ContainerStatus::Running | ContainerStatus::Paused) {
            return Some(Wait::Running(Some(c.exit.clone())));
        }
        if c.status() == ContainerStatus::Starting {
            return Some(Wait::Running(None));
        }
        let run = c.record.finished_at.clone().unwrap_or_default();
        Some(Wait::Ended { code: c.record.exit_code.unwrap_or(NEVER_RAN), run })
    }

    /// What a read of exec `n`'s `wait` answers now; `None` if there is no such exec.
    pub fn exec_wait(&self, name: &str, n: u32) -> Option<Wait> {
        let st = self.view();
        let e = st.containers.get(name)?.execs.get(&n)?;
        Some(match e.status {
            ExecStatus::Starting | ExecStatus::Running => Wait::Running(None),
            ExecStatus::Exited => {
                Wait::Ended { code: e.exit_code.unwrap_or(255), run: e.finished_at.clone().unwrap_or_default() }
            }
        })
    }

    /// When container `name`'s status last changed (made, started, stopping, exited, ...): the mtime of its
    /// directory and of its `status` and `wait`.
    pub fn container_changed_at(&self, name: &str) -> Option<SystemTime> {
        self.view().containers.get(name).map(|c| c.status_since)
    }

    /// When container `name` was made.
    pub fn container_created_at(&self, name: &str) -> Option<SystemTime> {
        self.view().containers.get(name).and_then(|c| parse(&c.record.created))
    }

    /// When exec `n` of `name` last changed: its exit, else its start (to the second).
    pub fn exec_changed_at(&self, name: &str, n: u32) -> Option<SystemTime> {
        let st = self.view();
        let e = st.containers.get(name)?.execs.get(&n)?;
        parse(e.finished_at.as_deref().unwrap_or(&e.started_at))
    }

    /// When image `id` was made (to the second).
    pub fn image_created_at(&self, id: &str) -> Option<SystemTime> {
        self.view().images.get(id).and_then(|i| parse(&i.record.created))
    }
}

fn parse(rfc3339: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(rfc3339).ok()
}
