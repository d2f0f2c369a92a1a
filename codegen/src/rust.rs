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
use std::panic::{catch_unwind, AssertUnwindSafe};

use eventwire_schema::iglu::SchemaKey;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::names::{distinct, rust_module, rust_type, with_bases, Renamed};
use crate::normalize::{normalize, Loosening};
use crate::registry::SchemaFile;
use crate::CodegenError;
use syn::punctuated::Punctuated;

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

/// Crates the generated code uses that it reaches through `::eventwire::__codegen`, so the
/// crate that includes it depends on `eventwire` and `serde` only.
const RUNTIME_CRATES: &[&str] = &["serde_json", "chrono", "uuid", "regress"];

/// Rewrites `::serde_json::…`, `::chrono::…`, `::uuid::…` and `::regress::…` to
/// `::eventwire::__codegen::…`: in paths, `use` items, the paths serde attributes hold as
/// strings (`skip_serializing_if = "::serde_json::Map::is_empty"`) and `vec![…]` bodies
/// (array defaults), everywhere typify or the check module write them.
struct ThroughEventwire;

impl ThroughEventwire {
    fn is_runtime(ident: &syn::Ident) -> bool {
        RUNTIME_CRATES.iter().any(|c| ident == c)
    }

    /// A path in a string (`"::serde_json::Map::is_empty"`), rewritten; `None` if it is not
    /// one of the runtime crates'.
    fn rewrite_str(text: &str) -> Option<String> {
        let rest = text.strip_prefix("::")?;
        let krate = rest.split("::").next()?;
        RUNTIME_CRATES
            .contains(&krate)
            .then(|| format!("::eventwire::__codegen::{rest}"))
    }

    /// String literals anywhere in `tokens`, rewritten by [`Self::rewrite_str`].
    fn rewrite_strings(tokens: TokenStream) -> TokenStream {
        use proc_macro2::TokenTree;
        tokens
            .into_iter()
            .map(|tree| match tree {
                TokenTree::Group(g) => {
                    let mut group =
                        proc_macro2::Group::new(g.delimiter(), Self::rewrite_strings(g.stream()));
                    group.set_span(g.span());
                    TokenTree::Group(group)
                }
                TokenTree::Literal(lit) => {
                    match syn::parse_str::<syn::LitStr>(&lit.to_string())
                        .ok()
                        .and_then(|s| Self::rewrite_str(&s.value()))
                    {
                        Some(text) => TokenTree::Literal(proc_macro2::Literal::string(&text)),
                        None => TokenTree::Literal(lit),
                    }
                }
                other => other,
            })
            .collect()
    }
}

impl syn::visit_mut::VisitMut for ThroughEventwire {
    fn visit_path_mut(&mut self, path: &mut syn::Path) {
        if path.leading_colon.is_some()
            && path
                .segments
                .first()
                .is_some_and(|s| Self::is_runtime(&s.ident))
        {
            let rest = std::mem::take(&mut path.segments);
            path.segments.push(format_ident!("eventwire").into());
            path.segments.push(format_ident!("__codegen").into());
            path.segments.extend(rest);
        }
        syn::visit_mut::visit_path_mut(self, path);
    }

    fn visit_attribute_mut(&mut self, attr: &mut syn::Attribute) {
        if attr.path().is_ident("serde") {
            if let syn::Meta::List(list) = &mut attr.meta {
                list.tokens = Self::rewrite_strings(std::mem::take(&mut list.tokens));
            }
        }
        syn::visit_mut::visit_attribute_mut(self, attr);
    }

