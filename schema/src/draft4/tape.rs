//! A JSON text read into a flat list of items that point into the text (a tape), and the
//! `jsonschema` crate's instance representation over it ([`TapeJson`]), so that a document
//! is validated without building a `serde_json::Value` tree: no map per object, no string
//! copied unless it holds escapes, numbers kept as the text sent.
//!
//! The text is read by `serde_json`'s own parser (the same grammar, errors and nesting limit
//! as `Value`). An object that names a key twice is refused ([`TapeError::DuplicateKey`]):
//! `Value` keeps the last value of such a key and drops the other, a tape would keep both,
//! and the two must never judge a document differently — the caller falls back to `Value`.

use std::borrow::Cow;
use std::fmt;

use jsonschema::json::{Array, Json, JsonNumber, Node, NodeIdentity, Object};
use jsonschema::JsonType;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// `serde_json`'s name for a number handed over as its text (feature `arbitrary_precision`):
/// a one-entry map under this key. `serde_json::Value` reads numbers the same way.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// `serde_json`'s name for a raw value (feature `raw_value`).
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// Whether `key` is one of the names a `Value` reads specially when an object's *first*
/// key in the text is one: as a number, or as the JSON its string holds. A tape refuses
/// such an object ([`TapeError::ReservedKey`]) rather than judge it otherwise; anywhere else
/// these names are plain members, for a `Value` as for a tape.
fn is_private_token(key: &str) -> bool {
    key == NUMBER_TOKEN || key == RAW_VALUE_TOKEN
}

/// Objects with more members than this are checked for duplicate keys with a hash set
/// rather than by comparing every pair.
const PAIRWISE_KEYS: usize = 16;

/// One item of a tape. A container is followed by its items (an object's as key, value,
/// key, value…) and knows where they end.
#[derive(Debug, Clone, PartialEq)]
pub enum Item<'t> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as its text.
    Number(Cow<'t, str>),
    /// A string (or an object's key), unescaped.
    String(Cow<'t, str>),
    /// An array of `len` elements; its items end before index `end`.
    Array {
        /// Elements.
        len: u32,
        /// One past its last item.
        end: u32,
    },
    /// An object of `len` members; its items end before index `end`.
    Object {
        /// Members.
        len: u32,
        /// One past its last item.
        end: u32,
    },
}

/// A JSON document as a tape (see the module docs). Its root is item 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Tape<'t> {
    items: Vec<Item<'t>>,
}

/// Why a text could not be read into a tape.
#[derive(Debug, thiserror::Error)]
pub enum TapeError {
    /// Not JSON (the parser's error, as `serde_json::from_str` into `Value` gives it).
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// An object names a key twice (read it as a `Value`, which keeps the last).
    #[error("an object names a key twice")]
    DuplicateKey,
    /// An object is keyed with one of `serde_json`'s private names, which a `Value` reads
    /// as something else than an object (read it as a `Value`).
    #[error("an object is keyed with a name serde_json keeps for itself")]
    ReservedKey,
    /// More than `u32::MAX` items.
    #[error("too many items")]
    TooLarge,
}

impl<'t> Tape<'t> {
    /// Reads `text`.
    ///
    /// # Errors
    ///
    /// [`TapeError`]: not JSON, a duplicate key, or more than 4 billion items.
    pub fn parse(text: &'t str) -> Result<Tape<'t>, TapeError> {
        let mut builder = Builder {
            text: text.as_ptr() as usize..text.as_ptr() as usize + text.len(),
            items: Vec::with_capacity(text.len() / 6 + 1),
            keys: Vec::new(),
            duplicate: false,
            reserved: false,
            too_large: false,
        };
        let mut de = serde_json::Deserializer::from_str(text);
        let read = ItemSeed(&mut builder)
            .deserialize(&mut de)
            .and_then(|()| de.end());
        if builder.duplicate {
            return Err(TapeError::DuplicateKey);
        }
        if builder.reserved {
            return Err(TapeError::ReservedKey);
        }
        if builder.too_large {
            return Err(TapeError::TooLarge);
        }
        read?;
        Ok(Tape {
            items: builder.items,
        })
    }

    /// The root, to validate or read.
    #[must_use]
    pub fn root(&self) -> TapeNode<'_> {
        TapeNode {
            items: &self.items,
            at: 0,
        }
    }

