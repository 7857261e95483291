//! Networking on a real bridge, real veth pairs in real network namespaces and real nftables rules: host
//! to container and container to container over TCP, port forwards from the host's loopback and from
//! another container, live changes of forwards, `network none` and `host`, distinct addresses for
//! concurrent starts, nothing left after rm, containers reachable across a daemon restart, and bad input.
//!
//! Every test has its own bridge and subnet (`bkt<N>`, 10.213.N.0/24). Traffic goes only between the host
//! and its containers: loopback, the bridge's address and the containers' addresses.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Bocker;

/// The body of `GET /` at `addr`, over HTTP/1.0.
fn http_get(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    Ok(reply.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default())
}

/// Retries `http_get` until the server answers (it may still be starting).
fn http_get_eventually(addr: SocketAddr) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match http_get(addr) {
            Ok(body) if !body.is_empty() => return body,
            other => assert!(Instant::now() < deadline, "no answer from {addr}: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A TCP port that nothing on the host listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A web server container serving `body` on port 80.
fn web(b: &Bocker, name: &str, img: &str, body: &str, ports: &str) {
    b.configure(
        name,
        img,
        &format!("sh -c 'mkdir -p /www && echo {body} > /www/index.html && exec httpd -f -p 80 -h /www'"),
    );
    if !ports.is_empty() {
        b.write(&format!("containers/{name}/ports"), ports).expect("ports");
    }
    b.write(&format!("containers/{name}/ctl"), "start").expect("start");
    b.wait_status(name, "running");
}

fn ip_of(b: &Bocker, name: &str) -> Ipv4Addr {
    let text = b.read(&format!("containers/{name}/ip"));
    text.trim().parse().unwrap_or_else(|_| panic!("ip of {name}: '{text}'"))
}

fn gateway(b: &Bocker) -> Ipv4Addr {
    format!("{}.1", b.subnet_prefix).parse().unwrap()
}

/// Runs a shell line in a fresh container (bridge mode) and returns its output once it exited.
fn run_sh(b: &Bocker, img: &str, line: &str) -> String {
    let id = b.run_to_exit(&format!("{img} sh -c {}", shell_quote(line)));
    b.read(&format!("containers/{id}/logs"))
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The host's links, by name.
fn host_links() -> String {
    let out = Command::new("ip").args(["-o", "link", "show"]).output().expect("ip link");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The daemon's nftables table, as nft lists it.
fn table(b: &Bocker) -> String {
    let table = bockerfs::network::firewall::table_name(&b.bridge);
    let out = Command::new("nft").args(["list", "table", "ip", &table]).output().expect("nft");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether any process of the host is in the namespace `ns` (a `net:[INODE]` link).
fn any_process_in(ns: &std::path::Path) -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path().join("ns/net")).ok())
        .any(|l| l == ns)
}

fn eventually(what: &str, check: impl FnMut() -> bool) {
    common::eventually(Duration::from_secs(10), || what.to_string(), check)
}

#[test]
fn host_and_containers_reach_each_other_over_the_bridge() {
    let b = Bocker::start("net-bridge");
    let img = b.import("");
    web(&b, "web", &img, "hello-web", "");
    let ip = ip_of(&b, "web");
    assert_eq!(b.read("containers/web/network"), "bridge\n");
    assert!(ip.to_string().starts_with(&b.subnet_prefix) && ip != gateway(&b), "{ip}");

    // Host to container.
    assert_eq!(http_get_eventually(SocketAddr::from((ip, 80))), "hello-web\n");

    // Container to container, and what the client container sees of its own network.
    let out = run_sh(
        &b,
        &img,
        &format!("wget -q -O- http://{ip}/; ip -o -4 addr show eth0; ip route; cat /etc/hosts; hostname"),
    );
    assert!(out.starts_with("hello-web\n"), "{out}");
    let gw = gateway(&b);
    assert!(out.contains(&format!("default via {gw} dev eth0")), "{out}");
    let client_ip = out.lines().find(|l| l.contains(" eth0 ") && l.contains("inet ")).expect("eth0 address");
    let client_ip = client_ip.split_whitespace().nth(3).unwrap().split('/').next().unwrap().to_string();
    assert_ne!(client_ip, ip.to_string(), "two containers with one address");
    let hostname = out.lines().last().unwrap();
    assert!(out.contains(&format!("{client_ip}\t{hostname}\n")), "/etc/hosts names the container: {out}");
    assert!(out.contains("127.0.0.1\tlocalhost"), "{out}");

    // /etc/hosts and resolv.conf are mounted over the image's, never written into its snapshot (where an
    // empty file stays as the mount point).
    let snapshot = |f: &str| std::fs::read_to_string(b.path(&format!("containers/web/rootfs/etc/{f}"))).unwrap();
    assert_eq!(snapshot("resolv.conf"), "");
    assert_eq!(snapshot("hosts"), "");
}

#[test]
fn port_forwards_from_loopback_and_from_another_container_follow_the_ports_file() {
    let b = Bocker::start("net-ports");
    let img = b.import("");
    let (p1, p2) = (free_port(), free_port());
    web(&b, "web", &img, "forwarded", &format!("{p1}:80"));
    assert_eq!(b.read("containers/web/ports"), format!("{p1}:80/tcp\n"));

    // From the host's loopback.
    assert_eq!(http_get_eventually(SocketAddr::from(([127, 0, 0, 1], p1))), "forwarded\n");
    // From another container, to the host's address on the bridge.
    let out = run_sh(&b, &img, &format!("wget -q -O- http://{}:{p1}/", gateway(&b)));
    assert_eq!(out, "forwarded\n");

    // Live: the forward moves to another port, bound to loopback only.
    b.write("containers/web/ports", &format!("127.0.0.1:{p2}:80/tcp\n")).expect("live ports");
    assert_eq!(b.read("containers/web/ports"), format!("127.0.0.1:{p2}:80/tcp\n"));
    assert_eq!(http_get_eventually(SocketAddr::from(([127, 0, 0, 1], p2))), "forwarded\n");
    assert!(http_get(SocketAddr::from(([127, 0, 0, 1], p1))).is_err(), "the old forward is gone");
    assert!(table(&b).contains(&format!("dport {p2} dnat to {}:80", ip_of(&b, "web"))), "{}", table(&b));

    // Stopping the container removes its rules.
    b.write("containers/web/ctl", "stop 1").expect("stop");
    b.wait_status("web", "exited");
    eventually("rules removed", || !table(&b).contains(&format!("dport {p2}")));
    assert!(http_get(SocketAddr::from(([127, 0, 0, 1], p2))).is_err());
}

#[test]
fn a_host_port_already_taken_is_eaddrinuse_and_changes_nothing() {
    let b = Bocker::start("net-taken");
    let img = b.import("");
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();

    // At start: EADDRINUSE, the message in `error`, still created, no rule.
    b.configure("a", &img, "sleep 100");
    b.write("containers/a/ports", &format!("{port}:80")).expect("ports are only checked at start");
    let e = b.write("containers/a/ctl", "start").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EADDRINUSE, "{e}");
    assert!(
        b.read("containers/a/error").contains(&format!("host port {port}:80/tcp is taken")),
        "{}",
        b.read("containers/a/error")
    );
    assert_eq!(b.status("a"), "created");
    assert!(!table(&b).contains(&format!("dport {port}")));
    assert!(b.read("errors").contains("EADDRINUSE"));

    // Live, on a running container: refused, its forwards unchanged.
    let free = free_port();
    b.write("containers/a/ports", &format!("{free}:80")).expect("ports");
    b.write("containers/a/ctl", "start").expect("start");
    let e = b.write("containers/a/ports", &format!("{free}:80\n{port}:81")).unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EADDRINUSE);
    assert_eq!(b.read("containers/a/ports"), format!("{free}:80/tcp\n"));
    assert!(table(&b).contains(&format!("dport {free}")) && !table(&b).contains(&format!("dport {port}")));

    // A port another running container forwards is taken too.
    b.configure("b", &img, "sleep 100");
    b.write("containers/b/ports", &format!("{free}:80")).expect("ports");
    let e = b.write("containers/b/ctl", "start").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EADDRINUSE);
    assert!(b.read("containers/b/error").contains("forwarded to container 'a'"));
    assert_eq!(b.status("b"), "created");
    drop(held);
}

