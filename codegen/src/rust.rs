//! Rust generation with typify.
//!
//! ## Layout and naming (deterministic)
//!
//! - A module per vendor: `com.example.media` → `com_example_media`.
//! - In it, a module per schema name and one per version of it:
//!   `com_example_media::play::v1_0_0`, holding the type `Play` (the name in UpperCamelCase)
//!   and the types of its nested objects, each with the schema's descriptions as docs and
//!   an `impl eventwire::SelfDescribing` carrying the exact Iglu URI.
//! - The vendor module re-exports, for each MODEL, its latest version: MODEL 1 as `Play`,
//!   MODEL 2 as `PlayV2`, and so on. Code that writes `com_example_media::Play` tracks the
//!   newest compatible version and picks up ADDITIONs on regeneration; a new MODEL never
//!   changes what an existing name means. Every version stays reachable by its full path.
//!
//! The same schemas always produce byte-identical output: schemas are sorted by key, and
//! typify's output is ordered.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use eventwire::iglu::SchemaKey;
use heck::{ToSnakeCase, ToUpperCamelCase};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::normalize::{normalize, Loosening};
use crate::registry::SchemaFile;
use crate::CodegenError;

/// What generation produced.
#[derive(Debug, Clone)]
pub struct RustOutput {
    /// The formatted Rust source.
    pub code: String,
    /// Schemas that produced a type.
    pub types: usize,
    /// Constraints not enforced by the generated types, per schema.
    pub loosened: Vec<(SchemaKey, Loosening)>,
    /// Whether the code uses `chrono`, `uuid` or `regress` (the crate must depend on them).
    pub uses: Uses,
}

/// Crates the generated code needs besides `serde`, `serde_json` and `eventwire`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Uses {
    /// `chrono` (date-time formats).
    pub chrono: bool,
    /// `uuid` (uuid format).
    pub uuid: bool,
    /// `regress` (patterns).
    pub regress: bool,
}

/// A valid Rust identifier for a module: snake case, never a keyword, never a leading digit.
pub fn module_ident(raw: &str) -> String {
    let mut s: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    s = s.to_snake_case();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, 'n');
    }
    if syn::parse_str::<syn::Ident>(&s).is_err() {
        s.push('_');
    }
    s
}

/// The type name for a schema name: UpperCamelCase, never starting with a digit.
pub fn type_name(raw: &str) -> String {
    let mut s = raw.to_upper_camel_case();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, 'T');
    }
    if syn::parse_str::<syn::Ident>(&s).is_err() {
        s.push('_');
    }
    s
}

fn version_ident(key: &SchemaKey) -> String {
    format!(
        "v{}_{}_{}",
        key.version.model, key.version.revision, key.version.addition
    )
}

/// Generates one schema's types (in its version module).
fn generate_one(
    file: &SchemaFile,
    uses: &mut Uses,
) -> Result<(TokenStream, Vec<Loosening>), CodegenError> {
    let key = &file.key;
    let normalized = normalize(&file.schema);
    let name = type_name(&key.name);
    let root: schemars::schema::RootSchema =
        serde_json::from_value(normalized.schema).map_err(|e| CodegenError::Schema {
            schema: key.to_string(),
            path: String::new(),
            message: format!("not a JSON Schema typify can read: {e}"),
        })?;
    let mut settings = typify::TypeSpaceSettings::default();
    settings.with_struct_builder(true);
    let run = |type_name: &str| -> Result<(TokenStream, Option<TokenStream>, Uses), String> {
        let mut space = typify::TypeSpace::new(&settings);
        space
            .add_ref_types(root.definitions.clone())
            .map_err(|e| e.to_string())?;
        let id = space
            .add_type_with_name(&root.schema.clone().into(), Some(type_name.to_owned()))
            .map_err(|e| e.to_string())?;
        // A root that typify does not name (an array, "anything", a nullable object) gets a
        // transparent newtype, so every schema has a type to carry its URI.
        let ty = space.get_type(&id).map_err(|e| e.to_string())?;
        let wrapped = match ty.details() {
            typify::TypeDetails::Struct(_)
            | typify::TypeDetails::Enum(_)
            | typify::TypeDetails::Newtype(_) => None,
            _ => Some(ty.ident()),
        };
        let u = Uses {
            chrono: space.uses_chrono(),
            uuid: space.uses_uuid(),
            regress: space.uses_regress(),
        };
        Ok((space.to_stream(), wrapped, u))
    };
    let generated = catch_unwind(AssertUnwindSafe(|| {
        let first = run(&name)?;
        if first.1.is_some() {
            // The wrapper takes the schema's name; typify's types move aside.
            run(&format!("{name}Inner"))
        } else {
            Ok(first)
        }
    }));
    let (tokens, wrapped, u) = match generated {
        Ok(Ok(t)) => t,
        Ok(Err(message)) => {
            return Err(CodegenError::Schema {
                schema: key.to_string(),
                path: String::new(),
                message,
            })
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "typify panicked".into());
            return Err(CodegenError::Schema {
                schema: key.to_string(),
                path: String::new(),
                message: format!("typify cannot generate this schema: {message}"),
            });
        }
    };
    uses.chrono |= u.chrono;
    uses.uuid |= u.uuid;
    uses.regress |= u.regress;
    let ident = format_ident!("{}", name);
    let uri = key.to_string();
    let wrapper = wrapped.map(|inner| {
        let doc = file
            .schema
            .get("description")
            .and_then(serde_json::Value::as_str)
            .map(|d| format!(" {d}"))
            .unwrap_or_default();
        quote! {
            #[doc = #doc]
            #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
            #[serde(transparent)]
            pub struct #ident(pub #inner);
        }
    });
    let self_describing = quote! {
        #wrapper
        impl ::eventwire::SelfDescribing for #ident {
            const SCHEMA: &'static str = #uri;
        }
    };
    let module_doc = format!(" `{uri}`");
    let loosened_doc: Vec<String> = normalized
        .loosened
        .iter()
        .map(|l| {
            format!(
                " Not enforced by these types: {} (at `{}`).",
                l.what,
                if l.path.is_empty() { "/" } else { &l.path }
            )
        })
        .collect();
    let version = format_ident!("{}", version_ident(key));
    Ok((
        quote! {
            #[doc = #module_doc]
            #(#[doc = #loosened_doc])*
            pub mod #version {
                #tokens
                #self_describing
            }
        },
        normalized.loosened,
    ))
}

