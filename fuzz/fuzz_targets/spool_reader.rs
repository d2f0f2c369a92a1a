//! The spool's reader, as recovery uses it after a crash: any bytes in a segment must give
//! records, skipped records and corrupt bytes that add up, never a panic; opening a spool
//! whose segment holds those bytes must recover, and every event it reports pending must
//! read back.
#![no_main]

use std::sync::LazyLock;

use eventwire::spool::{Spool, SpoolConfig};
use libfuzzer_sys::fuzz_target;

static DIR: LazyLock<std::path::PathBuf> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("eventwire-fuzz-spool-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("fuzz spool directory");
    dir
});

fuzz_target!(|data: &[u8]| {
    let (_records, _skipped, corrupt_bytes) = eventwire::spool::scan_for_fuzzing(data);
    assert!(corrupt_bytes as usize <= data.len());

    let dir = &*DIR;
    for entry in std::fs::read_dir(dir).expect("list") {
        let _ = std::fs::remove_file(entry.expect("entry").path());
    }
    std::fs::write(dir.join("00000000000000000001.log"), data).expect("write segment");
    let (mut spool, recovery) = Spool::open(dir, SpoolConfig::default()).expect("recovery");
    assert_eq!(spool.pending(), recovery.pending.len());
    let mut bytes = 0u64;
    for id in &recovery.pending {
        bytes += spool.read(*id).expect("a pending event reads back").len() as u64;
    }
    assert_eq!(bytes, recovery.pending_bytes);
    // Appending after recovery works, and the new event reads back.
    spool.append(u128::MAX, b"{}").expect("append after recovery");
    assert_eq!(spool.read(u128::MAX).expect("read new"), b"{}");
});
