//! Who made a request (for the tree's access checks, `fs::access`, and for imports): the uid, gid and
//! supplementary groups of the process behind a write on the mount, and taking on that identity for file
//! access, on one thread only.
//!
//! The FUSE request carries the writer's uid, gid and pid; the supplementary groups are read from
//! `/proc/PID/status` while the writer still waits in its `write`. What the daemon reads for a caller
//! (`images/import`) it reads with the caller's filesystem identity, so nobody brings into an image what
//! they could not read themselves.
//!
//! Credentials are per thread in the kernel. `setfsuid` and `setfsgid` are plain syscalls in glibc, but
//! glibc's `setgroups` changes every thread of the process (it is broadcast, as POSIX wants): the groups
//! are set with the raw syscall (`rustix::thread::set_thread_groups`), which changes only the calling
//! thread. Leaving fsuid 0 drops the effective filesystem capabilities (CAP_DAC_OVERRIDE and the others);
//! going back to fsuid 0 gives them back.

use std::io;

use nix::unistd::{Gid, Uid};

/// Why an identity could not be taken on or given back.
#[derive(Debug, thiserror::Error)]
pub enum CallerError {
    #[error("cannot read this thread's groups: {0}")]
    SaveGroups(io::Error),
    #[error("cannot set the groups of the caller {uid}: {source}")]
    SetGroups { uid: u32, source: io::Error },
    #[error("the kernel kept fsuid {got} instead of {want}")]
    FsUid { want: u32, got: u32 },
    #[error("the kernel kept fsgid {got} instead of {want}")]
    FsGid { want: u32, got: u32 },
}

/// The identity of the process that made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    pub pid: u32,
}

impl Caller {
    /// The caller of a FUSE request: its uid, gid and pid, and the groups of that pid, taken only when
    /// `/proc/PID/status` still shows that uid and gid as its filesystem ids (a writer killed mid-request
    /// could have its pid reused by a process with other groups). Without them it has no supplementary
    /// groups: never more than it had.
    pub fn of_request(uid: u32, gid: u32, pid: u32) -> Caller {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let groups = groups_from_status(&status, uid, gid).unwrap_or_default();
        Caller { uid, gid, groups, pid }
    }

    /// The least privileged caller: nobody, in no group. What a request parsed without a caller reads as.
    pub fn nobody() -> Caller {
        Caller { uid: 65534, gid: 65534, groups: Vec::new(), pid: 0 }
    }

    /// Runs `f` with this caller's filesystem identity on the current thread, and gives the thread's own
    /// back after. If it cannot be given back the thread would go on as the caller: that is a panic, so
    /// nothing more runs on it (the daemon runs each request on a thread of its own).
    pub fn access<T>(&self, f: impl FnOnce() -> T) -> Result<T, CallerError> {
        let saved = Identity::current()?;
        let result = self.assume();
        let value = result.as_ref().ok().map(|()| f());
        if let Err(e) = saved.restore() {
            panic!("cannot give the thread its identity back: {e}");
        }
        result.map(|()| value.expect("f ran when the identity was taken"))
    }

    fn assume(&self) -> Result<(), CallerError> {
        let groups: Vec<rustix::fs::Gid> = self.groups.iter().map(|g| rustix::fs::Gid::from_raw(*g)).collect();
        rustix::thread::set_thread_groups(&groups)
            .map_err(|e| CallerError::SetGroups { uid: self.uid, source: e.into() })?;
        set_fs_ids(self.uid, self.gid)
    }
}

/// A thread's own filesystem identity, to give back.
struct Identity {
    uid: u32,
    gid: u32,
    groups: Vec<rustix::fs::Gid>,
}

impl Identity {
    fn current() -> Result<Identity, CallerError> {
        let groups = nix::unistd::getgroups().map_err(|e| CallerError::SaveGroups(e.into()))?;
        Ok(Identity {
            // setfsuid(-1) changes nothing and returns the current fsuid.
            uid: nix::unistd::setfsuid(Uid::from_raw(u32::MAX)).as_raw(),
            gid: nix::unistd::setfsgid(Gid::from_raw(u32::MAX)).as_raw(),
            groups: groups.into_iter().map(|g| rustix::fs::Gid::from_raw(g.as_raw())).collect(),
        })
    }

    fn restore(&self) -> Result<(), CallerError> {
        // The uid first: back at fsuid 0 the thread may set its groups again.
        set_fs_ids(self.uid, self.gid)?;
        rustix::thread::set_thread_groups(&self.groups)
            .map_err(|e| CallerError::SetGroups { uid: self.uid, source: e.into() })
    }
}

