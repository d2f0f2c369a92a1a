//! Fidelity of generated types to their schemas, measured against a reference validator.
//!
//! For every schema, derive boundary instances from the schema (each bound and one past it,
//! each enum value and one outside, a bad format, a wrong type and null per property, each
//! required property missing, an extra property, items counts, duplicate items) and compare
//! what the generated type accepts (`round_trip`: deserialise, which runs the generated
//! check, then serialise) with what the `jsonschema` crate accepts (draft 4, formats on, plus
//! `uuid` as Iglu validators check it). A valid instance must also come back with the same
//! meaning: equal as JSON Schema compares values, where an optional property that allows
//! `null` means the same absent or `null`, an absent property with a `default` means the
//! same as its default, and an optional array property means the same empty or absent
//! (docs/codegen.md), and still valid.

use std::collections::BTreeMap;

use eventwire_schema::draft4::tape::{Tape, TapeJson};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{json, Map, Value};

thread_local! {
    static RNG: std::cell::RefCell<StdRng> = std::cell::RefCell::new(StdRng::seed_from_u64(0));
    /// The document being measured, for in-document `$ref`s.
    static ROOT: std::cell::RefCell<Value> = const { std::cell::RefCell::new(Value::Null) };
}

/// `s`, or the target of its in-document `$ref` (followed a few times; escaped and
/// percent-encoded pointers included).
fn resolve(s: &Value) -> Value {
    let mut s = s.clone();
    for _ in 0..8 {
        let Some(r) = s.get("$ref").and_then(Value::as_str) else {
            break;
        };
        let Some(fragment) = r.strip_prefix('#') else {
            break;
        };
        let pointer = fragment.replace("%20", " ").replace("%25", "%");
        let target = ROOT.with(|root| root.borrow().pointer(&pointer).cloned());
        match target {
            Some(t) => s = t,
            None => break,
        }
    }
    s
}

