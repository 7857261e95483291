//! The container's pid 1 before it becomes the user's command: new namespaces, a private mount tree,
//! the snapshot bind-mounted and `pivot_root`ed into, a fresh `/proc`, a read-only `/sys`, a minimal `/dev`,
//! the hostname, loopback up, the working directory, and `execve` of the argv exactly as given.
//!
//! Runs in a child forked by the single-threaded monitor. Any failure is written to the error pipe as
//! `ERRNO MESSAGE` and the process exits 127; a successful exec closes the pipe (O_CLOEXEC).

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::CloneFlags;

use super::spawn::Born;
use super::spec::{BindMount, ExecSpec, LaunchSpec};
use super::user::Ids;
use crate::network::NetworkMode;

/// The PATH used to find the command when the image's Env has none (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Device nodes bind-mounted from the host into the container's `/dev`.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

pub(super) struct SetupError {
    pub(super) errno: i32,
    pub(super) message: String,
}

fn step(what: &str) -> impl Fn(nix::Error) -> SetupError + '_ {
    move |e| SetupError { errno: e as i32, message: format!("{what}: {}", e.desc()) }
}

fn io_step(what: &str) -> impl Fn(std::io::Error) -> SetupError + '_ {
    move |e| SetupError { errno: e.raw_os_error().unwrap_or(libc::EIO), message: format!("{what}: {e}") }
}

/// Sets up the container and execs its command; never returns.
pub fn enter(
    spec: &LaunchSpec,
    born: Born,
    stdio: [RawFd; 3],
    console: Option<RawFd>,
    init: Option<RawFd>,
    err_pipe: OwnedFd,
) -> ! {
    let err = match setup_and_exec(spec, born, stdio, console, init) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    fail(err, err_pipe)
}

/// The exec helper's child, already in the container's pid namespace: joins the container's cgroups, then
/// its other namespaces (`namespaces`, the mount namespace last: from then on `/` is the container's root),
/// and runs the command as the container's own is run. Never returns.
pub fn enter_exec(
    spec: &ExecSpec,
    born: Born,
    namespaces: &[(OwnedFd, CloneFlags)],
    stdio: [RawFd; 3],
    console: Option<RawFd>,
    err_pipe: OwnedFd,
) -> ! {
    let err = match join_and_exec(spec, born, namespaces, stdio, console) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    fail(err, err_pipe)
}

fn join_and_exec(
    spec: &ExecSpec,
    born: Born,
    namespaces: &[(OwnedFd, CloneFlags)],
    stdio: [RawFd; 3],
    console: Option<RawFd>,
) -> Result<Never, SetupError> {
    join_groups(spec.cgroup.as_deref(), born, &spec.cgroup_procs)?;
    for (fd, flag) in namespaces {
        nix::sched::setns(fd, *flag).map_err(step("enter the container's namespaces"))?;
    }
    reset_signals();
    reset_umask();
    setup_stdio(stdio)?;
    let ids = container_ids(&spec.user)?;
    terminal(console, &ids)?;
    let cwd = if spec.cwd.is_empty() { "/" } else { spec.cwd.as_str() };
    nix::unistd::chdir(cwd)
        .map_err(|e| SetupError { errno: e as i32, message: format!("working directory '{cwd}': {}", e.desc()) })?;
    harden(&spec.security, &ids)?;
    exec(&spec.argv, &super::user::with_home(&spec.env, &ids.home), None)
}

/// Capabilities, no_new_privs, the user and seccomp, last before the exec (see [`super::security`]).
fn harden(security: &super::spec::Security, ids: &Ids) -> Result<(), SetupError> {
    super::security::apply(security, ids).map_err(|message| SetupError { errno: libc::EPERM, message })
}

