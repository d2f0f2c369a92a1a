//! In-document `$ref`s made plain for typify and the TypeScript writer.
//!
//! After [`hoist`], every `$ref` of a schema points to `#/definitions/<key>`, where `<key>` is
//! made of ASCII letters, digits, `_` and `-`, and no two keys (nor a key and the schema's
//! own name) become the same type name. The other in-document pointers are copied into
//! `definitions` under a key named after the pointer's last segment: the root (`"#"`, a
//! recursive tree), a property (`#/properties/billing`, reused by `shipping`), an item, a
//! pointer into a definition, and escaped (`~0`, `~1`) or percent-encoded ones. Pointers that
//! resolve to nothing are removed and recorded as loosenings (the value is not checked
//! there). References to other documents are left to `normalize`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::names::rust_type;
use crate::normalize::Loosening;

/// Rewrites the in-document `$ref`s of `document` (a whole schema document) as described in
/// the module docs.
pub(crate) fn hoist(document: &mut Value, loosened: &mut Vec<Loosening>) {
    let Some(root) = document.as_object() else {
        return;
    };
    let mut refs = Vec::new();
    each_ref(document, &mut refs);
    // Keys: plain definition keys stay (the first of those that become one type name);
    // everything else gets a fresh key on first use.
    let mut taken: BTreeSet<String> = BTreeSet::new();
    if let Some(name) = document.pointer("/self/name").and_then(Value::as_str) {
        taken.insert(rust_type(name));
    }
    let defs = root.get("definitions").and_then(Value::as_object);
    let kept: BTreeSet<&String> = defs
        .into_iter()
        .flatten()
        .filter(|(k, _)| plain(k) && taken.insert(rust_type(k)))
        .map(|(k, _)| k)
        .collect();
    let resolved_as_is = refs.iter().all(|r| {
        !r.starts_with('#')
            || plain_definition(r).is_some_and(|k| kept.iter().any(|kept| kept.as_str() == k))
    });
    if resolved_as_is && kept.len() == defs.map_or(0, Map::len) {
        return;
    }
    // Only documents with something to hoist pay for a copy.
    let original = document.clone();
    let mut key_of: BTreeMap<String, String> = BTreeMap::new();
    let mut definitions = Map::new();
    if let Some(Value::Object(defs)) = original.get("definitions") {
        for (k, v) in defs {
            if kept.contains(k) {
                key_of.insert(format!("/definitions/{}", escape(k)), k.clone());
                definitions.insert(k.clone(), v.clone());
            }
        }
    }
    let mut unresolved = BTreeSet::new();
    let mut work: Vec<String> = refs.iter().filter_map(|r| pointer_of(r)).collect();
    while let Some(pointer) = work.pop() {
        if key_of.contains_key(&pointer) || unresolved.contains(&pointer) {
            continue;
        }
        let Some(target) = original.pointer(&pointer) else {
            unresolved.insert(pointer);
            continue;
        };
        let mut copy = target.clone();
        if pointer.is_empty() {
            if let Some(o) = copy.as_object_mut() {
                for k in ["definitions", "self", "$schema", "id"] {
                    o.remove(k);
                }
            }
        }
        let key = fresh_key(&pointer, &mut taken);
        let mut inner = Vec::new();
        each_ref(&copy, &mut inner);
        work.extend(inner.iter().filter_map(|r| pointer_of(r)));
        key_of.insert(pointer, key.clone());
        definitions.insert(key, copy);
    }
    // Every reference, in the copies too, now has its key.
    let mut dropped = Vec::new();
    for (_, def) in definitions.iter_mut() {
        rewrite(def, "", &key_of, &unresolved, &mut Vec::new());
    }
    if let Some(o) = document.as_object_mut() {
        o.remove("definitions");
    }
    rewrite(document, "", &key_of, &unresolved, &mut dropped);
    if let Some(o) = document.as_object_mut() {
        if !definitions.is_empty() {
            o.insert("definitions".into(), Value::Object(definitions));
        }
    }
    for (path, r) in dropped {
        loosened.push(Loosening {
            path,
            what: format!("`$ref: {r}` points to nothing in this schema; any JSON is accepted"),
            checked: false,
        });
    }
}

