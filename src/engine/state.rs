//! The engine's state in memory: images (record and parsed config), containers (record, transition,
//! execs, the lock that orders changes to its record) and named volumes, the names and objects a request
//! has reserved, and the lookups and plans every request makes from it. All of it is pure: nothing here
//! touches a file, a cgroup or the kernel.
//!
//! The state is owned behind one mutex ([`StateGuard`]) that is held only for this pure work; each
//! change, when the guard drops, is published as an immutable snapshot that reads use without locking
//! (see `views`), and the change notices it gathered go to the listener.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::SystemTime;

use oci_spec::image::ImageConfiguration;

use super::records::{ContainerRecord, ExecRecord, ImageRecord};
use super::{Changed, Engine};
use crate::error::Error;
use crate::model::{ContainerStatus, Op};
use crate::network::{Forwards, NetworkError, NetworkMode, PortMap, Subnet};

pub(super) struct Image {
    pub(super) record: ImageRecord,
    pub(super) config: ImageConfiguration,
    pub(super) config_raw: Vec<u8>,
}

#[derive(Clone)]
pub(super) struct Container {
    /// As stored: its status is always a settled one.
    pub(super) record: ContainerRecord,
    /// The operation under way, if any: a transitional status, in memory only.
    pub(super) transition: Option<ContainerStatus>,
    /// While `creating`: the image its new rootfs is made from.
    pub(super) pending_image: Option<String>,
    /// Commands run in it with `exec`, by number.
    pub(super) execs: BTreeMap<u32, ExecRecord>,
    /// Held by whoever reads this record to plan a change of it, or writes it: one at a time, each for
    /// one fsync at most. Taken before the state lock, never while holding it.
    pub(super) writer: Arc<RecordLock>,
    /// The exit code of its last run started, filled at its exit (see [`super::exits::ExitSlot`]).
    pub(super) exit: super::exits::ExitSlot,
    /// How many open `logs` files hold it (see [`super::exits::LogHold`]); shared by its copies.
    pub(super) log_readers: Arc<std::sync::atomic::AtomicUsize>,
    /// When [`Container::status`] last changed (set as each change is published, see [`StateGuard`]); at
    /// load, the time of its record's settled status (the mtime of its directory and its `status`).
    pub(super) status_since: SystemTime,
    /// Restarts under way: its exit between their stop and their start doesn't remove it (`auto_remove`),
    /// as Docker's restart doesn't.
    pub(super) restarts: u32,
}

impl Container {
    pub(super) fn new(record: ContainerRecord) -> Container {
        Container {
            transition: None,
            pending_image: None,
            execs: BTreeMap::new(),
            writer: Arc::new(RecordLock::default()),
            exit: Default::default(),
            log_readers: Default::default(),
            restarts: 0,
            status_since: settled_since(&record),
            record,
        }
    }

    /// What it is doing: the transition under way, else its settled status.
    pub(super) fn status(&self) -> ContainerStatus {
        self.transition.unwrap_or(self.record.status)
    }

    /// The one gate: `op` may run now, or the refusal that says why not. An operation on its process
    /// (stop, kill, exec, pause, unpause) is refused with "not running" whenever none runs, whatever is under
    /// way; a commit of a running or paused container leaves its process to stop, kill, exec, limits and
    /// unpause as if it weren't there (a pause would need a transition of its own: refused meanwhile).
    pub(super) fn gate(&self, op: Op) -> Result<(), Error> {
        let refuse = |status| Err(Error::WrongState { name: self.record.name.clone(), status, op });
        let settled = self.record.status;
        if op.needs_process() && !settled.has_process() && self.transition != Some(ContainerStatus::Starting) {
            return refuse(settled);
        }
        let on_process = matches!(op, Op::Stop | Op::Kill | Op::Exec | Op::Tune | Op::Unpause);
        let status = match self.transition {
            Some(ContainerStatus::Committing) if on_process => settled,
            _ => self.status(),
        };
        if status.allows(op) {
            Ok(())
        } else {
            refuse(status)
        }
    }
}

