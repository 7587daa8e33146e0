//! The adapters' error handling and paging, with the SDK's own mock interceptor
//! (`aws-smithy-mocks`): no wrapper traits, no network.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::transact_write_items::{
    TransactWriteItemsError, TransactWriteItemsOutput,
};
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::error::{
    ConditionalCheckFailedException, ProvisionedThroughputExceededException,
    TransactionCanceledException,
};
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason};
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::types::error::NoSuchKey;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_types::error::ErrorMetadata;
use resizer_app::ports::{Claim, Finish, JobStore, ObjectStore, UsageLog};
use resizer_aws::StoreError;
use resizer_aws::dynamo::{JobsTable, UsageTable};
use resizer_aws::s3::S3Bucket;
use resizer_core::job::{InputMeta, Job, JobStatus, Source};
use resizer_core::transform::{Format, TransformSpec};
use resizer_core::usage::{HourKey, Outcome, UsageRecord};
use time::macros::datetime;

/// Error metadata as the SDK's deserialisers set it from a real response.
fn meta(code: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).build()
}

/// The jobs table (with the usage table of its finish transaction) on a mocked client.
fn jobs(client: aws_sdk_dynamodb::Client) -> JobsTable {
    let usage = UsageTable::new(client.clone(), "usage", 16);
    JobsTable::new(client, "jobs", usage)
}

fn job(status: JobStatus) -> Job {
    let mut j = Job::new(
        "cus_test".into(),
        TransformSpec::with_width(100).unwrap(),
        InputMeta {
            format: Format::Jpeg,
            width: 400,
            height: 300,
            bytes: 1234,
        },
        Source::Inline,
        datetime!(2026-11-25 10:00 UTC),
    );
    j.status = status;
    j
}

fn item(j: &Job) -> HashMap<String, AttributeValue> {
    serde_dynamo::to_item(j).unwrap()
}

fn usage(j: &Job) -> UsageRecord {
    UsageRecord {
        customer_id: j.customer_id.clone(),
        job_id: j.job_id.clone(),
        outcome: Outcome::Done,
        error_code: None,
        bytes_in: 1,
        bytes_out: 1,
        pixels_in: 1,
        pixels_out: 1,
        cpu_ms: 1,
        wall_ms: 1,
        format_in: None,
        format_out: None,
        job_created_at: j.created_at,
        recorded_at: j.created_at,
    }
}

#[tokio::test]
async fn s3_missing_objects_are_not_found_and_5xx_is_retryable() {
    let missing = mock!(aws_sdk_s3::Client::get_object).then_error(|| {
        GetObjectError::NoSuchKey(NoSuchKey::builder().meta(meta("NoSuchKey")).build())
    });
    let s3 = S3Bucket::new(mock_client!(aws_sdk_s3, [&missing]), "b");
    let err = s3.get("k", 10).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(!err.is_retryable());

    let down = mock!(aws_sdk_s3::Client::get_object)
        .sequence()
        .http_status(503, None)
        .repeatedly()
        .build();
    let s3 = S3Bucket::new(mock_client!(aws_sdk_s3, [&down]), "b");
    let err = s3.get("k", 10).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(matches!(err, StoreError::Unavailable { .. }));
}

#[tokio::test]
async fn dynamodb_throttling_is_retryable() {
    let throttled = mock!(aws_sdk_dynamodb::Client::get_item)
        .sequence()
        .error(|| {
            aws_sdk_dynamodb::operation::get_item::GetItemError::ProvisionedThroughputExceededException(
                ProvisionedThroughputExceededException::builder()
                    .message("slow down")
                    .meta(meta("ProvisionedThroughputExceededException"))
                    .build(),
            )
        })
        .repeatedly()
        .build();
    let t = jobs(mock_client!(aws_sdk_dynamodb, [&throttled]));
    let err = t.get(&job(JobStatus::Queued).job_id).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
}

