//! Fidelity of the generated types, against the `jsonschema` crate (draft 4) over boundary
//! instances derived from every schema: of Iglu Central and of the project's `schemas/`.
//! Prints the table; the target, asserted, is 0 disagreements.

use std::path::Path;

use eventwire_iglu_corpus::fidelity;

#[test]
fn project_schemas_types_agree_with_the_reference_validator() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    let report = fidelity::measure(&dir, eventwire_iglu_corpus::project::round_trip);
    println!("{}", report.table("schemas/"));
    assert!(report.instances > 300, "{} instances", report.instances);
    assert!(report.valid > 80, "{} valid instances", report.valid);
    assert_eq!(report.disagreements(), 0, "{}", report.table("schemas/"));
}

#[test]
fn iglu_central_types_agree_with_the_reference_validator() {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora/iglu-central/schemas");
    let report = fidelity::measure(&dir, eventwire_iglu_corpus::round_trip);
    println!("{}", report.table("Iglu Central"));
    assert_eq!(report.schemas, 660);
    assert!(report.instances > 18_000, "{} instances", report.instances);
    assert!(report.valid > 5_000, "{} valid instances", report.valid);
    assert_eq!(
        report.disagreements(),
        0,
        "{}",
        report.table("Iglu Central")
    );
}

/// codegen's golden schemas: property, schema and vendor names that clash, in-document
/// references (the root, a property, escaped and percent-encoded pointers), maps, integers
/// past 64 bits.
#[test]
fn golden_schemas_types_agree_with_the_reference_validator() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../codegen/tests/golden/schemas");
    let report = fidelity::measure(&dir, eventwire_iglu_corpus::golden::round_trip);
    println!("{}", report.table("codegen golden schemas"));
    assert!(report.instances > 200, "{} instances", report.instances);
    assert_eq!(report.disagreements(), 0, "{}", report.table("golden"));
}

/// The differential check: schemas nobody has written yet (tests/iglu-corpus/gen/schemas.rs,
/// seeded), whose types were compiled with this crate, agree with the reference validator on
/// every derived instance; and codegen left none of them out.
#[test]
fn generated_schemas_types_agree_with_the_reference_validator() {
    use eventwire_iglu_corpus::generated;
    let report = fidelity::measure(Path::new(generated::DIR), generated::round_trip);
    let title = format!(
        "{} generated schemas, seed {}",
        report.schemas,
        generated::SEED
    );
    println!("{}", report.table(&title));
    assert!(
        generated::SKIPPED.is_empty(),
        "codegen left out: {:#?}",
        generated::SKIPPED
    );
    assert!(report.instances > 1_000, "{} instances", report.instances);
    assert_eq!(report.disagreements(), 0, "{}", report.table(&title));
}
