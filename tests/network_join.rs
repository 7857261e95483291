//! A container's own `/etc/hosts` lines (`extra_hosts`) and nameservers (`dns`), and `network
//! container:NAME`: one container in another's network namespace, on a real bridge with real namespaces.
//!
//! Every test has its own bridge and subnet (see tests/common). Traffic goes only between the host and its
//! containers, or inside a container's namespace (its loopback).

mod common;

use std::net::Ipv4Addr;

use common::Bocker;

fn ip_of(b: &Bocker, name: &str) -> Ipv4Addr {
    let text = b.read(&format!("containers/{name}/ip"));
    text.trim().parse().unwrap_or_else(|_| panic!("ip of {name}: '{text}'"))
}

/// Starts `name` and waits for it to have exited; returns its logs.
fn start_to_exit(b: &Bocker, name: &str) -> String {
    b.write(&format!("containers/{name}/ctl"), "start").expect("start");
    b.wait_status(name, "exited");
    b.read(&format!("containers/{name}/logs"))
}

/// A web server on port 80 of its address and one on 127.0.0.1:8080, each saying where it is.
fn web(b: &Bocker, img: &str) {
    b.configure(
        "web",
        img,
        "sh -c 'mkdir -p /pub /lo && echo on-eth0 > /pub/index.html && echo on-loopback > /lo/index.html && \
         httpd -p 80 -h /pub && exec httpd -f -p 127.0.0.1:8080 -h /lo'",
    );
    b.write("containers/web/ctl", "start").expect("start web");
    b.wait_status("web", "running");
}

#[test]
fn extra_hosts_and_dns_are_in_the_containers_etc_files() {
    let b = Bocker::start("net-extra");
    let img = b.import("");
    web(&b, &img);
    let web_ip = ip_of(&b, "web");
    b.configure(
        "client",
        &img,
        "sh -c 'cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; \
         for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O- http://db/ && break; sleep 0.3; done'",
    );
    b.write("containers/client/extra_hosts", &format!("db:{web_ip}\nv6:[fd00::1]\n")).expect("extra_hosts");
    b.write("containers/client/dns", "192.0.2.53\n2001:db8::53\n").expect("dns");
    assert_eq!(b.read("containers/client/extra_hosts"), format!("db:{web_ip}\nv6:fd00::1\n"));
    assert_eq!(b.read("containers/client/dns"), "192.0.2.53\n2001:db8::53\n");

    // A bad line is EINVAL, named in the error, and changes nothing.
    let e = b.write("containers/client/extra_hosts", "ok:10.1.2.3\nbad-line\n").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EINVAL);
    assert!(b.read("containers/client/error").contains("'bad-line'"), "{}", b.read("containers/client/error"));
    for bad in ["db:10.1.2", ":10.1.2.3", "db:host-gateway", "a b:10.1.2.3"] {
        let e = b.write("containers/client/extra_hosts", bad).unwrap_err();
        assert_eq!(Bocker::errno(&e), libc::EINVAL, "{bad}");
    }
    let e = b.write("containers/client/dns", "192.0.2.53\nresolver.example\n").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EINVAL);
    assert!(b.read("containers/client/error").contains("'resolver.example'"));
    assert_eq!(b.read("containers/client/extra_hosts"), format!("db:{web_ip}\nv6:fd00::1\n"));
    assert_eq!(b.read("containers/client/dns"), "192.0.2.53\n2001:db8::53\n");

    let out = start_to_exit(&b, "client");
    let mut parts = out.split("---\n");
    let (hosts, resolv, fetched) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap_or(""));
    assert!(hosts.starts_with("127.0.0.1\tlocalhost\n"), "{hosts}");
    assert!(hosts.ends_with(&format!("\tclient\n{web_ip}\tdb\nfd00::1\tv6\n")), "{hosts}");
    let servers: Vec<&str> = resolv.lines().filter(|l| l.starts_with("nameserver")).collect();
    assert_eq!(servers, ["nameserver 192.0.2.53", "nameserver 2001:db8::53"], "exactly these: {resolv}");
    assert_eq!(fetched, "on-eth0\n", "db resolves through /etc/hosts to web: {out}");
    let inspect = b.read("containers/client/inspect.json");
    assert!(inspect.contains(&format!("\"db:{web_ip}\"")) && inspect.contains("\"192.0.2.53\""), "{inspect}");

    // Blank is none again: the daemon's resolvers, no extra lines.
    b.write("containers/client/extra_hosts", "\n").expect("no extra_hosts");
    b.write("containers/client/dns", "\n").expect("no dns");
    b.write("containers/client/cmd", "sh -c 'echo second-run; cat /etc/hosts; cat /etc/resolv.conf'").expect("cmd");
    let out = start_to_exit(&b, "client");
    let (_, second) = out.split_once("second-run\n").expect("the second run's output");
    assert!(second.ends_with("\tclient\n") || second.contains("\tclient\nnameserver"), "{second}");
    assert!(!second.contains("\tdb\n") && !second.contains("192.0.2.53"), "{second}");

    // Fixed while it runs, as the other settings.
    b.configure("busy", &img, "sleep 100");
    b.write("containers/busy/ctl", "start").expect("start");
    for (file, value) in [("extra_hosts", "x:10.0.0.9"), ("dns", "10.0.0.9")] {
        let e = b.write(&format!("containers/busy/{file}"), value).unwrap_err();
        assert_eq!(Bocker::errno(&e), libc::EBUSY, "{file}");
    }
}

