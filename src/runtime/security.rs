//! What a container's process may do, applied last before `execve` (by the container's pid 1 and by every
//! exec): Docker's default 14 capabilities in the bounding, permitted and effective sets (none inheritable
//! or ambient), `no_new_privs`, and Docker's default seccomp profile, an allow list compiled for the
//! container's capabilities ([`super::seccomp`]). A `privileged` container keeps everything and has no
//! filter; `cap_add` adds capabilities to the 14, and with them the profile's entries gated on them
//! (`CAP_SYS_ADMIN`: mount, unshare, setns, clone with namespace flags and clone3; `CAP_SYS_PTRACE`: kcmp
//! and pidfd_getfd; ...). Without `CAP_SYS_ADMIN`, `clone3` answers ENOSYS, as in Docker's profile, so the
//! C library falls back to `clone`, whose flags the filter can see.

use std::collections::{BTreeSet, HashSet};
use std::sync::OnceLock;

use caps::{CapSet, Capability};
use nix::unistd::{Gid, Uid};

use super::user::Ids;
use seccompiler::BpfProgram;

use super::seccomp::{compile, Profile, SeccompError, Target, DEFAULT_PROFILE};

use super::spec::Security;

/// Docker's default capabilities.
pub const DEFAULT_CAPS: [Capability; 14] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

/// A capability by name: `NET_ADMIN` or `CAP_NET_ADMIN`, any case.
pub fn parse_capability(name: &str) -> Option<Capability> {
    caps::to_canonical(name.trim()).parse().ok()
}

/// Applies `security` to this process and makes it `ids`; the next `execve` runs under both. The
/// bounding set is cut while we are still root, then the ids change (a uid other than 0 loses every
/// permitted and effective capability, as on Docker), then the seccomp filter goes in last.
pub fn apply(security: &Security, ids: &Ids) -> Result<(), String> {
    if security.privileged {
        return switch_ids(ids);
    }
    let keep = capabilities(security);
    // The filter is built before anything is dropped: a failure leaves the process as it was.
    let filter = filter(security)?;
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1) takes plain integers and touches no memory.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(format!("no_new_privs: {}", std::io::Error::last_os_error()));
    }
    for cap in caps::all() {
        // Capabilities this kernel doesn't know are not in its bounding set anyway (EINVAL).
        if !keep.contains(&cap) {
            let _ = caps::drop(None, CapSet::Bounding, cap);
        }
    }
    let keep: caps::CapsHashSet = keep.into_iter().collect();
    caps::clear(None, CapSet::Ambient).map_err(|e| format!("clear ambient capabilities: {e}"))?;
    caps::clear(None, CapSet::Inheritable).map_err(|e| format!("clear inheritable capabilities: {e}"))?;
    switch_ids(ids)?;
    if ids.uid == 0 {
        caps::set(None, CapSet::Effective, &keep).map_err(|e| format!("set effective capabilities: {e}"))?;
        caps::set(None, CapSet::Permitted, &keep).map_err(|e| format!("set permitted capabilities: {e}"))?;
    }
    seccompiler::apply_filter(&filter).map_err(|e| format!("install the seccomp filter: {e}"))
}

/// Supplementary groups, then the group, then the user (the order that keeps the right to each step).
fn switch_ids(ids: &Ids) -> Result<(), String> {
    let groups: Vec<Gid> = ids.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&groups).map_err(|e| format!("setgroups {:?}: {e}", ids.groups))?;
    nix::unistd::setresgid(Gid::from_raw(ids.gid), Gid::from_raw(ids.gid), Gid::from_raw(ids.gid))
        .map_err(|e| format!("setgid {}: {e}", ids.gid))?;
    nix::unistd::setresuid(Uid::from_raw(ids.uid), Uid::from_raw(ids.uid), Uid::from_raw(ids.uid))
        .map_err(|e| format!("setuid {}: {e}", ids.uid))?;
    // What the kernel did, not what was asked: never go on as someone else.
    let (uids, gids) = (nix::unistd::getresuid(), nix::unistd::getresgid());
    let uid_ok = uids.is_ok_and(|r| [r.real, r.effective, r.saved].iter().all(|u| u.as_raw() == ids.uid));
    let gid_ok = gids.is_ok_and(|r| [r.real, r.effective, r.saved].iter().all(|g| g.as_raw() == ids.gid));
    if !uid_ok || !gid_ok {
        return Err(format!("the ids did not become {}:{}", ids.uid, ids.gid));
    }
    Ok(())
}

