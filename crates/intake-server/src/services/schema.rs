use std::collections::BTreeMap;

use intake_model::wire::ListedField;
use intake_model::{FieldDef, ObjectType};
use intake_store::CompanyId;

use crate::extract::QueryParams;
use crate::{ApiError, AppState};

/// The object types that take custom fields.
pub const SCHEMA_TYPES: [ObjectType; 4] = [
    ObjectType::Account,
    ObjectType::Contact,
    ObjectType::Deal,
    ObjectType::Lead,
];

/// Replaces the custom fields of one object type with those of the uploaded body.
pub async fn upload(
    state: &AppState,
    company: CompanyId,
    params: &QueryParams,
    body: &[u8],
) -> Result<(), ApiError> {
    let integration = super::integration(state, company, params.integration_id()?).await?;
    let object_type = params.object_type(&SCHEMA_TYPES)?;
    let fields = intake_model::parse_schema_upload(body).map_err(ApiError::InvalidSchema)?;
    for field in &fields {
        super::no_control_characters(&field.unique_name, "uniqueName")?;
        super::no_control_characters(&field.label, "label")?;
        for value in field.ordered_value_list.iter().flatten() {
            super::no_control_characters(value, "orderedValueList")?;
        }
    }
    let existing: Vec<FieldDef> = state
        .store
        .get_schema(integration.id, Some(object_type))
        .await?
        .into_iter()
        .map(|(_, field)| field)
        .collect();
    let plan = intake_model::plan_schema_replacement(&existing, fields)
        .map_err(ApiError::SchemaConflict)?;
    Ok(state
        .store
        .replace_schema(integration.id, object_type, &plan)
        .await?)
}

/// The custom fields by object type name: every schema type (or just `objectType`), each
/// present even when it has none.
pub async fn list(
    state: &AppState,
    company: CompanyId,
    params: &QueryParams,
) -> Result<BTreeMap<String, Vec<ListedField>>, ApiError> {
    let integration = super::integration(state, company, params.integration_id()?).await?;
    let object_type = params.optional_object_type(&SCHEMA_TYPES)?;
    let mut by_type: BTreeMap<String, Vec<ListedField>> = match object_type {
        Some(t) => BTreeMap::from([(t.as_str().to_owned(), Vec::new())]),
        None => SCHEMA_TYPES
            .iter()
            .map(|t| (t.as_str().to_owned(), Vec::new()))
            .collect(),
    };
    for (t, field) in state.store.get_schema(integration.id, object_type).await? {
        by_type
            .entry(t.as_str().to_owned())
            .or_default()
            .push(field.into());
    }
    Ok(by_type)
}
