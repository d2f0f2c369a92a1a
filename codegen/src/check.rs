//! Generates each schema's check: Rust code compiled from the draft-4 schema as written, that
//! decides whether a JSON value is valid against it.
//!
//! typify's types carry the shape (fields, required, enums, patterns, lengths), but not
//! everything a schema says: numeric bounds, item counts, `uniqueItems`, most formats, and
//! the difference between an absent property and an explicit `null` are lost, and a few
//! constructs are loosened on purpose (see `normalize.rs`). The generated check closes that
//! gap: deserialising a type and building one with its builder run it, so a value the type
//! accepts is valid against its schema.
//!
//! Every draft-4 validation keyword is compiled: `type`, `enum`, the numeric, string, array
//! and object keywords, `format` (the formats of [`eventwire_schema::check::Format`]), `allOf`,
//! `anyOf`, `oneOf`, `not` and `$ref` within the document (recursion included). A `$ref` to
//! another document cannot be checked here and is recorded as a loosening by `normalize`.

use std::collections::BTreeMap;

use eventwire_schema::check::Format;
use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};
use serde_json::{Map, Value};

/// The generated check of one schema.
pub struct Generated {
    /// Items of the `__check` module; its entry point is `root(v, path)`.
    pub module: TokenStream,
    /// Whether the check uses `regress` (patterns).
    pub uses_regress: bool,
}

/// Compiles `schema` (a draft-4 document) into a `__check` module.
pub fn generate(schema: &Value) -> Generated {
    let mut g = Gen {
        document: schema,
        fns: Vec::new(),
        refs: BTreeMap::new(),
        next: 0,
        uses_regress: false,
    };
    let root = format_ident!("root");
    g.refs.insert("#".into(), Some(root.clone()));
    let body = g.body(schema);
    let fns = &g.fns;
    let module = quote! {
        #[allow(unused_variables, clippy::float_cmp)]
        pub(super) mod __check {
            use ::eventwire::check as c;
            use ::serde_json::Value;
            pub(super) fn #root(v: &Value, p: &c::Path<'_>) -> c::Check {
                #body
                Ok(())
            }
            #(#fns)*
        }
    };
    Generated {
        module,
        uses_regress: g.uses_regress,
    }
}

struct Gen<'a> {
    document: &'a Value,
    fns: Vec<TokenStream>,
    /// `$ref` → the function checking its target (`None`: accepts anything).
    refs: BTreeMap<String, Option<Ident>>,
    next: usize,
    uses_regress: bool,
}

/// A subschema's check: a call to a named function (for `$ref` targets, which may recurse)
/// or its statements inlined where it applies.
enum Sub {
    Call(Ident),
    Inline(TokenStream),
}

