//! A container's life cycle: creating (and `run`), starting (planned under the lock, launched outside
//! it: `launch`), signalling, stopping, restarting and removing (`rmdir`, and `ctl` remove, which kills first), each
//! as reserve, perform, commit (see the engine's comment). Pausing is in `pause`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tracing::{debug, info, warn};

use super::exits::ExitSlot;
use super::records::{new_record, ContainerRecord};
use super::restart::StartBy;
use super::state::Container;
use super::{Changed, Engine, Response};
use crate::error::Error;
use crate::model::{ContainerStatus, ImageConfig, Op};
use crate::registry::PullSpec;
use crate::request::Ctl;
use crate::runtime::{self, Launched, ProcessHandle};
use crate::{ids, times};

impl Engine {
    /// `containers/run`: a new container of `image` started with `argv`. An image that is not here but is
    /// named by a registry reference is pulled first, as `docker run` does (the same pull as
    /// `images/pull`, shown in `images/pulls`); a pull that fails fails the run with its errno, and nothing
    /// is left.
    pub(super) fn run(
        self: &Arc<Self>,
        image: &str,
        argv: Option<Vec<String>>,
        auto_remove: bool,
    ) -> Result<String, Error> {
        let name = ids::new_id("ps_");
        let reserve = |image: &str| -> Result<(String, ImageConfig), Error> {
            let mut st = self.lock();
            let image = st.usable_image(image)?;
            let (id, config) = (image.record.id.clone(), ImageConfig::from_raw(&image.config_raw));
            st.reserved.insert(name.clone(), Some(id.clone()));
            Ok((id, config))
        };
        let (image_id, image_config) = match (reserve(image), PullSpec::for_run(image)) {
            (Err(Error::NoSuchImage(_)), Some(spec)) => {
                info!(reference = %image, "not here: pulling it to run it");
                let id = self.pull(&spec)?;
                reserve(&id)?
            }
            (reserved, _) => reserved?,
        };
        // A fresh name is nobody else's: snapshot straight into place, then one record, then start. Its events
        // come once it has started: a run that fails leaves nothing, in `events` neither.
        self.mute_events(&name);
        let ran = self.run_named(&name, image_id, image_config, argv, auto_remove);
        self.unmute_events(&name);
        ran.map(|()| name)
    }

    /// The rest of [`Engine::run`], for the container `name` reserved for it.
    fn run_named(
        self: &Arc<Self>,
        name: &str,
        image_id: String,
        image_config: ImageConfig,
        argv: Option<Vec<String>>,
        auto_remove: bool,
    ) -> Result<(), Error> {
        let t0 = Instant::now();
        let record = ContainerRecord {
            image: Some(image_id.clone()),
            image_config: Some(image_config),
            cmd: argv,
            auto_remove,
            ..new_record(name)
        };
        let made = self.store.snapshot_image(&image_id, name).map_err(Error::from).and_then(|()| {
            self.create_container(record).inspect_err(|_| {
                let _ = self.store.delete_container(name);
            })
        });
        if let Err(e) = made {
            self.lock().reserved.remove(name);
            return Err(e);
        }
        let made_us = t0.elapsed().as_micros();
        let started = self.start(name);
        debug!(container = %name, made_us, start_us = t0.elapsed().as_micros(), "run timings");
        if let Err(e) = started {
            if let Err(cleanup) = self.remove_container(name) {
                warn!(container = %name, error = %cleanup, "cannot remove a container whose run failed");
            }
            return Err(e);
        }
        Ok(())
    }

    fn created_event(&self, name: &str, image: Option<&str>) {
        match image {
            Some(image) => self.container_event(name, "create", &[("image", image)]),
            None => self.container_event(name, "create", &[]),
        }
    }

    /// `mkdir containers/NAME`: reserves the name, writes the record, then shows the container.
    pub(super) fn insert_container(&self, record: ContainerRecord) -> Result<(), Error> {
        let name = record.name.clone();
        {
            let mut st = self.lock();
            if st.name_taken(&name) {
                return Err(Error::NameTaken { kind: "container", name });
            }
            st.reserved.insert(name.clone(), None);
        }
        self.create_container(record).inspect_err(|_| {
            self.lock().reserved.remove(&name);
        })
    }

