//! Parsing what a request says: query pairs, the JSON form of a job, `wait`.

use std::time::Duration;

use resizer_app::{MAX_WAIT_SECONDS, Settings, Submission};
use resizer_core::transform::TransformSpec;
use serde_json::Value;

use crate::error::ApiError;

/// The query string's pairs, decoded, in order, duplicates kept (payload 2.0's
/// `queryStringParameters` joins duplicates with commas, so the raw string is used).
pub fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| {
        form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

/// The media type of a `Content-Type`, lowercase, without parameters.
pub fn media_type(content_type: Option<&str>) -> Option<String> {
    content_type.map(|c| {
        c.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    })
}

fn parse_wait(v: &str) -> Result<Duration, ApiError> {
    let bad = || {
        ApiError::invalid(format!(
            "wait must be an integer 1..={MAX_WAIT_SECONDS} (seconds), got {:?}",
            resizer_core::shorten(v, 40)
        ))
    };
    let n: u64 = v.trim().parse().map_err(|_| bad())?;
    if (1..=MAX_WAIT_SECONDS).contains(&n) {
        Ok(Duration::from_secs(n))
    } else {
        Err(bad())
    }
}

fn set_wait(wait: &mut Option<Duration>, v: &str) -> Result<(), ApiError> {
    if wait.is_some() {
        return Err(ApiError::invalid("wait is given more than once"));
    }
    *wait = Some(parse_wait(v)?);
    Ok(())
}

/// `POST /v1/jobs`: the transform from the query string (or the JSON body), the image from the
/// body (or the upload the JSON body names), and how long to wait. With `format=auto`, the
/// formats the `Accept` header takes are recorded in the transform.
pub fn submission(
    settings: &Settings,
    query: Vec<(String, String)>,
    content_type: Option<&str>,
    accept: Option<&str>,
    body: &[u8],
) -> Result<(Submission, Option<Duration>), ApiError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut wait = None;
    for (k, v) in query {
        if k == "wait" {
            set_wait(&mut wait, &v)?;
        } else {
            pairs.push((k, v));
        }
    }
    let content_type = media_type(content_type);
    let mut upload_id = None;
    if content_type.as_deref() == Some("application/json") {
        let json: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::invalid(format!(
                "the JSON body is invalid ({e}); expected {{\"upload_id\": \"…\", \"width\": 400, …}}"
            ))
        })?;
        let Value::Object(fields) = json else {
            return Err(ApiError::invalid(
                "the JSON body must be an object with upload_id and the transform parameters",
            ));
        };
        for (k, v) in fields {
            let text = match v {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(ApiError::invalid(format!(
                        "{k} must be a string, number or boolean"
                    )));
                }
            };
            match k.as_str() {
                "upload_id" => upload_id = Some(text),
                "wait" => set_wait(&mut wait, &text)?,
                _ => pairs.push((k, text)),
            }
        }
        if upload_id.is_none() {
            return Err(ApiError::invalid(
                "upload_id is required in a JSON body (get one from POST /v1/uploads); \
                 to send the image itself, use an image Content-Type",
            ));
        }
    }
    let spec = TransformSpec::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| ApiError::invalid(e.message))?
        .negotiated(accept);
    let sub = match upload_id {
        Some(id) => Submission::upload(spec, id),
        None => Submission::inline(spec, content_type.as_deref(), body, settings)?,
    };
    Ok((sub, wait))
}

/// Refuses parameters outside `allowed` and repeated ones.
pub fn only(query: &[(String, String)], allowed: &[&str]) -> Result<(), ApiError> {
    for (i, (k, _)) in query.iter().enumerate() {
        if !allowed.contains(&k.as_str()) {
            return Err(ApiError::invalid(format!(
                "unknown parameter {:?}; allowed: {}",
                resizer_core::shorten(k, 40),
                allowed.join(", ")
            )));
        }
        if query[..i].iter().any(|(p, _)| p == k) {
            return Err(ApiError::invalid(format!("{k} is given more than once")));
        }
    }
    Ok(())
}
