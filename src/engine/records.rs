//! The engine's on-disk JSON records: an image's (`<state>/images/<id>/record.json`), a container's
//! (`<state>/containers/<name>/record.json`) and an exec's (`<container>/execs/<n>/record.json`), each
//! written whole ([`crate::json`]), so a crash leaves the old or the new one; a container's is made
//! durable by an entry of the records' log (`<state>/containers.wal`, [`crate::wal`]), replayed onto the
//! files when a daemon opens the root, the others by an fsync each; and the one path by
//! which a container's record changes: planned from the current record under the state lock, saved
//! outside it, then installed, all under that container's record lock ([`Engine::update_record`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use super::state::{Container, Writing};
use super::{Changed, Engine};
use crate::cgroups::Limits;
use crate::error::Error;
use crate::model::{ContainerStatus, ExecStatus, ImageConfig, RestartPolicy, VolumeSource, VolumeSpec};
use crate::network::etc::ExtraHost;
use crate::network::{NetworkMode, PortMap};
use crate::runtime::spec::Security;
use crate::times;

/// The name of the default network, the daemon's own bridge (`--bridge`, `--subnet`).
pub const DEFAULT_NETWORK: &str = "bridge";

/// An image, as stored in `<state>/images/<id>/record.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRecord {
    pub id: String,
    /// What the image was made from, as written: a directory, a reference, a commit's target.
    pub source: String,
    /// Its names, normalised (`docker.io/library/alpine:latest`, see `registry::normalize`): a name
    /// belongs to one image at most. A record older than names has none here: see `names::migrate`.
    #[serde(default)]
    pub names: Vec<String>,
    /// RFC 3339 time of creation.
    pub created: String,
    /// Bytes of file content (imported) or of the layers as stored in the registry (pulled).
    pub size: u64,
    /// The manifest digest of a pulled image.
    #[serde(default)]
    pub digest: Option<String>,
    /// The layer digests of a pulled image, as in its manifest.
    #[serde(default)]
    pub layers: Vec<String>,
    /// The chain ids of the layer subvolumes a pulled image stands on.
    #[serde(default)]
    pub chain: Vec<String>,
    /// The cached build steps a built image was made of (see `engine::build`): kept while it is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
}

/// A container, as stored in `<state>/containers/<name>/record.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub name: String,
    pub image: Option<String>,
    /// What it keeps of its image's config, taken when its image was set: it runs from this whatever
    /// becomes of the image. `None` only in a record older than it (filled at load, see `recovery`).
    #[serde(default)]
    pub image_config: Option<ImageConfig>,
    /// Its arguments, after the entrypoint; `None` means the image's Cmd (see [`ImageConfig::argv`]).
    pub cmd: Option<Vec<String>>,
    /// Its own entrypoint; `None` means the image's.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// Who its command runs as (`NAME`, `UID`, `NAME:GROUP`, `UID:GID`); `None` means the image's User.
    #[serde(default)]
    pub user: Option<String>,
    /// Its working directory; `None` means the image's WorkingDir (else `/`).
    #[serde(default)]
    pub workdir: Option<String>,
    /// Its hostname; `None` means its name.
    #[serde(default)]
    pub hostname: Option<String>,
    /// The signal `stop` sends first; `None` means the image's StopSignal (else SIGTERM).
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// Labels of its own, laid over its image's.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `KEY=VALUE` entries laid over the image's Env.
    pub env: Vec<String>,
    pub status: ContainerStatus,
    /// RFC 3339 time of its `mkdir` (or `run`). Empty in a record without one: see `recovery`.
    #[serde(default)]
    pub created: String,
    pub pid: Option<i32>,
    /// The start time of `pid` (clock ticks since boot): signals go through a pidfd opened against it.
    #[serde(default)]
    pub pid_start: Option<u64>,
    pub monitor_pid: Option<i32>,
    /// The monitor's start time in clock ticks since boot, to tell it from a reused pid.
    pub monitor_start: Option<u64>,
    pub exit_code: Option<i32>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// The last error of a write to this container; empty after a write that succeeded.
    #[serde(default)]
    pub error: String,
    /// Limits written to this container; what is not set takes the daemon's defaults.
    #[serde(default)]
    pub limits: crate::cgroups::Limits,
    /// Whether the last run ended by the kernel's OOM killer.
    #[serde(default)]
    pub oom_killed: bool,
    /// How the container is networked.
    #[serde(default)]
    pub network: NetworkMode,
    /// Host ports forwarded to the container while it runs.
    #[serde(default)]
    pub ports: Vec<PortMap>,
    /// Its address on the default network (`bridge`): given at its first start on it, kept until `rm` or
    /// until it leaves that network.
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
    /// The networks it joins in `bridge` mode, in order (`eth0` first); empty: the default, `bridge`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
    /// Names it has on its networks besides its own (`--network-alias`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Its addresses on the networks other than `bridge`, by network: given at its first start on each,
    /// kept until `rm` or until it leaves that network.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub net_addresses: BTreeMap<String, Ipv4Addr>,
    /// `NAME:IP` lines added to its `/etc/hosts` (`--add-host`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<ExtraHost>,
    /// The servers of its `/etc/resolv.conf`; empty means the daemon's (`--dns`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<IpAddr>,
    /// Bind mounts of host paths and named volumes.
    #[serde(default)]
    pub volumes: Vec<VolumeSpec>,
    /// The anonymous volumes its image's `Volumes` gave it: `(volume, path)` (see `anonymous`).
    #[serde(default)]
    pub anonymous_volumes: Vec<(String, String)>,
    /// A container whose volumes are mounted here too, at the same targets.
    #[serde(default)]
    pub volumes_from: Option<String>,
    #[serde(default)]
    pub security: Security,
    /// Removed by the daemon once it has exited (`docker run --rm`).
    #[serde(default)]
    pub auto_remove: bool,
    /// Its stdio is a terminal its monitor holds (`docker run -t`).
    #[serde(default)]
    pub tty: bool,
    /// Its stdin stays open to writes, through its monitor (`docker run -i`).
    #[serde(default)]
    pub interactive: bool,
    /// What brings it back after its process ends (`docker run --restart`).
    #[serde(default)]
    pub restart: RestartPolicy,
    /// Restarts by its policy since a user last started it.
    #[serde(default)]
    pub restart_count: u32,
    /// A user stopped or killed it (through `ctl`) since they last started it: its policy brings it
    /// back no more (an `always` one only at the daemon's next start).
    #[serde(default)]
    pub stopped_by_user: bool,
    /// Pid 1 is a small init that runs its command (`docker run --init`).
    #[serde(default)]
    pub init: bool,
}

