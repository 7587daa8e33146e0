//! The routes: each translates its request into a use case of [`App`] and its outcome into a
//! resource of [`resizer_core::contract`].

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use resizer_app::{App, Principal};
use resizer_core::contract::{
    Health, InputResource, JobErrorResource, JobResource, ResultResource, UploadResource,
    UsageItem, UsageResource,
};
use resizer_core::job::Job;
use resizer_core::usage::{Totals, UsageRange};

use crate::edge::Log;
use crate::error::ApiError;
use crate::parse;

type Reply = Result<Response, ApiError>;

pub async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

pub async fn create_job(
    State(app): State<App>,
    Extension(log): Extension<Log>,
    invalid_body: Option<Extension<crate::InvalidBody>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let principal = authenticate(&app, &headers, &log).await?;
    if invalid_body.is_some() {
        return Err(ApiError::invalid("the request body is not valid base64"));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let query = parse::query_pairs(query.as_deref());
    let (sub, wait) = parse::submission(&app.settings, query, content_type, &body)?;
    let mut job = app.submit(&principal, sub).await?;
    log.set(|f| f.job_id = Some(job.job_id.to_string()));
    if let Some(wait) = wait {
        job = app.wait_for(job, wait).await?;
    }
    let status = if job.status.is_terminal() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let resource = render(&app, &job).await?;
    let location = resource.status_url.clone();
    Ok((status, [(header::LOCATION, location)], Json(resource)).into_response())
}

pub async fn get_job(
    State(app): State<App>,
    Extension(log): Extension<Log>,
    headers: HeaderMap,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Reply {
    let principal = authenticate(&app, &headers, &log).await?;
    let Ok(Path(id)) = path else {
        return Err(ApiError::not_found());
    };
    let job = app.job(&principal, &id).await?;
    log.set(|f| f.job_id = Some(job.job_id.to_string()));
    Ok(Json(render(&app, &job).await?).into_response())
}

pub async fn create_upload(
    State(app): State<App>,
    Extension(log): Extension<Log>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Reply {
    let principal = authenticate(&app, &headers, &log).await?;
    if let Some((k, _)) = parse::query_pairs(query.as_deref()).first() {
        return Err(ApiError::invalid(format!(
            "POST /v1/uploads takes no parameters, got {:?}",
            resizer_core::shorten(k, 40)
        )));
    }
    let up = app.create_upload(&principal).await?;
    let resource = UploadResource {
        upload_id: up.upload_id.to_string(),
        url: up.url,
        method: "PUT".into(),
        expires_at: up.expires_at,
        max_bytes: up.max_bytes,
    };
    Ok((StatusCode::CREATED, Json(resource)).into_response())
}

pub async fn get_usage(
    State(app): State<App>,
    Extension(log): Extension<Log>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Reply {
    let principal = authenticate(&app, &headers, &log).await?;
    let query = parse::query_pairs(query.as_deref());
    parse::only(&query, &["from", "to", "granularity"])?;
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let range = UsageRange::parse(get("from"), get("to"), get("granularity"), app.now())
        .map_err(|e| ApiError::invalid(e.message))?;
    let rows = app.usage(&principal, &range).await?;
    let mut totals = Totals::default();
    let items = rows
        .into_iter()
        .map(|(period, t)| {
            totals.merge(&t);
            UsageItem {
                totals: t,
                period: period.label(),
            }
        })
        .collect();
    Ok(Json(UsageResource {
        granularity: range.granularity.as_str().into(),
        from: range.from,
        to: range.to,
        items,
        totals,
    })
    .into_response())
}

/// The key from `Authorization: Bearer <key>`, else `x-api-key: <key>`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(v) = header(header::AUTHORIZATION.as_str()) {
        let mut parts = v.trim().splitn(2, ' ');
        if let (Some(scheme), Some(token)) = (parts.next(), parts.next())
            && scheme.eq_ignore_ascii_case("bearer")
        {
            return Some(token.trim());
        }
    }
    header("x-api-key").map(str::trim)
}

async fn authenticate(app: &App, headers: &HeaderMap, log: &Log) -> Result<Principal, ApiError> {
    let p = app.authenticate(presented_key(headers)).await?;
    log.set(|f| f.customer_id = Some(p.customer_id.clone()));
    Ok(p)
}

/// A job as its owner sees it; a done job gets a freshly signed result URL on every read.
async fn render(app: &App, job: &Job) -> Result<JobResource, ApiError> {
    let result = match (app.result_url(job).await?, &job.result) {
        (Some(signed), Some(r)) => Some(ResultResource {
            url: signed.url,
            expires_at: signed.expires_at,
            format: r.format,
            width: r.width,
            height: r.height,
            bytes: r.bytes,
        }),
        _ => None,
    };
    let error = job
        .error
        .as_ref()
        .filter(|_| job.status == resizer_core::job::JobStatus::Failed)
        .map(|e| JobErrorResource {
            code: e.code.clone(),
            message: e.message.clone(),
        });
    Ok(JobResource {
        job_id: job.job_id.clone(),
        status: job.status,
        status_url: JobResource::status_url(&job.job_id),
        created_at: job.created_at,
        updated_at: job.updated_at,
        params: job.params.clone(),
        input: InputResource {
            format: job.input.format,
            width: job.input.width,
            height: job.input.height,
            bytes: job.input.bytes,
        },
        result,
        error,
    })
}
