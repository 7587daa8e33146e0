//! The job lifecycle on in-memory adapters: submit, process, redeliver, fail, dead-letter,
//! compensate. The same use cases run against the local AWS in the integration tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use resizer_app::memory::Memory;
use resizer_app::ports::{Accounts, Conversion, Converted, Converter, JobStore, ObjectStore};
use resizer_app::{
    App, AppError, Clock, Delivery, Disposition, Principal, Settings, StoreError, Submission,
};
use resizer_core::image::{ImageError, ImageInfo, Limits};
use resizer_core::job::{IdempotencyKey, Job, JobMessage, JobStatus, StagingKey, UploadId};
use resizer_core::key::{ApiKey, Customer, KeyRecord};
use resizer_core::transform::{Format, TransformSpec};
use resizer_core::usage::Outcome;
use time::macros::datetime;

/// A converter that answers what it is told and counts its calls.
struct Fake {
    answer: Result<Converted, ImageError>,
    calls: AtomicUsize,
}

impl Fake {
    fn ok() -> Arc<Self> {
        Arc::new(Self {
            answer: Ok(Converted {
                bytes: vec![7; 123],
                format: Format::Webp,
                width: 4,
                height: 3,
                input: ImageInfo {
                    format: Format::Png,
                    width: 8,
                    height: 6,
                },
            }),
            calls: AtomicUsize::new(0),
        })
    }

    fn err(e: ImageError) -> Arc<Self> {
        Arc::new(Self {
            answer: Err(e),
            calls: AtomicUsize::new(0),
        })
    }
}

impl Converter for Fake {
    fn convert(&self, _: &[u8], _: &TransformSpec, _: &Limits) -> Conversion {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Conversion {
            result: self.answer.clone(),
            cpu: Duration::from_millis(5),
        }
    }
}

struct World {
    mem: Memory,
    app: App,
    principal: Principal,
}

async fn world() -> World {
    world_with_clock().await.0
}

/// An 8x6 PNG (the header and an IEND chunk are all the api checks before staging).
fn png() -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x08\0\0\0\x06\x08\x02\0\0\0".to_vec();
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(b"\0\0\0\0IEND\xaeB`\x82");
    b
}

fn spec() -> TransformSpec {
    TransformSpec::with_width(4).unwrap()
}

/// The PNG, inline, as the api submits it.
fn inline_png(w: &World) -> Submission {
    Submission::inline(spec(), Some("image/png"), &png(), &w.app.settings).unwrap()
}

async fn submit(w: &World) -> Job {
    w.app.submit(&w.principal, inline_png(w)).await.unwrap().job
}

/// Submits the PNG inline and expects the error a retry can cure (a dependency down).
async fn submit_fails_retryably(w: &World) {
    let err = w.app.submit(&w.principal, inline_png(w)).await.unwrap_err();
    assert!(
        matches!(err, AppError::Store(ref e) if e.is_retryable()),
        "{err}"
    );
}

fn message(job: &Job) -> JobMessage {
    JobMessage {
        job_id: job.job_id.clone(),
        customer_id: job.customer_id.clone(),
        enqueued_at_ms: 0,
        redrives: 0,
        image: None,
        request_hash: None,
    }
}

/// The `receives`-th delivery of `msg`, with a receipt.
fn delivery(msg: &JobMessage, receives: u32) -> Delivery<'_> {
    Delivery {
        message: msg,
        receives,
        receipt: Some("receipt"),
        deadline: None,
    }
}

fn is_retry(d: Disposition) -> bool {
    matches!(d, Disposition::Retry { .. })
}

async fn stored(w: &World, job: &Job) -> Job {
    w.mem.jobs.get(&job.job_id).await.unwrap().unwrap()
}

#[tokio::test]
async fn a_submitted_job_is_staged_written_queued_and_enqueued() {
    let w = world().await;
    let job = submit(&w).await;
    assert_eq!(job.status, JobStatus::Queued);
    assert!(job.staging_key.is_inline());
    assert_eq!(stored(&w, &job).await, job);
    assert_eq!(
        w.mem.staging.object(&job.staging_key.to_string()),
        Some(png())
    );
    assert_eq!(
        w.mem.queue.sent(),
        vec![JobMessage {
            enqueued_at_ms: w.mem.queue.sent()[0].enqueued_at_ms,
            ..message(&job)
        }]
    );
}

#[tokio::test]
async fn a_failed_enqueue_removes_the_job_and_its_staged_body() {
    let w = world().await;
    w.mem.faults.fail_next(
        "queue.send",
        StoreError::unavailable("sqs:SendMessage", "throttled"),
    );
    submit_fails_retryably(&w).await;
    assert!(w.mem.jobs.all().is_empty(), "no job lingers as queued");
    assert!(w.mem.staging.keys().is_empty(), "no staged body lingers");
    assert_eq!(w.mem.faults.calls("jobs.delete_queued"), 1);
}

fn keyed(body: &[u8], width: u32, key: &str) -> Submission {
    let spec = TransformSpec::with_width(width).unwrap();
    Submission::inline(spec, Some("image/png"), body, &Settings::default())
        .unwrap()
        .with_idempotency_key(Some(IdempotencyKey::parse(key).unwrap()))
}

#[tokio::test]
async fn a_retried_request_with_its_idempotency_key_gets_the_same_job_once() {
    let w = world().await;
    let first = w
        .app
        .submit(&w.principal, keyed(&png(), 4, "order-1"))
        .await
        .unwrap();
    assert!(!first.replayed);
    let again = w
        .app
        .submit(&w.principal, keyed(&png(), 4, "order-1"))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.job.job_id, first.job.job_id);
    assert_eq!(w.mem.jobs.all().len(), 1, "one job");
    assert_eq!(w.mem.queue.sent().len(), 1, "enqueued once");

    // Another key is another job; the same key for another request is refused.
    let other = w
        .app
        .submit(&w.principal, keyed(&png(), 4, "order-2"))
        .await
        .unwrap();
    assert_ne!(other.job.job_id, first.job.job_id);
    for conflicting in [keyed(&png(), 5, "order-1"), {
        let mut body = png();
        body[20] = 9;
        keyed(&body, 4, "order-1")
    }] {
        let err = w.app.submit(&w.principal, conflicting).await.unwrap_err();
        assert!(matches!(err, AppError::IdempotencyConflict(_)), "{err}");
    }
    assert_eq!(w.mem.jobs.all().len(), 2);

    // Keys are the customer's own: another customer's "order-1" is its own job.
    let (_, key) = w.mem.customer(&w.app, None).await;
    let them = w.app.authenticate(Some(&key.expose())).await.unwrap();
    let theirs = w
        .app
        .submit(&them, keyed(&png(), 4, "order-1"))
        .await
        .unwrap();
    assert!(!theirs.replayed);
    assert_ne!(theirs.job.job_id, first.job.job_id);
}

#[tokio::test]
async fn a_keyed_request_whose_enqueue_failed_can_be_retried() {
    let w = world().await;
    w.mem.faults.fail_next(
        "queue.send",
        StoreError::unavailable("sqs:SendMessage", "throttled"),
    );
    let err = w
        .app
        .submit(&w.principal, keyed(&png(), 4, "k"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppError::Store(ref e) if e.is_retryable()),
        "{err}"
    );
    let retry = w
        .app
        .submit(&w.principal, keyed(&png(), 4, "k"))
        .await
        .unwrap();
    assert!(!retry.replayed, "the first attempt left nothing behind");
    assert_eq!(w.mem.queue.sent().len(), 1);
}

