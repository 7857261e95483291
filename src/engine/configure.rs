//! Configuration of a container between runs: its image (a new rootfs, made while it is `creating`), its
//! command, environment, security and network mode, and its limits (applied at once while it runs).

use super::records::{always, ContainerRecord};

use super::{Changed, Engine};
use crate::cgroups::{Limit, LimitKind, Limits};
use crate::error::Error;
use crate::model::{ContainerStatus, ImageConfig, Op, RestartPolicy};
use crate::network::{NetworkError, NetworkMode};
use crate::request::ContainerSetting;

/// Lays a setting of how its command runs over a container's record.
pub(super) fn apply_setting(r: &mut ContainerRecord, setting: ContainerSetting) {
    match setting {
        ContainerSetting::Entrypoint(argv) => r.entrypoint = argv,
        ContainerSetting::User(user) => r.user = user,
        ContainerSetting::Workdir(dir) => r.workdir = dir,
        ContainerSetting::Hostname(name) => r.hostname = name,
        ContainerSetting::StopSignal(signal) => r.stop_signal = signal,
        ContainerSetting::Labels(labels) => r.labels = labels,
        ContainerSetting::Tty(tty) => r.tty = tty,
        ContainerSetting::Interactive(interactive) => r.interactive = interactive,
        ContainerSetting::Restart(policy) => r.restart = policy,
        ContainerSetting::Init(init) => r.init = init,
        ContainerSetting::ExtraHosts(hosts) => r.extra_hosts = hosts,
        ContainerSetting::Dns(servers) => r.dns = servers,
    }
}

impl Engine {
    /// Gives a container that has never run a new rootfs: a snapshot of the image, made outside the lock
    /// while the container is `creating`; then its record, then the old rootfs goes.
    pub(super) fn set_image(&self, name: &str, reference: &str) -> Result<(), Error> {
        let (image_id, image_config) = {
            let _held = self.writing(name)?;
            let mut st = self.lock();
            let image = st.usable_image(reference)?;
            let (image_id, image_config) = (image.record.id.clone(), ImageConfig::from_raw(&image.config_raw));
            let c = st.container_mut(name)?;
            c.gate(Op::ChangeImage)?;
            if c.record.image.as_deref() == Some(image_id.as_str()) {
                return Ok(());
            }
            c.transition = Some(ContainerStatus::Creating);
            c.pending_image = Some(image_id.clone());
            st.notify(Changed::Container(name.to_string()));
            (image_id, image_config)
        };
        let staged = format!(".tmp-{name}");
        let swapped = self.store.snapshot_image(&image_id, &staged).map_err(Error::from).and_then(|()| {
            // Its transition keeps every other writer out but the error journal: the record lock is taken
            // for each record write alone, never across the btrfs work.
            let (old_image, old_config, anonymous) = self.update_record(name, |c, r| {
                let config = r.image_config.replace(image_config.clone());
                let image = std::mem::replace(&mut r.image, c.pending_image.clone());
                Ok((image, config, std::mem::take(&mut r.anonymous_volumes)))
            })?;
            let replaced = self.store.delete_container(name).map_err(Error::from).and_then(|()| {
                std::fs::rename(self.store.container_path(&staged), self.store.container_path(name))
                    .map_err(Error::record(format!("the rootfs of '{name}'")))
            });
            match &replaced {
                Err(_) => {
                    let _ = self.update_record(
                        name,
                        always(|r| {
                            (r.image, r.image_config) = (old_image, old_config);
                            r.anonymous_volumes = anonymous;
                        }),
                    );
                }
                // The old image's anonymous volumes (made by a first start that failed) go with it.
                Ok(()) => {
                    for (volume, _) in &anonymous {
                        let _ = self.remove_volume(volume);
                    }
                }
            }
            replaced
        });
        if swapped.is_err() {
            let _ = self.store.delete_container(&staged);
        }
        let mut st = self.lock();
        let c = st.container_mut(name)?;
        c.transition = None;
        c.pending_image = None;
        st.notify(Changed::Container(name.to_string()));
        swapped
    }

