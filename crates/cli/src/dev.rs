//! `resizer dev`: the whole service on one machine.
//!
//! Community LocalStack cannot run the functions (no Docker here) nor create the HTTP API, so this
//! process does what AWS would, with the real handlers:
//! - **API Gateway (HTTP API, payload 2.0):** each HTTP request becomes the event API Gateway
//!   would send (binary bodies base64-encoded, the 10 MB payload limit, Lambda's 6 MB invoke
//!   limit) and the handler's response is turned back into HTTP;
//! - **SQS event source mappings:** workers long-poll the jobs queue (and its DLQ) with the
//!   template's batch size, call the resize handler with a real SQS event, delete what it
//!   consumed, and leave what it reported failed for redelivery;
//! - **the schedule:** the aggregate handler runs every `--aggregate-every` seconds.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::encodings::Body as LambdaBody;
use aws_lambda_events::event::sqs::SqsEvent;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use base64::Engine as _;
use clap::Args;
use http::{HeaderMap, StatusCode};
use lambda_runtime::{Context, LambdaEvent};
use resizer_aws::AppState;
use resizer_aws::stack::StackInfo;
use serde_json::{Map, Value, json};
use tokio::task::JoinSet;

use crate::{CliError, CliResult};

/// API Gateway HTTP API's request payload limit.
pub const GATEWAY_PAYLOAD_LIMIT: usize = 10 * 1024 * 1024;
/// Lambda's synchronous invocation payload limit (the event, with its base64 body).
pub const LAMBDA_PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;
/// The template's SQS batch size for the resize function.
const BATCH_SIZE: i32 = 1;
/// Long-polling wait, as an event source mapping uses.
const POLL_WAIT_SECONDS: i32 = 20;

#[derive(Debug, Args)]
pub struct DevArgs {
    /// The deployed (local) stack whose outputs name the buckets, queues and tables.
    #[arg(long, env = "RESIZER_STACK", default_value = "resizer-local")]
    stack: String,
    /// Address to serve on; loopback only.
    #[arg(long, env = "RESIZER_DEV_LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Concurrent resize workers (each is one "Lambda instance").
    #[arg(long, env = "RESIZER_DEV_WORKERS", default_value_t = 2)]
    workers: usize,
    /// Seconds between aggregation runs (the template's schedule is every 5 minutes).
    #[arg(long, env = "RESIZER_DEV_AGGREGATE_EVERY", default_value_t = 300)]
    aggregate_every: u64,
    /// Where the demo key and sample image are kept.
    #[arg(long, env = "RESIZER_DEV_STATE", default_value = ".local/dev")]
    state_dir: PathBuf,
    /// Skip creating the demo customer and key.
    #[arg(long)]
    no_demo: bool,
}

pub async fn run(args: DevArgs) -> CliResult {
    init_logs();
    if !args.listen.ip().is_loopback() {
        return Err(CliError::new(format!(
            "--listen must be a loopback address, got {}",
            args.listen
        )));
    }
    let sdk = resizer_aws::load_sdk_config().await;
    let stack = StackInfo::describe(&sdk, &args.stack).await.map_err(|e| {
        CliError::new(format!(
            "cannot read stack {:?} ({e}); is the local AWS up and provisioned (`make dev`)?",
            args.stack
        ))
    })?;
    let config = stack.config()?;
    let queue_arn = stack
        .outputs
        .get("JobsQueueArn")
        .cloned()
        .unwrap_or_default();
    let dlq_url = stack.outputs.get("JobsDlqUrl").cloned();
    let state = Arc::new(AppState::new(&sdk, config));
    tracing::info!(
        stack = %args.stack,
        endpoint = sdk.endpoint_url().unwrap_or("(AWS default)"),
        "resizer dev starting"
    );

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| CliError::new(format!("cannot listen on {}: {e}", args.listen)))?;

    if !args.no_demo {
        let demo = demo_credentials(&state, &args.state_dir).await?;
        print_quickstart(&args, &demo);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = JoinSet::new();
    for i in 0..args.workers.max(1) {
        let url = state.config.jobs_queue_url.clone();
        tasks.spawn(worker(
            state.clone(),
            stop.clone(),
            url,
            queue_arn.clone(),
            format!("resize-{i}"),
        ));
    }
    if let (Some(url), Some(arn)) = (dlq_url, state.config.jobs_dlq_arn.clone()) {
        tasks.spawn(worker(state.clone(), stop.clone(), url, arn, "dlq".into()));
    }
    tasks.spawn(aggregator(
        state.clone(),
        stop.clone(),
        Duration::from_secs(args.aggregate_every.max(1)),
    ));

    let app_state = state.clone();
    let app = axum::Router::new()
        .fallback(
            move |ConnectInfo(peer): ConnectInfo<SocketAddr>, req: Request| {
                let state = app_state.clone();
                async move { gateway(&state, peer, req).await }
            },
        )
        .into_make_service_with_connect_info::<SocketAddr>();
    tracing::info!(listen = %args.listen, "serving the HTTP API");
    let serve = axum::serve(listener, app).with_graceful_shutdown(shutdown_signal());
    if let Err(e) = serve.await {
        tracing::error!(error = %e, "server error");
    }
    tracing::info!("shutting down: letting in-flight jobs finish");
    stop.store(true, Ordering::SeqCst);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(60), drain)
        .await
        .is_err()
    {
        tracing::warn!("workers still busy after 60 s; their messages return to the queue");
    }
    tracing::info!("stopped");
    Ok(())
}

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn")
    });
    let _ = tracing_subscriber::fmt()
        .compact()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(false)
        .try_init();
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

