//! Gong's `/v2/data-privacy/...`: the look-ups and erasure of one address or number.

use axum::extract::{RawQuery, State};
use axum::Json;
use intake_model::wire::associations::{
    BaseResponse, EmailAddressReferences, PhoneNumberReferences,
};
use intake_model::wire::Scope;

use crate::extract::{Caller, QueryParams};
use crate::request_id::ReqId;
use crate::services::privacy::{self, Subject};
use crate::services::records;
use crate::{ApiError, AppState};

/// `GET /v2/data-privacy/data-for-email-address?emailAddress=`
pub async fn data_for_email(
    State(state): State<AppState>,
    caller: Caller,
    ReqId(request_id): ReqId,
    RawQuery(query): RawQuery,
) -> Result<Json<EmailAddressReferences>, ApiError> {
    caller.require(Scope::DataPrivacyRead)?;
    let params = QueryParams::parse(query.as_deref())?;
    let (_, subject) = Subject::email(&params)?;
    let integration = records::integration(&state, caller.company(), &params).await?;
    let holders = privacy::holders(&state, integration, &subject).await?;
    Ok(Json(EmailAddressReferences {
        request_id,
        emails: [],
        calls: [],
        meetings: [],
        customer_data: privacy::customer_data(holders.into_iter().map(|h| h.object).collect()),
        customer_engagement: [],
    }))
}

/// `GET /v2/data-privacy/data-for-phone-number?phoneNumber=`
pub async fn data_for_phone(
    State(state): State<AppState>,
    caller: Caller,
    ReqId(request_id): ReqId,
    RawQuery(query): RawQuery,
) -> Result<Json<PhoneNumberReferences>, ApiError> {
    caller.require(Scope::DataPrivacyRead)?;
    let params = QueryParams::parse(query.as_deref())?;
    let (supplied, subject) = Subject::phone(&params)?;
    let integration = records::integration(&state, caller.company(), &params).await?;
    let holders = privacy::holders(&state, integration, &subject).await?;
    let distinct = |values: Vec<Option<String>>| {
        let mut seen = Vec::new();
        for value in values.into_iter().flatten() {
            if !seen.contains(&value) {
                seen.push(value);
            }
        }
        seen
    };
    let matching_phone_numbers = distinct(holders.iter().map(|h| h.phone.clone()).collect());
    let email_addresses = distinct(holders.iter().map(|h| h.email.clone()).collect());
    Ok(Json(PhoneNumberReferences {
        request_id,
        emails: [],
        calls: [],
        meetings: [],
        customer_data: privacy::customer_data(holders.into_iter().map(|h| h.object).collect()),
        supplied_phone_number: supplied,
        matching_phone_numbers,
        email_addresses,
    }))
}

/// `POST /v2/data-privacy/erase-data-for-email-address?emailAddress=`
pub async fn erase_email(
    State(state): State<AppState>,
    caller: Caller,
    ReqId(request_id): ReqId,
    RawQuery(query): RawQuery,
) -> Result<Json<BaseResponse>, ApiError> {
    caller.require(Scope::DataPrivacyDelete)?;
    let params = QueryParams::parse(query.as_deref())?;
    let (asked, subject) = Subject::email(&params)?;
    let integration = records::integration(&state, caller.company(), &params).await?;
    privacy::erase(&state, integration, &asked, &subject).await?;
    Ok(Json(BaseResponse { request_id }))
}

/// `POST /v2/data-privacy/erase-data-for-phone-number?phoneNumber=`
pub async fn erase_phone(
    State(state): State<AppState>,
    caller: Caller,
    ReqId(request_id): ReqId,
    RawQuery(query): RawQuery,
) -> Result<Json<BaseResponse>, ApiError> {
    caller.require(Scope::DataPrivacyDelete)?;
    let params = QueryParams::parse(query.as_deref())?;
    let (asked, subject) = Subject::phone(&params)?;
    let integration = records::integration(&state, caller.company(), &params).await?;
    privacy::erase(&state, integration, &asked, &subject).await?;
    Ok(Json(BaseResponse { request_id }))
}
