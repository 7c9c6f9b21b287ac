//! The wire contract of `/v2/crm/...` (and, in [`intake`], of `/intake/v1/...`): the request
//! and response bodies of every operation,
//! and the scopes of bearer tokens. The server serializes these, clients and tests
//! deserialize them.
//!
//! Field order: the server has always written its JSON objects with their keys in
//! alphabetical order (`serde_json` maps without `preserve_order`), so every struct here
//! declares its fields alphabetically, which keeps the bytes on the wire as they were
//! (e.g. `{"errors":[...],"requestId":"..."}`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::types::reference_to;
use crate::{FieldDef, FieldType, ObjectType};

pub mod associations;
pub mod intake;

/// What a bearer token may do; an access key may do everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Upload entities and read request-status.
    CrmUpload,
    /// Read entities back (`GET /v2/crm/entities`).
    CrmGetObjects,
    /// Register an integration.
    IntegrationRegister,
    /// List integrations.
    IntegrationsRead,
    /// Delete an integration.
    IntegrationDelete,
    /// Upload and list custom-field schemas.
    CrmSchema,
    /// Every GET of `/intake/v1` and both association calls.
    IntakeRead,
    /// The writes of `/intake/v1`: cancel, webhooks, settings.
    IntakeWrite,
    /// Gong's data-privacy look-ups.
    DataPrivacyRead,
    /// Gong's data-privacy erasure.
    DataPrivacyDelete,
}

impl Scope {
    /// Every scope with its wire name: the one table both directions read.
    pub const TABLE: [(Scope, &'static str); 10] = [
        (Scope::CrmUpload, "api:crm:upload"),
        (Scope::CrmGetObjects, "api:crm:get-objects"),
        (Scope::IntegrationRegister, "api:crm:integration:register"),
        (Scope::IntegrationsRead, "api:crm:integrations:read"),
        (Scope::IntegrationDelete, "api:crm:integration:delete"),
        (Scope::CrmSchema, "api:crm:schema"),
        (Scope::IntakeRead, "intake:read"),
        (Scope::IntakeWrite, "intake:write"),
        (Scope::DataPrivacyRead, "api:data-privacy:read"),
        (Scope::DataPrivacyDelete, "api:data-privacy:delete"),
    ];

    pub fn as_str(self) -> &'static str {
        Scope::TABLE
            .iter()
            .find(|(scope, _)| *scope == self)
            .map(|(_, name)| *name)
            .expect("every scope is in the table")
    }

    pub fn parse(name: &str) -> Option<Scope> {
        Scope::TABLE
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(scope, _)| *scope)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Scope, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Scope::parse(&name)
            .ok_or_else(|| serde::de::Error::custom(format_args!("unknown scope [{name}]")))
    }
}

/// The body of every error: `{"errors":[...],"requestId":"..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ErrorResponse)]
pub struct ErrorEnvelope {
    pub errors: Vec<String>,
    pub request_id: String,
}

/// `PUT /v2/crm/integrations` request body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GenericCrmRegistrationRequest)]
pub struct RegisterIntegration {
    pub name: String,
    pub owner_email: String,
}

/// `PUT /v2/crm/integrations` 200.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = RegisterGenericCrmResponse)]
pub struct IntegrationRegistered {
    /// A JSON number (a positive `i64`).
    pub integration_id: i64,
    pub request_id: String,
}

/// One entry of `GET /v2/crm/integrations`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GenericCrmIntegration)]
pub struct IntegrationInfo {
    pub integration_id: i64,
    pub name: String,
    pub owner_email: String,
}

/// `GET /v2/crm/integrations` 200.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ListGenericCrmIntegrationsResponse)]
pub struct IntegrationList {
    pub integrations: Vec<IntegrationInfo>,
    pub request_id: String,
}

/// The 201 of `POST /v2/crm/entities` (an upload) and of `DELETE /v2/crm/integrations`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AsyncProcessingResponse)]
pub struct Accepted {
    pub client_request_id: String,
    pub request_id: String,
}

/// `POST /v2/crm/entity-schema` 200.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = SchemaUpdateResponse)]
pub struct SchemaUploaded {
    pub request_id: String,
}

/// A custom field as `GET /v2/crm/entity-schema` lists it: every field of a [`FieldDef`]
/// plus `name` (the same as `uniqueName`: Gong's example uses one, its clients read the
/// other).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListedField {
    pub is_deleted: bool,
    pub label: String,
    pub last_modified: Option<String>,
    pub name: String,
    pub ordered_value_list: Option<Vec<String>>,
    /// `USER` on the wire for BUSINESS_USER.
    #[serde(with = "reference_to")]
    #[schema(value_type = Option<String>, example = "ACCOUNT")]
    pub reference_to: Option<ObjectType>,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    pub unique_name: String,
}

