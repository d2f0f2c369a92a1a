//! Emitting: one vendor's module tree (a module per schema name holding its version modules,
//! the re-exported latest version of each MODEL), formatted.

use std::collections::{BTreeMap, BTreeSet};

use eventwire_schema::iglu::SchemaKey;
use proc_macro2::TokenStream;
use quote::format_ident;

use super::patch::ThroughEventwire;
use super::typify::generate_one;
use super::Uses;
use crate::names::{distinct, rust_module, rust_type, version_ident, with_bases, Renamed};
use crate::normalize::Loosening;
use crate::registry::SchemaFile;
use crate::CodegenError;

/// One vendor's module, formatted, and what went into it.
#[derive(Default)]
pub(super) struct VendorOut {
    pub(super) code: String,
    pub(super) types: Vec<String>,
    pub(super) loosened: Vec<(SchemaKey, Loosening)>,
    pub(super) renamed: Vec<(String, Renamed)>,
    pub(super) uses: Uses,
    pub(super) errors: Vec<CodegenError>,
}

pub(super) type Names<'a> = BTreeMap<&'a str, Vec<&'a SchemaFile>>;

/// Generates and formats one vendor's module, named `vendor_ident` (runs on a worker
/// thread).
pub(super) fn vendor_module(vendor: &str, vendor_ident: &str, names: &Names<'_>) -> VendorOut {
    let mut out = VendorOut::default();
    let mut items: Vec<syn::Item> = Vec::new();
    // The vendor's scope: a module per schema name, then the re-exported type names (one
    // per MODEL), distinct from each other and from the modules.
    let scope = with_bases(names.keys().copied(), rust_module);
    let (modules, renamed) = distinct(&scope, rust_module, &BTreeSet::new());
    let scope_name = format!("vendor {vendor}");
    // A renamed module's type names carry its number (`add_to_cart_2` → `AddToCart2`).
    let number: BTreeMap<&str, &str> = renamed
        .iter()
        .filter_map(|r| {
            let n = r.ident.strip_prefix(r.base.as_str())?.strip_prefix('_')?;
            let name = names.keys().copied().find(|k| *k == r.name)?;
            Some((name, n))
        })
        .collect();
    out.renamed
        .extend(renamed.iter().cloned().map(|r| (scope_name.clone(), r)));
    let mut exports: Vec<(String, String)> = Vec::new();
    let mut export_keys: Vec<&SchemaKey> = Vec::new();
    for (name, versions) in names {
        let mut latest: BTreeMap<u32, &SchemaKey> = BTreeMap::new();
        for file in versions {
            latest.insert(file.key.version.model, &file.key);
        }
        for (model, key) in latest {
            let base = format!("{}{}", rust_type(name), number.get(name).unwrap_or(&""));
            let (label, alias) = if model == 1 {
                ((*name).to_owned(), base)
            } else {
                (format!("{name} (MODEL {model})"), format!("{base}V{model}"))
            };
            exports.push((label, alias));
            export_keys.push(key);
        }
    }
    let (aliases, renamed) = distinct(&exports, rust_type, &modules.iter().cloned().collect());
    out.renamed
        .extend(renamed.into_iter().map(|r| (scope_name.clone(), r)));
    let module_of: BTreeMap<&str, &String> = names.keys().copied().zip(&modules).collect();
    let mut generated_ok: BTreeSet<&SchemaKey> = BTreeSet::new();
    for (name, versions) in names {
        let module_name = module_of[name];
        let mut version_modules = Vec::new();
        for file in versions {
            match generate_one(file, &mut out.uses) {
                Ok(g) => {
                    out.types.push(format!(
                        "{vendor_ident}::{module_name}::{}::{}",
                        version_ident(&file.key),
                        rust_type(name)
                    ));
                    out.loosened
                        .extend(g.loosened.into_iter().map(|l| (file.key.clone(), l)));
                    out.renamed.extend(g.renamed);
                    version_modules.push(g.module);
                    generated_ok.insert(&file.key);
                }
                Err(e) => out.errors.push(e),
            }
        }
        if version_modules.is_empty() {
            continue;
        }
        let module = format_ident!("{}", module_name);
        let doc = format!(" Versions of `iglu:{vendor}/{name}`.");
        let mut name_module: syn::ItemMod = syn::parse_quote! {
            #[doc = #doc]
            pub mod #module {}
        };
        if let Some((_, inner)) = &mut name_module.content {
            inner.extend(version_modules.into_iter().map(syn::Item::Mod));
        }
        items.push(syn::Item::Mod(name_module));
    }
    // Latest version of each MODEL, re-exported under a stable name (a MODEL whose latest
    // version failed is not exported: an older version would silently take its name).
    for (key, alias) in export_keys.iter().zip(&aliases) {
        if !generated_ok.contains(key) {
            continue;
        }
        let model = key.version.model;
        let (module, ty, alias_ident, version) = (
            format_ident!("{}", module_of[key.name.as_str()]),
            format_ident!("{}", rust_type(&key.name)),
            format_ident!("{}", alias),
            format_ident!("{}", version_ident(key)),
        );
        let doc = format!(" The latest MODEL-{model} version: `{key}`.");
        items.push(syn::parse_quote! {
            #[doc = #doc]
            pub use self::#module::#version::#ty as #alias_ident;
        });
    }
    let vendor_ident = format_ident!("{}", vendor_ident);
    let doc = format!(" Event types of the vendor `{vendor}`.");
    // typify's regex constructors unwrap patterns it already compiled at generation time.
    let mut vendor_module: syn::ItemMod = syn::parse_quote! {
        #[doc = #doc]
        #[allow(clippy::all, clippy::unwrap_used, dead_code, missing_docs, unused_imports, irrefutable_let_patterns, non_camel_case_types, unused_comparisons, rustdoc::all)]
        pub mod #vendor_ident {}
    };
    if let Some((_, inner)) = &mut vendor_module.content {
        *inner = items;
    }
    let mut file = syn::File {
        shebang: None,
        attrs: Vec::new(),
        items: vec![syn::Item::Mod(vendor_module)],
    };
    syn::visit_mut::VisitMut::visit_file_mut(&mut ThroughEventwire, &mut file);
    // Built as syn items all along: formatted without a round trip through tokens.
    out.code = prettyplease::unparse(&file);
    out
}

pub(super) fn format_tokens(tokens: TokenStream) -> String {
    match syn::parse2::<syn::File>(tokens.clone()) {
        Ok(mut file) => {
            syn::visit_mut::VisitMut::visit_file_mut(&mut ThroughEventwire, &mut file);
            prettyplease::unparse(&file)
        }
        Err(_) => tokens.to_string(),
    }
}
