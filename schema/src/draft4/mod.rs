//! The one recipe that compiles an Iglu schema as JSON Schema draft 4.
//!
//! An Iglu schema's `$schema` names Iglu's self-describing meta-schema, not a draft, and its
//! `self` block is metadata: both are removed, the rest is compiled as draft 4 with formats
//! checked, `uuid` included (draft 4 leaves it unchecked; every Iglu validator checks it,
//! and so do the generated types, with the same definition: [`crate::check::Format::Uuid`]).

use serde_json::Value;

pub mod tape;

/// A compiled schema (the `jsonschema` crate's).
pub use jsonschema::Validator;

/// The document as draft 4 reads it: `$schema` and `self` removed.
#[must_use]
pub fn as_draft4(document: &Value) -> Value {
    let mut document = document.clone();
    if let Some(object) = document.as_object_mut() {
        object.remove("$schema");
        object.remove("self");
    }
    document
}

/// Compiles an Iglu schema document (see the module docs).
///
/// # Errors
///
/// The `jsonschema` crate's error when the document is not a valid draft-4 schema (a
/// keyword of the wrong type, an unresolvable `$ref`, a bad regex).
pub fn compile(document: &Value) -> Result<Validator, jsonschema::ValidationError<'static>> {
    compile_for::<jsonschema::json::SerdeJson>(document)
}

/// [`compile`], for instances of another representation (e.g. [`tape::TapeJson`]).
///
/// # Errors
///
/// As [`compile`].
pub fn compile_for<F: jsonschema::json::Json>(
    document: &Value,
) -> Result<Validator<F>, jsonschema::ValidationError<'static>> {
    jsonschema::options_for::<F>()
        .with_draft(jsonschema::Draft::Draft4)
        .should_validate_formats(true)
        .with_format("uuid", |s: &str| crate::check::Format::Uuid.accepts(s))
        .build(&as_draft4(document))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn iglu_metadata_is_ignored_and_formats_are_checked() {
        let schema = json!({
            "$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
            "self": {"vendor": "com.example", "name": "x", "format": "jsonschema", "version": "1-0-0"},
            "type": "object",
            "properties": {"id": {"type": "string", "format": "uuid"}, "at": {"type": "string", "format": "date-time"}}
        });
        let v = super::compile(&schema).unwrap_or_else(|e| panic!("{e}"));
        assert!(v.is_valid(
            &json!({"id": "6f1c7e9a-3b2d-4c5e-8f90-1a2b3c4d5e6f", "at": "2026-11-30T06:00:00Z"})
        ));
        assert!(!v.is_valid(&json!({"id": "not-a-uuid"})));
        assert!(!v.is_valid(&json!({"at": "yesterday"})));
        assert!(super::compile(&json!({"type": 7})).is_err());
    }
}