#[test]
fn network_none_has_only_loopback_and_host_shares_the_hosts_links() {
    let b = Bocker::start("net-modes");
    let img = b.import("");
    b.configure("alone", &img, "sh -c 'ip -o link show; ping -c1 -W1 127.0.0.1 >/dev/null && echo lo-ok'");
    b.write("containers/alone/network", "none").expect("network none");
    b.write("containers/alone/ctl", "start").expect("start");
    b.wait_status("alone", "exited");
    let out = b.read("containers/alone/logs");
    let links: Vec<&str> = out.lines().filter(|l| l.contains(": <")).collect();
    assert_eq!(links.len(), 1, "only loopback: {out}");
    assert!(links[0].contains(": lo: <LOOPBACK,UP"), "{out}");
    assert!(out.contains("lo-ok"), "{out}");
    assert_eq!(b.read("containers/alone/ip"), "");
    assert_eq!(b.read("containers/alone/network"), "none\n");

    b.configure("shared", &img, "ip -o link show");
    b.write("containers/shared/network", "host").expect("network host");
    b.write("containers/shared/ctl", "start").expect("start");
    b.wait_status("shared", "exited");
    let out = b.read("containers/shared/logs");
    assert!(out.contains(&format!(": {}: <", b.bridge)), "the host's bridge is visible: {out}");
    assert_eq!(b.read("containers/shared/ip"), "");

    // The mode is fixed while running.
    b.configure("busy", &img, "sleep 100");
    b.write("containers/busy/ctl", "start").expect("start");
    let e = b.write("containers/busy/network", "none").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EBUSY);
    assert_eq!(b.read("containers/busy/network"), "bridge\n");
}

