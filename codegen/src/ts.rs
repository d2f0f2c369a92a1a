//! TypeScript generation, from the same normalised schemas the Rust types come from.
//!
//! For each schema version an interface (`ComExampleMediaPlayV1_0_0`), and for each MODEL
//! its latest version under a stable alias (`ComExampleMediaPlay`, `…PlayV2`), mirroring
//! the Rust names. `EventMap` maps every Iglu URI to its data type, and `SelfDescribing` is
//! the union of `{ schema, data }` pairs, so `track({ schema, data })` in the browser
//! package is checked by `tsc --strict`: a wrong `data` for a given `schema` is an error.
//!
//! Mapping: `object` → an object type (`additionalProperties: false` → exact properties,
//! otherwise an index signature of `unknown`); required properties are required, others
//! optional; `string`/`number`/`integer`/`boolean`/`null` → their TS types; `enum` → a
//! union of literals; `array` → `T[]`; a `type` list → a union; `anyOf`/`oneOf` → a union;
//! `allOf` → an intersection; `$ref` to `#/definitions/X` → a named alias; anything else
//! → `unknown`. Constraints TS cannot express (bounds, patterns, formats) are left to the
//! collector's validation and stated in the doc comments.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use eventwire_schema::iglu::SchemaKey;
use eventwire_schema::pii::Marks;
use serde_json::{Map, Value};

use crate::names::{distinct, ts_ident, ts_type, with_bases};
use crate::normalize::normalize;
use crate::registry::SchemaFile;
use crate::CodegenError;

/// Top-level names no schema's types take: the module's own, and TypeScript's global types
/// a generated type could shadow.
const DECLARED: [&str; 25] = [
    "EventMap",
    "PII_MARKS",
    "SchemaUri",
    "Entity",
    "SelfDescribing",
    "SCHEMAS",
    "Array",
    "ReadonlyArray",
    "Record",
    "Partial",
    "Required",
    "Readonly",
    "Pick",
    "Omit",
    "Object",
    "String",
    "Number",
    "Boolean",
    "Date",
    "Map",
    "Set",
    "Promise",
    "Error",
    "Symbol",
    "Function",
];

/// The stems of the `(vendor, name)` pairs of a registry (sorted, distinct), in their order,
/// and the pairs whose stem is not their base (`names` is `vendor/name`). `eventwire lint`
/// reports the same renames.
pub(crate) fn stems(pairs: &[(String, String)]) -> (Vec<String>, Vec<crate::names::Renamed>) {
    let scope: Vec<(String, String)> = pairs
        .iter()
        .map(|(v, n)| (format!("{v}/{n}"), ts_type(v, n)))
        .collect();
    let declared: BTreeSet<String> = DECLARED.iter().map(|d| (*d).to_owned()).collect();
    distinct(&scope, ts_ident, &declared)
}

/// The TypeScript names of a registry ([`crate::names`]'s rule): per schema a stem
/// (`ComAcmeAddToCart`), per MODEL an alias (the stem, or the stem and `V2`, …).
struct Naming {
    /// `(vendor, name)` → stem.
    stems: BTreeMap<(String, String), String>,
    /// `(vendor, name, MODEL)` → alias.
    aliases: BTreeMap<(String, String, u32), String>,
}

impl Naming {
    fn new(sorted: &[&SchemaFile]) -> Naming {
        let mut pairs: Vec<(String, String)> = sorted
            .iter()
            .map(|f| (f.key.vendor.clone(), f.key.name.clone()))
            .collect();
        pairs.dedup();
        let (stems, _) = stems(&pairs);
        let declared: BTreeSet<String> = DECLARED.iter().map(|d| (*d).to_owned()).collect();
        let stems: BTreeMap<(String, String), String> = pairs.into_iter().zip(stems).collect();
        let mut models: Vec<(String, String, u32)> = sorted
            .iter()
            .map(|f| {
                (
                    f.key.vendor.clone(),
                    f.key.name.clone(),
                    f.key.version.model,
                )
            })
            .collect();
        models.dedup();
        let scope: Vec<(String, String)> = models
            .iter()
            .map(|(v, n, m)| {
                let stem = &stems[&(v.clone(), n.clone())];
                if *m == 1 {
                    (format!("{v}/{n}"), stem.clone())
                } else {
                    (format!("{v}/{n} (MODEL {m})"), format!("{stem}V{m}"))
                }
            })
            .collect();
        let (aliases, _) = distinct(&scope, ts_ident, &declared);
        Naming {
            stems,
            aliases: models.into_iter().zip(aliases).collect(),
        }
    }

