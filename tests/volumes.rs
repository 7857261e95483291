//! Volumes on a real btrfs store and real bind mounts: host paths, named volumes (`volumes/NAME`, a
//! subvolume each) whose data outlives containers, read-only ones, `volumes-from`, `bocker run -v`, and
//! bad input. And what a volume can't do, tried as an attacker would: a mount under a `:ro` source stays
//! read-only inside, device nodes and setuid bits in a volume are dead, and neither the kernel's
//! directories (unless privileged) nor the daemon's own files can be reached through one.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::Bocker;

/// Runs `line` (a shell line) in a new container with these volumes and returns its logs once it exited.
/// Its stderr goes to its stdout: the tests read the order of error messages and what follows them, which
/// two pipes keep only as far as the monitor reads between the writes.
fn run_with(b: &Bocker, name: &str, img: &str, volumes: &str, line: &str) -> String {
    b.configure(name, img, &format!("sh -c 'exec 2>&1; {line}'"));
    if !volumes.is_empty() {
        b.write(&format!("containers/{name}/volumes"), volumes).expect("volumes");
    }
    b.write(&format!("containers/{name}/ctl"), "start").expect("start");
    b.wait_status(name, "exited");
    b.read(&format!("containers/{name}/logs"))
}

#[test]
fn host_paths_are_bind_mounted_and_read_only_ones_refuse_writes() {
    let b = Bocker::start("vol-bind");
    let img = b.import("");
    let host = b.dir.join("host-data");
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("from-host"), "hi from the host\n").unwrap();

    let vols = format!("{}:/data\n{}:/ro:ro", host.display(), host.display());
    let out = run_with(
        &b,
        "c",
        &img,
        &vols,
        "cat /data/from-host; echo written > /data/from-ctr; echo x > /ro/y || echo ro-refused",
    );
    assert_eq!(out.lines().next(), Some("hi from the host"), "{out}");
    assert!(out.ends_with("ro-refused\n"), "{out}");
    assert_eq!(fs::read_to_string(host.join("from-ctr")).unwrap(), "written\n");
    assert!(!host.join("y").exists());
    assert_eq!(b.read("containers/c/volumes"), format!("{}:/data\n{}:/ro:ro\n", host.display(), host.display()));
    // Nothing of the volume went into the container's snapshot; the host's files are untouched by rm.
    assert!(!b.path("containers/c/rootfs/data/from-host").exists());
    fs::remove_dir(b.path("containers/c")).expect("rm");
    assert!(host.join("from-host").exists());
}

#[test]
fn a_named_volumes_data_outlives_its_containers_and_rmdir_waits_for_them() {
    let b = Bocker::start("vol-named");
    let img = b.import("");
    fs::create_dir(b.path("volumes/store")).expect("mkdir volume");
    assert!(fs::read_dir(b.path("volumes")).unwrap().flatten().any(|e| e.file_name() == "store"));
    let data = fs::read_link(b.path("volumes/store/data")).expect("data link");
    assert!(data.is_dir());

    run_with(&b, "writer", &img, "store:/var/lib/app", "echo kept > /var/lib/app/file");
    assert_eq!(fs::read_to_string(b.path("volumes/store/data/file")).unwrap(), "kept\n");
    fs::remove_dir(b.path("containers/writer")).expect("rm writer");
    let out =
        run_with(&b, "reader", &img, "store:/var/lib/app:ro", "cat /var/lib/app/file; touch /var/lib/app/x || echo ro");
    assert!(out.starts_with("kept\n") && out.ends_with("ro\n"), "{out}");

    // In use by a container (even an exited one): EBUSY; once it is removed, the volume goes.
    let e = fs::remove_dir(b.path("volumes/store")).unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EBUSY);
    assert!(b.read("errors").contains("volume 'store' is used by container(s) reader"));
    fs::remove_dir(b.path("containers/reader")).expect("rm reader");
    fs::remove_dir(b.path("volumes/store")).expect("rmdir volume");
    assert!(!data.exists());

    // Errors: a second one of a name, a bad name, an unknown volume in a container's volumes.
    fs::create_dir(b.path("volumes/again")).unwrap();
    assert_eq!(Bocker::errno(&fs::create_dir(b.path("volumes/again")).unwrap_err()), libc::EEXIST);
    assert_eq!(Bocker::errno(&fs::create_dir(b.path("volumes/-bad")).unwrap_err()), libc::EINVAL);
    assert_eq!(Bocker::errno(&fs::remove_dir(b.path("volumes/none")).unwrap_err()), libc::ENOENT);
    fs::create_dir(b.path("containers/c")).unwrap();
    let e = b.write("containers/c/volumes", "missing:/x").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::ENOENT);
    assert!(b.read("containers/c/error").contains("no volume named 'missing'"));
    let e = b.write("containers/c/volumes", "/no/such/host/path:/x").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::ENOENT);
    for bad in ["again:relative", "again:/", "again:/a/../b", "again:/x:rx", "again:/x\nagain:/x/"] {
        let e = b.write("containers/c/volumes", bad).unwrap_err();
        assert_eq!(Bocker::errno(&e), libc::EINVAL, "{bad}");
    }
    assert_eq!(b.read("containers/c/volumes"), "");
}

