//! `bocker run`'s resource flags, as Docker spells and means them, turned into the values of the new
//! container's limit files (`memory.max`, `memory.swap.max`, `cpu.max`, `pids.max`, `cpuset.cpus`,
//! `cpuset.mems`, `io.weight`, `io.max`): Docker's units and conventions are translated here, the file
//! judges the rest.

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use super::CliError;

/// The resource flags.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct LimitFlags {
    /// Memory limit: bytes with b, k, m or g (powers of 1024), as Docker's (overrides BOCKER_MEM_LIMIT).
    #[arg(short = 'm', long, value_name = "BYTES")]
    pub memory: Option<String>,
    /// Memory plus swap, as Docker's: -1 for unlimited swap, equal to --memory for none; needs --memory.
    /// Without it (or 0) a container gets as much swap as memory (memory.swap.max).
    #[arg(long = "memory-swap", value_name = "BYTES", allow_negative_numbers = true)]
    pub memory_swap: Option<String>,
    /// CPUs it may use, a decimal number: cpu.max of N x 100000 per 100000 microseconds.
    #[arg(long, value_name = "N")]
    pub cpus: Option<String>,
    /// The CPUs it may run on (0-3, 0,1): cpuset.cpus.
    #[arg(long = "cpuset-cpus", value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// The memory nodes it may use (0-1, 0): cpuset.mems.
    #[arg(long = "cpuset-mems", value_name = "LIST")]
    pub cpuset_mems: Option<String>,
    /// Most processes and threads: pids.max (0 or -1: "max", no limit, not even the daemon's default).
    #[arg(long = "pids-limit", value_name = "N", allow_negative_numbers = true)]
    pub pids_limit: Option<String>,
    /// Block IO weight, 10 to 1000 (0: none), as Docker's: io.weight on its 1 to 10000 scale.
    #[arg(long = "blkio-weight", value_name = "N")]
    pub blkio_weight: Option<String>,
    /// Read rate from a device, DEVICE:RATE (/dev/sda:1mb; b, k, m, g). Repeatable: io.max's rbps.
    #[arg(long = "device-read-bps", value_name = "DEVICE:RATE")]
    pub device_read_bps: Vec<String>,
    /// Write rate to a device, DEVICE:RATE. Repeatable: io.max's wbps.
    #[arg(long = "device-write-bps", value_name = "DEVICE:RATE")]
    pub device_write_bps: Vec<String>,
    /// Reads per second from a device, DEVICE:N. Repeatable: io.max's riops.
    #[arg(long = "device-read-iops", value_name = "DEVICE:N")]
    pub device_read_iops: Vec<String>,
    /// Writes per second to a device, DEVICE:N. Repeatable: io.max's wiops.
    #[arg(long = "device-write-iops", value_name = "DEVICE:N")]
    pub device_write_iops: Vec<String>,
}

fn failed(msg: String) -> CliError {
    CliError::Failed(msg)
}

