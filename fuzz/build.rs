//! Generates the Rust types of codegen's golden schemas (names that clash, in-document
//! references, maps, big integers, defaults, formats) and of the project's `schemas/`, for
//! the `generated_round_trip` target.

use std::path::Path;

fn main() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::var("OUT_DIR").unwrap_or_default();
    let builder = eventwire_codegen::Builder::new()
        .schemas(here.join("../codegen/tests/golden/schemas"))
        .schemas(here.join("../schemas"))
        .out_file(Path::new(&out).join("events.rs"));
    if let Err(e) = builder.compile() {
        panic!("{e}");
    }
}
