//! The bytes of every readable file the tree computes (all but `logs` and `errors`, which are served from
//! disk): the README, `ctl`'s help, `pulls`, and an image's, a container's and an exec's fields rendered
//! from the typed views the engine gives ([`ImageView`], [`ContainerView`], [`ExecRecord`]), a value and a
//! newline each, nothing for what is unset.

use fuser::Errno;

use super::tree::{ContainerFile, ExecFile, ImageFile, Node};
use super::{inspect, readme};
use crate::cgroups::{LimitKind, StatFile};
use crate::engine::{ContainerView, Engine, ExecRecord, ImageView};
use crate::request::SettingKind;

/// The readable properties of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageField {
    Source,
    /// Its names, normalised, a line each.
    Names,
    Created,
    Size,
    Config,
    Digest,
    Layers,
    /// `inspect.json`: `docker inspect`'s document.
    Inspect,
}

/// The files of a build (see `engine::BuildRecord`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuildField {
    Status,
    Image,
    Dockerfile,
    Context,
    Tags,
    StartedAt,
    FinishedAt,
    Error,
}

/// The content of a build's file; `None` for an unknown build.
pub fn build_field(engine: &Engine, n: u32, field: BuildField) -> Option<Vec<u8>> {
    let b = engine.build_record(n)?;
    let opt = |v: &Option<String>| v.as_ref().map(line).unwrap_or_default();
    Some(match field {
        BuildField::Status => line(b.status.as_str()),
        BuildField::Image => opt(&b.image),
        BuildField::Dockerfile => line(&b.dockerfile),
        BuildField::Context => line(&b.context),
        BuildField::Tags => b.tags.iter().flat_map(line).collect(),
        BuildField::StartedAt => line(&b.started_at),
        BuildField::FinishedAt => opt(&b.finished_at),
        BuildField::Error if b.error.is_empty() => Vec::new(),
        BuildField::Error => line(&b.error),
    })
}

/// The files of a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NetworkField {
    /// Its subnet's CIDR (writable while no container lists the network).
    Subnet,
    /// Its bridge's address, the containers' gateway (and DNS server).
    Gateway,
    /// Its bridge's interface name.
    Bridge,
    /// The containers that list it, a name per line.
    Containers,
}

/// The content of a network's file; `None` for an unknown network.
pub fn network_field(engine: &Engine, name: &str, field: NetworkField) -> Option<Vec<u8>> {
    let n = engine.network_view(name)?;
    Some(match field {
        NetworkField::Subnet => line(n.record.subnet),
        NetworkField::Gateway => line(n.record.subnet.gateway()),
        NetworkField::Bridge => line(&n.record.bridge),
        NetworkField::Containers => n.containers.iter().flat_map(line).collect(),
    })
}

/// The readable properties of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainerField {
    Image,
    Cmd,
    Env,
    /// `entrypoint`, `user`, `workdir`, `hostname`, `stop_signal`, `labels`: as a start takes them.
    Setting(SettingKind),
    /// The ports its image exposes, `PORT/PROTO` a line each.
    ExposedPorts,
    /// Its image's Healthcheck, as JSON.
    Healthcheck,
    /// A limit, shown as the kernel has it while running, else as configured (or the default).
    Limit(LimitKind),
    /// A stat file of the container's cgroup (`memory.stat`, `cpu.pressure`, ...).
    Stat(StatFile),
    MemoryCurrent,
    MemoryPeak,
    CpuUsage,
    PidsCurrent,
    Events,
    /// The network mode: `bridge`, `none`, `host` or `container:NAME`.
    Network,
    /// The port forwards, a line each.
    Ports,
    /// Its address on each of its networks, in their order, once given.
    Ip,
    /// The networks it joins in `bridge` mode, a name per line (`bridge` when it names none).
    Networks,
    /// More names it has on its networks, a line each.
    Aliases,
    /// Volume lines, `SOURCE:TARGET[:ro]`.
    Volumes,
    /// The container whose volumes this one mounts too.
    VolumesFrom,
    /// `true` or `false`.
    Privileged,
    /// Capabilities added to the default ones, a line each.
    CapAdd,
    /// `true` or `false`: removed by the daemon once it has exited.
    AutoRemove,
    RestartCount,
    Status,
    ExitCode,
    Pid,
    /// RFC 3339 time of its mkdir (empty for a record that never had one).
    Created,
    StartedAt,
    FinishedAt,
    Error,
    /// `inspect.json`: `docker inspect`'s document.
    Inspect,
}

