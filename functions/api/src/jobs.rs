//! `POST /v1/jobs` and `GET /v1/jobs/{job_id}`.

use std::time::Duration;

use http::{StatusCode, header};
use resizer_aws::AppState;
use resizer_aws::auth::Principal;
use resizer_core::job::{
    InputMeta, Job, JobId, JobMessage, parse_upload_id, staging_key_inline, staging_key_upload,
};
use resizer_core::pipeline::{self, ImageInfo};
use resizer_core::transform::{Format, TransformSpec};
use serde_json::Value;

use crate::error::ApiError;
use crate::request::Request;
use crate::resource::{render, status_url};
use crate::{Context, Reply, authenticate};

/// Longest `wait`, in seconds (API Gateway's integration timeout is 30 s).
pub const MAX_WAIT_SECONDS: u64 = 20;
/// How much of a large upload is read to sniff its type and dimensions.
const PROBE_PREFIX_BYTES: u64 = 256 * 1024;

const SUPPORTED_TYPES: &str = "image/jpeg, image/png, image/webp or image/gif";

/// Where the image comes from.
enum Source {
    Inline(Vec<u8>),
    Upload(String),
}

struct Submission {
    spec: TransformSpec,
    wait: Option<u64>,
    source: Source,
}

pub async fn create(state: &AppState, req: &Request, ctx: &mut Context) -> Result<Reply, ApiError> {
    let principal = authenticate(state, req, ctx).await?;
    let sub = parse_submission(state, req)?;
    if principal.over_quota() {
        return Err(quota_error(&principal));
    }
    let (job, staged_inline) = match sub.source {
        Source::Inline(body) => stage_inline(state, &principal, sub.spec, body).await?,
        Source::Upload(upload_id) => (
            from_upload(state, &principal, sub.spec, &upload_id).await?,
            false,
        ),
    };
    ctx.job_id = Some(job.job_id.to_string());
    state.tables.put_new_job(&job).await?;
    let msg = JobMessage {
        job_id: job.job_id.clone(),
        customer_id: job.customer_id.clone(),
        enqueued_at_ms: (state.now().unix_timestamp_nanos() / 1_000_000) as i64,
    };
    if let Err(e) = state.queue.send(&msg).await {
        // The client gets an error and no job id, so the job must not linger as `queued`.
        if let Err(d) = state.tables.delete_queued_job(&job.job_id).await {
            tracing::error!(job_id = %job.job_id, error = %d, "could not remove an unqueued job");
        }
        if staged_inline {
            let _ = state
                .s3
                .delete(&state.config.staging_bucket, &job.staging_key)
                .await;
        }
        return Err(e.into());
    }
    match sub.wait {
        Some(secs) => wait_for(state, job, Duration::from_secs(secs)).await,
        None => accepted(state, &job).await,
    }
}

pub async fn get(
    state: &AppState,
    req: &Request,
    id: &str,
    ctx: &mut Context,
) -> Result<Reply, ApiError> {
    let principal = authenticate(state, req, ctx).await?;
    let id = JobId::parse(id).ok_or_else(ApiError::not_found)?;
    ctx.job_id = Some(id.to_string());
    let job = state
        .tables
        .get_job(&id)
        .await?
        .filter(|j| j.customer_id == principal.customer_id)
        .ok_or_else(ApiError::not_found)?;
    Ok(Reply::json(StatusCode::OK, render(state, &job).await?))
}

fn quota_error(p: &Principal) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "quota_exceeded",
        format!(
            "the monthly job quota of {} is used up ({} jobs this month); it resets on the 1st (UTC)",
            p.monthly_job_quota.unwrap_or_default(),
            p.month_jobs
        ),
    )
}

fn parse_wait(v: &str) -> Result<u64, ApiError> {
    let bad = || {
        ApiError::invalid(format!(
            "wait must be an integer 1..={MAX_WAIT_SECONDS} (seconds), got {:?}",
            v.chars().take(40).collect::<String>()
        ))
    };
    let n: u64 = v.trim().parse().map_err(|_| bad())?;
    if (1..=MAX_WAIT_SECONDS).contains(&n) {
        Ok(n)
    } else {
        Err(bad())
    }
}

