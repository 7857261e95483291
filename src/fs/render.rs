//! The bytes of every readable file the tree computes (all but `logs` and `errors`, which are served from
//! disk): the README, `ctl`'s help, `pulls`, and an image's, a container's and an exec's fields rendered
//! from the typed views the engine gives ([`ImageView`], [`ContainerView`], [`ExecRecord`]), a value and a
//! newline each, nothing for what is unset.

use fuser::Errno;

use super::readme;
use super::tree::{ContainerFile, ExecFile, ImageFile, Node};
use crate::cgroups::Limit;
use crate::engine::{ContainerView, Engine, ExecRecord, ImageView};
use crate::network::NetworkMode;

/// Which limit a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    CpuWeight,
    CpuMax,
    MemoryMax,
    PidsMax,
}

impl LimitKind {
    pub fn file_name(self) -> &'static str {
        match self {
            LimitKind::CpuWeight => "cpu.weight",
            LimitKind::CpuMax => "cpu.max",
            LimitKind::MemoryMax => "memory.max",
            LimitKind::PidsMax => "pids.max",
        }
    }

    /// A limit of this kind, whatever its value: the key for lookups.
    pub fn key(self) -> Limit {
        match self {
            LimitKind::CpuWeight => Limit::CpuWeight(0),
            LimitKind::CpuMax => Limit::CpuMax(crate::cgroups::CpuMax { quota: None, period: 0 }),
            LimitKind::MemoryMax => Limit::MemoryMax(crate::cgroups::Max(None)),
            LimitKind::PidsMax => Limit::PidsMax(crate::cgroups::Max(None)),
        }
    }
}

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
}

/// The readable properties of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainerField {
    Image,
    Cmd,
    Env,
    /// A limit, shown as the kernel has it while running, else as configured (or the default).
    Limit(LimitKind),
    MemoryCurrent,
    MemoryPeak,
    CpuUsage,
    PidsCurrent,
    Events,
    /// The network mode: `bridge`, `none` or `host`.
    Network,
    /// The port forwards, a line each.
    Ports,
    /// The address on the bridge, once given.
    Ip,
    /// Volume lines, `SOURCE:TARGET[:ro]`.
    Volumes,
    /// The container whose volumes this one mounts too.
    VolumesFrom,
    /// `true` or `false`.
    Privileged,
    /// Capabilities added to the default ones, a line each.
    CapAdd,
    Status,
    ExitCode,
    Pid,
    StartedAt,
    FinishedAt,
    Error,
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
        Node::ContainerFile(_, ContainerFile::Ctl) => Ok(readme::CTL_HELP.as_bytes().to_vec()),
        Node::ContainerFile(name, ContainerFile::Field(f)) => container_field(engine, name, *f).ok_or(Errno::ENOENT),
        Node::ExecFile(name, n, ExecFile::Field(f)) => exec_field(engine, name, *n, *f).ok_or(Errno::ENOENT),
        _ => Ok(Vec::new()),
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
        ContainerField::Cmd => {
            let argv = c.argv();
            if argv.is_empty() {
                Vec::new()
            } else {
                line(shell_words::join(argv))
            }
        }
        ContainerField::Env => {
            let env = c.env();
            env.iter().flat_map(line).collect()
        }
        ContainerField::Limit(kind) => {
            let live = c.live_limit(&kind.key());
            let configured = c.configured_limit(&kind.key());
            opt(live.or(configured))
        }
        ContainerField::MemoryCurrent => opt(c.stats().memory_current.map(|v| v.to_string())),
        ContainerField::MemoryPeak => opt(c.stats().memory_peak.map(|v| v.to_string())),
        ContainerField::CpuUsage => opt(c.stats().cpu_usage_usec.map(|v| v.to_string())),
        ContainerField::PidsCurrent => opt(c.stats().pids_current.map(|v| v.to_string())),
        ContainerField::Events => {
            let n = c.stats().oom_kill.unwrap_or(u64::from(r.oom_killed));
            line(format!("oom_kill {n}"))
        }
        ContainerField::Network => line(r.network.as_str()),
        ContainerField::Ports => r.ports.iter().flat_map(line).collect(),
        ContainerField::Ip => opt(r.ip.filter(|_| r.network == NetworkMode::Bridge).map(|ip| ip.to_string())),
        ContainerField::Volumes => r.volumes.iter().flat_map(line).collect(),
        ContainerField::VolumesFrom => opt(r.volumes_from.clone()),
        ContainerField::Privileged => line(r.security.privileged),
        ContainerField::CapAdd => r.security.cap_add.iter().flat_map(line).collect(),
        ContainerField::Status => line(c.status.as_str()),
        ContainerField::ExitCode => opt(r.exit_code.map(|c| c.to_string())),
        ContainerField::Pid => opt(r.pid.map(|p| p.to_string())),
        ContainerField::StartedAt => opt(r.started_at.clone()),
        ContainerField::FinishedAt => opt(r.finished_at.clone()),
        ContainerField::Error => {
            if r.error.is_empty() {
                Vec::new()
            } else {
                line(&r.error)
            }
        }
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
