//! The proxy as the functions meet it: the project's own adapters, on the real AWS SDK clients,
//! pointed at a proxy whose upstream is a small stand-in for the local AWS. No LocalStack needed.
//!
//! - With no rule the proxy is transparent: the upstream sees the request as sent (signature,
//!   `Host`, body) and the caller the answer as sent.
//! - Each injected error is read by the SDK as the real one: the same error code, retried by the
//!   SDK's own retry policy (three attempts), and classified transient by `resizer_aws::error`.
//! - Resets, hangs and lost answers surface as the SDK's dispatch and timeout failures.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use resizer_app::StoreError;
use resizer_app::ports::{JobQueue, JobStore, ObjectStore};
use resizer_aws::dynamo::{JobsTable, UsageTable};
use resizer_aws::s3::S3Bucket;
use resizer_aws::sqs::SqsQueue;
use resizer_core::job::{JobId, JobMessage};
use resizer_faults::{ErrorKind, Fault, Proxy, Rule};

/// What the stand-in upstream saw: method, path, Host, Authorization, body.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    host: String,
    authorization: String,
    body: Vec<u8>,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// A stand-in for the local AWS: valid empty answers for the calls the tests make.
async fn upstream() -> (SocketAddr, Log) {
    let log: Log = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = log.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.unwrap().to_bytes().to_vec();
                        let h = |n: &str| {
                            parts
                                .headers
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_owned()
                        };
                        let target = h("x-amz-target");
                        seen.lock().unwrap().push(Seen {
                            path: parts.uri.path().to_owned(),
                            host: h("host"),
                            authorization: h("authorization"),
                            body: body.clone(),
                        });
                        let (ct, answer): (&str, &[u8]) = if target.starts_with("AmazonSQS") {
                            (
                                "application/x-amz-json-1.0",
                                br#"{"MessageId":"m","MD5OfMessageBody":"x"}"#,
                            )
                        } else if target.starts_with("DynamoDB") {
                            ("application/x-amz-json-1.0", b"{}")
                        } else if parts.method == http::Method::GET {
                            ("image/png", b"PNGDATA")
                        } else {
                            ("application/xml", b"")
                        };
                        let resp = http::Response::builder()
                            .status(200)
                            .header("content-type", ct)
                            .body(Full::new(Bytes::from_static(answer)))
                            .unwrap();
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, log)
}

struct Rig {
    proxy: Arc<Proxy>,
    seen: Log,
    sdk: aws_config::SdkConfig,
}

impl Rig {
    async fn new() -> Self {
        Self::with_timeouts(Duration::from_secs(10)).await
    }

    /// The functions' SDK configuration (`resizer_aws::load_sdk_config`: standard retries, three
    /// attempts), with a short backoff and `attempt` as the attempt timeout.
    async fn with_timeouts(attempt: Duration) -> Self {
        let (up, seen) = upstream().await;
        let proxy = Proxy::new(&format!("http://{up}")).unwrap();
        let (addr, _task) = proxy
            .clone()
            .spawn("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(format!("http://{addr}"))
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(5)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(attempt)
                    .build(),
            )
            .load()
            .await;
        Self { proxy, seen, sdk }
    }

    fn queue(&self) -> SqsQueue {
        SqsQueue::new(
            aws_sdk_sqs::Client::new(&self.sdk),
            "http://127.0.0.1:4566/queue/us-east-1/000000000000/jobs",
        )
    }

    fn jobs(&self) -> JobsTable {
        let client = aws_sdk_dynamodb::Client::new(&self.sdk);
        JobsTable::new(client.clone(), "jobs", UsageTable::new(client, "usage", 16))
    }

    fn bucket(&self) -> S3Bucket {
        S3Bucket::new(resizer_aws::sdk::s3_client(&self.sdk), "staging")
    }

    /// Calls that reached the proxy, per service.
    fn requests(&self, service: &str) -> u64 {
        self.proxy
            .snapshot()
            .services
            .get(service)
            .map_or(0, |s| s.requests)
    }
}

fn message() -> JobMessage {
    JobMessage {
        job_id: JobId::generate(),
        customer_id: "cus_test".into(),
        redrives: 0,
        image: None,
        request_hash: None,
        enqueued_at_ms: 0,
    }
}

