//! A container group's counters, in cgroup v2's terms on every layout: the few numbers the engine reads
//! ([`Stats`]) and the whole stat files the tree shows ([`StatFile`]), composed from v1's files where v1
//! has them, ENOTSUP where it has none (pressure).

use std::path::{Path, PathBuf};

use super::{keyed, read_u64, CgroupError, Cgroups, Layout};

/// The live numbers of a container's group, in cgroup v2's terms.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub memory_current: Option<u64>,
    pub memory_peak: Option<u64>,
    pub cpu_usage_usec: Option<u64>,
    pub pids_current: Option<u64>,
    pub oom_kill: Option<u64>,
}

/// A read-only stat file of a container, as cgroup v2 names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatFile {
    MemoryStat,
    MemoryEvents,
    IoStat,
    CpuStat,
    CpuPressure,
    MemoryPressure,
    IoPressure,
}

impl StatFile {
    pub const ALL: [StatFile; 7] = [
        StatFile::MemoryStat,
        StatFile::MemoryEvents,
        StatFile::IoStat,
        StatFile::CpuStat,
        StatFile::CpuPressure,
        StatFile::MemoryPressure,
        StatFile::IoPressure,
    ];

    pub fn file_name(self) -> &'static str {
        match self {
            StatFile::MemoryStat => "memory.stat",
            StatFile::MemoryEvents => "memory.events",
            StatFile::IoStat => "io.stat",
            StatFile::CpuStat => "cpu.stat",
            StatFile::CpuPressure => "cpu.pressure",
            StatFile::MemoryPressure => "memory.pressure",
            StatFile::IoPressure => "io.pressure",
        }
    }
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

impl Cgroups {
    /// The live numbers of the group of `name`.
    pub fn stats(&self, name: &str) -> Stats {
        match &self.layout {
            Layout::V2 { root } => {
                let g = self.group(root, name);
                Stats {
                    memory_current: read_u64(&g.join("memory.current")),
                    memory_peak: read_u64(&g.join("memory.peak")),
                    cpu_usage_usec: keyed(&g.join("cpu.stat"), "usage_usec"),
                    pids_current: read_u64(&g.join("pids.current")),
                    oom_kill: keyed(&g.join("memory.events"), "oom_kill"),
                }
            }
            Layout::V1 { cpuacct, memory, pids, .. } => {
                let at = |root: &Option<PathBuf>, file: &str| root.as_ref().map(|r| self.group(r, name).join(file));
                Stats {
                    memory_current: at(memory, "memory.usage_in_bytes").and_then(|p| read_u64(&p)),
                    memory_peak: at(memory, "memory.max_usage_in_bytes").and_then(|p| read_u64(&p)),
                    cpu_usage_usec: at(cpuacct, "cpuacct.usage").and_then(|p| read_u64(&p)).map(|ns| ns / 1000),
                    pids_current: at(pids, "pids.current").and_then(|p| read_u64(&p)),
                    oom_kill: at(memory, "memory.oom_control").and_then(|p| keyed(&p, "oom_kill")),
                }
            }
        }
    }

