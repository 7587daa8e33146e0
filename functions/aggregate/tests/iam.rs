//! What the aggregate functions call, for their IAM policies: each handler runs on the in-memory
//! adapters (the schedule closing an hour; a slice of an hour with a customer's records in it),
//! and every port call journalled must be in its list in `resizer_aws::iam`, and everything listed
//! there must have been called. `crates/aws/tests/iam.rs` then holds `template.yaml` to the lists.

use lambda_runtime::{Context, LambdaEvent};
use resizer_app::memory::Memory;
use resizer_app::ports::{SliceTask, UsageLog as _};
use resizer_app::{Clock, Settings};
use resizer_aws::iam;
use resizer_core::job::JobId;
use resizer_core::usage::{HourKey, Outcome, UsageRecord};
use time::macros::datetime;

fn record(at: time::OffsetDateTime) -> UsageRecord {
    UsageRecord {
        customer_id: "cus_iam".into(),
        job_id: JobId::generate(),
        outcome: Outcome::Done,
        error_code: None,
        bytes_in: 100,
        bytes_out: 10,
        pixels_in: 4,
        pixels_out: 1,
        cpu_ms: 3,
        wall_ms: 5,
        format_in: None,
        format_out: None,
        job_created_at: at,
        recorded_at: at,
    }
}

#[tokio::test]
async fn the_schedule_calls_exactly_what_its_policy_is_derived_from() {
    let mem = Memory::new();
    let clock = Clock::fixed(datetime!(2026-11-30 10:30 UTC));
    let app = mem.app(Settings::default()).with_clock(clock.clone());
    // Its slices run in the slice function: here they are only recorded.
    mem.slices.record_only();
    mem.faults.take_journal();

    // The first run sets the watermark and closes the hours due since.
    let first = resizer_aggregate::handler(
        &app,
        LambdaEvent::new(serde_json::json!({}), Context::default()),
    )
    .await
    .unwrap();
    assert!(!first.hours_closed.is_empty(), "{first:?}");
    assert_eq!(
        mem.slices.tasks().len(),
        first.hours_closed.len() * app.settings.usage_slices as usize
    );
    let journal = mem.faults.take_journal();
    let problems = iam::AGGREGATE.audit(&journal);
    assert!(
        problems.is_empty(),
        "aggregate's calls differ from its list in crates/aws/src/iam.rs:\n  {}\ncalls: {journal:#?}",
        problems.join("\n  ")
    );
}

#[tokio::test]
async fn a_slice_calls_exactly_what_its_policy_is_derived_from() {
    let mem = Memory::new();
    let app = mem.app(Settings::default());
    let at = datetime!(2026-11-30 10:30 UTC);
    mem.usage_log.put(&record(at)).await.unwrap();
    mem.faults.take_journal();

    let task = SliceTask {
        hour: HourKey::of(at),
        slice: 0,
        slices: 1,
    };
    let report = resizer_aggregate::slice_handler(&app, LambdaEvent::new(task, Context::default()))
        .await
        .unwrap();
    assert_eq!(
        (report.items_read, report.archive_objects),
        (1, 1),
        "{report:?}"
    );
    let journal = mem.faults.take_journal();
    let problems = iam::AGGREGATE_SLICE.audit(&journal);
    assert!(
        problems.is_empty(),
        "aggregate-slice's calls differ from its list in crates/aws/src/iam.rs:\n  {}\ncalls: {journal:#?}",
        problems.join("\n  ")
    );
}
