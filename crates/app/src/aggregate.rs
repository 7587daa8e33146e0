//! The usage aggregation: every raw item is read once, after its hour has stopped changing.
//!
//! Raw items are keyed by the hour their outcome was recorded in, so an hour stops changing once
//! it has ended and the grace period (`USAGE_GRACE_SECONDS`, longer than any finish can take to
//! commit) has passed. Then it is **closed**, once:
//!
//! 1. [`App::aggregate`] (the schedule, one run at a time) keeps a watermark, the oldest hour not
//!    yet closed, and closes hours from there, in order, while they are due: an outage, a backlog
//!    or a failed run only delays them, never skips one, and usage recorded late lands in the
//!    hour it was recorded, which is still open.
//! 2. [`App::close_hour`] cuts the hour into `USAGE_SLICES` slices of the customer-id space and
//!    runs one slice worker per slice at once (the aggregate-slice function in AWS, through
//!    [`SliceRunner`]); when every slice has succeeded, the hour is recorded closed and the
//!    watermark moves on. A failed slice fails the run; the next run closes the hour again.
//! 3. A slice worker ([`App::aggregate_slice`]) streams its sort-key range from every shard a
//!    writer may use, merged in key order, so each customer's records arrive together: it sums
//!    them as it pages and writes the customer's archive objects (gzip JSON Lines, cut into
//!    parts of at most [`PART_BYTES`]) and rollups (the hour; the day and the month recomputed
//!    from what is inside them) when the next customer starts. Memory is a page per shard and
//!    the customers whose writes are in flight, never the hour. An item that cannot be read is
//!    logged, counted and skipped.
//!
//! Everything is an overwrite with content that depends only on the raw items, so closing an
//! hour twice, or two closes at once, gives the same rollups and archive.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt as _};
use resizer_core::key::is_customer_id;
use resizer_core::usage::{
    HourKey, MAX_SLICES, MAX_USAGE_SHARDS, SkRange, Totals, UsageRecord, archive_line,
};
use serde::Serialize;
use time::OffsetDateTime;

use crate::metrics::{Metrics, Unit};
use crate::ports::{
    ClosedHour, ObjectStore, RawUsage, Rollups, SliceReport, SliceRunner, SliceTask, UsageLog,
    UsagePage,
};
use crate::{App, StoreError};

/// Where the watermark starts on a stack's first run: this many hours before the current one.
pub const INITIAL_LOOKBACK_HOURS: i64 = 4;
/// The most hours one run closes (a run after an outage catches up over several runs).
pub const MAX_HOURS_PER_RUN: usize = 48;
/// An archive object holds at most about this much gzip; a customer's hour is cut into parts.
pub const PART_BYTES: usize = 8 << 20;
/// Customers whose archive and rollup writes are in flight at once, per slice.
const IN_FLIGHT: usize = 16;
/// Page requests a slice has in flight at once (opening its shards, then reading ahead): a
/// slice reads every shard at once, and 32 shards' pages of 1,000 items each requested together
/// queue up behind each other (the local stack timed them out).
const PAGE_CONCURRENCY: usize = 8;

/// What one scheduled run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub hours_closed: Vec<String>,
    pub items_read: u64,
    pub items_skipped: u64,
    pub customers: u64,
    pub rollups_written: u64,
    pub archive_objects: u64,
    pub read_units: f64,
    /// The oldest hour not yet closed, after the run.
    pub watermark: String,
    /// How far behind the rollups are: from the start of the oldest open hour to now.
    pub lag_seconds: i64,
    pub duration_ms: u64,
}

/// What closing one hour did: its slices' reports, summed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HourReport {
    pub hour: String,
    pub slices: u32,
    pub items_read: u64,
    pub items_skipped: u64,
    pub customers: u64,
    pub rollups_written: u64,
    pub archive_objects: u64,
    pub archive_bytes: u64,
    pub read_units: f64,
    pub queries: u64,
    /// The slowest slice's time.
    pub slowest_slice_ms: u64,
    pub duration_ms: u64,
}

