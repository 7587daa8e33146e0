//! Usage metering on in-memory adapters: what the scheduled aggregator makes of job outcomes, with
//! time moved by the test. The same use cases run against the local AWS in
//! `integration-tests/tests/metering.rs`.

use std::io::Read as _;
use std::sync::Arc;
use std::time::Duration;

use resizer_app::memory::{Memory, TINY_PNG};
use resizer_app::ports::{Conversion, Converted, Converter, Rollups as _, UsageLog as _};
use resizer_app::{
    App, AppError, Clock, Delivery, Disposition, INITIAL_LOOKBACK_HOURS, MAX_HOURS_PER_RUN,
    Settings, Submission,
};
use resizer_core::image::{ImageInfo, Limits};
use resizer_core::job::{Job, JobMessage};
use resizer_core::key::generate_customer_id;
use resizer_core::transform::{Format, TransformSpec};
use resizer_core::usage::{Granularity, HourKey, Totals, UsageRecord};
use time::OffsetDateTime;
use time::macros::datetime;

/// A converter that always succeeds with a 4×3 WebP.
struct Fake;

impl Converter for Fake {
    fn convert(&self, _: &[u8], _: &TransformSpec, _: &Limits) -> Conversion {
        Conversion {
            result: Ok(Converted {
                bytes: vec![7; 123],
                format: Format::Webp,
                width: 4,
                height: 3,
                input: ImageInfo {
                    format: Format::Png,
                    width: 1,
                    height: 1,
                },
            }),
            cpu: Duration::from_millis(5),
        }
    }
}

fn settings() -> Settings {
    Settings {
        // Every request reads the key and the quota afresh.
        auth_cache_ttl: Duration::ZERO,
        ..Settings::default()
    }
}

async fn submit(app: &App, key: &str) -> Result<Job, AppError> {
    let principal = app.authenticate(Some(key)).await?;
    let spec = TransformSpec::with_width(4).unwrap();
    let sub = Submission::inline(spec, Some("image/png"), TINY_PNG, &app.settings)?;
    app.submit(&principal, sub).await.map(|s| s.job)
}

/// Runs the scheduled aggregator every 5 minutes of the app's clock until `until`.
async fn run_schedule(app: &App, until: OffsetDateTime) {
    while app.now() < until {
        app.clock.advance(time::Duration::minutes(5));
        app.aggregate().await.expect("an aggregation run");
    }
}

/// Every archived record, from every object in the archive.
fn archived(mem: &Memory) -> Vec<UsageRecord> {
    let mut out = Vec::new();
    for key in mem.archive.keys() {
        let body = mem.archive.object(&key).unwrap();
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("{key}: not gzip: {e}"));
        for line in text.lines() {
            out.push(serde_json::from_str(line).unwrap_or_else(|e| panic!("{key}: {e}: {line}")));
        }
    }
    out
}

