//! Names: vendors and schema names that become one identifier in the generated Rust or
//! TypeScript.

use std::path::PathBuf;

use super::{Issue, Severity};
use crate::registry::SchemaFile;

/// Vendors and schema names that become one identifier in the generated code.
pub(super) fn check_names(schemas: &[SchemaFile]) -> Vec<Issue> {
    use crate::names::{distinct, rust_module, with_bases};
    let mut issues = Vec::new();
    let file_of = |vendor: &str, name: Option<&str>| {
        schemas
            .iter()
            .find(|s| s.key.vendor == vendor && name.is_none_or(|n| s.key.name == n))
            .map(|s| s.path.clone())
            .unwrap_or_default()
    };
    let mut warn = |path: PathBuf, message: String| {
        issues.push(Issue {
            path,
            severity: Severity::Warning,
            message,
        });
    };
    let mut vendors: Vec<&str> = schemas.iter().map(|s| s.key.vendor.as_str()).collect();
    vendors.sort_unstable();
    vendors.dedup();
    let (_, renamed) = distinct(
        &with_bases(vendors.iter().copied(), rust_module),
        rust_module,
        &std::collections::BTreeSet::new(),
    );
    for r in renamed {
        warn(
            file_of(&r.name, None),
            format!(
                "vendor `{}` becomes the Rust module `{}`, as another vendor does: its module is `{}`",
                r.name, r.base, r.ident
            ),
        );
    }
    for vendor in &vendors {
        let mut names: Vec<&str> = schemas
            .iter()
            .filter(|s| s.key.vendor == *vendor)
            .map(|s| s.key.name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        let (_, renamed) = distinct(
            &with_bases(names.iter().copied(), rust_module),
            rust_module,
            &std::collections::BTreeSet::new(),
        );
        for r in renamed {
            warn(
                file_of(vendor, Some(&r.name)),
                format!(
                    "schema name `{}` of `{vendor}` becomes the Rust module `{}`, as another does: its module is `{}`, its type name is numbered too",
                    r.name, r.base, r.ident
                ),
            );
        }
    }
    let mut pairs: Vec<(String, String)> = schemas
        .iter()
        .map(|s| (s.key.vendor.clone(), s.key.name.clone()))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let (_, renamed) = crate::ts::stems(&pairs);
    for r in renamed {
        let (vendor, name) = r.name.split_once('/').unwrap_or((&r.name, ""));
        warn(
            file_of(vendor, Some(name)),
            format!(
                "`{vendor}/{name}` becomes the TypeScript type `{}`, as another schema does: its types are named `{}…`",
                r.base, r.ident
            ),
        );
    }
    issues
}