#[tokio::test]
async fn a_job_that_could_not_be_enqueued_nor_removed_is_answered_as_created() {
    // Answering a retryable error for a job that exists would have the caller submit (and pay
    // for) it twice; the sweeper enqueues it instead.
    let w = world().await;
    w.mem.faults.fail_next(
        "queue.send",
        StoreError::unavailable("sqs:SendMessage", "throttled"),
    );
    w.mem.faults.fail_next(
        "jobs.delete_queued",
        StoreError::unavailable("dynamodb:DeleteItem", "throttled"),
    );
    let sub = inline_png(&w);
    let created = w.app.submit(&w.principal, sub).await.unwrap();
    assert_eq!(stored(&w, &created.job).await.status, JobStatus::Queued);
    assert!(w.mem.queue.sent().is_empty());
}

#[tokio::test]
async fn a_failed_read_while_waiting_answers_the_job_not_an_error() {
    let w = world().await;
    let job = submit(&w).await;
    w.mem.faults.fail_next(
        "jobs.get",
        StoreError::unavailable("dynamodb:GetItem", "throttled"),
    );
    let seen = w.app.wait_for(job.clone(), Duration::from_secs(5)).await;
    assert_eq!(seen.job_id, job.job_id);
    assert_eq!(seen.status, JobStatus::Queued);
}

/// A waiting caller hears of its job at most 50 ms after it ends during the first second, where
/// the latency budget lives (the earlier doubling schedule read at 50, 150, 350 and 600 ms, so a
/// job that ended at 360 ms was answered 240 ms late).
#[tokio::test(start_paused = true)]
async fn a_waiting_caller_hears_of_its_job_within_50_ms_in_the_first_second() {
    for ends_ms in [120, 360, 420, 610, 990] {
        let w = world().await;
        let job = submit(&w).await;
        let jobs = w.mem.jobs.clone();
        let mut done = stored(&w, &job).await;
        done.status = JobStatus::Done;
        let started = tokio::time::Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(ends_ms)).await;
            jobs.insert(done);
        });
        let seen = w.app.wait_for(job.clone(), Duration::from_secs(20)).await;
        let answered = started.elapsed();
        assert_eq!(seen.status, JobStatus::Done);
        assert!(
            answered >= Duration::from_millis(ends_ms)
                && answered <= Duration::from_millis(ends_ms + 50),
            "a job that ended at {ends_ms} ms was answered at {answered:?}"
        );
    }
}

#[test]
fn waiting_reads_fast_for_a_second_then_every_250_ms() {
    use resizer_app::wait_poll_delay;
    let ms = Duration::from_millis;
    assert_eq!(wait_poll_delay(ms(0)), ms(100));
    assert_eq!(wait_poll_delay(ms(30)), ms(70));
    assert_eq!(wait_poll_delay(ms(100)), ms(50));
    assert_eq!(wait_poll_delay(ms(999)), ms(50));
    assert_eq!(wait_poll_delay(ms(1000)), ms(250));
    // Reads in a 20 s wait that finds nothing: 1 + 18 + 76 = 95 (1 RRU each).
    let (mut t, mut reads) = (ms(0), 0);
    while t < Duration::from_secs(20) {
        t += wait_poll_delay(t);
        reads += 1;
    }
    assert_eq!(reads, 95);
}

#[tokio::test]
async fn a_job_is_converted_recorded_once_and_its_inline_body_removed() {
    let w = world().await;
    let job = submit(&w).await;
    let engine = Fake::ok();
    let d = w
        .app
        .process(delivery(&message(&job), 1), engine.clone())
        .await;
    assert_eq!(d, Disposition::Consumed);
    let done = stored(&w, &job).await;
    assert_eq!(done.status, JobStatus::Done);
    assert_eq!(done.attempts, 1);
    let result = done.result.clone().unwrap();
    assert_eq!((result.width, result.height, result.bytes), (4, 3, 123));
    assert_eq!(w.mem.results.object(&result.key), Some(vec![7; 123]));
    assert!(w.mem.staging.keys().is_empty());
    let usage = w.mem.usage_log.all();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0].outcome, Outcome::Done);
    assert_eq!(
        (usage[0].pixels_out, usage[0].bytes_out, usage[0].cpu_ms),
        (12, 123, 5)
    );
    assert_eq!(usage[0].bytes_in, png().len() as u64);
}

#[tokio::test]
async fn a_redelivered_message_of_a_finished_job_does_nothing() {
    let w = world().await;
    let job = submit(&w).await;
    let engine = Fake::ok();
    w.app
        .process(delivery(&message(&job), 1), engine.clone())
        .await;
    let first = stored(&w, &job).await;
    let d = w
        .app
        .process(delivery(&message(&job), 2), engine.clone())
        .await;
    assert_eq!(d, Disposition::Consumed);
    assert_eq!(
        engine.calls.load(Ordering::SeqCst),
        1,
        "no second conversion"
    );
    assert_eq!(
        stored(&w, &job).await,
        first,
        "the finished job is untouched"
    );
    assert_eq!(w.mem.usage_log.all().len(), 1, "no second usage record");
}

/// A finished job's inline body is removed even when S3 refuses the delete for a while: the
/// message comes back (the job stays done, converted and recorded once) until the delete goes
/// through, from the jobs queue or from the dead-letter queue. (The chaos suite's S3 SlowDown on
/// 20 % of calls for 5 minutes left 2 of 420 bodies in staging, for the lifecycle rule's day.)
#[tokio::test]
async fn a_failed_removal_of_the_inline_body_is_retried_not_forgotten() {
    let w = world().await;
    let job = submit(&w).await;
    let key = job.staging_key.to_string();
    let engine = Fake::ok();
    let slow_down = || StoreError::unavailable("s3:DeleteObject", "503 SlowDown");

    w.mem.faults.fail_next("staging.delete", slow_down());
    let d = w
        .app
        .process(delivery(&message(&job), 1), engine.clone())
        .await;
    assert_eq!(stored(&w, &job).await.status, JobStatus::Done);
    assert_eq!(w.mem.staging.keys(), vec![key.clone()]);
    assert!(
        is_retry(d),
        "the message must come back to remove the body: {d:?}"
    );

    // The redelivery finds the job done: no second conversion, no second record; the delete
    // fails again, then goes through from the dead-letter queue.
    w.mem.faults.fail_next("staging.delete", slow_down());
    let d = w
        .app
        .process(delivery(&message(&job), 2), engine.clone())
        .await;
    assert!(is_retry(d), "{d:?}");
    assert_eq!(w.mem.staging.keys(), vec![key]);
    let d = w.app.finish_dead_letter(delivery(&message(&job), 1)).await;
    assert_eq!(d, Disposition::Consumed);
    assert!(w.mem.staging.keys().is_empty(), "the inline body is gone");
    assert_eq!(engine.calls.load(Ordering::SeqCst), 1, "converted once");
    assert_eq!(w.mem.usage_log.all().len(), 1, "recorded once");
    assert_eq!(stored(&w, &job).await.status, JobStatus::Done);

    // A job that failed for good keeps the same promise.
    let bad = submit(&w).await;
    w.mem.faults.fail_next("staging.delete", slow_down());
    let d = w
        .app
        .process(
            delivery(&message(&bad), 1),
            Fake::err(ImageError::InvalidImage("corrupt scan".into())),
        )
        .await;
    assert_eq!(stored(&w, &bad).await.status, JobStatus::Failed);
    assert!(is_retry(d), "{d:?}");
    let d = w
        .app
        .process(
            delivery(&message(&bad), 2),
            Fake::err(ImageError::InvalidImage("corrupt scan".into())),
        )
        .await;
    assert_eq!(d, Disposition::Consumed);
    assert!(w.mem.staging.keys().is_empty());
}

