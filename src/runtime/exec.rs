//! `bocker __exec DIR`: runs one command inside a running container, as `docker exec` does. Like the
//! monitor, it is the daemon's binary re-executed, detached (its own session, init's child), and it
//! outlives the daemon. It opens the namespaces of the container's pid 1, enters its pid namespace and
//! forks; the child joins the container's cgroups and its other namespaces, the mount namespace last (so
//! `/` is the container's root from then on, never the host's), and execs the command with the container's
//! Env and WorkingDir ([`super::init::enter_exec`]). The helper reports `ok PID HELPER_PID` or
//! `err ERRNO MESSAGE`, copies the command's stdout and stderr pipes into `execs/N/log` as the monitor does,
//! reaps the command and records its exit code.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::sched::CloneFlags;
use nix::unistd::{fork, ForkResult};

use super::monitor::{helper_main, read_setup_error, report, wait_and_record};
use super::output::{self, Drain};
use super::spec::ExecSpec;
use crate::json;

/// The namespaces a command joins, entered in this order (mount last).
const NAMESPACES: [(&str, CloneFlags); 5] = [
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// Runs the exec helper; never returns.
pub fn main(dir: &Path) -> ! {
    helper_main("exec", || run(dir))
}

fn run(dir: &Path) -> Result<(), (i32, String)> {
    let io = |what: &str| {
        let what = what.to_string();
        move |e: std::io::Error| (e.raw_os_error().unwrap_or(libc::EIO), format!("{what}: {e}"))
    };
    let spec: ExecSpec = json::read_json(&dir.join("exec.json"))
        .map_err(io("cannot read exec.json"))?
        .ok_or((libc::EIO, "exec.json is missing".to_string()))?;
    // SAFETY: single-threaded process; the child runs ordinary code before exec or exit.
    match unsafe { fork() }.map_err(|e| (e as i32, format!("fork: {e}")))? {
        ForkResult::Parent { .. } => std::process::exit(0),
        ForkResult::Child => {}
    }
    let _ = nix::unistd::setsid();
    // The child runs this binary inside the container's pid namespace until its execve: not dumpable, so no
    // process of the container can reach it through /proc/PID/exe or its fds (runc's CVE-2019-5736). The
    // flag is inherited by the fork and reset by the execve.
    // SAFETY: prctl(PR_SET_DUMPABLE, 0) takes plain integers and touches no memory.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    let gone = || (libc::ESRCH, "the container is not running".to_string());
    if super::start_time(spec.target_pid) != Some(spec.target_start) {
        return Err(gone());
    }
    let ns = |name: &str| File::open(format!("/proc/{}/ns/{name}", spec.target_pid)).map(OwnedFd::from);
    let pid_ns = ns("pid").map_err(|_| gone())?;
    let others: Vec<(OwnedFd, CloneFlags)> = NAMESPACES
        .iter()
        .map(|(name, flag)| ns(name).map(|fd| (fd, *flag)))
        .collect::<Result<_, _>>()
        .map_err(|_| gone())?;
    // Opened only now: the pid may have been reused between the check and the opens.
    if super::start_time(spec.target_pid) != Some(spec.target_start) {
        return Err(gone());
    }
    let mode = super::monitor::stdio_mode(&spec.stdio);
    let (mut output, ends) =
        output::open(&spec.log, spec.log_limits, mode, &spec.stdio.socket).map_err(|e| (libc::EIO, e))?;
    nix::sched::setns(&pid_ns, CloneFlags::CLONE_NEWPID)
        .map_err(|e| (e as i32, format!("enter pid namespace: {e}")))?;
    let (err_r, err_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| (e as i32, format!("pipe: {e}")))?;
    // Single-threaded process; the child, born in the container's cgroup, joins the rest of the container
    // and execs or _exits.
    let (forked, born) =
        super::spawn::fork_into(spec.cgroup.as_deref()).map_err(|e| (e as i32, format!("fork: {e}")))?;
    let child = match forked {
        ForkResult::Child => {
            drop(err_r);
            super::init::enter_exec(&spec, born, &others, ends.raw(), ends.console(), err_w)
        }
        ForkResult::Parent { child } => child,
    };
    drop(err_w);
    drop(ends);
    drop(others);
    if let Some((errno, message)) = read_setup_error(err_r) {
        let _ = nix::sys::wait::waitpid(child, None);
        report(&format!("err {errno} {message}"));
        return Ok(());
    }
    output.take_terminal();
    report(&format!("ok {} {}", child.as_raw(), std::process::id()));
    // The command's background children may hold its pipes: once it has ended, output is copied only while
    // it keeps coming.
    let drain = Drain::Linger { idle: std::time::Duration::from_millis(250) };
    wait_and_record(child, &spec.exit_file, output, drain).map_err(|e| (libc::EIO, e))
}
