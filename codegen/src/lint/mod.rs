//! `eventwire lint`: checks a schema directory before it ships.
//!
//! - **Layout**: every file is `<vendor>/<name>/<format>/<M-R-A>` and its `self` block says
//!   the same.
//! - **Draft 4**: the document (minus `$schema` and `self`) is a valid draft-4 schema (checked
//!   against the draft-4 meta-schema) and compiles (e.g. its patterns are valid regexes).
//! - **SchemaVer**: between a version and the next ADDITION of the same MODEL-REVISION
//!   (`1-0-0` → `1-0-1`), which must accept all data the earlier one accepted, none of:
//!   a new required property; a removed property; a narrowed `type`; a tightened constraint
//!   (`minimum`, `maximum`, `exclusiveMinimum`/`exclusiveMaximum`, `minLength`, `maxLength`,
//!   `minItems`, `maxItems`, `minProperties`, `maxProperties`, `multipleOf`, `pattern`,
//!   `format`, `enum` values removed, `additionalProperties` closed, `uniqueItems` added).
//!   Checked recursively through `properties`, `items` (a schema or a tuple),
//!   `additionalProperties` and `patternProperties`, following in-document `$ref`s on both
//!   sides (so inlining a definition is no change, and tightening inside one is found).
//!   Skipped version numbers are reported as warnings. REVISION and MODEL changes may break
//!   data by definition and are not checked.
//! - **Typos** (warnings): a `format` no validator here checks (`datetime` for `date-time`
//!   validates nothing), and an unknown keyword close to a draft-4 one (`maxlength`,
//!   `requried`), which is ignored as an annotation.
//! - **Personal data**: an `x-pii` mark must be `true` or `false` and on a property (not the
//!   schema itself); a key spelled like it but not exactly (`x-PII`, `x_pii`, `xpii`) is an
//!   error, since the field it meant to protect would be sent in clear.
//! - **Names** (warnings): vendors or schema names that become one identifier in the
//!   generated code (`add-to-cart` beside `add_to_cart`); codegen numbers the second one
//!   (`docs/codegen.md`), the warning says which gets which.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::registry::{load_dir, SchemaFile};

mod evolution;
mod names;

use evolution::check_evolution;
use names::check_names;

/// How serious an issue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Fails the lint (exit status 1).
    Error,
    /// Reported, does not fail.
    Warning,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// The file concerned.
    pub path: PathBuf,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, with the JSON path when there is one.
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}: {level}: {}", self.path.display(), self.message)
    }
}

/// Lints every schema under `dir`.
pub fn lint_dir(dir: &Path) -> Vec<Issue> {
    let loaded = load_dir(dir);
    let mut issues: Vec<Issue> = loaded
        .errors
        .iter()
        .map(|e| Issue {
            path: e.path.clone(),
            severity: Severity::Error,
            message: e.kind.to_string(),
        })
        .collect();
    for file in &loaded.schemas {
        issues.extend(check_draft4(file));
        issues.extend(check_typos(file));
        issues.extend(check_pii(file));
    }
    issues.extend(check_evolution(&loaded.schemas));
    issues.extend(check_names(&loaded.schemas));
    issues
        .sort_by(|a, b| (&a.path, a.severity, &a.message).cmp(&(&b.path, b.severity, &b.message)));
    issues
}

fn check_draft4(file: &SchemaFile) -> Vec<Issue> {
    let document = eventwire_schema::draft4::as_draft4(&file.schema);
    let error = |message: String| Issue {
        path: file.path.clone(),
        severity: Severity::Error,
        message,
    };
    let meta = jsonschema::draft4::meta::validator();
    let mut issues: Vec<Issue> = meta
        .iter_errors(&document)
        .map(|e| {
            error(format!(
                "not valid draft 4 at {}: {e}",
                pointer(&e.instance_path().to_string())
            ))
        })
        .collect();
    if let Some(target) = crate::refs::left_recursion(&document) {
        issues.push(error(format!(
            "the `$ref` to {} leads back to itself before any part of the value is checked: validation would never end",
            pointer(&target)
        )));
    }
    if issues.is_empty() {
        if let Err(e) = eventwire_schema::draft4::compile(&document) {
            if matches!(
                e.kind(),
                jsonschema::error::ValidationErrorKind::Referencing(_)
            ) {
                issues.push(Issue {
                    path: file.path.clone(),
                    severity: Severity::Warning,
                    message: format!("refers to another document, not checked here: {e}"),
                });
            } else {
                issues.push(error(format!("schema does not compile as draft 4: {e}")));
            }
        }
    }
    issues
}

