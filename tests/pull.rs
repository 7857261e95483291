//! Pulling from a real registry (Debian's docker-registry on loopback) images the tests craft: layers
//! with whiteouts and an opaque directory, gzip, zstd and plain layers, an index of two platforms, a
//! corrupted blob, malicious tars, basic auth; and pushing a local image and pulling it back.

mod common;

use std::fs;
use std::path::PathBuf;

use common::registry::{config, noise, tar_of, tar_of_dir, Compression, Layer, TestRegistry};
use common::Bocker;

fn pull(b: &Bocker, reference: &str) -> std::io::Result<String> {
    b.submit("images/pull", reference)
}

/// A pull on a thread of its own, as a second shell would run it; joins to the new id.
fn spawn_pull(b: &Bocker, reference: &str) -> std::thread::JoinHandle<std::io::Result<String>> {
    let (mount, reference) = (b.mount.clone(), reference.to_string());
    std::thread::spawn(move || {
        let mut f = fs::OpenOptions::new().read(true).write(true).open(mount.join("images/pull"))?;
        std::io::Write::write_all(&mut f, reference.as_bytes())?;
        let mut id = String::new();
        std::io::Read::read_to_string(&mut f, &mut id)?;
        Ok(id.trim().to_string())
    })
}

fn errno(r: std::io::Result<String>) -> i32 {
    Bocker::errno(&r.expect_err("the pull should fail"))
}

fn list(dir: PathBuf) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.file_name().into_string().unwrap()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Nothing a failed pull could leave: no image, no layer or staging subvolume, no blob file.
fn assert_nothing_left(b: &Bocker, images_before: &[String]) {
    assert_eq!(
        list(b.path("images")).iter().filter(|n| n.starts_with("img_")).cloned().collect::<Vec<_>>(),
        images_before
    );
    assert_eq!(list(b.root.join("store/images")), images_before.to_vec());
    assert!(list(b.root.join("store/layers")).is_empty(), "layers left: {:?}", list(b.root.join("store/layers")));
    assert!(list(b.root.join("store/blobs")).is_empty(), "blobs left");
    assert!(list(b.root.join("state/images")).len() == images_before.len());
    assert_eq!(b.read("images/pulls"), "", "no pull is shown as under way");
}

/// A busybox base, a gzip layer that whites out and makes a directory opaque, a zstd layer on top.
fn layered(b: &Bocker) -> Vec<Layer> {
    let base = tar_of_dir(&b.rootfs());
    let lower = tar_of(&[
        ("etc/", 'd', ""),
        ("etc/gone", 'f', "x"),
        ("opq/", 'd', ""),
        ("opq/lower", 'f', "l"),
        ("keep", 'f', "k"),
    ]);
    let upper =
        tar_of(&[("etc/.wh.gone", 'f', ""), ("opq/new", 'f', "n"), ("opq/.wh..wh..opq", 'f', ""), ("work/", 'd', "")]);
    let top = tar_of(&[("zstd-file", 'f', "from zstd"), ("etc/hardlink", 'h', "keep")]);
    vec![
        Layer::new(base, Compression::None),
        Layer::new(lower, Compression::Gzip),
        Layer::new(upper, Compression::Gzip),
        Layer::new(top, Compression::Zstd),
    ]
}