/// The readable properties of an exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecField {
    Cmd,
    Status,
    ExitCode,
    Pid,
    StartedAt,
    FinishedAt,
}

fn line(s: impl std::fmt::Display) -> Vec<u8> {
    format!("{s}\n").into_bytes()
}

/// The whole content of a readable file other than `logs`.
pub fn content(engine: &Engine, node: &Node) -> Result<Vec<u8>, Errno> {
    match node {
        Node::Readme => Ok(readme::README.as_bytes().to_vec()),
        Node::Pulls => Ok(engine.pull_progress()),
        Node::ImageFile(id, ImageFile::Field(f)) => image_field(engine, id, *f).ok_or(Errno::ENOENT),
        Node::BuildFile(n, crate::fs::tree::BuildFile::Field(f)) => build_field(engine, *n, *f).ok_or(Errno::ENOENT),
        Node::ContainerFile(_, ContainerFile::Ctl) => Ok(readme::CTL_HELP.as_bytes().to_vec()),
        Node::ContainerFile(name, ContainerFile::Field(ContainerField::Stat(f))) => {
            let text = engine.with_container(name, |c| c.stat_file(*f)).ok_or(Errno::ENOENT)?;
            // A file the host has no numbers for (pressure on v1) reads empty, as before a start: a file
            // manager, `cat *` or a script reading every file never trips on it.
            match text {
                Ok(text) => Ok(text.unwrap_or_default().into_bytes()),
                Err(crate::cgroups::CgroupError::Unsupported { .. }) => Ok(Vec::new()),
                Err(e) => Err(Errno::from_i32(e.errno())),
            }
        }
        Node::ContainerFile(name, ContainerFile::Field(f)) => container_field(engine, name, *f).ok_or(Errno::ENOENT),
        Node::ExecFile(name, n, ExecFile::Field(f)) => exec_field(engine, name, *n, *f).ok_or(Errno::ENOENT),
        Node::NetworkFile(name, f) => network_field(engine, name, *f).ok_or(Errno::ENOENT),
        // What a read would give at once: the code once it is not running, nothing while it runs (a read then
        // waits: see `waits`), so its size is 0 then and a preview reads nothing.
        Node::ContainerFile(name, ContainerFile::Wait) => {
            Ok(wait_bytes(engine.container_wait(name).ok_or(Errno::ENOENT)?))
        }
        Node::ExecFile(name, n, ExecFile::Wait) => Ok(wait_bytes(engine.exec_wait(name, *n).ok_or(Errno::ENOENT)?)),
        _ => Ok(Vec::new()),
    }
}

fn wait_bytes(wait: crate::engine::Wait) -> Vec<u8> {
    match wait {
        crate::engine::Wait::Ended { code, .. } => line(code),
        crate::engine::Wait::Running(_) => Vec::new(),
    }
}

/// The content of an image's property file; `None` for an unknown image.
pub fn image_field(engine: &Engine, id: &str, field: ImageField) -> Option<Vec<u8>> {
    engine.with_image(id, |image| image_bytes(&image, field))
}

fn image_bytes(image: &ImageView<'_>, field: ImageField) -> Vec<u8> {
    match field {
        ImageField::Source => line(&image.record.source),
        ImageField::Names => image.record.names.iter().flat_map(line).collect(),
        ImageField::Created => line(&image.record.created),
        ImageField::Size => line(image.record.size),
        ImageField::Config => image.config_raw.to_vec(),
        ImageField::Digest => image.record.digest.as_ref().map(line).unwrap_or_default(),
        ImageField::Layers => image.record.layers.iter().flat_map(line).collect(),
        ImageField::Inspect => inspect::bytes(&inspect::image(image)),
    }
}

