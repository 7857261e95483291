//! The structured limit values: `io.max`'s device lines and `cpuset`'s CPU and memory-node lists, parsed
//! once from what a user writes into a normalised form, shown back as cgroup v2 shows them.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::limits::{number, Max};

/// One device's line of `io.max`: `MAJ:MIN rbps=N wbps=N riops=N wiops=N`, `max` for no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoDevice {
    pub major: u32,
    pub minor: u32,
    pub rbps: Max,
    pub wbps: Max,
    pub riops: Max,
    pub wiops: Max,
}

impl IoDevice {
    /// A device with no limits: what removes its line from the kernel's `io.max`.
    pub fn unlimited(major: u32, minor: u32) -> IoDevice {
        let none = Max(None);
        IoDevice { major, minor, rbps: none, wbps: none, riops: none, wiops: none }
    }

    pub fn device(&self) -> (u32, u32) {
        (self.major, self.minor)
    }

    /// The four keys with their values, in the kernel's order.
    pub fn keys(&self) -> [(&'static str, Max); 4] {
        [("rbps", self.rbps), ("wbps", self.wbps), ("riops", self.riops), ("wiops", self.wiops)]
    }
}

impl fmt::Display for IoDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)?;
        for (key, value) in self.keys() {
            match value.0 {
                Some(n) => write!(f, " {key}={n}")?,
                None => write!(f, " {key}=max")?,
            }
        }
        Ok(())
    }
}

/// `io.max`: a line per device, in the order of their numbers, at most one per device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoMax(pub Vec<IoDevice>);

impl fmt::Display for IoMax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(|d| d.to_string()).collect();
        f.write_str(&lines.join("\n"))
    }
}

/// At most this many devices in one `io.max`.
pub const MAX_IO_DEVICES: usize = 64;

/// Parses `io.max`'s text: a line per device, `MAJ:MIN` then one or more of `rbps= wbps= riops= wiops=`
/// (bytes with an optional K, M or G for the bps keys; `max` for none). Keys left out are `max`. An empty
/// text is no limits.
pub fn parse_io_max(text: &str) -> Result<IoMax, String> {
    let mut devices: Vec<IoDevice> = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut words = line.split_whitespace();
        let dev = words.next().unwrap_or("");
        let (major, minor) = dev
            .split_once(':')
            .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
            .ok_or_else(|| format!("'{}' is not a device's MAJ:MIN", clip(dev)))?;
        let mut d = IoDevice::unlimited(major, minor);
        let mut any = false;
        for word in words {
            let (key, value) = word.split_once('=').ok_or_else(|| format!("'{}' is not KEY=VALUE", clip(word)))?;
            // v1 keeps iops in 32 bits (and v2 clamps them there): more is refused, not cut.
            let top = if key.ends_with("iops") { u64::from(u32::MAX) } else { i64::MAX as u64 };
            let value = match value {
                "max" => Max(None),
                v => Max(Some(number(v).filter(|n| (1..=top).contains(n)).ok_or_else(|| {
                    format!("{key}={}: a number from 1 to {top} (K, M or G allowed), or max", clip(v))
                })?)),
            };
            let slot = match key {
                "rbps" => &mut d.rbps,
                "wbps" => &mut d.wbps,
                "riops" => &mut d.riops,
                "wiops" => &mut d.wiops,
                other => return Err(format!("'{}' is not one of rbps, wbps, riops, wiops", clip(other))),
            };
            *slot = value;
            any = true;
        }
        if !any {
            return Err(format!("{major}:{minor}: no rbps=, wbps=, riops= or wiops="));
        }
        if devices.iter().any(|o| o.device() == d.device()) {
            return Err(format!("{major}:{minor} is on two lines"));
        }
        devices.push(d);
    }
    if devices.len() > MAX_IO_DEVICES {
        return Err(format!("at most {MAX_IO_DEVICES} devices"));
    }
    devices.sort_by_key(IoDevice::device);
    Ok(IoMax(devices))
}

/// A cpuset list (`0-3,8`): CPUs or memory nodes, kept as a set and shown in the kernel's form. Empty is
/// "all the parent has".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuList(BTreeSet<u32>);

