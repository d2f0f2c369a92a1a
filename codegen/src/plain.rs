//! Reads a `serde_json::Value` into schemars' schema types with plain numbers.
//!
//! In a build where `serde_json`'s `arbitrary_precision` is on (the `eventwire` binary: the
//! collector keeps numbers exact), a `Value`'s numbers reach `deserialize_any` as a private
//! map, which schemars' untagged and flattened types cannot take: "data did not match any
//! variant of untagged enum Schema" for a schema with `"multipleOf": 0.01`. This
//! deserializer hands numbers over as `u64`, `i64` or `f64`, whatever serde_json's features.
//! It is made for schemars' schema types: enums are read from strings (unit variants) only.

use serde::de::value::{Error, MapDeserializer, SeqDeserializer};
use serde::de::{IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::Value;

/// A borrowed `Value` as a deserializer with plain numbers.
#[derive(Clone, Copy)]
pub struct Plain<'a>(pub &'a Value);

/// Deserializes `T` from `value` with plain numbers.
///
/// # Errors
///
/// When `value` does not have `T`'s shape.
pub fn from_value<'a, T: serde::Deserialize<'a>>(value: &'a Value) -> Result<T, Error> {
    T::deserialize(Plain(value))
}

impl<'de> IntoDeserializer<'de, Error> for Plain<'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> serde::Deserializer<'de> for Plain<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            // As serde_json reads numbers without `arbitrary_precision`: integers that fit,
            // else a float (`-0` is the float -0.0); a number no f64 holds (`1e400`) is an
            // error, as it is for serde_json's parser then.
            Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => visitor.visit_u64(u),
                (_, Some(i), _) if i != 0 => visitor.visit_i64(i),
                (_, _, Some(f)) if f.is_finite() => visitor.visit_f64(f),
                _ => Err(<Error as serde::de::Error>::custom(format_args!(
                    "number out of range: {n}"
                ))),
            },
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => {
                let mut seq = SeqDeserializer::new(items.iter().map(Plain));
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            Value::Object(map) => {
                let mut entries =
                    MapDeserializer::new(map.iter().map(|(k, v)| (k.as_str(), Plain(v))));
                let value = visitor.visit_map(&mut entries)?;
                entries.end()?;
                Ok(value)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            _ => serde::Deserializer::deserialize_any(self, visitor).map_err(|e| {
                <Error as serde::de::Error>::custom(format!("{name} ({variants:?}): {e}"))
            }),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_schemas_with_decimals_and_nesting() {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {
                "amount": {"type": "number", "multipleOf": 0.01, "minimum": 0.00, "maximum": 9999999},
                "n": {"type": ["integer", "null"], "minimum": -3},
                "tags": {"type": "array", "items": {"enum": ["a", 1, null]}}
            },
            "required": ["amount"],
            "additionalProperties": false
        });
        let root: schemars::schema::RootSchema = from_value(&schema).unwrap();
        let amount = &root.schema.object.as_ref().unwrap().properties["amount"];
        let schemars::schema::Schema::Object(amount) = amount else {
            panic!("not an object schema")
        };
        assert_eq!(amount.number.as_ref().unwrap().multiple_of, Some(0.01));
        // Numbers as serde_json reads them without arbitrary precision.
        let numbers = serde_json::json!({"enum": [0, -0.0, 3, -3, 1.5, 18446744073709551615u64]});
        let read: schemars::schema::SchemaObject = from_value(&numbers).unwrap();
        let values = read.enum_values.unwrap();
        assert_eq!(values[0], serde_json::json!(0));
        assert!(values[1]
            .as_f64()
            .is_some_and(|f| f == 0.0 && f.is_sign_negative()));
        assert_eq!(values[2], serde_json::json!(3));
        assert_eq!(values[3], serde_json::json!(-3));
        assert_eq!(values[4], serde_json::json!(1.5));
        assert_eq!(values[5], serde_json::json!(u64::MAX));
        // The same through serde_json, for comparison, where its features allow.
        let direct: Result<schemars::schema::RootSchema, _> = serde_json::from_value(schema);
        if let Ok(direct) = direct {
            assert_eq!(direct, root);
        }
    }
}
