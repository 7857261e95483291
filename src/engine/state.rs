//! The engine's state in memory, behind its one mutex: images (record and parsed config), containers
//! (record, busy flag, execs) and named volumes, and the lookups every request plans with (an image by id
//! or source, a container by name, the forwards of running containers and whose host port is whose).

use std::collections::BTreeMap;

use oci_spec::image::ImageConfiguration;

use super::records::{ContainerRecord, ExecRecord, ImageRecord};
use crate::error::Error;
use crate::model::ContainerStatus;
use crate::network::{Forwards, NetworkError, NetworkMode, PortMap};

pub(super) struct Image {
    pub(super) record: ImageRecord,
    pub(super) config: ImageConfiguration,
    pub(super) config_raw: Vec<u8>,
}

impl Image {
    pub(super) fn env(&self) -> Vec<String> {
        self.config.config().as_ref().and_then(|c| c.env().clone()).unwrap_or_default()
    }

    /// Entrypoint followed by Cmd, as Docker combines them.
    pub(super) fn default_argv(&self) -> Vec<String> {
        let Some(c) = self.config.config() else { return Vec::new() };
        let mut argv = c.entrypoint().clone().unwrap_or_default();
        argv.extend(c.cmd().clone().unwrap_or_default());
        argv
    }

    pub(super) fn working_dir(&self) -> String {
        self.config.config().as_ref().and_then(|c| c.working_dir().clone()).unwrap_or_default()
    }
}

pub(super) struct Container {
    pub(super) record: ContainerRecord,
    /// A start or an image change is in flight: no other change until it ends.
    pub(super) busy: bool,
    /// Commands run in it with `exec`, by number.
    pub(super) execs: BTreeMap<u32, ExecRecord>,
}

impl Container {
    pub(super) fn new(record: ContainerRecord) -> Container {
        Container { record, busy: false, execs: BTreeMap::new() }
    }
}

#[derive(Default)]
pub(super) struct State {
    pub(super) images: BTreeMap<String, Image>,
    pub(super) containers: BTreeMap<String, Container>,
    /// Named volumes; each is a subvolume of the store, its own record.
    pub(super) volumes: std::collections::BTreeSet<String>,
}

impl State {
    /// An image by id, or the newest one made from `reference` (bocker's `init DIR` names it by its source).
    pub(super) fn resolve_image(&self, reference: &str) -> Result<&Image, Error> {
        if let Some(image) = self.images.get(reference) {
            return Ok(image);
        }
        self.images
            .values()
            .filter(|i| i.record.source == reference)
            .max_by(|a, b| a.record.created.cmp(&b.record.created))
            .ok_or_else(|| Error::NotFound(format!("no image named '{reference}'")))
    }

    pub(super) fn container(&self, name: &str) -> Result<&Container, Error> {
        self.containers.get(name).ok_or_else(|| no_container(name))
    }

    pub(super) fn container_mut(&mut self, name: &str) -> Result<&mut Container, Error> {
        self.containers.get_mut(name).ok_or_else(|| no_container(name))
    }

    /// The forwards of every running container, less `except`'s.
    pub(super) fn forwards(&self, except: Option<&str>) -> Vec<Forwards> {
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
    pub(super) fn check_port_claims(&self, name: &str, ports: &[PortMap]) -> Result<(), NetworkError> {
        for other in self.forwards(Some(name)) {
            if let Some(p) = ports.iter().find(|p| other.ports.iter().any(|o| o.clashes_with(p))) {
                return Err(NetworkError::PortClaimed { map: p.to_string(), other: other.name });
            }
        }
        Ok(())
    }
}

pub(super) fn no_container(name: &str) -> Error {
    Error::NotFound(format!("no container named '{name}'"))
}
