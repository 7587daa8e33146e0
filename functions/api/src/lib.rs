//! The api function: the HTTP API as an axum router, served through `lambda_http` from API
//! Gateway HTTP API (payload 2.0) events or a function URL (the same payload), and by any HTTP
//! server (tests, the local gateway) as it is.
//!
//! [`router`] is built from [`Route::ALL`], the one route table; the routes translate requests
//! into the use cases of [`resizer_app::App`]; [`edge`] gives every response its request id,
//! headers, error body, log line and metrics; [`cors`] lets the configured web origins call it
//! from a browser.

mod edge;
pub mod error;
mod parse;
mod routes;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use axum::extract::DefaultBodyLimit;
use std::convert::Infallible;

use aws_lambda_events::encodings::Body;
use axum::response::IntoResponse as _;
use axum::routing::{MethodFilter, MethodRouter};
use axum::{Router, middleware};
use base64::Engine as _;
use http_body_util::BodyExt as _;
use lambda_http::RequestExt as _;
use lambda_http::request::LambdaRequest;
use lambda_runtime::LambdaEvent;
use resizer_app::App;
use resizer_core::contract::Route;
use tower::{Layer, ServiceExt};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::normalize_path::{NormalizePath, NormalizePathLayer};

pub use error::{ApiError, CODES};

/// The HTTP API: every route of [`Route::ALL`], JSON 404 and 405 for everything else, a trailing
/// slash ignored.
pub fn router(app: App) -> NormalizePath<Router> {
    let mut router: Router<App> = Router::new();
    let mut paths: Vec<&str> = Route::ALL.iter().map(|r| r.path()).collect();
    paths.dedup();
    for path in paths {
        let allow = Route::allowed_on(path);
        let mut methods: MethodRouter<App> = MethodRouter::new();
        for route in Route::ALL.into_iter().filter(|r| r.path() == path) {
            methods = with_route(methods, route);
            if route.method() == "GET" && !route.allows_head() {
                // axum answers HEAD with the GET route; only routes that allow it do.
                methods = methods.on_service(MethodFilter::HEAD, not_allowed(allow.clone()));
            }
        }
        router = router.route(path, methods.fallback_service(not_allowed(allow)));
    }
    let router = router
        .fallback(not_found)
        // Bodies are bounded by API Gateway and Lambda (and by the use cases), not here.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(app.clone(), edge::edge))
        // Outside the edge (which builds error answers afresh), so that every answer, errors
        // included, carries the CORS headers a browser needs to read it. A preflight is
        // answered here, and so has no request id or log line of its own.
        .layer(tower::util::option_layer(cors(
            &app.settings.cors_allowed_origins,
        )))
        .with_state(app);
    NormalizePathLayer::trim_trailing_slash().layer(router)
}

/// Browser access for the configured origins (none: no CORS headers, and a preflight is a 405
/// like any other OPTIONS). A preflight is answered here, before authentication, as browsers
/// send it without credentials; what a page may then send and read: the key headers, JSON or
/// image bodies, and the `Location`, `Retry-After` and `Idempotent-Replayed` answers.
pub fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| o.parse().ok()))
    };
    let header = http::HeaderName::from_static;
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([
                http::Method::GET,
                http::Method::POST,
                http::Method::PUT,
                http::Method::DELETE,
            ])
            .allow_headers([
                http::header::AUTHORIZATION,
                http::header::CONTENT_TYPE,
                header("x-api-key"),
                header("idempotency-key"),
            ])
            .expose_headers([
                http::header::LOCATION,
                http::header::RETRY_AFTER,
                header("idempotent-replayed"),
                header("x-request-id"),
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

fn with_route(methods: MethodRouter<App>, route: Route) -> MethodRouter<App> {
    let filter = match route.method() {
        "GET" if route.allows_head() => MethodFilter::GET.or(MethodFilter::HEAD),
        "GET" => MethodFilter::GET,
        "POST" => MethodFilter::POST,
        "PUT" => MethodFilter::PUT,
        "DELETE" => MethodFilter::DELETE,
        other => unreachable!("no route uses {other}"),
    };
    match route {
        Route::Health => methods.on(filter, routes::health),
        Route::CreateJob => methods.on(filter, routes::create_job),
        Route::GetJob => methods.on(filter, routes::get_job),
        Route::CreateUpload => methods.on(filter, routes::create_upload),
        Route::GetUsage => methods.on(filter, routes::get_usage),
        Route::ListPresets => methods.on(filter, routes::list_presets),
        Route::PutPreset => methods.on(filter, routes::put_preset),
        Route::GetPreset => methods.on(filter, routes::get_preset),
        Route::DeletePreset => methods.on(filter, routes::delete_preset),
    }
}

/// A 405 naming the methods the path allows.
fn not_allowed(
    allow: String,
) -> impl tower::Service<
    axum::extract::Request,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ Sync
+ 'static {
    tower::service_fn(move |req: axum::extract::Request| {
        let e =
            ApiError::method_not_allowed(req.method().as_str(), req.uri().path(), allow.clone());
        async move { Ok(e.into_response()) }
    })
}

async fn not_found(req: axum::extract::Request) -> ApiError {
    ApiError::new(
        http::StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no route for {} {}",
            req.method(),
            resizer_core::shorten(req.uri().path(), 80)
        ),
    )
}