impl Sub {
    /// Statements checking `v` at `p`, returning the first failure.
    fn run(&self, v: TokenStream, p: TokenStream) -> TokenStream {
        match self {
            Self::Call(f) => quote!(#f(#v, #p)?;),
            Self::Inline(body) => quote!({ let v = #v; let p = #p; #body }),
        }
    }

    /// An expression: whether `v` at `p` passes.
    fn test(&self) -> TokenStream {
        match self {
            Self::Call(f) => quote!(#f(v, p).is_ok()),
            Self::Inline(body) => quote!((|| -> c::Check { #body Ok(()) })().is_ok()),
        }
    }
}

fn num(s: &Map<String, Value>, k: &str) -> Option<f64> {
    s.get(k).and_then(Value::as_f64)
}

fn count(s: &Map<String, Value>, k: &str) -> Option<u64> {
    s.get(k).and_then(Value::as_u64)
}

fn opt_u64(x: Option<u64>) -> TokenStream {
    match x {
        Some(x) => quote!(Some(#x)),
        None => quote!(None),
    }
}

impl Gen<'_> {
    fn fresh(&mut self, what: &str) -> Ident {
        self.next += 1;
        format_ident!("{}{}", what, self.next)
    }

    /// The check of a subschema, or `None` when the schema accepts every value.
    fn node(&mut self, schema: &Value) -> Option<Sub> {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            // Draft 4: `$ref` replaces the rest of the schema.
            return self.reference(r).map(Sub::Call);
        }
        let body = self.body(schema);
        (!body.is_empty()).then_some(Sub::Inline(body))
    }

    fn reference(&mut self, r: &str) -> Option<Ident> {
        if let Some(done) = self.refs.get(r) {
            return done.clone();
        }
        // The fragment is percent-encoded; `~0`/`~1` stay for `Value::pointer`, which reads
        // them per segment (unescaping them here made `a~1b` the two segments `a`, `b`).
        let Some(decoded) = crate::refs::pointer_of(r) else {
            // Another document: recorded as a loosening by `normalize`.
            self.refs.insert(r.to_owned(), None);
            return None;
        };
        let Some(target) = self.document.pointer(&decoded) else {
            self.refs.insert(r.to_owned(), None);
            return None;
        };
        // A chain of references that comes back to itself never reaches a schema (draft 4
        // leaves it undefined): it constrains nothing, instead of recursing without end.
        let mut seen = std::collections::BTreeSet::from([decoded.clone()]);
        let mut next = target;
        while let Some(inner) = next.get("$ref").and_then(Value::as_str) {
            let Some(p) = crate::refs::pointer_of(inner) else {
                break;
            };
            let Some(t) = self.document.pointer(&p) else {
                break;
            };
            if !seen.insert(p) {
                self.refs.insert(r.to_owned(), None);
                return None;
            }
            next = t;
        }
        // Named before its body is generated, so recursive references terminate.
        let name = self.fresh("r");
        self.refs.insert(r.to_owned(), Some(name.clone()));
        let body = if let Some(inner) = target.get("$ref").and_then(Value::as_str) {
            match self.reference(inner) {
                Some(f) => quote!(#f(v, p)?;),
                None => TokenStream::new(),
            }
        } else {
            self.body(target)
        };
        self.fns.push(quote! {
            fn #name(v: &Value, p: &c::Path<'_>) -> c::Check {
                #body
                Ok(())
            }
        });
        Some(name)
    }

    /// The statements checking `v` against `schema` (empty: accepts everything).
    fn body(&mut self, schema: &Value) -> TokenStream {
        let Some(s) = schema.as_object() else {
            return TokenStream::new();
        };
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            return match self.reference(r) {
                Some(f) => quote!(#f(v, p)?;),
                None => TokenStream::new(),
            };
        }
        let mut out = TokenStream::new();
        out.extend(self.type_check(s));
        if let Some(Value::Array(values)) = s.get("enum") {
            let json = Value::Array(values.clone()).to_string();
            out.extend(quote! {
                static ENUM: ::std::sync::OnceLock<::std::vec::Vec<Value>> = ::std::sync::OnceLock::new();
                c::one_of_values(v, p, c::values(&ENUM, #json))?;
            });
        }
        out.extend(Self::numbers(s));
        out.extend(self.strings(s));
        out.extend(self.arrays(s));
        out.extend(self.objects(s));
        out.extend(self.combinators(s));
        // A body is a function's or an inlined block's: the statics above never collide.
        out
    }

    fn type_check(&self, s: &Map<String, Value>) -> TokenStream {
        let names: Vec<&str> = match s.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => return TokenStream::new(),
        };
        let mut bits = Vec::new();
        for name in &names {
            let bit = match *name {
                "null" => quote!(c::types::NULL),
                "boolean" => quote!(c::types::BOOLEAN),
                "integer" => quote!(c::types::INTEGER),
                "number" => quote!(c::types::NUMBER),
                "string" => quote!(c::types::STRING),
                "array" => quote!(c::types::ARRAY),
                "object" => quote!(c::types::OBJECT),
                // `any` and unknown names: draft 4 knows only the seven above.
                _ => continue,
            };
            bits.push(bit);
        }
        if bits.is_empty() {
            return TokenStream::new();
        }
        quote!(c::of_type(v, p, #(#bits)|*)?;)
    }

    fn numbers(s: &Map<String, Value>) -> TokenStream {
        let multiple = num(s, "multipleOf");
        let bound = |k: &str| -> Option<TokenStream> {
            let n = s.get(k)?.as_number()?;
            let int = n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_u64().map(i128::from));
            Some(match int {
                Some(i) => quote!(c::Bound::Int(#i)),
                None => {
                    let f = n.as_f64()?;
                    quote!(c::Bound::Float(#f))
                }
            })
        };
        let (minimum, maximum) = (bound("minimum"), bound("maximum"));
        if minimum.is_none() && maximum.is_none() && multiple.is_none() {
            return TokenStream::new();
        }
        let flag = |k: &str| s.get(k) == Some(&Value::Bool(true));
        let mut fields = Vec::new();
        if let Some(b) = minimum {
            fields.push(quote!(minimum: Some(#b)));
            if flag("exclusiveMinimum") {
                fields.push(quote!(exclusive_minimum: true));
            }
        }
        if let Some(b) = maximum {
            fields.push(quote!(maximum: Some(#b)));
            if flag("exclusiveMaximum") {
                fields.push(quote!(exclusive_maximum: true));
            }
        }
        if let Some(m) = multiple {
            fields.push(quote!(multiple_of: Some(#m)));
        }
        quote! {
            c::numbers(v, p, &c::Numbers { #(#fields,)* ..c::Numbers::NONE })?;
        }
    }

    fn regex(&mut self, pattern: &str) -> TokenStream {
        self.uses_regress = true;
        quote! {{
            static RE: ::std::sync::OnceLock<::std::option::Option<::regress::Regex>> = ::std::sync::OnceLock::new();
            RE.get_or_init(|| ::regress::Regex::new(#pattern).ok())
        }}
    }

    fn strings(&mut self, s: &Map<String, Value>) -> TokenStream {
        let mut out = TokenStream::new();
        let (min, max) = (count(s, "minLength"), count(s, "maxLength"));
        if min.is_some() || max.is_some() {
            let (min, max) = (opt_u64(min), opt_u64(max));
            out.extend(quote!(c::length(s, p, #min, #max)?;));
        }
        if let Some(pattern) = s.get("pattern").and_then(Value::as_str) {
            let re = self.regex(pattern);
            let message = format!("does not match the pattern {pattern}");
            out.extend(quote! {
                if !#re.as_ref().is_some_and(|re| re.find(s).is_some()) {
                    return Err(c::fail(p, "pattern", #message));
                }
            });
        }
        if let Some(format) = s.get("format").and_then(Value::as_str) {
            if let Some(f) = Format::from_name(format) {
                let variant = format_ident!("{}", format!("{f:?}"));
                out.extend(quote!(c::format(s, p, c::Format::#variant)?;));
            } else if format == "regex" {
                self.uses_regress = true;
                out.extend(quote! {
                    if ::regress::Regex::new(s).is_err() {
                        return Err(c::fail(p, "format", "is not a valid regex"));
                    }
                });
            }
        }
        if out.is_empty() {
            return out;
        }
        quote! {
            if let Value::String(s) = v { #out }
        }
    }

    fn arrays(&mut self, s: &Map<String, Value>) -> TokenStream {
        let mut out = TokenStream::new();
        let (min, max) = (count(s, "minItems"), count(s, "maxItems"));
        if min.is_some() || max.is_some() {
            let (min, max) = (opt_u64(min), opt_u64(max));
            out.extend(quote!(c::items(a, p, #min, #max)?;));
        }
        if s.get("uniqueItems") == Some(&Value::Bool(true)) {
            out.extend(quote!(c::unique(a, p)?;));
        }
        match s.get("items") {
            Some(Value::Array(tuple)) => {
                for (i, item) in tuple.iter().enumerate() {
                    if let Some(f) = self.node(item) {
                        let run = f.run(quote!(x), quote!(&p.index(#i)));
                        out.extend(quote! {
                            if let Some(x) = a.get(#i) { #run }
                        });
                    }
                }
                let n = tuple.len();
                match s.get("additionalItems") {
                    Some(Value::Bool(false)) => out.extend(quote! {
                        if a.len() > #n {
                            return Err(c::fail(&p.index(#n), "additionalItems", "is not allowed"));
                        }
                    }),
                    Some(extra @ Value::Object(_)) => {
                        if let Some(f) = self.node(extra) {
                            let run = f.run(quote!(x), quote!(&p.index(i)));
                            out.extend(quote! {
                                for (i, x) in a.iter().enumerate().skip(#n) { #run }
                            });
                        }
                    }
                    _ => {}
                }
            }
            Some(item @ Value::Object(_)) => {
                if let Some(f) = self.node(item) {
                    let run = f.run(quote!(x), quote!(&p.index(i)));
                    out.extend(quote! {
                        for (i, x) in a.iter().enumerate() { #run }
                    });
                }
            }
            _ => {}
        }
        if out.is_empty() {
            return out;
        }
        quote! {
            if let Value::Array(a) = v { #out }
        }
    }

    fn objects(&mut self, s: &Map<String, Value>) -> TokenStream {
        let mut out = TokenStream::new();
        let (min, max) = (count(s, "minProperties"), count(s, "maxProperties"));
        if min.is_some() || max.is_some() {
            let (min, max) = (opt_u64(min), opt_u64(max));
            out.extend(quote!(c::properties(o, p, #min, #max)?;));
        }
        if let Some(Value::Array(names)) = s.get("required") {
            let names: Vec<&str> = names.iter().filter_map(Value::as_str).collect();
            if !names.is_empty() {
                out.extend(quote!(c::required(o, p, &[#(#names),*])?;));
            }
        }
        let properties = s.get("properties").and_then(Value::as_object);
        let names: Vec<&str> = properties
            .map(|ps| ps.keys().map(String::as_str).collect())
            .unwrap_or_default();
        for (name, sub) in properties.into_iter().flatten() {
            if let Some(f) = self.node(sub) {
                let run = f.run(quote!(x), quote!(&p.key(#name)));
                out.extend(quote! {
                    if let Some(x) = o.get(#name) { #run }
                });
            }
        }
        // patternProperties and additionalProperties look at every key.
        let mut per_key = TokenStream::new();
        let patterns = s.get("patternProperties").and_then(Value::as_object);
        let mut any_pattern_check = false;
        let additional = match s.get("additionalProperties") {
            Some(Value::Bool(false)) => Some(quote! {
                if !known {
                    return Err(c::fail(&p.key(k), "additionalProperties", "is not allowed"));
                }
            }),
            Some(extra @ Value::Object(_)) => self.node(extra).map(|f| {
                let run = f.run(quote!(x), quote!(&p.key(k)));
                quote!(if !known { #run })
            }),
            _ => None,
        };
        let mark = additional.is_some().then(|| quote!(known = true;));
        for (pattern, sub) in patterns.into_iter().flatten() {
            let check = self.node(sub).map(|f| f.run(quote!(x), quote!(&p.key(k))));
            if check.is_none() && mark.is_none() {
                continue;
            }
            any_pattern_check |= check.is_some();
            let re = self.regex(pattern);
            per_key.extend(quote! {
                if #re.as_ref().is_some_and(|re| re.find(k).is_some()) {
                    #mark
                    #check
                }
            });
        }
        if any_pattern_check || additional.is_some() {
            let known = if names.is_empty() {
                quote!(false)
            } else {
                quote!(matches!(k.as_str(), #(#names)|*))
            };
            let declare = match (&additional, per_key.is_empty()) {
                (None, _) => TokenStream::new(),
                (Some(_), true) => quote!(let known = #known;),
                (Some(_), false) => quote!(let mut known = #known;),
            };
            out.extend(quote! {
                for (k, x) in o {
                    #declare
                    #per_key
                    #additional
                }
            });
        }
        if let Some(Value::Object(deps)) = s.get("dependencies") {
            for (name, dep) in deps {
                match dep {
                    Value::Array(others) => {
                        let others: Vec<&str> = others.iter().filter_map(Value::as_str).collect();
                        out.extend(quote! {
                            if o.contains_key(#name) { c::required(o, p, &[#(#others),*])?; }
                        });
                    }
                    dep => {
                        if let Some(f) = self.node(dep) {
                            let run = f.run(quote!(v), quote!(p));
                            out.extend(quote! {
                                if o.contains_key(#name) { #run }
                            });
                        }
                    }
                }
            }
        }
        if out.is_empty() {
            return out;
        }
        quote! {
            if let Value::Object(o) = v { #out }
        }
    }

    fn combinators(&mut self, s: &Map<String, Value>) -> TokenStream {
        let mut out = TokenStream::new();
        let branches = |g: &mut Self, k: &str| -> Option<Vec<Option<Sub>>> {
            s.get(k)
                .and_then(Value::as_array)
                .map(|bs| bs.iter().map(|b| g.node(b)).collect())
        };
        if let Some(all) = branches(self, "allOf") {
            for f in all.into_iter().flatten() {
                out.extend(f.run(quote!(v), quote!(p)));
            }
        }
        if let Some(any) = branches(self, "anyOf") {
            // A branch that accepts everything makes the whole `anyOf` accept everything.
            if !any.is_empty() && any.iter().all(Option::is_some) {
                let fs = any.into_iter().flatten().map(|f| f.test());
                out.extend(quote! {
                    if !(#(#fs)||*) {
                        return Err(c::fail(p, "anyOf", "matches none of the alternatives"));
                    }
                });
            } else if any.is_empty() {
                out.extend(quote!(return Err(c::fail(p, "anyOf", "has no alternatives"));));
            }
        }
        if let Some(one) = branches(self, "oneOf") {
            let always = one.iter().filter(|b| b.is_none()).count();
            let fs = one.into_iter().flatten().map(|f| f.test());
            out.extend(quote! {
                let matched = #always #(+ usize::from(#fs))*;
                if matched != 1 {
                    return Err(c::fail(p, "oneOf", format!("matches {matched} of the alternatives, not exactly one")));
                }
            });
        }
        if let Some(not) = s.get("not") {
            match self.node(not) {
                Some(f) => out.extend({
                    let passes = f.test();
                    quote! {
                    if #passes {
                        return Err(c::fail(p, "not", "matches a schema it must not match"));
                    }
                    }
                }),
                None => out.extend(quote! {
                    return Err(c::fail(p, "not", "no value is allowed here"));
                }),
            }
        }
        out
    }
}