impl HourReport {
    fn add(&mut self, s: &SliceReport) {
        self.items_read += s.items_read;
        self.items_skipped += s.items_skipped;
        self.customers += s.customers;
        self.rollups_written += s.rollups_written;
        self.archive_objects += s.archive_objects;
        self.archive_bytes += s.archive_bytes;
        self.read_units += s.read_units;
        self.queries += s.queries;
        self.slowest_slice_ms = self.slowest_slice_ms.max(s.duration_ms);
    }
}

impl App {
    /// One scheduled run at the app's clock: closes every due hour from the watermark on.
    pub async fn aggregate(&self) -> Result<Report, StoreError> {
        self.aggregate_within(None).await
    }

    /// A scheduled run that starts no hour it may not finish within `budget` (the invocation's
    /// remaining time), judged by the slowest hour it has closed so far.
    pub async fn aggregate_within(&self, budget: Option<Duration>) -> Result<Report, StoreError> {
        let started = Instant::now();
        let now = self.now();
        let grace = time::Duration::seconds(self.settings.usage_grace.as_secs() as i64);
        let rollups = &self.stores.rollups;
        let mut watermark = match rollups.watermark().await? {
            Some(h) => h,
            None => {
                let first = HourKey::of(now).prev(INITIAL_LOOKBACK_HOURS);
                rollups.move_watermark(None, first, now).await?;
                rollups.watermark().await?.unwrap_or(first)
            }
        };
        let mut report = Report::default();
        let mut slowest = Duration::ZERO;
        let outcome = loop {
            let due = watermark.end() + grace <= now;
            let time_left = budget.is_none_or(|b| started.elapsed() + slowest * 2 < b);
            if !due || !time_left || report.hours_closed.len() >= MAX_HOURS_PER_RUN {
                break Ok(());
            }
            let t = Instant::now();
            match self.close_hour(watermark).await {
                Ok(h) => {
                    report.items_read += h.items_read;
                    report.items_skipped += h.items_skipped;
                    report.customers += h.customers;
                    report.rollups_written += h.rollups_written;
                    report.archive_objects += h.archive_objects;
                    report.read_units += h.read_units;
                    report.hours_closed.push(h.hour);
                }
                Err(e) => break Err(e),
            }
            slowest = slowest.max(t.elapsed());
            match rollups
                .move_watermark(Some(watermark), watermark.next(), now)
                .await
            {
                Ok(true) => watermark = watermark.next(),
                // Another run moved it: carry on from where it is.
                Ok(false) => match rollups.watermark().await {
                    Ok(w) => watermark = w.unwrap_or(watermark.next()),
                    Err(e) => break Err(e),
                },
                Err(e) => break Err(e),
            }
        };
        report.watermark = watermark.to_string();
        report.lag_seconds = (now - watermark.start()).whole_seconds().max(0);
        report.duration_ms = started.elapsed().as_millis() as u64;
        // The lag is emitted on failure too: the freshness alarm watches it grow.
        self.metrics.emit(
            &[],
            &[
                ("UsageLagSeconds", Unit::Seconds, report.lag_seconds as f64),
                ("HoursClosed", Unit::Count, report.hours_closed.len() as f64),
                ("UsageItemsRead", Unit::Count, report.items_read as f64),
                (
                    "UsageItemsSkipped",
                    Unit::Count,
                    report.items_skipped as f64,
                ),
                ("RollupsWritten", Unit::Count, report.rollups_written as f64),
                ("ArchiveObjects", Unit::Count, report.archive_objects as f64),
                (
                    "AggregationMs",
                    Unit::Milliseconds,
                    report.duration_ms as f64,
                ),
            ],
        );
        match outcome {
            Ok(()) => {
                tracing::info!(
                    hours_closed = report.hours_closed.len(),
                    watermark = %report.watermark,
                    lag_seconds = report.lag_seconds,
                    items_read = report.items_read,
                    items_skipped = report.items_skipped,
                    customers = report.customers,
                    rollups_written = report.rollups_written,
                    archive_objects = report.archive_objects,
                    read_units = report.read_units,
                    duration_ms = report.duration_ms,
                    "aggregation done"
                );
                Ok(report)
            }
            Err(e) => {
                tracing::error!(
                    error = %e, watermark = %report.watermark, lag_seconds = report.lag_seconds,
                    hours_closed = report.hours_closed.len(),
                    "aggregation failed; the next run closes the hour again"
                );
                Err(e)
            }
        }
    }

