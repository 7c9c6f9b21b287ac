//! The deal board (`GET /intake/v1/deal-board`): the stages as columns with the deals shown
//! in each, and every deal of the status asked that is not shown, with why. The rules are
//! docs/API.md's deal board section.
//!
//! Each type is read in one streaming query ([`intake_store::Store::for_each_current`]) and
//! each body parsed only for the fields the board needs (borrowed where it can be).
//!
//! Decisions where the contract is silent:
//! - `asOf` is echoed as the time it was read as, ISO-8601 UTC with milliseconds
//!   (`asOf=2024-05-01T12:00:00+02:00` answers `"asOf": "2024-05-01T10:00:00.000Z"`);
//!   fractions of a second are dropped, as for every `asOf`.
//! - `totalAmount` is the f64 sum of the amounts; a whole number below 2^53 is written
//!   without a fraction (`7000`, not `7000.0`), any other finite one as the shortest text
//!   that reads back as the same f64; a sum that overflows f64 is written `null`.
//! - The status filter compares the deal's stored `status` (the model defaults it to
//!   `OPEN`); `ALL` takes every deal.
//! - Strings are compared byte by byte (objectId and closeDate orders, as the store's
//!   objectId order).

use std::borrow::Cow;
use std::collections::HashMap;

use intake_model::wire::intake::{BoardColumn, BoardDeal, HiddenDeal};
use intake_model::{format_timestamp, ObjectType};
use intake_store::{CompanyId, IntegrationId};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::extract::QueryParams;
use crate::services::records;
use crate::{ApiError, AppState};

/// The board, without its `requestId`.
pub struct Board {
    pub as_of: Option<String>,
    pub stages: Vec<BoardColumn>,
    pub hidden: Vec<HiddenDeal>,
}

/// The `status` values the board takes; `OPEN` when absent.
const STATUSES: [&str; 4] = ["OPEN", "WON", "LOST", "ALL"];

fn status(params: &QueryParams) -> Result<&str, ApiError> {
    match params.optional("status") {
        None => Ok("OPEN"),
        Some(raw) if STATUSES.contains(&raw) => Ok(raw),
        Some(raw) => Err(ApiError::InvalidParameter {
            name: "status",
            expected: "one of OPEN, WON, LOST, ALL",
            got: raw.to_owned(),
        }),
    }
}

#[derive(Deserialize)]
struct StageBody<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(rename = "isActive", default)]
    is_active: Option<bool>,
    #[serde(rename = "sortOrder", default)]
    sort_order: Option<i64>,
}

#[derive(Deserialize)]
struct DealBody<'a> {
    #[serde(borrow, rename = "accountId", default)]
    account_id: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "ownerId", default)]
    owner_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "closeDate", default)]
    close_date: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    stage: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    amount: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct AccountBody<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct UserBody<'a> {
    #[serde(borrow, rename = "emailAddress", default)]
    email_address: Option<Cow<'a, str>>,
}

struct Stage {
    name: Option<String>,
    is_active: bool,
    sort_order: i64,
}

/// A shown deal until its account and owner are looked up.
struct Shown {
    object_id: String,
    name: Option<String>,
    account_id: String,
    owner_id: String,
    amount: String,
    close_date: String,
    status: String,
}

/// A present, non-empty text (an empty string counts as missing).
fn present<'a>(value: &'a Option<Cow<'a, str>>) -> Option<&'a str> {
    value.as_deref().filter(|s| !s.is_empty())
}