/// The content of a container's property file; `None` for an unknown container.
pub fn container_field(engine: &Engine, name: &str, field: ContainerField) -> Option<Vec<u8>> {
    engine.with_container(name, |c| container_bytes(&c, field))
}

fn container_bytes(c: &ContainerView<'_>, field: ContainerField) -> Vec<u8> {
    let r = c.record;
    let opt = |v: Option<String>| v.map(line).unwrap_or_default();
    match field {
        ContainerField::Image => opt(r.image.clone()),
        ContainerField::Cmd => words(&c.cmd()),
        ContainerField::Setting(kind) => match kind {
            SettingKind::Entrypoint => words(&c.entrypoint()),
            SettingKind::User => line(r.run_user()).into_iter().filter(|_| !r.run_user().is_empty()).collect(),
            SettingKind::Workdir => line(r.run_workdir()),
            SettingKind::Hostname => line(r.run_hostname()),
            SettingKind::StopSignal => {
                let signal = r.run_stop_signal();
                line(if signal.is_empty() { "SIGTERM".to_string() } else { signal })
            }
            SettingKind::Labels => r.all_labels().iter().flat_map(|(k, v)| line(format!("{k}={v}"))).collect(),
            SettingKind::Tty => line(r.tty),
            SettingKind::Interactive => line(r.interactive),
            SettingKind::Restart => line(r.restart),
            SettingKind::Init => line(r.init),
            SettingKind::ExtraHosts => r.extra_hosts.iter().flat_map(line).collect(),
            SettingKind::Dns => r.dns.iter().flat_map(line).collect(),
        },
        ContainerField::ExposedPorts => r.image_defaults().exposed_ports.iter().flat_map(line).collect(),
        ContainerField::Healthcheck => r.image_defaults().healthcheck.map(|h| line(h.to_string())).unwrap_or_default(),
        ContainerField::Env => {
            let env = c.env();
            env.iter().flat_map(line).collect()
        }
        ContainerField::Limit(kind) => {
            let live = c.live_limit(kind);
            let configured = c.configured_limit(kind);
            // An empty io.max or cpuset list shows nothing, as any empty value.
            opt(live.or(configured).filter(|v| !v.is_empty()))
        }
        ContainerField::MemoryCurrent => opt(c.stats().memory_current.map(|v| v.to_string())),
        ContainerField::MemoryPeak => opt(c.stats().memory_peak.map(|v| v.to_string())),
        ContainerField::CpuUsage => opt(c.stats().cpu_usage_usec.map(|v| v.to_string())),
        ContainerField::PidsCurrent => opt(c.stats().pids_current.map(|v| v.to_string())),
        // Served by `content` (it can fail).
        ContainerField::Stat(_) => Vec::new(),
        ContainerField::Events => {
            let n = c.stats().oom_kill.unwrap_or(u64::from(r.oom_killed));
            line(format!("oom_kill {n}"))
        }
        ContainerField::Network => line(&r.network),
        ContainerField::Ports => r.ports.iter().flat_map(line).collect(),
        ContainerField::Networks if r.networks.is_empty() => line(crate::engine::DEFAULT_NETWORK),
        ContainerField::Networks => r.networks.iter().flat_map(line).collect(),
        ContainerField::Aliases => r.aliases.iter().flat_map(line).collect(),
        ContainerField::Ip => c.networks.iter().filter_map(|(_, _, ip)| *ip).flat_map(line).collect(),
        ContainerField::Volumes => r.volumes.iter().flat_map(line).collect(),
        ContainerField::VolumesFrom => opt(r.volumes_from.clone()),
        ContainerField::Privileged => line(r.security.privileged),
        ContainerField::CapAdd => r.security.cap_add.iter().flat_map(line).collect(),
        ContainerField::AutoRemove => line(r.auto_remove),
        ContainerField::RestartCount => line(r.restart_count),
        ContainerField::Status => line(c.status.as_str()),
        ContainerField::ExitCode => opt(r.exit_code.map(|c| c.to_string())),
        ContainerField::Pid => opt(r.pid.map(|p| p.to_string())),
        ContainerField::Created => opt(Some(r.created.clone()).filter(|t| !t.is_empty())),
        ContainerField::StartedAt => opt(r.started_at.clone()),
        ContainerField::FinishedAt => opt(r.finished_at.clone()),
        ContainerField::Inspect => inspect::bytes(&inspect::container(c)),
        ContainerField::Error => {
            if r.error.is_empty() {
                Vec::new()
            } else {
                line(&r.error)
            }
        }
    }
}

