//! The slice runner: one synchronous invocation of the aggregate-slice function per slice of an
//! hour. The coordinator waits for every slice, so its own timeout covers the slices'.

use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use aws_smithy_types::timeout::TimeoutConfig;
use resizer_app::ports::{SliceReport, SliceRunner, SliceTask};

use crate::error::{StoreError, classify};
use crate::sdk::CONNECT_TIMEOUT;

const OP: &str = "lambda:Invoke aggregate-slice";

/// How long one invocation may take: the longest a Lambda function can run, and then some.
pub const INVOKE_TIMEOUT: Duration = Duration::from_secs(910);

/// The aggregate-slice function, invoked once per slice.
#[derive(Debug, Clone)]
pub struct LambdaSlices {
    client: aws_sdk_lambda::Client,
    function: String,
}

impl LambdaSlices {
    /// A client whose calls may last as long as a slice does (the SDK's default timeouts are
    /// seconds).
    pub fn new(sdk: &SdkConfig, function: impl Into<String>) -> Self {
        let conf = aws_sdk_lambda::config::Builder::from(sdk)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(INVOKE_TIMEOUT)
                    .operation_timeout(INVOKE_TIMEOUT)
                    .build(),
            )
            .build();
        Self {
            client: aws_sdk_lambda::Client::from_conf(conf),
            function: function.into(),
        }
    }

    pub fn function(&self) -> &str {
        &self.function
    }
}

#[async_trait]
impl SliceRunner for LambdaSlices {
    async fn run(&self, task: &SliceTask) -> Result<SliceReport, StoreError> {
        let payload = serde_json::to_vec(task).map_err(|e| StoreError::other(OP, e.to_string()))?;
        let out = self
            .client
            .invoke()
            .function_name(&self.function)
            .invocation_type(InvocationType::RequestResponse)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        let body = out.payload().map(|b| b.as_ref()).unwrap_or_default();
        if let Some(kind) = out.function_error() {
            // A crash, a timeout or an error the slice returned: the next run tries the hour again.
            return Err(StoreError::Unavailable {
                op: OP,
                detail: format!(
                    "slice {} of {} failed ({kind}): {}",
                    task.slice,
                    task.hour,
                    String::from_utf8_lossy(&body[..body.len().min(2048)])
                ),
            });
        }
        serde_json::from_slice(body)
            .map_err(|e| StoreError::other(OP, format!("an unreadable slice report ({e})")))
    }
}