fn seed(uri: &str) -> u64 {
    // FNV-1a: stable across runs and platforms.
    uri.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A string matching `pattern` (ECMA, checked with `regress`) of `min..=max` characters, if
/// a few random draws find one.
fn matching(pattern: &str, min: usize, max: Option<usize>) -> Option<String> {
    let check = regress::Regex::new(pattern).ok()?;
    // rand_regex draws whole matches of an unanchored expression.
    let body = pattern.strip_prefix('^').unwrap_or(pattern);
    let body = body.strip_suffix('$').unwrap_or(body);
    let ascii = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(true)
        .build()
        .parse(body);
    let generator = match ascii {
        Ok(hir) => rand_regex::Regex::with_hir(hir, 8).ok(),
        Err(_) => rand_regex::Regex::compile(body, 8).ok(),
    }?;
    RNG.with(|rng| {
        let mut rng = rng.borrow_mut();
        (0..20).find_map(|_| {
            let s: String = rng.sample(&generator);
            let n = s.chars().count();
            let fits = n >= min && max.is_none_or(|m| n <= m);
            (fits && check.find(&s).is_some()).then_some(s)
        })
    })
}

/// `round_trip` of a generated crate.
pub type RoundTrip = fn(&str, &Value) -> Option<Result<Value, String>>;

/// What one run measured.
#[derive(Debug, Default)]
pub struct Report {
    /// Schemas looked at.
    pub schemas: usize,
    /// Schemas the reference validator cannot compile (skipped).
    pub uncompilable: Vec<String>,
    /// Schemas without a generated type.
    pub missing_types: Vec<String>,
    /// Instances derived.
    pub instances: usize,
    /// Instances valid per the reference.
    pub valid: usize,
    /// Instances the generated types accept.
    pub accepted: usize,
    /// The type accepts what the reference refuses.
    pub accepts_invalid: usize,
    /// The type refuses what the reference accepts.
    pub rejects_valid: usize,
    /// Valid instances whose round trip changed their meaning or made them invalid.
    pub changed: usize,
    /// Instances the collector's tape validation judges otherwise than the same schema on
    /// a `serde_json::Value` (`eventwire_schema::draft4::tape`).
    pub tape_disagrees: usize,
    /// Disagreements by instance kind.
    pub by_kind: BTreeMap<String, usize>,
    /// A few disagreements, for people.
    pub examples: Vec<String>,
}

impl Report {
    /// Disagreements of any kind (the target is 0).
    #[must_use]
    pub fn disagreements(&self) -> usize {
        self.accepts_invalid
            + self.rejects_valid
            + self.changed
            + self.missing_types.len()
            + self.tape_disagrees
    }

    /// The report as a Markdown table.
    #[must_use]
    pub fn table(&self, title: &str) -> String {
        let mut t = format!("fidelity of generated types vs jsonschema (draft 4): {title}\n\n");
        t += "| measure | value |\n|---|---:|\n";
        t += &format!(
            "| schemas | {} ({} not compilable by the reference, skipped{}) |\n",
            self.schemas,
            self.uncompilable.len(),
            self.uncompilable
                .iter()
                .map(|u| format!(": {u}"))
                .collect::<String>()
        );
        t += &format!("| instances | {} |\n", self.instances);
        t += &format!(
            "| valid per jsonschema / accepted by the types | {} / {} |\n",
            self.valid, self.accepted
        );
        t += &format!(
            "| type accepts an invalid instance | {} |\n",
            self.accepts_invalid
        );
        t += &format!(
            "| type rejects a valid instance | {} |\n",
            self.rejects_valid
        );
        t += &format!(
            "| valid instances whose round trip changed meaning | {} |\n",
            self.changed
        );
        t += &format!(
            "| tape validation disagrees with `Value` validation | {} |\n",
            self.tape_disagrees
        );
        t += &format!(
            "| schemas without a type | {} |\n",
            self.missing_types.len()
        );
        t += &format!("| **disagreements** | **{}** |\n", self.disagreements());
        let mut rows: Vec<(&String, &usize)> = self.by_kind.iter().collect();
        rows.sort_by(|a, b| b.1.cmp(a.1));
        if !rows.is_empty() {
            t += "\n| where (instance kind) | count |\n|---|---:|\n";
            for (k, n) in rows.iter().take(20) {
                t += &format!("| {k} | {n} |\n");
            }
        }
        for e in &self.examples {
            t += &format!("e.g. {e}\n");
        }
        t
    }
}

/// Measures the types of `round_trip` against every schema under `dir`.
///
/// # Panics
///
/// When `dir` holds no schemas (a measurement of nothing is a broken setup).
#[must_use]
pub fn measure(dir: &std::path::Path, round_trip: RoundTrip) -> Report {
    let loaded = eventwire_codegen::registry::load_dir(dir);
    assert!(
        !loaded.schemas.is_empty(),
        "no schemas under {}",
        dir.display()
    );
    let mut r = Report {
        schemas: loaded.schemas.len(),
        ..Report::default()
    };
    for file in &loaded.schemas {
        let uri = file.key.to_string();
        let document = eventwire_schema::draft4::as_draft4(&file.schema);
        let Ok(validator) = eventwire_schema::draft4::compile(&document) else {
            r.uncompilable.push(uri);
            continue;
        };
        let Ok(tape_validator) = eventwire_schema::draft4::compile_for::<TapeJson>(&document)
        else {
            r.uncompilable.push(format!("{uri} (for tapes)"));
            continue;
        };
        // Strings for patterns are drawn at random, from a seed fixed per schema.
        RNG.with(|rng| *rng.borrow_mut() = StdRng::seed_from_u64(seed(&uri)));
        ROOT.with(|root| *root.borrow_mut() = document.clone());
        for (instance, label) in derive_instances(&document) {
            r.instances += 1;
            let schema_ok = validator.is_valid(&instance);
            let text = instance.to_string();
            let tape_ok = Tape::parse(&text).map(|t| tape_validator.is_valid(t.root()));
            if tape_ok.as_ref().ok() != Some(&schema_ok) {
                r.tape_disagrees += 1;
                *r.by_kind.entry(format!("tape: {label}")).or_default() += 1;
                if r.examples.len() < 40 {
                    r.examples.push(format!(
                        "{uri} [{label}] {instance} → value:{schema_ok} tape:{tape_ok:?}"
                    ));
                }
            }
            let Some(typed) = round_trip(&uri, &instance) else {
                r.missing_types.push(uri.clone());
                break;
            };
            let type_ok = typed.is_ok();
            r.valid += usize::from(schema_ok);
            r.accepted += usize::from(type_ok);
            let problem = if schema_ok != type_ok {
                if type_ok {
                    r.accepts_invalid += 1;
                } else {
                    r.rejects_valid += 1;
                }
                Some(format!(
                    "schema:{schema_ok} type:{}",
                    typed.as_ref().err().map_or("ok", String::as_str)
                ))
            } else if let (true, Ok(back)) = (schema_ok, &typed) {
                let same = same_meaning(&document, &instance, back);
                let still_valid = validator.is_valid(back);
                (!same || !still_valid).then(|| {
                    r.changed += 1;
                    format!("round trip changed it to {back}")
                })
            } else {
                None
            };
            if let Some(problem) = problem {
                *r.by_kind.entry(label.clone()).or_default() += 1;
                if r.examples.len() < 40 {
                    r.examples
                        .push(format!("{uri} [{label}] {instance} → {problem}"));
                }
            }
        }
    }
    r
}

/// Whether `b` means what `a` means under `schema`: equal as JSON Schema compares values,
/// where an optional property that allows `null` is the same absent or `null`.
fn same_meaning(schema: &Value, a: &Value, b: &Value) -> bool {
    let (Value::Object(x), Value::Object(y)) = (a, b) else {
        return eventwire::check::equal(a, b);
    };
    let props = schema.get("properties").and_then(Value::as_object);
    let required = required(schema);
    let null_is_absent = |k: &str| {
        !required.iter().any(|r| r == k) && props.and_then(|p| p.get(k)).is_some_and(allows_null)
    };
    let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
    keys.into_iter().all(|k| match (x.get(k), y.get(k)) {
        (Some(va), Some(vb)) => {
            let sub = props.and_then(|p| p.get(k)).unwrap_or(&Value::Null);
            same_meaning(sub, va, vb)
        }
        (Some(Value::Null), None) | (None, Some(Value::Null)) => null_is_absent(k),
        // typify fills a property's `default` when it is absent (docs/codegen.md).
        (None, Some(vb)) => props
            .and_then(|p| p.get(k))
            .and_then(|p| p.get("default"))
            .is_some_and(|d| eventwire::check::equal(d, vb)),
        // An optional array property that is empty is written absent (docs/codegen.md).
        (Some(Value::Array(items)), None) => {
            items.is_empty()
                && !required.iter().any(|r| r == k)
                && props
                    .and_then(|p| p.get(k))
                    .is_some_and(|p| types(p).iter().any(|t| t == "array"))
        }
        _ => false,
    })
}

fn allows_null(schema: &Value) -> bool {
    let by_type = match schema.get("type") {
        Some(Value::String(t)) => t == "null",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "null"),
        _ => true,
    };
    let by_enum = match schema.get("enum") {
        Some(Value::Array(vs)) => vs.contains(&Value::Null),
        _ => true,
    };
    by_type && by_enum
}