#[test]
fn a_layered_image_is_unpacked_as_the_spec_says_and_runs_with_its_config() {
    let b = Bocker::start("pull");
    let reg = TestRegistry::start(&b.dir);
    let layers = layered(&b);
    let (digest, _) = reg.push_image(
        "team/app:v1",
        &layers,
        config(&["PATH=/bin", "GREETING=hi"], &["sh", "-c", "echo $GREETING from $(pwd)"], "/work"),
    );
    let reference = reg.reference("team/app:v1");
    let id = pull(&b, &reference).unwrap();
    assert!(id.starts_with("img_"), "{id}");
    let dir = format!("images/{id}");
    assert_eq!(b.read(&format!("{dir}/source")), format!("{reference}\n"));
    assert_eq!(b.read(&format!("{dir}/digest")), format!("{digest}\n"));
    let expected: String = layers.iter().map(|l| format!("{}\n", common::registry::sha256(&l.blob))).collect();
    assert_eq!(b.read(&format!("{dir}/layers")), expected);
    let rootfs = fs::read_link(b.path(&format!("{dir}/rootfs"))).unwrap();
    assert!(!rootfs.join("etc/gone").exists(), "whiteout");
    assert_eq!(list(rootfs.join("opq")), vec!["new"], "opaque directory keeps only the upper layer's entries");
    assert_eq!(fs::read_to_string(rootfs.join("zstd-file")).unwrap(), "from zstd");
    assert_eq!(fs::read_to_string(rootfs.join("etc/hardlink")).unwrap(), "k");
    assert!(fs::symlink_metadata(rootfs.join("bin/sh")).unwrap().file_type().is_symlink());
    assert_eq!(list(b.root.join("store/layers")).len(), 4, "a subvolume per layer, by chain id");
    // Run it: the config's Env, Cmd and WorkingDir apply.
    let run = b.run_to_exit(&id);
    assert_eq!(b.read(&format!("containers/{run}/logs")), "hi from /work\n");

    // The same image again: the same id, nothing new downloaded.
    assert_eq!(pull(&b, &reference).unwrap(), id);
    assert!(b.daemon_log().contains("image is here already"));
    // Another image on the same base stores only what is new.
    let mut other = layered(&b);
    other.truncate(2);
    other.push(Layer::new(tar_of(&[("other", 'f', "o")]), Compression::Gzip));
    reg.push_image("team/other:v1", &other, config(&["PATH=/bin"], &["cat", "/other"], "/"));
    let other_id = pull(&b, &reg.reference("team/other:v1")).unwrap();
    assert_ne!(other_id, id);
    assert_eq!(list(b.root.join("store/layers")).len(), 5, "the two shared layers are stored once");
    // rmi drops the layers only that image stood on.
    fs::remove_dir(b.path(&format!("images/{other_id}"))).unwrap();
    assert_eq!(list(b.root.join("store/layers")).len(), 4);
}

#[test]
fn an_index_gives_this_hosts_platform_or_the_one_asked_for() {
    let b = Bocker::start("index");
    let reg = TestRegistry::start(&b.dir);
    let base = || Layer::new(tar_of_dir(&b.rootfs()), Compression::Gzip);
    let mut amd = config(&["PATH=/bin"], &["cat", "/arch"], "/");
    amd["architecture"] = "amd64".into();
    let mut arm = amd.clone();
    arm["architecture"] = "arm64".into();
    arm["variant"] = "v8".into();
    let m1 =
        reg.push_image("multi:amd64", &[base(), Layer::new(tar_of(&[("arch", 'f', "amd64")]), Compression::Gzip)], amd);
    let m2 =
        reg.push_image("multi:arm64", &[base(), Layer::new(tar_of(&[("arch", 'f', "arm64")]), Compression::Gzip)], arm);
    reg.push_index(
        "multi:latest",
        &[(m1.0, m1.1, "linux", "amd64", None), (m2.0.clone(), m2.1, "linux", "arm64", Some("v8"))],
    );
    let reference = reg.reference("multi:latest");
    let host_arch = if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" };
    let id = pull(&b, &reference).unwrap();
    let rootfs = fs::read_link(b.path(&format!("images/{id}/rootfs"))).unwrap();
    assert_eq!(fs::read_to_string(rootfs.join("arch")).unwrap(), host_arch);
    let arm_id = pull(&b, &format!("{reference} platform=linux/arm64/v8")).unwrap();
    let rootfs = fs::read_link(b.path(&format!("images/{arm_id}/rootfs"))).unwrap();
    assert_eq!(fs::read_to_string(rootfs.join("arch")).unwrap(), "arm64");
    assert_eq!(b.read(&format!("images/{arm_id}/digest")), format!("{}\n", m2.0));
    let images: Vec<String> = list(b.path("images")).into_iter().filter(|n| n.starts_with("img_")).collect();
    assert_eq!(errno(pull(&b, &format!("{reference} platform=linux/s390x"))), libc::EOPNOTSUPP);
    assert!(b.read("errors").contains("no linux/s390x image in the index (it has: linux/amd64, linux/arm64/v8)"));
    assert_eq!(list(b.path("images")).into_iter().filter(|n| n.starts_with("img_")).collect::<Vec<_>>(), images);
}

