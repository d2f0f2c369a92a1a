//! Personal-data marks on real schemas: every property of every Iglu Central schema marked
//! (at the root, then every leaf at any depth). Where `Marks::of` accepts the marks, every
//! boundary instance valid against the schema as written must stay valid against the
//! schema a collector compiles (`sealed_schema`) once its marked values are sealed: a
//! collector never refuses an event a tracker sealed correctly. Where it refuses them, it
//! must say which keyword also checks the value (no other error).

use std::path::Path;

use eventwire_iglu_corpus::fidelity::derive_instances;
use eventwire_schema::pii::{sealed_schema, MarkError, Marks, MARK};
use serde_json::Value;

/// A sealed value's shape, as a tracker writes one.
fn sealed() -> Value {
    Value::String(format!(
        "ew1.{}.{}.{}",
        "k".repeat(11),
        "e".repeat(87),
        "c".repeat(30)
    ))
}

/// `schema` with every property under its root's `properties` marked.
fn mark_root(schema: &Value) -> Value {
    let mut out = schema.clone();
    if let Some(Value::Object(props)) = out.get_mut("properties") {
        for p in props.values_mut() {
            if let Value::Object(p) = p {
                p.insert(MARK.into(), Value::Bool(true));
            }
        }
    }
    out
}

/// `schema` with every leaf property (one without `properties` or `items`) marked, at any
/// depth through `properties` and `items`.
fn mark_leaves(schema: &Value) -> Value {
    fn walk(node: &mut Value) {
        let Value::Object(object) = node else { return };
        if let Some(Value::Object(props)) = object.get_mut("properties") {
            for p in props.values_mut() {
                let leaf = p.get("properties").is_none() && p.get("items").is_none();
                if leaf {
                    if let Value::Object(p) = p {
                        p.insert(MARK.into(), Value::Bool(true));
                    }
                } else {
                    walk(p);
                }
            }
        }
        match object.get_mut("items") {
            Some(items @ Value::Object(_)) => walk(items),
            Some(Value::Array(tuple)) => tuple.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut out = schema.clone();
    walk(&mut out);
    out
}

#[test]
fn sealed_instances_of_marked_iglu_central_schemas_stay_valid() {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora/iglu-central/schemas");
    let loaded = eventwire_schema::registry::load_dir(&dir);
    assert_eq!(loaded.schemas.len(), 660);
    let (mut schemas, mut refused, mut checked, mut sealed_values) = (0, 0, 0, 0);
    let mut wrong = Vec::new();
    for file in &loaded.schemas {
        let Ok(original) = eventwire_schema::draft4::compile(&file.schema) else {
            continue;
        };
        let instances: Vec<Value> = derive_instances(&file.schema)
            .into_iter()
            .map(|(v, _)| v)
            .filter(|v| original.is_valid(v))
            .collect();
        for marked in [mark_root(&file.schema), mark_leaves(&file.schema)] {
            schemas += 1;
            let marks = match Marks::of(&marked) {
                Ok(marks) => marks,
                Err(MarkError::Constrained { .. }) => {
                    refused += 1;
                    continue;
                }
                Err(e) => {
                    wrong.push(format!("{}: {e}", file.key));
                    continue;
                }
            };
            let collector =
                eventwire_schema::draft4::compile(&sealed_schema(&marked).unwrap()).unwrap();
            for instance in &instances {
                let mut sealed_instance = instance.clone();
                for place in marks.places(instance) {
                    *sealed_instance.pointer_mut(&place).unwrap() = sealed();
                    sealed_values += 1;
                }
                checked += 1;
                if !collector.is_valid(&sealed_instance) {
                    let why: Vec<String> = collector
                        .iter_errors(&sealed_instance)
                        .map(|e| format!("{} ({:?})", e.instance_path(), e.kind().keyword()))
                        .take(3)
                        .collect();
                    wrong.push(format!("{}: a sealed instance refused: {why:?}", file.key));
                }
            }
        }
    }
    println!("{schemas} marked schemas, {refused} refused (Constrained), {checked} instances, {sealed_values} values sealed");
    assert!(checked > 5_000, "{checked} instances");
    assert!(sealed_values > 10_000, "{sealed_values} values sealed");
    assert!(
        wrong.is_empty(),
        "{} problems:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(30)].join("\n")
    );
}

/// The same property over generated schemas: each keyword that can also check a marked
/// value (and several that cannot), at the root, inside an object and inside array items.
/// Either `Marks::of` refuses the mark, naming a keyword, or a sealed instance stays valid.
#[test]
fn sealed_instances_of_generated_marked_schemas_stay_valid_or_the_mark_is_refused() {
    use serde_json::json;
    let checks = json!({"maxLength": 6, "format": "email", "pattern": "^a@"});
    // (what beside the marked property `e`, in the object that holds it)
    let besides = [
        json!({"allOf": [{"properties": {"e": checks.clone()}}]}),
        json!({"anyOf": [{"properties": {"e": checks.clone()}}, {"required": ["zz"]}]}),
        json!({"oneOf": [{"properties": {"e": checks.clone()}}]}),
        json!({"not": {"properties": {"e": {"maxLength": 1}}}}),
        json!({"dependencies": {"e": {"properties": {"e": checks.clone()}}}}),
        json!({"patternProperties": {"^e$": checks.clone()}}),
        json!({"$ref": "#/definitions/d"}),
        json!({"enum": [{"e": "a@b.c"}]}),
        json!({"allOf": [{"allOf": [{"properties": {"e": checks.clone()}}]}]}),
        json!({"anyOf": [{"required": ["e"]}]}),
        json!({"dependencies": {"e": ["e"]}}),
        json!({"patternProperties": {"^x": {"maxLength": 1}}}),
        json!({"oneOf": [{"properties": {"other": {"maxLength": 1}}}]}),
    ];
    let (mut refused, mut accepted) = (0, 0);
    for beside in &besides {
        let mut object =
            json!({"type": "object", "properties": {"e": {"type": "string", "x-pii": true}}});
        for (k, v) in beside.as_object().unwrap() {
            object[k] = v.clone();
        }
        let defs = json!({"d": {"properties": {"e": checks.clone()}}});
        let inner = json!({"e": "a@b.c"});
        for (schema, instance) in [
            (
                json!({"definitions": defs.clone()})
                    .as_object()
                    .unwrap()
                    .clone()
                    .into_iter()
                    .chain(object.as_object().unwrap().clone())
                    .collect::<serde_json::Map<_, _>>()
                    .into(),
                inner.clone(),
            ),
            (
                json!({"definitions": defs.clone(), "properties": {"a": object.clone()}}),
                json!({"a": inner.clone()}),
            ),
            (
                json!({"definitions": defs.clone(), "properties": {"l": {"type": "array", "items": object.clone()}}}),
                json!({"l": [inner.clone()]}),
            ),
        ] {
            let schema: Value = schema;
            let original = eventwire_schema::draft4::compile(&schema).unwrap();
            assert!(original.is_valid(&instance), "{schema} {instance}");
            match Marks::of(&schema) {
                Err(MarkError::Constrained { .. }) => refused += 1,
                Err(e) => panic!("{schema}: {e}"),
                Ok(marks) => {
                    accepted += 1;
                    let collector =
                        eventwire_schema::draft4::compile(&sealed_schema(&schema).unwrap())
                            .unwrap();
                    let mut sealed_instance = instance.clone();
                    for place in marks.places(&instance) {
                        *sealed_instance.pointer_mut(&place).unwrap() = sealed();
                    }
                    assert_ne!(sealed_instance, instance, "{schema}");
                    assert!(
                        collector.is_valid(&sealed_instance),
                        "a collector refuses a sealed instance of {schema}"
                    );
                }
            }
        }
    }
    // The first nine constructs check the value: refused; the last four cannot: accepted.
    assert_eq!((refused, accepted), (9 * 3, 4 * 3));
}
