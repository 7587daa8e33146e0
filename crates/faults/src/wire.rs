//! The AWS side of the proxy: which service and operation a request is, and the error answers each
//! service really sends, so that the SDKs classify an injected error exactly as they would the
//! real one.
//!
//! - Service: the SigV4 credential scope (`Credential=<key>/<date>/<region>/<service>/aws4_request`,
//!   in the `Authorization` header or, for presigned URLs, the `X-Amz-Credential` parameter); else
//!   the `X-Amz-Target` prefix.
//! - Operation: `X-Amz-Target` for the JSON protocols (DynamoDB, and SQS, whose current SDKs speak
//!   AWS JSON 1.0 with query-compatible error codes); the method and path shape for S3.
//! - Errors: DynamoDB and SQS answer `application/x-amz-json-1.0` bodies with a `__type`; SQS adds
//!   `x-amzn-query-error: <code>;<Sender|Receiver>`, which its SDKs read as the code; S3 answers
//!   an XML `<Error>` (no body to a HEAD).

use http::{HeaderMap, Method, Response, StatusCode};

use crate::rules::{Call, ErrorKind};

/// The service name of a SigV4 credential scope.
fn scope_service(credential: &str) -> Option<&str> {
    // <key>/<yyyymmdd>/<region>/<service>/aws4_request
    let mut parts = credential.split('/');
    let _key = parts.next()?;
    let _date = parts.next()?;
    let _region = parts.next()?;
    let service = parts.next()?;
    (parts.next()? == "aws4_request").then_some(service)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The service of a request, from its signature (or, failing that, its target).
pub fn service_of(headers: &HeaderMap, query: &str) -> String {
    if let Some(auth) = header(headers, "authorization")
        && let Some(at) = auth.find("Credential=")
    {
        let rest = &auth[at + "Credential=".len()..];
        let credential = rest.split([',', ' ']).next().unwrap_or("");
        if let Some(s) = scope_service(credential) {
            return s.to_owned();
        }
    }
    for pair in query.split('&') {
        if let Some(v) = pair.strip_prefix("X-Amz-Credential=") {
            let decoded = v.replace("%2F", "/").replace("%2f", "/");
            if let Some(s) = scope_service(&decoded) {
                return s.to_owned();
            }
        }
    }
    match header(headers, "x-amz-target") {
        Some(t) if t.starts_with("DynamoDB_") => "dynamodb".into(),
        Some(t) if t.starts_with("AmazonSQS") => "sqs".into(),
        _ => "other".into(),
    }
}

/// The JSON protocols' operation: what follows the `.` in `X-Amz-Target`.
pub fn json_operation(headers: &HeaderMap) -> Option<String> {
    header(headers, "x-amz-target")
        .and_then(|t| t.rsplit_once('.'))
        .map(|(_, op)| op.to_owned())
}

/// The S3 operation of a request, from its method and path shape (path-style addressing, as the
/// SDKs use against an endpoint override).
pub fn s3_operation(method: &Method, path: &str, query: &str, headers: &HeaderMap) -> String {
    let path = path.trim_start_matches('/');
    let has_key = path.split_once('/').is_some_and(|(_, k)| !k.is_empty());
    let q = |name: &str| {
        query
            .split('&')
            .any(|p| p == name || p.starts_with(&format!("{name}=")))
    };
    let op = match (method.as_str(), has_key) {
        ("GET", true) if q("uploadId") => "ListParts",
        ("GET", true) => "GetObject",
        ("PUT", true) if q("partNumber") => "UploadPart",
        ("PUT", true) if headers.contains_key("x-amz-copy-source") => "CopyObject",
        ("PUT", true) => "PutObject",
        ("HEAD", true) => "HeadObject",
        ("DELETE", true) if q("uploadId") => "AbortMultipartUpload",
        ("DELETE", true) => "DeleteObject",
        ("POST", true) if q("uploads") => "CreateMultipartUpload",
        ("POST", true) if q("uploadId") => "CompleteMultipartUpload",
        ("GET", false) if q("list-type") => "ListObjectsV2",
        ("GET", false) if path.is_empty() => "ListBuckets",
        ("GET", false) => "ListObjects",
        ("HEAD", false) => "HeadBucket",
        ("PUT", false) => "CreateBucket",
        ("DELETE", false) => "DeleteBucket",
        ("POST", false) if q("delete") => "DeleteObjects",
        // A browser-style upload: a presigned POST form to the bucket.
        ("POST", false) => "PostObject",
        _ => "",
    };
    op.to_owned()
}

/// The target of a JSON-protocol call: the table name(s) of a DynamoDB call, the queue URL of an
/// SQS call.
pub fn json_target(service: &str, body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::new();
    };
    let mut out: Vec<String> = Vec::new();
    match service {
        "sqs" => {
            if let Some(q) = v["QueueUrl"].as_str() {
                out.push(q.to_owned());
            }
        }
        _ => {
            if let Some(t) = v["TableName"].as_str() {
                out.push(t.to_owned());
            }
            if let Some(items) = v["TransactItems"].as_array() {
                for item in items {
                    if let Some(obj) = item.as_object() {
                        for inner in obj.values() {
                            if let Some(t) = inner["TableName"].as_str()
                                && !out.iter().any(|o| o == t)
                            {
                                out.push(t.to_owned());
                            }
                        }
                    }
                }
            }
            for key in ["RequestItems", "TransactItems"] {
                if let Some(map) = v[key].as_object() {
                    out.extend(map.keys().cloned());
                }
            }
        }
    }
    out.join(",")
}

