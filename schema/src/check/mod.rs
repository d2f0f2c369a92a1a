//! Building blocks of the schema checks that `eventwire-codegen` generates.
//!
//! Every generated event type gets a `validate()` compiled from its JSON Schema (draft 4),
//! run by deserialisation and by the builders, so that a value the type accepts is valid
//! against its schema, including what Rust types cannot say (numeric bounds, item counts,
//! `uniqueItems`, formats, `null` in a property that does not allow it). The generated code
//! calls the functions here; an application reads [`Invalid`] and otherwise has no reason
//! to use this module.
//!
//! Semantics follow draft 4 as the `jsonschema` crate implements it (the reference the
//! codegen's fidelity test compares against): lengths count Unicode code points, `1.0` is an
//! integer, numbers compare by value in `enum` and `uniqueItems`, and the formats checked are
//! `date`, `time`, `date-time`, `email`, `hostname`, `ipv4`, `ipv6`, `uri` and, as every Iglu
//! validator does, `uuid`.

use std::cmp::Ordering;
use std::fmt;
use std::sync::OnceLock;

use serde_json::{Map, Value};

mod format;
pub use format::{format, Format};

/// Where in the instance a check is: built on the stack while descending, rendered as a JSON
/// pointer only when a check fails.
#[derive(Debug, Clone, Copy)]
pub enum Path<'a> {
    /// The instance itself.
    Root,
    /// A property of the object at the parent path.
    Key(&'a Path<'a>, &'a str),
    /// An item of the array at the parent path.
    Index(&'a Path<'a>, usize),
}

impl<'a> Path<'a> {
    /// The path of property `key` below this one.
    #[must_use]
    pub const fn key(&'a self, key: &'a str) -> Path<'a> {
        Path::Key(self, key)
    }

    /// The path of item `index` below this one.
    #[must_use]
    pub const fn index(&'a self, index: usize) -> Path<'a> {
        Path::Index(self, index)
    }

    /// The JSON pointer (RFC 6901) of this path; `""` for the root.
    #[must_use]
    pub fn pointer(&self) -> String {
        let mut parts = Vec::new();
        let mut at = self;
        loop {
            match at {
                Path::Root => break,
                Path::Key(parent, key) => {
                    parts.push(key.replace('~', "~0").replace('/', "~1"));
                    at = parent;
                }
                Path::Index(parent, index) => {
                    parts.push(index.to_string());
                    at = parent;
                }
            }
        }
        parts.iter().rev().fold(String::new(), |mut s, p| {
            s.push('/');
            s.push_str(p);
            s
        })
    }
}

/// Why a value is not valid against its schema: where, which keyword, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// JSON pointer to the offending value (`""` for the whole value).
    pub pointer: String,
    /// The schema keyword that refused it (`maximum`, `format`, `type`, …).
    pub keyword: &'static str,
    /// What is wrong, for people.
    pub message: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.pointer.is_empty() {
            "/"
        } else {
            &self.pointer
        };
        write!(f, "{at}: {} ({})", self.message, self.keyword)
    }
}

impl std::error::Error for Invalid {}

/// What every check returns.
pub type Check = Result<(), Invalid>;

/// A failure at `path`.
#[must_use]
pub fn fail(path: &Path<'_>, keyword: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        pointer: path.pointer(),
        keyword,
        message: message.into(),
    }
}

/// JSON types as bits, for the `type` keyword.
pub mod types {
    /// `null`
    pub const NULL: u8 = 1;
    /// `boolean`
    pub const BOOLEAN: u8 = 1 << 1;
    /// `integer` (a number without a fractional part, `1.0` included)
    pub const INTEGER: u8 = 1 << 2;
    /// `number` (integers included)
    pub const NUMBER: u8 = 1 << 3;
    /// `string`
    pub const STRING: u8 = 1 << 4;
    /// `array`
    pub const ARRAY: u8 = 1 << 5;
    /// `object`
    pub const OBJECT: u8 = 1 << 6;
}

/// `type`: `allowed` is a mask of [`types`].
pub fn of_type(value: &Value, path: &Path<'_>, allowed: u8) -> Check {
    let ok = match value {
        Value::Null => allowed & types::NULL != 0,
        Value::Bool(_) => allowed & types::BOOLEAN != 0,
        Value::Number(n) => {
            allowed & types::NUMBER != 0 || (allowed & types::INTEGER != 0 && is_integer(n))
        }
        Value::String(_) => allowed & types::STRING != 0,
        Value::Array(_) => allowed & types::ARRAY != 0,
        Value::Object(_) => allowed & types::OBJECT != 0,
    };
    if ok {
        Ok(())
    } else {
        let names = [
            (types::NULL, "null"),
            (types::BOOLEAN, "a boolean"),
            (types::INTEGER, "an integer"),
            (types::NUMBER, "a number"),
            (types::STRING, "a string"),
            (types::ARRAY, "an array"),
            (types::OBJECT, "an object"),
        ];
        let expected: Vec<&str> = names
            .iter()
            .filter(|(bit, _)| allowed & bit != 0)
            .map(|(_, name)| *name)
            .collect();
        Err(fail(
            path,
            "type",
            format!("{} is not {}", type_name(value), expected.join(" or ")),
        ))
    }
}