#[tokio::test]
async fn a_redelivery_after_a_crash_claims_again_and_finishes_once() {
    let w = world().await;
    let job = submit(&w).await;
    // The first delivery claimed the job and died before finishing it.
    w.mem.jobs.claim(&job.job_id, w.app.now()).await.unwrap();
    let d = w.app.process(delivery(&message(&job), 2), Fake::ok()).await;
    assert_eq!(d, Disposition::Consumed);
    let done = stored(&w, &job).await;
    assert_eq!((done.status, done.attempts), (JobStatus::Done, 2));
    assert_eq!(w.mem.usage_log.all().len(), 1);
}

#[tokio::test]
async fn a_concurrent_finish_is_not_recorded_twice() {
    let w = world().await;
    let job = submit(&w).await;
    w.app.process(delivery(&message(&job), 1), Fake::ok()).await;
    let done = stored(&w, &job).await;
    // A second copy, already past its claim when the first finished, tries to finish too.
    let mut late = done.clone();
    late.status = JobStatus::Processing;
    late.complete(done.result.clone().unwrap(), w.app.now());
    let usage = resizer_core::usage::UsageRecord::for_job(&late, 1, 1);
    let f = w.mem.jobs.finish(&late, &usage).await.unwrap();
    assert_eq!(f, resizer_app::ports::Finish::AlreadyFinished);
    assert_eq!(w.mem.usage_log.all().len(), 1);
    assert_eq!(stored(&w, &job).await, done);
}

#[tokio::test]
async fn a_bad_image_fails_the_job_for_good_and_is_billed_once() {
    let w = world().await;
    let job = submit(&w).await;
    let engine = Fake::err(ImageError::InvalidImage("corrupt scan".into()));
    let d = w.app.process(delivery(&message(&job), 1), engine).await;
    assert_eq!(
        d,
        Disposition::Consumed,
        "a permanent failure consumes the message"
    );
    let failed = stored(&w, &job).await;
    assert_eq!(failed.status, JobStatus::Failed);
    let e = failed.error.unwrap();
    assert_eq!(e.code, "invalid_image");
    assert!(e.message.contains("corrupt scan"));
    let usage = w.mem.usage_log.all();
    assert_eq!(usage.len(), 1);
    assert_eq!(
        (
            usage[0].outcome,
            usage[0].error_code.as_deref(),
            usage[0].cpu_ms
        ),
        (Outcome::Failed, Some("invalid_image"), 5)
    );
    assert!(w.mem.staging.keys().is_empty());
}

#[tokio::test]
async fn a_transient_failure_leaves_the_message_for_redelivery() {
    let w = world().await;
    let job = submit(&w).await;
    w.mem.faults.fail_next(
        "staging.get",
        StoreError::unavailable("s3:GetObject", "503 SlowDown"),
    );
    let engine = Fake::ok();
    let d = w
        .app
        .process(delivery(&message(&job), 1), engine.clone())
        .await;
    assert!(is_retry(d));
    assert_eq!(stored(&w, &job).await.status, JobStatus::Processing);
    assert!(w.mem.usage_log.all().is_empty());
    assert_eq!(engine.calls.load(Ordering::SeqCst), 0);
    // The redelivery succeeds.
    assert_eq!(
        w.app.process(delivery(&message(&job), 2), engine).await,
        Disposition::Consumed
    );
    assert_eq!(stored(&w, &job).await.status, JobStatus::Done);
    // So does a failure to record the outcome: nothing is half-written.
    let job = submit(&w).await;
    w.mem.faults.fail_next(
        "jobs.finish",
        StoreError::unavailable("dynamodb:TransactWriteItems", "throttled"),
    );
    assert!(is_retry(
        w.app.process(delivery(&message(&job), 1), Fake::ok()).await
    ));
    assert_eq!(stored(&w, &job).await.status, JobStatus::Processing);
    assert_eq!(
        w.mem.usage_log.all().len(),
        1,
        "only the first job's record"
    );
}

#[tokio::test]
async fn an_engine_fault_of_ours_is_retried_not_failed() {
    let w = world().await;
    let job = submit(&w).await;
    let d = w
        .app
        .process(
            delivery(&message(&job), 1),
            Fake::err(ImageError::Internal("encoder bug".into())),
        )
        .await;
    assert!(is_retry(d));
    assert_eq!(stored(&w, &job).await.status, JobStatus::Processing);
    assert!(w.mem.usage_log.all().is_empty());
}

#[tokio::test]
async fn a_message_of_another_customer_fails_the_job() {
    let w = world().await;
    let job = submit(&w).await;
    let mut msg = message(&job);
    msg.customer_id = "cus_someoneelse".into();
    assert_eq!(
        w.app.process(delivery(&msg, 1), Fake::ok()).await,
        Disposition::Consumed
    );
    let failed = stored(&w, &job).await;
    assert_eq!(failed.error.unwrap().code, "internal_error");
}

#[tokio::test]
async fn a_job_whose_upload_expired_fails_with_not_found() {
    // The customer let the upload expire before the job ran: the job's fault.
    let w = world().await;
    let up = w.app.create_upload(&w.principal, None).await.unwrap();
    let key = StagingKey::upload(&w.principal.customer_id, &up.upload_id).to_string();
    w.mem.staging.put(&key, png(), "image/png").await.unwrap();
    let sub = Submission::upload(spec(), up.upload_id.to_string());
    let job = w.app.submit(&w.principal, sub).await.unwrap().job;
    w.mem.staging.delete(&key).await.unwrap();
    assert_eq!(
        w.app.process(delivery(&message(&job), 1), Fake::ok()).await,
        Disposition::Consumed
    );
    assert_eq!(stored(&w, &job).await.error.unwrap().code, "not_found");
}

#[tokio::test]
async fn a_dead_letter_of_a_young_job_goes_back_to_the_jobs_queue() {
    // Dead-lettered because a dependency was down longer than the queue's receives last: nothing
    // is the job's fault, so it goes round again.
    let w = world().await;
    let job = submit(&w).await;
    let mut msg = message(&job);
    msg.redrives = 2;
    assert_eq!(
        w.app.finish_dead_letter(delivery(&msg, 1)).await,
        Disposition::Consumed
    );
    let again = stored(&w, &job).await;
    assert_eq!(again.status, JobStatus::Queued, "not failed");
    assert!(w.mem.usage_log.all().is_empty(), "nothing billed");
    let sent = w.mem.queue.sent();
    assert_eq!(sent.len(), 2, "the submit's message and the re-drive");
    assert_eq!((&sent[1].job_id, sent[1].redrives), (&job.job_id, 3));
    // It then finishes normally.
    assert_eq!(
        w.app.process(delivery(&sent[1], 1), Fake::ok()).await,
        Disposition::Consumed
    );
    assert_eq!(stored(&w, &job).await.status, JobStatus::Done);
    // A dead letter of a finished job changes nothing.
    let done = stored(&w, &job).await;
    assert_eq!(
        w.app.finish_dead_letter(delivery(&message(&job), 1)).await,
        Disposition::Consumed
    );
    assert_eq!(stored(&w, &job).await, done);
    assert_eq!(w.mem.usage_log.all().len(), 1);
    // A store outage while settling a dead letter: its redelivery is pushed back on the DLQ.
    let other = submit(&w).await;
    w.mem.faults.fail_next(
        "jobs.get",
        StoreError::unavailable("dynamodb:GetItem", "down"),
    );
    assert!(is_retry(
        w.app
            .finish_dead_letter(delivery(&message(&other), 1))
            .await
    ));
    assert_eq!(w.mem.dead_letters.deferred().len(), 1);
}