    /// The interface name of one schema version: its stem and version
    /// (`ComAcmeAddToCartV1_0_0`).
    fn interface(&self, key: &SchemaKey) -> String {
        let v = key.version;
        let stem = self
            .stems
            .get(&(key.vendor.clone(), key.name.clone()))
            .cloned()
            .unwrap_or_else(|| ts_type(&key.vendor, &key.name));
        format!("{stem}V{}_{}_{}", v.model, v.revision, v.addition)
    }
}

/// Generates the TypeScript module for `schemas`. Deterministic: sorted by key.
///
/// # Errors
/// A personal-data mark that would seal nothing (as for the Rust types and in
/// `eventwire lint`): one [`CodegenError::Schema`] per schema.
pub fn generate(schemas: &[SchemaFile]) -> Result<String, Vec<CodegenError>> {
    let mut sorted: Vec<&SchemaFile> = schemas.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let naming = Naming::new(&sorted);
    let mut out = String::from(
        "// @generated by eventwire-codegen from Iglu schemas. Do not edit: change the schemas and regenerate.\n\n",
    );
    let mut latest: BTreeMap<(String, String, u32), &SchemaKey> = BTreeMap::new();
    // The personal-data marks of each schema that has any (`x-pii`): what `withPii` seals.
    let mut marks: Vec<(String, Vec<String>)> = Vec::new();
    let mut errors = Vec::new();
    for file in &sorted {
        let key = &file.key;
        match Marks::of(&file.schema) {
            Ok(m) if !m.is_empty() => marks.push((key.to_string(), m.pointers().to_vec())),
            Ok(_) => {}
            Err(e) => errors.push(CodegenError::Schema {
                schema: key.to_string(),
                path: String::new(),
                message: format!("personal-data mark: {e}"),
            }),
        }
        let name = naming.interface(key);
        let normalized = normalize(&file.schema);
        let schema = &normalized.schema;
        let mut definitions = BTreeMap::new();
        if let Some(Value::Object(defs)) = schema.get("definitions") {
            let scope = with_bases(defs.keys().map(String::as_str), ts_ident);
            let (idents, _) = distinct(&scope, ts_ident, &BTreeSet::new());
            for (def, ident) in defs.keys().zip(idents) {
                definitions.insert(def.clone(), format!("{name}_{ident}"));
            }
        }
        let ctx = Ctx {
            definitions: &definitions,
        };
        for (def, alias) in &definitions {
            let body = &schema["definitions"][def];
            doc(
                &mut out,
                body.get("description").and_then(Value::as_str),
                &[],
                "",
            );
            let _ = writeln!(out, "export type {alias} = {};\n", ctx.ty(body, 0));
        }
        let mut notes = vec![format!("`{key}`")];
        notes.extend(normalized.loosened.iter().map(|l| {
            format!(
                "Not checked by this type: {} (at `{}`).",
                l.what,
                if l.path.is_empty() { "/" } else { &l.path }
            )
        }));
        doc(
            &mut out,
            schema.get("description").and_then(Value::as_str),
            &notes,
            "",
        );
        let _ = writeln!(out, "export type {name} = {};\n", ctx.ty(schema, 0));
        latest.insert(
            (key.vendor.clone(), key.name.clone(), key.version.model),
            key,
        );
    }
    for (model_key, key) in &latest {
        let model = model_key.2;
        let alias = &naming.aliases[model_key];
        let _ = writeln!(out, "/** The latest MODEL-{model} version: `{key}`. */");
        let _ = writeln!(out, "export type {alias} = {};\n", naming.interface(key));
    }
    out.push_str(
        "/** Every schema URI and the type of its `data`. */\nexport interface EventMap {\n",
    );
    for file in &sorted {
        let _ = writeln!(
            out,
            "  {}: {};",
            quote(&file.key.to_string()),
            naming.interface(&file.key)
        );
    }
    out.push_str("}\n\n/** An Iglu URI with a generated type. */\nexport type SchemaUri = keyof EventMap;\n\n");
    out.push_str(
        "/** A self-describing entity attached to an event. */\nexport type Entity = { [K in SchemaUri]: { schema: K; data: EventMap[K] } }[SchemaUri];\n\n",
    );
    out.push_str(
        "/** A self-describing event: `data` must match `schema`. */\nexport type SelfDescribing = { [K in SchemaUri]: { schema: K; data: EventMap[K]; entities?: Entity[] } }[SchemaUri];\n\n",
    );
    out.push_str("/** Every schema URI with a generated type. */\nexport const SCHEMAS: readonly SchemaUri[] = [\n");
    for file in &sorted {
        let _ = writeln!(out, "  {},", quote(&file.key.to_string()));
    }
    out.push_str("];\n");
    out.push_str(
        "\n/**\n * The personal-data marks (`\"x-pii\": true`) of each schema that has any: JSON pointers into\n * its `data` (`*` for every item of an array). Give them to `init` as `piiMarks`, and\n * `withPii` from `eventwire/pii` seals these values before they leave the page.\n */\nexport const PII_MARKS: Readonly<Record<string, readonly string[]>> = {",
    );
    if !marks.is_empty() {
        out.push('\n');
    }
    for (schema, pointers) in &marks {
        let list: Vec<String> = pointers.iter().map(|p| quote(p)).collect();
        let _ = writeln!(out, "  {}: [{}],", quote(schema), list.join(", "));
    }
    out.push_str("};\n");
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

struct Ctx<'a> {
    definitions: &'a BTreeMap<String, String>,
}