/// A command run in a running container, as stored in `<container>/execs/<n>/record.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecRecord {
    pub id: u32,
    pub argv: Vec<String>,
    /// `running` or `exited` (`starting` only in memory, while it is set up).
    pub status: ExecStatus,
    pub pid: Option<i32>,
    pub helper_pid: Option<i32>,
    pub helper_start: Option<u64>,
    pub exit_code: Option<i32>,
    pub started_at: String,
    pub finished_at: Option<String>,
}

impl ContainerRecord {
    /// What it keeps of its image's config (empty without an image).
    pub fn image_defaults(&self) -> ImageConfig {
        self.image_config.clone().unwrap_or_default()
    }

    /// The argv it starts with: its entrypoint and arguments over its image's.
    pub fn argv(&self) -> Vec<String> {
        self.image_defaults().argv(self.entrypoint.as_deref(), self.cmd.as_deref())
    }

    /// Who it runs as: its own user, else its image's (empty: root).
    pub fn run_user(&self) -> String {
        self.user.clone().unwrap_or_else(|| self.image_defaults().user)
    }

    /// Its working directory: its own, else its image's, else `/`.
    pub fn run_workdir(&self) -> String {
        let dir = self.workdir.clone().unwrap_or_else(|| self.image_defaults().working_dir);
        if dir.is_empty() {
            "/".into()
        } else {
            dir
        }
    }