/// Shell words and a newline; nothing for none.
fn words(argv: &[String]) -> Vec<u8> {
    if argv.is_empty() {
        Vec::new()
    } else {
        line(shell_words::join(argv))
    }
}

/// The content of an exec's property file; `None` for an unknown exec.
pub fn exec_field(engine: &Engine, name: &str, n: u32, field: ExecField) -> Option<Vec<u8>> {
    engine.with_exec(name, n, |e| exec_bytes(e, field))
}

fn exec_bytes(e: &ExecRecord, field: ExecField) -> Vec<u8> {
    let opt = |v: Option<String>| v.map(line).unwrap_or_default();
    match field {
        ExecField::Cmd => line(shell_words::join(&e.argv)),
        ExecField::Status => line(e.status.as_str()),
        ExecField::ExitCode => opt(e.exit_code.map(|c| c.to_string())),
        ExecField::Pid => opt(e.pid.map(|p| p.to_string())),
        ExecField::StartedAt => line(&e.started_at),
        ExecField::FinishedAt => opt(e.finished_at.clone()),
    }
}

#[cfg(test)]
mod tests {
    //! What `cat` shows of an image's and an exec's files, rendered from records built here. A container's
    //! files render from a [`ContainerView`], which only the engine can make (it holds the engine's image and
    //! cgroups), so they are tested through the mount (tests/containers.rs, tests/errors.rs, ...).

    use super::*;
    use crate::engine::ImageRecord;
    use crate::model::ExecStatus;

    fn imported() -> ImageRecord {
        ImageRecord {
            id: "img_0123456789ab".into(),
            source: "/srv/my rootfs".into(),
            created: "2024-05-06T07:08:09Z".into(),
            size: 1_234_567,
            digest: None,
            layers: Vec::new(),
            chain: Vec::new(),
            steps: Vec::new(),
            names: Vec::new(),
        }
    }

    fn shown(record: &ImageRecord, config: &[u8], field: ImageField) -> String {
        String::from_utf8(image_bytes(&ImageView { record, config_raw: config }, field)).unwrap()
    }

    #[test]
    fn an_images_files() {
        let config = b"{\"os\":\"linux\"}";
        let r = imported();
        assert_eq!(shown(&r, config, ImageField::Source), "/srv/my rootfs\n", "as written, spaces and all");
        assert_eq!(shown(&r, config, ImageField::Created), "2024-05-06T07:08:09Z\n");
        assert_eq!(shown(&r, config, ImageField::Size), "1234567\n");
        // config.json is the stored bytes, exactly: no newline added, nothing re-encoded.
        assert_eq!(shown(&r, config, ImageField::Config), "{\"os\":\"linux\"}");
        // An imported image has no digest and no layers: both files are empty, not a blank line.
        assert_eq!(shown(&r, config, ImageField::Digest), "");
        assert_eq!(shown(&r, config, ImageField::Layers), "");
        let pulled = ImageRecord {
            digest: Some("sha256:abcd".into()),
            layers: vec!["sha256:1111".into(), "sha256:2222".into()],
            ..imported()
        };
        assert_eq!(shown(&pulled, config, ImageField::Digest), "sha256:abcd\n");
        assert_eq!(
            shown(&pulled, config, ImageField::Layers),
            "sha256:1111\nsha256:2222\n",
            "a line per layer, in order"
        );
    }

    fn exec(status: ExecStatus) -> ExecRecord {
        ExecRecord {
            id: 3,
            argv: vec!["sh".into(), "-c".into(), "echo a   b; exit 3".into(), String::new(), "it's".into()],
            status,
            pid: None,
            helper_pid: None,
            helper_start: None,
            exit_code: None,
            started_at: "2024-05-06T07:08:09Z".into(),
            finished_at: None,
        }
    }

