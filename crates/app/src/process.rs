//! The resize function's use cases: process a job message from the jobs queue, and finish (or
//! send back) a job whose message was dead-lettered.
//!
//! - Claim the job (a conditional write), read the staged image within its byte limit, convert
//!   it within the invocation's deadline, store the result, then write the job's terminal state
//!   and its usage record together.
//! - A failure of the image itself (corrupt, over a limit, too slow to convert, or crashing the
//!   function `max_crashes` times) finishes the job `failed` and consumes the message.
//! - A failure of a dependency (throttling, 5xx, timeouts, a store refusing us) gives the job back
//!   and leaves the message for redelivery, later each time (the retry backoff), so that an outage
//!   of an hour costs waiting, not failed jobs.
//! - A redelivered message of a finished job is consumed without work, so nothing is done or
//!   counted twice; it only removes the job's inline body again.
//! - An inline body is removed once its job is finished. If S3 refuses the delete, the message
//!   comes back (after the retry backoff) to remove it, so no customer image outlives its job by
//!   more than the retries.
//! - From the dead-letter queue, a job that is still young goes back to the jobs queue; only one
//!   too old to be useful ends `failed` with `expired`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use resizer_core::image::ImageError;
use resizer_core::job::{Job, JobError, JobMessage, ResultMeta};
use resizer_core::usage::UsageRecord;

use crate::metrics::Unit;
use crate::ports::{Claim, Converted, Converter, Finish, JobQueue};
use crate::submit::epoch_ms;
use crate::{App, StoreError};

/// The error codes of a job that failed through no fault of its own: not billed, and an alarm
/// when they rise.
pub const SYSTEM_FAILURES: [&str; 2] = ["expired", "internal_error"];

/// What happened to one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Done with: the queue may delete it.
    Consumed,
    /// Leave it for redelivery (a transient failure), not before `after`.
    Retry { after: Duration },
}

/// One delivery of a job message.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub message: &'a JobMessage,
    /// How many times the queue has handed the message out, this time included.
    pub receives: u32,
    /// The receipt of this delivery, to push the next one back.
    pub receipt: Option<&'a str>,
    /// When the invocation must have answered; the conversion gets what is left minus a margin
    /// for storing the result.
    pub deadline: Option<Instant>,
}

/// What a conversion needs left after it, to store the result and record the outcome.
pub const FINISH_MARGIN: Duration = Duration::from_secs(3);

/// The shortest time a conversion is given, however late the invocation started.
const MIN_CONVERSION_TIME: Duration = Duration::from_secs(1);

/// How long a message may name a job that does not exist yet: a job whose image travels in its
/// message is written after the message is sent (`App::submit`), within the api's 29 s. Past it,
/// the job's write failed or the api died before it; the caller was told so (or got no answer),
/// and the message is dropped.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(60);

/// When a message for a job not written yet comes back.
const ORPHAN_RETRY: Duration = Duration::from_secs(5);

impl App {
    /// Processes one message of the jobs queue.
    pub async fn process(&self, d: Delivery<'_>, converter: Arc<dyn Converter>) -> Disposition {
        let r = self.convert(d, converter).await;
        self.settle(r, d, &*self.stores.queue).await
    }

    /// A message that failed its receives on the jobs queue.
    pub async fn finish_dead_letter(&self, d: Delivery<'_>) -> Disposition {
        let r = self.dead_lettered(d).await;
        self.settle(r, d, &*self.stores.dead_letters).await
    }

    /// A transient failure pushes the message's next delivery back by the retry backoff.
    async fn settle(
        &self,
        r: Result<Disposition, StoreError>,
        d: Delivery<'_>,
        queue: &dyn JobQueue,
    ) -> Disposition {
        let disposition = match r {
            Ok(d) => d,
            Err(e) if e.is_rejected() => self.reject(d.message, &e).await,
            Err(e) => {
                // A dependency down or throttling: soon, then later and later. Anything else
                // (access denied, a misconfiguration) will not pass before a deploy fixes it:
                // the longest wait straight away.
                let after = if e.is_retryable() {
                    self.settings.retry_delay(d.receives)
                } else {
                    self.settings.retry_backoff_max
                };
                tracing::warn!(error = %e, retryable = e.is_retryable(), receives = d.receives, after_s = after.as_secs(), "transient failure; the message will be redelivered");
                self.metrics.emit(
                    &[(
                        "Kind",
                        if e.is_retryable() {
                            "dependency"
                        } else {
                            "refused"
                        },
                    )],
                    &[("TransientFailures", Unit::Count, 1.0)],
                );
                Disposition::Retry { after }
            }
        };
        if let (Disposition::Retry { after }, Some(receipt)) = (disposition, d.receipt)
            && let Err(e) = queue.defer(receipt, after).await
        {
            tracing::warn!(error = %e, "could not push the redelivery back; the queue's visibility timeout applies");
        }
        disposition
    }

