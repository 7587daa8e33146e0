//! What the sweep function calls, for its IAM policy: the handler runs on the in-memory adapters
//! over a stale job it sends again and one too old that it expires, and every port call
//! journalled must be in `resizer_aws::iam::SWEEP`, and everything listed there must have been
//! called. `crates/aws/tests/iam.rs` then holds `template.yaml` to that list.

use lambda_runtime::{Context, LambdaEvent};
use resizer_app::memory::{Memory, TINY_PNG};
use resizer_app::ports::{JobStore as _, ObjectStore as _};
use resizer_app::{Clock, Settings};
use resizer_aws::iam;
use resizer_core::job::{InputMeta, Job, JobId, JobStatus, Source};
use resizer_core::transform::{Format, TransformSpec};
use time::macros::datetime;

fn event() -> LambdaEvent<serde_json::Value> {
    LambdaEvent::new(serde_json::json!({}), Context::default())
}

fn job(created: time::OffsetDateTime) -> Job {
    Job::new_with_id(
        JobId::generate(),
        "cus_iam".into(),
        TransformSpec::with_width(1).unwrap(),
        InputMeta {
            format: Format::Png,
            width: 1,
            height: 1,
            bytes: TINY_PNG.len() as u64,
        },
        Source::Inline,
        created,
    )
}

#[tokio::test]
async fn sweep_calls_exactly_what_its_policy_is_derived_from() {
    let mem = Memory::new();
    let now = datetime!(2026-11-30 10:30 UTC);
    let app = mem.app(Settings::default()).with_clock(Clock::fixed(now));
    let stale = job(now - time::Duration::hours(2));
    let ancient = job(now - time::Duration::days(2));
    for j in [&stale, &ancient] {
        mem.jobs.put_new(j).await.unwrap();
        mem.staging
            .put(&j.staging_key.to_string(), TINY_PNG.to_vec(), "image/png")
            .await
            .unwrap();
    }
    mem.faults.take_journal();

    let report = resizer_sweep::handler(&app, event()).await.unwrap();
    assert_eq!((report.requeued, report.expired), (1, 1), "{report:?}");
    assert_eq!(
        mem.jobs.get(&ancient.job_id).await.unwrap().unwrap().status,
        JobStatus::Failed
    );
    let journal = mem.faults.take_journal();
    let problems = iam::SWEEP.audit(&journal);
    assert!(
        problems.is_empty(),
        "sweep's calls differ from its list in crates/aws/src/iam.rs:\n  {}\ncalls: {journal:#?}",
        problems.join("\n  ")
    );
}
