//! The embedded default store: a sparse image file under the root, formatted btrfs once, and loop-mounted
//! with `LO_FLAGS_AUTOCLEAR` so the loop device goes away by itself when the filesystem is unmounted.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LOOP_MAJOR: u64 = 7;

/// `struct loop_info64` from `linux/loop.h`.
#[repr(C)]
struct LoopInfo64 {
    device: u64,
    inode: u64,
    rdevice: u64,
    offset: u64,
    sizelimit: u64,
    number: u32,
    encrypt_type: u32,
    encrypt_key_size: u32,
    flags: u32,
    file_name: [u8; 64],
    crypt_name: [u8; 64],
    encrypt_key: [u8; 32],
    init: [u64; 2],
}

/// `struct loop_config` from `linux/loop.h`.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// Creates the sparse image file of `size` bytes and formats it btrfs, unless it already exists.
/// Returns whether it was created.
pub fn ensure_image(image: &Path, size: u64) -> io::Result<bool> {
    if image.exists() {
        return Ok(false);
    }
    let tmp = image.with_extension("img.tmp");
    let file = File::create(&tmp)?;
    file.set_len(size)?;
    drop(file);
    let out = Command::new("mkfs.btrfs").arg("-q").arg("-f").arg(&tmp).output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(io::Error::other(format!("mkfs.btrfs failed: {}", String::from_utf8_lossy(&o.stderr).trim())));
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(io::Error::new(e.kind(), format!("cannot run mkfs.btrfs (install btrfs-progs): {e}")));
        }
    }
    std::fs::rename(&tmp, image)?;
    Ok(true)
}

/// The store's mount flags: a set-id file or a device node made in a container's rootfs means nothing on the
/// host.
pub const STORE_FLAGS: nix::mount::MsFlags = nix::mount::MsFlags::MS_NOSUID.union(nix::mount::MsFlags::MS_NODEV);

/// Attaches `image` to a free loop device (auto-clearing) and mounts it btrfs at `target`.
pub fn mount_image(image: &Path, target: &Path) -> io::Result<()> {
    // Still attached (its filesystem kept alive by a container's mount namespace after an earlier daemon
    // unmounted it): mount that device again rather than attaching the same btrfs twice.
    if let Some(dev) = attached_device(image) {
        return nix::mount::mount(Some(&dev), target, Some("btrfs"), STORE_FLAGS, None::<&str>)
            .map_err(io::Error::from);
    }
    let backing = OpenOptions::new().read(true).write(true).open(image)?;
    let control = OpenOptions::new().read(true).write(true).open("/dev/loop-control")?;
    // A free device can be taken by someone else between GET_FREE and CONFIGURE: retry a few times.
    for _ in 0..16 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number or -1.
        let n = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let dev = loop_node(n as u64)?;
        let loopdev = OpenOptions::new().read(true).write(true).open(&dev)?;
        // SAFETY: an all-zero loop_config is valid; we then set the fields we need.
        let mut config: LoopConfig = unsafe { std::mem::zeroed() };
        config.fd = backing.as_raw_fd() as u32;
        config.info.flags = LO_FLAGS_AUTOCLEAR;
        // SAFETY: `config` is a fully initialised `loop_config` that lives for the call; both fds are open.
        let rc = unsafe { libc::ioctl(loopdev.as_raw_fd(), LOOP_CONFIGURE, &config as *const LoopConfig) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EBUSY) {
                continue;
            }
            return Err(err);
        }
        // Keep `loopdev` open until the mount holds the device, or autoclear would detach it first.
        let res = nix::mount::mount(Some(&dev), target, Some("btrfs"), STORE_FLAGS, None::<&str>);
        drop(loopdev);
        return res.map_err(io::Error::from);
    }
    Err(io::Error::from_raw_os_error(libc::EBUSY))
}

/// The loop device `image` is attached to, if any.
fn attached_device(image: &Path) -> Option<PathBuf> {
    let image = image.canonicalize().ok()?;
    for entry in std::fs::read_dir("/sys/block").ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        let Ok(backing) = std::fs::read_to_string(entry.path().join("loop/backing_file")) else { continue };
        if Path::new(backing.trim_end()) == image {
            return loop_node(name.trim_start_matches("loop").parse().ok()?).ok();
        }
    }
    None
}

/// The node of loop device `n`, created if the kernel gave a number /dev does not have yet.
fn loop_node(n: u64) -> io::Result<PathBuf> {
    let path = PathBuf::from(format!("/dev/loop{n}"));
    match std::fs::metadata(&path) {
        Ok(m) if m.file_type().is_block_device() => Ok(path),
        Ok(_) => Err(io::Error::other(format!("{} is not a block device", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mode = nix::sys::stat::Mode::from_bits_truncate(0o660);
            nix::sys::stat::mknod(&path, nix::sys::stat::SFlag::S_IFBLK, mode, nix::sys::stat::makedev(LOOP_MAJOR, n))
                .or_else(|e| if e == nix::errno::Errno::EEXIST { Ok(()) } else { Err(e) })?;
            Ok(path)
        }
        Err(e) => Err(e),
    }
}
