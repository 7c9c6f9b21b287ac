//! Gong's data-privacy operations, `/v2/data-privacy/...`, over the company's active
//! integration (or `integrationId`).

#![allow(dead_code)]

use intake_model::wire::associations::{
    BaseResponse, EmailAddressReferences, PhoneNumberReferences,
};

#[utoipa::path(
    get,
    path = "/v2/data-privacy/data-for-email-address",
    tag = "Data Privacy",
    operation_id = "findAllReferencesToEmailAddress",
    summary = "Retrieve all references to an email address. (/v2/data-privacy/data-for-email-address)",
    description = "Every lead and contact whose current email matches; the lists of \
        activities are always empty.",
    params(
        ("emailAddress" = String, Query, description = "The email address"),
        ("integrationId" = Option<i64>, Query, description = "Default: the company's active integration"),
    ),
    responses((status = 200, description = "Operation successful", body = EmailAddressReferences)),
    security(("basicAuth" = []), ("bearerAuth" = ["api:data-privacy:read"])),
)]
pub fn data_for_email() {}

#[utoipa::path(
    get,
    path = "/v2/data-privacy/data-for-phone-number",
    tag = "Data Privacy",
    operation_id = "findAllReferencesToPhoneNumber",
    summary = "Retrieve all references to a phone number. (/v2/data-privacy/data-for-phone-number)",
    params(
        ("phoneNumber" = String, Query, description = "The phone number, starting with +"),
        ("integrationId" = Option<i64>, Query, description = "Default: the company's active integration"),
    ),
    responses((status = 200, description = "Operation successful", body = PhoneNumberReferences)),
    security(("basicAuth" = []), ("bearerAuth" = ["api:data-privacy:read"])),
)]
pub fn data_for_phone() {}

#[utoipa::path(
    post,
    path = "/v2/data-privacy/erase-data-for-email-address",
    tag = "Data Privacy",
    operation_id = "purgeEmailAddress",
    summary = "Delete the email address, and all associated elements (/v2/data-privacy/erase-data-for-email-address)",
    description = "Every lead and contact one of whose versions holds the address is erased, \
        with its history and look-up keys; stored error texts quoting it are replaced. Done \
        when the 200 returns.",
    params(
        ("emailAddress" = String, Query, description = "The email address"),
        ("integrationId" = Option<i64>, Query, description = "Default: the company's active integration"),
    ),
    responses((status = 200, description = "Erased", body = BaseResponse)),
    security(("basicAuth" = []), ("bearerAuth" = ["api:data-privacy:delete"])),
)]
pub fn erase_email() {}

#[utoipa::path(
    post,
    path = "/v2/data-privacy/erase-data-for-phone-number",
    tag = "Data Privacy",
    operation_id = "purgePhoneNumber",
    summary = "Delete the phone number, and all associated elements (/v2/data-privacy/erase-data-for-phone-number)",
    params(
        ("phoneNumber" = String, Query, description = "The phone number, starting with +"),
        ("integrationId" = Option<i64>, Query, description = "Default: the company's active integration"),
    ),
    responses((status = 200, description = "Erased", body = BaseResponse)),
    security(("basicAuth" = []), ("bearerAuth" = ["api:data-privacy:delete"])),
)]
pub fn erase_phone() {}
