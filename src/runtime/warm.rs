//! Reads a start's executable (and its ELF interpreter) into the page cache while the monitor waits for
//! the daemon's go, so the container's `execve` finds them there. A container's root is a fresh btrfs
//! snapshot: its files are inodes of their own, cold in the page cache even when the image's are hot, and
//! its first exec would read them then, after the network is attached (about 1 ms for busybox here). The
//! reads are asked for with `POSIX_FADV_WILLNEED` (the kernel reads in the background) and overlap the
//! daemon's attach.
//!
//! Best effort: nothing here fails a start. The program is found as the container's pid 1 will find it
//! (`init::resolve`: argv[0] with a slash as it is, else along the Env's PATH), every path resolved beneath
//! the root with `openat2(RESOLVE_IN_ROOT)`; only regular files are read (opened non-blocking, so a FIFO
//! never waits; the store is mounted `nodev`, so no device opens).

use std::num::NonZeroU64;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{Advice, FileType, Mode, OFlags, ResolveFlags};

use super::init::DEFAULT_PATH;
use super::spec::LaunchSpec;

/// At most this much of each file is asked for (a binary's whole text for most; a big one's start).
const MOST: u64 = 16 << 20;

/// Asks for `spec`'s executable and its interpreter to be read ahead.
pub fn command(spec: &LaunchSpec) {
    let Some(program) = spec.argv.first() else { return };
    let Ok(root) = rustix::fs::open(&spec.rootfs, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
    else {
        return;
    };
    let path = spec.env.iter().find_map(|kv| kv.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH);
    let found = candidates(program, &spec.cwd, path).into_iter().find_map(|c| executable(&root, &c));
    let Some(file) = found else { return };
    read_ahead(&file);
    if let Some(interp) = interpreter(&file).and_then(|i| regular(&root, &i)) {
        read_ahead(&interp);
    }
}

/// Where `program` may be, in the order `init::resolve` tries: as it is with a slash (relative to the
/// working directory), else in each directory of `path`.
fn candidates(program: &str, cwd: &str, path: &str) -> Vec<String> {
    if program.contains('/') {
        return vec![match program.starts_with('/') {
            true => program.to_string(),
            false => format!("{}/{program}", cwd.trim_end_matches('/')),
        }];
    }
    path.split(':').filter(|d| !d.is_empty()).map(|d| format!("{}/{program}", d.trim_end_matches('/'))).collect()
}

/// `path` beneath `root`, open for reading, if it is a regular file with an execute bit.
fn executable(root: &OwnedFd, path: &str) -> Option<OwnedFd> {
    let file = regular(root, path)?;
    let st = rustix::fs::fstat(&file).ok()?;
    (st.st_mode & 0o111 != 0).then_some(file)
}

/// `path` beneath `root`, open for reading, if it is a regular file.
fn regular(root: &OwnedFd, path: &str) -> Option<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let file = rustix::fs::openat2(root, path.trim_start_matches('/'), flags, Mode::empty(), how).ok()?;
    let st = rustix::fs::fstat(&file).ok()?;
    (FileType::from_raw_mode(st.st_mode) == FileType::RegularFile).then_some(file)
}

fn read_ahead(file: &OwnedFd) {
    let size = rustix::fs::fstat(file).map(|st| st.st_size.max(0) as u64).unwrap_or(0);
    if let Some(len) = NonZeroU64::new(size.min(MOST)) {
        let _ = rustix::fs::fadvise(file, 0, Some(len), Advice::WillNeed);
    }
}

/// The interpreter (`PT_INTERP`) a 64-bit little-endian ELF file names, if it names one.
fn interpreter(file: &OwnedFd) -> Option<String> {
    let mut head = [0u8; 4096];
    let n = rustix::io::pread(file, &mut head, 0).ok()?;
    let head = &head[..n];
    interp_of(head, |offset, len| {
        let mut buf = vec![0u8; len.min(4096)];
        let n = rustix::io::pread(file, &mut buf, offset).ok()?;
        buf.truncate(n);
        Some(buf)
    })
}

/// `PT_INTERP`'s path, from an ELF file's first bytes `head` and `read(offset, len)` for the rest.
fn interp_of(head: &[u8], read: impl Fn(u64, usize) -> Option<Vec<u8>>) -> Option<String> {
    const PT_INTERP: u32 = 3;
    // ELFCLASS64, ELFDATA2LSB.
    if head.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |at: usize| head.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u64_at = |b: &[u8], at: usize| b.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    let phoff = usize::try_from(u64_at(head, 0x20)?).ok()?;
    let (phentsize, phnum) = (usize::from(u16_at(0x36)?), usize::from(u16_at(0x38)?));
    if phentsize < 56 {
        return None;
    }
    for i in 0..phnum.min(64) {
        let ph = head.get(phoff.checked_add(i.checked_mul(phentsize)?)?..)?.get(..56)?;
        if u32::from_le_bytes(ph[..4].try_into().ok()?) != PT_INTERP {
            continue;
        }
        let (offset, size) = (u64_at(ph, 8)?, usize::try_from(u64_at(ph, 32)?).ok()?);
        let bytes = read(offset, size)?;
        let path = bytes.split(|b| *b == 0).next()?;
        return std::str::from_utf8(path).ok().filter(|p| Path::new(p).is_absolute()).map(String::from);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_as_init_resolves() {
        assert_eq!(candidates("/bin/true", "/", "/bin"), ["/bin/true"]);
        assert_eq!(candidates("./run.sh", "/app/", "/bin"), ["/app/./run.sh"]);
        assert_eq!(candidates("sh", "/", "/usr/bin::/bin/"), ["/usr/bin/sh", "/bin/sh"]);
    }

    #[test]
    fn the_interpreter_of_a_real_binary_and_none_of_garbage() {
        let bytes = std::fs::read("/bin/sh").unwrap();
        let read = |offset: u64, len: usize| bytes.get(offset as usize..).map(|b| b[..len.min(b.len())].to_vec());
        let interp = interp_of(&bytes[..4096.min(bytes.len())], read).expect("a dynamic /bin/sh");
        assert!(interp.starts_with("/lib") && interp.contains("ld-"), "{interp}");
        let none = |_: u64, _: usize| None;
        assert_eq!(interp_of(b"#!/bin/sh\n", none), None);
        assert_eq!(interp_of(b"\x7fELF\x02\x01", none), None, "cut short");
        let mut huge = bytes[..64].to_vec();
        huge[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(interp_of(&huge, none), None, "a program header table past the end");
    }
}
