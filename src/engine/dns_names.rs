//! The names the networks' DNS servers answer (`network::dns`): on each network but the default, a running
//! container's name and aliases resolve to its address there, for the containers on that network (and on
//! the asker's other networks), and nowhere else. Each query reads the published state, so a container
//! started, stopped, removed or renamed is answered as it is now; other names go to the asker's own `dns`
//! servers, else the daemon's upstreams.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Weak};

use tracing::warn;

use super::networks::NetworkRecord;
use super::records::DEFAULT_NETWORK;
use super::Engine;
use crate::error::Error;
use crate::network::dns::{Answer, DnsServers, Names};
use crate::network::NetworkError;

/// The engine, as the DNS servers ask it (weakly: the servers must not keep it alive).
struct EngineNames(Weak<Engine>);

impl Names for EngineNames {
    fn answer(&self, server: Ipv4Addr, client: Ipv4Addr, name: &str) -> Answer {
        match self.0.upgrade() {
            Some(engine) => engine.dns_answer(server, client, name),
            None => Answer::Forward(Vec::new()),
        }
    }
}

impl Engine {
    /// Starts a DNS server on the gateway of every network (once; the daemon calls it after `open`).
    pub fn start_dns(self: &Arc<Self>) {
        let names: Arc<dyn Names> = Arc::new(EngineNames(Arc::downgrade(self)));
        if self.dns.set(DnsServers::new(self.network.runtime(), names)).is_err() {
            return;
        }
        for record in self.view().networks.values() {
            if let Err(e) = self.serve_dns(record) {
                warn!(network = %record.name, error = %e, "no DNS on the network");
            }
        }
    }

    /// Serves DNS on `record`'s gateway, port 53, for its subnet's clients (nothing before `start_dns`).
    pub(super) fn serve_dns(&self, record: &NetworkRecord) -> Result<(), Error> {
        let Some(dns) = self.dns.get() else { return Ok(()) };
        let addr = std::net::SocketAddrV4::new(record.subnet.gateway(), 53);
        dns.serve(addr, record.subnet)
            .map(|_| ())
            .map_err(|source| NetworkError::Dns { addr: addr.to_string(), source }.into())
    }

    pub(super) fn stop_dns(&self, record: &NetworkRecord) {
        if let Some(dns) = self.dns.get() {
            dns.stop(record.subnet.gateway());
        }
    }

    /// What the DNS server on `server` answers `client` for `name` (lowercase, no trailing dot).
    fn dns_answer(&self, server: Ipv4Addr, client: Ipv4Addr, name: &str) -> Answer {
        let st = self.view();
        let upstreams = || self.network.upstreams();
        let Some(network) = st.networks.values().find(|n| n.subnet.gateway() == server) else {
            return Answer::Forward(upstreams());
        };
        // Who asks: the container with that address there (the anti-spoofing table keeps it honest).
        let asker = st.containers.values().map(|c| &c.record).find(|r| {
            r.status.has_process()
                && r.joined_networks().contains(&network.name.as_str())
                && r.address_on(&network.name) == Some(client)
        });
        let mut searched = vec![network.name.as_str()];
        if let Some(asker) = asker {
            searched
                .extend(asker.joined_networks().into_iter().filter(|n| *n != DEFAULT_NETWORK && *n != network.name));
        }
        for net in searched {
            let found: Vec<Ipv4Addr> = st
                .containers
                .values()
                .map(|c| &c.record)
                .filter(|r| r.status.has_process() && r.joined_networks().contains(&net))
                .filter(|r| r.name.eq_ignore_ascii_case(name) || r.aliases.iter().any(|a| a.eq_ignore_ascii_case(name)))
                .filter_map(|r| r.address_on(net))
                .collect();
            if !found.is_empty() {
                return Answer::Ours(found);
            }
        }
        match asker.filter(|a| !a.dns.is_empty()) {
            Some(a) => Answer::Forward(a.dns.iter().map(|ip| SocketAddr::from((*ip, 53))).collect()),
            None => Answer::Forward(upstreams()),
        }
    }
}