/// Sets this thread's fsuid and fsgid and checks the kernel took them (setfsuid reports no error).
fn set_fs_ids(uid: u32, gid: u32) -> Result<(), CallerError> {
    // The gid first: with an fsuid other than 0 the thread could no longer set it.
    nix::unistd::setfsgid(Gid::from_raw(gid));
    nix::unistd::setfsuid(Uid::from_raw(uid));
    let got_uid = nix::unistd::setfsuid(Uid::from_raw(u32::MAX)).as_raw();
    let got_gid = nix::unistd::setfsgid(Gid::from_raw(u32::MAX)).as_raw();
    if got_uid != uid {
        return Err(CallerError::FsUid { want: uid, got: got_uid });
    }
    if got_gid != gid {
        return Err(CallerError::FsGid { want: gid, got: got_gid });
    }
    Ok(())
}

/// The `Groups:` of a `/proc/PID/status` text whose filesystem uid and gid (the fourth field of `Uid:`
/// and `Gid:`) are `uid` and `gid`; `None` when they are not, or the text is not a status file.
fn groups_from_status(status: &str, uid: u32, gid: u32) -> Option<Vec<u32>> {
    let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).map(str::split_whitespace);
    let fs_id = |name: &str| field(name)?.nth(3)?.parse::<u32>().ok();
    if fs_id("Uid:")? != uid || fs_id("Gid:")? != gid {
        return None;
    }
    field("Groups:")?.map(|g| g.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_read_only_from_a_status_of_that_uid_and_gid() {
        let status = "Name:\tsh\nUid:\t1000\t1000\t1000\t1000\nGid:\t100\t100\t100\t100\nGroups:\t100 27 4 \n";
        assert_eq!(groups_from_status(status, 1000, 100), Some(vec![100, 27, 4]));
        assert_eq!(groups_from_status(status, 1001, 100), None, "another uid: a reused pid");
        assert_eq!(groups_from_status(status, 1000, 0), None);
        let none = "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\n";
        assert_eq!(groups_from_status(none, 0, 0), Some(vec![]));
        assert_eq!(groups_from_status("", 0, 0), None);
        assert_eq!(groups_from_status("Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\tx\n", 0, 0), None);
    }

    #[test]
    fn our_own_process_reads_as_itself() {
        let me =
            Caller::of_request(nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw(), std::process::id());
        let mut want: Vec<u32> = nix::unistd::getgroups().unwrap().iter().map(|g| g.as_raw()).collect();
        let mut got = me.groups.clone();
        want.sort();
        got.sort();
        assert_eq!(got, want);
    }

    /// The identity switch (run as root, like the tests): a file of root's, mode 0600, is refused to a
    /// caller and readable by root; a 0640 file of group G is readable by a caller in G and refused to one
    /// that is not. Only the switching thread changes: another thread keeps reading as root meanwhile, and
    /// the switching thread is itself again after.
    #[test]
    fn access_takes_the_callers_identity_on_this_thread_only() {
        use std::os::unix::fs::PermissionsExt;
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = std::env::temp_dir().join(format!("bocker-caller-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let secret = dir.join("secret");
        std::fs::write(&secret, "root only").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let shared = dir.join("shared");
        std::fs::write(&shared, "group").unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o640)).unwrap();
        nix::unistd::chown(&shared, Some(Uid::from_raw(0)), Some(Gid::from_raw(4242))).unwrap();

        let outsider = Caller { uid: 4242, gid: 4243, groups: vec![4244], pid: 0 };
        let member = Caller { uid: 4242, gid: 4243, groups: vec![4242], pid: 0 };
        let read = |p: &std::path::Path| std::fs::read_to_string(p).map_err(|e| e.raw_os_error());
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<(Result<String, Option<i32>>, Vec<Gid>)>();
        let secret2 = secret.clone();
        let groups_before = nix::unistd::getgroups().unwrap();
        let other = std::thread::spawn(move || {
            rx.recv().unwrap();
            done_tx.send((read(&secret2), nix::unistd::getgroups().unwrap())).unwrap();
        });
        let seen = outsider
            .access(|| {
                tx.send(()).unwrap();
                // While this thread is the caller, the other one still reads as root.
                let other_read = done_rx.recv().unwrap();
                (read(&secret), read(&shared), other_read)
            })
            .unwrap();
        other.join().unwrap();
        assert_eq!(seen.0, Err(Some(libc::EACCES)), "a 0600 file of root's is refused to the caller");
        assert_eq!(seen.1, Err(Some(libc::EACCES)), "not in the group");
        assert_eq!(seen.2 .0, Ok("root only".into()), "the other thread was not switched");
        assert_eq!(seen.2 .1, groups_before, "nor were its groups (no glibc broadcast)");
        assert_eq!(member.access(|| read(&shared)).unwrap(), Ok("group".into()), "a member of the group reads");
        assert_eq!(read(&secret), Ok("root only".into()), "this thread is root again");
        assert_eq!(nix::unistd::setfsuid(Uid::from_raw(u32::MAX)).as_raw(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
