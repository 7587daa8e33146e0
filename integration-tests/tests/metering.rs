//! Usage metering against the local stack: raw items from real jobs, hours closed by the deployed
//! aggregate-slice function (rollups and the archive), `/v1/usage` and quotas.
//!
//! Every test works in its own hour, 24 to 800 hours *ahead*, where no deployed function acts on
//! its own: the schedule closes only hours that have ended (its watermark only moves forward from
//! 4 hours before its first run), and the sweep function acts only on jobs written longer ago than
//! its stale bound. A job created at a test's clock in the past would be one the deployed sweeper
//! finds old and ends `expired` (recorded in the real current hour) while the test still holds it
//! parked; that happened in CI. So each test closes its hours itself, with
//! [`resizer_app::App::close_hour`] (what the schedule does for each due hour, through the same
//! slice invocations); the schedule's own logic (the watermark, in order, nothing skipped, no
//! overlap) is tested on the in-memory adapters in `crates/app/tests/metering.rs`. Jobs are
//! processed in the test at the test's clock, with the real engine, so that their outcomes are
//! recorded in the test's hour; the deployed resize function never sees them (they are parked in a
//! memory queue).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::*;
use resizer_app::memory::MemoryQueue;
use resizer_app::{Clock, Delivery, Disposition};
use resizer_core::job::{Job, JobId, JobMessage, JobStatus};
use resizer_core::usage::{Granularity, HourKey, Outcome, Period, Totals, UsageRecord};
use resizer_integration_tests::{athena, usage_load};
use time::{Duration, OffsetDateTime};

/// A random hour between `lo` and `hi` hours ahead.
fn random_hour(lo: i64, hi: i64) -> OffsetDateTime {
    let ahead = lo + (uuid::Uuid::new_v4().as_u128() % (hi - lo) as u128) as i64;
    HourKey::of(OffsetDateTime::now_utc() + Duration::hours(ahead)).start()
}

/// An hour for one test: 24 to 800 hours ahead, where no deployed function goes (see the top).
fn quiet_hour() -> OffsetDateTime {
    random_hour(24, 800)
}

/// The stack's service at `clock`, with jobs parked in a memory queue instead of the jobs queue
/// (the test processes them), and every request reading its key and quota afresh.
async fn parked(clock: &Clock) -> (State, Arc<MemoryQueue>) {
    let queue = resizer_app::memory::Memory::new().queue;
    let q = queue.clone();
    let state = state_with(|_, s| s.auth_cache_ttl = std::time::Duration::ZERO)
        .await
        .with_clock(clock.clone())
        .map_app(|mut app| {
            app.stores.queue = q;
            app
        });
    (state, queue)
}

/// Submits `n` PNG jobs of `w`×`h` for `key` at the clock's time; returns their ids.
async fn submit_jobs(state: &State, key: &str, n: usize, w: u32, h: u32) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let r = call(
            state,
            Req::new("POST", "/v1/jobs")
                .key(key)
                .query(&format!("width={}", 8 + i))
                .body("image/png", png(w, h)),
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.json);
        ids.push(r.json["job_id"].as_str().unwrap().to_owned());
    }
    ids
}

/// Processes every parked message of `ids` at the state's clock, with the real engine.
async fn process_parked(state: &State, queue: &MemoryQueue, ids: &[String]) -> Vec<Job> {
    let messages: Vec<JobMessage> = queue
        .sent()
        .into_iter()
        .filter(|m| ids.contains(&m.job_id.to_string()))
        .collect();
    assert_eq!(messages.len(), ids.len(), "every job was enqueued once");
    let mut jobs = Vec::new();
    for m in &messages {
        let d = state
            .app
            .process(
                Delivery {
                    message: m,
                    receives: 1,
                    receipt: None,
                    deadline: None,
                },
                state.resize.converter.clone(),
            )
            .await;
        assert_eq!(d, Disposition::Consumed, "{}", m.job_id);
        jobs.push(stored(state, &m.job_id).await);
    }
    jobs
}

async fn stored(state: &State, id: &JobId) -> Job {
    state.app.stores.jobs.get(id).await.unwrap().unwrap()
}

/// What the rollup of `jobs` must be, computed from the jobs themselves (cpu_ms aside: it is
/// only in the usage record).
fn expected_totals(jobs: &[Job]) -> Totals {
    let mut t = Totals::default();
    for job in jobs {
        t.jobs += 1;
        t.bytes_in += job.input.bytes;
        t.pixels_in += u64::from(job.input.width) * u64::from(job.input.height);
        match &job.result {
            Some(r) => {
                t.done += 1;
                t.bytes_out += r.bytes;
                t.pixels_out += u64::from(r.width) * u64::from(r.height);
            }
            None => t.failed += 1,
        }
    }
    t
}