    /// Writes the record of a container whose name is reserved and makes it visible in its place.
    fn create_container(&self, record: ContainerRecord) -> Result<(), Error> {
        let name = record.name.clone();
        let record_image = record.image.clone();
        let dir = self.container_dir(&name);
        std::fs::create_dir_all(&dir).map_err(Error::record(format!("the directory of container '{name}'")))?;
        if let Err(e) = self.save(&record) {
            // Its entry may have reached the log before the failure: a restart must not show it.
            let _ = self.forget(&name);
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        let mut st = self.lock();
        st.reserved.remove(&name);
        st.containers.insert(name.clone(), Arc::new(Container::new(record)));
        st.notify(Changed::Container(name.clone()));
        drop(st);
        info!(container = %name, "created container");
        self.created_event(&name, record_image.as_deref());
        Ok(())
    }

    pub(super) fn remove_container(&self, name: &str) -> Result<(), Error> {
        self.remove_container_if(name, |_| true).map(|_| ())
    }

    /// Removes container `name` if `wanted` says so of it, under its record lock; false if not wanted.
    pub(super) fn remove_container_if(
        &self,
        name: &str,
        wanted: impl FnOnce(&Container) -> bool,
    ) -> Result<bool, Error> {
        let record = {
            let _held = self.writing(name)?;
            let mut st = self.lock();
            if !wanted(st.container(name)?) {
                return Ok(false);
            }
            let c = st.container_mut(name)?;
            c.gate(Op::Remove)?;
            c.transition = Some(ContainerStatus::Removing);
            let record = c.record.clone();
            st.notify(Changed::Container(name.to_string()));
            record
        };
        let removed = self.remove_files(name, &record);
        let mut st = self.lock();
        match removed {
            Ok(()) => {
                st.containers.remove(name);
                info!(container = %name, "removed container");
            }
            Err(_) => st.container_mut(name)?.transition = None,
        }
        st.notify(Changed::Container(name.to_string()));
        drop(st);
        if removed.is_ok() {
            self.container_event(name, "remove", &[]);
            self.remove_anonymous_volumes(&record);
            self.forget_restarts(name);
        }
        removed.map(|()| true)
    }

    /// What `rm` deletes, record first: a crash after it leaves only a subvolume, which the next start sweeps.
    fn remove_files(&self, name: &str, record: &ContainerRecord) -> Result<(), Error> {
        self.cgroups.remove(name)?;
        let dir = self.container_dir(name);
        self.forget(name)?;
        if let Err(e) = self.store.delete_container(name) {
            // The snapshot stays, so the record goes back. If that write fails too, the container is in
            // memory only until the daemon ends: said in its log, beside the delete's own error.
            if let Err(save) = self.save(record) {
                warn!(container = name, error = %save, "its snapshot stays but its record could not be written back: it is gone after a daemon restart");
            }
            return Err(e.into());
        }
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    /// A verb of `ctl`: a start (and a restart) answers the slot its run's exit code will fill.
    pub(super) fn ctl(self: &Arc<Self>, name: &str, verb: Ctl) -> Result<Response, Error> {
        // A user's start and stop say whether its restart policy may bring it back (see `restart`).
        // A user's stop ends its restart policy's restarts; a restart's own stop is a user's too (no policy
        // restart races it); a user's start (a restart's too) clears that as it marks the run (`StartBy`).
        match verb {
            Ctl::Stop(_) | Ctl::Restart(_) | Ctl::Remove => {
                self.view().container(name).map(|_| self.note_user_stop(name))?
            }
            Ctl::Kill(signal) if ends_it(signal) => self.view().container(name).map(|_| self.note_user_stop(name))?,
            _ => {}
        }
        match verb {
            Ctl::Start => self.start(name).map(Response::Started),
            Ctl::Stop(grace) => self.stop(name, grace).map(|()| Response::Done),
            Ctl::Restart(grace) => self.restart(name, grace).map(Response::Started),
            Ctl::Kill(signal) => self.kill(name, signal).map(|()| Response::Done),
            Ctl::Pause => self.pause(name).map(|()| Response::Done),
            Ctl::Unpause => self.unpause(name).map(|()| Response::Done),
            Ctl::Remove => self.force_remove(name).map(|()| Response::Done),
            Ctl::CloseStdin => self.close_stdin(name).map(|()| Response::Done),
        }
    }

    /// `ctl` kill: one signal to its process (ESRCH if none runs); a paused one is thawed after it, so
    /// that it takes the signal (Docker's kill): it is running then.
    fn kill(&self, name: &str, signal: Signal) -> Result<(), Error> {
        self.running_process(name, Op::Kill)?.signal(signal)?;
        self.container_event(name, "kill", &[("signal", &(signal as i32).to_string())]);
        self.thaw_if_paused(name)
    }

    /// `ctl` restart: a stop with `grace` if it runs (paused too), then a start; a container that doesn't
    /// run is just started. The slot answered is the new run's. An `auto_remove` container is not removed
    /// by the exit between them (Docker's restart); if the start fails, it is then.
    fn restart(self: &Arc<Self>, name: &str, grace: Duration) -> Result<ExitSlot, Error> {
        let writer = {
            let mut st = self.lock();
            let c = st.container_mut(name)?;
            c.restarts += 1;
            Arc::clone(&c.writer)
        };
        let restarted = self.stop(name, grace).and_then(|()| self.start(name));
        let mut st = self.lock();
        let remove = match st.container_mut(name) {
            Ok(c) if Arc::ptr_eq(&c.writer, &writer) => {
                c.restarts = c.restarts.saturating_sub(1);
                c.record.auto_remove && c.record.status == ContainerStatus::Exited
            }
            _ => false,
        };
        drop(st);
        if restarted.is_ok() {
            // After its stop's and its start's, as Docker tells a restart.
            self.container_event(name, "restart", &[]);
        }
        if remove {
            self.remove_exited(name, writer);
        }
        restarted
    }

    /// `ctl` remove (`docker rm -f`): SIGKILL to its process if one runs (paused too), its exit waited for,
    /// then removed as `rmdir` removes it. A container that doesn't run is just removed; one that an
    /// `auto_remove` removes meanwhile is gone as asked.
    fn force_remove(&self, name: &str) -> Result<(), Error> {
        match self.kill(name, Signal::SIGKILL) {
            Ok(()) => {}
            Err(e) if e.errno() == libc::ESRCH => {}
            Err(e) => return Err(e),
        }
        // SIGKILL ends it unless it is stuck in the kernel; the watcher records the exit.
        self.wait_stopped(name, Duration::from_secs(10));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.remove_container(name) {
                // Found by the kill, gone since: removed by another request (an auto_remove), as asked.
                Err(Error::NoSuchContainer(_)) => return Ok(()),
                // An auto_remove of its exit under way: its end is waited for.
                Err(e @ Error::WrongState { status: ContainerStatus::Removing, .. }) => {
                    if Instant::now() >= deadline {
                        return Err(e);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                done => return done,
            }
        }
    }

    /// A handle on the running container's process, if `op` may run now: ESRCH if none runs.
    pub(super) fn running_process(&self, name: &str, op: Op) -> Result<ProcessHandle, Error> {
        let gone = || Error::WrongState { name: name.to_string(), status: ContainerStatus::Exited, op };
        let (pid, start, monitor) = {
            let st = self.lock();
            let c = st.container(name)?;
            c.gate(op)?;
            let r = &c.record;
            (r.pid.ok_or_else(gone)?, r.pid_start, r.monitor_pid.zip(r.monitor_start))
        };
        let handle = match (start, monitor) {
            (Some(start), _) => ProcessHandle::open(pid, start),
            // No start time (a record from an older daemon, or a process gone before it could be read): the
            // pid is the container's only while its own monitor is its parent.
            (None, Some((monitor, monitor_start))) => ProcessHandle::open_child(pid, monitor, monitor_start),
            (None, None) => None,
        };
        handle.ok_or_else(gone)
    }

    /// Starts `name`; the slot answered is filled with this run's exit code when it ends.
    pub(super) fn start(self: &Arc<Self>, name: &str) -> Result<ExitSlot, Error> {
        self.start_by(name, StartBy::User)?.ok_or_else(|| Error::Invalid(format!("'{name}' was not started")))
    }

    /// A start of `name` for `by`; `None` when `by` is a policy's or the daemon's and it is no longer due
    /// (checked again under the record lock, so a user's stop, start, removal or change of policy since
    /// always wins).
    pub(super) fn start_by(self: &Arc<Self>, name: &str, by: StartBy) -> Result<Option<ExitSlot>, Error> {
        if !self.view().container(name).is_ok_and(|c| by.due(c)) {
            return Ok(None);
        }
        // Refused here as the plan below would refuse it, before any volume is made for it.
        self.view().container(name)?.gate(Op::Start)?;
        self.ensure_anonymous_volumes(name)?;
        let (plan, had_ip) = {
            let _held = self.writing(name)?;
            let mut st = self.lock();
            if !by.due(st.container(name)?) {
                return Ok(None);
            }
            let plan = self.plan_start(&st, name)?;
            let c = st.container_mut(name)?;
            // Held in memory from here, so a concurrent start never picks it too; on disk with the start,
            // given back if it fails.
            let had_ip = std::mem::replace(&mut c.record.ip, plan.ip);
            let had_addresses = std::mem::replace(&mut c.record.net_addresses, plan.net_addresses.clone());
            c.transition = Some(ContainerStatus::Starting);
            st.notify(Changed::Container(name.to_string()));
            (plan.plan, (had_ip, had_addresses))
        };
        let has_ports = !plan.ports.is_empty();
        let t0 = Instant::now();
        let launched = self.launch_planned(name, plan);
        debug!(container = %name, launch_us = t0.elapsed().as_micros(), "launched");
        let committed = launched.and_then(|launched| {
            let held = self.writing(name)?;
            let Launched { pid, pid_start, monitor_pid, monitor_start } = launched;
            let mark_running = |_: &Container, rec: &mut ContainerRecord| {
                rec.status = ContainerStatus::Running;
                rec.pid = Some(pid);
                rec.pid_start = pid_start;
                rec.monitor_pid = Some(monitor_pid);
                rec.monitor_start = Some(monitor_start);
                rec.started_at = Some(times::now_rfc3339());
                rec.exit_code = None;
                rec.finished_at = None;
                by.mark(rec);
                Ok(())
            };
            let slot = ExitSlot::default();
            let ours = slot.clone();
            let saved = self.commit_record(&held, name, mark_running, |c| {
                c.transition = None;
                c.exit = ours;
            });
            saved.inspect_err(|_| runtime::signal_launched(&launched, Signal::SIGKILL)).map(|()| (launched, slot))
        });
        let (launched, slot) = match committed {
            Ok(done) => done,
            Err(e) => {
                let held = self.writing(name);
                let mut st = self.lock();
                if let Ok(c) = st.container_mut(name) {
                    c.transition = None;
                    if held.is_ok() {
                        (c.record.ip, c.record.net_addresses) = had_ip;
                    }
                }
                st.notify(Changed::Container(name.to_string()));
                drop(st);
                drop(held);
                if has_ports {
                    // Its claims were in the firewall while it started: out again.
                    let _ = self.sync_forwards(&self.lock_forwards(), None);
                }
                return Err(e);
            }
        };
        info!(container = %name, pid = launched.pid, "started container");
        if self.unmute_events(name) {
            // A `run`'s: made and started in one request that succeeds now.
            let image = self.view().containers.get(name).and_then(|c| c.record.image.clone());
            self.created_event(name, image.as_deref());
        }
        if let StartBy::Policy(_) = by {
            let count = self.view().containers.get(name).map_or(0, |c| c.record.restart_count);
            self.container_event(name, "restart", &[("restart_count", &count.to_string())]);
        }
        self.container_event(name, "start", &[]);
        self.changed.notify_all();
        self.watch(name, launched.monitor_pid, launched.monitor_start);
        Ok(Some(slot))
    }

    /// Its stop signal (SIGTERM unless it or its image says otherwise), the grace period, then SIGKILL;
    /// `stopping` meanwhile; a paused one is thawed after each signal, so that it takes it. Returns once it
    /// has exited (or, if even SIGKILL doesn't end it within 10 s, with it still running). A container
    /// that doesn't run is left as it is, and that is a success (`docker stop`).
    pub(super) fn stop(&self, name: &str, grace: Duration) -> Result<(), Error> {
        let process = match self.running_process(name, Op::Stop) {
            Ok(process) => process,
            Err(e) if e.errno() == libc::ESRCH => {
                // Nothing to stop; a process gone whose exit the watcher is recording yet is waited for.
                self.wait_stopped(name, Duration::from_secs(10));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        // The run this stop marks (its monitor's pid), so it clears only its own mark.
        let marked = {
            let mut st = self.lock();
            let c = st.container_mut(name)?;
            // Its exit may have been recorded since, or another stop marked it: nothing to mark then.
            let mark = matches!(c.status(), ContainerStatus::Running | ContainerStatus::Paused);
            if mark {
                c.transition = Some(ContainerStatus::Stopping);
                st.notify(Changed::Container(name.to_string()));
            }
            st.container(name)?.record.monitor_pid.filter(|_| mark)
        };
        // Its stop signal (its own, else its image's StopSignal), else SIGTERM; one the kernel doesn't
        // know (an odd image) is SIGTERM too.
        let stop_signal = self.view().containers.get(name).map(|c| c.record.run_stop_signal()).unwrap_or_default();
        let signal = crate::request::parse_signal(&stop_signal).unwrap_or(Signal::SIGTERM);
        let kill = |signal: Signal| {
            if process.signal(signal).is_ok() {
                self.container_event(name, "kill", &[("signal", &(signal as i32).to_string())]);
            }
            self.thaw_after_signal(name);
        };
        kill(signal);
        if !self.wait_stopped(name, grace) {
            info!(container = %name, "grace period over: killing");
            kill(Signal::SIGKILL);
            self.wait_stopped(name, Duration::from_secs(10));
        }
        let mut st = self.lock();
        let ours = |c: &Container| c.transition == Some(ContainerStatus::Stopping) && c.record.monitor_pid == marked;
        if marked.is_some() && st.container(name).is_ok_and(ours) {
            st.container_mut(name)?.transition = None;
            st.notify(Changed::Container(name.to_string()));
        }
        drop(st);
        self.container_event(name, "stop", &[]);
        Ok(())
    }

    /// A stop's thaw of a paused container after a signal: a failure is logged, and the stop goes on.
    fn thaw_after_signal(&self, name: &str) {
        if let Err(e) = self.thaw_if_paused(name) {
            warn!(container = %name, error = %e, "cannot thaw the paused container being stopped");
        }
    }

    /// Waits until `name` is no longer running; false on timeout.
    pub(super) fn wait_stopped(&self, name: &str, timeout: Duration) -> bool {
        // A grace period is at most a year (parse_ctl), but an Instant must never overflow.
        let deadline =
            Instant::now().checked_add(timeout).unwrap_or_else(|| Instant::now() + Duration::from_secs(1 << 30));
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let running = st.containers.get(name).is_some_and(|c| c.record.status.has_process());
            let now = Instant::now();
            if !running {
                return true;
            }
            if now >= deadline {
                return false;
            }
            st = self.changed.wait_timeout(st, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}

/// Whether a `kill` with `signal` is a user ending the container (its restart policy stops), rather than
/// a signal it takes and runs on (`kill HUP` to reload).
fn ends_it(signal: Signal) -> bool {
    matches!(signal, Signal::SIGKILL | Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT)
}
