//! The ports: one small trait per kind of storage the use cases need. The AWS adapters
//! (`resizer-aws`) implement them against S3, SQS and DynamoDB, each bound to its own resource;
//! [`crate::memory`] implements them in memory for unit tests.
//!
//! Every call can be slow, throttled, fail, or succeed without the caller hearing about it, so
//! every write here is safe to repeat: conditional where a repeat could undo something, an
//! overwrite of identical content everywhere else.

use std::time::Duration;

use async_trait::async_trait;
use resizer_core::image::{ImageError, ImageInfo, Limits};
use resizer_core::job::{Job, JobError, JobId, JobMessage};
use resizer_core::key::{Customer, CustomerStatus, KeyRecord};
use resizer_core::preset::{Preset, PresetName};
use resizer_core::transform::{Format, TransformSpec};
use resizer_core::usage::{HourKey, MAX_USAGE_SHARDS, Period, SkRange, Totals, UsageRecord};
use time::OffsetDateTime;

use crate::error::StoreError;

/// The outcome of trying to claim a job for processing.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Ours to process; `attempts` has been raised.
    Claimed(Job),
    /// Already `done` or `failed`: nothing to do.
    Finished(Job),
    /// No such job (expired, or never written).
    Missing,
}

/// The outcome of finishing a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The terminal state and the usage item were written together.
    Recorded,
    /// The job was already terminal; nothing was written.
    AlreadyFinished,
}

/// The jobs table. Every state change is a conditional write built from
/// [`resizer_core::job::JobStatus::allowed_from`], so a redelivered message can never redo or
/// undo a finished job.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Writes a new `queued` job; refuses to overwrite an existing id.
    async fn put_new(&self, job: &Job) -> Result<(), StoreError>;
    /// Reads a job, strongly consistent (a poller must see its own writes).
    async fn get(&self, id: &JobId) -> Result<Option<Job>, StoreError>;
    /// Removes a job that never made it onto the queue. Only a `queued` job can be removed.
    async fn delete_queued(&self, id: &JobId) -> Result<(), StoreError>;
    /// `queued` → `processing`, or a redelivered `processing` with its attempt count raised. A
    /// `processing` job its previous attempt did not release counts a crash (`crashes` + 1): that
    /// attempt died while working on it.
    async fn claim(&self, id: &JobId, now: OffsetDateTime) -> Result<Claim, StoreError>;
    /// Gives a claimed job back after a transient failure (attempt `attempt`), so that its next
    /// claim does not count a crash. Only the attempt that holds the job can release it.
    async fn release(&self, id: &JobId, attempt: u32) -> Result<(), StoreError>;
    /// Fails an unfinished job without reading it: its item is unreadable, or a write about it
    /// was rejected as invalid, so it can never be processed. No usage record (nothing is known
    /// of it to record).
    async fn fail_unreadable(
        &self,
        id: &JobId,
        error: &JobError,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Moves `job` to its terminal status (with `result` or `error`) and writes its usage record,
    /// atomically: both or neither.
    async fn finish(&self, job: &Job, usage: &UsageRecord) -> Result<Finish, StoreError>;
    /// Up to `limit` unfinished jobs of open-jobs segment `shard` (of
    /// [`resizer_core::job::OPEN_JOB_SHARDS`]) that were neither created nor swept since
    /// `before`: the sweeper's candidates. Eventually consistent (an index): the caller reads
    /// each job before acting on it.
    async fn open_before(
        &self,
        shard: u32,
        before: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<JobId>, StoreError>;
    /// How many unfinished jobs `customer_id` has, counted up to `limit` (a larger count is
    /// answered as `limit`). Eventually consistent (an index): a job created or finished a
    /// moment ago may not be counted yet.
    async fn open_count(&self, customer_id: &str, limit: u64) -> Result<u64, StoreError>;
    /// Records that the sweeper acts on an unfinished job last written at `seen`: sets its
    /// `updated_at` (and its `open_at` in the open-jobs index) to `now`. `Conflict` when the job
    /// was written since `seen` (a worker, or another sweep, got there first) or has finished.
    async fn mark_swept(
        &self,
        id: &JobId,
        seen: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
}

/// An object's size and type, from a HEAD request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    pub size: u64,
    pub content_type: Option<String>,
}

/// A presigned request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presigned {
    pub url: String,
    pub expires_at: OffsetDateTime,
}