#[test]
fn volumes_from_mounts_another_containers_volumes_at_the_same_targets() {
    let b = Bocker::start("vol-from");
    let img = b.import("");
    fs::create_dir(b.path("volumes/shared")).unwrap();
    // A data volume container: it only holds the volume definition.
    b.configure("datastore", &img, "true");
    b.write("containers/datastore/volumes", "shared:/srv/shared:ro").expect("volumes");
    fs::write(fs::read_link(b.path("volumes/shared/data")).unwrap().join("note"), "from the volume\n").unwrap();

    b.configure("user", &img, "sh -c 'exec 2>&1; cat /srv/shared/note; echo x > /srv/shared/y || echo ro-kept'");
    b.write("containers/user/volumes-from", "datastore").expect("volumes-from");
    assert_eq!(b.read("containers/user/volumes-from"), "datastore\n");
    b.write("containers/user/ctl", "start").expect("start");
    b.wait_status("user", "exited");
    let out = b.read("containers/user/logs");
    assert!(out.starts_with("from the volume\n") && out.ends_with("ro-kept\n"), "{out}");

    for (value, errno) in [("nope", libc::ENOENT), ("user", libc::EINVAL), ("a b", libc::EINVAL)] {
        let e = b.write("containers/user/volumes-from", value).unwrap_err();
        assert_eq!(Bocker::errno(&e), errno, "{value}");
    }
    assert_eq!(b.read("containers/user/volumes-from"), "datastore\n");
    // The fixed configuration of a running container.
    b.configure("busy", &img, "sleep 100");
    b.write("containers/busy/ctl", "start").unwrap();
    assert_eq!(Bocker::errno(&b.write("containers/busy/volumes", "shared:/x").unwrap_err()), libc::EBUSY);
}