fn parse_submission(state: &AppState, req: &Request) -> Result<Submission, ApiError> {
    if req.body_undecodable {
        return Err(ApiError::invalid("the request body is not valid base64"));
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut wait = None;
    for (k, v) in &req.query {
        if k == "wait" {
            if wait.is_some() {
                return Err(ApiError::invalid("wait is given more than once"));
            }
            wait = Some(parse_wait(v)?);
        } else {
            pairs.push((k.clone(), v.clone()));
        }
    }
    let content_type = req.content_type().map(|c| {
        c.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    let body = req.body.as_deref().unwrap_or_default();
    let source = if content_type.as_deref() == Some("application/json") {
        let json: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::invalid(format!(
                "the JSON body is invalid ({e}); expected {{\"upload_id\": \"…\", \"width\": 400, …}}"
            ))
        })?;
        let Value::Object(fields) = json else {
            return Err(ApiError::invalid(
                "the JSON body must be an object with upload_id and the transform parameters",
            ));
        };
        let mut upload_id = None;
        for (k, v) in fields {
            let text = match v {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(ApiError::invalid(format!(
                        "{k} must be a string, number or boolean"
                    )));
                }
            };
            match k.as_str() {
                "upload_id" => upload_id = Some(text),
                "wait" => {
                    if wait.is_some() {
                        return Err(ApiError::invalid("wait is given more than once"));
                    }
                    wait = Some(parse_wait(&text)?);
                }
                _ => pairs.push((k, text)),
            }
        }
        let upload_id = upload_id.ok_or_else(|| {
            ApiError::invalid(
                "upload_id is required in a JSON body (get one from POST /v1/uploads); \
                 to send the image itself, use an image Content-Type",
            )
        })?;
        Source::Upload(upload_id)
    } else {
        Source::Inline(Vec::new())
    };
    let spec = TransformSpec::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    let source = match source {
        Source::Upload(id) => Source::Upload(id),
        Source::Inline(_) => {
            let declared = content_type.as_deref().and_then(Format::from_mime);
            if !declared.is_some_and(Format::is_input) {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    format!(
                        "Content-Type must be {SUPPORTED_TYPES} (or application/json with an \
                         upload_id), got {}",
                        content_type
                            .as_deref()
                            .map_or("none".to_string(), |c| format!("{c:?}"))
                    ),
                ));
            }
            let len = body.len() as u64;
            if len > state.config.max_inline_bytes {
                return Err(too_large_inline(len, state));
            }
            if body.is_empty() {
                return Err(ApiError::invalid(
                    "the request body is empty; send the image bytes",
                ));
            }
            Source::Inline(body.to_vec())
        }
    };
    Ok(Submission { spec, wait, source })
}

fn too_large_inline(len: u64, state: &AppState) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!(
            "the body is {len} bytes, over the inline limit of {} bytes; upload larger images \
             with POST /v1/uploads (up to {} bytes)",
            state.config.max_inline_bytes, state.config.max_upload_bytes
        ),
    )
}

fn input_meta(info: ImageInfo, bytes: u64) -> InputMeta {
    InputMeta {
        format: info.format,
        width: info.width,
        height: info.height,
        bytes,
    }
}

async fn stage_inline(
    state: &AppState,
    principal: &Principal,
    spec: TransformSpec,
    body: Vec<u8>,
) -> Result<(Job, bool), ApiError> {
    let info = pipeline::probe(&body, &state.config.limits)?;
    if let Some(why) = truncation(info.format, &body) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_image",
            format!("the {} image is truncated: {why}", info.format),
        ));
    }
    let bytes = body.len() as u64;
    let mut job = Job::new(
        principal.customer_id.clone(),
        spec,
        input_meta(info, bytes),
        String::new(),
        state.now(),
    );
    job.staging_key = staging_key_inline(&principal.customer_id, &job.job_id);
    state
        .s3
        .put(
            &state.config.staging_bucket,
            &job.staging_key,
            body,
            info.format.mime(),
        )
        .await?;
    Ok((job, true))
}

