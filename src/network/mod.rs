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
pub mod dns;
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// Its own namespace, a veth on the bridge, an address, NAT and port forwards.
    #[default]
    Bridge,
    /// Its own namespace with loopback only.
    None,
    /// The host's namespace.
    Host,
    /// The network namespace of the running container of this name (Docker's `--network container:NAME`):
    /// its interfaces, address, ports and loopback, and its `/etc/hosts` and `/etc/resolv.conf`.
    Container(String),
}

impl NetworkMode {
    /// The container whose namespace this mode joins.
    pub fn joined(&self) -> Option<&str> {
        match self {
            NetworkMode::Container(name) => Some(name),
            _ => None,
        }
    }
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetworkMode::Bridge => f.write_str("bridge"),
            NetworkMode::None => f.write_str("none"),
            NetworkMode::Host => f.write_str("host"),
            NetworkMode::Container(name) => write!(f, "container:{name}"),
        }
    }
}

impl FromStr for NetworkMode {
    type Err = String;

    /// `bridge`, `none`, `host` or `container:NAME` (the name is checked as a container's by the request's
    /// parser, and its container at start).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bridge" => Ok(NetworkMode::Bridge),
            "none" => Ok(NetworkMode::None),
            "host" => Ok(NetworkMode::Host),
            other => match other.strip_prefix("container:") {
                Some(name) if !name.is_empty() => Ok(NetworkMode::Container(name.into())),
                _ => Err(format!(
                    "unknown network '{}': use bridge, none, host or container:NAME",
                    other.chars().take(80).collect::<String>()
                )),
            },
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

    /// Whether `ip` is inside the subnet (its network and broadcast addresses included).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network)
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
    /// ESRCH: `network container:NAME` names a container that doesn't run (or ended as the start began).
    #[error("container '{name}' joins the network of '{target}', which is not running: start it first")]
    JoinedNotRunning { name: String, target: String },
    /// EINVAL: `network container:NAME` where NAME (or the one it joins, and so on) uses the host's
    /// network: joining it would be host networking under another name.
    #[error("container '{name}' can't join the network of '{target}': that is the host's network (use network host)")]
    JoinedHost { name: String, target: String },
}

