//! What the api function calls, for its IAM policy: the router runs on the in-memory adapters
//! through every path that reaches storage (authentication with a quota, an inline job, a job
//! waited for, a failed enqueue and its compensation, an upload and a job from it, a done job's
//! result URL, usage, presets and a job naming one), and every port call journalled must be in `resizer_aws::iam::API`, and
//! everything listed there must have been called. `crates/aws/tests/iam.rs` then holds
//! `template.yaml` to that list.

use axum::body::Body;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use resizer_app::memory::{Memory, TINY_PNG};
use resizer_app::{Settings, StoreError};
use resizer_aws::iam;
use resizer_core::job::{InputMeta, Job, JobStatus, ResultMeta, Source};
use resizer_core::transform::{Format, TransformSpec};
use serde_json::Value;
use tower::ServiceExt as _;

#[tokio::test]
async fn the_api_calls_exactly_what_its_policy_is_derived_from() {
    let mem = Memory::new();
    // Every inline image staged: the S3 path's calls. (An image riding in its message calls a
    // subset of them: no staging.)
    let app = mem.app(Settings {
        message_image_max_bytes: 0,
        ..Settings::default()
    });
    // A customer with a quota: authentication reads its quota counter, and each job counts against
    // it (given back when the enqueue fails).
    let (customer, key) = mem.customer(&app, Some(1000)).await;
    let bearer = format!("Bearer {}", key.expose());
    // A done job, for its result URL.
    let mut done = Job::new(
        customer.customer_id.clone(),
        TransformSpec::with_width(1).unwrap(),
        InputMeta {
            format: Format::Png,
            width: 1,
            height: 1,
            bytes: 70,
        },
        Source::Inline,
        app.now(),
    );
    done.status = JobStatus::Processing;
    done.complete(
        ResultMeta {
            key: done.result_key(Format::Webp),
            format: Format::Webp,
            width: 1,
            height: 1,
            bytes: 40,
        },
        app.now(),
    );
    mem.jobs.insert(done.clone());
    mem.faults.take_journal();

    let mut journal = Vec::new();
    let call = |method: Method, uri: &str, ct: &str, body: Vec<u8>| {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", &bearer);
        if !ct.is_empty() {
            req = req.header("content-type", ct);
        }
        let router = resizer_api::router(app.clone());
        async move {
            let resp = router
                .oneshot(req.body(Body::from(body)).unwrap())
                .await
                .unwrap();
            let status = resp.status();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            (
                status,
                serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
            )
        }
    };

    // An inline job; another, waited for.
    let (s, b) = call(
        Method::POST,
        "/v1/jobs?width=1",
        "image/png",
        TINY_PNG.to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let (s, b) = call(
        Method::POST,
        "/v1/jobs?width=1&wait=1",
        "image/png",
        TINY_PNG.to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    // A failed enqueue: the job and its staged body are removed again.
    mem.faults.fail_next(
        "queue.send",
        StoreError::unavailable("sqs:SendMessage", "down"),
    );
    let (s, b) = call(
        Method::POST,
        "/v1/jobs?width=1",
        "image/png",
        TINY_PNG.to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    // An upload, then a job from it.
    let (s, up) = call(Method::POST, "/v1/uploads", "", Vec::new()).await;
    assert_eq!(s, StatusCode::CREATED, "{up}");
    journal.extend(mem.faults.take_journal());
    let upload_id = up["upload_id"].as_str().unwrap();
    let staged = format!("uploads/{}/{upload_id}", customer.customer_id);
    use resizer_app::ports::ObjectStore as _;
    mem.staging
        .put(&staged, TINY_PNG.to_vec(), "image/png")
        .await
        .unwrap(); // the client's PUT, not the function's
    mem.faults.take_journal();
    let json = serde_json::json!({"upload_id": upload_id, "width": 1});
    let (s, b) = call(
        Method::POST,
        "/v1/jobs",
        "application/json",
        json.to_string().into_bytes(),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    // A done job's fresh result URL; usage.
    let (s, b) = call(
        Method::GET,
        &format!("/v1/jobs/{}", done.job_id),
        "",
        Vec::new(),
    )
    .await;
    assert_eq!(
        (s, &b["status"]),
        (StatusCode::OK, &Value::from("done")),
        "{b}"
    );
    let (s, b) = call(Method::GET, "/v1/usage", "", Vec::new()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _) = call(Method::GET, "/v1/health", "", Vec::new()).await;
    assert_eq!(s, StatusCode::OK);
    // Presets: saved, listed, read, used by a job, deleted.
    let (s, b) = call(
        Method::PUT,
        "/v1/presets/thumb",
        "application/json",
        br#"{"width": 1}"#.to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = call(Method::GET, "/v1/presets", "", Vec::new()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = call(Method::GET, "/v1/presets/thumb", "", Vec::new()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = call(
        Method::POST,
        "/v1/jobs?preset=thumb",
        "image/png",
        TINY_PNG.to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let (s, b) = call(Method::DELETE, "/v1/presets/thumb", "", Vec::new()).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    journal.extend(mem.faults.take_journal());

    let problems = iam::API.audit(&journal);
    assert!(
        problems.is_empty(),
        "the api's calls differ from its list in crates/aws/src/iam.rs:\n  {}\ncalls: {journal:#?}",
        problems.join("\n  ")
    );
}
