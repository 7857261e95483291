//! The daemon's bridge-family table (`bridge bocker_<bridge>`): a container's veth port sends only with its
//! own MAC and IPv4 address, so it can't pass for another container or the gateway (ARP answers for their
//! addresses, frames with their MAC or address), and sends no IPv6 at all (no router advertisement that
//! configures the host or its neighbours, no neighbour discovery of someone else's address): the daemon
//! gives containers no IPv6.
//!
//! A port's binding is a pure function of its address: the host end is `vb<address in hex>` and the MAC is
//! `02:42` + the address ([`super::veth_name`], [`super::mac_of`]). So the sets are computed once, at
//! setup, for every address the allocator can hand out ([`super::Subnet::addresses`]), and a start writes
//! nothing: an element of an address nobody holds matches no port. Frames from ports that are not this
//! subnet's veths (another daemon's bridge, the host's other bridges) are not looked at.
//!
//! - `prerouting` (every frame a port of any bridge receives, before the bridge learns its source or
//!   forwards or delivers it): a port in `ports` jumps to `port`.
//! - `port`: ARP whose Ethernet source and ARP sender are the port's MAC and address, and IPv4 whose
//!   Ethernet and IP sources are, are accepted; everything else (IPv6, VLAN tags, other protocols) is
//!   dropped.

use std::fmt::Write as _;

use super::{firewall, mac_of, veth_name, Subnet};

/// The whole nft script that replaces the bridge-family table of `bridge`.
pub fn ruleset(bridge: &str, subnet: &Subnet) -> String {
    let table = firewall::table_name(bridge);
    let (mut ports, mut senders) = (String::new(), String::new());
    for ip in subnet.addresses() {
        let mac = mac_of(ip).map(|b| format!("{b:02x}")).join(":");
        let sep = if ports.is_empty() { "" } else { ", " };
        let _ = write!(ports, "{sep}\"{}\"", veth_name(ip));
        let _ = write!(senders, "{sep}\"{}\" . {mac} . {ip}", veth_name(ip));
    }
    format!(
        "table bridge {table} {{}}\n\
         delete table bridge {table}\n\
         table bridge {table} {{\n\
         \tset ports {{\n\
         \t\ttype ifname\n\
         \t\telements = {{ {ports} }}\n\
         \t}}\n\
         \tset senders {{\n\
         \t\ttype ifname . ether_addr . ipv4_addr\n\
         \t\telements = {{ {senders} }}\n\
         \t}}\n\
         \tchain prerouting {{\n\
         \t\ttype filter hook prerouting priority filter; policy accept;\n\
         \t\tiifname @ports jump port\n\
         \t}}\n\
         \tchain port {{\n\
         \t\tether type arp iifname . ether saddr . arp saddr ip @senders \
         iifname . arp saddr ether . arp saddr ip @senders accept\n\
         \t\tether type ip iifname . ether saddr . ip saddr @senders accept\n\
         \t\tdrop\n\
         \t}}\n\
         }}\n"
    )
}

/// Writes the table in one `nft -f` transaction; the error is nft's own message.
pub fn apply(bridge: &str, subnet: &Subnet) -> Result<(), String> {
    firewall::apply(&ruleset(bridge, subnet))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_binding_per_address() {
        let subnet: Subnet = "10.0.0.0/29".parse().unwrap();
        let text = ruleset("bocker0", &subnet);
        assert!(text.starts_with("table bridge bocker_bocker0 {}\ndelete table bridge bocker_bocker0\n"));
        // .2 to .6: the gateway, the network and the broadcast are nobody's port.
        assert!(text
            .contains("elements = { \"vb0a000002\", \"vb0a000003\", \"vb0a000004\", \"vb0a000005\", \"vb0a000006\" }"));
        assert!(text.contains("\"vb0a000002\" . 02:42:0a:00:00:02 . 10.0.0.2, "));
        assert!(text.contains("\"vb0a000006\" . 02:42:0a:00:00:06 . 10.0.0.6 }"));
        assert!(!text.contains("10.0.0.1 ") && !text.contains("10.0.0.7"));
        assert!(text.contains("\t\tdrop\n"));
    }
}
