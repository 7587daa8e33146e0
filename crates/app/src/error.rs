//! The errors of the ports and of the use cases.

use resizer_core::image::ImageError;
use resizer_core::transform::ParamError;

/// A failed call to a storage port (S3, SQS or DynamoDB behind it), classified the way callers
/// need it: is it worth a retry?
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The object or item does not exist.
    #[error("{op}: not found")]
    NotFound { op: &'static str },
    /// A condition refused the write (e.g. a backward state change).
    #[error("{op}: condition failed")]
    Conflict { op: &'static str },
    /// Throttling, a 5xx, a timeout or a connection failure: worth retrying later.
    #[error("{op}: dependency unavailable: {detail}")]
    Unavailable { op: &'static str, detail: String },
    /// This request can never succeed: the store refused it as invalid (a validation error),
    /// or what it holds cannot be read (an item that does not parse). Retrying will not help;
    /// the job it is about cannot be processed.
    #[error("{op}: rejected: {detail}")]
    Rejected { op: &'static str, detail: String },
    /// Anything else (access denied, a misconfiguration): retrying soon will not help, but a
    /// deploy may.
    #[error("{op}: {detail}")]
    Other { op: &'static str, detail: String },
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }

    pub fn is_rejected(&self) -> bool {
        matches!(self, StoreError::Rejected { .. })
    }

    pub fn rejected(op: &'static str, detail: impl Into<String>) -> Self {
        StoreError::Rejected {
            op,
            detail: detail.into(),
        }
    }

    pub fn other(op: &'static str, detail: impl Into<String>) -> Self {
        StoreError::Other {
            op,
            detail: detail.into(),
        }
    }

    pub fn unavailable(op: &'static str, detail: impl Into<String>) -> Self {
        StoreError::Unavailable {
            op,
            detail: detail.into(),
        }
    }
}

/// Why a request-path use case (submit, read a job, create an upload, report usage,
/// authenticate) refused or failed. Each variant is one kind of answer; the HTTP edge maps them to
/// status codes and stable error codes. Messages are written for the customer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    /// A parameter is missing, unknown or out of range.
    #[error("{0}")]
    Invalid(String),
    /// Missing, malformed, unknown, wrong or revoked key. The reason is for logs only: the
    /// caller always sees the same answer.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    #[error("customer is disabled")]
    CustomerDisabled,
    /// No such resource, or it belongs to another customer.
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The image itself: corrupt, over a limit, or of an unsupported format.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The image is truncated (found before anything is staged).
    #[error("{0}")]
    Truncated(String),
    #[error("{0}")]
    QuotaExceeded(String),
    /// The customer is over its rate: retry after this many seconds.
    #[error("{message}")]
    RateLimited { message: String, retry_after_s: u64 },
    /// The customer has as many unfinished jobs as it may: retry after this many seconds.
    #[error("{message}")]
    TooManyOpenJobs { message: String, retry_after_s: u64 },
    /// The request reuses an `Idempotency-Key` for another request.
    #[error("{0}")]
    IdempotencyConflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ParamError> for AppError {
    fn from(e: ParamError) -> Self {
        AppError::Invalid(e.message)
    }
}
