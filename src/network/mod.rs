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
pub mod subnet;

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
pub use subnet::{allocate, Subnet, MAX_CONTAINERS};

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

/// The daemon's network options.
#[derive(Debug, Clone)]
pub struct NetworkOptions {
    pub bridge: String,
    pub subnet: Subnet,
    /// Resolvers for containers' `/etc/resolv.conf`; empty means the host's.
    pub dns: Vec<Ipv4Addr>,
    /// Where the subnets of networks made with `mkdir networks/NAME` come from (`--network-pool`), and
    /// their prefix (`--network-prefix`).
    pub pool: Subnet,
    pub pool_prefix: u8,
    /// The servers the networks' DNS forwards other names to (`--dns-upstream`); empty: `dns`, else the
    /// host's.
    pub upstreams: Vec<std::net::SocketAddr>,
}

/// One network's bridge as the host sees it: the link's name and its subnet (the gateway is its first host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    pub name: String,
    pub subnet: Subnet,
}

/// One interface of a container: on which bridge, with which address. A container's first gets the
/// default route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub bridge: Bridge,
    pub ip: Ipv4Addr,
}

/// How many networks a container joins at most (`eth0` to `eth7`).
pub const MAX_LINKS: usize = 8;

/// Why a network step failed; one variant per step.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("cannot start the netlink runtime: {0}")]
    Runtime(io::Error),
    #[error("cannot open a netlink socket: {0}")]
    Netlink(io::Error),
    #[error("cannot set up the bridge {bridge}: {source}")]
    Bridge { bridge: String, source: io::Error },
    #[error("cannot remove the bridge {bridge}: {source}")]
    RemoveBridge { bridge: String, source: io::Error },
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
    #[error("cannot configure {ifname} in the container: {source}")]
    Inside { ifname: String, source: io::Error },
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
    /// ENOSPC: every subnet of the pool is taken (by the host's routes or other networks).
    #[error("no free /{prefix} left in the network pool {pool} (the host routes or networks hold the rest)")]
    PoolExhausted { pool: String, prefix: u8 },
    /// EADDRINUSE: a subnet written overlaps one the host routes or another network has.
    #[error("subnet {subnet} overlaps {other}")]
    SubnetTaken { subnet: String, other: String },
    #[error("cannot serve DNS on {addr}: {source}")]
    Dns { addr: String, source: io::Error },
}

impl NetworkError {
    /// The errno a write that hit this error returns.
    pub fn errno(&self) -> i32 {
        match self {
            NetworkError::PortTaken { source, .. } => source.raw_os_error().unwrap_or(libc::EADDRINUSE),
            NetworkError::PortClaimed { .. } | NetworkError::SubnetTaken { .. } => libc::EADDRINUSE,
            NetworkError::Exhausted(_) | NetworkError::PoolExhausted { .. } => libc::ENOSPC,
            NetworkError::PortsNeedBridge(_) => libc::EINVAL,
            NetworkError::JoinedNotRunning { .. } => libc::ESRCH,
            NetworkError::JoinedHost { .. } => libc::EINVAL,
            _ => libc::EIO,
        }
    }
}

/// The host side of container networking: a netlink connection, the bridges, the firewall tables.
pub struct Network {
    opts: NetworkOptions,
    runtime: tokio::runtime::Runtime,
    host: rtnetlink::Handle,
    /// Serialises rewrites of the firewall table, so the last one written is the newest.
    firewall: Mutex<()>,
}