#[tokio::test]
async fn a_dead_letter_of_an_old_job_expires_it_once_without_blame() {
    let w = world().await;
    let job = submit(&w).await;
    w.app.clock.advance(time::Duration::seconds(
        w.app.settings.max_job_age.as_secs() as i64,
    ));
    assert_eq!(
        w.app.finish_dead_letter(delivery(&message(&job), 1)).await,
        Disposition::Consumed
    );
    let expired = stored(&w, &job).await;
    assert_eq!(expired.status, JobStatus::Failed);
    let e = expired.error.clone().unwrap();
    assert_eq!(e.code, "expired");
    assert!(resizer_app::SYSTEM_FAILURES.contains(&e.code.as_str()));
    assert!(e.message.contains("not billed"), "{}", e.message);
    assert_eq!(w.mem.usage_log.all().len(), 1, "one usage record, once");
    assert_eq!(w.mem.queue.sent().len(), 1, "not sent round again");
    assert!(
        w.mem.staging.keys().is_empty(),
        "its staged body is removed"
    );
}

#[tokio::test]
async fn transient_failures_back_off_and_release_the_job() {
    let w = world().await;
    let job = submit(&w).await;
    for receives in 1..=4 {
        w.mem.faults.fail_next(
            "staging.get",
            StoreError::unavailable("s3:GetObject", "503 SlowDown"),
        );
        let d = w
            .app
            .process(delivery(&message(&job), receives), Fake::ok())
            .await;
        let Disposition::Retry { after } = d else {
            panic!("{d:?}")
        };
        let base = 15.0 * f64::from(1u32 << (receives - 1));
        assert!(
            (base * 0.8..=base * 1.2).contains(&after.as_secs_f64()),
            "receive {receives}: {after:?}"
        );
    }
    let deferred = w.mem.queue.deferred();
    assert_eq!(deferred.len(), 4, "each redelivery pushed back");
    assert!(
        deferred.windows(2).all(|p| p[1].1 > p[0].1),
        "growing: {deferred:?}"
    );
    let held = stored(&w, &job).await;
    assert_eq!((held.attempts, held.crashes, held.released), (4, 0, true));
    assert_eq!(
        w.app.process(delivery(&message(&job), 5), Fake::ok()).await,
        Disposition::Consumed
    );
    let done = stored(&w, &job).await;
    assert_eq!((done.status, done.crashes), (JobStatus::Done, 0));
}

#[tokio::test]
async fn a_job_that_keeps_killing_the_function_fails_as_its_own_fault() {
    // Three deliveries whose function died mid-conversion (claimed, never finished or released):
    // the fourth claim sees three crashes and fails the job instead of trying again.
    let w = world().await;
    let job = submit(&w).await;
    for _ in 0..3 {
        w.mem.jobs.claim(&job.job_id, w.app.now()).await.unwrap();
    }
    let engine = Fake::ok();
    assert_eq!(
        w.app
            .process(delivery(&message(&job), 4), engine.clone())
            .await,
        Disposition::Consumed
    );
    let failed = stored(&w, &job).await;
    assert_eq!(failed.crashes, 3);
    let e = failed.error.unwrap();
    assert_eq!(e.code, "processing_failed");
    assert!(!resizer_app::SYSTEM_FAILURES.contains(&e.code.as_str()));
    assert_eq!(
        engine.calls.load(Ordering::SeqCst),
        0,
        "not tried a fourth time"
    );
    assert_eq!(w.mem.usage_log.all().len(), 1);
    // Two crashes are not enough.
    let job = submit(&w).await;
    for _ in 0..2 {
        w.mem.jobs.claim(&job.job_id, w.app.now()).await.unwrap();
    }
    w.app.process(delivery(&message(&job), 3), Fake::ok()).await;
    assert_eq!(stored(&w, &job).await.status, JobStatus::Done);
}

#[tokio::test]
async fn a_conversion_over_its_deadline_fails_the_job_with_its_own_code() {
    struct Slow;
    impl Converter for Slow {
        fn convert(&self, _: &[u8], _: &TransformSpec, _: &Limits) -> Conversion {
            std::thread::sleep(Duration::from_millis(2500));
            Conversion {
                result: Err(ImageError::Internal("too late".into())),
                cpu: Duration::from_millis(2500),
            }
        }
    }
    let w = world().await;
    let job = submit(&w).await;
    let msg = message(&job);
    let d = Delivery {
        deadline: Some(
            std::time::Instant::now() + resizer_app::FINISH_MARGIN + Duration::from_millis(1000),
        ),
        ..delivery(&msg, 1)
    };
    let started = std::time::Instant::now();
    assert_eq!(
        w.app.process(d, Arc::new(Slow)).await,
        Disposition::Consumed
    );
    assert!(
        started.elapsed() < Duration::from_millis(2000),
        "did not wait for the conversion"
    );
    let failed = stored(&w, &job).await;
    assert_eq!(failed.error.unwrap().code, "conversion_timeout");
    assert_eq!(w.mem.usage_log.all().len(), 1);
}

#[tokio::test]
async fn an_upload_feeds_a_job_and_stays_for_the_next() {
    let w = world().await;
    let up = w.app.create_upload(&w.principal, None).await.unwrap();
    let key = StagingKey::upload(&w.principal.customer_id, &up.upload_id).to_string();
    w.mem.staging.put(&key, png(), "image/png").await.unwrap();
    let sub = Submission::upload(spec(), up.upload_id.to_string());
    let job = w.app.submit(&w.principal, sub).await.unwrap().job;
    assert!(!job.staging_key.is_inline());
    w.app.process(delivery(&message(&job), 1), Fake::ok()).await;
    assert_eq!(stored(&w, &job).await.status, JobStatus::Done);
    assert_eq!(w.mem.staging.keys(), vec![key], "uploads are kept");

    // Another upload id, or none at all, names nothing.
    let missing = Submission::upload(spec(), UploadId::generate().to_string());
    assert!(matches!(
        w.app.submit(&w.principal, missing).await,
        Err(AppError::Invalid(m)) if m.contains("names no uploaded image")
    ));
    let garbage = Submission::upload(spec(), "../etc/passwd".into());
    assert!(matches!(
        w.app.submit(&w.principal, garbage).await,
        Err(AppError::Invalid(_))
    ));
}

#[tokio::test]
async fn inline_bodies_are_checked_before_anything_is_stored() {
    let w = world().await;
    let s = &w.app.settings;
    assert!(matches!(
        Submission::inline(spec(), Some("text/plain"), &png(), s),
        Err(AppError::UnsupportedMediaType(_))
    ));
    assert!(matches!(
        Submission::inline(spec(), Some("image/png"), &[], s),
        Err(AppError::Invalid(_))
    ));
    let big = vec![0; s.max_inline_bytes as usize + 1];
    assert!(matches!(
        Submission::inline(spec(), Some("image/png"), &big, s),
        Err(AppError::PayloadTooLarge(_))
    ));
    let mut cut = png();
    cut.truncate(cut.len() - 12);
    let sub = Submission::inline(spec(), Some("image/png"), &cut, s).unwrap();
    assert!(matches!(
        w.app.submit(&w.principal, sub).await,
        Err(AppError::Truncated(m)) if m == "the png image is truncated: no IEND chunk"
    ));
    assert!(w.mem.jobs.all().is_empty() && w.mem.staging.keys().is_empty());
}

