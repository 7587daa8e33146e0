//! The SQS adapter: one queue (the jobs queue or its dead-letter queue), bound to its URL.

use async_trait::async_trait;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use resizer_app::ports::JobQueue;
use resizer_core::job::JobMessage;

use crate::error::{StoreError, classify};
use crate::sdk::CONNECT_TIMEOUT;

#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    pub fn client(&self) -> &aws_sdk_sqs::Client {
        &self.client
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Long-polls the queue the way an event source mapping does, with the system attributes
    /// Lambda puts in SQS events. (Operators' and tests' tool: in the deployed stack the event
    /// source mappings receive.)
    pub async fn receive(
        &self,
        max_messages: i32,
        wait_seconds: i32,
    ) -> Result<Vec<Message>, StoreError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max_messages)
            .wait_time_seconds(wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .customize()
            .config_override(long_poll_timeouts(wait_seconds))
            .send()
            .await
            .map_err(|e| classify("sqs:ReceiveMessage", e))?;
        Ok(out.messages.unwrap_or_default())
    }

    pub async fn delete(&self, receipt_handle: &str) -> Result<(), StoreError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(|e| classify("sqs:DeleteMessage", e))?;
        Ok(())
    }

    /// Makes a received message visible again after `seconds` (0: at once).
    pub async fn release(&self, receipt_handle: &str, seconds: i32) -> Result<(), StoreError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds)
            .send()
            .await
            .map_err(|e| classify("sqs:ChangeMessageVisibility", e))?;
        Ok(())
    }
}

#[async_trait]
impl JobQueue for SqsQueue {
    async fn send(&self, msg: &JobMessage) -> Result<(), StoreError> {
        let body = serde_json::to_string(msg).expect("a job message always serialises");
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| classify("sqs:SendMessage", e))?;
        Ok(())
    }

    async fn defer(
        &self,
        receipt_handle: &str,
        delay: std::time::Duration,
    ) -> Result<(), StoreError> {
        // SQS caps a visibility timeout at 12 hours.
        let seconds = delay.as_secs().min(43_200) as i32;
        self.release(receipt_handle, seconds).await
    }
}

/// Timeouts for a long poll: the client's defaults (10 s per attempt) would cut a 20 s poll short,
/// and SQS can still hand messages to a poll its caller abandoned, leaving them invisible for the
/// queue's visibility timeout. So the attempt may last the whole wait, plus a margin. (An override
/// replaces the client's whole timeout config, hence the connect timeout again.)
fn long_poll_timeouts(wait_seconds: i32) -> aws_sdk_sqs::config::Builder {
    let wait = std::time::Duration::from_secs(wait_seconds.max(0) as u64);
    let margin = std::time::Duration::from_secs(10);
    aws_sdk_sqs::config::Builder::default().timeout_config(
        aws_smithy_types::timeout::TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_attempt_timeout(wait + margin)
            .operation_timeout(wait + margin * 2)
            .build(),
    )
}
