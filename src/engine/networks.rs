//! Networks: the default one, `bridge` (the daemon's `--bridge` and `--subnet`), and those made by `mkdir
//! networks/NAME`, each with a bridge of its own (`<bridge>-<N>`), a subnet from the pool (`--network-pool`)
//! that neither the host routes nor another network has, its firewall and anti-spoofing tables, and a DNS
//! server on its gateway (see `dns_names`). Each has a record, `<state>/networks/NAME.json`, so it outlives
//! the daemon; its bridge and tables do too, and are brought up again (idempotently) at the next start.
//! `rmdir` and a new `subnet` are refused while a container lists the network in its `networks`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::events::EventType;
use super::records::DEFAULT_NETWORK;
use super::state::State;
use super::{Changed, Engine};
use crate::error::Error;
use crate::network::{subnet, Bridge, Network, NetworkError, Subnet};
use crate::{json, times};

/// A network, as `<state>/networks/NAME.json` holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub name: String,
    pub subnet: Subnet,
    /// Its bridge's interface name.
    pub bridge: String,
    pub created: String,
}

impl NetworkRecord {
    pub fn bridge(&self) -> Bridge {
        Bridge { name: self.bridge.clone(), subnet: self.subnet }
    }
}

/// How many networks a daemon makes at most (besides `bridge`): each is a bridge, two nft tables and a
/// DNS server.
const MAX_NETWORKS: usize = 64;

/// Names a network can't have: the default's and the modes of the `network` file.
const RESERVED: [&str; 4] = [DEFAULT_NETWORK, "none", "host", "default"];

const CHANGING_SUBNET: &str = "changing its subnet";

fn networks_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("networks")
}

/// The records below `state_dir`, each network's bridge and tables brought up. A network whose bridge
/// can't be made is kept (its containers' starts fail with the reason), and logged. A record whose subnet
/// overlaps the default bridge's (a daemon started with another `--subnet`) or an earlier record's, or
/// whose bridge is another's, is left out and logged: two networks handing out one address would give two
/// containers one veth.
pub(super) fn load(state_dir: &Path, network: &Network) -> BTreeMap<String, NetworkRecord> {
    let mut found: BTreeMap<String, NetworkRecord> = BTreeMap::new();
    let default = network.default_bridge();
    let entries = std::fs::read_dir(networks_dir(state_dir)).into_iter().flatten().flatten();
    for entry in entries {
        let path = entry.path();
        let record: Option<NetworkRecord> = json::read_json(&path).ok().flatten();
        let Some(record) = record.filter(|r| path.file_stem().is_some_and(|s| *s == *r.name)) else {
            if path.extension().is_some_and(|e| e == "json") {
                warn!(path = %path.display(), "skipping an unreadable network record");
            }
            continue;
        };
        let clash = found
            .values()
            .map(NetworkRecord::bridge)
            .chain([default.clone()])
            .find(|b| b.subnet.overlaps(&record.subnet) || b.name == record.bridge);
        if let Some(other) = clash {
            warn!(network = %record.name, subnet = %record.subnet, bridge = %record.bridge, other = %other.name,
                "leaving out a network whose subnet or bridge another has");
            continue;
        }
        if let Err(e) = network.bring_up(&record.bridge()) {
            warn!(network = %record.name, error = %e, "cannot bring the network up");
        }
        found.insert(record.name.clone(), record);
    }
    found
}

impl State {
    /// A network made by `mkdir networks/NAME`.
    pub(super) fn network(&self, name: &str) -> Result<&NetworkRecord, Error> {
        self.networks.get(name).ok_or_else(|| Error::NoSuchNetwork(name.to_string()))
    }

    /// The containers (in any state, and in any mode: one in `host` mode may go back to `bridge`) that
    /// list `network` in their `networks`; for the default, those in `bridge` mode that list none.
    pub(super) fn network_users(&self, network: &str) -> Vec<String> {
        self.containers
            .values()
            .map(|c| &c.record)
            .filter(|r| match network {
                DEFAULT_NETWORK => r.joined_networks().contains(&network) || r.networks.iter().any(|n| n == network),
                _ => r.networks.iter().any(|n| n == network),
            })
            .map(|r| r.name.clone())
            .collect()
    }

    /// The first of `taken` (the host's routes, the default bridge's subnet) or of the networks but
    /// `except` that `subnet` overlaps.
    fn clash(&self, subnet: &Subnet, taken: &[Subnet], except: &str) -> Option<String> {
        let network = self.networks.values().filter(|n| n.name != except).find(|n| n.subnet.overlaps(subnet));
        match network {
            Some(n) => Some(format!("network '{}' ({})", n.name, n.subnet)),
            None => taken.iter().find(|t| t.overlaps(subnet)).map(|t| format!("the host's route to {t}")),
        }
    }
}

impl Engine {
    fn network_path(&self, name: &str) -> PathBuf {
        networks_dir(&self.state_dir).join(format!("{name}.json"))
    }

