//! The integration-test harness: a real daemon on a real FUSE mount, with a real loop-mounted btrfs store,
//! in a directory of the test's own. Dropping it kills the containers it started, stops the daemon,
//! unmounts what is left and removes the directory, also when the test fails.
#![allow(dead_code)]

pub mod cgroup;
pub mod probe;
pub mod registry;

pub use cgroup::cgroup_roots;

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_bocker");

pub struct Bocker {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub mount: PathBuf,
    pub store_size: String,
    /// Extra environment for the daemon (DOCKER_CONFIG, say).
    pub env: Vec<(String, String)>,
    /// This test's parent group in each cgroup hierarchy, below `bocker`.
    pub cgroup_parent: String,
    /// This test's bridge and subnet (`10.213.N.0/24`), held by `net_lock` against other test processes.
    pub bridge: String,
    pub subnet_prefix: String,
    net_lock: std::os::unix::net::UnixListener,
    daemon: Option<Child>,
}

/// A bridge and subnet no other test (in this process or another) holds: `bkt<N>`, `10.213.N.0/24`,
/// reserved by binding the abstract socket `bocker-test-net-N` for as long as the returned listener lives.
/// The kernel releases it when the test process ends, however it ends, and no file is left behind.
fn reserve_network() -> (String, String, std::os::unix::net::UnixListener) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener};
    for n in 0..=255u32 {
        let Ok(addr) = SocketAddr::from_abstract_name(format!("bocker-test-net-{n}")) else { continue };
        if let Ok(lock) = UnixListener::bind_addr(&addr) {
            return (format!("bkt{n}"), format!("10.213.{n}"), lock);
        }
    }
    panic!("no free test network: 256 tests hold one");
}

fn unique_dir(tag: &str) -> PathBuf {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).expect("random");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    PathBuf::from(format!("/tmp/bocker-test-{tag}-{}-{hex}", std::process::id()))
}

impl Bocker {
    /// A daemon on a fresh root with a 1 GiB store.
    pub fn start(tag: &str) -> Bocker {
        Self::start_sized(tag, "1G")
    }

    /// A daemon started with `env` in its environment (its options' variables: BOCKER_LOG_MAX_SIZE,
    /// BOCKER_GROUP, ...), kept for every restart of it.
    pub fn start_with_env(tag: &str, env: &[(&str, &str)]) -> Bocker {
        Self::start_sized_with(tag, "1G", env)
    }

    pub fn start_sized(tag: &str, store_size: &str) -> Bocker {
        Self::start_sized_with(tag, store_size, &[])
    }