impl From<FieldDef> for ListedField {
    fn from(field: FieldDef) -> ListedField {
        ListedField {
            is_deleted: field.is_deleted,
            label: field.label,
            last_modified: field.last_modified,
            name: field.unique_name.clone(),
            ordered_value_list: field.ordered_value_list,
            reference_to: field.reference_to,
            field_type: field.field_type,
            unique_name: field.unique_name,
        }
    }
}

/// `GET /v2/crm/entity-schema` 200: fields by object type name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ListSelectedFieldsResponse)]
pub struct SchemaList {
    pub object_type_to_selected_fields: BTreeMap<String, Vec<ListedField>>,
    pub request_id: String,
}

/// The state of a request as request-status reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RequestState {
    Pending,
    InProgress,
    Done,
    Failed,
}

impl RequestState {
    /// The wire name: `PENDING`, `IN_PROGRESS`, `DONE`, `FAILED`.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "PENDING",
            RequestState::InProgress => "IN_PROGRESS",
            RequestState::Done => "DONE",
            RequestState::Failed => "FAILED",
        }
    }

    /// DONE or FAILED: nothing more will change.
    pub fn is_final(self) -> bool {
        matches!(self, RequestState::Done | RequestState::Failed)
    }
}

/// One listed error of a request: `{"description":"...","line":N}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = LineErrorResponse)]
pub struct ListedError {
    pub description: String,
    pub line: u64,
}

impl From<crate::LineError> for ListedError {
    fn from(error: crate::LineError) -> ListedError {
        ListedError {
            description: error.description,
            line: error.line,
        }
    }
}

/// `GET /v2/crm/request-status` 200.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = RequestStatusResponse)]
pub struct RequestStatusReply {
    pub errors: Vec<ListedError>,
    pub request_id: String,
    pub status: RequestState,
    pub total_error_count: u64,
    pub total_success_count: u64,
}

/// `GET /v2/crm/entities` 200. The request body is a JSON array of object ids
/// (`Vec<String>`), or the ids come in `objectsCrmIds`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GetGenericCrmObjectsResponse)]
pub struct ObjectsReply {
    /// Each id asked, in the order asked, with its current state as uploaded (`null` for an
    /// unknown or deleted record).
    #[schema(value_type = HashMap<String, Option<Object>>)]
    pub crm_objects_map: ObjectsMap,
    pub request_id: String,
}

/// The stored bodies, verbatim (no re-parsing, their keys in their order), in the order the
/// ids were asked for; `null` for an id that has no current object. Deserializing keeps the
/// order of the wire (read it with `serde_json::from_str`/`from_slice`: raw values need a
/// JSON text, not a `Value`).
#[derive(Debug, Default)]
pub struct ObjectsMap(pub Vec<(String, Option<Box<RawValue>>)>);

impl ObjectsMap {
    /// The stored body of `id`, when it has one.
    pub fn get(&self, id: &str) -> Option<&RawValue> {
        self.0
            .iter()
            .find(|(k, _)| k == id)
            .and_then(|(_, body)| body.as_deref())
    }
}

impl Serialize for ObjectsMap {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(id, body)| (id, body)))
    }
}

impl<'de> Deserialize<'de> for ObjectsMap {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<ObjectsMap, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = ObjectsMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of object ids to stored objects or null")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ObjectsMap, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Option<Box<RawValue>>>()? {
                    entries.push(entry);
                }
                Ok(ObjectsMap(entries))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

/// `GET /health` 200.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_states_are_named_as_serde_names_them() {
        use RequestState::*;
        for state in [Pending, InProgress, Done, Failed] {
            assert_eq!(
                serde_json::to_string(&state).unwrap(),
                format!("\"{}\"", state.as_str())
            );
        }
    }

    #[test]
    fn scopes_round_trip() {
        for (scope, name) in Scope::TABLE {
            assert_eq!(scope.as_str(), name);
            assert_eq!(Scope::parse(name), Some(scope));
        }
        assert_eq!(Scope::parse("api:crm:nope"), None);
    }

    #[test]
    fn objects_keep_their_order_and_bytes() {
        let text = r#"{"crmObjectsMap":{"b":{"z":1,"a":2},"a":null},"requestId":"r"}"#;
        let reply: ObjectsReply = serde_json::from_str(text).unwrap();
        assert_eq!(reply.crm_objects_map.0[0].0, "b");
        assert_eq!(
            reply.crm_objects_map.get("b").unwrap().get(),
            r#"{"z":1,"a":2}"#
        );
        assert!(reply.crm_objects_map.get("a").is_none());
        assert_eq!(serde_json::to_string(&reply).unwrap(), text);
    }

    #[test]
    fn envelope_keys_are_alphabetical() {
        let envelope = ErrorEnvelope {
            errors: vec!["x".into()],
            request_id: "r".into(),
        };
        assert_eq!(
            serde_json::to_string(&envelope).unwrap(),
            r#"{"errors":["x"],"requestId":"r"}"#
        );
    }
}