#[test]
fn a_container_joins_another_ones_network_namespace() {
    let b = Bocker::start("net-join");
    let img = b.import("");
    web(&b, &img);
    let web_ip = ip_of(&b, "web");

    b.configure(
        "side",
        &img,
        "sh -c 'for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O- http://127.0.0.1:8080/ && break; sleep 0.3; done; \
         ip -o -4 addr show eth0; cat /etc/hosts'",
    );
    b.write("containers/side/network", "container:web").expect("network container:web");
    assert_eq!(b.read("containers/side/network"), "container:web\n");
    // Ports, extra_hosts and dns are the joined container's business.
    for (file, value) in [("ports", "8081:80"), ("extra_hosts", "a:10.1.2.3"), ("dns", "192.0.2.53")] {
        let e = b.write(&format!("containers/side/{file}"), value).unwrap_err();
        assert_eq!(Bocker::errno(&e), libc::EINVAL, "{file}");
    }
    let out = start_to_exit(&b, "side");
    assert!(out.starts_with("on-loopback\n"), "web's 127.0.0.1:8080 from the joiner: {out}");
    assert!(out.contains(&format!("inet {web_ip}/")), "web's eth0 and address: {out}");
    assert!(out.contains(&format!("{web_ip}\tweb\n")), "web's /etc/hosts: {out}");
    assert_eq!(b.read("containers/side/ip"), "", "no address of its own");
    assert!(b.read("containers/side/inspect.json").contains("\"NetworkMode\": \"container:web\""));

    // The positive control: a container on its own address reaches web's eth0, never its loopback.
    b.configure(
        "other",
        &img,
        &format!(
            "sh -c 'wget -q -O- http://{web_ip}/; wget -q -O- http://127.0.0.1:8080/ || echo no-lo; \
             wget -q -O- http://{web_ip}:8080/ || echo no-8080'"
        ),
    );
    let out = start_to_exit(&b, "other");
    assert_eq!(out.lines().filter(|l| !l.starts_with("wget")).collect::<Vec<_>>(), ["on-eth0", "no-lo", "no-8080"]);

    // A joiner of a container that doesn't run does not start: ESRCH, and why.
    b.configure("stopped", &img, "true");
    b.configure("late", &img, "true");
    b.write("containers/late/network", "container:stopped").expect("network");
    let e = b.write("containers/late/ctl", "start").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::ESRCH);
    assert!(b.read("containers/late/error").contains("'stopped', which is not running"));
    assert_eq!(b.status("late"), "created");
    b.write("containers/web/ctl", "stop 1").expect("stop web");
    let e = b.write("containers/side/ctl", "start").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::ESRCH);
    b.write("containers/late/network", "container:nobody").expect("network");
    let e = b.write("containers/late/ctl", "start").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::ENOENT);

    // Not itself, not a bad name; and back to the bridge.
    for bad in ["container:late", "container:", "container:-x", "container:a/b"] {
        let e = b.write("containers/late/network", bad).unwrap_err();
        assert_eq!(Bocker::errno(&e), libc::EINVAL, "{bad}");
    }
    b.write("containers/late/network", "bridge").expect("bridge");
    b.write("containers/late/ports", "8082:80").expect("ports on the bridge");
}

#[test]
fn bocker_run_takes_add_host_dns_and_network_container() {
    let b = Bocker::start("net-join-cli");
    let img = b.import("");
    let run = b.cli(&[
        "run",
        "--add-host",
        "a:10.1.2.3",
        "--add-host",
        "b:fd00::2",
        "--dns",
        "192.0.2.9",
        &img,
        "cat /etc/hosts /etc/resolv.conf",
    ]);
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{run:?}");
    assert!(out.contains("10.1.2.3\ta\nfd00::2\tb\n"), "{out}");
    assert!(out.contains("nameserver 192.0.2.9\n"), "{out}");

    web(&b, &img);
    let run = b.cli(&["run", "--network", "container:web", &img, "wget -q -O- http://127.0.0.1:8080/"]);
    assert!(run.status.success(), "{run:?}");
    assert_eq!(String::from_utf8_lossy(&run.stdout), "on-loopback\n");
    let run = b.cli(&["run", "--network", "container:web", "-p", "8083:80", &img, "true"]);
    assert!(!run.status.success(), "ports on a joiner: {run:?}");
}

#[test]
fn a_joiner_outlives_its_targets_restart_which_gets_a_fresh_namespace() {
    let b = Bocker::start("net-join-restart");
    let img = b.import("");
    web(&b, &img);
    let web_ip = ip_of(&b, "web");
    b.configure("side", &img, "sleep 100");
    b.write("containers/side/network", "container:web").expect("network");
    b.write("containers/side/ctl", "start").expect("start side");
    b.wait_status("side", "running");
    let links = |b: &Bocker| {
        let n = b.submit("containers/side/exec", "ip -o link show").expect("exec");
        b.wait_exec("side", &n);
        b.read(&format!("containers/side/execs/{n}/logs"))
    };
    assert!(links(&b).contains(" eth0@"), "web's eth0 from the joiner: {}", links(&b));

    // web stops and starts again: it is reachable on its address, in a namespace of its own; the joiner
    // keeps running with the old namespace, whose pair went to web's new one.
    b.write("containers/web/ctl", "stop 1").expect("stop web");
    b.wait_status("web", "exited");
    assert_eq!(b.status("side"), "running");
    b.write("containers/web/ctl", "start").expect("start web again");
    b.wait_status("web", "running");
    assert_eq!(ip_of(&b, "web"), web_ip);
    let out = b.run_to_exit(&format!(
        "{img} sh -c 'for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O- http://{web_ip}/ && break; sleep 0.3; done'"
    ));
    assert_eq!(b.read(&format!("containers/{out}/logs")), "on-eth0\n");
    let left = links(&b);
    assert!(!left.contains(" eth0@"), "the joiner has loopback only now: {left}");
    b.write("containers/side/ctl", "kill").expect("kill side");
}