    /// Closes one hour: every slice at once, then the record that it is closed. Safe to repeat
    /// (the same rollups and archive). Closing an hour before its grace period has passed would
    /// archive what is there so far; the schedule never does that, and a later close rewrites it
    /// whole.
    pub async fn close_hour(&self, hour: HourKey) -> Result<HourReport, StoreError> {
        let started = Instant::now();
        let slices = self.settings.usage_slices.clamp(1, MAX_SLICES);
        let tasks: Vec<SliceTask> = (0..slices)
            .map(|slice| SliceTask {
                hour,
                slice,
                slices,
            })
            .collect();
        let results =
            futures::future::join_all(tasks.iter().map(|t| self.stores.slices.run(t))).await;
        let mut report = HourReport {
            hour: hour.to_string(),
            slices,
            ..HourReport::default()
        };
        let mut failures = Vec::new();
        for (task, r) in tasks.iter().zip(results) {
            match r {
                Ok(s) => report.add(&s),
                Err(e) => {
                    tracing::error!(hour = %hour, slice = task.slice, error = %e, "slice failed");
                    failures.push(e);
                }
            }
        }
        if let Some(e) = failures.into_iter().next() {
            return Err(e);
        }
        self.stores
            .rollups
            .put_closed_hour(&ClosedHour {
                hour: hour.to_string(),
                slices,
                items: report.items_read,
                skipped: report.items_skipped,
                customers: report.customers,
                archive_objects: report.archive_objects,
                closed_at: self.now(),
            })
            .await?;
        report.duration_ms = started.elapsed().as_millis() as u64;
        tracing::info!(
            hour = %hour, slices, items_read = report.items_read,
            items_skipped = report.items_skipped, customers = report.customers,
            archive_objects = report.archive_objects, read_units = report.read_units,
            slowest_slice_ms = report.slowest_slice_ms, duration_ms = report.duration_ms,
            "hour closed"
        );
        Ok(report)
    }

    /// One slice worker: the aggregate-slice function's use case.
    pub async fn aggregate_slice(&self, task: &SliceTask) -> Result<SliceReport, StoreError> {
        let deps = SliceDeps::of(
            &self.stores.usage_log,
            &self.stores.rollups,
            &self.stores.archive,
        );
        let report = run_slice(&deps, task, self.now()).await?;
        self.metrics.emit(
            &[],
            &[
                ("UsageItemsRead", Unit::Count, report.items_read as f64),
                (
                    "UsageItemsSkipped",
                    Unit::Count,
                    report.items_skipped as f64,
                ),
                ("UsageReadUnits", Unit::Count, report.read_units),
                ("SliceMs", Unit::Milliseconds, report.duration_ms as f64),
            ],
        );
        Ok(report)
    }
}

/// The ports a slice worker uses.
#[derive(Clone)]
pub struct SliceDeps {
    pub usage_log: Arc<dyn UsageLog>,
    pub rollups: Arc<dyn Rollups>,
    pub archive: Arc<dyn ObjectStore>,
}

