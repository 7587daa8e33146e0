//! The resize function: drains the jobs queue (and its dead-letter queue), one record at a time.
//!
//! For each record:
//! - a malformed body is logged and consumed: it can never succeed, and it never fails the
//!   other records of its batch;
//! - from the jobs queue: claim the job (a conditional write), convert, store the result, then
//!   write the job's terminal state and its usage item in one transaction. A permanent failure
//!   (bad image, limits) finishes the job `failed` and consumes the message. A transient one
//!   (throttling, 5xx, timeouts) is reported as a batch item failure, so SQS redelivers it;
//! - from the dead-letter queue (after 3 failed receives): the job is finished `failed` with
//!   `internal_error`, so no job is left hanging. The DLQ alarms still tell the operator.

use std::time::Instant;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::LambdaEvent;
use resizer_aws::AppState;
use resizer_aws::StoreError;
use resizer_aws::dynamo::{Claim, Finish};
use resizer_aws::metrics::Unit;
use resizer_core::job::{Job, JobError, JobMessage, JobStatus, ResultMeta};
use resizer_core::pipeline::{self, Output};
use resizer_core::usage::{Outcome, UsageRecord};
use tracing::Instrument;

/// What happened to one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Done with: SQS may delete it.
    Consumed,
    /// Report as a batch item failure: SQS redelivers it after the visibility timeout.
    Retry,
}

/// The Lambda handler: a partial batch response with only the records to retry.
pub async fn handler(
    state: &AppState,
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
pub async fn process_record(state: &AppState, record: &SqsMessage) -> Disposition {
    let body = record.body.as_deref().unwrap_or_default();
    let msg: JobMessage = match serde_json::from_str(body) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, body_bytes = body.len(), "malformed message consumed");
            state
                .metrics
                .emit(&[], &[("MalformedMessages", Unit::Count, 1.0)]);
            return Disposition::Consumed;
        }
    };
    tracing::Span::current().record("job_id", tracing::field::display(&msg.job_id));
    let from_dlq = state.config.jobs_dlq_arn.is_some()
        && record.event_source_arn.as_deref() == state.config.jobs_dlq_arn.as_deref();
    let result = if from_dlq {
        dead_lettered(state, &msg).await
    } else {
        convert(state, &msg, receive_count(record)).await
    };
    match result {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, retryable = e.is_retryable(), "transient failure; the message will be redelivered");
            Disposition::Retry
        }
    }
}

fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn now_ms(state: &AppState) -> i64 {
    (state.now().unix_timestamp_nanos() / 1_000_000) as i64
}

async fn convert(
    state: &AppState,
    msg: &JobMessage,
    receives: u32,
) -> Result<Disposition, StoreError> {
    let started = Instant::now();
    let job = match state.tables.claim_job(&msg.job_id, state.now()).await? {
        Claim::Claimed(job) => job,
        Claim::Finished(job) => {
            tracing::info!(status = %job.status, "job already finished; message consumed without work");
            state
                .metrics
                .emit(&[], &[("DuplicateDeliveries", Unit::Count, 1.0)]);
            return Ok(Disposition::Consumed);
        }
        Claim::Missing => {
            tracing::warn!("no such job (expired or never written); message consumed");
            return Ok(Disposition::Consumed);
        }
    };
    if job.customer_id != msg.customer_id {
        tracing::error!("message names another customer than its job; job failed");
        return fail(
            state,
            job,
            ("internal_error", "inconsistent job message".into()),
            0,
            started,
        )
        .await;
    }
    let queue_wait_ms = (now_ms(state) - msg.enqueued_at_ms).max(0);
    tracing::info!(attempt = job.attempts, receives, queue_wait_ms, customer_id = %job.customer_id, "job claimed");

    let bucket = &state.config.staging_bucket;
    let max_bytes = if job.staging_key.starts_with("uploads/") {
        state.config.max_upload_bytes
    } else {
        state.config.max_inline_bytes
    };
    // The byte limit is enforced before anything is downloaded.
    let head = match state.s3.head(bucket, &job.staging_key).await {
        Ok(h) => h,
        Err(e) if e.is_not_found() => {
            let m = "the staged image no longer exists (uploads expire after 24 hours)";
            return fail(state, job, ("not_found", m.into()), 0, started).await;
        }
        Err(e) => return Err(e),
    };
    if head.size > max_bytes {
        let m = format!(
            "the image is {} bytes, over the limit of {max_bytes} bytes",
            head.size
        );
        return fail(state, job, ("payload_too_large", m), 0, started).await;
    }
    let input = state.s3.get(bucket, &job.staging_key, max_bytes).await?;
    let bytes_in = input.len() as u64;

    let spec = job.params.clone();
    let limits = state.config.limits;
    let run = tokio::task::spawn_blocking(move || {
        let cpu = cpu_time::ThreadTime::now();
        let r = pipeline::process(&input, &spec, &limits);
        (r, cpu.elapsed())
    })
    .await;
    let (result, cpu) = match run {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "conversion task panicked");
            return Ok(Disposition::Retry);
        }
    };
    let cpu_ms = cpu.as_millis() as u64;
    let out = match result {
        Ok(out) => out,
        Err(e) if e.is_permanent() => {
            return fail(state, job, (e.code(), e.to_string()), cpu_ms, started).await;
        }
        Err(e) => {
            tracing::error!(error = %e, "conversion failed with an internal error; will retry");
            return Ok(Disposition::Retry);
        }
    };
    succeed(state, job, out, bytes_in, queue_wait_ms, started).await
}

