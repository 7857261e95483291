//! Docker's default seccomp profile, kept as data (`seccomp/default.json`, from moby/profiles; see
//! `seccomp/README.md` for its source and licence), compiled into BPF for one container's capabilities.
//!
//! The profile is an allow list: what no entry names is refused with its `defaultAction`
//! (`SCMP_ACT_ERRNO`, EPERM). Every field Docker honours is honoured here: `names` (or `name`), `action`
//! and `errnoRet`, `args` with every comparison op, `includes` and `excludes` by `caps` (the container's
//! capabilities, so `cap_add` opens the entries gated on what it adds), `arches` and `minKernel`. Names
//! become this architecture's numbers through the `syscalls` crate; a name it doesn't know on this
//! architecture is not on the list. Only the native ABI passes: a foreign architecture (i386 through
//! `int 0x80`) kills the process, and a number with the x32 bit set is not on the list (EPERM).
//!
//! bockerfs adds two rules of its own: numbers beyond the newest syscall this build knows answer ENOSYS
//! (runc's rule: a C library then falls back, as it does on an older kernel), and `mknod`/`mknodat` make
//! regular files, FIFOs and sockets but no device nodes (Docker leaves devices to a device cgroup; here
//! only the nodes bound into `/dev` exist).
//!
//! It all becomes one program ([`bpf`]): a number's entries are tried from the most severe action down
//! (an entry's own errno, `clone3`'s ENOSYS, wins over the allow list and the default), then the default.
//! libseccomp, which Docker uses, answers the same way: an entry's action, else the default.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use seccompiler::BpfProgram;
use serde::Deserialize;
use syscalls::Sysno;

mod bpf;
use bpf::{Cond, Op, Ret, Rule, Step, Table};

/// Docker's default profile, as moby/profiles ships it.
pub const DEFAULT_PROFILE: &str = include_str!("seccomp/default.json");

/// Why a profile could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp profile: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("seccomp profile: unsupported action '{0}'")]
    Action(String),
    #[error("seccomp profile: unsupported comparison '{0}'")]
    Op(String),
    #[error("seccomp profile: bad minKernel '{0}'")]
    Kernel(String),
    #[error("seccomp: unsupported architecture {0}")]
    Arch(String),
    #[error("seccomp: {0}")]
    Build(#[from] bpf::BpfError),
}

/// A profile in Docker's format.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: String,
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    #[serde(default)]
    pub syscalls: Vec<Entry>,
}

/// One entry of `syscalls`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    #[serde(default)]
    pub names: Vec<String>,
    #[serde(default)]
    pub name: Option<String>,
    pub action: String,
    #[serde(default)]
    pub errno_ret: Option<u32>,
    #[serde(default)]
    pub args: Vec<Arg>,
    #[serde(default)]
    pub includes: Option<Gate>,
    #[serde(default)]
    pub excludes: Option<Gate>,
}

/// A comparison on one argument: `op` of `value` (`MASKED_EQ`: `arg & value == value_two`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    pub index: u8,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: String,
}

/// The condition of `includes` (all of it must hold) or `excludes` (any of it drops the entry).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Gate {
    #[serde(default)]
    pub caps: Vec<String>,
    #[serde(default)]
    pub arches: Vec<String>,
    #[serde(default)]
    pub min_kernel: Option<String>,
}

/// Where a profile is compiled for: the architecture (libseccomp's name, `amd64`) and the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub arch: &'static str,
    pub kernel: (u32, u32),
}

impl Target {
    /// This machine.
    pub fn native() -> Result<Target, SeccompError> {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "riscv64" => "riscv64",
            other => return Err(SeccompError::Arch(other.to_string())),
        };
        let release =
            nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
        Ok(Target { arch, kernel: parse_kernel(&release).unwrap_or((0, 0)) })
    }
}

/// `6.18.0-1-amd64` → `(6, 18)`.
fn parse_kernel(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// An action, ordered so the filters come out in a fixed order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Allow,
    Log,
    Errno(u32),
    Trap,
    KillThread,
    KillProcess,
}

impl Action {
    fn parse(name: &str, errno: Option<u32>) -> Result<Action, SeccompError> {
        Ok(match name {
            "SCMP_ACT_ALLOW" => Action::Allow,
            "SCMP_ACT_LOG" => Action::Log,
            "SCMP_ACT_ERRNO" => Action::Errno(errno.unwrap_or(libc::EPERM as u32)),
            "SCMP_ACT_TRAP" => Action::Trap,
            "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
            "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
            other => return Err(SeccompError::Action(other.to_string())),
        })
    }

