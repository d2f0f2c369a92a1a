//! Fidelity of the generated types to their schemas, measured against a reference validator.
//!
//! For every schema of Iglu Central, derive boundary instances from the schema (each bound
//! and one past it, each enum value and one outside, a wrong type per property, each required
//! property missing, an extra property, null) and compare what the generated type accepts
//! (`round_trip`) with what the `jsonschema` crate (draft 4, formats on) accepts. Also count
//! valid instances whose round trip changes them.
//!
//! Run: `cargo run -p eventwire-iglu-corpus --example fidelity` (from the repository root)

#![allow(clippy::unwrap_used)] // measurement tool: fail loudly

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

fn main() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpora/iglu-central/schemas");
    let loaded = eventwire_codegen::registry::load_dir(&corpus);
    let (mut instances, mut valid, mut accepted) = (0usize, 0usize, 0usize);
    let (mut accepts_invalid, mut rejects_valid, mut changed) = (0usize, 0usize, 0usize);
    let mut by_keyword: BTreeMap<String, usize> = BTreeMap::new();
    let mut examples: Vec<String> = Vec::new();
    let mut uncompilable = 0;
    for file in &loaded.schemas {
        let uri = file.key.to_string();
        let mut document = file.schema.clone();
        document.as_object_mut().unwrap().remove("$schema");
        document.as_object_mut().unwrap().remove("self");
        let Ok(validator) = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .should_validate_formats(true)
            .build(&document)
        else {
            uncompilable += 1;
            continue;
        };
        for (instance, label) in derive_instances(&document) {
            instances += 1;
            let schema_ok = validator.is_valid(&instance);
            let typed = eventwire_iglu_corpus::round_trip(&uri, &instance)
                .expect("every corpus schema has a type");
            let type_ok = typed.is_ok();
            valid += usize::from(schema_ok);
            accepted += usize::from(type_ok);
            if schema_ok != type_ok {
                if type_ok {
                    accepts_invalid += 1;
                } else {
                    rejects_valid += 1;
                }
                *by_keyword.entry(label.clone()).or_default() += 1;
                if examples.len() < 12 {
                    examples.push(format!("{uri} [{label}] schema:{schema_ok} type:{type_ok}"));
                }
            } else if let (true, Ok(back)) = (schema_ok, &typed) {
                if back != &instance {
                    changed += 1;
                    *by_keyword
                        .entry(format!("round trip changed ({label})"))
                        .or_default() += 1;
                }
            }
        }
    }
    println!("fidelity of generated types vs jsonschema (draft 4), Iglu Central");
    println!();
    println!("| measure | value |");
    println!("|---|---:|");
    println!(
        "| schemas | {} ({uncompilable} not compilable by the reference, skipped) |",
        loaded.schemas.len()
    );
    println!("| instances | {instances} |");
    println!("| valid per jsonschema / accepted by the types | {valid} / {accepted} |");
    println!("| disagreements: type accepts an invalid instance | {accepts_invalid} |");
    println!("| disagreements: type rejects a valid instance | {rejects_valid} |");
    println!("| valid instances changed by the round trip | {changed} |");
    println!();
    println!("| where (instance kind) | count |");
    println!("|---|---:|");
    let mut rows: Vec<(&String, &usize)> = by_keyword.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1));
    for (k, n) in rows.iter().take(20) {
        println!("| {k} | {n} |");
    }
    println!();
    for e in examples {
        println!("e.g. {e}");
    }
}

/// Boundary instances for a schema, each with a label saying what was varied.
fn derive_instances(schema: &Value) -> Vec<(Value, String)> {
    let mut out = Vec::new();
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        for v in [
            sample(schema, 0),
            json!({}),
            json!([]),
            Value::Null,
            json!("x"),
            json!(1),
        ] {
            out.push((v, "root".to_owned()));
        }
        return out;
    };
    let required = required(schema);
    let mut base = Map::new();
    for name in &required {
        if let Some(p) = props.get(name) {
            base.insert(name.clone(), sample(p, 1));
        }
    }
    out.push((Value::Object(base.clone()), "base".into()));
    for (name, prop) in props {
        for (v, what) in boundaries(prop) {
            let mut o = base.clone();
            o.insert(name.clone(), v);
            out.push((Value::Object(o), what));
        }
    }
    for name in &required {
        let mut o = base.clone();
        o.remove(name);
        out.push((Value::Object(o), "required missing".into()));
    }
    let mut o = base.clone();
    o.insert("__extra_property".into(), json!(1));
    out.push((Value::Object(o), "extra property".into()));
    out
}