/// One vendor's module, formatted, and what went into it.
#[derive(Default)]
struct VendorOut {
    code: String,
    types: Vec<String>,
    loosened: Vec<(SchemaKey, Loosening)>,
    uses: Uses,
    errors: Vec<CodegenError>,
}

type Names<'a> = BTreeMap<&'a str, Vec<&'a SchemaFile>>;

/// Generates and formats one vendor's module (runs on a worker thread).
fn vendor_module(vendor: &str, names: &Names<'_>) -> VendorOut {
    let mut out = VendorOut::default();
    let mut items = Vec::new();
    let mut exported: BTreeMap<String, String> = BTreeMap::new();
    for (name, versions) in names {
        let mut version_modules = Vec::new();
        for file in versions {
            match generate_one(file, &mut out.uses) {
                Ok((tokens, l)) => {
                    out.types.push(format!(
                        "{}::{}::{}::{}",
                        module_ident(vendor),
                        module_ident(name),
                        version_ident(&file.key),
                        type_name(name)
                    ));
                    out.loosened
                        .extend(l.into_iter().map(|l| (file.key.clone(), l)));
                    version_modules.push(tokens);
                }
                Err(e) => out.errors.push(e),
            }
        }
        let module = format_ident!("{}", module_ident(name));
        let doc = format!(" Versions of `iglu:{vendor}/{name}`.");
        items.push(quote! {
            #[doc = #doc]
            pub mod #module { #(#version_modules)* }
        });
        // Latest version of each MODEL, re-exported under a stable name.
        let mut latest: BTreeMap<u32, &SchemaKey> = BTreeMap::new();
        for file in versions {
            latest.insert(file.key.version.model, &file.key);
        }
        for (model, key) in latest {
            let base = type_name(name);
            let mut alias = if model == 1 {
                base.clone()
            } else {
                format!("{base}V{model}")
            };
            while exported.contains_key(&alias) {
                alias.push('_');
            }
            exported.insert(alias.clone(), key.to_string());
            let (ty, alias_ident, version) = (
                format_ident!("{}", base),
                format_ident!("{}", alias),
                format_ident!("{}", version_ident(key)),
            );
            let doc = format!(" The latest MODEL-{model} version: `{key}`.");
            items.push(quote! {
                #[doc = #doc]
                pub use self::#module::#version::#ty as #alias_ident;
            });
        }
    }
    let vendor_ident = format_ident!("{}", module_ident(vendor));
    let doc = format!(" Event types of the vendor `{vendor}`.");
    // typify's regex constructors unwrap patterns it already compiled at generation time.
    let tokens = quote! {
        #[doc = #doc]
        #[allow(clippy::all, clippy::unwrap_used, dead_code, missing_docs, unused_imports, irrefutable_let_patterns, non_camel_case_types, unused_comparisons, rustdoc::all)]
        pub mod #vendor_ident { #(#items)* }
    };
    out.code = format_tokens(tokens);
    out
}

fn format_tokens(tokens: TokenStream) -> String {
    match syn::parse2::<syn::File>(tokens.clone()) {
        Ok(file) => prettyplease::unparse(&file),
        Err(_) => tokens.to_string(),
    }
}