    fn visit_macro_mut(&mut self, mac: &mut syn::Macro) {
        // `vec![a, b]`: its expressions are visited like any others. (`vec![x; n]` and other
        // macros are left as they are: the generator writes none with a runtime path.)
        if mac.path.is_ident("vec") {
            let parser = Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated;
            if let Ok(mut items) = mac.parse_body_with(parser) {
                for item in &mut items {
                    syn::visit_mut::VisitMut::visit_expr_mut(self, item);
                }
                mac.tokens = quote!(#items);
            }
        }
        syn::visit_mut::visit_macro_mut(self, mac);
    }

    fn visit_item_use_mut(&mut self, item: &mut syn::ItemUse) {
        if item.leading_colon.is_some() {
            if let syn::UseTree::Path(p) = &item.tree {
                if Self::is_runtime(&p.ident) {
                    let inner = item.tree.clone();
                    item.tree = syn::parse_quote!(eventwire::__codegen::#inner);
                }
            }
        }
        syn::visit_mut::visit_item_use_mut(self, item);
    }
}

fn version_ident(key: &SchemaKey) -> String {
    format!(
        "v{}_{}_{}",
        key.version.model, key.version.revision, key.version.addition
    )
}

/// Generates one schema's types (in its version module).
fn generate_one(file: &SchemaFile, uses: &mut Uses) -> Result<Generated, CodegenError> {
    let key = &file.key;
    if let Some(pointer) = crate::refs::left_recursion(&file.schema) {
        return Err(CodegenError::Schema {
            schema: key.to_string(),
            path: pointer,
            message: "a `$ref` that leads back to itself before any part of the value is checked: validating against it would never end".into(),
        });
    }
    let mut normalized = normalize(&file.schema);
    crate::normalize::widen_integers(&mut normalized.schema, &mut normalized.loosened);
    let renames = crate::fields::rename(&mut normalized.schema);
    let name = rust_type(&key.name);
    let root: schemars::schema::RootSchema =
        crate::plain::from_value(&normalized.schema).map_err(|e| CodegenError::Schema {
            schema: key.to_string(),
            path: String::new(),
            message: format!("not a JSON Schema typify can read: {e}"),
        })?;
    let mut settings = typify::TypeSpaceSettings::default();
    settings.with_struct_builder(true);
    let run = |root: &schemars::schema::RootSchema,
               type_name: &str|
     -> Result<(TokenStream, Option<TokenStream>, Uses), String> {
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
    let attempt = |root: &schemars::schema::RootSchema| {
        catch_unwind(AssertUnwindSafe(|| {
            let first = run(root, &name)?;
            if first.1.is_some() {
                // The wrapper takes the schema's name; typify's types move aside.
                run(root, &format!("{name}Inner"))
            } else {
                Ok(first)
            }
        }))
    };
    let mut generated = attempt(&root);
    if matches!(&generated, Ok(Err(m)) if m.contains("does not conform")) {
        // A `default` that does not conform to its own schema (draft 4 does not check
        // defaults), which typify refuses: the types are generated without the defaults.
        let mut schema = normalized.schema.clone();
        strip_defaults(&mut schema);
        if let Ok(root) = crate::plain::from_value::<schemars::schema::RootSchema>(&schema) {
            let again = attempt(&root);
            if matches!(again, Ok(Ok(_))) {
                normalized.loosened.push(Loosening {
                    path: String::new(),
                    what: "a `default` does not conform to its schema, so no default is used"
                        .into(),
                    checked: true,
                });
                generated = again;
            }
        }
    }
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
    let check = crate::check::generate(&file.schema);
    uses.regress |= check.uses_regress;
    let check_module = check.module;
    let schema_error = |message: String| CodegenError::Schema {
        schema: key.to_string(),
        path: String::new(),
        message,
    };
    let mut parsed: syn::File = syn::parse2(tokens)
        .map_err(|e| schema_error(format!("typify's output does not parse: {e}")))?;
    crate::fields::restore(&mut parsed, &renames.originals);
    if let Some((owner, name)) = crate::fields::duplicate_name(&parsed) {
        return Err(schema_error(format!(
            "two items of `{owner}` are named `{name}` (a name clash in typify's output; please report it)"
        )));
    }
    default_extra(&mut parsed);
    let (tokens, deserialize) = if let Some(inner) = wrapped {
        let doc = file
            .schema
            .get("description")
            .and_then(serde_json::Value::as_str)
            .map(|d| format!(" {d}"))
            .unwrap_or_default();
        let wrapper: syn::Item = syn::parse_quote! {
            #[doc = #doc]
            #[derive(::serde::Serialize, Clone, Debug)]
            #[serde(transparent)]
            pub struct #ident(pub #inner);
        };
        parsed.items.push(wrapper);
        (
            parsed.items,
            quote!(::serde_json::from_value(value).map(Self)),
        )
    } else {
        let shadow = hook_root(&mut parsed, &name).map_err(schema_error)?;
        parsed.items.push(shadow);
        let shadow_ident = format_ident!("__{}Deserialize", name);
        (parsed.items, quote!(#shadow_ident::deserialize(value)))
    };
    let self_describing = quote! {
        impl ::eventwire::SelfDescribing for #ident {
            const SCHEMA: &'static str = #uri;
        }
        impl #ident {
            /// Checks this value against its schema, every keyword of it (including what the
            /// Rust types cannot express: numeric bounds, item counts, formats, …).
            /// Deserialising and the builder run this check; a value built as a struct literal
            /// is checked here.
            pub fn validate(&self) -> ::std::result::Result<(), ::eventwire::check::Invalid> {
                let value = ::serde_json::to_value(self).map_err(|e| ::eventwire::check::Invalid {
                    pointer: ::std::string::String::new(),
                    keyword: "serialize",
                    message: e.to_string(),
                })?;
                Self::validate_json(&value)
            }

            /// Checks JSON data against this type's schema.
            pub fn validate_json(value: &::serde_json::Value) -> ::std::result::Result<(), ::eventwire::check::Invalid> {
                __check::root(value, &::eventwire::check::Path::Root)
            }
        }
        impl<'de> ::serde::Deserialize<'de> for #ident {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> ::std::result::Result<Self, D::Error> {
                let value = <::serde_json::Value as ::serde::Deserialize>::deserialize(deserializer)?;
                Self::validate_json(&value).map_err(<D::Error as ::serde::de::Error>::custom)?;
                #deserialize.map_err(<D::Error as ::serde::de::Error>::custom)
            }
        }
        #check_module
    };
    let module_doc = format!(" `{uri}`");
    let loosened_doc: Vec<String> = normalized
        .loosened
        .iter()
        .map(|l| {
            let at = l.at();
            if l.checked {
                format!(
                    " Looser Rust type at `{at}`: {}; `validate()` checks it.",
                    l.what
                )
            } else {
                format!(" Not checked at `{at}`: {}.", l.what)
            }
        })
        .chain(renames.renamed.iter().map(|r| {
            format!(
                " Field `{}` is the property `{}` (`{}` is taken).",
                r.ident,
                r.name.escape_debug(),
                r.base
            )
        }))
        .collect();
    let version = format_ident!("{}", version_ident(key));
    let mut module: syn::ItemMod = syn::parse_quote! {
        #[doc = #module_doc]
        #(#[doc = #loosened_doc])*
        pub mod #version {}
    };
    let ours: syn::File = syn::parse2(self_describing)
        .map_err(|e| schema_error(format!("generated code does not parse: {e}")))?;
    if let Some((_, items)) = &mut module.content {
        *items = tokens;
        items.extend(ours.items);
    }
    Ok(Generated {
        module,
        loosened: normalized.loosened,
        renamed: renames
            .renamed
            .into_iter()
            .map(|r| (key.to_string(), r))
            .collect(),
    })
}

/// Removes every `default` of a schema (at schema positions, not inside data).
fn strip_defaults(schema: &mut serde_json::Value) {
    if let Some(o) = schema.as_object_mut() {
        o.remove("default");
        crate::refs::each_child(o, "", &mut |child, _| strip_defaults(child));
    }
}

/// One schema's version module and what it reports.
struct Generated {
    module: syn::ItemMod,
    loosened: Vec<Loosening>,
    renamed: Vec<(String, Renamed)>,
}

/// Makes the root type run its schema check when deserialised and when built.
///
/// typify derives `Deserialize` on the root type; that derive moves to a private shadow
/// (`#[serde(remote = "Root")]`, serde's way of deriving for another type) which the
/// generated `Deserialize` calls after the check. The builder's `TryFrom` checks the value it
/// built. Returns the shadow type.
fn hook_root(file: &mut syn::File, name: &str) -> Result<syn::Item, String> {
    let shadow_ident = format_ident!("__{}Deserialize", name);
    let remote = name.to_owned();
    let mut shadow = None;
    for item in &mut file.items {
        let (ident, attrs) = match item {
            syn::Item::Struct(s) => (&s.ident, &mut s.attrs),
            syn::Item::Enum(e) => (&e.ident, &mut e.attrs),
            _ => continue,
        };
        if ident != name || !drop_deserialize(attrs)? {
            continue;
        }
        let serde_only =
            |attrs: &mut Vec<syn::Attribute>| attrs.retain(|a| a.path().is_ident("serde"));
        let mut copy = item.clone();
        let head: Vec<syn::Attribute> = vec![
            syn::parse_quote!(#[derive(::serde::Deserialize)]),
            syn::parse_quote!(#[serde(remote = #remote)]),
        ];
        match &mut copy {
            syn::Item::Struct(s) => {
                s.ident = shadow_ident.clone();
                s.vis = syn::Visibility::Inherited;
                serde_only(&mut s.attrs);
                s.attrs.splice(0..0, head);
                s.fields.iter_mut().for_each(|f| serde_only(&mut f.attrs));
            }
            syn::Item::Enum(e) => {
                e.ident = shadow_ident.clone();
                e.vis = syn::Visibility::Inherited;
                serde_only(&mut e.attrs);
                e.attrs.splice(0..0, head);
                for v in &mut e.variants {
                    serde_only(&mut v.attrs);
                    v.fields.iter_mut().for_each(|f| serde_only(&mut f.attrs));
                }
            }
            _ => {}
        }
        shadow = Some(copy);
        break;
    }
    let shadow = shadow.ok_or_else(|| format!("typify did not derive Deserialize for `{name}`"))?;
    // The builder: `impl TryFrom<builder::Name> for super::Name` checks what it built.
    for imp in builder_impls(file) {
        let for_root = matches!(&*imp.self_ty, syn::Type::Path(t)
            if t.path.segments.last().is_some_and(|s| s.ident == name));
        let is_try_from = imp
            .trait_
            .as_ref()
            .and_then(|(_, path, _)| path.segments.last())
            .is_some_and(|s| s.ident == "TryFrom");
        if !(for_root && is_try_from) {
            continue;
        }
        for f in &mut imp.items {
            let syn::ImplItem::Fn(f) = f else { continue };
            let original = &f.block;
            f.block = syn::parse_quote!({
                let built: ::std::result::Result<Self, super::error::ConversionError> =
                    (move || #original)();
                let built = built?;
                built.validate().map_err(|e| e.to_string())?;
                Ok(built)
            });
        }
    }
    Ok(shadow)
}

/// The `impl` blocks of typify's `builder` module.
fn builder_impls(file: &mut syn::File) -> impl Iterator<Item = &mut syn::ItemImpl> {
    file.items
        .iter_mut()
        .filter_map(|item| match item {
            syn::Item::Mod(m) if m.ident == "builder" => m.content.as_mut(),
            _ => None,
        })
        .flat_map(|(_, items)| items.iter_mut())
        .filter_map(|item| match item {
            syn::Item::Impl(imp) => Some(imp),
            _ => None,
        })
}

/// Builders start with an empty map of extra properties (typify starts them as "no value
/// supplied", so every builder of an open object would need `.extra(…)`).
fn default_extra(file: &mut syn::File) {
    const UNSET: &str = "\"no value supplied for extra\"";
    for imp in builder_impls(file) {
        let is_default = imp
            .trait_
            .as_ref()
            .and_then(|(_, path, _)| path.segments.last())
            .is_some_and(|s| s.ident == "Default");
        if !is_default {
            continue;
        }
        for f in &mut imp.items {
            let syn::ImplItem::Fn(f) = f else { continue };
            let Some(syn::Stmt::Expr(syn::Expr::Struct(init), None)) = f.block.stmts.last_mut()
            else {
                continue;
            };
            for field in &mut init.fields {
                let named_extra = matches!(&field.member, syn::Member::Named(i) if i == "extra");
                // Only the `extra` field is printed to compare (rarely more than one).
                if named_extra && quote!(#field).to_string().contains(UNSET) {
                    field.expr = syn::parse_quote!(Ok(::std::default::Default::default()));
                }
            }
        }
    }
}

/// Removes `Deserialize` from a `#[derive(…)]`; whether it was there.
fn drop_deserialize(attrs: &mut [syn::Attribute]) -> Result<bool, String> {
    let mut found = false;
    for attr in attrs.iter_mut().filter(|a| a.path().is_ident("derive")) {
        let paths = attr
            .parse_args_with(Punctuated::<syn::Path, syn::Token![,]>::parse_terminated)
            .map_err(|e| e.to_string())?;
        let kept: Vec<&syn::Path> = paths
            .iter()
            .filter(|p| p.segments.last().is_none_or(|s| s.ident != "Deserialize"))
            .collect();
        if kept.len() != paths.len() {
            found = true;
            *attr = syn::parse_quote!(#[derive(#(#kept),*)]);
        }
    }
    Ok(found)
}

/// One vendor's module, formatted, and what went into it.
#[derive(Default)]
struct VendorOut {
    code: String,
    types: Vec<String>,
    loosened: Vec<(SchemaKey, Loosening)>,
    renamed: Vec<(String, Renamed)>,
    uses: Uses,
    errors: Vec<CodegenError>,
}

type Names<'a> = BTreeMap<&'a str, Vec<&'a SchemaFile>>;

/// Generates and formats one vendor's module, named `vendor_ident` (runs on a worker
/// thread).
fn vendor_module(vendor: &str, vendor_ident: &str, names: &Names<'_>) -> VendorOut {
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

fn format_tokens(tokens: TokenStream) -> String {
    match syn::parse2::<syn::File>(tokens.clone()) {
        Ok(mut file) => {
            syn::visit_mut::VisitMut::visit_file_mut(&mut ThroughEventwire, &mut file);
            prettyplease::unparse(&file)
        }
        Err(_) => tokens.to_string(),
    }
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
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let (vendors, vendor_idents, order, next) =
                    (&vendors, &vendor_idents, &order, &next);
                scope.spawn(move || {
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
