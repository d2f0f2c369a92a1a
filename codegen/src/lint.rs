//! `eventwire lint`: checks a schema directory before it ships.
//!
//! - **Layout**: every file is `<vendor>/<name>/<format>/<M-R-A>` and its `self` block says
//!   the same.
//! - **Draft 4**: the document (minus `$schema` and `self`) is a valid draft-4 schema (checked
//!   against the draft-4 meta-schema) and compiles (e.g. its patterns are valid regexes).
//! - **SchemaVer**: between a version and the next ADDITION of the same MODEL-REVISION
//!   (`1-0-0` → `1-0-1`), which must accept all data the earlier one accepted, none of:
//!   a new required property; a removed property; a narrowed `type`; a tightened constraint
//!   (`minimum`, `maximum`, `exclusiveMinimum`/`exclusiveMaximum`, `minLength`, `maxLength`,
//!   `minItems`, `maxItems`, `minProperties`, `maxProperties`, `multipleOf`, `pattern`,
//!   `format`, `enum` values removed, `additionalProperties` closed, `uniqueItems` added).
//!   Checked recursively through `properties` and `items`. Skipped version numbers are
//!   reported as warnings. REVISION and MODEL changes may break data by definition and are
//!   not checked.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use eventwire::iglu::SchemaKey;
use serde_json::{Map, Value};

use crate::normalize::json_type;
use crate::registry::{load_dir, SchemaFile};

/// How serious an issue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Fails the lint (exit status 1).
    Error,
    /// Reported, does not fail.
    Warning,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// The file concerned.
    pub path: PathBuf,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, with the JSON path when there is one.
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}: {level}: {}", self.path.display(), self.message)
    }
}

/// Lints every schema under `dir`.
pub fn lint_dir(dir: &Path) -> Vec<Issue> {
    let loaded = load_dir(dir);
    let mut issues: Vec<Issue> = loaded
        .errors
        .iter()
        .map(|e| Issue {
            path: e.path.clone(),
            severity: Severity::Error,
            message: e.kind.to_string(),
        })
        .collect();
    for file in &loaded.schemas {
        issues.extend(check_draft4(file));
    }
    issues.extend(check_evolution(&loaded.schemas));
    issues
        .sort_by(|a, b| (&a.path, a.severity, &a.message).cmp(&(&b.path, b.severity, &b.message)));
    issues
}

fn check_draft4(file: &SchemaFile) -> Vec<Issue> {
    let mut document = file.schema.clone();
    if let Some(o) = document.as_object_mut() {
        o.remove("$schema");
        o.remove("self");
    }
    let error = |message: String| Issue {
        path: file.path.clone(),
        severity: Severity::Error,
        message,
    };
    let meta = jsonschema::draft4::meta::validator();
    let mut issues: Vec<Issue> = meta
        .iter_errors(&document)
        .map(|e| {
            error(format!(
                "not valid draft 4 at {}: {e}",
                pointer(&e.instance_path().to_string())
            ))
        })
        .collect();
    if issues.is_empty() {
        if let Err(e) = jsonschema::draft4::new(&document) {
            if matches!(
                e.kind(),
                jsonschema::error::ValidationErrorKind::Referencing(_)
            ) {
                issues.push(Issue {
                    path: file.path.clone(),
                    severity: Severity::Warning,
                    message: format!("refers to another document, not checked here: {e}"),
                });
            } else {
                issues.push(error(format!("schema does not compile as draft 4: {e}")));
            }
        }
    }
    issues
}

fn pointer(p: &str) -> &str {
    if p.is_empty() {
        "/"
    } else {
        p
    }
}

fn check_evolution(schemas: &[SchemaFile]) -> Vec<Issue> {
    let mut families: BTreeMap<(&str, &str, &str), Vec<&SchemaFile>> = BTreeMap::new();
    for s in schemas {
        families
            .entry((&s.key.vendor, &s.key.name, &s.key.format))
            .or_default()
            .push(s);
    }
    let mut issues = Vec::new();
    for versions in families.values_mut() {
        versions.sort_by_key(|s| s.key.version);
        for pair in versions.windows(2) {
            let (old, new) = (pair[0], pair[1]);
            let (a, b) = (old.key.version, new.key.version);
            if a.model != b.model {
                if b.model != a.model + 1 || b.revision != 0 || b.addition != 0 {
                    issues.push(skipped(new, &old.key));
                }
                continue;
            }
            if a.revision != b.revision {
                if b.revision != a.revision + 1 || b.addition != 0 {
                    issues.push(skipped(new, &old.key));
                }
                continue;
            }
            if b.addition != a.addition + 1 {
                issues.push(skipped(new, &old.key));
            }
            let mut found = Vec::new();
            compare(&old.schema, &new.schema, "", &mut found);
            issues.extend(found.into_iter().map(|m| Issue {
                path: new.path.clone(),
                severity: Severity::Error,
                message: format!(
                    "{} is an ADDITION to {} but {m}",
                    new.key.version, old.key.version
                ),
            }));
        }
    }
    issues
}

