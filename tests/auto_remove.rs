//! A container's `auto_remove` (`docker run --rm`): removed by the daemon once it has exited, also across a
//! restart; the run it started answers its exit code on the open `ctl`, and an open `logs` keeps it until
//! closed. And `containers/run` of an image not here pulls it first, as `docker run` does.

mod common;

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::time::Duration;

use common::{eventually, Bocker};

fn gone(b: &Bocker, name: &str) -> bool {
    !b.path(&format!("containers/{name}")).exists()
}

fn wait_gone(b: &Bocker, name: &str) {
    eventually(Duration::from_secs(20), || format!("{name} is still there"), || gone(b, name));
    assert!(!b.root.join(format!("store/containers/{name}")).exists(), "its rootfs went with it");
    assert!(!b.root.join(format!("state/containers/{name}")).exists(), "its record went with it");
}

#[test]
fn the_file_takes_true_or_false_before_start_only() {
    let b = Bocker::start("autorm");
    let img = b.import("");
    b.configure("c", &img, "sleep 30");
    assert_eq!(b.read("containers/c/auto_remove"), "false\n", "off by default");
    b.write("containers/c/auto_remove", "true\n").unwrap();
    assert_eq!(b.read("containers/c/auto_remove"), "true\n");
    let e = b.write("containers/c/auto_remove", "maybe\n").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EINVAL);
    assert!(b.read("containers/c/error").contains("'maybe' is not true or false"), "{}", b.read("containers/c/error"));
    assert!(b.read("errors").contains("containers/c/auto_remove EINVAL"));
    assert_eq!(b.read("containers/c/auto_remove"), "true\n", "a refused value changes nothing");
    b.write("containers/c/auto_remove", "false").unwrap();
    b.write("containers/c/ctl", "start").unwrap();
    let e = b.write("containers/c/auto_remove", "true").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EBUSY, "not while it runs");
    b.write("containers/c/ctl", "kill").unwrap();
    b.wait_status("c", "exited");
    assert!(!gone(&b, "c"), "without auto_remove it stays");
}

#[test]
fn it_goes_once_it_exits_and_its_ctl_answers_the_code() {
    let b = Bocker::start("autormctl");
    let img = b.import("");
    b.configure("quick", &img, "sh -c 'exit 3'");
    b.write("containers/quick/auto_remove", "true").unwrap();
    let mut ctl = OpenOptions::new().read(true).write(true).open(b.path("containers/quick/ctl")).unwrap();
    ctl.write_all(b"start").unwrap();
    wait_gone(&b, "quick");
    let mut code = String::new();
    ctl.read_to_string(&mut code).unwrap();
    assert_eq!(code, "3\n", "the run this open file started, though the container is gone");
    assert!(b.daemon_log().contains("auto_remove"), "the removal is logged");

    // Without auto_remove the open ctl answers too, once the run has ended (nothing before).
    b.configure("slow", &img, "sleep 1");
    let mut ctl = OpenOptions::new().read(true).write(true).open(b.path("containers/slow/ctl")).unwrap();
    ctl.write_all(b"start").unwrap();
    let mut early = String::new();
    ctl.read_to_string(&mut early).unwrap();
    assert_eq!(early, "", "still running: no code yet");
    b.wait_status("slow", "exited");
    let mut code = String::new();
    ctl.read_to_string(&mut code).unwrap();
    assert_eq!(code, "0\n");
}

#[test]
fn an_open_logs_keeps_it_until_closed() {
    let b = Bocker::start("autormlogs");
    let img = b.import("");
    b.configure("talk", &img, "seq 1 5");
    b.write("containers/talk/auto_remove", "true").unwrap();
    let mut logs = fs::File::open(b.path("containers/talk/logs")).unwrap();
    b.write("containers/talk/ctl", "start").unwrap();
    b.wait_status("talk", "exited");
    std::thread::sleep(Duration::from_millis(500));
    assert!(!gone(&b, "talk"), "a reader holds its logs");
    let mut text = String::new();
    logs.read_to_string(&mut text).unwrap();
    assert_eq!(text, "1\n2\n3\n4\n5\n", "every byte for the reader");
    drop(logs);
    wait_gone(&b, "talk");
}

