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