fn without_cpu(mut t: Totals) -> Totals {
    t.cpu_ms = 0;
    t
}

async fn rollup(state: &State, customer: &str, period: Period) -> Option<Totals> {
    state
        .app
        .stores
        .rollups
        .get(customer, period)
        .await
        .unwrap()
}

async fn snapshot(state: &State, customers: &[&String]) -> BTreeMap<(String, Period), Totals> {
    let (first, last) = (
        time::macros::datetime!(2000-01-01 0:00 UTC),
        time::macros::datetime!(2100-01-01 0:00 UTC),
    );
    let mut out = BTreeMap::new();
    for c in customers {
        for g in [Granularity::Hour, Granularity::Day, Granularity::Month] {
            let rows = state
                .app
                .stores
                .rollups
                .between(c, g.period_of(first), g.period_of(last))
                .await
                .unwrap();
            for (period, t) in rows {
                out.insert(((*c).clone(), period), t);
            }
        }
    }
    out
}

#[tokio::test]
async fn rollups_equal_the_jobs_exactly_across_customers_and_hours() {
    let h0 = quiet_hour();
    let clock = Clock::fixed(h0 + Duration::minutes(40));
    let (state, queue) = parked(&clock).await;
    let (alice, akey) = customer(&state, None).await;
    let (bob, bkey) = customer(&state, None).await;

    let a0 = submit_jobs(&state, &akey, 3, 64, 48).await;
    let b0 = submit_jobs(&state, &bkey, 2, 32, 32).await;
    // The deployed sweeper runs (every minute) while the jobs are parked: it leaves them alone.
    let swept = run_scheduled(&state, Function::Sweep).await.unwrap();
    for id in a0.iter().chain(&b0) {
        let job = stored(&state, &JobId::parse(id).unwrap()).await;
        assert_eq!(job.status, JobStatus::Queued, "{id} after {swept}");
    }
    let a0 = process_parked(&state, &queue, &a0).await;
    let b0 = process_parked(&state, &queue, &b0).await;
    clock.advance(Duration::minutes(30)); // the next hour
    let a1 = submit_jobs(&state, &akey, 2, 40, 40).await;
    let b1 = submit_jobs(&state, &bkey, 4, 20, 30).await;
    let a1 = process_parked(&state, &queue, &a1).await;
    let b1 = process_parked(&state, &queue, &b1).await;

    let h0k = HourKey::of(h0);
    let h1k = h0k.next();
    for h in [h0k, h1k] {
        let report = state.app.close_hour(h).await.unwrap();
        assert!(report.items_read >= 5, "{report:?}");
        assert_eq!(report.items_skipped, 0);
    }
    for (c, jobs0, jobs1) in [(&alice, &a0, &a1), (&bob, &b0, &b1)] {
        let r0 = rollup(&state, &c.customer_id, Period::hour(h0k))
            .await
            .expect("hour rollup");
        let r1 = rollup(&state, &c.customer_id, Period::hour(h1k))
            .await
            .expect("hour rollup");
        assert_eq!(
            without_cpu(r0),
            expected_totals(jobs0),
            "{} {h0k}",
            c.customer_id
        );
        assert_eq!(
            without_cpu(r1),
            expected_totals(jobs1),
            "{} {h1k}",
            c.customer_id
        );

        // Days and months are the sums of what is inside them.
        let mut all = r0;
        all.merge(&r1);
        let mut days = Totals::default();
        for d in [
            Granularity::Day.period_of(h0),
            Granularity::Day.period_of(h1k.start()),
        ]
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        {
            let mut hours = Totals::default();
            for (_, t) in state
                .app
                .stores
                .rollups
                .within(&c.customer_id, d)
                .await
                .unwrap()
            {
                hours.merge(&t);
            }
            assert_eq!(rollup(&state, &c.customer_id, d).await.unwrap(), hours);
            days.merge(&hours);
        }
        assert_eq!(days, all, "the days hold the two hours exactly");
    }

    // /v1/usage returns only the caller's own data.
    let rfc = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let r = call(
        &state,
        Req::new("GET", "/v1/usage").key(&akey).query(&format!(
            "granularity=hour&from={}&to={}",
            rfc(h0k.start()),
            rfc(h1k.end())
        )),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json);
    let items = r.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let mut expect_all = expected_totals(&a0);
    expect_all.merge(&expected_totals(&a1));
    assert_eq!(r.json["totals"]["jobs"], expect_all.jobs);
    assert_eq!(r.json["totals"]["bytes_in"], expect_all.bytes_in);
    assert_eq!(r.json["totals"]["bytes_out"], expect_all.bytes_out);

    // Closing again, and twice at once, changes nothing (cpu_ms included).
    let before = snapshot(&state, &[&alice.customer_id, &bob.customer_id]).await;
    let (x, y) = tokio::join!(state.app.close_hour(h0k), state.app.close_hour(h1k));
    x.unwrap();
    y.unwrap();
    let (x, y) = tokio::join!(state.app.close_hour(h1k), state.app.close_hour(h1k));
    x.unwrap();
    y.unwrap();
    assert_eq!(
        snapshot(&state, &[&alice.customer_id, &bob.customer_id]).await,
        before
    );
}