    /// The node at index `at` of [`Tape::items`] (a position [`TapeNode::index`] gave).
    #[must_use]
    pub fn node(&self, at: usize) -> TapeNode<'_> {
        TapeNode {
            items: &self.items,
            at: at.min(self.items.len().saturating_sub(1)),
        }
    }

    /// The items, root first.
    #[must_use]
    pub fn items(&self) -> &[Item<'t>] {
        &self.items
    }
}

struct Builder<'t> {
    /// The addresses of the text: a key borrowed from elsewhere was made by the parser.
    text: std::ops::Range<usize>,
    items: Vec<Item<'t>>,
    /// The key items of the objects being read, innermost last.
    keys: Vec<usize>,
    duplicate: bool,
    reserved: bool,
    too_large: bool,
}

impl Builder<'_> {
    /// Whether the key item at `at` is one of `serde_json`'s private names written in the
    /// text (rather than made by the parser, as the number token is).
    fn written_private_key(&self, at: usize) -> bool {
        match &self.items[at] {
            Item::String(Cow::Borrowed(k)) => {
                is_private_token(k) && self.text.contains(&(k.as_ptr() as usize))
            }
            Item::String(Cow::Owned(k)) => is_private_token(k),
            _ => false,
        }
    }

    /// The index the next item gets.
    fn index(&mut self) -> Result<u32, ()> {
        u32::try_from(self.items.len()).map_err(|_| self.too_large = true)
    }
}

struct ItemSeed<'b, 't>(&'b mut Builder<'t>);

impl<'de, 'b> DeserializeSeed<'de> for ItemSeed<'b, 'de> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, 'b> Visitor<'de> for ItemSeed<'b, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.items.push(Item::Null);
        Ok(())
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.0.items.push(Item::Bool(v));
        Ok(())
    }

    // Without `arbitrary_precision`, numbers arrive parsed; their text is rewritten as
    // `serde_json::Number` writes it (what a `Value` would hold).
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.0.items.push(Item::Number(Cow::Owned(
            serde_json::Number::from(v).to_string(),
        )));
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.items.push(Item::Number(Cow::Owned(
            serde_json::Number::from(v).to_string(),
        )));
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        let n = serde_json::Number::from_f64(v).ok_or_else(|| E::custom("not a finite number"))?;
        self.0.items.push(Item::Number(Cow::Owned(n.to_string())));
        Ok(())
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<(), E> {
        self.0.items.push(Item::String(Cow::Borrowed(v)));
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.0.items.push(Item::String(Cow::Owned(v.to_owned())));
        Ok(())
    }

    fn visit_string<E>(self, v: String) -> Result<(), E> {
        self.0.items.push(Item::String(Cow::Owned(v)));
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let at = self
            .0
            .index()
            .map_err(|()| de::Error::custom("too many items"))?;
        self.0.items.push(Item::Array { len: 0, end: 0 });
        let mut len = 0u32;
        while seq.next_element_seed(ItemSeed(self.0))?.is_some() {
            len = len.saturating_add(1);
        }
        let end = self
            .0
            .index()
            .map_err(|()| de::Error::custom("too many items"))?;
        self.0.items[at as usize] = Item::Array { len, end };
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let at = self
            .0
            .index()
            .map_err(|()| de::Error::custom("too many items"))?;
        self.0.items.push(Item::Object { len: 0, end: 0 });
        // This object's keys are pushed above those of the objects it is in, and taken off
        // when it ends.
        let first_key = self.0.keys.len();
        while map.next_key_seed(ItemSeed(self.0))?.is_some() {
            let key = self.0.items.len() - 1;
            if self.0.keys.len() == first_key && self.0.written_private_key(key) {
                self.0.reserved = true;
                return Err(de::Error::custom("a key serde_json keeps for itself"));
            }
            if self.0.keys.len() == first_key
                && self.0.items[key] == Item::String(Cow::Borrowed(NUMBER_TOKEN))
            {
                // A number handed over as its text.
                let text: String = map.next_value()?;
                self.0.items.truncate(at as usize);
                self.0.items.push(Item::Number(Cow::Owned(text)));
                return Ok(());
            }
            self.0.keys.push(key);
            map.next_value_seed(ItemSeed(self.0))?;
        }
        let count = self.0.keys.len() - first_key;
        if has_duplicates(&self.0.items, &self.0.keys[first_key..]) {
            self.0.duplicate = true;
            return Err(de::Error::custom("an object names a key twice"));
        }
        self.0.keys.truncate(first_key);
        let end = self
            .0
            .index()
            .map_err(|()| de::Error::custom("too many items"))?;
        let len = u32::try_from(count).map_err(|_| de::Error::custom("too many items"))?;
        self.0.items[at as usize] = Item::Object { len, end };
        Ok(())
    }
}

