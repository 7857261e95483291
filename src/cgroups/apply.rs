//! Writing limits to the kernel and reading them back, in cgroup v2's terms on every layout: on v1 each
//! limit goes to its v1 file (`cpu.shares`, `memory.memsw.limit_in_bytes`, `blkio.throttle.*`, ...), and
//! one v1 has no file for is refused up front by [`Cgroups::check`] (ENOTSUP).

use std::path::{Path, PathBuf};

use super::limits::{self, Limit, LimitKind, Limits, Max};
use super::values::{CpuList, IoDevice, IoMax};
use super::{read_u64, write, CgroupError, Cgroups, Layout};

/// v1's throttle files, in the order of [`IoDevice::keys`].
const THROTTLE_FILES: [&str; 4] = [
    "blkio.throttle.read_bps_device",
    "blkio.throttle.write_bps_device",
    "blkio.throttle.read_iops_device",
    "blkio.throttle.write_iops_device",
];

fn unsupported(kind: LimitKind, why: impl Into<String>) -> CgroupError {
    CgroupError::Unsupported { file: kind.file_name(), why: why.into() }
}

/// v1's number for a [`Max`]: `-1` is "no limit" in its memory files.
fn v1_bytes(m: Max) -> String {
    m.0.map_or("-1".to_string(), |b| b.to_string())
}

/// The CPUs (or memory nodes) this host has online.
fn online(file: &str) -> CpuList {
    let text = std::fs::read_to_string(file).unwrap_or_else(|_| "0".into());
    CpuList::parse(&text).unwrap_or_default()
}

impl Cgroups {
    /// Whether this host can hold `limit`: its controller and file (or v1 file) exist, the devices of
    /// `io.max` are whole disks here, the CPUs and nodes of a cpuset are online (on v1: in the parent's
    /// lists). Called before a limit is recorded, so a limit the host can't keep is refused at the write
    /// that sets it. Reads only: the daemon's parent groups are made at its start ([`Cgroups::prepare`]).
    pub fn check(&self, limit: &Limit) -> Result<(), CgroupError> {
        let kind = limit.kind();
        if let Some(why) = self.unsupported(kind) {
            return Err(unsupported(kind, why));
        }
        match limit {
            Limit::IoMax(m) => m.0.iter().try_for_each(check_device),
            Limit::CpusetCpus(l) => self.check_cpuset(kind, l, "/sys/devices/system/cpu/online", "CPU"),
            Limit::CpusetMems(l) => self.check_cpuset(kind, l, "/sys/devices/system/node/online", "memory node"),
            _ => Ok(()),
        }
    }

    /// Why this host can't hold a limit of `kind`, if it can't: no controller, or no file for it (probed
    /// in the daemon's parent group, a non-root group with the files a container's will have).
    pub fn unsupported(&self, kind: LimitKind) -> Option<String> {
        let in_parent = |root: &Path, files: &[&str]| {
            let parent = root.join(&self.parent);
            !parent.is_dir() || files.iter().any(|f| parent.join(f).exists())
        };
        match &self.layout {
            Layout::V2 { root } => {
                let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
                if !controllers.split_whitespace().any(|c| c == kind.controller()) {
                    return Some(format!("this host's cgroup v2 has no {} controller", kind.controller()));
                }
                let files: &[&str] = match kind {
                    LimitKind::IoWeight => &["io.bfq.weight", "io.weight"],
                    k => &[k.file_name()],
                };
                (!in_parent(root, files)).then(|| match kind {
                    LimitKind::MemorySwapMax => "no swap accounting here (no memory.swap.max)".to_string(),
                    LimitKind::IoWeight => "this kernel has neither io.weight (iocost) nor io.bfq.weight".into(),
                    k => format!("this kernel's cgroup v2 has no {}", k.file_name()),
                })
            }
            Layout::V1 { cpu, memory, pids, blkio, cpuset, .. } => {
                let has = |root: &Option<PathBuf>, files: &[&str]| root.as_ref().is_some_and(|r| in_parent(r, files));
                let why = match kind {
                    LimitKind::CpuWeight | LimitKind::CpuMax if cpu.is_none() => "no v1 cpu controller",
                    LimitKind::MemoryMax if memory.is_none() => "no v1 memory controller",
                    LimitKind::PidsMax if pids.is_none() => "no v1 pids controller",
                    LimitKind::MemoryHigh => {
                        "cgroup v1 has no memory.high (its soft limit only steers reclaim): use memory.max, or a \
                         cgroup v2 host"
                    }
                    LimitKind::MemorySwapMax if !has(memory, &["memory.memsw.limit_in_bytes"]) => {
                        "no swap accounting here (cgroup v1 without memory.memsw.*: boot with swapaccount=1)"
                    }
                    // Weights are files of non-root groups only (BFQ's, or CFQ's).
                    LimitKind::IoWeight if blkio.is_none() || !has(blkio, &["blkio.bfq.weight", "blkio.weight"]) => {
                        "this host's v1 blkio has no weight file (blkio.weight or blkio.bfq.weight: the BFQ \
                         scheduler's)"
                    }
                    LimitKind::IoMax if blkio.is_none() => "no v1 blkio controller",
                    LimitKind::CpusetCpus | LimitKind::CpusetMems if cpuset.is_none() => "no v1 cpuset controller",
                    _ => return None,
                };
                Some(why.to_string())
            }
        }
    }