/// Generates Rust for `schemas` (all of them must succeed).
///
/// Vendors are generated and formatted on all available cores; the output is assembled in
/// vendor order, so it does not depend on scheduling.
pub fn generate(schemas: &[SchemaFile]) -> Result<RustOutput, Vec<CodegenError>> {
    let mut sorted: Vec<&SchemaFile> = schemas.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    // vendor → name → versions (sorted)
    let mut tree: BTreeMap<&str, Names<'_>> = BTreeMap::new();
    for file in &sorted {
        tree.entry(&file.key.vendor)
            .or_default()
            .entry(&file.key.name)
            .or_default()
            .push(file);
    }
    let vendors: Vec<(&str, &Names<'_>)> = tree.iter().map(|(v, n)| (*v, n)).collect();
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(vendors.len().max(1));
    let mut results: Vec<Option<VendorOut>> = Vec::new();
    results.resize_with(vendors.len(), || None);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let vendors = &vendors;
                scope.spawn(move || {
                    // Every `workers`-th vendor: big and small vendors spread evenly.
                    (w..vendors.len())
                        .step_by(workers)
                        .map(|i| (i, vendor_module(vendors[i].0, vendors[i].1)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            // A worker that panicked leaves its vendors empty; they are reported below.
            if let Ok(done) = handle.join() {
                for (i, out) in done {
                    results[i] = Some(out);
                }
            }
        }
    });

    let mut output = RustOutput {
        code: String::new(),
        types: 0,
        loosened: Vec::new(),
        uses: Uses::default(),
    };
    let mut errors = Vec::new();
    let mut all_types: Vec<syn::Path> = Vec::new();
    let mut modules = Vec::with_capacity(results.len());
    for (i, result) in results.into_iter().enumerate() {
        let Some(out) = result else {
            errors.push(CodegenError::Io(format!(
                "generating vendor {} failed",
                vendors[i].0
            )));
            continue;
        };
        errors.extend(out.errors);
        for t in &out.types {
            match syn::parse_str::<syn::Path>(t) {
                Ok(p) => all_types.push(p),
                Err(e) => errors.push(CodegenError::Io(format!("{t}: {e}"))),
            }
        }
        output.types += out.types.len();
        output.loosened.extend(out.loosened);
        output.uses.chrono |= out.uses.chrono;
        output.uses.uuid |= out.uses.uuid;
        output.uses.regress |= out.uses.regress;
        modules.push(out.code);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let list = format_tokens(quote! {
        /// Every schema with a generated type, in order (each entry is read from the type's
        /// `SelfDescribing` impl, so the list cannot drift from the types).
        #[allow(dead_code)]
        pub const SCHEMAS: &[&str] = &[#(<#all_types as ::eventwire::SelfDescribing>::SCHEMA),*];

        /// Reads `data` as the generated type of the schema `uri` and writes it back: `None`
        /// when no type was generated for `uri`, `Some(Err)` when the type refuses the data,
        /// `Some(Ok)` with the data as the type serialises it. Checks dynamic JSON against the
        /// generated types (and measures their fidelity to the schemas).
        #[allow(dead_code)]
        pub fn round_trip(
            uri: &str,
            data: &::serde_json::Value,
        ) -> ::std::option::Option<::std::result::Result<::serde_json::Value, ::std::string::String>> {
            fn via<T: ::serde::de::DeserializeOwned + ::serde::Serialize>(
                data: &::serde_json::Value,
            ) -> ::std::result::Result<::serde_json::Value, ::std::string::String> {
                let typed: T = ::serde_json::from_value(data.clone()).map_err(|e| e.to_string())?;
                ::serde_json::to_value(&typed).map_err(|e| e.to_string())
            }
            #(
                if uri == <#all_types as ::eventwire::SelfDescribing>::SCHEMA {
                    return ::std::option::Option::Some(via::<#all_types>(data));
                }
            )*
            ::std::option::Option::None
        }
    });
    let header = "// @generated by eventwire-codegen from Iglu schemas. Do not edit: change the schemas and regenerate.\n\n";
    output.code = format!("{header}{list}{}", modules.join(""));
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_identifiers() {
        assert_eq!(
            module_ident("com.snowplowanalytics.snowplow"),
            "com_snowplowanalytics_snowplow"
        );
        assert_eq!(module_ident("link_click"), "link_click");
        assert_eq!(module_ident("1h"), "n1h");
        assert_eq!(module_ident("type"), "type_");
        assert_eq!(module_ident("ad-click"), "ad_click");
        assert_eq!(type_name("link_click"), "LinkClick");
        assert_eq!(type_name("1h"), "T1h");
        assert_eq!(type_name("self"), "Self_");
    }
}
