//! Personal data in schemas: the `"x-pii": true` mark, where it applies in an event, and the
//! shape of a sealed value — what the tracker, the collector and the linter agree on,
//! without any cryptography (that is `eventwire-pii`).
//!
//! A property whose schema carries `"x-pii": true` is personal data, the whole of its value.
//! Draft-4 validators ignore unknown keywords, so a marked schema stays a valid Iglu schema.
//! [`Marks::of`] finds the marks of a schema as JSON pointer patterns into its instance:
//! `/email`, `/address/street`, and `/emails/*` for each item of an array. [`Marks::values`]
//! resolves them in one instance; [`sealed_schema`] is the schema a collector validates
//! with, each marked property replaced by "a sealed value".
//!
//! A mark is honoured on a schema reached from the root through `properties` and `items`
//! only. Anywhere else — under `additionalProperties`, `patternProperties`, `definitions`
//! (through `$ref`), `additionalItems`, `dependencies`, `not`, a combinator (`allOf`,
//! `anyOf`, `oneOf`), or inside a property already marked — it is an error, not ignored:
//! a mark that seals nothing would send the field in clear while its author believes it
//! sealed.

use serde_json::{Map, Value};

use crate::pointer::{escape, unescape};

/// The keyword that marks a property as personal data.
pub const MARK: &str = "x-pii";

/// A regular expression every sealed value matches (JSON Schema's `pattern` takes it):
/// `ew1.<key id: 11>.<encapsulated key: 87>.<ciphertext: 23 or more>`, base64url.
pub const SEALED_PATTERN: &str = r"^ew1\.[A-Za-z0-9_-]{11}\.[A-Za-z0-9_-]{87}\.[A-Za-z0-9_-]{23,}$";

/// The segment of a mark that stands for every item of an array.
pub const EACH_ITEM: &str = "*";

/// True when `text` has the shape of a sealed value ([`SEALED_PATTERN`]); says nothing about
/// whether it opens.
#[must_use]
pub fn is_sealed(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("ew1.") else {
        return false;
    };
    let b64 = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let mut parts = rest.split('.');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(id), Some(enc), Some(ct), None)
            if id.len() == 11 && enc.len() == 87 && ct.len() >= 23 && b64(id) && b64(enc) && b64(ct)
    )
}

/// A mark that is not `true` or `false`, or is where it cannot apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarkError {
    /// `x-pii` must be a boolean.
    #[error("{pointer}: \"x-pii\" must be true or false, not {value}")]
    NotBoolean {
        /// JSON pointer of the schema node (into the schema).
        pointer: String,
        /// The value found.
        value: String,
    },
    /// `x-pii` on the schema itself: mark its properties instead.
    #[error("\"x-pii\" on the schema itself: mark the properties that are personal data")]
    Root,
    /// `x-pii` where it is not honoured (see the module's documentation).
    #[error("{pointer}: \"x-pii\" is honoured only on a property reached through `properties` and `items` (not under {under}): mark the property itself")]
    Unsupported {
        /// JSON pointer of the schema node (into the schema).
        pointer: String,
        /// The keyword it is under (`additionalProperties`, `oneOf`, a marked property…).
        under: String,
    },
    /// A marked property whose value other keywords also check (an `allOf`, `anyOf`,
    /// `oneOf`, `not`, `dependencies`, `patternProperties` or `enum` on it or on an object
    /// or array around it): a collector, which sees the value sealed, would check the
    /// sealed value against them and refuse it.
    #[error("{pointer}: a property marked \"x-pii\" is also checked by `{keyword}` at {at}, which a collector would apply to the sealed value: move those constraints into the marked property's own schema, or drop the mark")]
    Constrained {
        /// JSON pointer of the marked property's schema.
        pointer: String,
        /// The constraining keyword.
        keyword: String,
        /// JSON pointer of the schema node that has it (`/` for the root).
        at: String,
    },
}

/// The marked places of one schema, as JSON pointer patterns into its instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marks {
    pointers: Vec<String>,
}