/// The first in-document `$ref` that leads back to itself without validation moving into a
/// part of the value (through `$ref`s and `allOf`/`anyOf`/`oneOf`/`not` only, e.g.
/// `"anyOf": [{"type": "string"}, {"$ref": "#"}]`): checking any value against it would
/// never end. Returns the JSON pointer of the reference's target.
pub(crate) fn left_recursion(document: &Value) -> Option<String> {
    fn same_value(
        document: &Value,
        schema: &Value,
        stack: &mut Vec<String>,
        budget: &mut usize,
    ) -> Option<String> {
        let o = schema.as_object()?;
        *budget = budget.checked_sub(1)?;
        if let Some(pointer) = o.get("$ref").and_then(Value::as_str).and_then(pointer_of) {
            if stack.contains(&pointer) {
                return Some(pointer);
            }
            let target = document.pointer(&pointer)?;
            stack.push(pointer);
            let found = same_value(document, target, stack, budget);
            stack.pop();
            return found;
        }
        for key in SCHEMA_LISTS {
            if let Some(Value::Array(branches)) = o.get(key) {
                for b in branches {
                    if let Some(found) = same_value(document, b, stack, budget) {
                        return Some(found);
                    }
                }
            }
        }
        o.get("not")
            .and_then(|n| same_value(document, n, stack, budget))
    }
    fn every(document: &Value, schema: &Value, budget: &mut usize) -> Option<String> {
        let o = schema.as_object()?;
        if let Some(found) = same_value(document, schema, &mut Vec::new(), budget) {
            return Some(found);
        }
        subschemas(o).find_map(|child| every(document, child, budget))
    }
    // Bounded: a pathological document is not searched forever (and then not reported).
    let mut budget = 200_000;
    every(document, document, &mut budget)
}

/// A key for the definition copied from `pointer`: its last segment in letters, digits and
/// `_` (`root` for the document itself), with `_2`, `_3`, … when its type name is taken.
fn fresh_key(pointer: &str, taken: &mut BTreeSet<String>) -> String {
    let last = pointer.rsplit('/').next().unwrap_or_default();
    let last = unescape(last);
    let mut base: String = last
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if pointer.is_empty() {
        base = "root".into();
    }
    if base.trim_matches('_').is_empty() || base.starts_with(|c: char| c.is_ascii_digit()) {
        base.insert_str(0, "def_");
    }
    let mut key = base.clone();
    let mut n = 2;
    while !taken.insert(rust_type(&key)) {
        key = format!("{base}_{n}");
        n += 1;
    }
    key
}

/// Rewrites every `$ref` at a schema position below `schema`: in-document ones to their
/// definition, unresolved ones removed (their paths and targets pushed to `dropped`).
fn rewrite(
    schema: &mut Value,
    path: &str,
    key_of: &BTreeMap<String, String>,
    unresolved: &BTreeSet<String>,
    dropped: &mut Vec<(String, String)>,
) {
    let Some(o) = schema.as_object_mut() else {
        return;
    };
    if let Some(r) = o.get("$ref").and_then(Value::as_str).map(str::to_owned) {
        if let Some(pointer) = pointer_of(&r) {
            if let Some(key) = key_of.get(&pointer) {
                o.insert("$ref".into(), Value::from(format!("#/definitions/{key}")));
            } else if unresolved.contains(&pointer) {
                o.remove("$ref");
                dropped.push((path.to_owned(), r));
            }
        }
    }
    each_child(o, path, &mut |child, at| {
        rewrite(child, &at, key_of, unresolved, dropped);
    });
}

/// Every `$ref` string at a schema position below `schema`.
fn each_ref<'a>(schema: &'a Value, out: &mut Vec<&'a str>) {
    let Some(o) = schema.as_object() else {
        return;
    };
    if let Some(r) = o.get("$ref").and_then(Value::as_str) {
        out.push(r);
    }
    for child in subschemas(o) {
        each_ref(child, out);
    }
}

