//! The root's `events`: a line per event (`TIME TYPE NAME ACTION [KEY=VALUE...]`) for containers, images
//! and volumes, appended as they happen, so `tail -f events` follows it; bounded and rotated, and an open
//! reader reads on across rotations; an epoll on it wakes at a new line; the exits a restarted daemon finds
//! are told then; `bocker events` prints and follows it.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, Bocker};

/// The event lines of `text` that are about `name`, without their time.
fn about(text: &str, name: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_once(' ').map(|(_, rest)| rest))
        .filter(|rest| rest.split(' ').nth(1) == Some(name))
        .map(str::to_string)
        .collect()
}

/// Every line is `TIME TYPE NAME ACTION [KEY=VALUE...]`, TIME RFC 3339 UTC with nanoseconds, in order.
fn well_formed(text: &str) {
    let mut last = String::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        assert!(words.len() >= 4, "{line}");
        let time = words[0];
        assert!(time.len() == 30 && time.ends_with('Z') && time.as_bytes()[10] == b'T', "{line}");
        assert!(["container", "image", "volume"].contains(&words[1]), "{line}");
        assert!(words[4..].iter().all(|w| w.contains('=')), "{line}");
        assert!(time >= last.as_str(), "in time order: {line}");
        last = time.to_string();
    }
}

#[test]
fn tail_f_follows_a_containers_life_and_the_images_and_volumes() {
    let b = Bocker::start("events");
    let img = b.import("");
    let mut tail = Command::new("tail").arg("-f").arg(b.path("events")).stdout(Stdio::piped()).spawn().unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    let reader = {
        let (out, seen) = (tail.stdout.take().unwrap(), Arc::clone(&seen));
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                seen.lock().unwrap().push_str(&format!("{line}\n"));
            }
        })
    };
    let id = b.run_to_exit(&format!("{img} sh -c 'exit 3'"));
    std::fs::remove_dir(b.path(&format!("containers/{id}"))).unwrap();
    b.configure("svc", &img, "sleep 1000");
    b.write("containers/svc/ctl", "start").unwrap();
    b.write("containers/svc/ctl", "stop 1").unwrap();
    b.write("containers/svc/ctl", "start").unwrap();
    b.write("containers/svc/ctl", "kill").unwrap();
    b.wait_status("svc", "exited");
    b.write("images/tag", &format!("{img} team/app:v1")).unwrap();
    b.write("images/untag", "team/app:v1").unwrap();
    std::fs::create_dir(b.path("volumes/data")).unwrap();
    std::fs::remove_dir(b.path("volumes/data")).unwrap();
    let snap = b.submit("containers/svc/commit", "snap").unwrap();
    std::fs::remove_dir(b.path(&format!("images/{snap}"))).unwrap();
    // A restart by its policy is told between the exit and the start it makes.
    b.configure("flaky", &img, "sh -c 'exit 1'");
    b.write("containers/flaky/restart", "on-failure:1").unwrap();
    b.write("containers/flaky/ctl", "start").unwrap();

    let text = || seen.lock().unwrap().clone();
    eventually(Duration::from_secs(20), text, || {
        text().contains("volume data remove")
            && about(&text(), "flaky").iter().filter(|l| l.contains(" die ")).count() == 2
    });
    let _ = tail.kill();
    let _ = tail.wait();
    let _ = reader.join();
    let text = text();
    well_formed(&text);
    assert_eq!(
        about(&text, &id),
        [
            format!("container {id} create image={img}"),
            format!("container {id} start"),
            format!("container {id} die exit=3"),
            format!("container {id} remove")
        ],
        "{text}"
    );
    assert_eq!(
        about(&text, "svc"),
        [
            "container svc create",
            "container svc start",
            "container svc kill signal=15",
            "container svc kill signal=9",
            "container svc die exit=137",
            "container svc stop",
            "container svc start",
            "container svc kill signal=9",
            "container svc die exit=137"
        ],
        "{text}"
    );
    assert_eq!(
        about(&text, &img),
        [
            format!("image {img} import source={}", b.rootfs().display()),
            format!("image {img} tag name=docker.io/team/app:v1"),
            format!("image {img} untag name=docker.io/team/app:v1")
        ],
        "{text}"
    );
    assert_eq!(about(&text, "data"), ["volume data create", "volume data remove"]);
    assert_eq!(about(&text, &snap), [format!("image {snap} commit container=svc"), format!("image {snap} remove")]);
    assert_eq!(
        about(&text, "flaky")[1..],
        [
            "container flaky start",
            "container flaky die exit=1",
            "container flaky restart restart_count=1",
            "container flaky start",
            "container flaky die exit=1"
        ],
        "{text}"
    );
}