    /// Whether the host accounts swap per group: else a container's swap is not limited, whatever is set.
    pub fn swap_accounting(&self) -> bool {
        self.unsupported(LimitKind::MemorySwapMax).is_none()
    }

    /// A cpuset list must name online CPUs (nodes); on v1 also only those of the parent's list, which the
    /// kernel holds a child's to.
    fn check_cpuset(&self, kind: LimitKind, list: &CpuList, online_file: &str, what: &str) -> Result<(), CgroupError> {
        let mut allowed = online(online_file);
        let mut whose = "online";
        if let Layout::V1 { cpuset: Some(root), .. } = &self.layout {
            let parent = std::fs::read_to_string(root.join(&self.parent).join(kind.file_name())).unwrap_or_default();
            if let Some(p) = CpuList::parse(&parent).ok().filter(|p| !p.is_empty()) {
                allowed = p;
                whose = "the daemon's cpuset";
            }
        }
        let missing = list.missing_from(&allowed);
        if missing.is_empty() {
            return Ok(());
        }
        let shown: Vec<String> = missing.iter().take(8).map(|n| n.to_string()).collect();
        Err(CgroupError::Outside {
            file: kind.file_name(),
            why: format!("{what} {} not online here ({whose}: {allowed})", shown.join(",")),
        })
    }

    /// Writes each limit that is set to the kernel (`memory.swap.max`: derived from `memory.max` if not
    /// set, and left out where the host has no swap accounting).
    ///
    /// A limit the host can't hold (recorded on another host, or before a kernel change) is left out with a
    /// warning, as Docker starts without a swap limit where there is no swap accounting: the start goes on.
    pub fn apply(&self, name: &str, limits: &Limits) -> Result<(), CgroupError> {
        for limit in limits.set() {
            if limit.kind() == LimitKind::MemorySwapMax && limits.memory_swap_max.is_none() {
                continue; // Written with memory.max below.
            }
            match self.apply_one(name, &limit, limits) {
                Err(CgroupError::Unsupported { file, why }) => {
                    tracing::warn!(container = name, file, why, "limit left out: this host can't hold it")
                }
                r => r?,
            }
        }
        Ok(())
    }

    /// Writes one limit to the kernel, translated for v1; `all` are the container's limits after it (the
    /// swap limit is written with the memory limit, and on v1 depends on it).
    pub fn apply_one(&self, name: &str, limit: &Limit, all: &Limits) -> Result<(), CgroupError> {
        match &self.layout {
            Layout::V2 { root } => self.apply_v2(&self.group(root, name), limit, all),
            Layout::V1 { .. } => self.apply_v1(name, limit, all),
        }
    }

