//! The reverse proxy: every request is identified ([`crate::wire::call_of`]), its fate decided by
//! the rules ([`crate::rules::Table::decide`]), and then forwarded to the local AWS unchanged (the
//! `Host` header included, so signatures and presigned URLs stay valid) or answered with the fault.
//!
//! The control API lives under `/_faults` on the same port (no S3 bucket name can start with `_`):
//!
//! | request | answer |
//! |---|---|
//! | `GET /_faults` | the rules (with matched and hit counts), per-service counters, the next event number |
//! | `POST /_faults/rules` (a [`Rule`]) | `{"id": n}` |
//! | `DELETE /_faults/rules[/<id>]` | `{"removed": n}` |
//! | `GET /_faults/events?after=<seq>&limit=<n>` | the calls since `after` ([`crate::rules::Events`]) |
//!
//! A reset is a real TCP RST: the connection's socket is given a zero linger before it is closed.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::rules::{Call, Event, Fault, Rule, Table, unix_ms};
use crate::wire;

type Body = BoxBody<Bytes, hyper::Error>;

/// JSON bodies up to this size are read before forwarding, to name the call's table or queue.
const JSON_BODY_LIMIT: u64 = 1 << 20;
/// The longest a hung call is held when its rule has no end.
const MAX_HANG: Duration = Duration::from_secs(15 * 60);
const CONTROL_PREFIX: &str = "/_faults";

/// Headers that belong to one connection, not to the request.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    // The proxy's server side already answered `100 Continue`.
    "expect",
];

/// The proxy: its rules and counters, and the client it forwards with.
pub struct Proxy {
    table: Mutex<Table>,
    upstream: String,
    client: Client<HttpConnector, Body>,
}

/// Why a connection is dropped without an answer.
#[derive(Debug)]
struct Abort(&'static str);

impl std::fmt::Display for Abort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Abort {}

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn json_response(status: StatusCode, v: &impl serde::Serialize) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(full(serde_json::to_vec(v).expect("serialisable")))
        .expect("a valid response")
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for h in HOP_BY_HOP {
        headers.remove(*h);
    }
}

