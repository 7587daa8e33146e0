//! The api function: API Gateway HTTP API events (payload format 2.0) in, JSON out.
//!
//! [`handler`] takes the state built at cold start and the typed event, so tests and the local
//! gateway (`resizer dev`) call it exactly as Lambda does.

pub mod error;
mod jobs;
mod request;
mod resource;
mod uploads;
mod usage;

use std::time::Instant;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use lambda_runtime::LambdaEvent;
use resizer_aws::AppState;
use resizer_aws::metrics::Unit;
use serde_json::json;

pub use error::{ApiError, CODES};
pub use request::Request;

/// Every route: method and path template. `openapi.yaml` documents exactly these (a test checks).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/health"),
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs/{job_id}"),
    ("POST", "/v1/uploads"),
    ("GET", "/v1/usage"),
];

/// A response on its way out: status, extra headers and a JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
    /// Why it failed, for the log line only; never sent.
    pub detail: Option<String>,
}

impl Reply {
    pub fn json(status: StatusCode, body: serde_json::Value) -> Self {
        Self {
            status,
            headers: HeaderMap::new(),
            body,
            detail: None,
        }
    }

    pub fn header(mut self, name: header::HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }
}

/// What the request log line records besides method, path and status.
#[derive(Debug, Default)]
pub struct Context {
    pub customer_id: Option<String>,
    pub job_id: Option<String>,
}

/// The Lambda handler. It never returns `Err`: every failure is an HTTP response.
pub async fn handler(
    state: &AppState,
    event: LambdaEvent<ApiGatewayV2httpRequest>,
) -> Result<ApiGatewayV2httpResponse, lambda_runtime::Error> {
    Ok(handle(state, event.payload, &event.context.request_id).await)
}

/// Routes one request and renders its response.
pub async fn handle(
    state: &AppState,
    event: ApiGatewayV2httpRequest,
    lambda_request_id: &str,
) -> ApiGatewayV2httpResponse {
    let started = Instant::now();
    let req = Request::from_event(event, lambda_request_id);
    let mut ctx = Context::default();
    let route = route_of(&req.method, &req.path);
    let result = match route {
        Route::Matched(r) => dispatch(state, &req, r, &mut ctx).await,
        Route::WrongMethod(allowed) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!(
                "{} is not allowed on {}; allowed: {allowed}",
                req.method, req.path
            ),
        )),
        Route::Unknown => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route for {} {}", req.method, truncate(&req.path)),
        )),
    };
    let reply = match result {
        Ok(r) => r,
        Err(e) => error_reply(&e, &req.request_id, route),
    };
    let status = reply.status.as_u16();
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let route_name = match route {
        Route::Matched(r) => r.name(),
        _ => "unmatched",
    };
    match &reply.detail {
        Some(detail) if status >= 500 => tracing::error!(
            request_id = %req.request_id, method = %req.method, route = route_name, status,
            customer_id = ctx.customer_id.as_deref(), job_id = ctx.job_id.as_deref(),
            elapsed_ms, error = %detail, "request failed"
        ),
        detail => tracing::info!(
            request_id = %req.request_id, method = %req.method, route = route_name, status,
            customer_id = ctx.customer_id.as_deref(), job_id = ctx.job_id.as_deref(),
            elapsed_ms, reason = detail.as_deref(), "request"
        ),
    }
    let status_str = status.to_string();
    state.metrics.emit(
        &[("Route", route_name), ("Status", &status_str)],
        &[
            ("Requests", Unit::Count, 1.0),
            ("Latency", Unit::Milliseconds, elapsed_ms as f64),
        ],
    );
    render(reply, &req.request_id)
}

fn error_reply(e: &ApiError, request_id: &str, route: Route) -> Reply {
    let mut reply = Reply::json(
        e.status,
        json!({"error": {"code": e.code, "message": e.message, "request_id": request_id}}),
    );
    reply.detail = e.detail.clone();
    if let Route::WrongMethod(allowed) = route {
        reply = reply.header(header::ALLOW, allowed);
    }
    if e.status == StatusCode::SERVICE_UNAVAILABLE {
        reply = reply.header(header::RETRY_AFTER, "1");
    }
    if e.status == StatusCode::UNAUTHORIZED {
        reply = reply.header(header::WWW_AUTHENTICATE, "Bearer");
    }
    reply
}

fn render(mut reply: Reply, request_id: &str) -> ApiGatewayV2httpResponse {
    reply.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    reply
        .headers
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        reply.headers.insert("x-request-id", v);
    }
    let mut resp = ApiGatewayV2httpResponse::default();
    resp.status_code = i64::from(reply.status.as_u16());
    resp.headers = reply.headers;
    resp.body = Some(Body::Text(reply.body.to_string()));
    resp.is_base64_encoded = false;
    resp
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RouteId {
    Health,
    CreateJob,
    GetJob,
    CreateUpload,
    GetUsage,
}

