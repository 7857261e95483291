//! Container limits in cgroup v2's names and syntax, parsed from what a user writes, and the weight
//! conversions their v1 translations need.

use serde::{Deserialize, Serialize};

use super::values::{parse_io_max, CpuList, IoMax};

/// `max`, or a number. Recorded as the number or the string `"max"`: as a bare `Option` it would be `null`
/// inside a limit that is set, which reads back as "not set" (the daemon's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Max(pub Option<u64>);

impl Serialize for Max {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(n) => s.serialize_u64(n),
            None => s.serialize_str("max"),
        }
    }
}

impl<'de> Deserialize<'de> for Max {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Recorded {
            Number(u64),
            Word(String),
        }
        match Recorded::deserialize(d)? {
            Recorded::Number(n) => Ok(Max(Some(n))),
            Recorded::Word(w) if w == "max" => Ok(Max(None)),
            Recorded::Word(w) => Err(serde::de::Error::custom(format!("a limit is a number or \"max\", not {w:?}"))),
        }
    }
}

/// `cpu.max`: a quota of microseconds per period, or no quota (`max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuMax {
    pub quota: Option<u64>,
    pub period: u64,
}

/// One limit, with its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limit {
    CpuWeight(u64),
    CpuMax(CpuMax),
    MemoryMax(Max),
    MemoryHigh(Max),
    MemorySwapMax(Max),
    PidsMax(Max),
    IoWeight(u64),
    IoMax(IoMax),
    CpusetCpus(CpuList),
    CpusetMems(CpuList),
}

/// Which limit: each is a file of the container with cgroup v2's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    CpuWeight,
    CpuMax,
    MemoryMax,
    MemoryHigh,
    MemorySwapMax,
    PidsMax,
    IoWeight,
    IoMax,
    CpusetCpus,
    CpusetMems,
}

impl LimitKind {
    pub const ALL: [LimitKind; 10] = [
        LimitKind::CpuWeight,
        LimitKind::CpuMax,
        LimitKind::MemoryMax,
        LimitKind::MemoryHigh,
        LimitKind::MemorySwapMax,
        LimitKind::PidsMax,
        LimitKind::IoWeight,
        LimitKind::IoMax,
        LimitKind::CpusetCpus,
        LimitKind::CpusetMems,
    ];

    /// The cgroup v2 file, which is also the name of the container's file.
    pub fn file_name(self) -> &'static str {
        match self {
            LimitKind::CpuWeight => "cpu.weight",
            LimitKind::CpuMax => "cpu.max",
            LimitKind::MemoryMax => "memory.max",
            LimitKind::MemoryHigh => "memory.high",
            LimitKind::MemorySwapMax => "memory.swap.max",
            LimitKind::PidsMax => "pids.max",
            LimitKind::IoWeight => "io.weight",
            LimitKind::IoMax => "io.max",
            LimitKind::CpusetCpus => "cpuset.cpus",
            LimitKind::CpusetMems => "cpuset.mems",
        }
    }

    /// The cgroup v2 controller the limit belongs to.
    pub fn controller(self) -> &'static str {
        match self {
            LimitKind::CpuWeight | LimitKind::CpuMax => "cpu",
            LimitKind::MemoryMax | LimitKind::MemoryHigh | LimitKind::MemorySwapMax => "memory",
            LimitKind::PidsMax => "pids",
            LimitKind::IoWeight | LimitKind::IoMax => "io",
            LimitKind::CpusetCpus | LimitKind::CpusetMems => "cpuset",
        }
    }

    pub fn from_file(file: &str) -> Option<LimitKind> {
        LimitKind::ALL.into_iter().find(|k| k.file_name() == file)
    }
}

/// The limits of a container; `None` means "the daemon's default" (or none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub cpu_weight: Option<u64>,
    pub cpu_max: Option<CpuMax>,
    pub memory_max: Option<Max>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_high: Option<Max>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_swap_max: Option<Max>,
    pub pids_max: Option<Max>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_weight: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_max: Option<IoMax>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset_cpus: Option<CpuList>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset_mems: Option<CpuList>,
}

impl Limits {
    /// The limits that are set, as a list, with `memory.swap.max` as Docker derives it when only
    /// `memory.max` is set (see [`Limits::swap_max`]).
    pub fn set(&self) -> Vec<Limit> {
        LimitKind::ALL.into_iter().filter_map(|k| self.get(k)).collect()
    }