/// A presigned POST upload: the form fields to send, then the file (a `multipart/form-data`
/// POST to `url`). The storage enforces its policy: one key, a size range, an expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedPost {
    pub url: String,
    pub fields: Vec<(String, String)>,
    pub expires_at: OffsetDateTime,
}

/// One bucket: staging, results or the usage archive.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), StoreError>;
    async fn head(&self, key: &str) -> Result<ObjectHead, StoreError>;
    /// Reads a whole object. `max_bytes` guards memory: a larger object is an error before its
    /// body is read.
    async fn get(&self, key: &str, max_bytes: u64) -> Result<Vec<u8>, StoreError>;
    /// Reads the first `n` bytes of an object (enough for a header).
    async fn get_prefix(&self, key: &str, n: u64) -> Result<Vec<u8>, StoreError>;
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// A presigned GET URL, valid for `ttl` from now. Signing is local: no request is sent.
    async fn presign_get(&self, key: &str, ttl: Duration) -> Result<Presigned, StoreError>;
    /// A presigned POST upload of `key`, valid for `ttl` from now, that the storage refuses
    /// above `max_bytes` (a presigned PUT cannot bound the size). Signing is local.
    async fn presign_post(
        &self,
        key: &str,
        ttl: Duration,
        max_bytes: u64,
    ) -> Result<PresignedPost, StoreError>;
}

/// Per-customer request counters in fixed windows: the shared state of the rate limit.
#[async_trait]
pub trait RateCounters: Send + Sync {
    /// Counts one request of `customer_id` in the window starting at `window_start` (Unix
    /// seconds), unless `limit` are already counted there: `true` if it was counted (admitted).
    async fn admit(
        &self,
        customer_id: &str,
        window_start: i64,
        limit: u64,
    ) -> Result<bool, StoreError>;
}

/// A queue of job messages: the jobs queue or its dead-letter queue.
#[async_trait]
pub trait JobQueue: Send + Sync {
    async fn send(&self, msg: &JobMessage) -> Result<(), StoreError>;
    /// Pushes the next delivery of a received message back by `delay` (its visibility timeout).
    async fn defer(&self, receipt_handle: &str, delay: Duration) -> Result<(), StoreError>;
}

/// The api-keys, customers and presets tables: the management plane writes them, authentication
/// reads them; customers manage their own presets through the API.
#[async_trait]
pub trait Accounts: Send + Sync {
    async fn put_new_key(&self, key: &KeyRecord) -> Result<(), StoreError>;
    async fn get_key(&self, key_id: &str) -> Result<Option<KeyRecord>, StoreError>;
    /// Revokes a key. `NotFound` if there is no such key.
    async fn revoke_key(&self, key_id: &str, now: OffsetDateTime) -> Result<(), StoreError>;
    /// A customer's keys, oldest first.
    async fn list_keys(&self, customer_id: &str) -> Result<Vec<KeyRecord>, StoreError>;
    async fn put_new_customer(&self, c: &Customer) -> Result<(), StoreError>;
    async fn get_customer(&self, id: &str) -> Result<Option<Customer>, StoreError>;
    /// Every customer, oldest first.
    async fn list_customers(&self) -> Result<Vec<Customer>, StoreError>;
    /// `NotFound` if there is no such customer.
    async fn set_customer_status(&self, id: &str, status: CustomerStatus)
    -> Result<(), StoreError>;
    /// Sets (or with `None`, removes) a customer's monthly job quota. `NotFound` if there is no
    /// such customer.
    async fn set_customer_quota(&self, id: &str, quota: Option<u64>) -> Result<(), StoreError>;
    /// Sets (or with `None`, removes: the stack's default applies) a customer's limit of
    /// unfinished jobs. `NotFound` if there is no such customer.
    async fn set_customer_max_open_jobs(
        &self,
        id: &str,
        limit: Option<u64>,
    ) -> Result<(), StoreError>;
    /// Saves a preset under its customer and name, replacing one of the same name but keeping
    /// its `created_at`. Returns the preset as stored: new when its `created_at` is its
    /// `updated_at`.
    async fn put_preset(&self, preset: &Preset) -> Result<Preset, StoreError>;
    /// One preset, strongly consistent (a job submitted right after a change sees it).
    async fn get_preset(
        &self,
        customer_id: &str,
        name: &PresetName,
    ) -> Result<Option<Preset>, StoreError>;
    /// `NotFound` if there is no such preset.
    async fn delete_preset(&self, customer_id: &str, name: &PresetName) -> Result<(), StoreError>;
    /// A customer's presets, by name; strongly consistent.
    async fn list_presets(&self, customer_id: &str) -> Result<Vec<Preset>, StoreError>;
}