    /// The networks it is on when it runs, in order: its `networks` (the default `bridge` if it names
    /// none) in `bridge` mode, none in the others.
    pub fn joined_networks(&self) -> Vec<&str> {
        match (&self.network, self.networks.is_empty()) {
            (NetworkMode::Bridge, true) => vec![DEFAULT_NETWORK],
            (NetworkMode::Bridge, false) => self.networks.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// Its address on network `network`, if it has one.
    pub fn address_on(&self, network: &str) -> Option<Ipv4Addr> {
        match network {
            DEFAULT_NETWORK => self.ip,
            other => self.net_addresses.get(other).copied(),
        }
    }

    /// Its address on its first network: where its ports are forwarded and what its `/etc/hosts` names.
    pub fn first_address(&self) -> Option<Ipv4Addr> {
        self.joined_networks().first().and_then(|n| self.address_on(n))
    }

    /// Its hostname: its own, else its name.
    pub fn run_hostname(&self) -> String {
        self.hostname.clone().unwrap_or_else(|| self.name.clone())
    }

    /// The signal `stop` sends first, as written (`SIGQUIT`, `QUIT`, `3`): its own, else its image's,
    /// else empty (SIGTERM).
    pub fn run_stop_signal(&self) -> String {
        self.stop_signal.clone().unwrap_or_else(|| self.image_defaults().stop_signal)
    }

    /// Its anonymous volumes, as volume lines.
    pub fn anonymous_specs(&self) -> Vec<VolumeSpec> {
        let spec = |(volume, path): &(String, String)| VolumeSpec {
            source: VolumeSource::Named(volume.clone()),
            target: path.clone(),
            readonly: false,
        };
        self.anonymous_volumes.iter().map(spec).collect()
    }

    /// The volumes a start mounts, given its `volumes-from` container: its own, then that container's (its
    /// anonymous ones too, as `docker run --volumes-from`), then its own anonymous ones, each at a target
    /// none before it took.
    pub fn mounted_volumes(&self, from: Option<&ContainerRecord>) -> Vec<VolumeSpec> {
        let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
        let mut specs = self.volumes.clone();
        let theirs: Vec<VolumeSpec> =
            from.map(|f| f.volumes.iter().cloned().chain(f.anonymous_specs()).collect()).unwrap_or_default();
        for v in theirs.into_iter().chain(self.anonymous_specs()) {
            if !specs.iter().any(|s| same(&s.target, &v.target)) {
                specs.push(v);
            }
        }
        specs
    }

    /// Its labels: its image's, with its own laid over them.
    pub fn all_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.image_defaults().labels;
        labels.extend(self.labels.clone());
        labels
    }
}

/// The record of a container just made: created, no image, no command.
pub(super) fn new_record(name: &str) -> ContainerRecord {
    ContainerRecord {
        name: name.to_string(),
        image: None,
        image_config: None,
        cmd: None,
        entrypoint: None,
        user: None,
        workdir: None,
        hostname: None,
        stop_signal: None,
        labels: BTreeMap::new(),
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
        networks: Vec::new(),
        aliases: Vec::new(),
        net_addresses: BTreeMap::new(),
        extra_hosts: Vec::new(),
        dns: Vec::new(),
        volumes: Vec::new(),
        anonymous_volumes: Vec::new(),
        volumes_from: None,
        security: Default::default(),
        auto_remove: false,
        tty: false,
        interactive: false,
        restart: RestartPolicy::No,
        restart_count: 0,
        stopped_by_user: false,
        init: false,
    }
}

impl Engine {
    /// Holds container `name`'s record lock: the one holder plans from and writes its record.
    pub(super) fn writing(&self, name: &str) -> Result<Writing, Error> {
        let lock = std::sync::Arc::clone(&self.lock().container(name)?.writer);
        Ok(lock.acquire())
    }

    /// Changes container `name`'s record: `change` plans from its current state under the state lock (pure;
    /// it may refuse, and then nothing changed), the record is saved, then installed.
    pub(super) fn update_record<R>(
        &self,
        name: &str,
        change: impl FnOnce(&Container, &mut ContainerRecord) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let held = self.writing(name)?;
        self.commit_record(&held, name, change, |_| {})
    }

    /// [`Engine::update_record`] for a holder of the record lock; `finish` runs on the container as the
    /// record is installed (clearing a transition with it, in one step).
    pub(super) fn commit_record<R>(
        &self,
        held: &Writing,
        name: &str,
        change: impl FnOnce(&Container, &mut ContainerRecord) -> Result<R, Error>,
        finish: impl FnOnce(&mut Container),
    ) -> Result<R, Error> {
        let (record, out) = {
            let st = self.lock();
            let c = st.container(name).and_then(|c| mine(held, c, name))?;
            let mut record = c.record.clone();
            let out = change(c, &mut record)?;
            (record, out)
        };
        self.save(&record)?;
        let mut st = self.lock();
        mine(held, st.container(name)?, name)?;
        let c = st.container_mut(name)?;
        c.record = record;
        finish(c);
        st.notify(Changed::Container(name.to_string()));
        Ok(out)
    }

    /// Saves a container's record, durably: an entry of the records' log (one `fdatasync` of a
    /// preallocated file, no filesystem journal commit), its file renamed into place after it.
    pub(super) fn save(&self, record: &ContainerRecord) -> Result<(), Error> {
        let file = self.container_dir(&record.name).join("record.json");
        serde_json::to_vec(record)
            .map_err(std::io::Error::other)
            .and_then(|bytes| self.records_log.put(&record.name, &bytes, &file))
            .map_err(Error::record(format!("the record of container '{}'", record.name)))
    }

    /// Deletes a container's record, durably: its removal logged, then its file unlinked.
    pub(super) fn forget(&self, name: &str) -> Result<(), Error> {
        self.records_log
            .remove(name, &self.container_dir(name).join("record.json"))
            .map_err(Error::record(format!("the record of '{name}'")))
    }
}

/// `c`, if `held` is its record lock: a container of the same name made since is another one.
fn mine<'a>(held: &Writing, c: &'a Container, name: &str) -> Result<&'a Container, Error> {
    if held.is_for(c) {
        Ok(c)
    } else {
        Err(Error::NoSuchContainer(name.to_string()))
    }
}

/// A change of a record that can't be refused, for [`Engine::commit_record`].
pub(super) fn always(
    change: impl FnOnce(&mut ContainerRecord),
) -> impl FnOnce(&Container, &mut ContainerRecord) -> Result<(), Error> {
    move |_, record| {
        change(record);
        Ok(())
    }
}
