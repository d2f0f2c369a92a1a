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
