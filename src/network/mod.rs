//! Container networking, as bocker's bridge and veth pairs but done through netlink, with NAT and port
//! forwarding.
//!
//! At start the daemon calls [`Network::setup`]: the bridge (default `bocker0`, 10.0.0.1/24), IP
//! forwarding, no router advertisements accepted on the bridge, its nftables table ([`firewall`]) and the
//! bridge-family table that binds each veth port to its MAC and address ([`antispoof`]), all idempotent. A container in `bridge` mode gets its
//! own network namespace, made by its monitor before the command runs; [`Network::attach`] then puts a
//! veth pair between that namespace and the bridge, with the container's address (from [`allocate`],
//! kept in its record until `rm`), a MAC derived from it and a default route via the bridge. The pair
//! lives as long as the namespace: when the container's last process ends, the kernel removes both ends.

pub mod antispoof;
pub mod etc;
pub mod firewall;
mod link;
pub mod ports;

use std::fmt;
use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::str::FromStr;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tracing::{debug, info};

pub use firewall::Forwards;
pub use ports::{parse_ports, PortMap, PortsError};

/// How a container is networked: the `network` file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// Its own namespace, a veth on the bridge, an address, NAT and port forwards.
    #[default]
    Bridge,
    /// Its own namespace with loopback only.
    None,
    /// The host's namespace.
    Host,
}

impl NetworkMode {
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Bridge => "bridge",
            NetworkMode::None => "none",
            NetworkMode::Host => "host",
        }
    }
}

impl FromStr for NetworkMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bridge" => Ok(NetworkMode::Bridge),
            "none" => Ok(NetworkMode::None),
            "host" => Ok(NetworkMode::Host),
            other => Err(format!(
                "unknown network '{}': use bridge, none or host",
                other.chars().take(40).collect::<String>()
            )),
        }
    }
}

/// An IPv4 subnet whose first host address is the bridge's (the containers' gateway).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    network: Ipv4Addr,
    prefix: u8,
}

impl Subnet {
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn mask(&self) -> u32 {
        u32::MAX << (32 - u32::from(self.prefix))
    }

    /// The bridge's address: the first host of the subnet.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !self.mask())
    }

    /// Whether `ip` can be a container's address here: inside, and neither network, gateway nor broadcast.
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network)
            && ip != self.network
            && ip != self.gateway()
            && ip != self.broadcast()
    }

    /// The addresses the allocator hands out, lowest first: the subnet's hosts after the gateway, at most
    /// [`MAX_CONTAINERS`] of them (the anti-spoofing table holds a binding for each).
    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.gateway()).saturating_add(1);
        let end = u32::from(self.broadcast()).min(first.saturating_add(MAX_CONTAINERS));
        (first..end).map(Ipv4Addr::from)
    }

    /// Whether `ip` is one of [`Subnet::addresses`]: a container's, bound to its veth by the anti-spoofing
    /// table.
    pub fn is_container_address(&self, ip: Ipv4Addr) -> bool {
        let (ip, first) = (u32::from(ip), u32::from(self.gateway()).saturating_add(1));
        self.is_host(Ipv4Addr::from(ip)) && ip >= first && ip - first < MAX_CONTAINERS
    }

    /// `10.0.0.0/24`.
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Subnet {
    type Err = String;

    /// `10.0.0.0/24` or `10.0.0.1/24` (host bits are dropped); prefixes 8 to 30.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("bad subnet '{s}': use an IPv4 CIDR like 10.0.0.0/24 (prefix 8-30)");
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if !(8..=30).contains(&prefix) {
            return Err(bad());
        }
        let mask = u32::MAX << (32 - u32::from(prefix));
        Ok(Subnet { network: Ipv4Addr::from(u32::from(addr) & mask), prefix })
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.cidr())
    }
}

/// How many container addresses a bridge has at most (a /20's hosts less the gateway): the anti-spoofing
/// table ([`antispoof`]) is written once for all of them, which takes nft some 50 ms for this many (10 to
/// 20 ms for a /24).
pub const MAX_CONTAINERS: u32 = 4093;

/// The lowest address of `subnet`'s [`Subnet::addresses`] that is not in `used`.
pub fn allocate(subnet: &Subnet, used: &[Ipv4Addr]) -> Option<Ipv4Addr> {
    subnet.addresses().find(|ip| !used.contains(ip))
}

/// The daemon's network options.
#[derive(Debug, Clone)]
pub struct NetworkOptions {
    pub bridge: String,
    pub subnet: Subnet,
    /// Resolvers for containers' `/etc/resolv.conf`; empty means the host's.
    pub dns: Vec<Ipv4Addr>,
}