/// SQS says "slow down" with its own codes (`RequestThrottled`, and `KmsThrottled` for an
/// encrypted queue), which the list of throttling codes must know: otherwise the api's enqueue
/// answers 500 `internal_error` instead of 503, and the resize function treats a throttled
/// `ChangeMessageVisibility` or re-drive as a permanent refusal. (Found by the chaos suite's fault
/// proxy, which answers SQS throttling the way SQS does.)
#[tokio::test]
async fn sqs_throttling_is_retryable() {
    use aws_sdk_sqs::operation::send_message::SendMessageError;
    use aws_sdk_sqs::types::error::{KmsThrottled, RequestThrottled};
    use resizer_app::ports::JobQueue;
    use resizer_aws::sqs::SqsQueue;
    use resizer_core::job::{JobId, JobMessage};

    let message = JobMessage {
        job_id: JobId::generate(),
        customer_id: "cus_test".into(),
        redrives: 0,
        image: None,
        request_hash: None,
        enqueued_at_ms: 0,
    };
    let throttled = mock!(aws_sdk_sqs::Client::send_message)
        .sequence()
        .error(|| {
            SendMessageError::RequestThrottled(
                RequestThrottled::builder()
                    .message("Rate exceeded")
                    .meta(meta("RequestThrottled"))
                    .build(),
            )
        })
        .repeatedly()
        .build();
    let q = SqsQueue::new(mock_client!(aws_sdk_sqs, [&throttled]), "q");
    let err = q.send(&message).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Unavailable { .. }) && err.is_retryable(),
        "{err:?}"
    );

    let kms = mock!(aws_sdk_sqs::Client::send_message)
        .sequence()
        .error(|| {
            SendMessageError::KmsThrottled(
                KmsThrottled::builder()
                    .message("KMS rate exceeded")
                    .meta(meta("KmsThrottled"))
                    .build(),
            )
        })
        .repeatedly()
        .build();
    let q = SqsQueue::new(mock_client!(aws_sdk_sqs, [&kms]), "q");
    let err = q.send(&message).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Unavailable { .. }) && err.is_retryable(),
        "{err:?}"
    );
}

#[tokio::test]
async fn claiming_a_finished_job_reports_it_finished() {
    let done = job(JobStatus::Done);
    let refused = mock!(aws_sdk_dynamodb::Client::update_item).then_error(|| {
        UpdateItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder()
                .meta(meta("ConditionalCheckFailedException"))
                .build(),
        )
    });
    let d = done.clone();
    let read = mock!(aws_sdk_dynamodb::Client::get_item)
        .then_output(move || GetItemOutput::builder().set_item(Some(item(&d))).build());
    let t = jobs(mock_client!(
        aws_sdk_dynamodb,
        RuleMode::Sequential,
        [&refused, &read]
    ));
    let claim = t.claim(&done.job_id, done.created_at).await.unwrap();
    assert_eq!(claim, Claim::Finished(done));
}

#[tokio::test]
async fn claiming_a_job_that_does_not_exist_reports_it_missing() {
    let refused = mock!(aws_sdk_dynamodb::Client::update_item).then_error(|| {
        UpdateItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder()
                .meta(meta("ConditionalCheckFailedException"))
                .build(),
        )
    });
    let read =
        mock!(aws_sdk_dynamodb::Client::get_item).then_output(|| GetItemOutput::builder().build());
    let t = jobs(mock_client!(
        aws_sdk_dynamodb,
        RuleMode::Sequential,
        [&refused, &read]
    ));
    let j = job(JobStatus::Queued);
    assert_eq!(
        t.claim(&j.job_id, j.created_at).await.unwrap(),
        Claim::Missing
    );
}

#[tokio::test]
async fn a_claim_is_a_conditional_update_from_queued_or_released() {
    let mut claimed = job(JobStatus::Processing);
    claimed.attempts = 1;
    let c = claimed.clone();
    let update = mock!(aws_sdk_dynamodb::Client::update_item)
        .match_requests(|req| {
            let cond = req.condition_expression().unwrap_or_default();
            let vals = req
                .expression_attribute_values()
                .cloned()
                .unwrap_or_default();
            let s = |k: &str| vals.get(k).and_then(|v| v.as_s().ok()).cloned();
            cond.contains("#status = :queued")
                && cond.contains("(#status = :processing AND released = :yes)")
                && s(":queued").as_deref() == Some("queued")
                && s(":processing").as_deref() == Some("processing")
                && vals.get(":yes").and_then(|v| v.as_bool().ok()) == Some(&true)
                && req
                    .update_expression()
                    .unwrap_or_default()
                    .contains("REMOVE released")
        })
        .then_output(move || {
            UpdateItemOutput::builder()
                .set_attributes(Some(item(&c)))
                .build()
        });
    let t = jobs(mock_client!(aws_sdk_dynamodb, [&update]));
    assert_eq!(
        t.claim(&claimed.job_id, claimed.created_at).await.unwrap(),
        Claim::Claimed(claimed)
    );
    assert_eq!(update.num_calls(), 1);
}