/// A job created at 09:50 whose outcome is recorded at 14:10, long after 09:00–10:00 was closed,
/// rolled up and archived (a backlog, an outage, a DLQ re-drive): it is in the rollups, it counts
/// against the quota, and it is in the archive.
#[tokio::test]
async fn a_job_that_ends_hours_after_its_hour_closed_is_counted_in_rollups_quota_and_archive() {
    let mem = Memory::new();
    let clock = Clock::fixed(datetime!(2026-11-25 09:50 UTC));
    let app = mem.app(settings()).with_clock(clock.clone());
    let (customer, key) = mem.customer(&app, Some(1)).await;
    let key = key.expose();
    let c = &customer.customer_id;

    let job = submit(&app, &key)
        .await
        .expect("the first job is within the quota");
    let [msg]: [JobMessage; 1] = mem.queue.sent().try_into().unwrap();
    // The aggregator keeps running while the job waits in a backlog.
    run_schedule(&app, datetime!(2026-11-25 14:10 UTC)).await;
    assert_eq!(
        app.process(
            Delivery {
                message: &msg,
                receives: 1,
                receipt: None,
                deadline: None,
            },
            Arc::new(Fake)
        )
        .await,
        Disposition::Consumed
    );
    let done = mem.jobs.all().into_iter().find(|j| j.job_id == job.job_id);
    assert_eq!(done.unwrap().updated_at, datetime!(2026-11-25 14:10 UTC));
    run_schedule(&app, datetime!(2026-11-25 16:30 UTC)).await;

    // The rollups: the month, and the hours inside it, count it once.
    let month = Granularity::Month.period_of(clock.now());
    let m = mem.rollups.get(c, month).await.unwrap();
    assert_eq!(
        m.map(|t| (t.jobs, t.done)),
        Some((1, 1)),
        "the month rollup counts the late job"
    );
    let day = Granularity::Day.period_of(clock.now());
    let hours: u64 = mem
        .rollups
        .within(c, day)
        .await
        .unwrap()
        .iter()
        .map(|(_, t)| t.jobs)
        .sum();
    assert_eq!(hours, 1, "exactly one hour rollup counts it");

    // The quota: one job a month, used up.
    assert!(
        matches!(submit(&app, &key).await, Err(AppError::QuotaExceeded(_))),
        "the late job counts against the quota"
    );

    // The archive: its record, once.
    let records: Vec<UsageRecord> = archived(&mem)
        .into_iter()
        .filter(|r| r.job_id == job.job_id)
        .collect();
    assert_eq!(records.len(), 1, "archived once: {records:?}");
    assert_eq!(records[0].recorded_at, datetime!(2026-11-25 14:10 UTC));
}

// ---- the aggregation on its own -----------------------------------------------------------------

fn record(customer: &str, at: OffsetDateTime, n: u64) -> UsageRecord {
    UsageRecord {
        customer_id: customer.to_owned(),
        job_id: resizer_core::job::JobId::generate(),
        outcome: if n.is_multiple_of(5) {
            resizer_core::usage::Outcome::Failed
        } else {
            resizer_core::usage::Outcome::Done
        },
        error_code: None,
        bytes_in: 1000 + n,
        bytes_out: 100 + n,
        pixels_in: 10 * n,
        pixels_out: n,
        cpu_ms: n % 7,
        wall_ms: n % 11,
        format_in: Some(Format::Jpeg),
        format_out: None,
        job_created_at: at - time::Duration::minutes(3),
        recorded_at: at,
    }
}

fn sum(records: &[&UsageRecord]) -> Totals {
    let mut t = Totals::default();
    for r in records {
        t.add_record(r);
    }
    t
}

/// What the archive holds, by object key.
fn archive_objects(mem: &Memory) -> Vec<(String, Vec<UsageRecord>)> {
    mem.archive
        .keys()
        .into_iter()
        .map(|key| {
            let body = mem.archive.object(&key).unwrap();
            let mut text = String::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_string(&mut text)
                .unwrap();
            let rs = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            (key, rs)
        })
        .collect()
}

/// Many customers' records over many shards, pages and slices: the rollups are their sums
/// exactly, and the archive holds each record once, under its customer and hour, in key order.
#[tokio::test]
async fn many_customers_over_shards_pages_and_slices_roll_up_exactly() {
    let mem = Memory::new();
    mem.usage_log.set_shards(32);
    mem.usage_log.set_page_limit(7);
    let app = mem.app(Settings {
        usage_slices: 3,
        ..settings()
    });
    let hour = HourKey::parse("2026-11-25T10").unwrap();
    let customers: Vec<String> = (0..40).map(|_| generate_customer_id()).collect();
    let mut records = Vec::new();
    for n in 0..900u64 {
        let c = &customers[(n % 40) as usize];
        let at = hour.start() + time::Duration::seconds((n * 4) as i64);
        let r = record(c, at, n);
        mem.usage_log.put(&r).await.unwrap();
        records.push(r);
    }
    // The hour before and after: not part of this hour.
    mem.usage_log
        .put(&record(
            &customers[0],
            hour.start() - time::Duration::seconds(1),
            1,
        ))
        .await
        .unwrap();
    mem.usage_log
        .put(&record(&customers[0], hour.end(), 2))
        .await
        .unwrap();

    let report = app.close_hour(hour).await.unwrap();
    assert_eq!(report.items_read, 900);
    assert_eq!(report.items_skipped, 0);
    assert_eq!(report.customers, 40);
    assert_eq!(report.archive_objects, 40);
    assert_eq!(mem.slices.tasks().len(), 3);

    let archive = archive_objects(&mem);
    for c in &customers {
        let mine: Vec<&UsageRecord> = records.iter().filter(|r| &r.customer_id == c).collect();
        let expected = sum(&mine);
        let [h, d, m] = hour.periods();
        for p in [h, d, m] {
            assert_eq!(
                mem.rollups.get(c, p).await.unwrap(),
                Some(expected),
                "{c} {p}"
            );
        }
        let (key, archived) = archive
            .iter()
            .find(|(k, _)| k.starts_with(&hour.archive_dir(c)))
            .unwrap_or_else(|| panic!("{c}: no archive object"));
        assert_eq!(key, &hour.archive_key(c, 0));
        let mut want: Vec<UsageRecord> = mine.into_iter().cloned().collect();
        want.sort_by_key(|r| r.sk());
        assert_eq!(archived, &want, "{c}: its records, in key order");
    }

    // Closed again: the same bytes, the same rollups.
    let before = archive_objects(&mem);
    app.close_hour(hour).await.unwrap();
    assert_eq!(archive_objects(&mem), before);
}

