//! A start's launch, outside the state lock: the steps between its plan and its commit (bind mounts
//! resolved, host ports checked, `/etc` files written, its cgroups made afresh, with a spare monitor's
//! groups where one is taken, the monitor's launch with the network attached before its go, and the
//! forwards into the firewall), and the launch spec the monitor reads. Each step's time is in the daemon's
//! debug log (`launch timings`, `monitor timings`).

use std::time::Instant;

use nix::sys::signal::Signal;
use tracing::debug;

use super::plan::StartPlan;
use super::ports::check_host_ports;
use super::records::ContainerRecord;
use super::Engine;
use crate::error::Error;
use crate::network::{Forwards, Link};
use crate::request::merge_env;
use crate::runtime::spec::{LaunchSpec, Stdio};
use crate::runtime::{self, Launched};
use crate::{attach, json};

impl Engine {
    /// The steps of a start outside the state lock: bind mounts resolved, host ports checked, `/etc` files
    /// written, its cgroup made afresh (a spare monitor's taken), the launch, and its forwards into the
    /// firewall.
    pub(super) fn launch_planned(&self, name: &str, plan: StartPlan) -> Result<Launched, Error> {
        let StartPlan { mut spec, links, nameserver, volumes, privileged, ports, limits, extra_hosts, dns } = plan;
        let t0 = Instant::now();
        spec.binds = self.resolve_binds(volumes, privileged)?;
        check_host_ports(&ports)?;
        let ip = links.first().map(|l| l.ip);
        self.write_etc(name, &mut spec, ip, nameserver, &extra_hosts, &dns)?;
        let etc_us = t0.elapsed().as_micros();
        let spare = self.groups_for_launch(name, &limits, &spec, true).inspect_err(|_| {
            let _ = self.record_launching(name, None);
        })?;
        let (cgroups_us, spared) = (t0.elapsed().as_micros(), spare.is_some());
        // Named once the groups are made afresh (an old group of another name scheme is gone by then).
        spec.cgroup = self.cgroups.birth_group(name);
        spec.cgroup_procs = self.cgroups.procs_files(name);
        let launched = self.launch(name, &spec, &links, spare).and_then(|launched| {
            if let (false, Some(ip)) = (ports.is_empty(), ip) {
                // Claimed again under the forwards lock: a running container may have taken one since.
                let ours = Forwards { name: name.to_string(), ip, ports: ports.clone() };
                if let Err(e) = self.sync_forwards(&self.lock_forwards(), Some(ours)) {
                    runtime::signal_launched(&launched, Signal::SIGKILL);
                    return Err(e);
                }
            }
            Ok(launched)
        });
        if launched.is_err() {
            let _ = self.cgroups.remove(name);
        }
        debug!(container = %name, etc_us, cgroups_us, spare = spared, monitor_us = t0.elapsed().as_micros(), "launch timings");
        launched
    }

    /// The launch spec of `record` running `argv`, with what it keeps of its image's config.
    pub(super) fn launch_spec(&self, record: &ContainerRecord, argv: Vec<String>) -> LaunchSpec {
        let dir = self.container_dir(&record.name);
        LaunchSpec {
            name: record.name.clone(),
            rootfs: self.store.container_path(&record.name),
            argv,
            env: merge_env(&record.image_defaults().env, &record.env),
            cwd: record.run_workdir(),
            hostname: record.run_hostname(),
            user: record.run_user(),
            log: dir.join("log"),
            log_limits: self.log_limits,
            exit_file: dir.join("exit.json"),
            // Found on cgroupfs outside the state lock (`launch_planned`).
            cgroup: None,
            cgroup_procs: Vec::new(),
            network: record.network.clone(),
            netns: None,
            binds: Vec::new(),
            security: record.security.clone(),
            stdio: Stdio { tty: record.tty, interactive: record.interactive, socket: dir.join(attach::SOCKET_NAME) },
            init: record.init.then(|| self.init_path()),
        }
    }

    /// Launches `name` as `spec` says, on a `spare` monitor if one was taken for it.
    pub(super) fn launch(
        &self,
        name: &str,
        spec: &LaunchSpec,
        links: &[Link],
        spare: Option<runtime::spare::Spare>,
    ) -> Result<Launched, Error> {
        let dir = self.container_dir(name);
        let _ = std::fs::remove_file(dir.join("exit.json"));
        // Read by the monitor at once and worthless after a crash: no fsync.
        let bytes = serde_json::to_vec(spec).map_err(|e| runtime::RuntimeError::WriteSpec(e.into()))?;
        json::write_private(&dir.join("launch.json"), &bytes).map_err(runtime::RuntimeError::WriteSpec)?;
        let t0 = Instant::now();
        // A spare is recorded as the monitor when it is taken (`groups_for_launch`).
        let spare_pid = spare.as_ref().map(|s| s.pid);
        runtime::launch(&dir, spare, |monitor_pid| {
            let net_us = t0.elapsed().as_micros();
            // On disk before the go: a daemon that dies from here on finds this start and undoes it. Its
            // sync and the network's attach wait on different things (the disk, the kernel's netlink), so
            // they run side by side; the go waits for both.
            let (recorded, attached) = std::thread::scope(|s| {
                let recording = (spare_pid != Some(monitor_pid)).then(|| {
                    s.spawn(|| {
                        let recorded = self.record_launching(name, Some(monitor_pid));
                        (recorded, t0.elapsed().as_micros())
                    })
                });
                let attached = match links.is_empty() {
                    false => self.network.attach(monitor_pid, links).map_err(Error::from),
                    true => Ok(()),
                };
                // A panic there is one here, as when the two ran in turn.
                let recorded = recording.map(|r| r.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
                (recorded.unwrap_or((Ok(()), 0)), attached)
            });
            let (recorded, recorded_us) = recorded;
            debug!(container = %name, net_us, recorded_us, attached_us = t0.elapsed().as_micros(), "monitor timings");
            recorded.and(attached)
        })
        .inspect_err(|_| {
            let _ = self.record_launching(name, None);
        })
    }

    /// Records (or with `None` clears) the monitor of a start under way in a record that is not running yet.
    pub(super) fn record_launching(&self, name: &str, monitor_pid: Option<i32>) -> Result<(), Error> {
        let monitor_start = monitor_pid.and_then(runtime::start_time);
        self.update_record(name, |_, r| {
            if !r.status.has_process() {
                r.monitor_pid = monitor_pid;
                r.monitor_start = monitor_start;
            }
            Ok(())
        })
    }

    /// Makes the cgroups of `group` afresh with `limits` for a launch of `spec`, and takes a monitor started
    /// ahead for it if it can use one (bridge networking) and one is ready: on v1 that one's groups, its
    /// process in them, become `group`'s. With `container`, `group` is a container's, whose record names
    /// the spare as its monitor before its process is in the container's groups (durably: a daemon that
    /// dies after finds it and ends it).
    pub(super) fn groups_for_launch(
        &self,
        group: &str,
        limits: &crate::cgroups::Limits,
        spec: &crate::runtime::spec::LaunchSpec,
        container: bool,
    ) -> Result<Option<crate::runtime::spare::Spare>, Error> {
        self.cgroups.remove(group)?;
        let bridged = spec.network == crate::network::NetworkMode::Bridge && spec.netns.is_none();
        let record = |pid: i32| !container || self.record_launching(group, Some(pid)).is_ok();
        let spare = bridged.then(|| self.spares.take_for(group, &self.cgroups, record)).flatten();
        // The groups a spare brought have their limits written here, as new ones do.
        self.cgroups.create(group, limits)?;
        Ok(spare)
    }
}