fn raw(customer: &str, at: OffsetDateTime, bytes_in: u64, outcome: Outcome) -> UsageRecord {
    UsageRecord {
        customer_id: customer.to_owned(),
        job_id: JobId::generate(),
        outcome,
        error_code: (outcome == Outcome::Failed).then(|| "invalid_image".into()),
        bytes_in,
        bytes_out: bytes_in / 10,
        pixels_in: bytes_in * 3,
        pixels_out: bytes_in / 3,
        cpu_ms: 7,
        wall_ms: 9,
        format_in: Some(resizer_core::transform::Format::Jpeg),
        format_out: (outcome == Outcome::Done).then_some(resizer_core::transform::Format::Webp),
        job_created_at: at - Duration::seconds(2),
        recorded_at: at,
    }
}

/// Every archive object of `customer`'s `hour` (the current versions), with its key.
async fn archive_objects(state: &State, customer: &str, hour: HourKey) -> Vec<(String, Vec<u8>)> {
    let listed = state
        .s3()
        .list_objects_v2()
        .bucket(&state.resources.usage_archive_bucket)
        .prefix(hour.archive_dir(customer))
        .send()
        .await
        .unwrap();
    let mut out = Vec::new();
    for o in listed.contents() {
        let key = o.key().unwrap().to_owned();
        let body = state.app.stores.archive.get(&key, 64 << 20).await.unwrap();
        out.push((key, body));
    }
    out
}

/// Every archived row of `customer`'s `hour`, read with the Athena table's schema.
async fn archived_rows(state: &State, customer: &str, hour: HourKey) -> Vec<athena::Row> {
    let table = athena::Table::from_template().unwrap();
    let mut rows = Vec::new();
    for (key, body) in archive_objects(state, customer, hour).await {
        rows.extend(table.read(&key, &body).unwrap_or_else(|e| panic!("{e}")));
    }
    rows
}

/// A closed hour's archive, read back with the schema of the Athena table the template declares:
/// one row per raw record, every field a column of its type, the partition (customer, day, hour)
/// in the key; a second close writes the same bytes as a new version (the bucket is versioned).
#[tokio::test]
async fn a_closed_hour_is_archived_completely_and_reads_with_the_athena_schema() {
    let h0 = quiet_hour();
    let hour = HourKey::of(h0);
    let state = state().await;
    let (alice, _) = customer(&state, None).await;
    let (bob, _) = customer(&state, None).await;
    let mut mine = Vec::new();
    for i in 0..40u64 {
        let outcome = if i % 9 == 0 {
            Outcome::Failed
        } else {
            Outcome::Done
        };
        let r = raw(
            &alice.customer_id,
            h0 + Duration::seconds(i as i64 * 60),
            1000 + i,
            outcome,
        );
        state.app.stores.usage_log.put(&r).await.unwrap();
        mine.push(r);
    }
    for i in 0..5u64 {
        let r = raw(
            &bob.customer_id,
            h0 + Duration::minutes(3),
            10 + i,
            Outcome::Done,
        );
        state.app.stores.usage_log.put(&r).await.unwrap();
    }
    let report = state.app.close_hour(hour).await.unwrap();
    assert!(report.items_read >= 45, "{report:?}");
    let closed = state
        .app
        .stores
        .rollups
        .closed_hour(hour)
        .await
        .unwrap()
        .expect("the hour is recorded closed");
    assert!(
        closed.items >= 45 && closed.archive_objects >= 2,
        "{closed:?}"
    );

    let objects = archive_objects(&state, &alice.customer_id, hour).await;
    assert_eq!(objects.len(), 1, "one part for 40 records");
    let rows = archived_rows(&state, &alice.customer_id, hour).await;
    assert_eq!(rows.len(), mine.len(), "one row per raw record");
    let day = hour.start().date().to_string();
    let hh = format!("{:02}", hour.start().hour());
    for r in &mine {
        let row = rows
            .iter()
            .find(|row| row["job_id"] == r.job_id.to_string())
            .unwrap_or_else(|| panic!("{} is not archived", r.job_id));
        // The row as the table sees it is the record, plus its partition.
        let mut want: athena::Row = match serde_json::to_value(r).unwrap() {
            serde_json::Value::Object(m) => m.into_iter().collect(),
            _ => unreachable!(),
        };
        want.insert("customer".into(), alice.customer_id.clone().into());
        want.insert("day".into(), day.clone().into());
        want.insert("hour".into(), hh.clone().into());
        assert_eq!(row, &want);
    }

    // Closed again: the same content, kept as a new version of the same key.
    state.app.close_hour(hour).await.unwrap();
    let again = archive_objects(&state, &alice.customer_id, hour).await;
    assert_eq!(again, objects, "byte-identical");
    let versions = state
        .s3()
        .list_object_versions()
        .bucket(&state.resources.usage_archive_bucket)
        .prefix(&objects[0].0)
        .send()
        .await
        .unwrap();
    assert_eq!(versions.versions().len(), 2, "{versions:?}");
}

