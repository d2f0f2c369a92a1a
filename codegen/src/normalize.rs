//! Normalisation: Iglu's draft-4 schemas into the draft-07 dialect typify reads through
//! schemars 0.8, without feeding it what makes it panic.
//!
//! Exact rewrites (same meaning): `$schema`, `self` and draft-4 `id` removed; boolean
//! `exclusiveMinimum`/`exclusiveMaximum` turned into draft-6 numbers; `const` into a
//! one-value `enum`; the `type` of a type-less `enum` inferred from its values.
//!
//! Loosenings (the generated type accepts more than the schema; each is recorded with its
//! JSON path and stated in the type's docs): a `format` without a `type`; an `enum` mixing
//! several non-null types; string enums whose values collide as Rust names; tuple `items`;
//! `$ref`s to other documents.

use serde_json::{Map, Value};

/// A constraint the generated type does not enforce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loosening {
    /// JSON pointer into the schema.
    pub path: String,
    /// What was relaxed.
    pub what: String,
    /// Whether the generated check still enforces it (only the Rust type is looser).
    pub checked: bool,
}

impl Loosening {
    /// The JSON pointer, `/` for the root.
    #[must_use]
    pub fn at(&self) -> &str {
        if self.path.is_empty() {
            "/"
        } else {
            &self.path
        }
    }
}

/// A schema ready for typify, and what was relaxed on the way.
#[derive(Debug, Clone)]
pub struct Normalized {
    /// The rewritten schema.
    pub schema: Value,
    /// Where the Rust type is looser than the schema (see [`Loosening::checked`]).
    pub loosened: Vec<Loosening>,
}

/// Normalises a self-describing schema document.
pub fn normalize(document: &Value) -> Normalized {
    let mut schema = document.clone();
    let mut loosened = Vec::new();
    crate::refs::hoist(&mut schema, &mut loosened);
    if let Some(o) = schema.as_object_mut() {
        o.remove("self");
    }
    walk(&mut schema, "", &mut loosened);
    Normalized { schema, loosened }
}

fn walk(schema: &mut Value, path: &str, loosened: &mut Vec<Loosening>) {
    let Some(o) = schema.as_object_mut() else {
        return;
    };
    o.remove("$schema");
    if o.get("id").is_some_and(Value::is_string) {
        o.remove("id");
    }
    // typify names types after `title` and merges two subschemas of one title into one type
    // without comparing them; names come from the schema's structure instead.
    o.remove("title");
    // typify implements `not` for a few shapes only (and panics on the others).
    if o.get("not").is_some_and(|n| {
        n.as_object()
            .is_none_or(|n| !(n.len() == 1 && n.contains_key("enum")))
    }) {
        o.remove("not");
        loosened.push(Loosening {
            path: path.to_owned(),
            what: "`not` is not expressed by the Rust type".into(),
            checked: true,
        });
    }
    for (flag, bound) in [
        ("exclusiveMinimum", "minimum"),
        ("exclusiveMaximum", "maximum"),
    ] {
        if let Some(Value::Bool(exclusive)) = o.get(flag).cloned() {
            o.remove(flag);
            if exclusive {
                if let Some(b) = o.remove(bound) {
                    o.insert(flag.into(), b);
                }
            }
        }
    }
    if let Some(c) = o.remove("const") {
        o.insert("enum".into(), Value::Array(vec![c]));
    }
    if let Some(r) = o.get("$ref").and_then(Value::as_str) {
        if !r.starts_with('#') {
            loosened.push(Loosening {
                path: path.to_owned(),
                what: format!("`$ref` to another document ({r}) accepts any JSON"),
                checked: false,
            });
            o.clear();
            return;
        }
    }
    if o.contains_key("format") && !o.contains_key("type") && !has_combinator(o) {
        let format = o.remove("format").unwrap_or_default();
        loosened.push(Loosening {
            path: path.to_owned(),
            what: format!("`format: {format}` without a `type` is an untyped JSON value"),
            checked: true,
        });
    }
    fix_enum(o, path, loosened);
    // `anyOf`/`oneOf` below a scalar `type` (`"type": "string", "anyOf": [{"format": …}, …]`):
    // typify would make objects of the branches; the field stays a plain scalar.
    let scalar = matches!(
        o.get("type").and_then(Value::as_str),
        Some("string" | "number" | "integer" | "boolean")
    );
    for key in ["anyOf", "oneOf"] {
        if scalar && o.contains_key(key) {
            o.remove(key);
            let t = o.get("type").and_then(Value::as_str).unwrap_or_default();
            loosened.push(Loosening {
                path: path.to_owned(),
                what: format!("`{key}` below `type: {t}` is a plain {t}"),
                checked: true,
            });
        }
    }
    if o.get("items").is_some_and(Value::is_array) {
        o.remove("items");
        o.remove("additionalItems");
        loosened.push(Loosening {
            path: path.to_owned(),
            what: "tuple `items` (a schema per position) are a list of JSON values".into(),
            checked: true,
        });
    }

    // An open object keeps the properties it does not name: typify captures them in a
    // flattened `extra` map only when `additionalProperties` is a schema, so an absent or
    // `true` one becomes `{}` (same meaning). A property named `extra` gets another field
    // name (`fields.rs` reserves `extra` for the map).
    let open = matches!(
        o.get("additionalProperties"),
        None | Some(Value::Bool(true))
    );
    let named = o
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| !p.is_empty());
    // typify ignores `patternProperties` beside `properties`: the patterned properties are
    // kept (as JSON values) in the map of the others.
    if named && o.contains_key("patternProperties") {
        o.remove("patternProperties");
        o.insert("additionalProperties".into(), Value::Object(Map::new()));
        loosened.push(Loosening {
            path: path.to_owned(),
            what: "`patternProperties` beside `properties` are kept as JSON values with the other properties".into(),
            checked: true,
        });
    }
    if open && !o.contains_key("patternProperties") && named {
        o.insert("additionalProperties".into(), Value::Object(Map::new()));
    }
    for key in ["properties", "patternProperties", "definitions"] {
        if let Some(Value::Object(children)) = o.get_mut(key) {
            for (name, child) in children.iter_mut() {
                walk(child, &format!("{path}/{key}/{}", escape(name)), loosened);
            }
        }
    }
    if let Some(Value::Object(deps)) = o.get_mut("dependencies") {
        for (name, child) in deps.iter_mut() {
            if child.is_object() {
                walk(
                    child,
                    &format!("{path}/dependencies/{}", escape(name)),
                    loosened,
                );
            }
        }
    }
    for key in ["items", "additionalProperties", "additionalItems", "not"] {
        if let Some(child) = o.get_mut(key) {
            walk(child, &format!("{path}/{key}"), loosened);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(children)) = o.get_mut(key) {
            for (i, child) in children.iter_mut().enumerate() {
                walk(child, &format!("{path}/{key}/{i}"), loosened);
            }
        }
    }
}