#[tokio::test]
async fn a_customer_over_quota_cannot_submit_or_upload() {
    let w = world().await;
    let p = Principal {
        monthly_job_quota: Some(10),
        month_jobs: 10,
        ..w.principal.clone()
    };
    let sub = inline_png(&w);
    let a = w.app.submit(&p, sub).await.unwrap_err();
    let b = w.app.create_upload(&p, None).await.unwrap_err();
    assert_eq!(a, b, "one answer for both");
    assert!(
        matches!(a, AppError::QuotaExceeded(m) if m.contains("quota of 10 is used up (10 jobs"))
    );
}

#[tokio::test]
async fn another_customers_job_is_not_found() {
    let w = world().await;
    let job = submit(&w).await;
    let stranger = Principal {
        customer_id: "cus_stranger".into(),
        ..w.principal.clone()
    };
    assert_eq!(
        w.app.job(&stranger, job.job_id.as_str()).await.unwrap_err(),
        AppError::NotFound
    );
    assert_eq!(
        w.app.job(&w.principal, "nope").await.unwrap_err(),
        AppError::NotFound
    );
    assert_eq!(
        w.app.job(&w.principal, job.job_id.as_str()).await.unwrap(),
        job
    );
}

#[tokio::test]
async fn aggregation_sums_what_the_jobs_recorded_and_archives_closed_hours_once() {
    let w = world().await;
    let clock = w.app.clock.clone();
    let mut jobs = Vec::new();
    for _ in 0..3 {
        let job = submit(&w).await;
        w.app.process(delivery(&message(&job), 1), Fake::ok()).await;
        jobs.push(job);
    }
    let hour = resizer_core::usage::HourKey::of(clock.now());
    // While the hour is open, nothing of it is rolled up.
    let report = w.app.aggregate().await.unwrap();
    assert!(
        !report.hours_closed.contains(&hour.to_string()),
        "{report:?}"
    );
    assert!(w.mem.archive.keys().is_empty());
    // Once it has ended and its grace period passed, it is closed: rolled up and archived, once.
    clock.set(hour.end() + time::Duration::minutes(6));
    let r = w.app.aggregate().await.unwrap();
    assert!(r.hours_closed.contains(&hour.to_string()), "{r:?}");
    assert_eq!((r.items_read, r.archive_objects), (3, 1), "{r:?}");
    let t = w
        .mem
        .rollups_get(&w.principal.customer_id, hour)
        .await
        .expect("hour rollup");
    assert_eq!((t.jobs, t.done, t.pixels_out, t.cpu_ms), (3, 3, 36, 15));
    assert_eq!(
        w.mem.archive.keys(),
        vec![hour.archive_key(&w.principal.customer_id, 0)]
    );
    let again = w.app.aggregate().await.unwrap();
    assert!(again.hours_closed.is_empty(), "{again:?}");
}

#[tokio::test]
async fn keys_revoked_customers_disabled_and_garbage_are_refused() {
    let w = world().await;
    assert_eq!(
        w.app.authenticate(None).await.unwrap_err(),
        AppError::Unauthorized("no key")
    );
    assert_eq!(
        w.app.authenticate(Some("rsz_nope")).await.unwrap_err(),
        AppError::Unauthorized("malformed key")
    );
    let unknown = ApiKey::generate().expose();
    assert_eq!(
        w.app.authenticate(Some(&unknown)).await.unwrap_err(),
        AppError::Unauthorized("unknown key")
    );
    // The cache: a fresh app (nothing cached) sees a disabled customer at once.
    let c = Customer::new("off", w.app.now());
    w.mem.accounts.put_new_customer(&c).await.unwrap();
    let key = ApiKey::generate();
    w.mem
        .accounts
        .put_new_key(&KeyRecord::new(&key, &c.customer_id, w.app.now()))
        .await
        .unwrap();
    w.mem
        .accounts
        .set_customer_status(&c.customer_id, resizer_core::key::CustomerStatus::Disabled)
        .await
        .unwrap();
    assert_eq!(
        w.app.authenticate(Some(&key.expose())).await.unwrap_err(),
        AppError::CustomerDisabled
    );
}

#[tokio::test]
async fn a_job_that_cannot_be_read_fails_instead_of_being_retried_forever() {
    let w = world().await;
    let job = submit(&w).await;
    w.mem.faults.fail_next(
        "jobs.claim",
        StoreError::rejected("deserialise item", "missing field `params`"),
    );
    assert_eq!(
        w.app.process(delivery(&message(&job), 1), Fake::ok()).await,
        Disposition::Consumed
    );
    let failed = stored(&w, &job).await;
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.error.unwrap().code, "internal_error");
    assert!(w.mem.queue.deferred().is_empty(), "not retried");
}

#[tokio::test]
async fn a_refusal_a_deploy_may_fix_waits_the_longest_backoff_at_once() {
    let w = world().await;
    let job = submit(&w).await;
    w.mem.faults.fail_next(
        "staging.get",
        StoreError::other("s3:GetObject", "403 AccessDenied: Access Denied"),
    );
    let d = w.app.process(delivery(&message(&job), 1), Fake::ok()).await;
    assert_eq!(
        d,
        Disposition::Retry {
            after: w.app.settings.retry_backoff_max
        }
    );
    assert_eq!(stored(&w, &job).await.status, JobStatus::Processing);
}

// ---- the sweeper ---------------------------------------------------------------------------------

/// A world (at 2026-11-30 10:00 UTC) and its clock, for the tests that move it.
async fn world_with_clock() -> (World, Clock) {
    // Every inline image staged: the S3 path (the message path has its own tests, at the end).
    world_with(Settings {
        message_image_max_bytes: 0,
        ..Settings::default()
    })
    .await
}

async fn world_with(settings: Settings) -> (World, Clock) {
    let clock = Clock::fixed(datetime!(2026-11-30 10:00 UTC));
    let mem = Memory::new();
    let app = mem.app(settings).with_clock(clock.clone());
    let (_, key) = mem.customer(&app, None).await;
    let principal = app.authenticate(Some(&key.expose())).await.unwrap();
    (
        World {
            mem,
            app,
            principal,
        },
        clock,
    )
}

#[tokio::test]
async fn a_job_whose_message_was_never_sent_is_swept_onto_the_queue_and_done() {
    // The api wrote the job and could neither send its message nor remove it (or died between
    // the two): nothing would ever process it.
    let (w, clock) = world_with_clock().await;
    w.mem.faults.fail_next(
        "queue.send",
        StoreError::unavailable("sqs:SendMessage", "throttled"),
    );
    w.mem.faults.fail_next(
        "jobs.delete_queued",
        StoreError::unavailable("dynamodb:DeleteItem", "throttled"),
    );
    let sub = inline_png(&w);
    let job = w.app.submit(&w.principal, sub).await.unwrap().job;
    assert!(w.mem.queue.sent().is_empty());

    // Not before the stale bound: a job may be waiting out its backoff.
    clock.advance(time::Duration::minutes(5));
    let early = w.app.sweep().await;
    assert_eq!((early.candidates, early.requeued), (0, 0), "{early:?}");

    clock.advance(time::Duration::seconds(
        w.app.sweep_stale_after().as_secs() as i64
    ));
    let report = w.app.sweep().await;
    assert_eq!(
        (report.requeued, report.expired, report.errors),
        (1, 0, 0),
        "{report:?}"
    );
    let sent = w.mem.queue.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].job_id, job.job_id);

    // A second run right after acts on nothing: the job was marked swept.
    let again = w.app.sweep().await;
    assert_eq!(again.requeued, 0, "{again:?}");
    assert_eq!(w.mem.queue.sent().len(), 1);

    let d = w.app.process(delivery(&sent[0], 1), Fake::ok()).await;
    assert_eq!(d, Disposition::Consumed);
    assert_eq!(stored(&w, &job).await.status, JobStatus::Done);
    assert_eq!(w.mem.usage_log.all().len(), 1);
}

