//! The generated types on untrusted JSON (codegen's golden schemas and the project's own):
//! any input, never a panic; and what a type accepted and wrote, it accepts again and writes
//! the same (a round trip is stable), so a value that leaves an app as typed data can be read
//! back by the same types.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(clippy::all, dead_code)]
mod events {
    include!(concat!(env!("OUT_DIR"), "/events.rs"));
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    for uri in events::SCHEMAS {
        if let Some(Ok(back)) = events::round_trip(uri, &value) {
            match events::round_trip(uri, &back) {
                Some(Ok(again)) => assert_eq!(again, back, "{uri}: the second round trip differs"),
                other => panic!("{uri}: the type refuses what it wrote: {back} → {other:?}"),
            }
        }
    }
});
