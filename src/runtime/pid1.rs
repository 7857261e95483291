//! The init of a container with `init` true: tini (Docker's `docker-init`), statically linked (Debian's
//! `tini-static`, the daemon's `--init-path`), which runs the command as its child, forwards it every
//! signal, reaps orphans and exits as it did. The monitor copies the binary into a memfd and seals it (no
//! write, no resize, no further seals), and the container's process execs the memfd, so `/proc/1/exe`
//! inside is a sealed copy and no file of the host is reachable through it (runc's answer to
//! CVE-2019-5736). A static binary needs nothing of the image.

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// The init's name, as its memfd and its argv[0] show it.
pub const INIT_NAME: &str = "tini";

/// Where the daemon finds the init by default (Debian's `tini` package).
pub const DEFAULT_INIT_PATH: &str = "/usr/bin/tini-static";

/// A sealed memfd holding the init binary at `path`, close-on-exec (an exec of it still works: the kernel
/// opens it before it closes close-on-exec descriptors).
pub(super) fn sealed_init(path: &Path) -> Result<OwnedFd, String> {
    let bytes = std::fs::read(path).map_err(|e| {
        format!("init: cannot read {} (the daemon's --init-path; apt-get install tini): {e}", path.display())
    })?;
    let name = CString::new(INIT_NAME).map_err(|_| "init: bad name".to_string())?;
    // SAFETY: memfd_create reads the NUL-terminated name and returns a new descriptor or -1.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(format!("init: memfd_create: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: memfd_create returned a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = std::fs::File::from(fd);
    file.write_all(&bytes).map_err(|e| format!("init: cannot copy it: {e}"))?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: F_ADD_SEALS takes an int of seal flags by value.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(format!("init: cannot seal it: {}", std::io::Error::last_os_error()));
    }
    Ok(OwnedFd::from(file))
}

/// Execs the sealed init `init` with the command `path` and its `argv` after it; returns only on failure.
pub(super) fn exec_init(init: RawFd, path: &CString, argv: &[CString], env: &[CString]) -> nix::Error {
    let mut args: Vec<CString> = Vec::with_capacity(argv.len() + 2);
    args.push(CString::new(INIT_NAME).unwrap_or_default());
    args.push(CString::new("--").unwrap_or_default());
    args.push(path.clone());
    args.extend(argv.iter().skip(1).cloned());
    let mut arg_ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    arg_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    let empty = c"";
    // SAFETY: execveat reads the NUL-terminated path and the two NULL-terminated arrays of pointers to
    // NUL-terminated strings, all alive across the call; it returns only on failure.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            init,
            empty.as_ptr(),
            arg_ptrs.as_ptr(),
            env_ptrs.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    nix::Error::last()
}
