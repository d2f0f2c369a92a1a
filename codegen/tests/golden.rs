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
    assert_eq!(out.types, 4);
    // The loosened constructs of `odd` are reported.
    let paths: Vec<String> = out
        .loosened
        .iter()
        .map(|(k, l)| format!("{} {}", k.name, l.path))
        .collect();
    assert_eq!(
        paths,
        [
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