#[test]
fn bocker_run_v_makes_missing_named_volumes_and_binds_host_paths() {
    let b = Bocker::start("vol-cli");
    let img = b.import("");
    let host = b.dir.join("hostdir");
    fs::create_dir_all(&host).unwrap();
    let out = b.cli(&[
        "run",
        "-v",
        "cache:/cache",
        "-v",
        &format!("{}:/h", host.display()),
        &img,
        "sh -c 'echo c > /cache/f; echo h > /h/f'",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(b.path("volumes/cache").is_dir(), "the named volume was made");
    assert_eq!(fs::read_to_string(b.path("volumes/cache/data/f")).unwrap(), "c\n");
    assert_eq!(fs::read_to_string(host.join("f")).unwrap(), "h\n");
    let out = b.cli(&["run", "-v", "cache:/cache:ro", &img, "cat /cache/f"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "c\n");
}

/// A tmpfs the test mounts on the host, unmounted when dropped (also when the test fails). Declared after
/// the `Bocker`, so it goes before the test directory is removed.
struct HostTmpfs(PathBuf);

impl HostTmpfs {
    fn mount(at: &Path) -> HostTmpfs {
        fs::create_dir_all(at).unwrap();
        nix::mount::mount(Some("tmpfs"), at, Some("tmpfs"), nix::mount::MsFlags::empty(), Some("size=1m"))
            .expect("mount a tmpfs");
        HostTmpfs(at.to_path_buf())
    }
}

impl Drop for HostTmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// `/dev/null`'s node (char 1:3), made at `path`.
fn null_node(path: &Path) {
    let dev = nix::sys::stat::makedev(1, 3);
    nix::sys::stat::mknod(path, nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::from_bits_truncate(0o666), dev)
        .expect("mknod");
}

/// The mount options (field 6 of mountinfo) of each mount point in `mountinfo`.
fn mount_options(mountinfo: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Some((f.get(4)?.to_string(), f.get(5)?.split(',').map(String::from).collect()))
        })
        .collect()
}

#[test]
fn read_only_reaches_submounts_and_volumes_are_nosuid_nodev() {
    let b = Bocker::start("vol-rro");
    let img = b.import("");
    let src = b.dir.join("src");
    fs::create_dir_all(&src).unwrap();
    let _sub = HostTmpfs::mount(&src.join("sub"));
    // On the host, the tmpfs is writable and both device nodes open: the controls for what follows.
    fs::write(src.join("sub/from-host"), "host\n").expect("the tmpfs is writable on the host");
    null_node(&src.join("null"));
    null_node(&src.join("sub/null"));
    fs::File::open(src.join("null")).expect("the node opens on the host");
    fs::File::open(src.join("sub/null")).expect("the node opens on the host");
    fs::copy(b.rootfs().join("bin/busybox"), src.join("suid")).unwrap();
    fs::set_permissions(src.join("suid"), std::os::unix::fs::PermissionsExt::from_mode(0o4755)).unwrap();

    let vols = format!("{}:/ro:ro\n{}:/rw", src.display(), src.display());
    let out = run_with(
        &b,
        "c",
        &img,
        &vols,
        "cat /ro/sub/from-host; echo x > /ro/sub/w || echo ro-sub-refused; echo x > /ro/w || echo ro-top-refused; \
         echo x > /rw/sub/w && echo rw-sub-ok; \
         for n in /rw/null /rw/sub/null /ro/null; do cat $n >/dev/null 2>&1 && echo $n-opened || echo $n-refused; done; \
         cat /proc/self/mountinfo",
    );
    for line in [
        "host",
        "ro-sub-refused",
        "ro-top-refused",
        "rw-sub-ok",
        "/rw/null-refused",
        "/rw/sub/null-refused",
        "/ro/null-refused",
    ] {
        assert!(out.lines().any(|l| l == line), "{line}: {out}");
    }
    assert_eq!(out.matches("Read-only file system").count(), 2, "{out}");
    assert_eq!(fs::read_to_string(src.join("sub/w")).unwrap(), "x\n", "written through the rw volume");
    assert!(!src.join("w").exists());

    let opts = mount_options(&out);
    for (at, mode) in [("/ro", "ro"), ("/ro/sub", "ro"), ("/rw", "rw"), ("/rw/sub", "rw")] {
        let o = opts.get(at).unwrap_or_else(|| panic!("{at} not mounted: {out}"));
        for flag in [mode, "nosuid", "nodev"] {
            assert!(o.iter().any(|f| f == flag), "{at} lacks {flag}: {o:?}");
        }
    }
    // The host's mount under the source is untouched: still writable, devices and setuid usable.
    let host = mount_options(&fs::read_to_string("/proc/self/mountinfo").unwrap());
    let host_sub = &host[&src.join("sub").display().to_string()];
    assert!(host_sub.iter().any(|f| f == "rw") && !host_sub.iter().any(|f| f == "nodev"), "{host_sub:?}");
    fs::write(src.join("sub/after"), "still\n").expect("the tmpfs is still writable on the host");
}

#[test]
fn kernel_dirs_need_privileged_and_the_daemons_files_are_no_source() {
    let b = Bocker::start("vol-refuse");
    let rootfs = b.rootfs();
    // An image whose /kern is a symlink to /proc: a target through it lands in /proc.
    std::os::unix::fs::symlink("/proc", rootfs.join("kern")).unwrap();
    let img = b.import("");
    let host = b.dir.join("ordinary");
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("note"), "ordinary\n").unwrap();
    b.configure("c", &img, "cat /dev/hostdir/note");

    for target in ["/proc/x", "/sys/fs/x", "/dev/x", "/dev"] {
        let e = b.write("containers/c/volumes", &format!("{}:{target}", host.display())).unwrap_err();
        assert_eq!(Bocker::errno(&e), libc::EPERM, "{target}");
        assert!(b.read("containers/c/error").contains("only a privileged container may mount there"), "{target}");
        assert_eq!(b.read("containers/c/volumes"), "", "nothing changed");
    }
    // Privileged, the same volume is accepted and mounted.
    b.write("containers/c/privileged", "true").unwrap();
    b.write("containers/c/volumes", &format!("{}:/dev/hostdir", host.display())).expect("privileged");
    b.write("containers/c/ctl", "start").expect("start");
    b.wait_status("c", "exited");
    assert_eq!(b.read("containers/c/logs"), "ordinary\n");
    // Privileged no more: the start checks again what the write could not know.
    b.write("containers/c/privileged", "false").unwrap();
    let e = b.write("containers/c/ctl", "start").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EPERM);
    assert!(b.read("containers/c/error").contains("volume target /dev/hostdir is under /dev"));
    assert_eq!(b.status("c"), "exited");
    // Nor does a container that takes them through volumes-from.
    b.configure("f", &img, "true");
    b.write("containers/f/volumes-from", "c").expect("volumes-from");
    let e = b.write("containers/f/ctl", "start").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EPERM);
    assert!(b.read("containers/f/error").contains("volume target /dev/hostdir is under /dev"));

    // The daemon's root, its mount, and either through a symlink: refused, nothing changed.
    let alias = b.dir.join("alias");
    std::os::unix::fs::symlink(&b.root, &alias).unwrap();
    fs::create_dir(b.path("containers/d")).unwrap();
    b.write("containers/d/image", &img).unwrap();
    b.write("containers/d/cmd", "cat /v/note").unwrap();
    let bad = [
        b.root.clone(),
        b.root.join("state"),
        b.root.join("store"),
        b.mount.clone(),
        b.mount.join("containers"),
        // Resolving these comes back to the daemon (a lookup of a container, a volume, an image's rootfs):
        // refused all the same, and never waiting on the daemon itself.
        b.mount.join("containers/d"),
        b.mount.join("volumes/vv/data"),
        b.mount.join(format!("images/{img}/rootfs")),
        alias.clone(),
        alias.join("state"),
    ];
    fs::create_dir(b.path("volumes/vv")).unwrap();
    for source in &bad {
        let e = b.write("containers/d/volumes", &format!("{}:/v", source.display())).unwrap_err();
        assert_eq!(Bocker::errno(&e), libc::EPERM, "{}", source.display());
        assert!(b.read("containers/d/error").contains("a container must not reach the daemon's own files"));
        assert_eq!(b.read("containers/d/volumes"), "");
    }
    // An ordinary host directory is accepted; replaced by a symlink into the root after the write, the
    // start refuses it.
    b.write("containers/d/volumes", &format!("{}:/v", host.display())).expect("an ordinary directory");
    b.write("containers/d/ctl", "start").expect("start");
    b.wait_status("d", "exited");
    assert_eq!(b.read("containers/d/logs"), "ordinary\n");
    let moved = b.dir.join("ordinary.real");
    fs::rename(&host, &moved).unwrap();
    std::os::unix::fs::symlink(b.root.join("state"), &host).unwrap();
    let e = b.write("containers/d/ctl", "start").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EPERM);
    assert!(b.read("containers/d/error").contains("inside the daemon's root"));

    // A target that reaches /proc through the image's symlink is refused at the start, by the runtime.
    fs::remove_file(&host).unwrap();
    fs::rename(&moved, &host).unwrap();
    b.configure("e", &img, "true");
    b.write("containers/e/volumes", &format!("{}:/kern/x", host.display())).expect("not under /proc as written");
    let e = b.write("containers/e/ctl", "start").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EPERM);
    assert!(b.read("containers/e/error").contains("resolves into /proc"), "{}", b.read("containers/e/error"));
}