fn skipped(new: &SchemaFile, old: &SchemaKey) -> Issue {
    Issue {
        path: new.path.clone(),
        severity: Severity::Warning,
        message: format!(
            "{} does not directly follow {}",
            new.key.version, old.version
        ),
    }
}

/// The types a schema admits: its `type`, or, without one, the types of its `enum` values.
fn types(schema: &Map<String, Value>) -> Option<Vec<String>> {
    match schema.get("type") {
        Some(Value::String(t)) => Some(vec![t.clone()]),
        Some(Value::Array(ts)) => Some(
            ts.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        ),
        _ => {
            let values = schema.get("enum")?.as_array()?;
            let mut kinds: Vec<String> = values.iter().map(|v| json_type(v).to_owned()).collect();
            kinds.sort();
            kinds.dedup();
            Some(kinds)
        }
    }
}

/// Appends every way `new` accepts less than `old`, at JSON path `path`.
fn compare(old: &Value, new: &Value, path: &str, out: &mut Vec<String>) {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return;
    };
    let at = |p: &str| {
        if p.is_empty() {
            "/".to_owned()
        } else {
            p.to_owned()
        }
    };

    // type
    match (types(old), types(new)) {
        (None, Some(t)) => out.push(format!(
            "narrows `type` at {} (now {})",
            at(path),
            t.join(", ")
        )),
        (Some(o), Some(n)) => {
            let lost: Vec<&String> = o
                .iter()
                // `integer` is still admitted by `number`.
                .filter(|t| {
                    !(n.contains(t) || (t.as_str() == "integer" && n.iter().any(|x| x == "number")))
                })
                .collect();
            if !lost.is_empty() {
                out.push(format!(
                    "narrows `type` at {} (no longer {})",
                    at(path),
                    lost.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        _ => {}
    }

    // numeric and size bounds: (keyword, true when a larger value is tighter)
    for (keyword, larger_is_tighter) in [
        ("minimum", true),
        ("exclusiveMinimum", true),
        ("minLength", true),
        ("minItems", true),
        ("minProperties", true),
        ("maximum", false),
        ("exclusiveMaximum", false),
        ("maxLength", false),
        ("maxItems", false),
        ("maxProperties", false),
    ] {
        let (o, n) = (old.get(keyword), new.get(keyword));
        let tighter = match (o.and_then(Value::as_f64), n.and_then(Value::as_f64)) {
            (None, Some(_)) => n.is_some_and(|v| !v.is_boolean()),
            (Some(a), Some(b)) => (larger_is_tighter && b > a) || (!larger_is_tighter && b < a),
            _ => false,
        } || (matches!(o, None | Some(Value::Bool(false)))
            && n == Some(&Value::Bool(true)));
        if tighter {
            out.push(format!("tightens `{keyword}` at {}", at(path)));
        }
    }
    for keyword in ["pattern", "format", "multipleOf"] {
        if new.get(keyword).is_some() && old.get(keyword) != new.get(keyword) {
            out.push(format!("tightens `{keyword}` at {}", at(path)));
        }
    }
    if new.get("uniqueItems") == Some(&Value::Bool(true))
        && old.get("uniqueItems") != Some(&Value::Bool(true))
    {
        out.push(format!("tightens `uniqueItems` at {}", at(path)));
    }
    match (
        old.get("enum").and_then(Value::as_array),
        new.get("enum").and_then(Value::as_array),
    ) {
        (None, Some(_)) => out.push(format!("tightens `enum` at {} (added)", at(path))),
        (Some(o), Some(n)) => {
            let lost: Vec<String> = o
                .iter()
                .filter(|v| !n.contains(v))
                .map(Value::to_string)
                .collect();
            if !lost.is_empty() {
                out.push(format!(
                    "tightens `enum` at {} (removed {})",
                    at(path),
                    lost.join(", ")
                ));
            }
        }
        _ => {}
    }
    let closed =
        |s: &Map<String, Value>| s.get("additionalProperties") == Some(&Value::Bool(false));
    if closed(new) && !closed(old) {
        out.push(format!(
            "tightens `additionalProperties` at {} (now false)",
            at(path)
        ));
    }

    // required
    let required = |s: &Map<String, Value>| -> Vec<String> {
        s.get("required")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let old_required = required(old);
    for r in required(new) {
        if !old_required.contains(&r) {
            out.push(format!("adds required property `{r}` at {}", at(path)));
        }
    }

    // properties
    let props = |s: &'_ Map<String, Value>| {
        s.get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (old_props, new_props) = (props(old), props(new));
    for (name, old_schema) in &old_props {
        let child = format!("{path}/properties/{name}");
        match new_props.get(name) {
            None => out.push(format!("removes property `{name}` at {}", at(path))),
            Some(new_schema) => compare(old_schema, new_schema, &child, out),
        }
    }
    if let (Some(o), Some(n)) = (old.get("items"), new.get("items")) {
        compare(o, n, &format!("{path}/items"), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(old: Value, new: Value) -> Vec<String> {
        let mut out = Vec::new();
        compare(&old, &new, "", &mut out);
        out
    }

    #[test]
    fn a_compatible_addition_passes() {
        let old = json!({"type": "object", "properties": {"a": {"type": "string", "maxLength": 10}}, "required": ["a"]});
        let new = json!({"type": "object", "properties": {"a": {"type": ["string", "null"], "maxLength": 20}, "b": {"type": "integer"}}, "required": ["a"]});
        assert_eq!(problems(old, new), Vec::<String>::new());
    }

    #[test]
    fn typing_an_enum_by_its_values_is_not_a_narrowing() {
        let old = json!({"enum": ["a", "b", null]});
        let new = json!({"type": ["string", "null"], "enum": ["a", "b", null]});
        assert_eq!(problems(old, new), Vec::<String>::new());
    }

    #[test]
    fn each_kind_of_breaking_change_is_found() {
        let base = json!({"type": "object", "additionalProperties": true, "required": ["a"], "properties": {
            "a": {"type": ["string", "null"], "maxLength": 10},
            "n": {"type": "number", "minimum": 0},
            "e": {"enum": ["x", "y"]},
            "list": {"type": "array", "items": {"type": "object", "properties": {"k": {"type": "integer"}}}}
        }});
        let cases: &[(&str, Value)] = &[
            (
                "adds required property `n` at /",
                json!({"required": ["a", "n"]}),
            ),
            (
                "removes property `e` at /",
                json!({"properties": {"e": null}}),
            ),
            (
                "narrows `type` at /properties/a (no longer null)",
                json!({"properties": {"a": {"type": "string", "maxLength": 10}}}),
            ),
            (
                "tightens `maxLength` at /properties/a",
                json!({"properties": {"a": {"type": ["string", "null"], "maxLength": 5}}}),
            ),
            (
                "tightens `minimum` at /properties/n",
                json!({"properties": {"n": {"type": "number", "minimum": 1}}}),
            ),
            (
                "tightens `enum` at /properties/e (removed \"y\")",
                json!({"properties": {"e": {"enum": ["x"]}}}),
            ),
            (
                "tightens `additionalProperties` at / (now false)",
                json!({"additionalProperties": false}),
            ),
            (
                "narrows `type` at /properties/list/items/properties/k (no longer integer)",
                json!({"properties": {"list": {"type": "array", "items": {"type": "object", "properties": {"k": {"type": "string"}}}}}}),
            ),
            (
                "tightens `pattern` at /properties/a",
                json!({"properties": {"a": {"type": ["string", "null"], "maxLength": 10, "pattern": "^x"}}}),
            ),
        ];
        for (expected, patch) in cases {
            let mut new = base.clone();
            merge(&mut new, patch);
            let found = problems(base.clone(), new);
            assert!(
                found.iter().any(|f| f == expected),
                "{expected}: found {found:?}"
            );
        }
    }

    fn merge(target: &mut Value, patch: &Value) {
        match (target, patch) {
            (Value::Object(t), Value::Object(p)) => {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else if v.is_object()
                        && t.get(k).is_some_and(Value::is_object)
                        && k != "items"
                        && k != "properties"
                    {
                        merge(t.get_mut(k).unwrap_or(&mut Value::Null), v);
                    } else if k == "properties" {
                        let entry = t.entry(k.clone()).or_insert(json!({}));
                        merge(entry, v);
                    } else {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
            (t, p) => *t = p.clone(),
        }
    }
}
