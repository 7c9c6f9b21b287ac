//! Surgery on JSON text that keeps everything it does not touch byte for byte: stored
//! bodies are returned verbatim by GET, so they must not be re-serialized.

use serde_json::value::RawValue;

/// `body` (a JSON object) without its top-level key `name`, or `None` when it has no such
/// key (or is not a JSON object). The other members keep their order and the exact text of
/// their values.
pub fn without_key(body: &str, name: &str) -> Option<String> {
    struct Members<'a>(Vec<(String, &'a RawValue)>);

    impl<'de> serde::Deserialize<'de> for Members<'de> {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Visit;
            impl<'de> serde::de::Visitor<'de> for Visit {
                type Value = Members<'de>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Members<'de>, A::Error> {
                    let mut members = Vec::new();
                    while let Some(member) = map.next_entry::<String, &'de RawValue>()? {
                        members.push(member);
                    }
                    Ok(Members(members))
                }
            }
            d.deserialize_map(Visit)
        }
    }

    let Members(members) = serde_json::from_str(body).ok()?;
    if !members.iter().any(|(key, _)| key == name) {
        return None;
    }
    let mut out = String::with_capacity(body.len());
    out.push('{');
    for (key, value) in members.iter().filter(|(key, _)| key != name) {
        if out.len() > 1 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(key).expect("strings serialize"));
        out.push(':');
        out.push_str(value.get());
    }
    out.push('}');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::without_key;

    #[test]
    fn without_key_keeps_everything_else() {
        let body = r#"{"objectId":"a","f1":{"x":[1,2]},"n":1.50,"s":"é\u0000\"f1\"","f1x":true}"#;
        assert_eq!(
            without_key(body, "f1").as_deref(),
            Some(r#"{"objectId":"a","n":1.50,"s":"é\u0000\"f1\"","f1x":true}"#)
        );
        assert_eq!(without_key(body, "f"), None);
        assert_eq!(without_key(r#"{"a":1}"#, "a").as_deref(), Some("{}"));
        assert_eq!(
            without_key(r#"{"a\"b":1,"c":2}"#, "a\"b").as_deref(),
            Some(r#"{"c":2}"#)
        );
        assert_eq!(without_key("[1]", "a"), None);
    }
}
