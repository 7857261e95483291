//! Fresh random ids: of images, of containers made by `run`, of staging and scratch files.

/// A fresh random id: `prefix` and twelve hex digits.
pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 6];
    // getrandom only fails when the kernel has no entropy source at all; fall back to time and pid then.
    if getrandom::fill(&mut bytes).is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let v = t.as_nanos() as u64 ^ u64::from(std::process::id()) << 32;
        bytes.copy_from_slice(&v.to_le_bytes()[..6]);
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}
