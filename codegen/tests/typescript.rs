//! The TypeScript output type-checks under `tsc --strict`, and wrong `data` for a `schema`
//! does not: `tests/ts/usage.ts` holds `// @ts-expect-error` lines, which tsc itself
//! rejects if the error they announce is missing. TypeScript comes from `tests/ts`
//! (`npm ci`, run by scripts/test.sh).

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::path::PathBuf;
use std::process::Command;

#[test]
fn generated_typescript_checks_right_data_and_rejects_wrong_data() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let ts = repo.join("tests/ts");
    let tsc = ts.join("node_modules/.bin/tsc");
    assert!(
        tsc.exists(),
        "TypeScript is not installed: run ./scripts/test.sh (npm ci in tests/ts)"
    );
    let code = eventwire_codegen::Builder::new()
        .schemas(repo.join("schemas"))
        .rerun_if_changed(false)
        .generate_typescript()
        .unwrap();
    std::fs::write(ts.join("events.ts"), &code).unwrap();
    let out = Command::new(&tsc).arg("-p").arg(&ts).output().unwrap();
    assert!(
        out.status.success(),
        "tsc --strict failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let expectations = std::fs::read_to_string(ts.join("usage.ts"))
        .unwrap()
        .matches("@ts-expect-error")
        .count();
    println!("tsc --strict: generated types accepted, {expectations} wrong usages rejected");
    assert!(expectations >= 8);
}

/// The golden schemas' TypeScript (names that clash, in-document references, maps, big
/// integers) type-checks under `tsc --strict`, and `tests/ts/golden-usage.ts` shows it is as
/// strict as the Rust types where TypeScript can be: each `@ts-expect-error` line there is a
/// value the Rust types refuse too.
#[test]
fn golden_typescript_is_strict_where_rust_is() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let ts = repo.join("tests/ts");
    let tsc = ts.join("node_modules/.bin/tsc");
    assert!(
        tsc.exists(),
        "TypeScript is not installed: run ./scripts/test.sh (npm ci in tests/ts)"
    );
    let code = eventwire_codegen::Builder::new()
        .schemas(repo.join("codegen/tests/golden/schemas"))
        .rerun_if_changed(false)
        .generate_typescript()
        .unwrap();
    std::fs::write(ts.join("golden.ts"), &code).unwrap();
    let out = tsc_strict(&tsc, &ts, "golden-usage.ts");
    assert!(
        out.status.success(),
        "tsc --strict failed on the golden types:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let expectations = std::fs::read_to_string(ts.join("golden-usage.ts"))
        .unwrap()
        .matches("@ts-expect-error")
        .count();
    assert!(expectations >= 8, "{expectations}");
}

