//! Generates Rust for every schema of the public Iglu Central corpus (a copy lives in
//! `../shared/corpora/iglu-central` beside the repository) and for the project's own
//! `schemas/`; the crate then compiles both.

use std::path::Path;

fn main() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = here.join("../../../shared/corpora/iglu-central/schemas");
    assert!(
        corpus.is_dir(),
        "the Iglu Central corpus is missing at {}",
        corpus.display()
    );
    if let Err(e) = eventwire_codegen::Builder::new().schemas(corpus).compile() {
        panic!("{e}");
    }
    let out = std::env::var("OUT_DIR").unwrap_or_default();
    let project = eventwire_codegen::Builder::new()
        .schemas(here.join("../../schemas"))
        .out_file(Path::new(&out).join("project_events.rs"));
    if let Err(e) = project.compile() {
        panic!("{e}");
    }
}
