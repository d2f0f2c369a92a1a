//! Names: the identifiers codegen gives to properties, schemas, vendors and versions, in Rust
//! and TypeScript. One rule for both languages, total and injective within each scope.
//!
//! Each name first gets its *base* identifier (the functions below: snake case for Rust
//! fields and modules, UpperCamelCase for types, a letter before a leading digit, `_` after
//! a keyword). Names whose bases are equal within one scope (the property names of a schema
//! document, a vendor's modules, the registry's vendors, TypeScript's top-level types) are a
//! *clash*, resolved by
//! [`distinct`]:
//!
//! - the name that already is its base identifier keeps it (`user_id` beside `userId`);
//!   otherwise the first of the clashing names in byte order does;
//! - the others, in byte order, get the base followed by `_2`, `_3`, … (UpperCamelCase: `2`,
//!   `3`, …), the first such identifier that is no other name's base and not taken yet;
//! - a base that is reserved (a field `extra` beside a map of the other properties, a
//!   TypeScript type the module itself declares) is kept by no name.
//!
//! The generated code keeps the original name on the wire (a serde `rename`, a quoted
//! TypeScript property), and each renamed name is reported as a note.

use std::collections::{BTreeMap, BTreeSet};

use eventwire_schema::iglu::SchemaKey;
use heck::{ToSnakeCase, ToUpperCamelCase};

/// A name whose identifier is not its base, because its base was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renamed {
    /// The name as written in the schemas.
    pub name: String,
    /// The identifier it would have had.
    pub base: String,
    /// The identifier it got.
    pub ident: String,
}

/// Distinct identifiers for the names of one scope, by the rule of this module.
///
/// `names` pairs each name with its base identifier (any order; names must be distinct).
/// `fix` turns a candidate such as `add_to_cart_2` into the identifier the language
/// accepts, as the base function does (a fixed point of `fix` is preferred).
/// `reserved` identifiers are never given. Returns the identifier of each name, in the
/// order of `names`, and the renamed ones.
pub fn distinct(
    names: &[(String, String)],
    fix: impl Fn(&str) -> String,
    reserved: &BTreeSet<String>,
) -> (Vec<String>, Vec<Renamed>) {
    let mut taken: BTreeSet<String> = reserved.clone();
    taken.extend(names.iter().map(|(_, base)| base.clone()));
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, (_, base)) in names.iter().enumerate() {
        groups.entry(base.as_str()).or_default().push(i);
    }
    let mut idents: Vec<String> = names.iter().map(|(_, base)| base.clone()).collect();
    let mut renamed = Vec::new();
    for (base, mut members) in groups {
        members.sort_by(|&a, &b| names[a].0.cmp(&names[b].0));
        let keeper = if reserved.contains(base) {
            None
        } else {
            members.iter().position(|&i| names[i].0 == base).or(Some(0))
        };
        if let Some(k) = keeper {
            members.remove(k);
        }
        let mut n = 2usize;
        for i in members {
            let ident = loop {
                let candidate = fix(&format!("{base}_{n}"));
                n += 1;
                // A fixed point of `fix` when one comes (typify re-applies its rule to
                // fields); past that many tries, any free identifier.
                let settled = fix(&candidate) == candidate || n > names.len() + 64;
                if settled && !taken.contains(&candidate) {
                    break candidate;
                }
            };
            taken.insert(ident.clone());
            renamed.push(Renamed {
                name: names[i].0.clone(),
                base: base.to_owned(),
                ident: ident.clone(),
            });
            idents[i] = ident;
        }
    }
    renamed.sort_by(|a, b| a.name.cmp(&b.name));
    (idents, renamed)
}

/// The base Rust field identifier of a property: typify's own rule, so a name this returns is
/// one typify keeps as it is. Snake case; characters that cannot continue an identifier
/// separate words; `x` before a start that cannot begin one (`1h` → `x1h`, `""` and `_` →
/// `x`); `_` after a keyword (`type` → `type_`).
#[must_use]
pub fn rust_field(name: &str) -> String {
    let out = match name {
        "+1" => "plus1".to_owned(),
        "-1" => "minus1".to_owned(),
        _ => name
            .replace('\'', "")
            .replace(|c: char| !unicode_ident::is_xid_continue(c), "-")
            .to_snake_case(),
    };
    let out = match out.chars().next() {
        None => "x".to_owned(),
        Some(c) if unicode_ident::is_xid_start(c) => out,
        Some(_) => format!("x{out}"),
    };
    if typify::accept_as_ident(&out) {
        out
    } else {
        format!("{out}_")
    }
}

