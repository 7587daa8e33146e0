//! Every route and every documented error code of the api handler, with real payload 2.0
//! events, against the local stack.

mod common;

use std::time::Duration;

use common::*;
use resizer_core::key::CustomerStatus;
use resizer_core::usage::{Granularity, Totals};
use serde_json::json;

/// A PNG header declaring `w`×`h`, with no pixel data behind it.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    v.extend_from_slice(&w.to_be_bytes());
    v.extend_from_slice(&h.to_be_bytes());
    v.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    v
}

fn assert_error(r: &Resp, status: u16, code: &str) {
    assert_eq!((r.status, r.code()), (status, code), "{}", r.json);
    let e = &r.json["error"];
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        r.json
    );
    assert!(
        e["request_id"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        r.json
    );
    assert_eq!(r.headers["content-type"], "application/json");
}

#[tokio::test]
async fn health_needs_no_key() {
    let state = state().await;
    let r = call(&state, Req::new("GET", "/v1/health")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json, json!({"status": "ok"}));
}

#[tokio::test]
async fn bad_requests_get_400_with_the_parameter_named() {
    let state = state().await;
    let (_, key) = customer(&state, None).await;
    let img = png(40, 30);
    let cases = [
        ("width=0", "width must be 1..=8192, got 0"),
        ("width=99999", "width must be 1..=8192, got 99999"),
        ("width=abc", "width must be an integer 1..=8192"),
        (
            "width=10&fit=squash",
            "fit must be one of cover, contain, fill, inside, outside",
        ),
        ("width=10&quality=0", "quality must be 1..=100, got 0"),
        ("width=10&quality=101", "quality must be 1..=100, got 101"),
        (
            "width=10&format=bmp",
            "format must be one of jpeg, png, webp, avif",
        ),
        ("width=10&wait=0", "wait must be an integer 1..=20"),
        ("width=10&wait=99", "wait must be an integer 1..=20"),
        ("fit=cover", "width or height is required"),
        ("width=10&colour=red", "unknown parameter \"colour\""),
    ];
    for (q, msg) in cases {
        let r = call(
            &state,
            Req::new("POST", "/v1/jobs")
                .key(&key)
                .query(q)
                .body("image/png", img.clone()),
        )
        .await;
        assert_error(&r, 400, "invalid_parameter");
        let m = r.json["error"]["message"].as_str().unwrap();
        assert!(m.contains(msg), "{q}: {m}");
    }
    let r = call(
        &state,
        Req::new("POST", "/v1/jobs")
            .key(&key)
            .query("width=10")
            .body("image/png", vec![]),
    )
    .await;
    assert_error(&r, 400, "invalid_parameter");
    let r = call(
        &state,
        Req::new("POST", "/v1/jobs")
            .key(&key)
            .json(json!({"width": 10})),
    )
    .await;
    assert_error(&r, 400, "invalid_parameter");
    let r = call(
        &state,
        Req::new("POST", "/v1/jobs")
            .key(&key)
            .json(json!({"upload_id": "nope", "width": 10})),
    )
    .await;
    assert_error(&r, 400, "invalid_parameter");
    let r = call(
        &state,
        Req::new("POST", "/v1/jobs")
            .key(&key)
            .body("application/json", b"{oops".to_vec()),
    )
    .await;
    assert_error(&r, 400, "invalid_parameter");
    let r = call(
        &state,
        Req::new("GET", "/v1/usage")
            .key(&key)
            .query("granularity=week"),
    )
    .await;
    assert_error(&r, 400, "invalid_parameter");
    let r = call(
        &state,
        Req::new("GET", "/v1/usage")
            .key(&key)
            .query("granularity=hour&from=2026-01-01&to=2026-02-01"),
    )
    .await;
    assert_error(&r, 400, "invalid_parameter");
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("168 hours")
    );
    let r = call(
        &state,
        Req::new("POST", "/v1/uploads").key(&key).query("size=5"),
    )
    .await;
    assert_error(&r, 400, "invalid_parameter");
}