/// One raw usage item as read: its sort key, and its record or why it could not be read (a
/// malformed item is the aggregator's to log, count and skip, never a failed read).
#[derive(Debug, Clone, PartialEq)]
pub struct RawUsage {
    pub sk: String,
    pub record: Result<UsageRecord, String>,
}

/// One page of one partition of raw usage, in sort-key order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsagePage {
    pub items: Vec<RawUsage>,
    /// Where the next page starts (after this sort key); `None` when this was the last.
    pub next: Option<String>,
    /// The read capacity the page consumed, as DynamoDB reports it (0 where nothing is billed).
    pub read_units: f64,
}

/// The raw usage table: one item per job outcome, under the hour it was recorded in and one of
/// the shards of that hour.
#[async_trait]
pub trait UsageLog: Send + Sync {
    /// Writes a record on its own (the normal path writes it with the job's outcome, through
    /// [`JobStore::finish`]).
    async fn put(&self, record: &UsageRecord) -> Result<(), StoreError>;
    /// One page of shard `shard` of `hour`, the sort keys in `range` after `after`. Eventually
    /// consistent (half the read cost): an hour is read once it has stopped changing.
    async fn page(
        &self,
        hour: HourKey,
        shard: u32,
        range: &SkRange,
        after: Option<&str>,
    ) -> Result<UsagePage, StoreError>;
    /// Every readable record of an hour, from every shard a writer may use. For tools and tests:
    /// it holds the hour in memory, which the aggregator never does.
    async fn records_of_hour(&self, hour: HourKey) -> Result<Vec<UsageRecord>, StoreError> {
        let mut out = Vec::new();
        for shard in 0..MAX_USAGE_SHARDS {
            let mut after: Option<String> = None;
            loop {
                let page = self
                    .page(hour, shard, &SkRange::all(), after.as_deref())
                    .await?;
                out.extend(page.items.into_iter().filter_map(|i| i.record.ok()));
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
        }
        Ok(out)
    }
}

/// An hour the aggregator has closed: rolled up and archived, with what it found.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClosedHour {
    pub hour: String,
    pub slices: u32,
    pub items: u64,
    pub skipped: u64,
    pub customers: u64,
    pub archive_objects: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub closed_at: OffsetDateTime,
}