// ---- API Gateway -----------------------------------------------------------------------------

fn gateway_error(status: StatusCode, message: &str) -> Response {
    // API Gateway's own errors have this shape, not the API's.
    let mut r = Response::new(Body::from(json!({"message": message}).to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

async fn gateway(state: &AppState, peer: SocketAddr, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, GATEWAY_PAYLOAD_LIMIT).await {
        Ok(b) => b,
        Err(_) => return gateway_error(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large"),
    };
    let request_id = new_request_id();
    let event = build_event(&parts, &bytes, peer, &request_id);
    if event.to_string().len() > LAMBDA_PAYLOAD_LIMIT {
        return gateway_error(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    }
    let event: ApiGatewayV2httpRequest = match serde_json::from_value(event) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "could not build the API Gateway event");
            return gateway_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
        }
    };
    let lambda_id = uuid_like();
    let resp = resizer_api::handle(state, event, &lambda_id).await;
    into_http(resp)
}

/// The payload format 2.0 event API Gateway's HTTP API sends for this request.
pub fn build_event(
    parts: &http::request::Parts,
    body: &[u8],
    peer: SocketAddr,
    request_id: &str,
) -> Value {
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in &parts.headers {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == http::header::COOKIE {
            cookies.extend(v.split(';').map(|c| c.trim().to_owned()));
            continue;
        }
        match headers.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::String(v));
            }
        }
    }
    let raw_query = parts.uri.query().unwrap_or("").to_owned();
    let mut query = Map::new();
    for (k, v) in form_urlencoded::parse(raw_query.as_bytes()) {
        match query.get_mut(k.as_ref()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                query.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        }
    }
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (body_value, is_b64) = if body.is_empty() {
        (Value::Null, false)
    } else if is_textual(content_type)
        && let Ok(text) = std::str::from_utf8(body)
    {
        (Value::String(text.to_owned()), false)
    } else {
        (
            Value::String(base64::engine::general_purpose::STANDARD.encode(body)),
            true,
        )
    };
    let now = time::OffsetDateTime::now_utc();
    let path = parts.uri.path().to_owned();
    let user_agent = parts
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split('.').next().unwrap_or(host),
            "http": {
                "method": parts.method.as_str(),
                "path": path,
                "protocol": format!("{:?}", parts.version),
                "sourceIp": peer.ip().to_string(),
                "userAgent": user_agent,
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": now.format(&time::format_description::well_known::Rfc2822).unwrap_or_default(),
            "timeEpoch": (now.unix_timestamp_nanos() / 1_000_000) as i64,
        },
        "isBase64Encoded": is_b64,
    });
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
    }
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if !body_value.is_null() {
        event["body"] = body_value;
    }
    event
}

/// API Gateway passes these through as text; everything else is base64-encoded.
fn is_textual(content_type: &str) -> bool {
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    ct.starts_with("text/")
        || ct == "application/json"
        || ct.ends_with("+json")
        || ct == "application/xml"
        || ct == "application/x-www-form-urlencoded"
}

fn into_http(resp: aws_lambda_events::apigw::ApiGatewayV2httpResponse) -> Response {
    let body = match resp.body {
        Some(LambdaBody::Text(t)) if resp.is_base64_encoded => {
            base64::engine::general_purpose::STANDARD
                .decode(t.as_bytes())
                .unwrap_or_default()
        }
        Some(LambdaBody::Text(t)) => t.into_bytes(),
        Some(LambdaBody::Binary(b)) => b,
        _ => Vec::new(),
    };
    let mut r = Response::new(Body::from(body));
    *r.status_mut() =
        StatusCode::from_u16(resp.status_code as u16).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers: &mut HeaderMap = r.headers_mut();
    for (k, v) in &resp.headers {
        headers.insert(k.clone(), v.clone());
    }
    r
}

fn new_request_id() -> String {
    // API Gateway's look: base64-ish, 16 chars, ending in "=".
    let id = uuid_like().replace('-', "");
    format!("{}=", &id[..15])
}

