//! The times `bocker logs --since` takes, as Docker takes them: an RFC 3339 time (`2026-12-01T17:00:00Z`,
//! with a fraction and an offset if wanted, or a date alone), a duration before now in Go's spelling
//! (`10m`, `1h30m`, `42s`, `1.5h`, `300ms`), or Unix seconds (`1700000000`, `1700000000.5`); and the
//! times of `log_index` lines. All as ns since the Unix epoch.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::times::days_from_civil;

const NS: i128 = 1_000_000_000;

/// Why a `--since` value is not a time.
#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not a time: give an RFC 3339 time (2026-12-01T17:00:00Z), a duration before now (10m, 1h30m, 42s) or Unix seconds")]
pub struct BadTime(String);

/// `--since`'s value as ns since the epoch (0 for a time before it); `now_ns` is what a duration counts
/// back from.
pub fn parse_since(s: &str, now_ns: u64) -> Result<u64, BadTime> {
    let t = s.trim();
    let ns = unix_seconds(t)
        .or_else(|| go_duration(t).map(|d| i128::from(now_ns) - d))
        .or_else(|| rfc3339(t))
        .ok_or_else(|| BadTime(s.chars().take(64).collect()))?;
    Ok(ns.clamp(0, i128::from(u64::MAX)) as u64)
}

/// The clap parser of `--since`, against the clock now.
pub fn since_arg(s: &str) -> Result<u64, BadTime> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    parse_since(s, now)
}

/// Digits and a fraction of up to 9 digits, as ns.
fn unix_seconds(s: &str) -> Option<i128> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || int.len() > 12 || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(int.parse::<i128>().ok()? * NS + fraction(frac)?)
}

/// A fraction's digits (at most 9, any more ignored) as ns; "" is 0.
fn fraction(f: &str) -> Option<i128> {
    if !f.bytes().all(|b| b.is_ascii_digit()) || f.len() > 18 {
        return None;
    }
    let digits: String = f.chars().take(9).collect();
    format!("{digits:0<9}").parse().ok()
}

/// Go's `time.ParseDuration`, without a sign: numbers (a fraction allowed) each with a unit.
fn go_duration(s: &str) -> Option<i128> {
    let mut rest = s;
    let mut total: i128 = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (num, tail) = rest.split_at(num_len);
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let per: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => NS,
            "m" => 60 * NS,
            "h" => 3600 * NS,
            _ => return None,
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if (int.is_empty() && frac.is_empty()) || int.len() > 12 || frac.len() > 9 {
            return None;
        }
        let whole: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let part: i128 =
            if frac.is_empty() { 0 } else { frac.parse::<i128>().ok()? * per / 10i128.pow(frac.len() as u32) };
        total += whole * per + part;
        rest = tail;
    }
    Some(total)
}

/// `YYYY-MM-DD`, or that with `THH:MM[:SS[.FRACTION]]` and `Z` or `±HH:MM` (none: UTC); a space or a
/// lowercase `t`/`z` is taken too.
pub fn rfc3339(s: &str) -> Option<i128> {
    let num = |s: &str| -> Option<i64> { s.bytes().all(|b| b.is_ascii_digit()).then(|| s.parse().ok())? };
    let date = s.get(..10)?;
    let (y, m, d) = (num(date.get(..4)?)?, num(date.get(5..7)?)?, num(date.get(8..10)?)?);
    if date.as_bytes()[4] != b'-' || date.as_bytes()[7] != b'-' || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let days = i128::from(days_from_civil(y, m as u32, d as u32));
    let mut rest = &s[10..];
    if rest.is_empty() {
        return Some(days * 86_400 * NS);
    }
    if !rest.starts_with(['T', 't', ' ']) {
        return None;
    }
    rest = &rest[1..];
    let (hh, mm) = (num(rest.get(..2)?)?, num(rest.get(3..5)?)?);
    if rest.as_bytes()[2] != b':' || hh > 23 || mm > 59 {
        return None;
    }
    rest = &rest[5..];
    let mut ss = 0;
    let mut frac = 0;
    if let Some(r) = rest.strip_prefix(':') {
        ss = num(r.get(..2)?)?;
        if ss > 60 {
            return None;
        }
        rest = &r[2..];
        if let Some(r) = rest.strip_prefix('.') {
            let n = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            frac = fraction(&r[..n])?;
            rest = &r[n..];
        }
    }
    let offset = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, om) = (num(rest.get(1..3)?)?, num(rest.get(4..6)?)?);
            if rest.len() != 6 || rest.as_bytes()[3] != b':' || oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    let secs = days * 86_400 + i128::from(hh * 3600 + mm * 60 + ss) - i128::from(offset);
    Some(secs * NS + frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_docker_forms() {
        let now = 1_800_000_000 * NS as u64;
        let at = |s: &str| parse_since(s, now).map_err(|e| e.to_string());
        assert_eq!(at("1700000000"), Ok(1_700_000_000 * NS as u64));
        assert_eq!(at("1700000000.25"), Ok(1_700_000_000_250_000_000));
        assert_eq!(at("10m"), Ok(now - 600 * NS as u64));
        assert_eq!(at("1h30m"), Ok(now - 5400 * NS as u64));
        assert_eq!(at("42s"), Ok(now - 42 * NS as u64));
        assert_eq!(at("1.5h"), Ok(now - 5400 * NS as u64));
        assert_eq!(at("300ms"), Ok(now - 300_000_000));
        assert_eq!(at("2026-12-01T17:00:00Z"), Ok(1_796_144_400 * NS as u64));
        assert_eq!(at("2026-12-01T17:00:00.123456789Z"), Ok(1_796_144_400_123_456_789));
        assert_eq!(at("2026-12-01T18:00:00+01:00"), Ok(1_796_144_400 * NS as u64));
        assert_eq!(at("2026-12-01"), Ok(1_796_083_200 * NS as u64));
        assert_eq!(at("1969-01-01T00:00:00Z"), Ok(0), "before the epoch is the epoch");
        for bad in [
            "",
            "soon",
            "10x",
            "-5m",
            "1h30",
            "2026-13-01",
            "2026-12-01T25:00:00Z",
            "2026-12-01T17:00:00+0100",
            "h",
            "1.h.5",
        ] {
            let e = at(bad).unwrap_err();
            assert!(e.contains("is not a time"), "{bad}: {e}");
        }
        assert_eq!(rfc3339("2026-12-01T17:00:00.000000001Z"), Some(1_796_144_400 * NS + 1));
        assert_eq!(rfc3339(&crate::times::rfc3339_nanos(123_456_789_012_345_678)), Some(123_456_789_012_345_678));
    }
}