    fn apply_v2(&self, g: &Path, limit: &Limit, all: &Limits) -> Result<(), CgroupError> {
        // cgroupfs makes no file: a write to one the kernel lacks fails (EACCES for the create), so a
        // failure where the file is not there is "unsupported".
        let missing = |e: CgroupError| match e {
            CgroupError::Write { file, .. } if !file.exists() => {
                unsupported(limit.kind(), "this host's cgroup v2 has no such file")
            }
            e => e,
        };
        match limit {
            Limit::MemoryMax(m) => {
                write(g.join("memory.max"), &m.to_string())?;
                // Docker's default swap follows the memory limit; hosts without swap accounting have none.
                if all.memory_swap_max.is_none() && g.join("memory.swap.max").exists() {
                    write(g.join("memory.swap.max"), &all.swap_max().unwrap_or(Max(None)).to_string())?;
                }
                Ok(())
            }
            // BFQ's weight where the disk's scheduler is BFQ (it ignores io.weight), as runc does.
            Limit::IoWeight(w) if g.join("io.bfq.weight").exists() => {
                write(g.join("io.bfq.weight"), &limits::io_weight_to_blkio_weight(*w).to_string())
            }
            Limit::IoWeight(w) => write(g.join("io.weight"), &format!("default {w}")).map_err(missing),
            Limit::IoMax(m) => {
                // The new lines first, the devices it leaves out last: a refused line leaves the old limits.
                let now = std::fs::read_to_string(g.join("io.max")).unwrap_or_default();
                m.0.iter().try_for_each(|d| write(g.join("io.max"), &d.to_string()).map_err(missing))?;
                for gone in devices_not_in(&now, m) {
                    write(g.join("io.max"), &IoDevice::unlimited(gone.0, gone.1).to_string())?;
                }
                Ok(())
            }
            // An empty list is "the parent's". The kernel refuses to empty a group that has processes
            // (ENOSPC): it gets the parent's effective list instead.
            Limit::CpusetCpus(l) | Limit::CpusetMems(l) => {
                let value = if l.is_empty() {
                    let effective = format!("{}.effective", limit.file_name());
                    std::fs::read_to_string(g.parent().unwrap_or(g).join(effective)).unwrap_or_default()
                } else {
                    l.to_string()
                };
                write(g.join(limit.file_name()), &format!("{}\n", value.trim())).map_err(missing)
            }
            l => write(g.join(l.file_name()), &l.v2_value()).map_err(missing),
        }
    }

    fn apply_v1(&self, name: &str, limit: &Limit, all: &Limits) -> Result<(), CgroupError> {
        let Layout::V1 { cpu, memory, pids, blkio, cpuset, .. } = &self.layout else { return Ok(()) };
        let at = |root: &Option<PathBuf>| root.as_ref().map(|r| self.group(r, name));
        // A host without the controller has nowhere to write it ([`Cgroups::check`] refuses it when set).
        match (limit, at(cpu), at(memory), at(pids), at(blkio), at(cpuset)) {
            (Limit::CpuWeight(w), Some(g), ..) => {
                write(g.join("cpu.shares"), &limits::weight_to_shares(*w).to_string())
            }
            (Limit::CpuMax(m), Some(g), ..) => {
                write(g.join("cpu.cfs_period_us"), &m.period.to_string())?;
                write(g.join("cpu.cfs_quota_us"), &m.quota.map_or("-1".to_string(), |q| q.to_string()))
            }
            (Limit::MemoryMax(_) | Limit::MemorySwapMax(_), _, Some(g), ..) => {
                v1_memory(&g, all.memory_max.unwrap_or(Max(None)), all.swap_max())
            }
            (Limit::PidsMax(m), _, _, Some(g), ..) => write(g.join("pids.max"), &m.to_string()),
            (Limit::IoWeight(w), .., Some(g), _) => {
                let file = if g.join("blkio.weight").exists() { "blkio.weight" } else { "blkio.bfq.weight" };
                if !g.join(file).exists() {
                    return Ok(());
                }
                write(g.join(file), &limits::io_weight_to_blkio_weight(*w).to_string())
            }
            (Limit::IoMax(m), .., Some(g), _) => {
                let now: Vec<String> =
                    THROTTLE_FILES.iter().map(|f| std::fs::read_to_string(g.join(f)).unwrap_or_default()).collect();
                // The new values first, the devices it leaves out last; 0 removes a device's line.
                for d in &m.0 {
                    for (i, file) in THROTTLE_FILES.iter().enumerate() {
                        write(g.join(file), &format!("{}:{} {}", d.major, d.minor, d.keys()[i].1 .0.unwrap_or(0)))?;
                    }
                }
                for (file, now) in THROTTLE_FILES.iter().zip(&now) {
                    for gone in devices_not_in(now, m) {
                        write(g.join(file), &format!("{}:{} 0", gone.0, gone.1))?;
                    }
                }
                Ok(())
            }
            (Limit::CpusetCpus(l) | Limit::CpusetMems(l), .., Some(g)) => {
                // v1 has no "the parent's": an empty list takes the parent's list now.
                let file = limit.file_name();
                let value = if l.is_empty() {
                    std::fs::read_to_string(g.parent().unwrap_or(&g).join(file)).unwrap_or_default()
                } else {
                    l.to_string()
                };
                write(g.join(file), value.trim())
            }
            _ => Ok(()),
        }
    }

