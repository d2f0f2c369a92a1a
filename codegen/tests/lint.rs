//! `lint` on registries written to disk: a good evolution passes; each breaking change, a
//! `self` block that does not match its path and an invalid draft-4 schema are errors with
//! the file's path.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::path::Path;

use eventwire_codegen::lint::{lint_dir, Severity};
use serde_json::{json, Value};

fn put(root: &Path, rel: &str, body: Value) {
    let parts: Vec<&str> = rel.split('/').collect();
    let mut doc = json!({
        "$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
        "self": {"vendor": parts[0], "name": parts[1], "format": parts[2], "version": parts[3]}
    });
    doc.as_object_mut()
        .unwrap()
        .extend(body.as_object().unwrap().clone());
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
}

fn base() -> Value {
    json!({"type": "object", "properties": {"a": {"type": "string", "maxLength": 10}, "b": {"type": "integer"}}, "required": ["a"], "additionalProperties": false})
}

#[test]
fn the_projects_own_schemas_are_clean() {
    let issues = lint_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas"));
    assert!(issues.is_empty(), "{issues:#?}");
}

#[test]
fn a_good_evolution_passes() {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "com.acme/e/jsonschema/1-0-0", base());
    let mut next = base();
    next["properties"]["c"] = json!({"type": ["string", "null"]});
    next["properties"]["a"]["maxLength"] = json!(20);
    put(dir.path(), "com.acme/e/jsonschema/1-0-1", next);
    // A REVISION may break; it is not checked.
    put(
        dir.path(),
        "com.acme/e/jsonschema/1-1-0",
        json!({"type": "object", "properties": {"z": {"type": "string"}}, "required": ["z"]}),
    );
    assert!(
        lint_dir(dir.path()).is_empty(),
        "{:#?}",
        lint_dir(dir.path())
    );
}

#[test]
fn breaking_additions_mismatched_self_and_bad_draft4_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "com.acme/e/jsonschema/1-0-0", base());
    let mut breaking = base();
    breaking["required"] = json!(["a", "b"]);
    breaking["properties"]["a"]["maxLength"] = json!(5);
    breaking["properties"].as_object_mut().unwrap().remove("b");
    put(dir.path(), "com.acme/e/jsonschema/1-0-1", breaking);
    put(dir.path(), "com.acme/e/jsonschema/1-0-3", base()); // skips 1-0-2
                                                            // self says 2-0-0, path says 1-0-0
    let mut mismatched = json!({"type": "object"});
    put(
        dir.path(),
        "com.acme/other/jsonschema/2-0-0",
        mismatched.clone(),
    );
    std::fs::create_dir_all(dir.path().join("com.acme/other/jsonschema")).unwrap();
    std::fs::rename(
        dir.path().join("com.acme/other/jsonschema/2-0-0"),
        dir.path().join("com.acme/other/jsonschema/1-0-0"),
    )
    .unwrap();
    mismatched["type"] = json!(5);
    put(dir.path(), "com.acme/bad/jsonschema/1-0-0", mismatched);

    let issues = lint_dir(dir.path());
    let lines: Vec<String> = issues
        .iter()
        .map(|i| {
            format!(
                "{}: {:?}: {}",
                i.path.strip_prefix(dir.path()).unwrap().display(),
                i.severity,
                i.message
            )
        })
        .collect();
    let expect = |needle: &str| {
        assert!(
            lines.iter().any(|l| l.contains(needle)),
            "{needle}\n{lines:#?}"
        )
    };
    expect("com.acme/e/jsonschema/1-0-1: Error: 1-0-1 is an ADDITION to 1-0-0 but adds required property `b` at /");
    expect("com.acme/e/jsonschema/1-0-1: Error: 1-0-1 is an ADDITION to 1-0-0 but removes property `b` at /");
    expect("com.acme/e/jsonschema/1-0-1: Error: 1-0-1 is an ADDITION to 1-0-0 but tightens `maxLength` at /properties/a");
    expect("com.acme/e/jsonschema/1-0-3: Warning: 1-0-3 does not directly follow 1-0-1");
    expect("com.acme/other/jsonschema/1-0-0: Error: `self` block says iglu:com.acme/other/jsonschema/2-0-0 but the path says iglu:com.acme/other/jsonschema/1-0-0");
    expect("com.acme/bad/jsonschema/1-0-0: Error: not valid draft 4 at /type");
    assert_eq!(
        issues
            .iter()
            .filter(|i| i.severity == Severity::Warning)
            .count(),
        1
    );
}

/// Inlining a definition is no change; tightening inside one is; a tuple item narrowed is.
#[test]
fn evolution_follows_references_and_tuples() {
    let dir = tempfile::tempdir().unwrap();
    let with_def = json!({"type": "object", "properties": {
        "a": {"$ref": "#/definitions/text"},
        "pair": {"type": "array", "items": [{"type": "string"}, {"type": ["integer", "null"]}]}
    }, "definitions": {"text": {"type": "string", "maxLength": 10}}});
    put(dir.path(), "com.acme/r/jsonschema/1-0-0", with_def);
    let inlined = json!({"type": "object", "properties": {
        "a": {"type": "string", "maxLength": 10},
        "pair": {"type": "array", "items": [{"type": "string"}, {"type": ["integer", "null"]}]}
    }});
    put(dir.path(), "com.acme/r/jsonschema/1-0-1", inlined);
    let tightened = json!({"type": "object", "properties": {
        "a": {"$ref": "#/definitions/text"},
        "pair": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}]}
    }, "definitions": {"text": {"type": "string", "maxLength": 5}}});
    put(dir.path(), "com.acme/r/jsonschema/1-0-2", tightened);
    let messages: Vec<String> = lint_dir(dir.path())
        .into_iter()
        .map(|i| format!("{:?} {}", i.severity, i.message))
        .collect();
    assert_eq!(
        messages,
        [
            "Error 1-0-2 is an ADDITION to 1-0-1 but narrows `type` at /properties/pair/items/1 (no longer null)",
            "Error 1-0-2 is an ADDITION to 1-0-1 but tightens `maxLength` at /properties/a"
        ]
    );
}

