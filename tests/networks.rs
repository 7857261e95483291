//! Networks of our own (`networks/NAME`): each its own bridge, subnet and rules, containers on one or
//! several, names that resolve through the DNS server on each network's gateway, and only there.
//!
//! Every test has its own default bridge and subnet, and its networks' subnets come from a pool of its own
//! (see tests/common). Traffic goes only between the host and its containers, and names the networks' DNS
//! servers don't own go to a fake upstream on loopback in this process (or to loopback's closed port 9).

mod common;

use std::net::{Ipv4Addr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, Bocker};

/// The addresses of `ip`, one per network.
fn ips_of(b: &Bocker, name: &str) -> Vec<Ipv4Addr> {
    let text = b.read(&format!("containers/{name}/ip"));
    text.lines().map(|l| l.parse().unwrap_or_else(|_| panic!("ip of {name}: '{text}'"))).collect()
}

/// A web server on port 80 of each of its addresses, saying `says`, with `aliases`.
fn web(b: &Bocker, img: &str, name: &str, networks: &str, says: &str, aliases: &str) {
    b.configure(
        name,
        img,
        &format!("sh -c 'mkdir -p /pub && echo {says} > /pub/index.html && exec httpd -f -p 80 -h /pub'"),
    );
    b.write(&format!("containers/{name}/networks"), networks).expect("networks");
    b.write(&format!("containers/{name}/aliases"), aliases).expect("aliases");
    b.write(&format!("containers/{name}/ctl"), "start").expect("start");
    b.wait_status(name, "running");
}

/// Runs `script` in a new container on `networks` to its exit; returns its logs.
fn client(b: &Bocker, img: &str, name: &str, networks: &str, script: &str) -> String {
    b.configure(name, img, &format!("sh -c '{script}'"));
    b.write(&format!("containers/{name}/networks"), networks).expect("networks");
    b.write(&format!("containers/{name}/ctl"), "start").expect("start");
    b.wait_status(name, "exited");
    b.read(&format!("containers/{name}/logs"))
}

/// `fetch URL` lines: the page, or `failed URL`.
const FETCH: &str = "fetch() { timeout 3 wget -q -O- \"$1\" 2>/dev/null || echo \"failed $1\"; }";

/// `resolve NAME` lines: `NAME ADDRESS` or `NAME none` (busybox's nslookup asks the resolv.conf server).
const RESOLVE: &str =
    "resolve() { a=$(nslookup \"$1\" 2>/dev/null | sed -n \"/^Name:/,\\$ s/^Address:* *//p\" | head -n1); \
                       echo \"$1 ${a:-none}\"; }";

fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

fn nft_table_exists(family: &str, table: &str) -> bool {
    Command::new("nft").args(["list", "table", family, table]).output().is_ok_and(|o| o.status.success())
}

/// A DNS server on 127.0.0.1 that answers `upstream.test` with 192.0.2.7 and every other name with
/// NXDOMAIN: what the networks' servers forward to. Counts the queries it saw.
struct FakeUpstream {
    addr: String,
    stop: Arc<AtomicBool>,
    seen: Arc<std::sync::Mutex<Vec<String>>>,
}

impl FakeUpstream {
    fn start() -> FakeUpstream {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
        let addr = socket.local_addr().expect("addr").to_string();
        let (stop, seen) = (Arc::new(AtomicBool::new(false)), Arc::new(std::sync::Mutex::new(Vec::new())));
        let (flag, names) = (Arc::clone(&stop), Arc::clone(&seen));
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !flag.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
                let Some((name, end)) = question(&buf[..n]) else { continue };
                names.lock().unwrap().push(name.clone());
                let mut reply = buf[..end + 4].to_vec();
                reply[2] = 0x81 | (buf[2] & 0x01); // QR, RD copied
                let qtype = u16::from_be_bytes([buf[end], buf[end + 1]]);
                if name == "upstream.test" && qtype == 1 {
                    reply[3] = 0x80;
                    reply[6..8].copy_from_slice(&1u16.to_be_bytes());
                    reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 192, 0, 2, 7]);
                } else if name == "upstream.test" {
                    reply[3] = 0x80;
                } else {
                    reply[3] = 0x83; // NXDOMAIN
                }
                reply[8..12].fill(0);
                let _ = socket.send_to(&reply, from);
            }
        });
        FakeUpstream { addr, stop, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The question's name of a DNS query and where its type starts.
fn question(msg: &[u8]) -> Option<(String, usize)> {
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = *msg.get(at)? as usize;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(msg.get(at + 1..at + 1 + len)?).to_lowercase());
        at += 1 + len;
    }
    (msg.len() >= at + 5).then(|| (labels.join("."), at + 1))
}