#[test]
fn an_open_reader_reads_on_across_rotations_and_a_new_one_sees_what_is_kept() {
    let b = Bocker::start_with_env("eventsrot", &[("BOCKER_EVENTS_MAX_SIZE", "4K"), ("BOCKER_EVENTS_MAX_FILES", "2")]);
    let mut open = std::fs::File::open(b.path("events")).unwrap();
    let mut read = String::new();
    for n in 0..60 {
        std::fs::create_dir(b.path(&format!("volumes/v{n}"))).unwrap();
        std::fs::remove_dir(b.path(&format!("volumes/v{n}"))).unwrap();
        open.read_to_string(&mut read).expect("an open reader keeps up across rotations");
    }
    well_formed(&read);
    let want: Vec<String> =
        (0..60).flat_map(|n| [format!("volume v{n} create"), format!("volume v{n} remove")]).collect();
    let got: Vec<String> = read.lines().filter_map(|l| l.split_once(' ')).map(|(_, r)| r.to_string()).collect();
    assert_eq!(got, want);
    let kept = b.read("events");
    assert!(!kept.contains("volume v0 create") && kept.contains("volume v59 remove"), "bounded: {kept}");
    assert!(read.ends_with(&kept), "a new reader sees the newest of it");
    let segments = std::fs::read_dir(b.root.join("state/events")).unwrap().flatten();
    let logs = segments.filter(|e| e.file_name().to_string_lossy().ends_with(".log")).count();
    assert!(logs <= 2, "{logs} segments kept");
    assert!(b.path("events").metadata().unwrap().len() >= kept.len() as u64, "its size never shrinks under a reader");
}

#[test]
fn epoll_wakes_at_a_new_line_and_a_restarted_daemon_tells_the_exits_it_finds() {
    let mut b = Bocker::start("eventspoll");
    let script = r#"
import os, select, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
while os.read(fd, 65536):
    pass
p = select.epoll(); p.register(fd, select.EPOLLIN)
early = p.poll(0.3)
open(sys.argv[2], "w").close()
woken = p.poll(20)
print(early, bool(woken), os.read(fd, 65536).decode().split(" ")[1:4])
"#;
    let mark = b.dir.join("polling");
    let poller = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(b.path("events"))
        .arg(&mark)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(20), || "the poller's first poll".into(), || mark.exists());
    std::fs::create_dir(b.path("volumes/late")).unwrap();
    let out = poller.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[] True ['volume', 'late', 'create\\n']\n");

    // An exit while no daemon runs is told by the next one, as it finds it.
    let img = b.import("");
    b.configure("c", &img, "sleep 1000");
    b.write("containers/c/ctl", "start").unwrap();
    let pid: i32 = b.read("containers/c/pid").trim().parse().unwrap();
    b.crash_daemon();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    b.spawn_daemon();
    let last = || about(&b.read("events"), "c").last().cloned().unwrap_or_default();
    eventually(Duration::from_secs(20), last, || last() == "container c die exit=137");
}

#[test]
fn bocker_events_prints_follows_and_filters() {
    let b = Bocker::start("eventscli");
    // A run that fails changes nothing, its events neither.
    let img = b.import("");
    let refused = b.submit("containers/run", &format!("{img} no-such-program")).unwrap_err();
    assert_eq!(Bocker::errno(&refused), libc::ENOENT);
    assert!(!b.read("events").contains("container"), "{}", b.read("events"));
    std::fs::create_dir(b.path("volumes/before")).unwrap();
    let mut cli = Command::new(common::BIN)
        .args(["events", "--filter", "type=volume", "--filter", "event=create"])
        .env("BOCKER_MOUNT", &b.mount)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(cli.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.ends_with(" volume before create"), "{first}");
    std::fs::remove_dir(b.path("volumes/before")).unwrap();
    std::fs::create_dir(b.path("volumes/after")).unwrap();
    let next = lines.next().unwrap().unwrap();
    assert!(next.ends_with(" volume after create"), "followed, the remove left out: {next}");
    let _ = cli.kill();
    let _ = cli.wait();

    let out = b.cli(&["events", "--until", "0s"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(about(&text, "before"), ["volume before create", "volume before remove"], "{text}");
    let bad = b.cli(&["events", "--filter", "colour=red"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a filter"));
}

#[test]
fn pause_unpause_restart_and_remove_are_told_and_a_paused_container_is_waited_for() {
    let b = Bocker::start("eventsverbs");
    let img = b.import("");
    b.configure("p", &img, "sleep 1000");
    b.write("containers/p/ctl", "start").unwrap();
    b.write("containers/p/ctl", "pause").unwrap();
    // Paused is running still, for wait as for docker wait.
    let eagain = r#"
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
try:
    print(os.read(fd, 100))
except BlockingIOError:
    print("EAGAIN")
"#;
    let out = Command::new("python3").args(["-c", eagain]).arg(b.path("containers/p/wait")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "EAGAIN\n");
    b.write("containers/p/ctl", "unpause").unwrap();
    b.write("containers/p/ctl", "restart 0").unwrap();
    b.write("containers/p/ctl", "remove").unwrap();
    let text = b.read("events");
    well_formed(&text);
    assert_eq!(
        about(&text, "p"),
        [
            "container p create",
            "container p start",
            "container p pause",
            "container p unpause",
            "container p kill signal=15",
            "container p kill signal=9",
            "container p die exit=137",
            "container p stop",
            "container p start",
            "container p restart",
            "container p kill signal=9",
            "container p die exit=137",
            "container p remove"
        ],
        "{text}"
    );
}
