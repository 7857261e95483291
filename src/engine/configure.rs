//! Configuration of a container between runs: its image, command, environment, security, network mode,
//! and its limits (applied at once while it runs).

use super::records::ContainerRecord;
use super::{Changed, Engine};
use crate::cgroups::Limit;
use crate::error::Error;
use crate::model::ContainerStatus;
use crate::network::{NetworkError, NetworkMode};

impl Engine {
    pub(super) fn set_image(&self, name: &str, reference: &str) -> Result<(), Error> {
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
        self.notify(Changed::Container(name.to_string()));
        Ok(())
    }

    /// Changes the command or environment of a container that is not running.
    pub(super) fn configure(&self, name: &str, change: impl FnOnce(&mut ContainerRecord)) -> Result<(), Error> {
        self.change_record(name, true, change)
    }

    /// Saves `change` to a container's record, then shows it; never while it starts, and with
    /// `stopped_only` never while it runs.
    pub(super) fn change_record(
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
        self.notify(Changed::Container(name.to_string()));
        Ok(())
    }

    /// Records a limit, and applies it at once to a running container.
    pub(super) fn set_limit(&self, name: &str, limit: Limit) -> Result<(), Error> {
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
        self.notify(Changed::Container(name.to_string()));
        Ok(())
    }

    /// Changes the network mode of a container that is not running. Leaving `bridge` gives its address back.
    pub(super) fn set_network(&self, name: &str, mode: NetworkMode) -> Result<(), Error> {
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
}