async fn from_upload(
    state: &AppState,
    principal: &Principal,
    spec: TransformSpec,
    upload_id: &str,
) -> Result<Job, ApiError> {
    let upload_id = parse_upload_id(upload_id).ok_or_else(|| {
        ApiError::invalid("upload_id is not an upload id issued by POST /v1/uploads")
    })?;
    let key = staging_key_upload(&principal.customer_id, &upload_id);
    let bucket = &state.config.staging_bucket;
    let head = state.s3.head(bucket, &key).await.map_err(|e| {
        if e.is_not_found() {
            ApiError::invalid(
                "upload_id names no uploaded image: PUT the image to the url from POST \
                 /v1/uploads first (uploads expire after 24 hours)",
            )
        } else {
            e.into()
        }
    })?;
    if head.size > state.config.max_upload_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the upload is {} bytes, over the limit of {} bytes",
                head.size, state.config.max_upload_bytes
            ),
        ));
    }
    if head.size == 0 {
        return Err(ApiError::invalid("the uploaded object is empty"));
    }
    let prefix = state
        .s3
        .get_prefix(bucket, &key, PROBE_PREFIX_BYTES)
        .await?;
    let info = pipeline::probe(&prefix, &state.config.limits)?;
    Ok(Job::new(
        principal.customer_id.clone(),
        spec,
        input_meta(info, head.size),
        key,
        state.now(),
    ))
}

/// A cheap completeness check of a whole body, so that a truncated upload is refused at once
/// rather than failing later in the queue. Lenient with trailing bytes after the end marker.
pub fn truncation(format: Format, bytes: &[u8]) -> Option<&'static str> {
    match format {
        Format::Jpeg => {
            // Entropy-coded data never holds a bare FF DA or FF D9, so the last start-of-scan
            // marker must be followed by an end-of-image marker.
            let last_sos = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
            let Some(sos) = last_sos else {
                return Some("no image data (no start-of-scan marker)");
            };
            (!bytes[sos..].windows(2).any(|w| w == [0xFF, 0xD9]))
                .then_some("no end-of-image marker after the image data")
        }
        Format::Png => (!bytes.windows(4).any(|w| w == b"IEND")).then_some("no IEND chunk"),
        Format::Webp => {
            let declared = bytes
                .get(4..8)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize + 8)?;
            (declared > bytes.len()).then_some("shorter than its RIFF header declares")
        }
        Format::Gif | Format::Avif => None,
    }
}

async fn accepted(state: &AppState, job: &Job) -> Result<Reply, ApiError> {
    Ok(Reply::json(StatusCode::ACCEPTED, render(state, job).await?)
        .header(header::LOCATION, &status_url(job)))
}

/// Polls until the job is finished or `wait` has passed: 200 if finished, 202 if not.
async fn wait_for(state: &AppState, job: Job, wait: Duration) -> Result<Reply, ApiError> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut delay = Duration::from_millis(50);
    let mut latest = job;
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return accepted(state, &latest).await;
        }
        tokio::time::sleep(delay.min(deadline - now)).await;
        delay = (delay * 2).min(Duration::from_millis(250));
        if let Some(j) = state.tables.get_job(&latest.job_id).await? {
            latest = j;
        }
        if latest.status.is_terminal() {
            return Ok(Reply::json(StatusCode::OK, render(state, &latest).await?)
                .header(header::LOCATION, &status_url(&latest)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_checks() {
        let jpeg = [
            &[0xFF, 0xD8, 0xFF, 0xC0, 0, 4, 1, 2][..],
            &[0xFF, 0xDA, 0, 2, 0x12, 0xFF, 0x00, 0x34],
            &[0xFF, 0xD9],
        ]
        .concat();
        assert_eq!(truncation(Format::Jpeg, &jpeg), None);
        let mut trailing = jpeg.clone();
        trailing.extend_from_slice(b"trailing bytes some cameras add");
        assert_eq!(truncation(Format::Jpeg, &trailing), None);
        assert!(truncation(Format::Jpeg, &jpeg[..jpeg.len() - 2]).is_some());
        assert!(truncation(Format::Jpeg, &jpeg[..6]).is_some());
        assert_eq!(truncation(Format::Png, b"\x89PNG....IEND\xaeB`\x82"), None);
        assert!(truncation(Format::Png, b"\x89PNG....IDAT").is_some());
        let mut webp = b"RIFF\x10\0\0\0WEBPVP8 ".to_vec();
        webp.extend_from_slice(&[0; 8]);
        assert_eq!(truncation(Format::Webp, &webp), None);
        assert!(truncation(Format::Webp, &webp[..20]).is_some());
        assert_eq!(truncation(Format::Gif, b"GIF89a"), None);
    }
}