impl SliceDeps {
    pub fn of(
        usage_log: &Arc<dyn UsageLog>,
        rollups: &Arc<dyn Rollups>,
        archive: &Arc<dyn ObjectStore>,
    ) -> Self {
        Self {
            usage_log: usage_log.clone(),
            rollups: rollups.clone(),
            archive: archive.clone(),
        }
    }
}

/// Runs slices in this process (tests and tools; the functions invoke the aggregate-slice
/// function instead).
pub struct LocalSlices {
    deps: SliceDeps,
    metrics: Metrics,
}

impl LocalSlices {
    pub fn new(deps: SliceDeps) -> Self {
        Self {
            deps,
            metrics: Metrics::off(),
        }
    }
}

#[async_trait::async_trait]
impl SliceRunner for LocalSlices {
    async fn run(&self, task: &SliceTask) -> Result<SliceReport, StoreError> {
        let r = run_slice(&self.deps, task, OffsetDateTime::now_utc()).await?;
        self.metrics
            .emit(&[], &[("UsageItemsRead", Unit::Count, r.items_read as f64)]);
        Ok(r)
    }
}

/// What the writes of one customer (or one part) did.
#[derive(Default)]
struct Written {
    customers: u64,
    rollups: u64,
    objects: u64,
    bytes: u64,
}

type Write<'a> = BoxFuture<'a, Result<Written, StoreError>>;

async fn run_slice(
    deps: &SliceDeps,
    task: &SliceTask,
    now: OffsetDateTime,
) -> Result<SliceReport, StoreError> {
    let started = Instant::now();
    let hour = task.hour;
    let range = SkRange::slice(task.slice, task.slices);
    let mut merged = Merged::open(deps.usage_log.clone(), hour, range).await?;
    let mut report = SliceReport {
        hour: hour.to_string(),
        slice: task.slice,
        ..SliceReport::default()
    };
    let mut current: Option<CustomerHour> = None;
    let mut writes: FuturesUnordered<Write<'_>> = FuturesUnordered::new();
    while let Some(item) = merged.next().await? {
        report.items_read += 1;
        let record = match readable(item) {
            Ok(r) => r,
            Err((sk, why)) => {
                tracing::warn!(hour = %hour, sk = %sk, reason = %why, "unreadable usage item skipped");
                report.items_skipped += 1;
                continue;
            }
        };
        if current
            .as_ref()
            .is_none_or(|c| c.customer != record.customer_id)
        {
            if let Some(done) = current.take() {
                writes.push(Box::pin(finish_customer(deps, hour, done, now)));
            }
            current = Some(CustomerHour::new(record.customer_id.clone()));
        }
        let customer = current.as_mut().expect("set above");
        if let Some((key, body)) = customer.add(&record, hour) {
            writes.push(Box::pin(put_part(deps, key, body)));
        }
        while writes.len() >= IN_FLIGHT {
            absorb(writes.next().await, &mut report)?;
        }
    }
    if let Some(done) = current.take() {
        writes.push(Box::pin(finish_customer(deps, hour, done, now)));
    }
    while let Some(w) = writes.next().await {
        absorb(Some(w), &mut report)?;
    }
    report.read_units = merged.read_units;
    report.queries = merged.queries;
    report.duration_ms = started.elapsed().as_millis() as u64;
    tracing::info!(
        hour = %hour, slice = task.slice, slices = task.slices, items_read = report.items_read,
        items_skipped = report.items_skipped, customers = report.customers,
        archive_objects = report.archive_objects, read_units = report.read_units,
        queries = report.queries, duration_ms = report.duration_ms, "slice done"
    );
    Ok(report)
}

fn absorb(
    w: Option<Result<Written, StoreError>>,
    report: &mut SliceReport,
) -> Result<(), StoreError> {
    if let Some(w) = w {
        let w = w?;
        report.customers += w.customers;
        report.rollups_written += w.rollups;
        report.archive_objects += w.objects;
        report.archive_bytes += w.bytes;
    }
    Ok(())
}