/// Why a network step failed; one variant per step.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("cannot start the netlink runtime: {0}")]
    Runtime(io::Error),
    #[error("cannot open a netlink socket: {0}")]
    Netlink(io::Error),
    #[error("cannot set up the bridge {bridge}: {source}")]
    Bridge { bridge: String, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Sysctl { path: String, source: io::Error },
    #[error("cannot write the firewall rules: {0}")]
    Firewall(String),
    #[error("cannot write the bridge's anti-spoofing rules: {0}")]
    AntiSpoof(String),
    #[error("cannot open the container's network namespace: {0}")]
    OpenNetns(io::Error),
    #[error("cannot enter the container's network namespace: {0}")]
    EnterNetns(nix::Error),
    #[error("cannot create the veth pair {name}: {source}")]
    Veth { name: String, source: io::Error },
    #[error("cannot configure eth0 in the container: {0}")]
    Inside(io::Error),
    #[error("no free address left in {0} (a bridge has at most 4093 containers)")]
    Exhausted(String),
    #[error("host port {map} is taken: {source}")]
    PortTaken { map: String, source: io::Error },
    #[error("host port {map} is forwarded to container '{other}' already")]
    PortClaimed { map: String, other: String },
    #[error("port forwards need the bridge network; container '{0}' has another")]
    PortsNeedBridge(String),
}

impl NetworkError {
    /// The errno a write that hit this error returns.
    pub fn errno(&self) -> i32 {
        match self {
            NetworkError::PortTaken { source, .. } => source.raw_os_error().unwrap_or(libc::EADDRINUSE),
            NetworkError::PortClaimed { .. } => libc::EADDRINUSE,
            NetworkError::Exhausted(_) => libc::ENOSPC,
            NetworkError::PortsNeedBridge(_) => libc::EINVAL,
            _ => libc::EIO,
        }
    }
}

/// The host side of container networking: a netlink connection, the bridge, the firewall table.
pub struct Network {
    opts: NetworkOptions,
    runtime: tokio::runtime::Runtime,
    host: rtnetlink::Handle,
    bridge_index: u32,
    /// Serialises rewrites of the firewall table, so the last one written is the newest.
    firewall: Mutex<()>,
}

impl Network {
    /// Brings up the bridge, forwarding and the firewall table (with no forwards yet); idempotent.
    pub fn setup(opts: NetworkOptions) -> Result<Network, NetworkError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("bocker-netlink")
            .enable_io()
            .build()
            .map_err(NetworkError::Runtime)?;
        let host = {
            let _entered = runtime.enter();
            let (conn, handle, _) = rtnetlink::new_connection().map_err(NetworkError::Netlink)?;
            runtime.spawn(conn);
            handle
        };
        let (gateway, prefix) = (opts.subnet.gateway(), opts.subnet.prefix());
        let bridge_index = runtime
            .block_on(link::ensure_bridge(&host, &opts.bridge, mac_of(gateway), gateway, prefix))
            .map_err(|source| NetworkError::Bridge { bridge: opts.bridge.clone(), source })?;
        sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
        // Forwards from the host's loopback are routed to the bridge with a 127/8 source until masqueraded;
        // the firewall's `localnet` chain drops what comes from outside for 127/8.
        sysctl(&format!("/proc/sys/net/ipv4/conf/{}/route_localnet", opts.bridge), "1")?;
        // No router advertisement from a container configures the host (CVE-2020-13401); the bridge's ports
        // drop containers' IPv6 too. Without IPv6 in the kernel there is nothing to turn off.
        if std::path::Path::new("/proc/sys/net/ipv6/conf").exists() {
            sysctl(&format!("/proc/sys/net/ipv6/conf/{}/accept_ra", opts.bridge), "0")?;
        }
        antispoof::apply(&opts.bridge, &opts.subnet).map_err(NetworkError::AntiSpoof)?;
        let network = Network { opts, runtime, host, bridge_index, firewall: Mutex::new(()) };
        info!(bridge = %network.opts.bridge, subnet = %network.opts.subnet, "network ready");
        Ok(network)
    }

    pub fn subnet(&self) -> &Subnet {
        &self.opts.subnet
    }

    /// Writes the firewall table with these forwards (those of every running container).
    pub fn apply_forwards(&self, forwards: &[Forwards]) -> Result<(), NetworkError> {
        let _one_at_a_time = self.firewall.lock().unwrap_or_else(|e| e.into_inner());
        firewall::apply(&firewall::ruleset(&self.opts.bridge, &self.opts.subnet, forwards))
            .map_err(NetworkError::Firewall)
    }

    /// Connects the network namespace of process `netns_pid` to the bridge with address `ip`.
    pub fn attach(&self, netns_pid: i32, ip: Ipv4Addr) -> Result<(), NetworkError> {
        let t0 = std::time::Instant::now();
        let netns = File::open(format!("/proc/{netns_pid}/ns/net")).map_err(NetworkError::OpenNetns)?;
        let inside = self.handle_in(&netns)?;
        let socket_us = t0.elapsed().as_micros();
        let name = veth_name(ip);
        let mac = mac_of(ip);
        self.runtime.block_on(async {
            let mut added = link::add_veth(&self.host, &name, self.bridge_index, netns.as_raw_fd(), mac).await;
            if matches!(&added, Err(e) if e.raw_os_error() == Some(libc::EEXIST)) {
                // The pair of this address's last run, whose namespace the kernel has not freed yet.
                link::delete(&self.host, &name)
                    .await
                    .map_err(|source| NetworkError::Veth { name: name.clone(), source })?;
                added = link::add_veth(&self.host, &name, self.bridge_index, netns.as_raw_fd(), mac).await;
            }
            added.map_err(|source| NetworkError::Veth { name: name.clone(), source })?;
            let veth_us = t0.elapsed().as_micros();
            link::configure_inside(&inside, ip, self.opts.subnet.prefix(), self.opts.subnet.gateway())
                .await
                .map_err(NetworkError::Inside)?;
            debug!(veth = %name, socket_us, veth_us, total_us = t0.elapsed().as_micros(), "attached");
            Ok(())
        })
    }

    /// A netlink connection inside `netns`: the socket is made by a short-lived thread that enters it, so no
    /// thread of the daemon ever stays in a container's namespace.
    fn handle_in(&self, netns: &File) -> Result<rtnetlink::Handle, NetworkError> {
        let rt = self.runtime.handle();
        std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(NetworkError::EnterNetns)?;
                let _entered = rt.enter();
                let (conn, handle, _) = rtnetlink::new_connection().map_err(NetworkError::Netlink)?;
                rt.spawn(conn);
                Ok(handle)
            })
            .join()
            .unwrap_or_else(|_| Err(NetworkError::Netlink(io::Error::other("netns thread panicked"))))
        })
    }

    /// The `/etc/resolv.conf` of a container with a namespace of its own.
    pub fn resolv_conf(&self) -> String {
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        etc::resolv_conf(&host, &self.opts.dns)
    }
}