#[test]
fn a_corrupt_blob_fails_the_pull_and_leaves_nothing_then_a_retry_works() {
    let b = Bocker::start("digest");
    let reg = TestRegistry::start(&b.dir);
    let layers = layered(&b);
    reg.push_image("bad:v1", &layers, config(&["PATH=/bin"], &["true"], "/"));
    // Corrupt the third layer's bytes in the registry's own storage.
    let blob = reg.blob_data(&common::registry::sha256(&layers[2].blob));
    let good = fs::read(&blob).unwrap();
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    fs::write(&blob, &bad).unwrap();
    assert_eq!(errno(pull(&b, &reg.reference("bad:v1"))), libc::EREMOTEIO);
    assert!(b.read("errors").contains("images/pull EREMOTEIO"), "{}", b.read("errors"));
    assert_nothing_left(&b, &[]);
    fs::write(&blob, &good).unwrap();
    let id = pull(&b, &reg.reference("bad:v1")).unwrap();
    assert!(b.path(&format!("images/{id}")).is_dir());
}

#[test]
fn malicious_layers_fail_the_pull_and_write_nothing_outside() {
    let b = Bocker::start("evil");
    let reg = TestRegistry::start(&b.dir);
    let outside = b.dir.join("outside");
    fs::create_dir_all(&outside).unwrap();
    let target = outside.display().to_string();
    let escape = format!("../../../../../../../../..{target}/pwned");
    let cases: Vec<(&str, Vec<Layer>)> = vec![
        ("dotdot", vec![Layer::new(tar_of(&[(&escape, 'f', "x")]), Compression::Gzip)]),
        ("absolute", vec![Layer::new(tar_of(&[(&format!("{target}/pwned"), 'f', "x")]), Compression::Gzip)]),
        ("symlink", vec![Layer::new(tar_of(&[("link", 's', &target), ("link/pwned", 'f', "x")]), Compression::Gzip)]),
        (
            "symlink-across-layers",
            vec![
                Layer::new(tar_of(&[("link", 's', &target)]), Compression::Gzip),
                Layer::new(tar_of(&[("link/pwned", 'f', "x")]), Compression::Gzip),
            ],
        ),
        ("hardlink", vec![Layer::new(tar_of(&[("h", 'h', "../../../../../../../etc/passwd")]), Compression::Gzip)]),
    ];
    for (name, layers) in cases {
        reg.push_image(&format!("evil:{name}"), &layers, config(&["PATH=/bin"], &["true"], "/"));
        let got = errno(pull(&b, &reg.reference(&format!("evil:{name}"))));
        assert_eq!(got, libc::EPERM, "{name}");
        let errors = b.read("errors");
        let last = errors.lines().last().unwrap();
        assert!(last.contains("images/pull EPERM") && last.contains("entry '"), "{name}: {last}");
        assert!(list(outside.clone()).is_empty(), "{name} wrote outside the root");
        assert_nothing_left(&b, &[]);
    }
}

#[test]
fn registry_failures_have_their_errno() {
    let b = Bocker::start("regerr");
    let reg = TestRegistry::start(&b.dir);
    reg.push_image(
        "there:v1",
        &[Layer::new(tar_of(&[("f", 'f', "x")]), Compression::Gzip)],
        config(&[], &["true"], "/"),
    );
    assert_eq!(errno(pull(&b, &reg.reference("there:nope"))), libc::ENOENT);
    assert_eq!(errno(pull(&b, &reg.reference("nothere:v1"))), libc::ENOENT);
    assert_eq!(errno(pull(&b, "Bad Reference!")), libc::EINVAL);
    assert_eq!(errno(pull(&b, "a b c")), libc::EINVAL);
    assert_eq!(errno(pull(&b, &format!("{} platform=linux", reg.reference("there:v1")))), libc::EINVAL);
    // Nothing listens there (a port just freed on loopback).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    assert_eq!(errno(pull(&b, &format!("127.0.0.1:{port}/x:v1"))), libc::ECONNREFUSED);
    assert_nothing_left(&b, &[]);
}