#[test]
fn two_networks_resolve_and_reach_only_their_own() {
    let upstream = FakeUpstream::start();
    let b = Bocker::start_with_env("net-two", &[("BOCKER_DNS_UPSTREAM", &upstream.addr)]);
    let img = b.import("");
    for n in ["front", "back"] {
        std::fs::create_dir(b.path(&format!("networks/{n}"))).expect("mkdir network");
    }
    let (front, back) = (b.read("networks/front/subnet"), b.read("networks/back/subnet"));
    assert_ne!(front, back);
    let pool = b.subnet_prefix.replace("10.213.", "10.214.");
    assert!(front.starts_with(&pool) && back.starts_with(&pool), "{front} {back} from {pool}.0/24");
    let front_bridge = b.read("networks/front/bridge").trim().to_string();
    assert!(link_exists(&front_bridge), "{front_bridge}");
    let listed: Vec<String> = std::fs::read_dir(b.path("networks"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for n in ["bridge", "front", "back"] {
        assert!(listed.contains(&n.to_string()), "{listed:?}");
    }

    web(&b, &img, "web", "front", "front-web", "www\n");
    // db publishes a port: reached from the host and, through its own gateway, from another network.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    b.configure("db", &img, "sh -c 'mkdir -p /pub && echo back-db > /pub/index.html && exec httpd -f -p 80 -h /pub'");
    b.write("containers/db/networks", "back").expect("networks");
    b.write("containers/db/ports", &format!("{port}:80")).expect("ports");
    b.write("containers/db/ctl", "start").expect("start");
    b.wait_status("db", "running");
    let (web_ip, db_ip) = (ips_of(&b, "web")[0], ips_of(&b, "db")[0]);
    let gateway = b.read("networks/front/gateway");
    assert!(gateway.trim().parse::<Ipv4Addr>().is_ok(), "{gateway}");
    // The host reaches every network: a container's own address, and a published port on loopback.
    let get = |addr: String| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(5)).expect(&addr);
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body
    };
    assert!(get(format!("{web_ip}:80")).ends_with("front-web\n"));
    assert!(get(format!("127.0.0.1:{port}")).ends_with("back-db\n"));

    // On front: web by name, address and alias; db neither by name nor by address; a name the networks
    // don't own through the upstream.
    let out = client(
        &b,
        &img,
        "c1",
        "front",
        &format!(
            "{FETCH}; {RESOLVE}; cat /etc/resolv.conf; resolve web; resolve db; resolve upstream.test; \
             fetch http://web/; fetch http://{web_ip}/; fetch http://db/; fetch http://{db_ip}/; \
             fetch http://{gw}:{port}/",
            gw = gateway.trim()
        ),
    );
    assert!(out.contains(&format!("nameserver {}", gateway.trim())), "{out}");
    assert!(out.contains(&format!("web {web_ip}\n")), "{out}");
    assert!(out.contains("db none\n"), "db is on another network: {out}");
    assert!(out.contains("upstream.test 192.0.2.7\n"), "forwarded to the upstream: {out}");
    assert_eq!(out.matches("front-web\n").count(), 2, "by name and by address: {out}");
    assert!(out.contains("failed http://db/\n"), "{out}");
    assert!(out.contains(&format!("failed http://{db_ip}/\n")), "no forward between networks: {out}");
    assert!(upstream.seen().iter().any(|n| n == "upstream.test"), "{:?}", upstream.seen());
    assert_eq!(out.matches("back-db\n").count(), 1, "only through db's published port on front's gateway: {out}");

    // On both: an interface on each, in order, and both servers by name (the alias too).
    let out = client(
        &b,
        &img,
        "both",
        "front\nback\n",
        &format!(
            "{FETCH}; cat /sys/class/net/eth0/address /sys/class/net/eth1/address; fetch http://www/; fetch http://db/"
        ),
    );
    let ips = ips_of(&b, "both");
    assert_eq!(ips.len(), 2, "{ips:?}");
    assert!(ips[0].to_string().starts_with(&front[..front.rfind('.').unwrap()]), "eth0 on front: {ips:?} {front}");
    assert!(out.contains("front-web\n") && out.contains("back-db\n"), "{out}");
    assert_eq!(b.read("containers/both/networks"), "front\nback\n");

    // A container started later is resolved by one already running, which asks again and again.
    b.configure("watcher", &img, &format!("sh -c '{RESOLVE}; while :; do resolve late; sleep 0.2; done'"));
    b.write("containers/watcher/networks", "front").expect("networks");
    b.write("containers/watcher/ctl", "start").expect("start");
    b.wait_status("watcher", "running");
    eventually(
        Duration::from_secs(10),
        || b.read("containers/watcher/logs"),
        || b.read("containers/watcher/logs").contains("late none"),
    );
    web(&b, &img, "late", "front", "late", "");
    let late_ip = ips_of(&b, "late")[0];
    eventually(
        Duration::from_secs(5),
        || b.read("containers/watcher/logs"),
        || b.read("containers/watcher/logs").contains(&format!("late {late_ip}")),
    );
    // Stopped: no longer resolved.
    b.write("containers/late/ctl", "stop 1").expect("stop");
    b.wait_status("late", "exited");
    let seen = b.read("containers/watcher/logs").len();
    eventually(
        Duration::from_secs(5),
        || b.read("containers/watcher/logs"),
        || b.read("containers/watcher/logs")[seen..].contains("late none"),
    );

    // The network's containers; rmdir is refused while any lists it.
    let on_front = b.read("networks/front/containers");
    for n in ["web", "c1", "both", "watcher", "late"] {
        assert!(on_front.lines().any(|l| l == n), "{n} in {on_front}");
    }
    let e = std::fs::remove_dir(b.path("networks/front")).unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EBUSY);
    assert!(b.read("errors").contains("network 'front' is used by container(s)"), "{}", b.read("errors"));
    assert!(link_exists(&front_bridge));
}

