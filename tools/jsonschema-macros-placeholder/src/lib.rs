//! Placeholder for `jsonschema-macros` 0.61.2, never compiled into eventwire: jsonschema's
//! `macros` feature (the only user) is off. It exists so that the resolver can satisfy the
//! optional dependency that jsonschema's `arbitrary-precision` feature names, on a registry
//! mirror that lacks the real crate (docs/decisions.md).