fn is_integer(n: &serde_json::Number) -> bool {
    n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Equality as JSON Schema means it: numbers by value (`1 == 1.0`), objects regardless of
/// key order.
#[must_use]
pub fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, a)| y.get(k).is_some_and(|b| equal(a, b)))
        }
        _ => a == b,
    }
}

/// The values of a generated `enum` (parsed once from the JSON the generator wrote).
pub fn values<'a>(cell: &'a OnceLock<Vec<Value>>, json: &str) -> &'a [Value] {
    cell.get_or_init(|| serde_json::from_str(json).unwrap_or_default())
}

/// `enum`
pub fn one_of_values(value: &Value, path: &Path<'_>, allowed: &[Value]) -> Check {
    if allowed.iter().any(|a| equal(a, value)) {
        Ok(())
    } else {
        Err(fail(
            path,
            "enum",
            format!("{value} is not one of the allowed values"),
        ))
    }
}

/// A numeric bound as the schema wrote it: integers stay exact (`9223372036854775807` is not
/// `9.223372036854776e18`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// An integer bound.
    Int(i128),
    /// Any other bound.
    Float(f64),
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(i) => write!(f, "{i}"),
            Self::Float(x) => write!(f, "{x}"),
        }
    }
}

/// Compares a JSON number with a bound, exactly when both are integers or the float is
/// integral.
fn compare(n: &serde_json::Number, bound: Bound) -> Option<Ordering> {
    let int = n
        .as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from));
    match (int, bound) {
        (Some(i), Bound::Int(b)) => Some(i.cmp(&b)),
        (Some(i), Bound::Float(b)) => (i as f64).partial_cmp(&b),
        (None, Bound::Float(b)) => n.as_f64()?.partial_cmp(&b),
        (None, Bound::Int(b)) => {
            let x = n.as_f64()?;
            let t = x.trunc();
            if !(-1e38..=1e38).contains(&t) {
                return x.partial_cmp(&(b as f64));
            }
            Some(match (t as i128).cmp(&b) {
                Ordering::Equal if x > t => Ordering::Greater,
                Ordering::Equal if x < t => Ordering::Less,
                o => o,
            })
        }
    }
}

/// The numeric keywords of one schema (draft 4: exclusiveness is a flag on the bound).
#[derive(Debug, Clone, Copy, Default)]
pub struct Numbers {
    /// `minimum`
    pub minimum: Option<Bound>,
    /// `exclusiveMinimum: true`
    pub exclusive_minimum: bool,
    /// `maximum`
    pub maximum: Option<Bound>,
    /// `exclusiveMaximum: true`
    pub exclusive_maximum: bool,
    /// `multipleOf`
    pub multiple_of: Option<f64>,
}

impl Numbers {
    /// No numeric keyword (for `..Numbers::NONE` in generated code).
    pub const NONE: Self = Self {
        minimum: None,
        exclusive_minimum: false,
        maximum: None,
        exclusive_maximum: false,
        multiple_of: None,
    };
}

/// `minimum`, `maximum` (exclusive or not) and `multipleOf`; values that are not numbers pass.
pub fn numbers(value: &Value, path: &Path<'_>, rules: &Numbers) -> Check {
    let Value::Number(n) = value else {
        return Ok(());
    };
    if let Some(min) = rules.minimum {
        let ok = match compare(n, min) {
            Some(Ordering::Greater) => true,
            Some(Ordering::Equal) => !rules.exclusive_minimum,
            _ => false,
        };
        if !ok {
            let op = if rules.exclusive_minimum { ">" } else { ">=" };
            return Err(fail(path, "minimum", format!("{value} is not {op} {min}")));
        }
    }
    if let Some(max) = rules.maximum {
        let ok = match compare(n, max) {
            Some(Ordering::Less) => true,
            Some(Ordering::Equal) => !rules.exclusive_maximum,
            _ => false,
        };
        if !ok {
            let op = if rules.exclusive_maximum { "<" } else { "<=" };
            return Err(fail(path, "maximum", format!("{value} is not {op} {max}")));
        }
    }
    if let (Some(m), Some(x)) = (rules.multiple_of, n.as_f64()) {
        let q = x / m;
        if !q.is_finite() || q.fract() != 0.0 {
            return Err(fail(
                path,
                "multipleOf",
                format!("{value} is not a multiple of {m}"),
            ));
        }
    }
    Ok(())
}