/// Quotas are counted when a job is accepted, not by the aggregator: the job after the quota is
/// refused at once, with no aggregation having run.
#[tokio::test]
async fn a_customer_over_quota_is_refused_without_waiting_for_the_aggregator() {
    let clock = Clock::fixed(quiet_hour() + Duration::minutes(5));
    let (state, _queue) = parked(&clock).await;
    let (_, key) = customer(&state, Some(2)).await;
    submit_jobs(&state, &key, 2, 16, 16).await;
    let r = call(
        &state,
        Req::new("POST", "/v1/jobs")
            .key(&key)
            .query("width=4")
            .body("image/png", png(8, 8)),
    )
    .await;
    assert_eq!((r.status, r.code()), (429, "quota_exceeded"), "{}", r.json);
}

/// A job created at hh:50 whose outcome is recorded five hours later, after its hour was closed:
/// it is counted in the rollups, against the quota and in the archive.
#[tokio::test]
async fn a_job_that_ends_hours_after_its_hour_closed_is_counted_in_rollups_quota_and_archive() {
    let h0 = quiet_hour();
    let clock = Clock::fixed(h0 + Duration::minutes(50));
    let (state, queue) = parked(&clock).await;
    let (c, key) = customer(&state, Some(1)).await;
    let ids = submit_jobs(&state, &key, 1, 16, 16).await;

    // The job's hour is closed while it waits; five hours on, it finishes.
    state.app.close_hour(HourKey::of(h0)).await.unwrap();
    clock.set(h0 + Duration::hours(5) + Duration::minutes(10));
    let job = process_parked(&state, &queue, &ids).await.remove(0);
    assert_eq!(job.updated_at, clock.now());
    let late = HourKey::of(clock.now());
    state.app.close_hour(late).await.unwrap();

    let months: std::collections::BTreeSet<Period> = [
        Granularity::Month.period_of(h0),
        Granularity::Month.period_of(clock.now()),
    ]
    .into();
    let mut counted = 0;
    for m in months {
        counted += rollup(&state, &c.customer_id, m)
            .await
            .map_or(0, |t| t.jobs);
    }
    assert_eq!(counted, 1, "the month rollup counts the late job once");
    assert_eq!(
        rollup(&state, &c.customer_id, Period::hour(late))
            .await
            .map(|t| t.jobs),
        Some(1),
        "in the hour it was recorded"
    );

    let r = call(
        &state,
        Req::new("POST", "/v1/jobs")
            .key(&key)
            .query("width=4")
            .body("image/png", png(8, 8)),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (429, "quota_exceeded"),
        "the late job counts against the quota: {}",
        r.json
    );

    let rows = archived_rows(&state, &c.customer_id, late).await;
    assert_eq!(
        rows.iter()
            .filter(|r| r["job_id"] == job.job_id.to_string())
            .count(),
        1,
        "archived once: {rows:?}"
    );
    assert!(
        archive_objects(&state, &c.customer_id, HourKey::of(h0))
            .await
            .is_empty(),
        "nothing of it in the hour it was created"
    );
}

