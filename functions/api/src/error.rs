//! The API's errors: a status, a stable code and a message for humans. Internal details are
//! logged, never sent.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use resizer_app::AppError;
use resizer_core::image::ImageError;

/// Every error code the API can answer with, and its status. `openapi.yaml` documents exactly
/// these (a test checks it).
pub const CODES: &[(u16, &str)] = &[
    (400, "invalid_parameter"),
    (401, "unauthorized"),
    (403, "customer_disabled"),
    (404, "not_found"),
    (405, "method_not_allowed"),
    (409, "idempotency_conflict"),
    (413, "payload_too_large"),
    (415, "unsupported_media_type"),
    (422, "invalid_image"),
    (422, "too_many_pixels"),
    (422, "dimensions_too_large"),
    (422, "output_too_large"),
    (429, "quota_exceeded"),
    (429, "rate_limited"),
    (429, "too_many_open_jobs"),
    (500, "internal_error"),
    (503, "service_unavailable"),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Logged with the request, never sent (the cause of a 5xx, the reason for a 401).
    pub detail: Option<String>,
    /// For 405: the methods the path allows.
    pub allow: Option<String>,
    /// Seconds for `Retry-After` (429 rate_limited and too_many_open_jobs; a 503 always says 1).
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        debug_assert!(
            CODES.contains(&(status.as_u16(), code)),
            "{status} {code} is not a documented error"
        );
        Self {
            status,
            code,
            message: message.into(),
            detail: None,
            allow: None,
            retry_after_s: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_parameter", message)
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such resource (or it belongs to another customer)",
        )
    }

    pub fn unauthorized(detail: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid API key is required: send `Authorization: Bearer <key>` or `x-api-key: <key>`",
        )
        .with_detail(detail)
    }

    pub fn method_not_allowed(method: &str, path: &str, allow: String) -> Self {
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed on {path}; allowed: {allow}"),
        );
        e.allow = Some(allow);
        e
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error; if it persists, contact support quoting the request_id",
        )
        .with_detail(detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "the service is temporarily unavailable; retry with backoff",
        )
        .with_detail(detail)
    }
}

/// The edge renders the body (it knows the request id): the error travels in the response's
/// extensions.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = self.status.into_response();
        r.extensions_mut().insert(self);
        r
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Invalid(m) => ApiError::invalid(m),
            AppError::Unauthorized(reason) => ApiError::unauthorized(reason),
            AppError::CustomerDisabled => ApiError::new(
                StatusCode::FORBIDDEN,
                "customer_disabled",
                "this customer account is disabled; contact support",
            ),
            AppError::NotFound => ApiError::not_found(),
            AppError::PayloadTooLarge(m) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", m)
            }
            AppError::UnsupportedMediaType(m) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                m,
            ),
            AppError::Image(i) => i.into(),
            AppError::Truncated(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_image", m)
            }
            AppError::QuotaExceeded(m) => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "quota_exceeded", m)
            }
            AppError::RateLimited {
                message,
                retry_after_s,
            } => {
                let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
                e.retry_after_s = Some(retry_after_s);
                e
            }
            AppError::TooManyOpenJobs {
                message,
                retry_after_s,
            } => {
                let mut e =
                    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_open_jobs", message);
                e.retry_after_s = Some(retry_after_s);
                e
            }
            AppError::IdempotencyConflict(m) => {
                ApiError::new(StatusCode::CONFLICT, "idempotency_conflict", m)
            }
            AppError::Store(s) if s.is_retryable() => ApiError::unavailable(s.to_string()),
            AppError::Store(s) => ApiError::internal(s.to_string()),
        }
    }
}

impl From<ImageError> for ApiError {
    fn from(e: ImageError) -> Self {
        let status = match &e {
            ImageError::UnsupportedFormat(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ImageError::InvalidParameter(_) => StatusCode::BAD_REQUEST,
            ImageError::Internal(_) => return ApiError::internal(e.to_string()),
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let code = match &e {
            ImageError::UnsupportedFormat(_) => "unsupported_media_type",
            other => other.code(),
        };
        ApiError::new(status, code, e.to_string())
    }
}
