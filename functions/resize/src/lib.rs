//! The resize function: drains the jobs queue (and its dead-letter queue), one record at a time.
//!
//! The handler only translates: each record's body becomes a job message (a malformed one is
//! logged and consumed: it can never succeed, and it never fails the other records of its batch),
//! and the use case's disposition becomes the partial batch response. What happens to the job is
//! [`resizer_app::App::process`] (from the jobs queue) and
//! [`resizer_app::App::finish_dead_letter`] (from the dead-letter queue).
//!
//! A conversion that outlives its deadline fails its job, but its thread cannot be stopped: the
//! environment then exits as soon as it is idle ([`recycle_when_idle`]), and Lambda starts a
//! fresh one, so that no abandoned work steals the next job's CPU.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::LambdaEvent;
use resizer_app::ports::{Conversion, Converted, Converter};
use resizer_app::{App, Delivery, Disposition, Unit};
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
    /// Conversions running now (an abandoned one keeps counting until it ends).
    running: Arc<AtomicUsize>,
    /// Whether an invocation is in progress.
    busy: Arc<AtomicBool>,
}

impl Resize {
    /// The function's state, with the image engine.
    pub fn new(app: App, dlq_arn: Option<String>) -> Self {
        let running = Arc::new(AtomicUsize::new(0));
        let engine = Engine {
            running: running.clone(),
        };
        Self::with(app, dlq_arn, Arc::new(engine), running)
    }

    /// The same with another converter (tests).
    pub fn with_converter(
        app: App,
        dlq_arn: Option<String>,
        converter: Arc<dyn Converter>,
    ) -> Self {
        Self::with(app, dlq_arn, converter, Arc::new(AtomicUsize::new(0)))
    }

    fn with(
        app: App,
        dlq_arn: Option<String>,
        converter: Arc<dyn Converter>,
        running: Arc<AtomicUsize>,
    ) -> Self {
        Self {
            app,
            dlq_arn,
            converter,
            running,
            busy: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// The image engine behind the application's converter port.
pub struct Engine {
    running: Arc<AtomicUsize>,
}

/// Counts a conversion while it runs, however it ends.
struct Running<'a>(&'a AtomicUsize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Converter for Engine {
    fn convert(&self, input: &[u8], spec: &TransformSpec, limits: &Limits) -> Conversion {
        self.running.fetch_add(1, Ordering::SeqCst);
        let _running = Running(&self.running);
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
    state.busy.store(true, Ordering::SeqCst);
    let deadline = invocation_deadline(event.context.deadline);
    let mut response = SqsBatchResponse::default();
    for record in &event.payload.records {
        let message_id = record.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!("message", message_id = %message_id, job_id = tracing::field::Empty);
        let disposition = Box::pin(process_record(state, record, deadline))
            .instrument(span)
            .await;
        if matches!(disposition, Disposition::Retry { .. }) {
            let mut f = BatchItemFailure::default();
            f.item_identifier = message_id;
            response.batch_item_failures.push(f);
        }
    }
    state.busy.store(false, Ordering::SeqCst);
    Ok(response)
}

/// Lambda's deadline (epoch milliseconds) as an instant on this process's clock.
fn invocation_deadline(epoch_ms: u64) -> Option<Instant> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_millis() as u64;
    (epoch_ms > 0).then(|| Instant::now() + Duration::from_millis(epoch_ms.saturating_sub(now_ms)))
}

/// Exits the process once an abandoned conversion is still running and no invocation is in
/// progress: Lambda then replaces the environment. Safe at any moment: every job's state is
/// written before its invocation answers, so an exit can at worst cost a redelivery, which finds
/// the job finished. Call once, at cold start.
pub fn recycle_when_idle(state: &Resize) {
    let (running, busy) = (state.running.clone(), state.busy.clone());
    std::thread::spawn(move || {
        let mut idle_since: Option<Instant> = None;
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let abandoned = running.load(Ordering::SeqCst) > 0 && !busy.load(Ordering::SeqCst);
            match (abandoned, idle_since) {
                (false, _) => idle_since = None,
                (true, None) => idle_since = Some(Instant::now()),
                // Idle a moment: the invocation's answer has been posted.
                (true, Some(t)) if t.elapsed() >= Duration::from_millis(300) => {
                    tracing::warn!(
                        "an abandoned conversion is still running; recycling the environment"
                    );
                    std::process::exit(0);
                }
                (true, Some(_)) => {}
            }
        }
    });
}

/// Handles one record on its own.
pub async fn process_record(
    state: &Resize,
    record: &SqsMessage,
    deadline: Option<Instant>,
) -> Disposition {
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
    let delivery = Delivery {
        message: &msg,
        receives: record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1),
        receipt: record.receipt_handle.as_deref(),
        deadline,
    };
    let from_dlq =
        state.dlq_arn.is_some() && record.event_source_arn.as_deref() == state.dlq_arn.as_deref();
    if from_dlq {
        state.app.finish_dead_letter(delivery).await
    } else {
        state.app.process(delivery, state.converter.clone()).await
    }
}