/// A raw item that cannot be parsed (here a number that is not one) is logged, counted and
/// skipped; the items around it are counted and the close succeeds.
#[tokio::test]
async fn an_unparsable_raw_item_does_not_stop_a_run() {
    let h0 = quiet_hour();
    let state = state().await;
    let (c, _) = customer(&state, None).await;
    for i in 0..5 {
        let r = raw(
            &c.customer_id,
            h0 + Duration::minutes(i),
            100,
            Outcome::Done,
        );
        state.app.stores.usage_log.put(&r).await.unwrap();
    }
    let mut bad = state
        .adapters
        .usage
        .item(&raw(
            &c.customer_id,
            h0 + Duration::minutes(7),
            1,
            Outcome::Done,
        ))
        .unwrap();
    bad.insert(
        "bytes_in".into(),
        aws_sdk_dynamodb::types::AttributeValue::S("lots".into()),
    );
    state
        .dynamodb()
        .put_item()
        .table_name(&state.resources.usage_table)
        .set_item(Some(bad))
        .send()
        .await
        .unwrap();

    let report = state
        .app
        .close_hour(HourKey::of(h0))
        .await
        .expect("the close succeeds");
    assert!(report.items_read >= 6, "{report:?}");
    assert!(report.items_skipped >= 1, "{report:?}");
    let t = rollup(&state, &c.customer_id, Period::hour(HourKey::of(h0)))
        .await
        .expect("the good items are rolled up");
    assert_eq!((t.jobs, t.bytes_in), (5, 500));
}

/// Items written while the table was spread over 32 shards are all counted by the deployed slice
/// function (the stack's own count) and by slices run with a count lowered to 4.
#[tokio::test]
async fn lowering_the_shard_count_loses_nothing() {
    let h0 = quiet_hour();
    let hour = HourKey::of(h0);
    let wide = state_with(|_, s| s.usage_shards = 32).await;
    let (c, _) = customer(&wide, None).await;
    for i in 0..64u64 {
        let r = raw(
            &c.customer_id,
            h0 + Duration::seconds(i as i64 * 7),
            10 + i,
            Outcome::Done,
        );
        wide.app.stores.usage_log.put(&r).await.unwrap();
    }
    let expected_bytes: u64 = (0..64u64).map(|i| 10 + i).sum();
    let deployed = state().await;
    deployed.app.close_hour(hour).await.unwrap();
    let t = rollup(&deployed, &c.customer_id, Period::hour(hour))
        .await
        .unwrap_or_default();
    assert_eq!((t.jobs, t.bytes_in), (64, expected_bytes), "deployed");

    let narrow = state_with(|r, s| {
        s.usage_shards = 4;
        // The slices in this process, with the lowered count.
        r.aggregate_slice_function = None;
    })
    .await;
    // Start from nothing, so the count is this close's own.
    narrow
        .app
        .stores
        .rollups
        .put(&c.customer_id, Period::hour(hour), &Totals::default(), h0)
        .await
        .unwrap();
    narrow.app.close_hour(hour).await.unwrap();
    let t = rollup(&narrow, &c.customer_id, Period::hour(hour))
        .await
        .unwrap_or_default();
    assert_eq!((t.jobs, t.bytes_in), (64, expected_bytes), "4 shards");
}

/// `make test`'s small version of `make usage-scale`: 20,000 raw items of 400 customers over 32
/// shards, closed by the deployed slice function; every customer's hour, day and month rollup
/// equals what was loaded, exactly, and each customer's hour is one archive object.
#[tokio::test]
async fn twenty_thousand_items_roll_up_exactly() {
    let state = state().await;
    let hour = HourKey::of(quiet_hour());
    let table =
        resizer_aws::dynamo::UsageTable::new(state.dynamodb(), &state.resources.usage_table, 32);
    let loaded = usage_load::load(
        &table,
        hour,
        400,
        20_000,
        uuid::Uuid::new_v4().as_u128() as u64,
        |_| {},
    )
    .await
    .unwrap();
    let report = state.app.close_hour(hour).await.unwrap();
    assert!(report.items_read >= 20_000, "{report:?}");
    assert_eq!(report.items_skipped, 0);
    let problems = usage_load::check_rollups(state.app.stores.rollups.clone(), &loaded)
        .await
        .unwrap();
    assert!(
        problems.is_empty(),
        "{} of {} customers differ:\n{}",
        problems.len(),
        loaded.expected.len(),
        problems[..problems.len().min(10)].join("\n")
    );
    let mut jobs = 0;
    for t in loaded.expected.values() {
        jobs += t.jobs;
    }
    assert_eq!(jobs, 20_000);
}