#[test]
fn containers_started_at_once_get_different_addresses_and_rm_leaves_nothing() {
    let b = Bocker::start("net-many");
    let img = b.import("");
    let names: Vec<String> = (0..8).map(|i| format!("c{i}")).collect();
    for n in &names {
        b.configure(n, &img, "sleep 100");
    }
    std::thread::scope(|s| {
        for n in &names {
            let b = &b;
            s.spawn(move || b.write(&format!("containers/{n}/ctl"), "start").expect("start"));
        }
    });
    let ips: Vec<Ipv4Addr> = names.iter().map(|n| ip_of(&b, n)).collect();
    let mut unique = ips.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "duplicate addresses: {ips:?}");
    assert!(!ips.contains(&gateway(&b)));
    let links = host_links();
    for ip in &ips {
        let veth = bockerfs::network::veth_name(*ip);
        assert!(links.contains(&format!(": {veth}@")) && links.contains(&format!("master {}", b.bridge)), "{links}");
    }

    // Stop and remove one: its link goes with its namespace, its address is free for the next container.
    let gone = ips[3];
    let pid = b.read("containers/c3/pid").trim().to_string();
    let netns = std::fs::read_link(format!("/proc/{pid}/ns/net")).expect("netns of c3");
    let host_netns = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_ne!(netns, host_netns);
    b.write("containers/c3/ctl", "kill").expect("kill");
    b.wait_status("c3", "exited");
    assert_eq!(ip_of(&b, "c3"), gone, "an exited container keeps its address until rm");
    std::fs::remove_dir(b.path("containers/c3")).expect("rm");
    let veth = bockerfs::network::veth_name(gone);
    eventually("the veth pair is gone", || !host_links().contains(&format!(": {veth}@")));
    eventually("no process is left in its network namespace", || !any_process_in(&netns));
    b.configure("next", &img, "sleep 100");
    b.write("containers/next/ctl", "start").expect("start");
    assert_eq!(ip_of(&b, "next"), gone, "the lowest free address is reused");

    // Everything stopped and removed: no link of ours but the bridge, no forward rule.
    for n in names.iter().filter(|n| *n != "c3").chain(std::iter::once(&"next".to_string())) {
        b.write(&format!("containers/{n}/ctl"), "kill").expect("kill");
        b.wait_status(n, "exited");
        std::fs::remove_dir(b.path(&format!("containers/{n}"))).expect("rm");
    }
    eventually("no veth of this daemon left", || {
        let links = host_links();
        !links.contains(&format!("master {}", b.bridge))
    });
}

#[test]
fn a_daemon_restart_keeps_running_containers_reachable_and_adds_no_duplicates() {
    let mut b = Bocker::start("net-restart");
    let img = b.import("");
    let port = free_port();
    web(&b, "web", &img, "still-here", &format!("{port}:80"));
    let ip = ip_of(&b, "web");
    assert_eq!(http_get_eventually(SocketAddr::from(([127, 0, 0, 1], port))), "still-here\n");
    let before = table(&b);

    b.stop_daemon();
    // While the daemon is down the container and its forward keep working.
    assert_eq!(http_get(SocketAddr::from(([127, 0, 0, 1], port))).expect("while down"), "still-here\n");
    b.spawn_daemon();
    assert_eq!(b.status("web"), "running");
    assert_eq!(ip_of(&b, "web"), ip);
    assert_eq!(http_get(SocketAddr::from((ip, 80))).expect("direct"), "still-here\n");
    assert_eq!(http_get(SocketAddr::from(([127, 0, 0, 1], port))).expect("forward"), "still-here\n");
    let after = table(&b);
    assert_eq!(after, before, "the table is rewritten whole, not added to");
    assert_eq!(after.matches("masquerade").count(), 2, "{after}");

    // The bridge has its address once.
    let out = Command::new("ip").args(["-o", "-4", "addr", "show", "dev", &b.bridge]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);

    // A crash too: the next daemon finds it all again.
    b.crash_daemon();
    b.spawn_daemon();
    assert_eq!(http_get(SocketAddr::from(([127, 0, 0, 1], port))).expect("after crash"), "still-here\n");
    assert_eq!(table(&b), before);
}