#[test]
fn basic_auth_comes_from_the_docker_config() {
    let mut b = Bocker::start("auth");
    let reg = TestRegistry::start_with(&b.dir, Some(("alice", "s3cret")));
    reg.push_image(
        "private:v1",
        &[Layer::new(tar_of(&[("secret", 'f', "s")]), Compression::Gzip)],
        config(&[], &["true"], "/"),
    );
    assert_eq!(errno(pull(&b, &reg.reference("private:v1"))), libc::EACCES);
    // The daemon reads $DOCKER_CONFIG/config.json at each pull.
    let docker = b.dir.join("docker");
    fs::create_dir_all(&docker).unwrap();
    fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths": {{"{}": {{"auth": "YWxpY2U6czNjcmV0"}}}}}}"#, reg.addr),
    )
    .unwrap();
    b.stop_daemon();
    b.env.push(("DOCKER_CONFIG".into(), docker.display().to_string()));
    b.spawn_daemon();
    let id = pull(&b, &reg.reference("private:v1")).unwrap();
    let rootfs = fs::read_link(b.path(&format!("images/{id}/rootfs"))).unwrap();
    assert_eq!(fs::read_to_string(rootfs.join("secret")).unwrap(), "s");
}

#[test]
fn a_local_image_pushed_and_pulled_back_runs_the_same() {
    let b = Bocker::start("push");
    let reg = TestRegistry::start(&b.dir);
    let img = b.import("ENV WHO=pushed\nWORKDIR /tmp\nCMD [\"sh\", \"-c\", \"echo $WHO in $(pwd); ls /.dotfile\"]");
    let first = b.run_to_exit(&img);
    let expected = b.read(&format!("containers/{first}/logs"));
    assert_eq!(expected, "pushed in /tmp\n/.dotfile\n");
    let digest = b.submit("images/push", &format!("{img} {}", reg.reference("roundtrip:v1"))).unwrap();
    assert!(digest.starts_with("sha256:"), "{digest}");
    let pulled = pull(&b, &reg.reference("roundtrip:v1")).unwrap();
    assert_ne!(pulled, img);
    assert_eq!(b.read(&format!("images/{pulled}/digest")), format!("{digest}\n"));
    let second = b.run_to_exit(&pulled);
    assert_eq!(b.read(&format!("containers/{second}/logs")), expected);
    assert_eq!(errno(b.submit("images/push", &format!("img_nope {}", reg.reference("x:v1")))), libc::ENOENT);
    // The root's events tell the push (its digest) and the pull (the name it gave), and nothing of the
    // failed push.
    let events = b.read("events");
    let reference = reg.reference("roundtrip:v1");
    assert!(events.contains(&format!(" image {img} push ref={reference} digest={digest}\n")), "{events}");
    assert!(events.contains(&format!(" image {pulled} pull ref={reference}\n")), "{events}");
    assert_eq!(events.matches(" push ").count(), 1, "{events}");
}

