//! `containers/<name>/commit` and `bocker commit`, on a real btrfs store: a new image from a changed
//! container (running or exited) that a new container sees, the source's config kept, an existing image
//! replaced atomically (checked continuously while commits run), and bad input refused.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::Bocker;

fn commit(b: &Bocker, container: &str, image: &str) -> std::io::Result<String> {
    b.submit(&format!("containers/{container}/commit"), image)
}

#[test]
fn a_commit_makes_an_image_with_the_containers_changes_and_the_sources_config() {
    let b = Bocker::start("commit-new");
    let img = b.import("ENV GREETING=hello\nWORKDIR /work");
    let id = b.run_to_exit(&format!("{img} sh -c 'echo changed > /marker'"));

    let snap = commit(&b, &id, "snap").expect("commit");
    assert!(snap.starts_with("img_") && snap != img, "{snap}");
    assert_eq!(b.read(&format!("images/{snap}/source")), "snap\n");
    let config: serde_json::Value = serde_json::from_str(&b.read(&format!("images/{snap}/config.json"))).unwrap();
    let env = config["config"]["Env"].to_string();
    assert!(env.contains("GREETING=hello"), "{config}");
    assert_eq!(config["config"]["WorkingDir"], "/work");
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["sh", "-c", "echo changed > /marker"]));

    // A new container of the new image, by id and by name, sees the change and the config.
    let out = b.run_to_exit(&format!("{snap} sh -c 'cat /marker; echo $GREETING; pwd'"));
    assert_eq!(b.read(&format!("containers/{out}/logs")), "changed\nhello\n/work\n");
    let by_name = b.run_to_exit("snap cat /marker");
    assert_eq!(b.read(&format!("containers/{by_name}/logs")), "changed\n");
    // The source image is unchanged.
    let old = b.run_to_exit(&format!("{img} sh -c 'cat /marker || echo none'"));
    assert!(b.read(&format!("containers/{old}/logs")).ends_with("none\n"));

    // A running container commits too, with what it has written so far.
    b.configure("live", &img, "sh -c 'echo live > /live; sleep 100'");
    b.write("containers/live/ctl", "start").expect("start");
    common::eventually(
        Duration::from_secs(10),
        || "the container wrote /live".into(),
        || b.path("containers/live/rootfs/live").exists(),
    );
    let live = commit(&b, "live", "live-snap").expect("commit running");
    assert_eq!(b.status("live"), "running");
    let out = b.run_to_exit(&format!("{live} cat /live"));
    assert_eq!(b.read(&format!("containers/{out}/logs")), "live\n");
}

#[test]
fn replacing_an_image_never_leaves_it_missing() {
    let b = Bocker::start("commit-replace");
    let img = b.import("");
    let id = b.run_to_exit(&format!("{img} sh -c 'echo 0 > /version'"));
    let target = commit(&b, &id, "app").expect("first commit");

    // A reader looks at the image through the mount the whole time: its directory and its file.
    let stop = AtomicBool::new(false);
    let (checks, misses) = (AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let there = b.path(&format!("images/{target}")).is_dir()
                    && std::fs::read_to_string(b.path(&format!("images/{target}/rootfs/version"))).is_ok();
                checks.fetch_add(1, Ordering::Relaxed);
                if !there {
                    misses.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        for v in 1..=5 {
            let c = b.run_to_exit(&format!("{img} sh -c 'echo {v} > /version'"));
            // bocker's form, through the command line: the image id as the target.
            let out = b.cli(&["commit", &c, &target]);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(String::from_utf8_lossy(&out.stdout), format!("Removed: {target}\nCreated: {target}\n"));
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert!(checks.load(Ordering::Relaxed) > 50, "the reader hardly ran");
    assert_eq!(misses.load(Ordering::Relaxed), 0, "the image was missing during a replace");
    assert_eq!(b.read(&format!("images/{target}/rootfs/version")), "5\n");
    assert_eq!(b.read(&format!("images/{target}/source")), "app\n");
    let out = b.run_to_exit(&format!("{target} cat /version"));
    assert_eq!(b.read(&format!("containers/{out}/logs")), "5\n");
    // Only the images made: the base and `app`; no staging subvolume is left in the store.
    let images: Vec<String> = std::fs::read_dir(b.path("images"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("img_"))
        .collect();
    assert_eq!(images.len(), 2, "{images:?}");
    let staged: Vec<_> = std::fs::read_dir(b.root.join("store/images"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .collect();
    assert!(staged.is_empty(), "{staged:?}");
}

#[test]
fn bad_commits_are_refused_and_change_nothing() {
    let b = Bocker::start("commit-bad");
    let img = b.import("");
    std::fs::create_dir(b.path("containers/empty")).expect("mkdir");
    let images = || std::fs::read_dir(b.path("images")).unwrap().count();
    let before = images();

    let e = commit(&b, "empty", "x").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EINVAL);
    assert!(b.read("containers/empty/error").contains("has no image"));

    let id = b.run_to_exit(&format!("{img} true"));
    for (target, errno) in [
        ("img_000000000000", libc::ENOENT),
        ("Upper/Case", libc::EINVAL),
        ("a::b", libc::EINVAL),
        ("two words", libc::EINVAL),
    ] {
        let e = commit(&b, &id, target).unwrap_err();
        assert_eq!(Bocker::errno(&e), errno, "{target}");
        assert!(!b.read(&format!("containers/{id}/error")).is_empty());
    }
    assert_eq!(images(), before);

    let out = b.cli(&["commit", "nope", &img]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("No container named 'nope' exists"));
    let out = b.cli(&["commit", &id, "img_000000000000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("No image named 'img_000000000000' exists"));
}