/// The keywords of draft 4 (and Iglu's `self`).
const DRAFT4_KEYWORDS: &[&str] = &[
    "$schema",
    "id",
    "$ref",
    "title",
    "description",
    "default",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "additionalItems",
    "items",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxProperties",
    "minProperties",
    "required",
    "additionalProperties",
    "definitions",
    "properties",
    "patternProperties",
    "dependencies",
    "enum",
    "type",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "format",
    "self",
];

/// Keywords of later drafts, which a draft-4 validator (the collector's) ignores.
const LATER_KEYWORDS: &[&str] = &[
    "const",
    "contains",
    "propertyNames",
    "if",
    "then",
    "else",
    "$defs",
    "dependentRequired",
    "dependentSchemas",
    "unevaluatedProperties",
    "unevaluatedItems",
    "prefixItems",
];

/// Personal-data marks: not a boolean, on the schema itself, or where they would seal
/// nothing ([`eventwire_schema::pii::Marks::of`]); and keys in schema positions spelled
/// like the mark but not exactly (`x-PII`, `x_pii`), which mark nothing.
fn check_pii(file: &SchemaFile) -> Vec<Issue> {
    let error = |message: String| Issue {
        path: file.path.clone(),
        severity: Severity::Error,
        message,
    };
    let mut issues = Vec::new();
    if let Err(e) = eventwire_schema::pii::Marks::of(&file.schema) {
        issues.push(error(e.to_string()));
    }
    for (at, node, _) in eventwire_schema::pii::schema_nodes(&file.schema) {
        let Some(object) = node.as_object() else {
            continue;
        };
        for key in object.keys() {
            let folded: String = key
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .map(|c| c.to_ascii_lowercase())
                .collect();
            if folded == "xpii" && key != eventwire_schema::pii::MARK {
                issues.push(error(format!(
                    "`{key}` at {} is not the personal-data mark: it is `{}` (the field it marks would be sent in clear)",
                    pointer(&at),
                    eventwire_schema::pii::MARK
                )));
            }
        }
    }
    issues
}

/// A `format` no validator here checks, and unknown keywords that look like typos of draft-4
/// ones (or are keywords of later drafts): each is ignored by validation, so a warning.
fn check_typos(file: &SchemaFile) -> Vec<Issue> {
    let mut found = Vec::new();
    typos_in(&file.schema, "", &mut found);
    found
        .into_iter()
        .map(|message| Issue {
            path: file.path.clone(),
            severity: Severity::Warning,
            message,
        })
        .collect()
}

fn typos_in(schema: &Value, path: &str, out: &mut Vec<String>) {
    let Some(o) = schema.as_object() else {
        return;
    };
    let here = pointer(path);
    if let Some(format) = o.get("format").and_then(Value::as_str) {
        if eventwire_schema::check::Format::from_name(format).is_none() {
            let names =
                eventwire_schema::check::Format::ALL.map(eventwire_schema::check::Format::name);
            out.push(format!(
                "unknown `format: {format}` at {here} checks nothing{}",
                closest(format, &names)
                    .map(|f| format!(" (did you mean `{f}`?)"))
                    .unwrap_or_default()
            ));
        }
    }
    for key in o.keys() {
        if DRAFT4_KEYWORDS.contains(&key.as_str()) || key.starts_with("x-") {
            continue;
        }
        if LATER_KEYWORDS.contains(&key.as_str()) {
            out.push(format!(
                "`{key}` at {here} is a keyword of a later draft: draft-4 validation (the collector's) ignores it"
            ));
        } else if let Some(k) = closest(key, DRAFT4_KEYWORDS) {
            out.push(format!(
                "unknown keyword `{key}` at {here} is ignored (did you mean `{k}`?)"
            ));
        }
    }
    for (child, at) in crate::refs::children(o, path) {
        typos_in(child, &at, out);
    }
}

/// The known word `word` is most likely a typo of: same letters in another case, or at most
/// two edits away from a word of five letters or more.
fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    let lower = word.to_lowercase();
    known
        .iter()
        .map(|k| {
            let d = strsim::damerau_levenshtein(&lower, &k.to_lowercase());
            (d, *k)
        })
        .filter(|(d, k)| *d == 0 || (*d <= 2 && k.len() >= 5))
        .min()
        .map(|(_, k)| k)
}

fn pointer(p: &str) -> &str {
    if p.is_empty() {
        "/"
    } else {
        p
    }
}
