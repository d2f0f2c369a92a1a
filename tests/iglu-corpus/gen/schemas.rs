//! A generator of draft-4 Iglu schemas nobody has written yet: the keywords the corpus uses,
//! and the shapes that broke codegen before (property, schema and vendor names that clash
//! once made identifiers; `$ref` to the root, to a property, to escaped and percent-encoded
//! definitions; `patternProperties` maps; integers past 64 bits; tuples). Deterministic for
//! a seed. Used by `build.rs` (the types are compiled) and by the differential test.

use std::path::Path;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};
use serde_json::{json, Map, Value};

/// Property names drawn from the naming module's list of names that break identifier
/// generation (the same list, in the same order, so a seed draws the same schemas).
pub const NASTY_NAMES: &[&str] = eventwire_codegen::names::NASTY_NAMES;

const SCHEMA_NAMES: &[&str] = &[
    "add-to-cart",
    "add_to_cart",
    "AddToCart",
    "type",
    "self",
    "1h",
    "page_view",
    "pageView",
    "root",
    "error",
    "builder",
    "ping",
];

const VENDORS: &[&str] = &["com.gen", "com-gen", "com_gen", "io.gen.deep"];

const PATTERNS: &[&str] = &["^[a-z]+$", "^[A-Z]{2}-[0-9]{4}$", "^[0-9]+$", "^x"];

const FORMATS: &[&str] = &[
    "date-time",
    "date",
    "email",
    "uri",
    "uuid",
    "ipv4",
    "ipv6",
    "hostname",
];

const DEFINITION_NAMES: &[&str] = &["address", "a/b", "c~d", "e f", "item", "Item", "money"];

struct Gen {
    rng: StdRng,
    /// Definition keys of the document being generated.
    definitions: Vec<String>,
}

