//! What a container's process may do, applied last before `execve` (by the container's pid 1 and by every
//! exec): Docker's default 14 capabilities in the bounding, permitted and effective sets (none inheritable
//! or ambient), `no_new_privs`, and a seccomp filter like Docker's default profile, built with
//! `seccompiler`. A `privileged` container keeps everything; `cap_add` adds capabilities to the 14.
//!
//! The filter refuses (EPERM) what Docker's default profile leaves out for a container without extra
//! capabilities: kernel modules, kexec, reboot, swap, clocks, accounting, keyrings, bpf, perf, ptrace and
//! cross-process memory access, mounts and the new mount API, `pivot_root`, `setns`, `unshare` and
//! `clone` with namespace flags, userfaultfd, io_uring, handle-based opens, NUMA policy calls, and `mknod`
//! of character and block devices (the device allowlist: only the nodes bound into `/dev` exist).
//! `clone3` answers ENOSYS, as in Docker's profile, so the C library falls back to `clone`, whose flags
//! the filter can see.

use std::collections::{BTreeMap, HashSet};

use caps::{CapSet, Capability};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
};

use crate::records::Security;

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

/// Applies `security` to this process; the next `execve` runs under it.
pub fn apply(security: &Security) -> Result<(), String> {
    if security.privileged {
        return Ok(());
    }
    let mut keep: HashSet<Capability> = DEFAULT_CAPS.into_iter().collect();
    keep.extend(security.cap_add.iter().filter_map(|c| parse_capability(c)));
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
    caps::set(None, CapSet::Effective, &keep).map_err(|e| format!("set effective capabilities: {e}"))?;
    caps::set(None, CapSet::Permitted, &keep).map_err(|e| format!("set permitted capabilities: {e}"))?;
    for filter in filters()? {
        seccompiler::apply_filter(&filter).map_err(|e| format!("install the seccomp filter: {e}"))?;
    }
    Ok(())
}

/// The syscalls refused outright.
fn refused() -> Vec<i64> {
    let mut list = vec![
        libc::SYS_acct,
        libc::SYS_add_key,
        libc::SYS_bpf,
        libc::SYS_clock_adjtime,
        libc::SYS_clock_settime,
        libc::SYS_delete_module,
        libc::SYS_finit_module,
        libc::SYS_fanotify_init,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fsopen,
        libc::SYS_fspick,
        libc::SYS_get_mempolicy,
        libc::SYS_init_module,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_io_uring_setup,
        libc::SYS_kcmp,
        libc::SYS_kexec_file_load,
        libc::SYS_kexec_load,
        libc::SYS_keyctl,
        libc::SYS_lookup_dcookie,
        libc::SYS_mbind,
        libc::SYS_mount,
        libc::SYS_mount_setattr,
        libc::SYS_move_mount,
        libc::SYS_move_pages,
        libc::SYS_name_to_handle_at,
        libc::SYS_open_by_handle_at,
        libc::SYS_open_tree,
        libc::SYS_perf_event_open,
        libc::SYS_pidfd_getfd,
        libc::SYS_pivot_root,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_ptrace,
        libc::SYS_quotactl,
        libc::SYS_reboot,
        libc::SYS_request_key,
        libc::SYS_set_mempolicy,
        libc::SYS_setns,
        libc::SYS_settimeofday,
        libc::SYS_swapoff,
        libc::SYS_swapon,
        libc::SYS_syslog,
        libc::SYS_umount2,
        libc::SYS_unshare,
        libc::SYS_userfaultfd,
        libc::SYS_vhangup,
    ];
    #[cfg(target_arch = "x86_64")]
    list.extend([
        libc::SYS_ioperm,
        libc::SYS_iopl,
        libc::SYS_nfsservctl,
        libc::SYS_sysfs,
        libc::SYS__sysctl,
        libc::SYS_uselib,
        libc::SYS_ustat,
    ]);
    list
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, String> {
    SeccompRule::new(conditions).map_err(|e| e.to_string())
}

/// `(arg & mask) == value` on argument `index`.
fn masked(index: u8, mask: u64, value: u64) -> Result<SeccompCondition, String> {
    SeccompCondition::new(index, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(mask), value)
        .map_err(|e| e.to_string())
}

/// The filters to install: one answering EPERM, one answering ENOSYS for `clone3`.
pub fn filters() -> Result<Vec<BpfProgram>, String> {
    let arch = std::env::consts::ARCH.try_into().map_err(|_| "seccomp: unsupported architecture".to_string())?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = refused().into_iter().map(|nr| (nr, Vec::new())).collect();

    // clone with any namespace flag (flags are argument 0).
    let namespaces = [
        libc::CLONE_NEWNS,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWNET,
        libc::CLONE_NEWCGROUP,
    ];
    let clone_rules = namespaces
        .iter()
        .map(|flag| rule(vec![masked(0, *flag as u64, *flag as u64)?]))
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_clone, clone_rules);

    // mknod of character and block devices: the mode is argument 1 of mknod, 2 of mknodat.
    let fmt = u64::from(libc::S_IFMT);
    let devices = |index: u8| -> Result<Vec<SeccompRule>, String> {
        Ok(vec![
            rule(vec![masked(index, fmt, u64::from(libc::S_IFCHR))?])?,
            rule(vec![masked(index, fmt, u64::from(libc::S_IFBLK))?])?,
        ])
    };
    #[cfg(target_arch = "x86_64")]
    rules.insert(libc::SYS_mknod, devices(1)?);
    rules.insert(libc::SYS_mknodat, devices(2)?);

    let eperm = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(libc::EPERM as u32), arch)
        .map_err(|e| e.to_string())?;
    let clone3 = SeccompFilter::new(
        [(libc::SYS_clone3, Vec::new())].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(|e| e.to_string())?;
    [eperm, clone3].into_iter().map(|f| BpfProgram::try_from(f).map_err(|e| e.to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_build() {
        let f = filters().unwrap();
        assert_eq!(f.len(), 2);
        assert!(f[0].len() > refused().len());
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