    /// A job that can never be processed: its item does not parse, or the store rejects a write
    /// about it as invalid. It ends `failed` without being read.
    async fn reject(&self, msg: &JobMessage, e: &StoreError) -> Disposition {
        tracing::error!(error = %e, "the job cannot be processed (unreadable or rejected); failing it");
        let error = JobError::new(
            "internal_error",
            "the job could not be processed because of an error of ours; it is not billed, \
             please submit it again",
        );
        match self
            .stores
            .jobs
            .fail_unreadable(&msg.job_id, &error, self.now())
            .await
        {
            Ok(()) | Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound { .. }) => {
                self.metrics.emit(
                    &[("Code", "internal_error")],
                    &[("Failures", Unit::Count, 1.0)],
                );
                Disposition::Consumed
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not fail the job; the message will be redelivered");
                Disposition::Retry {
                    after: self.settings.retry_backoff_max,
                }
            }
        }
    }

    async fn convert(
        &self,
        d: Delivery<'_>,
        converter: Arc<dyn Converter>,
    ) -> Result<Disposition, StoreError> {
        let started = Instant::now();
        let msg = d.message;
        let job = match self.stores.jobs.claim(&msg.job_id, self.now()).await? {
            Claim::Claimed(job) => job,
            Claim::Finished(job) => {
                tracing::info!(status = %job.status, "job already finished; message consumed without work");
                self.metrics
                    .emit(&[], &[("DuplicateDeliveries", Unit::Count, 1.0)]);
                return Ok(self.cleanup_staging(&job, d.receives).await);
            }
            Claim::Missing => {
                let age_ms = (epoch_ms(self.now()) - msg.enqueued_at_ms).max(0) as u64;
                if Duration::from_millis(age_ms) < ORPHAN_GRACE {
                    tracing::info!(
                        age_ms,
                        "no such job yet (its record is written after its message is sent); retrying"
                    );
                    return Ok(Disposition::Retry {
                        after: ORPHAN_RETRY,
                    });
                }
                tracing::warn!("no such job (expired or never written); message consumed");
                return Ok(Disposition::Consumed);
            }
        };
        if let Some(why) = unusable(&job, msg) {
            // Not this message's job to do: give the job back, unharmed, to the message that can.
            tracing::warn!(
                carried = job.carried,
                "{why}; message consumed without work"
            );
            self.stores.jobs.release(&job.job_id, job.attempts).await?;
            return Ok(Disposition::Consumed);
        }
        if job.customer_id != msg.customer_id {
            tracing::error!("message names another customer than its job; job failed");
            let error = JobError::new("internal_error", "inconsistent job message");
            return self.fail(job, error, 0, started).await;
        }
        if job.crashes >= self.settings.max_crashes {
            return self.fail(job.clone(), crashed(&job), 0, started).await;
        }
        let queue_wait_ms = (epoch_ms(self.now()) - msg.enqueued_at_ms).max(0);
        tracing::info!(attempt = job.attempts, crashes = job.crashes, receives = d.receives, queue_wait_ms, customer_id = %job.customer_id, "job claimed");
        match self.run(&job, d, converter, started, queue_wait_ms).await {
            Err(e) => {
                // Give the job back, so that its next claim does not count a crash.
                if let Err(r) = self.stores.jobs.release(&job.job_id, job.attempts).await {
                    tracing::warn!(error = %r, "could not release the job; its next claim counts a crash");
                }
                Err(e)
            }
            ok => ok,
        }
    }

    async fn run(
        &self,
        job: &Job,
        d: Delivery<'_>,
        converter: Arc<dyn Converter>,
        started: Instant,
        queue_wait_ms: i64,
    ) -> Result<Disposition, StoreError> {
        let input = match &d.message.image {
            // Written by our api within the inline limit (`unusable` checked it is the job's).
            Some(image) => image.clone(),
            None => match self.read_staged(job, started).await? {
                Ok(bytes) => bytes,
                Err(done) => return Ok(done),
            },
        };

        let spec = job.params.clone();
        let limits = self.settings.limits;
        let budget = conversion_budget(d.deadline);
        let task = tokio::task::spawn_blocking(move || converter.convert(&input, &spec, &limits));
        let conversion = match tokio::time::timeout(budget, task).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "conversion task panicked");
                return Err(StoreError::other(
                    "conversion",
                    "the conversion task panicked",
                ));
            }
            Err(_) => {
                // The same input would take as long again: the job's own failure. The abandoned
                // conversion runs on; the function's environment is recycled once idle.
                tracing::warn!(
                    budget_ms = budget.as_millis() as u64,
                    "conversion over its deadline; job failed"
                );
                let e = ImageError::Timeout(format!(
                    "converting the image took longer than the {:.1} s a conversion may take",
                    budget.as_secs_f64()
                ));
                let error = JobError::new(e.code(), e.to_string());
                let cpu_ms = budget.as_millis() as u64;
                return self.fail(job.clone(), error, cpu_ms, started).await;
            }
        };
        let cpu_ms = conversion.cpu.as_millis() as u64;
        match conversion.result {
            Ok(out) => {
                self.succeed(job.clone(), out, cpu_ms, queue_wait_ms, started)
                    .await
            }
            Err(e) if e.is_permanent() => {
                let error = JobError::new(e.code(), e.to_string());
                self.fail(job.clone(), error, cpu_ms, started).await
            }
            Err(e) => {
                tracing::error!(error = %e, "conversion failed with an internal error; will retry");
                Err(StoreError::other("conversion", e.to_string()))
            }
        }
    }

    /// A staged input, within its byte limit (enforced before anything is downloaded); or the
    /// job's end when the input is gone or too large.
    async fn read_staged(
        &self,
        job: &Job,
        started: Instant,
    ) -> Result<Result<Vec<u8>, Disposition>, StoreError> {
        let key = job.staging_key.to_string();
        let max_bytes = if job.staging_key.is_inline() {
            self.settings.max_inline_bytes
        } else {
            self.settings.max_upload_bytes
        };
        let head = match self.stores.staging.head(&key).await {
            Ok(h) => h,
            Err(e) if e.is_not_found() => {
                // An upload the customer let expire is the job's fault; an inline body is ours
                // to keep until the job ends, so losing it (the staging lifecycle rule outran a
                // long outage) is not.
                let error = if job.staging_key.is_inline() {
                    crate::sweep::expired(self.settings.max_job_age)
                } else {
                    let m = "the staged image no longer exists (uploads expire after 24 hours)";
                    JobError::new("not_found", m)
                };
                return self.fail(job.clone(), error, 0, started).await.map(Err);
            }
            Err(e) => return Err(e),
        };
        if head.size > max_bytes {
            let m = format!(
                "the image is {} bytes, over the limit of {max_bytes} bytes",
                head.size
            );
            let error = JobError::new("payload_too_large", m);
            return self.fail(job.clone(), error, 0, started).await.map(Err);
        }
        Ok(Ok(self.stores.staging.get(&key, max_bytes).await?))
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
        let cleaned = self.cleanup_staging(&job, 1).await;
        if finish == Finish::AlreadyFinished {
            tracing::info!("job was finished by a concurrent delivery; nothing recorded");
            return Ok(cleaned);
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
        Ok(cleaned)
    }

    /// Finishes a claimed (or queued) job as failed, with its usage record. Consumed, unless its
    /// inline body could not be removed.
    pub(crate) async fn fail(
        &self,
        mut job: Job,
        error: JobError,
        cpu_ms: u64,
        started: Instant,
    ) -> Result<Disposition, StoreError> {
        job.fail(error, self.now());
        let usage = UsageRecord::for_job(&job, cpu_ms, started.elapsed().as_millis() as u64);
        let finish = self.stores.jobs.finish(&job, &usage).await?;
        let cleaned = self.cleanup_staging(&job, 1).await;
        if finish == Finish::Recorded
            && let Some(e) = &job.error
        {
            tracing::warn!(status = "failed", customer_id = %job.customer_id, code = %e.code, message = %e.message, "job failed");
            self.metrics
                .emit(&[("Code", &e.code)], &[("Failures", Unit::Count, 1.0)]);
        }
        Ok(cleaned)
    }

    async fn dead_lettered(&self, d: Delivery<'_>) -> Result<Disposition, StoreError> {
        self.metrics
            .emit(&[], &[("DeadLettered", Unit::Count, 1.0)]);
        let msg = d.message;
        let Some(job) = self.stores.jobs.get(&msg.job_id).await? else {
            tracing::warn!("dead-lettered message for a missing job; consumed");
            return Ok(Disposition::Consumed);
        };
        if job.status.is_terminal() {
            tracing::info!(status = %job.status, "dead-lettered message for a finished job; consumed");
            return Ok(self.cleanup_staging(&job, d.receives).await);
        }
        if job.crashes >= self.settings.max_crashes {
            return self
                .fail(job.clone(), crashed(&job), 0, Instant::now())
                .await;
        }
        let age = (self.now() - job.created_at).unsigned_abs();
        if age >= self.settings.max_job_age {
            tracing::error!(customer_id = %job.customer_id, attempts = job.attempts, age_s = age.as_secs(), "dead-lettered job too old to process; it expires");
            let error = crate::sweep::expired(self.settings.max_job_age);
            return self.fail(job, error, 0, Instant::now()).await;
        }
        // A dependency was down for longer than the jobs queue's receives last: send the job
        // round again.
        let again = JobMessage {
            enqueued_at_ms: epoch_ms(self.now()),
            redrives: msg.redrives + 1,
            ..msg.clone()
        };
        self.stores.queue.send(&again).await?;
        tracing::warn!(customer_id = %job.customer_id, attempts = job.attempts, redrives = again.redrives, "dead-lettered job sent back to the jobs queue");
        self.metrics.emit(&[], &[("Redriven", Unit::Count, 1.0)]);
        Ok(Disposition::Consumed)
    }

    /// Inline bodies are staged for one job and removed once it is finished (deleting a body
    /// already gone succeeds). If the delete fails, the message comes back after the retry
    /// backoff of its `receives`-th delivery to try again (the job stays finished); the staging
    /// lifecycle rule is only the last resort. Uploads stay until that rule expires them, so one
    /// upload can feed several jobs.
    async fn cleanup_staging(&self, job: &Job, receives: u32) -> Disposition {
        if job.staging_key.is_inline()
            && !job.carried
            && let Err(e) = self
                .stores
                .staging
                .delete(&job.staging_key.to_string())
                .await
        {
            let after = self.settings.retry_delay(receives);
            tracing::warn!(error = %e, after_s = after.as_secs(), "could not delete the staged input; the message comes back to delete it");
            return Disposition::Retry { after };
        }
        Disposition::Consumed
    }
}

/// Why `msg` cannot process `job`, if it cannot: a message's image must be the job's own (two
/// requests with one idempotency key and two images each sent a message before one of them wrote
/// the job), and a job whose image travels in its message needs that message (a sweep's has none).
fn unusable(job: &Job, msg: &JobMessage) -> Option<&'static str> {
    match &msg.image {
        Some(_) if msg.request_hash != job.request_hash => {
            Some("the message's image is not the job's (another request with its idempotency key)")
        }
        None if job.carried => {
            Some("the job's image travels in its own message, and this message carries none")
        }
        _ => None,
    }
}

/// The failure of a job that kept killing the function.
fn crashed(job: &Job) -> JobError {
    JobError::new(
        "processing_failed",
        format!(
            "the image could not be processed: the conversion stopped without an answer {} times \
             (it crashed or ran out of time or memory)",
            job.crashes
        ),
    )
}

/// What a conversion may take: up to the invocation's deadline, minus the finish margin.
fn conversion_budget(deadline: Option<Instant>) -> Duration {
    match deadline {
        Some(d) => d
            .saturating_duration_since(Instant::now())
            .saturating_sub(FINISH_MARGIN)
            .max(MIN_CONVERSION_TIME),
        None => Duration::from_secs(900),
    }
}