#[test]
fn bad_network_and_ports_values_are_refused_and_change_nothing() {
    let b = Bocker::start("net-bad");
    let img = b.import("");
    b.configure("c", &img, "true");
    for (file, value, errno) in [
        ("network", "bogus", libc::EINVAL),
        ("network", "bridge none", libc::EINVAL),
        ("network", "\n", libc::EINVAL),
        ("ports", "eighty:80", libc::EINVAL),
        ("ports", "70000:80", libc::EINVAL),
        ("ports", "8080:80/sctp", libc::EINVAL),
        ("ports", "8080:80\n8080:81", libc::EINVAL),
        ("ports", "::1:8080:80", libc::EINVAL),
    ] {
        let e = b.write(&format!("containers/c/{file}"), value).unwrap_err();
        assert_eq!(Bocker::errno(&e), errno, "{file} <- {value:?}");
        assert!(!b.read("containers/c/error").is_empty(), "{file} <- {value:?}: no message");
    }
    assert_eq!(b.read("containers/c/network"), "bridge\n");
    assert_eq!(b.read("containers/c/ports"), "");

    // Forwards need the bridge, both ways round.
    b.write("containers/c/ports", "8080:80").expect("ports");
    let e = b.write("containers/c/network", "none").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EINVAL);
    assert!(b.read("containers/c/error").contains("need the bridge network"));
    b.write("containers/c/ports", "\n").expect("no ports (echo > ports)");
    b.write("containers/c/network", "host").expect("host");
    let e = b.write("containers/c/ports", "8080:80").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EINVAL);
    assert_eq!(b.read("containers/c/ports"), "");
}

#[test]
fn a_forward_from_0_0_0_0_is_one_from_every_local_address() {
    // Docker's `-p 0.0.0.0:8080:80` spelling: every local address, like `8080:80`, not an address of its own
    // that no connection is ever made to.
    let b = Bocker::start("net-any");
    let img = b.import("");
    let port = free_port();
    web(&b, "web", &img, "any", &format!("0.0.0.0:{port}:80"));
    assert_eq!(b.read("containers/web/ports"), format!("{port}:80/tcp\n"));
    assert_eq!(http_get_eventually(SocketAddr::from(([127, 0, 0, 1], port))), "any\n");
    let out = run_sh(&b, &img, &format!("wget -q -O- http://{}:{port}/", gateway(&b)));
    assert_eq!(out, "any\n");
    b.write("containers/web/ctl", "kill").expect("kill");
}

/// A veth pair of the host, `NAME` and `NAMEp`, deleted when dropped.
struct HostLink(String);

impl HostLink {
    fn add(name: &str) -> HostLink {
        let peer = format!("{name}p");
        let args = ["link", "add", name, "type", "veth", "peer", "name", &peer];
        let ok = Command::new("ip").args(args).status().unwrap().success();
        assert!(ok, "ip link add {name}");
        HostLink(name.to_string())
    }
}

impl Drop for HostLink {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

#[test]
fn an_address_whose_last_veth_is_still_there_is_passed_over_until_it_goes() {
    let b = Bocker::start("net-linger");
    let img = b.import("");
    let lowest: Ipv4Addr = format!("{}.2", b.subnet_prefix).parse().unwrap();
    let next: Ipv4Addr = format!("{}.3", b.subnet_prefix).parse().unwrap();
    // A link named as the lowest address's host end: what a pair looks like after its container's `rm`,
    // until the kernel has freed the namespace.
    let name = bockerfs::network::veth_name(lowest);
    let lingering = HostLink::add(&name);
    b.configure("a", &img, "sleep 100");
    b.write("containers/a/ctl", "start").expect("start");
    b.wait_status("a", "running");
    assert_eq!(ip_of(&b, "a"), next, "the lingering address is passed over");
    assert!(host_links().contains(&format!(": {name}@")), "and its link is left alone: {}", host_links());
    // Control: once it is gone, the lowest is given again.
    drop(lingering);
    b.configure("b", &img, "sleep 100");
    b.write("containers/b/ctl", "start").expect("start");
    b.wait_status("b", "running");
    assert_eq!(ip_of(&b, "b"), lowest);
}
