//! The job resource, as customers see it.

use resizer_aws::AppState;
use resizer_core::job::{Job, JobStatus};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::ApiError;

pub fn status_url(job: &Job) -> String {
    format!("/v1/jobs/{}", job.job_id)
}

fn ts(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Renders a job. A done job gets a freshly signed result URL on every call.
pub async fn render(state: &AppState, job: &Job) -> Result<Value, ApiError> {
    let mut v = json!({
        "job_id": job.job_id,
        "status": job.status,
        "status_url": status_url(job),
        "created_at": ts(job.created_at),
        "updated_at": ts(job.updated_at),
        "params": job.params,
        "input": {
            "format": job.input.format,
            "width": job.input.width,
            "height": job.input.height,
            "bytes": job.input.bytes,
        },
    });
    if job.status == JobStatus::Done
        && let Some(r) = &job.result
    {
        let signed = state
            .s3
            .presign_get(
                &state.config.results_bucket,
                &r.key,
                state.config.result_url_ttl,
            )
            .await?;
        v["result"] = json!({
            "url": signed.url,
            "expires_at": ts(signed.expires_at),
            "format": r.format,
            "width": r.width,
            "height": r.height,
            "bytes": r.bytes,
        });
    }
    if job.status == JobStatus::Failed
        && let Some(e) = &job.error
    {
        v["error"] = json!({"code": e.code, "message": e.message});
    }
    Ok(v)
}