    /// The program's `SECCOMP_RET_*` value.
    fn ret(self) -> Ret {
        match self {
            Action::Allow => libc::SECCOMP_RET_ALLOW,
            Action::Log => libc::SECCOMP_RET_LOG,
            Action::Errno(e) => libc::SECCOMP_RET_ERRNO | (e & libc::SECCOMP_RET_DATA),
            Action::Trap => libc::SECCOMP_RET_TRAP,
            Action::KillThread => libc::SECCOMP_RET_KILL_THREAD,
            Action::KillProcess => libc::SECCOMP_RET_KILL_PROCESS,
        }
    }
}

/// A syscall's rules under one action: `None` matches unconditionally, else any of the rules.
type Rules = BTreeMap<u32, Option<Vec<Rule>>>;

/// Arguments the kernel reads as 32 bits (`int`, `unsigned int`, `umode_t`, and `clone`'s flags, of which
/// it keeps the lower half): compared on their lower half, so bits above can't slip a value past a rule.
const DWORD_ARGS: [(&str, u8); 7] =
    [("socket", 0), ("socket", 1), ("socket", 2), ("personality", 0), ("clone", 0), ("mknod", 1), ("mknodat", 2)];

fn wide(name: &str, index: u8) -> bool {
    !DWORD_ARGS.contains(&(name, index))
}

fn condition(name: &str, arg: &Arg) -> Result<Cond, SeccompError> {
    let op = match arg.op.as_str() {
        "SCMP_CMP_NE" => Op::Ne,
        "SCMP_CMP_LT" => Op::Lt,
        "SCMP_CMP_LE" => Op::Le,
        "SCMP_CMP_EQ" => Op::Eq,
        "SCMP_CMP_GE" => Op::Ge,
        "SCMP_CMP_GT" => Op::Gt,
        "SCMP_CMP_MASKED_EQ" => Op::MaskedEq(arg.value),
        other => return Err(SeccompError::Op(other.to_string())),
    };
    let value = if matches!(op, Op::MaskedEq(_)) { arg.value_two } else { arg.value };
    Ok(Cond { index: arg.index, wide: wide(name, arg.index), op, value })
}

fn version(text: &str) -> Result<(u32, u32), SeccompError> {
    parse_kernel(text).ok_or_else(|| SeccompError::Kernel(text.to_string()))
}