impl RouteId {
    fn name(self) -> &'static str {
        match self {
            RouteId::Health => "GET /v1/health",
            RouteId::CreateJob => "POST /v1/jobs",
            RouteId::GetJob => "GET /v1/jobs/{job_id}",
            RouteId::CreateUpload => "POST /v1/uploads",
            RouteId::GetUsage => "GET /v1/usage",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Matched(RouteId),
    WrongMethod(&'static str),
    Unknown,
}

fn route_of(method: &Method, path: &str) -> Route {
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let (allowed, id): (&'static str, &[(&Method, RouteId)]) = match path {
        "/v1/health" => (
            "GET, HEAD",
            &[
                (&Method::GET, RouteId::Health),
                (&Method::HEAD, RouteId::Health),
            ],
        ),
        "/v1/jobs" => ("POST", &[(&Method::POST, RouteId::CreateJob)]),
        "/v1/uploads" => ("POST", &[(&Method::POST, RouteId::CreateUpload)]),
        "/v1/usage" => ("GET", &[(&Method::GET, RouteId::GetUsage)]),
        p if job_id_segment(p).is_some() => ("GET", &[(&Method::GET, RouteId::GetJob)]),
        _ => return Route::Unknown,
    };
    match id.iter().find(|(m, _)| *m == method) {
        Some((_, r)) => Route::Matched(*r),
        None => Route::WrongMethod(allowed),
    }
}

/// The `{job_id}` of `/v1/jobs/{job_id}`: one non-empty segment.
fn job_id_segment(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v1/jobs/")?;
    (!rest.is_empty() && !rest.contains('/')).then_some(rest)
}

async fn dispatch(
    state: &AppState,
    req: &Request,
    route: RouteId,
    ctx: &mut Context,
) -> Result<Reply, ApiError> {
    match route {
        RouteId::Health => Ok(Reply::json(StatusCode::OK, json!({"status": "ok"}))),
        // Boxed: the SDK's futures are deep, and a route's future need not live on the stack.
        RouteId::CreateJob => Box::pin(jobs::create(state, req, ctx)).await,
        RouteId::GetJob => {
            let id = job_id_segment(req.path.trim_end_matches('/')).unwrap_or_default();
            Box::pin(jobs::get(state, req, id, ctx)).await
        }
        RouteId::CreateUpload => Box::pin(uploads::create(state, req, ctx)).await,
        RouteId::GetUsage => Box::pin(usage::get(state, req, ctx)).await,
    }
}

/// Authenticates the caller from `Authorization: Bearer <key>` or `x-api-key: <key>`.
async fn authenticate(
    state: &AppState,
    req: &Request,
    ctx: &mut Context,
) -> Result<resizer_aws::auth::Principal, ApiError> {
    let key = req
        .api_key()
        .ok_or_else(|| ApiError::unauthorized("no key"))?;
    let p = state
        .auth_cache
        .authenticate(&state.tables, key, state.now())
        .await?;
    ctx.customer_id = Some(p.customer_id.clone());
    Ok(p)
}

fn truncate(s: &str) -> String {
    if s.len() <= 80 {
        s.to_owned()
    } else {
        let mut end = 80;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing() {
        let r = |m: Method, p: &str| route_of(&m, p);
        assert_eq!(
            r(Method::GET, "/v1/health"),
            Route::Matched(RouteId::Health)
        );
        assert_eq!(
            r(Method::POST, "/v1/jobs"),
            Route::Matched(RouteId::CreateJob)
        );
        assert_eq!(
            r(Method::POST, "/v1/jobs/"),
            Route::Matched(RouteId::CreateJob)
        );
        assert_eq!(
            r(Method::GET, "/v1/jobs/abc"),
            Route::Matched(RouteId::GetJob)
        );
        assert_eq!(r(Method::DELETE, "/v1/jobs/abc"), Route::WrongMethod("GET"));
        assert_eq!(r(Method::GET, "/v1/jobs"), Route::WrongMethod("POST"));
        assert_eq!(r(Method::GET, "/v1/jobs/a/b"), Route::Unknown);
        assert_eq!(r(Method::GET, "/v2/jobs"), Route::Unknown);
        assert_eq!(r(Method::GET, "/"), Route::Unknown);
        assert_eq!(
            r(Method::POST, "/v1/uploads"),
            Route::Matched(RouteId::CreateUpload)
        );
        assert_eq!(
            r(Method::GET, "/v1/usage"),
            Route::Matched(RouteId::GetUsage)
        );
    }

    #[test]
    fn every_route_is_routable() {
        for (m, p) in ROUTES {
            let path = p.replace("{job_id}", "x");
            let route = route_of(&Method::from_bytes(m.as_bytes()).unwrap(), &path);
            assert!(
                matches!(route, Route::Matched(r) if r.name() == format!("{m} {p}")),
                "{m} {p}"
            );
        }
    }
}