/// The base Rust module identifier of a vendor or schema name: snake case of its ASCII
/// letters and digits, `n` before a leading digit or for an empty result, `_` after a
/// keyword (`com.acme` → `com_acme`, `1h` → `n1h`, `type` → `type_`).
#[must_use]
pub fn rust_module(name: &str) -> String {
    let mut s: String = name
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
    // syn's list lacks `gen` (reserved in edition 2024); typify's has it.
    if syn::parse_str::<syn::Ident>(&s).is_err() || !typify::accept_as_ident(&s) {
        s.push('_');
    }
    s
}

/// The base Rust type identifier of a schema name: UpperCamelCase, `T` before a leading digit
/// or for an empty result, `_` after a keyword (`link_click` → `LinkClick`, `1h` → `T1h`,
/// `self` → `Self_`).
#[must_use]
pub fn rust_type(name: &str) -> String {
    let mut s: String = name
        .replace(|c: char| !unicode_ident::is_xid_continue(c), "_")
        .to_upper_camel_case();
    if s.is_empty() || !s.starts_with(unicode_ident::is_xid_start) {
        s.insert(0, 'T');
    }
    // syn's list lacks `gen` (reserved in edition 2024); typify's has it.
    if syn::parse_str::<syn::Ident>(&s).is_err() || !typify::accept_as_ident(&s) {
        s.push('_');
    }
    s
}

/// The base TypeScript type identifier of a schema (`com.acme`, `add-to-cart` →
/// `ComAcmeAddToCart`): UpperCamelCase of the vendor and the name, `T` before a start that
/// cannot begin an identifier.
#[must_use]
pub fn ts_type(vendor: &str, name: &str) -> String {
    ts_ident(&format!("{vendor}_{name}"))
}

/// A TypeScript type identifier from any text: UpperCamelCase, ASCII letters and digits
/// only, `T` before a leading digit or for an empty result.
#[must_use]
pub fn ts_ident(text: &str) -> String {
    let mut s: String = text
        .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        .to_upper_camel_case();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, 'T');
    }
    s
}

/// Names that break identifier generation: keywords of Rust and TypeScript, unicode, digits
/// first, separators, case variants, apostrophes, the empty name. For property tests of the
/// naming rule and of generated code (`tests/iglu-corpus/gen/schemas.rs` draws property
/// names from it).
pub const NASTY_NAMES: &[&str] = &[
    "",
    "_",
    "__",
    "-",
    "1",
    "1h",
    "+1",
    "type",
    "type_",
    "Type",
    "self",
    "Self",
    "super",
    "crate",
    "fn",
    "gen",
    "async",
    "extra",
    "Extra",
    "class",
    "delete",
    "constructor",
    "__proto__",
    "userId",
    "user_id",
    "UserID",
    "user-id",
    "user.id",
    "user id",
    "A_B",
    "a-b",
    "a.b",
    "aB",
    "a_b",
    "a_b_2",
    "ÄB",
    "äb",
    "größe",
    "日本",
    "😀",
    "x",
    "x_2",
    "$ref",
    "@type",
    "a'b",
    "snake_",
    "0",
    "é",
    "value",
    "builder",
    "default",
    "error",
];

/// The names of one scope with their bases, for [`distinct`].
pub fn with_bases<'a>(
    names: impl IntoIterator<Item = &'a str>,
    base: impl Fn(&str) -> String,
) -> Vec<(String, String)> {
    names.into_iter().map(|n| (n.to_owned(), base(n))).collect()
}

