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

/// What `POST /v1/jobs` asks for, before the transform is resolved (a preset is read from the
/// store): its transform parameters, the preset it names, the upload it names, and how long to
/// wait.
#[derive(Debug)]
pub struct JobRequest {
    pub pairs: Vec<(String, String)>,
    pub preset: Option<String>,
    upload_id: Option<String>,
    content_type: Option<String>,
    pub wait: Option<Duration>,
}

/// `POST /v1/jobs`: the transform parameters from the query string (or the JSON body), with
/// `preset` and `wait` set apart; the image from the body (or the upload the JSON body names).
pub fn job_request(
    query: Vec<(String, String)>,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<JobRequest, ApiError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut wait = None;
    let mut preset = None;
    let mut upload_id = None;
    let content_type = media_type(content_type);
    let json = content_type.as_deref() == Some("application/json");
    let mut fields = query;
    if json {
        fields.extend(json_fields(
            body,
            "{\"upload_id\": \"…\", \"width\": 400, …}",
            "an object with upload_id and the transform parameters",
        )?);
    }
    for (k, v) in fields {
        match k.as_str() {
            "wait" => set_wait(&mut wait, &v)?,
            "preset" if preset.is_some() => {
                return Err(ApiError::invalid("preset is given more than once"));
            }
            "preset" => preset = Some(v),
            "upload_id" if json => upload_id = Some(v),
            _ => pairs.push((k, v)),
        }
    }
    if json && upload_id.is_none() {
        return Err(ApiError::invalid(
            "upload_id is required in a JSON body (get one from POST /v1/uploads); \
             to send the image itself, use an image Content-Type",
        ));
    }
    Ok(JobRequest {
        pairs,
        preset,
        upload_id,
        content_type,
        wait,
    })
}

impl JobRequest {
    /// The submission of the resolved transform `spec` (with `format=auto`, the formats the
    /// `Accept` header takes are recorded in it).
    pub fn submission(
        self,
        settings: &Settings,
        spec: TransformSpec,
        accept: Option<&str>,
        body: &[u8],
    ) -> Result<Submission, ApiError> {
        let spec = spec.negotiated(accept);
        Ok(match self.upload_id {
            Some(id) => Submission::upload(spec, id),
            None => Submission::inline(spec, self.content_type.as_deref(), body, settings)?,
        })
    }
}

/// The fields of a JSON object body, each value rendered as a query string would carry it.
/// `example` and `expected` describe the object for the error messages.
pub fn json_fields(
    body: &[u8],
    example: &str,
    expected: &str,
) -> Result<Vec<(String, String)>, ApiError> {
    let json: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(format!(
            "the JSON body is invalid ({e}); expected {example}"
        ))
    })?;
    let Value::Object(fields) = json else {
        return Err(ApiError::invalid(format!(
            "the JSON body must be {expected}"
        )));
    };
    fields
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(ApiError::invalid(format!(
                        "{} must be a string, number or boolean",
                        resizer_core::shorten(&k, 40)
                    )));
                }
            };
            Ok((k, text))
        })
        .collect()
}

/// Refuses any query parameter on `route` (its name, as in logs), which takes none.
pub fn none(query: Option<&str>, route: &str) -> Result<(), ApiError> {
    match query_pairs(query).first() {
        Some((k, _)) => Err(ApiError::invalid(format!(
            "{route} takes no parameters, got {:?}",
            resizer_core::shorten(k, 40)
        ))),
        None => Ok(()),
    }
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