    fn start_sized_with(tag: &str, store_size: &str, env: &[(&str, &str)]) -> Bocker {
        let dir = unique_dir(tag);
        fs::create_dir_all(&dir).expect("test dir");
        let leaf = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let (bridge, subnet_prefix, net_lock) = reserve_network();
        // A bridge or table a killed test run left under this name goes first.
        remove_network(&bridge);
        let mut b = Bocker {
            bridge,
            subnet_prefix,
            net_lock,
            cgroup_parent: format!("bocker/{leaf}"),
            root: dir.join("root"),
            mount: dir.join("mnt"),
            dir,
            store_size: store_size.to_string(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            daemon: None,
        };
        b.spawn_daemon();
        b
    }

    pub fn daemon_command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("daemon")
            .arg("--root")
            .arg(&self.root)
            .arg("--mount")
            .arg(&self.mount)
            .arg("--store-size")
            .arg(&self.store_size)
            .arg("--cgroup-parent")
            .arg(&self.cgroup_parent)
            .arg("--bridge")
            .arg(&self.bridge)
            .arg("--subnet")
            .arg(format!("{}.0/24", self.subnet_prefix))
            // The daemon's own debug lines; fuser's (a line per FUSE request) only where a test counts
            // requests: formatting them cost the suite minutes under emulation (the VM guest).
            .env("RUST_LOG", "debug,fuser=info")
            // Registries other than the tests' own on loopback (plain HTTP) are reached over HTTPS: through a
            // proxy that refuses at once, so a run of a name no test pushed (`containers/run nope`, which
            // pulls it) fails at once with ECONNREFUSED, on a machine with Docker Hub in reach or without.
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("NO_PROXY", "localhost,127.0.0.1")
            // This test's networks take their subnets from 10.214.N.0/24 (eight /27s), apart from every other
            // test's; names their DNS servers don't own go to loopback's discard port (refused at once), never
            // to the host's resolvers. A test's own env may say otherwise.
            .env("BOCKER_NETWORK_POOL", format!("{}.0/24", self.subnet_prefix.replace("10.213.", "10.214.")))
            .env("BOCKER_NETWORK_PREFIX", "27")
            .env("BOCKER_DNS_UPSTREAM", "127.0.0.1:9")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    pub fn spawn_daemon(&mut self) {
        let log = OpenOptions::new().create(true).append(true).open(self.dir.join("daemon.log")).expect("log");
        let child = self
            .daemon_command()
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn daemon");
        self.daemon = Some(child);
        // Generous (it fails at once if the daemon exits): under emulation a start takes its time.
        let deadline = Instant::now() + Duration::from_secs(90);
        // Read, not stat'ed: a crashed daemon's mount still answers stat from the kernel's cache.
        while fs::read(self.mount.join("README")).is_err() {
            if let Some(status) = self.daemon.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("daemon exited with {status}:\n{}", self.daemon_log());
            }
            assert!(Instant::now() < deadline, "daemon did not mount:\n{}", self.daemon_log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn daemon_log(&self) -> String {
        fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    pub fn daemon_pid(&self) -> Option<i32> {
        self.daemon.as_ref().map(|c| c.id() as i32)
    }

    /// SIGTERM, and wait for a clean exit.
    pub fn stop_daemon(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.daemon.take()?;
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: the daemon dies as in a crash, leaving a dead mount.
    pub fn crash_daemon(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.mount.join(rel)
    }

    /// One write(2) of `data` to a control file, as `echo` does (O_TRUNC included).
    /// One write, as `echo`'s, then the close, whose error is the write's too: a value file refuses a value
    /// still wrong at close there (a last line without its newline is held until then).
    pub fn write(&self, rel: &str, data: &str) -> io::Result<()> {
        let mut f = OpenOptions::new().write(true).truncate(true).open(self.path(rel))?;
        let n = f.write(data.as_bytes())?;
        assert_eq!(n, data.len(), "short write to {rel}");
        nix::unistd::close(f).map_err(io::Error::from)
    }

    /// Writes to `run` or `import` and reads the new id on the same open file.
    pub fn submit(&self, rel: &str, data: &str) -> io::Result<String> {
        let mut f = OpenOptions::new().read(true).write(true).open(self.path(rel))?;
        f.write_all(data.as_bytes())?;
        let mut id = String::new();
        f.read_to_string(&mut id)?;
        nix::unistd::close(f).map_err(io::Error::from)?;
        Ok(id.trim_end().to_string())
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    pub fn status(&self, name: &str) -> String {
        self.read(&format!("containers/{name}/status")).trim_end().to_string()
    }

    pub fn wait_status(&self, name: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.status(name);
            if s == want {
                return;
            }
            assert!(Instant::now() < deadline, "{name} stayed '{s}', wanted '{want}'");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until exec `n` of container `name` has exited.
    pub fn wait_exec(&self, name: &str, n: &str) {
        let status = format!("containers/{name}/execs/{n}/status");
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.read(&status) != "exited\n" {
            assert!(Instant::now() < deadline, "exec {n} of {name} stayed {}", self.read(&status));
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A busybox root filesystem for images, made once per test.
    pub fn rootfs(&self) -> PathBuf {
        let rootfs = self.dir.join("rootfs");
        if rootfs.join("bin/busybox").exists() {
            return rootfs;
        }
        make_busybox_rootfs(&rootfs);
        rootfs
    }

    /// Imports the busybox rootfs (plus `changes` lines); returns the image id.
    pub fn import(&self, changes: &str) -> String {
        let line = format!("{}\n{changes}", self.rootfs().display());
        let id = self.submit("images/import", &line).expect("import");
        assert!(id.starts_with("img_"), "import gave '{id}'");
        id
    }

    /// `mkdir containers/NAME`, then its image and command, as a shell user configures one.
    pub fn configure(&self, name: &str, image: &str, cmd: &str) {
        fs::create_dir(self.path(&format!("containers/{name}"))).expect("mkdir");
        self.write(&format!("containers/{name}/image"), image).expect("image");
        self.write(&format!("containers/{name}/cmd"), cmd).expect("cmd");
    }

    /// Runs `IMAGE CMD...` through `containers/run` and waits for it to exit; returns the container id.
    pub fn run_to_exit(&self, line: &str) -> String {
        let id = self.submit("containers/run", line).expect("run");
        self.wait_status(&id, "exited");
        id
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with(args, &[])
    }

    /// The command line with more environment (`-e KEY` reads it; BOCKER_NETWORK, ...).
    pub fn cli_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args).env("BOCKER_MOUNT", &self.mount);
        for var in ["BOCKER_NETWORK", "BOCKER_CPU_SHARE", "BOCKER_MEM_LIMIT"] {
            cmd.env_remove(var);
        }
        cmd.envs(env.iter().copied()).output().expect("run cli")
    }

    /// The errno of an io::Error, for assertions.
    pub fn errno(e: &io::Error) -> i32 {
        e.raw_os_error().unwrap_or(0)
    }

    /// Kills the monitor of every build step this test's daemon has running (its container dies with it:
    /// its pid 1 has the monitor's death signal), by the pid and start time the daemon recorded, and waits
    /// for it to be gone, so the step's cgroup can be removed.
    fn kill_build_steps(&self) {
        let Ok(dirs) = fs::read_dir(self.root.join("state/builds")) else { return };
        for dir in dirs.flatten() {
            let Ok(text) = fs::read_to_string(dir.path().join("run/step.json")) else { continue };
            let Ok(step) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
            let (Some(pid), Some(start)) = (step["monitor_pid"].as_i64(), step["monitor_start"].as_u64()) else {
                continue;
            };
            let pid = pid as i32;
            if bockerfs::runtime::start_time(pid) != Some(start) {
                continue;
            }
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
            let deadline = Instant::now() + Duration::from_secs(5);
            while bockerfs::runtime::start_time(pid) == Some(start) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Kills every container process this test's daemon started, by the pids in its records.
    fn kill_containers(&self) {
        self.kill_build_steps();
        let Ok(dirs) = fs::read_dir(self.root.join("state/containers")) else { return };
        for dir in dirs.flatten() {
            let Ok(text) = fs::read_to_string(dir.path().join("record.json")) else { continue };
            let Ok(rec) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
            let monitor = rec["monitor_pid"].as_i64();
            let start = rec["monitor_start"].as_u64();
            let (Some(monitor), Some(start)) = (monitor, start) else { continue };
            if bockerfs::runtime::start_time(monitor as i32) != Some(start) {
                continue;
            }
            // The container is the monitor's child: kill it, and the monitor then exits by itself.
            if let Some(pid) = rec["pid"].as_i64() {
                if bockerfs::runtime::parent_of(pid as i32) == Some(monitor as i32) {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::SIGKILL);
                }
            }
            // A paused one takes its SIGKILL once thawed (on cgroup v1).
            if let Some(name) = rec["name"].as_str() {
                thaw(&self.cgroup_parent, name);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while bockerfs::runtime::start_time(monitor as i32) == Some(start) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Polls `check` until it holds; fails with `what()` once `timeout` has passed (a liveness bound, never a
/// speed one).
pub fn eventually(timeout: Duration, what: impl Fn() -> String, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting: {}", what());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn mounted(path: &Path) -> bool {
    let target = path.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(target.as_str()))
}

impl Drop for Bocker {
    fn drop(&mut self) {
        self.kill_containers();
        self.stop_daemon();
        for m in [self.mount.clone(), self.root.join("store")] {
            while mounted(&m) {
                if nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH).is_err() {
                    break;
                }
            }
        }
        remove_cgroups(&self.cgroup_parent);
        remove_network(&self.bridge);
        if std::thread::panicking() {
            eprintln!("---- daemon log ({}) ----\n{}", self.dir.display(), self.daemon_log());
            for log in monitor_logs(&self.root) {
                eprintln!("---- {} ----\n{}", log.display(), fs::read_to_string(&log).unwrap_or_default());
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The monitors' own logs below `root` (`containers/NAME/monitor.log`, an exec's beside its record).
fn monitor_logs(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![root.join("state")];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() && path.file_name().is_none_or(|n| n != "log") => dirs.push(path),
                Ok(t) if t.is_file() && path.file_name().is_some_and(|n| n == "monitor.log") => found.push(path),
                _ => {}
            }
        }
    }
    found
}

/// Deletes a test daemon's bridge and its nftables tables, and those of the networks it made
/// (`<bridge>-0` to `<bridge>-7`, the most its /27s of the pool allow): the daemon keeps them across
/// restarts. The containers' veth pairs went with their network namespaces.
fn remove_network(bridge: &str) {
    let quiet = |cmd: &mut Command| cmd.stdout(Stdio::null()).stderr(Stdio::null()).status();
    let links = fs::read_dir("/sys/class/net").into_iter().flatten().flatten();
    let ours: Vec<String> = links
        .map(|l| l.file_name().to_string_lossy().into_owned())
        .filter(|l| l.strip_prefix(bridge).and_then(|k| k.strip_prefix('-')).is_some_and(|k| k.parse::<u8>().is_ok()))
        .collect();
    for b in ours.iter().map(String::as_str).chain([bridge]) {
        let _ = quiet(Command::new("ip").args(["link", "del", b]));
        let _ = bockerfs::network::firewall::delete(b);
    }
    // Tables of a network whose bridge is gone already.
    for k in 0..8 {
        let _ = bockerfs::network::firewall::delete(&format!("{bridge}-{k}"));
    }
}

/// Thaws container `name`'s group below `parent`, in the v1 freezer and in cgroup2 (where there is either).
pub fn thaw(parent: &str, name: &str) {
    for root in cgroup_roots() {
        let group = root.join(parent).join(format!("ctr-{name}"));
        let _ = fs::write(group.join("freezer.state"), "THAWED");
        let _ = fs::write(group.join("cgroup.freeze"), "0");
    }
}

/// Removes a test daemon's cgroup parent (and any group left in it) from every hierarchy, then the
/// shared `bocker` parent if that is empty now.
fn remove_cgroups(parent: &str) {
    for root in cgroup_roots() {
        let dir = root.join(parent);
        if let Ok(children) = fs::read_dir(&dir) {
            for c in children.flatten().filter(|c| c.file_type().is_ok_and(|t| t.is_dir())) {
                // A container killed just now may still be leaving its group (EBUSY): a moment more.
                let deadline = Instant::now() + Duration::from_secs(3);
                while fs::remove_dir(c.path()).is_err() && c.path().exists() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        let _ = fs::remove_dir(&dir);
        let _ = fs::remove_dir(root.join("bocker"));
    }
}

/// A root filesystem of busybox and its applets, plus a dotfile.
pub fn make_busybox_rootfs(rootfs: &Path) {
    let bin = rootfs.join("bin");
    fs::create_dir_all(&bin).expect("rootfs");
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox is needed for the tests (apt-get install busybox-static)");
    fs::copy(busybox, bin.join("busybox")).expect("copy busybox");
    let list = Command::new(busybox).arg("--list").output().expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.is_empty() {
            let _ = symlink("busybox", bin.join(applet));
        }
    }
    fs::create_dir_all(rootfs.join("etc")).expect("etc");
    fs::write(rootfs.join("etc/hostname"), "image\n").expect("hostname");
    fs::write(rootfs.join(".dotfile"), "dot\n").expect("dotfile");
}

/// GNU `tail -n +1 -f -s 0.1 PATH` (polling: FUSE is a remote file system to it), holding PATH open
/// before [`TailFollower::start`] returns, with a thread collecting its lines up to the one that is
/// `last`. Killed on drop, also when a test fails.
pub struct TailFollower {
    child: std::process::Child,
    reader: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl TailFollower {
    pub fn start(path: &Path, last: &str) -> TailFollower {
        use std::io::BufRead;
        let mut child = Command::new("tail")
            .args(["-n", "+1", "-f", "-s", "0.1"])
            .arg(path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tail");
        let pid = child.id();
        let stdout = child.stdout.take().expect("tail's stdout");
        let mut follower = TailFollower { child, reader: None };
        eventually(
            Duration::from_secs(10),
            || format!("tail did not open {}", path.display()),
            || {
                fs::read_dir(format!("/proc/{pid}/fd"))
                    .map(|fds| fds.flatten().any(|fd| fs::read_link(fd.path()).is_ok_and(|t| t == path)))
                    .unwrap_or(false)
            },
        );
        let last = last.to_string();
        follower.reader = Some(std::thread::spawn(move || {
            let mut seen = Vec::new();
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let done = line == last;
                seen.push(line);
                if done {
                    break;
                }
            }
            seen
        }));
        follower
    }

    /// The lines it saw, once it has seen the last (within 30 s), and what it said on stderr; tail ends.
    pub fn lines(&mut self) -> (Vec<String>, String) {
        let reader = self.reader.take().expect("lines taken once");
        eventually(Duration::from_secs(30), || "tail did not reach the last line".into(), || reader.is_finished());
        let seen = reader.join().expect("the reader thread");
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut stderr = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
        }
        (seen, stderr)
    }
}

impl Drop for TailFollower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
