//! The resize function: drains the jobs queue (and its dead-letter queue), one record at a time.
//!
//! The handler only translates: each record's body becomes a job message (a malformed one is
//! logged and consumed: it can never succeed, and it never fails the other records of its batch),
//! and the use case's disposition becomes the partial batch response. What happens to the job is
//! [`resizer_app::App::process`] (from the jobs queue) and
//! [`resizer_app::App::finish_dead_letter`] (from the dead-letter queue).

use std::sync::Arc;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::LambdaEvent;
use resizer_app::ports::{Conversion, Converted, Converter};
use resizer_app::{App, Disposition, Unit};
use resizer_core::image::Limits;
use resizer_core::job::JobMessage;
use resizer_core::transform::TransformSpec;
use tracing::Instrument;

/// What the function builds at cold start.
pub struct Resize {
    pub app: App,
    /// Records from this queue are dead letters.
    pub dlq_arn: Option<String>,
    pub converter: Arc<dyn Converter>,
}

impl Resize {
    pub fn new(app: App, dlq_arn: Option<String>) -> Self {
        Self {
            app,
            dlq_arn,
            converter: Arc::new(Engine),
        }
    }
}

/// The image engine behind the application's converter port.
pub struct Engine;

impl Converter for Engine {
    fn convert(&self, input: &[u8], spec: &TransformSpec, limits: &Limits) -> Conversion {
        let (result, cpu) = resizer_engine::process_measured(input, spec, limits);
        Conversion {
            result: result.map(|o| Converted {
                bytes: o.bytes,
                format: o.format,
                width: o.width,
                height: o.height,
                input: o.input,
            }),
            cpu,
        }
    }
}

/// The Lambda handler: a partial batch response with only the records to retry.
pub async fn handler(
    state: &Resize,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let mut response = SqsBatchResponse::default();
    for record in &event.payload.records {
        let message_id = record.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!("message", message_id = %message_id, job_id = tracing::field::Empty);
        let disposition = Box::pin(process_record(state, record))
            .instrument(span)
            .await;
        if disposition == Disposition::Retry {
            let mut f = BatchItemFailure::default();
            f.item_identifier = message_id;
            response.batch_item_failures.push(f);
        }
    }
    Ok(response)
}

/// Handles one record on its own.
pub async fn process_record(state: &Resize, record: &SqsMessage) -> Disposition {
    let body = record.body.as_deref().unwrap_or_default();
    let msg: JobMessage = match serde_json::from_str(body) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, body_bytes = body.len(), "malformed message consumed");
            state
                .app
                .metrics
                .emit(&[], &[("MalformedMessages", Unit::Count, 1.0)]);
            return Disposition::Consumed;
        }
    };
    tracing::Span::current().record("job_id", tracing::field::display(&msg.job_id));
    let from_dlq =
        state.dlq_arn.is_some() && record.event_source_arn.as_deref() == state.dlq_arn.as_deref();
    if from_dlq {
        state.app.finish_dead_letter(&msg).await
    } else {
        let receives = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        state
            .app
            .process(&msg, receives, state.converter.clone())
            .await
    }
}
