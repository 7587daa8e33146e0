//! The resize function's use cases: process a job message from the jobs queue, and finish a job
//! whose message was dead-lettered.
//!
//! - Claim the job (a conditional write), read the staged image within its byte limit, convert
//!   it, store the result, then write the job's terminal state and its usage record together.
//! - A permanent failure (a bad image, a limit) finishes the job `failed` and consumes the
//!   message. A transient one (throttling, 5xx, timeouts) leaves the message for redelivery.
//! - A redelivered message of a finished job is consumed without work, so nothing is done or
//!   counted twice.

use std::sync::Arc;
use std::time::Instant;

use resizer_core::job::{Job, JobError, JobMessage, ResultMeta};
use resizer_core::usage::UsageRecord;

use crate::metrics::Unit;
use crate::ports::{Claim, Converted, Converter, Finish};
use crate::submit::epoch_ms;
use crate::{App, StoreError};

/// What happened to one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Done with: the queue may delete it.
    Consumed,
    /// Leave it for redelivery (a transient failure).
    Retry,
}

impl App {
    /// Processes one message of the jobs queue, received `receives` times so far.
    pub async fn process(
        &self,
        msg: &JobMessage,
        receives: u32,
        converter: Arc<dyn Converter>,
    ) -> Disposition {
        retry_on_store_error(self.convert(msg, receives, converter).await)
    }

    /// A message that failed its receives on the jobs queue: the job, if still unfinished, ends
    /// `failed` with `internal_error`, so that no job is left hanging.
    pub async fn finish_dead_letter(&self, msg: &JobMessage) -> Disposition {
        retry_on_store_error(self.dead_lettered(msg).await)
    }