/// Whether an entry applies to a container with `caps` on `target` (moby's `setupSeccomp`).
fn applies(entry: &Entry, caps: &BTreeSet<String>, target: &Target) -> Result<bool, SeccompError> {
    if let Some(ex) = &entry.excludes {
        if ex.arches.iter().any(|a| a == target.arch) || ex.caps.iter().any(|c| caps.contains(c)) {
            return Ok(false);
        }
        if let Some(min) = &ex.min_kernel {
            if target.kernel >= version(min)? {
                return Ok(false);
            }
        }
    }
    if let Some(inc) = &entry.includes {
        if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == target.arch) {
            return Ok(false);
        }
        if !inc.caps.iter().all(|c| caps.contains(c)) {
            return Ok(false);
        }
        if let Some(min) = &inc.min_kernel {
            if target.kernel < version(min)? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

fn add(rules: &mut Rules, nr: u32, rule: Option<Rule>) {
    let slot = rules.entry(nr).or_insert_with(|| Some(Vec::new()));
    match (slot.as_mut(), rule) {
        (Some(list), Some(rule)) => list.push(rule),
        (_, None) => *slot = None,
        (None, Some(_)) => {}
    }
}

/// The program for a container whose bounding set is `caps` (canonical names, `CAP_CHOWN`).
pub fn compile(profile: &Profile, caps: &BTreeSet<String>, target: &Target) -> Result<BpfProgram, SeccompError> {
    if bpf::NATIVE_ARCH == 0 {
        return Err(SeccompError::Arch(std::env::consts::ARCH.into()));
    }
    let default = Action::parse(&profile.default_action, profile.default_errno_ret)?;
    let mut by_action: BTreeMap<Action, Rules> = BTreeMap::new();
    for entry in &profile.syscalls {
        if !applies(entry, caps, target)? {
            continue;
        }
        let action = Action::parse(&entry.action, entry.errno_ret)?;
        for name in entry.names.iter().chain(entry.name.as_ref()) {
            // Not a syscall of this architecture (`_llseek`, `chown32`, ...): nothing to allow.
            let Ok(sysno) = Sysno::from_str(name) else { continue };
            let rule = match entry.args.is_empty() {
                true => None,
                false => Some(entry.args.iter().map(|a| condition(name, a)).collect::<Result<Vec<_>, _>>()?),
            };
            add(by_action.entry(action).or_default(), sysno.id() as u32, rule);
        }
    }
    if let Some(allowed) = by_action.get_mut(&Action::Allow) {
        no_device_nodes(allowed);
    }
    let mut table = Table { default: default.ret(), ..Default::default() };
    // The most severe action first.
    for (action, rules) in by_action.into_iter().rev() {
        for (nr, rules) in rules {
            let rules = rules.unwrap_or_else(|| vec![Vec::new()]);
            table.calls.entry(nr).or_default().push(Step { ret: action.ret(), rules });
        }
    }
    table.fixed.push((Sysno::last().id() as u32 + 1, X32_BIT - 1, Action::Errno(libc::ENOSYS as u32).ret()));
    Ok(table.program()?)
}

/// The bit that marks an x32 call on x86_64: from there on, a number is no native call (the default).
const X32_BIT: u32 = 0x4000_0000;

/// `mknod` and `mknodat`, where allowed, only for regular files, FIFOs and sockets.
fn no_device_nodes(allowed: &mut Rules) {
    for (name, index) in [("mknod", 1u8), ("mknodat", 2u8)] {
        let Ok(sysno) = Sysno::from_str(name) else { continue };
        let Some(slot) = allowed.get_mut(&(sysno.id() as u32)) else { continue };
        let kinds = [0, libc::S_IFREG, libc::S_IFIFO, libc::S_IFSOCK];
        let op = Op::MaskedEq(u64::from(libc::S_IFMT));
        let rules = kinds.iter().map(|kind| vec![Cond { index, wide: wide(name, index), op, value: u64::from(*kind) }]);
        *slot = Some(rules.collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_caps() -> BTreeSet<String> {
        super::super::security::DEFAULT_CAPS.iter().map(|c| c.to_string()).collect()
    }

    fn amd64() -> Target {
        Target { arch: "amd64", kernel: (6, 1) }
    }

    #[test]
    fn the_default_profile_parses_and_compiles() {
        let profile: Profile = serde_json::from_str(DEFAULT_PROFILE).unwrap();
        assert_eq!(profile.default_action, "SCMP_ACT_ERRNO");
        assert!(profile.syscalls.len() > 30);
        let plain = compile(&profile, &default_caps(), &amd64()).unwrap();
        let mut caps = default_caps();
        caps.insert("CAP_SYS_ADMIN".into());
        let admin = compile(&profile, &caps, &amd64()).unwrap();
        // A search, not a list: seccompiler's linear program of the same list was 1,629 instructions.
        assert!(plain.len() < 400, "{}", plain.len());
        let nr = |name: &str| Sysno::from_str(name).unwrap().id() as u32;
        let call =
            |prog: &BpfProgram, name: &str, args: [u64; 6]| bpf::tests::run(prog, bpf::NATIVE_ARCH, nr(name), args);
        let (allow, eperm) = (libc::SECCOMP_RET_ALLOW, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32);
        let enosys = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
        let none = [0; 6];
        let newns = [libc::CLONE_NEWNS as u64 | libc::SIGCHLD as u64, 0, 0, 0, 0, 0];
        let fork = [libc::SIGCHLD as u64, 0, 0, 0, 0, 0];
        let with = |a0: u64, i: usize, v: u64| {
            let mut a = [a0, 0, 0, 0, 0, 0];
            a[i] = v;
            a
        };
        for (name, args, want_plain, want_admin) in [
            ("read", none, allow, allow),
            ("mount", none, eperm, allow),
            ("clone3", none, enosys, allow),
            ("clone", newns, eperm, allow),
            ("clone", fork, allow, allow),
            ("socket", [libc::AF_VSOCK as u64, 1, 0, 0, 0, 0], eperm, eperm),
            ("socket", [libc::AF_INET as u64, 1, 0, 0, 0, 0], allow, allow),
            // The domain is an int: bits above its 32 don't change what it is.
            ("socket", [(1 << 32) | libc::AF_VSOCK as u64, 1, 0, 0, 0, 0], eperm, eperm),
            ("personality", [8, 0, 0, 0, 0, 0], allow, allow),
            ("personality", [0xffff_ffff, 0, 0, 0, 0, 0], allow, allow),
            ("personality", [0x0040000, 0, 0, 0, 0, 0], eperm, eperm),
            ("mknodat", with(0, 2, u64::from(libc::S_IFIFO | 0o644)), allow, allow),
            ("mknodat", with(0, 2, u64::from(libc::S_IFCHR | 0o644)), eperm, eperm),
            ("kexec_load", none, eperm, eperm),
        ] {
            assert_eq!(call(&plain, name, args), want_plain, "{name} {args:x?}");
            assert_eq!(call(&admin, name, args), want_admin, "{name} {args:x?} with CAP_SYS_ADMIN");
        }
        let run = |nr: u32| bpf::tests::run(&plain, bpf::NATIVE_ARCH, nr, none);
        assert_eq!(run(Sysno::last().id() as u32 + 1), enosys, "newer than this build knows");
        assert_eq!(run(X32_BIT | nr("getpid")), eperm, "x32");
        assert_eq!(bpf::tests::run(&plain, 0x4000_0003, nr("getpid"), none), libc::SECCOMP_RET_KILL_PROCESS);
    }

    #[test]
    fn gates_follow_caps_arches_and_kernels() {
        let entry = |inc: Option<Gate>, exc: Option<Gate>| Entry {
            names: vec!["reboot".into()],
            name: None,
            action: "SCMP_ACT_ALLOW".into(),
            errno_ret: None,
            args: vec![],
            includes: inc,
            excludes: exc,
        };
        let caps = default_caps();
        let t = amd64();
        let gate = |caps: &[&str], arches: &[&str], min: Option<&str>| Gate {
            caps: caps.iter().map(|s| s.to_string()).collect(),
            arches: arches.iter().map(|s| s.to_string()).collect(),
            min_kernel: min.map(String::from),
        };
        assert!(applies(&entry(None, None), &caps, &t).unwrap());
        assert!(!applies(&entry(Some(gate(&["CAP_SYS_BOOT"], &[], None)), None), &caps, &t).unwrap());
        assert!(applies(&entry(Some(gate(&["CAP_CHOWN"], &[], None)), None), &caps, &t).unwrap());
        assert!(!applies(&entry(None, Some(gate(&["CAP_CHOWN"], &[], None))), &caps, &t).unwrap());
        assert!(!applies(&entry(Some(gate(&[], &["arm64"], None)), None), &caps, &t).unwrap());
        assert!(!applies(&entry(None, Some(gate(&[], &["amd64"], None))), &caps, &t).unwrap());
        assert!(applies(&entry(Some(gate(&[], &[], Some("4.8"))), None), &caps, &t).unwrap());
        assert!(!applies(&entry(Some(gate(&[], &[], Some("6.2"))), None), &caps, &t).unwrap());
        assert!(!applies(&entry(None, Some(gate(&[], &[], Some("5.10")))), &caps, &t).unwrap());
    }

    #[test]
    fn bad_profiles_are_errors() {
        let bad = |json: &str| {
            let p: Profile = serde_json::from_str(json).unwrap();
            compile(&p, &default_caps(), &amd64()).unwrap_err()
        };
        let e = bad(r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#);
        assert!(matches!(e, SeccompError::Action(_)), "{e}");
        let e = bad(r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW",
                "args":[{"index":0,"value":1,"op":"SCMP_CMP_SOMETIMES"}]}]}"#);
        assert!(matches!(e, SeccompError::Op(_)), "{e}");
        let e = bad(r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW",
                "includes":{"minKernel":"new"}}]}"#);
        assert!(matches!(e, SeccompError::Kernel(_)), "{e}");
        assert!(serde_json::from_str::<Profile>("{").is_err());
    }

    #[test]
    fn kernel_releases() {
        assert_eq!(parse_kernel("6.18.0-1-amd64"), Some((6, 18)));
        assert_eq!(parse_kernel("4.8"), Some((4, 8)));
        assert_eq!(parse_kernel("x"), None);
    }
}