/// The highest CPU or node number a list may name (the kernel's largest NR_CPUS).
pub const MAX_CPU: u32 = 8191;

/// At most this many comma-separated parts in one list.
const MAX_PARTS: usize = 1024;

impl CpuList {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, n: u32) -> bool {
        self.0.contains(&n)
    }

    /// The numbers of this list not in `other`.
    pub fn missing_from(&self, other: &CpuList) -> Vec<u32> {
        self.0.difference(&other.0).copied().collect()
    }

    /// Parses a list as the kernel writes it: numbers and ranges `A-B`, comma-separated.
    pub fn parse(text: &str) -> Result<CpuList, String> {
        let text = text.trim();
        let mut set = BTreeSet::new();
        if text.is_empty() {
            return Ok(CpuList(set));
        }
        let n = |s: &str| -> Result<u32, String> {
            let v: u32 = s.trim().parse().map_err(|_| format!("'{}' is not a number", clip(s)))?;
            if v > MAX_CPU {
                return Err(format!("{v} is above {MAX_CPU}"));
            }
            Ok(v)
        };
        if text.split(',').count() > MAX_PARTS {
            return Err(format!("at most {MAX_PARTS} numbers and ranges"));
        }
        for part in text.split(',') {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (n(a)?, n(b)?);
                    if a > b {
                        return Err(format!("the range {a}-{b} runs backwards"));
                    }
                    set.extend(a..=b);
                }
                None => {
                    set.insert(n(part)?);
                }
            }
        }
        Ok(CpuList(set))
    }
}

impl fmt::Display for CpuList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ranges: Vec<(u32, u32)> = Vec::new();
        for &n in &self.0 {
            match ranges.last_mut() {
                Some((_, end)) if *end + 1 == n => *end = n,
                _ => ranges.push((n, n)),
            }
        }
        let parts: Vec<String> =
            ranges.iter().map(|(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
        f.write_str(&parts.join(","))
    }
}

impl Serialize for CpuList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for CpuList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        CpuList::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// At most 40 characters of what was written, for a message.
fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_max_lines() {
        let m = parse_io_max("8:0 rbps=1M wiops=100\n\n7:3 wbps=max riops=5\n").unwrap();
        assert_eq!(
            m.to_string(),
            "7:3 rbps=max wbps=max riops=5 wiops=max\n8:0 rbps=1048576 wbps=max riops=max wiops=100"
        );
        assert_eq!(parse_io_max(&m.to_string()).unwrap(), m, "reads back as shown");
        assert_eq!(parse_io_max("  \n").unwrap(), IoMax::default());
        for bad in [
            "8:0",
            "8 rbps=1",
            "8:x rbps=1",
            "8:0 rbps",
            "8:0 rbps=-1",
            "8:0 rbps=0",
            "8:0 speed=1",
            "8:0 rbps=1\n8:0 wbps=2",
            "8:0 riops=4294967296",
            "99999999999:0 rbps=1",
        ] {
            assert!(parse_io_max(bad).is_err(), "{bad:?}");
        }
        let many: String = (0..65).map(|i| format!("8:{i} rbps=1\n")).collect();
        assert!(parse_io_max(&many).is_err());
    }

    #[test]
    fn cpu_lists_normalise() {
        let l = CpuList::parse("3,0-1, 2,7").unwrap();
        assert_eq!(l.to_string(), "0-3,7");
        assert!(CpuList::parse("").unwrap().is_empty());
        assert_eq!(CpuList::parse("5").unwrap().to_string(), "5");
        let many = vec!["0-8191"; 1025].join(",");
        for bad in ["a", "1-", "3-1", "1,,2", "8192", "-1", "0-99999", many.as_str()] {
            assert!(CpuList::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(l.missing_from(&CpuList::parse("0-1").unwrap()), vec![2, 3, 7]);
        let json = serde_json::to_string(&l).unwrap();
        assert_eq!(json, "\"0-3,7\"");
        assert_eq!(serde_json::from_str::<CpuList>(&json).unwrap(), l);
    }
}
