//! IPv4 subnets of bridges: parsing, the gateway and the addresses handed out, overlaps (two networks, a
//! network and the host's routes), and the pick of a free one from a pool.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 subnet whose first host address is the bridge's (the containers' gateway). Kept in records as
/// its CIDR text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
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

    /// Whether `ip` is inside (any of its addresses, the network's and broadcast too).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network)
    }

    /// Why no bridge may have this subnet, if none may: it overlaps 0/8, loopback, link-local, multicast
    /// or the reserved 240/4.
    pub fn unusable(&self) -> Option<&'static str> {
        let special = [
            ([0, 0, 0, 0], 8, "\"this network\" (0.0.0.0/8)"),
            ([127, 0, 0, 0], 8, "loopback"),
            ([169, 254, 0, 0], 16, "link-local"),
            ([224, 0, 0, 0], 4, "multicast"),
            ([240, 0, 0, 0], 4, "reserved"),
        ];
        special
            .into_iter()
            .find(|(network, prefix, _)| Subnet { network: Ipv4Addr::from(*network), prefix: *prefix }.overlaps(self))
            .map(|(_, _, why)| why)
    }

    /// Whether the two share an address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let wider = if self.prefix <= other.prefix { self } else { other };
        let narrower = if std::ptr::eq(wider, self) { other } else { self };
        wider.contains(narrower.network)
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

impl TryFrom<String> for Subnet {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Subnet> for String {
    fn from(s: Subnet) -> String {
        s.cidr()
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

/// The lowest address of `subnet`'s [`Subnet::addresses`] that is not in `used`, passing over those that
/// `linger` says are still being let go (while there is another).
pub fn allocate(subnet: &Subnet, used: &[Ipv4Addr], linger: impl Fn(Ipv4Addr) -> bool) -> Option<Ipv4Addr> {
    let mut free = subnet.addresses().filter(|ip| !used.contains(ip));
    let first = free.next()?;
    if !linger(first) {
        return Some(first);
    }
    free.find(|ip| !linger(*ip)).or(Some(first))
}

/// The first subnet of prefix `prefix` inside `pool` that overlaps none of `taken`, lowest first.
pub fn pick(pool: &Subnet, prefix: u8, taken: &[Subnet]) -> Option<Subnet> {
    if prefix < pool.prefix || prefix > 30 {
        return None;
    }
    let step = 1u64 << (32 - u32::from(prefix));
    let count = 1u64 << u32::from(prefix - pool.prefix);
    (0..count.min(1 << 16))
        .map(|i| Subnet { network: Ipv4Addr::from((u64::from(u32::from(pool.network)) + i * step) as u32), prefix })
        .find(|s| !taken.iter().any(|t| t.overlaps(s)))
}

/// The destinations the host routes (its main table, `/proc/net/route`), but the default route: a
/// network's subnet must be none of them.
pub fn host_routes() -> Vec<Subnet> {
    parse_routes(&std::fs::read_to_string("/proc/net/route").unwrap_or_default())
}

/// The routes of `/proc/net/route` text: destination and mask in hex, in the host's byte order.
fn parse_routes(text: &str) -> Vec<Subnet> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (dest, mask) = (u32::from_str_radix(f.get(1)?, 16).ok()?, u32::from_str_radix(f.get(7)?, 16).ok()?);
            // The kernel prints the address's bytes as a number in the host's byte order.
            let (dest, mask) = (u32::from_be_bytes(dest.to_ne_bytes()), u32::from_be_bytes(mask.to_ne_bytes()));
            let prefix = mask.count_ones() as u8;
            (prefix > 0 && mask.leading_ones() == u32::from(prefix))
                .then(|| Subnet { network: Ipv4Addr::from(dest & mask), prefix })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::NetworkError;

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
        assert_eq!(allocate(&s, &[], |_| false), Some(Ipv4Addr::new(10, 1, 2, 2)));
        assert_eq!(allocate(&s, &[Ipv4Addr::new(10, 1, 2, 2)], |_| false), None);
        let s: Subnet = "10.0.0.0/24".parse().unwrap();
        let used = [Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 4)];
        assert_eq!(allocate(&s, &used, |_| false), Some(Ipv4Addr::new(10, 0, 0, 3)));
        let all: Vec<Ipv4Addr> = (2..=254).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
        assert_eq!(allocate(&s, &all, |_| false), None);
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
        assert_eq!(allocate(&s, &[], |_| false), Some(ip("10.213.7.2")));
        // The next ones in order, each the lowest free.
        let mut used = Vec::new();
        for want in 2..=6 {
            let got = allocate(&s, &used, |_| false).unwrap();
            assert_eq!(got, Ipv4Addr::new(10, 213, 7, want));
            used.push(got);
        }
    }

    #[test]
    fn an_address_whose_last_pair_lingers_is_passed_over_while_another_is_free() {
        let s: Subnet = "10.0.0.0/29".parse().unwrap();
        let used = [ip("10.0.0.2")];
        let lingering = |a: Ipv4Addr| a == ip("10.0.0.3") || a == ip("10.0.0.4");
        assert_eq!(allocate(&s, &used, lingering), Some(ip("10.0.0.5")));
        // Nothing else free: the lingering one rather than none (the start then waits for its removal).
        let all_but: Vec<Ipv4Addr> = s.addresses().filter(|a| *a != ip("10.0.0.3")).collect();
        assert_eq!(allocate(&s, &all_but, lingering), Some(ip("10.0.0.3")));
        assert_eq!(allocate(&s, &used, |_| false), Some(ip("10.0.0.3")), "control: nothing lingers");
    }

