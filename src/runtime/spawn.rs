//! Forking a container's process (or an exec's) born in its cgroup: `clone3` with `CLONE_INTO_CGROUP`
//! (Linux 5.7) puts the child in the cgroup2 group as it is created, so it never runs a moment in the
//! helper's group, is never migrated, and no `cgroup.procs` write (and its rcu_sync wait) is on the start
//! path. Where the kernel lacks it (ENOSYS, or EINVAL for the flag), it falls back to `fork` and the
//! child writes itself into the group's `cgroup.procs` first thing. Used only by the single-threaded
//! helpers (the monitor, the exec helper).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::unistd::{ForkResult, Pid};

/// `clone3`'s flag: the child starts in the cgroup2 group whose directory `clone_args.cgroup` is open on.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` of `linux/sched.h`, as far as `cgroup` (`CLONE_ARGS_SIZE_VER2`, 88 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// How a child came to be in its group, for the child to finish the job if it must.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Born {
    /// In the group already (or there is none to join).
    InGroup,
    /// By a plain fork: the child must write itself into the group's `cgroup.procs`.
    MustJoin,
}

/// Forks, the child born in the cgroup2 group `group` if one is given. Only for a single-threaded
/// process: the child runs ordinary code before it execs or exits, as after `fork`.
pub fn fork_into(group: Option<&Path>) -> Result<(ForkResult, Born), nix::Error> {
    let Some(group) = group else {
        // SAFETY: the caller is single-threaded (see above).
        return unsafe { nix::unistd::fork() }.map(|r| (r, Born::InGroup));
    };
    let dir: OwnedFd = nix::fcntl::open(
        group,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    let mut args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: dir.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 with no stack and no CLONE_VM duplicates this single-threaded process as fork
    // does (copy-on-write memory, the child returns 0 on the same stack); `args` is a valid, initialised
    // clone_args of the size given, alive for the call.
    let r = unsafe { libc::syscall(libc::SYS_clone3, &mut args as *mut CloneArgs, std::mem::size_of::<CloneArgs>()) };
    match r {
        0 => Ok((ForkResult::Child, Born::InGroup)),
        pid if pid > 0 => Ok((ForkResult::Parent { child: Pid::from_raw(pid as i32) }, Born::InGroup)),
        _ => match nix::Error::last() {
            // No clone3 (before 5.3) or no CLONE_INTO_CGROUP (before 5.7): fork, and the child joins.
            nix::Error::ENOSYS | nix::Error::EINVAL | nix::Error::E2BIG => {
                // SAFETY: the caller is single-threaded (see above).
                unsafe { nix::unistd::fork() }.map(|r| (r, Born::MustJoin))
            }
            e => Err(e),
        },
    }
}

/// In a child [`fork_into`] forked with [`Born::MustJoin`]: joins the group.
pub fn join(group: &Path) -> std::io::Result<()> {
    std::fs::write(group.join("cgroup.procs"), "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_args_is_the_kernels_ver2_size() {
        assert_eq!(std::mem::size_of::<CloneArgs>(), 88);
    }

    /// A cgroup2 group of this test's own below `bocker`, removed when dropped.
    struct TestGroup(std::path::PathBuf);

    impl Drop for TestGroup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
            if let Some(parent) = self.0.parent() {
                let _ = std::fs::remove_dir(parent); // Only if no one else's group is in it.
            }
        }
    }

    #[test]
    fn the_child_is_in_the_group_from_its_first_instruction() {
        use crate::cgroups::Layout;
        let root = match Layout::detect() {
            Ok(Layout::V2 { root }) | Ok(Layout::V1 { unified: Some(root), .. }) => root,
            // A pure v1 host (no cgroup2 mount): nothing to be born in; this machine and the guest have one.
            other => return eprintln!("skipped: no cgroup2 hierarchy here ({other:?})"),
        };
        let group = TestGroup(root.join("bocker").join(format!("test-spawn-{}", std::process::id())));
        std::fs::create_dir_all(&group.0).unwrap();
        let want = format!("0::/bocker/test-spawn-{}\n", std::process::id());
        let (r, w) = nix::unistd::pipe().unwrap();
        // The test harness is multi-threaded: the child makes raw system calls only, into a stack buffer,
        // before anything else it does.
        let path = c"/proc/self/cgroup";
        match fork_into(Some(&group.0)).unwrap() {
            (ForkResult::Child, _) => {
                let mut buf = [0u8; 4096];
                // SAFETY: open, read, write and _exit on a valid C string, a stack buffer and fds this
                // process holds; no allocation, no lock.
                unsafe {
                    let fd = libc::open(path.as_ptr(), libc::O_RDONLY);
                    let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
                    libc::write(w.as_raw_fd(), buf.as_ptr().cast(), n.max(0) as usize);
                    libc::_exit(0)
                }
            }
            (ForkResult::Parent { child }, born) => {
                drop(w);
                let mut seen = String::new();
                std::io::Read::read_to_string(&mut std::fs::File::from(r), &mut seen).unwrap();
                nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(born, Born::InGroup, "clone3 with CLONE_INTO_CGROUP (Linux 5.7)");
                // Only the cgroup2 line: on a hybrid host the v1 lines are the parent's.
                let v2_line: String = seen.lines().filter(|l| l.starts_with("0::")).map(|l| format!("{l}\n")).collect();
                assert_eq!(v2_line, want, "born there, before any write of its own");
                let mine = std::fs::read_to_string("/proc/self/cgroup").unwrap();
                assert!(!mine.contains("test-spawn"), "the parent stays where it was: {mine}");
            }
        }
    }

    #[test]
    fn without_a_group_it_is_a_fork() {
        // The test harness is multi-threaded: the child only _exits.
        match fork_into(None).unwrap() {
            (ForkResult::Child, _) => {
                // SAFETY: _exit ends the child at once, touching nothing of the parent's.
                unsafe { libc::_exit(7) }
            }
            (ForkResult::Parent { child }, born) => {
                assert_eq!(born, Born::InGroup);
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 7));
            }
        }
    }
}