/// Identifies a call from its head (and, for the JSON protocols, its body).
pub fn call_of(
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    json_body: Option<&[u8]>,
) -> Call {
    let service = service_of(headers, query);
    let (operation, target) = match service.as_str() {
        "s3" => (s3_operation(method, path, query, headers), path.to_owned()),
        _ => (
            json_operation(headers).unwrap_or_default(),
            json_body.map_or_else(String::new, |b| json_target(&service, b)),
        ),
    };
    Call {
        service,
        operation,
        target,
    }
}

/// A request id in the shape AWS uses (for the error's headers and body).
fn request_id() -> String {
    let a: u128 = rand::random();
    let s = format!("{a:032X}");
    format!(
        "{}-{}-{}-{}-{}",
        &s[0..8],
        &s[8..12],
        &s[12..16],
        &s[16..20],
        &s[20..32]
    )
}

/// The error answer of `service` for `kind`: status, headers and body as the service sends them.
pub fn error_response(service: &str, method: &Method, kind: ErrorKind) -> Response<Vec<u8>> {
    let id = request_id();
    let (status, body, headers): (StatusCode, Vec<u8>, Vec<(&str, String)>) = match service {
        "dynamodb" => {
            let (status, ty, message) = match kind {
                ErrorKind::Throttle => (
                    StatusCode::BAD_REQUEST,
                    "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                    "The level of configured provisioned throughput for the table was exceeded. \
                     Consider increasing your provisioning level with the UpdateTable API.",
                ),
                ErrorKind::Internal => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "com.amazonaws.dynamodb.v20120810#InternalServerError",
                    "Internal server error",
                ),
                ErrorKind::Unavailable => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "com.amazonaws.dynamodb.v20120810#ServiceUnavailable",
                    "The service is currently unavailable or busy.",
                ),
            };
            let body = serde_json::json!({"__type": ty, "message": message}).to_string();
            (
                status,
                body.into_bytes(),
                vec![
                    ("content-type", "application/x-amz-json-1.0".into()),
                    ("x-amzn-requestid", id),
                ],
            )
        }
        "sqs" => {
            let (status, code, fault, message) = match kind {
                ErrorKind::Throttle => (
                    StatusCode::BAD_REQUEST,
                    "RequestThrottled",
                    "Sender",
                    "Rate exceeded",
                ),
                ErrorKind::Internal => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalFailure",
                    "Receiver",
                    "The request processing has failed because of an unknown error, exception or failure.",
                ),
                ErrorKind::Unavailable => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "Receiver",
                    "The request has failed due to a temporary failure of the server.",
                ),
            };
            let body = serde_json::json!({
                "__type": format!("com.amazonaws.sqs#{code}"),
                "message": message,
            })
            .to_string();
            (
                status,
                body.into_bytes(),
                vec![
                    ("content-type", "application/x-amz-json-1.0".into()),
                    ("x-amzn-query-error", format!("{code};{fault}")),
                    ("x-amzn-requestid", id),
                ],
            )
        }
        "s3" => {
            let (status, code, message) = match kind {
                ErrorKind::Throttle => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "SlowDown",
                    "Please reduce your request rate.",
                ),
                ErrorKind::Internal => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "We encountered an internal error. Please try again.",
                ),
                ErrorKind::Unavailable => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "Service is unable to handle request.",
                ),
            };
            let host_id = format!("{}{}", request_id(), request_id()).replace('-', "");
            let body = if method == Method::HEAD {
                Vec::new()
            } else {
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
                     <Message>{message}</Message><RequestId>{}</RequestId><HostId>{host_id}</HostId></Error>",
                    &id[..16]
                )
                .into_bytes()
            };
            (
                status,
                body,
                vec![
                    ("content-type", "application/xml".into()),
                    ("x-amz-request-id", id[..16].to_owned()),
                    ("x-amz-id-2", host_id),
                ],
            )
        }
        _ => {
            let status = match kind {
                ErrorKind::Throttle => StatusCode::TOO_MANY_REQUESTS,
                ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
                ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            };
            let body = serde_json::json!({"__type": "ServiceUnavailable", "message": "injected"})
                .to_string();
            (
                status,
                body.into_bytes(),
                vec![("content-type", "application/json".into())],
            )
        }
    };
    let mut resp = Response::builder().status(status);
    for (k, v) in headers {
        resp = resp.header(k, v);
    }
    resp.body(body).expect("a valid response")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_service_comes_from_the_signature_scope() {
        let h = headers(&[(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=test/20261130/us-east-1/dynamodb/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=abc",
        )]);
        assert_eq!(service_of(&h, ""), "dynamodb");
        let q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=test%2F20261130%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=1";
        assert_eq!(service_of(&HeaderMap::new(), q), "s3");
        let h = headers(&[("x-amz-target", "AmazonSQS.SendMessage")]);
        assert_eq!(service_of(&h, ""), "sqs");
        assert_eq!(json_operation(&h).as_deref(), Some("SendMessage"));
        assert_eq!(service_of(&HeaderMap::new(), ""), "other");
    }

    #[test]
    fn s3_operations_from_method_and_path() {
        let h = HeaderMap::new();
        let op = |m: Method, p: &str, q: &str| s3_operation(&m, p, q, &h);
        assert_eq!(
            op(Method::GET, "/b/inline/c/j", "x-id=GetObject"),
            "GetObject"
        );
        assert_eq!(op(Method::HEAD, "/b/k", ""), "HeadObject");
        assert_eq!(op(Method::PUT, "/b/k", "x-id=PutObject"), "PutObject");
        assert_eq!(
            op(Method::DELETE, "/b/k", "x-id=DeleteObject"),
            "DeleteObject"
        );
        assert_eq!(
            op(Method::GET, "/b", "list-type=2&prefix=a"),
            "ListObjectsV2"
        );
        assert_eq!(op(Method::GET, "/b/", "list-type=2"), "ListObjectsV2");
        assert_eq!(op(Method::HEAD, "/b", ""), "HeadBucket");
        assert_eq!(op(Method::POST, "/b", "delete"), "DeleteObjects");
        assert_eq!(op(Method::POST, "/b", ""), "PostObject");
    }

    #[test]
    fn json_targets_name_tables_and_queues() {
        let body =
            br#"{"TransactItems":[{"Update":{"TableName":"jobs"}},{"Put":{"TableName":"usage"}}]}"#;
        assert_eq!(json_target("dynamodb", body), "jobs,usage");
        assert_eq!(
            json_target("dynamodb", br#"{"TableName":"t","Key":{}}"#),
            "t"
        );
        assert_eq!(
            json_target(
                "sqs",
                br#"{"QueueUrl":"http://x/queue/q","MessageBody":"{}"}"#
            ),
            "http://x/queue/q"
        );
        assert_eq!(json_target("dynamodb", b"not json"), "");
    }

    #[test]
    fn error_bodies_in_each_services_format() {
        let r = error_response("dynamodb", &Method::POST, ErrorKind::Throttle);
        assert_eq!(r.status(), 400);
        let v: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert!(
            v["__type"]
                .as_str()
                .unwrap()
                .ends_with("#ProvisionedThroughputExceededException")
        );
        let r = error_response("sqs", &Method::POST, ErrorKind::Throttle);
        assert_eq!(r.headers()["x-amzn-query-error"], "RequestThrottled;Sender");
        let r = error_response("s3", &Method::GET, ErrorKind::Throttle);
        assert_eq!(r.status(), 503);
        assert!(String::from_utf8_lossy(r.body()).contains("<Code>SlowDown</Code>"));
        assert!(
            error_response("s3", &Method::HEAD, ErrorKind::Throttle)
                .body()
                .is_empty()
        );
    }
}