/// An item that does not read as a usage record is logged, counted and skipped; the run goes
/// on, and so do the hours after it.
#[tokio::test]
async fn an_unreadable_item_is_counted_and_skipped_never_blocking_the_rest() {
    let mem = Memory::new();
    let clock = Clock::fixed(datetime!(2026-11-25 10:10 UTC));
    let app = mem.app(settings()).with_clock(clock.clone());
    let (metrics, lines) = resizer_app::Metrics::memory();
    let app = app.with_metrics(metrics);
    let hour = HourKey::of(clock.now());
    let c = generate_customer_id();
    for n in 1..=4 {
        mem.usage_log
            .put(&record(
                &c,
                clock.now() + time::Duration::minutes(n),
                n as u64,
            ))
            .await
            .unwrap();
    }
    mem.usage_log
        .insert_unreadable(hour, 3, &format!("{c}#zzz"), "bytes_in: expected a number");
    mem.usage_log
        .insert_unreadable(hour, 9, "garbage", "no customer");
    app.aggregate().await.unwrap();
    clock.set(hour.end() + time::Duration::minutes(6));
    let r = app.aggregate().await.expect("the run succeeds");
    assert!(r.hours_closed.contains(&hour.to_string()), "{r:?}");
    assert_eq!((r.items_read, r.items_skipped), (6, 2), "{r:?}");
    let t = mem.rollups_get(&c, hour).await.unwrap();
    assert_eq!(t.jobs, 4);
    assert_eq!(
        mem.rollups
            .closed_hour(hour)
            .await
            .unwrap()
            .map(|h| h.skipped),
        Some(2)
    );
    let skipped: f64 = lines
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| l["UsageItemsSkipped"].as_f64())
        .sum();
    assert_eq!(skipped, 2.0, "counted in a metric");
}

/// Items written while the hour was spread over 64 shards, then 4, then 128, are all counted
/// whatever the count at the time of aggregation.
#[tokio::test]
async fn changing_the_shard_count_never_hides_an_item() {
    let mem = Memory::new();
    let app = mem.app(settings());
    let hour = HourKey::parse("2026-11-25T10").unwrap();
    let c = generate_customer_id();
    let mut all = Vec::new();
    for (i, shards) in [64, 4, 128, 1].into_iter().enumerate() {
        mem.usage_log.set_shards(shards);
        for n in 0..50u64 {
            let at = hour.start() + time::Duration::seconds((i as u64 * 50 + n) as i64);
            let r = record(&c, at, n);
            mem.usage_log.put(&r).await.unwrap();
            all.push(r);
        }
    }
    mem.usage_log.set_shards(2);
    app.close_hour(hour).await.unwrap();
    let expected = sum(&all.iter().collect::<Vec<_>>());
    assert_eq!(mem.rollups_get(&c, hour).await, Some(expected));
    assert_eq!(expected.jobs, 200);
}