#[test]
fn a_network_goes_with_its_bridge_and_rules_and_bad_writes_change_nothing() {
    let b = Bocker::start("net-rm");
    let img = b.import("");
    std::fs::create_dir(b.path("networks/apps")).expect("mkdir");
    std::fs::create_dir(b.path("networks/other")).expect("mkdir");
    let bridge = b.read("networks/apps/bridge").trim().to_string();
    let table = bockerfs::network::firewall::table_name(&bridge);
    assert!(link_exists(&bridge) && nft_table_exists("ip", &table) && nft_table_exists("bridge", &table));
    // Port 53 of the networks' gateways is never forwarded, whatever a container publishes.
    let gateways = [b.read("networks/apps/gateway"), b.read("networks/other/gateway")];
    let default_table = bockerfs::network::firewall::table_name(&b.bridge);
    let rules = Command::new("nft").args(["list", "table", "ip", &default_table]).output().unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout).into_owned();
    let kept = rules.lines().find(|l| l.contains("th dport 53 return")).unwrap_or_else(|| panic!("{rules}"));
    assert!(gateways.iter().all(|g| kept.contains(g.trim())), "{kept}");

    // Refused, each with its errno, and nothing changed.
    let errno = |r: std::io::Result<()>| Bocker::errno(&r.unwrap_err());
    assert_eq!(errno(std::fs::create_dir(b.path("networks/apps"))), libc::EEXIST);
    assert_eq!(errno(std::fs::create_dir(b.path("networks/bridge"))), libc::EEXIST);
    assert_eq!(errno(std::fs::create_dir(b.path("networks/none"))), libc::EINVAL);
    assert_eq!(errno(std::fs::create_dir(b.path("networks/Bridge"))), libc::EINVAL);
    assert_eq!(errno(std::fs::create_dir(b.path("networks/default"))), libc::EINVAL);
    assert_eq!(errno(std::fs::create_dir(b.path("networks/-x"))), libc::EINVAL);
    assert_eq!(errno(std::fs::remove_dir(b.path("networks/bridge"))), libc::EPERM);
    assert_eq!(errno(std::fs::remove_dir(b.path("networks/nope"))), libc::ENOENT);
    let other = b.read("networks/other/subnet");
    assert_eq!(errno(b.write("networks/apps/subnet", other.trim())), libc::EADDRINUSE);
    assert!(b.read("errors").contains("overlaps network 'other'"), "{}", b.read("errors"));
    let default = format!("{}.0/24", b.subnet_prefix);
    assert_eq!(errno(b.write("networks/apps/subnet", &default)), libc::EADDRINUSE);
    assert_eq!(errno(b.write("networks/apps/subnet", "10.0.0.0/31")), libc::EINVAL);
    for special in ["127.0.0.0/24", "224.0.0.0/24", "169.254.0.0/16"] {
        assert_eq!(errno(b.write("networks/apps/subnet", special)), libc::EINVAL, "{special}");
    }
    assert_eq!(errno(b.write("networks/bridge/subnet", "10.77.0.0/24")), libc::EPERM);
    b.configure("c", &img, "true");
    assert_eq!(errno(b.write("containers/c/networks", "apps\nnope\n")), libc::ENOENT);
    assert!(b.read("containers/c/error").contains("no network named 'nope'"), "{}", b.read("containers/c/error"));
    assert_eq!(errno(b.write("containers/c/networks", "apps\napps\n")), libc::EINVAL);
    assert_eq!(b.read("containers/c/networks"), "bridge\n");

    // A subnet of its own, while no container lists it: the bridge takes the new gateway.
    let mine = format!("{}.128/27", b.subnet_prefix.replace("10.213.", "10.214."));
    b.write("networks/apps/subnet", &mine).expect("subnet");
    assert_eq!(b.read("networks/apps/subnet").trim(), mine);
    let gateway = b.read("networks/apps/gateway").trim().to_string();
    assert_eq!(gateway, mine.replace(".128/27", ".129"));
    let addr = Command::new("ip").args(["-4", "addr", "show", "dev", &bridge]).output().unwrap();
    assert!(String::from_utf8_lossy(&addr.stdout).contains(&format!("{gateway}/27")), "{addr:?}");

    // Listed by a container: the subnet stays and the network too.
    b.write("containers/c/networks", "apps\n").expect("networks");
    assert_eq!(errno(b.write("networks/apps/subnet", &other)), libc::EBUSY);
    assert_eq!(errno(std::fs::remove_dir(b.path("networks/apps"))), libc::EBUSY);
    assert_eq!(b.read("networks/apps/containers"), "c\n");
    // In another mode it still lists it (it may go back to bridge): still in use.
    b.write("containers/c/network", "host").expect("network host");
    assert_eq!(errno(std::fs::remove_dir(b.path("networks/apps"))), libc::EBUSY);
    b.write("containers/c/network", "bridge").expect("network bridge");

    // Once it lists another: gone, with its bridge and both tables.
    b.write("containers/c/networks", "other\n").expect("networks");
    std::fs::remove_dir(b.path("networks/apps")).expect("rmdir");
    assert!(!b.path("networks/apps").exists());
    assert!(!link_exists(&bridge), "{bridge} is gone");
    assert!(!nft_table_exists("ip", &table) && !nft_table_exists("bridge", &table), "{table} is gone");
    assert!(b.read("events").contains("network apps remove"), "{}", b.read("events"));
}