fn uuid_like() -> String {
    resizer_core::job::generate_upload_id()
}

// ---- SQS event source mapping ----------------------------------------------------------------

async fn worker(
    state: Arc<AppState>,
    stop: Arc<AtomicBool>,
    queue_url: String,
    queue_arn: String,
    name: String,
) {
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    while !stop.load(Ordering::SeqCst) {
        // The long poll is never abandoned: SQS would still hand messages to a poll whose caller
        // has gone, and they would stay invisible for the visibility timeout (minutes). So a stop
        // waits for the poll to return (at most POLL_WAIT_SECONDS) and gives back what it got.
        let received = state
            .queue
            .receive(&queue_url, BATCH_SIZE, POLL_WAIT_SECONDS)
            .await;
        let messages = match received {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(worker = %name, error = %e, "receive failed; retrying in 2 s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {},
                    _ = wait_for_stop(&stop) => {},
                }
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        if stop.load(Ordering::SeqCst) {
            for m in &messages {
                if let Some(handle) = m.receipt_handle()
                    && let Err(e) = state.queue.release(&queue_url, handle, 0).await
                {
                    tracing::warn!(worker = %name, error = %e, "could not return a message at shutdown; SQS redelivers it after the visibility timeout");
                }
            }
            tracing::info!(worker = %name, messages = messages.len(), "shutting down: returned received messages to the queue");
            break;
        }
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                let attrs: Map<String, Value> = m
                    .attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone())))
                            .collect()
                    })
                    .unwrap_or_default();
                json!({
                    "messageId": m.message_id(),
                    "receiptHandle": m.receipt_handle(),
                    "body": m.body(),
                    "md5OfBody": m.md5_of_body(),
                    "attributes": attrs,
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "eventSourceARN": queue_arn,
                    "awsRegion": region,
                })
            })
            .collect();
        let event: SqsEvent = match serde_json::from_value(json!({"Records": records})) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(worker = %name, error = %e, "could not build the SQS event");
                continue;
            }
        };
        let mut ctx = Context::default();
        ctx.request_id = uuid_like();
        let started = Instant::now();
        let failed: Vec<String> = match resizer_resize::handler(
            &state,
            LambdaEvent::new(event, ctx),
        )
        .await
        {
            Ok(resp) => resp
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect(),
            Err(e) => {
                tracing::error!(worker = %name, error = %e, "handler error: the whole batch is retried");
                messages
                    .iter()
                    .filter_map(|m| m.message_id().map(str::to_owned))
                    .collect()
            }
        };
        for m in &messages {
            let id = m.message_id().unwrap_or_default();
            if failed.iter().any(|f| f == id) {
                // Left invisible: SQS redelivers it after the visibility timeout, as with Lambda.
                continue;
            }
            if let Some(handle) = m.receipt_handle()
                && let Err(e) = state.queue.delete(&queue_url, handle).await
            {
                tracing::warn!(worker = %name, error = %e, "delete failed; the message will be redelivered");
            }
        }
        tracing::debug!(worker = %name, elapsed_ms = started.elapsed().as_millis() as u64, "batch done");
    }
}

async fn wait_for_stop(stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---- schedule --------------------------------------------------------------------------------

async fn aggregator(state: Arc<AppState>, stop: Arc<AtomicBool>, every: Duration) {
    let mut next = tokio::time::Instant::now() + Duration::from_secs(5).min(every);
    while !stop.load(Ordering::SeqCst) {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {},
            _ = wait_for_stop(&stop) => break,
        }
        next += every;
        if let Err(e) = resizer_aggregate::run(&state).await {
            tracing::warn!(error = %e, "aggregation failed; next run retries");
        }
    }
}

// ---- demo customer ---------------------------------------------------------------------------

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Demo {
    customer_id: String,
    api_key: String,
}