/// An hour closes once its grace period has passed, not before: a job recorded in its last
/// second is in it.
#[tokio::test]
async fn an_hour_closes_only_after_its_grace_period() {
    let mem = Memory::new();
    let clock = Clock::fixed(datetime!(2026-11-25 10:59:59 UTC));
    let app = mem.app(settings()).with_clock(clock.clone());
    let hour = HourKey::of(clock.now());
    let c = generate_customer_id();
    mem.usage_log
        .put(&record(&c, clock.now(), 1))
        .await
        .unwrap();
    app.aggregate().await.unwrap();
    clock.set(hour.end() + time::Duration::seconds(299));
    let r = app.aggregate().await.unwrap();
    assert!(!r.hours_closed.contains(&hour.to_string()), "{r:?}");
    assert_eq!(mem.rollups_get(&c, hour).await, None);
    clock.set(hour.end() + time::Duration::seconds(300));
    let r = app.aggregate().await.unwrap();
    assert_eq!(r.hours_closed, vec![hour.to_string()]);
    assert_eq!(r.watermark, hour.next().to_string());
    assert_eq!(mem.rollups_get(&c, hour).await.map(|t| t.jobs), Some(1));
}

/// After an outage of two days, the runs close every hour missed, in order, at most
/// `MAX_HOURS_PER_RUN` a run; none is skipped.
#[tokio::test]
async fn after_an_outage_every_missed_hour_is_closed_in_order() {
    let mem = Memory::new();
    let clock = Clock::fixed(datetime!(2026-11-25 10:00 UTC));
    let (metrics, lines) = resizer_app::Metrics::memory();
    let app = mem
        .app(settings())
        .with_clock(clock.clone())
        .with_metrics(metrics);
    let before = app.aggregate().await.unwrap();
    let start = HourKey::of(clock.now());
    let c = generate_customer_id();
    for h in 0..60 {
        let at = start.start() + time::Duration::hours(h) + time::Duration::minutes(30);
        mem.usage_log.put(&record(&c, at, h as u64)).await.unwrap();
    }
    // Nothing runs for 60 hours.
    clock.set(start.start() + time::Duration::hours(60) + time::Duration::minutes(6));
    let first = app.aggregate().await.unwrap();
    assert_eq!(first.hours_closed.len(), MAX_HOURS_PER_RUN);
    assert!(first.lag_seconds > 10 * 3600, "{first:?}");
    let second = app.aggregate().await.unwrap();
    let closed: Vec<String> = first
        .hours_closed
        .iter()
        .chain(&second.hours_closed)
        .cloned()
        .collect();
    // From where the run before the outage left the watermark.
    let mut h = HourKey::parse(&before.watermark).unwrap();
    assert_eq!(h, start.prev(1));
    assert_eq!(
        before.hours_closed.first(),
        Some(&start.prev(INITIAL_LOOKBACK_HOURS).to_string()),
        "the first run starts its look-back"
    );
    for label in &closed {
        assert_eq!(label, &h.to_string(), "in order, none skipped");
        h = h.next();
    }
    assert_eq!(
        h,
        HourKey::of(start.start() + time::Duration::hours(60)),
        "up to the current hour"
    );
    for i in 0..60 {
        let hour = HourKey::of(start.start() + time::Duration::hours(i));
        assert_eq!(
            mem.rollups_get(&c, hour).await.map(|t| t.jobs),
            Some(1),
            "{hour}"
        );
    }
    let lags: Vec<f64> = lines
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| l["UsageLagSeconds"].as_f64())
        .collect();
    assert_eq!(lags.len(), 3, "one per run: {lags:?}");
    assert!(lags[2] < 3600.0, "caught up: {lags:?}");
}

