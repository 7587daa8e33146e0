//! The customer's side: `resizer resize`, `resizer usage`, `resizer jobs get`, `resizer presets`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use futures::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use resizer_core::contract::{
    ErrorBody, JobResource, PresetListResource, UploadResource, UsageResource,
};
use resizer_core::usage::Totals;
use serde::Deserialize as _;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use crate::{CliError, CliResult, table};

/// Bodies up to this size go inline; larger ones through `/v1/uploads` (the API's default inline
/// limit is 4 MiB).
const INLINE_MAX: u64 = 4 * 1024 * 1024;
/// Transfers at least this large get a progress bar.
const PROGRESS_MIN: u64 = 1024 * 1024;

#[derive(Debug, Args)]
pub struct Conn {
    /// The API's base URL.
    #[arg(
        long,
        env = "RESIZER_ENDPOINT",
        default_value = "http://127.0.0.1:3000",
        global = true
    )]
    endpoint: String,
    /// Your API key (rsz_…). Against the local gateway, defaults to the demo key `resizer dev`
    /// saved in .local/dev/api-key.
    #[arg(long, env = "RESIZER_API_KEY", hide_env_values = true, global = true)]
    key: Option<String>,
}

#[derive(Debug, Args)]
pub struct ResizeArgs {
    /// The image to resize (JPEG, PNG, WebP or GIF).
    file: PathBuf,
    /// One of your presets (`resizer presets list`); the flags given here override its
    /// parameters.
    #[arg(long)]
    preset: Option<String>,
    #[arg(long)]
    width: Option<u32>,
    #[arg(long)]
    height: Option<u32>,
    /// cover, contain, fill, inside or outside.
    #[arg(long)]
    fit: Option<String>,
    /// jpeg, png, webp or avif (default: the input's; GIF becomes PNG); auto: the service
    /// chooses among all four for the image (this CLI reads every one of them).
    #[arg(long)]
    format: Option<String>,
    /// 1..=100.
    #[arg(long)]
    quality: Option<u32>,
    /// Allow enlarging beyond the input size.
    #[arg(long)]
    enlarge: bool,
    /// Where cover crops and contain places the image: centre, north, …, northwest; entropy or
    /// attention (cover only).
    #[arg(long)]
    position: Option<String>,
    /// The focal point cover centres its crop on, as fractions of width and height: `0.3,0.6`.
    #[arg(long, value_name = "FX,FY")]
    focus: Option<String>,
    /// Degrees clockwise after EXIF orientation: 90, 180 or 270.
    #[arg(long)]
    rotate: Option<u32>,
    /// Mirror top to bottom.
    #[arg(long)]
    flip: bool,
    /// Mirror left to right.
    #[arg(long)]
    flop: bool,
    /// Where to write the result (default: <file stem>-resized.<ext>).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    #[arg(long)]
    from: Option<String>,
    #[arg(long)]
    to: Option<String>,
    /// hour, day or month.
    #[arg(long)]
    granularity: Option<String>,
    /// Print the raw JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Debug, Args)]
pub struct JobsArgs {
    #[command(subcommand)]
    command: JobsCommand,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Debug, Args)]
pub struct PresetsArgs {
    #[command(subcommand)]
    command: PresetsCommand,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Debug, Subcommand)]
enum PresetsCommand {
    /// List your presets.
    List,
    /// Show one preset.
    Get { name: String },
    /// Save a preset from name=value transform parameters, replacing one of that name:
    /// `put thumb width=300 fit=cover format=webp`.
    Put {
        name: String,
        #[arg(required = true, value_name = "PARAM=VALUE")]
        params: Vec<String>,
    },
    /// Delete a preset.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
enum JobsCommand {
    /// Show a job (its result URL is freshly signed on every call).
    Get { job_id: String },
}

struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    fn new(conn: &Conn) -> CliResult<Self> {
        let base = conn.endpoint.trim_end_matches('/').to_owned();
        let key = match &conn.key {
            Some(k) => k.clone(),
            None => std::fs::read_to_string(".local/dev/api-key")
                .map(|k| k.trim().to_owned())
                .map_err(|_| {
                    CliError::new(
                        "no API key: pass --key or set RESIZER_API_KEY (against `make dev`, the \
                         demo key is in .local/dev/api-key)",
                    )
                })?,
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| CliError::new(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { http, base, key })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request and reads the resource it answers with.
    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> CliResult<T> {
        let body = self.send_raw(req).await?;
        serde_json::from_value(body)
            .map_err(|e| CliError::new(format!("unexpected answer from {}: {e}", self.base)))
    }

    /// Sends a request; turns an API error body into its message.
    async fn send_raw(&self, req: reqwest::RequestBuilder) -> CliResult<Value> {
        let resp = req.bearer_auth(&self.key).send().await.map_err(|e| {
            CliError::new(format!("cannot reach {}: {}", self.base, root_cause(&e)))
        })?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| CliError::new(format!("reading the response: {e}")))?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            Ok(body)
        } else {
            Err(api_error(status, &body))
        }
    }
}

