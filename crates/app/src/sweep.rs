//! The sweeper: the scheduled use case that makes "every job ends done or failed" hold when
//! nothing else would finish a job.
//!
//! A job can be left unfinished with no message to drive it: the api died between writing the
//! job and sending its message, a message outlived the queue's retention (4 days) during a long
//! outage, a message was lost between the queues. Every unfinished job sits in the jobs table's
//! open-by-customer index (sparse: finishing a job removes it) under the time it was created or
//! last swept. Each run scans it in `OPEN_JOB_SHARDS` segments for the entries older than the
//! stale bound, reads each job, and:
//!
//! - a job written since the bound (a worker is on it, or backing off) is left alone;
//! - a job older than the maximum job age ends `failed` with `expired` (ours, not billed); if
//!   its inline body cannot be removed then, a message of the finished job is sent, whose
//!   delivery does only that (retrying with the backoff), as after any finish;
//! - any other job is marked swept (a conditional write: one sweeper acts, and never on a job a
//!   worker touched since it was read) and its message sent again. A duplicate message is
//!   harmless: claims are conditional, and a finished job's message is consumed without work.
//!
//! The bound: a job is finished, or re-enqueued, within `stale_after` plus one schedule period
//! of its last write; so every job ends within the maximum job age plus `stale_after` plus one
//! period (docs/reliability.md).

use std::time::{Duration, Instant};

use resizer_core::job::{JobError, JobId, OPEN_JOB_SHARDS};

use crate::metrics::Unit;
use crate::{App, Disposition, StoreError};

/// Jobs read per partition per run; the rest wait for the next run (they stay in the index).
pub const SWEEP_BATCH: usize = 1_000;

/// What a sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    /// Index entries read.
    pub candidates: u64,
    /// Jobs whose message was sent again.
    pub requeued: u64,
    /// Jobs ended `failed/expired`.
    pub expired: u64,
    /// Jobs left alone: finished, written recently, or taken by a worker meanwhile.
    pub skipped: u64,
    /// Candidates or partitions that failed for a transient reason (the next run retries).
    pub errors: u64,
}

impl App {
    /// How long a job may go unwritten before the sweeper acts: the setting, but never less than
    /// the longest retry backoff plus a minute, so that a job waiting out its backoff is not
    /// sent again.
    pub fn sweep_stale_after(&self) -> Duration {
        self.settings
            .sweep_stale_after
            .max(self.settings.retry_backoff_max + Duration::from_secs(60))
    }

    /// One sweep over every segment of the open jobs.
    pub async fn sweep(&self) -> SweepReport {
        let now = self.now();
        let before = now - self.sweep_stale_after();
        let mut report = SweepReport::default();
        for shard in 0..OPEN_JOB_SHARDS {
            let ids = match self
                .stores
                .jobs
                .open_before(shard, before, SWEEP_BATCH)
                .await
            {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::warn!(shard, error = %e, "could not read a segment of the open jobs; the next run will");
                    report.errors += 1;
                    continue;
                }
            };
            for id in ids {
                report.candidates += 1;
                match self.sweep_one(&id, before).await {
                    Ok(Swept::Requeued) => report.requeued += 1,
                    Ok(Swept::Expired) => report.expired += 1,
                    Ok(Swept::Skipped) => report.skipped += 1,
                    Err(e) => {
                        tracing::warn!(job_id = %id, error = %e, "could not sweep a job; the next run will");
                        report.errors += 1;
                    }
                }
            }
        }
        self.metrics.emit(
            &[],
            &[
                ("SweptRequeued", Unit::Count, report.requeued as f64),
                ("SweptExpired", Unit::Count, report.expired as f64),
                ("SweepErrors", Unit::Count, report.errors as f64),
            ],
        );
        report
    }

    async fn sweep_one(
        &self,
        id: &JobId,
        before: time::OffsetDateTime,
    ) -> Result<Swept, StoreError> {
        let Some(job) = self.stores.jobs.get(id).await? else {
            return Ok(Swept::Skipped);
        };
        if job.status.is_terminal() || job.updated_at >= before {
            return Ok(Swept::Skipped);
        }
        let now = self.now();
        match self.stores.jobs.mark_swept(id, job.updated_at, now).await {
            Ok(()) => {}
            Err(StoreError::Conflict { .. }) => return Ok(Swept::Skipped),
            Err(e) => return Err(e),
        }
        let age = (now - job.created_at).unsigned_abs();
        if age >= self.settings.max_job_age {
            tracing::error!(job_id = %job.job_id, customer_id = %job.customer_id, status = %job.status, age_s = age.as_secs(), "a stale job is too old to process; it expires");
            let error = expired(self.settings.max_job_age);
            if let Disposition::Retry { .. } =
                self.fail(job.clone(), error, 0, Instant::now()).await?
                && let Err(e) = self.stores.queue.send(&self.message_of(&job)).await
            {
                tracing::warn!(job_id = %job.job_id, error = %e, "could not send the expired job's message to remove its inline body; the lifecycle rule will");
            }
            return Ok(Swept::Expired);
        }
        self.stores.queue.send(&self.message_of(&job)).await?;
        tracing::warn!(job_id = %job.job_id, customer_id = %job.customer_id, status = %job.status, unwritten_s = (now - job.updated_at).whole_seconds(), "a stale job was sent to the jobs queue again");
        Ok(Swept::Requeued)
    }
}

enum Swept {
    Requeued,
    Expired,
    Skipped,
}

/// The failure of a job the service could not process in time: ours, not billed.
pub(crate) fn expired(max_job_age: Duration) -> JobError {
    JobError::new(
        "expired",
        format!(
            "the job could not be processed within {} hours (a service outage); it is not \
             billed, please submit it again",
            (max_job_age.as_secs() / 3600).max(1)
        ),
    )
}
