//! `bocker daemon`: takes the root (one daemon per root), opens the store and the engine, mounts the
//! control filesystem and serves it until SIGINT or SIGTERM, then unmounts cleanly. Running containers
//! are left running: their monitors outlive the daemon and the next daemon re-adopts them.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::sys::signal::{SigSet, Signal};
use tracing::{info, warn};

use crate::engine::Engine;
use crate::fs::access::Access;
use crate::fs::ControlFs;
use crate::store::{Store, StoreError};

/// The daemon's validated options.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub root: PathBuf,
    /// The init binary of containers with `init` (statically linked: tini-static).
    pub init_path: PathBuf,
    /// How many cached build steps no image stands on are kept, and how many bytes of them.
    pub build_cache_steps: usize,
    pub build_cache_size: u64,
    pub mount: PathBuf,
    /// Size of the embedded btrfs image, when the root is not on btrfs.
    pub store_size: u64,
    /// Registries (HOST[:PORT]) that may be used over plain HTTP; loopback ones always may.
    pub insecure_registries: Vec<String>,
    /// The parent group of the containers' cgroups, in each hierarchy.
    pub cgroup_parent: String,
    /// Limits of containers that set none of their own.
    pub default_limits: crate::cgroups::Limits,
    /// How much output is kept per container and per exec.
    pub log_limits: crate::logs::LogLimits,
    /// How much of the `events` file is kept.
    pub event_limits: crate::logs::LogLimits,
    /// The bridge, its subnet and the containers' resolvers.
    pub network: crate::network::NetworkOptions,
    /// The group (`--group`) whose members may use the tree besides root.
    pub group: Option<Group>,
    /// How many monitors are kept started ahead of the containers that take them (`runtime::spare`).
    pub spares: usize,
}

/// A group by name and gid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
}

/// Why the daemon could not start or serve; one variant per step.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot create {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("another bocker daemon (pid {pid}) already serves {root}")]
    AlreadyServed { root: PathBuf, pid: String },
    #[error("cannot lock {path}: {source}")]
    Lock { path: PathBuf, source: io::Error },
    #[error("{mount} is already a mount point in use; pick another --mount")]
    MountBusy { mount: PathBuf },
    #[error("cannot clear the dead mount at {mount}: {source}")]
    ClearDeadMount { mount: PathBuf, source: nix::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] crate::error::Error),
    #[error("cannot mount the control filesystem at {mount}: {source}")]
    Mount { mount: PathBuf, source: io::Error },
    #[error("cannot set up signal handling: {0}")]
    Signals(nix::Error),
    #[error("cannot start the registry client's runtime: {0}")]
    Runtime(io::Error),
    #[error("cannot find the cgroup filesystems: {0}")]
    Cgroups(io::Error),
    #[error(transparent)]
    Network(#[from] crate::network::NetworkError),
}

/// Runs the daemon in the foreground until SIGINT or SIGTERM.
pub fn run(opts: &DaemonOptions) -> Result<(), DaemonError> {
    // Block the stop signals before any thread exists, so every thread inherits the mask and only the
    // signal thread below receives them. Child processes get a clean mask from std's spawn.
    let mut stop = SigSet::empty();
    stop.add(Signal::SIGINT);
    stop.add(Signal::SIGTERM);
    stop.thread_block().map_err(DaemonError::Signals)?;

    let create = |path: &Path| {
        std::fs::create_dir_all(path).map_err(|source| DaemonError::CreateDir { path: path.to_path_buf(), source })
    };
    create(&opts.root)?;
    crate::store::private(&opts.root).map_err(|source| DaemonError::CreateDir { path: opts.root.clone(), source })?;
    let _lock = lock_root(&opts.root)?;
    prepare_mount_point(&opts.mount)?;
    create(&opts.mount)?;

    let store = Store::open(&opts.root, opts.store_size)?;
    let registry = crate::registry::Registry::new(opts.insecure_registries.clone()).map_err(DaemonError::Runtime)?;
    let layout = crate::cgroups::Layout::detect().map_err(DaemonError::Cgroups)?;
    info!(layout = layout.name(), parent = %opts.cgroup_parent, "cgroups");
    let cgroups = crate::cgroups::Cgroups::new(layout, &opts.cgroup_parent);
    if let Err(e) = cgroups.prepare() {
        // Each start makes them again, and says why it can't.
        tracing::warn!(error = %e, "cannot make the daemon's parent cgroups yet");
    }
    let network = crate::network::Network::setup(opts.network.clone())?;
    let engine = Engine::open(
        &opts.root.join("state"),
        store,
        registry,
        cgroups,
        network,
        opts.default_limits.clone(),
        opts.log_limits,
        opts.event_limits,
    )?;
    engine.protect(&opts.root, &opts.mount);
    engine.set_init_path(opts.init_path.clone());
    engine.set_build_cache_bounds(opts.build_cache_steps, opts.build_cache_size);
    engine.start_dns();
    engine.start_by_policies();
    engine.start_spares(opts.spares);

    let config = {
        let mut c = fuser::Config::default();
        c.mount_options = vec![
            fuser::MountOption::FSName("bocker".into()),
            fuser::MountOption::Subtype("bocker".into()),
            fuser::MountOption::NoSuid,
            fuser::MountOption::NoDev,
        ];
        // Root only, unless a group may use it too; then the kernel checks each node's mode as well.
        match &opts.group {
            Some(_) => {
                c.acl = fuser::SessionACL::All;
                c.mount_options.push(fuser::MountOption::DefaultPermissions);
            }
            None => c.acl = fuser::SessionACL::Owner,
        }
        // Four threads answer the kernel (what may wait or touch the disk runs on workers: writes, mkdir,
        // rmdir, reads of logs and errors). One was faster while every name was cached (`cat status` p50 22
        // us against 32), but with object names looked up at each path walk one thread is the bottleneck:
        // `cat status` 185 us with one, 81 us with four (docs/benchmarks.md).
        c.n_threads = Some(4);
        c.clone_fd = true;
        c
    };
    let fs = ControlFs::new(engine.clone(), Access { group: opts.group.as_ref().map(|g| g.gid) });
    let invalidator = fs.invalidator();
    let waits = fs.waits();
    let mut session = fuser::Session::new(fs, &opts.mount, &config)
        .map_err(|source| DaemonError::Mount { mount: opts.mount.clone(), source })?;
    // The kernel's caches of the tree are dropped on the engine's change notices through this session.
    invalidator.attach(session.notifier(), std::os::fd::AsFd::as_fd(&session));
    let mut unmounter = session.unmount_callable();
    let mount = opts.mount.clone();
    std::thread::spawn(move || {
        if let Ok(sig) = stop.wait() {
            info!(signal = %sig, "stopping: unmounting the control filesystem");
        }
        // A reader parked on a `wait` would keep the mount busy until its container ends.
        waits.stop();
        if let Err(e) = unmounter.unmount() {
            warn!(mount = %mount.display(), error = %e, "cannot unmount; detaching it");
            let _ = nix::mount::umount2(&mount, nix::mount::MntFlags::MNT_DETACH);
        }
    });
    let group = opts.group.as_ref().map(|g| format!("{} ({})", g.name, g.gid));
    info!(root = %opts.root.display(), mount = %opts.mount.display(), group = group.as_deref().unwrap_or("none: root only"), "serving");
    let served = session.run().map_err(|source| DaemonError::Mount { mount: opts.mount.clone(), source });
    invalidator.detach();
    engine.shutdown();
    info!("stopped");
    served
}