#[test]
fn progress_shows_while_a_pull_runs_and_the_image_appears_only_when_complete() {
    let b = Bocker::start("progress");
    let reg = TestRegistry::start(&b.dir);
    let big = noise(24 << 20);
    let layers = vec![
        Layer::new(tar_of_dir(&b.rootfs()), Compression::Gzip),
        Layer::new(tar_of(&[("big", 'f', &big)]), Compression::Gzip),
    ];
    reg.push_image("big:v1", &layers, config(&["PATH=/bin"], &["true"], "/"));
    let reference = reg.reference("big:v1");
    let puller = spawn_pull(&b, &reference);
    let mut seen = Vec::new();
    while !puller.is_finished() {
        let text = b.read("images/pulls");
        if !text.is_empty() {
            seen.push(text);
        }
        // Whenever the image is listed, it is whole: its records and every byte of its last layer.
        for id in list(b.path("images")).into_iter().filter(|n| n.starts_with("img_")) {
            assert_eq!(b.read(&format!("images/{id}/layers")).lines().count(), 2, "listed before its records");
            let rootfs = fs::read_link(b.path(&format!("images/{id}/rootfs"))).unwrap();
            assert_eq!(fs::metadata(rootfs.join("big")).map(|m| m.len()).unwrap_or(0), big.len() as u64);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let id = puller.join().unwrap().unwrap();
    assert!(b.path(&format!("images/{id}")).is_dir());
    assert!(!seen.is_empty(), "images/pulls never showed the pull");
    let big_digest = common::registry::sha256(&layers[1].blob);
    let line = seen.iter().flat_map(|t| t.lines()).find(|l| l.contains(&big_digest)).expect("a line for the big layer");
    let words: Vec<&str> = line.split(' ').collect();
    assert_eq!(words[0], reference);
    assert_eq!(words[3], layers[1].blob.len().to_string(), "total: {line}");
    assert!(["waiting", "downloading", "downloaded", "applying", "done"].contains(&words[4]), "{line}");
    assert_eq!(b.read("images/pulls"), "", "gone once the pull ended");
}

#[test]
fn concurrent_pulls_of_one_reference_download_once() {
    let b = Bocker::start("concurrent");
    let reg = TestRegistry::start(&b.dir);
    reg.push_image("same:v1", &layered(&b), config(&["PATH=/bin"], &["true"], "/"));
    let reference = reg.reference("same:v1");
    let pullers: Vec<_> = (0..3).map(|_| spawn_pull(&b, &reference)).collect();
    let ids: Vec<String> = pullers.into_iter().map(|p| p.join().unwrap().unwrap()).collect();
    assert!(ids.iter().all(|i| i == &ids[0]), "{ids:?}");
    let log = b.daemon_log();
    assert_eq!(log.matches("pulled image").count(), 1, "one download");
    assert_eq!(log.matches("image is here already").count(), 2);
}

#[test]
fn the_command_line_pulls_with_progress_and_pushes() {
    let b = Bocker::start("clipull");
    let reg = TestRegistry::start(&b.dir);
    let img = b.import("");
    let push = b.cli(&["push", &img, &reg.reference("cli/app:v1")]);
    let out = String::from_utf8_lossy(&push.stdout).into_owned();
    assert!(push.status.success(), "{}", String::from_utf8_lossy(&push.stderr));
    assert!(out.starts_with(&format!("Pushed: {}@sha256:", reg.reference("cli/app:v1"))), "{out}");
    // bocker's two-word form, NAME TAG; not a terminal, so a line per layer state, then Created.
    let pull = b.cli(&["pull", &reg.reference("cli/app"), "v1"]);
    let out = String::from_utf8_lossy(&pull.stdout).into_owned();
    assert!(pull.status.success(), "{}", String::from_utf8_lossy(&pull.stderr));
    let last = out.lines().last().unwrap();
    let id = last.strip_prefix("Created: ").expect(&out);
    assert!(b.path(&format!("images/{id}")).is_dir());
    assert_eq!(b.read(&format!("images/{id}/source")), format!("{}:v1\n", reg.reference("cli/app")));
    let missing = b.cli(&["pull", &reg.reference("cli/none:v1")]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("cli/none:v1"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}

#[test]
fn a_registry_that_dies_mid_pull_fails_it_cleanly() {
    let b = Bocker::start("cut");
    let mut reg = TestRegistry::start(&b.dir);
    let layers = vec![
        Layer::new(tar_of_dir(&b.rootfs()), Compression::Gzip),
        Layer::new(tar_of(&[("big", 'f', &noise(128 << 20))]), Compression::None),
    ];
    reg.push_image("cut:v1", &layers, config(&["PATH=/bin"], &["true"], "/"));
    let puller = spawn_pull(&b, &reg.reference("cut:v1"));
    // Kill the registry once the big layer is on its way.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !b.read("images/pulls").contains("downloading") && !puller.is_finished() {
        assert!(std::time::Instant::now() < deadline, "the pull never started downloading");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    reg.kill();
    let err = puller.join().unwrap().expect_err("the pull should fail");
    let errno = Bocker::errno(&err);
    assert!(
        [libc::ECONNRESET, libc::ECONNREFUSED, libc::EREMOTEIO].contains(&errno),
        "errno {errno}: {}",
        b.read("errors")
    );
    assert_nothing_left(&b, &[]);
}

#[test]
fn a_store_that_fills_during_a_pull_is_enospc_and_leaves_nothing() {
    let b = Bocker::start_sized("pullfull", "256M");
    let reg = TestRegistry::start(&b.dir);
    // 300 MiB that no compression shrinks: more than the store holds.
    let layers = vec![Layer::new(tar_of(&[("huge", 'f', &noise(300 << 20))]), Compression::None)];
    reg.push_image("huge:v1", &layers, config(&["PATH=/bin"], &["true"], "/"));
    assert_eq!(errno(pull(&b, &reg.reference("huge:v1"))), libc::ENOSPC);
    assert!(b.read("errors").contains("images/pull ENOSPC"), "{}", b.read("errors"));
    assert_nothing_left(&b, &[]);
    // The space is back: a small pull works.
    reg.push_image(
        "small:v1",
        &[Layer::new(tar_of(&[("f", 'f', "x")]), Compression::Gzip)],
        config(&[], &["true"], "/"),
    );
    pull(&b, &reg.reference("small:v1")).unwrap();
}

#[test]
fn docker_v2_schema_2_images_pull_too() {
    let b = Bocker::start("dockerv2");
    let reg = TestRegistry::start(&b.dir);
    let layers = vec![
        Layer::new(tar_of_dir(&b.rootfs()), Compression::Gzip),
        Layer::new(tar_of(&[("from-docker", 'f', "yes")]), Compression::Gzip),
    ];
    let (digest, _) =
        reg.push_docker_image("docker:v2", &layers, config(&["PATH=/bin"], &["cat", "/from-docker"], "/"));
    let id = pull(&b, &reg.reference("docker:v2")).unwrap();
    assert_eq!(b.read(&format!("images/{id}/digest")), format!("{digest}\n"));
    let run = b.run_to_exit(&id);
    assert_eq!(b.read(&format!("containers/{run}/logs")), "yes");
}

#[test]
fn by_digest_and_unsupported_media_types() {
    let b = Bocker::start("bydigest");
    let reg = TestRegistry::start(&b.dir);
    let layers = vec![Layer::new(tar_of(&[("f", 'f', "x")]), Compression::Gzip)];
    let (digest, _) = reg.push_image("pinned:v1", &layers, config(&[], &["true"], "/"));
    let by_tag = pull(&b, &reg.reference("pinned:v1")).unwrap();
    let by_digest = pull(&b, &format!("{}@{digest}", reg.reference("pinned"))).unwrap();
    assert_eq!(by_digest, by_tag, "the id comes from the image, not from how it was named");
    // A layer type this runtime can't read.
    let mut odd = Layer::new(tar_of(&[("f", 'f', "x")]), Compression::None);
    odd.media_type = "application/x-bzip2";
    reg.push_image("odd:v1", &[odd], config(&[], &["true"], "/"));
    assert_eq!(errno(pull(&b, &reg.reference("odd:v1"))), libc::EOPNOTSUPP);
    assert!(b.read("errors").contains("unsupported media type application/x-bzip2"));
}

#[test]
fn a_daemon_killed_mid_pull_leaves_nothing_and_the_pull_works_again() {
    let mut b = Bocker::start("killpull");
    let reg = TestRegistry::start(&b.dir);
    let layers = vec![
        Layer::new(tar_of_dir(&b.rootfs()), Compression::Gzip),
        Layer::new(tar_of(&[("big", 'f', &noise(128 << 20))]), Compression::None),
    ];
    reg.push_image("killed:v1", &layers, config(&["PATH=/bin"], &["true"], "/"));
    let reference = reg.reference("killed:v1");
    let puller = spawn_pull(&b, &reference);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !b.read("images/pulls").contains("downloading") && !puller.is_finished() {
        assert!(std::time::Instant::now() < deadline, "the pull never started downloading");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    b.crash_daemon();
    assert!(puller.join().unwrap().is_err(), "the pull can't have succeeded");
    b.spawn_daemon();
    assert_nothing_left(&b, &[]);
    let id = pull(&b, &reference).unwrap();
    let rootfs = fs::read_link(b.path(&format!("images/{id}/rootfs"))).unwrap();
    assert_eq!(fs::metadata(rootfs.join("big")).unwrap().len(), 128 << 20);
}

/// `.wh.`, `.wh..` and `.wh...` (nothing, the layer's directory, its parent: the other pulls' layers) are
/// refused with EPERM naming the entry, and leave nothing of the failed pull; another pull's layers (an
/// ordinary whiteout and an opaque directory in them), the host outside and the image made of them stay
/// whole and run.
#[test]
fn whiteouts_of_nothing_dot_and_dotdot_are_refused_and_touch_nothing() {
    let b = Bocker::start("whiteout-dots");
    let reg = TestRegistry::start(&b.dir);
    let outside = b.dir.join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("keep"), "host").unwrap();
    // Positive control: ordinary and opaque whiteouts work, in a pull whose layers must survive the rest.
    reg.push_image("good:v1", &layered(&b), config(&["PATH=/bin"], &["true"], "/"));
    let good = pull(&b, &reg.reference("good:v1")).expect("a layer with ordinary whiteouts pulls");
    let layers = list(b.root.join("store/layers"));
    assert_eq!(layers.len(), 4);
    let id = b.run_to_exit(&format!("{good} sh -c 'test ! -e /etc/gone && ls /opq'"));
    assert_eq!(b.read(&format!("containers/{id}/logs")), "new\n");

    let base = Layer::new(tar_of_dir(&b.rootfs()), Compression::None);
    for (tag, entry) in [("nothing", ".wh."), ("dot", ".wh.."), ("dotdot", ".wh..."), ("deep", "etc/.wh...")] {
        let evil = Layer::new(tar_of(&[("etc/", 'd', ""), (entry, 'f', "")]), Compression::Gzip);
        let base = Layer::new(base.blob.clone(), Compression::None);
        reg.push_image(&format!("evil:{tag}"), &[base, evil], config(&["PATH=/bin"], &["true"], "/"));
        let got = errno(pull(&b, &reg.reference(&format!("evil:{tag}"))));
        assert_eq!(got, libc::EPERM, "{entry}");
        let errors = b.read("errors");
        let last = errors.lines().last().unwrap();
        assert!(last.contains("images/pull EPERM") && last.contains(&format!("entry '{entry}'")), "{last}");
        assert_eq!(list(b.root.join("store/layers")), layers, "{entry}: the other pull's layers are intact");
        assert_eq!(list(b.root.join("store/images")), vec![good.clone()], "{entry}: nothing left of it");
        assert!(list(b.root.join("store/blobs")).is_empty());
        assert_eq!(fs::read_to_string(outside.join("keep")).unwrap(), "host");
    }
    let id = b.run_to_exit(&format!("{good} cat /keep /zstd-file"));
    assert_eq!(b.read(&format!("containers/{id}/logs")), "kfrom zstd");
}

/// `d/`, `d/x/`, then `d -> OUTSIDE`: the layer's directory times are set at its end, and must not go
/// through the symlink to the host's OUTSIDE/x. Nothing outside changes; the image has the symlink.
#[test]
fn directory_times_never_reach_through_a_later_symlink() {
    let b = Bocker::start("dir-times");
    let reg = TestRegistry::start(&b.dir);
    let outside = b.dir.join("outside");
    fs::create_dir_all(outside.join("x")).unwrap();
    fs::write(outside.join("x/file"), "host").unwrap();
    let stamp = |p: &std::path::Path| {
        use std::os::unix::fs::MetadataExt;
        let m = fs::symlink_metadata(p).unwrap();
        (m.mtime(), m.mtime_nsec(), m.atime(), m.atime_nsec(), m.mode(), m.uid())
    };
    let before = [stamp(&outside), stamp(&outside.join("x")), stamp(&outside.join("x/file"))];
    let target = outside.display().to_string();
    let layer = Layer::new(tar_of(&[("d/", 'd', ""), ("d/x/", 'd', ""), ("d", 's', &target)]), Compression::Gzip);
    reg.push_image("times:v1", &[layer], config(&[], &["true"], "/"));
    let id = pull(&b, &reg.reference("times:v1")).expect("the pull itself is fine");
    let after = [stamp(&outside), stamp(&outside.join("x")), stamp(&outside.join("x/file"))];
    assert_eq!(before, after, "the host's directory changed");
    assert_ne!(after[1].0, 1_700_000_000);
    assert_eq!(list(outside.join("x")), vec!["file".to_string()]);
    let image = b.root.join("store/images").join(&id);
    assert_eq!(fs::read_link(image.join("d")).unwrap(), outside);
    // Positive control: without the symlink the same directories get the layer's times.
    let layer = Layer::new(tar_of(&[("d/", 'd', ""), ("d/x/", 'd', "")]), Compression::Gzip);
    reg.push_image("times:v2", &[layer], config(&[], &["true"], "/"));
    let id = pull(&b, &reg.reference("times:v2")).unwrap();
    let image = b.root.join("store/images").join(&id);
    assert_eq!(stamp(&image.join("d/x")).0, 1_700_000_000);
}

/// A config over 4 MiB (containerd's cap), an index entry saying its manifest is over it, and a manifest
/// over it are refused with EFBIG (the config and the index's manifest before the daemon holds them); a
/// config of 3 MiB pulls.
#[test]
fn manifests_and_configs_over_4_mib_are_refused() {
    let b = Bocker::start("meta-cap");
    let reg = TestRegistry::start(&b.dir);
    let layer = || Layer::new(tar_of(&[("f", 'f', "x")]), Compression::Gzip);
    let mut big = config(&[], &["true"], "/");
    big["pad"] = "a".repeat(5 << 20).into();
    reg.push_image("cap:big-config", &[layer()], big);
    assert_eq!(errno(pull(&b, &reg.reference("cap:big-config"))), libc::EFBIG);
    assert!(b.read("errors").lines().last().unwrap().contains("the image config has"), "{}", b.read("errors"));
    assert_nothing_left(&b, &[]);
    // The descriptor may lie small: the download is cut at the cap all the same.
    let mut big = config(&[], &["true"], "/");
    big["pad"] = "b".repeat(5 << 20).into();
    reg.push_image_edited("cap:lying-config", &[layer()], big, |m| m["config"]["size"] = 100.into());
    assert_eq!(errno(pull(&b, &reg.reference("cap:lying-config"))), libc::EFBIG);
    assert_nothing_left(&b, &[]);

    // An index whose entry says its manifest is over the cap: refused before it is fetched.
    let (digest, _) = reg.push_image("cap:small", &[layer()], config(&[], &["true"], "/"));
    let (os, arch) = ("linux", if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" });
    reg.push_index("cap:big-child", &[(digest, 5 << 20, os, arch, None)]);
    assert_eq!(errno(pull(&b, &reg.reference("cap:big-child"))), libc::EFBIG);
    assert!(b.read("errors").lines().last().unwrap().contains("the manifest has 5242880 bytes"));
    assert_nothing_left(&b, &[]);

    let huge = common::registry::HugeManifestRegistry::start(5 << 20);
    assert_eq!(errno(pull(&b, &format!("{}/cap:big-manifest", huge.addr))), libc::EFBIG);
    assert!(b.read("errors").lines().last().unwrap().contains("the manifest has"), "{}", b.read("errors"));
    assert_nothing_left(&b, &[]);

    // Positive control: a config of 3 MiB is within the cap.
    let mut fine = config(&[], &["true"], "/");
    fine["pad"] = "c".repeat(3 << 20).into();
    reg.push_image("cap:fine", &[layer()], fine);
    let id = pull(&b, &reg.reference("cap:fine")).expect("a 3 MiB config pulls");
    assert!(b.path(&format!("images/{id}")).is_dir());
}

/// A layer longer than its descriptor's `size` is refused (EREMOTEIO) and leaves nothing; the same image
/// with the right size pulls.
#[test]
fn a_layer_longer_than_its_descriptor_is_refused() {
    let b = Bocker::start("layer-size");
    let reg = TestRegistry::start(&b.dir);
    let layer = || Layer::new(tar_of(&[("f", 'f', &noise(64 * 1024))]), Compression::None);
    let short = layer().blob.len() as u64 - 1;
    reg.push_image_edited("size:lying", &[layer()], config(&[], &["true"], "/"), |m| {
        m["layers"][0]["size"] = short.into()
    });
    assert_eq!(errno(pull(&b, &reg.reference("size:lying"))), libc::EREMOTEIO);
    let last = b.read("errors").lines().last().unwrap().to_string();
    assert!(last.contains("its descriptor says"), "{last}");
    assert_nothing_left(&b, &[]);
    reg.push_image("size:right", &[layer()], config(&[], &["true"], "/"));
    let id = pull(&b, &reg.reference("size:right")).expect("the right size pulls");
    assert!(b.path(&format!("images/{id}")).is_dir());
}
