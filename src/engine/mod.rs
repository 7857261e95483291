//! The engine: the one owner of images and containers.
//!
//! Every change arrives as a typed [`Request`] through [`Engine::handle`] (or [`Engine::write`], which
//! parses a control-file write first). State lives behind one mutex that is never held across anything
//! slow but btrfs snapshot and delete ioctls: imports copy outside it, starts and stops mark the container
//! busy and wait outside it. Each change is written to its JSON record before it shows in memory, so a
//! failed request changes nothing and a restarted daemon finds what the last one had.

mod records;
mod volumes;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use oci_spec::image::ImageConfiguration;
use tracing::{debug, info, warn};

pub use crate::model::ContainerStatus;
pub use records::{ContainerRecord, ExecRecord, ImageRecord};

use crate::caller::Caller;
use crate::cgroups::{Cgroups, Limit, Limits};
use crate::error::{errno_name, Error};
use crate::logs::LogLimits;
use crate::model::{VolumeSource, VolumeSpec};
use crate::network::{self, Forwards, Network, NetworkError, NetworkMode, PortMap};
use crate::registry::{PullSpec, PushSource, PushSpec, Registry};
use crate::request::{merge_env, ConfigChange, Ctl, Request, WriteTarget};
use crate::runtime::spec::{BindMount, ExecSpec, ExitRecord, LaunchSpec};
use crate::runtime::{self, Launched, ProcessHandle};
use crate::store::Store;
use crate::{ids, json, times};

/// What a successful request gives back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Done,
    /// The id of the image or container the request made.
    Created(String),
}

/// Which limit a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    CpuWeight,
    CpuMax,
    MemoryMax,
    PidsMax,
}

impl LimitKind {
    pub fn file_name(self) -> &'static str {
        match self {
            LimitKind::CpuWeight => "cpu.weight",
            LimitKind::CpuMax => "cpu.max",
            LimitKind::MemoryMax => "memory.max",
            LimitKind::PidsMax => "pids.max",
        }
    }

    /// A limit of this kind, whatever its value: the key for lookups.
    fn key(self) -> Limit {
        match self {
            LimitKind::CpuWeight => Limit::CpuWeight(0),
            LimitKind::CpuMax => Limit::CpuMax(crate::cgroups::CpuMax { quota: None, period: 0 }),
            LimitKind::MemoryMax => Limit::MemoryMax(crate::cgroups::Max(None)),
            LimitKind::PidsMax => Limit::PidsMax(crate::cgroups::Max(None)),
        }
    }
}

/// The readable properties of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageField {
    Source,
    Created,
    Size,
    Config,
    Digest,
    Layers,
}

/// The readable properties of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainerField {
    Image,
    Cmd,
    Env,
    /// A limit, shown as the kernel has it while running, else as configured (or the default).
    Limit(LimitKind),
    MemoryCurrent,
    MemoryPeak,
    CpuUsage,
    PidsCurrent,
    Events,
    /// The network mode: `bridge`, `none` or `host`.
    Network,
    /// The port forwards, a line each.
    Ports,
    /// The address on the bridge, once given.
    Ip,
    /// Volume lines, `SOURCE:TARGET[:ro]`.
    Volumes,
    /// The container whose volumes this one mounts too.
    VolumesFrom,
    /// `true` or `false`.
    Privileged,
    /// Capabilities added to the default ones, a line each.
    CapAdd,
    Status,
    ExitCode,
    Pid,
    StartedAt,
    FinishedAt,
    Error,
}

struct Image {
    record: ImageRecord,
    config: ImageConfiguration,
    config_raw: Vec<u8>,
}

impl Image {
    fn env(&self) -> Vec<String> {
        self.config.config().as_ref().and_then(|c| c.env().clone()).unwrap_or_default()
    }

    /// Entrypoint followed by Cmd, as Docker combines them.
    fn default_argv(&self) -> Vec<String> {
        let Some(c) = self.config.config() else { return Vec::new() };
        let mut argv = c.entrypoint().clone().unwrap_or_default();
        argv.extend(c.cmd().clone().unwrap_or_default());
        argv
    }

    fn working_dir(&self) -> String {
        self.config.config().as_ref().and_then(|c| c.working_dir().clone()).unwrap_or_default()
    }
}

struct Container {
    record: ContainerRecord,
    /// A start or an image change is in flight: no other change until it ends.
    busy: bool,
    /// Commands run in it with `exec`, by number.
    execs: BTreeMap<u32, ExecRecord>,
}

impl Container {
    fn new(record: ContainerRecord) -> Container {
        Container { record, busy: false, execs: BTreeMap::new() }
    }
}

/// The readable properties of an exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecField {
    Cmd,
    Status,
    ExitCode,
    Pid,
    StartedAt,
    FinishedAt,
}

#[derive(Default)]
struct State {
    images: BTreeMap<String, Image>,
    containers: BTreeMap<String, Container>,
    /// Named volumes; each is a subvolume of the store, its own record.
    volumes: std::collections::BTreeSet<String>,
}

impl State {
    /// An image by id, or the newest one made from `reference` (bocker's `init DIR` names it by its source).
    fn resolve_image(&self, reference: &str) -> Result<&Image, Error> {
        if let Some(image) = self.images.get(reference) {
            return Ok(image);
        }
        self.images
            .values()
            .filter(|i| i.record.source == reference)
            .max_by(|a, b| a.record.created.cmp(&b.record.created))
            .ok_or_else(|| Error::NotFound(format!("no image named '{reference}'")))
    }

    fn container(&self, name: &str) -> Result<&Container, Error> {
        self.containers.get(name).ok_or_else(|| no_container(name))
    }

    fn container_mut(&mut self, name: &str) -> Result<&mut Container, Error> {
        self.containers.get_mut(name).ok_or_else(|| no_container(name))
    }

    /// The forwards of every running container, less `except`'s.
    fn forwards(&self, except: Option<&str>) -> Vec<Forwards> {
        self.containers
            .values()
            .filter(|c| c.record.status == ContainerStatus::Running && Some(c.record.name.as_str()) != except)
            .filter(|c| c.record.network == NetworkMode::Bridge && !c.record.ports.is_empty())
            .filter_map(|c| {
                let ip = c.record.ip?;
                Some(Forwards { name: c.record.name.clone(), ip, ports: c.record.ports.clone() })
            })
            .collect()
    }

    /// Fails if a running container other than `name` forwards a host port `ports` claims.
    fn check_port_claims(&self, name: &str, ports: &[PortMap]) -> Result<(), NetworkError> {
        for other in self.forwards(Some(name)) {
            if let Some(p) = ports.iter().find(|p| other.ports.iter().any(|o| o.clashes_with(p))) {
                return Err(NetworkError::PortClaimed { map: p.to_string(), other: other.name });
            }
        }
        Ok(())
    }
}

/// The size past which `errors` starts afresh.
const ERRORS_MAX: u64 = 1 << 20;

/// The longest message (or path) an `error` or `errors` line holds.
const MESSAGE_MAX: usize = 1024;

/// `s` cut to [`MESSAGE_MAX`] bytes at a character boundary. Messages quote little of their input already;
/// this bounds the rest (an nft or registry message, a long path).
fn bounded(s: &str) -> String {
    let kept = crate::request::prefix(s, MESSAGE_MAX);
    if kept.len() == s.len() {
        s.to_string()
    } else {
        format!("{kept}...")
    }
}

