//! Spare monitors (`--spares`): monitors the daemon starts ahead, each in pid and network namespaces of
//! its own (and on v1 with its container's process already in groups of its own), taken by starts with
//! bridge networking. What a user can check: the container's monitor is a process that was there before
//! the start; the container is in its own groups, with its limits, on its own network; the pool fills
//! again; a spare that died is passed over; the daemon's stop leaves no spare process and no group.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::time::Duration;

use common::cgroup::{is_v1, kernel};
use common::{cgroup_roots, Bocker};

/// The field `n` (from 1, as `man 5 proc` counts) of `/proc/PID/stat`, if the process is there.
fn stat_field(pid: i32, n: usize) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(n - 3).map(String::from)
}

/// The processes started as this daemon's spares (`bocker __monitor --spare ... STATE_DIR`): their
/// monitors, and on v1 each one's container process forked ahead.
fn spare_processes(b: &Bocker) -> BTreeSet<i32> {
    let state = b.root.join("state");
    let mut pids = BTreeSet::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|c| *c == 0).filter(|a| !a.is_empty()).collect();
        let ours = args.get(1) == Some(&&b"__monitor"[..])
            && args.contains(&&b"--spare"[..])
            && args.last() == Some(&state.as_os_str().as_encoded_bytes());
        if ours {
            pids.insert(pid);
        }
    }
    pids
}

/// The spare monitors among them (the processes whose parent is not one of them) that the daemon has
/// said are ready (a spare's first process, before it detaches, is none), less `claimed` ones.
fn ready_spares(b: &Bocker, claimed: &BTreeSet<i32>) -> BTreeSet<i32> {
    let all = spare_processes(b);
    let said = said_ready(b);
    let parent = |p: i32| stat_field(p, 4).and_then(|f| f.parse::<i32>().ok()).unwrap_or(0);
    all.iter().copied().filter(|p| !all.contains(&parent(*p)) && !claimed.contains(p) && said.contains(p)).collect()
}

/// The pids of the daemon's log lines `spare monitor ready pid=N` (its colours taken out).
fn said_ready(b: &Bocker) -> BTreeSet<i32> {
    let plain = |l: &str| {
        let mut out = String::new();
        let mut chars = l.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                chars.by_ref().find(|c| *c == 'm');
            } else {
                out.push(c);
            }
        }
        out
    };
    b.daemon_log()
        .lines()
        .filter(|l| l.contains("spare monitor ready"))
        .filter_map(|l| plain(l).split_once("pid=").and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok()))
        .collect()
}

fn wait_for_spares(b: &Bocker, n: usize, claimed: &BTreeSet<i32>) -> BTreeSet<i32> {
    common::eventually(
        Duration::from_secs(20),
        || format!("{n} spare monitors ready; there are {:?}", ready_spares(b, claimed)),
        || ready_spares(b, claimed).len() == n,
    );
    ready_spares(b, claimed)
}

/// The groups below this daemon's cgroup parent, in every hierarchy, whose name starts with `prefix`.
fn groups_named(b: &Bocker, prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    for root in cgroup_roots() {
        let Ok(entries) = fs::read_dir(root.join(&b.cgroup_parent)) else { continue };
        for e in entries.flatten().filter(|e| e.path().is_dir()) {
            if e.file_name().to_string_lossy().starts_with(prefix) {
                found.push(e.path().display().to_string());
            }
        }
    }
    found
}

/// The body of `GET /` from `addr`, in one try.
fn http_get(addr: std::net::SocketAddr) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    Ok(reply)
}

