//! Volumes on a real btrfs store and real bind mounts: host paths, named volumes (`volumes/NAME`, a
//! subvolume each) whose data outlives containers, read-only ones, `volumes-from`, `bocker run -v`, and
//! bad input.

mod common;

use std::fs;

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
