//! Usage metering against the local stack: raw items from real jobs, the aggregator's rollups,
//! the archive, `/v1/usage` and quotas. Time is the app's clock, set by the test: hours pass
//! without sleeping.

mod common;

use std::collections::BTreeMap;
use std::io::Read as _;

use common::*;
use resizer_app::Clock;
use resizer_core::job::JobId;
use resizer_core::usage::{Granularity, HourKey, Outcome, Period, Totals, UsageRecord};
use time::{Duration, OffsetDateTime};

/// A random hour between `lo` and `hi` hours ago.
fn random_hour(lo: i64, hi: i64) -> OffsetDateTime {
    let back = lo + (uuid::Uuid::new_v4().as_u128() % (hi - lo) as u128) as i64;
    HourKey::of(OffsetDateTime::now_utc() - Duration::hours(back)).start()
}

/// A start hour for a test, 24 to 274 hours ago. Each aggregator run also archives the 24 hours
/// before its late window, so these tests touch archive markers only 28 to 301 hours back, never
/// where [`archive_test_hour`] lives.
fn base_hour() -> OffsetDateTime {
    random_hour(24, 274)
}

/// The archive test's hour: 330 to 800 hours ago (still inside the raw items' 35-day TTL).
fn archive_test_hour() -> OffsetDateTime {
    random_hour(330, 800)
}