impl Ctx<'_> {
    fn ty(&self, schema: &Value, depth: usize) -> String {
        let Some(o) = schema.as_object() else {
            return if schema == &Value::Bool(false) {
                "never".into()
            } else {
                "unknown".into()
            };
        };
        if let Some(r) = o.get("$ref").and_then(Value::as_str) {
            return r
                .strip_prefix("#/definitions/")
                .and_then(|d| self.definitions.get(d))
                .cloned()
                .unwrap_or_else(|| "unknown".into());
        }
        if let Some(Value::Array(values)) = o.get("enum") {
            let mut lits: Vec<String> = values.iter().map(literal).collect();
            lits.dedup();
            return if lits.is_empty() {
                "never".into()
            } else {
                lits.join(" | ")
            };
        }
        for (key, joiner) in [("anyOf", " | "), ("oneOf", " | "), ("allOf", " & ")] {
            if let Some(Value::Array(parts)) = o.get(key) {
                let own = self.typed(o, depth);
                let mut items: Vec<String> = parts
                    .iter()
                    .map(|p| format!("({})", self.ty(p, depth)))
                    .collect();
                if own != "unknown" {
                    // Sibling keywords apply to every branch.
                    items = items
                        .into_iter()
                        .map(|i| format!("({own} & {i})"))
                        .collect();
                }
                return items.join(joiner);
            }
        }
        self.typed(o, depth)
    }

    fn typed(&self, o: &Map<String, Value>, depth: usize) -> String {
        let types: Vec<&str> = match o.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ if o.contains_key("properties") => vec!["object"],
            _ => return "unknown".into(),
        };
        let parts: Vec<String> = types
            .iter()
            .map(|t| match *t {
                "string" => "string".into(),
                "number" | "integer" => "number".into(),
                "boolean" => "boolean".into(),
                "null" => "null".into(),
                "array" => {
                    let item = o
                        .get("items")
                        .map_or_else(|| "unknown".to_owned(), |i| self.ty(i, depth));
                    format!("Array<{item}>")
                }
                "object" => self.object(o, depth),
                _ => "unknown".into(),
            })
            .collect();
        parts.join(" | ")
    }

    fn object(&self, o: &Map<String, Value>, depth: usize) -> String {
        let indent = "  ".repeat(depth + 1);
        let required: Vec<&str> = o
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut out = String::from("{\n");
        // The index signature's value type must admit every named property's type too.
        let mut values: Vec<String> = Vec::new();
        if let Some(Value::Object(props)) = o.get("properties") {
            for (name, schema) in props {
                let description = schema.get("description").and_then(Value::as_str);
                doc(&mut out, description, &[], &indent);
                let optional = !required.contains(&name.as_str());
                let ty = self.ty(schema, depth + 1);
                let _ = writeln!(
                    out,
                    "{indent}{}{}: {ty};",
                    property(name),
                    if optional { "?" } else { "" }
                );
                values.push(one_line(&ty));
                if optional {
                    values.push("undefined".into());
                }
            }
        }
        let named = !values.is_empty();
        let mut rest: Vec<String> = Vec::new();
        let mut patterns: Vec<&str> = Vec::new();
        if let Some(Value::Object(pattern_props)) = o.get("patternProperties") {
            for (pattern, schema) in pattern_props {
                patterns.push(pattern);
                rest.push(one_line(&self.ty(schema, depth + 1)));
            }
        }
        match o.get("additionalProperties") {
            Some(Value::Bool(false)) => {}
            Some(extra @ Value::Object(_)) => rest.push(one_line(&self.ty(extra, depth + 1))),
            _ => rest.push("unknown".into()),
        }
        let closed_and_empty = !named && rest.is_empty();
        if !rest.is_empty() {
            values.extend(rest);
            let value = if values.iter().any(|v| v == "unknown") {
                "unknown".to_owned()
            } else {
                let mut unique: Vec<String> = Vec::new();
                for v in values {
                    if !unique.contains(&v) {
                        unique.push(v);
                    }
                }
                unique.join(" | ")
            };
            if !patterns.is_empty() {
                let listed: Vec<String> = patterns.iter().map(|p| format!("`{p}`")).collect();
                let note = format!(
                    "Not checked by this type: property names against the patterns {}{}.",
                    listed.join(", "),
                    if named {
                        ", and which pattern's type applies"
                    } else {
                        ""
                    }
                );
                doc(&mut out, None, &[note], &indent);
            }
            let _ = writeln!(out, "{indent}[key: string]: {value};");
        }
        if closed_and_empty {
            // `{}` would accept any value but null and undefined.
            return "Record<string, never>".into();
        }
        let _ = write!(out, "{}}}", "  ".repeat(depth));
        out
    }
}

