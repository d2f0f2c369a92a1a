//! SchemaVer: what an ADDITION may not do to the version before it (the comparison of two
//! versions of one schema, following in-document `$ref`s on both sides), and skipped
//! version numbers.

use std::collections::BTreeMap;

use eventwire_schema::iglu::SchemaKey;
use serde_json::{Map, Value};

use super::{Issue, Severity};
use crate::normalize::json_type;
use crate::registry::SchemaFile;

pub(super) fn check_evolution(schemas: &[SchemaFile]) -> Vec<Issue> {
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
            Compare::new(&old.schema, &new.schema).run(&mut found);
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

/// The comparison of two versions of one schema, each resolving its own in-document
/// `$ref`s.
struct Compare<'a> {
    old_doc: &'a Value,
    new_doc: &'a Value,
    /// Pairs of reference targets already compared (recursive schemas end there).
    seen: std::collections::BTreeSet<(String, String)>,
}

impl<'a> Compare<'a> {
    fn new(old_doc: &'a Value, new_doc: &'a Value) -> Self {
        Compare {
            old_doc,
            new_doc,
            seen: std::collections::BTreeSet::new(),
        }
    }

    fn run(&mut self, out: &mut Vec<String>) {
        self.compare(self.old_doc, self.new_doc, "", out);
    }

    /// Appends every way `new` accepts less than `old`, at JSON path `path`.
    fn compare(&mut self, old: &'a Value, new: &'a Value, path: &str, out: &mut Vec<String>) {
        let (old, old_target) = resolve(self.old_doc, old);
        let (new, new_target) = resolve(self.new_doc, new);
        // Recursion needs a reference on both sides (an inlined side is finite), so only a
        // pair of references already compared ends the walk.
        if let (Some(o), Some(n)) = (old_target, new_target) {
            if !self.seen.insert((o, n)) {
                return;
            }
        }
        compare_here(old, new, path, out);
        let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
            return;
        };
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        let props = |s: &'a Map<String, Value>, key: &str| -> &'a Map<String, Value> {
            s.get(key)
                .and_then(Value::as_object)
                .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
        };
        for (name, old_schema) in props(old, "properties") {
            let child = format!("{path}/properties/{}", escape(name));
            match props(new, "properties").get(name) {
                None => out.push(format!("removes property `{name}` at {}", at(path))),
                Some(new_schema) => self.compare(old_schema, new_schema, &child, out),
            }
        }
        for (pattern, old_schema) in props(old, "patternProperties") {
            if let Some(new_schema) = props(new, "patternProperties").get(pattern) {
                let child = format!("{path}/patternProperties/{}", escape(pattern));
                self.compare(old_schema, new_schema, &child, out);
            }
        }
        if let (Some(o @ Value::Object(_)), Some(n @ Value::Object(_))) = (
            old.get("additionalProperties"),
            new.get("additionalProperties"),
        ) {
            self.compare(o, n, &format!("{path}/additionalProperties"), out);
        }
        // Combinators, branch by branch when both sides have the same number of branches.
        for key in ["allOf", "anyOf", "oneOf"] {
            if let (Some(Value::Array(o)), Some(Value::Array(n))) = (old.get(key), new.get(key)) {
                if o.len() == n.len() {
                    for (i, (o, n)) in o.iter().zip(n).enumerate() {
                        self.compare(o, n, &format!("{path}/{key}/{i}"), out);
                    }
                }
            }
        }
        // `items`: a schema for every item, or a tuple (a schema per position, then
        // `additionalItems`); each position is compared with what applies to it.
        let item = |s: &'a Map<String, Value>, i: usize| -> Option<&'a Value> {
            match s.get("items")? {
                Value::Array(tuple) => tuple
                    .get(i)
                    .or_else(|| s.get("additionalItems").filter(|a| a.is_object())),
                one @ Value::Object(_) => Some(one),
                _ => None,
            }
        };
        let positions = [old, new]
            .iter()
            .filter_map(|s| s.get("items").and_then(Value::as_array).map(Vec::len))
            .max();
        match positions {
            None => {
                if let (Some(o), Some(n)) = (item(old, 0), item(new, 0)) {
                    self.compare(o, n, &format!("{path}/items"), out);
                }
            }
            Some(n_positions) => {
                for i in 0..=n_positions {
                    if let (Some(o), Some(n)) = (item(old, i), item(new, i)) {
                        self.compare(o, n, &format!("{path}/items/{i}"), out);
                    }
                }
            }
        }
    }
}