/// The ids of `user`, resolved in the container's `/etc/passwd` and `/etc/group` (`/` is its root now).
fn container_ids(user: &str) -> Result<Ids, SetupError> {
    let passwd = read_small("/etc/passwd")?;
    let group = read_small("/etc/group")?;
    super::user::resolve(user, &passwd, &group).map_err(|message| SetupError { errno: libc::ENOENT, message })
}

/// A file of the image, if it is a regular one (never a FIFO that would block the start), up to 4 MiB;
/// empty if it is missing.
fn read_small(path: &str) -> Result<String, SetupError> {
    use std::io::Read;

    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let refuse = |what: &str| SetupError { errno: libc::EINVAL, message: format!("{path} {what}") };
    let failed = |e: rustix::io::Errno| SetupError { errno: e.raw_os_error(), message: format!("{path}: {e}") };
    // Resolved inside `/` (the container's root now), no magic link (/proc/self/fd/N), and never a file of
    // procfs or sysfs (pid 1 still holds its capabilities here: a read of /proc/kmsg would consume the
    // host's kernel log).
    let root =
        rustix::fs::open("/", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).map_err(failed)?;
    let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = match rustix::fs::openat2(&root, path.trim_start_matches('/'), flags, Mode::empty(), how) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(String::new()),
        Err(e) => return Err(failed(e)),
    };
    const PROC_SUPER_MAGIC: i64 = 0x9fa0;
    const SYSFS_MAGIC: i64 = 0x6265_6572;
    let fs_type = fs_magic(&fd).unwrap_or(PROC_SUPER_MAGIC);
    if fs_type == PROC_SUPER_MAGIC || fs_type == SYSFS_MAGIC {
        return Err(refuse("is a file of the kernel's, not of the image"));
    }
    let file = std::fs::File::from(fd);
    if !file.metadata().map(|m| m.is_file()).unwrap_or(false) {
        return Err(refuse("is not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(4 << 20).read_to_end(&mut bytes).map_err(io_step("read /etc/passwd or /etc/group"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The filesystem type of `fd`: `f_type`'s integer type differs between architectures.
#[allow(clippy::useless_conversion)]
fn fs_magic(fd: &OwnedFd) -> Option<i64> {
    rustix::fs::fstatfs(fd).ok().map(|s| i64::from(s.f_type))
}

/// Writes `err` on the error pipe and ends the forked child at once.
fn fail(err: SetupError, err_pipe: OwnedFd) -> ! {
    let mut pipe = std::fs::File::from(err_pipe);
    let _ = write!(pipe, "{} {}", err.errno, err.message);
    drop(pipe);
    // SAFETY: _exit ends this forked child at once, without running the parent's atexit handlers.
    unsafe { libc::_exit(127) }
}

enum Never {}

/// With `console`, the process's stdio becomes a new terminal of the container's devpts, owned by `ids`,
/// whose master goes to the monitor (see [`super::terminal`]).
fn terminal(console: Option<RawFd>, ids: &Ids) -> Result<(), SetupError> {
    let Some(console) = console else { return Ok(()) };
    super::terminal::attach_new_terminal(console, ids.uid, ids.gid)
        .map_err(|(errno, message)| SetupError { errno, message })
}

/// Joins the container's groups the process was not born in: the cgroup2 group after a plain fork
/// ([`Born::MustJoin`]), and v1's hierarchies'.
fn join_groups(group: Option<&Path>, born: Born, v1_procs: &[PathBuf]) -> Result<(), SetupError> {
    let failed = |what: &Path, e: std::io::Error| SetupError {
        errno: e.raw_os_error().unwrap_or(libc::EIO),
        message: format!("join cgroup {}: {e}", what.display()),
    };
    if let (Some(group), Born::MustJoin) = (group, born) {
        super::spawn::join(group).map_err(|e| failed(group, e))?;
    }
    for procs in v1_procs {
        std::fs::write(procs, "0").map_err(|e| failed(procs, e))?;
    }
    Ok(())
}

fn setup_and_exec(
    spec: &LaunchSpec,
    born: Born,
    stdio: [RawFd; 3],
    console: Option<RawFd>,
    init: Option<RawFd>,
) -> Result<Never, SetupError> {
    // Join the container's groups first: the cgroup namespace made below is rooted where we stand then.
    join_groups(spec.cgroup.as_deref(), born, &spec.cgroup_procs)?;
    let mut namespaces =
        CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWCGROUP;
    // In bridge mode the monitor made (and the daemon connected) the network namespace we are in already.
    if spec.network == NetworkMode::None {
        namespaces |= CloneFlags::CLONE_NEWNET;
    }
    nix::sched::unshare(namespaces).map_err(step("unshare namespaces"))?;
    reset_signals();
    reset_umask();
    setup_stdio(stdio)?;
    setup_rootfs(&spec.rootfs, &spec.binds, spec.security.privileged)?;
    nix::unistd::sethostname(&spec.hostname).map_err(step("sethostname"))?;
    // In bridge mode the daemon brought loopback up with eth0; in host mode it is the host's.
    if spec.network == NetworkMode::None {
        loopback_up().map_err(io_step("bring loopback up"))?;
    }
    let cwd = if spec.cwd.is_empty() { "/" } else { spec.cwd.as_str() };
    let _ = std::fs::create_dir_all(cwd);
    let ids = container_ids(&spec.user)?;
    terminal(console, &ids)?;
    nix::unistd::chdir(cwd)
        .map_err(|e| SetupError { errno: e as i32, message: format!("working directory '{cwd}': {}", e.desc()) })?;
    harden(&spec.security, &ids)?;
    exec(&spec.argv, &super::user::with_home(&spec.env, &ids.home), init)
}

/// The command starts with every signal unblocked and at its default action: the daemon blocks SIGINT and
/// SIGTERM, and the Rust runtime ignores SIGPIPE; both would survive execve.
pub fn reset_signals() {
    // A kernel `struct sigaction` of all zeros is SIG_DFL with no flags and an empty mask, whatever the
    // architecture's field order. The raw syscall reaches the signals glibc keeps for itself (32, 33) too,
    // which an ignoring parent would otherwise pass on.
    let default_action = [0u64; 4];
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: rt_sigaction reads a 32-byte zeroed action (SIG_DFL) and writes nothing back (oldact is null);
        // the sigset size is 8 bytes, as the kernel expects.
        unsafe { libc::syscall(libc::SYS_rt_sigaction, sig, default_action.as_ptr(), std::ptr::null::<u8>(), 8usize) };
    }
    let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
}

/// The command's umask is Docker's 022, whatever the daemon was started with.
fn reset_umask() {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
}

/// stdin, stdout and stderr from the monitor's pipes (see `super::output`), never a host file: a process
/// holding a host file could chmod it through `/proc/self/fd`.
fn setup_stdio(stdio: [RawFd; 3]) -> Result<(), SetupError> {
    // SAFETY: the monitor keeps the three pipe ends open across the fork; they are only borrowed here.
    let [stdin, stdout, stderr] = stdio.map(|fd| unsafe { BorrowedFd::borrow_raw(fd) });
    nix::unistd::dup2_stdin(stdin).map_err(step("dup2 stdin"))?;
    nix::unistd::dup2_stdout(stdout).map_err(step("dup2 stdout"))?;
    nix::unistd::dup2_stderr(stderr).map_err(step("dup2 stderr"))?;
    Ok(())
}

/// Paths of /proc and /sys a container can't read (Docker's masked paths): a directory gets an empty
/// read-only tmpfs over it, a file `/dev/null`.
const MASKED: [&str; 12] = [
    "proc/acpi",
    "proc/asound",
    "proc/interrupts",
    "proc/kcore",
    "proc/keys",
    "proc/latency_stats",
    "proc/sched_debug",
    "proc/scsi",
    "proc/timer_list",
    "proc/timer_stats",
    "sys/devices/virtual/powercap",
    "sys/firmware",
];

/// Paths of /proc a container can read but not write (Docker's read-only paths).
const READ_ONLY: [&str; 5] = ["proc/bus", "proc/fs", "proc/irq", "proc/sys", "proc/sysrq-trigger"];

fn setup_rootfs(rootfs: &Path, binds: &[BindMount], privileged: bool) -> Result<(), SetupError> {
    let none = None::<&str>;
    // Nothing mounted from here on may propagate back to the host.
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none).map_err(step("make / private"))?;
    // pivot_root needs the new root to be a mount point.
    mount(Some(rootfs), rootfs, none, MsFlags::MS_BIND | MsFlags::MS_REC, none).map_err(step("bind rootfs"))?;
    // Device nodes in the image (or made later) can't be opened: only those bound into /dev work. A
    // privileged container's rootfs sheds the store's nosuid,nodev: its devices and set-uid files work.
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    let flags = if privileged { flags } else { flags | MsFlags::MS_NODEV };
    mount(none, rootfs, none, flags, none).map_err(step("remount rootfs"))?;
    let at = |p: &str| rootfs.join(p);
    for dir in ["proc", "sys", "dev"] {
        ensure_dir(&at(dir), 0o755)?;
    }
    let nosuid_noexec_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    mount(Some("proc"), &at("proc"), Some("proc"), nosuid_noexec_nodev, none).map_err(step("mount /proc"))?;
    mount(Some("sysfs"), &at("sys"), Some("sysfs"), nosuid_noexec_nodev | MsFlags::MS_RDONLY, none)
        .map_err(step("mount /sys"))?;
    setup_dev(&at("dev"))?;
    if !privileged {
        mask_paths(rootfs)?;
    }
    for bind in binds {
        super::bind::bind_into(rootfs, bind, privileged)?;
    }
    nix::unistd::chdir(rootfs).map_err(step("chdir rootfs"))?;
    // runc's trick: pivot the root onto itself, then detach the old root stacked underneath.
    nix::unistd::pivot_root(".", ".").map_err(step("pivot_root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(step("detach old root"))?;
    nix::unistd::chdir("/").map_err(step("chdir /"))?;
    Ok(())
}

/// Masks and write-protects the paths of the container's fresh /proc and /sys that Docker's do.
fn mask_paths(rootfs: &Path) -> Result<(), SetupError> {
    let none = None::<&str>;
    for path in MASKED {
        let target = rootfs.join(path);
        match std::fs::symlink_metadata(&target) {
            Ok(m) if m.is_dir() => mount(
                Some("tmpfs"),
                &target,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("size=0"),
            ),
            Ok(_) => mount(Some("/dev/null"), &target, none, MsFlags::MS_BIND, none),
            Err(_) => continue,
        }
        .map_err(|e| SetupError { errno: e as i32, message: format!("mask /{path}: {}", e.desc()) })?;
    }
    for path in READ_ONLY {
        let target = rootfs.join(path);
        if std::fs::symlink_metadata(&target).is_err() {
            continue;
        }
        let ro = |e: nix::Error| SetupError { errno: e as i32, message: format!("read-only /{path}: {}", e.desc()) };
        mount(Some(&target), &target, none, MsFlags::MS_BIND | MsFlags::MS_REC, none).map_err(ro)?;
        let flags = MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC;
        mount(none, &target, none, flags, none).map_err(ro)?;
    }
    Ok(())
}

fn setup_dev(dev: &Path) -> Result<(), SetupError> {
    // The allowed nodes are made here, the container's own inodes: a chmod of /dev/null inside changes
    // nothing on the host (a bind of the host's node would). The filter refuses the command any mknod of a
    // device, and the rootfs and volumes are nodev, so these are the only nodes it can open.
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME;
    mount(Some("tmpfs"), dev, Some("tmpfs"), flags, Some("mode=755,size=65536k")).map_err(step("mount /dev"))?;
    for name in DEVICES {
        let host = PathBuf::from("/dev").join(name);
        let rdev = nix::sys::stat::stat(&host).map_err(step("stat a host device"))?.st_rdev;
        let node = dev.join(name);
        let mode = nix::sys::stat::Mode::from_bits_truncate(0o666);
        nix::sys::stat::mknod(&node, nix::sys::stat::SFlag::S_IFCHR, mode, rdev).map_err(step("make a /dev node"))?;
        // mknod's mode passes through the umask.
        std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o666))
            .map_err(io_step("chmod a /dev node"))?;
    }
    ensure_dir(&dev.join("pts"), 0o755)?;
    mount(
        Some("devpts"),
        &dev.join("pts"),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )
    .map_err(step("mount /dev/pts"))?;
    ensure_dir(&dev.join("shm"), 0o1777)?;
    mount(
        Some("shm"),
        &dev.join("shm"),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
    )
    .map_err(step("mount /dev/shm"))?;
    let links = [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ];
    for (name, target) in links {
        std::os::unix::fs::symlink(target, dev.join(name)).map_err(io_step("create /dev link"))?;
    }
    Ok(())
}

fn ensure_dir(path: &Path, mode: u32) -> Result<(), SetupError> {
    if !path.is_dir() {
        std::fs::create_dir_all(path).map_err(io_step("create mount point"))?;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
    }
    Ok(())
}

fn loopback_up() -> std::io::Result<()> {
    // SAFETY: plain socket(2) call; the result is checked below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the fd was just returned by socket(2) and nothing else owns it.
    let sock = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: an all-zero ifreq is valid; the name is then set to "lo".
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo") {
        *dst = *src as libc::c_char;
    }
    use std::os::fd::AsRawFd;
    // SAFETY: `ifr` is a valid ifreq that lives across both ioctls; the socket is open.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Finds argv[0] along the container's PATH, as execvp would but with the container's Env.
fn resolve(program: &str, env: &[String]) -> Result<PathBuf, SetupError> {
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    let path = env.iter().find_map(|kv| kv.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH);
    let mut denied = false;
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(program);
        let Ok(meta) = std::fs::metadata(&candidate) else { continue };
        if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
            return Ok(candidate);
        }
        denied = true;
    }
    Err(SetupError {
        errno: if denied { libc::EACCES } else { libc::ENOENT },
        message: format!("executable '{program}' not found in PATH={path}"),
    })
}