/// The usage-rollups table: per customer and [`Period`]; the quota counters; and the
/// aggregator's own bookkeeping (the oldest hour not yet closed, and the hours closed).
#[async_trait]
pub trait Rollups: Send + Sync {
    /// Overwrites one rollup (rollups are recomputed, never incremented).
    async fn put(
        &self,
        customer_id: &str,
        period: Period,
        totals: &Totals,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
    async fn get(&self, customer_id: &str, period: Period) -> Result<Option<Totals>, StoreError>;
    /// A customer's rollups of `from`'s granularity from `from` to `to` (inclusive), in order.
    async fn between(
        &self,
        customer_id: &str,
        from: Period,
        to: Period,
    ) -> Result<Vec<(Period, Totals)>, StoreError>;
    /// A customer's rollups of the next finer granularity inside `parent` (the hours of a day,
    /// the days of a month), in order. Strongly consistent.
    async fn within(
        &self,
        customer_id: &str,
        parent: Period,
    ) -> Result<Vec<(Period, Totals)>, StoreError>;
    /// Overwrites a day or month rollup with the sum of the rollups inside it, as one atomic step
    /// against other recomputations of it: whichever order two of them run in (two hours closed
    /// at once), the rollup ends with every child either saw. Returns the sum.
    async fn sum_children(
        &self,
        customer_id: &str,
        parent: Period,
        now: OffsetDateTime,
    ) -> Result<Totals, StoreError>;

    /// Jobs accepted this month for a customer with a quota (`None`: no counter yet).
    async fn quota_count(
        &self,
        customer_id: &str,
        month: Period,
    ) -> Result<Option<u64>, StoreError>;
    /// Counts one more accepted job, if that keeps the count within `quota`: one conditional
    /// write, so concurrent submissions can never take the count past the quota. Returns the new
    /// count, or `None` when the quota is used up.
    async fn reserve_job(
        &self,
        customer_id: &str,
        month: Period,
        quota: u64,
        now: OffsetDateTime,
    ) -> Result<Option<u64>, StoreError>;
    /// Gives back a reservation whose job was not created.
    async fn release_job(
        &self,
        customer_id: &str,
        month: Period,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// The oldest hour not yet closed (`None` before the first run).
    async fn watermark(&self) -> Result<Option<HourKey>, StoreError>;
    /// Moves the watermark from `from` (`None`: not set yet) to `to`, only if it is still at
    /// `from`. Returns whether it moved.
    async fn move_watermark(
        &self,
        from: Option<HourKey>,
        to: HourKey,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    async fn closed_hour(&self, hour: HourKey) -> Result<Option<ClosedHour>, StoreError>;
    async fn put_closed_hour(&self, closed: &ClosedHour) -> Result<(), StoreError>;
}

/// One slice of one hour's aggregation: what a slice worker is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SliceTask {
    pub hour: HourKey,
    pub slice: u32,
    pub slices: u32,
}

/// What a slice worker did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SliceReport {
    pub hour: String,
    pub slice: u32,
    pub items_read: u64,
    /// Items that could not be read as a usage record: logged, counted and skipped.
    pub items_skipped: u64,
    pub customers: u64,
    pub rollups_written: u64,
    pub archive_objects: u64,
    pub archive_bytes: u64,
    /// Read capacity consumed by the raw reads (eventually consistent), as reported.
    pub read_units: f64,
    pub queries: u64,
    pub duration_ms: u64,
}

/// Runs slice workers: the aggregate-slice function in AWS (one invocation per slice), in
/// process in tests and tools.
#[async_trait]
pub trait SliceRunner: Send + Sync {
    async fn run(&self, task: &SliceTask) -> Result<SliceReport, StoreError>;
}

/// An encoded output image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    pub bytes: Vec<u8>,
    pub format: Format,
    pub width: u32,
    pub height: u32,
    /// What the decoder found.
    pub input: ImageInfo,
}

/// The outcome of one conversion and the CPU time it took (billed, even when it failed).
#[derive(Debug, Clone)]
pub struct Conversion {
    pub result: Result<Converted, ImageError>,
    pub cpu: Duration,
}

/// The image engine, behind a port so that only the resize function links the codecs. Called on
/// a blocking thread.
pub trait Converter: Send + Sync + 'static {
    fn convert(&self, input: &[u8], spec: &TransformSpec, limits: &Limits) -> Conversion;
}
