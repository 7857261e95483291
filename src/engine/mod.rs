//! The engine: the one owner of images and containers.
//!
//! Every change arrives as a typed [`Request`] through [`Engine::handle`], parsed at the boundary (the FUSE
//! adapter): the engine never sees a write's bytes. Each request runs in three steps:
//!
//! - **reserve**: under the state lock, pure work only: look the objects up, pass the gate of their status
//!   ([`ContainerStatus::allows`]), plan (the launch spec, an address, the port claims) and mark the
//!   transition (`starting`, `stopping`, `removing`, `committing`, `creating`, a reserved name, an image
//!   or volume being changed), so a racing request is refused with the truth rather than waiting;
//! - **perform**: every slow or fallible step outside the lock: records written and fsynced, btrfs
//!   ioctls, cgroups, netlink, nft, the monitor's launch, the grace period;
//! - **commit**: under the lock again, the result installed and the transition cleared; on failure the
//!   transition is cleared and nothing else changed.
//!
//! Each record is written before memory shows it, so a failed request changes nothing and a restarted
//! daemon finds what the last one had. Reads never take the state lock: every change, when its guard
//! drops, publishes an immutable snapshot of the state (`state::StateGuard`), and `views` reads that.
//!
//! Lock order, outermost first; none is held across a launch, a grace period or an ioctl:
//! 0. `network_changes`, held across a network's making, removal or change of subnet (bridge, tables,
//!    DNS server) and across a write of a container's `networks` (see `networks`);
//! 1. a container's `writer` lock (state::Container), held by whoever plans from or writes that
//!    container's record, for one record fsync at most;
//! 2. `forwards`, held while the firewall's forwards are computed and written (only for a container
//!    with ports), and `pulling` (one pull per reference);
//! 3. `state`, pure work only; `published` and `errors` are leaves taken alone.
//!
//! Builds take `build_gate` (a build begun, steps collected) and `making_images` (a build's image
//! made), each alone or before `state`, never held across a step.
//!
//! This file holds the `Engine` itself, its locks and directories, and the dispatch of requests; each
//! concern has a file of its own: `state` (what is in memory, its gate and lookups), `records` (the JSON
//! records), `plan` (a start planned from the state), `recovery` (opening a root), `exits` (the watcher
//! and exit bookkeeping), `lifecycle` (create,
//! start, stop, restart, kill, remove), `pause` (the freezer), `exec`, `images` (import, pull, push, commit, removal), `names` (resolving what names an image, its
//! names moved, tag and untag), `oci_config`,
//! `configure`, `volumes`, `networks` (the networks' records, bridges and subnets), `dns_names` (what their DNS
//! servers answer), `ports` (forwards and the firewall), `journal` (the error journal), `notify`
//! (change notices), `events` (the `events` file), `build` (Dockerfile builds: their records and the
//! cache's collection), `build_steps` (the steps in order), `build_cache` (a step from the cache or made
//! and sealed, COPY/ADD, the image), `build_run` (a `RUN` through the monitor), `views` (what the FUSE side reads and renders) and
//! `waits` (what a `wait` waits for, and when objects changed).

mod anonymous;
mod build;
mod build_cache;
mod build_run;
mod build_steps;
mod configure;
mod dns_names;
mod events;
mod exec;
mod exits;
mod images;
mod journal;
mod launch;
mod lifecycle;
mod names;
mod networks;
mod notify;
mod oci_config;
mod pause;
mod plan;
mod ports;
mod records;
mod recovery;
mod restart;
mod spares;
mod state;
mod stdin;
mod views;
mod volumes;
mod waits;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};

use tracing::info;

pub use crate::model::ContainerStatus;
pub use build::{BuildRecord, BuildStatus};
pub use events::EventType;
pub use exits::{ExitSlot, LogHold};
pub use networks::NetworkRecord;
pub use notify::{Changed, Listener};
pub use records::{ContainerRecord, ExecRecord, ImageRecord, DEFAULT_NETWORK};
pub use views::{ContainerView, ImageView, NetworkView};
pub use waits::Wait;