/// The host end of the veth pair of address `ip`: `vb` and the address in hex (unique per bridge subnet).
pub fn veth_name(ip: Ipv4Addr) -> String {
    format!("vb{:08x}", u32::from(ip))
}

/// The MAC of the container with address `ip`: `02:42` (locally administered, Docker's) and the address.
pub fn mac_of(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

fn sysctl(path: &str, value: &str) -> Result<(), NetworkError> {
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(path, value).map_err(|source| NetworkError::Sysctl { path: path.to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets() {
        let s: Subnet = "10.0.0.1/24".parse().unwrap();
        assert_eq!(s.cidr(), "10.0.0.0/24");
        assert_eq!(s.gateway(), Ipv4Addr::new(10, 0, 0, 1));
        assert!(s.is_host(Ipv4Addr::new(10, 0, 0, 2)));
        for not in [[10, 0, 0, 0], [10, 0, 0, 1], [10, 0, 0, 255], [10, 0, 1, 2]] {
            assert!(!s.is_host(Ipv4Addr::from(not)), "{not:?}");
        }
        for bad in ["10.0.0.0", "10.0.0.0/31", "10.0.0.0/4", "x/24", "10.0.0.0/x", "::1/64"] {
            assert!(bad.parse::<Subnet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn allocator() {
        let s: Subnet = "10.1.2.0/30".parse().unwrap();
        // A /30 has two hosts: the gateway and one container.
        assert_eq!(allocate(&s, &[]), Some(Ipv4Addr::new(10, 1, 2, 2)));
        assert_eq!(allocate(&s, &[Ipv4Addr::new(10, 1, 2, 2)]), None);
        let s: Subnet = "10.0.0.0/24".parse().unwrap();
        let used = [Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 4)];
        assert_eq!(allocate(&s, &used), Some(Ipv4Addr::new(10, 0, 0, 3)));
        let all: Vec<Ipv4Addr> = (2..=254).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
        assert_eq!(allocate(&s, &all), None);
        // A big subnet hands out MAX_CONTAINERS addresses, from .2 on.
        let s: Subnet = "10.0.0.0/8".parse().unwrap();
        assert_eq!(s.addresses().count(), MAX_CONTAINERS as usize);
        assert!(s.is_container_address(Ipv4Addr::new(10, 0, 0, 2)));
        assert!(!s.is_container_address(Ipv4Addr::new(10, 0, 0, 1)), "the gateway");
        assert!(!s.is_container_address(Ipv4Addr::new(10, 200, 0, 1)), "past the bound");
        assert!(s.addresses().all(|ip| s.is_container_address(ip)));
        let top: Subnet = "255.255.255.0/24".parse().unwrap();
        assert_eq!(top.addresses().count(), 253, "no overflow at the top of the address space");
        assert_eq!(s.addresses().last(), Some(Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 1)) + MAX_CONTAINERS)));
    }

    #[test]
    fn modes() {
        assert_eq!("none".parse::<NetworkMode>(), Ok(NetworkMode::None));
        assert!("bridged".parse::<NetworkMode>().is_err());
        assert_eq!(NetworkMode::default().as_str(), "bridge");
        assert_eq!(veth_name(Ipv4Addr::new(10, 0, 0, 2)), "vb0a000002");
    }
}
