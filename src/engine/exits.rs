//! Watchers and exit bookkeeping: a thread per running container (its monitor) and per running exec (its
//! helper) waits on a pidfd, then the exit record the helper left becomes the container's or exec's.

use std::sync::Arc;

use tracing::{info, warn};

use super::Engine;
use crate::model::ContainerStatus;
use crate::network::NetworkMode;
use crate::runtime::spec::ExitRecord;
use crate::runtime::ProcessHandle;
use crate::{json, times};

impl Engine {
    /// Follows the monitor of `name` until it exits, on a thread of its own.
    pub(super) fn watch(self: &Arc<Self>, name: &str, monitor_pid: i32, monitor_start: u64) {
        match ProcessHandle::open(monitor_pid, monitor_start) {
            Some(handle) => self.watch_handle(name, Some(monitor_pid), handle),
            None => self.monitor_exited(name, Some(monitor_pid)),
        }
    }

    pub(super) fn watch_handle(self: &Arc<Self>, name: &str, monitor_pid: Option<i32>, handle: ProcessHandle) {
        let engine = Arc::clone(self);
        let name = name.to_string();
        std::thread::spawn(move || {
            handle.wait_for_exit();
            engine.monitor_exited(&name, monitor_pid);
        });
    }

    /// Records the end of a container from its monitor's exit record.
    pub(super) fn monitor_exited(&self, name: &str, monitor_pid: Option<i32>) {
        let mut st = self.lock();
        let Some(c) = st.containers.get_mut(name) else { return };
        if c.record.status != ContainerStatus::Running || c.record.monitor_pid != monitor_pid {
            return;
        }
        let mut rec = c.record.clone();
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
        if let Err(e) = json::write_json(&self.container_dir(name).join("record.json"), &rec) {
            warn!(container = %name, error = %e, "cannot write record");
        }
        let had_forwards = rec.network == NetworkMode::Bridge && !rec.ports.is_empty();
        c.record = rec;
        drop(st);
        self.changed.notify_all();
        if had_forwards {
            // Its forwards end with it.
            if let Err(e) = self.sync_forwards(&self.lock_forwards(), None) {
                warn!(container = %name, error = %e, "cannot remove the forwards of an exited container");
            }
        }
    }

    /// Follows the helper of exec `n` of `name` until it exits (at once if it is gone), on a thread of its own.
    pub(super) fn watch_exec(self: &Arc<Self>, name: &str, n: u32, helper: Option<ProcessHandle>) {
        let Some(helper) = helper else { return self.exec_exited(name, n) };
        let engine = Arc::clone(self);
        let name = name.to_string();
        std::thread::spawn(move || {
            helper.wait_for_exit();
            engine.exec_exited(&name, n);
        });
    }

    /// Records the end of an exec from the exit record its helper left.
    pub(super) fn exec_exited(&self, name: &str, n: u32) {
        let mut st = self.lock();
        let Some(e) = st.containers.get_mut(name).and_then(|c| c.execs.get_mut(&n)) else { return };
        let mut rec = e.clone();
        let exit = json::read_json::<ExitRecord>(&self.exec_dir(name, n).join("exit.json")).ok().flatten();
        rec.exit_code = Some(exit.as_ref().map_or(255, |x| x.exit_code));
        rec.finished_at = Some(exit.map_or_else(times::now_rfc3339, |x| x.finished_at));
        rec.status = ContainerStatus::Exited;
        rec.pid = None;
        rec.helper_pid = None;
        rec.helper_start = None;
        if let Err(e) = json::write_json(&self.exec_dir(name, n).join("record.json"), &rec) {
            warn!(container = %name, exec = n, error = %e, "cannot write exec record");
        }
        info!(container = %name, exec = n, exit_code = rec.exit_code, "exec exited");
        *e = rec;
        drop(st);
        self.changed.notify_all();
    }
}
