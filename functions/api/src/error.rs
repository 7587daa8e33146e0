//! The API's errors: a status, a stable code and a message for humans. Internal details are
//! logged, never sent.

use http::StatusCode;
use resizer_aws::StoreError;
use resizer_aws::auth::AuthError;
use resizer_core::pipeline::ImageError;
use resizer_core::transform::ParamError;

/// Every error code the API can answer with, and its status. `openapi.yaml` documents exactly
/// these (a test checks it).
pub const CODES: &[(u16, &str)] = &[
    (400, "invalid_parameter"),
    (401, "unauthorized"),
    (403, "customer_disabled"),
    (404, "not_found"),
    (405, "method_not_allowed"),
    (413, "payload_too_large"),
    (415, "unsupported_media_type"),
    (422, "invalid_image"),
    (422, "too_many_pixels"),
    (422, "dimensions_too_large"),
    (429, "quota_exceeded"),
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

impl From<ParamError> for ApiError {
    fn from(e: ParamError) -> Self {
        ApiError::invalid(e.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_retryable() {
            ApiError::unavailable(e.to_string())
        } else {
            ApiError::internal(e.to_string())
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthorized { reason } => ApiError::unauthorized(reason),
            AuthError::CustomerDisabled => ApiError::new(
                StatusCode::FORBIDDEN,
                "customer_disabled",
                "this customer account is disabled; contact support",
            ),
            AuthError::Store(s) => s.into(),
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