fn required(schema: &Value) -> Vec<String> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn types(schema: &Value) -> Vec<String> {
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// Values at and past each constraint of a property schema.
fn boundaries(s: &Value) -> Vec<(Value, String)> {
    let mut out = Vec::new();
    let ts = types(s);
    if let Some(Value::Array(values)) = s.get("enum") {
        for v in values {
            out.push((v.clone(), "enum value".into()));
        }
        out.push((json!("__not_in_enum__"), "outside enum".into()));
    }
    let num = |k: &str| s.get(k).and_then(Value::as_f64);
    let integer = ts.iter().any(|t| t == "integer");
    let step = if integer { 1.0 } else { 0.5 };
    let as_num = |x: f64| {
        if integer && x.fract() == 0.0 {
            json!(x as i64)
        } else {
            json!(x)
        }
    };
    if let Some(m) = num("minimum") {
        out.push((as_num(m), "minimum".into()));
        out.push((as_num(m - step), "below minimum".into()));
    }
    if let Some(m) = num("maximum") {
        out.push((as_num(m), "maximum".into()));
        out.push((as_num(m + step), "above maximum".into()));
    }
    if integer {
        out.push((json!(1.5), "integer given a fraction".into()));
    }
    let len = |k: &str| s.get(k).and_then(Value::as_u64).map(|n| n as usize);
    if let Some(n) = len("minLength") {
        out.push((json!("a".repeat(n)), "minLength".into()));
        if n > 0 {
            out.push((json!("a".repeat(n - 1)), "below minLength".into()));
        }
    }
    if let Some(n) = len("maxLength").filter(|n| *n < 100_000) {
        out.push((json!("a".repeat(n)), "maxLength".into()));
        out.push((json!("a".repeat(n + 1)), "above maxLength".into()));
    }
    if let Some(f) = s.get("format").and_then(Value::as_str) {
        out.push((json!(format!("not a {f}")), format!("bad format {f}")));
    }
    if ts.iter().any(|t| t == "array") {
        let item = s.get("items").map_or(json!("x"), |i| sample(i, 2));
        if let Some(n) = len("minItems") {
            out.push((json!(vec![item.clone(); n]), "minItems".into()));
            if n > 0 {
                out.push((json!(vec![item.clone(); n - 1]), "below minItems".into()));
            }
        }
        if let Some(n) = len("maxItems").filter(|n| *n < 1000) {
            out.push((json!(vec![item.clone(); n + 1]), "above maxItems".into()));
        }
        if s.get("uniqueItems") == Some(&Value::Bool(true)) {
            out.push((json!([item.clone(), item]), "uniqueItems duplicate".into()));
        }
    }
    let wrong = if ts.iter().any(|t| t == "string") {
        json!(12345)
    } else {
        json!("wrong type")
    };
    out.push((wrong, "wrong type".into()));
    out.push((Value::Null, "null".into()));
    out
}

/// A plausible value for a schema (not always valid: patterns are not generated).
fn sample(s: &Value, depth: usize) -> Value {
    if let Some(Value::Array(values)) = s.get("enum") {
        if let Some(v) = values.first() {
            return v.clone();
        }
    }
    let ts = types(s);
    let t = ts
        .iter()
        .find(|t| t.as_str() != "null")
        .cloned()
        .unwrap_or_else(|| {
            if s.get("properties").is_some() {
                "object".into()
            } else {
                "null".into()
            }
        });
    let num = |k: &str| s.get(k).and_then(Value::as_f64);
    match t.as_str() {
        "string" => match s.get("format").and_then(Value::as_str) {
            Some("date-time") => json!("2026-11-26T03:10:25Z"),
            Some("date") => json!("2026-11-26"),
            Some("uuid") => json!("6f1c7e9a-3b2d-4c5e-8f90-1a2b3c4d5e6f"),
            Some("email") => json!("a@example.com"),
            Some("uri") => json!("https://example.com/x"),
            Some("ipv4") => json!("192.0.2.1"),
            Some("ipv6") => json!("2001:db8::1"),
            Some("hostname") => json!("example.com"),
            _ => {
                let n = s
                    .get("minLength")
                    .and_then(Value::as_u64)
                    .unwrap_or(1)
                    .max(1) as usize;
                json!("a".repeat(n.min(64)))
            }
        },
        "integer" => json!(num("minimum").map_or(0, |m| m.ceil() as i64)),
        "number" => json!(num("minimum").unwrap_or(0.0)),
        "boolean" => json!(false),
        "array" => {
            let n = s.get("minItems").and_then(Value::as_u64).unwrap_or(0) as usize;
            let item = s.get("items").map_or(json!("x"), |i| sample(i, depth + 1));
            json!(vec![item; n.min(4)])
        }
        "object" if depth < 6 => {
            let mut o = Map::new();
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for name in required(s) {
                    if let Some(p) = props.get(&name) {
                        o.insert(name, sample(p, depth + 1));
                    }
                }
            }
            Value::Object(o)
        }
        "object" => json!({}),
        _ => Value::Null,
    }
}