fn has_combinator(o: &Map<String, Value>) -> bool {
    ["allOf", "anyOf", "oneOf", "$ref", "enum"]
        .iter()
        .any(|k| o.contains_key(*k))
}

/// Gives a type-less `enum` the type of its values; loosens enums typify cannot name.
fn fix_enum(o: &mut Map<String, Value>, path: &str, loosened: &mut Vec<Loosening>) {
    let Some(Value::Array(values)) = o.get("enum").cloned() else {
        return;
    };
    let mut kinds: Vec<&'static str> = values.iter().map(json_type).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let non_null: Vec<&str> = kinds.iter().copied().filter(|k| *k != "null").collect();
    if !o.contains_key("type") {
        match non_null.as_slice() {
            [single] => {
                let t = if kinds.contains(&"null") {
                    Value::from(vec![*single, "null"])
                } else {
                    Value::from(*single)
                };
                o.insert("type".into(), t);
            }
            [] => {}
            _ => {
                o.remove("enum");
                loosened.push(Loosening {
                    path: path.to_owned(),
                    what: format!(
                        "an `enum` mixing {} values is an untyped JSON value",
                        non_null.join(", ")
                    ),
                    checked: true,
                });
                return;
            }
        }
    }
    // typify names string variants in UpperCamelCase; values that collide cannot be named.
    let mut names: Vec<String> = values
        .iter()
        .filter_map(Value::as_str)
        .map(heck::ToUpperCamelCase::to_upper_camel_case)
        .collect();
    let count = names.len();
    names.sort();
    names.dedup();
    let unnameable = names.len() != count || names.iter().any(|n| n.is_empty());
    if unnameable || non_null.len() > 1 {
        o.remove("enum");
        loosened.push(Loosening {
            path: path.to_owned(),
            what: "an `enum` whose values collide as Rust names is a plain value of its type"
                .into(),
            checked: true,
        });
    }
}

/// Rust only (TypeScript's `number` holds them): every `integer` of `schema` whose bounds
/// reach past `i64` gets a type that holds its values (see `fix_integer`).
pub fn widen_integers(schema: &mut Value, loosened: &mut Vec<Loosening>) {
    // Most documents have none: a read-only look first, the rewriting walk only then.
    fn any_past(v: &Value) -> bool {
        match v {
            Value::Number(n) => {
                (n.as_i64().is_none() && n.is_u64())
                    || n.as_f64().is_some_and(|f| f.abs() >= 9.2e18)
            }
            Value::Array(a) => a.iter().any(any_past),
            Value::Object(o) => o.values().any(any_past),
            _ => false,
        }
    }
    if !any_past(schema) {
        return;
    }
    if let Some(o) = schema.as_object_mut() {
        fix_integer(o, "", loosened);
    }
}

