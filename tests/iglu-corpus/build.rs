//! Generates Rust for every schema of the public Iglu Central corpus (a copy lives in
//! `../shared/corpora/iglu-central` beside the repository); the crate then compiles it.

fn main() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpora/iglu-central/schemas");
    assert!(
        corpus.is_dir(),
        "the Iglu Central corpus is missing at {}",
        corpus.display()
    );
    if let Err(e) = eventwire_codegen::Builder::new().schemas(corpus).compile() {
        panic!("{e}");
    }
}