#[tokio::test]
async fn a_job_held_by_a_dead_attempt_is_claimed_once_with_a_crash_counted() {
    let mut held = job(JobStatus::Processing);
    held.attempts = 1;
    let h = held.clone();
    let refused = mock!(aws_sdk_dynamodb::Client::update_item)
        .match_requests(|req| {
            req.condition_expression()
                .unwrap_or_default()
                .contains(":queued")
        })
        .then_error(|| {
            UpdateItemError::ConditionalCheckFailedException(
                ConditionalCheckFailedException::builder()
                    .meta(meta("ConditionalCheckFailedException"))
                    .build(),
            )
        });
    let read = mock!(aws_sdk_dynamodb::Client::get_item)
        .then_output(move || GetItemOutput::builder().set_item(Some(item(&h))).build());
    let mut after = held.clone();
    after.attempts = 2;
    after.crashes = 1;
    let a = after.clone();
    let crash = mock!(aws_sdk_dynamodb::Client::update_item)
        .match_requests(|req| {
            let vals = req
                .expression_attribute_values()
                .cloned()
                .unwrap_or_default();
            req.condition_expression().unwrap_or_default()
                == "#status = :processing AND attempts = :seen"
                && vals
                    .get(":seen")
                    .and_then(|v| v.as_n().ok())
                    .map(String::as_str)
                    == Some("1")
                && req
                    .update_expression()
                    .unwrap_or_default()
                    .contains("crashes = if_not_exists(crashes, :zero) + :one")
        })
        .then_output(move || {
            UpdateItemOutput::builder()
                .set_attributes(Some(item(&a)))
                .build()
        });
    let t = jobs(mock_client!(
        aws_sdk_dynamodb,
        RuleMode::Sequential,
        [&refused, &read, &crash]
    ));
    assert_eq!(
        t.claim(&held.job_id, held.created_at).await.unwrap(),
        Claim::Claimed(after)
    );
    assert_eq!(crash.num_calls(), 1);
}

fn cancelled(codes: &'static [Option<&'static str>]) -> TransactWriteItemsError {
    TransactWriteItemsError::TransactionCanceledException(
        TransactionCanceledException::builder()
            .set_cancellation_reasons(Some(
                codes
                    .iter()
                    .map(|c| {
                        CancellationReason::builder()
                            .set_code(c.map(str::to_owned))
                            .build()
                    })
                    .collect(),
            ))
            .build(),
    )
}

#[tokio::test]
async fn finishing_is_one_transaction_and_a_lost_race_is_not_an_error() {
    let mut j = job(JobStatus::Done);
    j.result = Some(resizer_core::job::ResultMeta {
        key: "results/x.jpg".into(),
        format: Format::Jpeg,
        width: 100,
        height: 75,
        bytes: 999,
    });
    let ok = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .match_requests(|req| {
            let items = req.transact_items();
            items.len() == 2
                && items[0].update().is_some_and(|u| u.table_name() == "jobs")
                && items[1]
                    .put()
                    .is_some_and(|p| p.table_name() == "usage" && p.item().contains_key("pk"))
        })
        .then_output(|| TransactWriteItemsOutput::builder().build());
    let t = jobs(mock_client!(aws_sdk_dynamodb, [&ok]));
    assert_eq!(t.finish(&j, &usage(&j)).await.unwrap(), Finish::Recorded);
    assert_eq!(ok.num_calls(), 1);

    let lost = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .then_error(|| cancelled(&[Some("ConditionalCheckFailed"), Some("None")]));
    let t = jobs(mock_client!(aws_sdk_dynamodb, [&lost]));
    assert_eq!(
        t.finish(&j, &usage(&j)).await.unwrap(),
        Finish::AlreadyFinished
    );

    let busy = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .sequence()
        .error(|| cancelled(&[Some("ThrottlingError"), Some("None")]))
        .repeatedly()
        .build();
    let t = jobs(mock_client!(aws_sdk_dynamodb, [&busy]));
    let err = t.finish(&j, &usage(&j)).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test]
async fn reading_an_hour_follows_every_page_of_every_shard() {
    let j = job(JobStatus::Done);
    let r = usage(&j);
    let raw = serde_dynamo::to_item::<_, HashMap<String, AttributeValue>>(&r).unwrap();
    let (r1, r2) = (raw.clone(), raw.clone());
    let page1 = mock!(aws_sdk_dynamodb::Client::query)
        .match_requests(|req| req.exclusive_start_key().is_none())
        .then_output(move || {
            QueryOutput::builder()
                .items(r1.clone())
                .last_evaluated_key("pk", AttributeValue::S("H#...".into()))
                .last_evaluated_key("sk", AttributeValue::S("cus_x#next".into()))
                .build()
        });
    let page2 = mock!(aws_sdk_dynamodb::Client::query)
        .match_requests(|req| req.exclusive_start_key().is_some())
        .then_output(move || QueryOutput::builder().items(r2.clone()).build());
    let t = UsageTable::new(
        mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&page1, &page2]),
        "usage",
        2,
    );
    // Every shard a writer may ever have used is read (MAX_USAGE_SHARDS, not the table's 2), each
    // to its last page.
    let shards = resizer_core::usage::MAX_USAGE_SHARDS as usize;
    let records = t.records_of_hour(HourKey::of(j.created_at)).await.unwrap();
    assert_eq!(records.len(), 2 * shards, "every shard x 2 pages");
    assert_eq!(page1.num_calls(), shards);
    assert_eq!(page2.num_calls(), shards);
}
