//! The one error type of the HTTP layer and its envelope: `{"requestId", "errors": [...]}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use intake_store::StoreError;

use crate::request_id::current_request_id;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub errors: Vec<String>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            errors: vec![message.into()],
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn bad_request_all(errors: Vec<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            errors,
            retry_after: None,
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    pub fn client_request_id_used() -> ApiError {
        ApiError::conflict("Client request id has already been used")
    }

    pub fn unsupported_media_type() -> ApiError {
        ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported Media Type")
    }

    pub fn too_many_requests(retry_after: u64) -> ApiError {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            errors: vec!["API request limit exceeded".into()],
            retry_after: Some(retry_after),
        }
    }

    pub fn internal(err: impl std::fmt::Display) -> ApiError {
        tracing::error!(request_id = %current_request_id(), "internal error: {err}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        if err.is_busy() {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The database is busy; try again shortly",
            )
        } else {
            ApiError::internal(err)
        }
    }
}

impl From<std::io::Error> for ApiError {
    fn from(err: std::io::Error) -> ApiError {
        ApiError::internal(err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "requestId": current_request_id(),
            "errors": self.errors,
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"intake\", Bearer realm=\"intake\""),
            );
        }
        response
    }
}