fn no_container(name: &str) -> Error {
    Error::NotFound(format!("no container named '{name}'"))
}

fn line(s: impl std::fmt::Display) -> Vec<u8> {
    format!("{s}\n").into_bytes()
}

/// The owner of all images and containers of one daemon root.
pub struct Engine {
    state_dir: PathBuf,
    store: Store,
    registry: Registry,
    cgroups: Cgroups,
    network: Network,
    /// Held while the firewall's forwards are rewritten, from the snapshot of the state to the write.
    forwards: Mutex<()>,
    /// Limits of containers that set none of their own.
    defaults: Limits,
    /// How much output is kept per container and per exec.
    log_limits: LogLimits,
    /// References being pulled: a second pull of one waits for the first, then finds the image.
    pulling: Mutex<Vec<String>>,
    pulled: Condvar,
    state: Mutex<State>,
    /// Signalled whenever a container's status changes.
    changed: Condvar,
    errors: Mutex<()>,
    /// The daemon's root and mount point, which no volume may expose (see [`Engine::protect`]).
    protected: std::sync::OnceLock<volumes::Protected>,
}

impl Engine {
    /// Names the daemon's root and mount point, so no volume source inside them is accepted.
    pub fn protect(&self, root: &Path, mount: &Path) {
        let _ = self.protected.set(volumes::Protected::new(root, mount));
    }

    fn protected(&self) -> volumes::Protected {
        self.protected.get().cloned().unwrap_or_default()
    }