/// `schema`, or the target of its in-document `$ref` (followed up to 16 times), with the
/// target's pointer when a reference was followed.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> (&'a Value, Option<String>) {
    let mut current = schema;
    let mut target = None;
    for _ in 0..16 {
        let Some(r) = current.get("$ref").and_then(Value::as_str) else {
            break;
        };
        let Some(pointer) = crate::refs::pointer_of(r) else {
            break;
        };
        match document.pointer(&pointer) {
            Some(next) => {
                current = next;
                target = Some(pointer);
            }
            None => break,
        }
    }
    (current, target)
}

fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

fn at(p: &str) -> String {
    if p.is_empty() {
        "/".to_owned()
    } else {
        p.to_owned()
    }
}

/// The keywords of one schema object (not its subschemas): every way `new` accepts less.
fn compare_here(old: &Value, new: &Value, path: &str, out: &mut Vec<String>) {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return;
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
    if new.get("additionalItems") == Some(&Value::Bool(false))
        && old.get("additionalItems") != Some(&Value::Bool(false))
    {
        out.push(format!(
            "tightens `additionalItems` at {} (now false)",
            at(path)
        ));
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(old: Value, new: Value) -> Vec<String> {
        let mut out = Vec::new();
        Compare::new(&old, &new).run(&mut out);
        out
    }

    #[test]
    fn references_are_followed_on_both_sides() {
        let with_def = json!({"type": "object", "properties": {"a": {"$ref": "#/definitions/d"}},
            "definitions": {"d": {"type": "string", "maxLength": 10}}});
        let inlined =
            json!({"type": "object", "properties": {"a": {"type": "string", "maxLength": 10}}});
        assert_eq!(
            problems(with_def.clone(), inlined.clone()),
            Vec::<String>::new()
        );
        assert_eq!(problems(inlined, with_def.clone()), Vec::<String>::new());
        let tighter = json!({"type": "object", "properties": {"a": {"$ref": "#/definitions/d"}},
            "definitions": {"d": {"type": "string", "maxLength": 5}}});
        assert_eq!(
            problems(with_def, tighter),
            ["tightens `maxLength` at /properties/a"]
        );
        // Recursion ends.
        let tree = json!({"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}}});
        assert_eq!(problems(tree.clone(), tree), Vec::<String>::new());
        // One definition used twice, inlined twice with one use tightened: found.
        let shared = json!({"type": "object", "properties": {"a": {"$ref": "#/definitions/d"}, "b": {"$ref": "#/definitions/d"}},
            "definitions": {"d": {"type": "string", "maxLength": 10}}});
        let inlined = json!({"type": "object", "properties": {"a": {"type": "string", "maxLength": 10}, "b": {"type": "string", "maxLength": 5}}});
        assert_eq!(
            problems(shared, inlined),
            ["tightens `maxLength` at /properties/b"]
        );
        // Through a combinator.
        let all_of = |n: u64| json!({"allOf": [{"$ref": "#/definitions/d"}], "definitions": {"d": {"type": "string", "maxLength": n}}});
        assert_eq!(
            problems(all_of(10), all_of(5)),
            ["tightens `maxLength` at /allOf/0"]
        );
    }

    #[test]
    fn tuple_items_are_compared_by_position() {
        let old =
            json!({"type": "array", "items": [{"type": "string"}, {"type": ["integer", "null"]}]});
        let narrowed = json!({"type": "array", "items": [{"type": "string"}, {"type": "integer"}]});
        assert_eq!(
            problems(old.clone(), narrowed),
            ["narrows `type` at /items/1 (no longer null)"]
        );
        let one = json!({"type": "array", "items": {"type": "string", "maxLength": 3}});
        assert_eq!(
            problems(old, one),
            [
                "tightens `maxLength` at /items/0",
                "narrows `type` at /items/1 (no longer integer, null)",
                "tightens `maxLength` at /items/1"
            ]
        );
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