/// The keywords whose values are schemas (not data): a map of them, one, or a list.
const SCHEMA_MAPS: [&str; 4] = [
    "properties",
    "patternProperties",
    "definitions",
    "dependencies",
];
const SCHEMA_ONE_OR_LIST: [&str; 4] = ["items", "additionalProperties", "additionalItems", "not"];
const SCHEMA_LISTS: [&str; 3] = ["allOf", "anyOf", "oneOf"];

/// The subschemas of `o`, without paths (no allocation per child).
pub(crate) fn subschemas(o: &Map<String, Value>) -> impl Iterator<Item = &Value> {
    let maps = SCHEMA_MAPS
        .iter()
        .filter_map(|k| o.get(*k).and_then(Value::as_object))
        .flat_map(|m| m.values().filter(|c| c.is_object()));
    let ones = SCHEMA_ONE_OR_LIST
        .iter()
        .chain(&SCHEMA_LISTS)
        .flat_map(|k| {
            let (list, one) = match o.get(*k) {
                Some(Value::Array(list)) => (Some(list.iter()), None),
                Some(c @ Value::Object(_)) if !SCHEMA_LISTS.contains(k) => (None, Some(c)),
                _ => (None, None),
            };
            list.into_iter().flatten().chain(one)
        });
    maps.chain(ones)
}

/// The subschemas of `o`, with their paths.
pub(crate) fn children<'a>(o: &'a Map<String, Value>, path: &str) -> Vec<(&'a Value, String)> {
    let mut out = Vec::new();
    for key in SCHEMA_MAPS {
        if let Some(Value::Object(m)) = o.get(key) {
            out.extend(
                m.iter()
                    .filter(|(_, c)| c.is_object())
                    .map(|(name, c)| (c, format!("{path}/{key}/{}", escape(name)))),
            );
        }
    }
    for key in SCHEMA_ONE_OR_LIST.iter().chain(&SCHEMA_LISTS) {
        match o.get(*key) {
            Some(Value::Array(list)) => out.extend(
                list.iter()
                    .enumerate()
                    .map(|(i, c)| (c, format!("{path}/{key}/{i}"))),
            ),
            Some(c @ Value::Object(_)) if !SCHEMA_LISTS.contains(key) => {
                out.push((c, format!("{path}/{key}")));
            }
            _ => {}
        }
    }
    out
}

/// Calls `f` on each subschema of `o` (the keywords whose values are schemas, not data).
pub(crate) fn each_child(
    o: &mut Map<String, Value>,
    path: &str,
    f: &mut dyn FnMut(&mut Value, String),
) {
    for key in SCHEMA_MAPS {
        if let Some(Value::Object(m)) = o.get_mut(key) {
            for (name, child) in m.iter_mut().filter(|(_, c)| c.is_object()) {
                f(child, format!("{path}/{key}/{}", escape(name)));
            }
        }
    }
    for key in SCHEMA_ONE_OR_LIST.iter().chain(&SCHEMA_LISTS) {
        match o.get_mut(*key) {
            Some(Value::Array(list)) => {
                for (i, child) in list.iter_mut().enumerate() {
                    f(child, format!("{path}/{key}/{i}"));
                }
            }
            Some(child @ Value::Object(_)) if !SCHEMA_LISTS.contains(key) => {
                f(child, format!("{path}/{key}"));
            }
            _ => {}
        }
    }
}

/// The JSON pointer of an in-document reference (`#/a/b` → `/a/b`, `#` → ``), decoded from
/// the URI fragment's percent-encoding; `None` for references to other documents.
pub(crate) fn pointer_of(reference: &str) -> Option<String> {
    let fragment = reference.strip_prefix('#')?;
    Some(percent_decode(fragment))
}

/// The definition key of a reference that already is `#/definitions/<plain key>`.
fn plain_definition(reference: &str) -> Option<&str> {
    reference
        .strip_prefix("#/definitions/")
        .filter(|k| plain(k))
}