    /// What the kernel has for the limit of `kind` in the group of `name`, in v2's syntax (as the
    /// container's file shows it); `None` where there is no group or no file, or (a cpuset) the list is
    /// the parent's.
    pub fn read_limit(&self, name: &str, kind: LimitKind) -> Option<String> {
        let read = |p: PathBuf| std::fs::read_to_string(p).ok().map(|s| s.trim().to_string());
        match &self.layout {
            Layout::V2 { root } => {
                let g = self.group(root, name);
                if kind == LimitKind::IoWeight && g.join("io.bfq.weight").exists() {
                    let text = read(g.join("io.bfq.weight"))?;
                    let w: u64 = text.lines().find_map(|l| l.strip_prefix("default "))?.trim().parse().ok()?;
                    return Some(limits::blkio_weight_to_io_weight(w).to_string());
                }
                let text = read(g.join(kind.file_name()))?;
                match kind {
                    // `default N` then a line per device with its own weight.
                    LimitKind::IoWeight => {
                        text.lines().find_map(|l| l.strip_prefix("default ")).map(|w| w.trim().to_string())
                    }
                    LimitKind::IoMax => Some(kernel_io_max(&text).to_string()),
                    LimitKind::CpusetCpus | LimitKind::CpusetMems if text.is_empty() => None,
                    _ => Some(text),
                }
            }
            Layout::V1 { cpu, memory, pids, blkio, cpuset, .. } => {
                let at = |root: &Option<PathBuf>, file: &str| root.as_ref().map(|r| self.group(r, name).join(file));
                match kind {
                    LimitKind::CpuWeight => {
                        read_u64(&at(cpu, "cpu.shares")?).map(|s| limits::shares_to_weight(s).to_string())
                    }
                    LimitKind::CpuMax => {
                        let period = read_u64(&at(cpu, "cpu.cfs_period_us")?)?;
                        let quota = read(at(cpu, "cpu.cfs_quota_us")?)?;
                        Some(if quota.starts_with('-') { format!("max {period}") } else { format!("{quota} {period}") })
                    }
                    LimitKind::MemoryMax => read_u64(&at(memory, "memory.limit_in_bytes")?).map(v1_max),
                    LimitKind::MemorySwapMax => {
                        let mem = read_u64(&at(memory, "memory.limit_in_bytes")?)?;
                        let memsw = read_u64(&at(memory, "memory.memsw.limit_in_bytes")?)?;
                        Some(if memsw >= 1 << 62 { "max".into() } else { memsw.saturating_sub(mem).to_string() })
                    }
                    LimitKind::PidsMax => read(at(pids, "pids.max")?),
                    LimitKind::IoWeight => {
                        let w = read_u64(&at(blkio, "blkio.weight")?).or_else(|| {
                            let text = read(at(blkio, "blkio.bfq.weight")?)?;
                            text.lines().find_map(|l| l.strip_prefix("default ")).unwrap_or(&text).trim().parse().ok()
                        })?;
                        Some(limits::blkio_weight_to_io_weight(w).to_string())
                    }
                    LimitKind::IoMax => {
                        let files: Vec<String> =
                            THROTTLE_FILES.iter().map(|f| at(blkio, f).and_then(read).unwrap_or_default()).collect();
                        Some(v1_io_max(&files).to_string())
                    }
                    LimitKind::CpusetCpus | LimitKind::CpusetMems => read(at(cpuset, kind.file_name())?),
                    LimitKind::MemoryHigh => None,
                }
            }
        }
    }
}

/// v1 reports "no limit" as the largest page-aligned value.
fn v1_max(bytes: u64) -> String {
    if bytes >= 1 << 62 {
        "max".into()
    } else {
        bytes.to_string()
    }
}

/// Sets v1's memory and memory+swap limits of group `g`. The kernel keeps `limit_in_bytes` at most
/// `memsw.limit_in_bytes` at every moment, so the one that makes room goes first.
fn v1_memory(g: &Path, memory: Max, swap: Option<Max>) -> Result<(), CgroupError> {
    let memsw_file = g.join("memory.memsw.limit_in_bytes");
    if !memsw_file.exists() {
        return write(g.join("memory.limit_in_bytes"), &v1_bytes(memory));
    }
    let memsw = match (memory.0, swap.unwrap_or(Max(None)).0) {
        (Some(m), Some(s)) => Max(m.checked_add(s)),
        _ => Max(None),
    };
    let current_memsw = read_u64(&memsw_file).unwrap_or(u64::MAX);
    let grows_past = memory.0.unwrap_or(u64::MAX) > current_memsw;
    if grows_past {
        write(memsw_file.clone(), &v1_bytes(memsw))?;
        write(g.join("memory.limit_in_bytes"), &v1_bytes(memory))
    } else {
        write(g.join("memory.limit_in_bytes"), &v1_bytes(memory))?;
        write(memsw_file, &v1_bytes(memsw))
    }
}

