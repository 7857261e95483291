//! Builds from real Dockerfiles through `images/build` and `bocker build`: each image is run and its config
//! read back field by field, the cache is watched through what the build's log says ran, and failures
//! leave no image, only their build's record.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use common::{Bocker, TailFollower};
use serde_json::Value;

/// A daemon with the busybox rootfs imported and named `busybox`.
fn daemon(tag: &str) -> Bocker {
    let b = Bocker::start(tag);
    let base = b.import("");
    b.write("images/tag", &format!("{base} busybox")).unwrap();
    b
}

/// A build context of `files` (path, content) in the test's directory.
fn context(b: &Bocker, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = b.dir.join(name);
    for (path, content) in files {
        let p = dir.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }
    dir
}

/// `images/build`: the image id, or the write's error.
fn build(b: &Bocker, line: &str) -> std::io::Result<String> {
    b.submit("images/build", line)
}

/// The newest build's number.
fn last_build(b: &Bocker) -> u32 {
    fs::read_dir(b.path("builds"))
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .max()
        .unwrap()
}

fn build_file(b: &Bocker, n: u32, file: &str) -> String {
    b.read(&format!("builds/{n}/{file}"))
}

fn config(b: &Bocker, id: &str) -> Value {
    serde_json::from_str(&b.read(&format!("images/{id}/config.json"))).unwrap()
}

/// What running `image` (its own command) prints.
fn output_of(b: &Bocker, image: &str) -> String {
    let id = b.run_to_exit(image);
    b.read(&format!("containers/{id}/logs"))
}