/// Execs `argv` (its program found in the image's PATH) with `env`; with `init`, the sealed init, which
/// runs it as its child (see [`super::pid1`]).
fn exec(argv: &[String], env: &[String], init: Option<RawFd>) -> Result<Never, SetupError> {
    let program = argv.first().ok_or(SetupError { errno: libc::EINVAL, message: "empty command".into() })?;
    let path = resolve(program, env)?;
    let cstr = |s: &[u8]| {
        CString::new(s).map_err(|_| SetupError { errno: libc::EINVAL, message: "NUL byte in argv or env".into() })
    };
    let path_c = cstr(path.as_os_str().as_bytes())?;
    let argv_c = argv.iter().map(|a| cstr(a.as_bytes())).collect::<Result<Vec<_>, _>>()?;
    let env_c = env.iter().map(|e| cstr(e.as_bytes())).collect::<Result<Vec<_>, _>>()?;
    // Only 0, 1 and 2 may reach the command (the error pipe is O_CLOEXEC already).
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only flags descriptors; none is closed here.
    unsafe { libc::close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) };
    let e = match init {
        Some(init) => super::pid1::exec_init(init, &path_c, &argv_c, &env_c),
        None => nix::unistd::execve(&path_c, &argv_c, &env_c).unwrap_err(),
    };
    Err(SetupError { errno: e as i32, message: format!("exec {}: {}", path.display(), e.desc()) })
}