async fn clocked(clock: &Clock) -> State {
    state().await.with_clock(clock.clone())
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

/// What the rollup of `ids` must be, computed from the jobs themselves.
async fn expected_totals(state: &State, ids: &[String]) -> Totals {
    let mut t = Totals::default();
    for id in ids {
        let job = state
            .app
            .stores
            .jobs
            .get(&JobId::parse(id).unwrap())
            .await
            .unwrap()
            .unwrap();
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

/// Rollups compare without cpu_ms, which depends on the machine (it is checked to be summed
/// separately below).
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

#[tokio::test]
async fn rollups_equal_the_jobs_exactly_across_customers_and_hours() {
    let h0 = base_hour();
    let clock = Clock::fixed(h0 + Duration::minutes(40));
    let state = clocked(&clock).await;
    let (alice, akey) = customer(&state, None).await;
    let (bob, bkey) = customer(&state, None).await;

    let a0 = submit_jobs(&state, &akey, 3, 64, 48).await;
    let b0 = submit_jobs(&state, &bkey, 2, 32, 32).await;
    clock.advance(Duration::minutes(30)); // the next hour
    let a1 = submit_jobs(&state, &akey, 2, 40, 40).await;
    let b1 = submit_jobs(&state, &bkey, 4, 20, 30).await;
    let all: Vec<String> = [&a0, &b0, &a1, &b1]
        .iter()
        .flat_map(|v| v.iter().cloned())
        .collect();
    wait_done(&state, &all).await;

    clock.advance(Duration::minutes(5));
    let report = state.app.aggregate().await.unwrap();
    assert!(report.hours_scanned >= 2);
    assert!(report.items_read >= all.len() as u64);

    let h0k = HourKey::of(h0);
    let h1k = h0k.next();
    for (c, ids0, ids1) in [(&alice, &a0, &a1), (&bob, &b0, &b1)] {
        let e0 = expected_totals(&state, ids0).await;
        let e1 = expected_totals(&state, ids1).await;
        let r0 = rollup(&state, &c.customer_id, Period::hour(h0k))
            .await
            .expect("hour rollup");
        let r1 = rollup(&state, &c.customer_id, Period::hour(h1k))
            .await
            .expect("hour rollup");
        assert_eq!(without_cpu(r0), without_cpu(e0), "{} {h0k}", c.customer_id);
        assert_eq!(without_cpu(r1), without_cpu(e1), "{} {h1k}", c.customer_id);
        assert_eq!(r0.jobs, ids0.len() as u64);

        // Days and months are the sums of their hours.
        let mut day = Totals::default();
        let day_of_h0 = Granularity::Day.period_of(h0);
        for (_, t) in state
            .app
            .stores
            .rollups
            .within(&c.customer_id, day_of_h0)
            .await
            .unwrap()
        {
            day.merge(&t);
        }
        let d = rollup(&state, &c.customer_id, day_of_h0).await.unwrap();
        assert_eq!(d, day);
        let m = rollup(&state, &c.customer_id, Granularity::Month.period_of(h0))
            .await
            .unwrap();
        assert!(m.jobs >= d.jobs);
    }

    // /v1/usage returns only the caller's own data.
    let from = h0k
        .start()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let to = (h1k.end())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let r = call(
        &state,
        Req::new("GET", "/v1/usage")
            .key(&akey)
            .query(&format!("granularity=hour&from={from}&to={to}")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json);
    let items = r.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(r.json["totals"]["jobs"], (a0.len() + a1.len()) as u64);
    let mut expect_all = expected_totals(&state, &a0).await;
    expect_all.merge(&expected_totals(&state, &a1).await);
    assert_eq!(r.json["totals"]["bytes_in"], expect_all.bytes_in);
    assert_eq!(r.json["totals"]["bytes_out"], expect_all.bytes_out);

    // Re-running changes nothing (cpu_ms included).
    let before = snapshot(&state, &[&alice.customer_id, &bob.customer_id]).await;
    state.app.aggregate().await.unwrap();
    let (x, y) = tokio::join!(state.app.aggregate(), state.app.aggregate());
    x.unwrap();
    y.unwrap();
    assert_eq!(
        snapshot(&state, &[&alice.customer_id, &bob.customer_id]).await,
        before
    );
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

fn raw(customer: &str, created: OffsetDateTime, bytes_in: u64, outcome: Outcome) -> UsageRecord {
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
        job_created_at: created,
        recorded_at: created + Duration::seconds(2),
    }
}

#[tokio::test]
async fn a_late_item_within_the_window_is_counted_on_the_next_run() {
    let h0 = base_hour();
    let clock = Clock::fixed(h0 + Duration::minutes(10));
    let state = clocked(&clock).await;
    let (c, _) = customer(&state, None).await;
    state
        .app
        .stores
        .usage_log
        .put(&raw(
            &c.customer_id,
            h0 + Duration::minutes(1),
            100,
            Outcome::Done,
        ))
        .await
        .unwrap();
    clock.set(h0 + Duration::hours(2)); // h0 is 2 hours back: inside the 3-hour window
    state.app.aggregate().await.unwrap();
    let period = Period::hour(HourKey::of(h0));
    assert_eq!(
        rollup(&state, &c.customer_id, period).await.unwrap().jobs,
        1
    );

    state
        .app
        .stores
        .usage_log
        .put(&raw(
            &c.customer_id,
            h0 + Duration::minutes(59),
            50,
            Outcome::Failed,
        ))
        .await
        .unwrap();
    state.app.aggregate().await.unwrap();
    let t = rollup(&state, &c.customer_id, period).await.unwrap();
    assert_eq!(
        (t.jobs, t.done, t.failed, t.bytes_in, t.cpu_ms),
        (2, 1, 1, 150, 14)
    );
}

#[tokio::test]
async fn a_closed_hour_is_archived_once_and_completely() {
    let h0 = archive_test_hour();
    let hour = HourKey::of(h0);
    let clock = Clock::fixed(h0 + Duration::minutes(30));
    // One shard and tiny pages: the aggregator must follow every page.
    let state = state_with(|_, s| s.usage_shards = 1)
        .await
        .with_clock(clock.clone());
    let paged = std::sync::Arc::new(state.adapters.usage.clone().with_page_limit(7));
    let state = state.map_app(|mut app| {
        app.stores.usage_log = paged;
        app
    });
    let (alice, _) = customer(&state, None).await;
    let (bob, _) = customer(&state, None).await;
    let mut mine = Vec::new();
    for i in 0..40u64 {
        let r = raw(
            &alice.customer_id,
            h0 + Duration::seconds(i as i64 * 60),
            1000 + i,
            Outcome::Done,
        );
        state.app.stores.usage_log.put(&r).await.unwrap();
        mine.push(r);
    }
    for i in 0..5u64 {
        state
            .app
            .stores
            .usage_log
            .put(&raw(
                &bob.customer_id,
                h0 + Duration::minutes(3),
                10 + i,
                Outcome::Done,
            ))
            .await
            .unwrap();
    }
    // Earlier runs against this stack may have archived nearby hours: start from a clean band.
    for back in -30..=30 {
        delete_marker(
            &state,
            if back < 0 {
                hour.prev(-back)
            } else {
                hour_after(hour, back)
            },
        )
        .await;
    }
    // Aggregated while open: a rollup, no archive.
    state.app.aggregate().await.unwrap();
    assert_eq!(
        rollup(&state, &alice.customer_id, Period::hour(hour))
            .await
            .unwrap()
            .jobs,
        40
    );
    assert!(
        state
            .app
            .stores
            .rollups
            .archive_marker(hour)
            .await
            .unwrap()
            .is_none()
    );

    // Past the late window (3 hours): archived.
    clock.set(hour.end() + Duration::hours(3) + Duration::minutes(1));
    let report = state.app.aggregate().await.unwrap();
    assert!(
        report.hours_archived.contains(&hour.to_string()),
        "{report:?}"
    );
    let marker = state
        .app
        .stores
        .rollups
        .archive_marker(hour)
        .await
        .unwrap()
        .expect("marker");
    assert!(marker.records >= 45);

    let key = hour.archive_key(&alice.customer_id);
    let first = state.app.stores.archive.get(&key, 10 << 20).await.unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&first[..])
        .read_to_string(&mut text)
        .unwrap();
    let lines: Vec<UsageRecord> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), mine.len(), "one line per raw item");
    mine.sort_by(|a, b| a.job_id.cmp(&b.job_id));
    assert_eq!(lines, mine, "exactly this customer's raw records");

    // Once: the next run leaves it alone.
    let again = state.app.aggregate().await.unwrap();
    assert!(!again.hours_archived.contains(&hour.to_string()));
    // A forced re-run (marker gone) writes byte-identical content.
    delete_marker(&state, hour).await;
    state.app.aggregate().await.unwrap();
    let second = state.app.stores.archive.get(&key, 10 << 20).await.unwrap();
    assert_eq!(first, second);
}

fn hour_after(h: HourKey, n: i64) -> HourKey {
    (0..n).fold(h, |h, _| h.next())
}

async fn delete_marker(state: &State, hour: HourKey) {
    state
        .dynamodb()
        .delete_item()
        .table_name(&state.resources.usage_rollups_table)
        .key(
            "customer_id",
            aws_sdk_dynamodb::types::AttributeValue::S(
                resizer_aws::dynamo::ARCHIVE_MARKER_PK.into(),
            ),
        )
        .key(
            "period",
            aws_sdk_dynamodb::types::AttributeValue::S(Period::hour(hour).to_string()),
        )
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_customer_over_quota_is_refused_after_aggregation() {
    let h0 = base_hour();
    let clock = Clock::fixed(h0 + Duration::minutes(5));
    let state = state_with(|_, s| s.auth_cache_ttl = std::time::Duration::ZERO)
        .await
        .with_clock(clock.clone());
    let (_, key) = customer(&state, Some(2)).await;
    let ids = submit_jobs(&state, &key, 2, 16, 16).await;
    wait_done(&state, &ids).await;
    // Eventually consistent: accepted until the aggregator has counted the month.
    state.app.aggregate().await.unwrap();
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

// ---- late arrivals, bad items, shard counts ------------------------------------------------------

/// An hour for the tests below: 330 to 800 hours ago, where nothing else runs the aggregator.
fn quiet_hour() -> OffsetDateTime {
    random_hour(330, 800)
}

/// Every archived record of `customer`, from every archive object under its prefix.
async fn archived_records(state: &State, customer: &str) -> Vec<UsageRecord> {
    let bucket = &state.resources.results_bucket;
    let listed = state
        .s3()
        .list_objects_v2()
        .bucket(bucket)
        .prefix(format!("usage-archive/customer={customer}/"))
        .send()
        .await
        .unwrap();
    let mut out = Vec::new();
    for o in listed.contents() {
        let key = o.key().unwrap();
        let body = state.app.stores.archive.get(key, 64 << 20).await.unwrap();
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .unwrap();
        out.extend(
            text.lines()
                .map(|l| serde_json::from_str::<UsageRecord>(l).unwrap()),
        );
    }
    out
}

/// A job created at hh:50 whose outcome is recorded five hours later, after its hour was closed
/// and archived: it is counted in the rollups, against the quota and in the archive. The job is
/// processed in the test (at the test's clock) and never enqueued, so that the deployed resize
/// function, whose clock is the real one, leaves it alone.
#[tokio::test]
async fn a_job_that_ends_hours_after_its_hour_closed_is_counted_in_rollups_quota_and_archive() {
    let h0 = quiet_hour();
    let clock = Clock::fixed(h0 + Duration::minutes(50));
    let parked = resizer_app::memory::Memory::new().queue;
    let state = state_with(|_, s| s.auth_cache_ttl = std::time::Duration::ZERO)
        .await
        .with_clock(clock.clone())
        .map_app(|mut app| {
            app.stores.queue = parked.clone();
            app
        });
    let (c, key) = customer(&state, Some(1)).await;
    let ids = submit_jobs(&state, &key, 1, 16, 16).await;
    let [msg]: [resizer_core::job::JobMessage; 1] = parked.sent().try_into().unwrap();

    // Five hours on, the job's hour is closed and archived; then the job finishes.
    clock.set(h0 + Duration::hours(5) + Duration::minutes(10));
    state.app.aggregate().await.unwrap();
    let disposition = state
        .app
        .process(&msg, 1, std::sync::Arc::new(resizer_resize::Engine))
        .await;
    assert_eq!(disposition, resizer_app::Disposition::Consumed);
    let job = wait_done(&state, &ids).await.remove(0);
    assert_eq!(job.updated_at, clock.now());

    // Two hours later, the aggregator has had every chance to count it.
    clock.set(h0 + Duration::hours(7));
    state.app.aggregate().await.unwrap();

    let months = [
        Granularity::Month.period_of(h0),
        Granularity::Month.period_of(clock.now()),
    ];
    let mut counted = 0;
    for m in months.iter().collect::<std::collections::BTreeSet<_>>() {
        counted += rollup(&state, &c.customer_id, *m)
            .await
            .map_or(0, |t| t.jobs);
    }
    assert_eq!(counted, 1, "the month rollup counts the late job");

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

    let records = archived_records(&state, &c.customer_id).await;
    assert_eq!(
        records.iter().filter(|r| r.job_id == job.job_id).count(),
        1,
        "archived once: {records:?}"
    );
}

/// A raw item that cannot be parsed (here a number that is not one) is logged, counted and
/// skipped; the items around it are counted and the run succeeds.
#[tokio::test]
async fn an_unparsable_raw_item_does_not_stop_a_run() {
    let h0 = quiet_hour();
    let clock = Clock::fixed(h0 + Duration::minutes(30));
    let state = clocked(&clock).await;
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

    let report = state.app.aggregate().await.expect("the run succeeds");
    assert!(report.items_read >= 5, "{report:?}");
    let t = rollup(&state, &c.customer_id, Period::hour(HourKey::of(h0)))
        .await
        .expect("the good items are rolled up");
    assert_eq!((t.jobs, t.bytes_in), (5, 500));
}

/// Items written while the table was spread over 32 shards are all counted after the shard count
/// is lowered to 4 (and with the stack's own count).
#[tokio::test]
async fn lowering_the_shard_count_loses_nothing() {
    let h0 = quiet_hour();
    let clock = Clock::fixed(h0 + Duration::minutes(30));
    let wide = state_with(|_, s| s.usage_shards = 32)
        .await
        .with_clock(clock.clone());
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
    for shards in [4, 16] {
        let narrow = state_with(|_, s| s.usage_shards = shards)
            .await
            .with_clock(clock.clone());
        narrow.app.aggregate().await.unwrap();
        let t = rollup(&narrow, &c.customer_id, Period::hour(HourKey::of(h0)))
            .await
            .unwrap_or_default();
        assert_eq!(
            (t.jobs, t.bytes_in),
            (64, expected_bytes),
            "aggregated with {shards} shards"
        );
    }
}
