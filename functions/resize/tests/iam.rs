//! What the resize function calls, for its IAM policy: the handler runs on the in-memory adapters
//! through every path that reaches storage (an inline job and an uploaded one converted, a
//! redelivery of a finished job, a bad image, a staged image gone, a transient failure, dead
//! letters), and every port call journalled must be in `resizer_aws::iam::RESIZE`, and everything
//! listed there must have been called. `crates/aws/tests/iam.rs` then holds `template.yaml` to
//! that list.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use lambda_runtime::{Context, LambdaEvent};
use resizer_app::memory::{Memory, TINY_PNG};
use resizer_app::ports::{Conversion, Converted, Converter, ObjectStore as _};
use resizer_app::{Principal, Settings, StoreError, Submission};
use resizer_aws::iam;
use resizer_core::image::{ImageError, ImageInfo, Limits};
use resizer_core::job::{JobMessage, StagingKey, UploadId};
use resizer_core::transform::{Format, TransformSpec};
use resizer_resize::Resize;

const DLQ_ARN: &str = "arn:aws:sqs:us-east-1:000000000000:jobs-dlq";
const QUEUE_ARN: &str = "arn:aws:sqs:us-east-1:000000000000:jobs";

/// A converter that answers what it is told.
struct Fake(Result<Converted, ImageError>);

impl Converter for Fake {
    fn convert(&self, _: &[u8], _: &TransformSpec, _: &Limits) -> Conversion {
        Conversion {
            result: self.0.clone(),
            cpu: Duration::from_millis(1),
        }
    }
}

fn converts() -> Arc<Fake> {
    Arc::new(Fake(Ok(Converted {
        bytes: vec![7; 12],
        format: Format::Webp,
        width: 1,
        height: 1,
        input: ImageInfo {
            format: Format::Png,
            width: 1,
            height: 1,
        },
    })))
}

fn event(msg: &JobMessage, from: &str) -> LambdaEvent<SqsEvent> {
    let mut record = SqsMessage::default();
    record.message_id = Some(format!("m-{}", msg.job_id));
    record.receipt_handle = Some(format!("r-{}", msg.job_id));
    record.body = Some(serde_json::to_string(msg).unwrap());
    record.event_source_arn = Some(from.to_owned());
    record
        .attributes
        .insert("ApproximateReceiveCount".into(), "1".into());
    let mut ev = SqsEvent::default();
    ev.records = vec![record];
    LambdaEvent::new(ev, Context::default())
}

/// Runs the handler on a batch of one message from `from`; how many records it asks to retry.
async fn run(state: &Resize, msg: &JobMessage, from: &str) -> usize {
    resizer_resize::handler(state, event(msg, from))
        .await
        .unwrap()
        .batch_item_failures
        .len()
}

#[tokio::test]
async fn resize_calls_exactly_what_its_policy_is_derived_from() {
    let mem = Memory::new();
    // Every inline image staged: the S3 path's calls. (An image riding in its message calls a
    // subset of them: no staging.)
    let app = mem.app(Settings {
        message_image_max_bytes: 0,
        ..Settings::default()
    });
    let principal = Principal {
        customer_id: "cus_iam".into(),
        key_id: "k".into(),
        monthly_job_quota: None,
        month_jobs: 0,
        max_open_jobs: None,
    };
    // The jobs, as the api submits them: inline ones, and one from an upload.
    for _ in 0..5 {
        let sub = Submission::inline(
            TransformSpec::with_width(1).unwrap(),
            Some("image/png"),
            TINY_PNG,
            &app.settings,
        )
        .unwrap();
        app.submit(&principal, sub).await.unwrap();
    }
    let upload = UploadId::generate();
    let staged = StagingKey::upload(&principal.customer_id, &upload).to_string();
    mem.staging
        .put(&staged, TINY_PNG.to_vec(), "image/png")
        .await
        .unwrap();
    let sub = Submission::upload(TransformSpec::with_width(1).unwrap(), upload.to_string());
    app.submit(&principal, sub).await.unwrap();
    let messages = mem.queue.sent();
    let [done, bad, gone, dead, flaky, uploaded] = messages.as_slice() else {
        panic!("six jobs")
    };
    // One staged image expired before its job ran.
    let gone_job = mem.jobs.all().into_iter().find(|j| j.job_id == gone.job_id);
    mem.staging
        .delete(&gone_job.unwrap().staging_key.to_string())
        .await
        .unwrap();
    mem.faults.take_journal();

    let ok = Resize::with_converter(app.clone(), Some(DLQ_ARN.into()), converts());
    let broken = Resize::with_converter(
        app.clone(),
        Some(DLQ_ARN.into()),
        Arc::new(Fake(Err(ImageError::InvalidImage("corrupt".into())))),
    );

    // Converted, then redelivered: nothing more to do.
    assert_eq!(run(&ok, done, QUEUE_ARN).await, 0);
    assert_eq!(run(&ok, done, QUEUE_ARN).await, 0);
    // From an upload: the upload stays.
    assert_eq!(run(&ok, uploaded, QUEUE_ARN).await, 0);
    assert!(mem.staging.keys().contains(&staged));
    // A bad image; a staged image gone: both fail the job.
    assert_eq!(run(&broken, bad, QUEUE_ARN).await, 0);
    assert_eq!(run(&ok, gone, QUEUE_ARN).await, 0);
    // A transient failure: retried.
    mem.faults.fail_next(
        "results.put",
        StoreError::unavailable("s3:PutObject", "503 SlowDown"),
    );
    assert_eq!(run(&ok, flaky, QUEUE_ARN).await, 1);
    // A dead letter of a young job: sent back to the jobs queue; the dead letter of a finished
    // job; a dead letter while the jobs table is down: its redelivery is pushed back.
    assert_eq!(run(&ok, dead, DLQ_ARN).await, 0);
    assert_eq!(run(&ok, done, DLQ_ARN).await, 0);
    mem.faults.fail_next(
        "jobs.get",
        StoreError::unavailable("dynamodb:GetItem", "throttled"),
    );
    assert_eq!(run(&ok, dead, DLQ_ARN).await, 1);
    // A job whose item cannot be read: failed without reading it.
    mem.faults.fail_next(
        "jobs.claim",
        StoreError::rejected("deserialise item", "missing field `params`"),
    );
    assert_eq!(run(&ok, dead, QUEUE_ARN).await, 0);
    let journal = mem.faults.take_journal();

    let problems = iam::RESIZE.audit(&journal);
    assert!(
        problems.is_empty(),
        "resize's calls differ from its list in crates/aws/src/iam.rs:\n  {}\ncalls: {journal:#?}",
        problems.join("\n  ")
    );
}
