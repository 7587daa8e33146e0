//! The SDK configuration, loaded once at cold start.

use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_types::timeout::TimeoutConfig;

/// How long a connection may take before the attempt fails: the same for every call, long polls
/// included (see `sqs::long_poll_timeouts`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one attempt of a call may take before it is retried.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a call may take, its retries included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(25);

/// The timeouts every client gets: a dead dependency becomes a quick, retryable error rather
/// than a hung invocation. `attempt` replaces [`ATTEMPT_TIMEOUT`] where a call's size allows a
/// tighter bound (`s3::S3Bucket::put` of a small object).
pub fn timeouts(attempt: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(attempt)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// Loads the SDK configuration from the standard chain (env, profile, container/instance
/// credentials), with timeouts that turn a dead dependency into a quick, retryable error rather
/// than a hung invocation. Endpoints come from `AWS_ENDPOINT_URL` and
/// `AWS_ENDPOINT_URL_<SERVICE>`; there is no local-mode switch.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts(ATTEMPT_TIMEOUT))
        .load()
        .await
}

/// Whether S3 needs path-style addressing: only when an endpoint override is present
/// (LocalStack, MinIO…), where `<bucket>.<host>` virtual hosts do not resolve.
pub(crate) fn s3_endpoint_overridden(sdk: &SdkConfig) -> bool {
    sdk.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
}

/// An S3 client for `sdk`, path-style where the endpoint is overridden.
pub fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(s3_endpoint_overridden(sdk))
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}