fn assert_transient(err: &StoreError, code: &str) {
    match err {
        StoreError::Unavailable { detail, .. } => {
            assert!(detail.contains(code), "{code} not in {detail}")
        }
        other => panic!("{code}: classified {other:?}, not Unavailable"),
    }
}

#[tokio::test]
async fn without_rules_the_proxy_is_transparent() {
    let rig = Rig::new().await;
    rig.queue().send(&message()).await.unwrap();
    assert_eq!(rig.jobs().get(&JobId::generate()).await.unwrap(), None);
    rig.bucket()
        .put("inline/cus/job", b"body bytes".to_vec(), "image/png")
        .await
        .unwrap();
    let got = rig.bucket().get("inline/cus/job", 100).await.unwrap();
    assert_eq!(got, b"PNGDATA");

    let proxy_host = rig
        .sdk
        .endpoint_url()
        .unwrap()
        .trim_start_matches("http://")
        .to_owned();
    let seen = rig.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    for s in &seen {
        // The request as the SDK signed it: its Host and signature untouched.
        assert_eq!(s.host, proxy_host);
        assert!(
            s.authorization
                .starts_with("AWS4-HMAC-SHA256 Credential=test/")
        );
    }
    assert!(String::from_utf8_lossy(&seen[0].body).contains("cus_test"));
    assert_eq!(seen[2].path, "/staging/inline/cus/job");
    let snap = rig.proxy.snapshot();
    assert_eq!(snap.services["sqs"].operations["SendMessage"], 1);
    assert_eq!(snap.services["dynamodb"].operations["GetItem"], 1);
    assert_eq!(snap.services["s3"].operations["PutObject"], 1);
    assert_eq!(snap.services["s3"].operations["GetObject"], 1);
    assert!(snap.services.values().all(|s| s.injected.is_empty()));
}

/// Every error kind of every service: the SDK parses the code the real service sends, retries it
/// (three attempts reach the proxy) and the adapter's error is transient.
#[tokio::test]
async fn injected_errors_are_read_as_the_real_ones_and_retried() {
    let cases: &[(&str, ErrorKind, &str)] = &[
        (
            "dynamodb",
            ErrorKind::Throttle,
            "ProvisionedThroughputExceededException",
        ),
        ("dynamodb", ErrorKind::Internal, "InternalServerError"),
        ("dynamodb", ErrorKind::Unavailable, "ServiceUnavailable"),
        ("s3", ErrorKind::Throttle, "SlowDown"),
        ("s3", ErrorKind::Internal, "InternalError"),
        ("s3", ErrorKind::Unavailable, "ServiceUnavailable"),
        ("sqs", ErrorKind::Internal, "InternalFailure"),
        ("sqs", ErrorKind::Unavailable, "ServiceUnavailable"),
    ];
    for (service, kind, code) in cases {
        let rig = Rig::new().await;
        rig.proxy
            .add_rule(Rule::new(service, Fault::Error { error: *kind }))
            .unwrap();
        let err = match *service {
            "dynamodb" => rig.jobs().get(&JobId::generate()).await.unwrap_err(),
            "s3" => rig.bucket().get("inline/c/j", 100).await.unwrap_err(),
            _ => rig.queue().send(&message()).await.unwrap_err(),
        };
        assert_transient(&err, code);
        assert_eq!(
            rig.requests(service),
            3,
            "{service} {kind:?}: retried by the SDK"
        );
        assert!(rig.seen.lock().unwrap().is_empty(), "nothing was forwarded");
    }
}

