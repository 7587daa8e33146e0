//! The `resizer` binary as a user runs it: failures are one `error:` line with the API's own
//! message, never a panic or a stack trace. The server here is a one-shot canned HTTP responder;
//! the whole flow against the real service is in `integration-tests/tests/http.rs`.
//!
//! (These tests also make `cargo test` build the `resizer` binary itself, which the integration
//! tests run, with the same features as every other test target: one build, not two.)

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::thread;

fn resizer(args: &[&str], cwd: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_resizer"))
        .args(args)
        .current_dir(cwd)
        .env_remove("RESIZER_API_KEY")
        .env_remove("RESIZER_ENDPOINT")
        .output()
        .expect("run resizer")
}

/// A well-formed key; the servers here never check it.
const KEY: &str = "rsz_abcdefghijklmnop_0123456789012345678901234567890123456789";

/// `resizer jobs get j_x` against `endpoint`, with [`KEY`].
fn jobs_get_j_x(endpoint: &str, cwd: &std::path::Path) -> Output {
    resizer(
        &["jobs", "get", "j_x", "--endpoint", endpoint, "--key", KEY],
        cwd,
    )
}

/// An empty working directory of this test's own (no `.local/dev/api-key` to fall back on).
fn scratch() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "resizer-cli-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a one-line `error: …` failure with no panic, and returns the line.
fn one_line_failure(o: &Output) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("RUST_BACKTRACE"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

/// Serves one request with `status` and a JSON `body`; returns the address and the request text.
fn canned(status: &str, body: &str) -> (String, thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    let handle = thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut req = Vec::new();
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = sock.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            req.extend_from_slice(&buf[..n]);
        }
        sock.write_all(response.as_bytes()).unwrap();
        String::from_utf8_lossy(&req).into_owned()
    });
    (addr, handle)
}

#[test]
fn help_lists_every_command() {
    let dir = scratch();
    let o = resizer(&["--help"], &dir);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    for cmd in ["admin", "dev", "resize", "usage", "jobs"] {
        assert!(out.contains(cmd), "{cmd} missing from --help:\n{out}");
    }
}

#[test]
fn the_apis_error_is_shown_as_is() {
    let dir = scratch();
    let (endpoint, server) = canned(
        "404 Not Found",
        r#"{"error":{"code":"not_found","message":"no job with id j_x","request_id":"req-1"}}"#,
    );
    let o = jobs_get_j_x(&endpoint, &dir);
    let err = one_line_failure(&o);
    assert!(err.contains("not_found"), "{err}");
    assert!(err.contains("no job with id j_x"), "{err}");
    assert!(err.contains("req-1"), "{err}");
    let req = server.join().unwrap();
    assert!(req.starts_with("GET /v1/jobs/j_x "), "{req}");
    // The key travels as a bearer token.
    assert!(
        req.to_ascii_lowercase()
            .contains("authorization: bearer rsz_abcdefghijklmnop_"),
        "{req}"
    );
}

#[test]
fn a_missing_key_says_where_keys_come_from() {
    let dir = scratch();
    let o = resizer(&["usage", "--endpoint", "http://127.0.0.1:9"], &dir);
    let err = one_line_failure(&o);
    assert!(err.contains("RESIZER_API_KEY"), "{err}");
}

#[test]
fn an_unreachable_endpoint_is_one_line() {
    let dir = scratch();
    // Bind then drop: a loopback port with nobody listening.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let o = jobs_get_j_x(&endpoint, &dir);
    let err = one_line_failure(&o);
    assert!(err.contains(&endpoint), "{err}");
}

#[test]
fn a_missing_input_file_is_named() {
    let dir = scratch();
    let o = resizer(
        &[
            "resize",
            "nope.jpg",
            "--width",
            "400",
            "--endpoint",
            "http://127.0.0.1:9",
            "--key",
            KEY,
        ],
        &dir,
    );
    let err = one_line_failure(&o);
    assert!(err.contains("nope.jpg"), "{err}");
}
