//! Request bodies, parsed strictly, then into a domain type.
//!
//! `parse_object` accepts one JSON object and nothing else: no array
//! (serde would fill a struct's fields from it by position), no duplicate
//! key (serde_json would keep the last silently), and no NUL or other
//! control character in any key or string except tab, newline and carriage
//! return (PostgreSQL refuses NUL in text, and control characters have no
//! place in these fields). `from_value` then deserializes the object into a
//! domain type through a deserializer that refuses an array wherever a
//! struct is expected, reporting each problem with its path. Messages never
//! quote a value: it may be PHI.

use std::fmt;

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess,
    Unexpected, Visitor,
};
use serde_json::{Map, Value};
use validator::Validate;
use zeroize::Zeroize;

use crate::error::ApiError;

/// Nesting deeper than this is refused (our bodies are shallow).
const MAX_DEPTH: usize = 16;

/// Whether a string may appear in a request: no NUL, no control characters
/// but tab, newline and carriage return.
pub fn clean_text(s: &str) -> bool {
    !s.chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

/// One JSON object, strictly (see the module's doc).
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Strict { depth: 0 }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|_| v))
        .map_err(|e| {
            let msg = e.to_string();
            if let Some(rest) = msg.strip_prefix("phi: ") {
                ApiError::bad_request(rest.split(" at line").next().unwrap_or(rest).to_string())
            } else {
                ApiError::bad_request("The request body is not valid JSON.")
            }
        })?;
    match value {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::bad_request(
            "The request body must be a JSON object.",
        )),
    }
}

/// Builds a `Value` while checking keys and strings.
struct Strict {
    depth: usize,
}

fn refuse<E: de::Error>(why: &str) -> E {
    E::custom(format!("phi: {why}"))
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.depth > MAX_DEPTH {
            return Err(refuse("The request body is nested too deeply."));
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| refuse("The request body holds a number that is not finite."))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.visit_string(v.to_string())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        if clean_text(&v) {
            Ok(Value::String(v))
        } else {
            let mut v = v;
            v.zeroize();
            Err(refuse(
                "A string in the request body holds a NUL or another control character.",
            ))
        }
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict {
            depth: self.depth + 1,
        })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if !clean_text(&key) || key.chars().any(char::is_control) {
                return Err(refuse(
                    "A key in the request body holds a control character.",
                ));
            }
            let value = map.next_value_seed(Strict {
                depth: self.depth + 1,
            })?;
            if out.contains_key(&key) {
                let shown: String = key.chars().take(64).collect();
                return Err(refuse(&format!(
                    "The request body names `{shown}` more than once."
                )));
            }
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// Deserializes an object into `T` (path-precise errors), then validates it.
/// The object's strings are wiped afterwards.
pub fn from_object<T: DeserializeOwned + Validate>(
    mut object: Map<String, Value>,
) -> Result<T, ApiError> {
    let value = Value::Object(std::mem::take(&mut object));
    let parsed: Result<T, _> = serde_path_to_error::deserialize(ObjectsOnly(&value));
    let mut value = value;
    wipe(&mut value);
    let t = parsed.map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        ApiError::Validation(vec![super::describe_serde_error(&path, &message)])
    })?;
    t.validate()
        .map_err(|e| ApiError::Validation(super::flatten(&e)))?;
    Ok(t)
}

/// Overwrites every string in a value (the request's plaintext).
pub fn wipe(v: &mut Value) {
    match v {
        Value::String(s) => s.zeroize(),
        Value::Array(a) => a.iter_mut().for_each(wipe),
        Value::Object(m) => m.values_mut().for_each(wipe),
        _ => {}
    }
}

/// A deserializer over a `Value` that refuses a JSON array where a struct
/// is expected (serde would otherwise fill the struct by position).
struct ObjectsOnly<'a>(&'a Value);

type Error = de::value::Error;

impl<'de> IntoDeserializer<'de, Error> for ObjectsOnly<'_> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> Deserializer<'de> for ObjectsOnly<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => v.visit_unit(),
            Value::Bool(b) => v.visit_bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    v.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    v.visit_i64(i)
                } else {
                    v.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => v.visit_str(s),
            Value::Array(a) => {
                let mut seq = SeqDeserializer::new(a.iter().map(ObjectsOnly));
                let out = v.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(out)
            }
            Value::Object(m) => {
                let mut map =
                    MapDeserializer::new(m.iter().map(|(k, v)| (k.as_str(), ObjectsOnly(v))));
                let out = v.visit_map(&mut map)?;
                map.end()?;
                Ok(out)
            }
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::Object(_) => self.deserialize_any(v),
            other => Err(de::Error::invalid_type(unexpected(other), &"an object")),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => v.visit_none(),
            _ => v.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            // Unit variants, as the API's enums are.
            Value::String(s) => v.visit_enum(s.as_str().into_deserializer()),
            other => Err(de::Error::invalid_type(unexpected(other), &"a string")),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier ignored_any
    }
}

/// What a value is, never what it says.
fn unexpected(v: &Value) -> Unexpected<'static> {
    match v {
        Value::Null => Unexpected::Unit,
        Value::Bool(_) => Unexpected::Other("a boolean"),
        Value::Number(_) => Unexpected::Other("a number"),
        Value::String(_) => Unexpected::Other("a string"),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, Validate)]
    #[serde(deny_unknown_fields)]
    struct Point {
        lat: f64,
        lon: f64,
    }

    #[derive(Debug, Deserialize, Validate)]
    #[serde(deny_unknown_fields)]
    struct Body {
        name: Option<String>,
        #[validate(nested)]
        at: Option<Point>,
    }

    fn parse(s: &str) -> Result<Body, ApiError> {
        let b: Body = from_object(parse_object(s.as_bytes())?)?;
        // Every field is read back as it was sent.
        if let Some(at) = &b.at {
            assert!(at.lat.is_finite() && at.lon.is_finite());
        }
        assert!(b.name.as_deref().is_none_or(|n| !n.contains('\0')));
        Ok(b)
    }

    fn message(e: ApiError) -> String {
        match e {
            ApiError::Validation(v) => format!("{}: {}", v[0].path, v[0].message),
            other => other.to_string(),
        }
    }

    #[test]
    fn only_objects_only_once_and_only_clean_text() {
        assert!(parse(r#"{"name":"a","at":{"lat":1,"lon":2}}"#).is_ok());
        assert!(message(parse(r#"["a", null]"#).unwrap_err()).contains("must be a JSON object"));
        let e = message(parse(r#"{"at":[1,2]}"#).unwrap_err());
        assert!(e.starts_with("at:") && e.contains("an object"), "{e}");
        let e = message(parse(r#"{"name":"a","name":"b"}"#).unwrap_err());
        assert!(e.contains("`name` more than once"), "{e}");
        let e = message(parse("{\"name\":\"a\\u0000b\"}").unwrap_err());
        assert!(e.contains("control character"), "{e}");
        assert!(!e.contains("a\u{0}b"));
        assert!(parse("{\"name\":\"line\\nbreak\\ttab\"}").is_ok());
        assert!(message(parse("{} x").unwrap_err()).contains("not valid JSON"));
        let deep = format!("{}{}", "{\"a\":".repeat(40), "}".repeat(40));
        assert!(parse_object(deep.as_bytes()).is_err());
    }
}