/// The devices of a kernel `io.max` (or a v1 throttle file) text not in `wanted`: their limits go.
fn devices_not_in(text: &str, wanted: &IoMax) -> Vec<(u32, u32)> {
    text.lines()
        .filter_map(|l| {
            let (maj, min) = l.split_whitespace().next()?.split_once(':')?;
            Some((maj.parse().ok()?, min.parse().ok()?))
        })
        .filter(|dev| !wanted.0.iter().any(|d| d.device() == *dev))
        .collect()
}

/// The kernel's v2 `io.max` text (its lines may leave out keys at `max`) as an [`IoMax`].
fn kernel_io_max(text: &str) -> IoMax {
    super::values::parse_io_max(text).unwrap_or_default()
}

/// v1's four throttle files (`MAJ:MIN N` lines) as one [`IoMax`].
fn v1_io_max(files: &[String]) -> IoMax {
    let mut devices: Vec<IoDevice> = Vec::new();
    for (i, text) in files.iter().enumerate() {
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let dev = words.next().and_then(|d| d.split_once(':'));
            let (Some((maj, min)), Some(n)) = (dev, words.next().and_then(|n| n.parse::<u64>().ok())) else {
                continue;
            };
            let (Ok(major), Ok(minor)) = (maj.parse(), min.parse()) else { continue };
            let at = match devices.iter().position(|d| d.device() == (major, minor)) {
                Some(at) => at,
                None => {
                    devices.push(IoDevice::unlimited(major, minor));
                    devices.len() - 1
                }
            };
            let d = &mut devices[at];
            let slot = [&mut d.rbps, &mut d.wbps, &mut d.riops, &mut d.wiops];
            if let Some(slot) = slot.into_iter().nth(i) {
                *slot = Max(Some(n));
            }
        }
    }
    devices.sort_by_key(IoDevice::device);
    IoMax(devices)
}

/// A device `io.max` may name: a whole disk of this host (the kernel refuses partitions).
fn check_device(d: &IoDevice) -> Result<(), CgroupError> {
    let sys = PathBuf::from(format!("/sys/dev/block/{}:{}", d.major, d.minor));
    if !sys.exists() {
        return Err(CgroupError::NoDevice { why: format!("no block device {}:{} on this host", d.major, d.minor) });
    }
    if sys.join("partition").exists() {
        return Err(CgroupError::NoDevice {
            why: format!("{}:{} is a partition: limits go on its whole disk", d.major, d.minor),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_throttle_files_read_as_one_io_max() {
        let files = ["8:0 1048576\n7:2 10\n".to_string(), "8:0 2048\n".into(), String::new(), "7:2 5\n".into()];
        assert_eq!(
            v1_io_max(&files).to_string(),
            "7:2 rbps=10 wbps=max riops=max wiops=5\n8:0 rbps=1048576 wbps=2048 riops=max wiops=max"
        );
        let wanted = super::super::values::parse_io_max("8:0 rbps=1").unwrap();
        assert_eq!(devices_not_in("8:0 1\n7:2 10\n", &wanted), vec![(7, 2)]);
        assert_eq!(devices_not_in("8:0 rbps=1 wbps=max riops=max wiops=max\n", &wanted), vec![]);
    }

    #[test]
    fn blkio_weights_round_trip() {
        assert_eq!(limits::blkio_weight_to_io_weight(10), 1);
        assert_eq!(limits::blkio_weight_to_io_weight(500), 4950);
        assert_eq!(limits::blkio_weight_to_io_weight(1000), 10000);
        for b in 10..=1000 {
            assert_eq!(limits::io_weight_to_blkio_weight(limits::blkio_weight_to_io_weight(b)), b, "{b}");
        }
        assert_eq!(limits::io_weight_to_blkio_weight(1), 10);
        assert_eq!(limits::io_weight_to_blkio_weight(10000), 1000);
    }
}
