//! An image's config means what it means on Docker: arguments follow its entrypoint, a new `entrypoint`
//! drops its Cmd, its User (or the container's `user`) runs the command with ids from the container's own
//! `/etc/passwd` and `/etc/group`, its WorkingDir, the container's hostname, its StopSignal, labels and
//! exposed ports; and a container keeps all of it when its image goes.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::Bocker;

/// An image shaped like the official redis one, on busybox: an entrypoint script that says what it got
/// and execs it, a Cmd, a user of its own, a working directory, a stop signal, a port and a label.
fn redis_like(b: &Bocker) -> String {
    let root = b.rootfs();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nredis:x:999:1000::/data:/bin/sh\n").unwrap();
    fs::write(root.join("etc/group"), "root:x:0:\nwheel:x:10:root,redis\nredis:x:1000:\nstaff:x:50:\n").unwrap();
    let entrypoint = root.join("usr/local/bin/docker-entrypoint.sh");
    fs::create_dir_all(entrypoint.parent().unwrap()).unwrap();
    fs::write(&entrypoint, "#!/bin/sh\necho \"entrypoint: $*\"\nexec \"$@\"\n").unwrap();
    fs::set_permissions(&entrypoint, fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir_all(root.join("data")).unwrap();
    b.import(
        "ENTRYPOINT [\"docker-entrypoint.sh\"]\nCMD [\"id\", \"-u\"]\nUSER redis\nWORKDIR /data\n\
         STOPSIGNAL SIGQUIT\nEXPOSE 6379\nLABEL org.test.kind=redis\n",
    )
}

/// Makes container `name` of `img` with `files` written before it starts, runs it to its end, and gives
/// its logs.
fn run_with(b: &Bocker, name: &str, img: &str, files: &[(&str, &str)]) -> String {
    fs::create_dir(b.path(&format!("containers/{name}"))).unwrap();
    b.write(&format!("containers/{name}/image"), img).unwrap();
    for (file, value) in files {
        b.write(&format!("containers/{name}/{file}"), value).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    b.write(&format!("containers/{name}/ctl"), "start").unwrap();
    b.wait_status(name, "exited");
    b.read(&format!("containers/{name}/logs"))
}

const PROBE: &str = "sh -c 'id -u; id -G; pwd; echo $HOME; hostname'";

#[test]
fn arguments_follow_the_entrypoint_as_the_images_user_in_its_working_directory() {
    let b = Bocker::start("cfg-run");
    let img = redis_like(&b);
    // The image's own Cmd after its entrypoint.
    assert_eq!(run_with(&b, "plain", &img, &[]), "entrypoint: id -u\n999\n");
    assert_eq!(b.read("containers/plain/entrypoint"), "docker-entrypoint.sh\n");
    assert_eq!(b.read("containers/plain/cmd"), "id -u\n");
    assert_eq!(b.read("containers/plain/user"), "redis\n");
    assert_eq!(b.read("containers/plain/workdir"), "/data\n");
    assert_eq!(b.read("containers/plain/hostname"), "plain\n");
    // Arguments replace the Cmd and still go through the entrypoint; the user's groups and home are its
    // passwd and group entries'.
    let logs = run_with(&b, "args", &img, &[("cmd", PROBE)]);
    assert_eq!(logs, "entrypoint: sh -c id -u; id -G; pwd; echo $HOME; hostname\n999\n1000 10\n/data\n/data\nargs\n");
    // containers/run gives arguments the same way.
    let id = b.run_to_exit(&format!("{img} echo redis-server --appendonly yes"));
    assert_eq!(
        b.read(&format!("containers/{id}/logs")),
        "entrypoint: echo redis-server --appendonly yes\nredis-server --appendonly yes\n"
    );
}

#[test]
fn user_entrypoint_workdir_and_hostname_of_the_containers_own() {
    let b = Bocker::start("cfg-own");
    let img = redis_like(&b);
    // A uid:gid of no entry: those ids, no supplementary group, home /.
    let logs = run_with(&b, "ids", &img, &[("entrypoint", ""), ("cmd", PROBE), ("user", "1234:50")]);
    assert_eq!(logs, "entrypoint: sh -c id -u; id -G; pwd; echo $HOME; hostname\n1234\n50\n/data\n/\nids\n");
    // A name: its entry's ids and groups. A new entrypoint drops the image's Cmd.
    let logs = run_with(
        &b,
        "root",
        &img,
        &[("user", "root"), ("entrypoint", PROBE), ("workdir", "/made/here"), ("hostname", "web-1.test")],
    );
    assert_eq!(logs, "0\n0 10\n/made/here\n/root\nweb-1.test\n");
    assert_eq!(b.read("containers/root/cmd"), "", "the image's Cmd does not follow a new entrypoint");
    let logs = run_with(&b, "echo", &img, &[("entrypoint", "echo"), ("cmd", "hi there")]);
    assert_eq!(logs, "hi there\n");
    // Blank is the image's again.
    b.write("containers/root/user", "\n").unwrap();
    assert_eq!(b.read("containers/root/user"), "redis\n");
}

#[test]
fn an_unknown_user_fails_the_start_in_dockers_words_and_bad_values_are_refused() {
    let b = Bocker::start("cfg-bad");
    let img = redis_like(&b);
    fs::create_dir(b.path("containers/c")).unwrap();
    b.write("containers/c/image", &img).unwrap();
    b.write("containers/c/user", "nobody").unwrap();
    let err = b.write("containers/c/ctl", "start").unwrap_err();
    assert_eq!(Bocker::errno(&err), libc::ENOENT);
    assert!(b.read("containers/c/error").contains("unable to find user nobody"), "{}", b.read("containers/c/error"));
    assert_ne!(b.status("c"), "running");
    for (file, value) in
        [("user", "a b"), ("workdir", "relative"), ("hostname", "-bad"), ("stop_signal", "SIGNOPE"), ("labels", "x")]
    {
        let before = b.read(&format!("containers/c/{file}"));
        let err = b.write(&format!("containers/c/{file}"), value).unwrap_err();
        assert_eq!(Bocker::errno(&err), libc::EINVAL, "{file} <- {value}");
        assert_eq!(b.read(&format!("containers/c/{file}")), before, "{file} changed");
        assert!(b.read("containers/c/error").contains(file), "{file}: {}", b.read("containers/c/error"));
    }
}

#[test]
fn stop_sends_the_images_stop_signal_and_labels_and_ports_show() {
    let b = Bocker::start("cfg-stop");
    let img = redis_like(&b);
    let trap = "sh -c 'trap \"echo got QUIT; exit 0\" QUIT; trap \"echo got TERM; exit 3\" TERM; \
                echo ready; while :; do sleep 0.1; done'";
    for (name, signal, code, said) in [("quit", None, "0\n", "got QUIT"), ("term", Some("TERM"), "3\n", "got TERM")] {
        fs::create_dir(b.path(&format!("containers/{name}"))).unwrap();
        b.write(&format!("containers/{name}/image"), &img).unwrap();
        b.write(&format!("containers/{name}/entrypoint"), trap).unwrap();
        if let Some(signal) = signal {
            b.write(&format!("containers/{name}/stop_signal"), signal).unwrap();
        }
        b.write(&format!("containers/{name}/ctl"), "start").unwrap();
        // pid 1 drops a signal it has no handler for yet: stop only once the traps are set.
        let logs = format!("containers/{name}/logs");
        common::eventually(Duration::from_secs(30), || b.read(&logs), || b.read(&logs) == "ready\n");
        b.write(&format!("containers/{name}/ctl"), "stop 30").unwrap();
        assert_eq!(b.read(&format!("containers/{name}/exit_code")), code, "{name}");
        assert_eq!(b.read(&logs), format!("ready\n{said}\n"), "{name}");
    }
    assert_eq!(b.read("containers/quit/stop_signal"), "SIGQUIT\n");
    assert_eq!(b.read("containers/term/stop_signal"), "SIGTERM\n");
    assert_eq!(b.read("containers/quit/exposed_ports"), "6379/tcp\n");
    assert_eq!(b.read("containers/quit/labels"), "org.test.kind=redis\n");
    b.write("containers/quit/labels", "a=1\norg.test.kind=mine\n").unwrap();
    assert_eq!(b.read("containers/quit/labels"), "a=1\norg.test.kind=mine\n");
}

#[test]
fn a_container_keeps_its_images_config_when_the_image_goes_and_exec_runs_as_its_user() {
    let b = Bocker::start("cfg-keep");
    let img = redis_like(&b);
    fs::create_dir(b.path("containers/kept")).unwrap();
    b.write("containers/kept/image", &img).unwrap();
    b.write("containers/kept/cmd", "sleep 1000").unwrap();
    fs::remove_dir(b.path(&format!("images/{img}"))).unwrap();
    assert!(!b.path(&format!("images/{img}")).exists());
    b.write("containers/kept/ctl", "start").unwrap();
    b.wait_status("kept", "running");
    assert_eq!(b.read("containers/kept/logs"), "entrypoint: sleep 1000\n");
    let n = b.submit("containers/kept/exec", "sh -c 'id -u; pwd'").unwrap();
    common::eventually(
        std::time::Duration::from_secs(10),
        || "the exec did not end".into(),
        || b.read(&format!("containers/kept/execs/{n}/status")) == "exited\n",
    );
    assert_eq!(b.read(&format!("containers/kept/execs/{n}/logs")), "999\n/data\n");
    // A commit of it is an image that runs as it did.
    b.write("containers/kept/ctl", "kill").unwrap();
    b.wait_status("kept", "exited");
    let snap = b.submit("containers/kept/commit", "kept-snap").unwrap();
    let config: serde_json::Value = serde_json::from_str(&b.read(&format!("images/{snap}/config.json"))).unwrap();
    assert_eq!(config["config"]["User"], "redis");
    assert_eq!(config["config"]["Entrypoint"], serde_json::json!(["docker-entrypoint.sh"]));
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["sleep", "1000"]));
    assert_eq!(config["config"]["StopSignal"], "SIGQUIT");
}