    fn lock_network_changes(&self) -> std::sync::MutexGuard<'_, ()> {
        self.network_changes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the host routes, and the default bridge's subnet: no network's subnet may overlap them.
    fn routed(&self) -> Vec<Subnet> {
        let mut taken = subnet::host_routes();
        taken.push(*self.network.subnet());
        taken
    }

    /// `mkdir networks/NAME`: its record, then its bridge, tables and DNS server; on any failure none of them.
    pub(super) fn create_network(&self, name: &str) -> Result<(), Error> {
        if let Some(reserved) = RESERVED.iter().find(|r| r.eq_ignore_ascii_case(name)) {
            return Err(match *reserved {
                DEFAULT_NETWORK if name == DEFAULT_NETWORK => {
                    Error::NameTaken { kind: "network", name: name.to_string() }
                }
                _ => Error::Invalid(format!("'{name}' is reserved (bridge, default, none, host): pick another name")),
            });
        }
        let _one_change = self.lock_network_changes();
        let taken = self.routed();
        let record = {
            let mut st = self.lock();
            if st.networks.contains_key(name) || st.changing_networks.contains_key(name) {
                return Err(Error::NameTaken { kind: "network", name: name.to_string() });
            }
            if st.networks.len() >= MAX_NETWORKS {
                return Err(Error::Invalid(format!("a daemon has at most {MAX_NETWORKS} networks")));
            }
            let mut used: Vec<Subnet> = st.networks.values().map(|n| n.subnet).collect();
            used.extend(&taken);
            let opts = self.network.options();
            let subnet = subnet::pick(&opts.pool, opts.pool_prefix, &used)
                .ok_or_else(|| NetworkError::PoolExhausted { pool: opts.pool.cidr(), prefix: opts.pool_prefix })?;
            // Never a link the host has (another root's, another daemon's), nor the default bridge.
            let bridge = (0..MAX_NETWORKS as u32 * 4)
                .map(|k| bridge_name(&opts.bridge, k))
                .find(|b| {
                    *b != opts.bridge
                        && !st.networks.values().any(|n| n.bridge == *b)
                        && !Path::new("/sys/class/net").join(b).exists()
                })
                .ok_or_else(|| Error::Invalid(format!("no free bridge name like {}", bridge_name(&opts.bridge, 0))))?;
            st.changing_networks.insert(name.to_string(), "being made");
            NetworkRecord { name: name.to_string(), subnet, bridge, created: times::now_rfc3339() }
        };
        let made = self.make_network(&record);
        let mut st = self.lock();
        st.changing_networks.remove(name);
        made?;
        st.networks.insert(name.to_string(), record.clone());
        st.notify(Changed::Network(name.to_string()));
        drop(st);
        self.sync_dns_exemption();
        info!(network = %name, subnet = %record.subnet, bridge = %record.bridge, "created network");
        self.event(EventType::Network, name, "create", &[("subnet", &record.subnet.cidr())]);
        Ok(())
    }

    /// A network's bridge, tables, record and DNS server; undone as far as it went if a step fails.
    fn make_network(&self, record: &NetworkRecord) -> Result<(), Error> {
        let path = self.network_path(&record.name);
        let made = self
            .network
            .bring_up(&record.bridge())
            .map_err(Error::from)
            .and_then(|()| {
                std::fs::create_dir_all(networks_dir(&self.state_dir))
                    .and_then(|()| json::write_json(&path, record))
                    .map_err(Error::record(format!("the record of network '{}'", record.name)))
            })
            .and_then(|()| self.serve_dns(record));
        if made.is_err() {
            let _ = std::fs::remove_file(&path);
            let _ = self.network.take_down(&record.bridge);
        }
        made
    }

    /// `rmdir networks/NAME`: refused (EBUSY) while a container lists it; then its DNS server, bridge,
    /// tables and record go.
    pub(super) fn remove_network(&self, name: &str) -> Result<(), Error> {
        if name == DEFAULT_NETWORK {
            return Err(Error::NotPermitted("the default network 'bridge' can't be removed".into()));
        }
        let _one_change = self.lock_network_changes();
        let record = {
            let mut st = self.lock();
            let record = st.network(name)?.clone();
            let by = st.network_users(name);
            if !by.is_empty() {
                return Err(Error::InUse { what: format!("network '{name}'"), by });
            }
            st.changing_networks.insert(name.to_string(), "being removed");
            record
        };
        self.stop_dns(&record);
        let removed = self.network.take_down(&record.bridge).map_err(Error::from).and_then(|()| {
            std::fs::remove_file(self.network_path(name))
                .map_err(Error::record(format!("the record of network '{name}'")))
        });
        let mut st = self.lock();
        st.changing_networks.remove(name);
        if let Err(e) = removed {
            drop(st);
            // Back as it was: its bridge and DNS server up again.
            let _ = self.network.bring_up(&record.bridge());
            let _ = self.serve_dns(&record);
            return Err(e);
        }
        st.networks.remove(name);
        st.notify(Changed::Network(name.to_string()));
        drop(st);
        self.sync_dns_exemption();
        info!(network = %name, "removed network");
        self.event(EventType::Network, name, "remove", &[]);
        Ok(())
    }

