//! Helpers for the handler-level and end-to-end tests: the real handlers, the real local stack.
//!
//! The api handler is called with API Gateway HTTP API (payload 2.0) events built from a real
//! fixture, the resize handler with SQS events built from messages received from the real queue,
//! exactly as the event source mapping delivers them.

#![allow(dead_code)]

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use axum::Router;
use base64::Engine as _;
use lambda_runtime::{Context, LambdaEvent};
use resizer_app::{App, Clock, Metrics, Settings};
use resizer_aws::resources::{self, Resources};
use resizer_aws::sqs::SqsQueue;
use resizer_aws::stack::StackInfo;
use resizer_aws::{Adapters, resources::Resource};
use resizer_core::key::{ApiKey, Customer, KeyRecord};
use resizer_resize::Resize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tower_http::normalize_path::NormalizePath;

pub type R<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

pub const HOW_TO_RUN: &str = "These tests need the deployed local stack: run `make test` (or, after \
`make dev`, `set -a; . .local/stack.env; set +a; cargo test -p resizer-integration-tests`).";

/// The stack's outputs and a configuration built from them (plus env overrides).
pub async fn stack() -> (aws_config::SdkConfig, StackInfo) {
    let name = std::env::var("RESIZER_STACK")
        .unwrap_or_else(|_| panic!("RESIZER_STACK is not set. {HOW_TO_RUN}"));
    let sdk = resizer_aws::load_sdk_config().await;
    let info = StackInfo::describe(&sdk, &name)
        .await
        .unwrap_or_else(|e| panic!("cannot read stack {name}: {e}. {HOW_TO_RUN}"));
    (sdk, info)
}

/// The service against the local stack, as the functions build it, plus the adapters and names
/// the tests look behind it with.
#[derive(Clone)]
pub struct State {
    pub app: App,
    pub adapters: Adapters,
    pub resources: Resources,
    pub info: StackInfo,
    pub sdk: aws_config::SdkConfig,
    pub resize: Arc<Resize>,
    pub api: NormalizePath<Router>,
}

impl State {
    fn build(
        sdk: aws_config::SdkConfig,
        info: StackInfo,
        resources: Resources,
        settings: Settings,
    ) -> Self {
        let adapters = Adapters::new(&sdk, &resources, &settings);
        let app = App::new(settings, adapters.stores());
        Self::with_app(sdk, info, resources, adapters, app)
    }

    fn with_app(
        sdk: aws_config::SdkConfig,
        info: StackInfo,
        resources: Resources,
        adapters: Adapters,
        app: App,
    ) -> Self {
        Self {
            resize: Arc::new(Resize::new(app.clone(), resources.jobs_dlq_arn.clone())),
            api: resizer_api::router(app.clone()),
            app,
            adapters,
            resources,
            info,
            sdk,
        }
    }

    pub fn now(&self) -> OffsetDateTime {
        self.app.now()
    }

    /// The same state with `f` applied to its app (a clock, metrics, other ports).
    pub fn map_app(self, f: impl FnOnce(App) -> App) -> Self {
        let app = f(self.app);
        Self::with_app(self.sdk, self.info, self.resources, self.adapters, app)
    }

    pub fn with_clock(self, clock: Clock) -> Self {
        self.map_app(|a| a.with_clock(clock))
    }

    pub fn with_metrics(self, metrics: Metrics) -> Self {
        self.map_app(|a| a.with_metrics(metrics))
    }

    pub fn output(&self, r: Resource) -> String {
        self.info
            .output(r)
            .unwrap_or_else(|| panic!("the stack has no output {}", r.output))
            .to_owned()
    }

    /// A queue adapter bound to `url` (the jobs queue or the DLQ).
    pub fn queue_at(&self, url: &str) -> SqsQueue {
        SqsQueue::new(self.adapters.queue.client().clone(), url)
    }

    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk)
    }

    pub fn s3(&self) -> &aws_sdk_s3::Client {
        self.adapters.results.client()
    }
}