#[test]
fn an_images_volumes_are_anonymous_volumes_filled_from_it_and_go_with_their_container() {
    let b = Bocker::start("cfg-volume");
    let root = b.rootfs();
    fs::create_dir_all(root.join("data/sub")).unwrap();
    fs::write(root.join("data/seed.txt"), "from the image\n").unwrap();
    fs::set_permissions(root.join("data/seed.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(root.join("data/seed.txt"), Some(999), Some(1000)).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("data/link")).unwrap();
    // A path that is a symlink out of the rootfs: resolved inside it, so the host's file is never copied.
    let host_secret = b.dir.join("host-secret");
    fs::create_dir_all(&host_secret).unwrap();
    fs::write(host_secret.join("secret"), "host only\n").unwrap();
    std::os::unix::fs::symlink(&host_secret, root.join("evil")).unwrap();
    // The same absolute path inside the rootfs, empty: what the symlink means inside the container.
    fs::create_dir_all(root.join(host_secret.strip_prefix("/").unwrap())).unwrap();
    let img = b.import("VOLUME /data\nVOLUME /evil\n");
    let probe = "sh -c 'cat /data/seed.txt; stat -c \"%u:%g %a\" /data/seed.txt; readlink /data/link; \
                 ls /data/sub >/dev/null && echo sub; ls /evil; echo new >> /data/log; cat /data/log'";
    let first = run_with(&b, "v1", &img, &[("cmd", probe)]);
    assert_eq!(first, "from the image\n999:1000 640\n/etc/passwd\nsub\nnew\n");
    let anon: Vec<String> = fs::read_dir(b.path("volumes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("anon_"))
        .collect();
    assert_eq!(anon.len(), 2, "{anon:?}");
    let inspect: serde_json::Value = serde_json::from_str(&b.read("containers/v1/inspect.json")).unwrap();
    let mut mounts: Vec<(String, String)> = inspect["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["Type"].as_str().unwrap().to_string(), m["Destination"].as_str().unwrap().to_string()))
        .collect();
    mounts.sort();
    assert_eq!(mounts, [("volume".to_string(), "/data".to_string()), ("volume".to_string(), "/evil".to_string())]);
    for v in &anon {
        let data = b.path(&format!("volumes/{v}/data"));
        assert!(!data.join("secret").exists(), "the host's file was copied into {v}");
    }
    // The same volume at the next start: what the container wrote is kept.
    b.write("containers/v1/ctl", "start").unwrap();
    b.wait_status("v1", "exited");
    assert!(b.read("containers/v1/logs").ends_with("new\nnew\n"), "{}", b.read("containers/v1/logs"));
    // Another container gets volumes of its own, filled afresh; one that mounts its own there gets none.
    let second = run_with(&b, "v2", &img, &[("cmd", "cat /data/log /data/seed.txt")]);
    assert_eq!(second, "cat: can't open '/data/log': No such file or directory\nfrom the image\n");
    fs::create_dir(b.path("volumes/mine")).unwrap();
    let own = run_with(&b, "v3", &img, &[("volumes", "mine:/data"), ("cmd", "ls -A /data")]);
    assert_eq!(own, "");
    let count = || {
        fs::read_dir(b.path("volumes"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("anon_"))
            .count()
    };
    assert_eq!(count(), 5, "v1 and v2 two each, v3 one (/evil)");
    // A start that can't succeed (no command: the image has none) makes none.
    fs::create_dir(b.path("containers/nocmd")).unwrap();
    b.write("containers/nocmd/image", &img).unwrap();
    assert_eq!(Bocker::errno(&b.write("containers/nocmd/ctl", "start").unwrap_err()), libc::EINVAL);
    assert_eq!(count(), 5);
    // Mounted through volumes-from, v2's stay when v2 goes (as Docker keeps a volume still referenced).
    fs::create_dir(b.path("containers/v4")).unwrap();
    b.write("containers/v4/image", &img).unwrap();
    b.write("containers/v4/volumes-from", "v2").unwrap();
    b.write("containers/v4/cmd", "cat /data/seed.txt").unwrap();
    b.write("containers/v4/ctl", "start").unwrap();
    b.wait_status("v4", "exited");
    assert_eq!(b.read("containers/v4/logs"), "from the image\n");
    assert_eq!(count(), 5, "v4 takes v2's, makes none");
    fs::remove_dir(b.path("containers/v2")).unwrap();
    assert_eq!(count(), 5);
    // They go with their container, and only then.
    let err = fs::remove_dir(b.path(&format!("volumes/{}", anon[0]))).unwrap_err();
    assert_eq!(Bocker::errno(&err), libc::EBUSY);
    fs::remove_dir(b.path("containers/v1")).unwrap();
    assert_eq!(count(), 3);
    for v in &anon {
        assert!(!b.path(&format!("volumes/{v}")).exists());
    }
}

#[test]
fn an_image_shaped_like_the_official_ones_keeps_its_config_through_a_registry() {
    let b = Bocker::start("cfg-registry");
    let reg = common::registry::TestRegistry::start(&b.dir);
    let img = redis_like(&b);
    let reference = reg.reference("library/redis-like:7");
    b.write("images/push", &format!("{img} {reference}")).unwrap();
    fs::remove_dir(b.path(&format!("images/{img}"))).unwrap();
    let pulled = b.submit("images/pull", &reference).unwrap();
    let config: serde_json::Value = serde_json::from_str(&b.read(&format!("images/{pulled}/config.json"))).unwrap();
    assert_eq!(config["config"]["User"], "redis");
    assert_eq!(config["config"]["StopSignal"], "SIGQUIT");
    // Run by its name: through its entrypoint, as its user.
    let id = b.run_to_exit(&format!("{reference} sh -c 'id -u; pwd'"));
    assert_eq!(b.read(&format!("containers/{id}/logs")), "entrypoint: sh -c id -u; pwd\n999\n/data\n");
}

#[test]
fn an_images_passwd_that_points_into_the_kernels_files_is_refused() {
    let b = Bocker::start("cfg-kmsg");
    let root = b.rootfs();
    fs::create_dir_all(root.join("etc")).unwrap();
    let _ = fs::remove_file(root.join("etc/passwd"));
    // pid 1 still holds CAP_SYSLOG when it reads the passwd: a read of /proc/kmsg would eat the host's log.
    std::os::unix::fs::symlink("/proc/kmsg", root.join("etc/passwd")).unwrap();
    let img = b.import("");
    fs::create_dir(b.path("containers/k")).unwrap();
    b.write("containers/k/image", &img).unwrap();
    b.write("containers/k/cmd", "id -u").unwrap();
    let err = b.write("containers/k/ctl", "start").unwrap_err();
    assert_eq!(Bocker::errno(&err), libc::EINVAL);
    assert!(
        b.read("containers/k/error").contains("/etc/passwd is a file of the kernel's"),
        "{}",
        b.read("containers/k/error")
    );
    // Positive control: the same image with a passwd of its own starts.
    let _ = fs::remove_file(root.join("etc/passwd"));
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    let ok = b.import("");
    let id = b.run_to_exit(&format!("{ok} id -u"));
    assert_eq!(b.read(&format!("containers/{id}/logs")), "0\n");
}

/// An executable script at `path` in `b`'s rootfs.
fn script(b: &Bocker, path: &str, text: &str) {
    let file = b.rootfs().join(path.trim_start_matches('/'));
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    fs::write(&file, text).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn images_shaped_like_nginx_and_postgres_run_and_stop_as_their_configs_say() {
    let b = Bocker::start("cfg-official");
    // nginx's shape: an entrypoint script, `nginx -g "daemon off;"` as Cmd, port 80, SIGQUIT to stop.
    script(
        &b,
        "/docker-entrypoint.sh",
        "#!/bin/sh\n[ \"$1\" = nginx ] && trap 'echo quit; exit 0' QUIT\necho \"entry: $*\"\n\
         if [ \"$1\" = nginx ]; then while :; do sleep 0.1; done; fi\nexec \"$@\"\n",
    );
    // postgres's: its data directory a VOLUME the image fills, PGDATA, SIGINT to stop, port 5432.
    script(
        &b,
        "/usr/local/bin/docker-entrypoint.sh",
        "#!/bin/sh\nif [ \"$1\" = postgres ]; then trap 'echo fast shutdown; exit 0' INT; cat \"$PGDATA/PG_VERSION\"; \
         while :; do sleep 0.1; done; fi\nexec \"$@\"\n",
    );
    fs::create_dir_all(b.rootfs().join("var/lib/postgresql/data")).unwrap();
    fs::write(b.rootfs().join("var/lib/postgresql/data/PG_VERSION"), "16\n").unwrap();
    let nginx = b.import(
        "ENTRYPOINT [\"/docker-entrypoint.sh\"]\nCMD [\"nginx\", \"-g\", \"daemon off;\"]\nEXPOSE 80\nSTOPSIGNAL SIGQUIT\n",
    );
    let postgres = b.import(
        "ENTRYPOINT [\"docker-entrypoint.sh\"]\nCMD [\"postgres\"]\nENV PGDATA=/var/lib/postgresql/data\n\
         VOLUME /var/lib/postgresql/data\nEXPOSE 5432/tcp\nSTOPSIGNAL SIGINT\n",
    );
    for (name, img, said, ports) in [
        ("web", &nginx, "entry: nginx -g daemon off;\nquit\n", "80/tcp\n"),
        ("db", &postgres, "16\nfast shutdown\n", "5432/tcp\n"),
    ] {
        fs::create_dir(b.path(&format!("containers/{name}"))).unwrap();
        b.write(&format!("containers/{name}/image"), img).unwrap();
        b.write(&format!("containers/{name}/ctl"), "start").unwrap();
        b.wait_status(name, "running");
        // Its first line comes after its trap is set: pid 1 drops a signal it has no handler for yet.
        common::eventually(
            std::time::Duration::from_secs(10),
            || format!("{name} has not said its first line"),
            || !b.read(&format!("containers/{name}/logs")).is_empty(),
        );
        b.write(&format!("containers/{name}/ctl"), "stop 30").unwrap();
        assert_eq!(b.read(&format!("containers/{name}/exit_code")), "0\n", "{name}: its stop signal reached its trap");
        assert_eq!(b.read(&format!("containers/{name}/logs")), said, "{name}");
        assert_eq!(b.read(&format!("containers/{name}/exposed_ports")), ports, "{name}");
    }
    // Arguments replace nginx's Cmd and still go through its entrypoint, as `docker run nginx echo hi`.
    let id = b.run_to_exit(&format!("{nginx} echo hi"));
    assert_eq!(b.read(&format!("containers/{id}/logs")), "entry: echo hi\nhi\n");
}