fn key_text<'a>(items: &'a [Item<'_>], at: usize) -> &'a str {
    match &items[at] {
        Item::String(s) => s,
        _ => "",
    }
}

fn has_duplicates(items: &[Item<'_>], keys: &[usize]) -> bool {
    if keys.len() <= PAIRWISE_KEYS {
        keys.iter().enumerate().any(|(i, &a)| {
            keys[..i]
                .iter()
                .any(|&b| key_text(items, a) == key_text(items, b))
        })
    } else {
        let mut seen = std::collections::HashSet::with_capacity(keys.len());
        !keys.iter().all(|&k| seen.insert(key_text(items, k)))
    }
}

/// One node of a tape: where it is.
#[derive(Debug, Clone, Copy)]
pub struct TapeNode<'a> {
    items: &'a [Item<'a>],
    at: usize,
}

impl<'a> TapeNode<'a> {
    fn item(&self) -> &'a Item<'a> {
        &self.items[self.at]
    }

    /// The index after this node and everything in it.
    fn after(&self) -> usize {
        match self.item() {
            Item::Array { end, .. } | Item::Object { end, .. } => *end as usize,
            _ => self.at + 1,
        }
    }

    fn at(&self, at: usize) -> TapeNode<'a> {
        TapeNode {
            items: self.items,
            at,
        }
    }

    /// Where this node is in its tape's items.
    #[must_use]
    pub fn index(&self) -> usize {
        self.at
    }

    /// The members of this object, in the order written (none for anything else).
    #[must_use]
    pub fn members(&self) -> Members<'a> {
        TapeObject(*self).members()
    }

    /// The string, if this node is one.
    #[must_use]
    pub fn str(&self) -> Option<&'a str> {
        match self.item() {
            Item::String(s) => Some(s),
            _ => None,
        }
    }

    /// The member `name` of this object (`None` for anything else).
    #[must_use]
    pub fn member(&self, name: &str) -> Option<TapeNode<'a>> {
        TapeObject(*self)
            .members()
            .find_map(|(key, value)| (key == name).then_some(value))
    }

    /// The elements of this array (none for anything else).
    #[must_use]
    pub fn elements(&self) -> Elements<'a> {
        let left = match self.item() {
            Item::Array { len, .. } => *len as usize,
            _ => 0,
        };
        Elements {
            node: *self,
            next: self.at + 1,
            left,
        }
    }
}

/// The elements of an array of a tape, in order.
#[derive(Debug)]
pub struct Elements<'a> {
    node: TapeNode<'a>,
    next: usize,
    left: usize,
}

impl<'a> Iterator for Elements<'a> {
    type Item = TapeNode<'a>;

    fn next(&mut self) -> Option<TapeNode<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let element = self.node.at(self.next);
        self.next = element.after();
        Some(element)
    }
}

/// The `jsonschema` representation over tapes: validate with `Validator<TapeJson>` (built by
/// [`crate::draft4::compile_for`]) and [`Tape::root`].
#[derive(Debug)]
pub struct TapeJson;

impl Json for TapeJson {
    type Node<'a> = TapeNode<'a>;
    type PreparedKey = String;
    type StringBuffer = Vec<Item<'static>>;

    const ACYCLIC: bool = true;
    // A lookup is a scan of the members: a pass over them is never dearer.
    const KEYS_PER_LOOKUP: usize = 64;

    fn prepare_key(key: &str) -> String {
        key.to_owned()
    }

    fn with_string_node<T>(
        buffer: &mut Vec<Item<'static>>,
        string: &str,
        f: impl FnOnce(TapeNode<'_>) -> T,
    ) -> T {
        buffer.clear();
        buffer.push(Item::String(Cow::Owned(string.to_owned())));
        f(TapeNode {
            items: buffer,
            at: 0,
        })
    }
}

/// A number of a tape: its text.
#[derive(Debug, Clone, Copy)]
pub struct TapeNumber<'a>(&'a str);