/// A `format` nothing checks, keyword typos and later-draft keywords are warnings (the
/// schema stays valid draft 4; they validate nothing).
#[test]
fn unknown_formats_and_keyword_typos_are_warnings() {
    let dir = tempfile::tempdir().unwrap();
    put(
        dir.path(),
        "com.acme/t/jsonschema/1-0-0",
        json!({"type": "object", "properties": {
            "at": {"type": "string", "format": "datetime"},
            "name": {"type": "string", "maxlength": 10},
            "kind": {"const": "x"},
            "ok": {"type": "string", "format": "date-time", "x-pii": true, "examples": ["a"]}
        }, "requried": ["at"]}),
    );
    let issues = lint_dir(dir.path());
    assert!(
        issues.iter().all(|i| i.severity == Severity::Warning),
        "{issues:#?}"
    );
    let messages: Vec<&str> = issues.iter().map(|i| i.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "`const` at /properties/kind is a keyword of a later draft: draft-4 validation (the collector's) ignores it",
            "unknown `format: datetime` at /properties/at checks nothing (did you mean `date-time`?)",
            "unknown keyword `maxlength` at /properties/name is ignored (did you mean `maxLength`?)",
            "unknown keyword `requried` at / is ignored (did you mean `required`?)"
        ]
    );
}

/// Schema and vendor names that become one identifier are warnings naming what codegen
/// gives each.
#[test]
fn names_that_clash_once_made_identifiers_are_warnings() {
    let dir = tempfile::tempdir().unwrap();
    for rel in [
        "com.acme/add-to-cart/jsonschema/1-0-0",
        "com.acme/add_to_cart/jsonschema/1-0-0",
        "com-acme/ping/jsonschema/1-0-0",
    ] {
        put(dir.path(), rel, base());
    }
    let messages: Vec<String> = lint_dir(dir.path())
        .into_iter()
        .map(|i| format!("{:?} {}", i.severity, i.message))
        .collect();
    assert_eq!(
        messages,
        [
            "Warning schema name `add-to-cart` of `com.acme` becomes the Rust module `add_to_cart`, as another does: its module is `add_to_cart_2`, its type name is numbered too",
            "Warning vendor `com.acme` becomes the Rust module `com_acme`, as another vendor does: its module is `com_acme_2`",
            "Warning `com.acme/add_to_cart` becomes the TypeScript type `ComAcmeAddToCart`, as another schema does: its types are named `ComAcmeAddToCart2…`"
        ]
    );
}

#[test]
fn personal_data_marks_must_be_booleans_on_properties_and_spelled_exactly() {
    let dir = tempfile::tempdir().unwrap();
    put(
        dir.path(),
        "com.acme/ok/jsonschema/1-0-0",
        json!({"type": "object", "properties": {"email": {"type": "string", "x-pii": true}, "plan": {"type": "string", "x-pii": false}}}),
    );
    put(
        dir.path(),
        "com.acme/not_bool/jsonschema/1-0-0",
        json!({"type": "object", "properties": {"email": {"type": "string", "x-pii": "yes"}}}),
    );
    put(
        dir.path(),
        "com.acme/root/jsonschema/1-0-0",
        json!({"type": "object", "x-pii": true}),
    );
    put(
        dir.path(),
        "com.acme/misspelled/jsonschema/1-0-0",
        json!({"type": "object", "properties": {
            "a": {"type": "string", "x-PII": true},
            "b": {"type": "object", "properties": {"c": {"type": "string", "x_pii": true}}}
        }}),
    );
    let issues = lint_dir(dir.path());
    let errors: Vec<String> = issues
        .iter()
        .filter(|i| i.severity == Severity::Error)
        .map(ToString::to_string)
        .collect();
    let has = |file: &str, text: &str| errors.iter().any(|e| e.contains(file) && e.contains(text));
    assert!(
        has(
            "not_bool/",
            "/properties/email: \"x-pii\" must be true or false, not \"yes\""
        ),
        "{errors:#?}"
    );
    assert!(
        has("root/", "\"x-pii\" on the schema itself"),
        "{errors:#?}"
    );
    assert!(
        has(
            "misspelled/",
            "`x-PII` at /properties/a is not the personal-data mark"
        ),
        "{errors:#?}"
    );
    assert!(
        has(
            "misspelled/",
            "`x_pii` at /properties/b/properties/c is not the personal-data mark"
        ),
        "{errors:#?}"
    );
    assert_eq!(errors.len(), 4, "{errors:#?}");
    // A property named x_pii (a consent flag) and an enum value holding such a key are not
    // marks, misspelled or not.
    let clean = tempfile::tempdir().unwrap();
    put(
        clean.path(),
        "com.acme/consent/jsonschema/1-0-0",
        json!({"type": "object", "properties": {"x_pii": {"type": "boolean"}, "e": {"enum": [{"X-PII": 1}]}}}),
    );
    let issues = lint_dir(clean.path());
    assert!(issues.is_empty(), "{issues:#?}");
    assert!(
        !issues
            .iter()
            .any(|i| i.path.to_string_lossy().contains("/ok/")),
        "{issues:#?}"
    );
}