/// A type on one line: each line break and the indentation after it become one space
/// (string literals hold no raw line breaks, so their spaces are kept).
fn one_line(ty: &str) -> String {
    ty.lines()
        .map(str::trim_start)
        .collect::<Vec<_>>()
        .join(" ")
}

fn literal(v: &Value) -> String {
    match v {
        Value::String(s) => quote(s),
        Value::Number(_) | Value::Bool(_) | Value::Null => v.to_string(),
        _ => "unknown".into(),
    }
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn property(name: &str) -> String {
    let ident = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if ident {
        name.to_owned()
    } else {
        quote(name)
    }
}

fn doc(out: &mut String, description: Option<&str>, notes: &[String], indent: &str) {
    let mut lines: Vec<String> = description
        .map(|d| d.lines().map(str::to_owned).collect())
        .unwrap_or_default();
    if !notes.is_empty() && !lines.is_empty() {
        lines.push(String::new());
    }
    lines.extend(notes.iter().cloned());
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(out, "{indent}/**");
    for line in lines {
        let line = line.replace("*/", "*\\/");
        if line.is_empty() {
            let _ = writeln!(out, "{indent} *");
        } else {
            let _ = writeln!(out, "{indent} * {line}");
        }
    }
    let _ = writeln!(out, "{indent} */");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_the_common_constructs() {
        let ctx = Ctx {
            definitions: &BTreeMap::new(),
        };
        let schema = json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["a"],
            "properties": {
                "a": {"type": "string"},
                "smtp-id": {"type": ["integer", "null"]},
                "e": {"enum": ["x", "y", null]},
                "list": {"type": "array", "items": {"type": "object", "properties": {"k": {"type": "boolean"}}, "additionalProperties": false}}
            }
        });
        let ts = ctx.ty(&schema, 0);
        assert!(ts.contains("  a: string;"), "{ts}");
        assert!(ts.contains("  \"smtp-id\"?: number | null;"), "{ts}");
        assert!(ts.contains("  e?: \"x\" | \"y\" | null;"), "{ts}");
        assert!(ts.contains("list?: Array<{"), "{ts}");
        assert!(
            !ts.contains("[key: string]"),
            "closed objects have no index signature: {ts}"
        );
    }
}