impl Marks {
    /// The marks of `schema`: property schemas reached through `properties` and `items`,
    /// at any depth.
    ///
    /// # Errors
    /// [`MarkError`]: a mark that is not a boolean, on the schema itself, or anywhere it
    /// is not honoured.
    pub fn of(schema: &Value) -> Result<Marks, MarkError> {
        if marked(schema, "")? {
            return Err(MarkError::Root);
        }
        let mut pointers = Vec::new();
        let mut honoured = Vec::new();
        walk(
            schema,
            "",
            "",
            &mut Vec::new(),
            &mut pointers,
            &mut honoured,
        )?;
        // Every other `x-pii` in a schema position is an error.
        for (at, node, under) in schema_nodes(schema) {
            if node.get(MARK).is_some() && !honoured.contains(&at) {
                marked(node, &at)?;
                let inside_a_mark = honoured.iter().any(|h| {
                    at.starts_with(&format!("{h}/"))
                        && schema.pointer(h).and_then(|n| n.get(MARK)) == Some(&Value::Bool(true))
                });
                return Err(MarkError::Unsupported {
                    pointer: if at.is_empty() { "/".into() } else { at },
                    under: if inside_a_mark {
                        "a property already marked".into()
                    } else {
                        format!("`{under}`")
                    },
                });
            }
        }
        pointers.sort();
        pointers.dedup();
        Ok(Marks { pointers })
    }

    /// Marks from their patterns, as [`Marks::pointers`] gives them (e.g. a generated
    /// type's [`crate::protocol::SelfDescribing::PII`]): JSON pointers into the instance,
    /// `*` for every item of an array. Not checked against a schema.
    #[must_use]
    pub fn from_pointers<S: AsRef<str>>(pointers: &[S]) -> Marks {
        let mut pointers: Vec<String> = pointers.iter().map(|p| p.as_ref().to_owned()).collect();
        pointers.sort();
        pointers.dedup();
        Marks { pointers }
    }

    /// The marks a schema has where they are honoured, whether or not [`Marks::of`] accepts
    /// the schema (any mark that is not `false`, none under a mark): what a collector keeps
    /// out of the dead letters of a schema it cannot use.
    #[must_use]
    pub fn lenient(schema: &Value) -> Marks {
        fn walk(node: &Value, path: &str, out: &mut Vec<String>) {
            let mut visit = |sub: &Value, sub_path: String| match sub.get(MARK) {
                Some(Value::Bool(false)) | None => walk(sub, &sub_path, out),
                Some(_) => out.push(sub_path),
            };
            if let Some(Value::Object(properties)) = node.get("properties") {
                for (name, sub) in properties {
                    visit(sub, format!("{path}/{}", escape(name)));
                }
            }
            match node.get("items") {
                Some(items @ Value::Object(_)) => visit(items, format!("{path}/{EACH_ITEM}")),
                Some(Value::Array(tuple)) => {
                    for (i, items) in tuple.iter().enumerate() {
                        visit(items, format!("{path}/{i}"));
                    }
                }
                _ => {}
            }
        }
        let mut pointers = Vec::new();
        walk(schema, "", &mut pointers);
        Marks::from_pointers(&pointers)
    }

    /// The patterns, sorted (`/a/b`, `/list/*`).
    #[must_use]
    pub fn pointers(&self) -> &[String] {
        &self.pointers
    }

    /// True when nothing is marked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pointers.is_empty()
    }

    /// The marked values present in `instance`, each with its concrete pointer (array items
    /// by index: `/emails/0`), in mark order.
    #[must_use]
    pub fn values<'a>(&self, instance: &'a Value) -> Vec<(String, &'a Value)> {
        let mut out = Vec::new();
        for pointer in &self.pointers {
            let segments: Vec<&str> = pointer.split('/').skip(1).collect();
            resolve(instance, &segments, String::new(), &mut out);
        }
        out
    }

    /// The concrete pointers of the marked values present in `instance`: a tracker
    /// replaces each with `instance.pointer_mut(…)`, one at a time (no mark is inside
    /// another: [`Marks::of`] stops at the first mark on a path).
    #[must_use]
    pub fn places(&self, instance: &Value) -> Vec<String> {
        self.values(instance).into_iter().map(|(p, _)| p).collect()
    }
}