impl JsonNumber for TapeNumber<'_> {
    fn as_u64(&self) -> Option<u64> {
        self.0.parse().ok()
    }

    fn as_i64(&self) -> Option<i64> {
        self.0.parse().ok()
    }

    fn as_f64(&self) -> Option<f64> {
        // As `serde_json::Number`: no infinity for a number past the largest `f64`.
        self.0.parse().ok().filter(|f: &f64| f.is_finite())
    }

    fn as_str(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.0)
    }

    fn to_number(&self) -> Cow<'_, serde_json::Number> {
        // The text came from the JSON parser, so it is a number's.
        Cow::Owned(serde_json::from_str(self.0).unwrap_or_else(|_| serde_json::Number::from(0u8)))
    }
}

/// An object of a tape.
#[derive(Debug, Clone, Copy)]
pub struct TapeObject<'a>(TapeNode<'a>);

/// The members of an object of a tape, in the order written.
#[derive(Debug)]
pub struct Members<'a> {
    node: TapeNode<'a>,
    next: usize,
    left: usize,
}

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, TapeNode<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let key = self.node.at(self.next);
        let value = self.node.at(self.next + 1);
        self.next = value.after();
        Some((key.str().unwrap_or_default(), value))
    }
}

impl<'a> Object<'a, TapeJson> for TapeObject<'a> {
    type Node = TapeNode<'a>;
    type MemberName = &'a str;
    type MembersIter = Members<'a>;

    fn len(&self) -> usize {
        match self.0.item() {
            Item::Object { len, .. } => *len as usize,
            _ => 0,
        }
    }

    fn get(&self, key: &String) -> Option<TapeNode<'a>> {
        self.0.member(key)
    }

    fn members(&self) -> Members<'a> {
        Members {
            node: self.0,
            next: self.0.at + 1,
            left: self.len(),
        }
    }
}

/// An array of a tape.
#[derive(Debug, Clone, Copy)]
pub struct TapeArray<'a>(TapeNode<'a>);

impl<'a> Array<'a, TapeJson> for TapeArray<'a> {
    type Node = TapeNode<'a>;
    type ElementsIter = Elements<'a>;

    fn len(&self) -> usize {
        match self.0.item() {
            Item::Array { len, .. } => *len as usize,
            _ => 0,
        }
    }

    fn elements(&self) -> Elements<'a> {
        self.0.elements()
    }
}

impl<'a> Node<'a, TapeJson> for TapeNode<'a> {
    type Object = TapeObject<'a>;
    type Array = TapeArray<'a>;
    type Number = TapeNumber<'a>;

    fn as_object(&self) -> Option<TapeObject<'a>> {
        matches!(self.item(), Item::Object { .. }).then_some(TapeObject(*self))
    }

    fn as_array(&self) -> Option<TapeArray<'a>> {
        matches!(self.item(), Item::Array { .. }).then_some(TapeArray(*self))
    }

    fn as_string(&self) -> Option<Cow<'a, str>> {
        self.str().map(Cow::Borrowed)
    }

    fn as_number(&self) -> Option<TapeNumber<'a>> {
        match self.item() {
            Item::Number(text) => Some(TapeNumber(text)),
            _ => None,
        }
    }

    fn as_boolean(&self) -> Option<bool> {
        match self.item() {
            Item::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self.item(), Item::Null)
    }

    fn json_type(&self) -> JsonType {
        match self.item() {
            Item::Null => JsonType::Null,
            Item::Bool(_) => JsonType::Boolean,
            Item::Number(_) => JsonType::Number,
            Item::String(_) => JsonType::String,
            Item::Array { .. } => JsonType::Array,
            Item::Object { .. } => JsonType::Object,
        }
    }

    fn to_value(&self) -> Cow<'a, Value> {
        Cow::Owned(value_of(*self))
    }

    fn identity(&self) -> Option<NodeIdentity> {
        Some(NodeIdentity::tagged(
            self.items.as_ptr() as usize,
            u32::try_from(self.at).unwrap_or(u32::MAX),
        ))
    }
}

