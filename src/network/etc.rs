//! The `/etc/hosts` and `/etc/resolv.conf` a container sees. The daemon writes them into the container's
//! state directory and they are bind-mounted over the image's files, as Docker does, so they never end up
//! in the container's snapshot.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

/// A line of a container's `extra_hosts` (Docker's `--add-host NAME:IP`): `IP\tNAME` in its `/etc/hosts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraHost {
    pub name: String,
    pub ip: IpAddr,
}

impl fmt::Display for ExtraHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.ip)
    }
}

/// `extra_hosts`: `NAME:IP` lines (IPv4 or IPv6, which may be bracketed: `db:[fd00::1]`; blank lines and
/// `#` comments skipped). A name is up to 253 letters, digits, `-`, `_` and `.`. The error is the bad line.
pub fn parse_extra_hosts(text: &str) -> Result<Vec<ExtraHost>, String> {
    let mut hosts = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = line.split_once(':').and_then(|(name, ip)| {
            let ip = ip.strip_prefix('[').and_then(|i| i.strip_suffix(']')).unwrap_or(ip);
            let name_ok = !name.is_empty()
                && name.len() <= 253
                && !name.starts_with(['-', '.'])
                && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            Some(ExtraHost { name: name.to_string(), ip: ip.parse().ok()? }).filter(|_| name_ok)
        });
        hosts.push(parsed.ok_or_else(|| line.chars().take(200).collect::<String>())?);
    }
    Ok(hosts)
}

/// `dns`: one server's address a line (IPv4 or IPv6; blank lines and `#` comments skipped). The error is
/// the bad line.
pub fn parse_dns(text: &str) -> Result<Vec<IpAddr>, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.parse().map_err(|_| l.chars().take(200).collect::<String>()))
        .collect()
}

/// `/etc/hosts`: localhost, and the container's name on its address (or on 127.0.1.1 without one).
pub fn hosts(name: &str, ip: Option<Ipv4Addr>) -> String {
    let own = ip.unwrap_or(Ipv4Addr::new(127, 0, 1, 1));
    format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n{own}\t{name}\n"
    )
}

/// `hosts` text with the `extra` lines after it, `IP\tNAME` each (as Docker's `--add-host`).
pub fn with_extra_hosts(mut hosts: String, extra: &[ExtraHost]) -> String {
    if !hosts.is_empty() && !hosts.ends_with('\n') {
        hosts.push('\n');
    }
    for h in extra {
        hosts.push_str(&format!("{}\t{}\n", h.ip, h.name));
    }
    hosts
}

/// Docker's fallback when the host has no resolver a container can reach.
const FALLBACK_DNS: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

/// `/etc/resolv.conf` for a container in its own network namespace: the `dns` servers if any are given,
/// else the host's, less those on loopback (unreachable from a container), else Docker's fallback.
/// The host's `search` and `options` lines are kept.
pub fn resolv_conf(host: &str, dns: &[IpAddr]) -> String {
    let mut servers: Vec<String> = dns.iter().map(|a| a.to_string()).collect();
    let mut rest = String::new();
    for line in host.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                let Some(addr) = words.next() else { continue };
                let loopback = match addr.parse::<std::net::IpAddr>() {
                    Ok(ip) => ip.is_loopback(),
                    Err(_) => true,
                };
                if dns.is_empty() && !loopback {
                    servers.push(addr.to_string());
                }
            }
            Some("search" | "options" | "domain") => {
                rest.push_str(line.trim());
                rest.push('\n');
            }
            _ => {}
        }
    }
    if servers.is_empty() {
        servers = FALLBACK_DNS.iter().map(|s| s.to_string()).collect();
    }
    let mut out: String = servers.iter().map(|s| format!("nameserver {s}\n")).collect();
    out.push_str(&rest);
    out
}

/// Docker's fallback resolvers, for a host that has none a container can use.
pub fn fallback_dns() -> Vec<IpAddr> {
    FALLBACK_DNS.iter().filter_map(|s| s.parse().ok()).collect()
}

/// Every `nameserver` of resolv.conf text that is an address (loopback ones too).
pub fn nameservers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next()?.parse().ok())?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolvers() {
        let host = "# comment\nnameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch example.org\noptions edns0\n";
        assert_eq!(resolv_conf(host, &[]), "nameserver 192.0.2.53\nsearch example.org\noptions edns0\n");
        let given = [IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1))];
        assert_eq!(resolv_conf(host, &given), "nameserver 198.51.100.1\nsearch example.org\noptions edns0\n");
        assert_eq!(resolv_conf("nameserver 127.0.0.53\n", &[]), "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        assert_eq!(resolv_conf("nameserver ::1\nnameserver\n", &[]), "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        let all: Vec<String> = nameservers(host).iter().map(|a| a.to_string()).collect();
        assert_eq!(all, ["127.0.0.53", "192.0.2.53"]);
    }

    #[test]
    fn hosts_file() {
        let h = hosts("web", Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(h.ends_with("10.0.0.2\tweb\n"));
        assert!(hosts("web", None).ends_with("127.0.1.1\tweb\n"));
        let extra = parse_extra_hosts("db:10.1.2.3\n# c\n\nv6:[fd00::1]\nraw:::1\n").unwrap();
        assert_eq!(extra.iter().map(|h| h.to_string()).collect::<Vec<_>>(), ["db:10.1.2.3", "v6:fd00::1", "raw:::1"]);
        let h = with_extra_hosts(hosts("web", None), &extra);
        assert!(h.ends_with("127.0.1.1\tweb\n10.1.2.3\tdb\nfd00::1\tv6\n::1\traw\n"), "{h}");
        for bad in ["db", "db:", ":10.0.0.1", "db:10.0.0", "a b:10.0.0.1", "-x:10.0.0.1", "db:host-gateway"] {
            assert_eq!(parse_extra_hosts(&format!("ok:10.0.0.1\n{bad}\n")), Err(bad.to_string()), "{bad}");
        }
        assert_eq!(parse_dns("10.0.0.53\n\n2001:db8::53\n").unwrap().len(), 2);
        assert_eq!(parse_dns("10.0.0.53\nnope\n"), Err("nope".to_string()));
    }
}
