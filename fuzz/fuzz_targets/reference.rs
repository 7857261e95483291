//! Image references as written to `images/pull` and `images/push`: any bytes parse or fail, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = bockerfs::registry::PullSpec::parse(&text);
    let _ = bockerfs::registry::PushSpec::parse(&text);
});
