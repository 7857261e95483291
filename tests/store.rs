//! Where the store lives: on a root that is already btrfs, subvolumes go there directly, with no image
//! file or loop device of the daemon's own.

mod common;

use std::fs;
use std::process::Command;

use common::Bocker;

/// A btrfs filesystem mounted at `dir/fs` for the test, unmounted (and its loop device freed) on drop.
struct BtrfsMount {
    dir: std::path::PathBuf,
}

impl BtrfsMount {
    fn new(dir: &std::path::Path) -> BtrfsMount {
        fs::create_dir_all(dir.join("fs")).unwrap();
        let image = dir.join("fs.img");
        fs::File::create(&image).unwrap().set_len(1 << 30).unwrap();
        let run = |cmd: &mut Command| {
            let out = cmd.output().unwrap();
            assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        run(Command::new("mkfs.btrfs").arg("-q").arg(&image));
        // mount -o loop sets up an auto-clearing loop device.
        run(Command::new("mount").arg("-o").arg("loop").arg(&image).arg(dir.join("fs")));
        BtrfsMount { dir: dir.to_path_buf() }
    }
}

impl Drop for BtrfsMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.dir.join("fs"), nix::mount::MntFlags::MNT_DETACH);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_root_on_btrfs_holds_the_subvolumes_itself() {
    let outer = std::path::PathBuf::from(format!("/tmp/bocker-test-btrfsroot-{}", std::process::id()));
    let btrfs = BtrfsMount::new(&outer);
    let mut b = Bocker::start("onbtrfs");
    b.stop_daemon();
    // Point the same test daemon at a root inside the btrfs mount.
    b.root = btrfs.dir.join("fs/bocker");
    b.spawn_daemon();
    let img = b.import("");
    let id = b.run_to_exit(&format!("{img} echo on btrfs"));
    assert_eq!(b.read(&format!("containers/{id}/logs")), "on btrfs\n");
    assert!(!b.root.join("store.img").exists(), "no image file on a btrfs root");
    let rootfs = fs::read_link(b.path(&format!("containers/{id}/rootfs"))).unwrap();
    assert!(rootfs.starts_with(&b.root), "{}", rootfs.display());
    let subvols = Command::new("btrfs").arg("subvolume").arg("list").arg(btrfs.dir.join("fs")).output().unwrap();
    let list = String::from_utf8_lossy(&subvols.stdout);
    assert!(list.contains(&format!("bocker/store/images/{img}")), "{list}");
    assert!(list.contains(&format!("bocker/store/containers/{id}")), "{list}");
    fs::remove_dir(b.path(&format!("containers/{id}"))).unwrap();
    fs::remove_dir(b.path(&format!("images/{img}"))).unwrap();
    b.stop_daemon();
    let subvols = Command::new("btrfs").arg("subvolume").arg("list").arg(btrfs.dir.join("fs")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&subvols.stdout), "", "rm and rmdir deleted the subvolumes");
}

/// The paths of the subvolumes of the store's filesystem, as `btrfs subvolume list` shows them.
fn subvolumes(store: &std::path::Path) -> Vec<String> {
    let out = Command::new("btrfs").arg("subvolume").arg("list").arg(store).output().unwrap();
    assert!(out.status.success(), "btrfs subvolume list: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.split(" path ").nth(1)).map(String::from).collect()
}

/// A container makes btrfs subvolumes (no capability needed: BTRFS_IOC_SUBVOL_CREATE) in its rootfs and in
/// a named volume, nested three and two deep. A commit of it works (the nested ones are not in the
/// snapshot); `rmdir` of the container and of the volume removes them whole, and the store holds nothing
/// of either.
#[test]
fn nested_subvolumes_made_in_a_container_go_with_it() {
    let b = Bocker::start("nested-subvol");
    common::probe::install("subvol", &b.rootfs());
    let img = b.import("");
    fs::create_dir(b.path("volumes/nest")).expect("mkdir volume");
    b.configure("nest", &img, "sh -c 'subvol / a b c && subvol /vol x y'");
    b.write("containers/nest/volumes", "nest:/vol").expect("volumes");
    b.write("containers/nest/ctl", "start").expect("start");
    b.wait_status("nest", "exited");
    let logs = b.read("containers/nest/logs");
    assert_eq!(logs, "made 3\nmade 2\n", "the probe made its subvolumes");
    // Positive control: they are real subvolumes of the store.
    let store = b.root.join("store");
    let before = subvolumes(&store);
    assert!(before.iter().any(|p| p.ends_with("containers/nest/a/b/c")), "{before:?}");
    assert!(before.iter().any(|p| p.ends_with("volumes/nest/x/y")), "{before:?}");

    let committed = b.submit("containers/nest/commit", "nested-commit").expect("commit");
    let image_dir = store.join("images").join(&committed);
    assert!(image_dir.join("bin/subvol").exists(), "the commit holds the container's files");
    assert!(!image_dir.join("a/data").exists(), "a nested subvolume's content is not in the commit");

    fs::remove_dir(b.path("containers/nest")).expect("rmdir a container with nested subvolumes");
    fs::remove_dir(b.path("volumes/nest")).expect("rmdir a volume with nested subvolumes");
    let after = subvolumes(&store);
    assert!(!after.iter().any(|p| p.contains("containers/nest") || p.contains("volumes/nest")), "{after:?}");
    assert!(!store.join("containers/nest").exists() && !store.join("volumes/nest").exists());
    // The committed image is an ordinary one: it runs and is removed too.
    let id = b.run_to_exit(&format!("{committed} cat /a/b/c/data"));
    assert_ne!(b.read(&format!("containers/{id}/exit_code")).trim(), "0", "no nested content came along");
    fs::remove_dir(b.path(&format!("containers/{id}"))).unwrap();
    fs::remove_dir(b.path(&format!("images/{committed}"))).expect("rmdir the committed image");
    let last = subvolumes(&store);
    assert!(!last.iter().any(|p| p.contains(&committed)), "{last:?}");
}