/// Takes `<root>/daemon.lock` for the life of the daemon, and writes our pid into it.
fn lock_root(root: &Path) -> Result<File, DaemonError> {
    let path = root.join("daemon.lock");
    let lock_err = |source| DaemonError::Lock { path: path.clone(), source };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(lock_err)?;
    // A daemon killed a moment ago may still have its lock held for it by a helper it was starting (the
    // child of a spawn has a copy of the daemon's descriptors until its exec closes them): while the pid
    // in the file is no live process, the lock is tried again for a while.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        // SAFETY: flock on an fd we own; no memory is passed.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            break;
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(lock_err(err));
        }
        let mut pid = String::new();
        let _ = file.rewind().and_then(|()| file.read_to_string(&mut pid));
        let pid = pid.trim().to_string();
        let alive = pid.parse::<u32>().is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if alive || std::time::Instant::now() >= deadline {
            return Err(DaemonError::AlreadyServed { root: root.to_path_buf(), pid });
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    file.set_len(0).and_then(|()| file.rewind()).map_err(lock_err)?;
    write!(file, "{}", std::process::id()).map_err(lock_err)?;
    Ok(file)
}

/// Clears a dead FUSE mount a crashed daemon left (ENOTCONN); refuses a live mount point. The mount is
/// listed rather than stat'ed: the kernel answers a stat of a dead mount from the attributes it cached
/// (the tree's are kept for a while), but a listing needs the daemon.
fn prepare_mount_point(mount: &Path) -> Result<(), DaemonError> {
    match std::fs::read_dir(mount) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            warn!(mount = %mount.display(), "clearing the dead mount of a crashed daemon");
            nix::mount::umount2(mount, nix::mount::MntFlags::MNT_DETACH)
                .map_err(|source| DaemonError::ClearDeadMount { mount: mount.to_path_buf(), source })
        }
        Ok(_) if is_mount_point(mount) => Err(DaemonError::MountBusy { mount: mount.to_path_buf() }),
        _ => Ok(()),
    }
}

fn is_mount_point(path: &Path) -> bool {
    let Ok(canonical) = path.canonicalize() else { return false };
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    mounts.lines().any(|l| l.split(' ').nth(4).is_some_and(|m| Path::new(&unescape(m)) == canonical))
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a size like `20G`, `512M`, `1048576` (K, M, G, T: powers of 1024).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, mult) = match s.char_indices().last()? {
        (i, 'K' | 'k') => (&s[..i], 1u64 << 10),
        (i, 'M' | 'm') => (&s[..i], 1 << 20),
        (i, 'G' | 'g') => (&s[..i], 1 << 30),
        (i, 'T' | 't') => (&s[..i], 1 << 40),
        _ => (s, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("20G"), Some(20 << 30));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("99999999999T"), None);
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape(r"/mnt/a\040b"), "/mnt/a b");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/end\04"), r"/end\04");
    }
}
