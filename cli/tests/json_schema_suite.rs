//! The official JSON Schema Test Suite, draft 4, through `eventwire validate`: each test
//! group's schema becomes an Iglu schema in a scratch registry, each test's instance a line
//! `{"schema": …, "data": …}`, and the command's verdict on every line must be the suite's.
//!
//! `scripts/test.sh` fetches the suite (the copy inside PyPI's `jsonschema` 4.23.0 source
//! distribution) into `target/json-schema-test-suite/draft4`; `EVENTWIRE_JSON_SCHEMA_SUITE`
//! points elsewhere.
//!
//! Left out, with the reason: `refRemote.json` (references to other documents over HTTP —
//! Iglu schemas are self-contained, and the collector never fetches a `$ref`).

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

const LEFT_OUT: &[&str] = &["refRemote.json"];

fn suite() -> PathBuf {
    let dir = std::env::var_os("EVENTWIRE_JSON_SCHEMA_SUITE").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/json-schema-test-suite/draft4"),
        PathBuf::from,
    );
    assert!(
        dir.join("type.json").exists(),
        "the JSON Schema Test Suite is not at {} (scripts/test.sh fetches it)",
        dir.display()
    );
    dir
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

#[test]
fn the_official_draft_4_suite_agrees_through_eventwire_validate() {
    let root = suite();
    let mut all = Vec::new();
    files(&root, &mut all);
    all.sort();
    let scratch = tempfile::tempdir().unwrap();
    let registry = scratch.path().join("schemas");
    let mut lines = Vec::new();
    // (file, description, expected valid, optional)
    let mut cases: Vec<(String, String, bool, bool)> = Vec::new();
    for path in &all {
        let rel = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if LEFT_OUT.contains(&rel.as_str()) {
            continue;
        }
        let optional = rel.starts_with("optional");
        let groups: Vec<Value> = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        for (g, group) in groups.iter().enumerate() {
            let stem: String = rel
                .trim_end_matches(".json")
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            let name = format!("{stem}_{g}");
            let mut schema = group["schema"].clone();
            let object = schema.as_object_mut().expect("draft-4 schemas are objects");
            object.insert(
                "self".into(),
                json!({ "vendor": "org.json-schema.suite", "name": name, "format": "jsonschema", "version": "1-0-0" }),
            );
            let dir = registry
                .join("org.json-schema.suite")
                .join(&name)
                .join("jsonschema");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("1-0-0"), schema.to_string()).unwrap();
            for test in group["tests"].as_array().unwrap() {
                lines.push(
                    json!({
                        "schema": format!("iglu:org.json-schema.suite/{name}/jsonschema/1-0-0"),
                        "data": test["data"],
                    })
                    .to_string(),
                );
                cases.push((
                    rel.clone(),
                    format!("{} / {}", group["description"], test["description"]),
                    test["valid"].as_bool().unwrap(),
                    optional,
                ));
            }
        }
    }
    let events = scratch.path().join("events.jsonl");
    std::fs::write(&events, lines.join("\n") + "\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_eventwire"))
        .args(["validate", "--schemas"])
        .arg(&registry)
        .arg(&events)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let invalid: std::collections::HashSet<usize> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("line ")?.split(':').next()?.parse().ok())
        .collect();
    let mut disagree = Vec::new();
    let (mut required, mut optional) = ((0, 0), (0, 0));
    for (i, (file, what, valid, is_optional)) in cases.iter().enumerate() {
        let said_valid = !invalid.contains(&(i + 1));
        let tally = if *is_optional {
            &mut optional
        } else {
            &mut required
        };
        tally.1 += 1;
        if said_valid == *valid {
            tally.0 += 1;
        } else {
            disagree.push(format!("{file}: {what}: suite says valid={valid}"));
        }
    }
    println!(
        "JSON Schema Test Suite, draft 4, through `eventwire validate`: {} of {} cases agree, optional {} of {}",
        required.0, required.1, optional.0, optional.1
    );
    assert!(required.1 > 500, "only {} cases found", required.1);
    assert!(
        disagree.is_empty(),
        "{} disagreements:\n{}",
        disagree.len(),
        disagree.join("\n")
    );
}
