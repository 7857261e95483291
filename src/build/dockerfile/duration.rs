//! Go's duration syntax (`time.ParseDuration`), which HEALTHCHECK's `--interval` and friends use.

/// Go's `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, or `0`; in nanoseconds.
pub(super) fn go_duration(text: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {text:?}");
    let (negative, mut s) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !s.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        let whole: u64 =
            if digits == 0 { 0 } else { s.get(..digits).unwrap_or_default().parse().map_err(|_| invalid())? };
        s = s.get(digits..).unwrap_or_default();
        let (mut fraction, mut scale, mut has_fraction) = (0u64, 1f64, false);
        if let Some(rest) = s.strip_prefix('.') {
            let count = rest.bytes().take_while(u8::is_ascii_digit).count();
            has_fraction = count > 0;
            let mut overflow = false;
            for digit in rest.bytes().take(count) {
                if overflow {
                    continue;
                }
                match fraction.checked_mul(10).and_then(|f| f.checked_add(u64::from(digit - b'0'))) {
                    Some(next) if next <= 1 << 63 => {
                        fraction = next;
                        scale *= 10.0;
                    }
                    _ => overflow = true,
                }
            }
            s = rest.get(count..).unwrap_or_default();
        }
        if digits == 0 && !has_fraction {
            return Err(invalid());
        }
        let unit_len = s.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(s.len());
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {text:?}"));
        }
        let unit_name = s.get(..unit_len).unwrap_or_default();
        s = s.get(unit_len..).unwrap_or_default();
        let unit: u64 = match unit_name {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(format!("time: unknown unit {unit_name:?} in duration {text:?}")),
        };
        let mut v = whole.checked_mul(unit).filter(|v| *v <= 1 << 63).ok_or_else(invalid)?;
        if fraction > 0 {
            // Truncation is what Go does here.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
            let extra = (fraction as f64 * (unit as f64 / scale)) as u64;
            v = v.checked_add(extra).filter(|v| *v <= 1 << 63).ok_or_else(invalid)?;
        }
        total = total.checked_add(v).filter(|t| *t <= 1 << 63).ok_or_else(invalid)?;
    }
    if negative {
        return Ok(0i64.checked_sub_unsigned(total).unwrap_or(i64::MIN));
    }
    i64::try_from(total).map_err(|_| invalid())
}
