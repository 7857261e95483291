//! `images/import` as an attacker drives it: a directory swapped for a symlink to a secret while the copy
//! runs, procfs, sysfs, the control mount and the daemon's own root as sources, a second filesystem
//! mounted inside the source; each beside the import that works.

mod common;

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use common::Bocker;

const SECRET: &str = "the host's secret\n";

fn errno(r: std::io::Result<String>) -> i32 {
    Bocker::errno(&r.expect_err("the import should fail"))
}

fn import(b: &Bocker, dir: &Path) -> std::io::Result<String> {
    b.submit("images/import", &dir.display().to_string())
}

/// Every regular file's content under `dir`, never following a symlink.
fn contents(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                todo.push(e.path());
            } else if ft.is_file() {
                out.push((e.path(), fs::read_to_string(e.path()).unwrap_or_default()));
            }
        }
    }
    out
}

fn images(b: &Bocker) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(b.root.join("store/images"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// `renameat2(RENAME_EXCHANGE)`: swaps two names atomically.
fn exchange(a: &Path, b: &Path) -> bool {
    let (a, b) = (CString::new(a.as_os_str().as_bytes()).unwrap(), CString::new(b.as_os_str().as_bytes()).unwrap());
    // SAFETY: both are NUL-terminated paths that live for the call.
    unsafe { libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), libc::RENAME_EXCHANGE) == 0 }
}

