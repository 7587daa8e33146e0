//! Usage metering on in-memory adapters: what the scheduled aggregator makes of job outcomes, with
//! time moved by the test. The same use cases run against the local AWS in
//! `integration-tests/tests/metering.rs`.

use std::io::Read as _;
use std::sync::Arc;
use std::time::Duration;

use resizer_app::memory::{Memory, TINY_PNG};
use resizer_app::ports::{Conversion, Converted, Converter, Rollups as _};
use resizer_app::{App, AppError, Clock, Disposition, Settings, Submission};
use resizer_core::image::{ImageInfo, Limits};
use resizer_core::job::{Job, JobMessage};
use resizer_core::transform::{Format, TransformSpec};
use resizer_core::usage::{Granularity, UsageRecord};
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
    app.submit(&principal, sub).await
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

    let job = submit(&app, &key).await.expect("the first job is within the quota");
    let [msg]: [JobMessage; 1] = mem.queue.sent().try_into().unwrap();
    // The aggregator keeps running while the job waits in a backlog.
    run_schedule(&app, datetime!(2026-11-25 14:10 UTC)).await;
    assert_eq!(
        app.process(&msg, 1, Arc::new(Fake)).await,
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