    /// The text of stat file `file` of the group of `name`: `None` while the container has no group; on
    /// v1 composed in v2's form from v1's files (`memory.stat` is v1's own, its keys are v1's), ENOTSUP
    /// where the host has no such numbers (pressure on v1, or a kernel without PSI).
    pub fn stat_file(&self, name: &str, file: StatFile) -> Result<Option<String>, CgroupError> {
        let none = |why: &str| CgroupError::Unsupported { file: file.file_name(), why: why.to_string() };
        match &self.layout {
            Layout::V2 { root } => {
                let g = self.group(root, name);
                if !g.is_dir() {
                    return Ok(None);
                }
                match read(&g.join(file.file_name())) {
                    Some(text) => Ok(Some(text)),
                    None if file.file_name().ends_with(".pressure") => {
                        Err(none("this kernel keeps no pressure stall information (PSI: psi=1 at boot)"))
                    }
                    None => Err(none("this host's cgroup v2 has no such file")),
                }
            }
            Layout::V1 { cpu, cpuacct, memory, blkio, .. } => {
                let group = |root: &Option<PathBuf>| root.as_ref().map(|r| self.group(r, name)).filter(|g| g.is_dir());
                if group(memory).or_else(|| group(cpuacct)).or_else(|| group(blkio)).is_none() {
                    return Ok(None);
                }
                let text = match file {
                    StatFile::CpuPressure | StatFile::MemoryPressure | StatFile::IoPressure => {
                        return Err(none("cgroup v1 keeps no pressure stall information per group (v2 does)"))
                    }
                    StatFile::MemoryStat => group(memory).and_then(|g| read(&g.join("memory.stat"))),
                    StatFile::MemoryEvents => group(memory).map(|g| v1_memory_events(&g)),
                    StatFile::IoStat => group(blkio).map(|g| v1_io_stat(&g)),
                    StatFile::CpuStat => Some(v1_cpu_stat(group(cpuacct).as_deref(), group(cpu).as_deref())),
                };
                text.map(Some).ok_or_else(|| none("this host has no v1 controller for it"))
            }
        }
    }
}

/// v2's `memory.events` from v1: `max` (times the limit was hit: `memory.failcnt`) and `oom_kill`
/// (`memory.oom_control`); v1 counts nothing else of it.
fn v1_memory_events(g: &Path) -> String {
    let failcnt = read_u64(&g.join("memory.failcnt")).unwrap_or(0);
    let oom_kill = keyed(&g.join("memory.oom_control"), "oom_kill").unwrap_or(0);
    format!("max {failcnt}\noom_kill {oom_kill}\n")
}

/// v2's `io.stat` (`MAJ:MIN rbytes= wbytes= rios= wios=` per device) from v1's throttle counters.
fn v1_io_stat(g: &Path) -> String {
    let mut devices: Vec<(String, [u64; 4])> = Vec::new();
    for (file, base) in [("blkio.throttle.io_service_bytes_recursive", 0), ("blkio.throttle.io_serviced_recursive", 2)]
    {
        for line in read(&g.join(file)).unwrap_or_default().lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            let [dev, op, n] = words.as_slice() else { continue };
            let Ok(n) = n.parse::<u64>() else { continue };
            let slot = match *op {
                "Read" => base,
                "Write" => base + 1,
                _ => continue,
            };
            let at = match devices.iter().position(|(d, _)| d == dev) {
                Some(at) => at,
                None => {
                    devices.push((dev.to_string(), [0; 4]));
                    devices.len() - 1
                }
            };
            devices[at].1[slot] = n;
        }
    }
    devices
        .iter()
        .map(|(dev, [rb, wb, rio, wio])| format!("{dev} rbytes={rb} wbytes={wb} rios={rio} wios={wio}\n"))
        .collect()
}

/// v2's `cpu.stat` from v1's `cpuacct.usage*` (nanoseconds) and `cpu.stat` (throttling).
fn v1_cpu_stat(cpuacct: Option<&Path>, cpu: Option<&Path>) -> String {
    let usec = |file: &str| cpuacct.and_then(|g| read_u64(&g.join(file))).map(|ns| ns / 1000).unwrap_or(0);
    let throttle = |key: &str| cpu.and_then(|g| keyed(&g.join("cpu.stat"), key)).unwrap_or(0);
    format!(
        "usage_usec {}\nuser_usec {}\nsystem_usec {}\nnr_periods {}\nnr_throttled {}\nthrottled_usec {}\n",
        usec("cpuacct.usage"),
        usec("cpuacct.usage_user"),
        usec("cpuacct.usage_sys"),
        throttle("nr_periods"),
        throttle("nr_throttled"),
        throttle("throttled_time") / 1000,
    )
}