/// The bounding set of a container that isn't privileged: Docker's 14 and what `cap_add` adds.
pub fn capabilities(security: &Security) -> HashSet<Capability> {
    let mut keep: HashSet<Capability> = DEFAULT_CAPS.into_iter().collect();
    keep.extend(security.cap_add.iter().filter_map(|c| parse_capability(c)));
    keep
}

/// The seccomp filter of a container that isn't privileged: Docker's default profile for its
/// capabilities (see [`super::seccomp`]); the one [`precompile`] made if it was made for the same
/// capabilities.
pub fn filter(security: &Security) -> Result<BpfProgram, String> {
    let caps = capability_names(security);
    match PRECOMPILED.get() {
        Some((made_for, program)) if *made_for == caps => Ok(program.clone()),
        _ => compile_for(&caps),
    }
}

/// A filter compiled ahead in this process (and so in the children it forks), with the capabilities it
/// was compiled for.
static PRECOMPILED: OnceLock<(BTreeSet<String>, BpfProgram)> = OnceLock::new();

/// Compiles the filter of `security` ahead, while a monitor waits (the profile's parse and compile take
/// about 0.3 ms, which a child forked after would otherwise spend between the go and its exec). The first
/// call in a process sets it; later ones change nothing.
pub fn precompile(security: &Security) {
    if security.privileged || PRECOMPILED.get().is_some() {
        return;
    }
    let caps = capability_names(security);
    if let Ok(program) = compile_for(&caps) {
        let _ = PRECOMPILED.set((caps, program));
    }
}

fn capability_names(security: &Security) -> BTreeSet<String> {
    capabilities(security).iter().map(|c| c.to_string()).collect()
}

fn compile_for(caps: &BTreeSet<String>) -> Result<BpfProgram, String> {
    let profile: Profile = serde_json::from_str(DEFAULT_PROFILE).map_err(|e| SeccompError::from(e).to_string())?;
    let target = Target::native().map_err(|e| e.to_string())?;
    compile(&profile, caps, &target).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_build() {
        let plain = filter(&Security::default()).unwrap();
        let admin = filter(&Security { cap_add: vec!["CAP_SYS_ADMIN".into()], ..Default::default() }).unwrap();
        // CAP_SYS_ADMIN opens mount, unshare, clone3 and more: another program.
        assert_ne!(admin, plain);
    }

    #[test]
    fn precompiled_filters_serve_only_the_capabilities_they_were_made_for() {
        let admin = Security { cap_add: vec!["CAP_SYS_ADMIN".into()], ..Default::default() };
        let (plain_then, admin_then) = (filter(&Security::default()).unwrap(), filter(&admin).unwrap());
        precompile(&Security::default());
        precompile(&admin);
        assert_eq!(filter(&Security::default()).unwrap(), plain_then);
        assert_eq!(filter(&admin).unwrap(), admin_then, "the second precompile changed nothing");
    }

    #[test]
    fn capability_names() {
        assert_eq!(parse_capability("NET_ADMIN"), Some(Capability::CAP_NET_ADMIN));
        assert_eq!(parse_capability("cap_sys_time"), Some(Capability::CAP_SYS_TIME));
        assert_eq!(parse_capability("BOGUS"), None);
        let mask: u64 = DEFAULT_CAPS.iter().map(|c| c.bitmask()).sum();
        assert_eq!(format!("{mask:016x}"), "00000000a80425fb", "Docker's CapEff");
    }
}
