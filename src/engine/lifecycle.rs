//! A container's life cycle: creating (and `run`), starting (the launch spec, its cgroup, the launch),
//! signalling, stopping and removing.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tracing::{debug, info, warn};

use super::records::{new_record, ContainerRecord};
use super::state::{Container, Image};
use super::{Changed, Engine};
use crate::error::Error;
use crate::model::ContainerStatus;
use crate::request::{merge_env, Ctl};
use crate::runtime::spec::LaunchSpec;
use crate::runtime::{self, Launched, ProcessHandle};
use crate::{ids, json, times};

impl Engine {
    pub(super) fn run(self: &Arc<Self>, image: &str, argv: Option<Vec<String>>) -> Result<String, Error> {
        let t0 = Instant::now();
        let image_id = self.lock().resolve_image(image)?.record.id.clone();
        let name = ids::new_id("ps_");
        // A fresh name is nobody else's: snapshot straight into place, then one record, then start.
        self.store.snapshot_image(&image_id, &name)?;
        let snapshot_us = t0.elapsed().as_micros();
        let record = ContainerRecord { image: Some(image_id), cmd: argv, ..new_record(&name) };
        if let Err(e) = self.insert_container(record) {
            let _ = self.store.delete_container(&name);
            return Err(e);
        }
        let record_us = t0.elapsed().as_micros();
        let started = self.start(&name);
        debug!(container = %name, snapshot_us, record_us, start_us = t0.elapsed().as_micros(), "run timings");
        if let Err(e) = started {
            if let Err(cleanup) = self.remove_container(&name) {
                warn!(container = %name, error = %cleanup, "cannot remove a container whose run failed");
            }
            return Err(e);
        }
        Ok(name)
    }

    /// Writes a new container's record and makes it visible.
    pub(super) fn insert_container(&self, record: ContainerRecord) -> Result<(), Error> {
        let mut st = self.lock();
        let name = record.name.clone();
        if st.containers.contains_key(&name) {
            return Err(Error::Exists(format!("a container named '{name}' exists already")));
        }
        let dir = self.container_dir(&name);
        std::fs::create_dir_all(&dir).map_err(Error::record(format!("the directory of container '{name}'")))?;
        if let Err(e) = self.save(&record) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        info!(container = %name, "created container");
        st.containers.insert(name.clone(), Container::new(record));
        self.notify(Changed::Container(name));
        Ok(())
    }

    pub(super) fn remove_container(&self, name: &str) -> Result<(), Error> {
        let mut st = self.lock();
        let c = st.container(name)?;
        if c.busy || !c.record.status.can_delete() {
            return Err(Error::Busy(format!("container '{name}' is running: stop it first")));
        }
        self.cgroups.remove(name)?;
        // The record goes first: a crash after it leaves only a subvolume, which the next start sweeps.
        let dir = self.container_dir(name);
        std::fs::remove_file(dir.join("record.json")).map_err(Error::record(format!("the record of '{name}'")))?;
        if let Err(e) = self.store.delete_container(name) {
            let _ = self.save(&c.record);
            return Err(e.into());
        }
        let _ = std::fs::remove_dir_all(&dir);
        st.containers.remove(name);
        self.notify(Changed::Container(name.to_string()));
        info!(container = %name, "removed container");
        Ok(())
    }

    pub(super) fn ctl(self: &Arc<Self>, name: &str, verb: Ctl) -> Result<(), Error> {
        match verb {
            Ctl::Start => self.start(name),
            Ctl::Stop(grace) => self.stop(name, grace),
            Ctl::Kill(signal) => self.running_process(name)?.signal(signal).map_err(Error::from),
        }
    }

    /// A handle on the running container's process: ESRCH if it isn't running.
    pub(super) fn running_process(&self, name: &str) -> Result<ProcessHandle, Error> {
        let not_running = || Error::NotRunning(format!("container '{name}' is not running"));
        let (pid, start, monitor) = {
            let st = self.lock();
            let c = st.container(name)?;
            match (c.record.status.can_signal(), c.record.pid) {
                (true, Some(pid)) => (pid, c.record.pid_start, c.record.monitor_pid.zip(c.record.monitor_start)),
                _ => return Err(not_running()),
            }
        };
        let handle = match (start, monitor) {
            (Some(start), _) => ProcessHandle::open(pid, start),
            // No start time (a record from an older daemon, or a process gone before it could be read): the
            // pid is the container's only while its own monitor is its parent.
            (None, Some((monitor, monitor_start))) => ProcessHandle::open_child(pid, monitor, monitor_start),
            (None, None) => None,
        };
        handle.ok_or_else(not_running)
    }