    #[test]
    fn a_freed_address_is_given_again_lowest_first() {
        let s: Subnet = "10.0.0.0/24".parse().unwrap();
        let mut used: Vec<Ipv4Addr> = (2..=10).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
        assert_eq!(allocate(&s, &used, |_| false), Some(ip("10.0.0.11")));
        // `rm` of the containers at .7 and .4: the next start gets .4, the one after it .7.
        used.retain(|a| *a != ip("10.0.0.7") && *a != ip("10.0.0.4"));
        let next = allocate(&s, &used, |_| false).unwrap();
        assert_eq!(next, ip("10.0.0.4"));
        used.push(next);
        assert_eq!(allocate(&s, &used, |_| false), Some(ip("10.0.0.7")));
        // The same address held twice (two records naming it) frees nothing more.
        let twice = [ip("10.0.0.2"), ip("10.0.0.2")];
        assert_eq!(allocate(&s, &twice, |_| false), Some(ip("10.0.0.3")));
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
            assert_eq!(allocate(&s, &foreign, |_| false), all.first().copied(), "{cidr}");
        }
        // A /23's .255 and .0 in the middle are ordinary hosts.
        let s: Subnet = "10.1.0.0/23".parse().unwrap();
        assert!(s.is_container_address(ip("10.1.0.255")) && s.is_container_address(ip("10.1.1.0")));
        let used: Vec<Ipv4Addr> = s.addresses().take_while(|a| *a != ip("10.1.0.255")).collect();
        assert_eq!(allocate(&s, &used, |_| false), Some(ip("10.1.0.255")));
        assert_eq!(s.addresses().last(), Some(ip("10.1.1.254")));
    }

    #[test]
    fn an_exhausted_subnet_gives_no_address() {
        // A /29: the gateway and five containers.
        let s: Subnet = "10.9.8.0/29".parse().unwrap();
        let mut used = Vec::new();
        while let Some(a) = allocate(&s, &used, |_| false) {
            used.push(a);
        }
        assert_eq!(used, (2..=6).map(|i| Ipv4Addr::new(10, 9, 8, i)).collect::<Vec<_>>());
        // The write of `ctl` then fails with ENOSPC, naming the subnet.
        let e = NetworkError::Exhausted(s.cidr());
        assert_eq!(e.errno(), libc::ENOSPC);
        assert!(e.to_string().contains("10.9.8.0/29"), "{e}");
        // One freed: that one, and only it.
        used.retain(|a| *a != ip("10.9.8.5"));
        assert_eq!(allocate(&s, &used, |_| false), Some(ip("10.9.8.5")));
        // A /20 holds MAX_CONTAINERS, its last host the last of them; a /19 is cut at the same number.
        let s: Subnet = "10.2.0.0/20".parse().unwrap();
        assert_eq!(s.addresses().count() as u32, MAX_CONTAINERS);
        assert_eq!(s.addresses().last(), Some(ip("10.2.15.254")));
        let s: Subnet = "10.4.0.0/19".parse().unwrap();
        let all: Vec<Ipv4Addr> = s.addresses().collect();
        assert_eq!(all.len() as u32, MAX_CONTAINERS);
        assert_eq!(
            allocate(&s, &all, |_| false),
            None,
            "past the bound the bridge is full, though the subnet has more"
        );
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
    fn overlaps_and_picks() {
        let s = |t: &str| t.parse::<Subnet>().unwrap();
        assert!(s("10.89.0.0/16").overlaps(&s("10.89.3.0/24")) && s("10.89.3.0/24").overlaps(&s("10.89.0.0/16")));
        assert!(!s("10.89.3.0/24").overlaps(&s("10.89.4.0/24")));
        assert!(s("10.89.3.0/24").contains(ip("10.89.3.77")) && !s("10.89.3.0/24").contains(ip("10.89.4.1")));
        let pool = s("10.89.0.0/16");
        assert_eq!(pick(&pool, 24, &[]), Some(s("10.89.0.0/24")));
        // The host's 10.89.0.0/23 and a network on .2: the next free /24 is .3.
        assert_eq!(pick(&pool, 24, &[s("10.89.0.0/23"), s("10.89.2.0/24")]), Some(s("10.89.3.0/24")));
        assert_eq!(pick(&pool, 24, &[s("10.0.0.0/8")]), None, "all of the pool routed");
        assert_eq!(pick(&s("10.214.7.0/24"), 27, &[s("10.214.7.0/27")]), Some(s("10.214.7.32/27")));
        assert_eq!(pick(&pool, 8, &[]), None, "wider than the pool");
        for bad in ["127.0.0.0/8", "127.1.0.0/24", "224.0.0.0/24", "169.254.3.0/24", "0.0.0.0/8", "250.0.0.0/24"] {
            assert!(s(bad).unusable().is_some(), "{bad}");
        }
        assert!(s("120.0.0.0/8").unusable().is_none() && s("10.89.0.0/24").unusable().is_none());
    }

    #[test]
    fn routes_of_the_host() {
        let text = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                    eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                    eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                    bocker0\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                    junk\n";
        let routes = parse_routes(text);
        assert_eq!(routes, vec!["192.168.0.0/24".parse().unwrap(), "10.0.0.0/24".parse().unwrap()]);
    }
}