/// A record the aggregator can count: parsed, under its own sort key (so that its customer's
/// records are contiguous in key order), and with a customer id that is safe in an object key.
fn readable(item: RawUsage) -> Result<UsageRecord, (String, String)> {
    let r = item.record.map_err(|e| (item.sk.clone(), e))?;
    if r.sk() != item.sk {
        return Err((item.sk, format!("the record's own key is {}", r.sk())));
    }
    if !is_customer_id(&r.customer_id) {
        return Err((item.sk, "not a customer id".into()));
    }
    Ok(r)
}

/// One customer's records of the hour, as they stream past: the totals and the archive part
/// being filled.
struct CustomerHour {
    customer: String,
    totals: Totals,
    part: u32,
    lines: u64,
    gz: GzEncoder<Vec<u8>>,
    line: Vec<u8>,
}

impl CustomerHour {
    fn new(customer: String) -> Self {
        Self {
            customer,
            totals: Totals::default(),
            part: 0,
            lines: 0,
            gz: encoder(),
            line: Vec::with_capacity(512),
        }
    }

    /// Adds a record; returns a full part to write (its key and body), if this one filled it.
    fn add(&mut self, r: &UsageRecord, hour: HourKey) -> Option<(String, Vec<u8>)> {
        self.totals.add_record(r);
        self.line.clear();
        archive_line(r, &mut self.line);
        self.gz
            .write_all(&self.line)
            .expect("writing to a Vec cannot fail");
        self.lines += 1;
        (self.gz.get_ref().len() >= PART_BYTES).then(|| self.take_part(hour))
    }

    fn take_part(&mut self, hour: HourKey) -> (String, Vec<u8>) {
        let gz = std::mem::replace(&mut self.gz, encoder());
        let body = gz.finish().expect("writing to a Vec cannot fail");
        let key = hour.archive_key(&self.customer, self.part);
        self.part += 1;
        self.lines = 0;
        (key, body)
    }
}

/// Gzip with a fixed header (no name, mtime 0), so equal input gives equal bytes.
fn encoder() -> GzEncoder<Vec<u8>> {
    GzEncoder::new(Vec::new(), Compression::default())
}

/// Gzip in one go, as the archive writes it.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = encoder();
    enc.write_all(data).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

async fn put_part(deps: &SliceDeps, key: String, body: Vec<u8>) -> Result<Written, StoreError> {
    let bytes = body.len() as u64;
    deps.archive.put(&key, body, "application/gzip").await?;
    Ok(Written {
        objects: 1,
        bytes,
        ..Written::default()
    })
}

/// A customer's last part, its hour rollup, and its day and month recomputed around it.
async fn finish_customer(
    deps: &SliceDeps,
    hour: HourKey,
    mut c: CustomerHour,
    now: OffsetDateTime,
) -> Result<Written, StoreError> {
    let mut w = Written {
        customers: 1,
        ..Written::default()
    };
    if c.lines > 0 {
        let (key, body) = c.take_part(hour);
        let part = put_part(deps, key, body).await?;
        w.objects += part.objects;
        w.bytes += part.bytes;
    }
    let [hour_period, day, month] = hour.periods();
    deps.rollups
        .put(&c.customer, hour_period, &c.totals, now)
        .await?;
    deps.rollups.sum_children(&c.customer, day, now).await?;
    deps.rollups.sum_children(&c.customer, month, now).await?;
    w.rollups = 3;
    Ok(w)
}

/// One shard's stream: the page being read and the next one, already requested.
struct ShardStream {
    items: VecDeque<RawUsage>,
    pending: Option<tokio::task::JoinHandle<Result<UsagePage, StoreError>>>,
}

/// The slice's records from every shard, merged in sort-key order (a k-way merge of the shards'
/// own sorted pages).
struct Merged {
    log: Arc<dyn UsageLog>,
    hour: HourKey,
    range: SkRange,
    shards: Vec<(u32, ShardStream)>,
    heap: BinaryHeap<Reverse<(String, usize)>>,
    read_units: f64,
    queries: u64,
    /// Bounds the read-ahead requests in flight.
    pages: Arc<tokio::sync::Semaphore>,
}