impl NetworkError {
    /// The errno a write that hit this error returns.
    pub fn errno(&self) -> i32 {
        match self {
            NetworkError::PortTaken { source, .. } => source.raw_os_error().unwrap_or(libc::EADDRINUSE),
            NetworkError::PortClaimed { .. } => libc::EADDRINUSE,
            NetworkError::Exhausted(_) => libc::ENOSPC,
            NetworkError::PortsNeedBridge(_) => libc::EINVAL,
            NetworkError::JoinedNotRunning { .. } => libc::ESRCH,
            NetworkError::JoinedHost { .. } => libc::EINVAL,
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
                // The pair of this address's last run, whose namespace the kernel has not freed yet (or frees
                // right now: then it is gone by the time we delete it, ENODEV, which is as good).
                match link::delete(&self.host, &name).await {
                    Err(e) if e.raw_os_error() != Some(libc::ENODEV) => {
                        return Err(NetworkError::Veth { name: name.clone(), source: e });
                    }
                    _ => {}
                }
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

    /// The `/etc/resolv.conf` of a container with a namespace of its own: its own `dns` servers, else the
    /// daemon's `--dns`, else the host's.
    pub fn resolv_conf(&self, dns: &[std::net::IpAddr]) -> String {
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let daemon: Vec<std::net::IpAddr> = self.opts.dns.iter().copied().map(Into::into).collect();
        etc::resolv_conf(&host, if dns.is_empty() { &daemon } else { dns })
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

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn the_first_container_gets_the_address_after_the_gateway() {
        let s: Subnet = "10.213.7.0/24".parse().unwrap();
        assert_eq!(s.gateway(), ip("10.213.7.1"), "the bridge's own address");
        assert_eq!(allocate(&s, &[]), Some(ip("10.213.7.2")));
        // The next ones in order, each the lowest free.
        let mut used = Vec::new();
        for want in 2..=6 {
            let got = allocate(&s, &used).unwrap();
            assert_eq!(got, Ipv4Addr::new(10, 213, 7, want));
            used.push(got);
        }
    }

    #[test]
    fn a_freed_address_is_given_again_lowest_first() {
        let s: Subnet = "10.0.0.0/24".parse().unwrap();
        let mut used: Vec<Ipv4Addr> = (2..=10).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
        assert_eq!(allocate(&s, &used), Some(ip("10.0.0.11")));
        // `rm` of the containers at .7 and .4: the next start gets .4, the one after it .7.
        used.retain(|a| *a != ip("10.0.0.7") && *a != ip("10.0.0.4"));
        let next = allocate(&s, &used).unwrap();
        assert_eq!(next, ip("10.0.0.4"));
        used.push(next);
        assert_eq!(allocate(&s, &used), Some(ip("10.0.0.7")));
        // The same address held twice (two records naming it) frees nothing more.
        let twice = [ip("10.0.0.2"), ip("10.0.0.2")];
        assert_eq!(allocate(&s, &twice), Some(ip("10.0.0.3")));
    }

    #[test]
    fn never_the_network_the_gateway_or_the_broadcast() {
        for cidr in ["10.0.0.0/24", "10.9.8.0/29", "172.16.0.0/30", "10.1.0.0/23", "10.2.0.0/20"] {
            let s: Subnet = cidr.parse().unwrap();
            let all: Vec<Ipv4Addr> = s.addresses().collect();
            let network = u32::from(s.gateway()) - 1;
            let broadcast = network | !(u32::MAX << (32 - u32::from(s.prefix())));
            for not in [network, network + 1, broadcast] {
                assert!(!all.contains(&Ipv4Addr::from(not)), "{cidr} hands out {}", Ipv4Addr::from(not));
                assert!(!s.is_container_address(Ipv4Addr::from(not)), "{cidr}: {}", Ipv4Addr::from(not));
            }
            // Everything else of the subnet, in order, up to the bound.
            let hosts = (broadcast - network - 2).min(MAX_CONTAINERS);
            assert_eq!(all.len() as u32, hosts, "{cidr}");
            assert_eq!(all.first().copied(), Some(Ipv4Addr::from(network + 2)), "{cidr}");
            assert!(all.windows(2).all(|w| u32::from(w[1]) == u32::from(w[0]) + 1), "{cidr}: not in order");
            // Held addresses that are not the subnet's (a record from a daemon with another --subnet) take none.
            let foreign = [ip("192.168.1.2"), ip("10.255.255.254")];
            assert_eq!(allocate(&s, &foreign), all.first().copied(), "{cidr}");
        }
        // A /23's .255 and .0 in the middle are ordinary hosts.
        let s: Subnet = "10.1.0.0/23".parse().unwrap();
        assert!(s.is_container_address(ip("10.1.0.255")) && s.is_container_address(ip("10.1.1.0")));
        let used: Vec<Ipv4Addr> = s.addresses().take_while(|a| *a != ip("10.1.0.255")).collect();
        assert_eq!(allocate(&s, &used), Some(ip("10.1.0.255")));
        assert_eq!(s.addresses().last(), Some(ip("10.1.1.254")));
    }

    #[test]
    fn an_exhausted_subnet_gives_no_address() {
        // A /29: the gateway and five containers.
        let s: Subnet = "10.9.8.0/29".parse().unwrap();
        let mut used = Vec::new();
        while let Some(a) = allocate(&s, &used) {
            used.push(a);
        }
        assert_eq!(used, (2..=6).map(|i| Ipv4Addr::new(10, 9, 8, i)).collect::<Vec<_>>());
        // The write of `ctl` then fails with ENOSPC, naming the subnet.
        let e = NetworkError::Exhausted(s.cidr());
        assert_eq!(e.errno(), libc::ENOSPC);
        assert!(e.to_string().contains("10.9.8.0/29"), "{e}");
        // One freed: that one, and only it.
        used.retain(|a| *a != ip("10.9.8.5"));
        assert_eq!(allocate(&s, &used), Some(ip("10.9.8.5")));
        // A /20 holds MAX_CONTAINERS, its last host the last of them; a /19 is cut at the same number.
        let s: Subnet = "10.2.0.0/20".parse().unwrap();
        assert_eq!(s.addresses().count() as u32, MAX_CONTAINERS);
        assert_eq!(s.addresses().last(), Some(ip("10.2.15.254")));
        let s: Subnet = "10.4.0.0/19".parse().unwrap();
        let all: Vec<Ipv4Addr> = s.addresses().collect();
        assert_eq!(all.len() as u32, MAX_CONTAINERS);
        assert_eq!(allocate(&s, &all), None, "past the bound the bridge is full, though the subnet has more");
        assert!(!s.is_container_address(ip("10.4.16.0")) && s.is_host(ip("10.4.16.0")));
    }

    #[test]
    fn subnets_as_written() {
        // Host bits are dropped: the bridge is the network's first host whatever was written.
        for (written, cidr, gateway) in [
            ("10.0.0.77/24", "10.0.0.0/24", "10.0.0.1"),
            ("192.168.5.200/25", "192.168.5.128/25", "192.168.5.129"),
            ("10.255.255.255/8", "10.0.0.0/8", "10.0.0.1"),
            ("10.0.0.6/30", "10.0.0.4/30", "10.0.0.5"),
        ] {
            let s: Subnet = written.parse().unwrap();
            assert_eq!((s.cidr(), s.gateway()), (cidr.to_string(), ip(gateway)), "{written}");
            assert_eq!(s.to_string(), cidr);
        }
        for bad in ["10.0.0.0/7", "10.0.0.0/31", "10.0.0.0/32", "10.0.0.0/", "/24", "10.0.0.0/24/1", "10.0.0.256/24"] {
            let e = bad.parse::<Subnet>().unwrap_err();
            assert!(e.contains("prefix 8-30"), "{bad}: {e}");
        }
    }

    #[test]
    fn names_and_macs_follow_the_address() {
        // The veth's host end and the container's MAC are the address itself, so an address always has the
        // same ones (the anti-spoofing table binds them once, at the daemon's start).
        assert_eq!(veth_name(ip("10.213.7.2")), "vb0ad50702");
        assert_eq!(veth_name(ip("255.255.255.254")), "vbfffffffe");
        assert!(veth_name(ip("255.255.255.254")).len() <= 15, "an interface name has at most 15 bytes");
        assert_eq!(mac_of(ip("10.213.7.2")), [0x02, 0x42, 10, 213, 7, 2]);
        assert_eq!(mac_of(ip("10.213.7.2"))[0] & 0x03, 0x02, "locally administered, unicast");
    }

    #[test]
    fn modes() {
        assert_eq!("none".parse::<NetworkMode>(), Ok(NetworkMode::None));
        assert!("bridged".parse::<NetworkMode>().is_err());
        assert_eq!(NetworkMode::default().to_string(), "bridge");
        let joined: NetworkMode = "container:web".parse().unwrap();
        assert_eq!((joined.joined(), joined.to_string().as_str()), (Some("web"), "container:web"));
        assert!("container:".parse::<NetworkMode>().is_err());
        assert!("containers:web".parse::<NetworkMode>().is_err());
        assert_eq!(veth_name(Ipv4Addr::new(10, 0, 0, 2)), "vb0a000002");
    }
}
