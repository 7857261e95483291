//! What the FUSE side reads: the names that exist, typed views of an image, a container and an exec
//! (rendered into file contents by `fs::render`), and the paths of rootfs, logs and volumes. Queries read
//! the state as last published and never wait for a request in flight (see `state::StateGuard`).

use std::path::PathBuf;
use std::sync::Arc;

use super::records::{ContainerRecord, ExecRecord, ImageRecord};
use super::Engine;
use crate::cgroups::{Cgroups, LimitKind, Limits, StatFile, Stats};
use crate::model::{ContainerStatus, ExecStatus, VolumeSource, VolumeSpec};
use crate::network::Subnet;
use crate::request::merge_env;
use crate::store::Store;

impl Engine {
    pub fn image_ids(&self) -> Vec<String> {
        self.view().images.keys().cloned().collect()
    }

    pub fn container_names(&self) -> Vec<String> {
        self.view().containers.keys().cloned().collect()
    }

    pub fn has_image(&self, id: &str) -> bool {
        self.view().images.contains_key(id)
    }

    pub fn has_container(&self, name: &str) -> bool {
        self.view().containers.contains_key(name)
    }

    pub fn any_running(&self) -> bool {
        self.view().containers.values().any(|c| c.record.status.has_process())
    }

    /// The read-only subvolume of an image, for browsing.
    pub fn image_rootfs(&self, id: &str) -> Option<PathBuf> {
        self.has_image(id).then(|| self.store.image_path(id))
    }

    /// The rootfs of a container, once it has an image.
    pub fn container_rootfs(&self, name: &str) -> Option<PathBuf> {
        let has_image = self.view().containers.get(name).is_some_and(|c| c.record.image.is_some());
        has_image.then(|| self.store.container_path(name))
    }

    /// Where the attach socket of container `name` (or of its exec `n`) is: its monitor's while it runs.
    /// The path is given for any container (a link to nothing while it doesn't run, as `docker attach`
    /// to a stopped one fails).
    pub fn attach_socket(&self, name: &str, exec: Option<u32>) -> Option<PathBuf> {
        let st = self.view();
        let c = st.containers.get(name)?;
        let dir = match exec {
            Some(n) => {
                c.execs.get(&n)?;
                self.exec_dir(name, n)
            }
            None => self.container_dir(name),
        };
        Some(dir.join(crate::attach::SOCKET_NAME))
    }

    /// The numbers of a container's execs that have started (none while one is being set up).
    pub fn exec_ids(&self, name: &str) -> Vec<u32> {
        let st = self.view();
        let Some(c) = st.containers.get(name) else { return Vec::new() };
        c.execs.values().filter(|e| e.status != ExecStatus::Starting).map(|e| e.id).collect()
    }

    pub fn has_exec(&self, name: &str, n: u32) -> bool {
        self.exec_ids(name).contains(&n)
    }

    /// The directory of an exec's output segments (see [`crate::logs`]).
    pub fn exec_logs_path(&self, name: &str, n: u32) -> Option<PathBuf> {
        self.has_exec(name, n).then(|| self.exec_dir(name, n).join("log"))
    }

    /// The networks' names: the default `bridge` and those made by `mkdir networks/NAME`.
    pub fn network_names(&self) -> Vec<String> {
        let mut names = vec![super::records::DEFAULT_NETWORK.to_string()];
        names.extend(self.view().networks.keys().cloned());
        names
    }

    pub fn has_network(&self, name: &str) -> bool {
        name == super::records::DEFAULT_NETWORK || self.view().networks.contains_key(name)
    }

    /// A network's record (the default's made of the daemon's options) and the containers that list it.
    pub fn network_view(&self, name: &str) -> Option<NetworkView> {
        let st = self.view();
        let record = match name {
            super::records::DEFAULT_NETWORK => {
                let b = self.network.default_bridge();
                super::NetworkRecord {
                    name: name.to_string(),
                    subnet: b.subnet,
                    bridge: b.name,
                    created: String::new(),
                }
            }
            other => st.networks.get(other)?.clone(),
        };
        Some(NetworkView { record, containers: st.network_users(name) })
    }

    pub fn volume_names(&self) -> Vec<String> {
        self.view().volumes.iter().cloned().collect()
    }

    pub fn has_volume(&self, name: &str) -> bool {
        self.view().volumes.contains(name)
    }

    /// The content of a named volume (its `data` link's target).
    pub fn volume_path(&self, name: &str) -> Option<PathBuf> {
        self.has_volume(name).then(|| self.store.volume_path(name))
    }

    /// The directory of a container's log segments (see [`crate::logs`]).
    pub fn logs_path(&self, name: &str) -> Option<PathBuf> {
        self.has_container(name).then(|| self.container_dir(name).join("log"))
    }

    /// Build `n`'s record.
    pub fn build_record(&self, n: u32) -> Option<Arc<super::BuildRecord>> {
        self.view().builds.get(&n).cloned()
    }

    /// The numbers of the builds kept.
    pub fn build_numbers(&self) -> Vec<u32> {
        self.view().builds.keys().copied().collect()
    }

    /// The log of build `n` (a directory of segments, as a container's).
    pub fn build_logs_path(&self, n: u32) -> Option<PathBuf> {
        self.view().builds.contains_key(&n).then(|| self.build_dir(n).join("log"))
    }

    /// The `images/pulls` file: a line per layer of each pull under way.
    pub fn pull_progress(&self) -> Vec<u8> {
        self.registry.progress.render()
    }

    /// The `errors` file: every failed write, one line each.
    pub fn errors_path(&self) -> PathBuf {
        self.errors_file()
    }
}

