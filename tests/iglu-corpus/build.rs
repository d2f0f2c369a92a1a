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
    let out = Path::new(&out);
    for (dir, file) in [
        (here.join("../../schemas"), "project_events.rs"),
        (
            here.join("../../codegen/tests/golden/schemas"),
            "golden_events.rs",
        ),
    ] {
        let builder = eventwire_codegen::Builder::new()
            .schemas(dir)
            .out_file(out.join(file));
        if let Err(e) = builder.compile() {
            panic!("{e}");
        }
    }

    // Schemas nobody has written yet (gen/schemas.rs): their types are compiled here, and
    // the differential test compares them with the reference validator. A schema codegen
    // leaves out is listed for that test to report, not a build failure.
    let generated = out.join("generated-schemas");
    let _ = std::fs::remove_dir_all(&generated);
    println!("cargo:rerun-if-changed=gen/schemas.rs");
    println!("cargo:rerun-if-env-changed=EVENTWIRE_GEN_SEED");
    let seed = std::env::var("EVENTWIRE_GEN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(GENERATED_SEED);
    if let Err(e) = gen::write_registry(&generated, seed, GENERATED_COUNT) {
        panic!("writing the generated schemas: {e}");
    }
    let output = match eventwire_codegen::Builder::new()
        .schemas(&generated)
        .rerun_if_changed(false)
        .generate()
    {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    };
    let skipped: Vec<String> = output.skipped.iter().map(ToString::to_string).collect();
    let code = format!(
        "{}\n/// Generated schemas codegen left out, with why.\npub const SKIPPED: &[&str] = &{skipped:?};\n/// Where the generated schemas are.\npub const DIR: &str = {:?};\n/// The generator's seed.\npub const SEED: u64 = {seed};\n",
        output.code,
        generated.display().to_string()
    );
    if let Err(e) = eventwire_codegen::write_if_changed(&out.join("generated_events.rs"), &code) {
        panic!("{e}");
    }
}

#[path = "gen/schemas.rs"]
mod gen;

/// The generated registry's seed and size (`EVENTWIRE_GEN_SEED` overrides the seed, for
/// longer hunts: the test prints it).
const GENERATED_COUNT: usize = 64;
const GENERATED_SEED: u64 = 15;
