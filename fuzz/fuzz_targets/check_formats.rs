//! The format checks of generated types (`eventwire::check::Format`), which every generated
//! `Deserialize` runs on untrusted strings: any text, never a panic (a check once sliced a
//! `str` inside a character).
#![no_main]

use eventwire::check::Format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for format in Format::ALL {
        let _ = format.accepts(&text);
    }
});