    /// Changes what a container that is not running starts with next: its command, environment, volumes,
    /// security, network.
    pub(super) fn configure(&self, name: &str, change: impl FnOnce(&mut ContainerRecord)) -> Result<(), Error> {
        self.update_record(name, |c, rec| {
            c.gate(Op::Configure)?;
            change(rec);
            check_joined(name, rec)?;
            // As Docker's `--rm` and `--restart`: a container removed at its exit can't come back.
            if rec.auto_remove && rec.restart != RestartPolicy::No {
                return Err(Error::Invalid(format!(
                    "'{name}' has auto_remove and restart {}: a container removed at its exit can't be restarted; \
                     clear one first",
                    rec.restart
                )));
            }
            Ok(())
        })
    }

    /// Records a limit (`None`: back to its default, the daemon's or Docker's derived swap), and applies
    /// it at once to a running container. A limit the host can't hold (no such controller or file, a
    /// device or CPU it lacks) is refused; one the kernel refuses halfway (a memory limit below what is in
    /// use, say), or whose record can't be written, is undone in the kernel.
    pub(super) fn set_limit(&self, name: &str, kind: LimitKind, limit: Option<Limit>) -> Result<(), Error> {
        let writing = self.writing(name)?;
        let (own, running) = {
            let st = self.lock();
            let c = st.container(name)?;
            c.gate(Op::Tune)?;
            (c.record.limits.clone(), c.record.status.has_process())
        };
        if let Some(limit) = &limit {
            self.cgroups.check(limit)?;
        }
        let change = |limits: &mut Limits| match &limit {
            Some(limit) => limits.put(limit.clone()),
            None => limits.clear(kind),
        };
        let before = own.or(&self.defaults);
        let mut after = own;
        change(&mut after);
        let after = after.or(&self.defaults);
        // Nothing to write where neither names one (memory.high cleared where v1 has none, say), nor for
        // a clear the host can't hold (the derived swap limit without swap accounting).
        let holds = limit.is_some() || self.cgroups.unsupported(kind).is_none();
        let live = running && holds && (before.get(kind).is_some() || after.get(kind).is_some());
        let undo = |e: Error| {
            if live {
                let old = before.get(kind).unwrap_or_else(|| Limit::unset(kind));
                if let Err(undo) = self.cgroups.apply_one(name, &old, &before) {
                    tracing::warn!(container = name, error = %undo, "cannot put the old limit back");
                }
            }
            e
        };
        if live {
            let new = after.get(kind).unwrap_or_else(|| Limit::unset(kind));
            self.cgroups.apply_one(name, &new, &after).map_err(|e| undo(e.into()))?;
        }
        self.commit_record(&writing, name, always(|r| change(&mut r.limits)), |_| {}).map_err(undo)
    }

    /// Changes the network mode of a container that is not running. Leaving `bridge` gives its address back.
    pub(super) fn set_network(&self, name: &str, mode: NetworkMode) -> Result<(), Error> {
        self.update_record(name, |c, r| {
            c.gate(Op::Configure)?;
            if mode != NetworkMode::Bridge && !r.ports.is_empty() {
                return Err(NetworkError::PortsNeedBridge(name.to_string()).into());
            }
            if mode.joined() == Some(name) {
                return Err(Error::Invalid(format!("'{name}' can't join its own network namespace")));
            }
            if mode != NetworkMode::Bridge {
                r.ip = None;
            }
            r.network = mode;
            check_joined(name, r)
        })
    }
}

/// A container that joins another's network namespace takes its `/etc/hosts` and `/etc/resolv.conf`
/// too: `extra_hosts` and `dns` of its own are refused, as Docker's `--add-host` and `--dns` are with
/// `--network container:NAME`.
fn check_joined(name: &str, r: &ContainerRecord) -> Result<(), Error> {
    match r.network.joined() {
        Some(other) if !r.extra_hosts.is_empty() || !r.dns.is_empty() => Err(Error::Invalid(format!(
            "'{name}' joins the network of '{other}' and uses its /etc/hosts and resolv.conf: \
             clear extra_hosts and dns first, or write another network"
        ))),
        _ => Ok(()),
    }
}