    /// Records `limit` in these limits.
    pub fn put(&mut self, limit: Limit) {
        match limit {
            Limit::CpuWeight(w) => self.cpu_weight = Some(w),
            Limit::CpuMax(m) => self.cpu_max = Some(m),
            Limit::MemoryMax(m) => self.memory_max = Some(m),
            Limit::MemoryHigh(m) => self.memory_high = Some(m),
            Limit::MemorySwapMax(m) => self.memory_swap_max = Some(m),
            Limit::PidsMax(m) => self.pids_max = Some(m),
            Limit::IoWeight(w) => self.io_weight = Some(w),
            Limit::IoMax(m) => self.io_max = Some(m),
            Limit::CpusetCpus(l) => self.cpuset_cpus = Some(l),
            Limit::CpusetMems(l) => self.cpuset_mems = Some(l),
        }
    }

    /// Forgets the limit of `kind`: a default fills it again (see [`Limits::or`]).
    pub fn clear(&mut self, kind: LimitKind) {
        match kind {
            LimitKind::CpuWeight => self.cpu_weight = None,
            LimitKind::CpuMax => self.cpu_max = None,
            LimitKind::MemoryMax => self.memory_max = None,
            LimitKind::MemoryHigh => self.memory_high = None,
            LimitKind::MemorySwapMax => self.memory_swap_max = None,
            LimitKind::PidsMax => self.pids_max = None,
            LimitKind::IoWeight => self.io_weight = None,
            LimitKind::IoMax => self.io_max = None,
            LimitKind::CpusetCpus => self.cpuset_cpus = None,
            LimitKind::CpusetMems => self.cpuset_mems = None,
        }
    }

    /// These limits, with `defaults` filling what is not set.
    pub fn or(&self, defaults: &Limits) -> Limits {
        Limits {
            cpu_weight: self.cpu_weight.or(defaults.cpu_weight),
            cpu_max: self.cpu_max.or(defaults.cpu_max),
            memory_max: self.memory_max.or(defaults.memory_max),
            memory_high: self.memory_high.or(defaults.memory_high),
            memory_swap_max: self.memory_swap_max.or(defaults.memory_swap_max),
            pids_max: self.pids_max.or(defaults.pids_max),
            io_weight: self.io_weight.or(defaults.io_weight),
            io_max: self.io_max.clone().or_else(|| defaults.io_max.clone()),
            cpuset_cpus: self.cpuset_cpus.clone().or_else(|| defaults.cpuset_cpus.clone()),
            cpuset_mems: self.cpuset_mems.clone().or_else(|| defaults.cpuset_mems.clone()),
        }
    }

    /// `memory.swap.max` as written, else as Docker gives it: as much swap as memory when `memory.max`
    /// is a number (`--memory` without `--memory-swap`), no limit when it is `max` or unset.
    pub fn swap_max(&self) -> Option<Max> {
        self.memory_swap_max.or(self.memory_max)
    }

    /// The limit of `kind` in these limits, if set (`memory.swap.max`: derived, see [`Limits::swap_max`]).
    pub fn get(&self, kind: LimitKind) -> Option<Limit> {
        match kind {
            LimitKind::CpuWeight => self.cpu_weight.map(Limit::CpuWeight),
            LimitKind::CpuMax => self.cpu_max.map(Limit::CpuMax),
            LimitKind::MemoryMax => self.memory_max.map(Limit::MemoryMax),
            LimitKind::MemoryHigh => self.memory_high.map(Limit::MemoryHigh),
            LimitKind::MemorySwapMax => self.swap_max().map(Limit::MemorySwapMax),
            LimitKind::PidsMax => self.pids_max.map(Limit::PidsMax),
            LimitKind::IoWeight => self.io_weight.map(Limit::IoWeight),
            LimitKind::IoMax => self.io_max.clone().map(Limit::IoMax),
            LimitKind::CpusetCpus => self.cpuset_cpus.clone().map(Limit::CpusetCpus),
            LimitKind::CpusetMems => self.cpuset_mems.clone().map(Limit::CpusetMems),
        }
    }
}

