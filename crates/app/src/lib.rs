//! Resizer's application layer: the use cases, over small storage ports.
//!
//! - [`App::submit`], [`App::wait_for`], [`App::job`], [`App::create_upload`],
//!   [`App::usage`] and the presets ([`App::put_preset`], [`App::transform`], …): what the api
//!   function serves; [`App::authenticate`] in front of them.
//! - [`App::process`] and [`App::finish_dead_letter`]: what the resize function does with a job
//!   message, from the jobs queue and from its dead-letter queue.
//! - [`App::aggregate`] (the schedule: closes due hours), [`App::close_hour`] and
//!   [`App::aggregate_slice`] (one slice of an hour): the usage aggregation.
//! - [`App::sweep`]: the scheduled sweep that finishes or re-enqueues jobs nothing else would.
//!
//! The use cases own the job's lifecycle; the functions only translate events into calls and
//! outcomes into responses. Storage sits behind [`ports`]: the AWS adapters in production and
//! against the local AWS, [`memory`] in unit tests.

mod aggregate;
mod auth;
mod clock;
mod error;
mod limits;
pub mod memory;
pub mod metrics;
pub mod ports;
mod presets;
mod process;
mod quota;
pub mod settings;
mod submit;
mod sweep;

use std::sync::Arc;

use time::OffsetDateTime;

pub use aggregate::{
    HourReport, INITIAL_LOOKBACK_HOURS, LocalSlices, MAX_HOURS_PER_RUN, PART_BYTES, Report,
    SliceDeps, gzip,
};
pub use auth::{AuthCache, Principal};
pub use clock::Clock;
pub use error::{AppError, StoreError};
pub use limits::{OPEN_JOBS_RETRY_AFTER_SECONDS, RATE_WINDOW_SECONDS};
pub use metrics::{Metrics, Unit};
pub use process::{Delivery, Disposition, FINISH_MARGIN, ORPHAN_GRACE, SYSTEM_FAILURES};
pub use settings::{ConfigError, SETTINGS, STAGE_ENV, Setting, Settings, required};
pub use submit::{Input, MAX_WAIT_SECONDS, Submission, Submitted, Upload, wait_poll_delay};
pub use sweep::{SWEEP_BATCH, SweepReport};

use ports::{
    Accounts, JobQueue, JobStore, ObjectStore, RateCounters, Rollups, SliceRunner, UsageLog,
};

/// The service: its settings, its storage ports and its warm caches. Built once at cold start
/// and lent to every invocation.
#[derive(Clone)]
pub struct App {
    pub settings: Settings,
    pub stores: Stores,
    pub clock: Clock,
    pub auth: Arc<AuthCache>,
    /// Customers this container has seen over their rate, until their window ends.
    limited: Arc<limits::Limited>,
    pub metrics: Metrics,
}

/// The storage an [`App`] runs on, one port each.
#[derive(Clone)]
pub struct Stores {
    pub jobs: Arc<dyn JobStore>,
    /// Images waiting to be resized: inline bodies and presigned uploads.
    pub staging: Arc<dyn ObjectStore>,
    /// Result images.
    pub results: Arc<dyn ObjectStore>,
    /// The long-term usage record (gzip JSON Lines per customer and hour, its own bucket).
    pub archive: Arc<dyn ObjectStore>,
    pub queue: Arc<dyn JobQueue>,
    /// Where the jobs queue puts the messages that failed all their receives.
    pub dead_letters: Arc<dyn JobQueue>,
    pub accounts: Arc<dyn Accounts>,
    pub usage_log: Arc<dyn UsageLog>,
    pub rollups: Arc<dyn Rollups>,
    /// Where an hour's slices run: the aggregate-slice function, or this process.
    pub slices: Arc<dyn SliceRunner>,
    /// The per-customer rate limit's counters.
    pub rate_counters: Arc<dyn RateCounters>,
}

impl App {
    pub fn new(settings: Settings, stores: Stores) -> Self {
        Self {
            auth: Arc::new(AuthCache::new(settings.auth_cache_ttl)),
            limited: Arc::new(limits::Limited::default()),
            settings,
            stores,
            clock: Clock::system(),
            metrics: Metrics::off(),
        }
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Authenticates a presented key (from `Authorization: Bearer` or `x-api-key`).
    pub async fn authenticate(&self, presented: Option<&str>) -> Result<Principal, AppError> {
        let key = presented.ok_or(AppError::Unauthorized("no key"))?;
        self.auth
            .authenticate(
                &*self.stores.accounts,
                &*self.stores.rollups,
                key,
                self.now(),
            )
            .await
    }
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}