    pub(super) fn start(self: &Arc<Self>, name: &str) -> Result<(), Error> {
        let spec = {
            let mut st = self.lock();
            let c = st.container(name)?;
            if c.busy || !c.record.status.can_start() {
                return Err(Error::Busy(format!("container '{name}' is already running")));
            }
            let reference = c.record.image.clone().ok_or_else(|| {
                Error::Invalid(format!("container '{name}' has no image: write one to its image file first"))
            })?;
            let image = st.resolve_image(&reference)?;
            let spec = self.launch_spec(&c.record, image)?;
            let (plan, privileged) = (self.volume_plan(&st, &c.record)?, c.record.security.privileged);
            let ip = self.address_for(&st, name)?;
            let c = st.container_mut(name)?;
            // Held in memory from here, so a concurrent start never picks it too; on disk with the start.
            c.record.ip = ip;
            c.busy = true;
            (spec, ip, plan, privileged)
        };
        let (mut spec, ip, plan, privileged) = spec;
        let binds = self.resolve_binds(plan, privileged);
        let t0 = Instant::now();
        let held = self.lock_forwards();
        let launched = binds.and_then(|binds| {
            spec.binds = binds;
            self.start_network(name, &mut spec, ip, &held)
        });
        let launched = launched.and_then(|forwards| {
            let launched = self.launch_in_cgroup(name, &spec, ip)?;
            if let Some(forwards) = forwards {
                if let Err(e) = self.sync_forwards(&held, Some(forwards)) {
                    runtime::signal_launched(&launched, Signal::SIGKILL);
                    return Err(e);
                }
            }
            Ok(launched)
        });
        debug!(container = %name, launch_us = t0.elapsed().as_micros(), "launched");
        let mut st = self.lock();
        let c = st.container_mut(name)?;
        c.busy = false;
        let launched = launched?;
        let Launched { pid, pid_start, monitor_pid, monitor_start } = launched;
        let mut rec = c.record.clone();
        rec.status = ContainerStatus::Running;
        rec.pid = Some(pid);
        rec.pid_start = pid_start;
        rec.monitor_pid = Some(monitor_pid);
        rec.monitor_start = Some(monitor_start);
        rec.started_at = Some(times::now_rfc3339());
        rec.exit_code = None;
        rec.finished_at = None;
        if let Err(e) = self.save(&rec) {
            runtime::signal_launched(&launched, Signal::SIGKILL);
            return Err(e);
        }
        c.record = rec;
        self.notify(Changed::Container(name.to_string()));
        drop(st);
        drop(held);
        info!(container = %name, pid, "started container");
        self.changed.notify_all();
        self.watch(name, monitor_pid, monitor_start);
        Ok(())
    }

    pub(super) fn launch_spec(&self, record: &ContainerRecord, image: &Image) -> Result<LaunchSpec, Error> {
        let argv = record.cmd.clone().unwrap_or_else(|| image.default_argv());
        if argv.is_empty() {
            return Err(Error::Invalid(format!(
                "container '{}' has no command and its image has no Cmd: write one to cmd",
                record.name
            )));
        }
        let dir = self.container_dir(&record.name);
        Ok(LaunchSpec {
            name: record.name.clone(),
            rootfs: self.store.container_path(&record.name),
            argv,
            env: merge_env(&image.env(), &record.env),
            cwd: image.working_dir(),
            hostname: record.name.clone(),
            log: dir.join("log"),
            log_limits: self.log_limits,
            exit_file: dir.join("exit.json"),
            cgroup_procs: self.cgroups.procs_files(&record.name),
            network: record.network,
            binds: Vec::new(),
            security: record.security.clone(),
        })
    }

    /// Makes the container's cgroup afresh (so its counters are this run's) with its limits, then launches.
    pub(super) fn launch_in_cgroup(
        &self,
        name: &str,
        spec: &LaunchSpec,
        ip: Option<Ipv4Addr>,
    ) -> Result<Launched, Error> {
        let limits = self.lock().container(name)?.record.limits.or(&self.defaults);
        self.cgroups.remove(name)?;
        self.cgroups.create(name, &limits)?;
        let launched = self.launch(name, spec, ip);
        if launched.is_err() {
            let _ = self.cgroups.remove(name);
        }
        launched
    }

    pub(super) fn launch(&self, name: &str, spec: &LaunchSpec, ip: Option<Ipv4Addr>) -> Result<Launched, Error> {
        let dir = self.container_dir(name);
        let _ = std::fs::remove_file(dir.join("exit.json"));
        // Read by the monitor at once and worthless after a crash: no fsync.
        let bytes = serde_json::to_vec(spec).map_err(|e| runtime::RuntimeError::WriteSpec(e.into()))?;
        json::write_private(&dir.join("launch.json"), &bytes).map_err(runtime::RuntimeError::WriteSpec)?;
        runtime::launch(&dir, |netns_pid| match ip {
            Some(ip) => self.network.attach(netns_pid, ip).map_err(Error::from),
            None => Ok(()),
        })
    }

    pub(super) fn stop(&self, name: &str, grace: Duration) -> Result<(), Error> {
        let process = self.running_process(name)?;
        let _ = process.signal(Signal::SIGTERM);
        if !self.wait_stopped(name, grace) {
            info!(container = %name, "grace period over: killing");
            let _ = process.signal(Signal::SIGKILL);
            self.wait_stopped(name, Duration::from_secs(10));
        }
        Ok(())
    }

    /// Waits until `name` is no longer running; false on timeout.
    pub(super) fn wait_stopped(&self, name: &str, timeout: Duration) -> bool {
        // A grace period is at most a year (parse_ctl), but an Instant must never overflow.
        let deadline =
            Instant::now().checked_add(timeout).unwrap_or_else(|| Instant::now() + Duration::from_secs(1 << 30));
        let mut st = self.lock();
        loop {
            let running = st.containers.get(name).is_some_and(|c| c.record.status == ContainerStatus::Running);
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