    /// A write of `networks/NAME/subnet`: refused while a container lists the network (EBUSY), or if the
    /// subnet overlaps the host's routes or another network (EADDRINUSE). The bridge is made again with it.
    pub(super) fn set_subnet(&self, name: &str, subnet: Subnet) -> Result<(), Error> {
        if name == DEFAULT_NETWORK {
            return Err(Error::NotPermitted(
                "the default network's subnet is the daemon's --subnet: restart the daemon to change it".into(),
            ));
        }
        if let Some(why) = subnet.unusable() {
            return Err(Error::Invalid(format!("subnet {subnet} is {why}: use a private range like 10.89.7.0/24")));
        }
        let _one_change = self.lock_network_changes();
        let old = self.view().network(name)?.clone();
        if old.subnet == subnet {
            return Ok(());
        }
        // Its own bridge's route is no clash.
        let taken: Vec<Subnet> = self.routed().into_iter().filter(|t| *t != old.subnet).collect();
        {
            let mut st = self.lock();
            st.network(name)?;
            let by = st.network_users(name);
            if !by.is_empty() {
                return Err(Error::InUse { what: format!("network '{name}'"), by });
            }
            if let Some(other) = st.clash(&subnet, &taken, name) {
                return Err(NetworkError::SubnetTaken { subnet: subnet.cidr(), other }.into());
            }
            st.changing_networks.insert(name.to_string(), CHANGING_SUBNET);
        }
        let new = NetworkRecord { subnet, ..old.clone() };
        self.stop_dns(&old);
        let changed = self.network.take_down(&old.bridge).map_err(Error::from).and_then(|()| self.make_network(&new));
        if changed.is_err() {
            // The old subnet back, bridge, record and DNS server.
            let _ = self.make_network(&old);
        }
        let mut st = self.lock();
        st.changing_networks.remove(name);
        changed?;
        st.networks.insert(name.to_string(), new);
        st.notify(Changed::Network(name.to_string()));
        drop(st);
        self.sync_dns_exemption();
        info!(network = %name, subnet = %subnet, "changed the network's subnet");
        Ok(())
    }

    /// The default bridge's firewall table again, with the networks' DNS addresses as they are now (port 53
    /// there is never forwarded); a failure is logged (the table keeps the last set).
    fn sync_dns_exemption(&self) {
        if let Err(e) = self.sync_forwards(&self.lock_forwards(), None) {
            warn!(error = %e, "cannot rewrite the firewall table with the networks' DNS addresses");
        }
    }

    /// Stops the networks' DNS servers (at the daemon's stop).
    pub(super) fn stop_all_dns(&self) {
        for record in self.view().networks.values() {
            self.stop_dns(record);
        }
    }

    /// What a container's `networks` file takes: networks that exist (and aren't changing), each once, at
    /// most `MAX_LINKS`. Leaving a network gives its address there back.
    pub(super) fn set_networks(&self, container: &str, networks: Vec<String>) -> Result<(), Error> {
        // No network is made, removed or given a new subnet until the record is on disk and installed.
        let _no_change = self.lock_network_changes();
        self.update_record(container, |c, r| {
            c.gate(crate::model::Op::Configure)?;
            // Under the state lock: the published state is the current one.
            let st = self.view();
            for n in networks.iter().filter(|n| *n != DEFAULT_NETWORK) {
                if !st.networks.contains_key(n) {
                    return Err(Error::NoSuchNetwork(n.clone()));
                }
                if let Some(doing) = st.changing_networks.get(n.as_str()) {
                    return Err(Error::Changing { what: format!("network '{n}'"), doing });
                }
            }
            r.networks = if networks.iter().map(String::as_str).eq([DEFAULT_NETWORK]) { Vec::new() } else { networks };
            let joined: Vec<String> = r.joined_networks().iter().map(|n| n.to_string()).collect();
            r.net_addresses.retain(|n, _| joined.contains(n));
            if !joined.iter().any(|n| n == DEFAULT_NETWORK) {
                r.ip = None;
            }
            Ok(())
        })
    }
}

/// The bridge of the `k`th network: the default bridge's name (cut to fit 15 bytes) and `-k`.
fn bridge_name(default: &str, k: u32) -> String {
    let suffix = format!("-{k}");
    let keep = 15 - suffix.len();
    let mut base: String = default.chars().take(keep).collect();
    while base.len() > keep {
        base.pop();
    }
    format!("{base}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_names_fit_an_interface_name() {
        assert_eq!(bridge_name("bocker0", 0), "bocker0-0");
        assert_eq!(bridge_name("bkt12", 7), "bkt12-7");
        assert_eq!(bridge_name("fifteen-chars-x", 12), "fifteen-char-12");
        assert!(bridge_name("fifteen-chars-x", 63).len() <= 15);
    }
}
