//! The edge every request passes: its id, the error body, the headers every response carries,
//! one log line and the request metrics.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use resizer_app::{App, Unit};
use resizer_core::contract::{ErrorBody, ErrorDetail, Route};

use crate::error::ApiError;

/// What the request log line records besides method, route and status; the handlers fill it in.
#[derive(Debug, Clone, Default)]
pub struct LogFields {
    pub customer_id: Option<String>,
    pub job_id: Option<String>,
}

/// A request's log fields, shared between the edge and the handler.
#[derive(Debug, Clone, Default)]
pub struct Log(Arc<Mutex<LogFields>>);

impl Log {
    pub fn set(&self, f: impl FnOnce(&mut LogFields)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn take(&self) -> LogFields {
        std::mem::take(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// API Gateway's request id (the one its access log has), else Lambda's, else a new one.
fn request_id(req: &Request) -> String {
    if let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref()
        && let Some(id) = ctx.request_id.as_deref().filter(|s| !s.is_empty())
    {
        return id.to_owned();
    }
    match req.lambda_context_ref() {
        Some(ctx) if !ctx.request_id.is_empty() => ctx.request_id.clone(),
        _ => uuid::Uuid::new_v4().to_string(),
    }
}

/// The middleware around every route and the fallbacks.
pub async fn edge(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = request_id(&req);
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|p| Route::find(method.as_str(), p.as_str()));
    let log = Log::default();
    req.extensions_mut().insert(log.clone());
    let mut resp = next.run(req).await;

    let error = resp.extensions_mut().remove::<ApiError>();
    if let Some(e) = &error {
        let body = ErrorBody {
            error: ErrorDetail {
                code: e.code.to_owned(),
                message: e.message.clone(),
                request_id: request_id.clone(),
            },
        };
        let mut r = (e.status, axum::Json(body)).into_response();
        if let Some(allow) = e
            .allow
            .as_deref()
            .and_then(|a| HeaderValue::from_str(a).ok())
        {
            r.headers_mut().insert(header::ALLOW, allow);
        }
        let retry_after = e
            .retry_after_s
            .or((e.status == http::StatusCode::SERVICE_UNAVAILABLE).then_some(1));
        if let Some(s) = retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if e.status == http::StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp = r;
    }
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", v);
    }

    let status = resp.status().as_u16();
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let route_name = route.map_or("unmatched", Route::name);
    let LogFields {
        customer_id,
        job_id,
    } = log.take();
    let detail = error.as_ref().and_then(|e| e.detail.as_deref());
    match detail {
        Some(detail) if status >= 500 => tracing::error!(
            request_id = %request_id, method = %method, route = route_name, status,
            customer_id = customer_id.as_deref(), job_id = job_id.as_deref(),
            elapsed_ms, error = %detail, "request failed"
        ),
        detail => tracing::info!(
            request_id = %request_id, method = %method, route = route_name, status,
            customer_id = customer_id.as_deref(), job_id = job_id.as_deref(),
            elapsed_ms, reason = detail, "request"
        ),
    }
    let status_str = status.to_string();
    app.metrics.emit(
        &[("Route", route_name), ("Status", &status_str)],
        &[
            ("Requests", Unit::Count, 1.0),
            ("Latency", Unit::Milliseconds, elapsed_ms as f64),
        ],
    );
    resp
}
