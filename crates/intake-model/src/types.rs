//! The six object types of the generic CRM API and the custom-field types of the entity schema.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The object types a file can hold. Wire names are case-sensitive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectType {
    Account,
    Contact,
    Deal,
    Lead,
    BusinessUser,
    Stage,
}

impl ObjectType {
    /// Every type, in storage-code order.
    pub const ALL: [ObjectType; 6] = [
        ObjectType::Account,
        ObjectType::Contact,
        ObjectType::Deal,
        ObjectType::Lead,
        ObjectType::BusinessUser,
        ObjectType::Stage,
    ];

    /// Parses a wire name (`ACCOUNT`, `CONTACT`, `DEAL`, `LEAD`, `BUSINESS_USER`, `STAGE`), case-sensitively.
    pub fn parse(s: &str) -> Option<ObjectType> {
        Some(match s {
            "ACCOUNT" => ObjectType::Account,
            "CONTACT" => ObjectType::Contact,
            "DEAL" => ObjectType::Deal,
            "LEAD" => ObjectType::Lead,
            "BUSINESS_USER" => ObjectType::BusinessUser,
            "STAGE" => ObjectType::Stage,
            _ => return None,
        })
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Account => "ACCOUNT",
            ObjectType::Contact => "CONTACT",
            ObjectType::Deal => "DEAL",
            ObjectType::Lead => "LEAD",
            ObjectType::BusinessUser => "BUSINESS_USER",
            ObjectType::Stage => "STAGE",
        }
    }

    /// Stable storage code, 0..=5 in the order of [`ObjectType::ALL`]. Never renumber.
    pub fn code(self) -> i16 {
        match self {
            ObjectType::Account => 0,
            ObjectType::Contact => 1,
            ObjectType::Deal => 2,
            ObjectType::Lead => 3,
            ObjectType::BusinessUser => 4,
            ObjectType::Stage => 5,
        }
    }

    /// The inverse of [`ObjectType::code`].
    pub fn from_code(c: i16) -> Option<ObjectType> {
        usize::try_from(c)
            .ok()
            .and_then(|i| ObjectType::ALL.get(i).copied())
    }

    /// True for the types that can have custom fields (entity schema): ACCOUNT, CONTACT, DEAL, LEAD.
    pub fn has_schema(self) -> bool {
        matches!(
            self,
            ObjectType::Account | ObjectType::Contact | ObjectType::Deal | ObjectType::Lead
        )
    }
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of [`ObjectType::from_str`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("objectType [{0}] must be one of ACCOUNT, CONTACT, DEAL, LEAD, BUSINESS_USER, STAGE")]
pub struct UnknownObjectType(pub String);

impl FromStr for ObjectType {
    type Err = UnknownObjectType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ObjectType::parse(s).ok_or_else(|| UnknownObjectType(s.to_owned()))
    }
}

impl Serialize for ObjectType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ObjectType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        ObjectType::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format_args!(
                "unknown object type [{s}], expected one of ACCOUNT, CONTACT, DEAL, LEAD, BUSINESS_USER, STAGE"
            ))
        })
    }
}

/// The type of a custom field. Wire names are case-sensitive upper case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum FieldType {
    Date,
    DateTime,
    Number,
    Percent,
    Currency,
    Id,
    Url,
    String,
    Boolean,
    PhoneNumber,
    EmailAddress,
    Picklist,
    Reference,
    StringArray,
}

impl FieldType {
    /// Every type, in the order docs/API.md lists them.
    pub const ALL: [FieldType; 14] = [
        FieldType::Date,
        FieldType::DateTime,
        FieldType::Number,
        FieldType::Percent,
        FieldType::Currency,
        FieldType::Id,
        FieldType::Url,
        FieldType::String,
        FieldType::Boolean,
        FieldType::PhoneNumber,
        FieldType::EmailAddress,
        FieldType::Picklist,
        FieldType::Reference,
        FieldType::StringArray,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Date => "DATE",
            FieldType::DateTime => "DATETIME",
            FieldType::Number => "NUMBER",
            FieldType::Percent => "PERCENT",
            FieldType::Currency => "CURRENCY",
            FieldType::Id => "ID",
            FieldType::Url => "URL",
            FieldType::String => "STRING",
            FieldType::Boolean => "BOOLEAN",
            FieldType::PhoneNumber => "PHONENUMBER",
            FieldType::EmailAddress => "EMAILADDRESS",
            FieldType::Picklist => "PICKLIST",
            FieldType::Reference => "REFERENCE",
            FieldType::StringArray => "STRINGARRAY",
        }
    }

    /// Parses a wire name, case-sensitively.
    pub fn parse(s: &str) -> Option<FieldType> {
        FieldType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Serde helper for `referenceTo`: the wire calls BUSINESS_USER `USER`.
pub(crate) mod reference_to {
    use super::ObjectType;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Wire name of a reference target (`USER` for BUSINESS_USER).
    pub fn wire_name(t: ObjectType) -> &'static str {
        match t {
            ObjectType::BusinessUser => "USER",
            other => other.as_str(),
        }
    }

    /// Parses a reference target: ACCOUNT, CONTACT, DEAL, LEAD, USER (BUSINESS_USER is accepted as an alias of USER).
    pub fn parse(s: &str) -> Option<ObjectType> {
        match s {
            "USER" | "BUSINESS_USER" => Some(ObjectType::BusinessUser),
            other => ObjectType::parse(other).filter(|t| t.has_schema()),
        }
    }

    pub fn serialize<S: Serializer>(v: &Option<ObjectType>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(t) => s.serialize_some(wire_name(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ObjectType>, D::Error> {
        let v = Option::<std::borrow::Cow<'de, str>>::deserialize(d)?;
        match v {
            None => Ok(None),
            Some(s) => parse(&s).map(Some).ok_or_else(|| {
                serde::de::Error::custom(format_args!(
                    "unknown referenceTo [{s}], expected one of ACCOUNT, CONTACT, DEAL, LEAD, USER"
                ))
            }),
        }
    }
}