/// The service against the local stack, with its resources and settings tweaked by `f`.
pub async fn state_with(f: impl FnOnce(&mut Resources, &mut Settings)) -> State {
    let (sdk, info) = stack().await;
    let mut resources = info
        .resources()
        .expect("the stack outputs name every resource");
    let mut settings = info.settings().expect("valid settings");
    f(&mut resources, &mut settings);
    State::build(sdk, info, resources, settings)
}

pub async fn state() -> State {
    state_with(|_, _| {}).await
}

pub fn dlq_url(info: &StackInfo) -> String {
    info.output(resources::JOBS_DLQ_URL)
        .expect("JobsDlqUrl")
        .to_owned()
}

/// A fresh customer with one active key.
pub async fn customer(state: &State, quota: Option<u64>) -> (Customer, String) {
    let mut c = Customer::new("it", state.now());
    c.monthly_job_quota = quota;
    state
        .app
        .stores
        .accounts
        .put_new_customer(&c)
        .await
        .expect("put customer");
    let key = ApiKey::generate();
    state
        .app
        .stores
        .accounts
        .put_new_key(&KeyRecord::new(&key, &c.customer_id, state.now()))
        .await
        .expect("put key");
    (c, key.expose())
}

// ---- API Gateway events ------------------------------------------------------------------------

/// A real API Gateway HTTP API payload 2.0 event (the shape AWS documents), to be specialised.
pub const APIGW_FIXTURE: &str =
    include_str!("../../../functions/api/tests/fixtures/apigw-v2-request.json");

pub struct Req {
    pub method: &'static str,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl Req {
    pub fn new(method: &'static str, path: &str) -> Self {
        Self {
            method,
            path: path.to_owned(),
            query: String::new(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn query(mut self, q: &str) -> Self {
        self.query = q.to_owned();
        self
    }

    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_ascii_lowercase(), v.to_owned()));
        self
    }

    pub fn key(self, key: &str) -> Self {
        self.header("authorization", &format!("Bearer {key}"))
    }

    pub fn body(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.body = Some(body);
        self.header("content-type", content_type)
    }

    pub fn json(self, v: Value) -> Self {
        self.body("application/json", v.to_string().into_bytes())
    }

    /// The event API Gateway would send: binary bodies base64-encoded, JSON as text.
    pub fn event(&self) -> ApiGatewayV2httpRequest {
        let mut ev: Value = serde_json::from_str(APIGW_FIXTURE).expect("fixture is JSON");
        ev["rawPath"] = json!(self.path);
        ev["rawQueryString"] = json!(self.query);
        ev["requestContext"]["http"]["method"] = json!(self.method);
        ev["requestContext"]["http"]["path"] = json!(self.path);
        ev["requestContext"]["requestId"] = json!(format!("it-{}", uuid::Uuid::new_v4()));
        let mut headers = serde_json::Map::new();
        headers.insert("host".into(), json!("api.example.com"));
        headers.insert("user-agent".into(), json!("resizer-integration-tests"));
        for (k, v) in &self.headers {
            headers.insert(k.clone(), json!(v));
        }
        ev["headers"] = Value::Object(headers);
        if self.query.is_empty() {
            ev.as_object_mut().unwrap().remove("queryStringParameters");
        } else {
            let mut q = serde_json::Map::new();
            for (k, v) in form_urlencoded::parse(self.query.as_bytes()) {
                q.insert(k.into_owned(), json!(v));
            }
            ev["queryStringParameters"] = Value::Object(q);
        }
        match &self.body {
            None => {
                ev.as_object_mut().unwrap().remove("body");
                ev["isBase64Encoded"] = json!(false);
            }
            Some(b) => {
                let is_json = self
                    .headers
                    .iter()
                    .any(|(k, v)| k == "content-type" && v.starts_with("application/json"));
                if is_json {
                    ev["body"] = json!(String::from_utf8_lossy(b));
                    ev["isBase64Encoded"] = json!(false);
                } else {
                    ev["body"] = json!(base64::engine::general_purpose::STANDARD.encode(b));
                    ev["isBase64Encoded"] = json!(true);
                }
            }
        }
        serde_json::from_value(ev).expect("a valid payload 2.0 event")
    }
}

