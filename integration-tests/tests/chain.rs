//! The deployed stack runs the real function binaries, wired by its own triggers: what each link
//! of the chain looks like from outside.
//!
//! - a job submitted over HTTP is served by the api binary (through its function URL) and claimed
//!   and resized by the resize binary (through the jobs queue's event source mapping);
//! - a message the resize function cannot take (Lambda throttling, whose receives count too)
//!   reaches the DLQ by the queue's own redrive, and once the function is back, the DLQ's event
//!   source mapping sends the job round again and it is done, not failed;
//! - a transform that asks for too much is refused before any work;
//! - the stack's schedule runs the aggregator binary;
//! - a job whose message was lost is found by the sweep binary (on its schedule) and done;
//! - a second region's stack shares nothing with the first.

mod common;

use std::time::Duration;

use common::*;
use resizer_core::job::JobStatus;

/// Held by the tests that need us-west-2's resize function: one of them throttles it to zero.
static WEST_RESIZE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn a_job_goes_from_the_api_binary_through_the_queue_to_the_resize_binary() {
    let state = state().await;
    let (_, key) = customer(&state, None).await;
    let r = deployed(
        &state,
        Req::new("POST", "/v1/jobs")
            .key(&key)
            .query("width=50&format=webp")
            .body("image/png", png(100, 80)),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.json);
    let id = r.job_id();
    let job = wait_done(&state, std::slice::from_ref(&id)).await.remove(0);
    assert_eq!((job.status, job.attempts), (JobStatus::Done, 1));
    // The api binary logged the request, the resize binary claimed and finished the job.
    let api = wait_for_log(&state, Function::Api, Duration::from_secs(30), |l| {
        l.contains("\"message\":\"request\"") && l.contains(&id)
    })
    .await;
    assert!(api.contains("\"status\":202"), "{api}");
    wait_for_log(&state, Function::Resize, Duration::from_secs(30), |l| {
        l.contains("job claimed") && l.contains(&id)
    })
    .await;
    let done = wait_for_log(&state, Function::Resize, Duration::from_secs(30), |l| {
        l.contains("job done") && l.contains(&job.customer_id)
    })
    .await;
    assert!(done.contains("\"format_out\":\"webp\""), "{done}");
    // Each invocation is reported the way Lambda reports it.
    let report = function_log(&state, Function::Resize).await;
    assert!(report.iter().any(|l| l.starts_with("REPORT RequestId:")));
}

