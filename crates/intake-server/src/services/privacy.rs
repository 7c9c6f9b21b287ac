//! Gong's data-privacy look-ups and erasure (`/v2/data-privacy/...`, INTAKE-API.md,
//! "Gong's own look-ups" and "Erasure"), over the look-up keys of the associations.

use intake_model::associate::{self, LookupKind};
use intake_model::wire::associations::{ContextField, CustomerData, CustomerDataObject};
use intake_model::ObjectType;
use intake_store::IntegrationId;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::extract::QueryParams;
use crate::{ApiError, AppState};

/// What an address or number is looked up by.
pub enum Subject {
    Email(String),
    Phone(Option<String>),
}

impl Subject {
    /// `emailAddress` from the query (it must hold an `@`).
    pub fn email(params: &QueryParams) -> Result<(String, Subject), ApiError> {
        let raw = params.required("emailAddress")?.to_owned();
        if !raw.contains('@') {
            return Err(ApiError::InvalidParameter {
                name: "emailAddress",
                expected: "an email address",
                got: raw,
            });
        }
        let normalized = associate::normalize_email(&raw);
        Ok((raw, Subject::Email(normalized)))
    }

    /// `phoneNumber` from the query: `+` and a country code first, as Gong asks.
    pub fn phone(params: &QueryParams) -> Result<(String, Subject), ApiError> {
        let raw = params.required("phoneNumber")?.to_owned();
        if !raw.trim_start().starts_with('+') {
            return Err(ApiError::InvalidParameter {
                name: "phoneNumber",
                expected: "a number starting with + and a country code",
                got: raw,
            });
        }
        let key = associate::phone_key(&raw);
        Ok((raw, Subject::Phone(key)))
    }

    fn key(&self) -> Option<(LookupKind, &str)> {
        match self {
            Subject::Email(email) => Some((LookupKind::Email, email)),
            Subject::Phone(key) => key.as_deref().map(|k| (LookupKind::Phone, k)),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Person {
    email_address: Option<String>,
    phone_number: Option<String>,
}

/// A lead or contact that holds the subject now.
pub struct Holder {
    pub object: CustomerDataObject,
    pub email: Option<String>,
    pub phone: Option<String>,
}

fn is_person(object_type: ObjectType) -> bool {
    matches!(object_type, ObjectType::Contact | ObjectType::Lead)
}

/// Gong's numeric id of a record: the same for a record in every call.
fn numeric_id(integration: IntegrationId, object_type: ObjectType, object_id: &str) -> String {
    let digest = Sha256::digest(format!(
        "{integration}:{}:{object_id}",
        object_type.as_str()
    ));
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) >> 1).to_string()
}

/// The leads and contacts whose current state holds the subject, by objectId.
pub async fn holders(
    state: &AppState,
    integration: IntegrationId,
    subject: &Subject,
) -> Result<Vec<Holder>, ApiError> {
    let Some((kind, key)) = subject.key().filter(|(_, k)| !k.contains('\0')) else {
        return Ok(Vec::new());
    };
    let mut snapshot = state.store.read_snapshot(integration).await?;
    let mut hits: Vec<(ObjectType, String)> = snapshot
        .lookup(kind, &[key.to_owned()])
        .await?
        .into_iter()
        .filter(|hit| is_person(hit.object_type))
        .map(|hit| (hit.object_type, hit.object_id))
        .collect();
    hits.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.code().cmp(&b.0.code())));
    let mut found = Vec::new();
    for (object_type, object_id) in hits {
        let states = snapshot
            .states(object_type, &[(object_id.clone(), i64::MAX)])
            .await?;
        let Some(state) = states.into_iter().flatten().next().filter(|s| !s.deleted) else {
            continue;
        };
        let person: Person = serde_json::from_str(&state.body).unwrap_or_default();
        let holds = match subject {
            Subject::Email(email) => person
                .email_address
                .as_deref()
                .is_some_and(|e| associate::normalize_email(e) == *email),
            Subject::Phone(key) => {
                person
                    .phone_number
                    .as_deref()
                    .and_then(associate::phone_key)
                    == *key
            }
        };
        if !holds {
            continue;
        }
        let mirror = serde_json::json!({
            "integrationId": integration.to_string(),
            "crmObjectType": object_type.as_str(),
            "crmId": object_id,
        });
        let fields = ContextField::all_of(&state.body)
            .map_err(|err| ApiError::internal(format!("undecodable body of {object_id}: {err}")))?;
        found.push(Holder {
            object: CustomerDataObject {
                id: numeric_id(integration, object_type, &object_id),
                object_type: match object_type {
                    ObjectType::Contact => "Contact",
                    _ => "Lead",
                },
                external_id: object_id,
                mirror_id: mirror.to_string(),
                fields,
            },
            email: person.email_address,
            phone: person.phone_number,
        });
    }
    Ok(found)
}

/// Gong's `customerData`: `[]`, or one `Generic` entry.
pub fn customer_data(objects: Vec<CustomerDataObject>) -> Vec<CustomerData> {
    if objects.is_empty() {
        Vec::new()
    } else {
        vec![CustomerData {
            system: "Generic",
            objects,
        }]
    }
}

/// Erases every lead and contact one of whose versions held the subject.
pub async fn erase(
    state: &AppState,
    integration: IntegrationId,
    asked: &str,
    subject: &Subject,
) -> Result<u64, ApiError> {
    let Some((kind, key)) = subject.key().filter(|(_, k)| !k.contains('\0')) else {
        return Ok(0);
    };
    let mut records: Vec<(ObjectType, String)> = {
        let mut snapshot = state.store.read_snapshot(integration).await?;
        snapshot
            .lookup(kind, &[key.to_owned()])
            .await?
            .into_iter()
            .filter(|hit| is_person(hit.object_type))
            .map(|hit| (hit.object_type, hit.object_id))
            .collect()
    };
    records.sort_by(|a, b| a.1.cmp(&b.1));
    // What the stored errors may quote of them, read before they are gone.
    let mut bodies = Vec::new();
    for (object_type, object_id) in &records {
        for version in state
            .store
            .versions(integration, *object_type, object_id)
            .await?
        {
            bodies.push((*object_type, version.body));
        }
    }
    let quoted = intake_store::lookups::quoted_values(asked, &bodies);
    let erased = state
        .store
        .erase_records(integration, &records, asked)
        .await?;
    crate::sidecar::erase(state, integration, &quoted).await?;
    tracing::info!(
        records = records.len(),
        versions = erased,
        "data-privacy erasure"
    );
    Ok(erased)
}