fn api_error(status: reqwest::StatusCode, body: &Value) -> CliError {
    match ErrorBody::deserialize(body) {
        Ok(ErrorBody { error: e }) => CliError::new(format!(
            "{} {}: {} (request_id {})",
            status.as_u16(),
            e.code,
            e.message,
            e.request_id
        )),
        Err(_) => CliError::new(format!("{status}: {body}")),
    }
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// The image's type from its magic bytes.
fn sniff_mime(head: &[u8]) -> &'static str {
    match head {
        [0xFF, 0xD8, 0xFF, ..] => "image/jpeg",
        [0x89, b'P', b'N', b'G', ..] => "image/png",
        [b'G', b'I', b'F', b'8', ..] => "image/gif",
        [
            b'R',
            b'I',
            b'F',
            b'F',
            _,
            _,
            _,
            _,
            b'W',
            b'E',
            b'B',
            b'P',
            ..,
        ] => "image/webp",
        _ => "application/octet-stream",
    }
}

fn progress(len: u64, what: &str) -> ProgressBar {
    if len < PROGRESS_MIN {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(what.to_owned());
    pb
}

/// A body that advances a progress bar as it is sent.
fn streamed(data: Vec<u8>, pb: ProgressBar) -> reqwest::Body {
    let chunks: Vec<Vec<u8>> = data.chunks(64 * 1024).map(<[u8]>::to_vec).collect();
    let stream = futures::stream::iter(chunks).map(move |c| {
        pb.inc(c.len() as u64);
        Ok::<_, std::io::Error>(c)
    });
    reqwest::Body::wrap_stream(stream)
}

fn params(a: &ResizeArgs) -> Vec<(&'static str, String)> {
    let mut p = Vec::new();
    if let Some(name) = &a.preset {
        p.push(("preset", name.clone()));
    }
    if let Some(w) = a.width {
        p.push(("width", w.to_string()));
    }
    if let Some(h) = a.height {
        p.push(("height", h.to_string()));
    }
    if let Some(f) = &a.fit {
        p.push(("fit", f.clone()));
    }
    if let Some(f) = &a.format {
        p.push(("format", f.clone()));
    }
    if let Some(q) = a.quality {
        p.push(("quality", q.to_string()));
    }
    if a.enlarge {
        p.push(("enlarge", "true".into()));
    }
    if let Some(v) = &a.position {
        p.push(("position", v.clone()));
    }
    if let Some(focus) = &a.focus {
        // The service checks the numbers; a missing comma leaves fy out, which it names.
        let (fx, fy) = focus.split_once(',').unwrap_or((focus, ""));
        p.push(("fx", fx.trim().to_owned()));
        if !fy.is_empty() {
            p.push(("fy", fy.trim().to_owned()));
        }
    }
    if let Some(r) = a.rotate {
        p.push(("rotate", r.to_string()));
    }
    if a.flip {
        p.push(("flip", "true".into()));
    }
    if a.flop {
        p.push(("flop", "true".into()));
    }
    p
}

pub async fn resize(a: ResizeArgs) -> CliResult {
    let api = Api::new(&a.conn)?;
    let started = Instant::now();
    let data = std::fs::read(&a.file)
        .map_err(|e| CliError::new(format!("cannot read {}: {e}", a.file.display())))?;
    let len = data.len() as u64;
    let mime = sniff_mime(&data);
    let wait = a.timeout.clamp(1, 20);
    let mut query = params(&a);
    // What `format=auto` chooses from: this CLI saves whatever comes back.
    const ACCEPT: &str = "image/avif,image/webp,image/png,image/jpeg";
    let mut job: JobResource = if len <= INLINE_MAX {
        query.push(("wait", wait.to_string()));
        let pb = progress(len, "upload");
        let r = api
            .send(
                api.http
                    .post(api.url("/v1/jobs"))
                    .query(&query)
                    .header("accept", ACCEPT)
                    .header("content-type", mime)
                    .header("content-length", len)
                    .body(streamed(data, pb.clone())),
            )
            .await;
        pb.finish_and_clear();
        r?
    } else {
        let upload: UploadResource = api.send(api.http.post(api.url("/v1/uploads"))).await?;
        if len > upload.max_bytes {
            return Err(CliError::new(format!(
                "{} is {len} bytes, over the upload limit of {} bytes",
                a.file.display(),
                upload.max_bytes
            )));
        }
        let pb = progress(len, "upload");
        // The presigned POST: its fields, then the file (last, as S3 requires).
        let mut form = reqwest::multipart::Form::new();
        for (k, v) in &upload.fields {
            form = form.text(k.clone(), v.clone());
        }
        let file = reqwest::multipart::Part::stream_with_length(streamed(data, pb.clone()), len)
            .file_name(
                a.file
                    .file_name()
                    .map_or("image".into(), |n| n.to_string_lossy().into_owned()),
            )
            .mime_str(mime)
            .map_err(|e| CliError::new(format!("upload failed: {e}")))?;
        let post = api
            .http
            .post(&upload.url)
            .multipart(form.part("file", file))
            .send()
            .await
            .map_err(|e| CliError::new(format!("upload failed: {}", root_cause(&e))))?;
        pb.finish_and_clear();
        if !post.status().is_success() {
            let status = post.status();
            let body = post.text().await.unwrap_or_default();
            return Err(CliError::new(format!(
                "upload failed: HTTP {status}: {}",
                resizer_core::shorten(body.trim(), 300)
            )));
        }
        let mut body = json!({"upload_id": upload.upload_id, "wait": wait});
        for (k, v) in &query {
            body[*k] = json!(v);
        }
        api.send(
            api.http
                .post(api.url("/v1/jobs"))
                .header("accept", ACCEPT)
                .json(&body),
        )
        .await?
    };
    let deadline = started + Duration::from_secs(a.timeout);
    while !job.status.is_terminal() {
        if Instant::now() >= deadline {
            return Err(CliError::new(format!(
                "job {} still {} after {} s; check it later with `resizer jobs get {}`",
                job.job_id, job.status, a.timeout, job.job_id
            )));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        job = api.send(api.http.get(api.url(&job.status_url))).await?;
    }
    if let Some(e) = &job.error {
        return Err(CliError::new(format!(
            "job {} failed: {}: {}",
            job.job_id, e.code, e.message
        )));
    }
    let result = job
        .result
        .as_ref()
        .ok_or_else(|| CliError::new("the finished job has no result url"))?;
    let format = result.format.as_str();
    let out = a
        .output
        .clone()
        .unwrap_or_else(|| default_output(&a.file, format));
    let bytes = download(&api.http, &result.url, result.bytes).await?;
    std::fs::write(&out, &bytes)
        .map_err(|e| CliError::new(format!("cannot write {}: {e}", out.display())))?;
    println!(
        "{}: {}x{} {format}, {} bytes (from {}x{} {}, {len} bytes) in {:.2} s, job {}",
        out.display(),
        result.width,
        result.height,
        bytes.len(),
        job.input.width,
        job.input.height,
        job.input.format,
        started.elapsed().as_secs_f64(),
        job.job_id,
    );
    Ok(())
}

fn default_output(input: &Path, format: &str) -> PathBuf {
    let stem = input
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("image");
    let ext = if format == "jpeg" { "jpg" } else { format };
    input.with_file_name(format!("{stem}-resized.{ext}"))
}

async fn download(http: &reqwest::Client, url: &str, expected: u64) -> CliResult<Vec<u8>> {
    let resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| CliError::new(format!("download failed: {}", root_cause(&e))))?;
    if !resp.status().is_success() {
        return Err(CliError::new(format!(
            "download failed: HTTP {}",
            resp.status()
        )));
    }
    let total = resp.content_length().unwrap_or(expected);
    let pb = progress(total, "download");
    let mut out = Vec::with_capacity(total as usize);
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| CliError::new(format!("download failed: {e}")))?;
        pb.inc(chunk.len() as u64);
        out.extend_from_slice(&chunk);
    }
    pb.finish_and_clear();
    Ok(out)
}

