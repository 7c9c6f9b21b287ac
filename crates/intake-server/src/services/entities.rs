use intake_model::wire::ObjectsMap;
use intake_model::ObjectType;
use intake_store::CompanyId;
use serde_json::value::RawValue;

use crate::extract::QueryParams;
use crate::{ApiError, AppState};

/// At most this many ids are looked up; the rest are not answered.
pub const MAX_IDS: usize = 100;

/// The ids to look up: a JSON array of strings in a non-blank body, else `objectsCrmIds`
/// (repeated, or comma-separated); each once, at most [`MAX_IDS`].
pub fn requested_ids(params: &QueryParams, body: &[u8]) -> Result<Vec<String>, ApiError> {
    let ids: Vec<String> = if !body.iter().all(u8::is_ascii_whitespace) {
        serde_json::from_slice(body).map_err(|_| ApiError::IdsNotAnArray)?
    } else {
        if params.all("objectsCrmIds").next().is_none() {
            return Err(ApiError::UnsupportedMediaType);
        }
        params
            .all("objectsCrmIds")
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from)
            .collect()
    };
    if ids.is_empty() {
        return Err(ApiError::NoObjectIds);
    }
    for id in &ids {
        super::no_control_characters(id, "objectsCrmIds")?;
    }
    // An id asked twice is answered once.
    let mut seen = std::collections::HashSet::new();
    Ok(ids
        .into_iter()
        .filter(|id| seen.insert(id.clone()))
        .take(MAX_IDS)
        .collect())
}

/// The current stored body of each id, verbatim, in the order asked (`None`: no object).
pub async fn get(
    state: &AppState,
    company: CompanyId,
    params: &QueryParams,
    body: &[u8],
) -> Result<ObjectsMap, ApiError> {
    let integration = super::integration(state, company, params.integration_id()?).await?;
    let object_type = params.object_type(&ObjectType::ALL)?;
    let ids = requested_ids(params, body)?;
    let mut found = state
        .store
        .current_objects(integration.id, object_type, &ids)
        .await?;
    let mut objects = Vec::with_capacity(ids.len());
    for id in ids {
        let body = match found.remove(&id).flatten() {
            Some(body) => Some(RawValue::from_string(body).map_err(ApiError::internal)?),
            None => None,
        };
        objects.push((id, body));
    }
    Ok(ObjectsMap(objects))
}