/// `ip -o link show NAME` on the host, if there is such a link.
fn host_link(name: &str) -> Option<String> {
    let out = std::process::Command::new("ip").args(["-o", "link", "show", name]).output().unwrap();
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The host end of the veth pair made ahead for spare `pid`.
fn spare_veth(pid: i32) -> String {
    format!("vs{pid:x}")
}

/// The container's monitor: its process's parent.
fn monitor_of(b: &Bocker, name: &str) -> i32 {
    let pid: i32 = b.read(&format!("containers/{name}/pid")).trim().parse().expect("pid");
    stat_field(pid, 4).and_then(|f| f.parse().ok()).expect("parent")
}

#[test]
fn a_start_takes_a_spare_and_the_pool_fills_again() {
    let mut b = Bocker::start("spares");
    let img = b.import("");
    let before = wait_for_spares(&b, 2, &BTreeSet::new());
    if is_v1() {
        // Each waits with its container's process in groups of its own, one per v1 hierarchy.
        let groups = groups_named(&b, "spare-");
        assert!(!groups.is_empty(), "no spare groups: {groups:?}");
        for g in &groups {
            let procs =
                fs::read_to_string(format!("{g}/cgroup.procs")).unwrap_or_else(|e| panic!("{g}: {e} (of {groups:?})"));
            assert_eq!(procs.lines().count(), 1, "{g}: {procs}");
        }
    }

    // Each has its `eth0` made ahead: the host end down, on no bridge.
    for spare in &before {
        let veth = spare_veth(*spare);
        common::eventually(
            Duration::from_secs(10),
            || format!("{veth}: {:?}", host_link(&veth)),
            || host_link(&veth).is_some(),
        );
        let link = host_link(&veth).unwrap();
        assert!(link.contains("state DOWN") && !link.contains(" master "), "{link}");
    }

    b.configure(
        "web",
        &img,
        "sh -c 'mkdir -p /www && echo from-a-spare > /www/index.html && exec httpd -f -p 80 -h /www'",
    );
    b.write("containers/web/memory.max", "64M").unwrap();
    b.write("containers/web/ctl", "start").unwrap();
    let monitor = monitor_of(&b, "web");
    assert!(before.contains(&monitor), "the monitor {monitor} is none of the spares ready before: {before:?}");

    // In its own groups, as a container started without a spare is, with its limit.
    let pid = b.read("containers/web/pid").trim().to_string();
    let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let own = format!(":/{}/ctr-web", b.cgroup_parent);
    if is_v1() {
        for controller in ["memory", "pids", "cpu", "freezer"] {
            let line =
                cgroups.lines().find(|l| l.split(':').nth(1).is_some_and(|c| c.split(',').any(|c| c == controller)));
            assert!(line.is_some_and(|l| l.ends_with(&own)), "{controller}: {cgroups}");
        }
        assert_eq!(kernel(&b, "memory", "web", "memory.limit_in_bytes"), (64u64 << 20).to_string());
    } else {
        assert!(cgroups.lines().any(|l| l.starts_with("0::") && l.ends_with(&own)), "{cgroups}");
        assert_eq!(kernel(&b, "", "web", "memory.max"), (64u64 << 20).to_string());
    }
    // Pause freezes it there (its freezer group is the renamed one).
    b.write("containers/web/ctl", "pause").unwrap();
    assert_eq!(b.status("web"), "paused");
    match is_v1() {
        true => assert_eq!(kernel(&b, "freezer", "web", "freezer.state"), "FROZEN"),
        false => assert!(kernel(&b, "", "web", "cgroup.events").contains("frozen 1")),
    }
    b.write("containers/web/ctl", "unpause").unwrap();

    // On the bridge with its own address, in a network namespace apart from the host's and the spares'.
    let ip = b.read("containers/web/ip").trim().to_string();
    assert!(ip.starts_with(&format!("{}.", b.subnet_prefix)), "ip {ip}");
    let addrs =
        std::process::Command::new("nsenter").args(["-t", &pid, "-n", "ip", "-4", "-o", "addr"]).output().unwrap();
    let addrs = String::from_utf8_lossy(&addrs.stdout);
    assert!(addrs.contains(&format!("inet {ip}/24")), "{addrs}");
    // The pair made ahead is the container's now: its host end under the address's name on the bridge,
    // its own end with the address's MAC.
    assert_eq!(host_link(&spare_veth(monitor)), None, "the spare's veth kept its name");
    let octets: Vec<u8> = ip.split('.').map(|o| o.parse().unwrap()).collect();
    let veth = format!("vb{:02x}{:02x}{:02x}{:02x}", octets[0], octets[1], octets[2], octets[3]);
    let link = host_link(&veth).unwrap_or_else(|| panic!("no {veth} on the host"));
    assert!(link.contains(&format!(" master {} ", b.bridge)) && link.contains("state UP"), "{link}");
    let inside = std::process::Command::new("nsenter")
        .args(["-t", &pid, "-n", "ip", "-o", "link", "show", "eth0"])
        .output()
        .unwrap();
    let mac = format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", octets[0], octets[1], octets[2], octets[3]);
    assert!(String::from_utf8_lossy(&inside.stdout).contains(&format!("link/ether {mac} ")), "{inside:?}");
    let addr: std::net::SocketAddr = format!("{ip}:80").parse().unwrap();
    common::eventually(
        Duration::from_secs(10),
        || format!("the host reaches {addr}: {:?}", http_get(addr)),
        || http_get(addr).is_ok_and(|body| body.ends_with("from-a-spare\n")),
    );

    // The pool is full again, with new spares.
    let claimed = BTreeSet::from([monitor]);
    let after = wait_for_spares(&b, 2, &claimed);
    assert!(!after.contains(&monitor), "{after:?}");

    b.write("containers/web/ctl", "stop").unwrap();
    fs::remove_dir(b.path("containers/web")).unwrap();
    assert_eq!(groups_named(&b, "ctr-"), Vec::<String>::new());

    // Its stop ends every spare and removes their groups.
    let all = spare_processes(&b);
    b.stop_daemon();
    common::eventually(
        Duration::from_secs(10),
        || {
            format!(
                "spare processes left: {:?}",
                all.iter().filter(|p| stat_field(**p, 3).is_some()).collect::<Vec<_>>()
            )
        },
        || all.iter().all(|p| stat_field(*p, 3).is_none_or(|s| s == "Z")),
    );
    assert_eq!(groups_named(&b, "spare-"), Vec::<String>::new());
    // Their veths went with their namespaces.
    for spare in &after {
        let veth = spare_veth(*spare);
        common::eventually(
            Duration::from_secs(10),
            || format!("{veth} left: {:?}", host_link(&veth)),
            || host_link(&veth).is_none(),
        );
    }
}

#[test]
fn a_spare_that_died_is_passed_over_and_replaced() {
    let mut b = Bocker::start("spares-dead");
    let img = b.import("");
    let before = wait_for_spares(&b, 2, &BTreeSet::new());
    for pid in &before {
        // SAFETY: kill(2) on a pid this test found as one of its daemon's spares.
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    let id = b.run_to_exit(&format!("{img} sh -c 'echo ran; cat /proc/self/cgroup'"));
    let logs = b.read(&format!("containers/{id}/logs"));
    assert!(logs.starts_with("ran\n"), "{logs}");
    assert_eq!(b.read(&format!("containers/{id}/exit_code")), "0\n");
    // Both dead ones are taken in turn, each passed over for a monitor of its own.
    let id = b.run_to_exit(&format!("{img} echo again"));
    assert_eq!(b.read(&format!("containers/{id}/logs")), "again\n");
    let now = wait_for_spares(&b, 2, &BTreeSet::new());
    assert!(now.is_disjoint(&before), "{now:?} {before:?}");
    assert!(!b.daemon_log().contains("panicked"), "{}", b.daemon_log());
    b.stop_daemon();
    assert_eq!(groups_named(&b, "spare-"), Vec::<String>::new());
}

#[test]
fn no_spares_with_zero_and_starts_still_work() {
    let b = Bocker::start_with_env("spares-none", &[("BOCKER_SPARES", "0")]);
    let img = b.import("");
    let id = b.run_to_exit(&format!("{img} echo fresh"));
    assert_eq!(b.read(&format!("containers/{id}/logs")), "fresh\n");
    // Its monitor was started for it, and no spare ever was (the first test finds them the same way).
    assert_eq!(spare_processes(&b), BTreeSet::new());
    assert_eq!(groups_named(&b, "spare-"), Vec::<String>::new());
}

/// A start on a spare (whose container process waits forked ahead, on v1) runs its command only at the
/// daemon's go, once the network is attached: a start whose network can't be attached (its bridge was
/// deleted under the daemon) fails and never ran a thing, while the same command on a network that works
/// does run.
#[test]
fn a_start_whose_network_fails_never_runs_its_command() {
    let b = Bocker::start("spares-nogo");
    let img = b.import("");
    fs::create_dir(b.path("networks/gone")).unwrap();
    let bridge = b.read("networks/gone/bridge").trim().to_string();
    let _ = wait_for_spares(&b, 2, &BTreeSet::new());
    let deleted = std::process::Command::new("ip").args(["link", "del", &bridge]).status().unwrap();
    assert!(deleted.success(), "ip link del {bridge}");
    for (name, network, runs) in [("lost", Some("gone"), false), ("fine", None, true)] {
        b.configure(name, &img, "touch /ran");
        if let Some(network) = network {
            b.write(&format!("containers/{name}/networks"), network).unwrap();
        }
        let started = b.write(&format!("containers/{name}/ctl"), "start");
        assert_eq!(started.is_ok(), runs, "{name}: {started:?}");
        if runs {
            b.wait_status(name, "exited");
        } else {
            assert_eq!(b.status(name), "created", "{name}");
            // Through a spare.
            let log = b.daemon_log();
            let claimed = format!("containers/{name}");
            assert!(log.lines().any(|l| l.contains("claimed a spare monitor") && l.contains(&claimed)), "{log}");
            assert!(
                b.read(&format!("containers/{name}/error")).contains(&bridge),
                "{}",
                b.read(&format!("containers/{name}/error"))
            );
            // Its process was gone with its monitor; give a late exec every chance to show.
            std::thread::sleep(Duration::from_millis(300));
        }
        let ran = b.root.join("store/containers").join(name).join("ran").exists();
        assert_eq!(ran, runs, "{name}: the command ran: {ran}");
    }
}
