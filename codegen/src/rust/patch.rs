//! Patching typify's output with syn: runtime crates' paths through
//! `::eventwire::__codegen`, the root type's checked `Deserialize` and builder, builders'
//! empty `extra` maps.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::punctuated::Punctuated;

/// Crates the generated code uses that it reaches through `::eventwire::__codegen`, so the
/// crate that includes it depends on `eventwire` and `serde` only.
const RUNTIME_CRATES: &[&str] = &["serde_json", "chrono", "uuid", "regress"];

/// Rewrites `::serde_json::…`, `::chrono::…`, `::uuid::…` and `::regress::…` to
/// `::eventwire::__codegen::…`: in paths, `use` items, the paths serde attributes hold as
/// strings (`skip_serializing_if = "::serde_json::Map::is_empty"`) and `vec![…]` bodies
/// (array defaults), everywhere typify or the check module write them.
pub(super) struct ThroughEventwire;

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

/// Makes the root type run its schema check when deserialised and when built.
///
/// typify derives `Deserialize` on the root type; that derive moves to a private shadow
/// (`#[serde(remote = "Root")]`, serde's way of deriving for another type) which the
/// generated `Deserialize` calls after the check. The builder's `TryFrom` checks the value it
/// built. Returns the shadow type.
pub(super) fn hook_root(file: &mut syn::File, name: &str) -> Result<syn::Item, String> {
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
pub(super) fn default_extra(file: &mut syn::File) {
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
