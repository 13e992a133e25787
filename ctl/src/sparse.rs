//! Parsing an event for output that uses a few of its fields (columns,
//! `--fields`, `--filter`): only the members it names become JSON values;
//! the others are skipped as the parser reads them, without allocating.

use std::borrow::Cow;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

/// The object `line` holds, with only the members named in `keys`.
///
/// Errors: `line` is not one JSON object (the parser's message).
pub fn object(line: &[u8], keys: &[String]) -> serde_json::Result<Map<String, Value>> {
    let mut de = serde_json::Deserializer::from_slice(line);
    let map = Only(keys).deserialize(&mut de)?;
    de.end()?;
    Ok(map)
}

/// A visitor of a JSON object that keeps the members named in `.0`.
struct Only<'k>(&'k [String]);

impl<'de> DeserializeSeed<'de> for Only<'_> {
    type Value = Map<String, Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Only<'_> {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Map::new();
        while let Some(Key(key)) = map.next_key()? {
            if self.0.iter().any(|k| *k == key) {
                out.insert(key.into_owned(), map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(out)
    }
}

/// A member name, borrowed from the line unless it holds escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member name")
            }

            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }

            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_string())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_named_members_with_their_values_whole() {
        let keys = [
            "fname".to_string(),
            "proc.pid".into(),
            "a\"b".into(),
            "n".into(),
        ];
        let line = br#"{"proc.pid":7,"skip":{"deep":[1,{"x":"\u001b"}]},"fname":"/tmp/\u00fc\u007f","a\"b":[1,2],"n":null,"last":"x"}"#;
        let got = Value::Object(object(line, &keys).unwrap());
        assert_eq!(
            got,
            serde_json::json!({"proc.pid": 7, "fname": "/tmp/ü\u{7f}", "a\"b": [1, 2], "n": null})
        );
        // What a full parse keeps of the same members.
        let full: Value = serde_json::from_slice(line).unwrap();
        for k in &keys {
            assert_eq!(got[k], full[k], "{k}");
        }
        assert!(object(b"{}", &keys).unwrap().is_empty());
    }

    #[test]
    fn what_is_not_one_object_is_refused() {
        let keys = ["a".to_string()];
        for bad in [
            &b"[1]"[..],
            b"{\"a\":1",
            b"{\"a\":1} x",
            b"{\"b\":tru}",
            b"7",
        ] {
            assert!(
                object(bad, &keys).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
