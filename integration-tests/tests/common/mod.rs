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

/// The same stack name deployed in another region of the local AWS (`make test` deploys one in
/// us-west-2), with the settings of the first.
pub async fn state_in_region(region: &str) -> State {
    let (sdk, _) = stack().await;
    let sdk = sdk
        .to_builder()
        .region(aws_config::Region::new(region.to_owned()))
        .build();
    let name = std::env::var("RESIZER_STACK").expect("RESIZER_STACK");
    let info = StackInfo::describe(&sdk, &name).await.unwrap_or_else(|e| {
        panic!("no stack {name} in {region} ({e}): `make test` deploys one there. {HOW_TO_RUN}")
    });
    let resources = info.resources().expect("the stack's resources");
    let settings = info.settings().expect("valid settings");
    State::build(sdk, info, resources, settings)
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

    /// The job id of a job resource.
    pub fn job_id(&self) -> String {
        self.json["job_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no job_id in {}", self.json))
            .to_owned()
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

// ---- the deployed functions ----------------------------------------------------------------

/// Where to send a request for the deployed api function's URL: the local AWS endpoint, and the
/// `Host` header LocalStack routes the function URL by (a name nothing resolves).
pub fn function_url_route(state: &State) -> (String, String) {
    let url = state.output(resources::API_FUNCTION_URL);
    let host = url
        .split_once("://")
        .map_or(url.as_str(), |(_, r)| r)
        .trim_end_matches('/')
        .to_owned();
    let endpoint = state
        .sdk
        .endpoint_url()
        .expect("AWS_ENDPOINT_URL (the local AWS)")
        .trim_end_matches('/')
        .to_owned();
    (endpoint, host)
}

/// Calls the deployed api function over HTTP, through its function URL.
pub async fn deployed(state: &State, req: Req) -> Resp {
    let (endpoint, host) = function_url_route(state);
    let mut target = format!("{endpoint}{}", req.path);
    if !req.query.is_empty() {
        target = format!("{target}?{}", req.query);
    }
    let method = reqwest::Method::from_bytes(req.method.as_bytes()).expect("a method");
    let mut r = reqwest::Client::new()
        .request(method, target)
        .header("host", host)
        .timeout(Duration::from_secs(60));
    for (k, v) in &req.headers {
        r = r.header(k.as_str(), v.as_str());
    }
    if let Some(b) = req.body {
        r = r.body(b);
    }
    let resp = r.send().await.expect("the function URL answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("a body");
    Resp {
        status,
        headers,
        json: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

/// Waits until every job in `job_ids` is terminal: the deployed resize function, fed by the
/// stack's event source mapping, does the work. Returns the jobs.
pub async fn wait_done(state: &State, job_ids: &[String]) -> Vec<resizer_core::job::Job> {
    wait_done_within(state, job_ids, Duration::from_secs(120)).await
}

pub async fn wait_done_within(
    state: &State,
    job_ids: &[String],
    limit: Duration,
) -> Vec<resizer_core::job::Job> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let mut jobs = Vec::new();
        for id in job_ids {
            let job = state
                .app
                .stores
                .jobs
                .get(&resizer_core::job::JobId::parse(id).expect("job id"))
                .await
                .expect("get job")
                .expect("job exists");
            jobs.push(job);
        }
        if jobs.iter().all(|j| j.status.is_terminal()) {
            return jobs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "jobs not finished within {limit:?}: {:?}",
            jobs.iter()
                .filter(|j| !j.status.is_terminal())
                .map(|j| (j.job_id.to_string(), j.status, j.attempts))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The functions, by the stack output that names each.
#[derive(Debug, Clone, Copy)]
pub enum Function {
    Api,
    Resize,
    Aggregate,
    Sweep,
}

impl Function {
    fn resource(self) -> Resource {
        match self {
            Function::Api => resources::API_FUNCTION,
            Function::Resize => resources::RESIZE_FUNCTION,
            Function::Aggregate => resources::AGGREGATE_FUNCTION,
            Function::Sweep => resources::SWEEP_FUNCTION,
        }
    }
}

/// Sends `bytes` as an upload created by `POST /v1/uploads` (its JSON `upload`): the presigned
/// POST, a `multipart/form-data` form of its fields and then the file.
pub async fn post_upload(upload: &Value, bytes: Vec<u8>) -> reqwest::Response {
    assert_eq!(upload["method"], "POST", "{upload}");
    let mut form = reqwest::multipart::Form::new();
    for (k, v) in upload["fields"].as_object().expect("fields") {
        form = form.text(k.clone(), v.as_str().expect("a string field").to_owned());
    }
    let file = reqwest::multipart::Part::bytes(bytes).file_name("image");
    reqwest::Client::new()
        .post(upload["url"].as_str().expect("url"))
        .multipart(form.part("file", file))
        .send()
        .await
        .expect("the upload POST is answered")
}

/// Runs a deployed scheduled function (aggregate or sweep) once, as its schedule would, and
/// returns its answer.
pub async fn run_scheduled(state: &State, f: Function) -> R<Value> {
    let lambda = aws_sdk_lambda::Client::new(&state.sdk);
    let out = lambda
        .invoke()
        .function_name(state.output(f.resource()))
        .payload(aws_smithy_types::Blob::new(
            r#"{"source":"resizer.test","detail-type":"Scheduled Event","detail":{}}"#,
        ))
        .send()
        .await?;
    let payload: Value = out
        .payload()
        .map(|b| serde_json::from_slice(b.as_ref()).unwrap_or(Value::Null))
        .unwrap_or(Value::Null);
    if let Some(e) = out.function_error() {
        return Err(format!("{f:?} failed ({e}): {payload}").into());
    }
    Ok(payload)
}

/// Every log line a deployed function has written so far (CloudWatch Logs, where LocalStack puts
/// what the function process printed).
pub async fn function_log(state: &State, f: Function) -> Vec<String> {
    let logs = aws_sdk_cloudwatchlogs::Client::new(&state.sdk);
    let group = format!("/aws/lambda/{}", state.output(f.resource()));
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = match logs
            .filter_log_events()
            .log_group_name(&group)
            .set_next_token(token.take())
            .send()
            .await
        {
            Ok(p) => p,
            // No group until the function first ran.
            Err(_) => return out,
        };
        for e in page.events() {
            out.extend(e.message().unwrap_or_default().lines().map(str::to_owned));
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_owned()),
            _ => return out,
        }
    }
}

/// Waits until a deployed function has logged a line matching `pred`; returns it.
pub async fn wait_for_log(
    state: &State,
    f: Function,
    limit: Duration,
    pred: impl Fn(&str) -> bool,
) -> String {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(l) = function_log(state, f).await.into_iter().find(|l| pred(l)) {
            return l;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{f:?} logged no such line within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
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
