//! Golden files: schemas in `tests/golden/schemas` → the expected Rust and TypeScript in
//! `tests/golden/expected.{rs,ts}`. Run with `EVENTWIRE_BLESS=1` to rewrite them after a
//! deliberate change, then read the diff.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::path::PathBuf;

fn golden() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn check(name: &str, actual: &str) {
    let path = golden().join(name);
    if std::env::var_os("EVENTWIRE_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{name} differs from the generated output at line {}:\n  expected: {:?}\n  actual:   {:?}\n(EVENTWIRE_BLESS=1 rewrites it)",
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first)
        );
    }
}

fn builder() -> eventwire_codegen::Builder {
    eventwire_codegen::Builder::new()
        .schemas(golden().join("schemas"))
        .rerun_if_changed(false)
}

#[test]
fn rust_matches_the_golden_file() {
    let out = builder().generate().unwrap();
    assert!(out.skipped.is_empty(), "{:?}", out.skipped);
    assert_eq!(out.types, 14);
    // The loosened constructs of `odd` are reported.
    let paths: Vec<String> = out
        .loosened
        .iter()
        .map(|(k, l)| format!("{} {}", k.name, l.path))
        .collect();
    assert_eq!(
        paths,
        [
            "hostile /properties/mixed",
            "hostile /properties/not_text",
            "hostile /properties/big_default",
            "hostile /properties/big_enum",
            "maps /properties/huge",
            "odd /items/properties/clash",
            "odd /items/properties/mixed",
            "odd /items/properties/tuple",
            "odd /items/properties/u"
        ]
    );
    check("expected.rs", &out.code);
    // Names promised by docs/codegen.md.
    for needle in [
        "pub mod com_acme",
        "pub use self::signup::v1_0_1::Signup as Signup;",
        "pub use self::signup::v2_0_0::Signup as SignupV2;",
        r#"rename = "smtp-id""#,
        r#"rename = "1h""#,
        r#"rename = "type""#,
        "pub struct Odd(pub ::std::vec::Vec<OddInnerItem>);",
    ] {
        assert!(out.code.contains(needle), "missing {needle}");
    }
}

#[test]
fn typescript_matches_the_golden_file() {
    let ts = builder().generate_typescript().unwrap();
    check("expected.ts", &ts);
    for needle in [
        r#""smtp-id"?: string | null;"#,
        r#"plan: "free" | "pro" | null;"#,
        "export type ComAcmeSignup = ComAcmeSignupV1_0_1;",
        "export type ComAcmeSignupV2 = ComAcmeSignupV2_0_0;",
    ] {
        assert!(ts.contains(needle), "missing {needle}");
    }
}

/// docs/codegen.md's naming table says what the generator does with awkward names; each
/// claim is checked against the generator (a property `1h` is in the golden schemas).
#[test]
fn the_naming_table_in_the_docs_is_what_the_code_does() {
    let docs = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/codegen.md"),
    )
    .unwrap();
    let code = builder().generate().unwrap().code;
    let field = code
        .lines()
        .skip_while(|l| !l.contains(r#"rename = "1h""#))
        .find_map(|l| l.trim().strip_prefix("pub ")?.split(':').next())
        .unwrap()
        .to_owned();
    let claims = [
        format!("| a property starting with a digit (`1h`) | field `{field}`"),
        format!(
            "module `{}`, type `{}`",
            eventwire_codegen::names::rust_module("1h"),
            eventwire_codegen::names::rust_type("1h")
        ),
        format!(
            "field `type_`, module `{}`, type `{}`",
            eventwire_codegen::names::rust_module("type"),
            eventwire_codegen::names::rust_type("self")
        ),
    ];
    for claim in claims {
        assert!(
            docs.contains(&claim),
            "docs/codegen.md does not say: {claim}"
        );
    }
    assert!(
        code.contains("pub type_:"),
        "a property `type` is the field `type_`"
    );
}

/// The generated code reaches serde_json, chrono, uuid and regress only through
/// `::eventwire::__codegen`, wherever the generator writes them: paths, `use` items, serde
/// attributes' strings, `vec![…]` defaults (the golden `shapes` schema has each).
#[test]
fn runtime_crates_are_reached_through_eventwire_only() {
    let code = builder().generate().unwrap().code;
    for krate in ["serde_json", "chrono", "uuid", "regress"] {
        let direct = format!("::{krate}::");
        let through = format!("::eventwire::__codegen::{krate}::");
        let bare = code.matches(&direct).count();
        let reached = code.matches(&through).count();
        assert!(reached > 0, "the golden schemas use {krate}");
        assert_eq!(bare, reached, "{krate} named directly somewhere");
    }
    for shape in ["Map::is_empty", "vec![", "__require_codegen_feature"] {
        assert!(code.contains(shape), "the golden output has no {shape}");
    }
}