impl Gen {
    fn pick<'a>(&mut self, from: &'a [&'a str]) -> &'a str {
        from.choose(&mut self.rng).copied().unwrap_or_default()
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    /// A subschema; `depth` bounds nesting.
    fn schema(&mut self, depth: usize) -> Value {
        let kinds: &[&str] = if depth >= 3 {
            &["string", "integer", "number", "boolean"]
        } else {
            &[
                "string",
                "string",
                "integer",
                "number",
                "boolean",
                "array",
                "object",
                "map",
                "ref",
                "ref",
                "tuple",
                "any_of",
                "tagged",
                "not",
                "mixed_map",
            ]
        };
        let mut s = match self.pick(kinds) {
            "string" => self.string(),
            "integer" => self.integer(),
            "number" => {
                let mut s = json!({"type": "number"});
                if self.chance(0.5) {
                    s["minimum"] = json!(-1.5);
                    s["maximum"] = json!(100.25);
                }
                s
            }
            "boolean" => json!({"type": "boolean"}),
            "array" => {
                let mut s = json!({"type": "array", "items": self.schema(depth + 1)});
                if self.chance(0.5) {
                    s["minItems"] = json!(self.rng.random_range(0..2));
                    s["maxItems"] = json!(self.rng.random_range(2..5));
                }
                if self.chance(0.3) {
                    s["uniqueItems"] = json!(true);
                }
                s
            }
            "object" => {
                let n = self.rng.random_range(1..5);
                self.object(depth + 1, n)
            }
            "map" => json!({
                "type": "object",
                "patternProperties": {self.pick(PATTERNS): self.schema(depth + 1)},
                "additionalProperties": false
            }),
            "ref" if !self.definitions.is_empty() => {
                let d = self
                    .definitions
                    .choose(&mut self.rng)
                    .cloned()
                    .unwrap_or_default();
                json!({"$ref": format!("#/definitions/{}", pointer_segment(&d))})
            }
            "tuple" => json!({
                "type": "array",
                "items": [self.string(), self.integer()],
                "additionalItems": false
            }),
            "any_of" => json!({"anyOf": [{"type": "string", "maxLength": 5}, {"type": "integer"}]}),
            // A union tagged by a property named like a keyword.
            "tagged" => {
                let tag = self.pick(&["type", "kind", "Type", "@type"]);
                let variant = |name: &str, field: &str, t: &str| {
                    json!({"type": "object", "properties": {tag: {"enum": [name]}, field: {"type": t}},
                        "required": [tag, field], "additionalProperties": false})
                };
                json!({"oneOf": [variant("circle", "radius", "number"), variant("square", "side", "integer")]})
            }
            "not" => json!({"not": {"type": "string"}}),
            "mixed_map" => json!({
                "type": "object",
                "properties": {self.pick(NASTY_NAMES): self.string()},
                "patternProperties": {"^x": {"type": "integer"}},
                "additionalProperties": false
            }),
            _ => self.string(),
        };
        if self.chance(0.2) {
            if let Some(Value::String(t)) = s.get("type").cloned() {
                s["type"] = json!([t, "null"]);
            }
        }
        // Titles repeat in hand-written schemas (and named types after them).
        if self.chance(0.15) {
            s["title"] = json!(self.pick(&["Code", "Status", "Item"]));
        }
        s
    }

    fn string(&mut self) -> Value {
        let mut s = json!({"type": "string"});
        match self.rng.random_range(0..5) {
            0 => s["format"] = json!(self.pick(FORMATS)),
            1 => s["pattern"] = json!(self.pick(PATTERNS)),
            2 => {
                let values: &[&[&str]] = &[
                    &["a", "b"],
                    &["UNKNOWN", "Unknown"],
                    &["a-b", "a_b", "A B"],
                    &["", "x"],
                    &["type", "self"],
                ];
                s["enum"] = json!(values.choose(&mut self.rng).copied().unwrap_or_default());
            }
            _ => {}
        }
        if self.chance(0.5) && s.get("enum").is_none() && s.get("format").is_none() {
            let min = self.rng.random_range(0..3);
            s["minLength"] = json!(min);
            s["maxLength"] = json!(min + self.rng.random_range(2..20));
        }
        s
    }

    fn integer(&mut self) -> Value {
        let bounds: &[(Option<Value>, Option<Value>)] = &[
            (None, None),
            (Some(json!(0)), Some(json!(100))),
            (Some(json!(-5)), Some(json!(5))),
            (Some(json!(1)), None),
            (Some(json!(0)), Some(json!(9_223_372_036_854_776_000_u64))),
            (Some(json!(-1)), Some(json!(9_223_372_036_854_776_000_u64))),
            (Some(json!(0)), Some(json!(4_294_967_295_u64))),
        ];
        let (min, max) = bounds
            .choose(&mut self.rng)
            .cloned()
            .unwrap_or((None, None));
        let mut s = json!({"type": "integer"});
        if self.chance(0.1) {
            // Values past i64 in `enum` and `default`.
            s["enum"] = json!([9_223_372_036_854_775_808_u64, 1]);
            return s;
        }
        if self.chance(0.1) {
            s["default"] = json!(9_223_372_036_854_775_808_u64);
            return s;
        }
        if let Some(m) = min {
            s["minimum"] = m;
        }
        if let Some(m) = max {
            s["maximum"] = m;
        }
        if self.chance(0.15) && s.get("minimum").is_some() {
            s["exclusiveMinimum"] = json!(true);
        }
        s
    }

    fn object(&mut self, depth: usize, properties: usize) -> Value {
        let mut props = Map::new();
        for _ in 0..properties {
            let name = self.pick(NASTY_NAMES).to_owned();
            let schema = self.schema(depth);
            props.insert(name, schema);
        }
        let names: Vec<String> = props.keys().cloned().collect();
        let required: Vec<&String> = names.iter().filter(|_| self.rng.random_bool(0.4)).collect();
        let mut s = json!({"type": "object", "properties": props});
        if !required.is_empty() {
            s["required"] = json!(required);
        }
        // An object default naming its (possibly renamed) properties with plain values.
        if self.chance(0.15) {
            let mut d = Map::new();
            for (name, schema) in s["properties"].as_object().into_iter().flatten() {
                if schema.get("type") == Some(&json!("boolean")) {
                    d.insert(name.clone(), json!(true));
                }
            }
            s["default"] = Value::Object(d);
        }
        match self.rng.random_range(0..3) {
            0 => s["additionalProperties"] = json!(false),
            1 => s["additionalProperties"] = json!({"type": "string"}),
            _ => {}
        }
        s
    }

    /// A whole self-describing schema document.
    fn document(&mut self, vendor: &str, name: &str, version: &str) -> Value {
        self.definitions.clear();
        let mut definitions = Map::new();
        for _ in 0..self.rng.random_range(0..3) {
            let d = self.pick(DEFINITION_NAMES).to_owned();
            let body = if self.chance(0.5) {
                self.string()
            } else {
                self.object(2, 2)
            };
            definitions.insert(d.clone(), body);
            self.definitions.push(d);
        }
        let n = self.rng.random_range(2..8);
        let mut root = self.object(0, n);
        let names: Vec<String> = root["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        // References to the root (a tree, in an optional array) and to a sibling property.
        if self.chance(0.3) {
            root["properties"]["children"] =
                json!({"type": "array", "items": {"$ref": "#"}, "maxItems": 3});
            if let Some(Value::Array(req)) = root.get_mut("required") {
                req.retain(|r| r != "children");
            }
        }
        if let Some(first) = names.first() {
            if self.chance(0.4) {
                root["properties"]["same_as_first"] =
                    json!({"$ref": format!("#/properties/{}", pointer_segment(first))});
            }
        }
        if !definitions.is_empty() {
            root["definitions"] = Value::Object(definitions);
        }
        let mut doc = json!({
            "$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
            "self": {"vendor": vendor, "name": name, "format": "jsonschema", "version": version},
            "description": format!("Generated: {vendor}/{name} {version}"),
        });
        if let (Some(d), Value::Object(r)) = (doc.as_object_mut(), root) {
            d.extend(r);
        }
        doc
    }
}

/// A JSON pointer segment in a URI fragment: `~` → `~0`, `/` → `~1`, a space → `%20`.
fn pointer_segment(name: &str) -> String {
    name.replace('~', "~0")
        .replace('/', "~1")
        .replace('%', "%25")
        .replace(' ', "%20")
}

/// Writes `count` generated schemas under `dir` in Iglu layout (seeded, so the same every
/// build). Returns their Iglu URIs.
pub fn write_registry(dir: &Path, seed: u64, count: usize) -> std::io::Result<Vec<String>> {
    let mut g = Gen {
        rng: StdRng::seed_from_u64(seed),
        definitions: Vec::new(),
    };
    let mut uris = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    while uris.len() < count {
        let vendor = g.pick(VENDORS).to_owned();
        let name = g.pick(SCHEMA_NAMES).to_owned();
        let version = format!("1-0-{}", g.rng.random_range(0..2));
        if !seen.insert((vendor.clone(), name.clone(), version.clone())) {
            continue;
        }
        let doc = g.document(&vendor, &name, &version);
        let folder = dir.join(&vendor).join(&name).join("jsonschema");
        std::fs::create_dir_all(&folder)?;
        let text = serde_json::to_string_pretty(&doc).map_err(std::io::Error::other)?;
        std::fs::write(folder.join(&version), text)?;
        uris.push(format!("iglu:{vendor}/{name}/jsonschema/{version}"));
    }
    Ok(uris)
}