/// A thread swaps each of 100 directories `src/dN` with `src/alt-dN` (a symlink to the secret directory),
/// and each of 100 files `src/fN` with `src/alt-fN` (a symlink to a secret file), as fast as it can while
/// imports of `src` run, again and again. No image may ever hold the secret, wherever the swaps caught the
/// copy. Positive control: importing the secret directory itself brings it.
#[test]
fn a_directory_swapped_for_a_symlink_mid_import_never_brings_the_secret() {
    let b = Bocker::start("import-race");
    let secret = b.dir.join("secret");
    fs::create_dir_all(secret.join("sub")).unwrap();
    fs::write(secret.join("SECRET"), SECRET).unwrap();
    fs::write(secret.join("sub/SECRET"), SECRET).unwrap();
    let src = b.dir.join("src");
    let mut pairs = Vec::new();
    for i in 0..100 {
        let d = src.join(format!("d{i}"));
        fs::create_dir_all(d.join("sub")).unwrap();
        fs::write(d.join("sub/f"), "ordinary\n").unwrap();
        std::os::unix::fs::symlink(&secret, src.join(format!("alt-d{i}"))).unwrap();
        pairs.push((d, src.join(format!("alt-d{i}"))));
        fs::write(src.join(format!("f{i}")), "ordinary\n").unwrap();
        std::os::unix::fs::symlink(secret.join("SECRET"), src.join(format!("alt-f{i}"))).unwrap();
        pairs.push((src.join(format!("f{i}")), src.join(format!("alt-f{i}"))));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let racer = {
        let (stop, swaps, pairs) = (stop.clone(), swaps.clone(), pairs.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for (a, b) in &pairs {
                    if exchange(a, b) {
                        swaps.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    let mut made = Vec::new();
    let mut failed = 0;
    for _ in 0..40 {
        match import(&b, &src) {
            Ok(id) => made.push(id),
            Err(_) => failed += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    racer.join().unwrap();
    assert!(swaps.load(Ordering::Relaxed) > 100, "the racer swapped {} times", swaps.load(Ordering::Relaxed));
    assert!(!made.is_empty(), "every import failed ({failed})");
    for id in &made {
        let image = b.root.join("store/images").join(id);
        let leaked: Vec<_> = contents(&image).into_iter().filter(|(_, c)| c == SECRET).collect();
        assert!(leaked.is_empty(), "image {id} holds the secret: {leaked:?}");
    }
    eprintln!("{} imports, {failed} failed, {} swaps", made.len(), swaps.load(Ordering::Relaxed));

    // Positive control: the same check finds the secret when it is imported on purpose.
    let id = import(&b, &secret).expect("importing the secret directory itself");
    let found = contents(&b.root.join("store/images").join(&id));
    assert_eq!(found.iter().filter(|(_, c)| c == SECRET).count(), 2, "{found:?}");
}

/// procfs, sysfs, the control mount (FUSE) and the daemon's own root, inside it or around it: EPERM, the
/// reason in `errors`, and no image or staging subvolume left. A plain directory imports.
#[test]
fn kernel_filesystems_the_mount_and_the_daemons_root_are_refused() {
    let b = Bocker::start("import-refused");
    let img = b.import("");
    let before = images(&b);
    let cases: Vec<(PathBuf, &str)> = vec![
        ("/proc".into(), "procfs"),
        ("/proc/self".into(), "procfs"),
        // The daemon's own root directory and working directory, through /proc magic links.
        ("/proc/self/root".into(), "magic link"),
        ("/proc/thread-self/cwd".into(), "magic link"),
        ("/sys".into(), "sysfs"),
        ("/sys/kernel".into(), "sysfs"),
        (b.mount.clone(), "FUSE"),
        (b.mount.join("images"), "FUSE"),
        (b.root.clone(), "daemon's root"),
        (b.root.join("state"), "daemon's root"),
        (b.root.join("store/images").join(&img), "daemon's root"),
        // Around it: the walk meets the root and refuses the whole import.
        (b.dir.clone(), "daemon's own root"),
    ];
    for (dir, why) in cases {
        assert_eq!(errno(import(&b, &dir)), libc::EPERM, "{}", dir.display());
        let errors = b.read("errors");
        let last = errors.lines().last().unwrap();
        assert!(last.contains("images/import EPERM") && last.contains(why), "{}: {last}", dir.display());
        assert_eq!(images(&b), before, "{}: nothing left", dir.display());
    }
    // Positive control: an ordinary directory (the same rootfs) imports and runs.
    let again = import(&b, &b.rootfs()).expect("a plain directory imports");
    let id = b.run_to_exit(&format!("{again} echo imported"));
    assert_eq!(b.read(&format!("containers/{id}/logs")), "imported\n");
}

/// A tmpfs mounted at `at` for the test, unmounted on drop (also when the test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path) -> Tmpfs {
        fs::create_dir_all(at).unwrap();
        nix::mount::mount(Some("tmpfs"), at, Some("tmpfs"), nix::mount::MsFlags::empty(), Some("size=1m")).unwrap();
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// A tmpfs mounted inside the source is not entered: its mount point is in the image, empty; the files
/// beside it are copied.
#[test]
fn a_second_filesystem_inside_the_source_is_not_crossed() {
    let b = Bocker::start("import-xdev");
    let src = b.dir.join("src");
    fs::create_dir_all(src.join("data")).unwrap();
    fs::write(src.join("data/beside"), "copied\n").unwrap();
    let tmpfs = Tmpfs::mount(&src.join("data/mnt"));
    fs::write(src.join("data/mnt/inner"), "other filesystem\n").unwrap();
    assert!(src.join("data/mnt/inner").exists(), "the tmpfs is there");
    let id = import(&b, &src).expect("import");
    let image = b.root.join("store/images").join(&id);
    assert_eq!(fs::read_to_string(image.join("data/beside")).unwrap(), "copied\n");
    assert!(image.join("data/mnt").is_dir(), "the mount point is kept");
    assert_eq!(fs::read_dir(image.join("data/mnt")).unwrap().count(), 0, "and empty");
    drop(tmpfs);
}

/// A source deeper than 256 directories (each level holds descriptors) is refused with EINVAL and leaves
/// nothing; 200 deep imports.
#[test]
fn a_source_too_deep_is_refused() {
    let b = Bocker::start("import-deep");
    let deep = |name: &str, levels: usize| {
        let mut p = b.dir.join(name);
        for _ in 0..levels {
            p.push("d");
        }
        fs::create_dir_all(&p).unwrap();
        fs::write(p.join("bottom"), "reached\n").unwrap();
        b.dir.join(name)
    };
    let too_deep = deep("too-deep", 300);
    assert_eq!(errno(import(&b, &too_deep)), libc::EINVAL);
    assert!(b.read("errors").lines().last().unwrap().contains("directories deep"), "{}", b.read("errors"));
    assert!(images(&b).is_empty(), "nothing left");
    let fine = deep("fine", 200);
    let id = import(&b, &fine).expect("200 levels import");
    let mut bottom = b.root.join("store/images").join(&id);
    for _ in 0..200 {
        bottom.push("d");
    }
    assert_eq!(fs::read_to_string(bottom.join("bottom")).unwrap(), "reached\n");
}

/// A real store (its own loop-mounted btrfs) under a test directory, closed and removed on drop.
struct TestStore {
    dir: PathBuf,
    store: Option<bockerfs::store::Store>,
}

impl TestStore {
    fn open(tag: &str) -> TestStore {
        let dir = PathBuf::from(format!("/tmp/bocker-test-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let store = bockerfs::store::Store::open(&dir.join("root"), 256 << 20).expect("store");
        TestStore { dir, store: Some(store) }
    }

    fn import(&self, src: &Path, caller: &bockerfs::caller::Caller) -> Result<PathBuf, i32> {
        let store = self.store.as_ref().unwrap();
        let id = format!("img_{:012x}", rand_u64() & 0xffff_ffff_ffff);
        store.import_dir(&id, src, caller).map(|_| store.image_path(&id)).map_err(|e| e.errno())
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            store.close(true);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    u64::from_ne_bytes(b)
}

/// The store's import as an unprivileged caller (uid 4242, the identity the FUSE request would carry):
/// a 0700 directory of root's is refused with EACCES, and so is a tree holding one 0600 file of root's,
/// and a 0750 directory of group 4300 to a caller outside it; the same caller in group 4300 imports it,
/// and anyone imports a world-readable one. Nothing is left of a refused import.
#[test]
fn an_import_reads_with_the_callers_identity() {
    use std::os::unix::fs::PermissionsExt;
    let t = TestStore::open("import-caller");
    let mode = |p: &Path, m: u32| fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
    let tree = |name: &str, dir_mode: u32, file_mode: u32, gid: u32| {
        let d = t.dir.join(name);
        fs::create_dir_all(d.join("sub")).unwrap();
        fs::write(d.join("sub/file"), format!("{name}\n")).unwrap();
        mode(&d.join("sub/file"), file_mode);
        nix::unistd::chown(&d, None, Some(nix::unistd::Gid::from_raw(gid))).unwrap();
        mode(&d, dir_mode);
        d
    };
    mode(&t.dir, 0o755);
    let private = tree("private", 0o700, 0o644, 0);
    let one_secret_file = tree("one-secret-file", 0o755, 0o600, 0);
    let group = tree("group", 0o750, 0o644, 4300);
    let public = tree("public", 0o755, 0o644, 0);
    let outsider = bockerfs::caller::Caller { uid: 4242, gid: 4242, groups: vec![4242], pid: 0 };
    let member = bockerfs::caller::Caller { uid: 4242, gid: 4242, groups: vec![4242, 4300], pid: 0 };

    assert_eq!(t.import(&private, &outsider), Err(libc::EACCES));
    assert_eq!(t.import(&one_secret_file, &outsider), Err(libc::EACCES));
    assert_eq!(t.import(&group, &outsider), Err(libc::EACCES));
    let images = t.dir.join("root/store/images");
    assert_eq!(fs::read_dir(&images).unwrap().count(), 0, "nothing left of the refused imports");

    let image = t.import(&group, &member).expect("a member of the group imports it");
    assert_eq!(fs::read_to_string(image.join("sub/file")).unwrap(), "group\n");
    let image = t.import(&public, &outsider).expect("a world-readable tree imports");
    assert_eq!(fs::read_to_string(image.join("sub/file")).unwrap(), "public\n");
    // Positive control: root reads the private trees.
    let root = bockerfs::caller::Caller { uid: 0, gid: 0, groups: vec![], pid: 0 };
    let image = t.import(&one_secret_file, &root).expect("root imports it");
    assert_eq!(fs::read_to_string(image.join("sub/file")).unwrap(), "one-secret-file\n");
}

/// Runs `sh -c script` as nobody in Debian's `users` group (gid 100, the daemon's `--group` here); its
/// success and output.
fn as_member(script: &str) -> (bool, String) {
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=100", "--groups=100", "--", "sh", "-c", script])
        .output()
        .expect("setpriv (util-linux)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// With `--group users`, nobody in that group drives `images/import` through the mount: a 0700 directory
/// of root's is refused with EACCES (the reason in `errors`) and leaves nothing, and so is a readable tree
/// holding one 0600 file of root's; a world-readable directory and a 0750 one of group `users` import,
/// their owners kept.
#[test]
fn a_group_member_imports_only_what_they_can_read() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let b = Bocker::start_with_env("import-member", &[("BOCKER_GROUP", "users")]);
    let tree = |name: &str, dir_mode: u32, file_mode: u32, gid: u32| {
        let d = b.dir.join(name);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("file"), format!("{name}\n")).unwrap();
        fs::set_permissions(d.join("file"), fs::Permissions::from_mode(file_mode)).unwrap();
        for p in [d.join("file"), d.clone()] {
            nix::unistd::chown(&p, None, Some(nix::unistd::Gid::from_raw(gid))).unwrap();
        }
        fs::set_permissions(&d, fs::Permissions::from_mode(dir_mode)).unwrap();
        d
    };
    fs::set_permissions(&b.dir, fs::Permissions::from_mode(0o755)).unwrap();
    let private = tree("private", 0o700, 0o644, 0);
    let holds_secret = tree("holds-secret", 0o755, 0o600, 0);
    let public = tree("public", 0o755, 0o644, 0);
    let group = tree("group", 0o750, 0o640, 100);
    let m = b.mount.display().to_string();
    let import_as_member =
        // coreutils' printf, which names the errno of a failed write (dash's builtin says only "I/O error").
        |dir: &Path| as_member(&format!("exec 3<>'{m}/images/import' && /usr/bin/printf '%s' '{}' >&3 && cat <&3", dir.display()));

    for dir in [&private, &holds_secret] {
        let (ok, out) = import_as_member(dir);
        assert!(!ok && out.contains("Permission denied"), "{}: {out}", dir.display());
        let errors = b.read("errors");
        let last = errors.lines().last().unwrap();
        assert!(last.contains("images/import EACCES") && last.contains(dir.to_str().unwrap()), "{last}");
        assert!(images(&b).is_empty(), "nothing left");
    }
    for dir in [&public, &group] {
        let (ok, out) = import_as_member(dir);
        assert!(ok, "{}: {out}", dir.display());
        let id = out.trim();
        assert!(id.starts_with("img_"), "{out}");
        let copy = b.root.join("store/images").join(id).join("file");
        let name = dir.file_name().unwrap().to_str().unwrap();
        assert_eq!(fs::read_to_string(&copy).unwrap(), format!("{name}\n"));
        assert_eq!(fs::metadata(&copy).unwrap().uid(), 0, "the owner is kept");
    }
    // Positive control for the refusals: root imports the private directory.
    let id = import(&b, &private).expect("root imports it");
    assert_eq!(fs::read_to_string(b.root.join("store/images").join(id).join("file")).unwrap(), "private\n");
}
