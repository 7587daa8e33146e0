//! End to end over HTTP: a real `resizer dev` process (the forwarder to the deployed api function)
//! on the local stack, whose deployed functions do all the work, driven by a plain HTTP client and
//! by the `resizer` CLI, the way a developer evaluating Resizer would.
//!
//! One test function runs the whole suite against one gateway process, which a guard stops
//! (SIGTERM, as Ctrl-C would) however the test ends.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

struct Gateway {
    child: Option<Child>,
    base: String,
    state_dir: PathBuf,
    log: PathBuf,
}

impl Gateway {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let state_dir = std::env::temp_dir().join(format!("resizer-e2e-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&state_dir).unwrap();
        let log = state_dir.join("gateway.log");
        let child = Command::new(resizer_bin())
            .args([
                "dev",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--state-dir",
            ])
            .arg(&state_dir)
            .stdout(std::fs::File::create(state_dir.join("stdout.txt")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .stdin(Stdio::null())
            .spawn()
            .expect("start resizer dev");
        Self {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            state_dir,
            log,
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// SIGTERM, as Ctrl-C would; returns whether it exited cleanly in time.
    fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

fn resizer_bin() -> PathBuf {
    if let Ok(p) = std::env::var("RESIZER_BIN") {
        return p.into();
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let p = target.join("debug/resizer");
    assert!(
        p.exists(),
        "{} not built: run `cargo build -p resizer-cli` (make test does)",
        p.display()
    );
    p
}

fn cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(resizer_bin())
        .args(args)
        .output()
        .expect("run resizer");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    )
}

struct Client {
    http: reqwest::Client,
    base: String,
}

struct Answer {
    status: u16,
    json: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
}

impl Client {
    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req.send().await.expect("the gateway answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Answer {
            status,
            json: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    fn post(
        &self,
        path_and_query: &str,
        key: Option<&str>,
        ct: Option<&str>,
        body: Vec<u8>,
    ) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .post(format!("{}{path_and_query}", self.base))
            .body(body);
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        r
    }

    fn get(&self, path: &str, key: Option<&str>) -> reqwest::RequestBuilder {
        let r = self.http.get(format!("{}{path}", self.base));
        match key {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    }
}

fn inputs() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let rgb = image::DynamicImage::ImageRgb8(rgb_image(300, 200));
    let rgba = image::DynamicImage::ImageRgba8(image::RgbaImage::from_fn(300, 200, |x, y| {
        image::Rgba([
            (x % 256) as u8,
            (y % 256) as u8,
            90,
            if x < 150 { 255 } else { 100 },
        ])
    }));
    vec![
        ("jpeg", "image/jpeg", encode(&rgb, image::ImageFormat::Jpeg)),
        ("png", "image/png", encode(&rgba, image::ImageFormat::Png)),
        (
            "webp",
            "image/webp",
            encode(&rgba, image::ImageFormat::WebP),
        ),
        ("gif", "image/gif", encode(&rgb, image::ImageFormat::Gif)),
    ]
}

/// A PNG header declaring `w`×`h`, with no pixel data behind it.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    v.extend_from_slice(&w.to_be_bytes());
    v.extend_from_slice(&h.to_be_bytes());
    v.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    v
}

/// A baseline JPEG header declaring `w`×`h` (SOF0), with no scan behind it.
fn jpeg_header(w: u16, h: u16) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08];
    v.extend_from_slice(&h.to_be_bytes());
    v.extend_from_slice(&w.to_be_bytes());
    v.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_service_end_to_end_over_http() {
    let _ = stack().await; // fail early, with instructions, if there is no local stack
    let mut gw = Gateway::start();
    let c = Client {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
        base: gw.base.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = c.http.get(format!("{}/v1/health", c.base)).send().await
            && r.status() == 200
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "resizer dev did not come up:\n{}",
            gw.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The demo key it created on first start.
    let demo: Value =
        serde_json::from_str(&std::fs::read_to_string(gw.state_dir.join("demo-key.json")).unwrap())
            .unwrap();
    let key = demo["api_key"].as_str().unwrap().to_owned();
    let mut jobs: Vec<(String, String)> = Vec::new(); // (job id, key)

    // ---- every format pair and fit mode, dimensions read from the downloaded bytes ----
    for (in_name, ct, bytes) in inputs() {
        for out in ["jpeg", "png", "webp", "avif"] {
            let a = c
                .send(c.post(
                    &format!("/v1/jobs?width=150&format={out}&wait=20"),
                    Some(&key),
                    Some(ct),
                    bytes.clone(),
                ))
                .await;
            assert_eq!(
                a.status,
                200,
                "{in_name}->{out}: {}\n{}",
                a.json,
                gw.log_tail()
            );
            assert_eq!(a.json["status"], "done", "{in_name}->{out}: {}", a.json);
            jobs.push((a.json["job_id"].as_str().unwrap().into(), key.clone()));
            let got = download(a.json["result"]["url"].as_str().unwrap()).await;
            assert_eq!(
                dimensions(&got),
                (out.to_owned(), 150, 100),
                "{in_name}->{out}"
            );
            assert_eq!(a.json["input"]["format"], in_name);
        }
    }
    // Default output format: the input's, GIF becomes PNG.
    let (_, _, gif) = inputs().remove(3);
    let a = c
        .send(c.post(
            "/v1/jobs?height=50&wait=20",
            Some(&key),
            Some("image/gif"),
            gif,
        ))
        .await;
    assert_eq!(
        dimensions(&download(a.json["result"]["url"].as_str().unwrap()).await),
        ("png".into(), 75, 50)
    );
    let jpeg_in = jpeg(400, 300);
    for (fit, w, h) in [
        ("inside", 200, 150),
        ("outside", 267, 200),
        ("cover", 200, 200),
        ("contain", 200, 200),
        ("fill", 200, 200),
    ] {
        let a = c
            .send(c.post(
                &format!("/v1/jobs?width=200&height=200&fit={fit}&wait=20"),
                Some(&key),
                Some("image/jpeg"),
                jpeg_in.clone(),
            ))
            .await;
        assert_eq!(a.json["status"], "done", "{fit}: {}", a.json);
        let got = download(a.json["result"]["url"].as_str().unwrap()).await;
        assert_eq!(dimensions(&got), ("jpeg".into(), w, h), "fit={fit}");
        jobs.push((a.json["job_id"].as_str().unwrap().into(), key.clone()));
    }
    // ---- what a crop keeps, and turning the image ----
    // 800 × 400 grey with a red 80 × 80 square near the top right: a focal point on it, or the
    // gravity of its corner, keeps it in a 200 × 200 crop; the default centre crop does not.
    let marked = encode(
        &image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(800, 400, |x, y| {
            if (680..760).contains(&x) && (40..120).contains(&y) {
                image::Rgb([230, 20, 20])
            } else {
                image::Rgb([128, 128, 128])
            }
        })),
        image::ImageFormat::Jpeg,
    );
    for (crop, keeps_it) in [
        ("fx=0.9&fy=0.2", true),
        ("position=northeast", true),
        ("position=attention", true),
        ("position=centre", false),
    ] {
        let a = c
            .send(c.post(
                &format!("/v1/jobs?width=200&height=200&fit=cover&format=png&{crop}&wait=20"),
                Some(&key),
                Some("image/jpeg"),
                marked.clone(),
            ))
            .await;
        assert_eq!(a.json["status"], "done", "{crop}: {}", a.json);
        jobs.push((a.json["job_id"].as_str().unwrap().into(), key.clone()));
        let got = download(a.json["result"]["url"].as_str().unwrap()).await;
        let img = image::load_from_memory(&got).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (200, 200), "{crop}");
        let red = img
            .pixels()
            .filter(|p| p[0] > 180 && p[1] < 80 && p[2] < 80)
            .count();
        // The square is 40 × 40 in the output: 1,600 pixels, less the JPEG-softened rim.
        if keeps_it {
            assert!(red > 1_200, "{crop}: {red} red pixels");
            // The focal point's square lands where the arithmetic says: window x 400..800.
            if crop.starts_with("fx") {
                assert!(img.get_pixel(160, 40)[0] > 180, "{crop}");
            }
        } else {
            assert_eq!(red, 0, "{crop}");
        }
        if let Some(p) = crop.strip_prefix("position=").filter(|p| *p != "centre") {
            assert_eq!(a.json["params"]["position"], p, "{}", a.json);
        }
    }
    // rotate turns the image before it is fitted, so width applies to the turned one: the
    // square, top right, is bottom right after a quarter turn clockwise.
    let a = c
        .send(c.post(
            "/v1/jobs?width=200&rotate=90&format=png&wait=20",
            Some(&key),
            Some("image/jpeg"),
            marked.clone(),
        ))
        .await;
    assert_eq!(a.json["params"]["rotate"], 90, "{}", a.json);
    let got = download(a.json["result"]["url"].as_str().unwrap()).await;
    let img = image::load_from_memory(&got).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (200, 400));
    // Stored (680..760, 40..120) of 800 × 400 → displayed (280..360, 680..760) of 400 × 800.
    assert!(
        img.get_pixel(160, 360)[0] > 180,
        "{:?}",
        img.get_pixel(160, 360)
    );
    jobs.push((a.json["job_id"].as_str().unwrap().into(), key.clone()));
    // A crop rule broken is a 400 that names it, before any job exists.
    for (query, message) in [
        (
            "width=200&fit=contain&position=entropy",
            "position=entropy needs fit=cover",
        ),
        (
            "width=200&height=200&fit=cover&fx=0.5",
            "fx and fy go together: the focal point, each 0.0..=1.0 of the width and height",
        ),
        (
            "width=200&rotate=45",
            "rotate must be one of 0, 90, 180, 270, got 45",
        ),
    ] {
        let a = c
            .send(c.post(
                &format!("/v1/jobs?{query}"),
                Some(&key),
                Some("image/jpeg"),
                marked.clone(),
            ))
            .await;
        assert_eq!((a.status, a.code()), (400, "invalid_parameter"), "{query}");
        assert_eq!(a.json["error"]["message"], message, "{query}");
    }

    // ---- format=auto: the best format the request's Accept header names ----
    let see_through = encode(
        &image::DynamicImage::ImageRgba8(image::RgbaImage::from_fn(300, 200, |x, _| {
            image::Rgba([200, 60, 60, if x < 150 { 0 } else { 255 }])
        })),
        image::ImageFormat::Png,
    );
    let opaque_png = encode(
        &image::DynamicImage::ImageRgb8(rgb_image(300, 200)),
        image::ImageFormat::Png,
    );
    for (accept, (ct, body), chosen, took) in [
        // Chrome's header for images.
        (
            "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
            ("image/jpeg", &jpeg_in),
            "avif",
            json!(["avif", "webp"]),
        ),
        (
            "image/webp,*/*",
            ("image/png", &see_through),
            "webp",
            json!(["webp"]),
        ),
        ("*/*", ("image/png", &see_through), "png", json!([])),
        (
            "image/png,image/*;q=0.8",
            ("image/png", &opaque_png),
            "jpeg",
            json!([]),
        ),
    ] {
        let a = c
            .send(
                c.post(
                    "/v1/jobs?width=150&format=auto&wait=20",
                    Some(&key),
                    Some(ct),
                    body.clone(),
                )
                .header("accept", accept),
            )
            .await;
        assert_eq!(a.json["status"], "done", "{accept}: {}", a.json);
        assert_eq!(a.json["params"]["format"], "auto", "{}", a.json);
        assert_eq!(a.json["params"]["accept"], took, "{accept}");
        assert_eq!(a.json["result"]["format"], chosen, "{accept}");
        let got = download(a.json["result"]["url"].as_str().unwrap()).await;
        assert_eq!(dimensions(&got).0, chosen, "{accept}");
        jobs.push((a.json["job_id"].as_str().unwrap().into(), key.clone()));
    }

    // ---- a web page of an allowed origin calls the API and uploads from the browser ----
    // (The local stack allows http://localhost:5173: localstack/provision.sh.)
    const PAGE: &str = "http://localhost:5173";
    let preflight = |url: String, origin: &'static str| {
        c.http
            .request(reqwest::Method::OPTIONS, url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allow_origin = |r: &reqwest::Response| {
        r.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let r = preflight(format!("{}/v1/jobs", c.base), PAGE)
        .await
        .unwrap();
    assert!(r.status().is_success(), "API preflight: {}", r.status());
    assert_eq!(allow_origin(&r).as_deref(), Some(PAGE));
    let r = preflight(format!("{}/v1/jobs", c.base), "https://evil.example")
        .await
        .unwrap();
    assert_eq!(allow_origin(&r), None, "another site's page");
    let r = c
        .post("/v1/uploads", Some(&key), None, Vec::new())
        .header("origin", PAGE)
        .send()
        .await
        .unwrap();
    assert_eq!(
        allow_origin(&r).as_deref(),
        Some(PAGE),
        "the upload's answer"
    );
    let upload: Value = r.json().await.unwrap();
    let url = upload["url"].as_str().unwrap().to_owned();
    // The presigned POST goes to the staging bucket, whose CORS rule comes from the same
    // parameter.
    let r = preflight(url.clone(), PAGE).await.unwrap();
    assert!(r.status().is_success(), "S3 preflight: {}", r.status());
    assert_eq!(allow_origin(&r).as_deref(), Some(PAGE));
    let r = preflight(url, "https://evil.example").await.unwrap();
    assert_eq!(
        allow_origin(&r),
        None,
        "S3, another site's page: {}",
        r.status()
    );

    // Never enlarged unless asked.
    let a = c
        .send(c.post(
            "/v1/jobs?width=800&wait=20",
            Some(&key),
            Some("image/jpeg"),
            jpeg_in.clone(),
        ))
        .await;
    assert_eq!(
        (
            a.json["result"]["width"].as_u64(),
            a.json["result"]["height"].as_u64()
        ),
        (Some(400), Some(300))
    );
    let a = c
        .send(c.post(
            "/v1/jobs?width=800&enlarge=true&wait=20",
            Some(&key),
            Some("image/jpeg"),
            jpeg_in.clone(),
        ))
        .await;
    assert_eq!(
        (
            a.json["result"]["width"].as_u64(),
            a.json["result"]["height"].as_u64()
        ),
        (Some(800), Some(600))
    );

    // ---- the large-upload path, through the CLI client ----
    let big = noisy_png(1400, 1100);
    assert!(
        big.len() > 4 * 1024 * 1024,
        "the fixture must exceed the inline limit"
    );
    let src = gw.state_dir.join("big.png");
    std::fs::write(&src, &big).unwrap();
    let out = gw.state_dir.join("thumb.webp");
    let (ok, stdout, stderr) = cli(&[
        "resize",
        src.to_str().unwrap(),
        "--width",
        "350",
        "--format",
        "webp",
        "-o",
        out.to_str().unwrap(),
        "--endpoint",
        &gw.base,
        "--key",
        &key,
    ]);
    assert!(ok, "resizer resize failed: {stderr}\n{}", gw.log_tail());
    assert!(stdout.contains("350x275"), "{stdout}");
    assert_eq!(
        dimensions(&std::fs::read(&out).unwrap()),
        ("webp".into(), 350, 275)
    );

    // ---- a second customer, through the admin CLI ----
    let (ok, other_customer, e) = cli(&["admin", "customer", "create", "--name", "e2e-other"]);
    assert!(ok, "{e}");
    let (ok, other_key, e) = cli(&["admin", "key", "create", "--customer", &other_customer]);
    assert!(ok, "{e}");
    let (ok, _, e) = cli(&[
        "admin",
        "customer",
        "set-max-open-jobs",
        &other_customer,
        "--jobs",
        "500",
    ]);
    assert!(ok, "{e}");
    let (ok, listed, e) = cli(&["admin", "customer", "list"]);
    assert!(ok, "{e}");
    let row = listed
        .lines()
        .find(|l| l.contains(&other_customer))
        .unwrap_or_default()
        .to_owned();
    assert!(row.contains("500"), "{row}");
    let (ok, revoked_customer, _) = cli(&["admin", "customer", "create", "--name", "e2e-revoked"]);
    assert!(ok);
    let (_, revoked_key, _) = cli(&["admin", "key", "create", "--customer", &revoked_customer]);
    let (ok, listed, _) = cli(&["admin", "key", "list", "--customer", &revoked_customer]);
    assert!(
        ok && listed.contains("active")
            && !listed.contains(revoked_key.rsplit('_').next().unwrap())
    );
    let (ok, _, e) = cli(&[
        "admin",
        "key",
        "revoke",
        revoked_key.split('_').nth(1).unwrap(),
    ]);
    assert!(ok, "{e}");
    let (ok, disabled_customer, _) =
        cli(&["admin", "customer", "create", "--name", "e2e-disabled"]);
    assert!(ok);
    let (_, disabled_key, _) = cli(&["admin", "key", "create", "--customer", &disabled_customer]);
    assert!(cli(&["admin", "customer", "disable", &disabled_customer]).0);
    let (_, quota_customer, _) = cli(&[
        "admin",
        "customer",
        "create",
        "--name",
        "e2e-quota",
        "--quota",
        "1",
    ]);
    let (_, quota_key, _) = cli(&["admin", "key", "create", "--customer", &quota_customer]);

    // ---- presets: saved by an operator and by the customer, used by jobs and the CLI ----
    let (ok, saved, e) = cli(&[
        "admin",
        "preset",
        "put",
        "--customer",
        &other_customer,
        "card",
        "width=120",
        "height=80",
        "fit=cover",
        "format=png",
    ]);
    assert!(ok, "{e}");
    assert!(saved.contains("\"card\""), "{saved}");
    let (ok, _, e) = cli(&[
        "admin",
        "preset",
        "put",
        "--customer",
        &other_customer,
        "bad",
        "width=0",
    ]);
    assert!(!ok && e.contains("width must be 1..=8192"), "{e}");
    let presets = format!("{}/v1/presets", c.base);
    let a = c
        .send(
            c.http
                .put(format!("{presets}/square"))
                .bearer_auth(&other_key)
                .json(&serde_json::json!({"width": 64, "height": 64, "fit": "cover", "format": "webp"})),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.json);
    let a = c.send(c.get("/v1/presets", Some(&other_key))).await;
    let names: Vec<&str> = a.json["presets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["card", "square"], "{}", a.json);
    // Another customer's presets are not there for the demo customer.
    let a = c.send(c.get("/v1/presets/card", Some(&key))).await;
    assert_eq!((a.status, a.code()), (404, "not_found"), "{}", a.json);
    for (query, want) in [
        ("preset=card", ("png", 120, 80)),
        ("preset=square&format=jpeg", ("jpeg", 64, 64)),
    ] {
        let a = c
            .send(c.post(
                &format!("/v1/jobs?{query}&wait=20"),
                Some(&other_key),
                Some("image/jpeg"),
                jpeg_in.clone(),
            ))
            .await;
        assert_eq!(a.json["status"], "done", "{query}: {}", a.json);
        let got = download(a.json["result"]["url"].as_str().unwrap()).await;
        assert_eq!(
            dimensions(&got),
            (want.0.to_owned(), want.1, want.2),
            "{query}"
        );
        jobs.push((a.json["job_id"].as_str().unwrap().into(), other_key.clone()));
    }
    let src = gw.state_dir.join("preset-in.jpg");
    std::fs::write(&src, &jpeg_in).unwrap();
    let out = gw.state_dir.join("preset-out.webp");
    let (ok, stdout, stderr) = cli(&[
        "resize",
        src.to_str().unwrap(),
        "--preset",
        "square",
        "-o",
        out.to_str().unwrap(),
        "--endpoint",
        &gw.base,
        "--key",
        &other_key,
    ]);
    assert!(
        ok,
        "resizer resize --preset failed: {stderr}\n{}",
        gw.log_tail()
    );
    assert!(stdout.contains("64x64"), "{stdout}");
    assert_eq!(
        dimensions(&std::fs::read(&out).unwrap()),
        ("webp".into(), 64, 64)
    );
    let a = c
        .send(
            c.http
                .delete(format!("{presets}/square"))
                .bearer_auth(&other_key),
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.json);
    let a = c
        .send(c.post(
            "/v1/jobs?preset=square",
            Some(&other_key),
            Some("image/jpeg"),
            jpeg_in.clone(),
        ))
        .await;
    assert_eq!(
        (a.status, a.code()),
        (400, "invalid_parameter"),
        "{}",
        a.json
    );
    let (ok, listed, e) = cli(&["admin", "preset", "list", "--customer", &other_customer]);
    assert!(
        ok && listed.contains("card") && !listed.contains("square"),
        "{listed} {e}"
    );
    // The customer's own CLI: put, list, get, delete.
    let conn = ["--endpoint", gw.base.as_str(), "--key", other_key.as_str()];
    let presets_cli = |args: &[&str]| cli(&[&["presets"], args, &conn[..]].concat());
    let (ok, saved, e) = presets_cli(&["put", "wide", "width=200", "fit=inside"]);
    assert!(ok && saved.contains("\"wide\""), "{saved} {e}");
    let (ok, listed, e) = presets_cli(&["list"]);
    assert!(
        ok && listed.contains("fit=inside width=200"),
        "{listed} {e}"
    );
    let (ok, got, e) = presets_cli(&["get", "wide"]);
    assert!(ok && got.contains("\"200\""), "{got} {e}");
    assert!(presets_cli(&["delete", "wide"]).0);
    let (ok, _, e) = presets_cli(&["get", "wide"]);
    assert!(!ok && e.contains("404 not_found"), "{e}");

    // ---- the bad-input matrix: documented status and code, never a 5xx ----
    let mine = jobs[0].0.clone();
    let mut corrupt = jpeg(320, 240);
    let sos = corrupt.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
    let end = corrupt.len() - 2;
    corrupt[sos + 20..end].iter_mut().for_each(|b| *b = 0xA5);
    let mut truncated = jpeg(320, 240);
    truncated.truncate(truncated.len() / 2);
    let random: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    let png_small = png(40, 30);
    let k = Some(key.as_str());
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "empty body",
            c.post("/v1/jobs?width=10", k, Some("image/jpeg"), vec![]),
            400,
            "invalid_parameter",
        ),
        (
            "random bytes",
            c.post("/v1/jobs?width=10", k, Some("image/jpeg"), random.clone()),
            415,
            "unsupported_media_type",
        ),
        (
            "truncated jpeg",
            c.post("/v1/jobs?width=10", k, Some("image/jpeg"), truncated),
            422,
            "invalid_image",
        ),
        (
            "png bomb header",
            c.post(
                "/v1/jobs?width=10",
                k,
                Some("image/png"),
                png_header(30000, 30000),
            ),
            422,
            "too_many_pixels",
        ),
        (
            "jpeg bomb header",
            c.post(
                "/v1/jobs?width=10",
                k,
                Some("image/jpeg"),
                jpeg_header(30000, 30000),
            ),
            422,
            "too_many_pixels",
        ),
        (
            "side over the limit",
            c.post(
                "/v1/jobs?width=10",
                k,
                Some("image/png"),
                png_header(20000, 100),
            ),
            422,
            "dimensions_too_large",
        ),
        (
            "wrong content-type",
            c.post(
                "/v1/jobs?width=10",
                k,
                Some("text/plain"),
                png_small.clone(),
            ),
            415,
            "unsupported_media_type",
        ),
        (
            "no content-type",
            c.post("/v1/jobs?width=10", k, None, png_small.clone()),
            415,
            "unsupported_media_type",
        ),
        (
            "tiff",
            c.post(
                "/v1/jobs?width=10",
                k,
                Some("image/tiff"),
                b"II*\0\x08\0\0\0\0\0".to_vec(),
            ),
            415,
            "unsupported_media_type",
        ),
        (
            "oversized body",
            c.post(
                "/v1/jobs?width=10",
                k,
                Some("image/png"),
                vec![7; 4 * 1024 * 1024 + 1],
            ),
            413,
            "payload_too_large",
        ),
        (
            "width=0",
            c.post("/v1/jobs?width=0", k, Some("image/png"), png_small.clone()),
            400,
            "invalid_parameter",
        ),
        (
            "width=99999",
            c.post(
                "/v1/jobs?width=99999",
                k,
                Some("image/png"),
                png_small.clone(),
            ),
            400,
            "invalid_parameter",
        ),
        (
            "width=abc",
            c.post(
                "/v1/jobs?width=abc",
                k,
                Some("image/png"),
                png_small.clone(),
            ),
            400,
            "invalid_parameter",
        ),
        (
            "no size",
            c.post(
                "/v1/jobs?fit=cover",
                k,
                Some("image/png"),
                png_small.clone(),
            ),
            400,
            "invalid_parameter",
        ),
        (
            "unknown fit",
            c.post(
                "/v1/jobs?width=10&fit=stretch",
                k,
                Some("image/png"),
                png_small.clone(),
            ),
            400,
            "invalid_parameter",
        ),
        (
            "quality=0",
            c.post(
                "/v1/jobs?width=10&quality=0",
                k,
                Some("image/png"),
                png_small.clone(),
            ),
            400,
            "invalid_parameter",
        ),
        (
            "quality=101",
            c.post(
                "/v1/jobs?width=10&quality=101",
                k,
                Some("image/png"),
                png_small.clone(),
            ),
            400,
            "invalid_parameter",
        ),
        (
            "unknown format",
            c.post(
                "/v1/jobs?width=10&format=bmp",
                k,
                Some("image/png"),
                png_small.clone(),
            ),
            400,
            "invalid_parameter",
        ),
        (
            "wait=0",
            c.post(
                "/v1/jobs?width=10&wait=0",
                k,
                Some("image/png"),
                png_small.clone(),
            ),
            400,
            "invalid_parameter",
        ),
        (
            "wait=99",
            c.post(
                "/v1/jobs?width=10&wait=99",
                k,
                Some("image/png"),
                png_small.clone(),
            ),
            400,
            "invalid_parameter",
        ),
        (
            "unknown upload",
            c.post(
                "/v1/jobs",
                k,
                Some("application/json"),
                json!({"upload_id": uuid::Uuid::new_v4().to_string(), "width": 5})
                    .to_string()
                    .into_bytes(),
            ),
            400,
            "invalid_parameter",
        ),
        (
            "missing key",
            c.post(
                "/v1/jobs?width=10",
                None,
                Some("image/png"),
                png_small.clone(),
            ),
            401,
            "unauthorized",
        ),
        (
            "malformed key",
            c.post(
                "/v1/jobs?width=10",
                Some("rsz_nope"),
                Some("image/png"),
                png_small.clone(),
            ),
            401,
            "unauthorized",
        ),
        (
            "revoked key",
            c.post(
                "/v1/jobs?width=10",
                Some(&revoked_key),
                Some("image/png"),
                png_small.clone(),
            ),
            401,
            "unauthorized",
        ),
        (
            "disabled customer",
            c.post(
                "/v1/jobs?width=10",
                Some(&disabled_key),
                Some("image/png"),
                png_small.clone(),
            ),
            403,
            "customer_disabled",
        ),
        (
            "another customer's job",
            c.get(&format!("/v1/jobs/{mine}"), Some(&other_key)),
            404,
            "not_found",
        ),
        (
            "nonexistent job",
            c.get(
                &format!("/v1/jobs/{}", resizer_core::job::JobId::generate()),
                k,
            ),
            404,
            "not_found",
        ),
        (
            "garbage job id",
            c.get("/v1/jobs/..%2F..%2Fetc", k),
            404,
            "not_found",
        ),
        (
            "unknown route",
            c.get("/v1/nothing-here", k),
            404,
            "not_found",
        ),
        (
            "wrong method",
            c.http
                .delete(format!("{}/v1/jobs", c.base))
                .bearer_auth(&key),
            405,
            "method_not_allowed",
        ),
        (
            "bad granularity",
            c.get("/v1/usage?granularity=week", k),
            400,
            "invalid_parameter",
        ),
        (
            "usage range too long",
            c.get(
                "/v1/usage?granularity=hour&from=2026-01-01&to=2026-03-01",
                k,
            ),
            400,
            "invalid_parameter",
        ),
    ];
    assert!(cases.len() >= 25);
    for (name, req, status, code) in cases {
        let a = c.send(req).await;
        assert!(a.status < 500, "{name}: 5xx {}", a.json);
        assert_eq!((a.status, a.code()), (status, code), "{name}: {}", a.json);
        assert!(
            a.json["error"]["request_id"].is_string(),
            "{name}: {}",
            a.json
        );
    }
    // Beyond API Gateway's 10 MB payload limit, the gateway itself refuses, with its own shape.
    let a = c
        .send(c.post(
            "/v1/jobs?width=10",
            k,
            Some("image/png"),
            vec![7; 10 * 1024 * 1024 + 1],
        ))
        .await;
    assert_eq!(a.status, 413);
    // A header that decodes but a body that does not: accepted, then failed, never hanging.
    let a = c
        .send(c.post("/v1/jobs?width=10&wait=20", k, Some("image/jpeg"), corrupt))
        .await;
    assert_eq!(
        (a.status, a.json["status"].as_str()),
        (200, Some("failed")),
        "{}",
        a.json
    );
    assert_eq!(a.json["error"]["code"], "invalid_image");
    jobs.push((a.json["job_id"].as_str().unwrap().into(), key.clone()));
    // Over quota: the first job counts once aggregated (the local schedule runs every minute) and
    // the api's cached count has expired (AuthCacheTtlSeconds, 5 s locally), then 429.
    let a = c
        .send(c.post(
            "/v1/jobs?width=10&wait=20",
            Some(&quota_key),
            Some("image/png"),
            png_small.clone(),
        ))
        .await;
    assert_eq!(a.json["status"], "done", "{}", a.json);
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let a = c
            .send(c.post(
                "/v1/jobs?width=10",
                Some(&quota_key),
                Some("image/png"),
                png_small.clone(),
            ))
            .await;
        if a.status == 429 {
            assert_eq!(a.code(), "quota_exceeded");
            break;
        }
        assert_eq!(a.status, 202, "{}", a.json);
        assert!(Instant::now() < deadline, "quota never enforced");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // ---- no job left non-terminal ----
    for (id, k) in &jobs {
        let a = c.send(c.get(&format!("/v1/jobs/{id}"), Some(k))).await;
        assert!(
            matches!(a.json["status"].as_str(), Some("done" | "failed")),
            "{id}: {}",
            a.json
        );
    }

    // ---- usage: the demo customer's rollups count its jobs ----
    let finished: BTreeSet<&String> = jobs
        .iter()
        .filter(|(_, k)| *k == key)
        .map(|(id, _)| id)
        .collect();
    // Usage is metered in the hour each outcome was recorded, and the schedule closes an hour
    // once it has ended (plus a grace period): close this hour and the one before now, through
    // the deployed slice function, as the schedule will.
    let state = state().await;
    let now = resizer_core::usage::HourKey::of(time::OffsetDateTime::now_utc());
    for h in [now.prev(1), now] {
        state.app.close_hour(h).await.expect("close an hour");
    }
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let a = c.send(c.get("/v1/usage?granularity=day", Some(&key))).await;
        assert_eq!(a.status, 200, "{}", a.json);
        // All of the demo customer's jobs: the ones tracked here and the others (enlarge, GIF
        // default, the CLI upload).
        if a.json["totals"]["jobs"].as_u64().unwrap_or(0) >= finished.len() as u64 + 4 {
            assert!(a.json["totals"]["failed"].as_u64().unwrap() >= 1);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "usage never caught up: {}",
            a.json
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let (ok, table, e) = cli(&["usage", "--endpoint", &gw.base, "--key", &key]);
    assert!(ok, "{e}");
    assert!(table.contains("total"), "{table}");

    // ---- Ctrl-C: a clean stop ----
    assert!(
        gw.stop(),
        "resizer dev did not stop cleanly:\n{}",
        gw.log_tail()
    );
}
