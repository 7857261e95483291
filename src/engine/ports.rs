//! A container's network side: its port forwards and the firewall that holds them, and the `/etc/hosts`
//! and `/etc/resolv.conf` a start writes (its addresses are planned with the state: `State::address_on`).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::MutexGuard;

use super::records::always;
use super::Engine;
use crate::error::Error;
use crate::model::Op;
use crate::network::etc::ExtraHost;
use crate::network::{self, Forwards, NetworkError, NetworkMode, PortMap};
use crate::runtime::spec::{BindMount, LaunchSpec};

impl Engine {
    /// Rewrites the firewall with the forwards of every container that runs or is starting (and `extra`'s,
    /// for one changing its ports). The caller holds the forwards lock until its record shows the change.
    /// `extra`'s host ports are checked against the others' here, under the forwards lock, so two writers
    /// never both put one port in (a claim checked at reserve may have been taken since).
    pub(super) fn sync_forwards(&self, _held: &MutexGuard<'_, ()>, extra: Option<Forwards>) -> Result<(), Error> {
        let (mut forwards, dns) = {
            let st = self.lock();
            if let Some(extra) = &extra {
                st.check_port_claims(&extra.name, &extra.ports)?;
            }
            let dns: Vec<Ipv4Addr> = st.networks.values().map(|n| n.subnet.gateway()).collect();
            (st.forwards(extra.as_ref().map(|f| f.name.as_str())), dns)
        };
        forwards.extend(extra);
        self.network.apply_forwards(&forwards, &dns).map_err(Error::from)
    }

    /// Records a container's forwards; while it runs, the firewall changes at once. A host port that a host
    /// process or another running container holds is refused (EADDRINUSE).
    pub(super) fn set_ports(&self, name: &str, ports: Vec<PortMap>) -> Result<(), Error> {
        let writing = self.writing(name)?;
        let (running, fresh) = {
            let st = self.lock();
            let c = st.container(name)?;
            c.gate(Op::Tune)?;
            if c.record.network != NetworkMode::Bridge && !ports.is_empty() {
                return Err(NetworkError::PortsNeedBridge(name.to_string()).into());
            }
            let running = c.record.status.has_process();
            if running {
                st.check_port_claims(name, &ports)?;
            }
            let fresh: Vec<PortMap> = ports.iter().filter(|p| !c.record.ports.contains(p)).copied().collect();
            (running.then(|| c.record.first_address()).flatten(), fresh)
        };
        let Some(ip) = running else {
            return self.commit_record(&writing, name, always(|r| r.ports = ports), |_| {});
        };
        check_host_ports(&fresh)?;
        let held = self.lock_forwards();
        self.sync_forwards(&held, Some(Forwards { name: name.to_string(), ip, ports: ports.clone() }))?;
        let saved = self.commit_record(&writing, name, always(|r| r.ports = ports), |_| {});
        if saved.is_err() {
            // Back to the forwards the record still has.
            let _ = self.sync_forwards(&held, None);
        }
        saved
    }

    /// What a start needs from the network before the launch: `/etc/hosts` (with its `extra_hosts`) and
    /// `/etc/resolv.conf` (its `dns` servers, if any) written into the container's state directory and
    /// added to its bind mounts. A container that joins another's network namespace gets a copy of that
    /// one's files as they are now (Docker shares them). One on a network with a DNS server (`nameserver`,
    /// its first such network's gateway) asks that, which forwards what it doesn't own to its `dns`.
    pub(super) fn write_etc(
        &self,
        name: &str,
        spec: &mut LaunchSpec,
        ip: Option<Ipv4Addr>,
        nameserver: Option<Ipv4Addr>,
        extra_hosts: &[ExtraHost],
        dns: &[IpAddr],
    ) -> Result<(), Error> {
        let dir = self.container_dir(name);
        let host_resolv = || std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let (hosts, resolv) = match &spec.network {
            NetworkMode::Host => (
                std::fs::read_to_string("/etc/hosts").unwrap_or_else(|_| network::etc::hosts(name, None)),
                // The host's resolvers are reachable from its namespace, loopback ones too.
                if dns.is_empty() { host_resolv() } else { network::etc::resolv_conf(&host_resolv(), dns) },
            ),
            NetworkMode::Container(target) => {
                // The target's own files, which its processes may write: at most 1 MiB is taken.
                let theirs = |file: &str| -> std::io::Result<String> {
                    use std::io::Read;
                    let mut text = String::new();
                    std::fs::File::open(self.container_dir(target).join(file))?
                        .take(1 << 20)
                        .read_to_string(&mut text)?;
                    Ok(text)
                };
                (
                    theirs("hosts").unwrap_or_else(|_| network::etc::hosts(name, None)),
                    theirs("resolv.conf").unwrap_or_else(|_| self.network.resolv_conf(&[])),
                )
            }
            _ => {
                let resolv = match nameserver {
                    Some(server) => network::etc::resolv_conf(&host_resolv(), &[server.into()]),
                    None => self.network.resolv_conf(dns),
                };
                (network::etc::hosts(name, ip), resolv)
            }
        };
        let hosts = network::etc::with_extra_hosts(hosts, extra_hosts);
        for (file, text) in [("hosts", hosts), ("resolv.conf", resolv)] {
            let source = dir.join(file);
            std::fs::write(&source, text).map_err(Error::record(format!("/etc/{file} of '{name}'")))?;
            spec.binds.push(BindMount { source, target: format!("/etc/{file}"), readonly: false });
        }
        Ok(())
    }
}

/// Fails with EADDRINUSE (or the bind's own errno) if a host process holds one of these ports.
pub(super) fn check_host_ports(ports: &[PortMap]) -> Result<(), NetworkError> {
    for p in ports {
        network::ports::check_free(p).map_err(|source| NetworkError::PortTaken { map: p.to_string(), source })?;
    }
    Ok(())
}