/// A count against its `min*` / `max*` bounds (`noun` names what was counted).
fn bounded(
    n: u64,
    path: &Path<'_>,
    (min_keyword, max_keyword): (&'static str, &'static str),
    noun: &str,
    (min, max): (Option<u64>, Option<u64>),
) -> Check {
    if let Some(m) = min.filter(|m| n < *m) {
        return Err(fail(
            path,
            min_keyword,
            format!("{n} {noun}, fewer than {m}"),
        ));
    }
    if let Some(m) = max.filter(|m| n > *m) {
        return Err(fail(
            path,
            max_keyword,
            format!("{n} {noun}, more than {m}"),
        ));
    }
    Ok(())
}

/// `minLength` / `maxLength`, in Unicode code points.
pub fn length(s: &str, path: &Path<'_>, min: Option<u64>, max: Option<u64>) -> Check {
    let n = s.chars().count() as u64;
    bounded(
        n,
        path,
        ("minLength", "maxLength"),
        "characters",
        (min, max),
    )
}

/// `minItems` / `maxItems`.
pub fn items(a: &[Value], path: &Path<'_>, min: Option<u64>, max: Option<u64>) -> Check {
    bounded(
        a.len() as u64,
        path,
        ("minItems", "maxItems"),
        "items",
        (min, max),
    )
}

/// `uniqueItems: true`.
pub fn unique(a: &[Value], path: &Path<'_>) -> Check {
    for (i, x) in a.iter().enumerate() {
        if let Some(j) = a[i + 1..].iter().position(|y| equal(x, y)) {
            return Err(fail(
                path,
                "uniqueItems",
                format!("items {i} and {} are equal", i + 1 + j),
            ));
        }
    }
    Ok(())
}

/// `minProperties` / `maxProperties`.
pub fn properties(
    o: &Map<String, Value>,
    path: &Path<'_>,
    min: Option<u64>,
    max: Option<u64>,
) -> Check {
    let n = o.len() as u64;
    bounded(
        n,
        path,
        ("minProperties", "maxProperties"),
        "properties",
        (min, max),
    )
}