impl Network {
    /// Brings up the default bridge, forwarding and its firewall table (with no forwards yet); idempotent.
    pub fn setup(opts: NetworkOptions) -> Result<Network, NetworkError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("bocker-netlink")
            .enable_io()
            .enable_time()
            .build()
            .map_err(NetworkError::Runtime)?;
        let host = {
            let _entered = runtime.enter();
            let (conn, handle, _) = rtnetlink::new_connection().map_err(NetworkError::Netlink)?;
            runtime.spawn(conn);
            handle
        };
        sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
        let network = Network { opts, runtime, host, firewall: Mutex::new(()) };
        network.bring_up(&network.default_bridge())?;
        info!(bridge = %network.opts.bridge, subnet = %network.opts.subnet, "network ready");
        Ok(network)
    }

    /// The default network's bridge (`--bridge`, `--subnet`).
    pub fn default_bridge(&self) -> Bridge {
        Bridge { name: self.opts.bridge.clone(), subnet: self.opts.subnet }
    }

    pub fn subnet(&self) -> &Subnet {
        &self.opts.subnet
    }

    pub fn options(&self) -> &NetworkOptions {
        &self.opts
    }

    /// The runtime the netlink connection (and the networks' DNS servers) run on.
    pub fn runtime(&self) -> tokio::runtime::Handle {
        self.runtime.handle().clone()
    }

    /// A network's bridge with its gateway address, up, its sysctls and its tables: the firewall's (with no
    /// forwards: those are the default bridge's, see [`Network::apply_forwards`]) and the anti-spoofing
    /// one; idempotent.
    pub fn bring_up(&self, bridge: &Bridge) -> Result<(), NetworkError> {
        let (gateway, prefix) = (bridge.subnet.gateway(), bridge.subnet.prefix());
        self.runtime
            .block_on(link::ensure_bridge(&self.host, &bridge.name, mac_of(gateway), gateway, prefix))
            .map_err(|source| NetworkError::Bridge { bridge: bridge.name.clone(), source })?;
        // Forwards from the host's loopback are routed to the bridge with a 127/8 source until masqueraded;
        // the firewall's `localnet` chain drops what comes from outside for 127/8.
        sysctl(&format!("/proc/sys/net/ipv4/conf/{}/route_localnet", bridge.name), "1")?;
        // No router advertisement from a container configures the host (CVE-2020-13401); the bridge's ports
        // drop containers' IPv6 too. Without IPv6 in the kernel there is nothing to turn off.
        if std::path::Path::new("/proc/sys/net/ipv6/conf").exists() {
            sysctl(&format!("/proc/sys/net/ipv6/conf/{}/accept_ra", bridge.name), "0")?;
        }
        antispoof::apply(&bridge.name, &bridge.subnet).map_err(NetworkError::AntiSpoof)?;
        if bridge.name != self.opts.bridge {
            let _one_at_a_time = self.firewall.lock().unwrap_or_else(|e| e.into_inner());
            let rules = firewall::ruleset(&bridge.name, &bridge.subnet, &[], &[]);
            firewall::apply(&rules).map_err(NetworkError::Firewall)?;
        }
        Ok(())
    }

    /// Removes a network's bridge and its tables (its containers' veths went with their namespaces).
    pub fn take_down(&self, bridge: &str) -> Result<(), NetworkError> {
        self.runtime
            .block_on(link::delete(&self.host, bridge))
            .map_err(|source| NetworkError::RemoveBridge { bridge: bridge.to_string(), source })?;
        firewall::delete(bridge).map_err(NetworkError::Firewall)
    }

    /// Writes the default bridge's firewall table with these forwards (those of every running container,
    /// whichever network their address is on), none of them taking port 53 of the `dns` servers' addresses.
    pub fn apply_forwards(&self, forwards: &[Forwards], dns: &[Ipv4Addr]) -> Result<(), NetworkError> {
        let _one_at_a_time = self.firewall.lock().unwrap_or_else(|e| e.into_inner());
        firewall::apply(&firewall::ruleset(&self.opts.bridge, &self.opts.subnet, forwards, dns))
            .map_err(NetworkError::Firewall)
    }

    /// Connects the network namespace of process `netns_pid` to each link's bridge: `eth0`, `eth1`, ...
    /// with its address; the first one's gateway is the default route.
    pub fn attach(&self, netns_pid: i32, links: &[Link]) -> Result<(), NetworkError> {
        let t0 = std::time::Instant::now();
        let netns = File::open(format!("/proc/{netns_pid}/ns/net")).map_err(NetworkError::OpenNetns)?;
        let inside = self.handle_in(&netns)?;
        let socket_us = t0.elapsed().as_micros();
        self.runtime.block_on(async {
            for (n, l) in links.iter().enumerate() {
                let index = link::FIRST_INDEX + n as u32;
                let ifname = format!("eth{n}");
                let bridge_index = link::index_of(&self.host, &l.bridge.name)
                    .await
                    .and_then(|i| i.ok_or_else(|| io::Error::from_raw_os_error(libc::ENODEV)))
                    .map_err(|source| NetworkError::Bridge { bridge: l.bridge.name.clone(), source })?;
                let name = veth_name(l.ip);
                let peer = link::Peer { name: &ifname, index, mac: mac_of(l.ip), netns: netns.as_raw_fd() };
                // `eth0` of a spare monitor's namespace was made ahead (see `prepare`).
                let ahead = match n {
                    0 => link::index_of(&self.host, &spare_veth_name(netns_pid)).await.ok().flatten(),
                    _ => None,
                };
                let make = || async {
                    match ahead {
                        Some(host_index) => link::claim_veth(&self.host, host_index, &name, bridge_index).await,
                        None => link::add_veth(&self.host, &name, bridge_index, &peer).await,
                    }
                };
                let mut made = make().await;
                if matches!(&made, Err(e) if e.raw_os_error() == Some(libc::EEXIST)) {
                    // The pair of this address's last run, whose namespace the kernel has not freed yet (or
                    // frees right now: then it is gone by the time we delete it, ENODEV, which is as good).
                    match link::delete(&self.host, &name).await {
                        Err(e) if e.raw_os_error() != Some(libc::ENODEV) => {
                            return Err(NetworkError::Veth { name: name.clone(), source: e });
                        }
                        _ => {}
                    }
                    made = make().await;
                }
                made.map_err(|source| NetworkError::Veth { name: name.clone(), source })?;
                let gateway = (n == 0).then(|| l.bridge.subnet.gateway());
                let mac = ahead.map(|_| peer.mac);
                link::configure_inside(&inside, index, mac, l.ip, l.bridge.subnet.prefix(), gateway)
                    .await
                    .map_err(|source| NetworkError::Inside { ifname: ifname.clone(), source })?;
            }
            debug!(links = links.len(), socket_us, total_us = t0.elapsed().as_micros(), "attached");
            Ok(())
        })
    }

    /// Makes `eth0` of the network namespace of spare monitor `netns_pid` ahead: a veth pair whose host end,
    /// `vs` and the pid, waits down on no bridge until a start's [`Network::attach`] claims it. Nothing is
    /// kept here: a pair never claimed goes with the spare's namespace. One of that name already there is
    /// an earlier spare's of the same pid (pids wrap at `pid_max`, 32768 here), whose namespace the kernel
    /// has not freed yet: it is deleted first, so the name is this spare's.
    pub fn prepare(&self, netns_pid: i32) -> Result<(), NetworkError> {
        let netns = File::open(format!("/proc/{netns_pid}/ns/net")).map_err(NetworkError::OpenNetns)?;
        let name = spare_veth_name(netns_pid);
        let add = || link::add_spare_veth(&self.host, &name, "eth0", link::FIRST_INDEX, netns.as_raw_fd());
        self.runtime
            .block_on(async {
                match add().await {
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                        link::delete(&self.host, &name).await?;
                        add().await
                    }
                    done => done,
                }
            })
            .map_err(|source| NetworkError::Veth { name, source })
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

    /// Where the networks' DNS servers forward names they don't own: `--dns-upstream`, else `--dns`, else
    /// the host's resolvers (loopback ones too: the servers run in the host's namespace).
    pub fn upstreams(&self) -> Vec<std::net::SocketAddr> {
        if !self.opts.upstreams.is_empty() {
            return self.opts.upstreams.clone();
        }
        if !self.opts.dns.is_empty() {
            return self.opts.dns.iter().map(|ip| std::net::SocketAddr::from((*ip, 53))).collect();
        }
        let host = etc::nameservers(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
        // None: Docker's fallback, as a container on the default bridge gets.
        let servers = if host.is_empty() { etc::fallback_dns() } else { host };
        servers.into_iter().map(|ip| std::net::SocketAddr::from((ip, 53))).collect()
    }
}

/// The host end of the veth pair of address `ip`: `vb` and the address in hex (unique per bridge subnet).
pub fn veth_name(ip: Ipv4Addr) -> String {
    format!("vb{:08x}", u32::from(ip))
}

/// Whether the host end of `ip`'s veth pair is still there while no container holds `ip`: the kernel
/// removes a pair once its namespace is freed, in the background, some milliseconds after the container's
/// last process ended. A start that took the address then would wait for that removal (the pair's name is
/// the address's), so the allocator passes over such an address while another is free.
pub fn port_lingers(ip: Ipv4Addr) -> bool {
    nix::net::if_::if_nametoindex(veth_name(ip).as_str()).is_ok()
}

/// The host end of the veth pair made ahead for spare monitor `pid`'s namespace (at most 15 bytes, as an
/// interface name must be: pids are below 2^22).
pub fn spare_veth_name(pid: i32) -> String {
    format!("vs{pid:x}")
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

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
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
