//! The spool's segment reader, as recovery uses it after a crash: any bytes must be read
//! into records, skipped records and corrupt bytes that add up, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (_records, _skipped, corrupt_bytes) = eventwire::spool::scan_for_fuzzing(data);
    assert!(corrupt_bytes as usize <= data.len());
});
