//! What the aggregate function calls, for its IAM policy: the handler runs on the in-memory
//! adapters while an hour of usage is open (rolled up) and after it has closed (archived), and
//! every port call journalled must be in `resizer_aws::iam::AGGREGATE`, and everything listed
//! there must have been called. `crates/aws/tests/iam.rs` then holds `template.yaml` to that list.

use lambda_runtime::{Context, LambdaEvent};
use resizer_app::memory::Memory;
use resizer_app::ports::UsageLog as _;
use resizer_app::{Clock, Settings};
use resizer_aws::iam;
use resizer_core::job::JobId;
use resizer_core::usage::{Outcome, UsageRecord};
use time::macros::datetime;

fn event() -> LambdaEvent<serde_json::Value> {
    LambdaEvent::new(serde_json::json!({}), Context::default())
}

#[tokio::test]
async fn aggregate_calls_exactly_what_its_policy_is_derived_from() {
    let mem = Memory::new();
    let clock = Clock::fixed(datetime!(2026-11-30 10:30 UTC));
    let app = mem.app(Settings::default()).with_clock(clock.clone());
    let record = UsageRecord {
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
        job_created_at: app.now(),
        recorded_at: app.now(),
    };
    mem.usage_log.put(&record).await.unwrap();
    mem.faults.take_journal();

    // The hour is open: rolled up. Then it has closed: archived, once.
    let first = resizer_aggregate::handler(&app, event()).await.unwrap();
    assert_eq!(first.items_read, 1);
    let window = i64::from(app.settings.usage_late_window_hours);
    clock.advance(time::Duration::hours(window + 1));
    let second = resizer_aggregate::handler(&app, event()).await.unwrap();
    assert_eq!(second.archive_objects, 1, "{second:?}");
    let journal = mem.faults.take_journal();

    let problems = iam::AGGREGATE.audit(&journal);
    assert!(
        problems.is_empty(),
        "aggregate's calls differ from its list in crates/aws/src/iam.rs:\n  {}\ncalls: {journal:#?}",
        problems.join("\n  ")
    );
}