#[test]
fn a_volume_holding_the_daemons_root_and_mount_shows_them_empty() {
    let b = Bocker::start("vol-mask");
    let img = b.import("");
    // The test's directory holds the daemon's root and mount, and an ordinary directory beside them.
    fs::create_dir_all(b.dir.join("ordinary")).unwrap();
    fs::write(b.dir.join("ordinary/note"), "beside\n").unwrap();
    assert!(b.mount.join("README").exists() && b.root.join("state").is_dir(), "both hold something on the host");
    let out = run_with(
        &b,
        "c",
        &img,
        &format!("{}:/t", b.dir.display()),
        "cat /t/ordinary/note; echo mnt=$(ls -A /t/mnt | wc -l) root=$(ls -A /t/root | wc -l); \
         echo x > /t/mnt/README || echo mnt-refused; mkdir /t/root/x || echo root-refused; echo x > /t/new && echo rw-ok",
    );
    for line in ["beside", "mnt=0 root=0", "mnt-refused", "root-refused", "rw-ok"] {
        assert!(out.lines().any(|l| l == line), "{line}: {out}");
    }
    assert_eq!(fs::read_to_string(b.dir.join("new")).unwrap(), "x\n", "the volume itself is writable");
    assert!(b.mount.join("README").exists(), "the host's mount is untouched");
}

