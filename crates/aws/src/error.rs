//! One error type for every adapter, classified the way callers need it: is it worth a retry?

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;

/// A failed call to S3, SQS or DynamoDB.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object or item does not exist.
    #[error("{op}: not found")]
    NotFound { op: &'static str },
    /// A condition expression refused the write (e.g. a backward state change).
    #[error("{op}: condition failed")]
    Conflict { op: &'static str },
    /// Throttling, a 5xx, a timeout or a connection failure: worth retrying later.
    #[error("{op}: dependency unavailable: {detail}")]
    Unavailable { op: &'static str, detail: String },
    /// Anything else (access denied, validation, a bug of ours): retrying will not help.
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

    pub fn other(op: &'static str, detail: impl Into<String>) -> Self {
        StoreError::Other {
            op,
            detail: detail.into(),
        }
    }
}

/// Error codes that mean "slow down", across S3, SQS and DynamoDB.
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TransactionConflictException",
    "TransactionInProgressException",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "KMS.ThrottlingException",
];

const NOT_FOUND: &[&str] = &[
    "NoSuchKey",
    "NotFound",
    "ResourceNotFoundException",
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
];

/// Classifies any SDK error.
pub fn classify<E>(op: &'static str, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable {
                op,
                detail: error_chain(&err),
            }
        }
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se.err().code().unwrap_or("");
            if code == "ConditionalCheckFailedException" {
                StoreError::Conflict { op }
            } else if THROTTLING.contains(&code) || status >= 500 || status == 429 {
                StoreError::Unavailable {
                    op,
                    detail: format!("{status} {code}"),
                }
            } else if NOT_FOUND.contains(&code) || status == 404 {
                StoreError::NotFound { op }
            } else {
                StoreError::Other {
                    op,
                    detail: format!(
                        "{status} {code}: {}",
                        se.err().message().unwrap_or_default()
                    ),
                }
            }
        }
        _ => StoreError::Other {
            op,
            detail: error_chain(&err),
        },
    }
}

/// The error and its sources on one line, for logs.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        s.push_str(": ");
        s.push_str(&e.to_string());
        cur = e.source();
    }
    s
}