pub(crate) fn version_ident(key: &SchemaKey) -> String {
    format!(
        "v{}_{}_{}",
        key.version.model, key.version.revision, key.version.addition
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand::seq::IndexedRandom as _;
    use rand::{RngExt as _, SeedableRng as _};

    fn field_idents(names: &[&str], reserved: &[&str]) -> Vec<String> {
        let reserved = reserved.iter().map(|s| (*s).to_owned()).collect();
        distinct(
            &with_bases(names.iter().copied(), rust_field),
            rust_field,
            &reserved,
        )
        .0
    }

    #[test]
    fn bases_table() {
        for (name, field, module, ty) in [
            ("userId", "user_id", "userid", "UserId"),
            ("smtp-id", "smtp_id", "smtp_id", "SmtpId"),
            ("1h", "x1h", "n1h", "T1h"),
            ("type", "type_", "type_", "Type"),
            ("self", "self_", "self_", "Self_"),
            ("Self", "self_", "self_", "Self_"),
            ("", "x", "n", "T"),
            ("_", "x", "n", "T"),
            ("😀", "x", "n", "T"),
            ("größe", "größe", "gr_e", "Größe"),
            ("com.acme", "com_acme", "com_acme", "ComAcme"),
            ("gen", "gen_", "gen_", "Gen"),
        ] {
            assert_eq!(rust_field(name), field, "field of {name:?}");
            assert_eq!(rust_module(name), module, "module of {name:?}");
            assert_eq!(rust_type(name), ty, "type of {name:?}");
        }
        assert_eq!(ts_type("com.acme", "add-to-cart"), "ComAcmeAddToCart");
        assert_eq!(ts_type("1", "x"), "T1X");
    }

    #[test]
    fn clash_table() {
        // (names, reserved, identifiers in the order of the names)
        let table: &[(&[&str], &[&str], &[&str])] = &[
            (&["userId", "user_id"], &[], &["user_id_2", "user_id"]),
            (&["smtp-id", "smtp_id"], &[], &["smtp_id_2", "smtp_id"]),
            (&["type", "type_"], &[], &["type_2", "type_"]),
            (&["Self", "self"], &[], &["self_", "self_2"]),
            (&["", "_", "😀"], &[], &["x", "x_2", "x_3"]),
            (
                &["A_B", "a-b", "a.b", "aB", "a_b"],
                &[],
                &["a_b_2", "a_b_3", "a_b_4", "a_b_5", "a_b"],
            ),
            // A suffixed identifier never takes another name's base.
            (&["a-b", "a_b_2", "A_B"], &[], &["a_b_3", "a_b_2", "a_b"]),
            (&["extra", "Extra"], &["extra"], &["extra_3", "extra_2"]),
            (&["plain"], &["extra"], &["plain"]),
        ];
        for (names, reserved, want) in table {
            assert_eq!(field_idents(names, reserved), *want, "{names:?}");
        }
    }

    /// Names drawn from a list of nasty ones (keywords of both languages, unicode, digits
    /// first, separators, case variants, empty) always get distinct identifiers that Rust
    /// accepts and that typify keeps as they are.
    #[test]
    fn random_name_sets_get_distinct_valid_identifiers() {
        // The shared list, and a few more names only this test needs.
        let mut nasty = NASTY_NAMES.to_vec();
        nasty.extend(["-1", "a__b", "😀😀", "x1h", "ab''", "00", "e\u{301}"]);
        let mut rng = rand::rngs::StdRng::seed_from_u64(15);
        for _ in 0..2_000 {
            let k = rng.random_range(1..=12);
            let mut names: Vec<&str> = nasty.sample(&mut rng, k).copied().collect();
            names.sort_unstable();
            names.dedup();
            let reserved: &[&str] = if rng.random_bool(0.5) {
                &["extra"]
            } else {
                &[]
            };
            let idents = field_idents(&names, reserved);
            let set: BTreeSet<&String> = idents.iter().collect();
            assert_eq!(set.len(), names.len(), "{names:?} → {idents:?}");
            for ident in &idents {
                assert!(syn::parse_str::<syn::Ident>(ident).is_ok(), "{ident:?}");
                assert_eq!(&rust_field(ident), ident, "typify would rename {ident:?}");
                assert!(!reserved.contains(&ident.as_str()));
            }
            // The same names in another order give the same identifiers.
            let mut reversed = names.clone();
            reversed.reverse();
            let mut again = field_idents(&reversed, reserved);
            again.reverse();
            assert_eq!(again, idents);
            let rust = |s: &str| syn::parse_str::<syn::Ident>(s).is_ok();
            let ts = |s: &str| {
                s.starts_with(|c: char| c.is_ascii_uppercase())
                    && s.chars().all(|c| c.is_ascii_alphanumeric())
            };
            for (base, valid) in [
                (
                    rust_module as fn(&str) -> String,
                    &rust as &dyn Fn(&str) -> bool,
                ),
                (rust_type, &rust),
                (ts_ident, &ts),
            ] {
                let (idents, _) = distinct(
                    &with_bases(names.iter().copied(), base),
                    base,
                    &BTreeSet::new(),
                );
                let set: BTreeSet<&String> = idents.iter().collect();
                assert_eq!(set.len(), names.len(), "{names:?} → {idents:?}");
                for ident in &idents {
                    assert!(valid(ident), "{ident:?}");
                }
            }
        }
    }
}
