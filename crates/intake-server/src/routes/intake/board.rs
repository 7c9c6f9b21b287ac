use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use intake_model::wire::Scope;

use crate::extract::{IntakeCaller, QueryParams};
use crate::request_id::ReqId;
use crate::services::board;
use crate::{ApiError, AppState};

/// `GET /intake/v1/deal-board?status=&asOf=`: an
/// [`intake_model::wire::intake::DealBoard`], streamed as it is written (every error is
/// found before the first byte).
pub async fn deal_board(
    State(state): State<AppState>,
    caller: IntakeCaller,
    ReqId(request_id): ReqId,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    caller.require(Scope::IntakeRead)?;
    let params = QueryParams::parse(query.as_deref())?;
    let board = board::board(&state, caller.company(), &params).await?;
    let pieces = board
        .into_body(request_id)
        .map(Ok::<_, std::convert::Infallible>);
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        Body::from_stream(futures_util::stream::iter(pieces)),
    )
        .into_response())
}
