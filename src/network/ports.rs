//! Port forwards: the lines of a container's `ports` file (`[HOSTADDR:]HOSTPORT:CTRPORT[/tcp|/udp]`),
//! parsed once into [`PortMap`]s, and the check that a host port is free before it is forwarded.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};

use serde::{Deserialize, Serialize};

/// A transport protocol of a forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One forward: connections to `host_addr:host_port` (any local address when `None`) reach the
/// container's `ctr_port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMap {
    pub host_addr: Option<Ipv4Addr>,
    pub host_port: u16,
    pub ctr_port: u16,
    pub proto: Proto,
}

impl PortMap {
    /// Whether two forwards claim the same host port: same protocol and port, and addresses that overlap.
    pub fn clashes_with(&self, other: &PortMap) -> bool {
        self.proto == other.proto
            && self.host_port == other.host_port
            && (self.host_addr.is_none() || other.host_addr.is_none() || self.host_addr == other.host_addr)
    }
}

impl fmt::Display for PortMap {
    /// The canonical line, as the `ports` file shows it: `127.0.0.1:8080:80/tcp`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(addr) = self.host_addr {
            write!(f, "{addr}:")?;
        }
        write!(f, "{}:{}/{}", self.host_port, self.ctr_port, self.proto.as_str())
    }
}

/// Why a `ports` line is not a forward.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortsError {
    #[error("bad port forward '{0}': use [HOSTADDR:]HOSTPORT:CTRPORT[/tcp|/udp]")]
    Syntax(String),
    #[error("bad port '{0}': use 1-65535")]
    Port(String),
    #[error("bad host address '{0}': use an IPv4 address")]
    Address(String),
    #[error("host port {0} is forwarded twice")]
    Twice(String),
}

/// Parses the text of a `ports` file: one forward per line; blank text means none.
pub fn parse_ports(text: &str) -> Result<Vec<PortMap>, PortsError> {
    let mut maps: Vec<PortMap> = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let map = parse_line(line)?;
        if maps.iter().any(|m| m.clashes_with(&map)) {
            return Err(PortsError::Twice(map.to_string()));
        }
        maps.push(map);
    }
    Ok(maps)
}

fn parse_line(line: &str) -> Result<PortMap, PortsError> {
    let short = || line.chars().take(80).collect::<String>();
    let (spec, proto) = match line.rsplit_once('/') {
        Some((spec, "tcp")) => (spec, Proto::Tcp),
        Some((spec, "udp")) => (spec, Proto::Udp),
        Some(_) => return Err(PortsError::Syntax(short())),
        None => (line, Proto::Tcp),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (addr, host, ctr) = match parts.as_slice() {
        [host, ctr] => (None, *host, *ctr),
        [addr, host, ctr] => {
            let a: Ipv4Addr = addr.parse().map_err(|_| PortsError::Address(addr.chars().take(40).collect()))?;
            // Docker's `0.0.0.0:8080:80`: every local address, as `8080:80` (no connection is made to 0.0.0.0).
            (Some(a).filter(|a| !a.is_unspecified()), *host, *ctr)
        }
        _ => return Err(PortsError::Syntax(short())),
    };
    Ok(PortMap { host_addr: addr, host_port: port(host)?, ctr_port: port(ctr)?, proto })
}

fn port(s: &str) -> Result<u16, PortsError> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 && s.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(PortsError::Port(s.chars().take(20).collect())),
    }
}