impl LimitFlags {
    /// The limit files to write, each with its value and the flag that asked for it.
    pub fn files(&self) -> Result<Vec<(&'static str, String, String)>, CliError> {
        let mut out: Vec<(&'static str, String, String)> = Vec::new();
        if let Some(memory) = &self.memory {
            out.push(("memory.max", docker_bytes(memory), format!("--memory {memory}")));
        }
        // 0, as Docker reads it: not set (as much swap as memory).
        if let Some(swap) = self.memory_swap.as_ref().filter(|s| s.trim() != "0") {
            out.push(("memory.swap.max", swap_max(self.memory.as_deref(), swap)?, format!("--memory-swap {swap}")));
        }
        if let Some(cpus) = &self.cpus {
            out.push(("cpu.max", cpu_max(cpus)?, format!("--cpus {cpus}")));
        }
        for (file, value, flag) in
            [("cpuset.cpus", &self.cpuset_cpus, "--cpuset-cpus"), ("cpuset.mems", &self.cpuset_mems, "--cpuset-mems")]
        {
            if let Some(v) = value {
                out.push((file, v.trim().to_string(), format!("{flag} {v}")));
            }
        }
        if let Some(pids) = &self.pids_limit {
            let value = match pids.trim().parse::<i64>() {
                Ok(n) if n <= 0 => "max".to_string(),
                _ => pids.clone(),
            };
            out.push(("pids.max", value, format!("--pids-limit {pids}")));
        }
        if let Some(w) = &self.blkio_weight {
            let bad = || failed(format!("--blkio-weight: '{w}' is not a weight from 10 to 1000 (or 0)"));
            let n: u64 = w.trim().parse().map_err(|_| bad())?;
            match n {
                0 => {}
                10..=1000 => out.push((
                    "io.weight",
                    crate::cgroups::blkio_weight_to_io_weight(n).to_string(),
                    format!("--blkio-weight {w}"),
                )),
                _ => return Err(bad()),
            }
        }
        if let Some(lines) = self.io_max()? {
            out.push(("io.max", lines, "--device-read-bps/--device-write-bps/--device-*-iops".into()));
        }
        Ok(out)
    }

    /// `io.max`'s lines for the `--device-*` flags: one per device, its keys from each flag naming it.
    fn io_max(&self) -> Result<Option<String>, CliError> {
        let mut devices: Vec<((u64, u64), Vec<String>)> = Vec::new();
        let flags = [
            ("--device-read-bps", "rbps", &self.device_read_bps, true),
            ("--device-write-bps", "wbps", &self.device_write_bps, true),
            ("--device-read-iops", "riops", &self.device_read_iops, false),
            ("--device-write-iops", "wiops", &self.device_write_iops, false),
        ];
        for (flag, key, values, bytes) in flags {
            for value in values {
                let (path, rate) = value
                    .rsplit_once(':')
                    .ok_or_else(|| failed(format!("{flag} {value}: DEVICE:RATE, as /dev/sda:1mb")))?;
                let rate = if bytes { docker_bytes(rate) } else { rate.trim().to_string() };
                let dev = block_device(path).map_err(|why| failed(format!("{flag} {value}: {why}")))?;
                let at = match devices.iter().position(|(d, _)| *d == dev) {
                    Some(at) => at,
                    None => {
                        devices.push((dev, Vec::new()));
                        devices.len() - 1
                    }
                };
                devices[at].1.push(format!("{key}={rate}"));
            }
        }
        if devices.is_empty() {
            return Ok(None);
        }
        let lines: Vec<String> =
            devices.iter().map(|((maj, min), keys)| format!("{maj}:{min} {}", keys.join(" "))).collect();
        Ok(Some(lines.join("\n")))
    }
}

/// The major and minor numbers of the block device at `path`.
fn block_device(path: &str) -> Result<(u64, u64), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{path}: {e}"))?;
    if !meta.file_type().is_block_device() {
        return Err(format!("{path} is not a block device"));
    }
    let rdev = meta.rdev();
    Ok((libc::major(rdev).into(), libc::minor(rdev).into()))
}

/// Docker's byte counts (`512m`, `1g`, `512mb`, `1024b`) in `memory.max`'s terms (`512m`, `1024`); any
/// other text goes as it is, for the file to judge.
pub fn docker_bytes(text: &str) -> String {
    let t = text.trim().to_ascii_lowercase();
    match t.strip_suffix('b') {
        Some(rest) if rest.ends_with(|c: char| c.is_ascii_digit() || matches!(c, 'k' | 'm' | 'g')) => rest.to_string(),
        _ => t,
    }
}