    fn exec_shown(e: &ExecRecord, field: ExecField) -> String {
        String::from_utf8(exec_bytes(e, field)).unwrap()
    }

    #[test]
    fn an_execs_files_while_it_runs_and_after() {
        let running = ExecRecord { pid: Some(4242), ..exec(ExecStatus::Running) };
        // The argv as shell words that split back to the same argv: spaces, an empty word, a quote.
        let cmd = exec_shown(&running, ExecField::Cmd);
        assert_eq!(cmd, "sh -c 'echo a   b; exit 3' '' 'it'\\''s'\n");
        assert_eq!(shell_words::split(cmd.trim_end()).unwrap(), running.argv);
        assert_eq!(exec_shown(&running, ExecField::Status), "running\n");
        assert_eq!(exec_shown(&running, ExecField::Pid), "4242\n");
        assert_eq!(exec_shown(&running, ExecField::StartedAt), "2024-05-06T07:08:09Z\n");
        // Unknown yet: empty files.
        assert_eq!(exec_shown(&running, ExecField::ExitCode), "");
        assert_eq!(exec_shown(&running, ExecField::FinishedAt), "");

        let done = ExecRecord {
            exit_code: Some(3),
            finished_at: Some("2024-05-06T07:08:10Z".into()),
            ..exec(ExecStatus::Exited)
        };
        assert_eq!(exec_shown(&done, ExecField::Status), "exited\n");
        assert_eq!(exec_shown(&done, ExecField::ExitCode), "3\n");
        assert_eq!(exec_shown(&done, ExecField::FinishedAt), "2024-05-06T07:08:10Z\n");
        assert_eq!(exec_shown(&done, ExecField::Pid), "", "no pid once it has exited");
        // Killed by a signal: 128 + the signal, as the shell shows it.
        let killed = ExecRecord { exit_code: Some(137), ..done };
        assert_eq!(exec_shown(&killed, ExecField::ExitCode), "137\n");
    }

    #[test]
    fn limit_files_are_named_as_cgroup_v2_names_them() {
        use crate::cgroups::{Limit, Max};
        let names: Vec<&str> = LimitKind::ALL.iter().map(|k| k.file_name()).collect();
        assert_eq!(
            names,
            [
                "cpu.weight",
                "cpu.max",
                "memory.max",
                "memory.high",
                "memory.swap.max",
                "pids.max",
                "io.weight",
                "io.max",
                "cpuset.cpus",
                "cpuset.mems"
            ]
        );
        for k in LimitKind::ALL {
            assert_eq!(LimitKind::from_file(k.file_name()), Some(k));
        }
        // Each kind finds that kind's limit in a container's limits, and no other; swap follows memory.
        let limits = crate::cgroups::Limits {
            cpu_weight: Some(100),
            memory_max: Some(Max(Some(1 << 20))),
            ..Default::default()
        };
        assert_eq!(limits.get(LimitKind::CpuWeight), Some(Limit::CpuWeight(100)));
        assert_eq!(limits.get(LimitKind::MemoryMax), Some(Limit::MemoryMax(Max(Some(1 << 20)))));
        assert_eq!(limits.get(LimitKind::MemorySwapMax), Some(Limit::MemorySwapMax(Max(Some(1 << 20)))));
        assert_eq!(limits.get(LimitKind::CpuMax), None);
        assert_eq!(limits.get(LimitKind::PidsMax), None);
        assert_eq!(limits.get(LimitKind::IoMax), None);
    }

    #[test]
    fn ctl_reads_back_its_verbs() {
        assert_eq!(
            readme::CTL_HELP,
            "start\nstop [SECONDS]\nrestart [SECONDS]\nkill [SIGNAL]\npause\nunpause\nremove\nclose-stdin\n"
        );
        for verb in readme::CTL_HELP.lines().map(|l| l.split_whitespace().next().unwrap()) {
            assert!(crate::request::parse_ctl(verb).is_ok(), "ctl lists '{verb}', which it refuses");
        }
    }
}
