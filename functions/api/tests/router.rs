//! The router on in-memory adapters: routing, the edge's headers and error bodies, and the
//! request-path use cases as HTTP sees them. (Against the real stack: integration-tests.)

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use lambda_runtime::{Context, LambdaEvent};
use resizer_app::memory::{Memory, TINY_PNG};
use resizer_app::{App, Settings, StoreError};
use resizer_core::contract::{ErrorBody, Route};
use serde_json::Value;
use tower::ServiceExt;

struct Api {
    mem: Memory,
    app: App,
    key: String,
}

async fn api() -> Api {
    let mem = Memory::new();
    let app = mem.app(Settings::default());
    let (_, key) = mem.customer(&app, None).await;
    Api {
        mem,
        app,
        key: key.expose(),
    }
}

struct Resp {
    status: StatusCode,
    headers: http::HeaderMap,
    text: String,
    json: Value,
}

impl Api {
    async fn call(&self, method: Method, uri: &str, key: bool, body: Vec<u8>, ct: &str) -> Resp {
        self.call_with(method, uri, key, body, ct, &[]).await
    }

    /// `call` with more request headers.
    async fn call_with(
        &self,
        method: Method,
        uri: &str,
        key: bool,
        body: Vec<u8>,
        ct: &str,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if key {
            req = req.header("authorization", format!("Bearer {}", self.key));
        }
        if !ct.is_empty() {
            req = req.header("content-type", ct);
        }
        let resp = resizer_api::router(self.app.clone())
            .oneshot(req.body(axum::body::Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Resp {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    async fn put(&self, uri: &str, body: &str, ct: &str) -> Resp {
        self.call(Method::PUT, uri, true, body.as_bytes().to_vec(), ct)
            .await
    }

    async fn get(&self, uri: &str) -> Resp {
        self.call(Method::GET, uri, true, Vec::new(), "").await
    }
}

fn code(r: &Resp) -> &str {
    r.json["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn routing_trailing_slashes_wrong_methods_and_unknown_paths() {
    let a = api().await;
    assert_eq!(a.get("/v1/health").await.status, StatusCode::OK);
    let head = a
        .call(Method::HEAD, "/v1/health", false, Vec::new(), "")
        .await;
    assert_eq!(head.status, StatusCode::OK);
    // POST /v1/jobs/ is POST /v1/jobs: routed (and refused for its empty body, not 404/405).
    let post = a
        .call(Method::POST, "/v1/jobs/", true, Vec::new(), "image/png")
        .await;
    assert_eq!(post.status, StatusCode::BAD_REQUEST, "{}", post.json);
    let job = a.get("/v1/jobs/abc").await;
    assert_eq!(
        (job.status, code(&job)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert_eq!(
        job.json["error"]["message"],
        "no such resource (or it belongs to another customer)"
    );
    let del = a
        .call(Method::DELETE, "/v1/jobs/abc", true, Vec::new(), "")
        .await;
    assert_eq!(del.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(del.headers["allow"], "GET");
    assert_eq!(code(&del), "method_not_allowed");
    let head_job = a
        .call(Method::HEAD, "/v1/jobs/abc", true, Vec::new(), "")
        .await;
    assert_eq!(head_job.status, StatusCode::METHOD_NOT_ALLOWED);
    let list = a.get("/v1/jobs").await;
    assert_eq!(list.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(list.headers["allow"], "POST");
    for unknown in ["/v1/jobs/a/b", "/v2/jobs", "/"] {
        let r = a.get(unknown).await;
        assert_eq!(
            (r.status, code(&r)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{unknown}"
        );
        assert!(
            r.json["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("no route for GET "),
            "{unknown}"
        );
    }
    let up = a
        .call(Method::POST, "/v1/uploads", true, Vec::new(), "")
        .await;
    assert_eq!(up.status, StatusCode::CREATED, "{}", up.json);
    let usage = a.get("/v1/usage").await;
    assert_eq!(usage.status, StatusCode::OK, "{}", usage.json);
}

#[tokio::test]
async fn every_route_is_routed_to_its_handler() {
    let a = api().await;
    for r in Route::ALL {
        let path = r.path().replace("{job_id}", "x").replace("{name}", "x");
        let m = Method::from_bytes(r.method().as_bytes()).unwrap();
        let resp = a.call(m, &path, false, Vec::new(), "").await;
        // Without a key every route but health answers 401: proof that the route's handler ran.
        let want = if r.needs_key() {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        };
        assert_eq!(resp.status, want, "{}", r.name());
    }
}

#[tokio::test]
async fn every_response_carries_the_edge_headers_and_errors_the_error_body() {
    let a = api().await;
    let r = a
        .call(Method::GET, "/v1/usage", false, Vec::new(), "")
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["cache-control"], "no-store");
    let body: ErrorBody = serde_json::from_value(r.json.clone()).unwrap();
    assert_eq!(body.error.code, "unauthorized");
    assert_eq!(
        body.error.request_id,
        r.headers["x-request-id"].to_str().unwrap()
    );
    assert!(!body.error.request_id.is_empty());
    let ok = a.get("/v1/health").await;
    assert_eq!(ok.headers["cache-control"], "no-store");
    assert!(ok.headers.contains_key("x-request-id"));
    assert_eq!(ok.json, serde_json::json!({"status": "ok"}));
}

#[tokio::test]
async fn a_failed_enqueue_is_a_503_with_retry_after_and_leaves_nothing() {
    let a = api().await;
    a.mem.faults.fail_next(
        "queue.send",
        StoreError::unavailable("sqs:SendMessage", "down"),
    );
    let png = TINY_PNG.to_vec();
    let r = a
        .call(Method::POST, "/v1/jobs?width=1", true, png, "image/png")
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.json);
    assert_eq!(r.headers["retry-after"], "1");
    assert_eq!(code(&r), "service_unavailable");
    assert!(a.mem.jobs.all().is_empty(), "the job was removed again");
    assert!(
        a.mem.staging.keys().is_empty(),
        "the staged body was removed"
    );
    assert!(a.mem.queue.sent().is_empty());
}

#[tokio::test]
async fn an_accepted_job_is_queued_with_its_location() {
    let a = api().await;
    let r = a
        .call(
            Method::POST,
            "/v1/jobs?width=1",
            true,
            TINY_PNG.to_vec(),
            "image/png",
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    let id = r.json["job_id"].as_str().unwrap();
    assert_eq!(r.headers["location"], format!("/v1/jobs/{id}"));
    assert_eq!(r.json["status"], "queued");
    // The resource's fields, in the order the API has always sent them.
    let at = |k: &str| r.text.find(&format!("\"{k}\":")).unwrap_or(usize::MAX);
    let order = [
        "job_id",
        "status",
        "status_url",
        "created_at",
        "updated_at",
        "params",
        "input",
    ];
    assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "{}", r.text);
    assert!(!r.text.contains("\"result\"") && !r.text.contains("\"error\""));
    assert_eq!(a.mem.queue.sent().len(), 1);
    let read = a.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(read.text, r.text);
}

#[tokio::test]
async fn a_hand_made_event_with_a_broken_base64_body_is_a_400() {
    let a = api().await;
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/apigw-v2-request.json")).unwrap();
    let mut ev = fixture;
    ev["rawPath"] = "/v1/jobs".into();
    ev["rawQueryString"] = "width=1".into();
    ev["requestContext"]["http"]["method"] = "POST".into();
    ev["headers"] = serde_json::json!({
        "authorization": format!("Bearer {}", a.key),
        "content-type": "image/png",
    });
    ev["body"] = "not base64!".into();
    ev["isBase64Encoded"] = true.into();
    let ev: ApiGatewayV2httpRequest = serde_json::from_value(ev).unwrap();
    let api = resizer_api::router(a.app.clone());
    let resp = resizer_api::handler(&api, LambdaEvent::new(ev, Context::default()))
        .await
        .unwrap();
    assert_eq!(resp.status_code, 400);
    let body = match resp.body {
        Some(aws_lambda_events::encodings::Body::Text(t)) => t,
        other => panic!("{other:?}"),
    };
    assert!(
        body.contains("the request body is not valid base64"),
        "{body}"
    );
}

#[tokio::test]
async fn a_host_no_url_can_hold_does_not_crash_the_handler() {
    // LocalStack's function URLs arrive with Host `<id>.lambda-url.<region>.127.0.0.1:4566`, which
    // lambda_http's URL parser refuses (a trailing numeric label is read as an IPv4 address).
    let a = api().await;
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/apigw-v2-request.json")).unwrap();
    let mut ev = fixture;
    ev["rawPath"] = "/v1/health".into();
    ev["rawQueryString"] = "".into();
    ev["requestContext"]["http"]["method"] = "GET".into();
    ev["requestContext"]["domainName"] = "abc.lambda-url.us-east-1.127.0.0.1:4566".into();
    ev["headers"] = serde_json::json!({"host": "abc.lambda-url.us-east-1.127.0.0.1:4566"});
    ev.as_object_mut().unwrap().remove("body");
    ev["isBase64Encoded"] = false.into();
    let ev: ApiGatewayV2httpRequest = serde_json::from_value(ev).unwrap();
    let api = resizer_api::router(a.app.clone());
    let resp = resizer_api::handler(&api, LambdaEvent::new(ev, Context::default()))
        .await
        .unwrap();
    assert_eq!(resp.status_code, 200);
}

#[tokio::test]
async fn a_path_or_query_no_uri_can_hold_is_answered_not_an_invocation_error() {
    // LocalStack's function URLs decode the path before splitting off the query, so a path with an
    // encoded `?` (Schemathesis sent `DELETE /v1/presets/…%1FZ%01%3F…`) arrives as a rawPath with
    // control characters and a rawQueryString of whatever followed. It must still be answered.
    let a = api().await;
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/apigw-v2-request.json")).unwrap();
    for (method, path, query, want) in [
        (
            "DELETE",
            "/v1/presets/\u{a1de}\u{ef}Z\u{1f}\u{1}",
            "\u{2eea7} \u{a0}aR\u{cd}.",
            401,
        ),
        ("GET", "/v1/health\u{7f} x", "", 404),
        ("GET", "/v1/health", "a=\u{1}\"<>` {|}^#b", 200),
    ] {
        let mut ev = fixture.clone();
        ev["rawPath"] = path.into();
        ev["rawQueryString"] = query.into();
        ev["requestContext"]["http"]["method"] = method.into();
        ev["requestContext"]["http"]["path"] = path.into();
        ev["headers"] = serde_json::json!({"host": "abc.lambda-url.us-east-1.on.aws"});
        ev.as_object_mut().unwrap().remove("body");
        ev["isBase64Encoded"] = false.into();
        let ev: ApiGatewayV2httpRequest = serde_json::from_value(ev).unwrap();
        let api = resizer_api::router(a.app.clone());
        let resp = resizer_api::handler(&api, LambdaEvent::new(ev, Context::default()))
            .await
            .unwrap_or_else(|e| panic!("{method} {path:?}: {e}"));
        assert_eq!(resp.status_code, want, "{method} {path:?} ?{query:?}");
    }
}

#[tokio::test]
async fn an_idempotency_key_replays_the_job_and_refuses_another_request() {
    let a = api().await;
    async fn post(a: &Api, uri: &str, key: &str) -> Resp {
        let headers = [("idempotency-key", key)];
        a.call_with(
            Method::POST,
            uri,
            true,
            TINY_PNG.to_vec(),
            "image/png",
            &headers,
        )
        .await
    }
    let first = post(&a, "/v1/jobs?width=1", "retry-me").await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.json);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let again = post(&a, "/v1/jobs?width=1", "retry-me").await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.json);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.json["job_id"], first.json["job_id"]);
    assert_eq!(a.mem.queue.sent().len(), 1, "one job enqueued");

    let conflict = post(&a, "/v1/jobs?width=2", "retry-me").await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert_eq!(code(&conflict), "idempotency_conflict");

    let bad = post(&a, "/v1/jobs?width=1", "").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&bad), "invalid_parameter");
    assert_eq!(a.mem.queue.sent().len(), 1);
}

#[tokio::test]
async fn a_customer_over_its_rate_gets_429_rate_limited_with_retry_after() {
    let mem = Memory::new();
    let settings = Settings {
        customer_jobs_per_second: 1,
        ..Settings::default()
    };
    // A fixed clock: the 10 requests must fall in one window.
    let clock = resizer_app::Clock::fixed(time::macros::datetime!(2026-11-30 10:00:01 UTC));
    let app = mem.app(settings).with_clock(clock);
    let (_, key) = mem.customer(&app, None).await;
    let a = Api {
        mem,
        app,
        key: key.expose(),
    };
    let post = || {
        a.call(
            Method::POST,
            "/v1/jobs?width=1",
            true,
            TINY_PNG.to_vec(),
            "image/png",
        )
    };
    for _ in 0..resizer_app::RATE_WINDOW_SECONDS {
        assert_eq!(post().await.status, StatusCode::ACCEPTED);
    }
    let r = post().await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.json);
    assert_eq!(code(&r), "rate_limited");
    assert_eq!(r.headers["retry-after"], "9");
    assert_eq!(a.mem.queue.sent().len(), 10);
}

#[tokio::test]
async fn presets_are_saved_read_listed_used_by_jobs_and_deleted() {
    let a = api().await;
    let r = a
        .put(
            "/v1/presets/thumb",
            r#"{"width": 300, "fit": "cover", "format": "webp"}"#,
            "application/json",
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    assert_eq!(r.headers["location"], "/v1/presets/thumb");
    assert_eq!(r.json["name"], "thumb");
    assert_eq!(
        r.json["params"],
        serde_json::json!({"width": "300", "fit": "cover", "format": "webp"})
    );
    assert_eq!(r.json["created_at"], r.json["updated_at"]);
    // Saved again: replaced, 200, created_at kept.
    let again = a
        .put(
            "/v1/presets/thumb",
            r#"{"width": "200", "fit": "cover"}"#,
            "application/json; charset=utf-8",
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.json);
    assert_eq!(again.json["created_at"], r.json["created_at"]);
    assert_eq!(
        again.json["params"],
        serde_json::json!({"width": "200", "fit": "cover"})
    );
    let got = a.get("/v1/presets/thumb").await;
    assert_eq!((got.status, &got.json), (StatusCode::OK, &again.json));
    let list = a.get("/v1/presets").await;
    assert_eq!(list.json, serde_json::json!({"presets": [again.json]}));

    // A job names it, and overrides one of its parameters.
    let r = a
        .call(
            Method::POST,
            "/v1/jobs?preset=thumb&format=png",
            true,
            TINY_PNG.to_vec(),
            "image/png",
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    let params = &r.json["params"];
    assert_eq!(
        (&params["width"], &params["fit"], &params["format"]),
        (&200.into(), &"cover".into(), &"png".into()),
        "{params}"
    );

    let del = a
        .call(Method::DELETE, "/v1/presets/thumb", true, Vec::new(), "")
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT, "{}", del.text);
    assert!(del.text.is_empty());
    for r in [
        a.get("/v1/presets/thumb").await,
        a.call(Method::DELETE, "/v1/presets/thumb", true, Vec::new(), "")
            .await,
        a.get("/v1/presets/not%20a%20name").await,
    ] {
        assert_eq!((r.status, code(&r)), (StatusCode::NOT_FOUND, "not_found"));
    }
    assert_eq!(
        a.get("/v1/presets").await.json["presets"],
        serde_json::json!([])
    );
}

#[tokio::test]
async fn a_bad_preset_gets_the_errors_a_job_would() {
    let a = api().await;
    let job = a
        .call(
            Method::POST,
            "/v1/jobs?width=0",
            true,
            TINY_PNG.to_vec(),
            "image/png",
        )
        .await;
    let r = a
        .put("/v1/presets/p", r#"{"width": 0}"#, "application/json")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json["error"]["message"], job.json["error"]["message"],
        "the job's message"
    );
    let cases = [
        (
            "/v1/presets/p",
            r#"{"fit": "cover"}"#,
            "width or height is required",
        ),
        (
            "/v1/presets/p",
            r#"{"width": 9, "colour": "red"}"#,
            "unknown parameter \"colour\"",
        ),
        (
            "/v1/presets/p",
            r#"{"width": 9, "preset": "q"}"#,
            "cannot name another preset",
        ),
        (
            "/v1/presets/p",
            r#"{"width": [9]}"#,
            "width must be a string, number or boolean",
        ),
        (
            "/v1/presets/p",
            r#"[9]"#,
            "must be an object of transform parameters",
        ),
        ("/v1/presets/p", r#"{"width": "#, "the JSON body is invalid"),
        (
            "/v1/presets/a.b",
            r#"{"width": 9}"#,
            "a preset name is 1 to 64",
        ),
        (
            "/v1/presets/p?width=9",
            r#"{"width": 9}"#,
            "takes no parameters",
        ),
    ];
    for (uri, body, says) in cases {
        let r = a.put(uri, body, "application/json").await;
        assert_eq!(
            (r.status, code(&r)),
            (StatusCode::BAD_REQUEST, "invalid_parameter"),
            "{uri} {body}: {}",
            r.json
        );
        let message = r.json["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{uri} {body}: {message}");
    }
    let r = a
        .put(
            "/v1/presets/p",
            "width=9",
            "application/x-www-form-urlencoded",
        )
        .await;
    assert_eq!(
        (r.status, code(&r)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
    assert!(
        a.get("/v1/presets").await.json["presets"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A job naming a preset it does not have, or two, or a mix the preset makes invalid.
    let r = a
        .put(
            "/v1/presets/smart",
            r#"{"width": 9, "fit": "cover", "position": "entropy"}"#,
            "application/json",
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    for (query, says) in [
        ("preset=nope", "preset \"nope\" is not one of your presets"),
        (
            "preset=smart&preset=smart",
            "preset is given more than once",
        ),
        (
            "preset=smart&fit=contain",
            "with preset \"smart\": position=entropy needs fit=cover",
        ),
        ("preset=a.b", "a preset name is 1 to 64"),
    ] {
        let r = a
            .call(
                Method::POST,
                &format!("/v1/jobs?{query}"),
                true,
                TINY_PNG.to_vec(),
                "image/png",
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.json);
        let message = r.json["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{query}: {message}");
    }
    assert!(a.mem.queue.sent().is_empty(), "no job was accepted");
}

/// The answer's `header` lists each of `names`.
fn names_each(r: &Resp, header: &str, names: &[&str]) {
    let listed = r.headers[header].to_str().unwrap();
    for name in names {
        assert!(listed.contains(name), "{name} in {header}: {listed}");
    }
}

/// A browser's preflight for a POST of an image with a key, from a page of `origin`.
async fn preflight(a: &Api, origin: &str) -> Resp {
    let headers = [
        ("origin", origin),
        ("access-control-request-method", "POST"),
        (
            "access-control-request-headers",
            "authorization,content-type,idempotency-key",
        ),
    ];
    a.call_with(Method::OPTIONS, "/v1/jobs", false, Vec::new(), "", &headers)
        .await
}

#[tokio::test]
async fn pages_of_the_allowed_origins_may_call_it_from_a_browser() {
    const PAGE: &str = "https://app.example.com";
    let mem = Memory::new();
    let settings = Settings {
        cors_allowed_origins: vec![PAGE.into()],
        ..Settings::default()
    };
    let app = mem.app(settings);
    let (_, key) = mem.customer(&app, None).await;
    let a = Api {
        mem,
        app,
        key: key.expose(),
    };
    // The preflight needs no key (browsers send none) and says what the page may do.
    let r = preflight(&a, PAGE).await;
    assert!(r.status.is_success(), "{}", r.status);
    assert_eq!(r.headers["access-control-allow-origin"], PAGE);
    let methods = r.headers["access-control-allow-methods"].to_str().unwrap();
    assert!(
        methods.contains("POST") && methods.contains("GET"),
        "{methods}"
    );
    names_each(
        &r,
        "access-control-allow-headers",
        &[
            "authorization",
            "content-type",
            "idempotency-key",
            "x-api-key",
        ],
    );
    assert_eq!(r.headers["access-control-max-age"], "600");
    // Another site's page is told nothing, so its browser refuses.
    let r = preflight(&a, "https://evil.example").await;
    assert!(!r.headers.contains_key("access-control-allow-origin"));

    // A real request from the page: its answer, an error too, is readable by the page.
    let r = a
        .call_with(
            Method::POST,
            "/v1/jobs?width=1",
            true,
            TINY_PNG.to_vec(),
            "image/png",
            &[("origin", PAGE)],
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    assert_eq!(r.headers["access-control-allow-origin"], PAGE);
    names_each(
        &r,
        "access-control-expose-headers",
        &[
            "location",
            "retry-after",
            "idempotent-replayed",
            "x-request-id",
        ],
    );
    let r = a
        .call_with(
            Method::GET,
            "/v1/usage",
            false,
            Vec::new(),
            "",
            &[("origin", PAGE)],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers["access-control-allow-origin"], PAGE);

    // Without configured origins (the default): no CORS at all, and OPTIONS is a 405.
    let plain = api().await;
    let r = plain
        .call_with(
            Method::OPTIONS,
            "/v1/jobs",
            false,
            Vec::new(),
            "",
            &[("origin", PAGE), ("access-control-request-method", "POST")],
        )
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(!r.headers.contains_key("access-control-allow-origin"));
}