/// The raw SDK error of each throttle: its code is what the SDK's retry policy and error types
/// know (for SQS, the query-compatible code `RequestThrottled`, a modelled error of SendMessage).
#[tokio::test]
async fn throttles_carry_the_services_own_codes() {
    let rig = Rig::new().await;
    for s in ["dynamodb", "sqs"] {
        rig.proxy
            .add_rule(Rule::new(
                s,
                Fault::Error {
                    error: ErrorKind::Throttle,
                },
            ))
            .unwrap();
    }
    let ddb = aws_sdk_dynamodb::Client::new(&rig.sdk)
        .describe_table()
        .table_name("t")
        .send()
        .await
        .unwrap_err();
    assert_eq!(ddb.code(), Some("ProvisionedThroughputExceededException"));
    let sqs = aws_sdk_sqs::Client::new(&rig.sdk)
        .send_message()
        .queue_url("http://127.0.0.1:4566/queue/us-east-1/000000000000/jobs")
        .message_body("{}")
        .send()
        .await
        .unwrap_err();
    assert_eq!(sqs.code(), Some("RequestThrottled"));
    assert!(
        matches!(
            sqs.as_service_error(),
            Some(aws_sdk_sqs::operation::send_message::SendMessageError::RequestThrottled(_))
        ),
        "{sqs:?}"
    );
    assert_eq!(rig.requests("sqs"), 3, "the SDK retries RequestThrottled");
}

/// SQS throttling as the api's enqueue meets it: transient (the api answers 503, the resize
/// function backs off), as `resizer_aws::error` classifies SQS's own `RequestThrottled`.
#[tokio::test]
async fn sqs_throttling_is_transient_for_the_queue_adapter() {
    let rig = Rig::new().await;
    rig.proxy
        .add_rule(Rule::new(
            "sqs",
            Fault::Error {
                error: ErrorKind::Throttle,
            },
        ))
        .unwrap();
    let err = rig.queue().send(&message()).await.unwrap_err();
    assert_transient(&err, "RequestThrottled");
}

#[tokio::test]
async fn a_reset_is_a_retried_dispatch_failure() {
    let rig = Rig::new().await;
    rig.proxy
        .add_rule(Rule::new("dynamodb", Fault::Reset))
        .unwrap();
    let err = rig.jobs().get(&JobId::generate()).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(rig.requests("dynamodb"), 3);
    // Other services are untouched.
    rig.queue().send(&message()).await.unwrap();
}

#[tokio::test]
async fn a_hang_ends_in_the_callers_timeout() {
    let rig = Rig::with_timeouts(Duration::from_millis(300)).await;
    rig.proxy
        .add_rule(Rule::new("s3", Fault::Hang).lasting(Duration::from_secs(5)))
        .unwrap();
    let t = Instant::now();
    let err = rig.bucket().head("inline/c/j").await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(rig.requests("s3"), 3);
}

#[tokio::test]
async fn a_dropped_answer_means_the_call_happened_anyway() {
    let rig = Rig::new().await;
    rig.proxy
        .add_rule(Rule::new("sqs", Fault::DropResponse))
        .unwrap();
    let err = rig.queue().send(&message()).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    // Three attempts, each sent a message: the caller was told it failed.
    assert_eq!(rig.seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn latency_percent_and_duration() {
    let rig = Rig::new().await;
    rig.proxy
        .add_rule(Rule::new(
            "dynamodb",
            Fault::Latency {
                ms: 200,
                jitter_ms: 0,
            },
        ))
        .unwrap();
    let t = Instant::now();
    rig.jobs().get(&JobId::generate()).await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(200));

    // 50 % of 200 S3 calls, one attempt each (the SDK's retries would hide the percentage).
    let one = Rig::new().await;
    let sdk = one
        .sdk
        .to_builder()
        .retry_config(RetryConfig::disabled())
        .build();
    let s3 = S3Bucket::new(resizer_aws::sdk::s3_client(&sdk), "staging");
    one.proxy
        .add_rule(
            Rule::new(
                "s3",
                Fault::Error {
                    error: ErrorKind::Throttle,
                },
            )
            .percent(50.0)
            .lasting(Duration::from_secs(60)),
        )
        .unwrap();
    let mut failed = 0;
    for _ in 0..200 {
        if s3.head("k/k").await.is_err() {
            failed += 1;
        }
    }
    assert!((60..=140).contains(&failed), "{failed} of 200 failed");
    let snap = one.proxy.snapshot();
    assert_eq!(snap.rules[0].hits, failed);
    let by_kind: HashMap<_, _> = snap.services["s3"].injected.clone().into_iter().collect();
    assert_eq!(by_kind["throttle"], failed);
}