/// An `integer` whose bounds reach past `i64` (schema inference tools write
/// `"maximum": 9223372036854776000`): typify would make it an `i64` that cannot hold every
/// valid value. Non-negative and within `u64`: a `u64` (format `uint64`, exact). Otherwise
/// an untyped JSON number (a loosening; the check still enforces the type and bounds).
fn fix_integer(o: &mut Map<String, Value>, path: &str, loosened: &mut Vec<Loosening>) {
    crate::refs::each_child(o, path, &mut |child, at| {
        if let Some(child) = child.as_object_mut() {
            fix_integer(child, &at, loosened);
        }
    });
    let integer = match o.get("type") {
        Some(Value::String(t)) => t == "integer",
        Some(Value::Array(ts)) => {
            ts.iter().any(|t| t == "integer") && !ts.iter().any(|t| t == "number")
        }
        _ => false,
    };
    if !integer {
        return;
    }
    let bound = |k: &str| o.get(k).and_then(Value::as_number).cloned();
    let (min, max) = (
        bound("minimum").or_else(|| bound("exclusiveMinimum")),
        bound("maximum").or_else(|| bound("exclusiveMaximum")),
    );
    let past = |n: &serde_json::Number| {
        n.as_i64().is_none() && (n.is_u64() || n.as_f64().is_some_and(|f| f.abs() >= 9.2e18))
    };
    let beyond = |n: &Option<serde_json::Number>| n.as_ref().is_some_and(past);
    // An `enum`, `const` (now an `enum`) or `default` past i64 would be written as an `i64`
    // literal (a compile error) or read with a panic: the value stays untyped.
    let data = o
        .get("enum")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(o.get("default"))
        .filter_map(Value::as_number)
        .any(past);
    if data {
        for k in ["type", "enum", "default", "format"] {
            o.remove(k);
        }
        loosened.push(Loosening {
            path: path.to_owned(),
            what: "an `integer` whose `enum` or `default` reaches past 64 bits is an untyped JSON value".into(),
            checked: true,
        });
        return;
    }
    if !beyond(&min) && !beyond(&max) {
        return;
    }
    let unsigned = min
        .as_ref()
        .is_some_and(|n| n.as_f64().is_some_and(|f| f >= 0.0))
        && max.as_ref().is_none_or(|n| n.as_u64().is_some());
    if unsigned && !o.contains_key("multipleOf") {
        o.insert("format".into(), Value::from("uint64"));
        return;
    }
    for k in [
        "type",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "format",
    ] {
        o.remove(k);
    }
    loosened.push(Loosening {
        path: path.to_owned(),
        what: "an `integer` whose bounds reach past 64 bits is an untyped JSON number".into(),
        checked: true,
    });
}

/// The JSON Schema type name of a value (`integer` for whole numbers).
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exact_rewrites() {
        let doc = json!({
            "$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
            "self": {"vendor": "a", "name": "b", "format": "jsonschema", "version": "1-0-0"},
            "id": "http://example.com/x",
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "n": {"type": "number", "minimum": 0, "exclusiveMinimum": true, "maximum": 5, "exclusiveMaximum": false},
                "k": {"const": "fixed"},
                "e": {"enum": ["a", "b", null]}
            }
        });
        let n = normalize(&doc);
        assert!(n.loosened.is_empty(), "{:?}", n.loosened);
        assert_eq!(
            n.schema,
            json!({
                "type": "object",
                "additionalProperties": {},
                "properties": {
                    "id": {"type": "string"},
                    "n": {"type": "number", "exclusiveMinimum": 0, "maximum": 5},
                    "k": {"enum": ["fixed"], "type": "string"},
                    "e": {"enum": ["a", "b", null], "type": ["string", "null"]}
                }
            })
        );
    }

    #[test]
    fn loosenings_are_recorded_with_paths() {
        let doc = json!({
            "type": "object",
            "properties": {
                "u": {"format": "uuid"},
                "m": {"enum": [1, "one"]},
                "c": {"type": "string", "enum": ["UNKNOWN", "Unknown"]},
                "t": {"type": "array", "items": [{"type": "string"}]},
                "r": {"$ref": "http://example.com/other#"}
            }
        });
        let n = normalize(&doc);
        let paths: Vec<&str> = n.loosened.iter().map(|l| l.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/properties/c",
                "/properties/m",
                "/properties/r",
                "/properties/t",
                "/properties/u"
            ]
        );
        assert_eq!(n.schema["properties"]["r"], json!({}));
        assert_eq!(n.schema["properties"]["u"], json!({}));
    }
}
