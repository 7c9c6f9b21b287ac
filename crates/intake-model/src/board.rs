//! What the deal board reads of a record: a few top-level values of its body. The store
//! keeps them beside each stored version (the board projection), so that the board reads
//! narrow rows instead of parsing every body.
//!
//! Each fact is the raw JSON text of the value as the body holds it (`"Acme"` with its
//! quotes, `1.50` as sent), or `None` when the body has no such key (or holds `null`
//! there, which a validated body never does). The store's migrations derive the same texts
//! in SQL from the stored bodies (SQLite `body -> '$.key'`, PostgreSQL
//! `(body::json -> 'key')::text`, both verbatim), for the versions stored before the
//! projection existed.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::ObjectType;

/// One fact of the board projection, in the order of [`BoardFacts`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BoardFact {
    /// DEAL and ACCOUNT `name`, BUSINESS_USER `emailAddress`.
    Label,
    Status,
    Stage,
    AccountId,
    OwnerId,
    CloseDate,
    Amount,
}

/// The facts of one version, indexed by `BoardFact as usize`.
pub type BoardFacts<'a> = [Option<&'a str>; 7];

impl BoardFact {
    pub const ALL: [BoardFact; 7] = [
        BoardFact::Label,
        BoardFact::Status,
        BoardFact::Stage,
        BoardFact::AccountId,
        BoardFact::OwnerId,
        BoardFact::CloseDate,
        BoardFact::Amount,
    ];

    /// The projection's column of this fact (the same on both backends).
    pub fn column(self) -> &'static str {
        match self {
            BoardFact::Label => "label",
            BoardFact::Status => "status",
            BoardFact::Stage => "stage",
            BoardFact::AccountId => "account_id",
            BoardFact::OwnerId => "owner_id",
            BoardFact::CloseDate => "close_date",
            BoardFact::Amount => "amount",
        }
    }

    /// The body key this fact is read from in a body of type `ty`, if `ty` has it.
    pub fn key(self, ty: ObjectType) -> Option<&'static str> {
        match (ty, self) {
            (ObjectType::Deal | ObjectType::Account, BoardFact::Label) => Some("name"),
            (ObjectType::BusinessUser, BoardFact::Label) => Some("emailAddress"),
            (ObjectType::Deal, BoardFact::Status) => Some("status"),
            (ObjectType::Deal, BoardFact::Stage) => Some("stage"),
            (ObjectType::Deal, BoardFact::AccountId) => Some("accountId"),
            (ObjectType::Deal, BoardFact::OwnerId) => Some("ownerId"),
            (ObjectType::Deal, BoardFact::CloseDate) => Some("closeDate"),
            (ObjectType::Deal, BoardFact::Amount) => Some("amount"),
            _ => None,
        }
    }

    /// The fact read from the body key `key` of type `ty`, if any.
    pub fn of_key(ty: ObjectType, key: &str) -> Option<BoardFact> {
        BoardFact::ALL.into_iter().find(|f| f.key(ty) == Some(key))
    }
}

/// Whether the board projection keeps the versions of `ty` (STAGE is read from its few
/// bodies; the other types are not on the board).
pub fn on_board(ty: ObjectType) -> bool {
    matches!(
        ty,
        ObjectType::Deal | ObjectType::Account | ObjectType::BusinessUser
    )
}

/// The board facts of a stored body of type `ty` (all `None` for a type not
/// [`on_board`]). Fails only when `body` is not a JSON object.
pub fn board_facts(ty: ObjectType, body: &str) -> Result<BoardFacts<'_>, serde_json::Error> {
    let mut facts: BoardFacts<'_> = [None; 7];
    if !on_board(ty) {
        return Ok(facts);
    }
    let mut de = serde_json::Deserializer::from_str(body);
    FactsSeed {
        ty,
        facts: &mut facts,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(facts)
}

struct FactsSeed<'f, 'a> {
    ty: ObjectType,
    facts: &'f mut BoardFacts<'a>,
}

impl<'de> DeserializeSeed<'de> for FactsSeed<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FactsSeed<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(Key)? {
            let value: &'de RawValue = map.next_value()?;
            if let Some(fact) = BoardFact::of_key(self.ty, &key) {
                let raw = value.get();
                // The first of duplicate keys, as SQLite's `->` takes it (bodies have none).
                if raw != "null" && self.facts[fact as usize].is_none() {
                    self.facts[fact as usize] = Some(raw);
                }
            }
        }
        Ok(())
    }
}

/// A key, borrowed from the body when it has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// The text of a fact that holds a JSON string, unescaped: borrowed when it has no
/// escapes. `None` when `raw` is not a JSON string.
pub fn fact_text(raw: &str) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
    } else if inner.contains('"') {
        None
    } else {
        Some(Cow::Borrowed(inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_are_the_raw_values_of_the_keys_of_the_type() {
        let body = r#"{"objectId":"d1","name":"A \"quoted\" \u0000 deal","accountId":"a1","ownerId":"","amount":1.50,"closeDate":"2024-01-02","status":"OPEN","stage":"s","x":{"name":1},"isDeleted":false}"#;
        let facts = board_facts(ObjectType::Deal, body).unwrap();
        assert_eq!(
            facts,
            [
                Some(r#""A \"quoted\" \u0000 deal""#),
                Some(r#""OPEN""#),
                Some(r#""s""#),
                Some(r#""a1""#),
                Some(r#""""#),
                Some(r#""2024-01-02""#),
                Some("1.50"),
            ]
        );
        let account = board_facts(ObjectType::Account, body).unwrap();
        assert_eq!(account[0], Some(r#""A \"quoted\" \u0000 deal""#));
        assert!(account[1..].iter().all(Option::is_none));
        let user = r#"{"objectId":"u1","emailAddress":"a@b.c","name":"x"}"#;
        assert_eq!(
            board_facts(ObjectType::BusinessUser, user).unwrap(),
            [Some(r#""a@b.c""#), None, None, None, None, None, None]
        );
        assert_eq!(board_facts(ObjectType::Contact, user).unwrap(), [None; 7]);
        assert_eq!(
            board_facts(ObjectType::Deal, r#"{"n\u0061me":"esc","amount":null}"#).unwrap(),
            [Some(r#""esc""#), None, None, None, None, None, None]
        );
        assert!(board_facts(ObjectType::Deal, "[1]").is_err());
        assert!(board_facts(ObjectType::Deal, r#"{"name":"a"} x"#).is_err());
    }

    #[test]
    fn fact_texts_are_unescaped() {
        assert_eq!(fact_text(r#""abc""#).as_deref(), Some("abc"));
        assert!(matches!(fact_text(r#""abc""#), Some(Cow::Borrowed(_))));
        assert_eq!(fact_text(r#""a\"b\u0000""#).as_deref(), Some("a\"b\0"));
        assert_eq!(fact_text(r#""""#).as_deref(), Some(""));
        assert_eq!(fact_text("12"), None);
        assert_eq!(fact_text(r#"""#), None);
    }
}
