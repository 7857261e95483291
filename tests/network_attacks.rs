//! The network trust boundary, attacked as an attacker did it: a container (with CAP_NET_RAW, Docker's
//! default) writes hand-made Ethernet frames with `tests/probes/rawframe.c`, and a neighbour network
//! namespace routes to the containers' subnet through the host. Each attack sits beside its positive
//! control: the same probe, in the same run, reaching what it may reach.
//!
//! Every test has its own bridge and subnet (`bkt<N>`, 10.213.N.0/24) from the harness, and derives its
//! own names from N: network namespaces `bkn<N>` and `bkc<N>`, the neighbour's veth `bkh<N>` on the host
//! and the neighbour's subnet 10.214.N.0/24. A [`Netns`] guard deletes them, also on failure. Traffic
//! goes only to loopback, the bridge's and the containers' addresses, and into namespaces a test made.
//! The attacks from a container are made on the default bridge and again on a network of `networks/`
//! (its own bridge and tables: every bridge has the same defences).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{probe, Bocker};

/// Runs a host command, fails the test with its stderr if it fails, and gives its stdout.
fn run(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Network namespaces of the test's own; dropping it deletes them, and with them every link in them.
struct Netns(Vec<String>);

impl Netns {
    fn add(names: &[&str]) -> Netns {
        let quiet = |n: &str| Command::new("ip").args(["netns", "del", n]).stderr(Stdio::null()).status();
        let guard = Netns(names.iter().map(|n| n.to_string()).collect());
        for n in names {
            // One a killed run left behind goes first.
            let _ = quiet(n);
            run(&["ip", "netns", "add", n]);
        }
        guard
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

/// The N of the harness's `bkt<N>`, from which this test's own names come.
fn n_of(b: &Bocker) -> u32 {
    b.bridge.trim_start_matches("bkt").parse().expect("bridge bkt<N>")
}

fn gateway(b: &Bocker) -> Ipv4Addr {
    format!("{}.1", b.subnet_prefix).parse().unwrap()
}

/// Where an attack runs: the default bridge, or a network of `networks/` made for it (each has its own
/// bridge and tables, and the same defences).
struct Net {
    bridge: String,
    gateway: Ipv4Addr,
    /// What the containers' `networks` file says (none: the default).
    networks: Option<&'static str>,
}

impl Net {
    fn default_of(b: &Bocker) -> Net {
        Net { bridge: b.bridge.clone(), gateway: gateway(b), networks: None }
    }

    /// `mkdir networks/attacked`.
    fn own(b: &Bocker) -> Net {
        std::fs::create_dir(b.path("networks/attacked")).expect("mkdir networks/attacked");
        let bridge = b.read("networks/attacked/bridge").trim().to_string();
        let gateway = b.read("networks/attacked/gateway").trim().parse().expect("gateway");
        Net { bridge, gateway, networks: Some("attacked") }
    }

    /// `mkdir containers/NAME` with its image and command, on this network.
    fn configure(&self, b: &Bocker, name: &str, img: &str, cmd: &str) {
        b.configure(name, img, cmd);
        if let Some(n) = self.networks {
            b.write(&format!("containers/{name}/networks"), n).expect("networks");
        }
    }
}

/// The MAC of a link of the host.
fn mac_of_link(name: &str) -> String {
    std::fs::read_to_string(format!("/sys/class/net/{name}/address")).expect("link address").trim().to_string()
}

/// A container's MAC: `02:42` and its address.
fn ctr_mac(ip: Ipv4Addr) -> String {
    bockerfs::network::mac_of(ip).map(|b| format!("{b:02x}")).join(":")
}

fn ip_of(b: &Bocker, name: &str) -> Ipv4Addr {
    let text = b.read(&format!("containers/{name}/ip"));
    text.trim().parse().unwrap_or_else(|_| panic!("ip of {name}: '{text}'"))
}

/// An image of the busybox rootfs with the probe in it as `/bin/rawframe`.
fn attacker_image(b: &Bocker) -> String {
    probe::install("rawframe", &b.rootfs());
    b.import("")
}

/// Runs the probe as container `name` on `net` (with CAP_NET_RAW, whatever the defaults become) and gives its
/// output once it is done; the container stays running (its veth, and what the bridge learnt on it, too).
fn attack_on(b: &Bocker, net: &Net, img: &str, name: &str, args: &str) -> String {
    net.configure(b, name, img, &format!("sh -c 'rawframe eth0 {args}; echo probe-exit $?; exec sleep 1000'"));
    b.write(&format!("containers/{name}/cap_add"), "NET_RAW").expect("cap_add");
    b.write(&format!("containers/{name}/ctl"), "start").expect("start");
    let logs = || b.read(&format!("containers/{name}/logs"));
    common::eventually(Duration::from_secs(20), logs, || logs().contains("probe-exit "));
    let out = logs();
    assert!(out.ends_with("probe-exit 0\n"), "the probe failed: {out}");
    out.trim_end_matches("probe-exit 0\n").to_string()
}

/// Runs a shell line as container `name` and gives its output once it exited.
fn run_sh(b: &Bocker, img: &str, name: &str, line: &str) -> String {
    b.configure(name, img, &format!("sh -c '{line}'"));
    b.write(&format!("containers/{name}/ctl"), "start").expect("start");
    b.wait_status(name, "exited");
    b.read(&format!("containers/{name}/logs"))
}

/// A web server container serving `body` on port 80, forwarding `ports`.
fn web(b: &Bocker, name: &str, img: &str, body: &str, ports: &str) {
    let cmd = format!("sh -c 'mkdir -p /www && echo {body} > /www/index.html && exec httpd -f -p 80 -h /www'");
    b.configure(name, img, &cmd);
    b.write(&format!("containers/{name}/ports"), ports).expect("ports");
    b.write(&format!("containers/{name}/ctl"), "start").expect("start");
    b.wait_status(name, "running");
}

/// The body of `GET /` at `addr`, over HTTP/1.0.
fn get_once(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    Ok(reply.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default())
}

/// Runs `f` on a thread of its own that entered the network namespace `ns` (the test's other threads stay
/// in the host's).
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = std::fs::File::open(format!("/run/netns/{ns}")).expect("netns");
    std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("netns thread")
}

/// [`get_once`], retried while the server may still be starting.
fn http_get(addr: SocketAddr) -> String {
    let get = || get_once(addr);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match get() {
            Ok(body) if !body.is_empty() => return body,
            other => assert!(Instant::now() < deadline, "no answer from {addr}: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A UDP socket and a TCP listener on `ip:port`, for a port free on both addresses given.
fn listeners(addrs: &[Ipv4Addr]) -> (u16, Vec<UdpSocket>, Vec<TcpListener>) {
    for _ in 0..100 {
        let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let udp: Result<Vec<UdpSocket>, _> = addrs.iter().map(|a| UdpSocket::bind((*a, port))).collect();
        let tcp: Result<Vec<TcpListener>, _> = addrs.iter().map(|a| TcpListener::bind((*a, port))).collect();
        if let (Ok(udp), Ok(tcp)) = (udp, tcp) {
            for s in &udp {
                s.set_nonblocking(true).unwrap();
            }
            for l in &tcp {
                l.set_nonblocking(true).unwrap();
            }
            return (port, udp, tcp);
        }
    }
    panic!("no port free on {addrs:?}");
}

/// The datagrams waiting on `s`: their sources.
fn received(s: &UdpSocket) -> Vec<SocketAddr> {
    let mut from = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        match s.recv_from(&mut buf) {
            Ok((_, addr)) => from.push(addr),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return from,
            Err(e) => panic!("recv: {e}"),
        }
    }
}

/// Waits until `s` has a datagram, then gives the sources of all waiting (a liveness bound).
fn received_eventually(s: &UdpSocket) -> Vec<SocketAddr> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = received(s);
        if !got.is_empty() || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The probe built on the host, for namespaces the test made.
fn host_probe(b: &Bocker) -> PathBuf {
    probe::build("rawframe", &b.dir)
}

/// Runs the probe on `eth0` of the network namespace `ns` with these actions; gives its output.
fn probe_in(ns: &str, probe: &std::path::Path, actions: &str) -> String {
    let mut args = vec!["ip", "netns", "exec", ns, probe.to_str().expect("probe path"), "eth0"];
    args.extend(actions.split_whitespace());
    run(&args)
}

#[test]
fn raw_frames_from_a_container_to_127_0_0_1_reach_nothing_on_the_hosts_loopback() {
    let b = Bocker::start("netatk-localnet");
    localnet_attack(&b, &Net::default_of(&b));
}

#[test]
fn raw_frames_to_127_0_0_1_reach_nothing_from_a_network_of_its_own_either() {
    let b = Bocker::start("netatk-localnet-own");
    localnet_attack(&b, &Net::own(&b));
}

fn localnet_attack(b: &Bocker, net: &Net) {
    let img = attacker_image(b);
    let gw = net.gateway;
    let gw_mac = mac_of_link(&net.bridge);
    // The host's loopback services, and the same port on the gateway's address for the control.
    let (port, udp, tcp) = listeners(&[Ipv4Addr::LOCALHOST, gw]);
    assert_eq!(
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{}/route_localnet", net.bridge)).unwrap(),
        "1\n"
    );

    // The attack first, then the same frames to the gateway's address, then the replies.
    let out = attack_on(
        b,
        net,
        &img,
        "attacker",
        &format!(
            "udp own own {gw_mac} 127.0.0.1 {port} syn own own {gw_mac} 127.0.0.1 {port} \
             udp own own {gw_mac} {gw} {port} syn own own {gw_mac} {gw} {port} listen 1000"
        ),
    );
    assert_eq!(out.matches("sent ").count(), 4, "{out}");
    let me = ip_of(b, "attacker");

    // Control: the gateway's address got the datagram and answered the SYN.
    assert_eq!(received_eventually(&udp[1]), [SocketAddr::from((me, 40000))]);
    assert!(out.contains(&format!("synack from {gw}:{port}\n")), "{out}");
    // The attack: nothing on loopback, no answer from it.
    assert_eq!(received(&udp[0]), [], "a container's datagram reached the host's 127.0.0.1");
    assert!(!out.contains("from 127.0.0.1"), "the host's 127.0.0.1 answered a container: {out}");
    assert_eq!(tcp[0].accept().map(|_| ()).unwrap_err().kind(), ErrorKind::WouldBlock);
}

#[test]
fn a_neighbour_reaches_published_ports_only_and_never_a_loopback_forward() {
    let b = Bocker::start("netatk-neighbour");
    let img = b.import("");
    let n = n_of(&b);
    let (ns, host_if) = (format!("bkn{n}"), format!("bkh{n}"));
    let (host_addr, peer_addr) = (format!("10.214.{n}.1"), format!("10.214.{n}.2"));
    let _netns = Netns::add(&[&ns]);
    // A neighbour on a link of its own that routes to the containers' subnet through the host.
    run(&["ip", "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", &ns]);
    run(&["ip", "addr", "add", &format!("{host_addr}/24"), "dev", &host_if]);
    run(&["ip", "link", "set", &host_if, "up"]);
    run(&["ip", "-n", &ns, "addr", "add", &format!("{peer_addr}/24"), "dev", "eth0"]);
    run(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
    run(&["ip", "-n", &ns, "route", "add", &format!("{}.0/24", b.subnet_prefix), "via", &host_addr]);
    let host_mac = mac_of_link(&host_if);

    let free = || TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (published, loopback_only) = (free(), free());
    web(&b, "open", &img, "published", &format!("{published}:80\n127.0.0.1:{loopback_only}:80"));
    web(&b, "closed", &img, "unpublished", "");
    let (open, closed) = (ip_of(&b, "open"), ip_of(&b, "closed"));
    // The host reaches both servers, and its own loopback forward.
    assert_eq!(http_get(SocketAddr::from((closed, 80))), "unpublished\n");
    assert_eq!(http_get(SocketAddr::from(([127, 0, 0, 1], loopback_only))), "published\n");

    // The neighbour, for real: the published port answers.
    let from_neighbour = |addr: SocketAddr| in_netns(&ns, move || get_once(addr));
    let got = from_neighbour(SocketAddr::from((host_addr.parse::<Ipv4Addr>().unwrap(), published)));
    assert_eq!(got.expect("the published port from the neighbour"), "published\n");

    // Out of the bridge is open, and the replies come back in: a container connects to a server of the
    // neighbour's, masqueraded as the host's address on that link.
    let server = {
        let peer: Ipv4Addr = peer_addr.parse().unwrap();
        in_netns(&ns, move || TcpListener::bind((peer, 0)).expect("a server in the neighbour"))
    };
    let port = server.local_addr().unwrap().port();
    let served = std::thread::spawn(move || {
        let (conn, from) = server.accept().expect("the container's connection");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(&conn), &mut line).unwrap();
        (&conn).write_all(b"answered\n").unwrap();
        (line, from.ip())
    });
    let out = run_sh(&b, &img, "client", &format!("echo out-of-the-bridge | nc {peer_addr} {port}"));
    assert_eq!(out, "answered\n");
    let host_ip: std::net::IpAddr = host_addr.parse().unwrap();
    assert_eq!(served.join().unwrap(), ("out-of-the-bridge\n".to_string(), host_ip));

    // The neighbour's SYNs: to the unpublished container, to the published one's own address (not a
    // forward), to 127.0.0.1 at the host's MAC (the loopback-only forward), and the control to the
    // published port on the host's address.
    let probe = host_probe(&b);
    let out = probe_in(
        &ns,
        &probe,
        &format!(
            "syn own own {host_mac} {closed} 80 syn own own {host_mac} {open} 80 \
             syn own own {host_mac} 127.0.0.1 {loopback_only} syn own own {host_mac} {host_addr} {published} \
             listen 1000"
        ),
    );
    assert!(out.contains(&format!("synack from {host_addr}:{published}\n")), "control: {out}");
    assert!(!out.contains(&format!("from {closed}:")), "an unpublished port answered a neighbour: {out}");
    assert!(!out.contains(&format!("from {open}:")), "a container's own address answered a neighbour: {out}");
    assert!(!out.contains("from 127.0.0.1:"), "a loopback forward answered a neighbour: {out}");
    // Plain connections say the same.
    let got = from_neighbour(SocketAddr::from((closed, 80)));
    assert!(got.is_err(), "the unpublished port from the neighbour: {got:?}");
    // Still: the host's own loopback forward works.
    assert_eq!(http_get(SocketAddr::from(([127, 0, 0, 1], loopback_only))), "published\n");
}

#[test]
fn a_router_advertisement_from_a_container_gives_the_host_no_address() {
    let b = Bocker::start("netatk-ra");
    ra_attack(&b, &Net::default_of(&b));
}

#[test]
fn a_router_advertisement_from_a_network_of_its_own_gives_the_host_no_address_either() {
    let b = Bocker::start("netatk-ra-own");
    ra_attack(&b, &Net::own(&b));
}

fn ra_attack(b: &Bocker, net: &Net) {
    let img = attacker_image(b);
    let n = n_of(b);
    // 2001:db8:1NN::/64 (never written shorter): its addresses and routes begin with 2001:db8:1NN:.
    let prefix = format!("2001:db8:1{n:02x}::");
    let shown = format!("2001:db8:1{n:02x}:");
    let global = |ns: Option<&str>, dev: &str| {
        let mut args = vec!["-6", "-o", "addr", "show", "dev", dev, "scope", "global"];
        if let Some(ns) = ns {
            args.splice(0..0, ["-n", ns]);
        }
        let out = Command::new("ip").args(&args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    // The attack: an RA of the prefix from a container, onto the daemon's bridge.
    let out = attack_on(b, net, &img, "attacker", &format!("ra own {prefix}"));
    assert_eq!(out, "sent ra\n");

    // Control: the same probe gives an address to a plain bridge behind a veth, with a namespace's default
    // sysctls (the probe in `bkn<N>`, the bridge in `bkc<N>`).
    let (ns, bridge_ns) = (format!("bkn{n}"), format!("bkc{n}"));
    let _netns = Netns::add(&[&ns, &bridge_ns]);
    run(&["ip", "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", "port0", "netns", &bridge_ns]);
    run(&["ip", "-n", &bridge_ns, "link", "add", "br0", "type", "bridge"]);
    run(&["ip", "-n", &bridge_ns, "link", "set", "port0", "master", "br0", "up"]);
    run(&["ip", "-n", &bridge_ns, "link", "set", "br0", "up"]);
    run(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
    let probe = host_probe(b);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !global(Some(&bridge_ns), "br0").contains(&shown) {
        assert!(
            Instant::now() < deadline,
            "the control bridge got no address from the RA: {}",
            run(&["ip", "-n", &bridge_ns, "-6", "addr", "show"])
        );
        probe_in(&ns, &probe, &format!("ra own {prefix}"));
        std::thread::sleep(Duration::from_millis(100));
    }

    assert_eq!(global(None, &net.bridge), "", "a container's RA configured the host's bridge");
    let routes = run(&["ip", "-6", "route", "show", "dev", &net.bridge]);
    assert!(!routes.contains(&shown), "{routes}");
    // Both defences are there: the bridge accepts no RA, and its ports drop containers' IPv6 (the
    // anti-spoofing test's table).
    assert_eq!(std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{}/accept_ra", net.bridge)).unwrap(), "0\n");
}

#[test]
fn a_container_cannot_pass_for_another_container_or_the_gateway() {
    let b = Bocker::start("netatk-spoof");
    spoof_attack(&b, &Net::default_of(&b));
}

#[test]
fn a_container_cannot_pass_for_another_on_a_network_of_its_own_either() {
    let b = Bocker::start("netatk-spoof-own");
    spoof_attack(&b, &Net::own(&b));
}

fn spoof_attack(b: &Bocker, net: &Net) {
    let img = attacker_image(b);
    let gw = net.gateway;
    let gw_mac = mac_of_link(&net.bridge);
    net.configure(b, "victim", &img, "sleep 100");
    b.write("containers/victim/ctl", "start").expect("start");
    let victim = ip_of(b, "victim");
    let victim_mac = ctr_mac(victim);
    // The host and the victim know each other: neighbour entries an ARP claim would overwrite.
    let poke = UdpSocket::bind((gw, 0)).unwrap();
    poke.send_to(b"hello", (victim, 9)).expect("a datagram to the victim");
    let exec = |cmd: &str| {
        let n = b.submit("containers/victim/exec", cmd).expect("exec");
        b.wait_exec("victim", &n);
        b.read(&format!("containers/victim/execs/{n}/logs"))
    };
    exec(&format!("ping -c1 -W5 {gw}"));
    let victims_gateway = || {
        let arp = exec("cat /proc/net/arp");
        arp.lines().find(|l| l.starts_with(&format!("{gw} "))).map(|l| l.to_string()).unwrap_or_default()
    };
    assert!(victims_gateway().contains(&gw_mac), "{}", victims_gateway());
    let host_neigh = |ip: Ipv4Addr| run(&["ip", "neigh", "show", &ip.to_string(), "dev", &net.bridge]);
    common::eventually(Duration::from_secs(10), || host_neigh(victim), || host_neigh(victim).contains(&victim_mac));

    // An ARP from its own Ethernet source whose sender says "my address is at the victim's MAC": the
    // other half of the ARP rule (the sender's MAC, not only the frame's). The control is below: the same
    // attacker's honest ARP is answered and learnt.
    let out = attack_on(b, net, &img, "liar", &format!("arp2 own {victim_mac} own {gw} listen 500"));
    assert!(out.contains("sent arp2"), "{out}");
    let liar = ip_of(b, "liar");
    assert!(!host_neigh(liar).contains(&victim_mac), "the host learnt the victim's MAC: {}", host_neigh(liar));

    // Datagrams to the gateway: with the victim's MAC, with the victim's address, and the control with
    // the attacker's own, each to a port of its own.
    let (p_mac, udp_mac, _t1) = listeners(&[gw]);
    let (p_ip, udp_ip, _t2) = listeners(&[gw]);
    let (p_own, udp_own, _t3) = listeners(&[gw]);
    let out = attack_on(
        b,
        net,
        &img,
        "attacker",
        &format!(
            // ARP: "victim is at my MAC" to the host, "gateway is at my MAC" to the victim.
            "arp own {victim} {gw} arp own {gw} {victim} \
             udp {victim_mac} own {gw_mac} {gw} {p_mac} udp own {victim} {gw_mac} {gw} {p_ip} \
             udp {gw_mac} own {victim_mac} {victim} 9 \
             arp own own {gw} udp own own {gw_mac} {gw} {p_own} listen 1000"
        ),
    );
    let me = ip_of(b, "attacker");
    let my_mac = ctr_mac(me);

    // Control: its own ARP is answered and lands in the host's table, its own datagram arrives.
    assert!(out.contains(&format!("arp-reply from {gw} to {me}\n")), "{out}");
    assert!(host_neigh(me).contains(&my_mac), "{}", host_neigh(me));
    assert_eq!(received_eventually(&udp_own[0]), [SocketAddr::from((me, 40000))]);
    // The claims changed nothing and reached nobody.
    assert!(!out.contains(&format!("to {victim}\n")), "the host answered an ARP claim for the victim: {out}");
    let entry = host_neigh(victim);
    assert!(entry.contains(&victim_mac) && !entry.contains(&my_mac), "the host's entry was poisoned: {entry}");
    let entry = victims_gateway();
    assert!(entry.contains(&gw_mac) && !entry.contains(&my_mac), "the victim's entry was poisoned: {entry}");
    assert_eq!(received(&udp_mac[0]), [], "a datagram with the victim's MAC arrived");
    assert_eq!(received(&udp_ip[0]), [], "a datagram with the victim's address arrived");
    // The bridge learnt no one else's MAC on the attacker's port.
    let fdb = run(&["bridge", "fdb", "show", "br", &net.bridge]);
    let port = bockerfs::network::veth_name(me);
    for line in fdb.lines().filter(|l| l.contains(&format!("dev {port} "))) {
        assert!(!line.contains(&victim_mac) && !line.contains(&gw_mac), "{fdb}");
    }
    assert!(fdb.contains(&format!("{my_mac} dev {port} ")), "it learnt the attacker's own: {fdb}");
}

#[test]
fn the_anti_spoofing_table_is_written_once_for_the_subnet_and_a_start_writes_nothing() {
    let mut b = Bocker::start("netatk-table");
    let img = b.import("");
    let name = bockerfs::network::firewall::table_name(&b.bridge);
    let listing = || run(&["nft", "-a", "list", "table", "bridge", &name]);
    let handle = |text: &str| text.lines().next().unwrap_or_default().to_string();
    let before = listing();
    // A binding for each of the 253 container addresses of the /24, none for the gateway.
    let gw_mac = ctr_mac(gateway(&b));
    assert_eq!(before.matches(" . 02:42:").count(), 253, "{before}");
    assert!(!before.contains(&gw_mac), "{before}");
    assert_eq!(mac_of_link(&b.bridge), gw_mac, "the bridge has the gateway's MAC, set");

    // Starts and stops leave the table alone: the same table (its handle), the same content.
    for c in ["a", "b"] {
        b.configure(c, &img, "sleep 100");
        b.write(&format!("containers/{c}/ctl"), "start").expect("start");
    }
    b.write("containers/a/ctl", "kill").expect("kill");
    b.wait_status("a", "exited");
    assert_eq!(listing(), before);
    assert_eq!(mac_of_link(&b.bridge), gw_mac, "a port does not change the bridge's MAC");

    // A daemon restart writes it whole again, in one piece: a new table, nothing added twice.
    b.stop_daemon();
    b.spawn_daemon();
    let after = listing();
    assert_ne!(handle(&after), handle(&before), "rewritten");
    let strip =
        |t: &str| t.lines().skip(1).map(|l| l.split(" # handle").next().unwrap_or(l).to_string()).collect::<Vec<_>>();
    assert_eq!(strip(&after), strip(&before));
}
