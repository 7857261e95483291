//! A build's `RUN`: its command in the step's snapshot, through the same monitor, namespaces, limits,
//! seccomp filter and capabilities as a container's, on the bridge (an address held for the build while
//! the step runs) or on no network. Its output goes straight into the build's log; the step fails
//! unless it exits 0.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use tracing::{info, warn};

use super::build::StepProcess;
use super::Engine;
use crate::attach;
use crate::build::error::BuildError;
use crate::error::Error;
use crate::network::{self, NetworkMode};
use crate::runtime::spec::{BindMount, ExitRecord, LaunchSpec, Security, Stdio};
use crate::runtime::{self, ProcessHandle};
use crate::{ids, json};

impl Engine {
    /// Runs `argv` in the rootfs at `rootfs` for build `n`'s step at `line`; Ok only if it exits 0.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_step(
        self: &Arc<Self>,
        n: u32,
        rootfs: &Path,
        argv: Vec<String>,
        env: Vec<String>,
        user: &str,
        workdir: &str,
        network: NetworkMode,
        line: usize,
        step: &str,
    ) -> Result<(), Error> {
        let start_err =
            |message: String, errno: i32| BuildError::RunStart { step: step.to_string(), line, message, errno };
        let dir = self.build_dir(n).join("run");
        let cgroup = format!(".build-{n}");
        std::fs::create_dir_all(&dir)
            .map_err(|e| start_err(format!("cannot make {}: {e}", dir.display()), libc::EIO))?;
        let _ = std::fs::remove_file(dir.join("exit.json"));
        let ip = match network {
            NetworkMode::Bridge => {
                let mut st = self.lock();
                let used = st.containers.values().filter_map(|c| c.record.ip).collect();
                let ip = st.allocate(self.network.subnet(), used)?;
                st.build_addresses.insert(n, ip);
                Some(ip)
            }
            _ => None,
        };
        let hostname = ids::new_id("").chars().take(12).collect::<String>();
        let result = self.run_step_on(n, &dir, &cgroup, rootfs, argv, env, user, workdir, network, ip, &hostname);
        if ip.is_some() {
            self.lock().build_addresses.remove(&n);
        }
        if let Err(e) = self.cgroups.remove(&cgroup) {
            warn!(build = n, error = %e, "cannot remove the cgroup of a build step");
        }
        match result {
            Ok(0) => Ok(()),
            Ok(code) => Err(BuildError::RunFailed { step: step.to_string(), line, code }.into()),
            Err(e) => Err(start_err(e.to_string(), e.errno()).into()),
        }
    }

    /// The launch and the wait; the exit code.
    #[allow(clippy::too_many_arguments)]
    fn run_step_on(
        &self,
        n: u32,
        dir: &Path,
        cgroup: &str,
        rootfs: &Path,
        argv: Vec<String>,
        env: Vec<String>,
        user: &str,
        workdir: &str,
        network: NetworkMode,
        ip: Option<Ipv4Addr>,
        hostname: &str,
    ) -> Result<i32, Error> {
        let mut binds = Vec::new();
        for (file, text) in
            [("hosts", network::etc::hosts(hostname, ip)), ("resolv.conf", self.network.resolv_conf(&[]))]
        {
            let source = dir.join(file);
            std::fs::write(&source, text).map_err(Error::record(format!("/etc/{file} of build {n}")))?;
            binds.push(BindMount { source, target: format!("/etc/{file}"), readonly: false });
        }
        let mut spec = LaunchSpec {
            name: cgroup.to_string(),
            rootfs: rootfs.to_path_buf(),
            argv,
            env,
            cwd: workdir.to_string(),
            hostname: hostname.to_string(),
            user: user.to_string(),
            log: self.build_dir(n).join("log"),
            log_limits: self.log_limits,
            exit_file: dir.join("exit.json"),
            cgroup: None,
            cgroup_procs: Vec::new(),
            network,
            netns: None,
            binds,
            security: Security::default(),
            stdio: Stdio { tty: false, interactive: false, socket: dir.join(attach::SOCKET_NAME) },
            init: None,
        };
        let spare = self.groups_for_launch(cgroup, &self.defaults, &spec, false)?;
        spec.cgroup = self.cgroups.birth_group(cgroup);
        spec.cgroup_procs = self.cgroups.procs_files(cgroup);
        let bytes = serde_json::to_vec(&spec).map_err(|e| runtime::RuntimeError::WriteSpec(e.into()))?;
        json::write_private(&dir.join("launch.json"), &bytes).map_err(runtime::RuntimeError::WriteSpec)?;
        let launched = runtime::launch(dir, spare, |monitor_pid| match ip {
            Some(ip) => {
                let link = crate::network::Link { bridge: self.network.default_bridge(), ip };
                self.network.attach(monitor_pid, &[link]).map_err(Error::from)
            }
            None => Ok(()),
        })?;
        info!(build = n, pid = launched.pid, "build step started");
        // So a daemon that dies meanwhile has the next one end it (see `build::end_cut_steps`).
        let step = dir.join("step.json");
        let process = StepProcess { monitor_pid: launched.monitor_pid, monitor_start: launched.monitor_start };
        if let Err(e) = json::write_json(&step, &process) {
            warn!(build = n, error = %e, "cannot record the build step's monitor");
        }
        if let Some(monitor) = ProcessHandle::open(launched.monitor_pid, launched.monitor_start) {
            monitor.wait_for_exit();
        }
        let _ = std::fs::remove_file(&step);
        let exit = json::read_json::<ExitRecord>(&dir.join("exit.json")).ok().flatten();
        Ok(exit.map_or(-1, |e| e.exit_code))
    }
}
