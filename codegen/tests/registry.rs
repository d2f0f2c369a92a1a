//! Loading registries: the project's own schemas, the public Iglu Central corpus, and broken
//! layouts (each problem reported with its path; good files still load).

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::path::{Path, PathBuf};

use eventwire_codegen::registry::{load_dir, LoadErrorKind};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn loads_the_whole_iglu_central_corpus() {
    let root = repo().join("../shared/corpora/iglu-central/schemas");
    assert!(root.is_dir(), "corpus missing at {}", root.display());
    let loaded = load_dir(&root);
    let errors: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    println!("iglu central: loaded {} schemas", loaded.schemas.len());
    assert_eq!(loaded.schemas.len(), 660);
    // Sorted, unique keys.
    assert!(loaded.schemas.windows(2).all(|w| w[0].key < w[1].key));
}

#[test]
fn loads_the_projects_own_schemas() {
    let loaded = load_dir(&repo().join("schemas"));
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let keys: Vec<String> = loaded.schemas.iter().map(|s| s.key.to_string()).collect();
    assert!(keys.contains(&"iglu:dev.eventwire/event/jsonschema/1-0-0".to_string()));
    assert!(keys.contains(&"iglu:dev.eventwire/batch/jsonschema/1-0-0".to_string()));
}

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn reports_each_broken_file_and_keeps_the_good_ones() {
    let dir = std::env::temp_dir().join(format!("eventwire-registry-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let good = r#"{"self":{"vendor":"com.acme","name":"ok","format":"jsonschema","version":"1-0-0"},"type":"object"}"#;
    write(&dir, "README.md", "ignored");
    write(&dir, "com.acme/ok/jsonschema/1-0-0", good);
    write(&dir, "com.acme/ok/jsonschema/1-0-1", good); // self says 1-0-0
    write(&dir, "com.acme/ok/jsonschema/1-0-x", good);
    write(&dir, "com.acme/ok/jsonschema/1-0-2.json", good);
    write(&dir, "com.acme/broken/jsonschema/1-0-0", "{not json");
    write(
        &dir,
        "com.acme/noself/jsonschema/1-0-0",
        r#"{"type":"object"}"#,
    );
    let loaded = load_dir(&dir);
    assert_eq!(loaded.schemas.len(), 1);
    assert_eq!(
        loaded.schemas[0].key.to_string(),
        "iglu:com.acme/ok/jsonschema/1-0-0"
    );
    let kinds: Vec<(String, &LoadErrorKind)> = loaded
        .errors
        .iter()
        .map(|e| {
            (
                e.path.strip_prefix(&dir).unwrap().display().to_string(),
                &e.kind,
            )
        })
        .collect();
    assert_eq!(kinds.len(), 5, "{kinds:#?}");
    assert!(
        matches!(kinds[0], (ref p, LoadErrorKind::Json(_)) if p == "com.acme/broken/jsonschema/1-0-0")
    );
    assert!(
        matches!(kinds[1], (ref p, LoadErrorKind::NoSelf) if p == "com.acme/noself/jsonschema/1-0-0")
    );
    assert!(
        matches!(kinds[2], (ref p, LoadErrorKind::SelfMismatch { .. }) if p == "com.acme/ok/jsonschema/1-0-1")
    );
    assert!(matches!(kinds[3], (_, LoadErrorKind::Layout(_))));
    assert!(matches!(kinds[4], (_, LoadErrorKind::Layout(_))));
    let message = loaded.errors[2].to_string();
    assert!(message.contains("self` block says iglu:com.acme/ok/jsonschema/1-0-0 but the path says iglu:com.acme/ok/jsonschema/1-0-1"), "{message}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A schema codegen cannot turn into types is an error naming it; the rest of the registry
/// is still generated (and `compile` writes it, then fails the build naming the schema).
#[test]
fn one_schema_codegen_cannot_take_leaves_the_rest_generated() {
    let dir = tempfile::tempdir().unwrap();
    let head = |name: &str| {
        format!(
            r#""$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#", "self": {{"vendor": "com.acme", "name": "{name}", "format": "jsonschema", "version": "1-0-0"}}"#
        )
    };
    write(
        dir.path(),
        "com.acme/good/jsonschema/1-0-0",
        &format!(
            r#"{{{}, "type": "object", "properties": {{"a": {{"type": "string"}}}}}}"#,
            head("good")
        ),
    );
    // A default of the wrong type is valid draft 4 (defaults are not validated): typify
    // refuses it, so the type is generated without the defaults, noted as a loosening.
    write(
        dir.path(),
        "com.acme/odd_default/jsonschema/1-0-0",
        &format!(
            r#"{{{}, "type": "object", "properties": {{"n": {{"type": "integer", "default": "seven"}}}}}}"#,
            head("odd_default")
        ),
    );
    // A union with itself: no type can be made of it.
    write(
        dir.path(),
        "com.acme/endless/jsonschema/1-0-0",
        &format!(
            r##"{{{}, "anyOf": [{{"type": "string"}}, {{"$ref": "#"}}]}}"##,
            head("endless")
        ),
    );
    let builder = eventwire_codegen::Builder::new()
        .schemas(dir.path())
        .rerun_if_changed(false);
    let out = builder.generate().unwrap();
    assert_eq!(out.types, 2);
    let skipped: Vec<String> = out.skipped.iter().map(ToString::to_string).collect();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(
        skipped[0].starts_with("iglu:com.acme/endless/jsonschema/1-0-0"),
        "{skipped:?}"
    );
    assert!(out.code.contains("pub struct Good"));
    assert!(out.code.contains("pub struct OddDefault"));
    assert!(
        out.loosened
            .iter()
            .any(|(k, l)| k.name == "odd_default" && l.what.contains("`default` does not conform")),
        "{:?}",
        out.loosened
    );
    let file = dir.path().join("out.rs");
    let err = builder.clone().out_file(&file).compile().unwrap_err();
    assert!(err.to_string().contains("endless"), "{err}");
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains("pub struct Good"));
}

/// A `$ref` that leads back to itself before any part of the value is checked (a cycle of
/// references, or a union with itself): validation would never end, so codegen refuses the
/// schema naming it (the rest is generated) and lint reports it as an error.
#[test]
fn left_recursive_references_are_refused_by_codegen_and_lint() {
    let dir = tempfile::tempdir().unwrap();
    let schema = |name: &str, body: &str| {
        format!(
            r#"{{"$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#", "self": {{"vendor": "com.acme", "name": "{name}", "format": "jsonschema", "version": "1-0-0"}}, {body}}}"#
        )
    };
    write(
        dir.path(),
        "com.acme/cycle/jsonschema/1-0-0",
        &schema(
            "cycle",
            r##""type": "object", "properties": {"x": {"$ref": "#/definitions/a"}}, "definitions": {"a": {"$ref": "#/definitions/b"}, "b": {"$ref": "#/definitions/a"}}"##,
        ),
    );
    write(
        dir.path(),
        "com.acme/union/jsonschema/1-0-0",
        &schema("union", r##""anyOf": [{"type": "string"}, {"$ref": "#"}]"##),
    );
    write(
        dir.path(),
        "com.acme/tree/jsonschema/1-0-0",
        &schema(
            "tree",
            r##""type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}}"##,
        ),
    );
    let out = eventwire_codegen::Builder::new()
        .schemas(dir.path())
        .rerun_if_changed(false)
        .generate()
        .unwrap();
    let skipped: Vec<String> = out.skipped.iter().map(ToString::to_string).collect();
    assert_eq!(skipped.len(), 2, "{skipped:#?}");
    assert!(
        skipped.iter().all(|s| s.contains("would never end")),
        "{skipped:#?}"
    );
    assert_eq!(out.types, 1, "the tree (recursion through items) is fine");
    let lint = eventwire_codegen::lint::lint_dir(dir.path());
    let errors: Vec<String> = lint
        .iter()
        .filter(|i| i.severity == eventwire_codegen::lint::Severity::Error)
        .map(|i| i.message.clone())
        .collect();
    assert_eq!(errors.len(), 2, "{lint:#?}");
}

/// A legal schema nested deep (objects in objects, arrays in arrays) is generated, not a
/// stack overflow of a codegen worker (55 object levels overflowed the default 2 MiB stack
/// of a debug build).
#[test]
fn deeply_nested_schemas_are_generated() {
    let dir = tempfile::tempdir().unwrap();
    // Within serde_json's 128 levels of nesting (each object level is two: the schema and
    // its `properties`).
    let (mut objects, mut arrays) = (
        r#"{"type": "string"}"#.to_owned(),
        r#"{"type": "integer"}"#.to_owned(),
    );
    for _ in 0..60 {
        objects = format!(r#"{{"type": "object", "properties": {{"a": {objects}}}}}"#);
        arrays = format!(r#"{{"type": "array", "items": {arrays}}}"#);
    }
    for (name, deep) in [("objects", &objects), ("arrays", &arrays)] {
        write(
            dir.path(),
            &format!("com.acme/{name}/jsonschema/1-0-0"),
            &format!(
                r#"{{"$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#", "self": {{"vendor": "com.acme", "name": "{name}", "format": "jsonschema", "version": "1-0-0"}}, "type": "object", "properties": {{"deep": {deep}}}}}"#
            ),
        );
    }
    let out = eventwire_codegen::Builder::new()
        .schemas(dir.path())
        .rerun_if_changed(false)
        .generate()
        .unwrap();
    let skipped: Vec<String> = out.skipped.iter().map(ToString::to_string).collect();
    assert!(skipped.is_empty(), "{skipped:#?}");
    assert!(out.code.contains("pub struct Objects") && out.code.contains("pub struct Arrays"));
}
