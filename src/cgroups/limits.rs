//! Container limits in cgroup v2's names and syntax, parsed from what a user writes, and their v1
//! translations.

use serde::{Deserialize, Serialize};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    CpuWeight(u64),
    CpuMax(CpuMax),
    MemoryMax(Max),
    PidsMax(Max),
}

/// The limits of a container; `None` means "the daemon's default" (or none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub cpu_weight: Option<u64>,
    pub cpu_max: Option<CpuMax>,
    pub memory_max: Option<Max>,
    pub pids_max: Option<Max>,
}

impl Limits {
    /// The limits that are set, as a list.
    pub fn set(&self) -> Vec<Limit> {
        let mut v = Vec::new();
        v.extend(self.cpu_weight.map(Limit::CpuWeight));
        v.extend(self.cpu_max.map(Limit::CpuMax));
        v.extend(self.memory_max.map(Limit::MemoryMax));
        v.extend(self.pids_max.map(Limit::PidsMax));
        v
    }

    /// Records `limit` in these limits.
    pub fn put(&mut self, limit: Limit) {
        match limit {
            Limit::CpuWeight(w) => self.cpu_weight = Some(w),
            Limit::CpuMax(m) => self.cpu_max = Some(m),
            Limit::MemoryMax(m) => self.memory_max = Some(m),
            Limit::PidsMax(m) => self.pids_max = Some(m),
        }
    }

    /// These limits, with `defaults` filling what is not set.
    pub fn or(&self, defaults: &Limits) -> Limits {
        Limits {
            cpu_weight: self.cpu_weight.or(defaults.cpu_weight),
            cpu_max: self.cpu_max.or(defaults.cpu_max),
            memory_max: self.memory_max.or(defaults.memory_max),
            pids_max: self.pids_max.or(defaults.pids_max),
        }
    }

    /// The value of the same kind as `kind` in these limits, if set.
    pub fn get(&self, kind: &Limit) -> Option<Limit> {
        match kind {
            Limit::CpuWeight(_) => self.cpu_weight.map(Limit::CpuWeight),
            Limit::CpuMax(_) => self.cpu_max.map(Limit::CpuMax),
            Limit::MemoryMax(_) => self.memory_max.map(Limit::MemoryMax),
            Limit::PidsMax(_) => self.pids_max.map(Limit::PidsMax),
        }
    }
}

impl Limit {
    /// The cgroup v2 file, which is also the name of the container's file.
    pub fn file_name(&self) -> &'static str {
        match self {
            Limit::CpuWeight(_) => "cpu.weight",
            Limit::CpuMax(_) => "cpu.max",
            Limit::MemoryMax(_) => "memory.max",
            Limit::PidsMax(_) => "pids.max",
        }
    }

    /// The value as cgroup v2 writes and shows it.
    pub fn v2_value(&self) -> String {
        let max = |m: &Max| m.0.map_or("max".to_string(), |n| n.to_string());
        match self {
            Limit::CpuWeight(w) => w.to_string(),
            Limit::CpuMax(m) => format!("{} {}", m.quota.map_or("max".to_string(), |q| q.to_string()), m.period),
            Limit::MemoryMax(m) | Limit::PidsMax(m) => max(m),
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
}

/// A number with an optional K, M or G suffix (powers of 1024).
fn number(text: &str) -> Option<u64> {
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

/// Parses what was written to the limit file `file` (`cpu.weight`, `cpu.max`, `memory.max`, `pids.max`).
pub fn parse_limit(file: &'static str, text: &str) -> Result<Limit, LimitError> {
    let value = text.trim();
    let syntax = |expected| LimitError::Syntax { file, value: value.chars().take(60).collect(), expected };
    let range = |range| LimitError::Range { file, value: value.chars().take(60).collect(), range };
    match file {
        "cpu.weight" => {
            let w = number(value).ok_or_else(|| syntax("a whole number from 1 to 10000"))?;
            if !(1..=10000).contains(&w) {
                return Err(range("1 to 10000"));
            }
            Ok(Limit::CpuWeight(w))
        }
        "cpu.max" => {
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
        "memory.max" => {
            if value == "max" {
                return Ok(Limit::MemoryMax(Max(None)));
            }
            let bytes = number(value).ok_or_else(|| syntax("max, or bytes with an optional K, M or G"))?;
            if !(1 << 20..=i64::MAX as u64).contains(&bytes) {
                return Err(range("from 1M to 8E"));
            }
            Ok(Limit::MemoryMax(Max(Some(bytes))))
        }
        "pids.max" => {
            if value == "max" {
                return Ok(Limit::PidsMax(Max(None)));
            }
            let n = number(value).ok_or_else(|| syntax("max, or a whole number"))?;
            if n == 0 || n > i64::MAX as u64 {
                return Err(range("at least 1"));
            }
            Ok(Limit::PidsMax(Max(Some(n))))
        }
        _ => Err(syntax("a known limit")),
    }
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