use crate::cgroups::{Cgroups, Limits};
use crate::error::Error;
use crate::logs::LogLimits;
use crate::network::Network;
use crate::registry::Registry;
use crate::request::Request;
use crate::runtime::watcher::Watcher;
use crate::store::Store;
use records::new_record;
use state::{State, StateGuard};

/// What a successful request gives back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Done,
    /// The id of the image or container the request made.
    Created(String),
    /// A container started: the slot its run's exit code fills when it ends.
    Started(ExitSlot),
}

/// The owner of all images and containers of one daemon root.
pub struct Engine {
    state_dir: PathBuf,
    /// The durable copy of each container record's last change (see `records::save` and `crate::wal`).
    records_log: crate::wal::Wal,
    store: Store,
    registry: Registry,
    cgroups: Cgroups,
    network: Arc<Network>,
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
    /// The state as of the last change, for reads (see `state::StateGuard`).
    published: RwLock<Arc<State>>,
    /// Signalled whenever a container's status changes.
    changed: Condvar,
    errors: Mutex<()>,
    /// The daemon's root and mount point, which no volume may expose (see [`Engine::protect`]).
    protected: std::sync::OnceLock<volumes::Protected>,
    /// The one thread that follows every running monitor and exec helper (see `exits`).
    watcher: Watcher<exits::Exited>,
    /// Exited records on their way to disk (see `exits`).
    exit_saves: exits::ExitSaves,
    /// Who hears of changes (see `notify`).
    notices: notify::Notices,
    /// The `events` file's writer (see `events`).
    events: events::Events,
    /// The back-off of restarts by policy (see `restart`).
    restarts: restart::Restarts,
    /// The containers not running when the daemon started, for `start_by_policies`.
    exited_at_open: Mutex<Vec<String>>,
    /// The init binary of containers with `init` (see `runtime::pid1`); its default unless set.
    init_path: std::sync::OnceLock<PathBuf>,
    /// How many cached build steps no image stands on are kept (see `build`).
    loose_steps: std::sync::OnceLock<(usize, u64)>,
    /// Held while a build is begun and while cached steps are collected: no build starts on a step being
    /// deleted (see `build`).
    build_gate: Mutex<()>,
    /// Held while a build makes its image (see `build_cache`).
    making_images: Mutex<()>,
    /// Held across a network's making, removal or change of subnet (see `networks`): one at a time.
    network_changes: Mutex<()>,
    /// The networks' DNS servers, once `start_dns` ran (see `dns_names`).
    dns: std::sync::OnceLock<crate::network::dns::DnsServers>,
    /// Monitors started ahead for starts with bridge networking (see `runtime::spare`).
    spares: spares::Spares,
}

impl Engine {
    /// Names the daemon's root and mount point, so no volume source inside them is accepted.
    pub fn protect(&self, root: &Path, mount: &Path) {
        let _ = self.protected.set(volumes::Protected::new(root, mount));
    }

    /// Keeps `n` monitors started ahead from now on (see `runtime::spare`).
    pub fn start_spares(&self, n: usize) {
        self.spares.start(n, self.state_dir.clone(), self.cgroups.clone(), Arc::clone(&self.network));
    }

    fn protected(&self) -> volumes::Protected {
        self.protected.get().cloned().unwrap_or_default()
    }

