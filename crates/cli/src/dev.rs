//! `resizer dev`: the HTTP API on `127.0.0.1:3000`, in front of the locally deployed stack.
//!
//! Community LocalStack cannot create the HTTP API, but it gives the api function a function URL
//! (the same payload 2.0 events, served by the real api binary). LocalStack routes a function URL
//! by its `Host` header (`<id>.lambda-url.<region>.<host>`), a name nothing resolves here, so this
//! is a thin forwarder: it sends each request to the local AWS endpoint with that `Host`, streaming
//! both bodies, and adds nothing else. Everything else is the deployed stack's own doing: the
//! resize function is fed by LocalStack's event source mappings, the aggregator by its rule.
//!
//! It also makes sure a demo customer and key exist and prints a ready-to-paste request.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use clap::Args;
use futures::TryStreamExt as _;
use http::{HeaderValue, StatusCode};
use resizer_app::App;
use resizer_aws::resources;
use resizer_aws::stack::StackInfo;

use crate::{CliError, CliResult};

#[derive(Debug, Args)]
pub struct DevArgs {
    /// The deployed (local) stack whose api function URL is served.
    #[arg(long, env = "RESIZER_STACK", default_value = "resizer-local")]
    stack: String,
    /// Address to serve on; loopback only.
    #[arg(long, env = "RESIZER_DEV_LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Where the demo key and sample image are kept.
    #[arg(long, env = "RESIZER_DEV_STATE", default_value = ".local/dev")]
    state_dir: PathBuf,
    /// Skip creating the demo customer and key.
    #[arg(long)]
    no_demo: bool,
}

/// Where requests go.
#[derive(Debug, Clone)]
struct Target {
    http: reqwest::Client,
    /// The local AWS endpoint, e.g. `http://127.0.0.1:4566`.
    endpoint: String,
    /// The function URL's host, e.g. `<id>.lambda-url.us-east-1.127.0.0.1:4566`.
    host: HeaderValue,
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
    let url = stack.output(resources::API_FUNCTION_URL).ok_or_else(|| {
        CliError::new(format!(
            "stack {:?} has no {} output: deploy it with `make provision` (ApiFunctionUrl=true)",
            args.stack,
            resources::API_FUNCTION_URL.output
        ))
    })?;
    let endpoint = sdk
        .endpoint_url()
        .ok_or_else(|| {
            CliError::new("AWS_ENDPOINT_URL is not set: `resizer dev` serves a local stack only")
        })?
        .trim_end_matches('/')
        .to_owned();
    let host = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .trim_end_matches('/');
    let target = Arc::new(Target {
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| CliError::new(format!("cannot build the HTTP client: {e}")))?,
        endpoint,
        host: HeaderValue::from_str(host)
            .map_err(|_| CliError::new(format!("the function URL {url:?} has no usable host")))?,
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| CliError::new(format!("cannot listen on {}: {e}", args.listen)))?;
    tracing::info!(stack = %args.stack, function_url = %url, "resizer dev starting");

    if !args.no_demo {
        let app = stack.app(&sdk)?;
        let demo = demo_credentials(&app, &args.state_dir).await?;
        print_quickstart(&args, &demo);
    }

    let app = axum::Router::new().fallback(forward).with_state(target);
    tracing::info!(listen = %args.listen, "serving the HTTP API");
    let serve = axum::serve(listener, app).with_graceful_shutdown(shutdown_signal());
    if let Err(e) = serve.await {
        tracing::error!(error = %e, "server error");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Hop-by-hop headers (RFC 9110 section 7.6.1) are the connection's, not the request's.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// One request to the function URL and its response back, bodies streamed.
async fn forward(State(t): State<Arc<Target>>, req: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut headers = parts.headers;
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
    headers.insert(http::header::HOST, t.host.clone());
    let upstream = t
        .http
        .request(parts.method.clone(), format!("{}{path}", t.endpoint))
        .headers(headers)
        .body(reqwest::Body::wrap_stream(body.into_data_stream()))
        .send()
        .await;
    let resp = match upstream {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(method = %parts.method, path = %path, error = %e, "the local AWS did not answer");
            let mut r = Response::new(Body::from(
                r#"{"message":"the local AWS did not answer (is it up? `make status`)"}"#,
            ));
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            return r;
        }
    };
    let status = resp.status();
    tracing::info!(
        method = %parts.method, path = %path, status = status.as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64, "request"
    );
    let mut out = Response::builder().status(status);
    for (k, v) in resp.headers() {
        if !HOP_BY_HOP.contains(&k.as_str()) {
            out = out.header(k, v);
        }
    }
    out.body(Body::from_stream(
        resp.bytes_stream().map_err(std::io::Error::other),
    ))
    .unwrap_or_else(|_| Response::new(Body::empty()))
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
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
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
    let customer = crate::admin::create_customer(state, "Demo", None, None).await?;
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
