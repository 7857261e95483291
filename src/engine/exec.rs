//! `exec`: running one more command inside a running container, through the `__exec` helper.

use std::sync::Arc;

use nix::sys::signal::Signal;
use tracing::info;

use super::records::ExecRecord;
use super::{Changed, Engine};
use crate::error::Error;
use crate::model::{ContainerStatus, ExecStatus, Op};
use crate::request::merge_env;
use crate::request::ExecOptions;
use crate::runtime::spec::{ExecSpec, Stdio};
use crate::runtime::{self, Launched, ProcessHandle};
use crate::{json, times};

impl Engine {
    /// Runs `argv` inside running container `name`, with its Env and WorkingDir; returns the exec's number.
    /// ESRCH when the container is not running.
    pub(super) fn exec(self: &Arc<Self>, name: &str, argv: Vec<String>, options: ExecOptions) -> Result<u32, Error> {
        let (mut spec, n, placeholder) = {
            let mut st = self.lock();
            let c = st.container(name)?;
            c.gate(Op::Exec)?;
            let gone = || Error::WrongState { name: name.to_string(), status: ContainerStatus::Exited, op: Op::Exec };
            let pid = c.record.pid.ok_or_else(gone)?;
            let env = merge_env(&c.record.image_defaults().env, &c.record.env);
            let cwd = c.record.run_workdir();
            let n = c.execs.keys().next_back().map_or(1, |last| last + 1);
            let dir = self.exec_dir(name, n);
            let spec = ExecSpec {
                target_pid: pid,
                target_start: 0,
                argv: argv.clone(),
                env,
                cwd,
                user: c.record.run_user(),
                log: dir.join("log"),
                log_limits: self.log_limits,
                exit_file: dir.join("exit.json"),
                cgroup: None,
                cgroup_procs: Vec::new(),
                security: c.record.security.clone(),
                stdio: Stdio {
                    tty: options.tty,
                    interactive: options.interactive,
                    socket: dir.join(crate::attach::SOCKET_NAME),
                },
            };
            let placeholder = ExecRecord {
                id: n,
                argv,
                status: ExecStatus::Starting,
                pid: None,
                helper_pid: None,
                helper_start: None,
                exit_code: None,
                started_at: times::now_rfc3339(),
                finished_at: None,
            };
            // Reserved at once: a concurrent exec takes the next number. Not listed until it runs.
            st.container_mut(name)?.execs.insert(n, placeholder.clone());
            (spec, n, placeholder)
        };
        let dir = self.exec_dir(name, n);
        let undo = |e: Error| {
            let _ = std::fs::remove_dir_all(&dir);
            if let Ok(c) = self.lock().container_mut(name) {
                c.execs.remove(&n);
            }
            e
        };
        let gone = || Error::WrongState { name: name.to_string(), status: ContainerStatus::Exited, op: Op::Exec };
        spec.target_start = runtime::start_time(spec.target_pid).ok_or_else(|| undo(gone()))?;
        spec.cgroup = self.cgroups.birth_group(name);
        spec.cgroup_procs = self.cgroups.procs_files(name);
        // Not create_dir_all: a container removed meanwhile must not get its directory back.
        let execs = self.container_dir(name).join("execs");
        let made = std::fs::create_dir(&execs).or_else(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Ok(()),
            _ => Err(e),
        });
        made.and_then(|()| std::fs::create_dir(&dir))
            .map_err(|e| undo(Error::record(format!("the directory of exec {n} of '{name}'"))(e)))?;
        let bytes = serde_json::to_vec(&spec).map_err(|e| undo(runtime::RuntimeError::WriteSpec(e.into()).into()))?;
        json::write_private(&dir.join("exec.json"), &bytes)
            .map_err(|e| undo(runtime::RuntimeError::WriteSpec(e).into()))?;
        let launched = runtime::launch_exec(&dir).map_err(|e| undo(e.into()))?;
        let Launched { pid, monitor_pid, monitor_start, .. } = launched;
        let rec = ExecRecord {
            status: ExecStatus::Running,
            pid: Some(pid),
            helper_pid: Some(monitor_pid),
            helper_start: Some(monitor_start),
            started_at: times::now_rfc3339(),
            ..placeholder
        };
        if let Err(e) = json::write_json(&dir.join("record.json"), &rec) {
            runtime::signal_launched(&launched, Signal::SIGKILL);
            return Err(undo(Error::record(format!("the record of exec {n} of '{name}'"))(e)));
        }
        let mut st = self.lock();
        if let Some(e) = st.container_mut(name).ok().and_then(|c| c.execs.get_mut(&n)) {
            *e = rec;
            st.notify(Changed::Exec(name.to_string(), n));
        }
        drop(st);
        info!(container = %name, exec = n, pid, "exec started");
        self.watch_exec(name, n, ProcessHandle::open(monitor_pid, monitor_start));
        Ok(n)
    }
}
