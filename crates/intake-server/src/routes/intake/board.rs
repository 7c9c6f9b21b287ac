use axum::extract::{RawQuery, State};
use axum::Json;
use intake_model::wire::intake::DealBoard;
use intake_model::wire::Scope;

use crate::extract::{IntakeCaller, QueryParams};
use crate::request_id::ReqId;
use crate::services::board;
use crate::{ApiError, AppState};

/// `GET /intake/v1/deal-board?status=&asOf=`
pub async fn deal_board(
    State(state): State<AppState>,
    caller: IntakeCaller,
    ReqId(request_id): ReqId,
    RawQuery(query): RawQuery,
) -> Result<Json<DealBoard>, ApiError> {
    caller.require(Scope::IntakeRead)?;
    let params = QueryParams::parse(query.as_deref())?;
    let board = board::board(&state, caller.company(), &params).await?;
    Ok(Json(DealBoard {
        request_id,
        as_of: board.as_of,
        stages: board.stages,
        hidden: board.hidden,
    }))
}