/// The node as a `serde_json::Value` (the validator's cold paths: error messages, `enum`,
/// `const`, `uniqueItems`).
fn value_of(node: TapeNode<'_>) -> Value {
    match node.item() {
        Item::Null => Value::Null,
        Item::Bool(b) => Value::Bool(*b),
        Item::Number(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        Item::String(s) => Value::String(s.to_string()),
        Item::Array { .. } => Value::Array(node.elements().map(value_of).collect()),
        Item::Object { .. } => Value::Object(
            TapeObject(node)
                .members()
                .map(|(k, v)| (k.to_owned(), value_of(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tape_reads_back_as_the_value_it_was_written_from() {
        let texts = [
            r#"{"a":1,"b":[true,false,null,"x\"y",-0.5e3,{"c":{}}],"d":"é\u00e9","e":[]}"#,
            "[]",
            "7",
            r#""s""#,
            r#"{"n":123456789012345678901234567890.000000000000000001}"#,
        ];
        for text in texts {
            let tape = Tape::parse(text).unwrap();
            let value: Value = serde_json::from_str(text).unwrap();
            assert_eq!(value_of(tape.root()), value, "{text}");
        }
    }

    #[test]
    fn bad_text_and_duplicate_keys_are_refused() {
        assert!(matches!(Tape::parse("{"), Err(TapeError::Json(_))));
        assert!(matches!(Tape::parse("[1,]"), Err(TapeError::Json(_))));
        assert!(matches!(Tape::parse("{} x"), Err(TapeError::Json(_))));
        assert!(matches!(
            Tape::parse(r#"{"a":{"k":1,"k":2}}"#),
            Err(TapeError::DuplicateKey)
        ));
        let many: Vec<String> = (0..40).map(|i| format!("\"k{i}\":{i}")).collect();
        let ok = format!("{{{}}}", many.join(","));
        assert!(Tape::parse(&ok).is_ok());
        let twice = format!("{{{},\"k7\":0}}", many.join(","));
        assert!(matches!(Tape::parse(&twice), Err(TapeError::DuplicateKey)));
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let e = Tape::parse(&deep).unwrap_err().to_string();
        assert!(e.starts_with("recursion limit exceeded"), "{e}");
    }

    #[test]
    fn private_keys_written_in_the_text_are_refused() {
        for text in [
            r#"{"$serde_json::private::Number":"5"}"#,
            r#"{"a":{"$serde_json::private::Number":".5"}}"#,
            r#"{"a":{"$serde_json::private::RawValue":"[1]"}}"#,
            r#"{"a":{"\u0024serde_json::private::Number":"5"}}"#,
        ] {
            assert!(
                matches!(Tape::parse(text), Err(TapeError::ReservedKey)),
                "{text}"
            );
        }
        // Anywhere but first, or any other such name, they are plain members (for a
        // `Value` too).
        for text in [
            r#"{"a":{"x":1,"$serde_json::private::Number":"5"}}"#,
            r#"{"a":{"$serde_json::private::Anything":2}}"#,
        ] {
            assert!(Tape::parse(text).is_ok(), "{text}");
        }
        // Numbers the parser hands over as text are numbers.
        let tape = Tape::parse(r#"{"n":[1.50,-0,12345678901234567890123]}"#).unwrap();
        let numbers = tape
            .items()
            .iter()
            .filter(|i| matches!(i, Item::Number(_)))
            .count();
        assert_eq!(numbers, 3);
    }

    #[test]
    fn numbers_past_f64_have_no_f64() {
        assert_eq!(TapeNumber("1e400").as_f64(), None);
        assert_eq!(TapeNumber("-1e400").as_f64(), None);
        assert_eq!(TapeNumber("1.5").as_f64(), Some(1.5));
    }

    /// The `jsonschema` crate's own check of a representation: string lengths in code
    /// points, numbers compared mathematically, node identities stable.
    #[test]
    fn tapes_keep_the_representation_contract() {
        let text = jsonschema::json::conformance::document().to_string();
        let tape = Tape::parse(&text).unwrap();
        jsonschema::json::conformance::assert_conformance::<TapeJson>(&tape.root());
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let tape = Tape::parse(r#"{"plain":"abc","escaped":"a\nb"}"#).unwrap();
        let kinds: Vec<bool> = tape
            .items()
            .iter()
            .filter_map(|i| match i {
                Item::String(s) => Some(matches!(s, Cow::Borrowed(_))),
                _ => None,
            })
            .collect();
        assert_eq!(kinds, [true, true, true, false]);
    }
}