/// When `record` reached its settled status, as far as its record says (to the second): its exit, its
/// start, else its creation; the epoch if none can be read.
fn settled_since(record: &ContainerRecord) -> SystemTime {
    let time = match record.status {
        ContainerStatus::Exited => record.finished_at.as_deref(),
        ContainerStatus::Running | ContainerStatus::Paused => record.started_at.as_deref(),
        _ => None,
    };
    time.or(Some(record.created.as_str()))
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

#[derive(Clone, Default)]
pub(super) struct State {
    pub(super) images: BTreeMap<String, Arc<Image>>,
    pub(super) containers: BTreeMap<String, Arc<Container>>,
    /// Named volumes; each is a subvolume of the store, its own record.
    pub(super) volumes: BTreeSet<String>,
    /// Names of containers being made, taken but not yet shown, with the image each is made from.
    pub(super) reserved: BTreeMap<String, Option<String>>,
    /// Images a request is removing or replacing, and which.
    pub(super) changing_images: BTreeMap<String, &'static str>,
    /// Volumes being made or removed, and which.
    pub(super) changing_volumes: BTreeMap<String, &'static str>,
    /// Builds, running and finished, by number (see `build`).
    pub(super) builds: BTreeMap<u32, Arc<super::build::BuildRecord>>,
    /// The number the next build gets.
    pub(super) next_build: u32,
    /// Bridge addresses held by the `RUN` steps of builds under way, by build number.
    pub(super) build_addresses: BTreeMap<u32, Ipv4Addr>,
    /// The networks made by `mkdir networks/NAME` (the default `bridge` is the daemon's own, not here).
    pub(super) networks: BTreeMap<String, super::networks::NetworkRecord>,
    /// Networks being made, removed or given a new subnet, and which.
    pub(super) changing_networks: BTreeMap<String, &'static str>,
}

impl State {
    pub(super) fn container(&self, name: &str) -> Result<&Container, Error> {
        self.containers.get(name).map(|c| &**c).ok_or_else(|| Error::NoSuchContainer(name.to_string()))
    }

    /// A container to change (copied first if a published snapshot still shares it).
    pub(super) fn container_mut(&mut self, name: &str) -> Result<&mut Container, Error> {
        self.containers.get_mut(name).map(Arc::make_mut).ok_or_else(|| Error::NoSuchContainer(name.to_string()))
    }

    /// Whether `name` is taken by a container or one being made.
    pub(super) fn name_taken(&self, name: &str) -> bool {
        self.containers.contains_key(name) || self.reserved.contains_key(name)
    }

    /// Containers whose rootfs is being made from image `id` now (given it, or run from it).
    pub(super) fn image_users(&self, id: &str) -> Vec<String> {
        // A container made from it keeps its own rootfs and its image's config: only one whose rootfs is
        // being made from it right now needs it.
        let named =
            self.containers.values().filter(|c| c.pending_image.as_deref() == Some(id)).map(|c| c.record.name.clone());
        let reserved = self.reserved.iter().filter(|(_, i)| i.as_deref() == Some(id)).map(|(n, _)| n.clone());
        named.chain(reserved).collect()
    }

    /// An image a request may use: refused while another removes it.
    pub(super) fn usable_image(&self, reference: &str) -> Result<&Arc<Image>, Error> {
        let image = self.resolve_image(reference)?;
        match self.changing_images.get(&image.record.id) {
            Some(&doing) if doing == super::images::REMOVING => {
                Err(Error::Changing { what: format!("image '{}'", image.record.id), doing })
            }
            _ => Ok(image),
        }
    }

    /// The forwards of every container that runs or is starting, less `except`'s: a starting one's host
    /// ports are claimed from its plan on, so two starts never take one port.
    pub(super) fn forwards(&self, except: Option<&str>) -> Vec<Forwards> {
        self.containers
            .values()
            .filter(|c| Some(c.record.name.as_str()) != except)
            .filter(|c| c.record.status.has_process() || c.status() == ContainerStatus::Starting)
            .filter(|c| c.record.network == NetworkMode::Bridge && !c.record.ports.is_empty())
            .filter_map(|c| {
                let ip = c.record.first_address()?;
                Some(Forwards { name: c.record.name.clone(), ip, ports: c.record.ports.clone() })
            })
            .collect()
    }

    /// Fails if a container other than `name` that runs or is starting forwards a host port `ports` claims.
    pub(super) fn check_port_claims(&self, name: &str, ports: &[PortMap]) -> Result<(), NetworkError> {
        for other in self.forwards(Some(name)) {
            if let Some(p) = ports.iter().find(|p| other.ports.iter().any(|o| o.clashes_with(p))) {
                return Err(NetworkError::PortClaimed { map: p.to_string(), other: other.name });
            }
        }
        Ok(())
    }

    /// The address `name` starts with on `network` (of `subnet`): the one it has, or the lowest no other
    /// container holds there.
    pub(super) fn address_on(&self, name: &str, network: &str, subnet: &Subnet) -> Result<Ipv4Addr, Error> {
        let c = self.container(name)?;
        // Only an address the anti-spoofing table binds (an older daemon may have handed out others).
        if let Some(ip) = c.record.address_on(network).filter(|ip| subnet.is_container_address(*ip)) {
            return Ok(ip);
        }
        let used: Vec<Ipv4Addr> = self
            .containers
            .values()
            .filter(|o| o.record.name != name)
            .filter_map(|o| o.record.address_on(network))
            .collect();
        match network {
            super::records::DEFAULT_NETWORK => self.allocate(subnet, used),
            _ => crate::network::allocate(subnet, &used, crate::network::port_lingers)
                .ok_or_else(|| NetworkError::Exhausted(subnet.cidr()).into()),
        }
    }

    /// The lowest address of `subnet` that neither `used` nor a build's step holds, passing over one whose
    /// last holder's veth pair the kernel has yet to remove.
    pub(super) fn allocate(&self, subnet: &Subnet, mut used: Vec<Ipv4Addr>) -> Result<Ipv4Addr, Error> {
        used.extend(self.build_addresses.values().copied());
        crate::network::allocate(subnet, &used, crate::network::port_lingers)
            .ok_or_else(|| NetworkError::Exhausted(subnet.cidr()).into())
    }
}

/// The lock that orders the changes of one container's record (see [`Container::writer`]): owned, so a
/// request can hold it across the record's fsync without borrowing the state.
#[derive(Default)]
pub(super) struct RecordLock {
    busy: Mutex<bool>,
    free: Condvar,
}

impl RecordLock {
    pub(super) fn acquire(self: &Arc<Self>) -> Writing {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        while *busy {
            busy = self.free.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
        *busy = true;
        Writing { lock: Arc::clone(self) }
    }
}

/// Proof that its holder may plan from and write one container's record; released when dropped.
pub(super) struct Writing {
    lock: Arc<RecordLock>,
}

impl Writing {
    /// Whether this is `c`'s lock (and not that of a container of the same name removed since).
    pub(super) fn is_for(&self, c: &Container) -> bool {
        Arc::ptr_eq(&self.lock, &c.writer)
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        *self.lock.busy.lock().unwrap_or_else(|e| e.into_inner()) = false;
        self.lock.free.notify_one();
    }
}

/// The state, locked for pure work. Dropping it publishes what changed and sends the notices gathered.
pub(super) struct StateGuard<'a> {
    guard: Option<MutexGuard<'a, State>>,
    engine: &'a Engine,
    dirty: bool,
    notices: Vec<Changed>,
}

impl<'a> StateGuard<'a> {
    pub(super) fn new(engine: &'a Engine, guard: MutexGuard<'a, State>) -> StateGuard<'a> {
        StateGuard { guard: Some(guard), engine, dirty: false, notices: Vec::new() }
    }

    /// Tells the listener, once this change is published, that `what` changed.
    pub(super) fn notify(&mut self, what: Changed) {
        self.dirty = true;
        self.notices.push(what);
    }
}