/// The board of the company's integration (`integrationId` or its active one).
pub async fn board(
    state: &AppState,
    company: CompanyId,
    params: &QueryParams,
) -> Result<Board, ApiError> {
    let wanted = status(params)?.to_owned();
    let as_of = records::as_of(params)?;
    let integration = records::integration(state, company, params).await?;
    let at = as_of.unwrap_or(i64::MAX);
    let started = std::time::Instant::now();

    let stages = stages(state, integration, at).await?;

    // The deals, the accounts' names and the users' emails at once, each on its own
    // connection.
    let deals = async {
        let mut shown: HashMap<String, Vec<Shown>> = HashMap::new();
        let mut hidden: Vec<HiddenDeal> = Vec::new();
        let mut corrupt = None;
        state
            .store
            .for_each_current(integration, ObjectType::Deal, at, &mut |id, body| {
                let deal: DealBody = match serde_json::from_str(body) {
                    Ok(deal) => deal,
                    Err(err) => {
                        corrupt.get_or_insert_with(|| format!("DEAL {id}: {err}"));
                        return;
                    }
                };
                let status = deal.status.as_deref().unwrap_or("OPEN");
                if wanted != "ALL" && status != wanted {
                    return;
                }
                let mut reasons = Vec::new();
                let account = present(&deal.account_id);
                let owner = present(&deal.owner_id);
                let close = present(&deal.close_date);
                let stage = present(&deal.stage);
                if account.is_none() {
                    reasons.push("missing accountId".to_owned());
                }
                if owner.is_none() {
                    reasons.push("missing ownerId".to_owned());
                }
                if close.is_none() {
                    reasons.push("missing closeDate".to_owned());
                }
                match stage {
                    None => reasons.push("missing stage".to_owned()),
                    Some(stage) if !stages.contains_key(stage) => {
                        reasons.push(format!("unknown stage [{stage}]"));
                    }
                    Some(_) => {}
                }
                let name = deal.name.map(Cow::into_owned);
                match (account, owner, close, stage) {
                    (Some(account), Some(owner), Some(close), Some(stage))
                        if reasons.is_empty() =>
                    {
                        let deal = Shown {
                            object_id: id.to_owned(),
                            name,
                            account_id: account.to_owned(),
                            owner_id: owner.to_owned(),
                            amount: deal.amount.map_or("0", RawValue::get).to_owned(),
                            close_date: close.to_owned(),
                            status: status.to_owned(),
                        };
                        match shown.get_mut(stage) {
                            Some(deals) => deals.push(deal),
                            None => {
                                shown.insert(stage.to_owned(), vec![deal]);
                            }
                        }
                    }
                    _ => hidden.push(HiddenDeal {
                        object_id: id.to_owned(),
                        name,
                        reasons,
                    }),
                }
            })
            .await?;
        match corrupt {
            Some(corrupt) => Err(ApiError::internal(format!("undecodable body: {corrupt}"))),
            None => Ok((shown, hidden)),
        }
    };
    let (deals, account_names, owner_emails) = tokio::try_join!(
        deals,
        names(state, integration, ObjectType::Account, at, |b| {
            serde_json::from_str::<AccountBody>(b).map(|a| a.name.map(Cow::into_owned))
        }),
        names(state, integration, ObjectType::BusinessUser, at, |b| {
            serde_json::from_str::<UserBody>(b).map(|u| u.email_address.map(Cow::into_owned))
        }),
    )?;
    let (mut shown, mut hidden) = deals;
    let read = started.elapsed();

    let mut columns: Vec<(&String, &Stage)> = stages
        .iter()
        .filter(|(id, stage)| stage.is_active || shown.contains_key(*id))
        .collect();
    columns.sort_by(|a, b| (a.1.sort_order, a.0).cmp(&(b.1.sort_order, b.0)));
    let columns = columns
        .into_iter()
        .map(|(id, stage)| {
            let mut deals = shown.remove(id).unwrap_or_default();
            deals.sort_by(|a, b| (&a.close_date, &a.object_id).cmp(&(&b.close_date, &b.object_id)));
            let total: f64 = deals
                .iter()
                .map(|d| d.amount.parse::<f64>().unwrap_or(0.0))
                .sum();
            let deals = deals
                .into_iter()
                .map(|d| {
                    Ok(BoardDeal {
                        account_name: account_names.get(&d.account_id).cloned().flatten(),
                        owner_email: owner_emails.get(&d.owner_id).cloned().flatten(),
                        object_id: d.object_id,
                        name: d.name,
                        account_id: d.account_id,
                        owner_id: d.owner_id,
                        amount: RawValue::from_string(d.amount).map_err(ApiError::internal)?,
                        close_date: d.close_date,
                        status: d.status,
                    })
                })
                .collect::<Result<Vec<_>, ApiError>>()?;
            Ok(BoardColumn {
                object_id: id.clone(),
                name: stage.name.clone(),
                sort_order: stage.sort_order,
                is_active: stage.is_active,
                deal_count: deals.len(),
                total_amount: RawValue::from_string(json_number(total))
                    .map_err(ApiError::internal)?,
                deals,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    hidden.sort_by(|a, b| a.object_id.cmp(&b.object_id));
    tracing::debug!(
        ?read,
        built = ?started.elapsed(),
        "deal board"
    );
    Ok(Board {
        as_of: as_of.map(format_timestamp),
        stages: columns,
        hidden,
    })
}

/// Every stage that exists at `at` (a deleted STAGE is stored as inactive, not deleted).
async fn stages(
    state: &AppState,
    integration: IntegrationId,
    at: i64,
) -> Result<HashMap<String, Stage>, ApiError> {
    let mut stages = HashMap::new();
    let mut corrupt = None;
    state
        .store
        .for_each_current(integration, ObjectType::Stage, at, &mut |id, body| {
            match serde_json::from_str::<StageBody>(body) {
                Ok(stage) => {
                    stages.insert(
                        id.to_owned(),
                        Stage {
                            name: stage.name.map(Cow::into_owned),
                            is_active: stage.is_active.unwrap_or(true),
                            sort_order: stage.sort_order.unwrap_or(1),
                        },
                    );
                }
                Err(err) => {
                    corrupt.get_or_insert_with(|| format!("STAGE {id}: {err}"));
                }
            }
        })
        .await?;
    match corrupt {
        Some(corrupt) => Err(ApiError::internal(format!("undecodable body: {corrupt}"))),
        None => Ok(stages),
    }
}

/// One text field of each record of `object_type` that exists and is not deleted at `at`
/// (`None` inside when the record has no such field).
async fn names(
    state: &AppState,
    integration: IntegrationId,
    object_type: ObjectType,
    at: i64,
    field: fn(&str) -> serde_json::Result<Option<String>>,
) -> Result<HashMap<String, Option<String>>, ApiError> {
    let mut found = HashMap::new();
    let mut corrupt = None;
    state
        .store
        .for_each_current(
            integration,
            object_type,
            at,
            &mut |id, body| match field(body) {
                Ok(value) => {
                    found.insert(id.to_owned(), value);
                }
                Err(err) => {
                    corrupt.get_or_insert_with(|| format!("{} {id}: {err}", object_type.as_str()));
                }
            },
        )
        .await?;
    match corrupt {
        Some(corrupt) => Err(ApiError::internal(format!("undecodable body: {corrupt}"))),
        None => Ok(found),
    }
}

/// An f64 as a JSON number: whole numbers below 2^53 without a fraction, others as the
/// shortest text that reads back the same; `null` when not finite.
fn json_number(x: f64) -> String {
    if !x.is_finite() {
        "null".to_owned()
    } else if x.fract() == 0.0 && x.abs() < 9_007_199_254_740_992.0 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::json_number;

    #[test]
    fn totals_are_json_numbers() {
        assert_eq!(json_number(7000.0), "7000");
        assert_eq!(json_number(-0.0), "0");
        assert_eq!(json_number(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(json_number(1.5), "1.5");
        assert_eq!(json_number(f64::INFINITY), "null");
        let big = json_number(1e300);
        assert_eq!(big.parse::<f64>().unwrap(), 1e300);
        assert!(serde_json::from_str::<serde_json::Value>(&big)
            .unwrap()
            .is_number());
    }
}