async fn demo_credentials(state: &AppState, dir: &Path) -> CliResult<Demo> {
    let file = dir.join("demo-key.json");
    if let Ok(text) = std::fs::read_to_string(&file)
        && let Ok(demo) = serde_json::from_str::<Demo>(&text)
        && let Some(key) = resizer_core::key::ApiKey::parse(&demo.api_key)
        && let Ok(Some(rec)) = state.tables.get_key(key.key_id()).await
        && rec.status == resizer_core::key::KeyStatus::Active
        && key.verify(&rec.secret_hash)
    {
        return Ok(demo);
    }
    let customer = crate::admin::create_customer(state, "Demo", None).await?;
    let (_, key) = crate::admin::create_key(state, &customer.customer_id).await?;
    let demo = Demo {
        customer_id: customer.customer_id,
        api_key: key.expose(),
    };
    std::fs::create_dir_all(dir)?;
    write_private(
        &file,
        &serde_json::to_string_pretty(&demo).unwrap_or_default(),
    )?;
    std::fs::write(dir.join("api-key"), &demo.api_key)?;
    tracing::info!(customer_id = %demo.customer_id, file = %file.display(), "created the demo customer and key");
    Ok(demo)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

fn print_quickstart(args: &DevArgs, demo: &Demo) {
    let base = format!("http://{}", args.listen);
    let sample = args.state_dir.join("sample.jpg");
    if !sample.exists()
        && let Err(e) = std::fs::write(&sample, sample_photo())
    {
        tracing::warn!(error = %e, "could not write the sample image");
    }
    let text = format!(
        "Resizer is serving on {base} (demo customer {customer}).\n\n\
         Resize an image (the sample below, or any JPEG, PNG, WebP or GIF of yours):\n\n  \
         curl -sS -X POST '{base}/v1/jobs?width=400&format=webp&wait=10' \\\n    \
         -H 'Authorization: Bearer {key}' \\\n    \
         -H 'Content-Type: image/jpeg' --data-binary @{sample}\n\n\
         The answer's result.url downloads the resized image. Or with the CLI:\n\n  \
         export RESIZER_API_KEY={key}\n  \
         .local/bin/resizer resize {sample} --width 400 -o thumb.jpg\n",
        customer = demo.customer_id,
        key = demo.api_key,
        sample = sample.display(),
    );
    println!("\n{text}");
    if let Err(e) = std::fs::write(args.state_dir.join("quickstart.txt"), &text) {
        tracing::warn!(error = %e, "could not write quickstart.txt");
    }
}

/// A 1600x1067 landscape-like JPEG (sky, sun, hills, texture), so the quickstart works without a
/// photo at hand.
fn sample_photo() -> Vec<u8> {
    let (w, h) = (1600u32, 1067u32);
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let noise = (seed % 17) as f32 - 8.0;
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        let hill = 0.62 + 0.08 * (fx * 9.0).sin() + 0.04 * (fx * 23.0 + 1.0).sin();
        let (dx, dy) = (fx - 0.72, fy - 0.25);
        let sun = (dx * dx + dy * dy * 2.0).sqrt() < 0.06;
        let rgb = if sun {
            [255.0, 236.0, 170.0]
        } else if fy > hill {
            let d = (fy - hill) * 2.0;
            [40.0 + 60.0 * d, 110.0 - 40.0 * d, 40.0 + 10.0 * d]
        } else {
            [90.0 + 120.0 * fy, 150.0 + 80.0 * fy, 235.0 - 20.0 * fy]
        };
        image::Rgb(rgb.map(|c| (c + noise).clamp(0.0, 255.0) as u8))
    });
    let mut out = Vec::new();
    let _ = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 88).encode_image(&img);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_payload_v2() {
        let req = http::Request::builder()
            .method("POST")
            .uri("/v1/jobs?width=400&fit=cover&width=500&q=a%20b")
            .header("content-type", "image/jpeg")
            .header("x-api-key", "k")
            .header("cookie", "a=1; b=2")
            .body(())
            .unwrap();
        let (parts, _) = req.into_parts();
        let peer: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        let ev = build_event(&parts, &[0xff, 0xd8, 0xff], peer, "rid=");
        assert_eq!(ev["version"], "2.0");
        assert_eq!(ev["rawPath"], "/v1/jobs");
        assert_eq!(
            ev["rawQueryString"],
            "width=400&fit=cover&width=500&q=a%20b"
        );
        assert_eq!(ev["queryStringParameters"]["width"], "400,500");
        assert_eq!(ev["queryStringParameters"]["q"], "a b");
        assert_eq!(ev["isBase64Encoded"], true);
        assert_eq!(ev["body"], "/9j/");
        assert_eq!(ev["cookies"], json!(["a=1", "b=2"]));
        assert_eq!(ev["requestContext"]["http"]["method"], "POST");
        assert_eq!(ev["requestContext"]["http"]["sourceIp"], "127.0.0.1");
        let typed: ApiGatewayV2httpRequest = serde_json::from_value(ev).unwrap();
        assert_eq!(typed.request_context.http.method, http::Method::POST);
        assert_eq!(typed.headers.get("x-api-key").unwrap(), "k");

        let req = http::Request::builder()
            .method("POST")
            .uri("/v1/jobs")
            .header("content-type", "application/json")
            .body(())
            .unwrap();
        let (parts, _) = req.into_parts();
        let ev = build_event(&parts, br#"{"upload_id":"x"}"#, peer, "rid=");
        assert_eq!(ev["isBase64Encoded"], false);
        assert_eq!(ev["body"], r#"{"upload_id":"x"}"#);
        assert!(ev.get("queryStringParameters").is_none());
    }
}