/// A key typify and TypeScript take as it is.
fn plain(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A URI fragment with its percent-encoding decoded (`e%20f` → `e f`); JSON pointer escapes
/// (`~0`, `~1`) are left for `Value::pointer`.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_owned())
}

use eventwire_schema::pointer::{escape, unescape};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hoisted(doc: Value) -> (Value, Vec<Loosening>) {
        let mut doc = doc;
        let mut loosened = Vec::new();
        hoist(&mut doc, &mut loosened);
        (doc, loosened)
    }

    #[test]
    fn plain_definitions_are_left_alone() {
        let doc = json!({"properties": {"a": {"$ref": "#/definitions/x"}}, "definitions": {"x": {"type": "string"}}});
        assert_eq!(hoisted(doc.clone()).0, doc);
    }

    #[test]
    fn every_in_document_pointer_becomes_a_definition() {
        let (doc, loosened) = hoisted(json!({
            "self": {"name": "comment"},
            "type": "object",
            "properties": {
                "replies": {"type": "array", "items": {"$ref": "#"}},
                "billing": {"type": "object", "properties": {"city": {"type": "string"}}},
                "shipping": {"$ref": "#/properties/billing"},
                "slash": {"$ref": "#/definitions/a~1b"},
                "tilde": {"$ref": "#/definitions/c~0d"},
                "space": {"$ref": "#/definitions/e%20f"},
                "gone": {"$ref": "#/definitions/missing"},
                "other": {"$ref": "http://example.com/x#"}
            },
            "definitions": {"a/b": {"type": "integer"}, "c~d": {"type": "boolean"}, "e f": {"$ref": "#/definitions/a~1b"}}
        }));
        let p = &doc["properties"];
        assert_eq!(p["replies"]["items"], json!({"$ref": "#/definitions/root"}));
        assert_eq!(p["shipping"], json!({"$ref": "#/definitions/billing"}));
        assert_eq!(p["slash"], json!({"$ref": "#/definitions/a_b"}));
        assert_eq!(p["tilde"], json!({"$ref": "#/definitions/c_d"}));
        assert_eq!(p["space"], json!({"$ref": "#/definitions/e_f"}));
        assert_eq!(p["gone"], json!({}));
        assert_eq!(p["other"], json!({"$ref": "http://example.com/x#"}));
        let d = &doc["definitions"];
        assert_eq!(
            d["root"]["properties"]["replies"]["items"],
            json!({"$ref": "#/definitions/root"})
        );
        assert!(d["root"].get("self").is_none());
        assert_eq!(
            d["billing"]["properties"]["city"],
            json!({"type": "string"})
        );
        assert_eq!(d["a_b"], json!({"type": "integer"}));
        assert_eq!(d["e_f"], json!({"$ref": "#/definitions/a_b"}));
        assert!(d.get("a/b").is_none());
        let at: Vec<&str> = loosened.iter().map(|l| l.path.as_str()).collect();
        assert_eq!(at, ["/properties/gone"]);
    }

    #[test]
    fn keys_never_share_a_type_name() {
        let (doc, _) = hoisted(json!({
            "self": {"name": "address"},
            "properties": {
                "a": {"$ref": "#/definitions/address"},
                "b": {"$ref": "#/definitions/a-b"},
                "c": {"$ref": "#/definitions/a_b"},
                "d": {"$ref": "#/definitions/x~1y"}
            },
            "definitions": {"address": {"type": "string"}, "a-b": {"type": "integer"}, "a_b": {"type": "number"}, "x/y": {}}
        }));
        let keys: Vec<&String> = doc["definitions"].as_object().unwrap().keys().collect();
        let types: BTreeSet<String> = keys.iter().map(|k| rust_type(k)).collect();
        assert_eq!(types.len(), keys.len(), "{keys:?}");
        assert!(!types.contains("Address"), "{keys:?}");
        assert_eq!(doc["properties"]["b"], json!({"$ref": "#/definitions/a-b"}));
    }
}