#[tokio::test]
async fn keys_are_checked_401_and_disabled_customers_get_403() {
    let state = state_with(|_, s| s.auth_cache_ttl = Duration::ZERO).await;
    let (customer, key) = customer(&state, None).await;
    let no_key = call(&state, Req::new("GET", "/v1/usage")).await;
    assert_error(&no_key, 401, "unauthorized");
    assert_eq!(no_key.headers["www-authenticate"], "Bearer");
    let malformed = call(&state, Req::new("GET", "/v1/usage").key("not-a-key")).await;
    assert_error(&malformed, 401, "unauthorized");
    let unknown = call(
        &state,
        Req::new("GET", "/v1/usage").key(&resizer_core::key::ApiKey::generate().expose()),
    )
    .await;
    assert_error(&unknown, 401, "unauthorized");
    // Right key id, wrong secret.
    let wrong = format!("{}X", &key[..key.len() - 1]);
    let wrong = if wrong == key {
        format!("{}Y", &key[..key.len() - 1])
    } else {
        wrong
    };
    let r = call(&state, Req::new("GET", "/v1/usage").key(&wrong)).await;
    assert_error(&r, 401, "unauthorized");
    // The same message whatever the reason: nothing leaks about which part was wrong.
    assert_eq!(r.json["error"]["message"], unknown.json["error"]["message"]);
    // x-api-key works as well as Bearer.
    let r = call(
        &state,
        Req::new("GET", "/v1/usage").header("x-api-key", &key),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json);

    state
        .app
        .stores
        .accounts
        .set_customer_status(&customer.customer_id, CustomerStatus::Disabled)
        .await
        .unwrap();
    let r = call(&state, Req::new("GET", "/v1/usage").key(&key)).await;
    assert_error(&r, 403, "customer_disabled");
    state
        .app
        .stores
        .accounts
        .set_customer_status(&customer.customer_id, CustomerStatus::Active)
        .await
        .unwrap();

    let key_id = key.split('_').nth(1).unwrap();
    state
        .app
        .stores
        .accounts
        .revoke_key(key_id, state.now())
        .await
        .unwrap();
    let r = call(&state, Req::new("GET", "/v1/usage").key(&key)).await;
    assert_error(&r, 401, "unauthorized");
}

#[tokio::test]
async fn unknown_jobs_routes_and_methods() {
    let state = state().await;
    let (_, key) = customer(&state, None).await;
    for path in [
        "/v1/jobs/not-a-job",
        "/v1/jobs/0191d2c8-7c1e-7000-8000-000000000000",
    ] {
        let r = call(&state, Req::new("GET", path).key(&key)).await;
        assert_error(&r, 404, "not_found");
    }
    let r = call(&state, Req::new("GET", "/v2/elsewhere").key(&key)).await;
    assert_error(&r, 404, "not_found");
    let r = call(&state, Req::new("DELETE", "/v1/jobs/x").key(&key)).await;
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(r.headers["allow"], "GET");
}

#[tokio::test]
async fn images_the_api_refuses_before_staging() {
    let state = state_with(|_, s| s.max_inline_bytes = 100_000).await;
    let (_, key) = customer(&state, None).await;
    let post = |ct: &str, body: Vec<u8>| {
        Req::new("POST", "/v1/jobs")
            .key(&key)
            .query("width=10")
            .body(ct, body)
    };

    let r = call(&state, post("text/plain", png(10, 10))).await;
    assert_error(&r, 415, "unsupported_media_type");
    let r = call(&state, post("image/tiff", b"II*\0\x08\0\0\0".to_vec())).await;
    assert_error(&r, 415, "unsupported_media_type");
    let mut bmp = b"BM".to_vec();
    bmp.extend_from_slice(&[0; 60]);
    let r = call(&state, post("image/png", bmp)).await;
    assert!(matches!(r.status, 415 | 422), "{}", r.json);
    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let r = call(&state, post("image/jpeg", random)).await;
    assert!(
        matches!(
            (r.status, r.code()),
            (415, "unsupported_media_type") | (422, "invalid_image")
        ),
        "{}",
        r.json
    );
    let mut truncated = jpeg(200, 100);
    truncated.truncate(40);
    let r = call(&state, post("image/jpeg", truncated)).await;
    assert_error(&r, 422, "invalid_image");
    let r = call(&state, post("image/png", png_header(30000, 30000))).await;
    assert_error(&r, 422, "too_many_pixels");
    let r = call(&state, post("image/png", png_header(20000, 100))).await;
    assert_error(&r, 422, "dimensions_too_large");
    let r = call(&state, post("image/png", vec![0; 100_001])).await;
    assert_error(&r, 413, "payload_too_large");
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/v1/uploads")
    );
    let r = call(&state, post("image/png", vec![])).await;
    assert_error(&r, 400, "invalid_parameter");
}

/// The open-jobs limit counts on the deployed jobs table's open-by-customer index: a customer
/// with `customer_max_open_jobs` unfinished jobs gets 429 `too_many_open_jobs` with
/// `Retry-After`, until one of them finishes. The jobs are parked in a memory queue, so that they
/// stay open until the test processes one (the sweeper sends the other on later; it ends done).
#[tokio::test]
async fn a_customer_at_its_limit_of_open_jobs_gets_429_until_one_finishes() {
    let parked = resizer_app::memory::Memory::new().queue;
    let q = parked.clone();
    let state = state_with(|_, s| {
        s.auth_cache_ttl = Duration::ZERO;
        s.customer_max_open_jobs = 2;
    })
    .await
    .map_app(|mut app| {
        app.stores.queue = q;
        app
    });
    let (_, key) = customer(&state, None).await;
    let submit = || {
        call(
            &state,
            Req::new("POST", "/v1/jobs")
                .key(&key)
                .query("width=8")
                .body("image/png", png(16, 16)),
        )
    };
    for _ in 0..2 {
        let r = submit().await;
        assert_eq!(r.status, 202, "{}", r.json);
    }
    let r = submit().await;
    assert_error(&r, 429, "too_many_open_jobs");
    assert_eq!(
        r.headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some(
            resizer_app::OPEN_JOBS_RETRY_AFTER_SECONDS
                .to_string()
                .as_str()
        )
    );

    let first = parked.sent().remove(0);
    let d = state
        .app
        .process(
            resizer_app::Delivery {
                message: &first,
                receives: 1,
                receipt: None,
                deadline: None,
            },
            state.resize.converter.clone(),
        )
        .await;
    assert_eq!(d, resizer_app::Disposition::Consumed);
    let r = submit().await;
    assert_eq!(r.status, 202, "one finished, one place free: {}", r.json);
    let r = submit().await;
    assert_error(&r, 429, "too_many_open_jobs");
}

