//! `resizer dev`: the whole service on one machine.
//!
//! Community LocalStack cannot run the functions (no Docker here) nor create the HTTP API, so this
//! process does what AWS would, with the real handlers:
//! - **API Gateway (HTTP API, payload 2.0):** the api function's router serves HTTP as it is,
//!   behind API Gateway's 10 MB payload limit and Lambda's 6 MB invoke limit (on the base64
//!   body), which answer with API Gateway's own bare 413;
//! - **SQS event source mappings:** workers long-poll the jobs queue (and its DLQ) with the
//!   template's batch size, call the resize handler with a real SQS event, delete what it
//!   consumed, and leave what it reported failed for redelivery;
//! - **the schedule:** the aggregate handler runs every `--aggregate-every` seconds.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use clap::Args;
use http::StatusCode;
use lambda_runtime::{Context, LambdaEvent};
use resizer_app::App;
use resizer_aws::resources;
use resizer_aws::sqs::SqsQueue;
use resizer_aws::stack::StackInfo;
use resizer_resize::Resize;
use serde_json::{Map, Value, json};
use tokio::task::JoinSet;

use crate::{CliError, CliResult};

/// API Gateway HTTP API's request payload limit.
pub const GATEWAY_PAYLOAD_LIMIT: usize = 10 * 1024 * 1024;
/// Lambda's synchronous invocation payload limit (the event, with its base64 body).
pub const LAMBDA_PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;
/// The event's fields around the body and headers, roughly (request context, path, query).
const EVENT_OVERHEAD: usize = 1024;
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
    let app = stack.app(&sdk)?;
    let resources = stack.resources()?;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let jobs_queue = SqsQueue::new(sqs.clone(), &resources.jobs_queue_url);
    let queue_arn = stack
        .output(resources::JOBS_QUEUE_ARN)
        .unwrap_or_default()
        .to_owned();
    let dlq = stack
        .output(resources::JOBS_DLQ_URL)
        .map(|url| SqsQueue::new(sqs, url));
    let resize = Arc::new(Resize::new(app.clone(), resources.jobs_dlq_arn.clone()));
    tracing::info!(
        stack = %args.stack,
        endpoint = sdk.endpoint_url().unwrap_or("(AWS default)"),
        "resizer dev starting"
    );

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| CliError::new(format!("cannot listen on {}: {e}", args.listen)))?;

    if !args.no_demo {
        let demo = demo_credentials(&app, &args.state_dir).await?;
        print_quickstart(&args, &demo);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = JoinSet::new();
    for i in 0..args.workers.max(1) {
        tasks.spawn(worker(
            resize.clone(),
            stop.clone(),
            jobs_queue.clone(),
            queue_arn.clone(),
            format!("resize-{i}"),
        ));
    }
    if let (Some(dlq), Some(arn)) = (dlq, resources.jobs_dlq_arn.clone()) {
        tasks.spawn(worker(resize.clone(), stop.clone(), dlq, arn, "dlq".into()));
    }
    tasks.spawn(aggregator(
        app.clone(),
        stop.clone(),
        Duration::from_secs(args.aggregate_every.max(1)),
    ));

    let gateway = axum::Router::new()
        .fallback_service(resizer_api::router(app))
        .layer(axum::middleware::from_fn(payload_limits));
    tracing::info!(listen = %args.listen, "serving the HTTP API");
    let serve = axum::serve(listener, gateway).with_graceful_shutdown(shutdown_signal());
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

/// API Gateway's payload limit, and Lambda's on the event (whose binary body is base64).
async fn payload_limits(req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, GATEWAY_PAYLOAD_LIMIT).await else {
        return gateway_error(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    };
    let headers: usize = parts
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 6)
        .sum();
    if bytes.len().div_ceil(3) * 4 + headers + EVENT_OVERHEAD > LAMBDA_PAYLOAD_LIMIT {
        return gateway_error(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

// ---- SQS event source mapping ----------------------------------------------------------------

async fn worker(
    state: Arc<Resize>,
    stop: Arc<AtomicBool>,
    queue: SqsQueue,
    queue_arn: String,
    name: String,
) {
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    while !stop.load(Ordering::SeqCst) {
        // The long poll is never abandoned: SQS would still hand messages to a poll whose caller
        // has gone, and they would stay invisible for the visibility timeout (minutes). So a stop
        // waits for the poll to return (at most POLL_WAIT_SECONDS) and gives back what it got.
        let received = queue.receive(BATCH_SIZE, POLL_WAIT_SECONDS).await;
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
                    && let Err(e) = queue.release(handle, 0).await
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
        ctx.request_id = uuid::Uuid::new_v4().to_string();
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
                && let Err(e) = queue.delete(handle).await
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

async fn aggregator(app: App, stop: Arc<AtomicBool>, every: Duration) {
    let mut next = tokio::time::Instant::now() + Duration::from_secs(5).min(every);
    while !stop.load(Ordering::SeqCst) {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {},
            _ = wait_for_stop(&stop) => break,
        }
        next += every;
        if let Err(e) = app.aggregate().await {
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

async fn demo_credentials(state: &App, dir: &Path) -> CliResult<Demo> {
    let file = dir.join("demo-key.json");
    if let Ok(text) = std::fs::read_to_string(&file)
        && let Ok(demo) = serde_json::from_str::<Demo>(&text)
        && let Some(key) = resizer_core::key::ApiKey::parse(&demo.api_key)
        && let Ok(Some(rec)) = state.stores.accounts.get_key(key.key_id()).await
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