/// Boundary instances for a schema, each with a label saying what was varied.
pub fn derive_instances(schema: &Value) -> Vec<(Value, String)> {
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
    let s = &resolve(s);
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
        // Past i64 (`"maximum": 9223372036854776000`): the bound itself and i64::MAX + 1.
        if let Some(m) = s.get("maximum").and_then(Value::as_u64) {
            if m > i64::MAX as u64 {
                out.push((json!(m), "maximum past i64".into()));
                out.push((json!(i64::MAX as u64 + 1), "i64::MAX + 1".into()));
            }
        }
    }
    if let Some(Value::Object(patterns)) = s.get("patternProperties") {
        for (pattern, value) in patterns {
            if let Some(key) = matching(pattern, 1, Some(8)) {
                let one = |v: Value| Value::Object(Map::from_iter([(key.clone(), v)]));
                out.push((one(sample(value, 2)), "patterned key".into()));
                out.push((
                    one(json!("wrong type")),
                    "patterned key, wrong value".into(),
                ));
            }
        }
        out.push((json!({"9 no match": 1}), "key matching no pattern".into()));
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
    let s = &resolve(s);
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
            _ if s.get("pattern").is_some() => {
                let pattern = s.get("pattern").and_then(Value::as_str).unwrap_or_default();
                let min = s.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
                let max = s
                    .get("maxLength")
                    .and_then(Value::as_u64)
                    .map(|m| m as usize);
                matching(pattern, min, max).map_or_else(|| json!("a"), Value::String)
            }
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