#[tokio::test]
async fn a_customer_over_quota_gets_429() {
    let state = state_with(|_, s| s.auth_cache_ttl = Duration::ZERO).await;
    let (_, key) = customer(&state, Some(2)).await;
    // Each accepted job is counted against the quota when it is submitted (no aggregation).
    for _ in 0..2 {
        let r = call(
            &state,
            Req::new("POST", "/v1/jobs")
                .key(&key)
                .query("width=8")
                .body("image/png", png(16, 16)),
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.json);
    }
    let r = call(
        &state,
        Req::new("POST", "/v1/jobs")
            .key(&key)
            .query("width=8")
            .body("image/png", png(16, 16)),
    )
    .await;
    assert_error(&r, 429, "quota_exceeded");
    let r = call(&state, Req::new("POST", "/v1/uploads").key(&key)).await;
    assert_error(&r, 429, "quota_exceeded");
    // Reading is still allowed.
    let r = call(&state, Req::new("GET", "/v1/usage").key(&key)).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn internal_errors_are_500_without_details() {
    // Staged (the image would otherwise ride in its message and never reach the bucket).
    let state = state_with(|r, s| {
        r.staging_bucket = "resizer-no-such-bucket-for-tests".into();
        s.message_image_max_bytes = 0;
    })
    .await;
    let (_, key) = customer(&state, None).await;
    let r = call(
        &state,
        Req::new("POST", "/v1/jobs")
            .key(&key)
            .query("width=8")
            .body("image/png", png(16, 16)),
    )
    .await;
    assert_error(&r, 500, "internal_error");
    let text = r.json.to_string();
    for leak in ["no-such-bucket", "NoSuchBucket", "s3:", "PutObject"] {
        assert!(!text.contains(leak), "internal detail leaked: {text}");
    }
}

#[tokio::test]
async fn a_dependency_that_is_down_gives_503() {
    // The same handler with its SDK pointed at a port nothing listens on.
    let (_, info) = stack().await;
    let resources = info.resources().unwrap();
    let settings = info.settings().unwrap();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url("http://127.0.0.1:9")
        .timeout_config(
            aws_smithy_types::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_timeout(Duration::from_secs(5))
                .build(),
        )
        .retry_config(aws_smithy_types::retry::RetryConfig::standard().with_max_attempts(1))
        .load()
        .await;
    let adapters = resizer_aws::Adapters::new(&sdk, &resources, &settings);
    let app = resizer_app::App::new(settings, adapters.stores());
    let state = State {
        api: resizer_api::router(app.clone()),
        resize: std::sync::Arc::new(resizer_resize::Resize::new(app.clone(), None)),
        app,
        adapters,
        resources,
        info,
        sdk,
    };
    let key = resizer_core::key::ApiKey::generate().expose();
    let r = call(&state, Req::new("GET", "/v1/usage").key(&key)).await;
    assert_error(&r, 503, "service_unavailable");
    assert_eq!(r.headers["retry-after"], "1");
    assert!(!r.json.to_string().contains("127.0.0.1"));
}

#[tokio::test]
async fn usage_route_answers_with_the_callers_rollups() {
    let state = state().await;
    let (customer, key) = customer(&state, None).await;
    let day = Granularity::Day.period_of(state.now());
    let t = Totals {
        jobs: 3,
        done: 2,
        failed: 1,
        bytes_in: 300,
        bytes_out: 30,
        pixels_in: 3000,
        pixels_out: 300,
        cpu_ms: 9,
    };
    state
        .app
        .stores
        .rollups
        .put(&customer.customer_id, day, &t, state.now())
        .await
        .unwrap();
    let r = call(
        &state,
        Req::new("GET", "/v1/usage")
            .key(&key)
            .query("granularity=day"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["granularity"], "day");
    assert_eq!(r.json["items"].as_array().unwrap().len(), 1);
    assert_eq!(r.json["items"][0]["period"], day.label());
    assert_eq!(r.json["totals"], serde_json::to_value(t).unwrap());
}