#[test]
fn a_restart_removes_what_exited_meanwhile() {
    let mut b = Bocker::start("autormrestart");
    let img = b.import("");
    // Exits while no daemon runs: removed as the new daemon records its exit.
    b.configure("later", &img, "sleep 2");
    b.write("containers/later/auto_remove", "true").unwrap();
    b.write("containers/later/ctl", "start").unwrap();
    // Exited already, auto_remove set after its exit (it takes effect at the next exit, or the next start
    // of the daemon, which finds it exited).
    b.configure("done", &img, "true");
    b.write("containers/done/ctl", "start").unwrap();
    b.wait_status("done", "exited");
    b.write("containers/done/auto_remove", "true").unwrap();
    assert!(!gone(&b, "done"));
    b.stop_daemon();
    std::thread::sleep(Duration::from_secs(3));
    b.spawn_daemon();
    wait_gone(&b, "later");
    wait_gone(&b, "done");
}

#[test]
fn containers_run_pulls_an_image_not_here() {
    let b = Bocker::start("runpulls");
    let reg = common::registry::TestRegistry::start(&b.dir);
    let img = b.import("");
    let reference = reg.reference("pulled/app:v1");
    b.submit("images/push", &format!("{img} {reference}")).unwrap();
    fs::remove_dir(b.path(&format!("images/{img}"))).unwrap();
    let id = b.run_to_exit(&format!("{reference} echo hi"));
    assert_eq!(b.read(&format!("containers/{id}/logs")), "hi\n");
    let pulled = b.read(&format!("containers/{id}/image"));
    assert_eq!(b.read(&format!("images/{}/names", pulled.trim_end())), format!("{reference}\n"));
    assert_eq!(b.read("images/pulls"), "", "the pull is over");

    // Not in the registry: the pull's errno, and nothing left.
    let listing = |dir: &str| fs::read_dir(b.path(dir)).unwrap().count();
    let (images, containers) = (listing("images"), listing("containers"));
    let e = b.submit("containers/run", &format!("{} true", reg.reference("pulled/none:v1"))).unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::ENOENT);
    assert_eq!((listing("images"), listing("containers")), (images, containers));
    assert!(fs::read_dir(b.root.join("store/layers")).unwrap().count() <= 1, "no layer of a failed pull");
    // Paths and ids are never pulled: unknown images, as before.
    for line in ["/no/such/dir true", "img_0123 true"] {
        let e = b.submit("containers/run", line).unwrap_err();
        assert_eq!(Bocker::errno(&e), libc::ENOENT, "{line}");
        assert!(b.read("errors").lines().last().unwrap().contains("no image"), "{}", b.read("errors"));
    }
}

#[test]
fn containers_run_with_rm_first_removes_the_container_once_it_has_exited() {
    let b = Bocker::start("autorm-run");
    let img = b.import("");
    let id = b.submit("containers/run", &format!("--rm {img} sh -c 'sleep 0.5; exit 2'")).expect("run --rm");
    assert_eq!(b.read(&format!("containers/{id}/auto_remove")), "true\n");
    eventually(
        Duration::from_secs(15),
        || format!("{id} still there"),
        || !b.path(&format!("containers/{id}")).exists(),
    );
    // Without it (the control), the exited container stays.
    let kept = b.run_to_exit(&format!("{img} sh -c 'exit 2'"));
    assert_eq!(b.read(&format!("containers/{kept}/auto_remove")), "false\n");
    std::thread::sleep(Duration::from_secs(1));
    assert!(b.path(&format!("containers/{kept}")).exists());
    // `--rm` alone names no image.
    let e = b.submit("containers/run", "--rm").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EINVAL);
}
