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
