//! The `/etc/hosts` and `/etc/resolv.conf` a container sees. The daemon writes them into the container's
//! state directory and they are bind-mounted over the image's files, as Docker does, so they never end up
//! in the container's snapshot.

use std::net::Ipv4Addr;

/// `/etc/hosts`: localhost, and the container's name on its address (or on 127.0.1.1 without one).
pub fn hosts(name: &str, ip: Option<Ipv4Addr>) -> String {
    let own = ip.unwrap_or(Ipv4Addr::new(127, 0, 1, 1));
    format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n{own}\t{name}\n"
    )
}

/// Docker's fallback when the host has no resolver a container can reach.
const FALLBACK_DNS: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

/// `/etc/resolv.conf` for a container in its own network namespace: the `dns` servers if any are given,
/// else the host's, less those on loopback (unreachable from a container), else Docker's fallback.
/// The host's `search` and `options` lines are kept.
pub fn resolv_conf(host: &str, dns: &[Ipv4Addr]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolvers() {
        let host = "# comment\nnameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch example.org\noptions edns0\n";
        assert_eq!(resolv_conf(host, &[]), "nameserver 192.0.2.53\nsearch example.org\noptions edns0\n");
        let given = [Ipv4Addr::new(198, 51, 100, 1)];
        assert_eq!(resolv_conf(host, &given), "nameserver 198.51.100.1\nsearch example.org\noptions edns0\n");
        assert_eq!(resolv_conf("nameserver 127.0.0.53\n", &[]), "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        assert_eq!(resolv_conf("nameserver ::1\nnameserver\n", &[]), "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }

    #[test]
    fn hosts_file() {
        let h = hosts("web", Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(h.ends_with("10.0.0.2\tweb\n"));
        assert!(hosts("web", None).ends_with("127.0.1.1\tweb\n"));
    }
}
