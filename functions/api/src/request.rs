//! The parts of an API Gateway HTTP API event that the routes use.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use base64::Engine as _;
use http::{HeaderMap, Method, header};

#[derive(Debug)]
pub struct Request {
    pub method: Method,
    pub path: String,
    /// The query string's pairs, decoded, in order, duplicates kept (payload 2.0's
    /// `queryStringParameters` joins duplicates with commas, so the raw string is used).
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    /// The body, base64-decoded when API Gateway encoded it. `None` when absent or undecodable.
    pub body: Option<Vec<u8>>,
    pub body_undecodable: bool,
    pub request_id: String,
}

impl Request {
    pub fn from_event(event: ApiGatewayV2httpRequest, lambda_request_id: &str) -> Self {
        let ctx = &event.request_context;
        let method = ctx.http.method.clone();
        let path = event
            .raw_path
            .clone()
            .or_else(|| ctx.http.path.clone())
            .unwrap_or_else(|| "/".into());
        let request_id = ctx
            .request_id
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| lambda_request_id.to_owned());
        let query = event
            .raw_query_string
            .as_deref()
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let (body, body_undecodable) = match event.body {
            None => (None, false),
            Some(b) if event.is_base64_encoded => {
                match base64::engine::general_purpose::STANDARD.decode(b.as_bytes()) {
                    Ok(v) => (Some(v), false),
                    Err(_) => (None, true),
                }
            }
            Some(b) => (Some(b.into_bytes()), false),
        };
        Self {
            method,
            path,
            query,
            headers: event.headers,
            body,
            body_undecodable,
            request_id,
        }
    }

    /// The presented API key: `Authorization: Bearer <key>` first, then `x-api-key`.
    pub fn api_key(&self) -> Option<&str> {
        if let Some(v) = self.header(header::AUTHORIZATION.as_str()) {
            let mut parts = v.trim().splitn(2, ' ');
            if let (Some(scheme), Some(token)) = (parts.next(), parts.next())
                && scheme.eq_ignore_ascii_case("bearer")
            {
                return Some(token.trim());
            }
        }
        self.header("x-api-key").map(str::trim)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn content_type(&self) -> Option<&str> {
        self.header(header::CONTENT_TYPE.as_str())
    }

    /// The first value of a query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}
