//! The shapes of the associations (INTAKE-API.md, "Associations"): Gong's call-data
//! shapes (`Party` with its `PartyContextDto`, `CallContextDto`) with `reasons` added, and
//! Gong's data-privacy look-ups (`EmailAddressReferences`, `PhoneNumberReferences`). Field
//! order is the contract's.

use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

/// One JSON object's members in the order given, each value as its raw text (numbers as
/// sent, nested values untouched).
#[derive(Debug, Default)]
pub struct RawObject(pub Vec<(String, Box<RawValue>)>);

impl RawObject {
    pub fn get(&self, name: &str) -> Option<&RawValue> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| &**v)
    }
}

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = RawObject;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawObject, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Box<RawValue>>()? {
                    members.push(member);
                }
                Ok(RawObject(members))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

impl Serialize for RawObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// `{name, value}`: one key of a record's state (Gong's `ContextField`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ContextField {
    pub name: String,
    /// As stored (numbers exactly as sent).
    #[schema(value_type = Value)]
    pub value: Box<RawValue>,
}

impl ContextField {
    /// Every key of a stored body, in its order.
    pub fn all_of(body: &str) -> serde_json::Result<Vec<ContextField>> {
        let RawObject(members) = serde_json::from_str(body)?;
        Ok(members
            .into_iter()
            .map(|(name, value)| ContextField { name, value })
            .collect())
    }
}

/// A stored body's keys as `fields`: written as `[{"name", "value"}, ...]` in the body's
/// order, exactly as [`ContextField::all_of`] gives them, but straight from the body's text
/// when serialized (names borrowed unless escaped, values as raw text).
#[derive(Debug)]
pub struct BodyFields(pub String);

impl Serialize for BodyFields {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        #[derive(Serialize)]
        struct Field<'a> {
            name: &'a str,
            value: &'a RawValue,
        }
        let BorrowedMembers(members) = serde_json::from_str(&self.0).map_err(S::Error::custom)?;
        let mut seq = serializer.serialize_seq(Some(members.len()))?;
        for (name, value) in &members {
            seq.serialize_element(&Field { name, value })?;
        }
        seq.end()
    }
}

/// One JSON object's members, borrowed from its text where it can be.
struct BorrowedMembers<'a>(Vec<(std::borrow::Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for BorrowedMembers<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name<'a>(std::borrow::Cow<'a, str>);
        impl<'de> Deserialize<'de> for Name<'de> {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Text;
                impl<'de> serde::de::Visitor<'de> for Text {
                    type Value = Name<'de>;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("a member name")
                    }
                    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Name<'de>, E> {
                        Ok(Name(std::borrow::Cow::Borrowed(v)))
                    }
                    fn visit_str<E>(self, v: &str) -> Result<Name<'de>, E> {
                        Ok(Name(std::borrow::Cow::Owned(v.to_owned())))
                    }
                    fn visit_string<E>(self, v: String) -> Result<Name<'de>, E> {
                        Ok(Name(std::borrow::Cow::Owned(v)))
                    }
                }
                deserializer.deserialize_str(Text)
            }
        }
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = BorrowedMembers<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<BorrowedMembers<'de>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some((Name(name), value)) =
                    map.next_entry::<Name<'de>, &'de RawValue>()?
                {
                    members.push((name, value));
                }
                Ok(BorrowedMembers(members))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

/// A matched record (Gong's `ExternalPartyObject` / `ExternalCallObject`, with `reasons`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContextObject {
    pub object_type: &'static str,
    pub object_id: String,
    pub timing: &'static str,
    pub reasons: Vec<String>,
    #[schema(value_type = Vec<ContextField>)]
    pub fields: BodyFields,
}

/// One system's objects (`PartyContextDto` / `CallContextDto`); `system` is `Generic`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SystemContext {
    pub system: &'static str,
    pub objects: Vec<ContextObject>,
}

/// `[]` when nothing matched, else one `Generic` entry.
pub fn generic_context(objects: Vec<ContextObject>) -> Vec<SystemContext> {
    if objects.is_empty() {
        Vec::new()
    } else {
        vec![SystemContext {
            system: "Generic",
            objects,
        }]
    }
}

/// A party as sent (its members unchanged, in order), then `affiliation` and `context`.
#[derive(Debug)]
pub struct PartyOut {
    pub sent: RawObject,
    pub affiliation: &'static str,
    pub context: Vec<SystemContext>,
}

impl Serialize for PartyOut {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (k, v) in &self.sent.0 {
            if k != "affiliation" && k != "context" {
                map.serialize_entry(k, v)?;
            }
        }
        map.serialize_entry("affiliation", self.affiliation)?;
        map.serialize_entry("context", &self.context)?;
        map.end()
    }
}

/// How a [`PartyOut`] is written, for the OpenAPI document: the party's members as sent
/// (any others too, in their order), then `affiliation` and `context`.
#[derive(Serialize, ToSchema)]
#[schema(as = Party)]
#[serde(rename_all = "camelCase")]
pub struct PartySchema {
    pub email_address: Option<String>,
    pub phone_number: Option<String>,
    pub name: Option<String>,
    /// `Internal`, `External` or `Unknown`.
    pub affiliation: String,
    pub context: Vec<SystemContext>,
}

/// One activity's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Association {
    #[schema(value_type = Vec<PartySchema>)]
    pub parties: Vec<PartyOut>,
    pub context: Vec<SystemContext>,
}

/// `POST /intake/v1/associations` 200.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssociationReply {
    pub request_id: String,
    #[serde(flatten)]
    pub association: Association,
}

/// One line of the batch answer: `{"line": n, ...the answer}` or `{"line": n, "errors"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchLine {
    pub line: u64,
    #[serde(flatten)]
    pub outcome: BatchOutcome,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum BatchOutcome {
    Answer(Association),
    Errors { errors: Vec<String> },
}

/// `GET`/`PUT /intake/v1/settings`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SettingsReply {
    pub request_id: String,
    pub internal_domains: Vec<String>,
    pub excluded_domains: Vec<String>,
}

/// Gong's `CustomerDataObject`: a lead or contact that holds the address.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerDataObject {
    pub id: String,
    pub object_type: &'static str,
    pub external_id: String,
    pub mirror_id: String,
    pub fields: Vec<ContextField>,
}

/// Gong's `CustomerData`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerData {
    pub system: &'static str,
    pub objects: Vec<CustomerDataObject>,
}

/// Gong's `EmailAddressReferences` (the lists of activities are always empty here).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailAddressReferences {
    pub request_id: String,
    #[schema(value_type = Vec<Object>)]
    pub emails: [(); 0],
    #[schema(value_type = Vec<Object>)]
    pub calls: [(); 0],
    #[schema(value_type = Vec<Object>)]
    pub meetings: [(); 0],
    pub customer_data: Vec<CustomerData>,
    #[schema(value_type = Vec<Object>)]
    pub customer_engagement: [(); 0],
}

/// Gong's `PhoneNumberReferences`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PhoneNumberReferences {
    pub request_id: String,
    #[schema(value_type = Vec<Object>)]
    pub emails: [(); 0],
    #[schema(value_type = Vec<Object>)]
    pub calls: [(); 0],
    #[schema(value_type = Vec<Object>)]
    pub meetings: [(); 0],
    pub customer_data: Vec<CustomerData>,
    pub supplied_phone_number: String,
    pub matching_phone_numbers: Vec<String>,
    pub email_addresses: Vec<String>,
}

/// Gong's `BaseResponse`: the erasure's 200.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BaseResponse {
    pub request_id: String,
}
