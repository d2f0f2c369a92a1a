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

use std::collections::{BTreeMap, BTreeSet};

use eventwire_schema::iglu::SchemaKey;
use quote::quote;

use crate::names::{distinct, rust_module, with_bases, Renamed};
use crate::normalize::Loosening;
use crate::registry::SchemaFile;
use crate::CodegenError;

mod emit;
mod patch;
mod typify;

use emit::{format_tokens, vendor_module, Names, VendorOut};

/// Stack of each codegen worker thread: typify and the checks recurse once per level of
/// nesting, and a legal schema nested 55 objects deep overflowed the default 2 MiB (debug
/// build). 64 MiB is reserved, not used, until a schema needs it.
const WORKER_STACK_BYTES: usize = 64 * 1024 * 1024;

/// What generation produced.
#[derive(Debug, Clone)]
pub struct RustOutput {
    /// The formatted Rust source.
    pub code: String,
    /// Schemas that produced a type.
    pub types: usize,
    /// Where the Rust types are looser than the schemas, per schema.
    pub loosened: Vec<(SchemaKey, Loosening)>,
    /// Names whose identifiers clashed and were renamed ([`crate::names`]): where (a schema
    /// and the JSON pointer of the object, a vendor, or the registry), and the names.
    pub renamed: Vec<(String, Renamed)>,
    /// Schemas that produced no type, each with why; the rest of the registry was generated.
    pub skipped: Vec<CodegenError>,
    /// Whether the code uses `chrono`, `uuid` or `regress`, all reached through
    /// `::eventwire::__codegen`; `chrono` and `regress` need `eventwire`'s `codegen`
    /// feature (on by default, and asked for by the code with a clear error when off).
    pub uses: Uses,
}

/// Crates the generated code uses besides `serde` and `eventwire` (all reached through
/// `::eventwire::__codegen`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Uses {
    /// `chrono` (date-time formats).
    pub chrono: bool,
    /// `uuid` (uuid format).
    pub uuid: bool,
    /// `regress` (patterns).
    pub regress: bool,
}

/// Generates Rust for `schemas`. A schema that cannot be turned into types is left out and
/// reported in [`RustOutput::skipped`], naming it; the rest of the registry is generated.
/// `Err` only when generation itself failed.
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
    let (vendor_idents, renamed) = distinct(
        &with_bases(vendors.iter().map(|(v, _)| *v), rust_module),
        rust_module,
        &BTreeSet::new(),
    );
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(vendors.len().max(1));
    let mut results: Vec<Option<VendorOut>> = Vec::new();
    results.resize_with(vendors.len(), || None);
    // Largest vendors first, each taken by the next free worker: the cores finish together.
    let mut order: Vec<usize> = (0..vendors.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(vendors[i].1.values().map(Vec::len).sum::<usize>()));
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let (vendors, vendor_idents, order, next) = (&vendors, &vendor_idents, &order, &next);
        let work = move || {
            let mut done = Vec::new();
            loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&i) = order.get(k) else { break };
                done.push((
                    i,
                    vendor_module(vendors[i].0, &vendor_idents[i], vendors[i].1),
                ));
            }
            done
        };
        // Where no thread can be started (wasm32-wasip1 under node, a process at its
        // thread limit) this thread does the work: the others take what is left.
        let mut inline = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..workers {
            match std::thread::Builder::new()
                .stack_size(WORKER_STACK_BYTES)
                .spawn_scoped(scope, work)
            {
                Ok(h) => handles.push(h),
                Err(_) => inline.extend(work()),
            }
        }
        let joined = handles
            .into_iter()
            // A worker that panicked leaves its vendors empty; they are reported below.
            .filter_map(|h| h.join().ok())
            .flatten();
        for (i, out) in inline.into_iter().chain(joined) {
            results[i] = Some(out);
        }
    });

    let mut output = RustOutput {
        code: String::new(),
        types: 0,
        loosened: Vec::new(),
        renamed: renamed
            .into_iter()
            .map(|r| ("the registry's vendors".to_owned(), r))
            .collect(),
        skipped: Vec::new(),
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
        output.skipped.extend(out.errors);
        output.renamed.extend(out.renamed);
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

        /// Every schema with a generated type and its personal-data marks (JSON pointers
        /// into the data, `*` for each array item; empty when it has none), for
        /// `TrackerBuilder::pii_marks`: a tracker then seals events tracked as JSON and
        /// entities as it seals the typed events.
        #[allow(dead_code)]
        pub const PII_MARKS: &[(&str, &[&str])] = &[#((
            <#all_types as ::eventwire::SelfDescribing>::SCHEMA,
            <#all_types as ::eventwire::SelfDescribing>::PII,
        )),*];

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
    // Without eventwire's `codegen` feature, one clear error instead of many unresolved paths.
    let require = if output.uses.chrono || output.uses.regress {
        "::eventwire::__require_codegen_feature!();\n\n"
    } else {
        ""
    };
    output.code = format!("{header}{require}{list}{}", modules.join(""));
    Ok(output)
}
