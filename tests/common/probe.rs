//! Small probe programs the tests build from C (`tests/probes/NAME.c`, statically linked, so they run in a
//! busybox root filesystem) and run inside containers: an attacker's tools, built fresh by each test run.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Compiles `tests/probes/NAME.c` into `dir/NAME` (static, `-O1`) and returns the binary's path.
pub fn build(name: &str, dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/probes").join(format!("{name}.c"));
    let out = dir.join(name);
    let status = Command::new("cc")
        .args(["-static", "-O1", "-Wall", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("cc is needed for the probe programs (apt-get install gcc libc6-dev)");
    assert!(status.success(), "cannot build probe {}", src.display());
    out
}

/// Builds probe `name` and copies it into `rootfs` as `/bin/NAME`, so an image imported from it has it.
pub fn install(name: &str, rootfs: &Path) {
    let bin = build(name, rootfs.parent().unwrap_or(rootfs));
    std::fs::copy(&bin, rootfs.join("bin").join(name)).expect("copy probe into rootfs");
}