/// An HTTP response, decoded.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub json: Value,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
}

pub fn decode(resp: ApiGatewayV2httpResponse) -> Resp {
    let text = match resp.body {
        Some(Body::Text(t)) => t,
        Some(Body::Binary(b)) => String::from_utf8_lossy(&b).into_owned(),
        _ => String::new(),
    };
    Resp {
        status: resp.status_code as u16,
        headers: resp.headers,
        json: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

/// Calls the api handler as Lambda would.
pub async fn call(state: &State, req: Req) -> Resp {
    let mut ctx = Context::default();
    ctx.request_id = uuid::Uuid::new_v4().to_string();
    let resp = resizer_api::handler(&state.api, LambdaEvent::new(req.event(), ctx))
        .await
        .expect("the api handler never returns Err");
    decode(resp)
}

// ---- SQS ---------------------------------------------------------------------------------------

/// Receives up to `max` messages from `queue_url` and wraps them in the SQS event Lambda would
/// deliver from `queue_arn`.
pub async fn receive_event(
    state: &State,
    queue_url: &str,
    queue_arn: &str,
    max: i32,
    wait: i32,
) -> SqsEvent {
    let msgs = state
        .queue_at(queue_url)
        .receive(max, wait)
        .await
        .expect("receive");
    let records: Vec<Value> = msgs
        .iter()
        .map(|m| {
            let attrs: serde_json::Map<String, Value> = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), json!(v)))
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attrs,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    serde_json::from_value(json!({"Records": records})).expect("an SQS event")
}

/// Calls the resize handler with `event`, then deletes what it consumed (as the event source
/// mapping does). Returns the handler's response.
pub async fn run_resize(state: &State, queue_url: &str, event: SqsEvent) -> SqsBatchResponse {
    let records = event.records.clone();
    let resp = resizer_resize::handler(&state.resize, LambdaEvent::new(event, Context::default()))
        .await
        .expect("the resize handler never returns Err");
    for r in &records {
        if reported_failed(&resp, r) {
            continue;
        }
        if let Some(h) = &r.receipt_handle {
            state.queue_at(queue_url).delete(h).await.expect("delete");
        }
    }
    resp
}

/// Whether the handler's response lists `record` as a batch item failure.
fn reported_failed(resp: &SqsBatchResponse, record: &SqsMessage) -> bool {
    let id = record.message_id.as_deref().unwrap_or_default();
    resp.batch_item_failures
        .iter()
        .any(|f| f.item_identifier == id)
}

/// Drains the jobs queue until every job in `job_ids` is terminal (or the deadline passes).
pub async fn process_until_done(state: &State, job_ids: &[String]) {
    let arn = state.output(resources::JOBS_QUEUE_ARN);
    let url = state.resources.jobs_queue_url.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let mut all_done = true;
        for id in job_ids {
            let job = state
                .app
                .stores
                .jobs
                .get(&resizer_core::job::JobId::parse(id).expect("job id"))
                .await
                .expect("get job")
                .expect("job exists");
            if !job.status.is_terminal() {
                all_done = false;
            }
        }
        if all_done {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "jobs did not finish in 120 s"
        );
        let ev = receive_event(state, &url, &arn, 10, 1).await;
        if ev.records.is_empty() {
            continue;
        }
        let records = ev.records.clone();
        let resp = run_resize(state, &url, ev).await;
        // A failed item stays invisible for the queue's visibility timeout (minutes), longer than
        // this deadline. Say what failed, and let it come back in a few seconds instead.
        for r in records.iter().filter(|r| reported_failed(&resp, r)) {
            eprintln!(
                "resize reported a batch item failure: {}",
                r.message_id.as_deref().unwrap_or_default()
            );
            if let Some(h) = &r.receipt_handle {
                let _ = state.queue_at(&url).release(h, 2).await;
            }
        }
    }
}

