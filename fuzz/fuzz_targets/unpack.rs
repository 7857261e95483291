//! Layer unpacking: any bytes as a layer tar, applied to a fresh directory, fail or succeed without a
//! panic and without touching anything outside that directory.
#![no_main]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;

static RUN: AtomicU64 = AtomicU64::new(0);

fuzz_target!(|data: &[u8]| {
    let base = std::env::temp_dir().join(format!("bocker-fuzz-unpack-{}-{}", std::process::id(), RUN.fetch_add(1, Ordering::Relaxed)));
    let root: PathBuf = base.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let _ = bockerfs::store::unpack::apply_layer(&root, data);
    let outside: Vec<_> = std::fs::read_dir(&base).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(outside, [std::ffi::OsString::from("root")], "the layer wrote outside its root");
    let _ = std::fs::remove_dir_all(&base);
});