#[test]
fn networks_names_and_addresses_outlive_a_daemon_restart_and_a_container_restart() {
    let mut b = Bocker::start("net-restart");
    let img = b.import("");
    std::fs::create_dir(b.path("networks/apps")).expect("mkdir");
    let (subnet, bridge) = (b.read("networks/apps/subnet"), b.read("networks/apps/bridge"));
    web(&b, &img, "web", "apps", "hello", "");
    let web_ip = ips_of(&b, "web");

    b.stop_daemon();
    b.spawn_daemon();
    assert_eq!((b.read("networks/apps/subnet"), b.read("networks/apps/bridge")), (subnet.clone(), bridge));
    let probe = format!("{FETCH}; {RESOLVE}; resolve web; fetch http://web/");
    let out = client(&b, &img, "c1", "apps", &probe);
    assert!(out.contains(&format!("web {}\n", web_ip[0])) && out.contains("hello\n"), "{out}");

    // Web restarted: the same address, its name resolved again.
    b.write("containers/web/ctl", "restart 1").expect("restart");
    b.wait_status("web", "running");
    assert_eq!(ips_of(&b, "web"), web_ip);
    b.write("containers/c1/ctl", "start").expect("start");
    b.wait_status("c1", "exited");
    let out = b.read("containers/c1/logs");
    assert_eq!(out.matches("hello\n").count(), 2, "{out}");
}

#[test]
fn the_cli_makes_networks_and_runs_on_them_with_aliases() {
    let b = Bocker::start("net-cli");
    let img = b.import("");
    let ok = |args: &[&str]| {
        let out = b.cli(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mine = format!("{}.64/27", b.subnet_prefix.replace("10.213.", "10.214."));
    ok(&["network", "create", "--subnet", &mine, "shop"]);
    let listed = ok(&["network", "ls"]);
    assert!(listed.lines().any(|l| l.starts_with("shop ") && l.contains(&mine)), "{listed}");
    assert!(listed.lines().any(|l| l.starts_with("bridge ")), "{listed}");
    ok(&[
        "run",
        "-d",
        "--name",
        "db",
        "--network",
        "shop",
        "--network-alias",
        "database",
        &img,
        "sh",
        "-c",
        "mkdir /p && echo stock > /p/index.html && exec httpd -f -p 80 -h /p",
    ]);
    b.wait_status("db", "running");
    assert_eq!(b.read("containers/db/aliases"), "database\n");
    let out = ok(&["run", "--network", "shop", &img, "timeout", "5", "wget", "-q", "-O-", "http://database/"]);
    assert_eq!(out, "stock\n");
    let inspect = ok(&["network", "inspect", "shop"]);
    assert!(inspect.contains("\"db\"") && inspect.contains(&mine), "{inspect}");
    let refused = b.cli(&["network", "rm", "shop"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("used by container"), "{refused:?}");
    let bad = b.cli(&["run", "--network", "none", "--network", "shop", &img, "true"]);
    assert!(!bad.status.success());
}
