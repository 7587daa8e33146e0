//! The deployed stack runs the real function binaries, wired by its own triggers: what each link
//! of the chain looks like from outside.
//!
//! - a job submitted over HTTP is served by the api binary (through its function URL) and claimed
//!   and resized by the resize binary (through the jobs queue's event source mapping);
//! - a message the resize function keeps failing on reaches the DLQ by the queue's own redrive,
//!   and the DLQ's event source mapping marks its job failed;
//! - the stack's schedule runs the aggregator binary;
//! - a second region's stack shares nothing with the first.

mod common;

use std::time::Duration;

use common::*;
use resizer_core::job::JobStatus;

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
async fn a_poison_message_is_redriven_to_the_dlq_and_its_job_marked_failed() {
    // A conversion that outlasts the resize function's timeout (10 s locally) every time: a
    // 67-megapixel AVIF from a small PNG. Each delivery times out, the message comes back after the
    // visibility timeout, and after maxReceiveCount receives SQS moves it to the DLQ, whose mapping
    // hands it to the resize function again, which marks the job failed.
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
    assert_eq!(r.status, 202, "{}", r.json);
    let id = r.job_id();
    let job = wait_done_within(&state, std::slice::from_ref(&id), Duration::from_secs(420))
        .await
        .remove(0);
    assert_eq!(job.status, JobStatus::Failed, "{job:?}");
    assert_eq!(job.error.as_ref().unwrap().code, "internal_error");
    assert!(
        job.attempts >= 2,
        "claimed on each delivery: {}",
        job.attempts
    );
    let resize = function_log(&state, Function::Resize).await;
    assert!(
        resize
            .iter()
            .any(|l| l.contains("Task timed out after") || l.contains("Sandbox.Timedout")),
        "the deliveries timed out"
    );
    assert!(
        resize
            .iter()
            .any(|l| l.contains("job dead-lettered; marking it failed")),
        "the DLQ mapping's delivery marked it failed"
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
    assert!(v["hours_scanned"].as_u64().unwrap_or(0) >= 1, "{line}");
}

#[tokio::test]
async fn regions_share_nothing() {
    let east = state().await;
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
    // A job of one region is unknown to the other, and each region resizes its own.
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