impl Proxy {
    /// A proxy forwarding to `upstream` (`http://host:port`).
    pub fn new(upstream: &str) -> Result<Arc<Self>, String> {
        let uri: Uri = upstream
            .parse()
            .map_err(|e| format!("upstream {upstream:?}: {e}"))?;
        if uri.scheme_str() != Some("http") || uri.authority().is_none() {
            return Err(format!("upstream {upstream:?} is not http://host:port"));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(3)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(128)
            .build(connector);
        Ok(Arc::new(Self {
            table: Mutex::new(Table::new()),
            upstream: upstream.trim_end_matches('/').to_owned(),
            client,
        }))
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a rule directly (tests that run the proxy in process).
    pub fn add_rule(&self, rule: Rule) -> Result<u64, String> {
        self.table().add(rule, Instant::now())
    }

    pub fn snapshot(&self) -> crate::rules::Snapshot {
        self.table().snapshot(Instant::now())
    }

    /// Accepts connections on `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("resizer-faults: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let reset = Arc::new(AtomicBool::new(false));
            let conn = Conn {
                stream,
                reset: reset.clone(),
            };
            let proxy = self.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| proxy.clone().handle(req, reset.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(conn), service)
                    .await;
            });
        }
    }

    /// Binds `addr` and serves in the background; returns the bound address.
    pub async fn spawn(
        self: Arc<Self>,
        addr: SocketAddr,
    ) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        Ok((bound, tokio::spawn(self.serve(listener))))
    }

    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        reset: Arc<AtomicBool>,
    ) -> Result<Response<Body>, Abort> {
        if req.uri().path().starts_with(CONTROL_PREFIX) {
            return Ok(self.control(req).await);
        }
        let arrived = Instant::now();
        let at_ms = unix_ms(SystemTime::now());
        let (parts, body) = req.into_parts();
        let query = parts.uri.query().unwrap_or("").to_owned();
        let service = wire::service_of(&parts.headers, &query);

        // A JSON protocol's body is read first (it is small), to name the table or queue.
        let small = body
            .size_hint()
            .exact()
            .is_some_and(|n| n <= JSON_BODY_LIMIT);
        let (body, json): (Body, Option<Bytes>) = if service != "s3" && small {
            match body.collect().await {
                Ok(b) => {
                    let bytes = b.to_bytes();
                    (full(bytes.clone()), Some(bytes))
                }
                Err(_) => return Err(Abort("the client went away")),
            }
        } else {
            (body.boxed(), None)
        };
        let call = wire::call_of(
            &parts.method,
            parts.uri.path(),
            &query,
            &parts.headers,
            json.as_deref(),
        );
        let decision = self
            .table()
            .decide(&call, Instant::now(), || rand::random::<f64>() * 100.0);
        if !decision.delay.is_zero() {
            tokio::time::sleep(decision.delay).await;
        }
        let event = |status: Option<u16>| Event {
            seq: 0,
            at_ms,
            call: call.clone(),
            fault: decision.label.clone(),
            status,
            ms: arrived.elapsed().as_millis() as u64,
        };
        match &decision.fault {
            Some(Fault::Error { error }) => {
                let resp = wire::error_response(&call.service, &parts.method, *error);
                self.table().record(event(Some(resp.status().as_u16())));
                let (p, b) = resp.into_parts();
                Ok(Response::from_parts(p, full(b)))
            }
            Some(Fault::Reset) => {
                self.table().record(event(None));
                reset.store(true, Ordering::Relaxed);
                Err(Abort("reset"))
            }
            Some(Fault::Hang) => {
                self.table().record(event(None));
                let until = decision.until.unwrap_or(arrived + MAX_HANG);
                tokio::time::sleep_until(until.min(arrived + MAX_HANG).into()).await;
                reset.store(true, Ordering::Relaxed);
                Err(Abort("hang over"))
            }
            Some(Fault::DropResponse) => {
                let resp = self.forward(&call, parts, body).await;
                if let Ok(resp) = resp {
                    // Wait for the whole answer, so that the call has surely happened.
                    let status = resp.status().as_u16();
                    let _ = resp.into_body().collect().await;
                    self.table().record(event(Some(status)));
                }
                reset.store(true, Ordering::Relaxed);
                Err(Abort("answer dropped"))
            }
            Some(Fault::Latency { .. }) | None => match self.forward(&call, parts, body).await {
                Ok(resp) => {
                    self.table().record(event(Some(resp.status().as_u16())));
                    let (mut p, b) = resp.into_parts();
                    strip_hop_by_hop(&mut p.headers);
                    Ok(Response::from_parts(p, b.boxed()))
                }
                Err(()) => {
                    // The local AWS is not there: so is the service, for the caller.
                    self.table().record(event(None));
                    reset.store(true, Ordering::Relaxed);
                    Err(Abort("upstream unreachable"))
                }
            },
        }
    }

    async fn forward(
        &self,
        call: &Call,
        mut parts: http::request::Parts,
        body: Body,
    ) -> Result<Response<Incoming>, ()> {
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let uri: Uri = match format!("{}{path}", self.upstream).parse() {
            Ok(u) => u,
            Err(_) => return Err(()),
        };
        strip_hop_by_hop(&mut parts.headers);
        let mut req = Request::builder()
            .method(parts.method)
            .uri(uri)
            .body(body)
            .map_err(|_| ())?;
        *req.headers_mut() = parts.headers;
        let res = self.client.request(req).await;
        self.table().forwarded(&call.service, res.is_ok());
        res.map_err(|_| ())
    }

    async fn control(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path()[CONTROL_PREFIX.len()..]
            .trim_end_matches('/')
            .to_owned();
        let query = req.uri().query().unwrap_or("").to_owned();
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|p| p.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.parse::<u64>().ok())
        };
        let method = req.method().clone();
        match (method, path.as_str()) {
            (Method::GET, "") => json_response(StatusCode::OK, &self.snapshot()),
            (Method::GET, "/events") => {
                let page = self.table().events(
                    param("after").unwrap_or(0),
                    param("limit").unwrap_or(1000).min(10_000) as usize,
                );
                json_response(StatusCode::OK, &page)
            }
            (Method::POST, "/rules") => {
                let body = match req.into_body().collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(e) => {
                        return json_response(
                            StatusCode::BAD_REQUEST,
                            &serde_json::json!({"error": e.to_string()}),
                        );
                    }
                };
                let rule: Rule = match serde_json::from_slice(&body) {
                    Ok(r) => r,
                    Err(e) => {
                        return json_response(
                            StatusCode::BAD_REQUEST,
                            &serde_json::json!({"error": e.to_string()}),
                        );
                    }
                };
                let text = serde_json::to_string(&rule).unwrap_or_default();
                match self.add_rule(rule) {
                    Ok(id) => {
                        eprintln!("resizer-faults: rule {id} added: {text}");
                        json_response(StatusCode::OK, &serde_json::json!({"id": id}))
                    }
                    Err(e) => {
                        json_response(StatusCode::BAD_REQUEST, &serde_json::json!({"error": e}))
                    }
                }
            }
            (Method::DELETE, "/rules") => {
                let n = self.table().remove(None);
                eprintln!("resizer-faults: {n} rules removed");
                json_response(StatusCode::OK, &serde_json::json!({"removed": n}))
            }
            (Method::DELETE, p) if p.starts_with("/rules/") => {
                match p["/rules/".len()..].parse::<u64>() {
                    Ok(id) => {
                        let n = self.table().remove(Some(id));
                        eprintln!("resizer-faults: rule {id} removed");
                        json_response(StatusCode::OK, &serde_json::json!({"removed": n}))
                    }
                    Err(_) => json_response(
                        StatusCode::BAD_REQUEST,
                        &serde_json::json!({"error": "not a rule id"}),
                    ),
                }
            }
            _ => json_response(
                StatusCode::NOT_FOUND,
                &serde_json::json!({"error": format!("no control route {path:?}")}),
            ),
        }
    }
}

/// A client connection that can be reset: when its flag is set, the socket gets a zero linger
/// before it is closed, so closing it sends an RST rather than a FIN.
struct Conn {
    stream: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        if self.reset.load(Ordering::Relaxed) {
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