async fn succeed(
    state: &AppState,
    mut job: Job,
    out: Output,
    bytes_in: u64,
    queue_wait_ms: i64,
    started: Instant,
) -> Result<Disposition, StoreError> {
    let key = job.result_key(out.format);
    let bytes_out = out.bytes.len() as u64;
    state
        .s3
        .put(
            &state.config.results_bucket,
            &key,
            out.bytes,
            out.format.mime(),
        )
        .await?;
    let now = state.now();
    job.status = JobStatus::Done;
    job.updated_at = now;
    job.result = Some(ResultMeta {
        key,
        format: out.format,
        width: out.width,
        height: out.height,
        bytes: bytes_out,
    });
    let cpu_ms = out.cpu.as_millis() as u64;
    let wall_ms = started.elapsed().as_millis() as u64;
    let usage = UsageRecord {
        customer_id: job.customer_id.clone(),
        job_id: job.job_id.clone(),
        outcome: Outcome::Done,
        error_code: None,
        bytes_in,
        bytes_out,
        pixels_in: u64::from(out.input.width) * u64::from(out.input.height),
        pixels_out: u64::from(out.width) * u64::from(out.height),
        cpu_ms,
        wall_ms,
        format_in: Some(out.input.format),
        format_out: Some(out.format),
        job_created_at: job.created_at,
        recorded_at: now,
    };
    let finish = state.tables.finish_job(&job, &usage).await?;
    cleanup_staging(state, &job).await;
    if finish == Finish::AlreadyFinished {
        tracing::info!("job was finished by a concurrent delivery; nothing recorded");
        return Ok(Disposition::Consumed);
    }
    tracing::info!(
        status = "done", customer_id = %job.customer_id, format_in = %out.input.format,
        format_out = %out.format, width = out.width, height = out.height, bytes_in, bytes_out,
        cpu_ms, wall_ms, "job done"
    );
    let format = out.format.as_str();
    state.metrics.emit(
        &[("Format", format)],
        &[
            ("Conversions", Unit::Count, 1.0),
            ("ConversionCpuMs", Unit::Milliseconds, cpu_ms as f64),
            ("ConversionWallMs", Unit::Milliseconds, wall_ms as f64),
            ("BytesIn", Unit::Bytes, bytes_in as f64),
            ("BytesOut", Unit::Bytes, bytes_out as f64),
        ],
    );
    state.metrics.emit(
        &[],
        &[("QueueWaitMs", Unit::Milliseconds, queue_wait_ms as f64)],
    );
    Ok(Disposition::Consumed)
}

/// Finishes a claimed (or queued) job as failed, with its usage item. Permanent: consumed.
async fn fail(
    state: &AppState,
    mut job: Job,
    (code, message): (&str, String),
    cpu_ms: u64,
    started: Instant,
) -> Result<Disposition, StoreError> {
    let now = state.now();
    job.status = JobStatus::Failed;
    job.updated_at = now;
    job.error = Some(JobError {
        code: code.to_owned(),
        message: message.clone(),
    });
    let usage = UsageRecord {
        customer_id: job.customer_id.clone(),
        job_id: job.job_id.clone(),
        outcome: Outcome::Failed,
        error_code: Some(code.to_owned()),
        bytes_in: job.input.bytes,
        bytes_out: 0,
        pixels_in: u64::from(job.input.width) * u64::from(job.input.height),
        pixels_out: 0,
        cpu_ms,
        wall_ms: started.elapsed().as_millis() as u64,
        format_in: Some(job.input.format),
        format_out: None,
        job_created_at: job.created_at,
        recorded_at: now,
    };
    let finish = state.tables.finish_job(&job, &usage).await?;
    cleanup_staging(state, &job).await;
    if finish == Finish::Recorded {
        tracing::warn!(status = "failed", customer_id = %job.customer_id, code, message = %message, "job failed");
        state
            .metrics
            .emit(&[("Code", code)], &[("Failures", Unit::Count, 1.0)]);
    }
    Ok(Disposition::Consumed)
}

/// A message that failed 3 receives: the job ends `failed` (`internal_error`).
async fn dead_lettered(state: &AppState, msg: &JobMessage) -> Result<Disposition, StoreError> {
    state
        .metrics
        .emit(&[], &[("DeadLettered", Unit::Count, 1.0)]);
    let Some(job) = state.tables.get_job(&msg.job_id).await? else {
        tracing::warn!("dead-lettered message for a missing job; consumed");
        return Ok(Disposition::Consumed);
    };
    if job.status.is_terminal() {
        tracing::info!(status = %job.status, "dead-lettered message for a finished job; consumed");
        return Ok(Disposition::Consumed);
    }
    tracing::error!(customer_id = %job.customer_id, attempts = job.attempts, "job dead-lettered; marking it failed");
    let message = "the job could not be processed after repeated attempts; please retry it";
    fail(
        state,
        job,
        ("internal_error", message.into()),
        0,
        Instant::now(),
    )
    .await
}

/// Inline bodies are staged for one job and removed once it is finished. Uploads stay until the
/// staging lifecycle rule expires them, so one upload can feed several jobs.
async fn cleanup_staging(state: &AppState, job: &Job) {
    if job.staging_key.starts_with("inline/")
        && let Err(e) = state
            .s3
            .delete(&state.config.staging_bucket, &job.staging_key)
            .await
    {
        tracing::warn!(error = %e, "could not delete the staged input; the lifecycle rule will");
    }
}