/// A network, as its files show it.
pub struct NetworkView {
    pub record: super::NetworkRecord,
    pub containers: Vec<String>,
}

/// An image as its files show it.
pub struct ImageView<'a> {
    pub record: &'a ImageRecord,
    /// Its OCI config, as stored.
    pub config_raw: &'a [u8],
}

/// A container as its files show it: its record, what it takes from its image, and its cgroup's live values.
pub struct ContainerView<'a> {
    pub record: &'a ContainerRecord,
    /// What it is doing now: its settled status, or the transition under way.
    pub status: ContainerStatus,
    /// The networks it joins, in order, each with its subnet (whose first address is the gateway there)
    /// and its address there, if it has one yet.
    pub networks: Vec<(String, Subnet, Option<std::net::Ipv4Addr>)>,
    /// The record of its `volumes-from` container, if that exists.
    from: Option<&'a ContainerRecord>,
    store: &'a Store,
    cgroups: &'a Cgroups,
    defaults: &'a Limits,
}

impl ContainerView<'_> {
    /// The arguments a start puts after the entrypoint: its own, else its image's Cmd (none if it set its
    /// own entrypoint), as Docker's `Config.Cmd`.
    pub fn cmd(&self) -> Vec<String> {
        self.record.image_defaults().cmd_of(self.record.entrypoint.as_deref(), self.record.cmd.as_deref())
    }

    /// The entrypoint a start runs: its own, else its image's.
    pub fn entrypoint(&self) -> Vec<String> {
        self.record.image_defaults().entrypoint_of(self.record.entrypoint.as_deref())
    }

    /// Its image's Env with its own laid over.
    pub fn env(&self) -> Vec<String> {
        merge_env(&self.record.image_defaults().env, &self.record.env)
    }

    /// The kernel's value of the limit of `kind` while it runs; `None` when it does not.
    pub fn live_limit(&self, kind: LimitKind) -> Option<String> {
        // The kernel's default weight is none of ours (v1's BFQ and CFQ scales differ from v2's): io.weight
        // shows a weight once one is set, as Docker's BlkioWeight is 0 until then.
        let unset_weight = kind == LimitKind::IoWeight && self.configured_limits().io_weight.is_none();
        if self.record.status.has_process() && !unset_weight {
            self.cgroups.read_limit(&self.record.name, kind)
        } else {
            None
        }
    }

    /// The limit of `kind` as configured, or the daemon's default, in cgroup v2 terms.
    pub fn configured_limit(&self, kind: LimitKind) -> Option<String> {
        self.configured_limits().get(kind).map(|l| l.v2_value())
    }

    /// Its limits as configured, the daemon's defaults where it set none; its swap unlimited (`max`)
    /// where the host has no swap accounting, whatever was set.
    pub fn configured_limits(&self) -> Limits {
        let mut limits = self.record.limits.or(self.defaults);
        if !self.cgroups.swap_accounting() {
            limits.memory_swap_max = Some(crate::cgroups::Max(None));
        }
        limits
    }

    /// Its cgroup's counters, read now.
    pub fn stats(&self) -> Stats {
        self.cgroups.stats(&self.record.name)
    }

    /// A stat file of its cgroup, read now: `None` while it has none.
    pub fn stat_file(&self, file: StatFile) -> Result<Option<String>, crate::cgroups::CgroupError> {
        self.cgroups.stat_file(&self.record.name, file)
    }

    /// The volumes a start mounts: its own, then those of its `volumes-from` container at targets it
    /// leaves free (as a start plans them).
    pub fn all_volumes(&self) -> Vec<VolumeSpec> {
        self.record.mounted_volumes(self.from)
    }

    /// Where a volume's content is on the host: a host path as written, a named volume's subvolume.
    pub fn volume_source(&self, spec: &VolumeSpec) -> PathBuf {
        match &spec.source {
            VolumeSource::Host(p) => p.clone(),
            VolumeSource::Named(n) => self.store.volume_path(n),
        }
    }
}

impl Engine {
    /// `f` of image `id`, under the state lock; `None` for an unknown image.
    pub fn with_image<R>(&self, id: &str, f: impl FnOnce(ImageView<'_>) -> R) -> Option<R> {
        let st = self.view();
        let image = st.images.get(id)?;
        Some(f(ImageView { record: &image.record, config_raw: &image.config_raw }))
    }

    /// `f` of container `name`, under the state lock; `None` for an unknown container.
    pub fn with_container<R>(&self, name: &str, f: impl FnOnce(ContainerView<'_>) -> R) -> Option<R> {
        let st = self.view();
        let c = st.containers.get(name)?;
        let record = &c.record;
        let from = record.volumes_from.as_ref().and_then(|n| st.containers.get(n)).map(|c| &c.record);
        Some(f(ContainerView {
            record,
            status: c.status(),
            networks: record
                .joined_networks()
                .into_iter()
                .filter_map(|n| {
                    let subnet = match n {
                        super::records::DEFAULT_NETWORK => *self.network.subnet(),
                        other => st.networks.get(other)?.subnet,
                    };
                    Some((n.to_string(), subnet, record.address_on(n)))
                })
                .collect(),
            from,
            store: &self.store,
            cgroups: &self.cgroups,
            defaults: &self.defaults,
        }))
    }

    /// `f` of exec `n` of `name`, under the state lock; `None` for an unknown exec (or one being set up).
    pub fn with_exec<R>(&self, name: &str, n: u32, f: impl FnOnce(&ExecRecord) -> R) -> Option<R> {
        let st = self.view();
        let e = st.containers.get(name)?.execs.get(&n).filter(|e| e.status != ExecStatus::Starting)?;
        Some(f(e))
    }
}