impl Merged {
    async fn open(
        log: Arc<dyn UsageLog>,
        hour: HourKey,
        range: SkRange,
    ) -> Result<Self, StoreError> {
        let firsts: Vec<(u32, Result<UsagePage, StoreError>)> =
            futures::stream::iter(0..MAX_USAGE_SHARDS)
                .map(|shard| {
                    let log = log.clone();
                    let range = range.clone();
                    async move { (shard, log.page(hour, shard, &range, None).await) }
                })
                .buffer_unordered(PAGE_CONCURRENCY)
                .collect()
                .await;
        let mut m = Self {
            log,
            hour,
            range,
            shards: Vec::new(),
            heap: BinaryHeap::new(),
            read_units: 0.0,
            queries: 0,
            pages: Arc::new(tokio::sync::Semaphore::new(PAGE_CONCURRENCY)),
        };
        let mut firsts = firsts;
        firsts.sort_by_key(|(s, _)| *s);
        for (shard, page) in firsts {
            let page = page?;
            m.queries += 1;
            m.read_units += page.read_units;
            if page.items.is_empty() && page.next.is_none() {
                continue;
            }
            let pending = page.next.clone().map(|after| m.fetch(shard, after));
            m.shards.push((
                shard,
                ShardStream {
                    items: page.items.into(),
                    pending,
                },
            ));
            let idx = m.shards.len() - 1;
            m.refill(idx).await?;
            m.push_head(idx);
        }
        Ok(m)
    }

    /// Requests a shard's next page in the background.
    fn fetch(
        &self,
        shard: u32,
        after: String,
    ) -> tokio::task::JoinHandle<Result<UsagePage, StoreError>> {
        let log = self.log.clone();
        let (hour, range) = (self.hour, self.range.clone());
        let pages = self.pages.clone();
        tokio::spawn(async move {
            let _permit = pages.acquire_owned().await.expect("never closed");
            log.page(hour, shard, &range, Some(&after)).await
        })
    }

    /// Makes sure a stream with items left has one in hand.
    async fn refill(&mut self, idx: usize) -> Result<(), StoreError> {
        loop {
            let (shard, s) = &mut self.shards[idx];
            let shard = *shard;
            if !s.items.is_empty() {
                return Ok(());
            }
            let Some(pending) = s.pending.take() else {
                return Ok(());
            };
            let page = pending
                .await
                .map_err(|e| StoreError::other("usage.page", e.to_string()))??;
            self.queries += 1;
            self.read_units += page.read_units;
            let next = page.next.clone().map(|after| self.fetch(shard, after));
            let s = &mut self.shards[idx].1;
            s.items = page.items.into();
            s.pending = next;
        }
    }

    fn push_head(&mut self, idx: usize) {
        if let Some(head) = self.shards[idx].1.items.front() {
            self.heap.push(Reverse((head.sk.clone(), idx)));
        }
    }

    async fn next(&mut self) -> Result<Option<RawUsage>, StoreError> {
        let Some(Reverse((_, idx))) = self.heap.pop() else {
            return Ok(None);
        };
        let item = self.shards[idx]
            .1
            .items
            .pop_front()
            .expect("a stream on the heap has an item");
        self.refill(idx).await?;
        self.push_head(idx);
        Ok(Some(item))
    }
}

impl Drop for Merged {
    fn drop(&mut self) {
        for (_, s) in &mut self.shards {
            if let Some(p) = s.pending.take() {
                p.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    #[test]
    fn gzip_is_deterministic_and_round_trips() {
        let data = b"{\"a\":1}\n{\"b\":2}\n".repeat(100);
        let a = gzip(&data);
        assert_eq!(a, gzip(&data));
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&a[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }
}