#[tokio::test]
async fn a_stale_job_older_than_the_maximum_age_expires_unbilled_and_its_body_goes() {
    let (w, clock) = world_with_clock().await;
    let job = submit(&w).await;
    let processing = {
        // Claimed by a worker that died, its message lost.
        let msg = message(&job);
        w.mem.faults.fail_next(
            "results.put",
            StoreError::unavailable("s3:PutObject", "down"),
        );
        let d = w.app.process(delivery(&msg, 1), Fake::ok()).await;
        assert!(is_retry(d));
        stored(&w, &job).await
    };
    assert!(!processing.status.is_terminal());
    clock.advance(time::Duration::seconds(
        w.app.settings.max_job_age.as_secs() as i64 + 60,
    ));
    let report = w.app.sweep().await;
    assert_eq!((report.expired, report.requeued), (1, 0), "{report:?}");
    let done = stored(&w, &job).await;
    assert_eq!(done.status, JobStatus::Failed);
    assert_eq!(done.error.as_ref().unwrap().code, "expired");
    let usage = w.mem.usage_log.all();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0].outcome, Outcome::Failed);
    assert!(
        w.mem.staging.keys().is_empty(),
        "the inline body is removed"
    );
    // Nothing left to sweep.
    let again = w.app.sweep().await;
    assert_eq!(again.candidates, 0, "{again:?}");
}

#[tokio::test]
async fn a_swept_job_that_expires_and_keeps_its_body_sends_a_message_that_removes_it() {
    let (w, clock) = world_with_clock().await;
    let job = submit(&w).await;
    let submitted = w.mem.queue.sent().len();
    clock.advance(time::Duration::seconds(
        w.app.settings.max_job_age.as_secs() as i64 + 60,
    ));
    w.mem.faults.fail_next(
        "staging.delete",
        StoreError::unavailable("s3:DeleteObject", "503 SlowDown"),
    );
    let report = w.app.sweep().await;
    assert_eq!((report.expired, report.errors), (1, 0), "{report:?}");
    assert_eq!(stored(&w, &job).await.status, JobStatus::Failed);
    assert_eq!(w.mem.staging.keys().len(), 1, "the delete failed");
    // The finished job's message brings a worker back to remove the body, and only that.
    let sent = w.mem.queue.sent()[submitted..].to_vec();
    assert_eq!(sent.len(), 1, "a message to clean up");
    assert_eq!(sent[0].job_id, job.job_id);
    let d = w.app.process(delivery(&sent[0], 1), Fake::ok()).await;
    assert_eq!(d, Disposition::Consumed);
    assert!(
        w.mem.staging.keys().is_empty(),
        "the inline body is removed"
    );
    assert_eq!(stored(&w, &job).await.status, JobStatus::Failed);
    assert_eq!(w.mem.usage_log.all().len(), 1, "recorded once");
}

#[tokio::test]
async fn a_sweep_leaves_jobs_a_worker_touched_and_survives_a_failing_partition() {
    let (w, clock) = world_with_clock().await;
    let job = submit(&w).await;
    clock.advance(time::Duration::hours(2));
    // A worker claims it just before the sweep reads it: recent, left alone.
    let _ = w.mem.jobs.claim(&job.job_id, w.app.now()).await.unwrap();
    w.mem.faults.fail_next(
        "jobs.open_before",
        StoreError::unavailable("dynamodb:Query", "throttled"),
    );
    let report = w.app.sweep().await;
    assert_eq!(report.errors, 1, "{report:?}");
    assert_eq!(report.requeued, 0, "{report:?}");
    assert!(w.mem.queue.sent().len() == 1, "only the submit's message");
}

#[tokio::test]
async fn an_inline_body_lost_before_its_job_ran_expires_the_job_not_blames_it() {
    let w = world().await;
    let job = submit(&w).await;
    w.mem
        .staging
        .delete(&job.staging_key.to_string())
        .await
        .unwrap();
    let d = w.app.process(delivery(&message(&job), 1), Fake::ok()).await;
    assert_eq!(d, Disposition::Consumed);
    let done = stored(&w, &job).await;
    assert_eq!(done.status, JobStatus::Failed);
    assert_eq!(
        done.error.unwrap().code,
        "expired",
        "ours, not the customer's"
    );
}

// ---- the per-customer rate limit -----------------------------------------------------------------

#[tokio::test]
async fn a_customer_over_its_rate_is_refused_until_its_window_ends_and_others_are_not() {
    let clock = Clock::fixed(datetime!(2026-11-30 10:00:03 UTC));
    let mem = Memory::new();
    let settings = Settings {
        customer_jobs_per_second: 1,
        message_image_max_bytes: 0,
        ..Settings::default()
    };
    let app = mem.app(settings).with_clock(clock.clone());
    let principal = |key: ApiKey| {
        let app = app.clone();
        async move { app.authenticate(Some(&key.expose())).await.unwrap() }
    };
    let flooder = principal(mem.customer(&app, None).await.1).await;
    let other = principal(mem.customer(&app, None).await.1).await;
    let sub = || Submission::inline(spec(), Some("image/png"), &png(), &app.settings).unwrap();

    // 1 job/s over a 10 s window: 10 admitted, the 11th refused until the window ends (10:00:10).
    for _ in 0..10 {
        app.submit(&flooder, sub()).await.unwrap();
    }
    let refused = app.submit(&flooder, sub()).await.unwrap_err();
    assert!(
        matches!(
            refused,
            AppError::RateLimited {
                retry_after_s: 7,
                ..
            }
        ),
        "{refused:?}"
    );
    // Refused again without another counter write (this container remembers).
    let writes = mem.faults.calls("rate_counters.admit");
    assert!(app.submit(&flooder, sub()).await.is_err());
    assert_eq!(mem.faults.calls("rate_counters.admit"), writes);
    assert_eq!(
        mem.jobs.all().len(),
        10,
        "nothing staged or written for a refusal"
    );
    assert_eq!(mem.staging.keys().len(), 10);

    // Another customer is not affected.
    app.submit(&other, sub()).await.unwrap();

    // A retry of a created job is answered, not refused.
    let keyed = || sub().with_idempotency_key(Some(IdempotencyKey::parse("k").unwrap()));
    assert!(
        app.submit(&flooder, keyed()).await.is_err(),
        "a new job: refused"
    );
    clock.advance(time::Duration::seconds(7));
    let created = app.submit(&flooder, keyed()).await.unwrap();
    for _ in 0..20 {
        let _ = app.submit(&flooder, sub()).await;
    }
    let replay = app.submit(&flooder, keyed()).await.unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.job.job_id, created.job.job_id);
}