pub async fn usage(a: UsageArgs) -> CliResult {
    let api = Api::new(&a.conn)?;
    let mut q: Vec<(&str, &str)> = Vec::new();
    for (k, v) in [
        ("from", &a.from),
        ("to", &a.to),
        ("granularity", &a.granularity),
    ] {
        if let Some(v) = v {
            q.push((k, v));
        }
    }
    let body = api
        .send_raw(api.http.get(api.url("/v1/usage")).query(&q))
        .await?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        );
        return Ok(());
    }
    let usage: UsageResource = serde_json::from_value(body)
        .map_err(|e| CliError::new(format!("unexpected answer from {}: {e}", api.base)))?;
    let row = |label: String, t: &Totals| -> Vec<String> {
        std::iter::once(label)
            .chain(t.values().iter().map(u64::to_string))
            .collect()
    };
    let mut rows: Vec<Vec<String>> = usage
        .items
        .iter()
        .map(|i| row(i.period.clone(), &i.totals))
        .collect();
    rows.push(row("total".into(), &usage.totals));
    let mut headers = vec!["period"];
    headers.extend(Totals::FIELDS);
    println!(
        "{} usage from {} to {}",
        usage.granularity,
        usage.from.format(&Rfc3339).unwrap_or_default(),
        usage.to.format(&Rfc3339).unwrap_or_default()
    );
    print!("{}", table::render(&headers, &rows));
    Ok(())
}

