//! A container's network side: its address on the bridge, its port forwards and the firewall that holds
//! them, and the `/etc/hosts` and `/etc/resolv.conf` a start writes.

use std::net::Ipv4Addr;
use std::sync::MutexGuard;

use super::state::State;
use super::Engine;
use crate::error::Error;
use crate::model::ContainerStatus;
use crate::network::{self, Forwards, NetworkError, NetworkMode, PortMap};
use crate::runtime::spec::{BindMount, LaunchSpec};

impl Engine {
    /// Rewrites the firewall with the forwards of every running container (and `extra`'s, for one that is
    /// starting or changing its ports). The caller holds the forwards lock until its record shows the change.
    pub(super) fn sync_forwards(&self, _held: &MutexGuard<'_, ()>, extra: Option<Forwards>) -> Result<(), Error> {
        let mut forwards = self.lock().forwards(extra.as_ref().map(|f| f.name.as_str()));
        forwards.extend(extra);
        self.network.apply_forwards(&forwards).map_err(Error::from)
    }

    /// Records a container's forwards; while it runs, the firewall changes at once. A host port that a host
    /// process or another running container holds is refused (EADDRINUSE).
    pub(super) fn set_ports(&self, name: &str, ports: Vec<PortMap>) -> Result<(), Error> {
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

    /// The bridge address `name` starts with: the one it has, or the lowest no other container holds.
    pub(super) fn address_for(&self, st: &State, name: &str) -> Result<Option<Ipv4Addr>, Error> {
        let c = st.container(name)?;
        if c.record.network != NetworkMode::Bridge {
            return Ok(None);
        }
        let subnet = self.network.subnet();
        // Only an address the anti-spoofing table binds (an older daemon may have handed out others).
        if let Some(ip) = c.record.ip.filter(|ip| subnet.is_container_address(*ip)) {
            return Ok(Some(ip));
        }
        let used: Vec<Ipv4Addr> =
            st.containers.values().filter(|o| o.record.name != name).filter_map(|o| o.record.ip).collect();
        network::allocate(subnet, &used).map(Some).ok_or_else(|| NetworkError::Exhausted(subnet.cidr()).into())
    }

    /// What a start needs from the network before the launch: the forwards checked (host ports free, not
    /// forwarded by another running container), and `/etc/hosts` and `/etc/resolv.conf` written into the
    /// container's state directory and added to its bind mounts. Gives the forwards to add once it runs.
    pub(super) fn start_network(
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
}

/// Fails with EADDRINUSE (or the bind's own errno) if a host process holds one of these ports.
pub(super) fn check_host_ports(ports: &[PortMap]) -> Result<(), NetworkError> {
    for p in ports {
        network::ports::check_free(p).map_err(|source| NetworkError::PortTaken { map: p.to_string(), source })?;
    }
    Ok(())
}