#[test]
fn a_setuid_file_in_a_volume_raises_nothing() {
    let b = Bocker::start("vol-suid");
    let rootfs = b.rootfs();
    common::probe::install("euid", &rootfs);
    common::probe::install("runas", &rootfs);
    let suid = |p: &Path| fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o4755)).unwrap();
    let img = b.import("");
    let src = b.dir.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::copy(rootfs.join("bin/euid"), src.join("euid")).unwrap();
    suid(&src.join("euid"));
    // `runas 1000 PROG` runs PROG as uid 1000.
    let as_user = "/bin/runas 1000";
    // Control on the host: the setuid bit takes.
    let host = std::process::Command::new(rootfs.join("bin/runas"))
        .arg("1000")
        .arg(src.join("euid"))
        .output()
        .expect("euid probe");
    assert_eq!(String::from_utf8_lossy(&host.stdout), "uid=1000 euid=0\n");
    // A privileged container (no no_new_privs): the bit takes on a copy in a tmpfs it mounts itself
    // (control), not through the volume. Its volumes keep their devices (nosuid only), as its /dev does.
    null_node(&src.join("null"));
    let line = format!(
        "mkdir -p /t && mount -t tmpfs t /t && cp /v/euid /t/euid && chmod 4755 /t/euid && {as_user} /t/euid; \
         {as_user} /v/euid; cat /v/null && echo dev-opened"
    );
    b.configure("c", &img, &format!("sh -c '{line}'"));
    b.write("containers/c/privileged", "true").unwrap();
    b.write("containers/c/volumes", &format!("{}:/v", src.display())).unwrap();
    b.write("containers/c/ctl", "start").expect("start");
    b.wait_status("c", "exited");
    assert_eq!(b.read("containers/c/logs"), "uid=1000 euid=0\nuid=1000 euid=1000\ndev-opened\n");
}

#[test]
fn a_fifo_where_a_file_volume_goes_refuses_the_start_and_blocks_nothing() {
    let b = Bocker::start("vol-fifo");
    let rootfs = b.rootfs();
    nix::unistd::mkfifo(&rootfs.join("etc/trap"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let img = b.import("");
    let file = b.dir.join("note");
    fs::write(&file, "a file volume\n").unwrap();
    b.configure("c", &img, "cat /etc/trap");
    b.write("containers/c/volumes", &format!("{}:/etc/trap", file.display())).unwrap();
    let e = b.write("containers/c/ctl", "start").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EINVAL, "{e}");
    assert!(
        b.read("containers/c/error").contains("a file mounts only over a file"),
        "{}",
        b.read("containers/c/error")
    );
    assert_eq!(b.status("c"), "created");
    // Positive control: the same volume over a regular file (and over nothing) mounts, and starts go on.
    let out = run_with(
        &b,
        "d",
        &img,
        &format!("{}:/etc/hostname\n{}:/etc/new", file.display(), file.display()),
        "cat /etc/hostname /etc/new",
    );
    assert_eq!(out, "a file volume\na file volume\n");
}

/// Unmounts a bind mount the test made, also on failure (dropped before the harness removes its directory).
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn the_daemons_root_by_another_path_is_no_source_either() {
    let b = Bocker::start("vol-alias");
    let img = b.import("");
    // The test's directory bound at a second path: the daemon's root is there too, under another name.
    let alias = b.dir.join("alias");
    fs::create_dir(&alias).unwrap();
    nix::mount::mount(Some(&b.dir), &alias, None::<&str>, nix::mount::MsFlags::MS_BIND, None::<&str>).unwrap();
    let _unmount = Unmount(alias.clone());
    b.configure("c", &img, "ls /v");
    for source in [alias.join("root"), alias.join("root/state")] {
        let e = b.write("containers/c/volumes", &format!("{}:/v", source.display())).unwrap_err();
        assert_eq!(Bocker::errno(&e), libc::EPERM, "{}", source.display());
        assert!(b.read("containers/c/error").contains("by another path"), "{}", b.read("containers/c/error"));
    }
    // Positive control: a directory beside it, through the same alias, is accepted.
    fs::create_dir(b.dir.join("plain")).unwrap();
    fs::write(b.dir.join("plain/f"), "ok\n").unwrap();
    let out = run_with(&b, "d", &img, &format!("{}:/v", alias.join("plain").display()), "cat /v/f");
    assert_eq!(out, "ok\n");
}
