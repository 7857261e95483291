//! Opening a daemon root: loading every record, dropping what an interrupted request left half-done
//! (records without their subvolume, subvolumes without their record), and re-adopting the containers
//! and execs still running, or recording their end.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, RwLock};

use oci_spec::image::ImageConfiguration;
use tracing::{info, warn};

use super::records::{ContainerRecord, ExecRecord, ImageRecord};
use super::state::{Container, Image, State};
use super::Engine;
use crate::cgroups::{Cgroups, Limits};
use crate::error::Error;
use crate::json;
use crate::logs::LogLimits;
use crate::model::{ContainerStatus, ExecStatus};
use crate::network::Network;
use crate::registry::Registry;
use crate::runtime::watcher::Watcher;
use crate::runtime::ProcessHandle;
use crate::store::Store;
use crate::wal::{Entry, Wal};

impl Engine {
    /// Loads every record under `state_dir`, drops what an interrupted request left half-done, and
    /// re-adopts containers that are still running. `event_limits` bound the `events` file (see `events`).
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        state_dir: &Path,
        store: Store,
        registry: Registry,
        cgroups: Cgroups,
        network: Network,
        defaults: Limits,
        log_limits: LogLimits,
        event_limits: LogLimits,
    ) -> Result<Arc<Engine>, Error> {
        for sub in ["images", "containers"] {
            std::fs::create_dir_all(state_dir.join(sub))
                .map_err(Error::record(format!("the state directory {sub}")))?;
        }
        crate::store::private(state_dir).map_err(Error::record("the state directory's mode"))?;
        // A build's RUN a dead daemon left running is ended before its snapshot is swept away.
        super::build::end_cut_steps(state_dir, &cgroups);
        store.sweep_builds();
        // Resolved: the files it bind-mounts into containers are opened following no symlink.
        let state_dir = &std::fs::canonicalize(state_dir).map_err(Error::record("the state directory"))?;
        let containers = state_dir.join("containers");
        let records_log = Wal::open(&state_dir.join("containers.wal"), |entries| replay(&containers, entries))
            .map_err(Error::record("the container records' log"))?;
        let mut state = State::default();
        let mut legacy = Vec::new();
        for (id, dir) in record_dirs(&state_dir.join("images")) {
            match load_image(&dir) {
                Some((image, named)) if store.image_path(&id).is_dir() => {
                    if !named {
                        legacy.push(id.clone());
                    }
                    state.images.insert(id, Arc::new(image));
                }
                _ => {
                    warn!(image = %id, "dropping an image left half-done");
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
        }
        super::names::migrate(&mut state.images, &legacy);
        for (name, dir) in record_dirs(&state_dir.join("containers")) {
            match json::read_json::<ContainerRecord>(&dir.join("record.json")) {
                Ok(Some(mut record)) => {
                    if !record.status.is_settled() {
                        // Never written by this daemon; an older or foreign record: it did not finish.
                        warn!(container = %name, status = record.status.as_str(), "a stored transition: exited");
                        record.status = ContainerStatus::Exited;
                    }
                    if record.created.is_empty() {
                        // A record without its creation time: its start's is the best left (the last
                        // start's: a record keeps no earlier one), else none.
                        record.created = record.started_at.clone().unwrap_or_default();
                    }
                    if record.image_config.is_none() {
                        // A record older than kept configs: its image's, once, so it no longer needs the image.
                        let image = record.image.as_deref().and_then(|id| state.images.get(id));
                        if let Some(image) = image {
                            record.image_config = Some(crate::model::ImageConfig::from_raw(&image.config_raw));
                            // Its `cmd` was its whole argv then: it runs without the image's entrypoint still.
                            if record.cmd.is_some() && record.entrypoint.is_none() {
                                record.entrypoint = Some(Vec::new());
                            }
                            if let Err(e) = json::write_json(&dir.join("record.json"), &record) {
                                warn!(container = %name, error = %e, "cannot save the image config it keeps");
                            }
                        }
                    }
                    let mut c = Container::new(record);
                    for (id, exec_dir) in record_dirs(&dir.join("execs")) {
                        let loaded = json::read_json::<ExecRecord>(&exec_dir.join("record.json"));
                        match (id.parse::<u32>(), loaded) {
                            (Ok(n), Ok(Some(exec))) if exec.id == n => {
                                c.execs.insert(n, exec);
                            }
                            _ => {
                                warn!(container = %name, exec = %id, "dropping an exec left half-done");
                                let _ = std::fs::remove_dir_all(&exec_dir);
                            }
                        }
                    }
                    state.containers.insert(name, Arc::new(c));
                }
                _ => {
                    warn!(container = %name, "dropping a container left half-done");
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
        }
        let chains: std::collections::HashSet<String> = state
            .images
            .values()
            .flat_map(|i| i.record.chain.iter().map(|c| c.trim_start_matches("sha256:").to_string()))
            .collect();
        store.sweep(|kind, name| match kind {
            "images" => state.images.contains_key(name),
            "layers" => chains.contains(name),
            _ => state.containers.contains_key(name),
        });
        state.volumes = store.volumes().into_iter().collect();
        state.networks = super::networks::load(state_dir, &network);
        info!(
            images = state.images.len(),
            containers = state.containers.len(),
            volumes = state.volumes.len(),
            "loaded records"
        );
        let watcher = Watcher::new()?;
        let engine = Arc::new(Engine {
            state_dir: state_dir.to_path_buf(),
            records_log,
            store,
            registry,
            cgroups,
            network: Arc::new(network),
            forwards: Mutex::new(()),
            defaults,
            log_limits,
            pulling: Mutex::new(Vec::new()),
            pulled: Condvar::new(),
            published: RwLock::new(Arc::new(state.clone())),
            state: Mutex::new(state),
            changed: Condvar::new(),
            errors: Mutex::new(()),
            protected: std::sync::OnceLock::new(),
            watcher,
            exit_saves: Default::default(),
            notices: Default::default(),
            events: super::events::Events::open(&state_dir.join("events"), event_limits),
            restarts: Default::default(),
            exited_at_open: Mutex::new(Vec::new()),
            init_path: std::sync::OnceLock::new(),
            loose_steps: std::sync::OnceLock::new(),
            build_gate: Mutex::new(()),
            spares: Default::default(),
            making_images: Mutex::new(()),
            network_changes: Mutex::new(()),
            dns: std::sync::OnceLock::new(),
        });
        engine.start_watcher()?;
        {
            let builds = engine.load_builds();
            let mut st = engine.lock();
            st.next_build = builds.iter().map(|b| b.n + 1).max().unwrap_or(1);
            st.builds = builds.into_iter().map(|b| (b.n, Arc::new(b))).collect();
        }
        engine.undo_cut_starts();
        // Those not running now, for their restart policies (once the daemon is ready: `start_by_policies`);
        // the ones found dead below go through their policy as any exit does.
        *lock_vec(&engine.exited_at_open) = engine
            .view()
            .containers
            .values()
            .filter(|c| c.record.status == ContainerStatus::Exited)
            .map(|c| c.record.name.clone())
            .collect();
        engine.adopt();
        engine.remove_exited_at_open();
        // The firewall table is written whole: the masquerade, and the forwards of re-adopted containers.
        engine.sync_forwards(&engine.lock_forwards(), None)?;
        Ok(engine)
    }

    /// Undoes the starts a dead daemon left between its monitor's launch and its record's `running`: the
    /// monitor is killed (its container dies with it) and forgotten.
    pub(super) fn undo_cut_starts(&self) {
        let cut: Vec<(String, i32, Option<u64>)> = self
            .view()
            .containers
            .values()
            .filter(|c| !c.record.status.has_process())
            .filter_map(|c| Some((c.record.name.clone(), c.record.monitor_pid?, c.record.monitor_start)))
            .collect();
        for (name, pid, start) in cut {
            if let Some(monitor) = start.and_then(|start| ProcessHandle::open(pid, start)) {
                warn!(container = %name, monitor = pid, "a start cut short by the daemon's end: killing it");
                let _ = monitor.signal(nix::sys::signal::Signal::SIGKILL);
                monitor.wait_for_exit();
            } else {
                warn!(container = %name, monitor = pid, "a start cut short by the daemon's end: it never ran");
            }
            let cleared = self.update_record(&name, |_, r| {
                r.monitor_pid = None;
                r.monitor_start = None;
                Ok(())
            });
            if let Err(e) = cleared {
                warn!(container = %name, error = %e, "cannot clear the record of a cut start");
            }
        }
    }

    /// Removes the exited `auto_remove` containers the last daemon left (it ended between an exit and its
    /// removal); those that exited while no daemon ran are removed as `adopt` records their exit.
    fn remove_exited_at_open(self: &Arc<Self>) {
        let exited: Vec<(String, Arc<super::state::RecordLock>)> = self
            .view()
            .containers
            .values()
            .filter(|c| c.record.auto_remove && c.record.status == ContainerStatus::Exited)
            .map(|c| (c.record.name.clone(), Arc::clone(&c.writer)))
            .collect();
        for (name, writer) in exited {
            self.remove_exited(&name, writer);
        }
    }

    /// Watches containers recorded as running or paused: alive ones are re-adopted (running or paused as
    /// their freezer says), dead ones marked exited.
    pub(super) fn adopt(self: &Arc<Self>) {
        let running: Vec<(String, Option<i32>, Option<u64>)> = self
            .view()
            .containers
            .values()
            .filter(|c| c.record.status.has_process())
            .map(|c| (c.record.name.clone(), c.record.monitor_pid, c.record.monitor_start))
            .collect();
        for (name, pid, start) in running {
            // Decided here, before the mount is served: a reader never sees a dead container running.
            match pid.zip(start).and_then(|(pid, start)| ProcessHandle::open(pid, start)) {
                Some(handle) => {
                    info!(container = %name, monitor = pid, "re-adopting running container");
                    self.reconcile_freezer(&name);
                    self.watch_handle(&name, pid, handle);
                }
                None => self.monitor_exited(&name, pid),
            }
        }
        let running_execs: Vec<(String, u32, Option<i32>, Option<u64>)> = self
            .view()
            .containers
            .values()
            .flat_map(|c| c.execs.values().map(move |e| (c, e)))
            .filter(|(_, e)| e.status == ExecStatus::Running)
            .map(|(c, e)| (c.record.name.clone(), e.id, e.helper_pid, e.helper_start))
            .collect();
        for (name, n, pid, start) in running_execs {
            let handle = pid.zip(start).and_then(|(pid, start)| ProcessHandle::open(pid, start));
            self.watch_exec(&name, n, handle);
        }
    }
}

fn lock_vec(m: &Mutex<Vec<String>>) -> std::sync::MutexGuard<'_, Vec<String>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Engine {
    /// Where the init of containers with `init` is taken from (the daemon's `--init-path`); set once.
    pub fn set_init_path(&self, path: PathBuf) {
        let _ = self.init_path.set(path);
    }

    pub(super) fn init_path(&self) -> PathBuf {
        self.init_path.get().cloned().unwrap_or_else(|| PathBuf::from(crate::runtime::pid1::DEFAULT_INIT_PATH))
    }

    /// Starts the containers their restart policies start with the daemon (see `restart`); called once
    /// the daemon is ready to start containers.
    pub fn start_by_policies(self: &Arc<Self>) {
        let names = std::mem::take(&mut *lock_vec(&self.exited_at_open));
        self.restart_at_open(names);
    }
}

/// Directories under `dir`, by name.
pub(super) fn record_dirs(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect()
}

/// An image's record and config, and whether the record has names (one written before names has none).
pub(super) fn load_image(dir: &Path) -> Option<(Image, bool)> {
    #[derive(serde::Deserialize)]
    struct Names {
        names: Option<serde::de::IgnoredAny>,
    }
    let raw = std::fs::read(dir.join("record.json")).ok()?;
    let record: ImageRecord = serde_json::from_slice(&raw).ok()?;
    let named = serde_json::from_slice::<Names>(&raw).is_ok_and(|n| n.names.is_some());
    let config_raw = std::fs::read(dir.join("config.json")).ok()?;
    let config = ImageConfiguration::from_reader(config_raw.as_slice()).ok()?;
    Some((Image { record, config, config_raw }, named))
}

/// Writes what the records' log held onto the container records under `containers`: each one's last
/// change (a daemon that ended may not have had its files reach the disk). A record removed is removed;
/// its directory and subvolume are swept as any record-less leftover is.
fn replay(containers: &Path, entries: Vec<Entry>) -> std::io::Result<()> {
    let mut last = std::collections::BTreeMap::new();
    for entry in entries {
        last.insert(entry.name().to_string(), entry);
    }
    info!(records = last.len(), "replaying the container records' log");
    for (name, entry) in last {
        if crate::request::validate_name(&name).is_err() {
            warn!(container = %name, "the records' log names no container: skipped");
            continue;
        }
        let dir = containers.join(&name);
        match entry {
            Entry::Put { bytes, .. } => {
                std::fs::create_dir_all(&dir)?;
                json::write_unsynced(&dir.join("record.json"), &bytes)?;
            }
            Entry::Remove { .. } => match std::fs::remove_file(dir.join("record.json")) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            },
        }
    }
    Ok(())
}