/// A slice that fails fails the run, the watermark stays, the lag is still reported, and the
/// next run closes the hour.
#[tokio::test]
async fn a_failed_slice_fails_the_run_and_the_next_run_closes_the_hour() {
    let mem = Memory::new();
    let clock = Clock::fixed(datetime!(2026-11-25 10:10 UTC));
    let (metrics, lines) = resizer_app::Metrics::memory();
    let app = mem
        .app(settings())
        .with_clock(clock.clone())
        .with_metrics(metrics);
    app.aggregate().await.unwrap();
    let hour = HourKey::of(clock.now());
    let c = generate_customer_id();
    mem.usage_log
        .put(&record(&c, clock.now(), 3))
        .await
        .unwrap();
    clock.set(hour.end() + time::Duration::minutes(10));
    mem.faults.fail_next(
        "slices.run",
        resizer_app::StoreError::unavailable("lambda:Invoke", "throttled"),
    );
    assert!(app.aggregate().await.is_err());
    assert_eq!(mem.rollups.watermark().await.unwrap(), Some(hour));
    assert!(
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l["UsageLagSeconds"].as_f64() == Some(4200.0)),
        "the failed run reports its lag"
    );
    let r = app.aggregate().await.unwrap();
    assert_eq!(r.hours_closed, vec![hour.to_string()]);
    assert_eq!(mem.rollups_get(&c, hour).await.map(|t| t.jobs), Some(1));
}

/// Two hours of a day closed at once, and in the wrong order: the day and the month still hold
/// both.
#[tokio::test]
async fn hours_closed_at_once_or_out_of_order_keep_days_and_months_whole() {
    let mem = Memory::new();
    let app = mem.app(settings());
    let h = HourKey::parse("2026-11-25T10").unwrap();
    let c = generate_customer_id();
    let mut all = Vec::new();
    for (i, hour) in [h, h.next(), h.next().next()].into_iter().enumerate() {
        for n in 0..5 {
            let r = record(
                &c,
                hour.start() + time::Duration::minutes(n),
                (i * 10) as u64 + n as u64,
            );
            mem.usage_log.put(&r).await.unwrap();
            all.push(r);
        }
    }
    let (a, b) = tokio::join!(app.close_hour(h.next()), app.close_hour(h));
    a.unwrap();
    b.unwrap();
    app.close_hour(h.next().next()).await.unwrap();
    let expected = sum(&all.iter().collect::<Vec<_>>());
    let [_, day, month] = h.periods();
    assert_eq!(mem.rollups.get(&c, day).await.unwrap(), Some(expected));
    assert_eq!(mem.rollups.get(&c, month).await.unwrap(), Some(expected));
}

// ---- quotas without the aggregator --------------------------------------------------------------

/// The quota holds exactly under concurrent submissions, with no aggregator at all: each accepted
/// job is counted when it is accepted.
#[tokio::test]
async fn a_quota_holds_exactly_under_concurrent_submissions_without_the_aggregator() {
    let mem = Memory::new();
    let app = mem.app(Settings {
        // The warm-container cache trusts an old count: the counter still holds.
        auth_cache_ttl: Duration::from_secs(3600),
        // Staged, so that what a refusal leaves in staging is seen.
        message_image_max_bytes: 0,
        ..Settings::default()
    });
    let (_, key) = mem.customer(&app, Some(5)).await;
    let key = key.expose();
    let results = futures::future::join_all((0..20).map(|_| submit(&app, &key))).await;
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(AppError::QuotaExceeded(_))))
        .count();
    assert_eq!((accepted, refused), (5, 15));
    assert_eq!(mem.jobs.all().len(), 5);
    assert_eq!(mem.queue.sent().len(), 5);
    // A refused inline submission leaves nothing staged.
    assert_eq!(mem.staging.keys().len(), 5);
}

/// A submission that fails after its job was counted gives the count back.
#[tokio::test]
async fn a_failed_enqueue_gives_the_quota_back() {
    let mem = Memory::new();
    let app = mem.app(settings());
    let (_, key) = mem.customer(&app, Some(1)).await;
    let key = key.expose();
    mem.faults.fail_next(
        "queue.send",
        resizer_app::StoreError::unavailable("sqs:SendMessage", "down"),
    );
    assert!(matches!(submit(&app, &key).await, Err(AppError::Store(_))));
    submit(&app, &key)
        .await
        .expect("the failed job did not use the quota");
    assert!(matches!(
        submit(&app, &key).await,
        Err(AppError::QuotaExceeded(_))
    ));
}