    /// The state, for pure work: reserve or commit a change (see the module's comment).
    fn lock(&self) -> StateGuard<'_> {
        StateGuard::new(self, self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The state as of the last change, without waiting for any request in flight.
    fn view(&self) -> Arc<State> {
        Arc::clone(&self.published.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn lock_forwards(&self) -> MutexGuard<'_, ()> {
        self.forwards.lock().unwrap_or_else(|e| e.into_inner())
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

    fn exec_dir(&self, name: &str, n: u32) -> PathBuf {
        self.container_dir(name).join("execs").join(n.to_string())
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
            | Request::SetNetworks { name, .. }
            | Request::SetAliases { name, .. }
            | Request::SetPorts { name, .. }
            | Request::Commit { name, .. }
            | Request::Exec { name, .. }
            | Request::WriteStdin { name, .. }
            | Request::SetPrivileged { name, .. }
            | Request::SetCapAdd { name, .. }
            | Request::SetSetting { name, .. }
            | Request::SetAutoRemove { name, .. }
            | Request::SetVolumes { name, .. }
            | Request::SetVolumesFrom { name, .. }
            | Request::Ctl { name, .. } => Some(name.clone()),
            _ => None,
        };
        let result = match request {
            Request::Import { dir, changes, caller } => self.import(&dir, &changes, &caller).map(Response::Created),
            Request::Pull { spec } => self.pull(&spec).map(Response::Created),
            Request::Push { spec } => self.push(&spec).map(Response::Created),
            Request::Run { image, argv, auto_remove } => self.run(&image, argv, auto_remove).map(Response::Created),
            Request::CreateContainer { name } => self.insert_container(new_record(&name)).map(|()| Response::Done),
            Request::RemoveContainer { name } => self.remove_container(&name).map(|()| Response::Done),
            Request::RemoveImage { id } => self.remove_image(&id).map(|()| Response::Done),
            Request::Tag { image, name } => self.tag(&image, &name).map(|()| Response::Done),
            Request::Untag { name } => self.untag(&name).map(|()| Response::Done),
            Request::SetImage { name, image } => self.set_image(&name, &image).map(|()| Response::Done),
            Request::SetCmd { name, argv } => self.configure(&name, |r| r.cmd = argv).map(|()| Response::Done),
            Request::SetEnv { name, env } => self.configure(&name, |r| r.env = env).map(|()| Response::Done),
            Request::SetLimit { name, kind, limit } => self.set_limit(&name, kind, limit).map(|()| Response::Done),
            Request::SetNetwork { name, mode } => self.set_network(&name, mode).map(|()| Response::Done),
            Request::SetPorts { name, ports } => self.set_ports(&name, ports).map(|()| Response::Done),
            Request::SetNetworks { name, networks } => self.set_networks(&name, networks).map(|()| Response::Done),
            Request::SetAliases { name, aliases } => {
                self.configure(&name, |r| r.aliases = aliases).map(|()| Response::Done)
            }
            Request::CreateNetwork { name } => self.create_network(&name).map(|()| Response::Done),
            Request::RemoveNetwork { name } => self.remove_network(&name).map(|()| Response::Done),
            Request::SetSubnet { network, subnet } => self.set_subnet(&network, subnet).map(|()| Response::Done),
            Request::Commit { name, image } => self.commit(&name, &image).map(Response::Created),
            Request::SetPrivileged { name, privileged } => {
                self.configure(&name, |r| r.security.privileged = privileged).map(|()| Response::Done)
            }
            Request::SetCapAdd { name, caps } => {
                self.configure(&name, |r| r.security.cap_add = caps).map(|()| Response::Done)
            }
            Request::SetAutoRemove { name, auto_remove } => {
                self.configure(&name, |r| r.auto_remove = auto_remove).map(|()| Response::Done)
            }
            Request::Exec { name, argv, options } => {
                self.exec(&name, argv, options).map(|n| Response::Created(n.to_string()))
            }
            Request::WriteStdin { name, bytes } => self.write_stdin(&name, &bytes).map(|()| Response::Done),
            Request::SetSetting { name, setting } => {
                self.configure(&name, |r| configure::apply_setting(r, setting)).map(|()| Response::Done)
            }
            Request::SetVolumes { name, volumes } => self.set_volumes(&name, volumes).map(|()| Response::Done),
            Request::SetVolumesFrom { name, from } => self.set_volumes_from(&name, from).map(|()| Response::Done),
            Request::CreateVolume { name } => self.create_volume(&name).map(|()| Response::Done),
            Request::RemoveVolume { name } => self.remove_volume(&name).map(|()| Response::Done),
            Request::Ctl { name, verb } => self.ctl(&name, verb),
            Request::Build { spec, caller } => self.build(&spec, &caller).map(Response::Created),
            Request::RemoveBuild { n } => self.remove_build(n).map(|()| Response::Done),
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

    /// Leaves the store mounted while containers still run in it, so a new daemon can re-adopt them.
    pub fn shutdown(&self) {
        self.spares.stop(&self.cgroups);
        self.stop_all_dns();
        self.stop_restarts();
        self.drain_exit_saves();
        self.cgroups.remove_parent();
        self.store.close(!self.any_running());
    }
}