impl Limit {
    /// The kernel's value for a group that sets none of `kind`: what undoing a first limit writes.
    pub fn unset(kind: LimitKind) -> Limit {
        let none = Max(None);
        match kind {
            LimitKind::CpuWeight => Limit::CpuWeight(100),
            LimitKind::CpuMax => Limit::CpuMax(CpuMax { quota: None, period: 100_000 }),
            LimitKind::MemoryMax => Limit::MemoryMax(none),
            LimitKind::MemoryHigh => Limit::MemoryHigh(none),
            LimitKind::MemorySwapMax => Limit::MemorySwapMax(none),
            LimitKind::PidsMax => Limit::PidsMax(none),
            LimitKind::IoWeight => Limit::IoWeight(100),
            LimitKind::IoMax => Limit::IoMax(IoMax::default()),
            LimitKind::CpusetCpus => Limit::CpusetCpus(CpuList::default()),
            LimitKind::CpusetMems => Limit::CpusetMems(CpuList::default()),
        }
    }

    pub fn kind(&self) -> LimitKind {
        match self {
            Limit::CpuWeight(_) => LimitKind::CpuWeight,
            Limit::CpuMax(_) => LimitKind::CpuMax,
            Limit::MemoryMax(_) => LimitKind::MemoryMax,
            Limit::MemoryHigh(_) => LimitKind::MemoryHigh,
            Limit::MemorySwapMax(_) => LimitKind::MemorySwapMax,
            Limit::PidsMax(_) => LimitKind::PidsMax,
            Limit::IoWeight(_) => LimitKind::IoWeight,
            Limit::IoMax(_) => LimitKind::IoMax,
            Limit::CpusetCpus(_) => LimitKind::CpusetCpus,
            Limit::CpusetMems(_) => LimitKind::CpusetMems,
        }
    }

    /// The cgroup v2 file, which is also the name of the container's file.
    pub fn file_name(&self) -> &'static str {
        self.kind().file_name()
    }

    /// The value as the container's file shows it: cgroup v2's syntax (`io.weight` as its bare number).
    pub fn v2_value(&self) -> String {
        match self {
            Limit::CpuWeight(w) | Limit::IoWeight(w) => w.to_string(),
            Limit::CpuMax(m) => format!("{} {}", m.quota.map_or("max".to_string(), |q| q.to_string()), m.period),
            Limit::MemoryMax(m) | Limit::MemoryHigh(m) | Limit::MemorySwapMax(m) | Limit::PidsMax(m) => m.to_string(),
            Limit::IoMax(m) => m.to_string(),
            Limit::CpusetCpus(l) | Limit::CpusetMems(l) => l.to_string(),
        }
    }
}

impl std::fmt::Display for Max {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("max"),
        }
    }
}

/// Why a limit value was refused: bad syntax (EINVAL) or out of range (ERANGE).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("bad value '{value}' for {file}: {expected}")]
    Syntax { file: &'static str, value: String, expected: &'static str },
    #[error("{file} {value} is out of range: {range}")]
    Range { file: &'static str, value: String, range: &'static str },
    #[error("bad value for {file}: {why}")]
    Lines { file: &'static str, why: String },
}

