//! Every SDK error classified into the ports' [`StoreError`]: is it worth a retry?

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
pub use resizer_app::StoreError;

/// Error codes that mean "slow down", across S3, SQS and DynamoDB.
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    // SQS's own: a queue's request rate, and KMS behind an encrypted queue.
    "RequestThrottled",
    "KmsThrottled",
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

/// Error codes of a request that can never succeed as sent.
const REJECTED: &[&str] = &[
    "ValidationException",
    "ValidationError",
    "InvalidParameterValue",
    "InvalidArgument",
    "SerializationException",
    "ItemCollectionSizeLimitExceededException",
    "EntityTooLarge",
    "KeyTooLongError",
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
            } else if REJECTED.contains(&code) {
                StoreError::Rejected {
                    op,
                    detail: format!(
                        "{status} {code}: {}",
                        se.err().message().unwrap_or_default()
                    ),
                }
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