/// Keyword by keyword: where Rust enforces a shape, TypeScript does too (tsc refuses a value
/// that breaks it), or the type carries the "Not checked by this type" note. The Rust side
/// is the generated check, which enforces every keyword (the fidelity tests of
/// tests/iglu-corpus measure it against a reference validator).
#[test]
fn typescript_strictness_keyword_by_keyword() {
    // (keyword, property schema, a value the schema refuses, what TypeScript does)
    let table: &[(&str, &str, &str, Strict)] = &[
        ("type", r#"{"type": "integer"}"#, r#""1""#, Strict::Refuses),
        ("enum", r#"{"enum": ["a", "b"]}"#, r#""c""#, Strict::Refuses),
        (
            "type list",
            r#"{"type": ["string", "null"]}"#,
            "1",
            Strict::Refuses,
        ),
        (
            "properties",
            r#"{"type": "object", "properties": {"k": {"type": "string"}}}"#,
            r#"{"k": 1}"#,
            Strict::Refuses,
        ),
        (
            "required",
            r#"{"type": "object", "properties": {"k": {"type": "string"}}, "required": ["k"]}"#,
            "{}",
            Strict::Refuses,
        ),
        (
            "additionalProperties: false",
            r#"{"type": "object", "properties": {"k": {"type": "string"}}, "additionalProperties": false}"#,
            r#"{"other": 1}"#,
            Strict::Refuses,
        ),
        (
            "additionalProperties: schema",
            r#"{"type": "object", "additionalProperties": {"type": "integer"}}"#,
            r#"{"x": "1"}"#,
            Strict::Refuses,
        ),
        (
            "patternProperties",
            r#"{"type": "object", "patternProperties": {"^a": {"type": "integer"}}, "additionalProperties": false}"#,
            r#"{"a": "1"}"#,
            Strict::Refuses,
        ),
        (
            "patternProperties (key)",
            r#"{"type": "object", "patternProperties": {"^a": {"type": "integer"}}, "additionalProperties": false}"#,
            r#"{"b": 1}"#,
            Strict::Note("property names against the patterns"),
        ),
        (
            "items",
            r#"{"type": "array", "items": {"type": "string"}}"#,
            "[1]",
            Strict::Refuses,
        ),
        (
            "tuple items",
            r#"{"type": "array", "items": [{"type": "string"}]}"#,
            "[1]",
            Strict::Note("tuple `items`"),
        ),
        (
            "anyOf",
            r#"{"anyOf": [{"type": "string"}, {"type": "integer"}]}"#,
            "true",
            Strict::Refuses,
        ),
        (
            "oneOf",
            r#"{"oneOf": [{"type": "string"}, {"type": "integer"}]}"#,
            "true",
            Strict::Refuses,
        ),
        (
            "allOf",
            r#"{"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}]}"#,
            "{}",
            Strict::Refuses,
        ),
        (
            "$ref root",
            r##"{"type": "array", "items": {"$ref": "#"}}"##,
            r#"[{"p": "x"}]"#,
            Strict::Refuses,
        ),
        (
            "$ref definitions",
            r##"{"$ref": "#/definitions/d"}"##,
            r#""x""#,
            Strict::Refuses,
        ),
        (
            "$ref escaped",
            r##"{"$ref": "#/definitions/a~1b"}"##,
            r#""x""#,
            Strict::Refuses,
        ),
        (
            "$ref property",
            r##"{"$ref": "#/properties/n"}"##,
            r#""x""#,
            Strict::Refuses,
        ),
        (
            "maximum",
            r#"{"type": "integer", "maximum": 3}"#,
            "4",
            Strict::Collector,
        ),
        (
            "maxLength",
            r#"{"type": "string", "maxLength": 1}"#,
            r#""ab""#,
            Strict::Collector,
        ),
        (
            "pattern",
            r#"{"type": "string", "pattern": "^a"}"#,
            r#""b""#,
            Strict::Collector,
        ),
        (
            "format",
            r#"{"type": "string", "format": "date-time"}"#,
            r#""x""#,
            Strict::Collector,
        ),
    ];
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let ts = repo.join("tests/ts");
    let tsc = ts.join("node_modules/.bin/tsc");
    assert!(
        tsc.exists(),
        "TypeScript is not installed: run ./scripts/test.sh"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut usage = String::from("import type * as E from \"./events\";\n");
    let mut expected_errors = 0;
    for (i, (keyword, schema, bad, strict)) in table.iter().enumerate() {
        let name = format!("k{i}");
        let folder = dir
            .path()
            .join(format!("schemas/com.acme/{name}/jsonschema"));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(
            folder.join("1-0-0"),
            format!(
                r#"{{"$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
                    "self": {{"vendor": "com.acme", "name": "{name}", "format": "jsonschema", "version": "1-0-0"}},
                    "type": "object", "additionalProperties": false,
                    "properties": {{"p": {schema}, "n": {{"type": "integer"}}}},
                    "definitions": {{"d": {{"type": "integer"}}, "a/b": {{"type": "integer"}}}}}}"#
            ),
        )
        .unwrap();
        let alias = format!("E.ComAcmeK{i}");
        match strict {
            Strict::Refuses => {
                expected_errors += 1;
                usage += &format!(
                    "// @ts-expect-error {keyword}\nexport const v{i}: {alias} = {{ p: {bad} }};\n"
                );
            }
            Strict::Note(_) | Strict::Collector => {
                usage += &format!("export const v{i}: {alias} = {{ p: {bad} }};\n");
            }
        }
    }
    let code = eventwire_codegen::Builder::new()
        .schemas(dir.path().join("schemas"))
        .rerun_if_changed(false)
        .generate_typescript()
        .unwrap();
    for (i, (keyword, _, _, strict)) in table.iter().enumerate() {
        if let Strict::Note(note) = strict {
            let start = code
                .find(&format!("export type ComAcmeK{i}V1_0_0 ="))
                .unwrap();
            let doc_start = code[..start].rfind("/**").unwrap();
            let body_end = code[start..].find("\n};").map_or(code.len(), |e| start + e);
            let text = &code[doc_start..body_end];
            assert!(
                text.contains("Not checked by this type") && text.contains(note),
                "{keyword}: no note saying TypeScript does not check it:\n{text}"
            );
        }
    }
    std::fs::write(dir.path().join("events.ts"), &code).unwrap();
    std::fs::write(dir.path().join("usage.ts"), &usage).unwrap();
    let out = tsc_strict(&tsc, dir.path(), "usage.ts");
    assert!(
        out.status.success(),
        "tsc: a keyword TypeScript should enforce is not enforced (an unused @ts-expect-error), or the types do not compile:\n{}{}\n{usage}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("TypeScript refuses {expected_errors} of {} keywords' bad values; the rest are noted or left to the collector", table.len());
}

/// What TypeScript does with a value its schema refuses.
enum Strict {
    /// tsc refuses it.
    Refuses,
    /// TypeScript cannot say it; the type's docs carry the note (containing this text).
    Note(&'static str),
    /// Bounds, lengths, patterns, formats: TypeScript cannot say them, the collector
    /// validates them (stated in docs/codegen.md).
    Collector,
}

/// `tsc --strict` on one file of `dir` (no emit, ES2022 modules), as tests/ts/tsconfig.json
/// sets it for the project's own types.
fn tsc_strict(tsc: &std::path::Path, dir: &std::path::Path, file: &str) -> std::process::Output {
    Command::new(tsc)
        .current_dir(dir)
        .args([
            "--strict",
            "--noEmit",
            "--target",
            "ES2022",
            "--module",
            "ES2022",
            "--moduleResolution",
            "bundler",
            file,
        ])
        .output()
        .unwrap()
}

/// `PII_MARKS` in the TypeScript holds exactly the marks the Rust types carry (`Marks::of`
/// of each schema: what a collector and `eventwire pii open` go by), schemas without marks
/// left out; a mark that would seal nothing fails generation, naming the schema.
#[test]
fn pii_marks_are_the_schemas_marks() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let code = eventwire_codegen::Builder::new()
        .schemas(repo.join("schemas"))
        .rerun_if_changed(false)
        .generate_typescript()
        .unwrap();
    let start = code.find("export const PII_MARKS").unwrap();
    let body = &code[start..];
    let body = &body[body.find('{').unwrap()..=body.find("\n};").unwrap() + 1];
    let got: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&body.replace("],\n}", "]\n}")).unwrap();
    let mut want = serde_json::Map::new();
    let loaded = eventwire_schema::registry::load_dir(&repo.join("schemas"));
    for file in &loaded.schemas {
        let marks = eventwire_schema::pii::Marks::of(&file.schema).unwrap();
        if !marks.is_empty() {
            want.insert(file.key.to_string(), serde_json::json!(marks.pointers()));
        }
    }
    assert!(!want.is_empty(), "schemas/ has no marked schema to check");
    assert_eq!(got, want);

    let dir = tempfile::tempdir().unwrap();
    let at = dir.path().join("com.acme/bad_mark/jsonschema");
    std::fs::create_dir_all(&at).unwrap();
    std::fs::write(
        at.join("1-0-0"),
        r#"{"self": {"vendor": "com.acme", "name": "bad_mark", "format": "jsonschema", "version": "1-0-0"},
            "type": "object", "properties": {"email": {"type": "string", "x-pii": "yes"}}}"#,
    )
    .unwrap();
    let err = eventwire_codegen::Builder::new()
        .schemas(dir.path())
        .rerun_if_changed(false)
        .generate_typescript()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("iglu:com.acme/bad_mark/jsonschema/1-0-0") && err.contains("x-pii"),
        "{err}"
    );
}