/// `required` (and the array form of `dependencies`).
pub fn required(o: &Map<String, Value>, path: &Path<'_>, names: &[&str]) -> Check {
    match names.iter().find(|n| !o.contains_key(**n)) {
        None => Ok(()),
        Some(missing) => Err(fail(
            path,
            "required",
            format!("property `{missing}` is missing"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every format check takes any string without panicking: multi-byte characters at
    /// the positions the checks cut (issue 15: `00:00:0é` sliced inside a character), and
    /// random strings of ASCII and non-ASCII characters.
    #[test]
    fn format_names_round_trip() {
        for f in Format::ALL {
            assert_eq!(Format::from_name(f.name()), Some(f));
        }
        assert_eq!(Format::from_name("datetime"), None);
    }

    #[test]
    fn format_checks_never_panic_on_any_string() {
        let formats = Format::ALL;
        let fixed = [
            "00:00:0é",
            "00:00:00é",
            "2026-11-2é",
            "2026-11-26T00:00:0é",
            "2026-11-26T00:00:00+0é:00",
            "2026-11-26T00:00:00+00:0é",
            "é",
            "a@[IPv6é",
            "é:é",
            "€€€€-€€-€€",
        ];
        for s in fixed {
            for f in formats {
                let _ = f.accepts(s);
            }
        }
        let alphabet: Vec<char> = "0123456789:-+.TZtz@[]é€😀 /#?".chars().collect();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 30) as usize;
            let s: String = (0..len)
                .map(|i| alphabet[((x >> (i % 60)) as usize + i * 7) % alphabet.len()])
                .collect();
            for f in formats {
                let _ = f.accepts(&s);
            }
        }
        assert!(!Format::Time.accepts("00:00:0é"));
        assert!(Format::Time.accepts("23:59:60Z"));
    }

    #[test]
    fn pointers_escape_and_nest() {
        let root = Path::Root;
        let a = root.key("a/b");
        let i = a.index(3);
        let t = i.key("x~y");
        assert_eq!(t.pointer(), "/a~1b/3/x~0y");
        assert_eq!(root.pointer(), "");
    }

    #[test]
    fn types_numbers_and_equality() {
        let p = Path::Root;
        let int = types::INTEGER;
        assert!(of_type(&json!(1.0), &p, int).is_ok());
        assert!(of_type(&json!(1.5), &p, int).is_err());
        let e = of_type(&json!(null), &p, types::STRING | types::INTEGER).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/: null is not an integer or a string (type)"
        );
        assert!(of_type(&json!(null), &p, types::STRING | types::NULL).is_ok());
        assert!(equal(&json!({"a": [1, 2.0]}), &json!({"a": [1.0, 2]})));
        assert!(!equal(&json!("1"), &json!(1)));
        let r = Numbers {
            minimum: Some(Bound::Int(0)),
            exclusive_minimum: true,
            maximum: Some(Bound::Float(10.0)),
            multiple_of: Some(0.5),
            ..Numbers::default()
        };
        for (v, ok) in [
            (0.0, false),
            (0.5, true),
            (10.0, true),
            (10.5, false),
            (0.25, false),
        ] {
            assert_eq!(numbers(&json!(v), &p, &r).is_ok(), ok, "{v}");
        }
        assert!(numbers(&json!("not a number"), &p, &r).is_ok());
        let big = Numbers {
            maximum: Some(Bound::Int(i128::from(i64::MAX))),
            ..Numbers::default()
        };
        assert!(numbers(&json!(i64::MAX), &p, &big).is_ok());
        assert!(
            numbers(&json!(9.223_372_036_854_776e18), &p, &big).is_err(),
            "2^63 > i64::MAX"
        );
        assert!(numbers(&json!(u64::MAX), &p, &big).is_err());
        let half = Numbers {
            minimum: Some(Bound::Int(1)),
            ..Numbers::default()
        };
        assert!(numbers(&json!(0.999), &p, &half).is_err());
        assert!(numbers(&json!(1.0), &p, &half).is_ok());
        assert!(unique(&[json!(1), json!(1.0)], &p).is_err());
        assert!(unique(&[json!(1), json!("1")], &p).is_ok());
        assert!(length("日本", &p, Some(2), Some(2)).is_ok());
        let e = items(&[json!(1)], &p, Some(2), None).unwrap_err();
        assert_eq!(
            (e.keyword, e.message.as_str()),
            ("minItems", "1 items, fewer than 2")
        );
        let e = length("abc", &p, None, Some(2)).unwrap_err();
        assert_eq!(
            (e.keyword, e.message.as_str()),
            ("maxLength", "3 characters, more than 2")
        );
    }

    #[test]
    fn formats() {
        let table: &[(Format, &str, bool)] = &[
            (Format::Date, "2026-02-29", false),
            (Format::Date, "2024-02-29", true),
            (Format::Date, "2026-11-26", true),
            (Format::Date, "2026-13-01", false),
            (Format::DateTime, "2026-11-26T03:10:25Z", true),
            (Format::DateTime, "2026-11-26t03:10:25.123+01:00", true),
            (Format::DateTime, "2026-11-26T03:10:25", false),
            (Format::DateTime, "2026-11-26 03:10:25Z", false),
            (Format::DateTime, "2026-12-31T23:59:60Z", true),
            (Format::DateTime, "2026-12-31T22:59:60Z", false),
            (Format::Time, "23:59:60-01:00", false),
            (Format::Time, "22:59:60-01:00", true),
            (Format::Email, "a@example.com", true),
            (Format::Email, "first.last+tag@sub.example.com", true),
            (Format::Email, "\"a b\"@example.com", true),
            (Format::Email, "a@[192.0.2.1]", true),
            (Format::Email, "not an email", false),
            (Format::Email, "a..b@example.com", false),
            (Format::Email, "a@-example.com", false),
            (Format::Hostname, "example.com", true),
            (Format::Hostname, "not a hostname", false),
            (Format::Hostname, "a.", false),
            (Format::Ipv4, "192.0.2.1", true),
            (Format::Ipv4, "192.0.2.01", false),
            (Format::Ipv6, "2001:db8::1", true),
            (Format::Ipv6, "2001:db8:::1", false),
            (Format::Uri, "https://example.com/x?q=1#f", true),
            (Format::Uri, "urn:isbn:0451450523", true),
            (Format::Uri, "http://[2001:db8::1]:80/", true),
            (Format::Uri, "/relative/path", false),
            (Format::Uri, "not a uri", false),
            (Format::Uri, "http://example.com/%zz", false),
            (Format::Uuid, "6f1c7e9a-3b2d-4c5e-8f90-1a2b3c4d5e6f", true),
            (Format::Uuid, "6f1c7e9a3b2d4c5e8f901a2b3c4d5e6f", false),
            (Format::Uuid, "not a uuid", false),
        ];
        for (f, s, ok) in table {
            assert_eq!(f.accepts(s), *ok, "{} {s:?}", f.name());
        }
    }
}
