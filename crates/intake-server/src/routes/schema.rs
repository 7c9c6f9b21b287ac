use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use intake_model::{FieldDef, ObjectType};
use serde_json::{json, Value};

use super::reply;
use crate::extract::{integration, Caller, QueryParams};
use crate::{ApiError, AppState};

const SCHEMA_TYPES: [ObjectType; 4] = [
    ObjectType::Account,
    ObjectType::Contact,
    ObjectType::Deal,
    ObjectType::Lead,
];

pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require("api:crm:schema")?;
    let params = QueryParams::parse(query.as_deref())?;
    let integration = integration(&state, &caller, &params).await?;
    let object_type = params.object_type(&SCHEMA_TYPES)?;
    let fields = intake_model::parse_schema_upload(&body).map_err(ApiError::bad_request_all)?;
    let existing: Vec<FieldDef> = state
        .store
        .get_schema(integration.id, Some(object_type))
        .await?
        .into_iter()
        .map(|(_, field)| field)
        .collect();
    let plan =
        intake_model::plan_schema_replacement(&existing, fields).map_err(ApiError::bad_request)?;
    state
        .store
        .replace_schema(integration.id, object_type, &plan)
        .await?;
    Ok(reply(StatusCode::OK, json!({})))
}

/// A field as the API lists it: with both `uniqueName` and `name` (Gong's example uses one,
/// its clients read the other).
fn listed_field(field: FieldDef) -> Value {
    let mut value = serde_json::to_value(&field).expect("field definitions serialize");
    value["name"] = json!(field.unique_name);
    value
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    caller.require("api:crm:schema")?;
    let params = QueryParams::parse(query.as_deref())?;
    let integration = integration(&state, &caller, &params).await?;
    let object_type = params.optional_object_type(&SCHEMA_TYPES)?;
    let mut by_type: BTreeMap<&'static str, Vec<Value>> = match object_type {
        Some(t) => BTreeMap::from([(t.as_str(), Vec::new())]),
        None => SCHEMA_TYPES
            .iter()
            .map(|t| (t.as_str(), Vec::new()))
            .collect(),
    };
    for (t, field) in state.store.get_schema(integration.id, object_type).await? {
        by_type
            .entry(t.as_str())
            .or_default()
            .push(listed_field(field));
    }
    Ok(reply(
        StatusCode::OK,
        json!({ "objectTypeToSelectedFields": by_type }),
    ))
}