pub async fn jobs(a: JobsArgs) -> CliResult {
    let api = Api::new(&a.conn)?;
    match a.command {
        JobsCommand::Get { job_id } => {
            let path = format!("/v1/jobs/{job_id}");
            let body = api.send_raw(api.http.get(api.url(&path))).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&body).unwrap_or_default()
            );
        }
    }
    Ok(())
}

pub async fn presets(a: PresetsArgs) -> CliResult {
    let api = Api::new(&a.conn)?;
    // The name as one path segment, percent-encoded (a preset name needs none; a mistyped one
    // must still reach the service intact, to be refused there).
    let path = |name: &str| -> CliResult<reqwest::Url> {
        let mut url = reqwest::Url::parse(&api.url("/v1/presets"))
            .map_err(|e| CliError::new(format!("bad --endpoint {:?}: {e}", api.base)))?;
        url.path_segments_mut()
            .map_err(|()| CliError::new(format!("bad --endpoint {:?}", api.base)))?
            .push(name);
        Ok(url)
    };
    let body = match a.command {
        PresetsCommand::List => {
            let list: PresetListResource = api.send(api.http.get(api.url("/v1/presets"))).await?;
            print!("{}", table::presets(&list.presets));
            return Ok(());
        }
        PresetsCommand::Get { name } => api.send_raw(api.http.get(path(&name)?)).await?,
        PresetsCommand::Put { name, params } => {
            let fields: serde_json::Map<String, Value> = crate::assignments(&params)?
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            api.send_raw(api.http.put(path(&name)?).json(&fields))
                .await?
        }
        PresetsCommand::Delete { name } => {
            api.send_raw(api.http.delete(path(&name)?)).await?;
            println!("preset {name} deleted");
            return Ok(());
        }
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&body).unwrap_or_default()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_and_names() {
        assert_eq!(sniff_mime(&[0xFF, 0xD8, 0xFF, 0xE0]), "image/jpeg");
        assert_eq!(sniff_mime(b"RIFF\0\0\0\0WEBPVP8 "), "image/webp");
        assert_eq!(sniff_mime(b"hello"), "application/octet-stream");
        assert_eq!(
            default_output(Path::new("/a/photo.png"), "jpeg"),
            PathBuf::from("/a/photo-resized.jpg")
        );
    }

    #[test]
    fn crop_and_turn_flags_become_the_service_parameters() {
        #[derive(clap::Parser)]
        struct Cmd {
            #[command(flatten)]
            args: ResizeArgs,
        }
        let parse = |argv: &[&str]| {
            use clap::Parser as _;
            let mut all = vec!["resize", "a.jpg"];
            all.extend_from_slice(argv);
            params(&Cmd::try_parse_from(all).unwrap().args)
        };
        let p = parse(&[
            "--width",
            "300",
            "--height",
            "200",
            "--fit",
            "cover",
            "--focus",
            "0.25, 0.8",
            "--rotate",
            "90",
            "--flop",
        ]);
        let want: Vec<(&str, String)> = [
            ("width", "300"),
            ("height", "200"),
            ("fit", "cover"),
            ("fx", "0.25"),
            ("fy", "0.8"),
            ("rotate", "90"),
            ("flop", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_owned()))
        .collect();
        assert_eq!(p, want);
        let p = parse(&["--width", "9", "--position", "attention", "--flip"]);
        assert_eq!(p[1], ("position", "attention".to_owned()));
        assert_eq!(p[2], ("flip", "true".to_owned()));
        // A preset goes first; the flags given override its parameters at the service.
        assert_eq!(
            parse(&["--preset", "thumb", "--format", "png"]),
            [("preset", "thumb".to_owned()), ("format", "png".to_owned())]
        );
        // Half a focal point is sent as it is, for the service to name what is missing.
        assert_eq!(
            parse(&["--width", "9", "--focus", "0.5"])[1],
            ("fx", "0.5".to_owned())
        );
    }

    #[test]
    fn api_errors_are_one_line() {
        let body = json!({"error": {"code": "invalid_parameter", "message": "width must be 1..=8192, got 0", "request_id": "r1"}});
        let e = api_error(reqwest::StatusCode::BAD_REQUEST, &body);
        assert_eq!(
            e.to_string(),
            "400 invalid_parameter: width must be 1..=8192, got 0 (request_id r1)"
        );
    }
}
