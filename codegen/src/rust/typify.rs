//! Driving typify: one schema's types, from its normalized form through typify's
//! `TypeSpace` (again without `default`s when typify refuses one), into its version module;
//! a schema typify cannot handle is an error naming it.

use std::panic::{catch_unwind, AssertUnwindSafe};

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::patch::{default_extra, hook_root};
use super::Uses;
use crate::names::{rust_type, version_ident, Renamed};
use crate::normalize::{normalize, Loosening};
use crate::registry::SchemaFile;
use crate::CodegenError;

/// Generates one schema's types (in its version module).
pub(super) fn generate_one(file: &SchemaFile, uses: &mut Uses) -> Result<Generated, CodegenError> {
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
    // Personal-data marks: a tracker seals these places of the data; a mark that would seal
    // nothing is an error here as in `eventwire lint`.
    let marks = eventwire_schema::pii::Marks::of(&file.schema)
        .map_err(|e| schema_error(format!("personal-data mark: {e}")))?;
    let pii = (!marks.is_empty()).then(|| {
        let pointers = marks.pointers();
        quote!(const PII: &'static [&'static str] = &[#(#pointers),*];)
    });
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
            #pii
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
pub(super) struct Generated {
    pub(super) module: syn::ItemMod,
    pub(super) loosened: Vec<Loosening>,
    pub(super) renamed: Vec<(String, Renamed)>,
}