/// A file of the image's rootfs, read through its `rootfs` link.
fn image_file(b: &Bocker, id: &str, path: &str) -> String {
    fs::read_to_string(b.path(&format!("images/{id}/rootfs")).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn image_count(b: &Bocker) -> usize {
    fs::read_dir(b.path("images"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("img_"))
        .count()
}

/// The steps that change files (RUN, COPY, ADD) a build ran rather than took from the cache: their `Step`
/// headers not followed by ` ---> Using cache`.
fn ran_steps(log: &str) -> Vec<String> {
    let lines: Vec<&str> = log.lines().collect();
    let mut ran = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if let Some((_, text)) = l.split_once(" : ").filter(|_| l.starts_with("Step ")) {
            let cached = lines.get(i + 1).is_some_and(|n| n.contains("Using cache"));
            let changes_files = ["RUN ", "COPY ", "ADD "].iter().any(|k| text.starts_with(k));
            if !cached && changes_files {
                ran.push(text.to_string());
            }
        }
    }
    ran
}

#[test]
fn a_multi_stage_build_with_args_gives_the_image_docker_would() {
    let b = daemon("build-multi");
    let ctx = context(
        &b,
        "app",
        &[
            ("greet.sh", "#!/bin/sh\necho \"$1 from the builder\"\n"),
            (
                "Dockerfile",
                r#"# syntax=docker/dockerfile:1
ARG BASE=127.0.0.1:9/no-such-base
FROM ${BASE} AS builder
ARG GREETING=hello
WORKDIR /src
COPY greet.sh ./
RUN chmod +x greet.sh && ./greet.sh "$GREETING" > /src/out.txt

FROM $BASE
LABEL org.example.role="web" \
      version=1
ENV APP_HOME=/app MODE="production mode"
WORKDIR $APP_HOME
COPY --from=builder /src/out.txt ./
EXPOSE 8080 53/udp
VOLUME /data
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=30s --timeout=5s --retries=2 CMD cat /app/out.txt
USER 1000:1000
ENTRYPOINT ["/bin/cat"]
CMD ["/app/out.txt"]
"#,
            ),
        ],
    );
    // The ARG before FROM names a base that isn't here: --build-arg gives the one that is.
    let id = build(&b, &format!("{} -t app:1 --build-arg GREETING=bonjour --build-arg BASE=busybox", ctx.display()))
        .expect("build");
    assert!(id.starts_with("img_"), "{id}");
    assert_eq!(output_of(&b, "app:1"), "bonjour from the builder\n");
    let c = config(&b, &id);
    let cfg = &c["config"];
    let env: Vec<&str> = cfg["Env"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(env.contains(&"APP_HOME=/app") && env.contains(&"MODE=production mode"), "{env:?}");
    assert!(env.iter().any(|e| e.starts_with("PATH=")), "the base's PATH stays: {env:?}");
    assert!(!env.iter().any(|e| e.starts_with("GREETING")), "build arguments are not kept: {env:?}");
    assert_eq!(cfg["Entrypoint"], serde_json::json!(["/bin/cat"]));
    assert_eq!(cfg["Cmd"], serde_json::json!(["/app/out.txt"]));
    assert_eq!(cfg["User"], "1000:1000");
    assert_eq!(cfg["WorkingDir"], "/app");
    assert_eq!(cfg["Labels"], serde_json::json!({"org.example.role": "web", "version": "1"}));
    assert_eq!(cfg["ExposedPorts"], serde_json::json!({"8080/tcp": {}, "53/udp": {}}));
    assert_eq!(cfg["Volumes"], serde_json::json!({"/data": {}}));
    assert_eq!(cfg["StopSignal"], "SIGQUIT");
    assert_eq!(cfg["Healthcheck"]["Test"], serde_json::json!(["CMD-SHELL", "cat /app/out.txt"]));
    assert_eq!(cfg["Healthcheck"]["Interval"], 30_000_000_000u64);
    assert_eq!(cfg["Healthcheck"]["Retries"], 2);
    let history = c["history"].as_array().unwrap();
    let by: Vec<&str> = history.iter().map(|h| h["created_by"].as_str().unwrap()).collect();
    assert!(by.iter().any(|s| s.starts_with("COPY --from=builder")), "{by:?}");
    let env_step = history.iter().find(|h| h["created_by"].as_str().unwrap().starts_with("ENV")).unwrap();
    assert_eq!(env_step["empty_layer"], true);
    // The builder's files are not in the image, the copied one is.
    assert!(!b.path(&format!("images/{id}/rootfs")).join("src/greet.sh").exists());
    assert_eq!(image_file(&b, &id, "app/out.txt"), "bonjour from the builder\n");
    // The build's record.
    let n = last_build(&b);
    assert_eq!(build_file(&b, n, "status"), "done\n");
    assert_eq!(build_file(&b, n, "image"), format!("{id}\n"));
    assert_eq!(build_file(&b, n, "context"), format!("{}\n", ctx.display()));
    assert_eq!(build_file(&b, n, "dockerfile"), format!("{}\n", ctx.join("Dockerfile").display()));
    assert_eq!(build_file(&b, n, "tags"), "docker.io/library/app:1\n");
    assert!(!build_file(&b, n, "finished_at").is_empty());
    let log = build_file(&b, n, "logs");
    assert!(log.contains("Step 1/17 : FROM ${BASE} AS builder"), "{log}");
    assert!(log.contains("Step 17/17 : CMD [\"/app/out.txt\"]"), "{log}");
    // `--target` builds the builder alone: its last step's files, and the later stage's steps not at all.
    let first =
        build(&b, &format!("{} --target builder --build-arg GREETING=bonjour --build-arg BASE=busybox", ctx.display()))
            .unwrap();
    assert_eq!(image_file(&b, &first, "src/out.txt"), "bonjour from the builder\n");
    assert_ne!(first, id);
    let log = build_file(&b, last_build(&b), "logs");
    assert!(log.contains("Step 5/5 : RUN chmod"), "{log}");
    assert!(ran_steps(&log).is_empty(), "all cached: {log}");
}

#[test]
fn the_cache_reruns_only_what_changed_and_dockerignore_decides_what_is_sent() {
    let b = daemon("build-cache");
    let dockerfile =
        "FROM busybox\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copy.txt; cat /proc/sys/kernel/random/uuid > /stamp\n\
                      COPY b.txt /b.txt\nRUN cat /b.txt > /b-copy.txt\nCOPY . /ctx/\nCMD [\"cat\", \"/b-copy.txt\"]\n";
    let ctx = context(
        &b,
        "cached",
        &[
            ("Dockerfile", dockerfile),
            ("a.txt", "A\n"),
            ("b.txt", "B1\n"),
            ("keep.log", "kept\n"),
            ("noise.log", "not sent\n"),
            ("secret/key", "never sent\n"),
            (".dockerignore", "# logs are noise\n*.log\n!keep.log\nsecret\n"),
        ],
    );
    let line = ctx.display().to_string();
    let first = build(&b, &line).unwrap();
    let log = build_file(&b, last_build(&b), "logs");
    assert_eq!(ran_steps(&log).len(), 5, "a first build runs every step: {log}");
    assert_eq!(image_file(&b, &first, "ctx/keep.log"), "kept\n");
    let sent = b.path(&format!("images/{first}/rootfs")).join("ctx");
    assert!(!sent.join("noise.log").exists() && !sent.join("secret").exists(), ".dockerignore is obeyed");
    let stamp = image_file(&b, &first, "stamp");

    // Nothing changed: nothing runs, and the image is the same one, config and all.
    let config_before = b.read(&format!("images/{first}/config.json"));
    let again = build(&b, &line).unwrap();
    assert_eq!(again, first);
    assert_eq!(b.read(&format!("images/{again}/config.json")), config_before, "the same config digest");
    let log = build_file(&b, last_build(&b), "logs");
    assert!(ran_steps(&log).is_empty(), "a rebuild runs nothing: {log}");
    // An ignored file changed: still nothing to run.
    fs::write(ctx.join("noise.log"), "other noise\n").unwrap();
    assert_eq!(build(&b, &line).unwrap(), first);

    // b.txt changed: its COPY, the RUN after it and `COPY .` run again; the first RUN does not.
    fs::write(ctx.join("b.txt"), "B2\n").unwrap();
    let changed = build(&b, &line).unwrap();
    assert_ne!(changed, first);
    let log = build_file(&b, last_build(&b), "logs");
    assert_eq!(ran_steps(&log), ["COPY b.txt /b.txt", "RUN cat /b.txt > /b-copy.txt", "COPY . /ctx/"], "{log}");
    assert_eq!(image_file(&b, &changed, "stamp"), stamp, "the first RUN's result is the cached one");
    assert_eq!(output_of(&b, &changed), "B2\n");
    // A mode changed is a change too.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(ctx.join("a.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    build(&b, &line).unwrap();
    assert_eq!(ran_steps(&build_file(&b, last_build(&b), "logs")).len(), 5);

    // --no-cache runs everything.
    let fresh = build(&b, &format!("{line} --no-cache")).unwrap();
    let log = build_file(&b, last_build(&b), "logs");
    assert_eq!(ran_steps(&log).len(), 5, "{log}");
    assert_ne!(image_file(&b, &fresh, "stamp"), stamp);
}

#[test]
fn a_failed_build_adds_nothing_and_says_where_it_failed() {
    let b = daemon("build-fail");
    let images = image_count(&b);
    let ctx = context(
        &b,
        "fails",
        &[("Dockerfile", "FROM busybox\nRUN echo made > /made\nRUN echo about to fail; exit 3\n")],
    );
    let e = build(&b, &ctx.display().to_string()).unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::ECANCELED, "{e}");
    let n = last_build(&b);
    assert_eq!(build_file(&b, n, "status"), "failed\n");
    assert_eq!(build_file(&b, n, "image"), "");
    let error = build_file(&b, n, "error");
    assert!(error.contains("line 3") && error.contains("non-zero code: 3"), "{error}");
    assert!(build_file(&b, n, "logs").contains("about to fail"), "the step's output is kept");
    assert!(b.read("errors").contains("images/build"), "and in errors");
    assert_eq!(image_count(&b), images, "no image added");
    let leftovers: Vec<String> = fs::read_dir(b.root.join("store/buildcache"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "no step half done: {leftovers:?}");
    assert!(fs::read_dir(b.root.join("store/builds")).unwrap().next().is_none(), "no context copy left");

    // A syntax error: EINVAL naming the line and column.
    let bad = context(&b, "bad", &[("Dockerfile", "FROM busybox\nRUNN echo x\n")]);
    let e = build(&b, &bad.display().to_string()).unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EINVAL);
    let error = build_file(&b, last_build(&b), "error");
    assert!(error.contains("line 2 column 1"), "{error}");
    // A base image that is not here and can't be pulled (a loopback port nobody serves): ENOENT.
    let nobase = context(&b, "nobase", &[("Dockerfile", "FROM 127.0.0.1:9/nothing:1\nRUN true\n")]);
    let e = build(&b, &nobase.display().to_string()).unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::ENOENT, "{e}");
    assert!(build_file(&b, last_build(&b), "error").contains("127.0.0.1:9/nothing:1"));
    // A Dockerfile that is a FIFO: refused at once (EINVAL), never waited on.
    let fifo = context(&b, "fifo", &[("README", "\n")]);
    nix::unistd::mkfifo(&fifo.join("Dockerfile"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    assert_eq!(Bocker::errno(&build(&b, &fifo.display().to_string()).unwrap_err()), libc::EINVAL);
    // No Dockerfile: ENOENT; a target that is no stage, a bad line: EINVAL.
    let empty = context(&b, "empty", &[("README", "no Dockerfile here\n")]);
    assert_eq!(Bocker::errno(&build(&b, &empty.display().to_string()).unwrap_err()), libc::ENOENT);
    let e = build(&b, &format!("{} --target nosuch", ctx.display())).unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EINVAL);
    assert_eq!(Bocker::errno(&build(&b, "relative/dir").unwrap_err()), libc::EINVAL);
    assert_eq!(image_count(&b), images, "still no image added");
    // A finished build is removed with rmdir; then it is gone.
    let n = last_build(&b);
    fs::remove_dir(b.path(&format!("builds/{n}"))).unwrap();
    assert!(!b.path(&format!("builds/{n}")).exists());
    assert!(!b.root.join(format!("state/builds/{n}")).exists());
}

#[test]
fn scratch_add_shell_and_heredocs_make_a_working_image() {
    let b = daemon("build-scratch");
    let ctx = context(
        &b,
        "scratch",
        &[(
            "Dockerfile",
            "FROM scratch\nCOPY busybox /bin/busybox\nSHELL [\"/bin/busybox\", \"sh\", \"-c\"]\n\
             RUN /bin/busybox --install -s /bin\nADD files.tar.gz /opt/\n\
             RUN <<EOF\necho \"from a heredoc\" > /heredoc.txt\ncat /opt/inside.txt >> /heredoc.txt\nEOF\n\
             COPY <<EOF /etc/greeting\nhello there\nEOF\n\
             CMD [\"/bin/cat\", \"/heredoc.txt\", \"/etc/greeting\"]\n",
        )],
    );
    fs::copy("/bin/busybox", ctx.join("busybox")).unwrap();
    let tar = common::registry::tar_of(&[("inside.txt", 'f', "unpacked from the tar\n")]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    fs::write(ctx.join("files.tar.gz"), gz.finish().unwrap()).unwrap();
    let id = build(&b, &ctx.display().to_string()).expect("build");
    assert_eq!(output_of(&b, &id), "from a heredoc\nunpacked from the tar\nhello there\n");
    let c = config(&b, &id);
    assert_eq!(c["config"]["Shell"], serde_json::json!(["/bin/busybox", "sh", "-c"]));
    assert!(c["config"].get("Env").is_some());
    assert!(!b.path(&format!("images/{id}/rootfs")).join("opt/files.tar.gz").exists(), "ADD unpacked it");
}

#[test]
fn run_steps_run_as_the_user_on_the_network_asked_for() {
    let b = daemon("build-user");
    let ctx = context(
        &b,
        "user",
        &[(
            "Dockerfile",
            "FROM --platform=$BUILDPLATFORM busybox\nARG TARGETARCH\nRUN echo \"$TARGETARCH\" > /arch\n\
             RUN echo 'app:x:1234:1234:app:/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1234:' >> /etc/group \
             && mkdir -p /home/app && chown app:app /home/app\n\
             USER app\nWORKDIR /home/app/work\nRUN id -u > uid.txt && touch mine && cat /proc/net/dev > net.txt\n",
        )],
    );
    let id = build(&b, &ctx.display().to_string()).unwrap();
    assert_eq!(image_file(&b, &id, "home/app/work/uid.txt"), "1234\n");
    let arch = if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" };
    assert_eq!(image_file(&b, &id, "arch"), format!("{arch}\n"), "BuildKit's platform arguments");
    use std::os::unix::fs::MetadataExt;
    let mine = fs::metadata(b.path(&format!("images/{id}/rootfs")).join("home/app/work/mine")).unwrap();
    assert_eq!((mine.uid(), mine.gid()), (1234, 1234));
    // The bridge by default: an eth0 beside lo; with --network none, lo alone.
    assert!(image_file(&b, &id, "home/app/work/net.txt").contains("eth0"), "on the bridge");
    let none = build(&b, &format!("{} --network none", ctx.display())).unwrap();
    let net = image_file(&b, &none, "home/app/work/net.txt");
    assert!(net.contains("lo:") && !net.contains("eth0"), "{net}");
}

#[test]
fn bocker_build_prints_the_steps_and_the_image() {
    let b = daemon("build-cli");
    let ctx = context(&b, "cli", &[("Dockerfile", "FROM busybox\nRUN echo building now\nCMD [\"echo\", \"built\"]\n")]);
    let out = b.cli(&["build", "-t", "cli:1", ctx.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("Step 1/3 : FROM busybox"), "{stdout}");
    assert!(stdout.contains("building now"), "{stdout}");
    let id = stdout.lines().last().unwrap().strip_prefix("Created: ").expect("Created: img_...").to_string();
    assert_eq!(b.read(&format!("images/{id}/names")), "docker.io/library/cli:1\n");
    let again = b.cli(&["build", ctx.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(stdout.contains("Step 2/3 : RUN echo building now\n ---> Using cache"), "{stdout}");
    assert!(stdout.ends_with(&format!("Created: {id}\n")), "{stdout}");
    // A failing build: exit 1 with the step's error.
    fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN false\n").unwrap();
    let failed = b.cli(&["build", ctx.to_str().unwrap()]);
    assert_eq!(failed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&failed.stderr).contains("non-zero code: 1"), "{failed:?}");
    // `tail -f` on a build's logs follows it (the CLI's own reading, by a plain tool).
    let n = last_build(&b);
    let mut tail = TailFollower::start(
        &b.path(&format!("builds/{n}/logs")),
        "ERROR: line 2: RUN false: the command returned a non-zero code: 1",
    );
    let (lines, _) = tail.lines();
    assert!(lines.iter().any(|l| l.starts_with("Step 2/2 : RUN false")), "{lines:?}");
    let _ = Path::new("/");
}

#[test]
fn a_base_is_pulled_when_missing_onbuild_triggers_run_and_unused_steps_are_collected() {
    use common::registry::{config as image_config, tar_of_dir, Compression, Layer, TestRegistry};
    // No loose steps kept: a step stays cached only while an image built from it exists.
    let b = Bocker::start_with_env("build-pull", &[("BOCKER_BUILD_CACHE_STEPS", "0")]);
    let reg = TestRegistry::start(&b.dir);
    let layer = Layer::new(tar_of_dir(&b.rootfs()), Compression::Gzip);
    reg.push_image("base/busybox:1", &[layer], image_config(&["PATH=/bin"], &["sh"], "/"));
    let from = reg.reference("base/busybox:1");
    let parent_ctx = context(
        &b,
        "parent",
        &[("Dockerfile", &format!("FROM {from}\nONBUILD RUN echo triggered > /onbuild\nRUN echo one > /one\n"))],
    );
    let images = image_count(&b);
    let parent = build(&b, &format!("{} -t parent", parent_ctx.display())).expect("build FROM a registry");
    assert_eq!(image_count(&b), images + 2, "the base was pulled, and the image made");
    assert!(build_file(&b, last_build(&b), "logs").contains(&format!("Pulling {from}")));
    assert_eq!(config(&b, &parent)["config"]["OnBuild"], serde_json::json!(["RUN echo triggered > /onbuild"]));
    assert!(!b.path(&format!("images/{parent}/rootfs")).join("onbuild").exists(), "not in the image it is in");
    let child_ctx = context(&b, "child", &[("Dockerfile", "FROM parent\nRUN cat /onbuild /one > /both\n")]);
    let child = build(&b, &child_ctx.display().to_string()).unwrap();
    assert_eq!(image_file(&b, &child, "both"), "triggered\none\n", "the trigger ran right after FROM");
    assert!(config(&b, &child)["config"].get("OnBuild").is_none(), "triggers are not passed on");

    // The parent's step is kept while the parent is: a rebuild runs nothing, even with no loose steps kept.
    assert_eq!(build(&b, &format!("{} -t parent", parent_ctx.display())).unwrap(), parent);
    assert!(ran_steps(&build_file(&b, last_build(&b), "logs")).is_empty());
    let cached = fs::read_dir(b.root.join("store/buildcache")).unwrap().count();
    assert!(cached >= 1, "{cached} steps cached");
    // Both images removed: nothing stands on their steps, which go.
    fs::remove_dir(b.path(&format!("images/{child}"))).unwrap();
    fs::remove_dir(b.path(&format!("images/{parent}"))).unwrap();
    let left: Vec<_> =
        fs::read_dir(b.root.join("store/buildcache")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "collected: {left:?}");
    build(&b, &parent_ctx.display().to_string()).unwrap();
    assert_eq!(ran_steps(&build_file(&b, last_build(&b), "logs")), ["RUN echo one > /one"]);
}

#[test]
fn a_daemon_that_dies_mid_build_leaves_nothing_running_and_the_build_failed() {
    let mut b = daemon("build-crash");
    let ctx = context(&b, "slow", &[("Dockerfile", "FROM busybox\nRUN echo started; sleep 60\n")]);
    let line = ctx.display().to_string();
    let mount = b.path("images/build");
    let writer = std::thread::spawn(move || {
        let mut f = fs::OpenOptions::new().write(true).open(mount).unwrap();
        let _ = f.write_all(line.as_bytes());
    });
    // Its output shows, and the daemon has recorded its monitor (right after the launch returns).
    let step_file = b.root.join("state/builds/1/run/step.json");
    common::eventually(
        std::time::Duration::from_secs(20),
        || "the step to start".into(),
        || fs::read_to_string(b.path("builds/1/logs")).is_ok_and(|l| l.contains("started")) && step_file.exists(),
    );
    let step: Value =
        serde_json::from_str(&fs::read_to_string(b.root.join("state/builds/1/run/step.json")).unwrap()).unwrap();
    let monitor = step["monitor_pid"].as_i64().unwrap();
    assert!(Path::new(&format!("/proc/{monitor}")).exists(), "the step's monitor runs");
    b.crash_daemon();
    let _ = writer.join();
    b.spawn_daemon();
    assert_eq!(build_file(&b, 1, "status"), "failed\n");
    assert!(build_file(&b, 1, "error").contains("daemon stopped"));
    let gone = |pid: i64| {
        fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_or(true, |s| s.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')))
    };
    assert!(gone(monitor), "the step's monitor was ended");
    for root in common::cgroup_roots() {
        let group = root.join(&b.cgroup_parent).join("ctr-.build-1");
        assert!(!group.exists(), "{} is left", group.display());
    }
    let left: Vec<_> =
        fs::read_dir(b.root.join("store/buildcache")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "no step left half done: {left:?}");
    // And a build runs again.
    fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN echo again\n").unwrap();
    build(&b, &ctx.display().to_string()).expect("a build after the restart");
}
