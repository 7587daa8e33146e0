//! The SDK configuration, loaded once at cold start.

use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_types::timeout::TimeoutConfig;

/// How long a connection may take before the attempt fails: the same for every call, long polls
/// included (see `sqs::long_poll_timeouts`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Loads the SDK configuration from the standard chain (env, profile, container/instance
/// credentials), with timeouts that turn a dead dependency into a quick, retryable error rather
/// than a hung invocation. Endpoints come from `AWS_ENDPOINT_URL` and
/// `AWS_ENDPOINT_URL_<SERVICE>`; there is no local-mode switch.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(Duration::from_secs(10))
                .operation_timeout(Duration::from_secs(25))
                .build(),
        )
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