/// A number with an optional K, M or G suffix (powers of 1024).
pub(super) fn number(text: &str) -> Option<u64> {
    let (digits, mult) = match text.char_indices().last()? {
        (i, 'K' | 'k') => (&text[..i], 1u64 << 10),
        (i, 'M' | 'm') => (&text[..i], 1 << 20),
        (i, 'G' | 'g') => (&text[..i], 1 << 30),
        _ => (text, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

/// Parses what was written to the limit file of `kind`, in cgroup v2's syntax. (What the host can hold,
/// a device's existence, the CPUs it has, is [`super::Cgroups::check`]'s.)
pub fn parse_limit(kind: LimitKind, text: &str) -> Result<Limit, LimitError> {
    let file = kind.file_name();
    let value = text.trim();
    let syntax = |expected| LimitError::Syntax { file, value: value.chars().take(60).collect(), expected };
    let range = |range| LimitError::Range { file, value: value.chars().take(60).collect(), range };
    let bytes = |what: fn(Max) -> Limit| -> Result<Limit, LimitError> {
        if value == "max" {
            return Ok(what(Max(None)));
        }
        let bytes = number(value).ok_or_else(|| syntax("max, or bytes with an optional K, M or G"))?;
        if bytes > i64::MAX as u64 {
            return Err(range("up to 8E"));
        }
        Ok(what(Max(Some(bytes))))
    };
    match kind {
        LimitKind::CpuWeight | LimitKind::IoWeight => {
            // io.weight as the kernel also takes it: `default N`.
            let w = value.strip_prefix("default").map_or(value, str::trim_start);
            let w = number(w).ok_or_else(|| syntax("a whole number from 1 to 10000"))?;
            if !(1..=10000).contains(&w) {
                return Err(range("1 to 10000"));
            }
            Ok(if kind == LimitKind::CpuWeight { Limit::CpuWeight(w) } else { Limit::IoWeight(w) })
        }
        LimitKind::CpuMax => {
            let words: Vec<&str> = value.split_whitespace().collect();
            let expected = "QUOTA [PERIOD] in microseconds, or max [PERIOD]";
            let (quota, period) = match words.as_slice() {
                [q] => (*q, None),
                [q, p] => (*q, Some(*p)),
                _ => return Err(syntax(expected)),
            };
            let period = match period {
                None => 100_000,
                Some(p) => p.parse::<u64>().map_err(|_| syntax(expected))?,
            };
            let quota = match quota {
                "max" => None,
                q => Some(q.parse::<u64>().map_err(|_| syntax(expected))?),
            };
            if !(1000..=1_000_000).contains(&period) {
                return Err(range("period from 1000 to 1000000 microseconds"));
            }
            if quota.is_some_and(|q| !(1000..=i64::MAX as u64).contains(&q)) {
                return Err(range("quota of at least 1000 microseconds"));
            }
            Ok(Limit::CpuMax(CpuMax { quota, period }))
        }
        LimitKind::MemoryMax => match bytes(Limit::MemoryMax)? {
            Limit::MemoryMax(Max(Some(b))) if b < 1 << 20 => Err(range("from 1M to 8E")),
            l => Ok(l),
        },
        LimitKind::MemoryHigh => bytes(Limit::MemoryHigh),
        LimitKind::MemorySwapMax => bytes(Limit::MemorySwapMax),
        LimitKind::PidsMax => {
            if value == "max" {
                return Ok(Limit::PidsMax(Max(None)));
            }
            let n = number(value).ok_or_else(|| syntax("max, or a whole number"))?;
            if n == 0 || n > i64::MAX as u64 {
                return Err(range("at least 1"));
            }
            Ok(Limit::PidsMax(Max(Some(n))))
        }
        LimitKind::IoMax => parse_io_max(text).map(Limit::IoMax).map_err(|why| LimitError::Lines { file, why }),
        LimitKind::CpusetCpus | LimitKind::CpusetMems => {
            let list = CpuList::parse(value).map_err(|why| LimitError::Lines { file, why })?;
            Ok(if kind == LimitKind::CpusetCpus { Limit::CpusetCpus(list) } else { Limit::CpusetMems(list) })
        }
    }
}

/// Docker's `--blkio-weight` (10 to 1000, cgroup v1's `blkio.weight`) as cgroup v2's `io.weight` (1 to
/// 10000), as runc converts it.
pub fn blkio_weight_to_io_weight(blkio: u64) -> u64 {
    1 + (blkio.clamp(10, 1000) - 10) * 9999 / 990
}

/// The inverse of [`blkio_weight_to_io_weight`], for v1's `blkio.weight` (10 to 1000): exact for the
/// weights Docker's flag gives.
pub fn io_weight_to_blkio_weight(weight: u64) -> u64 {
    10 + ((weight.clamp(1, 10000) - 1) * 990).div_ceil(9999)
}

/// cgroup v1's `cpu.shares` for a v2 `cpu.weight`, as the kernel maps them (`sched_weight_from_cgroup`):
/// weight 100, the default, is 1024 shares.
pub fn weight_to_shares(weight: u64) -> u64 {
    (weight.clamp(1, 10000) * 1024 + 50) / 100
}

/// cgroup v2's `cpu.weight` for v1 `cpu.shares` (`sched_weight_to_cgroup`), the exact inverse of
/// [`weight_to_shares`] for every weight.
pub fn shares_to_weight(shares: u64) -> u64 {
    (shares.saturating_mul(100).saturating_add(512) / 1024).clamp(1, 10000)
}