    async fn convert(
        &self,
        msg: &JobMessage,
        receives: u32,
        converter: Arc<dyn Converter>,
    ) -> Result<Disposition, StoreError> {
        let started = Instant::now();
        let job = match self.stores.jobs.claim(&msg.job_id, self.now()).await? {
            Claim::Claimed(job) => job,
            Claim::Finished(job) => {
                tracing::info!(status = %job.status, "job already finished; message consumed without work");
                self.metrics
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
            let error = JobError::new("internal_error", "inconsistent job message");
            return self.fail(job, error, 0, started).await;
        }
        let queue_wait_ms = (epoch_ms(self.now()) - msg.enqueued_at_ms).max(0);
        tracing::info!(attempt = job.attempts, receives, queue_wait_ms, customer_id = %job.customer_id, "job claimed");

        let key = job.staging_key.to_string();
        let max_bytes = if job.staging_key.is_inline() {
            self.settings.max_inline_bytes
        } else {
            self.settings.max_upload_bytes
        };
        // The byte limit is enforced before anything is downloaded.
        let head = match self.stores.staging.head(&key).await {
            Ok(h) => h,
            Err(e) if e.is_not_found() => {
                let m = "the staged image no longer exists (uploads expire after 24 hours)";
                return self
                    .fail(job, JobError::new("not_found", m), 0, started)
                    .await;
            }
            Err(e) => return Err(e),
        };
        if head.size > max_bytes {
            let m = format!(
                "the image is {} bytes, over the limit of {max_bytes} bytes",
                head.size
            );
            return self
                .fail(job, JobError::new("payload_too_large", m), 0, started)
                .await;
        }
        let input = self.stores.staging.get(&key, max_bytes).await?;

        let spec = job.params.clone();
        let limits = self.settings.limits;
        let run =
            tokio::task::spawn_blocking(move || converter.convert(&input, &spec, &limits)).await;
        let conversion = match run {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "conversion task panicked");
                return Ok(Disposition::Retry);
            }
        };
        let cpu_ms = conversion.cpu.as_millis() as u64;
        match conversion.result {
            Ok(out) => self.succeed(job, out, cpu_ms, queue_wait_ms, started).await,
            Err(e) if e.is_permanent() => {
                let error = JobError::new(e.code(), e.to_string());
                self.fail(job, error, cpu_ms, started).await
            }
            Err(e) => {
                tracing::error!(error = %e, "conversion failed with an internal error; will retry");
                Ok(Disposition::Retry)
            }
        }
    }

    async fn succeed(
        &self,
        mut job: Job,
        out: Converted,
        cpu_ms: u64,
        queue_wait_ms: i64,
        started: Instant,
    ) -> Result<Disposition, StoreError> {
        let key = job.result_key(out.format);
        let bytes_out = out.bytes.len() as u64;
        self.stores
            .results
            .put(&key, out.bytes, out.format.mime())
            .await?;
        let result = ResultMeta {
            key,
            format: out.format,
            width: out.width,
            height: out.height,
            bytes: bytes_out,
        };
        job.complete(result, self.now());
        let wall_ms = started.elapsed().as_millis() as u64;
        let usage = UsageRecord::for_job(&job, cpu_ms, wall_ms);
        let finish = self.stores.jobs.finish(&job, &usage).await?;
        self.cleanup_staging(&job).await;
        if finish == Finish::AlreadyFinished {
            tracing::info!("job was finished by a concurrent delivery; nothing recorded");
            return Ok(Disposition::Consumed);
        }
        let bytes_in = usage.bytes_in;
        tracing::info!(
            status = "done", customer_id = %job.customer_id, format_in = %out.input.format,
            format_out = %out.format, width = out.width, height = out.height, bytes_in, bytes_out,
            cpu_ms, wall_ms, "job done"
        );
        self.metrics.emit(
            &[("Format", out.format.as_str())],
            &[
                ("Conversions", Unit::Count, 1.0),
                ("ConversionCpuMs", Unit::Milliseconds, cpu_ms as f64),
                ("ConversionWallMs", Unit::Milliseconds, wall_ms as f64),
                ("BytesIn", Unit::Bytes, bytes_in as f64),
                ("BytesOut", Unit::Bytes, bytes_out as f64),
            ],
        );
        self.metrics.emit(
            &[],
            &[("QueueWaitMs", Unit::Milliseconds, queue_wait_ms as f64)],
        );
        Ok(Disposition::Consumed)
    }

    /// Finishes a claimed (or queued) job as failed, with its usage record. Permanent: consumed.
    async fn fail(
        &self,
        mut job: Job,
        error: JobError,
        cpu_ms: u64,
        started: Instant,
    ) -> Result<Disposition, StoreError> {
        job.fail(error, self.now());
        let usage = UsageRecord::for_job(&job, cpu_ms, started.elapsed().as_millis() as u64);
        let finish = self.stores.jobs.finish(&job, &usage).await?;
        self.cleanup_staging(&job).await;
        if finish == Finish::Recorded
            && let Some(e) = &job.error
        {
            tracing::warn!(status = "failed", customer_id = %job.customer_id, code = %e.code, message = %e.message, "job failed");
            self.metrics
                .emit(&[("Code", &e.code)], &[("Failures", Unit::Count, 1.0)]);
        }
        Ok(Disposition::Consumed)
    }

    async fn dead_lettered(&self, msg: &JobMessage) -> Result<Disposition, StoreError> {
        self.metrics
            .emit(&[], &[("DeadLettered", Unit::Count, 1.0)]);
        let Some(job) = self.stores.jobs.get(&msg.job_id).await? else {
            tracing::warn!("dead-lettered message for a missing job; consumed");
            return Ok(Disposition::Consumed);
        };
        if job.status.is_terminal() {
            tracing::info!(status = %job.status, "dead-lettered message for a finished job; consumed");
            return Ok(Disposition::Consumed);
        }
        tracing::error!(customer_id = %job.customer_id, attempts = job.attempts, "job dead-lettered; marking it failed");
        let error = JobError::new(
            "internal_error",
            "the job could not be processed after repeated attempts; please retry it",
        );
        self.fail(job, error, 0, Instant::now()).await
    }

    /// Inline bodies are staged for one job and removed once it is finished. Uploads stay until
    /// the staging lifecycle rule expires them, so one upload can feed several jobs.
    async fn cleanup_staging(&self, job: &Job) {
        if job.staging_key.is_inline()
            && let Err(e) = self
                .stores
                .staging
                .delete(&job.staging_key.to_string())
                .await
        {
            tracing::warn!(error = %e, "could not delete the staged input; the lifecycle rule will");
        }
    }
}

fn retry_on_store_error(r: Result<Disposition, StoreError>) -> Disposition {
    match r {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, retryable = e.is_retryable(), "transient failure; the message will be redelivered");
            Disposition::Retry
        }
    }
}
