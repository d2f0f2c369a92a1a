//! Struct fields for typify: properties whose identifiers clash get distinct ones
//! ([`crate::names`]), and the serde renames typify writes for them are put back to the
//! property names as written.
//!
//! typify names a field after its property with its own rule (the rule of
//! [`crate::names::rust_field`]), so `userId` and `user_id` both become `user_id` and the
//! struct does not compile; and it names the type of a property's value after the property,
//! so `""` gives the struct's own name. Before typify runs, [`rename`] replaces each property
//! that is not already its identifier, in the schema typify reads, by a stand-in key: the
//! chosen identifier followed by
//! apostrophes (which typify's rule drops, so the field gets exactly that identifier, and
//! which make the stand-in distinct from every property name of the document). typify
//! then writes `#[serde(rename = "<stand-in>")]` on the field; [`restore`] replaces it by
//! the property's real name. The wire format is the schema's, whatever the identifiers.

use std::collections::{BTreeMap, BTreeSet};

use proc_macro2::{Literal, TokenStream, TokenTree};
use serde_json::{Map, Value};

use crate::names::{distinct, rust_field, with_bases, Renamed};

/// The stand-ins put into a schema, and what was renamed.
#[derive(Debug, Default)]
pub(crate) struct Renames {
    /// Stand-in key → the property name as written.
    pub originals: BTreeMap<String, String>,
    /// Renamed properties.
    pub renamed: Vec<Renamed>,
}

/// Gives the properties of `schema` (a normalised schema) distinct field identifiers,
/// through stand-in keys (module docs).
///
/// The scope is the whole document, not one object: typify merges the properties of
/// `allOf`/`oneOf` branches and of referenced definitions into one struct, so a name must
/// get the same identifier, and the same stand-in, wherever it appears. `extra` is reserved
/// when some object keeps its other properties in a map (an `additionalProperties` schema).
pub(crate) fn rename(schema: &mut Value) -> Renames {
    let mut names = BTreeSet::new();
    let mut maps = false;
    collect(schema, &mut names, &mut maps);
    let mut out = Renames::default();
    let mut reserved = BTreeSet::new();
    if maps {
        reserved.insert("extra".to_owned());
    }
    let scope = with_bases(names.iter().map(String::as_str), rust_field);
    let (idents, renamed) = distinct(&scope, rust_field, &reserved);
    let mut stand_in: BTreeMap<String, String> = BTreeMap::new();
    let mut next = 1;
    for ((name, _), ident) in scope.iter().zip(&idents) {
        if name == ident {
            continue;
        }
        let key = loop {
            let key = format!("{ident}{}", "'".repeat(next));
            next += 1;
            if !names.contains(&key) {
                break key;
            }
        };
        out.originals.insert(key.clone(), name.clone());
        stand_in.insert(name.clone(), key);
    }
    out.renamed = renamed;
    if !stand_in.is_empty() {
        replace_keys(schema, &stand_in);
    }
    out
}

/// Every property name of the document, and whether some object with properties keeps the
/// others in a map.
fn collect(schema: &Value, names: &mut BTreeSet<String>, maps: &mut bool) {
    let Some(o) = schema.as_object() else {
        return;
    };
    if let Some(Value::Object(props)) = o.get("properties") {
        names.extend(props.keys().cloned());
        *maps |= o.get("additionalProperties").is_some_and(Value::is_object);
    }
    for (child, _) in crate::refs::children(o, "") {
        collect(child, names, maps);
    }
}

fn replace_keys(schema: &mut Value, stand_in: &BTreeMap<String, String>) {
    let Some(o) = schema.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(props)) = o.remove("properties") {
        let props: Map<String, Value> = props
            .into_iter()
            .map(|(k, v)| (stand_in.get(&k).cloned().unwrap_or(k), v))
            .collect();
        o.insert("properties".into(), Value::Object(props));
    }
    if let Some(Value::Array(required)) = o.get_mut("required") {
        for r in required.iter_mut() {
            if let Some(key) = r.as_str().and_then(|n| stand_in.get(n)) {
                *r = Value::from(key.clone());
            }
        }
    }
    crate::refs::each_child(o, "", &mut |child, _| replace_keys(child, stand_in));
}

/// Puts the property names back into typify's serde renames (see [`rename`]), in every
/// field's `#[serde(…)]` attribute.
pub(crate) fn restore(file: &mut syn::File, originals: &BTreeMap<String, String>) {
    if originals.is_empty() {
        return;
    }
    struct Restore<'a>(&'a BTreeMap<String, String>);
    impl syn::visit_mut::VisitMut for Restore<'_> {
        fn visit_field_mut(&mut self, field: &mut syn::Field) {
            for attr in &mut field.attrs {
                if !attr.path().is_ident("serde") {
                    continue;
                }
                if let syn::Meta::List(list) = &mut attr.meta {
                    list.tokens = replace(list.tokens.clone(), self.0);
                }
            }
        }
    }
    syn::visit_mut::VisitMut::visit_file_mut(&mut Restore(originals), file);
}

fn replace(tokens: TokenStream, originals: &BTreeMap<String, String>) -> TokenStream {
    tokens
        .into_iter()
        .map(|t| match t {
            TokenTree::Literal(lit) => {
                let value = syn::parse_str::<syn::LitStr>(&lit.to_string()).ok();
                match value.and_then(|v| originals.get(&v.value())) {
                    Some(name) => {
                        let mut new = Literal::string(name);
                        new.set_span(lit.span());
                        TokenTree::Literal(new)
                    }
                    None => TokenTree::Literal(lit),
                }
            }
            other => other,
        })
        .collect()
}

/// The first struct of `file` (at any depth) with two fields of one name, and that name:
/// a clash the naming rule missed, reported instead of code that does not compile.
pub(crate) fn duplicate_field(file: &syn::File) -> Option<(String, String)> {
    struct Find(Option<(String, String)>);
    impl<'ast> syn::visit::Visit<'ast> for Find {
        fn visit_item_struct(&mut self, s: &'ast syn::ItemStruct) {
            let mut seen = BTreeSet::new();
            for f in &s.fields {
                if let Some(ident) = &f.ident {
                    if !seen.insert(ident.to_string()) && self.0.is_none() {
                        self.0 = Some((s.ident.to_string(), ident.to_string()));
                    }
                }
            }
            syn::visit::visit_item_struct(self, s);
        }
    }
    let mut find = Find(None);
    syn::visit::Visit::visit_file(&mut find, file);
    find.0
}
