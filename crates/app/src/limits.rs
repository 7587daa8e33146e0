//! The per-customer rate limit: one customer's burst cannot take the capacity the others need.
//!
//! Each customer may submit `customer_jobs_per_second` × [`RATE_WINDOW_SECONDS`] jobs per fixed
//! window, counted in a shared table (one conditional increment per admitted job, whichever
//! container serves it). Over the limit, the answer is 429 `rate_limited` with `Retry-After` set
//! to the end of the window. A container that has seen a customer refused answers that
//! customer's next requests in the same window itself, without a write: a flood costs the table
//! one refused write per container and window, not one per request, and never heats the
//! customer's counter beyond what was admitted.
//!
//! A rate alone does not keep one customer from filling the jobs queue: a backlog builds whenever
//! a customer submits faster than its jobs finish, and every job queued behind it waits. So a
//! customer may also have only `customer_max_open_jobs` unfinished jobs at once (or its own
//! `max_open_jobs`, set by an operator: a plan's limit), counted on the
//! jobs table's open-by-customer index (sparse: a job is in it from its creation until it
//! finishes, so the count needs no counter of its own to drift). Past it, the answer is 429
//! `too_many_open_jobs` with `Retry-After` [`OPEN_JOBS_RETRY_AFTER_SECONDS`]. The index is
//! eventually consistent, so a burst of concurrent submits can pass the limit by the few jobs
//! not yet indexed: a bound on a backlog, not an exact count.
//!
//! When the counters or the index cannot be reached, requests are admitted (and counted in the
//! logs and a metric): a limiter outage must not become an API outage.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::metrics::Unit;
use crate::{App, AppError, Principal};

/// What a customer over its open jobs is told to wait: about the time a job takes.
pub const OPEN_JOBS_RETRY_AFTER_SECONDS: u64 = 2;

/// The length of a rate-limit window.
pub const RATE_WINDOW_SECONDS: i64 = 10;

/// Customers refused in this container, with the end of the window they were refused in.
#[derive(Debug, Default)]
pub(crate) struct Limited(Mutex<HashMap<String, i64>>);

impl App {
    /// Admits one job of `principal` or refuses it as over its rate.
    pub(crate) async fn admit(&self, principal: &Principal) -> Result<(), AppError> {
        let now = self.now().unix_timestamp();
        let window_start = now - now.rem_euclid(RATE_WINDOW_SECONDS);
        let window_end = window_start + RATE_WINDOW_SECONDS;
        let rate = self.settings.customer_jobs_per_second;
        let refused = || {
            self.metrics.emit(&[], &[("RateLimited", Unit::Count, 1.0)]);
            AppError::RateLimited {
                message: format!(
                    "over the rate of {rate} jobs per second (averaged over {RATE_WINDOW_SECONDS} \
                     s); retry after the Retry-After seconds"
                ),
                retry_after_s: (window_end - now).max(1) as u64,
            }
        };
        {
            let mut limited = self.limited.0.lock().unwrap_or_else(|e| e.into_inner());
            match limited.get(&principal.customer_id) {
                Some(&until) if until > now => return Err(refused()),
                Some(_) => {
                    limited.remove(&principal.customer_id);
                }
                None => {}
            }
        }
        let limit = rate.saturating_mul(RATE_WINDOW_SECONDS as u64);
        match self
            .stores
            .rate_counters
            .admit(&principal.customer_id, window_start, limit)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => {
                let mut limited = self.limited.0.lock().unwrap_or_else(|e| e.into_inner());
                // Bounded: entries of past windows go first.
                if limited.len() > 10_000 {
                    limited.retain(|_, until| *until > now);
                }
                limited.insert(principal.customer_id.clone(), window_end);
                Err(refused())
            }
            Err(e) => {
                tracing::warn!(error = %e, "the rate-limit counters cannot be reached; admitted");
                self.metrics
                    .emit(&[], &[("RateLimitUnavailable", Unit::Count, 1.0)]);
                Ok(())
            }
        }
    }

    /// Refuses a job of `principal` while it has `customer_max_open_jobs` unfinished jobs.
    pub(crate) async fn check_open_jobs(&self, principal: &Principal) -> Result<(), AppError> {
        let limit = principal
            .max_open_jobs
            .unwrap_or(self.settings.customer_max_open_jobs);
        match self
            .stores
            .jobs
            .open_count(&principal.customer_id, limit)
            .await
        {
            Ok(open) if open >= limit => {
                self.metrics
                    .emit(&[], &[("TooManyOpenJobs", Unit::Count, 1.0)]);
                Err(AppError::TooManyOpenJobs {
                    message: format!(
                        "you have {limit} unfinished jobs, as many as you may have at once; \
                         retry after the Retry-After seconds, once some have finished"
                    ),
                    retry_after_s: OPEN_JOBS_RETRY_AFTER_SECONDS,
                })
            }
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "the open jobs cannot be counted; admitted");
                self.metrics
                    .emit(&[], &[("OpenJobsUnavailable", Unit::Count, 1.0)]);
                Ok(())
            }
        }
    }
}