impl std::ops::Deref for StateGuard<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        self.guard.as_ref().expect("a state guard holds its lock until it drops")
    }
}

impl std::ops::DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        self.dirty = true;
        self.guard.as_mut().expect("a state guard holds its lock until it drops")
    }
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        let Some(mut guard) = self.guard.take() else { return };
        if self.dirty {
            stamp_status_changes(&mut guard, &self.engine.published, &self.notices);
            publish(&self.engine.published, Arc::new(guard.clone()));
        }
        drop(guard);
        for what in self.notices.drain(..) {
            self.engine.notify(what);
        }
    }
}

/// Sets `status_since` of each container a notice names whose status differs from the one last published
/// (made, started, stopping, exited...), so the time its files show moves with the change itself.
fn stamp_status_changes(state: &mut State, published: &RwLock<Arc<State>>, notices: &[Changed]) {
    let before = Arc::clone(&published.read().unwrap_or_else(|e| e.into_inner()));
    let now = SystemTime::now();
    for what in notices {
        let Changed::Container(name) = what else { continue };
        let was = before.containers.get(name).map(|c| c.status());
        if let Some(c) = state.containers.get_mut(name).filter(|c| Some(c.status()) != was) {
            Arc::make_mut(c).status_since = now;
        }
    }
}

fn publish(published: &RwLock<Arc<State>>, state: Arc<State>) {
    *published.write().unwrap_or_else(|e| e.into_inner()) = state;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::records::new_record;

    fn container(settled: ContainerStatus, transition: Option<ContainerStatus>) -> Container {
        let mut r = new_record("c");
        r.status = settled;
        Container { transition, ..Container::new(r) }
    }

    fn errno(c: &Container, op: Op) -> Option<i32> {
        c.gate(op).err().map(|e| e.errno())
    }

    #[test]
    fn a_commit_of_a_running_container_leaves_its_process_alone() {
        let c = container(ContainerStatus::Running, Some(ContainerStatus::Committing));
        assert_eq!(c.status(), ContainerStatus::Committing);
        for op in [Op::Stop, Op::Kill, Op::Exec, Op::Tune] {
            assert_eq!(errno(&c, op), None, "{op:?}");
        }
        for op in [Op::Start, Op::Remove, Op::Configure, Op::Commit] {
            assert_eq!(errno(&c, op), Some(libc::EBUSY), "{op:?}");
        }
    }

    #[test]
    fn no_process_is_not_running_whatever_is_under_way() {
        for t in
            [None, Some(ContainerStatus::Committing), Some(ContainerStatus::Removing), Some(ContainerStatus::Creating)]
        {
            let c = container(ContainerStatus::Exited, t);
            for op in [Op::Stop, Op::Kill, Op::Exec] {
                assert_eq!(errno(&c, op), Some(libc::ESRCH), "{t:?} {op:?}");
                assert!(c.gate(op).unwrap_err().to_string().contains("is not running"));
            }
        }
        // A start under way is not "not running" yet: try again.
        let c = container(ContainerStatus::Created, Some(ContainerStatus::Starting));
        assert_eq!(errno(&c, Op::Stop), Some(libc::EBUSY));
        assert!(c.gate(Op::Stop).unwrap_err().to_string().contains("is starting"));
    }

    #[test]
    fn a_paused_container_takes_signals_limits_commits_and_unpause_but_no_exec() {
        let paused = container(ContainerStatus::Paused, None);
        for op in [Op::Stop, Op::Kill, Op::Tune, Op::Commit, Op::Unpause] {
            assert_eq!(errno(&paused, op), None, "{op:?}");
        }
        for (op, says) in [
            (Op::Exec, "unpause it before exec"),
            (Op::Pause, "already paused"),
            (Op::Start, "unpause it instead"),
            (Op::Remove, "is paused"),
            (Op::Configure, "is paused"),
        ] {
            assert_eq!(errno(&paused, op), Some(libc::EBUSY), "{op:?}");
            assert!(paused.gate(op).unwrap_err().to_string().contains(says), "{op:?}");
        }
        // Committed while paused: its process is still its own to signal, tune and thaw, but not to freeze.
        let committing = container(ContainerStatus::Paused, Some(ContainerStatus::Committing));
        for op in [Op::Stop, Op::Kill, Op::Tune, Op::Unpause] {
            assert_eq!(errno(&committing, op), None, "{op:?}");
        }
        assert_eq!(errno(&committing, Op::Exec), Some(libc::EBUSY));
        assert_eq!(
            errno(&container(ContainerStatus::Running, Some(ContainerStatus::Committing)), Op::Pause),
            Some(libc::EBUSY)
        );
        // A pause under way refuses what would race it.
        let pausing = container(ContainerStatus::Running, Some(ContainerStatus::Pausing));
        for op in [Op::Stop, Op::Kill, Op::Exec, Op::Pause, Op::Unpause, Op::Remove, Op::Commit] {
            assert_eq!(errno(&pausing, op), Some(libc::EBUSY), "{op:?}");
        }
        assert!(pausing.gate(Op::Stop).unwrap_err().to_string().contains("is pausing"));
        // Neither is anything to a container that doesn't run, nor unpause to a running one.
        let exited = container(ContainerStatus::Exited, None);
        assert_eq!(errno(&exited, Op::Pause), Some(libc::ESRCH));
        assert_eq!(errno(&exited, Op::Unpause), Some(libc::ESRCH));
        let running = container(ContainerStatus::Running, None);
        assert_eq!(errno(&running, Op::Unpause), Some(libc::EBUSY));
        assert!(running.gate(Op::Unpause).unwrap_err().to_string().contains("is not paused"));
    }

    #[test]
    fn a_stopping_container_takes_a_kill_but_nothing_that_would_race_its_end() {
        let c = container(ContainerStatus::Running, Some(ContainerStatus::Stopping));
        assert_eq!(errno(&c, Op::Kill), None);
        assert_eq!(errno(&c, Op::Stop), None);
        assert_eq!(errno(&c, Op::Remove), Some(libc::EBUSY));
        assert_eq!(errno(&c, Op::Start), Some(libc::EBUSY));
        assert!(c.gate(Op::Start).unwrap_err().to_string().contains("already running"));
    }
}
