//! Struct fields for typify: properties whose identifiers clash get distinct ones
//! ([`crate::names`]), and the serde renames typify writes for them are put back to the
//! property names as written.
//!
//! typify names a field after its property with its own rule (the rule of
//! [`crate::names::rust_field`]), so `userId` and `user_id` both become `user_id` and the
//! struct does not compile; and it names the type of a property's value after the property,
//! so `""` gives the struct's own name and `a'b` the type of `a_b`. Before typify runs,
//! [`rename`] replaces each property that is not already its identifier, in the schema
//! typify reads, by a stand-in key: the chosen identifier followed by apostrophes (which typify's
//! rule drops, so the field gets exactly that identifier, and which make the stand-in
//! distinct from every string of the document), also in `required` and in the keys of
//! `default` and `enum` values. typify then writes the stand-in in serde attributes
//! (`rename` on fields and variants, `tag`); [`restore`] replaces it, in every serde
//! attribute, by the property's real name. The wire format is the schema's, whatever the
//! identifiers.

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
    if scope
        .iter()
        .zip(&idents)
        .all(|((name, _), ident)| name == ident)
    {
        return out;
    }
    let mut strings = BTreeSet::new();
    all_strings(schema, &mut strings);
    let mut stand_in: BTreeMap<String, String> = BTreeMap::new();
    let mut next = 1;
    for ((name, _), ident) in scope.iter().zip(&idents) {
        // Every name that is not its identifier: typify also names the type of a
        // property's value after the property's snake case, where `a'b` and `a_b` (or `""`
        // and the struct itself) meet and would be merged into one type.
        if name == ident {
            continue;
        }
        let key = loop {
            let key = format!("{ident}{}", "'".repeat(next));
            next += 1;
            if !strings.contains(&key) {
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
    // typify makes fields of required names too, even without a property schema.
    if let Some(Value::Array(required)) = o.get("required") {
        names.extend(required.iter().filter_map(Value::as_str).map(str::to_owned));
    }
    for child in crate::refs::subschemas(o) {
        collect(child, names, maps);
    }
}

/// Every string of a document: keys and values, anywhere.
fn all_strings(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::String(s) => {
            out.insert(s.clone());
        }
        Value::Array(items) => items.iter().for_each(|v| all_strings(v, out)),
        Value::Object(o) => {
            for (k, v) in o {
                out.insert(k.clone());
                all_strings(v, out);
            }
        }
        _ => {}
    }
}

/// The keys of a data value (`default`, an `enum` value) of the object schema `schema`,
/// replaced by their stand-ins, following the schema's properties into nested values.
fn rename_data(value: &mut Value, schema: &Value, stand_in: &BTreeMap<String, String>) {
    let props = schema.get("properties").and_then(Value::as_object);
    match value {
        Value::Object(o) => {
            let old = std::mem::take(o);
            for (k, mut v) in old {
                if let Some(sub) = props.and_then(|p| p.get(&k)) {
                    rename_data(&mut v, sub, stand_in);
                }
                o.insert(stand_in.get(&k).cloned().unwrap_or(k), v);
            }
        }
        Value::Array(items) => {
            if let Some(item) = schema.get("items").filter(|i| i.is_object()) {
                items
                    .iter_mut()
                    .for_each(|v| rename_data(v, item, stand_in));
            }
        }
        _ => {}
    }
}

fn replace_keys(schema: &mut Value, stand_in: &BTreeMap<String, String>) {
    let data = schema.get("default").is_some_and(|d| !d.is_string())
        || schema.get("enum").is_some_and(|e| {
            e.as_array()
                .is_some_and(|v| v.iter().any(|x| x.is_object() || x.is_array()))
        });
    if data {
        let snapshot = schema.clone();
        if let Some(o) = schema.as_object_mut() {
            if let Some(d) = o.get_mut("default") {
                rename_data(d, &snapshot, stand_in);
            }
            if let Some(Value::Array(values)) = o.get_mut("enum") {
                values
                    .iter_mut()
                    .for_each(|v| rename_data(v, &snapshot, stand_in));
            }
        }
    }
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

/// Puts the property names back where typify wrote stand-ins (see [`rename`]): in every
/// `#[serde(…)]` attribute of the file (field and variant renames, `tag`).
pub(crate) fn restore(file: &mut syn::File, originals: &BTreeMap<String, String>) {
    if originals.is_empty() {
        return;
    }
    struct Restore<'a>(&'a BTreeMap<String, String>);
    impl syn::visit_mut::VisitMut for Restore<'_> {
        fn visit_attribute_mut(&mut self, attr: &mut syn::Attribute) {
            if !attr.path().is_ident("serde") {
                return;
            }
            if let syn::Meta::List(list) = &mut attr.meta {
                // Stand-ins end in an apostrophe: most attributes hold none.
                let has_stand_in =
                    list.tokens.clone().into_iter().any(
                        |t| matches!(t, TokenTree::Literal(l) if l.to_string().ends_with("'\"")),
                    );
                if has_stand_in {
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

/// The first struct of `file` (at any depth) with two fields of one name, or module with two
/// items of one name, and that name: a clash the naming rule missed (typify names default
/// functions and types after paths), reported instead of code that does not compile.
pub(crate) fn duplicate_name(file: &syn::File) -> Option<(String, String)> {
    struct Find(Option<(String, String)>);
    impl Find {
        fn items(&mut self, owner: &str, items: &[syn::Item]) {
            let mut types = BTreeSet::new();
            let mut values = BTreeSet::new();
            for item in items {
                // Rust's two namespaces: types and modules; functions and constants.
                let (ident, set) = match item {
                    syn::Item::Struct(s) => (&s.ident, &mut types),
                    syn::Item::Enum(e) => (&e.ident, &mut types),
                    syn::Item::Type(t) => (&t.ident, &mut types),
                    syn::Item::Mod(m) => (&m.ident, &mut types),
                    syn::Item::Fn(f) => (&f.sig.ident, &mut values),
                    syn::Item::Const(c) => (&c.ident, &mut values),
                    _ => continue,
                };
                if !set.insert(ident.to_string()) && self.0.is_none() {
                    self.0 = Some((owner.to_owned(), ident.to_string()));
                }
            }
        }
    }
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
        fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
            if let Some((_, items)) = &m.content {
                self.items(&m.ident.to_string(), items);
            }
            syn::visit::visit_item_mod(self, m);
        }
    }
    let mut find = Find(None);
    find.items("the schema's module", &file.items);
    syn::visit::Visit::visit_file(&mut find, file);
    find.0
}