#[tokio::test]
async fn lambda_throttling_longer_than_the_receives_loses_no_job() {
    // In us-west-2's stack (the other test there waits for this one): the resize function
    // throttled to zero, a job submitted; each receive fails to invoke, and after
    // MaxReceiveCount (2 locally) SQS moves the message to the DLQ. The function back, the DLQ's
    // mapping sends the young job round again, and it is done.
    let _west_resize = WEST_RESIZE.lock().await;
    let west = state_in_region("us-west-2").await;
    let lambda = aws_sdk_lambda::Client::new(&west.sdk);
    let resize = west.output(resizer_aws::resources::RESIZE_FUNCTION);
    lambda
        .put_function_concurrency()
        .function_name(&resize)
        .reserved_concurrent_executions(0)
        .send()
        .await
        .unwrap();
    let restore = || async {
        lambda
            .delete_function_concurrency()
            .function_name(&resize)
            .send()
            .await
            .unwrap();
    };
    let (_, key) = customer(&west, None).await;
    let r = deployed(
        &west,
        Req::new("POST", "/v1/jobs")
            .key(&key)
            .query("width=10")
            .body("image/png", png(20, 20)),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.json);
    let id = r.job_id();
    // Wait for the redrive: the message on the DLQ.
    let sqs = west.adapters.queue.client().clone();
    let dlq = dlq_url(&west.info);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(360);
    loop {
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&dlq)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .unwrap();
        let count = |n: aws_sdk_sqs::types::QueueAttributeName| -> u64 {
            attrs
                .attributes()
                .and_then(|a| a.get(&n))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        if count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            + count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            > 0
        {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            restore().await;
            panic!("the message never reached the DLQ");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let queued = west
        .app
        .stores
        .jobs
        .get(&resizer_core::job::JobId::parse(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        queued.status,
        JobStatus::Queued,
        "never claimed while throttled"
    );
    restore().await;
    let job = wait_done_within(&west, std::slice::from_ref(&id), Duration::from_secs(240))
        .await
        .remove(0);
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    // The dead letter reached the function: it sent the job round again, or (when the sweep
    // function's own re-send got there first) found it done and consumed it without work.
    wait_for_log(&west, Function::Resize, Duration::from_secs(60), |l| {
        l.contains(&id)
            && (l.contains("dead-lettered job sent back to the jobs queue")
                || l.contains("dead-lettered message for a finished job"))
    })
    .await;
}

#[tokio::test]
async fn a_transform_that_asks_for_too_much_is_refused_before_any_work() {
    // A 64x64 PNG asked for a 67-megapixel AVIF: before the caps, every delivery of it timed out
    // the resize function, three times, then failed as internal_error.
    let state = state().await;
    let (_, key) = customer(&state, None).await;
    let r = deployed(
        &state,
        Req::new("POST", "/v1/jobs")
            .key(&key)
            .query("width=8192&height=8192&fit=fill&enlarge=true&format=avif")
            .body("image/png", png(64, 64)),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (422, "output_too_large"),
        "{}",
        r.json
    );
}

#[tokio::test]
async fn the_schedule_runs_the_aggregator_binary() {
    let state = state().await;
    let line = wait_for_log(&state, Function::Aggregate, Duration::from_secs(150), |l| {
        l.contains("aggregation done")
    })
    .await;
    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    // The run keeps the usage watermark (the oldest hour not yet closed) within the last two
    // hours: the schedule closes the hours behind it.
    let watermark = v["watermark"]
        .as_str()
        .and_then(resizer_core::usage::HourKey::parse)
        .unwrap_or_else(|| panic!("no watermark: {line}"));
    let now = resizer_core::usage::HourKey::of(time::OffsetDateTime::now_utc());
    assert!(
        watermark <= now && watermark >= now.prev(2),
        "watermark {watermark}, now {now}: {line}"
    );
    assert!(v["hours_closed"].as_u64().is_some(), "{line}");
}

#[tokio::test]
async fn regions_share_nothing() {
    let east = state().await;
    let _west_resize = WEST_RESIZE.lock().await;
    let west = state_in_region("us-west-2").await;
    assert_ne!(east.resources.jobs_table, west.resources.jobs_table);
    assert_ne!(
        east.output(resizer_aws::resources::API_FUNCTION_URL),
        west.output(resizer_aws::resources::API_FUNCTION_URL)
    );
    let (_, east_key) = customer(&east, None).await;
    let (_, west_key) = customer(&west, None).await;
    // A key of one region is unknown to the other.
    let r = deployed(&west, Req::new("GET", "/v1/usage").key(&east_key)).await;
    assert_eq!((r.status, r.code()), (401, "unauthorized"), "{}", r.json);
    let r = deployed(&west, Req::new("GET", "/v1/usage").key(&west_key)).await;
    assert_eq!(r.status, 200, "{}", r.json);
    // A job of one region is unknown to the other.
    let r = deployed(
        &east,
        Req::new("POST", "/v1/jobs")
            .key(&east_key)
            .query("width=10&wait=20")
            .body("image/png", png(20, 20)),
    )
    .await;
    assert_eq!(
        (r.status, r.json["status"].as_str()),
        (200, Some("done")),
        "{}",
        r.json
    );
    let id = r.job_id();
    let r = deployed(
        &west,
        Req::new("GET", &format!("/v1/jobs/{id}")).key(&west_key),
    )
    .await;
    assert_eq!((r.status, r.code()), (404, "not_found"), "{}", r.json);
    let r = deployed(
        &west,
        Req::new("POST", "/v1/jobs")
            .key(&west_key)
            .query("width=10&wait=20")
            .body("image/png", png(20, 20)),
    )
    .await;
    assert_eq!(
        (r.status, r.json["status"].as_str()),
        (200, Some("done")),
        "{}",
        r.json
    );
}

#[tokio::test]
async fn the_function_url_passes_requests_on_as_aws_does() {
    // LocalStack 4.9.2 answered a multipart/form-data request without a boundary with its own 500
    // and never invoked the function (localstack/process-executor/…/fixes.py); AWS passes it on,
    // and the api refuses the type.
    let state = state().await;
    let (_, key) = customer(&state, None).await;
    let r = deployed(
        &state,
        Req::new("POST", "/v1/jobs")
            .key(&key)
            .query("width=10")
            .body("multipart/form-data", png(8, 8)),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (415, "unsupported_media_type"),
        "{}",
        r.json
    );
    let r = deployed(
        &state,
        Req::new("POST", "/v1/uploads")
            .key(&key)
            .header("content-type", "multipart/form-data"),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.json);
    // The deployed function signs uploads with its own credentials and endpoint.
    let post = post_upload(&r.json, png(8, 8)).await;
    assert!(post.status().is_success(), "{}", post.text().await.unwrap());
    // Binary bodies arrive intact (base64 in the event), JSON bodies as text.
    let r = deployed(
        &state,
        Req::new("POST", "/v1/jobs")
            .key(&key)
            .json(serde_json::json!({"upload_id": "nope", "width": 10})),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "invalid_parameter"),
        "{}",
        r.json
    );
}

#[tokio::test]
async fn a_job_whose_message_was_lost_is_swept_back_onto_the_queue_and_done() {
    // The job is written and its message sent to a queue nothing reads (as if the api died
    // between the two, or the message was lost): only the deployed sweep function, on its
    // schedule, can see that the job is stale and send it again. A staged job: one whose image
    // rides in its message is written only after the message was sent, and a sweep's message
    // cannot carry its image (lifecycle.rs: it waits for its own message, or expires).
    let state = state().await;
    let sqs = state.adapters.queue.client().clone();
    let nowhere = sqs
        .create_queue()
        .queue_name(format!("resizer-it-lost-{}", uuid::Uuid::new_v4().simple()))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let lost = state_with(|r, s| {
        r.jobs_queue_url = nowhere.clone();
        s.message_image_max_bytes = 0;
    })
    .await;
    let (_, key) = customer(&lost, None).await;
    let r = call(
        &lost,
        Req::new("POST", "/v1/jobs")
            .key(&key)
            .query("width=10")
            .body("image/png", png(20, 20)),
    )
    .await;
    sqs.delete_queue().queue_url(&nowhere).send().await.unwrap();
    assert_eq!(r.status, 202, "{}", r.json);
    let id = r.job_id();
    // Locally: stale after 80 s (RetryBackoffMaxSeconds 20 + 60), swept every minute.
    let job = wait_done_within(&state, std::slice::from_ref(&id), Duration::from_secs(300))
        .await
        .remove(0);
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    wait_for_log(&state, Function::Sweep, Duration::from_secs(30), |l| {
        l.contains("a stale job was sent to the jobs queue again") && l.contains(&id)
    })
    .await;
}