/// What a URI's path or query cannot hold as it is: controls, space, non-ASCII and the characters
/// RFC 3986 leaves out (`"` `#` `<` `>` `\` `^` `` ` `` `{` `|` `}`). `%` is kept: what is already
/// encoded stays as it was.
const NOT_IN_URI: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

fn uri_safe(raw: &str) -> String {
    percent_encoding::utf8_percent_encode(raw, NOT_IN_URI).to_string()
}

/// A request whose event claimed a base64 body that is not base64 (never from API Gateway or a
/// function URL; a hand-made event gets a clear 400 rather than a failed invocation).
#[derive(Debug, Clone, Copy)]
pub struct InvalidBody;

/// The Lambda handler: one API Gateway HTTP API (or function URL) event through the router.
/// `main` runs exactly this; tests call it with real event fixtures.
pub async fn handler(
    api: &NormalizePath<Router>,
    event: LambdaEvent<ApiGatewayV2httpRequest>,
) -> Result<ApiGatewayV2httpResponse, lambda_runtime::Error> {
    let LambdaEvent {
        mut payload,
        context,
    } = event;
    let invalid = payload.is_base64_encoded
        && payload
            .body
            .as_ref()
            .is_some_and(|b| base64::engine::general_purpose::STANDARD.decode(b).is_err());
    if invalid {
        payload.body = None;
        payload.is_base64_encoded = false;
    }
    // lambda_http builds the request URL from the Host header (else the domain name) and panics on
    // a host a URL cannot hold (LocalStack's function URLs end in `.127.0.0.1:4566`). Routing needs
    // only the path, so such a host is dropped rather than crashing the invocation.
    let host_ok = |h: &str| url::Url::parse(&format!("https://{h}/")).is_ok();
    if payload
        .headers
        .get(http::header::HOST)
        .is_some_and(|h| !h.to_str().is_ok_and(host_ok))
    {
        payload.headers.remove(http::header::HOST);
    }
    if payload
        .request_context
        .domain_name
        .as_deref()
        .is_some_and(|d| !host_ok(d))
    {
        payload.request_context.domain_name = None;
    }
    // And it panics on a path or query a URI cannot hold. API Gateway sends them encoded, but
    // LocalStack's function URLs decode the path before splitting off the query (an encoded `?`
    // in a path leaves control characters in rawPath and the rest in rawQueryString): such
    // characters are encoded again, so that the request is answered (a 404, a 400) rather than
    // failing the invocation.
    payload.raw_path = payload.raw_path.map(|p| uri_safe(&p));
    payload.raw_query_string = payload.raw_query_string.map(|q| uri_safe(&q));
    let mut req =
        http::Request::from(LambdaRequest::ApiGatewayV2(payload)).with_lambda_context(context);
    if invalid {
        req.extensions_mut().insert(InvalidBody);
    }
    let resp = api.clone().oneshot(req).await?;
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await?.to_bytes();
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = i64::from(parts.status.as_u16());
    out.headers = parts.headers;
    // Every body the API sends is JSON text.
    out.body =
        (!bytes.is_empty()).then(|| Body::Text(String::from_utf8_lossy(&bytes).into_owned()));
    out.is_base64_encoded = false;
    Ok(out)
}
