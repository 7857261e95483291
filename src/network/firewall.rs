//! The daemon's netfilter rules: one nftables table of its own (`ip bocker_<bridge>`), so it never touches
//! a rule it did not add. The table is always written whole, in one `nft -f` transaction that replaces the
//! previous one: a restart adds no duplicates, and a change of ports is never half applied.
//!
//! - `postrouting`: masquerade for the subnet going out of other interfaces, and for forwarded
//!   connections that come from the host's loopback or from another container (so replies come back
//!   through the host).
//! - `prerouting` and `output`: connections to a local address jump to `ports`, which holds one DNAT
//!   rule per forward of each running container.
//! - `localnet`, at raw priority in prerouting (before any DNAT): drops whatever arrives on an interface
//!   other than loopback for 127.0.0.0/8. The bridge has `route_localnet=1` (for forwards from the host's
//!   loopback), so without it a container's frame to 127.0.0.1 at the gateway's MAC reaches the host's
//!   loopback services, and a neighbour's reaches a `127.0.0.1:H:C` forward (CVE-2020-8558).
//! - `forward`: out of the bridge, and between its containers, everything; into it only replies
//!   (`ct state established,related`) and published ports (`ct status dnat`); the rest into the bridge is
//!   dropped. Other interfaces' traffic is not ours: the chain's policy stays accept.
//!
//! The bridge-family table ([`super::antispoof`]) is separate: it is written once at setup, not here.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use super::ports::PortMap;
use super::Subnet;

/// A running container's forwards, as the `ports` chain needs them.
#[derive(Debug, Clone)]
pub struct Forwards {
    pub name: String,
    pub ip: Ipv4Addr,
    pub ports: Vec<PortMap>,
}

/// The table's name for `bridge`: `bocker_` and the bridge name with anything but letters, digits and
/// `_` replaced.
pub fn table_name(bridge: &str) -> String {
    let clean: String = bridge.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    format!("bocker_{clean}")
}

/// The whole nft script that replaces the table. `dns` are the addresses the networks' DNS servers listen
/// on: port 53 there is never forwarded, so a container publishing host port 53 doesn't take their queries.
pub fn ruleset(bridge: &str, subnet: &Subnet, forwards: &[Forwards], dns: &[Ipv4Addr]) -> String {
    let table = table_name(bridge);
    let net = subnet.cidr();
    let keep_dns = match dns {
        [] => String::new(),
        servers => {
            let list = servers.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ");
            format!("\t\tip daddr {{ {list} }} meta l4proto {{ tcp, udp }} th dport 53 return\n")
        }
    };
    let mut rules = String::new();
    for f in forwards {
        for p in &f.ports {
            rules.push_str("\t\t");
            if let Some(addr) = p.host_addr {
                rules.push_str(&format!("ip daddr {addr} "));
            }
            rules.push_str(&format!(
                "{proto} dport {hp} dnat to {ip}:{cp} comment \"{name}\"\n",
                proto = p.proto.as_str(),
                hp = p.host_port,
                ip = f.ip,
                cp = p.ctr_port,
                name = f.name,
            ));
        }
    }
    format!(
        "table ip {table} {{}}\n\
         delete table ip {table}\n\
         table ip {table} {{\n\
         \tchain prerouting {{\n\
         \t\ttype nat hook prerouting priority dstnat; policy accept;\n\
         {keep_dns}\
         \t\tfib daddr type local jump ports\n\
         \t}}\n\
         \tchain output {{\n\
         \t\ttype nat hook output priority -100; policy accept;\n\
         {keep_dns}\
         \t\tfib daddr type local jump ports\n\
         \t}}\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tip saddr {net} oifname != \"{bridge}\" masquerade\n\
         \t\toifname \"{bridge}\" ct status dnat ip saddr {{ 127.0.0.0/8, {net} }} masquerade\n\
         \t}}\n\
         \tchain localnet {{\n\
         \t\ttype filter hook prerouting priority raw; policy accept;\n\
         \t\tiifname != \"lo\" ip daddr 127.0.0.0/8 drop\n\
         \t}}\n\
         \tchain forward {{\n\
         \t\ttype filter hook forward priority filter; policy accept;\n\
         \t\tiifname \"{bridge}\" accept\n\
         \t\toifname \"{bridge}\" ct state established,related accept\n\
         \t\toifname \"{bridge}\" ct status dnat accept\n\
         \t\toifname \"{bridge}\" drop\n\
         \t}}\n\
         \tchain ports {{\n\
         {rules}\
         \t}}\n\
         }}\n"
    )
}

/// Runs `nft -f -` on `script`; the error is nft's own message.
pub fn apply(script: &str) -> Result<(), String> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run nft (install nftables): {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).map_err(|e| format!("cannot write to nft: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("nft failed: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Deletes the daemon's tables of `bridge` (this one and the bridge family's), if they are there (for tests
/// and tidy hosts; the daemon keeps them across restarts).
pub fn delete(bridge: &str) -> Result<(), String> {
    let table = table_name(bridge);
    apply(&format!(
        "table ip {table} {{}}\ndelete table ip {table}\ntable bridge {table} {{}}\ndelete table bridge {table}\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::super::ports::parse_ports;
    use super::*;

    #[test]
    fn rules() {
        let subnet: Subnet = "10.0.0.0/24".parse().unwrap();
        let fw = Forwards {
            name: "web".into(),
            ip: Ipv4Addr::new(10, 0, 0, 2),
            ports: parse_ports("8080:80\n127.0.0.1:5353:53/udp").unwrap(),
        };
        let text = ruleset("bocker0", &subnet, &[fw], &[]);
        assert!(!text.contains("dport 53 return"));
        let with_dns = ruleset("bocker0", &subnet, &[], &[Ipv4Addr::new(10, 89, 0, 1), Ipv4Addr::new(10, 89, 1, 1)]);
        assert_eq!(
            with_dns
                .matches("\t\tip daddr { 10.89.0.1, 10.89.1.1 } meta l4proto { tcp, udp } th dport 53 return\n")
                .count(),
            2,
            "{with_dns}"
        );
        assert!(text.starts_with("table ip bocker_bocker0 {}\ndelete table ip bocker_bocker0\n"));
        assert!(text.contains("\t\ttcp dport 8080 dnat to 10.0.0.2:80 comment \"web\"\n"));
        assert!(text.contains("\t\tip daddr 127.0.0.1 udp dport 5353 dnat to 10.0.0.2:53 comment \"web\"\n"));
        assert!(text.contains("ip saddr 10.0.0.0/24 oifname != \"bocker0\" masquerade"));
        assert!(text.contains("\t\tiifname != \"lo\" ip daddr 127.0.0.0/8 drop\n"));
        assert!(text.contains("\t\toifname \"bocker0\" ct status dnat accept\n\t\toifname \"bocker0\" drop\n"));
        assert_eq!(table_name("br-x.1"), "bocker_br_x_1");
    }
}