#[tokio::test]
async fn the_rate_limit_admits_when_its_counters_cannot_be_reached() {
    let w = world().await;
    w.mem.faults.fail_next(
        "rate_counters.admit",
        StoreError::unavailable("dynamodb:UpdateItem", "down"),
    );
    submit(&w).await;
    assert_eq!(w.mem.jobs.all().len(), 1);
}

// ---- the per-customer limit of open jobs ---------------------------------------------------------

#[tokio::test]
async fn a_customer_with_its_limit_of_open_jobs_is_refused_until_one_finishes_and_others_are_not() {
    let mem = Memory::new();
    let settings = Settings {
        customer_max_open_jobs: 3,
        message_image_max_bytes: 0,
        ..Settings::default()
    };
    let app = mem.app(settings);
    let principal = |key: ApiKey| {
        let app = app.clone();
        async move { app.authenticate(Some(&key.expose())).await.unwrap() }
    };
    let flooder = principal(mem.customer(&app, None).await.1).await;
    let other = principal(mem.customer(&app, None).await.1).await;
    let sub = || Submission::inline(spec(), Some("image/png"), &png(), &app.settings).unwrap();

    let keyed = || sub().with_idempotency_key(Some(IdempotencyKey::parse("k").unwrap()));
    let first = app.submit(&flooder, keyed()).await.unwrap().job;
    for _ in 0..2 {
        app.submit(&flooder, sub()).await.unwrap();
    }
    let refused = app.submit(&flooder, sub()).await.unwrap_err();
    assert!(
        matches!(
            refused,
            AppError::TooManyOpenJobs {
                retry_after_s: resizer_app::OPEN_JOBS_RETRY_AFTER_SECONDS,
                ..
            }
        ),
        "{refused:?}"
    );
    assert_eq!(mem.jobs.all().len(), 3, "nothing written for a refusal");
    assert_eq!(mem.staging.keys().len(), 3, "nothing staged for a refusal");

    // A retry of a created job is answered, not refused.
    let replay = app.submit(&flooder, keyed()).await.unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.job.job_id, first.job_id);

    // Another customer is not affected.
    app.submit(&other, sub()).await.unwrap();

    // Processing (claimed, not finished) still counts; finished frees a place.
    mem.jobs.claim(&first.job_id, app.now()).await.unwrap();
    assert!(matches!(
        app.submit(&flooder, sub()).await.unwrap_err(),
        AppError::TooManyOpenJobs { .. }
    ));
    let d = app.process(delivery(&message(&first), 1), Fake::ok()).await;
    assert_eq!(d, Disposition::Consumed);
    assert_eq!(
        mem.jobs.get(&first.job_id).await.unwrap().unwrap().status,
        JobStatus::Done
    );
    app.submit(&flooder, sub()).await.unwrap();
    assert!(matches!(
        app.submit(&flooder, sub()).await.unwrap_err(),
        AppError::TooManyOpenJobs { .. }
    ));
}

#[tokio::test]
async fn a_customer_s_own_limit_of_open_jobs_overrides_the_stack_s() {
    let mem = Memory::new();
    let settings = Settings {
        customer_max_open_jobs: 1,
        auth_cache_ttl: Duration::ZERO,
        ..Settings::default()
    };
    let app = mem.app(settings);
    let (c, key) = mem.customer(&app, None).await;
    mem.accounts
        .set_customer_max_open_jobs(&c.customer_id, Some(2))
        .await
        .unwrap();
    let p = app.authenticate(Some(&key.expose())).await.unwrap();
    assert_eq!(p.max_open_jobs, Some(2));
    let sub = || Submission::inline(spec(), Some("image/png"), &png(), &app.settings).unwrap();
    app.submit(&p, sub()).await.unwrap();
    app.submit(&p, sub()).await.unwrap();
    assert!(matches!(
        app.submit(&p, sub()).await.unwrap_err(),
        AppError::TooManyOpenJobs { .. }
    ));
    // Back to the stack's limit (1): still refused, with two open.
    mem.accounts
        .set_customer_max_open_jobs(&c.customer_id, None)
        .await
        .unwrap();
    let p = app.authenticate(Some(&key.expose())).await.unwrap();
    assert_eq!(p.max_open_jobs, None);
    assert!(matches!(
        app.submit(&p, sub()).await.unwrap_err(),
        AppError::TooManyOpenJobs { .. }
    ));
}

#[tokio::test]
async fn the_open_jobs_limit_admits_when_the_index_cannot_be_read() {
    let w = world().await;
    w.mem.faults.fail_next(
        "jobs.open_count",
        StoreError::unavailable("dynamodb:Query", "down"),
    );
    submit(&w).await;
    assert_eq!(w.mem.jobs.all().len(), 1);
}

#[tokio::test]
async fn an_upload_whose_header_lies_beyond_the_first_probe_is_accepted() {
    // A JPEG whose frame header follows 320 KiB of APP1 (XMP) segments.
    let mut jpeg = vec![0xff, 0xd8];
    for _ in 0..5 {
        jpeg.extend_from_slice(&[0xff, 0xe1, 0xff, 0xff]);
        jpeg.extend(std::iter::repeat_n(b' ', 0xffff - 2));
    }
    // SOF0: 8-bit, 6 high, 8 wide, 3 components.
    jpeg.extend_from_slice(&[
        0xff, 0xc0, 0x00, 0x11, 0x08, 0x00, 0x06, 0x00, 0x08, 0x03, 0x01, 0x22, 0x00, 0x02, 0x11,
        0x01, 0x03, 0x11, 0x01,
    ]);
    jpeg.extend_from_slice(&[0xff, 0xd9]);
    assert!(jpeg.len() > 256 * 1024);
    let w = world().await;
    let up = w.app.create_upload(&w.principal, None).await.unwrap();
    let key = StagingKey::upload(&w.principal.customer_id, &up.upload_id).to_string();
    w.mem.staging.put(&key, jpeg, "image/jpeg").await.unwrap();
    let sub = Submission::upload(spec(), up.upload_id.to_string());
    let job = w.app.submit(&w.principal, sub).await.unwrap().job;
    assert_eq!((job.input.width, job.input.height), (8, 6));
}

// ---- a small inline image travels in its job's message ----------------------------------------------

/// A world whose small inline images travel in their messages (the default settings).
async fn carried_world() -> (World, Clock) {
    world_with(Settings::default()).await
}

/// The usage record without what differs between two runs of one job (ids, times).
fn usage_shape(w: &World) -> Vec<(Outcome, u64, u64, u64, u64, u64)> {
    w.mem
        .usage_log
        .all()
        .into_iter()
        .map(|u| {
            (
                u.outcome,
                u.bytes_in,
                u.bytes_out,
                u.pixels_in,
                u.pixels_out,
                u.cpu_ms,
            )
        })
        .collect()
}

