//! Links, addresses and routes through netlink (rtnetlink): the bridge, a container's veth pair made with
//! its inner end already in the container's network namespace, and that end's address and default route.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::RawFd;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute};
use rtnetlink::{Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

/// A netlink error as the io::Error (errno) the kernel gave.
pub fn to_io(e: rtnetlink::Error) -> io::Error {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.to_io(),
        other => io::Error::other(other.to_string()),
    }
}

fn is(e: &io::Error, errno: i32) -> bool {
    e.raw_os_error() == Some(errno)
}

/// The index of the link called `name`, if there is one.
pub async fn index_of(h: &Handle, name: &str) -> io::Result<Option<u32>> {
    match h.link().get().match_name(name.to_string()).execute().try_next().await.map_err(to_io) {
        Ok(msg) => Ok(msg.map(|m| m.header.index)),
        Err(e) if is(&e, libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Makes the bridge if it is missing, brings it up with the MAC `mac` and gives it the gateway address;
/// returns its index. A MAC of its own, set, keeps the kernel from giving the bridge its lowest port's (which
/// changes as containers come and go, and would leave the containers' neighbour entries stale).
pub async fn ensure_bridge(h: &Handle, name: &str, mac: [u8; 6], gateway: Ipv4Addr, prefix: u8) -> io::Result<u32> {
    let index = match index_of(h, name).await? {
        Some(i) => i,
        None => {
            // The MAC in the message that makes it: a bridge made without one has a random one until the
            // set below, and udev (systemd's MACAddressPolicy=persistent) may give it one of its own in
            // between, over ours. Given at creation, the kernel marks it set, and udev leaves it alone.
            let bridge = LinkBridge::new(name).address(mac.to_vec()).up().build();
            match h.link().add(bridge).execute().await.map_err(to_io) {
                Err(e) if !is(&e, libc::EEXIST) => return Err(e),
                _ => {}
            }
            index_of(h, name).await?.ok_or_else(|| io::Error::from_raw_os_error(libc::ENODEV))?
        }
    };
    let up = LinkUnspec::new_with_index(index).address(mac.to_vec()).up().build();
    h.link().set(up).execute().await.map_err(to_io)?;
    match h.address().add(index, gateway.into(), prefix).execute().await.map_err(to_io) {
        Err(e) if !is(&e, libc::EEXIST) => Err(e),
        _ => Ok(index),
    }
}

/// The index `eth0` gets in a container's fresh namespace, where only `lo` (1) exists; `eth1` gets the next.
pub const FIRST_INDEX: u32 = 2;

/// The container's end of a veth pair: its name, index and MAC, made straight in the namespace `netns`.
pub struct Peer<'a> {
    pub name: &'a str,
    pub index: u32,
    pub mac: [u8; 6],
    pub netns: RawFd,
}

/// A veth pair: `host_if` up on the bridge, its peer made straight inside the container's network
/// namespace. (The peer can't be made up here: it has no peer yet while it is made.)
pub async fn add_veth(h: &Handle, host_if: &str, bridge: u32, peer: &Peer<'_>) -> io::Result<()> {
    let inner = inner_end(peer.name, peer.index, peer.netns).address(peer.mac.to_vec()).build();
    let pair = one_queue(LinkVeth::new(host_if, peer.name))
        .set_info_data(InfoData::Veth(InfoVeth::Peer(inner)))
        .controller(bridge)
        .up()
        .build();
    h.link().add(pair).execute().await.map_err(to_io)
}

/// A veth pair made ahead for a spare monitor's namespace: `host_if` down and on no bridge, its peer made
/// straight inside `peer.netns`. [`claim_veth`] gives it its container's name and bridge at the start; if
/// it is never claimed it goes with the namespace (a veth pair goes when either end's namespace does).
/// Its peer's MAC is the kernel's until [`configure_inside`] sets the container's.
pub async fn add_spare_veth(h: &Handle, host_if: &str, name: &str, index: u32, netns: RawFd) -> io::Result<()> {
    let inner = inner_end(name, index, netns).build();
    let pair = one_queue(LinkVeth::new(host_if, name)).set_info_data(InfoData::Veth(InfoVeth::Peer(inner))).build();
    h.link().add(pair).execute().await.map_err(to_io)
}

/// A pair made ahead, claimed: its host end `index` renamed `name`, put on `bridge` and up, in one
/// message (the kernel renames and sets the controller before it brings the link up, and renames only a
/// link that is down).
pub async fn claim_veth(h: &Handle, index: u32, name: &str, bridge: u32) -> io::Result<()> {
    let claimed = LinkUnspec::new_with_index(index).name(name.to_string()).controller(bridge).up().build();
    h.link().set(claimed).execute().await.map_err(to_io)
}

/// The message of a veth pair's inner end: `name` with `index`, made straight in namespace `netns`.
fn inner_end(name: &str, index: u32, netns: RawFd) -> LinkMessageBuilder<LinkUnspec> {
    one_queue(LinkMessageBuilder::<LinkUnspec>::new().index(index).name(name.to_string()).setns_by_fd(netns))
}

/// One transmit and one receive queue, asked for in the message that makes a veth end. Without them the
/// kernel makes a queue per CPU and cuts the end back to one once it is registered, which waits for an
/// expedited RCU grace period with the rtnl lock held (`veth_init_queues`): 20-70 ms on a busy 2-core
/// machine, during which every other link change waits too. The end is the same either way.
fn one_queue<T>(end: LinkMessageBuilder<T>) -> LinkMessageBuilder<T> {
    end.append_extra_attribute(LinkAttribute::NumTxQueues(1)).append_extra_attribute(LinkAttribute::NumRxQueues(1))
}

/// Deletes the link called `name` if it exists.
pub async fn delete(h: &Handle, name: &str) -> io::Result<()> {
    match index_of(h, name).await? {
        Some(index) => h.link().del(index).execute().await.map_err(to_io),
        None => Ok(()),
    }
}

/// Inside the container's namespace: loopback and the interface `index` up (with the MAC `mac`, if given:
/// a pair made ahead has one of its own) and its address (all at once), then the default route through
/// `gateway`, if it is given (the first interface's).
pub async fn configure_inside(
    h: &Handle,
    index: u32,
    mac: Option<[u8; 6]>,
    ip: Ipv4Addr,
    prefix: u8,
    gateway: Option<Ipv4Addr>,
) -> io::Result<()> {
    // Loopback is always index 1 in a network namespace (LOOPBACK_IFINDEX).
    let lo_up = h.link().set(LinkUnspec::new_with_index(1).up().build()).execute();
    let link = LinkUnspec::new_with_index(index);
    let link = match mac {
        Some(mac) => link.address(mac.to_vec()),
        None => link,
    };
    let link_up = h.link().set(link.up().build()).execute();
    let address = h.address().add(index, ip.into(), prefix).execute();
    let (lo_up, link_up, address) = futures_util::join!(lo_up, link_up, address);
    lo_up.and(link_up).and(address).map_err(to_io)?;
    match gateway {
        Some(gateway) => {
            let default = RouteMessageBuilder::<Ipv4Addr>::new().gateway(gateway).build();
            h.route().add(default).execute().await.map_err(to_io)
        }
        None => Ok(()),
    }
}