fn marked(node: &Value, pointer: &str) -> Result<bool, MarkError> {
    match node.get(MARK) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(MarkError::NotBoolean {
            pointer: if pointer.is_empty() {
                "/".into()
            } else {
                pointer.to_owned()
            },
            value: other.to_string(),
        }),
    }
}

/// Walks `node` (at `at` in the schema, describing the instance at `path`) through
/// `properties` and `items`, collecting marks; `honoured` gets the schema pointer of each
/// node whose mark (`true` or `false`) is honoured.
/// `trail`: the schema nodes from the root down to `node` (excluded), each with its pointer
/// and the step taken from it: what a mark found below is checked against
/// ([`constraint_on`]).
fn walk<'a>(
    node: &'a Value,
    at: &str,
    path: &str,
    trail: &mut Vec<(&'a Value, String, Step<'a>)>,
    out: &mut Vec<String>,
    honoured: &mut Vec<String>,
) -> Result<(), MarkError> {
    let Some(object) = node.as_object() else {
        return Ok(());
    };
    let mut visit = |step: Step<'a>,
                     sub: &'a Value,
                     sub_at: String,
                     sub_path: String,
                     trail: &mut Vec<(&'a Value, String, Step<'a>)>|
     -> Result<(), MarkError> {
        if sub.get(MARK).is_some() {
            honoured.push(sub_at.clone());
        }
        trail.push((node, at.to_owned(), step));
        let result = if marked(sub, &sub_at)? {
            match constraint_on(trail) {
                Some((keyword, node_at)) => Err(MarkError::Constrained {
                    pointer: sub_at,
                    keyword: keyword.to_owned(),
                    at: if node_at.is_empty() {
                        "/".into()
                    } else {
                        node_at
                    },
                }),
                None => {
                    out.push(sub_path);
                    Ok(())
                }
            }
        } else {
            walk(sub, &sub_at, &sub_path, trail, out, honoured)
        };
        trail.pop();
        result
    };
    if let Some(Value::Object(properties)) = object.get("properties") {
        for (name, sub) in properties {
            visit(
                Step::Property(name),
                sub,
                format!("{at}/properties/{}", escape(name)),
                format!("{path}/{}", escape(name)),
                trail,
            )?;
        }
    }
    match object.get("items") {
        Some(items @ Value::Object(_)) => {
            visit(
                Step::Item(None),
                items,
                format!("{at}/items"),
                format!("{path}/{EACH_ITEM}"),
                trail,
            )?;
        }
        Some(Value::Array(tuple)) => {
            for (i, items) in tuple.iter().enumerate() {
                visit(
                    Step::Item(Some(i)),
                    items,
                    format!("{at}/items/{i}"),
                    format!("{path}/{i}"),
                    trail,
                )?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// One step from a schema node to a child instance: a property by name, or an item (by
/// index, or every item).
#[derive(Debug, Clone, Copy)]
enum Step<'a> {
    Property(&'a str),
    Item(Option<usize>),
}

/// Keywords with no say on an instance's value.
const ANNOTATIONS: [&str; 7] = [
    "description",
    "title",
    "default",
    "$schema",
    "self",
    "id",
    MARK,
];

/// The first keyword, on the way from the root to a marked value, that would check the
/// value besides the marked property's own schema (a collector sees the value sealed and
/// would refuse it), with the pointer of its node: a `$ref` or an `enum` there, a matching
/// `patternProperties`, or a combinator, `not` or schema `dependencies` that reaches the
/// value. `required` lists and patterns that do not match the name are no concern.
fn constraint_on(trail: &[(&Value, String, Step<'_>)]) -> Option<(&'static str, String)> {
    for (i, (node, at, step)) in trail.iter().enumerate() {
        let steps: Vec<Step<'_>> = trail[i..].iter().map(|(_, _, s)| *s).collect();
        let object = node.as_object()?;
        if object.contains_key("$ref") {
            return Some(("$ref", at.clone()));
        }
        if object.contains_key("enum") {
            return Some(("enum", at.clone()));
        }
        if let (Step::Property(name), Some(Value::Object(patterns))) =
            (step, object.get("patternProperties"))
        {
            if patterns.keys().any(|p| matches(p, name)) {
                return Some(("patternProperties", at.clone()));
            }
        }
        for keyword in ["allOf", "anyOf", "oneOf"] {
            if let Some(Value::Array(branches)) = object.get(keyword) {
                if branches.iter().any(|b| reaches(b, &steps)) {
                    return Some((keyword, at.clone()));
                }
            }
        }
        if object.get("not").is_some_and(|n| reaches(n, &steps)) {
            return Some(("not", at.clone()));
        }
        if let Some(Value::Object(deps)) = object.get("dependencies") {
            if deps.values().any(|d| d.is_object() && reaches(d, &steps)) {
                return Some(("dependencies", at.clone()));
            }
        }
    }
    None
}

/// Whether `schema`, applied to an instance, checks anything at `steps` below it.
fn reaches(schema: &Value, steps: &[Step<'_>]) -> bool {
    let Some(object) = schema.as_object() else {
        return false; // `true`/`false` schemas are not draft 4
    };
    let Some((step, rest)) = steps.split_first() else {
        return object.keys().any(|k| !ANNOTATIONS.contains(&k.as_str()));
    };
    if ["$ref", "enum"].iter().any(|k| object.contains_key(*k)) {
        return true;
    }
    let below = match step {
        Step::Property(name) => {
            let declared = object.get("properties").and_then(|p| p.get(*name));
            declared.is_some_and(|d| reaches(d, rest))
                || object
                    .get("patternProperties")
                    .and_then(Value::as_object)
                    .is_some_and(|ps| ps.iter().any(|(p, d)| matches(p, name) && reaches(d, rest)))
                || (declared.is_none()
                    && object
                        .get("additionalProperties")
                        .is_some_and(|a| a.is_object() && reaches(a, rest)))
        }
        Step::Item(index) => match object.get("items") {
            Some(items @ Value::Object(_)) => reaches(items, rest),
            Some(Value::Array(tuple)) => {
                let listed = match index {
                    Some(i) => tuple.get(*i).is_some_and(|t| reaches(t, rest)),
                    None => tuple.iter().any(|t| reaches(t, rest)),
                };
                listed
                    || object
                        .get("additionalItems")
                        .is_some_and(|a| a.is_object() && reaches(a, rest))
            }
            _ => false,
        },
    };
    below
        || ["allOf", "anyOf", "oneOf"].iter().any(|k| {
            object
                .get(*k)
                .and_then(Value::as_array)
                .is_some_and(|bs| bs.iter().any(|b| reaches(b, steps)))
        })
        || object.get("not").is_some_and(|n| reaches(n, steps))
        || object
            .get("dependencies")
            .and_then(Value::as_object)
            .is_some_and(|ds| ds.values().any(|d| d.is_object() && reaches(d, steps)))
}

/// Whether the ECMA-262 `pattern` (as `patternProperties` writes it) finds a match in
/// `name`; a pattern that does not compile is taken to match.
fn matches(pattern: &str, name: &str) -> bool {
    regress::Regex::new(pattern).map_or(true, |r| r.find(name).is_some())
}

/// Every schema position of `schema` — the root and each subschema under a draft-4
/// keyword that holds schemas — with its JSON pointer into the schema and the keyword
/// it is under (`""` for the root). Property names, `enum` values and `default`s are not
/// schema positions.
#[must_use]
pub fn schema_nodes(schema: &Value) -> Vec<(String, &Value, String)> {
    let mut out = Vec::new();
    nodes(schema, String::new(), String::new(), &mut out);
    out
}

fn nodes<'a>(
    node: &'a Value,
    at: String,
    under: String,
    out: &mut Vec<(String, &'a Value, String)>,
) {
    let Some(object) = node.as_object() else {
        return;
    };
    out.push((at.clone(), node, under));
    for (keyword, value) in object {
        let here = format!("{at}/{}", escape(keyword));
        match (keyword.as_str(), value) {
            (
                "properties" | "patternProperties" | "definitions" | "dependencies",
                Value::Object(map),
            ) => {
                for (name, sub) in map {
                    nodes(
                        sub,
                        format!("{here}/{}", escape(name)),
                        keyword.clone(),
                        out,
                    );
                }
            }
            ("items" | "additionalItems" | "additionalProperties" | "not", Value::Object(_)) => {
                nodes(value, here, keyword.clone(), out);
            }
            ("items" | "allOf" | "anyOf" | "oneOf", Value::Array(list)) => {
                for (i, sub) in list.iter().enumerate() {
                    nodes(sub, format!("{here}/{i}"), keyword.clone(), out);
                }
            }
            _ => {}
        }
    }
}

fn resolve<'a>(
    value: &'a Value,
    segments: &[&str],
    at: String,
    out: &mut Vec<(String, &'a Value)>,
) {
    let Some((first, rest)) = segments.split_first() else {
        out.push((at, value));
        return;
    };
    match value {
        Value::Array(items) if *first == EACH_ITEM => {
            for (i, item) in items.iter().enumerate() {
                resolve(item, rest, format!("{at}/{i}"), out);
            }
        }
        Value::Array(items) => {
            // An array index as RFC 6901 writes it (`0`, or no leading zero or sign), as
            // `Value::pointer_mut` reads it: `01` or `+1` is no index, so nothing is there.
            let index = (first.bytes().all(|b| b.is_ascii_digit())
                && (*first == "0" || !first.starts_with('0')))
            .then(|| first.parse::<usize>().ok())
            .flatten();
            if let Some(item) = index.and_then(|i| items.get(i)) {
                resolve(item, rest, format!("{at}/{first}"), out);
            }
        }
        Value::Object(map) => {
            if let Some(sub) = map.get(&unescape(first)) {
                resolve(sub, rest, format!("{at}/{first}"), out);
            }
        }
        _ => {}
    }
}

/// `schema` as a collector validates it: each marked property's schema replaced by "a
/// sealed value" (a string of [`SEALED_PATTERN`]; its `description` kept), the rest as it
/// was.
///
/// # Errors
/// [`MarkError`], as [`Marks::of`].
pub fn sealed_schema(schema: &Value) -> Result<Value, MarkError> {
    Marks::of(schema)?;
    let mut out = schema.clone();
    replace(&mut out);
    Ok(out)
}

fn sealed_node(original: &Value) -> Value {
    let mut node = Map::new();
    node.insert("type".into(), Value::String("string".into()));
    node.insert("pattern".into(), Value::String(SEALED_PATTERN.into()));
    node.insert(MARK.into(), Value::Bool(true));
    if let Some(d) = original.get("description") {
        node.insert("description".into(), d.clone());
    }
    Value::Object(node)
}

fn replace(node: &mut Value) {
    let Some(object) = node.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(properties)) = object.get_mut("properties") {
        for sub in properties.values_mut() {
            if sub.get(MARK) == Some(&Value::Bool(true)) {
                *sub = sealed_node(sub);
            } else {
                replace(sub);
            }
        }
    }
    match object.get_mut("items") {
        Some(items @ Value::Object(_)) => {
            if items.get(MARK) == Some(&Value::Bool(true)) {
                *items = sealed_node(items);
            } else {
                replace(items);
            }
        }
        Some(Value::Array(tuple)) => {
            for items in tuple {
                if items.get(MARK) == Some(&Value::Bool(true)) {
                    *items = sealed_node(items);
                } else {
                    replace(items);
                }
            }
        }
        _ => {}
    }
}

/// The marks of generated types made into entities ([`crate::protocol::Entity::typed`]),
/// by schema URI: an entity is plain JSON at run time, so a tracker looks its marks up here
/// (and in what it was given) to seal it as it seals the typed event.
static LEARNED: std::sync::RwLock<Vec<(&'static str, &'static [&'static str])>> =
    std::sync::RwLock::new(Vec::new());
static ANY_LEARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Remembers a generated type's marks (its `SCHEMA` and `PII`), for [`learned`].
pub fn learn(schema: &'static str, pointers: &'static [&'static str]) {
    if pointers.is_empty() || learned(schema).is_some() {
        return;
    }
    let mut all = LEARNED
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !all.iter().any(|(s, _)| *s == schema) {
        all.push((schema, pointers));
    }
    ANY_LEARNED.store(true, std::sync::atomic::Ordering::Release);
}

/// The marks a generated type of `schema` taught ([`learn`]); `None` without any (one
/// atomic load when no type was ever made into an entity).
#[must_use]
pub fn learned(schema: &str) -> Option<&'static [&'static str]> {
    if !ANY_LEARNED.load(std::sync::atomic::Ordering::Acquire) {
        return None;
    }
    LEARNED
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .find(|(s, _)| *s == schema)
        .map(|(_, p)| *p)
}

/// True once any generated type taught its marks ([`learn`]).
#[must_use]
pub fn any_learned() -> bool {
    ANY_LEARNED.load(std::sync::atomic::Ordering::Acquire)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "email": {"type": "string", "format": "email", "x-pii": true, "description": "Login"},
                "plan": {"type": "string", "x-pii": false},
                "address": {
                    "type": "object",
                    "properties": {
                        "street": {"type": "string", "x-pii": true},
                        "country": {"type": "string"}
                    }
                },
                "phones": {"type": "array", "items": {"type": "string", "x-pii": true}},
                "contacts": {"type": "array", "items": {
                    "type": "object",
                    "properties": {"name": {"type": ["string", "null"], "x-pii": true}, "role": {"type": "string"}}
                }},
                "a/b~c": {"x-pii": true}
            }
        })
    }

    #[test]
    fn marks_are_found_at_any_depth() {
        let marks = Marks::of(&schema()).unwrap();
        assert_eq!(
            marks.pointers(),
            [
                "/address/street",
                "/a~1b~0c",
                "/contacts/*/name",
                "/email",
                "/phones/*"
            ]
        );
        assert!(Marks::of(&json!({"type": "object"})).unwrap().is_empty());
    }

    #[test]
    fn a_mark_that_is_not_a_boolean_or_on_the_root_is_refused() {
        assert_eq!(
            Marks::of(&json!({"properties": {"email": {"x-pii": "yes"}}})),
            Err(MarkError::NotBoolean {
                pointer: "/properties/email".into(),
                value: "\"yes\"".into()
            })
        );
        assert_eq!(Marks::of(&json!({"x-pii": true})), Err(MarkError::Root));
    }

    /// The breaker's cases: a collector checks a sealed value against every keyword that
    /// reaches it, so a mark whose value other keywords also check is refused.
    #[test]
    fn a_mark_that_other_keywords_also_check_is_an_error() {
        let rows = [
            (
                json!({"allOf": [{"properties": {"email": {"format": "email"}}}], "properties": {"email": {"x-pii": true}}}),
                "allOf",
                "/",
            ),
            (
                json!({"patternProperties": {"^e": {"maxLength": 60}}, "properties": {"email": {"x-pii": true}}}),
                "patternProperties",
                "/",
            ),
            (
                json!({"properties": {"a": {"anyOf": [{"properties": {"x": {"minLength": 1}}}], "properties": {"x": {"x-pii": true}}}}}),
                "anyOf",
                "/properties/a",
            ),
            (
                json!({"properties": {"l": {"items": {"enum": [{"x": 1}], "properties": {"x": {"x-pii": true}}}}}}),
                "enum",
                "/properties/l/items",
            ),
            // Draft 4 ignores a `$ref`'s siblings: the marked schema would not even be used.
            (
                json!({"properties": {"a": {"$ref": "#/definitions/x", "properties": {"e": {"x-pii": true}}}}, "definitions": {"x": {}}}),
                "$ref",
                "/properties/a",
            ),
            (
                json!({"dependencies": {"id": {"properties": {"e": {"format": "email"}}}}, "properties": {"e": {"x-pii": true}}}),
                "dependencies",
                "/",
            ),
            (
                json!({"oneOf": [{"properties": {"l": {"items": {"maxLength": 3}}}}], "properties": {"l": {"items": {"x-pii": true}}}}),
                "oneOf",
                "/",
            ),
        ];
        for (schema, keyword, at) in rows {
            match Marks::of(&schema) {
                Err(MarkError::Constrained {
                    keyword: k, at: a, ..
                }) => {
                    assert_eq!((k.as_str(), a.as_str()), (keyword, at), "{schema}");
                }
                other => panic!("{schema}: {other:?}"),
            }
        }
        // Keywords that never check the marked value are fine (the second breaker found
        // these in Iglu Central): the property's own keywords (replaced by the sealed
        // shape), combinators of `required` lists, array `dependencies`, patterns that do
        // not match the name, a branch about another property, a `not` of `required`.
        for fine in [
            json!({"properties": {"email": {"x-pii": true, "allOf": [{"format": "email"}]}}}),
            json!({"anyOf": [{"required": ["id"]}, {"required": ["email"]}], "properties": {"id": {}, "email": {"x-pii": true}}}),
            json!({"dependencies": {"email": ["id"]}, "properties": {"id": {}, "email": {"x-pii": true}}}),
            json!({"patternProperties": {"^contexts_": {"type": "array"}}, "properties": {"email": {"x-pii": true}}}),
            json!({"oneOf": [{"properties": {"id": {"minLength": 1}}}], "properties": {"email": {"x-pii": true}}}),
            json!({"not": {"required": ["x"]}, "properties": {"email": {"x-pii": true}}}),
        ] {
            assert_eq!(
                Marks::of(&fine).map(|m| m.pointers().len()),
                Ok(1),
                "{fine}"
            );
        }
    }

    /// Array indices as RFC 6901 (and `Value::pointer_mut`) read them: `01` and `+1` name
    /// no item, so a tracker and a collector never disagree on what is marked.
    #[test]
    fn index_like_names_follow_rfc_6901() {
        let marks = Marks::from_pointers(&["/a/01", "/a/+1", "/a/1", "/a/0"]);
        let instance = json!({"a": ["x", "y"]});
        let places = marks.places(&instance);
        assert_eq!(places, ["/a/0", "/a/1"]);
        for p in &places {
            assert!(instance.pointer(p).is_some());
        }
    }

    #[test]
    fn a_mark_where_it_would_seal_nothing_is_an_error() {
        let unsupported = |schema: Value, pointer: &str, under: &str| {
            assert_eq!(
                Marks::of(&schema),
                Err(MarkError::Unsupported {
                    pointer: pointer.into(),
                    under: under.into()
                }),
                "{schema}"
            );
        };
        unsupported(
            json!({"additionalProperties": {"type": "string", "x-pii": true}}),
            "/additionalProperties",
            "`additionalProperties`",
        );
        unsupported(
            json!({"patternProperties": {"^e": {"x-pii": true}}}),
            "/patternProperties/^e",
            "`patternProperties`",
        );
        unsupported(
            json!({"properties": {"r": {"$ref": "#/definitions/d"}}, "definitions": {"d": {"x-pii": true}}}),
            "/definitions/d",
            "`definitions`",
        );
        unsupported(
            json!({"items": [{"type": "string"}], "additionalItems": {"x-pii": true}}),
            "/additionalItems",
            "`additionalItems`",
        );
        unsupported(
            json!({"properties": {"n": {"oneOf": [{"type": "string", "x-pii": true}, {"type": "string", "maxLength": 500}]}}}),
            "/properties/n/oneOf/0",
            "`oneOf`",
        );
        unsupported(
            json!({"properties": {"n": {"allOf": [{"properties": {"ssn": {"x-pii": true}}}]}}}),
            "/properties/n/allOf/0/properties/ssn",
            "`properties`",
        );
        unsupported(
            json!({"properties": {"n": {"x-pii": true, "properties": {"inner": {"x-pii": true}}}}}),
            "/properties/n/properties/inner",
            "a property already marked",
        );
        // Not a boolean anywhere: that error first.
        assert_eq!(
            Marks::of(&json!({"additionalProperties": {"x-pii": 1}})),
            Err(MarkError::NotBoolean {
                pointer: "/additionalProperties".into(),
                value: "1".into()
            })
        );
        // A property named x-pii, an enum value or a default holding the key are not marks.
        assert!(Marks::of(&json!({
            "properties": {"x-pii": {"type": "boolean"}, "e": {"enum": [{"x-pii": true}], "default": {"x-pii": 1}}}
        }))
        .unwrap()
        .is_empty());
    }

    #[test]
    fn values_are_resolved_in_an_instance() {
        let marks = Marks::of(&schema()).unwrap();
        let instance = json!({
            "email": "jane@example.com",
            "plan": "pro",
            "address": {"country": "NL"},
            "phones": ["1", "2"],
            "contacts": [{"name": "A", "role": "x"}, {"role": "y"}, {"name": null}],
            "a/b~c": 7,
        });
        let got: Vec<(String, Value)> = marks
            .values(&instance)
            .into_iter()
            .map(|(p, v)| (p, v.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/a~1b~0c".to_owned(), json!(7)),
                ("/contacts/0/name".to_owned(), json!("A")),
                ("/contacts/2/name".to_owned(), json!(null)),
                ("/email".to_owned(), json!("jane@example.com")),
                ("/phones/0".to_owned(), json!("1")),
                ("/phones/1".to_owned(), json!("2")),
            ]
        );
        // Every concrete pointer finds its value with serde_json's own pointer lookup.
        for (p, v) in marks.values(&instance) {
            assert_eq!(instance.pointer(&p), Some(v), "{p}");
        }
        let mut changed = instance.clone();
        for place in marks.places(&instance) {
            *changed.pointer_mut(&place).unwrap() = json!("sealed");
        }
        assert_eq!(changed["email"], "sealed");
        assert_eq!(changed["contacts"][2]["name"], "sealed");
        assert_eq!(changed["contacts"][1], json!({"role": "y"}));
        assert_eq!(changed["plan"], "pro");
    }

    #[test]
    fn the_sealed_schema_takes_sealed_values_where_marked() {
        let sealed = sealed_schema(&schema()).unwrap();
        assert_eq!(
            sealed["properties"]["email"],
            json!({"type": "string", "pattern": SEALED_PATTERN, "x-pii": true, "description": "Login"})
        );
        assert_eq!(sealed["properties"]["plan"], schema()["properties"]["plan"]);
        assert_eq!(
            sealed["properties"]["contacts"]["items"]["properties"]["name"]["pattern"],
            SEALED_PATTERN
        );
        assert_eq!(
            sealed["properties"]["contacts"]["items"]["properties"]["role"],
            json!({"type": "string"})
        );
    }

    #[test]
    fn the_shape_check_and_the_pattern_agree() {
        let ok = format!(
            "ew1.{}.{}.{}",
            "A".repeat(11),
            "_".repeat(87),
            "-".repeat(23)
        );
        assert!(is_sealed(&ok));
        for bad in [
            String::new(),
            "jane@example.com".into(),
            ok[..ok.len() - 1].to_owned(),
            format!("{ok}.x"),
            ok.replacen('A', "+", 1),
            ok.replace("ew1.", "ew2."),
        ] {
            assert!(!is_sealed(&bad), "{bad}");
        }
    }
}