#[tokio::test]
async fn a_small_inline_image_travels_in_its_message_and_ends_as_a_staged_one_does() {
    let (carried, _) = carried_world().await;
    let staged = world().await;
    let mut results = Vec::new();
    for w in [&carried, &staged] {
        let job = submit(w).await;
        let msg = w.mem.queue.sent().pop().unwrap();
        let d = w.app.process(delivery(&msg, 1), Fake::ok()).await;
        assert_eq!(d, Disposition::Consumed);
        let done = stored(w, &job).await;
        assert_eq!(done.status, JobStatus::Done);
        let r = done.result.unwrap();
        results.push((
            (r.format, r.width, r.height, r.bytes),
            done.input,
            usage_shape(w),
        ));
    }
    assert_eq!(results[0], results[1], "the same result and the same usage");

    // The carried job touched no staging at all; its message held the image.
    let msg = carried.mem.queue.sent().pop().unwrap();
    assert_eq!(msg.image, Some(png()));
    assert!(msg.request_hash.is_some());
    assert!(carried.mem.jobs.all()[0].carried);
    for op in [
        "staging.put",
        "staging.head",
        "staging.get",
        "staging.delete",
    ] {
        assert_eq!(carried.mem.faults.calls(op), 0, "{op}");
    }
    assert_eq!(staged.mem.faults.calls("staging.put"), 1);
    assert_eq!(staged.mem.queue.sent()[0].image, None);

    // A redelivery of the finished job's message is consumed without work.
    let d = carried.app.process(delivery(&msg, 2), Fake::ok()).await;
    assert_eq!(d, Disposition::Consumed);
    assert_eq!(carried.mem.usage_log.all().len(), 1, "recorded once");
}

#[tokio::test]
async fn an_image_over_the_message_limit_is_staged() {
    let (w, _) = world_with(Settings {
        message_image_max_bytes: png().len() as u64 - 1,
        ..Settings::default()
    })
    .await;
    let job = submit(&w).await;
    assert!(!job.carried);
    assert_eq!(w.mem.queue.sent()[0].image, None);
    assert_eq!(
        w.mem.staging.object(&job.staging_key.to_string()),
        Some(png())
    );
}

#[tokio::test]
async fn a_carried_job_is_written_after_its_message_and_a_message_without_a_job_waits_then_goes() {
    let (w, clock) = carried_world().await;
    // The job's write fails after its message was sent: the caller gets an error, and no job.
    w.mem.faults.fail_next(
        "jobs.put_new",
        StoreError::unavailable("dynamodb:PutItem", "throttled"),
    );
    submit_fails_retryably(&w).await;
    assert!(w.mem.jobs.all().is_empty());
    assert!(w.mem.staging.keys().is_empty());
    let orphan = w.mem.queue.sent().pop().unwrap();

    // Its message may be delivered before the job is written: it comes back a little later...
    let fake = Fake::ok();
    let d = w.app.process(delivery(&orphan, 1), fake.clone()).await;
    assert!(is_retry(d), "{d:?}");
    // ... and once the api cannot be writing it any more, it is dropped.
    clock.advance(time::Duration::seconds(
        resizer_app::ORPHAN_GRACE.as_secs() as i64 + 1,
    ));
    let d = w.app.process(delivery(&orphan, 5), fake.clone()).await;
    assert_eq!(d, Disposition::Consumed);
    assert_eq!(fake.calls.load(Ordering::SeqCst), 0);
    assert!(w.mem.usage_log.all().is_empty(), "nothing billed");
}

#[tokio::test]
async fn a_message_that_arrives_before_its_job_is_written_processes_it_on_its_return() {
    let (w, clock) = carried_world().await;
    let job = submit(&w).await;
    let msg = w.mem.queue.sent().pop().unwrap();
    // Delivered before the write (a store without the job yet): it comes back shortly.
    let early = Memory::new().app(Settings::default()).with_clock(clock);
    assert_eq!(
        early.process(delivery(&msg, 1), Fake::ok()).await,
        Disposition::Retry {
            after: Duration::from_secs(5)
        }
    );
    // On its return the job is there.
    let d = w.app.process(delivery(&msg, 2), Fake::ok()).await;
    assert_eq!(d, Disposition::Consumed);
    assert_eq!(stored(&w, &job).await.status, JobStatus::Done);
}

#[tokio::test]
async fn a_failed_send_of_a_carried_job_writes_nothing() {
    let (w, _) = carried_world().await;
    w.mem.faults.fail_next(
        "queue.send",
        StoreError::unavailable("sqs:SendMessage", "throttled"),
    );
    submit_fails_retryably(&w).await;
    assert!(w.mem.jobs.all().is_empty(), "no job without its message");
    assert_eq!(w.mem.faults.calls("jobs.put_new"), 0);
    assert_eq!(w.mem.faults.calls("jobs.delete_queued"), 0);
    assert_eq!(w.mem.faults.calls("staging.put"), 0);
}

#[tokio::test]
async fn a_message_without_the_image_leaves_a_carried_job_to_its_own_message() {
    let (w, _) = carried_world().await;
    let job = submit(&w).await;
    let own = w.mem.queue.sent().pop().unwrap();
    // A sweep's message carries no image: the job is given back unharmed, not failed.
    let fake = Fake::ok();
    let d = w
        .app
        .process(delivery(&message(&job), 1), fake.clone())
        .await;
    assert_eq!(d, Disposition::Consumed);
    assert_eq!(fake.calls.load(Ordering::SeqCst), 0);
    let after = stored(&w, &job).await;
    assert!(!after.status.is_terminal(), "{:?}", after.status);
    assert_eq!(
        w.mem.faults.calls("staging.head"),
        0,
        "nothing looked for in S3"
    );
    // Its own message then does the work, and no crash is counted.
    let d = w.app.process(delivery(&own, 1), fake.clone()).await;
    assert_eq!(d, Disposition::Consumed);
    let done = stored(&w, &job).await;
    assert_eq!(done.status, JobStatus::Done);
    assert_eq!(done.crashes, 0);
    assert_eq!(w.mem.usage_log.all().len(), 1);
}

#[tokio::test]
async fn a_message_with_another_request_s_image_does_not_process_the_job() {
    // Two requests with one idempotency key and two images each send their message before one of
    // them writes the job: only the writer's message may process it.
    let (w, _) = carried_world().await;
    let job = w
        .app
        .submit(&w.principal, keyed(&png(), 4, "k"))
        .await
        .unwrap()
        .job;
    let own = w.mem.queue.sent().pop().unwrap();
    let loser = JobMessage {
        image: Some(other_body_of()),
        request_hash: Some(keyed(&other_body_of(), 4, "k").request_hash()),
        ..own.clone()
    };
    let fake = Fake::ok();
    assert_eq!(
        w.app.process(delivery(&loser, 1), fake.clone()).await,
        Disposition::Consumed
    );
    assert_eq!(fake.calls.load(Ordering::SeqCst), 0, "not converted");
    assert!(!stored(&w, &job).await.status.is_terminal());
    assert_eq!(
        w.app.process(delivery(&own, 1), fake.clone()).await,
        Disposition::Consumed
    );
    assert_eq!(stored(&w, &job).await.status, JobStatus::Done);
}

/// Another valid image than [`png`].
fn other_body_of() -> Vec<u8> {
    let mut b = png();
    b[20] = 9;
    b
}

#[tokio::test]
async fn a_dead_lettered_carried_job_goes_back_with_its_image() {
    let (w, _) = carried_world().await;
    let job = submit(&w).await;
    let msg = w.mem.queue.sent().pop().unwrap();
    assert_eq!(
        w.app.finish_dead_letter(delivery(&msg, 1)).await,
        Disposition::Consumed
    );
    let again = w.mem.queue.sent().pop().unwrap();
    assert_eq!(again.redrives, 1);
    assert_eq!(again.image, Some(png()));
    assert_eq!(again.request_hash, msg.request_hash);
    let d = w.app.process(delivery(&again, 1), Fake::ok()).await;
    assert_eq!(d, Disposition::Consumed);
    assert_eq!(stored(&w, &job).await.status, JobStatus::Done);
}
