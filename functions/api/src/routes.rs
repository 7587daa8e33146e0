//! The routes: each translates its request into a use case of [`App`] and its outcome into a
//! resource of [`resizer_core::contract`].

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use resizer_app::{App, Principal};
use resizer_core::contract::{
    Health, InputResource, JobErrorResource, JobResource, PresetListResource, PresetResource,
    ResultResource, Route, UploadResource, UsageItem, UsageResource,
};
use resizer_core::job::{IdempotencyKey, Job};
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
    invocation: Option<Extension<lambda_http::Context>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let principal = authenticate(&app, &headers, &log).await?;
    if invalid_body.is_some() {
        return Err(ApiError::invalid("the request body is not valid base64"));
    }
    let key = idempotency_key(&headers)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let query = parse::query_pairs(query.as_deref());
    let request = parse::job_request(query, content_type, &body)?;
    let spec = app
        .transform(
            &principal,
            request.preset.as_deref(),
            request.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .await?;
    let wait = request.wait;
    let sub = request.submission(&app.settings, spec, accept, &body)?;
    let submitted = app
        .submit(&principal, sub.with_idempotency_key(key))
        .await?;
    let mut job = submitted.job;
    log.set(|f| f.job_id = Some(job.job_id.to_string()));
    if let Some(wait) = wait {
        let wait = invocation.map_or(wait, |Extension(ctx)| wait.min(time_left(&ctx)));
        job = app.wait_for(job, wait).await;
    }
    let status = if job.status.is_terminal() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let resource = render(&app, &job).await?;
    let location = resource.status_url.clone();
    let mut resp = (status, [(header::LOCATION, location)], Json(resource)).into_response();
    if submitted.replayed {
        resp.headers_mut()
            .insert(IDEMPOTENT_REPLAYED, http::HeaderValue::from_static("true"));
    }
    Ok(resp)
}

/// Set on an answer to a retried request: the job is the one the first request created.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// The `Idempotency-Key` header, if sent: printable ASCII, 1 to 255 characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .and_then(IdempotencyKey::parse)
        .map(Some)
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "the Idempotency-Key header must be 1 to {} printable ASCII characters",
                IdempotencyKey::MAX_LEN
            ))
        })
}

/// How long the invocation can still wait and answer: its deadline less a margin for rendering
/// the response (a timed-out invocation answers the caller 5xx for a job that exists).
fn time_left(ctx: &lambda_http::Context) -> std::time::Duration {
    const MARGIN_MS: u64 = 2_000;
    if ctx.deadline == 0 {
        // No deadline known (an event not from the Lambda runtime): nothing to cap.
        return std::time::Duration::MAX;
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    std::time::Duration::from_millis(ctx.deadline.saturating_sub(now_ms + MARGIN_MS))
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
    parse::none(query.as_deref(), Route::CreateUpload.name())?;
    let key = idempotency_key(&headers)?;
    let up = app.create_upload(&principal, key.as_ref()).await?;
    let resource = UploadResource {
        upload_id: up.upload_id.to_string(),
        url: up.url,
        method: "POST".into(),
        fields: up.fields.into_iter().collect(),
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

pub async fn list_presets(
    State(app): State<App>,
    Extension(log): Extension<Log>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Reply {
    let principal = authenticate(&app, &headers, &log).await?;
    parse::none(query.as_deref(), Route::ListPresets.name())?;
    let presets = app.presets(&principal).await?;
    Ok(Json(PresetListResource {
        presets: presets.into_iter().map(PresetResource::from).collect(),
    })
    .into_response())
}

/// Saves the caller's preset from a JSON object of transform parameters: 201 when new, 200 when
/// it replaced one.
pub async fn put_preset(
    State(app): State<App>,
    Extension(log): Extension<Log>,
    invalid_body: Option<Extension<crate::InvalidBody>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    path: NamePath,
    body: Bytes,
) -> Reply {
    let (principal, name) =
        preset_call(&app, &headers, &log, path, query, Route::PutPreset).await?;
    if invalid_body.is_some() {
        return Err(ApiError::invalid("the request body is not valid base64"));
    }
    let content_type = parse::media_type(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    );
    if content_type.as_deref() != Some("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type must be application/json (an object of transform parameters), got {}",
                content_type.map_or("none".to_string(), |c| format!(
                    "{:?}",
                    resizer_core::shorten(&c, 40)
                ))
            ),
        ));
    }
    let params = parse::json_fields(
        &body,
        "{\"width\": 400, \"fit\": \"cover\", …}",
        "an object of transform parameters",
    )?;
    let saved = app
        .put_preset(
            &principal,
            &name,
            params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .await?;
    let status = if saved.created_at == saved.updated_at {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = format!("/v1/presets/{}", saved.name);
    Ok((
        status,
        [(header::LOCATION, location)],
        Json(PresetResource::from(saved)),
    )
        .into_response())
}

pub async fn get_preset(
    State(app): State<App>,
    Extension(log): Extension<Log>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    path: NamePath,
) -> Reply {
    let (principal, name) =
        preset_call(&app, &headers, &log, path, query, Route::GetPreset).await?;
    let preset = app.preset(&principal, &name).await?;
    Ok(Json(PresetResource::from(preset)).into_response())
}

/// 204 once deleted; jobs that used the preset keep the transform they ran with.
pub async fn delete_preset(
    State(app): State<App>,
    Extension(log): Extension<Log>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    path: NamePath,
) -> Reply {
    let (principal, name) =
        preset_call(&app, &headers, &log, path, query, Route::DeletePreset).await?;
    app.delete_preset(&principal, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A preset route's `{name}`.
type NamePath = Result<Path<String>, axum::extract::rejection::PathRejection>;

/// The caller and the preset name of a call to a preset route (none of which takes a query
/// parameter).
async fn preset_call(
    app: &App,
    headers: &HeaderMap,
    log: &Log,
    path: NamePath,
    query: Option<String>,
    route: Route,
) -> Result<(Principal, String), ApiError> {
    let principal = authenticate(app, headers, log).await?;
    let Ok(Path(name)) = path else {
        return Err(ApiError::not_found());
    };
    parse::none(query.as_deref(), route.name())?;
    Ok((principal, name))
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