/// Fails with the bind error (EADDRINUSE, EADDRNOTAVAIL) when a host process holds the port already.
pub fn check_free(map: &PortMap) -> std::io::Result<()> {
    let addr = SocketAddrV4::new(map.host_addr.unwrap_or(Ipv4Addr::UNSPECIFIED), map.host_port);
    match map.proto {
        Proto::Tcp => TcpListener::bind(addr).map(drop),
        Proto::Udp => UdpSocket::bind(addr).map(drop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let maps = parse_ports("8080:80\n 127.0.0.1:8443:443/tcp \n\n5353:53/udp\n").unwrap();
        let shown: Vec<String> = maps.iter().map(|m| m.to_string()).collect();
        assert_eq!(shown, ["8080:80/tcp", "127.0.0.1:8443:443/tcp", "5353:53/udp"]);
        assert_eq!(parse_ports("  \n").unwrap(), Vec::new());
        // tcp and udp on one port are two forwards.
        assert_eq!(parse_ports("53:53/tcp\n53:53/udp").unwrap().len(), 2);
    }

    #[test]
    fn bad_lines() {
        for bad in ["80", "a:80", "80:b", "1:2:3:4", "80:80/sctp", "80:80/", ":80", "80:80:80"] {
            assert!(parse_ports(bad).is_err(), "{bad} parsed");
        }
        assert_eq!(parse_ports("0:80"), Err(PortsError::Port("0".into())));
        assert_eq!(parse_ports("65536:80"), Err(PortsError::Port("65536".into())));
        assert_eq!(parse_ports("+80:80"), Err(PortsError::Port("+80".into())));
        assert_eq!(parse_ports("::1:80:80"), Err(PortsError::Syntax("::1:80:80".into())));
        assert_eq!(parse_ports("1.2.3:80:80"), Err(PortsError::Address("1.2.3".into())));
        assert_eq!(parse_ports("8080:80\n127.0.0.1:8080:81"), Err(PortsError::Twice("127.0.0.1:8080:81/tcp".into())));
        assert!(parse_ports("127.0.0.1:8080:80\n127.0.0.2:8080:80").is_ok());
    }

    fn map(line: &str) -> PortMap {
        let maps = parse_ports(line).unwrap();
        assert_eq!(maps.len(), 1, "{line}");
        maps[0]
    }

    #[test]
    fn which_forwards_clash() {
        // Two forwards clash when a connection could match both: same protocol, same host port, and
        // addresses that overlap (no address means every local one).
        let clash = [
            ("8080:80", "8080:81"),
            ("8080:80", "127.0.0.1:8080:80"),
            ("127.0.0.1:8080:80", "127.0.0.1:8080:90"),
            ("5353:53/udp", "0.0.0.0:5353:53/udp"),
            ("8080:80/tcp", "8080:80"),
        ];
        let apart = [
            ("8080:80", "8081:80"),
            ("8080:80/tcp", "8080:80/udp"),
            ("127.0.0.1:8080:80", "127.0.0.2:8080:80"),
            ("127.0.0.1:8080:80/udp", "8080:80/tcp"),
            // The container's port plays no part: two containers may both serve on 80.
            ("8080:80", "9090:80"),
        ];
        for (a, b) in clash {
            assert!(map(a).clashes_with(&map(b)) && map(b).clashes_with(&map(a)), "{a} and {b} should clash");
        }
        for (a, b) in apart {
            assert!(!map(a).clashes_with(&map(b)) && !map(b).clashes_with(&map(a)), "{a} and {b} should not clash");
        }
        // A forward clashes with itself: writing the same line twice is refused.
        assert!(map("8080:80").clashes_with(&map("8080:80")));
        // 0.0.0.0 is every local address, as Docker reads it: it clashes with each of them.
        assert_eq!(map("0.0.0.0:8080:80"), map("8080:80"));
        assert!(map("0.0.0.0:8080:80").clashes_with(&map("10.0.0.1:8080:80")));
        assert_eq!(parse_ports("0.0.0.0:8080:80\n8080:81"), Err(PortsError::Twice("8080:81/tcp".into())));
    }

    #[test]
    fn a_ports_file_reads_back_as_parsed() {
        // What `cat ports` shows parses back to the same forwards.
        let text = "8080:80\n127.0.0.1:8443:443/tcp\n5353:53/udp\n1:65535\n65535:1/udp\n";
        let maps = parse_ports(text).unwrap();
        let shown: String = maps.iter().map(|m| format!("{m}\n")).collect();
        assert_eq!(shown, "8080:80/tcp\n127.0.0.1:8443:443/tcp\n5353:53/udp\n1:65535/tcp\n65535:1/udp\n");
        assert_eq!(parse_ports(&shown).unwrap(), maps);
        // Leading zeros are the same port; tabs and CRLF line ends are whitespace.
        assert_eq!(map("08080:080"), map("8080:80"));
        assert_eq!(parse_ports("\t8080:80\r\n9090:90\r\n").unwrap().len(), 2);
        // Refusals name the line or the part that is wrong.
        assert_eq!(parse_ports("8080:80/tcp/udp"), Err(PortsError::Port("80/tcp".into())));
        assert_eq!(parse_ports("8080:-80"), Err(PortsError::Port("-80".into())));
        assert_eq!(parse_ports("8080:80\n9090:0"), Err(PortsError::Port("0".into())));
        assert_eq!(parse_ports("localhost:8080:80"), Err(PortsError::Address("localhost".into())));
        assert_eq!(parse_ports("5353:53/udp\n5353:54/udp"), Err(PortsError::Twice("5353:54/udp".into())));
        // A hostile line is quoted only in part.
        let long = format!("{}:80", "9".repeat(10_000));
        match parse_ports(&long) {
            Err(e) => assert!(e.to_string().len() < 200, "{e}"),
            Ok(m) => panic!("parsed {m:?}"),
        }
    }

    #[test]
    fn taken_port() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let map = PortMap { host_addr: None, host_port: port, ctr_port: 80, proto: Proto::Tcp };
        assert_eq!(check_free(&map).unwrap_err().raw_os_error(), Some(libc::EADDRINUSE));
        drop(held);
        assert!(check_free(&map).is_ok());
    }
}
