//! Every control file's write parser: the first byte picks the file, the rest is what was written. Any
//! bytes give a request or a ParseError, never a panic.
#![no_main]

use bockerfs::request::Request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((pick, bytes)) = data.split_first() else { return };
    let targets = bockerfs::request::all_write_targets("c");
    let target = targets[usize::from(*pick) % targets.len()].clone();
    let _ = Request::from_write(target, bytes);
    let _ = Request::create_container(&String::from_utf8_lossy(bytes));
    let _ = Request::create_volume(&String::from_utf8_lossy(bytes));
});