/// A Docker byte count as a number.
fn bytes_of(text: &str) -> Option<u64> {
    let t = docker_bytes(text);
    let (digits, shift) = match t.char_indices().last()? {
        (i, 'k') => (&t[..i], 10),
        (i, 'm') => (&t[..i], 20),
        (i, 'g') => (&t[..i], 30),
        _ => (t.as_str(), 0),
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// `--memory-swap` as Docker means it (memory plus swap; -1 for no swap limit) as `memory.swap.max`,
/// the swap alone.
fn swap_max(memory: Option<&str>, swap: &str) -> Result<String, CliError> {
    if swap.trim() == "-1" {
        return Ok("max".into());
    }
    let Some(memory) = memory else {
        return Err(failed("--memory-swap needs --memory: it is memory plus swap, as Docker's".into()));
    };
    let (Some(total), Some(mem)) = (bytes_of(swap), bytes_of(memory)) else {
        return Err(failed(format!("--memory-swap {swap}: bytes with b, k, m or g, or -1")));
    };
    if total < mem {
        return Err(failed(format!(
            "--memory-swap {swap} is below --memory {memory}: it is memory plus swap, at least the memory"
        )));
    }
    Ok((total - mem).to_string())
}

/// `--cpus N` as Docker means it: a quota of N periods of 100 ms, per 100 ms.
fn cpu_max(text: &str) -> Result<String, CliError> {
    let bad = || failed(format!("--cpus: '{text}' is not a number of CPUs above 0 (like 1.5)"));
    let cpus: f64 = text.trim().parse().map_err(|_| bad())?;
    if !cpus.is_finite() || cpus <= 0.0 || cpus > 1e9 {
        return Err(bad());
    }
    Ok(format!("{} 100000", (cpus * 100_000.0).round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_sizes_and_cpus() {
        assert_eq!(docker_bytes("512m"), "512m");
        assert_eq!(docker_bytes("512MB"), "512m");
        assert_eq!(docker_bytes("1024b"), "1024");
        assert_eq!(docker_bytes("1g"), "1g");
        assert_eq!(docker_bytes("b"), "b", "left for the file to refuse");
        assert_eq!(cpu_max("1.5").unwrap(), "150000 100000");
        assert_eq!(cpu_max("0.5").unwrap(), "50000 100000");
        for bad in ["0", "-1", "x", "NaN", "inf", ""] {
            assert!(cpu_max(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn memory_swap_as_docker_means_it() {
        assert_eq!(swap_max(Some("512m"), "1g").unwrap(), (512u64 << 20).to_string());
        assert_eq!(swap_max(Some("512m"), "512m").unwrap(), "0", "equal: no swap");
        assert_eq!(swap_max(None, "-1").unwrap(), "max");
        assert!(swap_max(None, "1g").is_err(), "needs --memory");
        assert!(swap_max(Some("1g"), "512m").is_err(), "below the memory");
        assert!(swap_max(Some("1g"), "lots").is_err());
    }

    #[test]
    fn device_flags_make_one_io_max_line_per_device() {
        // /dev/null is a character device; a loop device node is made here for a block device.
        let dir = std::env::temp_dir().join(format!("bocker-devflags-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let node = dir.join("blk");
        // SAFETY: mknod of a node in our own temporary directory; the path is a valid C string.
        let made = unsafe {
            let path = std::ffi::CString::new(node.to_str().unwrap()).unwrap();
            libc::mknod(path.as_ptr(), libc::S_IFBLK | 0o600, libc::makedev(7, 200))
        };
        assert_eq!(made, 0, "mknod: {}", std::io::Error::last_os_error());
        let blk = node.to_str().unwrap().to_string();
        let flags = LimitFlags {
            device_read_bps: vec![format!("{blk}:1mb")],
            device_write_iops: vec![format!("{blk}:100")],
            blkio_weight: Some("500".into()),
            ..Default::default()
        };
        let files = flags.files().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let shown: Vec<(&str, &str)> = files.iter().map(|(f, v, _)| (*f, v.as_str())).collect();
        assert_eq!(shown, [("io.weight", "4950"), ("io.max", "7:200 rbps=1m wiops=100")]);
        let not_block = LimitFlags { device_read_bps: vec!["/dev/null:1mb".into()], ..Default::default() };
        assert!(not_block.files().unwrap_err().to_string().contains("not a block device"));
        let bad = LimitFlags { blkio_weight: Some("5".into()), ..Default::default() };
        assert!(bad.files().is_err());
    }
}