    /// Loads every record under `state_dir`, drops what an interrupted request left half-done, and
    /// re-adopts containers that are still running.
    pub fn open(
        state_dir: &Path,
        store: Store,
        registry: Registry,
        cgroups: Cgroups,
        network: Network,
        defaults: Limits,
        log_limits: LogLimits,
    ) -> Result<Arc<Engine>, Error> {
        for sub in ["images", "containers"] {
            std::fs::create_dir_all(state_dir.join(sub))
                .map_err(Error::record(format!("the state directory {sub}")))?;
        }
        crate::store::private(state_dir).map_err(Error::record("the state directory's mode"))?;
        // Resolved: the files it bind-mounts into containers are opened following no symlink.
        let state_dir = &std::fs::canonicalize(state_dir).map_err(Error::record("the state directory"))?;
        let mut state = State::default();
        for (id, dir) in record_dirs(&state_dir.join("images")) {
            match load_image(&dir) {
                Some(image) if store.image_path(&id).is_dir() => {
                    state.images.insert(id, image);
                }
                _ => {
                    warn!(image = %id, "dropping an image left half-done");
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
        }
        for (name, dir) in record_dirs(&state_dir.join("containers")) {
            match json::read_json::<ContainerRecord>(&dir.join("record.json")) {
                Ok(Some(record)) => {
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
                    state.containers.insert(name, c);
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
        info!(
            images = state.images.len(),
            containers = state.containers.len(),
            volumes = state.volumes.len(),
            "loaded records"
        );
        let engine = Arc::new(Engine {
            state_dir: state_dir.to_path_buf(),
            store,
            registry,
            cgroups,
            network,
            forwards: Mutex::new(()),
            defaults,
            log_limits,
            pulling: Mutex::new(Vec::new()),
            pulled: Condvar::new(),
            state: Mutex::new(state),
            changed: Condvar::new(),
            errors: Mutex::new(()),
            protected: std::sync::OnceLock::new(),
        });
        engine.adopt();
        // The firewall table is written whole: the masquerade, and the forwards of re-adopted containers.
        engine.sync_forwards(&engine.lock_forwards(), None)?;
        Ok(engine)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_forwards(&self) -> MutexGuard<'_, ()> {
        self.forwards.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rewrites the firewall with the forwards of every running container (and `extra`'s, for one that is
    /// starting or changing its ports). The caller holds the forwards lock until its record shows the change.
    fn sync_forwards(&self, _held: &MutexGuard<'_, ()>, extra: Option<Forwards>) -> Result<(), Error> {
        let mut forwards = self.lock().forwards(extra.as_ref().map(|f| f.name.as_str()));
        forwards.extend(extra);
        self.network.apply_forwards(&forwards).map_err(Error::from)
    }

    fn image_dir(&self, id: &str) -> PathBuf {
        self.state_dir.join("images").join(id)
    }

    fn container_dir(&self, name: &str) -> PathBuf {
        self.state_dir.join("containers").join(name)
    }

    fn errors_file(&self) -> PathBuf {
        self.state_dir.join("errors")
    }

    /// Watches containers recorded as running: alive ones are re-adopted, dead ones marked exited.
    fn adopt(self: &Arc<Self>) {
        let running: Vec<(String, Option<i32>, Option<u64>)> = self
            .lock()
            .containers
            .values()
            .filter(|c| c.record.status == ContainerStatus::Running)
            .map(|c| (c.record.name.clone(), c.record.monitor_pid, c.record.monitor_start))
            .collect();
        for (name, pid, start) in running {
            // Decided here, before the mount is served: a reader never sees a dead container running.
            match pid.zip(start).and_then(|(pid, start)| ProcessHandle::open(pid, start)) {
                Some(handle) => {
                    info!(container = %name, monitor = pid, "re-adopting running container");
                    self.watch_handle(&name, pid, handle);
                }
                None => self.monitor_exited(&name, pid),
            }
        }
        let running_execs: Vec<(String, u32, Option<i32>, Option<u64>)> = self
            .lock()
            .containers
            .values()
            .flat_map(|c| c.execs.values().map(move |e| (c, e)))
            .filter(|(_, e)| e.status == ContainerStatus::Running)
            .map(|(c, e)| (c.record.name.clone(), e.id, e.helper_pid, e.helper_start))
            .collect();
        for (name, n, pid, start) in running_execs {
            let handle = pid.zip(start).and_then(|(pid, start)| ProcessHandle::open(pid, start));
            self.watch_exec(&name, n, handle);
        }
    }

    fn exec_dir(&self, name: &str, n: u32) -> PathBuf {
        self.container_dir(name).join("execs").join(n.to_string())
    }

    /// Follows the helper of exec `n` of `name` until it exits (at once if it is gone), on a thread of its own.
    fn watch_exec(self: &Arc<Self>, name: &str, n: u32, helper: Option<ProcessHandle>) {
        let Some(helper) = helper else { return self.exec_exited(name, n) };
        let engine = Arc::clone(self);
        let name = name.to_string();
        std::thread::spawn(move || {
            helper.wait_for_exit();
            engine.exec_exited(&name, n);
        });
    }

    /// Records the end of an exec from the exit record its helper left.
    fn exec_exited(&self, name: &str, n: u32) {
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

    /// Runs `argv` inside running container `name`, with its Env and WorkingDir; returns the exec's number.
    /// ESRCH when the container is not running.
    fn exec(self: &Arc<Self>, name: &str, argv: Vec<String>) -> Result<u32, Error> {
        let not_running = || Error::NotRunning(format!("container '{name}' is not running"));
        let (spec, n, dir, placeholder) = {
            let mut st = self.lock();
            let c = st.container(name)?;
            let pid = c.record.pid.filter(|_| c.record.status == ContainerStatus::Running).ok_or_else(not_running)?;
            let image = c.record.image.as_deref().and_then(|id| st.images.get(id));
            let env = merge_env(&image.map(Image::env).unwrap_or_default(), &c.record.env);
            let cwd = image.map(Image::working_dir).unwrap_or_default();
            let target_start = runtime::start_time(pid).ok_or_else(not_running)?;
            let c = st.container_mut(name)?;
            let n = c.execs.keys().next_back().map_or(1, |last| last + 1);
            // Reserved at once: a concurrent exec takes the next number.
            let dir = self.exec_dir(name, n);
            std::fs::create_dir_all(&dir).map_err(Error::record(format!("the directory of exec {n} of '{name}'")))?;
            let spec = ExecSpec {
                target_pid: pid,
                target_start,
                argv: argv.clone(),
                env,
                cwd,
                log: dir.join("log"),
                log_limits: self.log_limits,
                exit_file: dir.join("exit.json"),
                cgroup_procs: self.cgroups.procs_files(name),
                security: c.record.security.clone(),
            };
            let placeholder = ExecRecord {
                id: n,
                argv: argv.clone(),
                status: ContainerStatus::Created,
                pid: None,
                helper_pid: None,
                helper_start: None,
                exit_code: None,
                started_at: times::now_rfc3339(),
                finished_at: None,
            };
            c.execs.insert(n, placeholder.clone());
            (spec, n, dir, placeholder)
        };
        let undo = |e: Error| {
            let _ = std::fs::remove_dir_all(&dir);
            if let Some(c) = self.lock().containers.get_mut(name) {
                c.execs.remove(&n);
            }
            e
        };
        let bytes = serde_json::to_vec(&spec).map_err(|e| undo(runtime::RuntimeError::WriteSpec(e.into()).into()))?;
        json::write_private(&dir.join("exec.json"), &bytes)
            .map_err(|e| undo(runtime::RuntimeError::WriteSpec(e).into()))?;
        let launched = runtime::launch_exec(&dir).map_err(|e| undo(e.into()))?;
        let Launched { pid, monitor_pid, monitor_start, .. } = launched;
        let rec = ExecRecord {
            status: ContainerStatus::Running,
            pid: Some(pid),
            helper_pid: Some(monitor_pid),
            helper_start: Some(monitor_start),
            started_at: times::now_rfc3339(),
            ..placeholder
        };
        if let Err(e) = json::write_json(&dir.join("record.json"), &rec) {
            runtime::signal_launched(&launched, Signal::SIGKILL);
            return Err(undo(Error::record(format!("the record of exec {n} of '{name}'"))(e)));
        }
        if let Some(e) = self.lock().containers.get_mut(name).and_then(|c| c.execs.get_mut(&n)) {
            *e = rec;
        }
        info!(container = %name, exec = n, pid, "exec started");
        self.watch_exec(name, n, ProcessHandle::open(monitor_pid, monitor_start));
        Ok(n)
    }

    /// Follows the monitor of `name` until it exits, on a thread of its own.
    fn watch(self: &Arc<Self>, name: &str, monitor_pid: i32, monitor_start: u64) {
        match ProcessHandle::open(monitor_pid, monitor_start) {
            Some(handle) => self.watch_handle(name, Some(monitor_pid), handle),
            None => self.monitor_exited(name, Some(monitor_pid)),
        }
    }

    fn watch_handle(self: &Arc<Self>, name: &str, monitor_pid: Option<i32>, handle: ProcessHandle) {
        let engine = Arc::clone(self);
        let name = name.to_string();
        std::thread::spawn(move || {
            handle.wait_for_exit();
            engine.monitor_exited(&name, monitor_pid);
        });
    }

    /// Records the end of a container from its monitor's exit record.
    fn monitor_exited(&self, name: &str, monitor_pid: Option<i32>) {
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

    // ---- requests ----

    /// Parses one write to a control file and carries it out; see [`Engine::handle`].
    pub fn write(
        self: &Arc<Self>,
        path: &str,
        target: WriteTarget,
        data: &[u8],
        caller: Caller,
    ) -> Result<Response, Error> {
        let object = match &target {
            WriteTarget::Image(n)
            | WriteTarget::Cmd(n)
            | WriteTarget::Env(n)
            | WriteTarget::Ctl(n)
            | WriteTarget::Limit(n, _)
            | WriteTarget::Network(n)
            | WriteTarget::Ports(n)
            | WriteTarget::Commit(n)
            | WriteTarget::Exec(n)
            | WriteTarget::Privileged(n)
            | WriteTarget::CapAdd(n)
            | WriteTarget::Volumes(n)
            | WriteTarget::VolumesFrom(n) => Some(n.clone()),
            WriteTarget::Import | WriteTarget::Pull | WriteTarget::Push | WriteTarget::Run => None,
        };
        match Request::from_write_by(target, data, caller) {
            Ok(request) => self.handle(path, request),
            Err(e) => Err(self.reject(path, object.as_deref(), e.into())),
        }
    }

    /// Records a request refused at the boundary (bad bytes, bad name) like any failure, and returns it.
    pub fn reject(&self, path: &str, object: Option<&str>, error: Error) -> Error {
        self.failed(path, object, &error);
        error
    }

    /// Carries out `request`, made through `path` on the mount. A failure changes nothing; its message goes
    /// to the container's `error`, to `errors` and to the daemon log.
    pub fn handle(self: &Arc<Self>, path: &str, request: Request) -> Result<Response, Error> {
        let object = match &request {
            Request::SetImage { name, .. }
            | Request::RemoveContainer { name }
            | Request::SetCmd { name, .. }
            | Request::SetEnv { name, .. }
            | Request::SetLimit { name, .. }
            | Request::SetNetwork { name, .. }
            | Request::SetPorts { name, .. }
            | Request::Commit { name, .. }
            | Request::Exec { name, .. }
            | Request::SetPrivileged { name, .. }
            | Request::SetCapAdd { name, .. }
            | Request::SetVolumes { name, .. }
            | Request::SetVolumesFrom { name, .. }
            | Request::Ctl { name, .. } => Some(name.clone()),
            _ => None,
        };
        let result = match request {
            Request::Import { dir, changes, caller } => self.import(&dir, &changes, &caller).map(Response::Created),
            Request::Pull { spec } => self.pull(&spec).map(Response::Created),
            Request::Push { spec } => self.push(&spec).map(Response::Created),
            Request::Run { image, argv } => self.run(&image, argv).map(Response::Created),
            Request::CreateContainer { name } => self.insert_container(new_record(&name)).map(|()| Response::Done),
            Request::RemoveContainer { name } => self.remove_container(&name).map(|()| Response::Done),
            Request::RemoveImage { id } => self.remove_image(&id).map(|()| Response::Done),
            Request::SetImage { name, image } => self.set_image(&name, &image).map(|()| Response::Done),
            Request::SetCmd { name, argv } => self.configure(&name, |r| r.cmd = argv).map(|()| Response::Done),
            Request::SetEnv { name, env } => self.configure(&name, |r| r.env = env).map(|()| Response::Done),
            Request::SetLimit { name, limit } => self.set_limit(&name, limit).map(|()| Response::Done),
            Request::SetNetwork { name, mode } => self.set_network(&name, mode).map(|()| Response::Done),
            Request::SetPorts { name, ports } => self.set_ports(&name, ports).map(|()| Response::Done),
            Request::Commit { name, image } => self.commit(&name, &image).map(Response::Created),
            Request::SetPrivileged { name, privileged } => {
                self.configure(&name, |r| r.security.privileged = privileged).map(|()| Response::Done)
            }
            Request::SetCapAdd { name, caps } => {
                self.configure(&name, |r| r.security.cap_add = caps).map(|()| Response::Done)
            }
            Request::Exec { name, argv } => self.exec(&name, argv).map(|n| Response::Created(n.to_string())),
            Request::SetVolumes { name, volumes } => self.set_volumes(&name, volumes).map(|()| Response::Done),
            Request::SetVolumesFrom { name, from } => self.set_volumes_from(&name, from).map(|()| Response::Done),
            Request::CreateVolume { name } => self.create_volume(&name).map(|()| Response::Done),
            Request::RemoveVolume { name } => self.remove_volume(&name).map(|()| Response::Done),
            Request::Ctl { name, verb } => self.ctl(&name, verb).map(|()| Response::Done),
        };
        match &result {
            Ok(_) => {
                if let Some(name) = object {
                    self.set_error(&name, "");
                }
                info!(path, "request done");
            }
            Err(e) => self.failed(path, object.as_deref(), e),
        }
        result
    }

    fn failed(&self, path: &str, object: Option<&str>, error: &Error) {
        let errno = errno_name(error.errno());
        let message = bounded(&error.to_string().replace('\n', " "));
        let path = bounded(path);
        warn!(path, errno = %errno, message = %message, "request failed");
        if let Some(name) = object {
            self.set_error(name, &message);
        }
        let _guard = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        let file = self.errors_file();
        // Bounded: past ERRORS_MAX the file starts afresh, the full one kept as errors.1 (for the daemon's log).
        if std::fs::metadata(&file).is_ok_and(|m| m.len() >= ERRORS_MAX) {
            let _ = std::fs::rename(&file, file.with_extension("1"));
        }
        let entry = format!("{} {path} {errno} {message}\n", times::now_rfc3339());
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&file)
            .and_then(|mut f| f.write_all(entry.as_bytes()));
        if let Err(e) = appended {
            warn!(error = %e, "cannot append to the errors file");
        }
    }

    fn set_error(&self, name: &str, message: &str) {
        let mut st = self.lock();
        if let Some(c) = st.containers.get_mut(name) {
            if c.record.error != message {
                c.record.error = message.to_string();
                let _ = json::write_json(&self.container_dir(name).join("record.json"), &c.record);
            }
        }
    }

    fn save(&self, record: &ContainerRecord) -> Result<(), Error> {
        json::write_json(&self.container_dir(&record.name).join("record.json"), record)
            .map_err(Error::record(format!("the record of container '{}'", record.name)))
    }

    /// Makes an image of directory `dir`, read as `caller` (the store opens, checks and copies it).
    fn import(&self, dir: &Path, changes: &[ConfigChange], caller: &Caller) -> Result<String, Error> {
        let id = ids::new_id("img_");
        let size = self.store.import_dir(&id, dir, caller)?;
        let record = ImageRecord {
            id: id.clone(),
            source: dir.display().to_string(),
            created: times::now_rfc3339(),
            size,
            digest: None,
            layers: Vec::new(),
            chain: Vec::new(),
        };
        let config_raw = import_config(&record.created, changes);
        self.add_image(record, config_raw)?;
        info!(image = %id, source = %dir.display(), size, uid = caller.uid, "imported image");
        Ok(id)
    }

    /// Records an image whose subvolume is complete and makes it visible; on failure, deletes it.
    fn add_image(&self, record: ImageRecord, config_raw: Vec<u8>) -> Result<(), Error> {
        let id = record.id.clone();
        let written = ImageConfiguration::from_reader(config_raw.as_slice())
            .map_err(|e| Error::Invalid(format!("image config: {e}")))
            .and_then(|config| {
                self.write_image_records(&record, &config_raw).map(|()| Image { record, config, config_raw })
            });
        match written {
            Ok(image) => {
                self.lock().images.insert(id, image);
                Ok(())
            }
            Err(e) => {
                let _ = self.store.delete_image(&id);
                let _ = std::fs::remove_dir_all(self.image_dir(&id));
                Err(e)
            }
        }
    }

    /// Writes an image's `config.json` and `record.json` (each atomically) into its state directory.
    fn write_image_records(&self, record: &ImageRecord, config_raw: &[u8]) -> Result<(), Error> {
        let d = self.image_dir(&record.id);
        std::fs::create_dir_all(&d)
            .and_then(|()| json::write_atomic(&d.join("config.json"), config_raw))
            .and_then(|()| json::write_json(&d.join("record.json"), record))
            .map_err(Error::record(format!("the record of image '{}'", record.id)))
    }

    fn pull(&self, spec: &PullSpec) -> Result<String, Error> {
        // One pull per reference at a time; the second finds the image the first made.
        let key = spec.reference.whole();
        {
            let mut pulling = self.pulling.lock().unwrap_or_else(|e| e.into_inner());
            while pulling.contains(&key) {
                pulling = self.pulled.wait(pulling).unwrap_or_else(|e| e.into_inner());
            }
            pulling.push(key.clone());
        }
        let result = self.registry.pull(spec, &self.store, &|id| self.has_image(id));
        let done = match result {
            Ok(p) if !p.fresh => {
                info!(image = %p.id, reference = %spec.source, "image is here already");
                Ok(p.id)
            }
            Ok(p) => {
                let record = ImageRecord {
                    id: p.id.clone(),
                    source: spec.source.clone(),
                    created: times::now_rfc3339(),
                    size: p.size,
                    digest: Some(p.digest.clone()),
                    layers: p.layers.clone(),
                    chain: p.chain.clone(),
                };
                self.add_image(record, p.config_raw).map(|()| {
                    info!(image = %p.id, reference = %spec.source, digest = %p.digest, "pulled image");
                    p.id
                })
            }
            Err(e) => Err(e.into()),
        };
        let mut pulling = self.pulling.lock().unwrap_or_else(|e| e.into_inner());
        pulling.retain(|k| k != &key);
        let alone = pulling.is_empty();
        drop(pulling);
        self.pulled.notify_all();
        if done.is_err() && alone {
            // Layers this failed pull finished stand under no image: drop them.
            self.collect_layers();
        }
        done
    }

    /// Deletes the layer subvolumes no image stands on. Only while no pull is under way: a pull may be
    /// standing on a layer it has not made an image of yet.
    fn collect_layers(&self) {
        if !self.pulling.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
            return;
        }
        let used: std::collections::HashSet<String> =
            self.lock().images.values().flat_map(|i| i.record.chain.clone()).collect();
        for chain in self.store.layers() {
            if !used.contains(&chain) {
                if let Err(e) = self.store.delete_layer(&chain) {
                    warn!(layer = %chain, error = %e, "cannot delete an unused layer");
                }
            }
        }
    }

    fn push(&self, spec: &PushSpec) -> Result<String, Error> {
        let source = {
            let st = self.lock();
            let image = st.resolve_image(&spec.image)?;
            PushSource {
                rootfs: self.store.image_path(&image.record.id),
                config_raw: image.config_raw.clone(),
                scratch: self.store.dir().join("blobs"),
            }
        };
        let digest = self.registry.push(spec, &source)?;
        info!(image = %spec.image, reference = %spec.reference.whole(), digest = %digest, "pushed image");
        Ok(digest)
    }

    fn run(self: &Arc<Self>, image: &str, argv: Option<Vec<String>>) -> Result<String, Error> {
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
    fn insert_container(&self, record: ContainerRecord) -> Result<(), Error> {
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
        st.containers.insert(name, Container::new(record));
        Ok(())
    }

    fn remove_container(&self, name: &str) -> Result<(), Error> {
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
        info!(container = %name, "removed container");
        Ok(())
    }

    fn remove_image(&self, id: &str) -> Result<(), Error> {
        let mut st = self.lock();
        let image = st.images.get(id).ok_or_else(|| Error::NotFound(format!("no image named '{id}'")))?;
        let users: Vec<&str> = st
            .containers
            .values()
            .filter(|c| c.record.image.as_deref() == Some(id))
            .map(|c| c.record.name.as_str())
            .collect();
        if !users.is_empty() {
            return Err(Error::Busy(format!("image '{id}' is used by container(s) {}", users.join(", "))));
        }
        let dir = self.image_dir(id);
        std::fs::remove_file(dir.join("record.json")).map_err(Error::record(format!("the record of '{id}'")))?;
        if let Err(e) = self.store.delete_image(id) {
            let _ = json::write_json(&dir.join("record.json"), &image.record);
            return Err(e.into());
        }
        let _ = std::fs::remove_dir_all(&dir);
        st.images.remove(id);
        drop(st);
        info!(image = %id, "removed image");
        self.collect_layers();
        Ok(())
    }

    fn create_volume(&self, name: &str) -> Result<(), Error> {
        let mut st = self.lock();
        if st.volumes.contains(name) {
            return Err(Error::Exists(format!("a volume named '{name}' exists already")));
        }
        self.store.create_volume(name)?;
        st.volumes.insert(name.to_string());
        info!(volume = %name, "created volume");
        Ok(())
    }

    /// Removes a named volume and its data; EBUSY while any container (in any state) names it.
    fn remove_volume(&self, name: &str) -> Result<(), Error> {
        let mut st = self.lock();
        if !st.volumes.contains(name) {
            return Err(Error::NotFound(format!("no volume named '{name}'")));
        }
        let users: Vec<&str> = st
            .containers
            .values()
            .filter(|c| c.record.volumes.iter().any(|v| v.source == VolumeSource::Named(name.to_string())))
            .map(|c| c.record.name.as_str())
            .collect();
        if !users.is_empty() {
            return Err(Error::Busy(format!("volume '{name}' is used by container(s) {}", users.join(", "))));
        }
        self.store.delete_volume(name)?;
        st.volumes.remove(name);
        info!(volume = %name, "removed volume");
        Ok(())
    }

    /// Sets a stopped container's volumes; each named volume and host path must exist, no host path may
    /// lie in the daemon's own, and only a privileged container may mount under /proc, /sys or /dev.
    fn set_volumes(&self, name: &str, volumes: Vec<VolumeSpec>) -> Result<(), Error> {
        self.check_sources(name, &volumes)?;
        self.configure(name, |r| r.volumes = volumes)
    }

    fn check_sources(&self, name: &str, volumes: &[VolumeSpec]) -> Result<(), Error> {
        let st = self.lock();
        let privileged = st.container(name)?.record.security.privileged;
        let protected = self.protected();
        for v in volumes {
            volumes::check_target(&v.target, privileged)?;
            match &v.source {
                VolumeSource::Named(n) if !st.volumes.contains(n) => {
                    return Err(Error::NotFound(format!("no volume named '{n}' (mkdir volumes/{n} first)")));
                }
                VolumeSource::Host(p) => {
                    volumes::check_host_source(p, &protected)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Sets (or clears) the container whose volumes a stopped container mounts too.
    fn set_volumes_from(&self, name: &str, from: Option<String>) -> Result<(), Error> {
        if let Some(from) = &from {
            if from == name {
                return Err(Error::Invalid(format!("container '{name}' can't take volumes from itself")));
            }
            self.lock().container(from)?;
        }
        self.configure(name, |r| r.volumes_from = from)
    }

    /// The bind mounts of a container's volumes: its own, then those of its `volumes_from` container at the
    /// same targets (its own win on a clash). Each is checked again as a write checks it, and its source
    /// resolved to the real path the container's pid 1 opens without following symlinks.
    fn volume_binds(&self, st: &State, record: &ContainerRecord) -> Result<Vec<BindMount>, Error> {
        let mut specs = record.volumes.clone();
        if let Some(from) = &record.volumes_from {
            let other = st.container(from).map_err(|_| {
                Error::NotFound(format!("container '{}' takes volumes from '{from}', which is gone", record.name))
            })?;
            specs.extend(
                other
                    .record
                    .volumes
                    .iter()
                    .filter(|v| !specs.iter().any(|s| s.target == v.target))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
        }
        let protected = self.protected();
        let mut binds = Vec::new();
        for v in specs {
            volumes::check_target(&v.target, record.security.privileged)?;
            let source = match &v.source {
                VolumeSource::Host(p) => volumes::check_host_source(p, &protected)?,
                VolumeSource::Named(n) if st.volumes.contains(n) => {
                    let path = self.store.volume_path(n);
                    std::fs::canonicalize(&path)
                        .map_err(|e| Error::NotFound(format!("volume '{n}' at {}: {e}", path.display())))?
                }
                VolumeSource::Named(n) => return Err(Error::NotFound(format!("no volume named '{n}'"))),
            };
            let masks = volumes::masks(&source, &v.target, &protected);
            binds.push(BindMount { source, target: v.target, readonly: v.readonly });
            if !masks.is_empty() {
                let empty = self.state_dir.join("empty");
                std::fs::create_dir_all(&empty).map_err(Error::record("the state directory empty"))?;
                for target in masks {
                    binds.push(BindMount { source: empty.clone(), target, readonly: true });
                }
            }
        }
        Ok(binds)
    }

    /// Makes an image of container `name`'s rootfs, running or not: a read-only snapshot, with the config of
    /// the container's image and the container's own command and environment laid over it. `target` is an
    /// existing image id (replaced, never missing meanwhile: see [`Store::place_commit`]) or the name of a
    /// new image. Returns the image id.
    fn commit(&self, name: &str, target: &str) -> Result<String, Error> {
        let (config_raw, source_image) = {
            let st = self.lock();
            let c = st.container(name)?;
            let image_id =
                c.record.image.clone().ok_or_else(|| {
                    Error::Invalid(format!("container '{name}' has no image, so no rootfs to commit"))
                })?;
            let image = st.resolve_image(&image_id)?;
            let is_image_id = target.starts_with("img_") && target.len() == 16;
            if is_image_id && !st.images.contains_key(target) {
                return Err(Error::NotFound(format!("no image named '{target}'")));
            }
            (commit_config(&image.config_raw, &c.record), image.record.source.clone())
        };
        let config = ImageConfiguration::from_reader(config_raw.as_slice())
            .map_err(|e| Error::Invalid(format!("image config: {e}")))?;
        let (staged, size) = self.store.stage_commit(name)?;
        let mut st = self.lock();
        let existing = st.images.get(target).map(|i| i.record.clone());
        let id = existing.as_ref().map_or_else(|| ids::new_id("img_"), |r| r.id.clone());
        let record = ImageRecord {
            id: id.clone(),
            source: existing.as_ref().map_or_else(|| target.to_string(), |r| r.source.clone()),
            created: times::now_rfc3339(),
            size,
            digest: None,
            layers: Vec::new(),
            chain: Vec::new(),
        };
        // Records first (the old ones kept to undo), then the subvolume: both versions are whole throughout.
        let dir = self.image_dir(&id);
        let old_config = std::fs::read(dir.join("config.json")).ok();
        let placed = self
            .write_image_records(&record, &config_raw)
            .and_then(|()| self.store.place_commit(&staged, &id, existing.is_some()).map_err(Error::from));
        if let Err(e) = placed {
            self.store.discard(&staged);
            match (&existing, old_config) {
                (Some(old), Some(cfg)) => {
                    let _ = self.write_image_records(old, &cfg);
                }
                _ => {
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
            return Err(e);
        }
        st.images.insert(id.clone(), Image { record, config, config_raw });
        drop(st);
        info!(container = %name, image = %id, from = %source_image, replaced = existing.is_some(), "committed");
        if existing.is_some() {
            // A replaced pulled image no longer stands on its layers.
            self.collect_layers();
        }
        Ok(id)
    }

    fn set_image(&self, name: &str, reference: &str) -> Result<(), Error> {
        let mut st = self.lock();
        let image_id = st.resolve_image(reference)?.record.id.clone();
        let c = st.container(name)?;
        if c.busy || !c.record.status.can_change_image() {
            return Err(Error::Busy(format!("the image of '{name}' can't change once it has started")));
        }
        if c.record.image.as_deref() == Some(image_id.as_str()) {
            return Ok(());
        }
        let mut rec = c.record.clone();
        rec.image = Some(image_id.clone());
        // Snapshot first, record second, then drop the old rootfs: each step undoes cleanly if the next fails.
        self.store.snapshot_image(&image_id, &format!(".tmp-{name}"))?;
        let staged = self.store.container_path(&format!(".tmp-{name}"));
        let swap = self.save(&rec).and_then(|()| {
            self.store.delete_container(name)?;
            std::fs::rename(&staged, self.store.container_path(name))
                .map_err(Error::record(format!("the rootfs of '{name}'")))
        });
        if let Err(e) = swap {
            let _ = self.store.delete_container(&format!(".tmp-{name}"));
            return Err(e);
        }
        st.container_mut(name)?.record = rec;
        Ok(())
    }

    /// Changes the command or environment of a container that is not running.
    fn configure(&self, name: &str, change: impl FnOnce(&mut ContainerRecord)) -> Result<(), Error> {
        self.change_record(name, true, change)
    }

    /// Saves `change` to a container's record, then shows it; never while it starts, and with
    /// `stopped_only` never while it runs.
    fn change_record(
        &self,
        name: &str,
        stopped_only: bool,
        change: impl FnOnce(&mut ContainerRecord),
    ) -> Result<(), Error> {
        let mut st = self.lock();
        let c = st.container_mut(name)?;
        if c.busy {
            return Err(Error::Busy(format!("container '{name}' is starting")));
        }
        if stopped_only && !c.record.status.can_configure() {
            return Err(Error::Busy(format!(
                "container '{name}' is running: its configuration is fixed until it stops"
            )));
        }
        let mut rec = c.record.clone();
        change(&mut rec);
        self.save(&rec)?;
        c.record = rec;
        Ok(())
    }

    /// Records a limit, and applies it at once to a running container.
    fn set_limit(&self, name: &str, limit: Limit) -> Result<(), Error> {
        let mut st = self.lock();
        let c = st.container_mut(name)?;
        if c.busy {
            return Err(Error::Busy(format!("container '{name}' is starting")));
        }
        if c.record.status == ContainerStatus::Running {
            self.cgroups.apply_one(name, &limit)?;
        }
        let mut rec = c.record.clone();
        rec.limits.put(limit);
        self.save(&rec)?;
        c.record = rec;
        Ok(())
    }

    /// Changes the network mode of a container that is not running. Leaving `bridge` gives its address back.
    fn set_network(&self, name: &str, mode: NetworkMode) -> Result<(), Error> {
        let ports = self.lock().container(name)?.record.ports.clone();
        if mode != NetworkMode::Bridge && !ports.is_empty() {
            return Err(NetworkError::PortsNeedBridge(name.to_string()).into());
        }
        self.configure(name, |r| {
            r.network = mode;
            if mode != NetworkMode::Bridge {
                r.ip = None;
            }
        })
    }

    /// Records a container's forwards; while it runs, the firewall changes at once. A host port that a host
    /// process or another running container holds is refused (EADDRINUSE).
    fn set_ports(&self, name: &str, ports: Vec<PortMap>) -> Result<(), Error> {
        let held = self.lock_forwards();
        let (running, fresh) = {
            let st = self.lock();
            let c = st.container(name)?;
            if c.busy {
                return Err(Error::Busy(format!("container '{name}' is starting")));
            }
            if c.record.network != NetworkMode::Bridge && !ports.is_empty() {
                return Err(NetworkError::PortsNeedBridge(name.to_string()).into());
            }
            let running = c.record.status == ContainerStatus::Running;
            if running {
                st.check_port_claims(name, &ports)?;
            }
            let fresh: Vec<PortMap> = ports.iter().filter(|p| !c.record.ports.contains(p)).copied().collect();
            (running.then_some(c.record.ip).flatten(), fresh)
        };
        if let Some(ip) = running {
            check_host_ports(&fresh)?;
            self.sync_forwards(&held, Some(Forwards { name: name.to_string(), ip, ports: ports.clone() }))?;
        }
        let saved = self.change_record(name, false, |r| r.ports = ports);
        if saved.is_err() && running.is_some() {
            // Back to the forwards the record still has.
            let _ = self.sync_forwards(&held, None);
        }
        saved
    }

    fn ctl(self: &Arc<Self>, name: &str, verb: Ctl) -> Result<(), Error> {
        match verb {
            Ctl::Start => self.start(name),
            Ctl::Stop(grace) => self.stop(name, grace),
            Ctl::Kill(signal) => self.running_process(name)?.signal(signal).map_err(Error::from),
        }
    }

    /// A handle on the running container's process: ESRCH if it isn't running.
    fn running_process(&self, name: &str) -> Result<ProcessHandle, Error> {
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

    fn start(self: &Arc<Self>, name: &str) -> Result<(), Error> {
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
            let mut spec = self.launch_spec(&c.record, image)?;
            spec.binds = self.volume_binds(&st, &c.record)?;
            let ip = self.address_for(&st, name)?;
            let c = st.container_mut(name)?;
            // Held in memory from here, so a concurrent start never picks it too; on disk with the start.
            c.record.ip = ip;
            c.busy = true;
            (spec, ip)
        };
        let (mut spec, ip) = spec;
        let t0 = Instant::now();
        let held = self.lock_forwards();
        let launched = self.start_network(name, &mut spec, ip, &held).and_then(|forwards| {
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
        drop(st);
        drop(held);
        info!(container = %name, pid, "started container");
        self.changed.notify_all();
        self.watch(name, monitor_pid, monitor_start);
        Ok(())
    }

    /// The bridge address `name` starts with: the one it has, or the lowest no other container holds.
    fn address_for(&self, st: &State, name: &str) -> Result<Option<Ipv4Addr>, Error> {
        let c = st.container(name)?;
        if c.record.network != NetworkMode::Bridge {
            return Ok(None);
        }
        let subnet = self.network.subnet();
        if let Some(ip) = c.record.ip.filter(|ip| subnet.is_host(*ip)) {
            return Ok(Some(ip));
        }
        let used: Vec<Ipv4Addr> =
            st.containers.values().filter(|o| o.record.name != name).filter_map(|o| o.record.ip).collect();
        network::allocate(subnet, &used).map(Some).ok_or_else(|| NetworkError::Exhausted(subnet.cidr()).into())
    }

    /// What a start needs from the network before the launch: the forwards checked (host ports free, not
    /// forwarded by another running container), and `/etc/hosts` and `/etc/resolv.conf` written into the
    /// container's state directory and added to its bind mounts. Gives the forwards to add once it runs.
    fn start_network(
        &self,
        name: &str,
        spec: &mut LaunchSpec,
        ip: Option<Ipv4Addr>,
        _held: &MutexGuard<'_, ()>,
    ) -> Result<Option<Forwards>, Error> {
        let ports = {
            let st = self.lock();
            let ports = st.container(name)?.record.ports.clone();
            if spec.network != NetworkMode::Bridge && !ports.is_empty() {
                return Err(NetworkError::PortsNeedBridge(name.to_string()).into());
            }
            st.check_port_claims(name, &ports)?;
            ports
        };
        check_host_ports(&ports)?;
        let dir = self.container_dir(name);
        let (hosts, resolv) = match spec.network {
            NetworkMode::Host => (
                std::fs::read_to_string("/etc/hosts").unwrap_or_else(|_| network::etc::hosts(name, None)),
                std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
            ),
            _ => (network::etc::hosts(name, ip), self.network.resolv_conf()),
        };
        for (file, text) in [("hosts", hosts), ("resolv.conf", resolv)] {
            let source = dir.join(file);
            std::fs::write(&source, text).map_err(Error::record(format!("/etc/{file} of '{name}'")))?;
            spec.binds.push(BindMount { source, target: format!("/etc/{file}"), readonly: false });
        }
        Ok(match ip {
            Some(ip) if !ports.is_empty() => Some(Forwards { name: name.to_string(), ip, ports }),
            _ => None,
        })
    }

    fn launch_spec(&self, record: &ContainerRecord, image: &Image) -> Result<LaunchSpec, Error> {
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
    fn launch_in_cgroup(&self, name: &str, spec: &LaunchSpec, ip: Option<Ipv4Addr>) -> Result<Launched, Error> {
        let limits = self.lock().container(name)?.record.limits.or(&self.defaults);
        self.cgroups.remove(name)?;
        self.cgroups.create(name, &limits)?;
        let launched = self.launch(name, spec, ip);
        if launched.is_err() {
            let _ = self.cgroups.remove(name);
        }
        launched
    }

    fn launch(&self, name: &str, spec: &LaunchSpec, ip: Option<Ipv4Addr>) -> Result<Launched, Error> {
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

    fn stop(&self, name: &str, grace: Duration) -> Result<(), Error> {
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
    fn wait_stopped(&self, name: &str, timeout: Duration) -> bool {
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

    // ---- queries: never block on anything but the state lock ----

    pub fn image_ids(&self) -> Vec<String> {
        self.lock().images.keys().cloned().collect()
    }

    pub fn container_names(&self) -> Vec<String> {
        self.lock().containers.keys().cloned().collect()
    }

    pub fn has_image(&self, id: &str) -> bool {
        self.lock().images.contains_key(id)
    }

    pub fn has_container(&self, name: &str) -> bool {
        self.lock().containers.contains_key(name)
    }

    pub fn any_running(&self) -> bool {
        self.lock().containers.values().any(|c| c.record.status == ContainerStatus::Running)
    }

    /// The content of an image's property file; `None` for an unknown image.
    pub fn image_field(&self, id: &str, field: ImageField) -> Option<Vec<u8>> {
        let st = self.lock();
        let image = st.images.get(id)?;
        Some(match field {
            ImageField::Source => line(&image.record.source),
            ImageField::Created => line(&image.record.created),
            ImageField::Size => line(image.record.size),
            ImageField::Config => image.config_raw.clone(),
            ImageField::Digest => image.record.digest.as_ref().map(line).unwrap_or_default(),
            ImageField::Layers => image.record.layers.iter().flat_map(line).collect(),
        })
    }

    /// The content of a container's property file; `None` for an unknown container.
    pub fn container_field(&self, name: &str, field: ContainerField) -> Option<Vec<u8>> {
        let st = self.lock();
        let r = &st.containers.get(name)?.record;
        let image = r.image.as_deref().and_then(|id| st.images.get(id));
        let opt = |v: Option<String>| v.map(line).unwrap_or_default();
        Some(match field {
            ContainerField::Image => opt(r.image.clone()),
            ContainerField::Cmd => {
                let argv = r.cmd.clone().or_else(|| image.map(Image::default_argv)).unwrap_or_default();
                if argv.is_empty() {
                    Vec::new()
                } else {
                    line(shell_words::join(argv))
                }
            }
            ContainerField::Env => {
                let env = merge_env(&image.map(Image::env).unwrap_or_default(), &r.env);
                env.iter().flat_map(line).collect()
            }
            ContainerField::Limit(kind) => {
                let running = r.status == ContainerStatus::Running;
                let live = if running { self.cgroups.read_limit(&r.name, &kind.key()) } else { None };
                let configured = r.limits.or(&self.defaults).get(&kind.key()).map(|l| l.v2_value());
                opt(live.or(configured))
            }
            ContainerField::MemoryCurrent => opt(self.cgroups.stats(&r.name).memory_current.map(|v| v.to_string())),
            ContainerField::MemoryPeak => opt(self.cgroups.stats(&r.name).memory_peak.map(|v| v.to_string())),
            ContainerField::CpuUsage => opt(self.cgroups.stats(&r.name).cpu_usage_usec.map(|v| v.to_string())),
            ContainerField::PidsCurrent => opt(self.cgroups.stats(&r.name).pids_current.map(|v| v.to_string())),
            ContainerField::Events => {
                let n = self.cgroups.stats(&r.name).oom_kill.unwrap_or(u64::from(r.oom_killed));
                line(format!("oom_kill {n}"))
            }
            ContainerField::Network => line(r.network.as_str()),
            ContainerField::Ports => r.ports.iter().flat_map(line).collect(),
            ContainerField::Ip => opt(r.ip.filter(|_| r.network == NetworkMode::Bridge).map(|ip| ip.to_string())),
            ContainerField::Volumes => r.volumes.iter().flat_map(line).collect(),
            ContainerField::VolumesFrom => opt(r.volumes_from.clone()),
            ContainerField::Privileged => line(r.security.privileged),
            ContainerField::CapAdd => r.security.cap_add.iter().flat_map(line).collect(),
            ContainerField::Status => line(r.status.as_str()),
            ContainerField::ExitCode => opt(r.exit_code.map(|c| c.to_string())),
            ContainerField::Pid => opt(r.pid.map(|p| p.to_string())),
            ContainerField::StartedAt => opt(r.started_at.clone()),
            ContainerField::FinishedAt => opt(r.finished_at.clone()),
            ContainerField::Error => {
                if r.error.is_empty() {
                    Vec::new()
                } else {
                    line(&r.error)
                }
            }
        })
    }

    /// The read-only subvolume of an image, for browsing.
    pub fn image_rootfs(&self, id: &str) -> Option<PathBuf> {
        self.has_image(id).then(|| self.store.image_path(id))
    }

    /// The rootfs of a container, once it has an image.
    pub fn container_rootfs(&self, name: &str) -> Option<PathBuf> {
        let st = self.lock();
        st.containers.get(name)?.record.image.as_ref()?;
        Some(self.store.container_path(name))
    }

    /// The numbers of a container's execs that have started (none while one is being set up).
    pub fn exec_ids(&self, name: &str) -> Vec<u32> {
        let st = self.lock();
        let Some(c) = st.containers.get(name) else { return Vec::new() };
        c.execs.values().filter(|e| e.status != ContainerStatus::Created).map(|e| e.id).collect()
    }

    pub fn has_exec(&self, name: &str, n: u32) -> bool {
        self.exec_ids(name).contains(&n)
    }

    /// The content of an exec's property file; `None` for an unknown exec.
    pub fn exec_field(&self, name: &str, n: u32, field: ExecField) -> Option<Vec<u8>> {
        let st = self.lock();
        let e = st.containers.get(name)?.execs.get(&n).filter(|e| e.status != ContainerStatus::Created)?;
        let opt = |v: Option<String>| v.map(line).unwrap_or_default();
        Some(match field {
            ExecField::Cmd => line(shell_words::join(&e.argv)),
            ExecField::Status => line(e.status.as_str()),
            ExecField::ExitCode => opt(e.exit_code.map(|c| c.to_string())),
            ExecField::Pid => opt(e.pid.map(|p| p.to_string())),
            ExecField::StartedAt => line(&e.started_at),
            ExecField::FinishedAt => opt(e.finished_at.clone()),
        })
    }

    /// The directory of an exec's output segments (see [`crate::logs`]).
    pub fn exec_logs_path(&self, name: &str, n: u32) -> Option<PathBuf> {
        self.has_exec(name, n).then(|| self.exec_dir(name, n).join("log"))
    }

    pub fn volume_names(&self) -> Vec<String> {
        self.lock().volumes.iter().cloned().collect()
    }

    pub fn has_volume(&self, name: &str) -> bool {
        self.lock().volumes.contains(name)
    }

    /// The content of a named volume (its `data` link's target).
    pub fn volume_path(&self, name: &str) -> Option<PathBuf> {
        self.has_volume(name).then(|| self.store.volume_path(name))
    }

    /// The directory of a container's log segments (see [`crate::logs`]).
    pub fn logs_path(&self, name: &str) -> Option<PathBuf> {
        self.has_container(name).then(|| self.container_dir(name).join("log"))
    }

    /// The `images/pulls` file: a line per layer of each pull under way.
    pub fn pull_progress(&self) -> Vec<u8> {
        self.registry.progress.render()
    }

    /// The `errors` file: every failed write, one line each.
    pub fn errors_path(&self) -> PathBuf {
        self.errors_file()
    }

    /// Leaves the store mounted while containers still run in it, so a new daemon can re-adopt them.
    pub fn shutdown(&self) {
        self.cgroups.remove_parent();
        self.store.close(!self.any_running());
    }
}

/// The record of a container just made: created, no image, no command.
fn new_record(name: &str) -> ContainerRecord {
    ContainerRecord {
        name: name.to_string(),
        image: None,
        cmd: None,
        env: Vec::new(),
        status: ContainerStatus::Created,
        created: times::now_rfc3339(),
        pid: None,
        pid_start: None,
        monitor_pid: None,
        monitor_start: None,
        exit_code: None,
        started_at: None,
        finished_at: None,
        error: String::new(),
        limits: Limits::default(),
        oom_killed: false,
        network: NetworkMode::default(),
        ports: Vec::new(),
        ip: None,
        volumes: Vec::new(),
        volumes_from: None,
        security: Default::default(),
    }
}

/// Fails with EADDRINUSE (or the bind's own errno) if a host process holds one of these ports.
fn check_host_ports(ports: &[PortMap]) -> Result<(), NetworkError> {
    for p in ports {
        network::ports::check_free(p).map_err(|source| NetworkError::PortTaken { map: p.to_string(), source })?;
    }
    Ok(())
}

/// A committed image's config: the source image's, with the container's command (as Cmd, clearing the
/// Entrypoint it already includes) and its environment laid over, a new creation time, and no layers.
fn commit_config(source: &[u8], container: &ContainerRecord) -> Vec<u8> {
    let mut config: serde_json::Value = serde_json::from_slice(source).unwrap_or_else(|_| serde_json::json!({}));
    let Some(top) = config.as_object_mut() else { return source.to_vec() };
    top.insert("created".into(), times::now_rfc3339().into());
    top.insert("rootfs".into(), serde_json::json!({ "type": "layers", "diff_ids": [] }));
    top.remove("history");
    let inner = top.entry("config").or_insert_with(|| serde_json::json!({}));
    if let Some(inner) = inner.as_object_mut() {
        if let Some(argv) = &container.cmd {
            inner.insert("Cmd".into(), argv.clone().into());
            inner.remove("Entrypoint");
        }
        if !container.env.is_empty() {
            let base: Vec<String> =
                inner.get("Env").and_then(|e| serde_json::from_value(e.clone()).ok()).unwrap_or_default();
            inner.insert("Env".into(), merge_env(&base, &container.env).into());
        }
    }
    serde_json::to_vec_pretty(&config).unwrap_or_else(|_| source.to_vec())
}

/// Directories under `dir`, by name.
fn record_dirs(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect()
}

fn load_image(dir: &Path) -> Option<Image> {
    let record: ImageRecord = json::read_json(&dir.join("record.json")).ok()??;
    let config_raw = std::fs::read(dir.join("config.json")).ok()?;
    let config = ImageConfiguration::from_reader(config_raw.as_slice()).ok()?;
    Some(Image { record, config, config_raw })
}

/// The OCI image config of an imported directory: this host's platform and a default PATH, no Cmd, then
/// the import's changes.
fn import_config(created: &str, changes: &[ConfigChange]) -> Vec<u8> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    let mut env = vec![format!("PATH={}", runtime::init::DEFAULT_PATH)];
    let mut config = serde_json::Map::new();
    for change in changes {
        match change {
            ConfigChange::Cmd(argv) => config.insert("Cmd".into(), argv.clone().into()),
            ConfigChange::Entrypoint(argv) => config.insert("Entrypoint".into(), argv.clone().into()),
            ConfigChange::WorkingDir(dir) => config.insert("WorkingDir".into(), dir.clone().into()),
            ConfigChange::Env(kv) => {
                env = merge_env(&env, std::slice::from_ref(kv));
                None
            }
        };
    }
    config.insert("Env".into(), env.into());
    let config = serde_json::json!({
        "created": created,
        "architecture": arch,
        "os": "linux",
        "config": config,
        "rootfs": { "type": "layers", "diff_ids": [] },
    });
    serde_json::to_vec_pretty(&config).unwrap_or_default()
}