// ---- images ------------------------------------------------------------------------------------

/// A photo-like test image: smooth gradients and edges, so every codec has work to do.
pub fn rgb_image(w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        let r = (x * 255 / w.max(1)) as u8;
        let g = (y * 255 / h.max(1)) as u8;
        let b = if (x / 16 + y / 16) % 2 == 0 { 200 } else { 40 };
        image::Rgb([r, g, b])
    })
}

pub fn encode(img: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    match format {
        image::ImageFormat::Jpeg => {
            let rgb = img.to_rgb8();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
                .encode_image(&rgb)
                .expect("encode jpeg");
        }
        image::ImageFormat::Gif => {
            img.to_rgba8()
                .write_to(&mut out, format)
                .expect("encode gif");
        }
        image::ImageFormat::WebP => {
            img.to_rgba8()
                .write_to(&mut out, format)
                .expect("encode webp");
        }
        _ => img.write_to(&mut out, format).expect("encode"),
    }
    out.into_inner()
}

/// A PNG of noise: it does not compress, so its size is about 3 bytes per pixel.
pub fn noisy_png(w: u32, h: u32) -> Vec<u8> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let img = image::RgbImage::from_fn(w, h, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let b = state.to_le_bytes();
        image::Rgb([b[0], b[1], b[2]])
    });
    encode(
        &image::DynamicImage::ImageRgb8(img),
        image::ImageFormat::Png,
    )
}

pub fn jpeg(w: u32, h: u32) -> Vec<u8> {
    encode(
        &image::DynamicImage::ImageRgb8(rgb_image(w, h)),
        image::ImageFormat::Jpeg,
    )
}

pub fn png(w: u32, h: u32) -> Vec<u8> {
    encode(
        &image::DynamicImage::ImageRgb8(rgb_image(w, h)),
        image::ImageFormat::Png,
    )
}

/// The dimensions of an encoded image, read back from its bytes.
pub fn dimensions(bytes: &[u8]) -> (String, u32, u32) {
    if bytes.len() > 12 && &bytes[4..8] == b"ftyp" {
        // AVIF: the `ispe` property holds the dimensions.
        let pos = bytes
            .windows(4)
            .position(|w| w == b"ispe")
            .expect("an AVIF has an ispe box");
        let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
        return ("avif".into(), be(pos + 8), be(pos + 12));
    }
    let format = image::guess_format(bytes).expect("a known image format");
    let img = image::load_from_memory(bytes).expect("decodable output");
    let name = match format {
        image::ImageFormat::Jpeg => "jpeg",
        image::ImageFormat::Png => "png",
        image::ImageFormat::WebP => "webp",
        image::ImageFormat::Gif => "gif",
        _ => "other",
    };
    (name.into(), img.width(), img.height())
}

pub async fn download(url: &str) -> Vec<u8> {
    let resp = reqwest::get(url).await.expect("GET the presigned URL");
    assert!(
        resp.status().is_success(),
        "presigned GET: {}",
        resp.status()
    );
    resp.bytes().await.expect("body").to_vec()
}

/// A background stand-in for the event source mapping: drains the jobs queue until stopped.
pub struct Drainer {
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: tokio::task::JoinHandle<()>,
}

impl Drainer {
    pub async fn start(state: &State) -> Self {
        let arn = state.output(resources::JOBS_QUEUE_ARN);
        let url = state.resources.jobs_queue_url.clone();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, st) = (stop.clone(), state.clone());
        let handle = tokio::spawn(async move {
            while !s.load(std::sync::atomic::Ordering::SeqCst) {
                let ev = receive_event(&st, &url, &arn, 10, 1).await;
                if !ev.records.is_empty() {
                    run_resize(&st, &url, ev).await;
                }
            }
        });
        Self { stop, handle }
    }

    pub async fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.handle.await.expect("drainer");
    }
}
